"""`medlens install` / `status` / `uninstall` into a temporary home: what is written, its modes,
exactly the extension's IDs, a launcher the browser can run, and nothing left after uninstall."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.data import REPO_ROOT
from fixtures.native import NativeHome
from medlens.native.extension_ids import CHROME_EXTENSION_ID, FIREFOX_EXTENSION_ID, chrome_extension_id
from medlens.native.install import unit_file

MANIFEST = json.loads((REPO_ROOT / "manifest.json").read_text())


def medlens(home: NativeHome, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medlens.cli", *args], capture_output=True, text=True,
                          env=home.env, timeout=120)


def tree(root: Path) -> set[str]:
    """Everything under root but MedLens's own state, which uninstall keeps on purpose (the token
    in ~/.config/medlens, the logs in ~/.cache/medlens) and the folders holding it."""
    kept = (".cache", ".config/medlens")
    return {rel for p in root.rglob("*") if not (rel := str(p.relative_to(root))).startswith(kept)} - {".config"}


def test_the_ids_are_the_extensions():
    assert chrome_extension_id(MANIFEST["key"]) == CHROME_EXTENSION_ID
    assert MANIFEST["browser_specific_settings"]["gecko"]["id"] == FIREFOX_EXTENSION_ID
    assert "nativeMessaging" in MANIFEST["permissions"]


def test_install_writes_the_host_for_each_browser_and_uninstall_removes_it_all(native_home: NativeHome):
    root = native_home.root
    (root / ".config" / "chromium").mkdir(parents=True)
    (root / ".config" / "chromium" / "Local State").write_text("{}")  # the browser's own files stay
    before = tree(root)

    done = medlens(native_home, "install", "--autostart")
    assert done.returncode == 0, done.stderr
    written = {
        ".local/share/medlens/native-host": 0o755,
        ".config/chromium/NativeMessagingHosts/medlens.json": 0o644,
        ".config/google-chrome/NativeMessagingHosts/medlens.json": 0o644,
        ".mozilla/native-messaging-hosts/medlens.json": 0o644,
        ".local/share/medlens/installed.json": 0o644,
    }
    files = {p for p in tree(root) - before if (root / p).is_file()}
    assert files == set(written)
    for rel, mode in written.items():
        assert stat.S_IMODE((root / rel).stat().st_mode) == mode, rel
        assert rel in done.stdout
    assert "systemd does not run" in done.stdout and "medlens uninstall" in done.stdout  # no unit in a test home

    launcher = root / ".local/share/medlens/native-host"
    for rel in (".config/chromium/NativeMessagingHosts/medlens.json", ".config/google-chrome/NativeMessagingHosts/medlens.json"):
        host = json.loads((root / rel).read_text())
        assert host == {"name": "medlens", "description": host["description"], "path": str(launcher), "type": "stdio",
                        "allowed_origins": [f"chrome-extension://{CHROME_EXTENSION_ID}/"]}
    firefox = json.loads((root / ".mozilla/native-messaging-hosts/medlens.json").read_text())
    assert firefox["allowed_extensions"] == [FIREFOX_EXTENSION_ID] and firefox["path"] == str(launcher)
    assert "allowed_origins" not in firefox

    rc, [reply] = native_home.host({"type": "status"}, command=[str(launcher)])  # what the browser runs
    assert rc == 0 and reply["ok"] and reply["running"] is False

    status = medlens(native_home, "status")
    assert "native host: installed" in status.stdout and "not running" in status.stdout

    gone = medlens(native_home, "uninstall")
    assert gone.returncode == 0, gone.stderr
    assert tree(root) == before
    assert "not installed" in medlens(native_home, "status").stdout
    assert "Nothing to remove" in medlens(native_home, "uninstall").stdout


def test_install_twice_then_uninstall_leaves_nothing(native_home: NativeHome):
    for _ in range(2):
        assert medlens(native_home, "install", "--home", str(native_home.root)).returncode == 0
    assert medlens(native_home, "uninstall", "--prefix", str(native_home.root)).returncode == 0
    assert tree(native_home.root) == set()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_autostart_unit_is_one_systemd_accepts(tmp_path: Path):
    """Where systemd runs for the user, `--autostart` writes this unit; systemd's own checker reads it."""
    unit = tmp_path / "medlens.service"
    unit.write_text(unit_file(sys.executable, str(tmp_path / "my config")))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ExecStart={sys.executable} -m medlens.cli --config-dir '{tmp_path / 'my config'}' serve" in unit.read_text()
