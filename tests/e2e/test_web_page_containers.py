"""The server's page with containers dropped on it, in real headless Chromium: a slide deck, an
archive and a video each become one card per image showing where it sits (archive member, page,
frame and time), the same rows the upload route answers (tests/test_one_path.py checks that
route against classify and batch)."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from e2e.test_web_page import browser, cards, drop_files, open_medlens, page, wait_idle  # noqa: F401  (fixtures)
from fixtures.containers import CHART, XRAY, jpeg, png, pptx, video, zip_of
from medlens.pipeline.pipeline import flatten

pytestmark = pytest.mark.slow


def upload(server, name: str, data: bytes) -> list[dict]:
    """The same file through the upload route with the install token: the rows the grid must show."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(server.url + "/v1/classify/image", data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return flatten(json.load(resp)["results"][0])


def test_dropped_containers_show_members_pages_and_frame_times(page, server, reports_dir):  # noqa: F811
    files = [
        ("deck.pptx", pptx([XRAY, CHART]), "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
        ("bundle.zip", zip_of({"scans/x.jpg": jpeg(XRAY), "../evil.png": png(CHART)}), "application/zip"),
        ("clip.mp4", video([CHART, XRAY]), "video/mp4"),
    ]
    open_medlens(page, server)
    drop_files(page, files)
    expected = [row for name, data, _ in files for row in upload(server, name, data)]
    wait_idle(page, len(expected))
    got = cards(page)
    assert [(c["source"], c["status"]) for c in got] == [(r["source"], r["status"]) for r in expected]
    by_source = {c["source"]: c for c in got}
    assert "ppt/media/image1.jpg" in by_source["upload:deck.pptx#member=ppt/media/image1.jpg"]["text"]
    assert "unsafe_member" in by_source["upload:bundle.zip#member=../evil.png"]["text"]
    frame = next(c for c in got if c["source"].startswith("upload:clip.mp4#frame=7"))
    assert "frame 7" in frame["text"] and " s" in frame["text"] and frame["thumbLoaded"]
    summary = [c for c in got if c["source"] == "upload:clip.mp4"]
    assert len(summary) == 1 and "whole video" in summary[0]["text"] and summary[0]["category"] == "medical"
    assert not page.js_errors, page.js_errors
    page.screenshot(path=str(reports_dir / "web-page-containers.png"), full_page=True)
