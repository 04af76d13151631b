"""`medlens token`: print the pairing token the browser extension needs (created if absent)."""

from __future__ import annotations

import argparse
from typing import Any

from medlens.commands import load_settings
from medlens.serve.security import load_or_create_token, token_path


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "token",
        help="print the pairing token for the browser extension",
        description="Print this install's token (creating it on first use, file mode 0600). Paste it into "
        "the extension's options to pair it with `medlens serve`.",
    )
    parser.add_argument("--path", action="store_true", help="print where the token file is instead")
    return parser


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    token = load_or_create_token(settings.config_path)
    print(token_path(settings.config_path) if args.path else token)
    return 0
