"""`medlens install` / `uninstall`: register the native host with the browsers, for this user only.

What is written (all in the user's own folders, no root; see `planned_files`):

- a launcher script that runs `medlens native-host` with this very Python (mode 0755), so the
  browser starts the same install whether it came from pip, pipx, uv or a checkout;
- one host manifest per browser family, in the per-user folder each reads on Linux (mode 0644),
  naming the launcher and listing exactly the extension's ID: Chrome and Chromium check
  `allowed_origins`, Firefox `allowed_extensions`, before they start the host for anyone;
- with `--autostart`, a systemd user unit that starts `medlens serve` at login (only where systemd
  runs for the user; elsewhere the host starts the server on demand, which needs nothing more);
- a receipt listing the files and folders written, so `uninstall` removes exactly those.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import medlens
from medlens.errors import MedLensError
from medlens.native.extension_ids import CHROME_ORIGIN, FIREFOX_EXTENSION_ID

HOST_NAME = "medlens"  # the name the extension passes to sendNativeMessage
UNIT_NAME = "medlens.service"
RECEIPT = "installed.json"
DESCRIPTION = "MedLens: starts the local MedLens server and pairs the browser extension with it"
# Chromium-family folders under the config home (~/.config) that hold NativeMessagingHosts/.
CHROMIUM_FAMILY = ("chromium", "google-chrome")
FIREFOX_FOLDER = ".mozilla/native-messaging-hosts"  # under HOME, for every Firefox on Linux


@dataclass(frozen=True)
class Folders:
    """The per-user base folders, from HOME and the XDG variables (or all under one given home)."""

    home: Path
    config: Path
    data: Path

    @classmethod
    def of(cls, home: str | Path | None = None, env: Mapping[str, str] | None = None) -> "Folders":
        env = os.environ if env is None else env
        if home is not None:  # --home: everything under it, whatever XDG_* say
            base = Path(home).expanduser().absolute()
            return cls(home=base, config=base / ".config", data=base / ".local" / "share")
        base = Path(env.get("HOME") or Path.home())
        return cls(home=base, config=Path(env.get("XDG_CONFIG_HOME") or base / ".config"),
                   data=Path(env.get("XDG_DATA_HOME") or base / ".local" / "share"))

    @property
    def medlens_data(self) -> Path:
        return self.data / "medlens"

    @property
    def launcher(self) -> Path:
        return self.medlens_data / "native-host"

    @property
    def receipt(self) -> Path:
        return self.medlens_data / RECEIPT

    @property
    def chromium_manifests(self) -> list[Path]:
        return [self.config / name / "NativeMessagingHosts" / f"{HOST_NAME}.json" for name in CHROMIUM_FAMILY]

    @property
    def firefox_manifest(self) -> Path:
        return self.home / FIREFOX_FOLDER / f"{HOST_NAME}.json"

    @property
    def unit(self) -> Path:
        return self.config / "systemd" / "user" / UNIT_NAME


@dataclass
class Written:
    """What one install wrote: files with their purpose, and the folders it had to create."""

    files: list[tuple[Path, int, str]] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def chromium_manifest(launcher: Path) -> dict[str, object]:
    return {"name": HOST_NAME, "description": DESCRIPTION, "path": str(launcher), "type": "stdio",
            "allowed_origins": [f"{CHROME_ORIGIN}/"]}


def firefox_manifest(launcher: Path) -> dict[str, object]:
    return {"name": HOST_NAME, "description": DESCRIPTION, "path": str(launcher), "type": "stdio",
            "allowed_extensions": [FIREFOX_EXTENSION_ID]}


def checkout_path(env: Mapping[str, str] | None = None) -> str | None:
    """The folder holding this medlens when it runs from a checkout through PYTHONPATH (no install):
    the launcher and the unit then set it too, so they run the same code as `medlens install`."""
    env = os.environ if env is None else env
    package_root = str(Path(medlens.__file__).resolve().parent.parent)
    return package_root if package_root in (env.get("PYTHONPATH") or "").split(os.pathsep) else None


def _medlens_command(python: str, config_dir: str | None, command: str) -> str:
    parts = [python, "-m", "medlens.cli"] + (["--config-dir", config_dir] if config_dir else []) + [command]
    return " ".join(shlex.quote(part) for part in parts)


def launcher_script(python: str, config_dir: str | None, env: Mapping[str, str] | None = None) -> str:
    """The launcher: this Python, this medlens, and the browser's arguments."""
    lines = ["#!/bin/sh",
             "# MedLens native messaging host, written by `medlens install`; `medlens uninstall` removes it."]
    if (checkout := checkout_path(env)) is not None:
        lines.append(f"export PYTHONPATH={shlex.quote(checkout)}")
    lines.append(f'exec {_medlens_command(python, config_dir, "native-host")} "$@"')
    return "\n".join(lines) + "\n"


