"""``python -m engine evaluate``: does a label separate in a run's embeddings, and are the anomalies found?"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.cli import emit_json
from engine.errors import UserError

HELP = ("score how well a label (default: the outcome) separates in a run's embeddings, beside the raw "
        "features and an untrained network, and how well anomaly scores find labelled anomalies")

METRICS = (  # (JSON key, row title, target as printed)
    ("silhouette", "silhouette (cosine)", "> 0.5"),
    ("knn_accuracy", "kNN accuracy (k=10)", "> 0.85"),
    ("davies_bouldin", "Davies-Bouldin", "< 1.0"),
    ("stability", "stability (5% noise)", "> 0.92"),
)
COLUMNS = (("scorecard", "embeddings"), ("raw", "raw features"), ("untrained", "untrained net"))
LIGHT_COLOURS = {"good": "\033[32m", "fair": "\033[33m", "poor": "\033[31m"}
RESET = "\033[0m"
CELL = 26


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `train` or the app")
    parser.add_argument("data", metavar="DATA", help="events file: JSON array, JSONL, CSV or Parquet (optionally .gz)")
    parser.add_argument("--label", metavar="COL", help="the label to score (default: the outcome, Success / Failure / Other)")
    parser.add_argument("--anomaly-label", metavar="COL",
                        help="the anomaly truth column (default: _label.is_anomaly, is_anomaly, anomaly.type ... when present)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint to use (default best)")
    parser.add_argument("--scorer", choices=("knn", "lof", "iforest"), default="knn",
                        help="anomaly scorer on the embeddings (default knn: mean cosine distance to the 20 nearest)")
    parser.add_argument("--seed", type=int, default=0, help="seed for samples, noise and the untrained network (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    # Imported here so that `python -m engine --help` does not pay for torch and pandas.
    from engine.explore import evaluate_run
    from engine.ingest import load
    from engine.runs import load_run

    loaded = load_run(args.run_dir, args.checkpoint)  # a missing run fails before the data is read
    df, _report = load(args.data)
    if len(df) < 2:
        raise UserError(f"{args.data}: need at least 2 usable events to evaluate, got {len(df)}")
    progress = _Progress()
    try:
        report = evaluate_run(loaded, df, label=args.label, anomaly_label=args.anomaly_label,
                              scorer=args.scorer, seed=args.seed, on_progress=progress.update)
    finally:
        progress.close()
    document = report.to_dict()
    if args.json:
        emit_json(document)
    else:
        print(render(document, colour=sys.stdout.isatty()))
    return 0


def render(doc: dict[str, Any], *, colour: bool = False) -> str:
    """The report as text: a header, the scorecard table with traffic lights, the verdict, anomalies, notes."""
    lines = [_header(doc), "", _row("", [title for _, title in COLUMNS], "target")]
    for key, title, target in METRICS:
        cells = [_cell(_card(doc, column), key, colour) for column, _ in COLUMNS]
        lines.append(_row(title, cells, target))
    lines += ["", doc["verdict"]]
    lines += _anomaly_lines(doc["anomaly"])
    lines += [f"note: {note}" for note in doc.get("notes", [])]
    reasons = doc["scorecard"].get("reasons") or {}
    lines += [f"{metric}: {why}" for metric, why in reasons.items()]
    return "\n".join(lines)


def _card(doc: dict[str, Any], column: str) -> dict[str, Any]:
    return doc["scorecard"] if column == "scorecard" else doc["baselines"][column]


def _header(doc: dict[str, Any]) -> str:
    card = doc["scorecard"]
    classes = ", ".join(f"{c['label']} {c['count']:,}" for c in card.get("classes", [])[:5])
    more = len(card.get("classes", [])) - 5
    classes += f", +{more} more" if more > 0 else ""
    return (f"{doc['run_dir']} ({doc['checkpoint']} checkpoint): {doc['n_rows']:,} events, label {doc['label']}"
            f"{f' ({classes})' if classes else ''}, {doc['seconds']:.1f} s")


def _cell(card: dict[str, Any], key: str, colour: bool) -> str:
    value = card.get(key)
    if value is None:
        return "n/a"
    text = f"{value:.3f}"
    if key == "knn_accuracy" and card.get("knn_balanced_accuracy") is not None:
        text += f" (bal. {card['knn_balanced_accuracy']:.3f})"  # the light follows balanced accuracy
    light = (card.get("lights") or {}).get(key)
    if light:
        word = f"{LIGHT_COLOURS[light]}{light}{RESET}" if colour else light
        text += f" {word}"
        if colour:  # escape codes take no room on screen: pad as if they were not there
            text += " " * (len(LIGHT_COLOURS[light]) + len(RESET))
    return text


def _row(title: str, cells: list[str], target: str) -> str:
    return f"{title:<22}" + "".join(f"{cell:<{CELL}}" for cell in cells) + target


def _anomaly_lines(anomaly: dict[str, Any] | None) -> list[str]:
    if anomaly is None:
        return ["", "anomalies: no anomaly label column in the data (name one with --anomaly-label)"]
    head = (f"anomalies ({anomaly['column']}: {anomaly['n_anomalies']:,} of {anomaly['n']:,} events), "
            f"scorer {anomaly['scorer']}")
    if anomaly.get("reason"):
        return ["", f"{head}: {anomaly['reason']}"]
    lines = ["", head,
             f"  embeddings:                     AUROC {_fmt(anomaly['auroc'])}  PR-AUC {_fmt(anomaly['pr_auc'])}",
             f"  Isolation Forest, raw features: AUROC {_fmt(anomaly['raw_isolation_forest_auroc'])}  "
             f"PR-AUC {_fmt(anomaly.get('raw_isolation_forest_pr_auc'))}",
             f"  (PR-AUC of random scores = the anomaly share, {_fmt(anomaly['prevalence'])})"]
    if anomaly["auroc"] is not None and anomaly["auroc"] < 0.5:
        lines.append("  AUROC below 0.5: the labelled anomalies sit in denser neighbourhoods than normal events "
                     "(bursts of similar events); try --scorer iforest")
    return lines


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


class _Progress:
    """A tqdm bar on stderr (shown on a terminal only) fed by evaluate_run's on_progress(fraction, message)."""

    def __init__(self) -> None:
        self.bar: Any = None

    def update(self, fraction: float, message: str) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=1000, unit="‰", file=sys.stderr, disable=None, dynamic_ncols=True, desc="evaluate",
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")
        self.bar.update(int(fraction * 1000) - self.bar.n)
        self.bar.set_postfix_str(message, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
