"""``python -m engine augment``: what augmentation does to each field, measured on a sample of rows."""
from __future__ import annotations

import argparse
import logging
from typing import Any

from engine.cli import emit_json
from engine.errors import UserError

HELP = "show, per field, the augmentation policy, whether it is protected, its change rate and mean relative change"

DEFAULT_ROWS = 2_000
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="events file: JSON array, JSONL, CSV or Parquet (optionally .gz)")
    parser.add_argument("--schema", metavar="S.json", help="a saved schema (with its augmentation settings); "
                                                          "default: inferred from the data")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, metavar="N",
                        help=f"rows sampled to measure change rates (default {DEFAULT_ROWS:,})")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed for the row sample and the views (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    # Imported here so that `python -m engine --help` does not pay for torch and pandas.
    from engine.augment import AugmentationPolicy, protected_changes
    from engine.features import FeatureEncoder
    from engine.ingest import load

    if args.rows < 1:
        raise UserError(f"--rows must be at least 1, got --rows {args.rows}")
    df, _report = load(args.data)
    if len(df) == 0:
        raise UserError(f"{args.data}: no usable rows to augment")
    schema = _schema_for(df, args.schema, args.data)
    encoder = FeatureEncoder(schema).fit(df)
    policy = AugmentationPolicy.from_schema(schema, encoder)
    sample = df.sample(n=min(args.rows, len(df)), random_state=args.seed) if args.rows < len(df) else df
    diagnostics = policy.diagnostics(encoder.transform(sample), seed=args.seed)
    document = {
        "rows": len(sample),
        "seed": args.seed,
        "augment": {"noise_level": policy.cfg.noise_level, "swap_prob": policy.cfg.swap_prob,
                    "mask_prob": policy.cfg.mask_prob, "time_jitter_s": policy.cfg.time_jitter_s},
        "fields": [{**d.to_dict(), "reason": policy[d.name].reason} for d in diagnostics],
        "protected_changes": protected_changes(diagnostics),
    }
    if args.json:
        emit_json(document)
    else:
        _print_table(document)
    return 0


def _schema_for(df: Any, schema_path: str | None, data_name: str) -> Any:
    """The saved schema restricted to the data's columns, or one inferred from the data."""
    from engine.schema import Schema, infer_schema

    if schema_path is None:
        return infer_schema(df)
    schema = Schema.load(schema_path)
    absent = [name for name in schema.names if name not in df.columns]
    if absent:
        log.warning("schema %s names %d column(s) that %s lacks, ignored: %s", schema_path, len(absent), data_name, absent[:10])
    schema = schema.restricted_to(df.columns)
    if not any(schema.is_input(c) for c in schema.columns):
        raise UserError(f"{schema_path}: none of the schema's input columns is in {data_name}")
    return schema


def _print_table(document: dict[str, Any]) -> None:
    cfg = document["augment"]
    print(f"augmentation over {document['rows']:,} rows (seed {document['seed']}): noise_level {cfg['noise_level']:g}, "
          f"swap_prob {cfg['swap_prob']:g}, mask_prob {cfg['mask_prob']:g}, time_jitter_s {cfg['time_jitter_s']:g}")
    width = max([len("field")] + [len(f["name"]) for f in document["fields"]])
    print(f"{'field':<{width}}  {'policy':<11}  {'protected':<15}  {'change rate':>11}  {'mean rel change':>15}")
    for field in document["fields"]:
        protected = ("yes, OVERRIDDEN" if field["overridden"] else "yes") if field["protected"] else "no"
        change = field["mean_rel_change"]
        shown = "-" if change is None else (f"{change:.2f} s" if field["type"] == "timestamp" else f"{change:.2%}")
        print(f"{field['name']:<{width}}  {field['policy']:<11}  {protected:<15}  {field['change_rate']:>11.1%}  {shown:>15}")
    print(f"changed cells in protected fields: {document['protected_changes']}")
