"""``python -m engine COMMAND ...``: the headless face of the engine.

Every command takes ``--json`` for machine-readable output. Exit codes: 0 success, 2 bad input
(one line on stderr naming what was wrong), 130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from typing import Any, Sequence

from engine.errors import UserError

COMMANDS = ("generate", "inspect", "augment", "train", "embed", "evaluate")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default exit code 2 is ours too; keep one line
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m engine", description="OCSF Embedding Studio, headless.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"engine.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"engine.commands.{name}":
                continue  # command not built yet
            raise
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `python -m engine inspect ... | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout (the --json contract)."""
    json.dump(document, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
