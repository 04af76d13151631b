"""`medlens` command line: global flags, then one subcommand from `medlens.commands.COMMANDS`.

Global flags (before the command) set Settings for every command; `--set KEY=VALUE` reaches any
setting by name (see `medlens.settings`). Errors with a MedLens code are printed as one line
and exit 1; usage errors exit 2 (argparse's convention).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType
from typing import Sequence

from medlens import __version__
from medlens.commands import COMMANDS
from medlens.errors import MedLensError
from medlens.terminal_text import printable

log = logging.getLogger("medlens")


def _command_module(name: str) -> ModuleType | None:
    """The module of command `name`; None only when that module itself does not exist (a command
    still being written), never when something it imports is missing."""
    module_name = f"medlens.commands.{name}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medlens",
        description="Tell medical images from non-medical ones: files, folders, PDFs, URLs and web pages.",
    )
    parser.add_argument("--version", action="version", version=f"medlens {__version__}")
    parser.add_argument("--device", help="where the model runs: auto (CUDA when available), cpu or cuda")
    parser.add_argument("--model-dir", help="folder with a trained head and model card (default: the shipped model)")
    parser.add_argument("--config-dir", help="folder for the token and config.toml (default: per-user)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any setting by name, e.g. --set max_batch=32 (repeatable)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = _command_module(name)
        if module is None:
            continue
        module.add_parser(subparsers)
        subparsers.choices[name].set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage error, --help, --version: an exit code, also when called in-process
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        return int(args._run(args) or 0)
    except MedLensError as exc:
        print(f"medlens {args.command}: {exc.code}: {printable(exc.message)}", file=sys.stderr)
        return 2 if exc.code == "invalid_request" else 1
    except KeyboardInterrupt:
        print(f"medlens {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
