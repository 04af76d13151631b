"""`medlens` subcommands, one module each. `cli.py` registers the modules named in COMMANDS.

Each module exposes `add_parser(subparsers)` (adding a subparser named like the module) and
`run(args) -> int` (the exit code). Commands build their Settings with `load_settings`, so the
layering (defaults < config file < MEDLENS_* env < global flags < command flags) is the same
everywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medlens.errors import MedLensError
from medlens.settings import Settings

COMMANDS = ["serve", "classify", "token", "pair", "page", "train", "evaluate", "export", "batch",
            "install", "uninstall", "status", "native-host"]


def load_settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Settings for a command: the global flags and `--set KEY=VALUE` pairs, then `overrides`
    (the command's own flags; None means "not given" and leaves the lower layers alone)."""
    values: dict[str, Any] = {}
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise MedLensError("invalid_request", f"--set expects KEY=VALUE, not {item!r}")
        values[key.strip().replace("-", "_")] = value
    for name in ("device", "model_dir", "config_dir"):
        if getattr(args, name, None) is not None:
            values[name] = getattr(args, name)
    values.update({k: v for k, v in overrides.items() if v is not None})
    config_file = Path(values["config_dir"]) / "config.toml" if values.get("config_dir") else None
    return Settings.load(overrides=values, config_file=config_file)