def unit_file(python: str, config_dir: str | None, env: Mapping[str, str] | None = None) -> str:
    checkout = checkout_path(env)
    return "\n".join([
        "# Written by `medlens install --autostart`; `medlens uninstall` removes it.",
        "[Unit]", "Description=MedLens local image classifier for the browser extension", "",
        "[Service]", *([f"Environment=PYTHONPATH={checkout}"] if checkout else []),
        f"ExecStart={_medlens_command(python, config_dir, 'serve')}", "Restart=on-failure", "",
        "[Install]", "WantedBy=default.target", ""])


def systemd_user_running(folders: Folders) -> bool:
    """systemd manages this user's session (a real login on a systemd machine), and the install is
    for this user's real home (never for a --home test folder)."""
    if folders.home != Path.home().absolute() or shutil.which("systemctl") is None:
        return False
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return Path(runtime, "systemd", "private").exists()


def install(folders: Folders, *, autostart: bool, config_dir: str | None = None,
            python: str | None = None) -> Written:
    """Write the launcher and the host manifests (and the unit with `autostart`); replaces an
    earlier install's files, keeping its record of the folders it created."""
    python = python or sys.executable
    earlier = _read_receipt(folders)
    done = Written(created_dirs=[Path(p) for p in earlier.get("created_dirs", [])])
    _write(done, folders.launcher, launcher_script(python, config_dir), 0o755, "launcher: runs `medlens native-host`")
    for path in folders.chromium_manifests:
        _write(done, path, _json(chromium_manifest(folders.launcher)), 0o644,
               f"host manifest for {path.parent.parent.name} (allowed_origins: {CHROME_ORIGIN}/)")
    _write(done, folders.firefox_manifest, _json(firefox_manifest(folders.launcher)), 0o644,
           f"host manifest for Firefox (allowed_extensions: {FIREFOX_EXTENSION_ID})")
    if autostart:
        if systemd_user_running(folders):
            _write(done, folders.unit, unit_file(python, config_dir), 0o644, "systemd user unit: `medlens serve` at login")
            _systemctl("daemon-reload")
            _systemctl("enable", "--now", UNIT_NAME)
            done.notes.append(f"autostart: enabled {UNIT_NAME} (systemctl --user status {UNIT_NAME}); "
                              "`medlens uninstall` disables and removes it")
        else:
            done.notes.append("autostart: systemd does not run for this user here, so no unit was written; "
                              "the browser starts the server on demand through the native host instead")
    receipt = {"files": [str(p) for p, _, _ in done.files] + [str(folders.receipt)],
               "created_dirs": [str(p) for p in done.created_dirs], "autostart": folders.unit.exists() and autostart}
    _write(done, folders.receipt, _json(receipt), 0o644, "receipt: what `medlens uninstall` removes")
    return done


def uninstall(folders: Folders) -> list[Path]:
    """Remove everything an install wrote (from its receipt, else the files an install writes), and
    the folders it created once they are empty. Returns what was removed."""
    receipt = _read_receipt(folders)
    files = [Path(p) for p in receipt.get("files", [])] or planned_files(folders)
    if folders.unit in files and folders.unit.exists() and systemd_user_running(folders):
        _systemctl("disable", "--now", UNIT_NAME)
    removed: list[Path] = []
    for path in files:
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise MedLensError("install_failed", f"cannot remove {path}: {exc.strerror or exc}") from None
    if folders.unit in removed and systemd_user_running(folders):
        _systemctl("daemon-reload")
    for directory in sorted((Path(p) for p in receipt.get("created_dirs", [])), key=lambda p: len(p.parts), reverse=True):
        try:
            directory.rmdir()
            removed.append(directory)
        except OSError:  # not empty (something else lives there now) or already gone
            pass
    return removed


def planned_files(folders: Folders) -> list[Path]:
    """Every file an install may write, for `status` and for an uninstall without a receipt."""
    return [folders.launcher, *folders.chromium_manifests, folders.firefox_manifest, folders.unit, folders.receipt]


def _write(done: Written, path: Path, text: str, mode: int, purpose: str) -> None:
    try:
        _make_dirs(path.parent, done)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, mode)  # exactly this mode, whatever the umask
        os.replace(tmp, path)
    except OSError as exc:
        raise MedLensError("install_failed", f"cannot write {path}: {exc.strerror or exc}") from None
    done.files.append((path, mode, purpose))


def _make_dirs(directory: Path, done: Written) -> None:
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for new in reversed(missing):
        new.mkdir(mode=0o755)
        os.chmod(new, 0o755)
        if new not in done.created_dirs:
            done.created_dirs.append(new)


def _read_receipt(folders: Folders) -> dict[str, object]:
    try:
        data = json.loads(folders.receipt.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _json(data: object) -> str:
    return json.dumps(data, indent=2) + "\n"


def _systemctl(*args: str) -> None:
    try:
        subprocess.run(["systemctl", "--user", *args], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise MedLensError("install_failed", f"`systemctl --user {' '.join(args)}` failed: {exc}") from None
