"""Daily use with no terminal, in real Chromium and Firefox ESR: `medlens install` into a temporary
HOME, the extension loaded with no token and no server running; a scan starts the server through
the native host, pairs and badges the page; after the server is killed the next scan brings it
back; `medlens uninstall` removes every file and the extension then says how to install it.

Where the browsers look (found by experiment, see test_native_host_folders below): headless
Chromium reads `<user-data-dir>/NativeMessagingHosts/` (not ~/.config/chromium's when another
--user-data-dir is given), so the profile here is HOME/.config/chromium, the default one; Firefox
reads `$HOME/.mozilla/native-messaging-hosts/` whatever its profile folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2e.conftest import CHROMIUM, chromium_args, open_page, scan, wait_badges
from e2e.pages import CAT, XRAY
from e2e.test_firefox import ADDON_UUID, ext_eval, firefox_options, geckodriver
from fixtures.native import NativeHome, alive
from medlens.native.extension_ids import CHROME_EXTENSION_ID, FIREFOX_EXTENSION_ID

pytestmark = pytest.mark.slow


def medlens(home: NativeHome, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "medlens.cli", *args], capture_output=True, text=True,
                          env=home.env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def host_files(home: NativeHome) -> set[str]:
    """The files `medlens install` writes, as it lists them."""
    receipt = json.loads((home.root / ".local/share/medlens/installed.json").read_text())
    return set(receipt["files"])


def page_for(site, name: str) -> tuple[str, dict[str, str]]:
    expected = {site.image(XRAY) + f"?{name}": "medical", site.image(CAT) + f"?{name}": "non-medical"}
    imgs = "".join(f'<img src="{src}" width="200" height="160">' for src in expected)
    return site.add_page(f"{name}.html", f"<!doctype html><body><h1>{name}</h1>{imgs}</body>"), expected


@pytest.fixture
def home(tmp_path: Path):
    h = NativeHome(tmp_path / "home")
    h.env["MEDLENS_ALLOW_PRIVATE"] = "1"  # the test site is on loopback, which the SSRF guard refuses
    h.root.mkdir()
    yield h
    h.kill_server()


def test_chromium_starts_pairs_and_restarts_the_server_through_the_host(pw, ext_dir, site, home, reports_dir):
    out = medlens(home, "install")
    files = host_files(home)
    assert all(Path(f).is_file() for f in files) and str(home.root) in out
    profile = home.root / ".config" / "chromium"  # its NativeMessagingHosts/ is where install wrote
    ctx = pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                args=chromium_args(ext_dir), env=home.env)
    ctx.set_default_timeout(120_000)
    try:
        sw = ctx.service_workers[0] if ctx.service_workers else ctx.wait_for_event("serviceworker")
        assert sw.url.split("/")[2] == CHROME_EXTENSION_ID  # the key-derived ID the host manifest allows
        assert sw.evaluate("chrome.storage.local.get('token')") == {}  # never paired
        url, expected = page_for(site, "native-chromium")
        page = open_page(ctx, url)
        t0 = time.monotonic()
        summary = scan(sw, page)
        first_badge = time.monotonic() - t0
        found = wait_badges(page, len(expected))
        assert summary["status"] == "done", summary
        assert {b["src"]: b["label"] for b in found} == expected
        print(f"\nchromium: cold start (no server) to the page badged through the native host: {first_badge:.1f} s")
        stored = sw.evaluate("chrome.storage.local.get(['serverUrl', 'token'])")
        assert stored == {"serverUrl": f"http://127.0.0.1:{home.port}",
                          "token": (home.config_dir / "token").read_text().strip()}
        first_pid = home.server_pid()
        assert alive(first_pid)

        popup = ctx.new_page()
        popup.goto(f"chrome-extension://{CHROME_EXTENSION_ID}/extension/popup.html?tabId=-1")
        popup.wait_for_selector("#native-status[data-native-state='started']")
        assert "started by MedLens" in popup.text_content("#native-status")
        popup.screenshot(path=str(reports_dir / "native-popup-started.png"))
        popup.close()

        home.kill_server()  # a crash
        page2 = open_page(ctx, page_for(site, "native-chromium-2")[0])
        assert scan(sw, page2)["status"] == "done"
        assert len(wait_badges(page2, 2)) == 2
        assert home.server_pid() != first_pid and alive(home.server_pid())

        before = {str(p) for p in home.root.rglob("*")}
        gone = medlens(home, "uninstall")
        assert not [f for f in files if Path(f).exists()] and all(f in gone for f in files)
        left = {str(p) for p in home.root.rglob("*")}
        # the running browser keeps writing its own profile and cache meanwhile; uninstall added nothing
        browser_own = (str(home.root / ".cache/chromium"), str(home.root / ".config/chromium/"))
        added = {p for p in left - before if not p.startswith(browser_own) or "NativeMessagingHosts" in p}
        assert not added and not [p for p in left if "NativeMessagingHosts" in p or "/.local/share/medlens" in p]
        assert sw.evaluate("MedLens.native.status()")["state"] == "not_installed"
        options = ctx.new_page()
        options.goto(f"chrome-extension://{CHROME_EXTENSION_ID}/extension/options.html")
        options.wait_for_selector("#native-status[data-native-state='not_installed']")
        assert "medlens install" in options.text_content("#native-status")
        options.close()
    finally:
        ctx.close()


def test_firefox_starts_pairs_and_restarts_the_server_through_the_host(ext_dir, site, home):
    from selenium import webdriver
    from selenium.webdriver.firefox.service import Service

    medlens(home, "install")
    files = host_files(home)
    assert str(home.root / ".mozilla/native-messaging-hosts/medlens.json") in files
    drv = webdriver.Firefox(options=firefox_options(FIREFOX_EXTENSION_ID, ADDON_UUID),
                            service=Service(executable_path=geckodriver(), env=home.env))
    drv.set_script_timeout(180)
    try:
        drv.install_addon(str(ext_dir), temporary=True)
        url, expected = page_for(site, "native-firefox")
        drv.get(url)
        page = drv.current_window_handle
        drv.switch_to.new_window("tab")
        drv.get(f"moz-extension://{ADDON_UUID}/extension/options.html")
        scan_js = """const bg = await browser.runtime.getBackgroundPage();
            const tab = (await browser.tabs.query({})).find(t => t.url === args[0]);
            return await bg.scanTab(tab);"""
        t0 = time.monotonic()
        summary = ext_eval(drv, scan_js, url)
        elapsed = time.monotonic() - t0
        assert summary.get("status") == "done", summary
        print(f"\nfirefox: cold start (no server) to the page scanned through the native host: {elapsed:.1f} s")
        assert ext_eval(drv, "return (await browser.storage.local.get('token')).token;") == (
            home.config_dir / "token").read_text().strip()
        drv.refresh()  # the options page reads the state as it opens
        state = ext_eval(drv, "return (await MedLens.native.status()).state;")
        assert state == "started"
        first_pid = home.server_pid()

        home.kill_server()
        assert ext_eval(drv, scan_js, url).get("status") == "done"
        assert home.server_pid() != first_pid and alive(home.server_pid())
        drv.switch_to.window(page)
        found = drv.execute_script("return [...document.querySelectorAll('medlens-badge')].map(b => "
                                   "[b.getAttribute('data-medlens-src'), b.getAttribute('data-medlens-label')])")
        assert dict(found) == expected

        medlens(home, "uninstall")
        assert not [f for f in files if Path(f).exists()]
        assert not (home.root / ".mozilla" / "native-messaging-hosts").exists()
    finally:
        drv.quit()


def test_native_host_folders(pw, ext_dir, home, tmp_path):
    """The experiment behind the profile choice above: with another --user-data-dir, Chromium does
    not read ~/.config/chromium/NativeMessagingHosts, it reads the one inside that folder."""
    medlens(home, "install")
    other = tmp_path / "other-profile"
    ask = "async () => { try { return (await chrome.runtime.sendNativeMessage('medlens', {type: 'status'})).type; } " \
          "catch (e) { return e.message; } }"
    for copy_in in (False, True):
        if copy_in:
            (other / "NativeMessagingHosts").mkdir(parents=True, exist_ok=True)  # Chromium made it, empty
            shutil.copy2(home.root / ".config/chromium/NativeMessagingHosts/medlens.json", other / "NativeMessagingHosts")
        ctx = pw.chromium.launch_persistent_context(str(other), executable_path=CHROMIUM, headless=True,
                                                    args=chromium_args(ext_dir), env=home.env)
        try:
            sw = ctx.service_workers[0] if ctx.service_workers else ctx.wait_for_event("serviceworker")
            got = sw.evaluate(ask)
        finally:
            ctx.close()
        assert got == ("status" if copy_in else "Specified native messaging host not found.")
