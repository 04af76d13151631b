"""Options page: server address, token pairing with "Test connection", strictness, medical-image
mode, off-sites, auto-scan (off by default, then on: a page is badged on load)."""

from __future__ import annotations

from playwright.sync_api import expect

from e2e.conftest import DEFAULT_SETTINGS, badges, set_settings, wait_badges
from e2e.pages import CAT, XRAY


def stored(sw, *keys):
    return sw.evaluate("keys => chrome.storage.local.get(keys)", list(keys))


def test_pairing_flow_and_preferences(context, sw, ext_id, server, reports_dir):
    sw.evaluate("chrome.storage.local.clear()")
    opts = context.new_page()
    opts.goto(f"chrome-extension://{ext_id}/extension/options.html")
    # defaults
    expect(opts.locator("#server-url")).to_have_value("http://127.0.0.1:8377")
    expect(opts.locator("#auto-scan")).not_to_be_checked()
    expect(opts.locator("input[name=medicalMode][value=badge]")).to_be_checked()
    # a bad address is refused with a message
    opts.fill("#server-url", "ftp://nowhere")
    opts.click("#test")
    expect(opts.locator("#saved")).to_contain_text("not valid")
    # right address, wrong token
    opts.fill("#server-url", server.url.replace("http://", ""))  # scheme added for the user
    opts.fill("#token", "wrong-token")
    opts.click("#test")
    expect(opts.locator("#connection")).to_have_attribute("data-state", "wrong_token")
    expect(opts.locator("#server-command")).to_have_text("medlens pair")
    # no token at all
    opts.fill("#token", "")
    opts.click("#test")
    expect(opts.locator("#connection")).to_have_attribute("data-state", "not_paired")
    # paste the token `medlens token` prints
    opts.fill("#token", server.token)
    opts.click("#test")
    expect(opts.locator("#connection")).to_have_attribute("data-state", "ok")
    expect(opts.locator("#server-title")).to_have_text("Connected")
    expect(opts.locator("#server-detail")).to_contain_text("paired")
    assert stored(sw, "serverUrl", "token") == {"serverUrl": server.url, "token": server.token}
    # preferences apply on change (the threshold slider and the site list: test_site_controls.py)
    slider = opts.locator("#threshold")
    server_mark = int(opts.locator("#server-mark").get_attribute("value"))
    slider.fill(str(server_mark + 32))  # 1% steps above the server's
    slider.dispatch_event("change")
    opts.check("input[name=medicalMode][value=blur]")
    expect(opts.locator("#saved")).to_have_text("Saved.")
    opts.screenshot(path=str(reports_dir / "options.png"), full_page=True)
    got = stored(sw, "threshold", "medicalMode", "autoScan")
    assert abs(got["threshold"] - (server_mark + 32) / 100) < 0.006 and got["medicalMode"] == "blur"
    assert not got.get("autoScan")
    opts.reload()
    expect(opts.locator("#threshold-value")).to_have_text(f"{round(got['threshold'] * 100)}%")
    expect(opts.locator("input[name=medicalMode][value=blur]")).to_be_checked()
    opts.close()


def test_auto_scan_on_load(context, sw, paired, site):
    url = site.add_page("auto.html", f"""<!doctype html><body><h1>Auto</h1>
<img src="{site.image(XRAY)}?auto" width="200" height="200"> <img src="{site.image(CAT)}?auto" width="220" height="146"></body>""")
    page = context.new_page()
    page.goto(url)
    page.wait_for_timeout(800)
    assert badges(page) == []  # off by default
    set_settings(sw, autoScan=True)
    page.goto(url + "?again")
    found = wait_badges(page, 2)
    assert sorted(b["label"] for b in found) == ["medical", "non-medical"], found
    set_settings(sw, **DEFAULT_SETTINGS)
    page.close()
