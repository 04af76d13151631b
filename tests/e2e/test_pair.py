"""Pairing in one step, in real Chromium: `medlens pair` (the real CLI, in its own process, on the
real server's config folder) prints a code; typed in options or in the popup, it pairs the
extension with the running server. Wrong, reused and malformed codes say so."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import expect

from e2e.conftest import DEFAULT_SETTINGS, open_page, set_settings, tab_for, wait_badges
from e2e.pages import CAT, XRAY
from e2e.test_server_state import open_popup


def medlens_pair(config_dir: str | Path) -> str:
    """Run `medlens pair` as a person would and read the code off its output."""
    proc = subprocess.run([sys.executable, "-m", "medlens.cli", "--config-dir", str(config_dir), "pair"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"Pairing code: ([0-9A-Z]{4}-[0-9A-Z]{4})", proc.stdout)
    assert match, proc.stdout
    return match.group(1)


def stored_token(sw) -> str | None:
    return sw.evaluate("chrome.storage.local.get('token')").get("token")


def test_options_pairs_with_a_code_from_medlens_pair(context, sw, ext_id, server, reports_dir):
    seen_before = len(server.requests)  # the session's server also served other tests (Firefox pairs too)
    sw.evaluate("chrome.storage.local.clear()")
    set_settings(sw, serverUrl=server.url)
    opts = context.new_page()
    opts.goto(f"chrome-extension://{ext_id}/extension/options.html")
    expect(opts.locator("#server-url")).to_have_value(server.url)
    # a malformed code costs no try and says what a code looks like
    opts.fill("#pair-code", "12-34")
    opts.click("#pair-button")
    expect(opts.locator("#pair-message")).to_contain_text("8 letters and digits")
    code = medlens_pair(server.settings.config_dir)
    typed = code.lower().replace("-", " ")  # case, spaces and dashes do not matter
    opts.fill("#pair-code", typed)
    opts.press("#pair-code", "Enter")
    expect(opts.locator("#pair-message")).to_have_text("Paired with the MedLens server.")
    expect(opts.locator("#connection")).to_have_attribute("data-state", "ok")
    expect(opts.locator("#server-detail")).to_contain_text("paired")
    assert stored_token(sw) == server.token
    expect(opts.locator("#token")).to_have_value(server.token)  # the fallback field shows it (masked)
    opts.screenshot(path=str(reports_dir / "options-paired-with-code.png"), full_page=True)
    # the same code again, with the token forgotten: the code is used up, nothing is paired
    opts.fill("#token", "")
    opts.fill("#pair-code", code)
    opts.click("#pair-button")
    expect(opts.locator("#pair-message")).to_contain_text("expired or was used up")
    assert stored_token(sw) == ""
    # the origins the server saw for /v1/pair: only the extension's
    origins = {o for m, p, o, _ in server.requests[seen_before:] if p == "/v1/pair"}
    assert origins == {f"chrome-extension://{ext_id}"}, origins
    opts.close()


def test_popup_offers_pairing_and_then_scans(context, sw, ext_id, server, site, reports_dir):
    set_settings(sw, serverUrl=server.url, token="", **DEFAULT_SETTINGS)
    url = site.add_page("pair-popup.html", f"""<!doctype html><body><h1>Pair, then scan</h1>
<img src="{site.image(XRAY)}?pair" width="200" height="200"> <img src="{site.image(CAT)}?pair" width="220" height="146"></body>""")
    page = open_page(context, url)
    tab = tab_for(sw, page.url)
    popup = open_popup(context, ext_id, f"?tabId={tab['id']}")
    expect(popup.locator("#server")).to_have_attribute("data-state", "not_paired")
    expect(popup.locator("#server-command")).to_have_text("medlens pair")
    expect(popup.locator("#pair-form")).to_be_visible()
    expect(popup.locator("#scan")).to_have_attribute("data-status", "server")
    code = medlens_pair(server.settings.config_dir)
    wrong = "0000-0000" if code != "0000-0000" else "1111-1111"
    popup.fill("#pair-code", wrong)
    popup.click("#pair-button")
    expect(popup.locator("#pair-message")).to_contain_text("4 attempts left")
    assert stored_token(sw) == ""
    popup.screenshot(path=str(reports_dir / "popup-pairing-wrong-code.png"))
    popup.fill("#pair-code", code)
    popup.click("#pair-button")
    expect(popup.locator("#pair-message")).to_have_text("Paired with the MedLens server.")
    expect(popup.locator("#server")).to_have_attribute("data-state", "ok")
    expect(popup.locator("#pair-form")).to_be_hidden()
    assert stored_token(sw) == server.token
    # pairing finished what the toolbar click started: the page is scanned
    expect(popup.locator("#scan")).to_have_attribute("data-status", "done", timeout=60_000)
    expect(popup.locator("#scan-status")).to_contain_text("2 images classified")
    popup.screenshot(path=str(reports_dir / "popup-paired-with-code.png"))
    assert sorted(b["label"] for b in wait_badges(page, 2)) == ["medical", "non-medical"]
    popup.close()
    page.close()
