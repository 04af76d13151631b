"""`medlens page`: open the server's own page in the browser, logged in.

The page needs proof of the token before it gets a session (see `medlens.serve.webpage`). Its
address carries the token (`http://127.0.0.1:<port>/?token=…`), and a command line is readable
by every user of this computer (`/proc/<pid>/cmdline`), so the address is not handed to the
browser as an argument: it goes into a 0600 file in the private config folder, beside the token,
and the browser is given that file's name; the file sends it on to the page. Jupyter opens its
notebooks the same way.
"""

from __future__ import annotations

import argparse
import html
import os
import secrets
import webbrowser
from pathlib import Path
from typing import Any

from medlens.commands import load_settings
from medlens.serve.security import load_or_create_token

OPENER_FILE = "page-open.html"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "page",
        help="open the server's own page in the browser, logged in",
        description="Open the page of the running `medlens serve` (drop images and PDFs, paste URLs) in the "
        "default browser with a session, without putting the token on any command line.",
    )
    parser.add_argument("--port", type=int, help="the server's port (default: the port setting, 8377)")
    parser.add_argument("--print-url", action="store_true",
                        help="print the page's address with the token instead of opening a browser (keep it private)")
    return parser


def page_address(host: str, port: int) -> str:
    """Where a browser on this computer reaches a server listening on `host`."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else "[::1]" if host == "::" else host
    return f"http://{shown}:{port}"


def login_url(host: str, port: int, token: str) -> str:
    """The page's address with the token: the only way for a browser to get the page's session."""
    return f"{page_address(host, port)}/?token={token}"


def write_opener(config_dir: Path, url: str) -> Path:
    """A 0600 HTML file in the config folder that sends the browser on to `url` (written whole
    under a temporary name, then renamed, so a browser never reads half of it)."""
    config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = config_dir / OPENER_FILE
    tmp = config_dir / f".{OPENER_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    escaped = html.escape(url, quote=True)
    text = (
        '<!doctype html><meta charset="utf-8"><meta name="referrer" content="no-referrer">'
        f'<meta http-equiv="refresh" content="0;url={escaped}"><title>Opening MedLens…</title>'
        f'<p>Opening the MedLens page… If nothing happens, <a href="{escaped}">open it here</a>.</p>\n'
    )
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args, port=args.port)
    token = load_or_create_token(settings.config_path)
    url = login_url(settings.host, settings.port, token)
    if args.print_url:
        print(url)
        return 0
    opener = write_opener(settings.config_path, url)
    if webbrowser.open(opener.as_uri()):
        print(f"Opened the MedLens page ({page_address(settings.host, settings.port)}/) in your browser.")
        return 0
    print(f"No browser could be started here. Open {opener} in your browser (it holds the token: keep it private), "
          "or run `medlens page --print-url`.")
    return 1
