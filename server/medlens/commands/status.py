"""`medlens status`: is the native host installed, does a server run, and who started it."""

from __future__ import annotations

import argparse
from typing import Any

from medlens.commands import load_settings
from medlens.commands.install import add_home_flag
from medlens.native import server_process
from medlens.native.install import Folders, planned_files
from medlens.serve.security import read_token


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "status", help="show whether the native host is installed and the server runs",
        description="Show the files `medlens install` writes (present or not), and whether a MedLens server "
        "answers on the configured port and who started it.",
    )
    add_home_flag(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    folders = Folders.of(args.home)
    files = planned_files(folders)
    present = [p for p in files if p.exists()]
    installed = folders.launcher in present
    print(f"native host: {'installed' if installed else 'not installed (run `medlens install`)'}")
    for path in files:
        print(f"  {'present' if path in present else 'absent '}  {path}")
    state = server_process.probe(settings, read_token(settings.config_path) or "")
    url = server_process.server_url(settings)
    if state == "ours":
        pid = server_process.host_started_pid(settings)
        who = (f"started by MedLens (native host, pid {pid}; stops after {settings.native_idle_shutdown_s:g} s idle)"
               if pid else "started by you or a service")
        print(f"server: running at {url}, {who}")
    elif state == "foreign":
        print(f"server: port {settings.port} is taken by another program (not this user's MedLens)")
    else:
        print(f"server: not running at {url}" + (" (the browser starts it on the next scan)" if installed else ""))
    return 0
