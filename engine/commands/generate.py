"""``python -m engine generate``: write realistic, labelled OCSF demo events to a file."""
from __future__ import annotations

import argparse

from engine import sample
from engine.cli import emit_json
from engine.errors import UserError

HELP = "generate realistic OCSF demo events with labelled anomalies (.jsonl, .jsonl.gz, .json or .parquet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=sample.DEFAULT_EVENTS, metavar="N",
                        help=f"number of events (default {sample.DEFAULT_EVENTS:,}, at least {sample.MIN_EVENTS})")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed: the same seed writes the same file (default 0)")
    parser.add_argument("--out", required=True, metavar="PATH", help="output file; the extension picks the format")
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of one line of text")


def run(args: argparse.Namespace) -> int:
    if args.events < sample.MIN_EVENTS:
        raise UserError(f"--events must be at least {sample.MIN_EVENTS}, got --events {args.events}")
    result = sample.generate_file(args.out, n_events=args.events, seed=args.seed)
    if args.json:
        emit_json(result.to_dict())
    else:
        print(f"wrote {result.events:,} events ({result.anomalies:,} labelled anomalies) to {result.out} in {result.seconds:.1f} s")
    return 0
