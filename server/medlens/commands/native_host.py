"""`medlens native-host`: the native messaging host the browser starts for the extension
(registered by `medlens install`; see `medlens.native.host`). Not meant to be run by hand."""

from __future__ import annotations

import argparse
from typing import Any

from medlens.commands import load_settings
from medlens.native import host


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "native-host",
        help="the browser's native messaging host (started by the browser, not by hand)",
        description="Speak the browsers' native messaging protocol on stdin/stdout: find or start `medlens serve` "
        "and hand the MedLens extension its address and token. Logs go to <cache folder>/logs/native-host.log.",
    )
    parser.add_argument("caller", nargs="*", help="what the browser passes: the caller's origin (Chrome) or the host "
                        "manifest's path and the add-on ID (Firefox)")
    return parser


def run(args: argparse.Namespace) -> int:
    return host.main(load_settings(args), args.caller)
