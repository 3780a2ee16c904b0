"""The Explorer's engine side: labels to colour and score by, baselines, and ``evaluate_run``.

``evaluate_run`` answers the analyst's two questions for one run, checkpoint and data file: does
a label (by default the outcome: Success / Failure / Other) separate in the full embedding space,
and do the anomaly scores find the labelled anomalies? It embeds the rows once, then scores the
same way (engine.evaluate's scorecard) three representations side by side:

- the trained embeddings;
- ``raw``: the run encoder's model inputs, one-hot and standardised (``raw_feature_matrix``), with
  the outcome family always left out, so the baseline says what the *other* fields alone tell;
- ``untrained``: a TabularResNet of the same shape, freshly initialised (seeded), in eval mode.

Stability is measured the same way for all three: 5% multiplicative noise on the raw numeric
inputs (``perturbed_inputs``, seeded), pushed through the same representation, mean cosine with
the clean version. For ``raw`` that means the noisy numbers go through the same one-hot and
standardising step as the clean ones (fitted on both together, see ``_raw_stability``).

Anomaly scores (``anomaly_scores``): kNN mean cosine distance (k=20, the default), LOF or
Isolation Forest on the embeddings, and Isolation Forest on the raw features as the baseline.
An exact neighbour search over all events costs O(N^2 d): 31-34 s for 72,000 x 128 on the 2
shared cores here (numpy's GEMM alone takes 24 s of it, so no exact method is much faster;
pynndescent took 16 s warm and 34 s of JIT cold; scikit-learn's algorithm="auto" picks brute
force above 15 dimensions anyway). Above ``EXACT_NEIGHBOURS_MAX`` events the neighbours are
therefore searched among a seeded uniform reference sample of ``REFERENCE_SIZE`` events (every
event is scored against it, a reference event never against itself). Measured on the 72,000-event
demo data (quick-preset models, d_model 128): kNN 4.7 s instead of 33.6 s, AUROC 0.395 instead
of 0.391, Spearman 0.86 with the exact scores (a second model: 12 s vs 36 s under heavier load,
AUROC 0.432 vs 0.398); a 10,000-event reference took 2.6 s but moved AUROC to 0.485 (Spearman
0.74), so 20,000. The scale of "20 nearest" widens (20 among a 28% sample
reach about as far as 72 among all). LOF changes more (Spearman 0.33, AUROC 0.47 vs 0.52): its
local densities are those of the reference. The report and ``AnomalyScores.note`` say which was used.

Cost of a whole ``evaluate_run`` on the 2 shared cores: ~50 s for the 72,000-event demo data
(d_model 128): four forward passes ~2-5 s each, the three scorecards 8-11 s each (silhouette and
kNN on 20,000-event samples, engine.evaluate), anomaly scores ~5-7 s; pass ``embeddings`` when
they are at hand. The tutorial data (27,084 events, exact neighbours) takes about as long.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from engine import evaluate
from engine.embed import DEFAULT_BATCH_SIZE, embed
from engine.errors import UserError
from engine.features import TabularTensors, categorical_codes
from engine.ocsf import LABEL, canonical_path, family_of, find_column, outcome_label
from engine.project import as_embedding_matrix, l2_normalise
from engine.runs import LoadedRun, load_run
from engine.schema import Policy

log = logging.getLogger(__name__)

OUTCOME = "outcome"  # pseudo-column: Success / Failure / Other from status_id, status, http_response.code ...
OUTCOME_EVIDENCE = ("status_id", "status", "http_response.code")
# Anomaly truth columns, most explicit first (canonical dotted paths; underscore spellings match too).
ANOMALY_COLUMNS = (
    "_label.is_anomaly", "is_anomaly", "anomaly.is_anomaly", "_label.anomaly", "label.is_anomaly",
    "_label.scenario", "anomaly.type", "_label.anomaly_type", "anomaly_type",
)
# Text that means "not an anomaly" in a truth column (scenario names mean "an anomaly of that kind").
NORMAL_TEXT = frozenset({"", "false", "0", "no", "n", "f", "normal", "none", "benign", "null", "nan", "<na>"})
TRUE_TEXT = frozenset({"true", "1", "yes", "y", "t", "anomaly", "anomalous"})

STABILITY_NOISE = 0.05  # tutorial Part 5: 5% multiplicative noise on numeric fields
SCORERS = ("knn", "lof", "iforest")
ANOMALY_K = evaluate.ANOMALY_K
# Exact neighbour search up to this many events (~5 s at 30,000 x 128 here); above, a reference sample.
EXACT_NEIGHBOURS_MAX = 30_000
# The reference sample above EXACT_NEIGHBOURS_MAX (figures in the module docstring; bench/explore.py --evaluate).
REFERENCE_SIZE = 20_000
UNTRAINED_SEED_OFFSET = 7_919  # the untrained net's init must not share draws with the noise


ProgressCallback = Callable[[float, str], None]


# --------------------------------------------------------------------------- labels


def resolve_column(df: pd.DataFrame, column: str, *, what: str = "label column") -> str:
    """The frame's column named ``column``, also under its other spelling (``anomaly_type`` = ``anomaly.type``)."""
    if column in df.columns:
        return column
    found = find_column(df.columns, canonical_path(str(column)))
    if found is None:
        preview = ", ".join(map(str, list(df.columns)[:8])) + (" ..." if len(df.columns) > 8 else "")
        raise UserError(f"{what} {column!r} is not in the data (columns: {preview})")
    return found


