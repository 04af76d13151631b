"""`medlens uninstall`: remove everything `medlens install` wrote (its receipt lists it)."""

from __future__ import annotations

import argparse
from typing import Any

from medlens.commands.install import add_home_flag
from medlens.native.install import Folders, uninstall


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "uninstall",
        help="remove the native host and autostart unit that `medlens install` wrote",
        description="Remove the launcher, the host manifests, the autostart unit and the folders `medlens install` "
        "created (when empty). The token, config and a running server are left alone.",
    )
    add_home_flag(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    removed = uninstall(Folders.of(args.home))
    if not removed:
        print("Nothing to remove: the MedLens native host is not installed here.")
        return 0
    print("Removed:")
    for path in removed:
        print(f"  {path}")
    return 0
