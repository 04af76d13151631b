"""The extension loads in Chromium: service worker seams, context menu, manifest."""

from __future__ import annotations

import json

from fixtures.data import REPO_ROOT


def test_service_worker_seams(sw):
    assert sw.evaluate("[typeof scanTab, typeof classifyImageInTab]") == ["function", "function"]
    assert sw.evaluate("self instanceof ServiceWorkerGlobalScope") is True
    assert sw.evaluate("chrome.runtime.getManifest().name") == "MedLens"
    # the listeners are registered at top level
    assert sw.evaluate("[chrome.action.onClicked.hasListeners(), chrome.contextMenus.onClicked.hasListeners(),"
                       " chrome.runtime.onMessage.hasListeners(), chrome.tabs.onUpdated.hasListeners()]") == [True] * 4


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