def label_values(df: pd.DataFrame, column: str) -> pd.Series:
    """Label text per row (NaN where missing), aligned with ``df``'s index.

    ``OUTCOME`` (or ``status_id``) gives engine.ocsf.outcome_label: "Success" / "Failure" / "Other",
    never missing. Any other column gives its values as canonical text: integers as "504" (not
    "504.0" when the column holds NaN), booleans "true" / "false".
    """
    if column in (OUTCOME, "status_id"):
        return outcome_label(df).rename(OUTCOME if column == OUTCOME else column)
    name = resolve_column(df, column)
    codes, texts = categorical_codes(df[name])
    values = np.full(len(df), np.nan, dtype=object)
    present = codes >= 0
    values[present] = texts[codes[present]]
    return pd.Series(values, index=df.index, name=name, dtype=object)


def label_columns(df: pd.DataFrame) -> list[str]:
    """Columns that are annotations (``_label.*``, ``is_anomaly``, ``anomaly.*`` ...), in frame order."""
    return [str(c) for c in df.columns if family_of(canonical_path(str(c))) == LABEL]


def default_label_column(df: pd.DataFrame) -> str:
    """``OUTCOME`` when the frame has outcome evidence (status_id, status, http_response.code), else its first label column.

    With neither, ``OUTCOME`` still: every row is then "Other" and the scorecard says there is
    nothing to separate, rather than this function guessing at an unrelated column.
    """
    if any(find_column(df.columns, path) is not None for path in OUTCOME_EVIDENCE):
        return OUTCOME
    labels = label_columns(df)
    return labels[0] if labels else OUTCOME


def default_anomaly_column(df: pd.DataFrame) -> str | None:
    """The first column of ``ANOMALY_COLUMNS`` the frame has (either spelling), or None."""
    for path in ANOMALY_COLUMNS:
        found = find_column(df.columns, canonical_path(path))
        if found is not None:
            return found
    return None


def anomaly_truth(df: pd.DataFrame, column: str) -> np.ndarray:
    """bool [N]: which rows the column marks as anomalies.

    Booleans as they are; numbers: non-zero; text: "true" / "1" / "yes" ... or any other value
    that is not "normal" / "none" / "false" / "0" / empty (a scenario name such as "port_scan", the
    tutorial data's ``anomaly.type``). Missing is not an anomaly (the tutorial data leaves
    ``anomaly.type`` empty on normal events).
    """
    series = df[resolve_column(df, column, what="anomaly label column")]
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.fillna(False).to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(series.dtype):
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.nan_to_num(numbers, nan=0.0) != 0
    codes, texts = categorical_codes(series)
    if len(texts) == 0:  # every value missing
        return np.zeros(len(series), dtype=bool)
    per_value = np.array([_text_is_anomaly(t) for t in texts], dtype=bool)  # once per distinct value
    return (codes >= 0) & per_value[np.maximum(codes, 0)]


