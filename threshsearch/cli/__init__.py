"""The ``threshsearch`` command: argument parsing and printing only, one module per group of
commands (models, search, results)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from threshsearch.cli import models, results, search
from threshsearch.errors import UserError

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="threshsearch",
        description="Neural architecture search for the ThreshNet family (DenseNet + HarDNet).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (models, search, results):
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UserError as error:
        print(f"threshsearch {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"threshsearch {args.command}: interrupted", file=sys.stderr)
        return 130

