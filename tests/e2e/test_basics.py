"""The extension loads in Chromium: service worker seams, context menu, manifest."""

from __future__ import annotations

import json

from fixtures.data import REPO_ROOT


def test_service_worker_seams(sw):
    assert sw.evaluate("[typeof scanTab, typeof classifyImageInTab]") == ["function", "function"]
    assert sw.evaluate("self instanceof ServiceWorkerGlobalScope") is True
    assert sw.evaluate("chrome.runtime.getManifest().name") == "MedLens"
    # the listeners are registered at top level; none on action.onClicked, which never fires while
    # the manifest sets a default_popup (the popup asks for scanTab as it opens)
    assert sw.evaluate("chrome.runtime.getManifest().action.default_popup")
    assert sw.evaluate("[chrome.contextMenus.onClicked.hasListeners(), chrome.runtime.onMessage.hasListeners(),"
                       " chrome.tabs.onUpdated.hasListeners(), chrome.storage.onChanged.hasListeners(),"
                       " chrome.action.onClicked.hasListeners()]") == [True, True, True, True, False]


def test_context_menu_registered(sw):
    # update() rejects for an unknown id: the "Classify image" item exists
    sw.evaluate("chrome.contextMenus.update('medlens-classify-image', {title: 'Classify image'})")


def test_manifest_for_both_browsers():
    m = json.loads((REPO_ROOT / "manifest.json").read_text())
    assert m["manifest_version"] == 3
    assert m["background"]["service_worker"] == "extension/background.js"
    assert m["background"]["scripts"][-1] == "extension/background.js"
    assert m["browser_specific_settings"]["gecko"]["id"]
    assert {"activeTab", "scripting", "contextMenus", "storage"} <= set(m["permissions"])
    assert {"http://127.0.0.1/*", "http://localhost/*"} <= set(m["host_permissions"])
    for path in [m["background"]["service_worker"], *m["background"]["scripts"], m["action"]["default_popup"],
                 m["options_ui"]["page"], *m["icons"].values()]:
        assert (REPO_ROOT / path).is_file(), path


def test_service_worker_restart_keeps_state(context, sw, ext_id, paired, site):
    """The worker may stop at any time: after a forced stop, the listeners and seams are back and the
    settings come from storage, so a context-menu classification still works."""
    from e2e.conftest import open_page, tab_for
    from e2e.pages import XRAY

    sw.evaluate("globalThis.__marker = 42")
    page = open_page(context, site.add_page("restart.html", f"<img id=a src='{site.image(XRAY)}?restart' width=200 height=200>"))
    cdp = context.new_cdp_session(page)
    cdp.send("ServiceWorker.enable")
    cdp.send("ServiceWorker.stopAllWorkers")
    page.wait_for_timeout(300)
    wake = context.new_page()
    wake.goto(f"chrome-extension://{ext_id}/extension/options.html")  # any extension event wakes it
    wake.evaluate("chrome.runtime.sendMessage({type: 'medlens:scan-tab', tabId: -1}).catch(() => null)")
    assert sw.evaluate("globalThis.__marker") is None  # a fresh worker: globals are gone
    assert sw.evaluate("[typeof scanTab, chrome.contextMenus.onClicked.hasListeners()]") == ["function", True]
    src = site.image(XRAY) + "?restart"
    result = sw.evaluate("async ([t, src]) => await classifyImageInTab(t, src)", [tab_for(sw, page.url), src])
    assert result["label"] == "medical", result
    wake.close()
    page.close()