def _text_is_anomaly(text: str) -> bool:
    word = str(text).strip().lower()
    if word in NORMAL_TEXT:
        return False
    try:
        return float(word) != 0.0  # "1.0", "0.0"
    except ValueError:
        return True  # "true", "anomaly", or a scenario name


# --------------------------------------------------------------------------- perturbed and untrained embeddings


def _tensors(run: LoadedRun, data: pd.DataFrame | TabularTensors) -> TabularTensors:
    return run.encoder.transform(data) if isinstance(data, pd.DataFrame) else data


def perturbable_columns(run: LoadedRun) -> list[str]:
    """Numeric inputs the stability noise goes on: all but protected ones (an outcome code stored as a number)."""
    protected = {spec.name for spec in run.schema.columns if spec.policy == Policy.PROTECTED}
    return [c for c in run.encoder.numeric_columns_ if c not in protected]


def perturbed_inputs(run: LoadedRun, data: pd.DataFrame | TabularTensors, *, noise_level: float = STABILITY_NOISE,
                     seed: int = 0) -> TabularTensors:
    """The raw stage with every perturbable numeric cell multiplied by (1 + e), e ~ N(0, noise_level).

    Multiplicative on raw values (5% of the bytes, before log1p and standardising), like
    augmentation's jitter. The noise for all rows is drawn at once from a seeded generator, so
    it does not depend on the batch size. Missing values stay missing; categorical and time
    inputs are untouched.
    """
    if not 0.0 <= noise_level <= 1.0:
        raise UserError(f"noise_level must be in [0, 1], got noise_level={noise_level!r}")
    tensors = _tensors(run, data)
    chosen = set(perturbable_columns(run))
    columns = torch.tensor([c in chosen for c in run.encoder.numeric_columns_], dtype=torch.bool)
    generator = torch.Generator().manual_seed(int(seed))
    numeric = tensors.numeric.cpu().to(torch.float32)
    noise = torch.randn(numeric.shape, generator=generator, dtype=torch.float32) * noise_level
    jittered = torch.where(columns, numeric * (1.0 + noise), numeric)  # NaN * factor stays NaN
    return TabularTensors(numeric=jittered, categorical=tensors.categorical.cpu(), time=tensors.time.cpu())


def perturbed_embeddings(run: LoadedRun, df: pd.DataFrame | TabularTensors, *, noise_level: float = STABILITY_NOISE,
                         seed: int = 0, batch_size: int = DEFAULT_BATCH_SIZE,
                         on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Embeddings float32 [N, d_model] of the same rows with ``noise_level`` multiplicative noise on numeric inputs.

    For the stability metric: mean cosine between these and ``engine.embed.embed`` of the clean rows.
    Deterministic for a seed. ``df`` may also be the run encoder's TabularTensors.
    """
    noisy = perturbed_inputs(run, df, noise_level=noise_level, seed=seed)
    return embed(run, noisy, batch_size=batch_size, on_progress=on_progress)


def untrained_model(run: LoadedRun, *, seed: int = 0) -> torch.nn.Module:
    """A TabularResNet shaped like the run's, freshly initialised from ``seed`` alone, in eval mode.

    PyTorch's default initialisation (Kaiming-uniform Linear weights, N(0, 1) embeddings, unit
    norms), drawn from a seeded generator rather than the global RNG, so the same seed gives
    the same network whatever else the process has drawn.
    """
    from engine.model import TabularResNet

    model = TabularResNet.from_config(run.config.model, n_num=run.encoder.n_model_numeric,
                                      cardinalities=run.encoder.cardinalities)
    generator = torch.Generator().manual_seed(int(seed) + UNTRAINED_SEED_OFFSET)
    with torch.no_grad():
        for module in model.modules():
            _reinitialise(module, generator)
    return model.to(run.device).eval()


def _reinitialise(module: torch.nn.Module, generator: torch.Generator) -> None:
    """torch's own ``reset_parameters`` for Linear and Embedding, with an explicit generator."""
    if isinstance(module, torch.nn.Linear):
        torch.nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
        if module.bias is not None and module.in_features > 0:
            bound = 1.0 / math.sqrt(module.in_features)
            torch.nn.init.uniform_(module.bias, -bound, bound, generator=generator)
    elif isinstance(module, torch.nn.Embedding):
        torch.nn.init.normal_(module.weight, generator=generator)
    # Norm layers and the numeric mask value start as constants (ones / zeros): nothing to draw.


