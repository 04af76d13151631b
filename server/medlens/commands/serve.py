"""`medlens serve`: the local server the browser extension talks to.

Loads the model before binding (a broken model install fails at once, not on the first
request), says where it listens and how to pair the extension, and on Ctrl-C or SIGTERM stops
taking requests, finishes the ones in flight and closes every resource before exiting 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from aiohttp import web

from medlens import __version__
from medlens.commands import load_settings
from medlens.model.classifier import Classifier
from medlens.serve import keys
from medlens.serve.app import init_app, runner_options
from medlens.commands.page import login_url, page_address
from medlens.serve.idle import IdleWatch, watch_idle
from medlens.serve.security import binds_beyond_loopback, token_path
from medlens.settings import Settings

SHUTDOWN_GRACE_S = 10.0  # how long requests in flight may take to finish after Ctrl-C


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "serve",
        help="run the local server for the browser extension",
        description="Serve the MedLens HTTP API (see docs/architecture.md) with the shipped model.",
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; keep it loopback)")
    parser.add_argument("--port", type=int, help="TCP port (default 8377)")
    parser.add_argument("--no-token", dest="token_required", action="store_const", const=False,
                        help="do not require the pairing token (any local program may then use the server)")
    parser.add_argument("--allow-private", action="store_const", const=True,
                        help="let the server fetch loopback/private/link-local addresses (SSRF guard off)")
    parser.add_argument("--device", default=argparse.SUPPRESS, help="auto, cpu or cuda")
    return parser


def run(args: argparse.Namespace) -> int:
    settings = load_settings(
        args, host=args.host, port=args.port, token_required=args.token_required, allow_private=args.allow_private
    )
    classifier = Classifier.from_settings(settings)
    try:
        asyncio.run(serve(settings, classifier))
    except CannotListen as exc:
        print(f"medlens serve: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    return 0


class CannotListen(Exception):
    """Binding the socket failed (port taken, address not ours): only this is blamed on the socket,
    never a failure elsewhere in start-up (writing the token has its own error)."""


async def serve(settings: Settings, classifier: Classifier) -> None:
    """Run until SIGINT/SIGTERM, then shut down cleanly."""
    app = init_app(settings, classifier=classifier)
    idle = watch_idle(app) if settings.idle_shutdown_s > 0 else None
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S,
                           **runner_options(settings))
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            raise CannotListen(exc.strerror or str(exc)) from exc
        port = runner.addresses[0][1] if runner.addresses else settings.port
        runner.app[keys.PIPELINE].pdf_workers.warm_up()  # the first PDF should not pay a process start
        token = runner.app[keys.TOKEN] if settings.token_required else None
        print(banner(settings, classifier, port, token), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if idle is not None:
            idle_stop = asyncio.create_task(_stop_when_idle(idle, settings.idle_shutdown_s, stop))
        await stop.wait()
        if idle is not None:
            idle_stop.cancel()
        print("MedLens: stopping…", flush=True)
    finally:
        await runner.cleanup()
    print("MedLens: stopped.", flush=True)


async def _stop_when_idle(idle: IdleWatch, idle_s: float, stop: asyncio.Event) -> None:
    await idle.wait_until_idle(idle_s)
    print(f"MedLens: no request for {idle_s:g} s (idle_shutdown_s), stopping.", flush=True)
    stop.set()


def banner(settings: Settings, classifier: Classifier, port: int, token: str | None = None) -> str:
    info = classifier.info
    host = settings.host
    url = page_address(host, port)
    lines = [
        f"MedLens {__version__} listening on {url} "
        f"(model {info['backbone']} on {info['device']}, threshold {info['threshold']:.3g})",
    ]
    if token is not None:
        lines.append(f"The page (drop images or PDFs, paste URLs): run `medlens page`, or open {login_url(host, port, token)}")
    else:
        lines.append(f"Open {url}/ in a browser to drop images or PDFs, paste URLs and download the results.")
    if settings.token_required:
        lines.append(
            f"Pair the browser extension: run `medlens pair` and type the code it prints in the extension's "
            f"popup or options (server {url}); or paste the token that `medlens token` prints "
            f"(stored in {token_path(settings.config_path)})."
        )
    else:
        lines.append(f"Token NOT required (--no-token): set the extension's server to {url}; "
                     "any program on this machine can use the server.")
    if binds_beyond_loopback(host):
        lines.append(f"Warning: listening on {host}, beyond loopback: other machines may connect, and every request "
                     f"must then carry the token (and say Host: 127.0.0.1:{port}).")
    if settings.allow_private:
        lines.append("Warning: --allow-private: the server will fetch loopback and private-network addresses.")
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)
