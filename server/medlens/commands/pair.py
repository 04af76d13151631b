"""`medlens pair`: print a short one-time code that pairs the browser extension in one step.

The code replaces copying the 43-character token: the extension's popup or options page asks
for it and the server hands the extension its token in exchange (see `medlens.pairing`
for why that is as safe as the paste, which stays as the fallback: `medlens token`).
"""

from __future__ import annotations

import argparse
from typing import Any

from medlens.commands import load_settings
from medlens.pairing import offer
from medlens.serve.security import load_or_create_token


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "pair",
        help="print a one-time code that pairs the browser extension",
        description="Print a short one-time code to type into the MedLens extension (popup or options). "
        "The running `medlens serve` trades it for the pairing token, once, within a couple of minutes "
        "and a few tries. A new code replaces the previous one.",
    )
    parser.add_argument("--ttl", type=float, default=None, metavar="SECONDS",
                        help="how long the code stays valid (default: the pairing_ttl_s setting, 120)")
    parser.add_argument("--code-only", action="store_true", help="print just the code (for scripts)")
    return parser


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args, pairing_ttl_s=args.ttl)
    load_or_create_token(settings.config_path)  # the server may not have run yet: the token it will hand out
    made = offer(settings.config_path, ttl_s=settings.pairing_ttl_s, attempts=settings.pairing_attempts)
    if args.code_only:
        print(made.display)
        return 0
    minutes, seconds = divmod(round(settings.pairing_ttl_s), 60)
    lifetime = f"{minutes} min {seconds} s" if minutes and seconds else f"{minutes} min" if minutes else f"{seconds} s"
    print(f"Pairing code: {made.display}")
    print(f"Type it in the MedLens extension (toolbar popup or options) within {lifetime}, while `medlens serve` runs.")
    print(f"It works once, with at most {made.attempts} tries. Fallback: paste the output of `medlens token` in options.")
    return 0
