"""Server not running, too old, not paired, wrong token: a clear state in the popup with the exact
command to run; no scan happens."""

from __future__ import annotations

import http.server
import json
import threading

import pytest
from playwright.sync_api import expect

from e2e.conftest import DEFAULT_SETTINGS, free_port, open_page, set_settings


def open_popup(context, ext_id, query=""):
    popup = context.new_page()
    popup.set_viewport_size({"width": 400, "height": 600})
    popup.goto(f"chrome-extension://{ext_id}/extension/popup.html{query}")
    return popup


def test_server_down_message(context, sw, ext_id, site, reports_dir):
    set_settings(sw, serverUrl=f"http://127.0.0.1:{free_port()}", token="whatever", **DEFAULT_SETTINGS)
    page = open_page(context, site.add_page("down.html", "<h1>down</h1><img src='/data/images/medical/xray/pydicom-data_RG1_J2KI.jpg' width=200>"))
    tab = sw.evaluate("async url => (await chrome.tabs.query({})).find(t => t.url === url)", page.url)
    popup = open_popup(context, ext_id, f"?tabId={tab['id']}")
    expect(popup.locator("#server")).to_have_attribute("data-state", "server_down")
    expect(popup.locator("#server-title")).to_have_text("MedLens server is not running")
    expect(popup.locator("#server-command")).to_have_text("medlens serve --port " + sw.evaluate(
        "chrome.storage.local.get('serverUrl')")["serverUrl"].rsplit(":", 1)[1])
    expect(popup.locator("#scan")).to_have_attribute("data-status", "server")
    popup.screenshot(path=str(reports_dir / "popup-server-down.png"))
    assert page.evaluate("document.querySelectorAll('medlens-badge').length") == 0
    # the default address gives the plain command
    set_settings(sw, serverUrl="http://127.0.0.1:8377")
    popup.reload()
    if popup.locator("#server").get_attribute("data-state") != "ok":  # nothing should listen on 8377 here
        expect(popup.locator("#server-command")).to_have_text("medlens serve")
    popup.close()
    page.close()


class _OldServer(http.server.BaseHTTPRequestHandler):
    """A program on the port that is not MedLens API v1: 404 on /v1/health, or api 0."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.server.api is None:
            body, status = b"not found", 404
        else:
            body, status = json.dumps({"status": "ok", "version": "0.0.1", "api": self.server.api}).encode(), 200
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.parametrize("api", [None, 0])
def test_old_server_message(context, sw, ext_id, api):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OldServer)
    srv.api = api
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        set_settings(sw, serverUrl=f"http://127.0.0.1:{srv.server_address[1]}", token="", **DEFAULT_SETTINGS)
        popup = open_popup(context, ext_id)
        expect(popup.locator("#server")).to_have_attribute("data-state", "old_server")
        expect(popup.locator("#server-title")).to_have_text("MedLens server is too old")
        expect(popup.locator("#server-command")).to_contain_text("medlens serve")
        popup.close()
    finally:
        srv.shutdown()
        srv.server_close()


def test_not_paired_and_wrong_token(context, sw, ext_id, server, reports_dir):
    set_settings(sw, serverUrl=server.url, token="", **DEFAULT_SETTINGS)
    popup = open_popup(context, ext_id)
    expect(popup.locator("#server")).to_have_attribute("data-state", "not_paired")
    expect(popup.locator("#server-title")).to_have_text("Not paired with the server")
    expect(popup.locator("#pair-form")).to_be_visible()  # one-step pairing is offered right there
    expect(popup.locator("#server-command")).to_have_text("medlens pair")
    set_settings(sw, token="not-the-token")
    popup.reload()
    expect(popup.locator("#server")).to_have_attribute("data-state", "wrong_token")
    expect(popup.locator("#server-command")).to_have_text("medlens pair")
    popup.screenshot(path=str(reports_dir / "popup-wrong-token.png"))
    set_settings(sw, token=server.token)
    popup.reload()
    expect(popup.locator("#server")).to_have_attribute("data-state", "ok")
    popup.close()