def untrained_embeddings(run: LoadedRun, df: pd.DataFrame | TabularTensors, *, seed: int = 0,
                         batch_size: int = DEFAULT_BATCH_SIZE,
                         on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Embeddings float32 [N, d_model] of the rows through ``untrained_model(run, seed=seed)``: the untrained baseline."""
    untrained = dataclasses.replace(run, model=untrained_model(run, seed=seed))
    return embed(untrained, _tensors(run, df), batch_size=batch_size, on_progress=on_progress)


def _raw_inputs(run: LoadedRun, tensors: TabularTensors) -> tuple[np.ndarray, np.ndarray]:
    """(x_num, x_cat) of the model inputs without any outcome-family column (nor its missing indicator)."""
    encoder = run.encoder
    outcome = set(run.schema.outcome_columns)
    with torch.inference_mode():
        x_num, x_cat = encoder.model_inputs(tensors.to("cpu"))
    names = encoder.model_feature_names()
    keep_num = [j for j, name in enumerate(names) if name.split("__", 1)[0] not in outcome]
    keep_cat = [j for j, name in enumerate(encoder.categorical_columns_) if name not in outcome]
    return x_num.numpy()[:, keep_num], x_cat.numpy()[:, keep_cat]


def raw_feature_matrix(run: LoadedRun, df: pd.DataFrame | TabularTensors) -> np.ndarray:
    """The raw-features baseline float32 [N, width]: the run's model inputs, standardised and one-hot.

    The encoder's inputs (x_num: standardised numbers, missing indicators, cyclic time; x_cat:
    vocabulary indices) go through ``engine.evaluate.raw_features_baseline``. Label columns are
    never inputs. The outcome family (``schema.outcome_columns``: status_id, status,
    http_response.code, severity ...) is ALWAYS left out, whether or not the model saw it: with it
    the baseline would separate success from failure by reading the answer, and the comparison
    would say nothing about what the other fields carry.
    """
    x_num, x_cat = _raw_inputs(run, _tensors(run, df))
    return evaluate.raw_features_baseline(x_num, x_cat)


# --------------------------------------------------------------------------- anomaly scores


@dataclass(frozen=True)
class AnomalyScores:
    """Per-event anomaly scores (higher = more anomalous) and how they were computed."""

    scores: np.ndarray = field(repr=False)  # float64 [N]
    scorer: str  # "knn" | "lof" | "iforest"
    k: int | None  # neighbours (knn, lof)
    reference_size: int | None  # None: exact search among all events
    note: str | None = None


def reference_neighbour_graph(emb: Any, k: int = ANOMALY_K, *, reference_rows: np.ndarray) -> evaluate.NeighbourGraph:
    """Each event's k nearest events among ``reference_rows`` under cosine (never itself), as global row indices.

    With ``reference_rows`` = every row this is ``engine.evaluate.neighbour_graph``. The graph is
    the shape ``evaluate.knn_score`` and ``evaluate.lof_score`` take: LOF then compares each
    event's local density with that of its reference neighbours.
    """
    from sklearn.neighbors import NearestNeighbors

    normed = l2_normalise(as_embedding_matrix(emb))
    n = len(normed)
    reference_rows = np.asarray(reference_rows, dtype=np.int64)
    if len(reference_rows) < 2:
        raise UserError(f"the anomaly reference sample needs at least 2 events, got {len(reference_rows)}")
    k = int(min(k, len(reference_rows) - 1))
    index = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric="euclidean").fit(normed[reference_rows])
    chord, position = index.kneighbors(normed)  # positions into reference_rows
    own_position = np.full(n, -1, dtype=np.int64)
    own_position[reference_rows] = np.arange(len(reference_rows))
    is_self = position == own_position[:, None]
    # Drop the event itself where it was found, else the farthest of the k+1 (as evaluate.neighbour_graph).
    keep = np.argsort(is_self, axis=1, kind="stable")[:, :k]
    chord = np.take_along_axis(chord, keep, axis=1)
    cosine = np.clip(chord.astype(np.float64) ** 2 / 2.0, 0.0, 2.0)  # chord^2 / 2 = 1 - cos on unit rows
    rows = reference_rows[np.take_along_axis(position, keep, axis=1)]
    return evaluate.NeighbourGraph(rows.astype(np.int64), cosine.astype(np.float32))


def anomaly_scores(emb: Any, scorer: str = "knn", *, k: int = ANOMALY_K, seed: int = 0,
                   max_exact: int = EXACT_NEIGHBOURS_MAX, reference_size: int = REFERENCE_SIZE) -> AnomalyScores:
    """Anomaly scores for every event of ``emb`` with ``scorer``: "knn" (default), "lof" or "iforest".

    kNN and LOF search neighbours exactly up to ``max_exact`` events, above that among a seeded
    uniform sample of ``reference_size`` events (module docstring: time and effect measured).
    """
    if scorer not in SCORERS:
        raise UserError(f"scorer must be one of {', '.join(SCORERS)}, got scorer={scorer!r}")
    matrix = as_embedding_matrix(emb)
    n = len(matrix)
    if n < 2:
        raise UserError(f"anomaly scores need at least 2 events, got {n}")
    if scorer == "iforest":
        return AnomalyScores(evaluate.isolation_forest_score(matrix, seed), scorer, None, None)
    if n <= max_exact:
        graph, reference, note = evaluate.neighbour_graph(matrix, k), None, None
    else:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=min(reference_size, n), replace=False))
        graph, reference = reference_neighbour_graph(matrix, k, reference_rows=rows), len(rows)
        note = (f"neighbours searched among a random {len(rows):,} of the {n:,} events "
                f"(exact search above {max_exact:,} events costs tens of seconds)")
    scores = evaluate.knn_score(k=k, graph=graph) if scorer == "knn" else evaluate.lof_score(k=k, graph=graph)
    return AnomalyScores(scores, scorer, graph.k, reference, note)


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class EvaluationReport:
    """What ``evaluate_run`` found; ``to_dict`` is the ``evaluate --json`` document (DESIGN.md contract)."""

    label: str  # the label column scored (OUTCOME for the outcome)
    scorecard: dict[str, Any]  # engine.evaluate.Scorecard.to_dict(): silhouette, knn_accuracy, ..., lights, reasons
    baselines: dict[str, dict[str, Any]]  # {"raw": scorecard dict, "untrained": scorecard dict}
    anomaly: dict[str, Any] | None  # scorer, auroc, pr_auc, raw_isolation_forest_auroc ...; None: no anomaly label
    verdict: str
    n_rows: int
    seconds: float
    notes: tuple[str, ...] = ()
    run_dir: str = ""
    checkpoint: str = ""
    anomaly_label: str | None = None
    # Per-event anomaly scores on the embeddings (for the page's colouring and top-N table); not in the JSON.
    anomaly_scores: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "scorecard": self.scorecard,
            "baselines": self.baselines,
            "anomaly": self.anomaly,
            "verdict": self.verdict,
            "notes": list(self.notes),
            "n_rows": self.n_rows,
            "seconds": round(self.seconds, 3),
            "run_dir": self.run_dir,
            "checkpoint": self.checkpoint,
            "anomaly_label": self.anomaly_label,
        }


class _Progress:
    """Maps each stage's own 0..1 progress onto its slice of the whole run for ``on_progress(fraction, message)``."""

    def __init__(self, callback: ProgressCallback | None, weights: Sequence[tuple[str, float]]) -> None:
        self.callback = callback
        total = sum(w for _, w in weights)
        self.starts, self.widths, done = {}, {}, 0.0
        for name, weight in weights:
            self.starts[name], self.widths[name] = done / total, weight / total
            done += weight

    def stage(self, name: str, message: str) -> Callable[[int, int], None]:
        self._report(self.starts[name], message)

        def rows_done(done: int, total: int) -> None:
            self._report(self.starts[name] + self.widths[name] * done / max(total, 1), message)

        return rows_done

    def finish(self) -> None:
        self._report(1.0, "done")

    def _report(self, fraction: float, message: str) -> None:
        if self.callback is not None:
            self.callback(min(1.0, max(0.0, fraction)), message)


