"""Every frame: a scan covers the images of a cross-origin iframe (a second loopback site,
127.0.0.2) and of a same-origin one, with each badge drawn in the frame that holds its image;
"Classify image" inside the cross-origin frame badges there; new images in it are watched."""

from __future__ import annotations

import time

from e2e.conftest import dump, open_page, scan, tab_for
from e2e.pages import CAT, CHART, FUNDUS, XRAY

FRAME_BADGES = """() => [...document.querySelectorAll('medlens-badge')].map(b => ({
    label: b.getAttribute('data-medlens-label'), src: b.getAttribute('data-medlens-src'),
    text: b.getAttribute('data-medlens-text')}))"""


def framed_page(site, tag: str) -> tuple[str, dict[str, str]]:
    """A page on 127.0.0.1 embedding a 127.0.0.2 iframe and a same-origin iframe; returns its URL
    and the expected label of each image URL, per origin."""
    img = site.image
    cross = site.other(site.add_page(f"cross-{tag}.html", f"""<!doctype html><html><body style="margin:4px;background:#f3f0e8">
<p style="margin:0 0 4px;font:12px sans-serif">cross-origin iframe (127.0.0.2)</p>
<img id="fundus" src="{site.other(img(FUNDUS))}?{tag}" width="200" height="200" alt="fundus">
<img id="cat" src="{site.other(img(CAT))}?{tag}" width="220" height="146" alt="cat"></body></html>"""))
    same = site.add_page(f"same-{tag}.html", f"""<!doctype html><html><body style="margin:4px">
<img id="chart" src="{img(CHART)}?{tag}" width="240" height="180" alt="chart"></body></html>""")
    url = site.add_page(f"frames-{tag}.html", f"""<!doctype html><html><head><meta charset="utf-8"><title>Frames</title></head>
<body style="font:14px sans-serif;margin:12px"><h1>A page with frames</h1>
<img id="top" src="{img(XRAY)}?{tag}" width="200" height="200" alt="x-ray in the top frame">
<iframe id="cross" src="{cross}" width="470" height="250" style="border:2px solid #777"></iframe>
<iframe id="same" src="{same}" width="260" height="200" style="border:2px solid #777"></iframe>
</body></html>""")
    expected = {
        "top": {f"{img(XRAY)}?{tag}": "medical"},
        "cross": {f"{site.other(img(FUNDUS))}?{tag}": "medical", f"{site.other(img(CAT))}?{tag}": "non-medical"},
        "same": {f"{img(CHART)}?{tag}": "non-medical"},
    }
    return url, expected


def frame_of(page, base: str):
    for _ in range(100):
        for frame in page.frames:
            if frame.url.startswith(base) and frame != page.main_frame:
                return frame
        page.wait_for_timeout(100)
    raise AssertionError(f"no frame from {base}: {[f.url for f in page.frames]}")


def wait_frame_badges(frame, n: int, timeout_s: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = frame.evaluate(FRAME_BADGES)
        if len(got) >= n or time.monotonic() > deadline:
            return got
        frame.page.wait_for_timeout(100)


def test_scan_badges_images_in_every_frame(context, sw, paired, site, reports_dir):
    url, expected = framed_page(site, "scan")
    page = open_page(context, url)
    cross = frame_of(page, site.other_base)
    same = frame_of(page, site.base + "/pages/same-")
    cross.wait_for_load_state("load")
    same.wait_for_load_state("load")
    summary = scan(sw, page)
    assert summary["status"] == "done", dump(summary)
    assert summary["found"] == 4 and summary["frameCount"] == 3, dump(summary)
    assert summary["counts"] == {"medical": 2, "non-medical": 2, "skipped": 0, "error": 0}, dump(summary)
    # each badge lives in the document of the frame that holds its image, and only there
    top_badges = page.evaluate(FRAME_BADGES)
    cross_badges = wait_frame_badges(cross, 2)
    same_badges = wait_frame_badges(same, 1)
    assert {b["src"]: b["label"] for b in top_badges} == expected["top"], dump(top_badges)
    assert {b["src"]: b["label"] for b in cross_badges} == expected["cross"], dump(cross_badges)
    assert {b["src"]: b["label"] for b in same_badges} == expected["same"], dump(same_badges)
    assert all(b["text"] in ("Medical", "Likely medical", "Non-medical", "Likely not medical") for b in cross_badges), dump(cross_badges)
    # the parent could not have drawn them: the cross-origin document is closed to it
    assert page.evaluate("() => { try { return !!document.getElementById('cross').contentDocument } catch (e) { return false } }") is False
    # the server was asked for the 127.0.0.2 images as such
    assert set(expected["cross"]) <= set(paired.urls)
    page.screenshot(path=str(reports_dir / "frames-chromium.png"))
    # an image added to the cross-origin frame later is classified there too (its own observer)
    cross.evaluate(f"""() => {{ const i = document.createElement('img'); i.src = '{site.other(site.image(XRAY))}?late';
        i.width = 120; i.height = 120; document.body.append(i); }}""")
    late = wait_frame_badges(cross, 3)
    assert {b["src"]: b["label"] for b in late}.get(f"{site.other(site.image(XRAY))}?late") == "medical", dump(late)
    # a cross-origin iframe the page adds after the scan is covered too (the page is watched)
    added = site.other(site.add_page("cross-added.html", f"""<!doctype html><body style="margin:4px">
<img src="{site.other(site.image(CAT))}?added" width="220" height="146" alt="cat in a frame added later"></body>"""))
    page.evaluate("""src => { const f = document.createElement('iframe'); f.id = 'added'; f.src = src;
        f.width = 240; f.height = 170; document.body.append(f); }""", added)
    new_frame = frame_of(page, added)
    got = wait_frame_badges(new_frame, 1)
    assert [(b["src"], b["label"]) for b in got] == [(f"{site.other(site.image(CAT))}?added", "non-medical")], dump(got)
    state = sw.evaluate("async id => (await chrome.storage.session.get('tab:' + id))['tab:' + id]", tab_for(sw, page.url)["id"])
    assert state["frameCount"] == 4 and state["found"] == 6, dump(state)
    page.screenshot(path=str(reports_dir / "frames-chromium-added.png"))
    page.close()


def test_classify_image_inside_a_cross_origin_frame(context, sw, paired, site):
    """The context menu gives the frame's id: the badge goes to that frame, nowhere else."""
    url, expected = framed_page(site, "menu")
    page = open_page(context, url)
    cross = frame_of(page, site.other_base)
    cross.wait_for_load_state("load")
    tab = tab_for(sw, page.url)
    frames = sw.evaluate("""async tabId => (await chrome.scripting.executeScript({target: {tabId, allFrames: true},
        func: () => location.href})).map(r => ({frameId: r.frameId, url: r.result}))""", tab["id"])
    frame_id = next(f["frameId"] for f in frames if f["url"].startswith(site.other_base))
    assert frame_id != 0
    src = next(s for s, label in expected["cross"].items() if label == "medical")
    result = sw.evaluate("async ([t, src, fid]) => await classifyImageInTab(t, src, fid)", [tab, src, frame_id])
    assert result["status"] == "ok" and result["label"] == "medical", dump(result)
    got = wait_frame_badges(cross, 1)
    assert [(b["src"], b["label"]) for b in got] == [(src, "medical")], dump(got)
    assert page.evaluate(FRAME_BADGES) == []
    page.close()
