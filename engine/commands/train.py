"""``python -m engine train``: train an embedding model headless and write the same run folder as the app."""
from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from pathlib import Path
from typing import Any

from engine.cli import emit_json
from engine.errors import UserError

HELP = "train a TabularResNet on an events file (contrastive, masked feature prediction or both) and write a run folder"

DEFAULT_RUNS_DIR = "runs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="events file: JSON array, JSONL, CSV or Parquet (optionally .gz)")
    parser.add_argument("--schema", metavar="S.json", help="a saved schema; default: inferred from the data")
    parser.add_argument("--config", metavar="C.json", help="a saved run config (config.json of a run works); default: the defaults")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one config field by its plain name, e.g. epochs=3 batch_size=512 d_model=128 "
                             "objective=contrastive|mfp|both device=cpu preset=quick (repeatable)")
    parser.add_argument("--label", action="append", default=[], metavar="COL", help="a label column: never a model input (repeatable)")
    parser.add_argument("--exclude", action="append", default=[], metavar="COL", help="a column to leave out of the inputs (repeatable)")
    parser.add_argument("--exclude-outcome", action="store_true", help="keep the outcome family (status_id, status, ...) out of the inputs")
    parser.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR, metavar="DIR", help=f"where run folders go (default {DEFAULT_RUNS_DIR}/)")
    parser.add_argument("--name", metavar="NAME", help="run name (default: the config's name or preset)")
    parser.add_argument("--json", action="store_true", help="print one JSON document at the end")


def run(args: argparse.Namespace) -> int:
    # Imported here so that `python -m engine --help` does not pay for torch and pandas.
    from engine.ingest import load
    from engine.runs import create_run
    from engine.train import prepare_data, train

    load_config(args.config, args.overrides)  # bad settings fail before the data is read
    df, _report = load(args.data)
    if len(df) == 0:
        raise UserError(f"{args.data}: no usable rows to train on")
    schema = build_schema(df, args)
    # A saved schema carries the augmentation settings the analyst previewed: they win over the
    # config file's, and --set wins over both. The run folder's schema then says what was used.
    config = load_config(args.config, args.overrides, augment=schema.augment if args.schema else None)
    schema = schema.with_augment(config.augment)
    data = prepare_data(df, schema, config, source=str(args.data))
    name = args.name or config.name or config.preset
    run_dir = create_run(args.runs_dir, name, config, schema, data.encoder, source=str(args.data), n_rows=data.n_rows)
    progress = _Progress()
    with _StopOnInterrupt() as stop:
        try:
            result = train(config, data, run_dir=run_dir, on_step=progress.update, stop=stop)
        finally:
            progress.close()
    document = {**result.to_json(), "n_rows": data.n_rows, "name": name}
    if args.json:
        emit_json(document)
    else:
        print(summary_line(document))
    return 1 if result.status == "failed" else 0


def load_config(path: str | None, overrides: list[str], *, augment: Any = None) -> Any:
    from engine.config import RunConfig

    config = RunConfig()
    if path is not None:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UserError(f"{path}: cannot read config ({exc.strerror or exc})") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: config is not valid JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise UserError(f"{path}: config must be a JSON object")
        try:
            config = RunConfig.from_json(doc)
        except UserError as exc:
            raise UserError(f"{path}: {exc}") from None
        except TypeError as exc:
            raise UserError(f"{path}: invalid config ({exc})") from None
    if augment is not None:
        config = dataclasses.replace(config, augment=augment)
    return config.with_overrides(parse_overrides(overrides))


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["epochs=3", "preset=quick"]`` -> ``{"epochs": "3", "preset": "quick"}`` (preset applied first by RunConfig)."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set epochs=3")
        pairs[key.strip()] = value.strip()
    return pairs


def build_schema(df: Any, args: argparse.Namespace) -> Any:
    """The saved or inferred schema with --label, --exclude and --exclude-outcome applied."""
    from engine.schema import ColumnType, Schema, infer_schema

    for flag, names in (("--label", args.label), ("--exclude", args.exclude)):
        for name in names:
            if name not in df.columns:
                raise UserError(f"{flag} {name}: no column named {name!r} in {args.data}")
    if args.schema is None:
        schema = infer_schema(df, exclude_outcome=args.exclude_outcome, labels=args.label)
    else:
        schema = Schema.load(args.schema).restricted_to(df.columns)
        for name in args.label:
            schema = _override(schema, name, ColumnType.LABEL, args)
        if args.exclude_outcome:
            schema = schema.with_exclude_outcome(True)
    for name in args.exclude:
        schema = _override(schema, name, ColumnType.IGNORE, args)
    if not (schema.numeric or schema.categorical or schema.timestamp):
        raise UserError(f"{args.schema or args.data}: no model inputs left (every column is a label, ignored or excluded)")
    return schema


def _override(schema: Any, name: str, type: Any, args: argparse.Namespace) -> Any:
    if name not in schema:
        raise UserError(f"{args.schema}: the schema has no column {name!r}")
    return schema.with_column(name, type=type)


def summary_line(doc: dict[str, Any]) -> str:
    best = "-" if doc["best_val_loss"] is None else f"{doc['best_val_loss']:.4f}"
    line = (f"{doc['status']}: {doc['epochs_done']}/{doc['n_epochs']} epochs, best validation loss {best}, "
            f"{doc['records_per_s']:,.0f} records/s on {doc['device']}, {doc['seconds']:.1f} s -> {doc['run_dir']}")
    return line + (f"\nerror: {doc['error']}" if doc.get("error") else "")


class _Progress:
    """A tqdm bar on stderr (shown on a terminal): steps, epoch, loss, records/s."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.epoch_text = ""

    def update(self, record: Any) -> None:
        from tqdm import tqdm

        if record.kind == "start":
            self.bar = tqdm(total=record.n_steps, initial=record.start_step, unit="step", file=sys.stderr,
                            disable=None, dynamic_ncols=True, desc=f"train on {record.device_name}")
        elif record.kind == "step" and self.bar is not None:
            self.bar.update(record.step - self.bar.n)
            self.bar.set_postfix_str(f"epoch {record.epoch} loss {record.loss:.4f} {record.records_per_s:,.0f} rec/s{self.epoch_text}", refresh=False)
        elif record.kind == "epoch" and self.bar is not None:
            val = "-" if record.val_loss is None else f"{record.val_loss:.4f}"
            self.epoch_text = f" | val {val}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _StopOnInterrupt:
    """First Ctrl-C: stop after the batch in flight (checkpoint kept, status "stopped"); second: abort."""

    def __init__(self) -> None:
        import threading

        self.event = threading.Event()
        self.previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        print("\nstopping after this batch (Ctrl-C again to abort)", file=sys.stderr)

    def __enter__(self) -> Any:
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
            self.previous = None
        return self.event

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
