"""The installable packages: `npm run build` writes dist/medlens-<version>-chrome.zip and
-firefox.xpi holding only manifest.json and extension/. The Chrome package, unzipped, loads in
Chromium; the .xpi installs in Firefox ESR as a PERMANENT add-on (unsigned: ESR honours
xpinstall.signatures.required=false), pairs with a `medlens pair` code and scans a page with a
cross-origin iframe. Each against the real server and model."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from e2e.conftest import CHROMIUM, chromium_args, dump, open_page, tab_for
from e2e.test_firefox import ext_eval, firefox_options, geckodriver
from e2e.test_frames import FRAME_BADGES, frame_of, framed_page, wait_frame_badges
from e2e.test_pair import medlens_pair
from fixtures.data import REPO_ROOT

MANIFEST = json.loads((REPO_ROOT / "manifest.json").read_text())
VERSION = MANIFEST["version"]
GECKO_ID = MANIFEST["browser_specific_settings"]["gecko"]["id"]
ADDON_UUID = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"  # pinned moz-extension:// host of the installed add-on


def shipped_files() -> set[str]:
    """What a package must hold: the manifest and every file of extension/ (no editor litter)."""
    files = {"manifest.json"}
    for path in (REPO_ROOT / "extension").rglob("*"):
        rel = path.relative_to(REPO_ROOT)
        if path.is_file() and not any(part.startswith(".") or part.endswith("~") for part in rel.parts):
            files.add(rel.as_posix())
    return files


@pytest.fixture(scope="module")
def packages() -> dict[str, Path]:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: run scripts/setup-e2e.sh")
    proc = subprocess.run([npm, "run", "build"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dist = REPO_ROOT / "dist"
    out = {"chrome": dist / f"medlens-{VERSION}-chrome.zip", "firefox": dist / f"medlens-{VERSION}-firefox.xpi"}
    for path in out.values():
        assert path.is_file() and str(path) in proc.stdout, proc.stdout
    return out


@pytest.mark.parametrize("browser", ["chrome", "firefox"])
def test_packages_hold_only_the_extension(packages, browser):
    with zipfile.ZipFile(packages[browser]) as zf:
        names = {n for n in zf.namelist() if not n.endswith("/")}
        assert names == shipped_files(), sorted(names ^ shipped_files())
        assert json.loads(zf.read("manifest.json")) == MANIFEST
        for name in names - {"manifest.json"}:
            assert zf.read(name) == (REPO_ROOT / name).read_bytes(), name
        assert zf.testzip() is None


def test_chrome_package_loads_in_chromium_and_scans(pw, packages, server, site, tmp_path, reports_dir):
    unpacked = tmp_path / "medlens-chrome"
    with zipfile.ZipFile(packages["chrome"]) as zf:
        zf.extractall(unpacked)
    profile = tempfile.mkdtemp(prefix="medlens-pkg-chromium-")
    ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                args=chromium_args(unpacked), viewport={"width": 1100, "height": 700})
    try:
        ctx.set_default_timeout(20_000)
        sw = next((w for w in ctx.service_workers if w.url.startswith("chrome-extension://")), None) or ctx.wait_for_event(
            "serviceworker", predicate=lambda w: w.url.startswith("chrome-extension://"), timeout=20_000)
        assert sw.evaluate("chrome.runtime.getManifest().version") == VERSION
        sw.evaluate("v => chrome.storage.local.set(v)", {"serverUrl": server.url, "token": server.token})
        url, expected = framed_page(site, "pkg-chrome")
        page = open_page(ctx, url)
        cross = frame_of(page, site.other_base)
        cross.wait_for_load_state("load")
        summary = sw.evaluate("async t => await scanTab(t)", tab_for(sw, page.url))
        assert summary["status"] == "done" and summary["found"] == 4, dump(summary)
        assert {b["src"]: b["label"] for b in page.evaluate(FRAME_BADGES)} == expected["top"]
        assert {b["src"]: b["label"] for b in wait_frame_badges(cross, 2)} == expected["cross"]
        page.screenshot(path=str(reports_dir / "package-chromium.png"))
    finally:
        ctx.close()
        shutil.rmtree(profile, ignore_errors=True)


CHROME_ADDON = """const [id, done] = arguments;
const { AddonManager } = ChromeUtils.importESModule("resource://gre/modules/AddonManager.sys.mjs");
AddonManager.getAddonByID(id).then(a => done(a && {temporary: a.temporarilyInstalled, active: a.isActive,
    version: a.version, signedState: a.signedState, location: a.location && a.location.name}), e => done({error: String(e)}));"""


def test_firefox_package_installs_permanently_pairs_and_scans(packages, server, site, reports_dir):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.firefox.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    opts = firefox_options(GECKO_ID, ADDON_UUID)
    opts.set_preference("xpinstall.signatures.required", False)  # ESR allows unsigned add-ons with this
    drv = webdriver.Firefox(options=opts, service=Service(executable_path=geckodriver()))
    try:
        drv.set_window_size(1100, 700)
        drv.set_script_timeout(90)
        assert drv.install_addon(str(packages["firefox"]), temporary=False) == GECKO_ID
        with drv.context(drv.CONTEXT_CHROME):
            addon = drv.execute_async_script(CHROME_ADDON, GECKO_ID)
        # installed for good (not a temporary add-on), active, unsigned
        assert addon["temporary"] is False and addon["active"] is True and addon["version"] == VERSION, addon
        assert addon["location"] != "app-temporary", addon
        # pair in options with a code from `medlens pair` (the request carries moz-extension://)
        drv.get(f"moz-extension://{ADDON_UUID}/extension/options.html")
        ext_eval(drv, "await browser.storage.local.set({serverUrl: args[0], token: ''}); return true;", server.url)
        drv.refresh()
        WebDriverWait(drv, 20).until(lambda d: d.find_element(By.ID, "server-url").get_attribute("value") == server.url)
        code = medlens_pair(server.settings.config_dir)
        drv.find_element(By.ID, "pair-code").send_keys(code)
        drv.find_element(By.ID, "pair-button").click()
        WebDriverWait(drv, 30).until(lambda d: d.find_element(By.ID, "connection").get_attribute("data-state") == "ok")
        assert drv.find_element(By.ID, "pair-message").text == "Paired with the MedLens server."
        assert ext_eval(drv, "return (await browser.storage.local.get('token')).token;") == server.token
        assert f"moz-extension://{ADDON_UUID}" in {o for m, p, o, _ in server.requests if p == "/v1/pair"}
        drv.save_screenshot(str(reports_dir / "package-firefox-options.png"))
        # scan a page with a cross-origin iframe
        url, expected = framed_page(site, "pkg-firefox")
        options_handle = drv.current_window_handle
        drv.switch_to.new_window("tab")
        drv.get(url)
        page_handle = drv.current_window_handle
        drv.switch_to.window(options_handle)
        t0 = time.monotonic()
        summary = ext_eval(drv, """const bg = await browser.runtime.getBackgroundPage();
            const tab = (await browser.tabs.query({})).find(t => t.url === args[0]);
            return await bg.scanTab(tab);""", url)
        assert summary.get("status") == "done" and summary.get("found") == 4, summary
        drv.switch_to.window(page_handle)
        top = {b["src"]: b["label"] for b in drv.execute_script(f"return ({FRAME_BADGES})()")}
        assert top == expected["top"], top
        drv.switch_to.frame(drv.find_element(By.ID, "cross"))
        deadline = time.monotonic() + 30
        while True:
            inner = {b["src"]: b["label"] for b in drv.execute_script(f"return ({FRAME_BADGES})()")}
            if len(inner) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert inner == expected["cross"], inner
        drv.switch_to.default_content()
        drv.save_screenshot(str(reports_dir / "package-firefox.png"))
        print(f"\nfirefox (installed .xpi) scan with frames: {time.monotonic() - t0:.2f}s {summary}")
    finally:
        drv.quit()
