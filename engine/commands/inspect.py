"""``python -m engine inspect``: the ingest report and the inferred column schema of a data file."""
from __future__ import annotations

import argparse
from typing import Any

from engine.cli import emit_json

HELP = "read a data file and show what was kept or rejected (and why) and the inferred type, role and augmentation of each column"

SHOWN_PROBLEMS = 10  # in the human report; --json lists up to the report's cap
SHOWN_NOTES = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="events file: JSON array, JSONL/NDJSON, CSV or Parquet (optionally .gz)")
    parser.add_argument("--exclude-outcome", action="store_true",
                        help="keep the outcome family (status_id, status, http_response.code ...) out of the model inputs")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    # Imported here so that `python -m engine --help` stays quick.
    from engine.ingest import load
    from engine.schema import infer_schema

    frame, report = load(args.data)
    schema = infer_schema(frame, exclude_outcome=args.exclude_outcome)
    document = build_document(report.to_dict(), schema, n_columns=frame.shape[1])
    if args.json:
        emit_json(document)
    else:
        print_report(document)
    return 0


def build_document(report: dict[str, Any], schema: Any, *, n_columns: int) -> dict[str, Any]:
    columns = [
        {
            "name": spec.name,
            "type": spec.type.value,
            "role": spec.role.value,
            "augment": spec.policy.value,
            "reason": spec.reason,
            "input": schema.is_input(spec),
            "protected": spec.protected,
            "outcome_family": spec.outcome_family,
            "missing_share": round(spec.missing_share, 4),
            "cardinality": spec.cardinality,
        }
        for spec in schema.columns
    ]
    return {**report, "n_columns": n_columns, "exclude_outcome": schema.exclude_outcome, "columns": columns}


def print_report(doc: dict[str, Any]) -> None:
    packed = " (gzip)" if doc["compressed"] else ""
    print(f"{doc['source']} ({doc['format']}{packed}): {doc['rows_read']:,} rows read, {doc['rows_kept']:,} kept, "
          f"{doc['rows_rejected']:,} rejected, {doc['n_columns']} columns, {doc['seconds']:.2f} s")
    _print_list("problems", [f"line {p['line']}: {p['reason']}" if p["line"] is not None else p["reason"] for p in doc["problems"]],
                total=doc["rows_rejected"], limit=SHOWN_PROBLEMS)
    _print_list("coercions", doc["coercions"], total=len(doc["coercions"]), limit=SHOWN_NOTES)
    _print_list("renamed", doc["renamed"], total=len(doc["renamed"]), limit=SHOWN_NOTES)
    columns = doc["columns"]
    if doc["exclude_outcome"]:
        print("outcome family excluded from the model inputs (still used to colour and score)")
    print(f"columns ({len(columns)}):")
    width = max([len("name")] + [len(c["name"]) for c in columns])
    print(f"  {'name':<{width}}  {'type':<11}  {'role':<14}  {'augment':<11}  reason")
    for column in columns:
        print(f"  {column['name']:<{width}}  {column['type']:<11}  {column['role']:<14}  {column['augment']:<11}  {column['reason']}")


def _print_list(title: str, lines: list[str], *, total: int, limit: int) -> None:
    if not lines:
        return
    shown = lines[:limit]
    more = f", first {len(shown)}" if total > len(shown) else ""
    print(f"{title} ({total:,}{more}):")
    for line in shown:
        print(f"  {line}")