_STAGES = (("embed", 3), ("perturbed", 3), ("untrained", 4), ("raw", 1),
           ("scorecard", 4), ("raw scorecard", 4), ("untrained scorecard", 4), ("anomaly", 4))


def evaluate_run(
    run_dir: Any,
    df: pd.DataFrame,
    *,
    label: str | None = None,
    anomaly_label: str | None = None,
    checkpoint: str = "best",
    scorer: str = "knn",
    seed: int = 0,
    on_progress: ProgressCallback | None = None,
    embeddings: np.ndarray | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> EvaluationReport:
    """Scorecard for ``label`` (default: ``default_label_column``) beside the two baselines, plus anomaly metrics.

    ``run_dir``: a run folder or an already loaded ``LoadedRun``. ``anomaly_label``: the truth
    column (default: ``default_anomaly_column``; none found means no anomaly section).
    ``embeddings``: this run's embeddings of ``df`` when the caller has them (the Explorer's cache).
    A label with one value, no value or too many values gives None metrics with reasons, never an
    exception; a missing column or run folder is a UserError. ``on_progress(fraction, message)``.
    """
    started = time.perf_counter()
    if scorer not in SCORERS:
        raise UserError(f"scorer must be one of {', '.join(SCORERS)}, got scorer={scorer!r}")
    run = run_dir if isinstance(run_dir, LoadedRun) else load_run(run_dir, checkpoint)
    if len(df) < 2:
        raise UserError(f"evaluation needs at least 2 events, got {len(df)}")
    label = label or default_label_column(df)
    labels = label_values(df, label)  # fails early on a missing column
    anomaly_column = resolve_column(df, anomaly_label, what="anomaly label column") if anomaly_label else default_anomaly_column(df)
    truth = anomaly_truth(df, anomaly_column) if anomaly_column else None
    progress = _Progress(on_progress, _STAGES)

    tensors = run.encoder.transform(df)
    noisy = perturbed_inputs(run, tensors, seed=seed)
    views = _embed_views(run, tensors, noisy, embeddings, batch_size, seed, progress)
    card, raw_card, base_card = _scorecards(run, views, labels, tensors, noisy, seed, progress)

    progress.stage("anomaly", "scoring anomalies")
    scores = anomaly_scores(views.emb, scorer, seed=seed)
    anomaly = _anomaly_section(scores, truth, views.raw, anomaly_column, seed) if truth is not None else None
    label_name = "the outcome" if label in (OUTCOME, "status_id") else label
    verdict = " ".join(s for s in (evaluate.verdict(card, label_name), _baseline_sentence(card, raw_card, base_card)) if s)
    report = EvaluationReport(
        label=label, scorecard=card.to_dict(),
        baselines={"raw": raw_card.to_dict(), "untrained": base_card.to_dict()},
        anomaly=anomaly, verdict=verdict, n_rows=len(df), seconds=time.perf_counter() - started,
        notes=_notes(run, label, scores, views.raw), run_dir=str(run.run_dir), checkpoint=run.checkpoint,
        anomaly_label=anomaly_column, anomaly_scores=scores.scores,
    )
    progress.finish()
    log.info("evaluated %s on %d events in %.1f s", run.run_dir.name, len(df), report.seconds)
    return report


@dataclass(frozen=True)
class _RawBaseline:
    matrix: np.ndarray | None  # None: no input is left once the outcome family is out
    reason: str | None


@dataclass(frozen=True)
class _Views:
    """The representations evaluate_run scores: each clean and (for stability) perturbed."""

    emb: np.ndarray
    emb_noisy: np.ndarray
    untrained: np.ndarray
    untrained_noisy: np.ndarray
    raw: _RawBaseline
    perturbable: bool  # False: no numeric input to put noise on, so no stability


def _embed_views(run: LoadedRun, tensors: TabularTensors, noisy: TabularTensors, embeddings: np.ndarray | None,
                 batch_size: int, seed: int, progress: _Progress) -> _Views:
    if embeddings is None:
        embeddings = embed(run, tensors, batch_size=batch_size, on_progress=progress.stage("embed", "embedding events"))
    emb = as_embedding_matrix(embeddings)
    if len(emb) != len(tensors):
        raise UserError(f"embeddings have {len(emb)} rows but the data has {len(tensors)}")
    emb_noisy = embed(run, noisy, batch_size=batch_size, on_progress=progress.stage("perturbed", "embedding perturbed events"))
    untrained_stage = progress.stage("untrained", "embedding with an untrained network")
    untrained = dataclasses.replace(run, model=untrained_model(run, seed=seed))
    base = embed(untrained, tensors, batch_size=batch_size, on_progress=lambda done, n: untrained_stage(done, 2 * n))
    base_noisy = embed(untrained, noisy, batch_size=batch_size, on_progress=lambda done, n: untrained_stage(n + done, 2 * n))
    progress.stage("raw", "encoding raw features")
    return _Views(emb, emb_noisy, base, base_noisy, _raw_baseline(run, tensors), bool(perturbable_columns(run)))


def _scorecards(run: LoadedRun, views: _Views, labels: pd.Series, tensors: TabularTensors, noisy: TabularTensors,
                seed: int, progress: _Progress) -> tuple[evaluate.Scorecard, evaluate.Scorecard, evaluate.Scorecard]:
    """(embeddings, raw, untrained) scorecards, computed the same way."""
    no_noise = None if views.perturbable else "the run has no numeric inputs to perturb"
    progress.stage("scorecard", "scoring the embeddings")
    card = _with_stability(evaluate.scorecard(views.emb, labels, seed=seed),
                           evaluate.stability(views.emb, views.emb_noisy) if views.perturbable else None, no_noise)
    progress.stage("raw scorecard", "scoring the raw features")
    raw_card = _raw_card(views.raw, labels, run, tensors, noisy, seed, no_noise)
    progress.stage("untrained scorecard", "scoring the untrained network")
    base_card = _with_stability(evaluate.scorecard(views.untrained, labels, seed=seed),
                                evaluate.stability(views.untrained, views.untrained_noisy) if views.perturbable else None,
                                no_noise)
    return card, raw_card, base_card


def _raw_baseline(run: LoadedRun, tensors: TabularTensors) -> _RawBaseline:
    x_num, x_cat = _raw_inputs(run, tensors)
    if x_num.shape[1] == 0 and x_cat.shape[1] == 0:
        return _RawBaseline(None, "every model input is in the outcome family, which the raw baseline leaves out")
    return _RawBaseline(evaluate.raw_features_baseline(x_num, x_cat), None)


def _with_stability(card: evaluate.Scorecard, value: float | None, reason: str | None) -> evaluate.Scorecard:
    reasons = tuple((metric, why) for metric, why in card.reasons if metric != "stability")
    if value is None:
        reasons += (("stability", reason or "not computed"),)
    return dataclasses.replace(card, stability=value, reasons=reasons)


def _raw_card(raw: _RawBaseline, labels: pd.Series, run: LoadedRun, tensors: TabularTensors,
              noisy: TabularTensors, seed: int, no_noise: str | None) -> evaluate.Scorecard:
    if raw.matrix is None:
        reasons = tuple((m, raw.reason) for m in ("silhouette", "knn_accuracy", "davies_bouldin", "stability"))
        return evaluate.Scorecard(None, None, None, None, n_events=len(labels), reasons=reasons)
    card = evaluate.scorecard(raw.matrix, labels, seed=seed)
    value = _raw_stability(run, tensors, noisy) if no_noise is None else None
    return _with_stability(card, value, no_noise)


def _raw_stability(run: LoadedRun, tensors: TabularTensors, noisy: TabularTensors) -> float:
    """Stability of the raw features: clean and noisy rows through ONE raw_features_baseline fit.

    Fitting the standardiser and one-hot encoder on both halves together gives both the same
    transform (the categorical halves are identical, so the one-hot columns are too), which is
    what "the same event, seen through the same representation" requires.
    """
    clean_num, clean_cat = _raw_inputs(run, tensors)
    noisy_num, noisy_cat = _raw_inputs(run, noisy)
    both = evaluate.raw_features_baseline(np.vstack([clean_num, noisy_num]), np.vstack([clean_cat, noisy_cat]))
    n = len(clean_num)
    return evaluate.stability(both[:n], both[n:])


def _anomaly_section(scores: AnomalyScores, truth: np.ndarray, raw: _RawBaseline, column: str, seed: int) -> dict[str, Any]:
    metrics = evaluate.anomaly_metrics(scores.scores, truth)
    section: dict[str, Any] = {
        "scorer": scores.scorer, "auroc": metrics["auroc"], "pr_auc": metrics["pr_auc"],
        "raw_isolation_forest_auroc": None, "raw_isolation_forest_pr_auc": None,
        "column": column, "n": metrics["n"], "n_anomalies": metrics["n_anomalies"], "prevalence": metrics["prevalence"],
        "k": scores.k, "reference_size": scores.reference_size, "note": scores.note, "reason": metrics["reason"],
    }
    if metrics["reason"] is None and raw.matrix is not None:
        raw_metrics = evaluate.anomaly_metrics(evaluate.isolation_forest_score(raw.matrix, seed), truth)
        section["raw_isolation_forest_auroc"] = raw_metrics["auroc"]
        section["raw_isolation_forest_pr_auc"] = raw_metrics["pr_auc"]
    elif raw.matrix is None:
        section["raw_reason"] = raw.reason
    return section


def _baseline_sentence(card: evaluate.Scorecard, raw: evaluate.Scorecard, untrained: evaluate.Scorecard) -> str:
    """How the embeddings compare with the baselines, on balanced kNN accuracy (fair under imbalance)."""
    ours = card.knn_balanced_accuracy
    if ours is None:
        return ""
    others = {name: c.knn_balanced_accuracy for name, c in (("the raw features", raw), ("an untrained network", untrained))
              if c.knn_balanced_accuracy is not None}
    if not others:
        return ""
    behind = [f"{name} ({value:.2f})" for name, value in others.items() if ours <= value + 0.01]
    if not behind:
        figures = " and ".join(f"{value:.2f} for {name}" for name, value in others.items())
        return f"Training helped: balanced kNN accuracy {ours:.2f} against {figures}."
    return (f"Balanced kNN accuracy {ours:.2f} is no better than with {' or '.join(behind)}: "
            "training has not added separation beyond what the inputs give.")


def _notes(run: LoadedRun, label: str, scores: AnomalyScores, raw: _RawBaseline) -> tuple[str, ...]:
    notes = []
    outcome_inputs = [c for c in run.schema.outcome_columns if run.schema.is_input(run.schema[c])]
    if label in (OUTCOME, *run.schema.outcome_columns) and outcome_inputs:
        shown = ", ".join(outcome_inputs[:4]) + (" ..." if len(outcome_inputs) > 4 else "")
        notes.append(f"the model sees outcome fields as inputs ({shown}), so part of the separation is read "
                     "straight from them; train with --exclude-outcome for an honest test (the raw baseline leaves them out)")
    if scores.note:
        notes.append(scores.note)
    if raw.reason:
        notes.append(raw.reason)
    return tuple(notes)
