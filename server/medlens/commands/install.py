"""`medlens install`: let the browser start and pair MedLens by itself (no terminal afterwards).

Registers the native messaging host for Chrome/Chromium and Firefox for this user (no root), and
with `--autostart` a systemd user unit that runs `medlens serve` at login. Prints every file it
wrote and how to undo it (`medlens uninstall`). See `medlens.native.install`.
"""

from __future__ import annotations

import argparse
from typing import Any

from medlens.native.install import Folders, install


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "install",
        help="register the native host so the browser extension starts and pairs the server by itself",
        description="Write, for this user only, a launcher for `medlens native-host` and the host manifests "
        "Chrome, Chromium and Firefox read, listing only the MedLens extension. Run it again after moving "
        "or reinstalling MedLens; undo with `medlens uninstall`.",
    )
    add_home_flag(parser)
    parser.add_argument("--autostart", action="store_true",
                        help="also start `medlens serve` at login (a systemd user unit, where systemd runs for you)")
    return parser


def add_home_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", "--prefix", dest="home", metavar="DIR",
                        help="install under DIR as if it were the home folder (default: yours, with XDG_* honoured)")


def run(args: argparse.Namespace) -> int:
    done = install(Folders.of(args.home), autostart=args.autostart, config_dir=args.config_dir)
    print("MedLens native host installed. Files written:")
    for path, mode, purpose in done.files:
        print(f"  {oct(mode)[2:]:>4}  {path}  ({purpose})")
    for note in done.notes:
        print(note)
    print("The extension now starts `medlens serve` when it needs it and pairs with no code. "
          "Restart the browser if it was open. Undo: `medlens uninstall`.")
    return 0
