"""`medlens` command line: global flags, then one subcommand from `medlens.commands.COMMANDS`.

Global flags (before the command) set Settings for every command; `--set KEY=VALUE` reaches any
setting by name (see `medlens.settings`). Errors with a MedLens code are printed as one line
and exit 1; usage errors exit 2 (argparse's convention).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
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
    module_name = f"medlens.commands.{name.replace('-', '_')}"  # `native-host` lives in native_host.py
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `only`, just that command (imports only its module)."""
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
    for name in [only] if only else COMMANDS:
        module = _command_module(name)
        if module is None:
            continue
        module.add_parser(subparsers)
        subparsers.choices[name].set_defaults(_run=module.run)
    return parser


def _parse(argv: Sequence[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """Parse with only the named command's module imported (the browser starts `medlens
    native-host` for every message: it must not load the model code), else with all of them, so
    help and usage errors are the full parser's."""
    given = list(sys.argv[1:] if argv is None else argv)
    named = next((arg for arg in given if arg in COMMANDS), None)
    if named is not None:
        narrow = build_parser(only=named)
        try:
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                return narrow, narrow.parse_args(given)
        except SystemExit:
            pass
    parser = build_parser()
    return parser, parser.parse_args(given)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser, args = _parse(argv)
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
