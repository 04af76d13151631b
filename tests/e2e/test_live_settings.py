"""Settings reach an open tab at once (no reload, no new request), and badges fit the page: small
marks on small images, none on controls the page draws over its images (Chromium)."""

from __future__ import annotations

import json

from playwright.sync_api import expect

from e2e.conftest import badges, in_extension_world, open_page, scan, set_settings
from e2e.pages import CAT, CHART, CT, CUPS, FUNDUS, HISTOLOGY, PHOTO, XRAY


def test_mode_threshold_mark_and_off_site_reach_an_open_tab(context, sw, paired, site):
    url = site.add_page("live.html", f"""<!doctype html><body><h1>Live settings</h1>
<img id="med" src="{site.image(XRAY)}?live" width="220" height="220"> <img id="non" src="{site.image(CAT)}?live" width="220" height="146"></body>""")
    page = open_page(context, url)
    scan(sw, page)
    med = page.locator(f'medlens-badge[data-medlens-src="{site.image(XRAY)}?live"]')
    non = page.locator(f'medlens-badge[data-medlens-src="{site.image(CAT)}?live"]')
    expect(med).to_have_attribute("data-medlens-label", "medical")
    expect(non).to_have_attribute("data-medlens-text", "Non-medical")  # badge mode marks every image
    q = float(non.get_attribute("data-medlens-probability"))
    asked = (len(paired.urls), paired.uploads)
    filter_of = lambda sel: page.eval_on_selector(sel, "e => getComputedStyle(e).filter")  # noqa: E731

    set_settings(sw, medicalMode="blur")
    expect(med).to_have_attribute("data-medlens-action", "blurred")
    assert "blur" in filter_of("#med")
    expect(non).to_have_attribute("data-medlens-text", "")  # blur mode: only medical images are marked
    # more lenient than the cat's probability (the x-ray is above the strictest threshold, 0.99)
    set_settings(sw, threshold=max(0.01, round(q - 0.02, 2)))
    expect(non).to_have_attribute("data-medlens-label", "medical")
    assert "blur" in filter_of("#non")
    set_settings(sw, threshold=None)  # back to the server's own
    expect(non).to_have_attribute("data-medlens-label", "non-medical")
    assert filter_of("#non") == "none"
    expect(med).to_have_attribute("data-medlens-action", "blurred")
    set_settings(sw, mark="all")
    expect(non).to_have_attribute("data-medlens-text", "Non-medical")
    set_settings(sw, medicalMode="hide")
    expect(med).to_have_attribute("data-medlens-action", "hidden")
    assert page.eval_on_selector("#med", "e => getComputedStyle(e).visibility") == "hidden"
    set_settings(sw, offSites=["127.0.0.1"])  # off here: everything uncovered, no marks
    expect(page.locator("medlens-badge")).to_have_count(0)
    assert page.eval_on_selector("#med", "e => getComputedStyle(e).visibility") == "visible"
    assert (len(paired.urls), paired.uploads) == asked, "re-rendered from the results it had, without asking again"
    set_settings(sw, offSites=[])
    scan(sw, page)
    expect(med).to_have_attribute("data-medlens-action", "hidden")
    page.close()


def test_auto_scan_turned_on_reaches_open_tabs(context, sw, paired, site):
    page = open_page(context, site.add_page("later.html", f"<img id=a src='{site.image(CT)}?later' width=200 height=200>"))
    page.wait_for_timeout(300)
    assert badges(page) == []
    set_settings(sw, autoScan=True, medicalMode="blur")
    try:
        badge = page.locator(f'medlens-badge[data-medlens-src="{site.image(CT)}?later"]')
        expect(badge).to_have_attribute("data-medlens-action", "blurred", timeout=20_000)
    finally:
        set_settings(sw, autoScan=False, medicalMode="badge")
    page.close()


MARKS = """(() => [...document.querySelectorAll('medlens-badge')].map(b => {
    const el = [...document.querySelectorAll('img')].find(i => i.currentSrc === b.getAttribute('data-medlens-src'));
    const m = MedLens.badge.rootOf(b).querySelector('.mark');
    const r = m && m.style.display !== 'none' ? m.getBoundingClientRect().toJSON() : null;
    return {id: el && el.id, form: b.getAttribute('data-medlens-form'), mark: r, box: el.getBoundingClientRect().toJSON()};
}))()"""


def overlaps(a: dict, b: dict) -> bool:
    return min(a["right"], b["right"]) > max(a["left"], b["left"]) and min(a["bottom"], b["bottom"]) > max(a["top"], b["top"])


def test_badges_fit_small_images_and_keep_off_page_controls(context, sw, paired, site, reports_dir):
    icons = "".join(f'<a href="#i{i}"><img id="icon{i}" src="{site.image(rel)}?icon" width="28" height="28" alt=""></a>'
                    for i, rel in enumerate([XRAY, CAT, CHART, FUNDUS, PHOTO, CUPS]))
    thumbs = "".join(f"""<figure class="t"><img id="thumb{i}" src="{site.image(rel)}?thumb" width="148" height="148" alt="">
<button class="show">Show</button><button class="fav">&#9829;</button></figure>""" for i, rel in enumerate([XRAY, CT, CAT, HISTOLOGY]))
    url = site.add_page("fit.html", f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ font: 14px sans-serif; margin: 12px; }} nav {{ display: flex; gap: 4px; }} nav img {{ display: block; }}
.g {{ display: flex; gap: 10px; }} figure {{ margin: 0; position: relative; }} figure img {{ display: block; }}
.show {{ position: absolute; left: 4px; top: 4px; font: 12px sans-serif; }}
.fav {{ position: absolute; right: 4px; top: 4px; font: 12px sans-serif; }}</style></head>
<body><nav>{icons}</nav><h1>Thumbnails</h1><div class="g">{thumbs}</div></body></html>""")
    set_settings(sw, mark="all")
    page = open_page(context, url)
    scan(sw, page)
    page.wait_for_timeout(300)
    marks = {m["id"]: m for m in in_extension_world(page, MARKS)}
    controls = page.evaluate("() => [...document.querySelectorAll('button')].map(b => b.getBoundingClientRect().toJSON())")
    for i in range(6):
        m = marks[f"icon{i}"]
        assert m["form"] == "dot" and m["mark"]["width"] <= 20, m  # a small mark on a 28 px icon
    for i in range(4):
        m = marks[f"thumb{i}"]
        assert m["form"] == "pill", m
        assert not any(overlaps(m["mark"], c) for c in controls), (m, controls)  # not over the page's buttons
    for m in marks.values():
        box, r = m["box"], m["mark"]
        assert box["left"] <= r["left"] and r["right"] <= box["right"] + 0.5 and box["top"] <= r["top"] and r["bottom"] <= box["bottom"] + 0.5, m
    rects = [m["mark"] for m in marks.values()]
    assert not any(overlaps(a, b) for i, a in enumerate(rects) for b in rects[i + 1:]), "marks overlap each other"
    page.screenshot(path=str(reports_dir / "badges-fit.png"))
    # zoom (a layout change): the marks follow their boxes
    page.evaluate("document.body.style.zoom = '1.25'")
    page.wait_for_timeout(300)
    for m in in_extension_world(page, MARKS):
        box, r = m["box"], m["mark"]
        assert box["left"] - 1 <= r["left"] and r["right"] <= box["right"] + 1 and box["top"] - 1 <= r["top"] and r["bottom"] <= box["bottom"] + 1, json.dumps(m)
    page.screenshot(path=str(reports_dir / "badges-fit-zoom.png"))
    set_settings(sw, mark="auto")
    page.close()


def test_options_mark_choice_reaches_the_open_tab(context, sw, ext_id, paired, site):
    page = open_page(context, site.add_page("mark.html", f"<img id=a src='{site.image(CAT)}?mark' width=220 height=146>"))
    scan(sw, page)
    cat = page.locator(f'medlens-badge[data-medlens-src="{site.image(CAT)}?mark"]')
    expect(cat).to_have_attribute("data-medlens-text", "Non-medical")  # auto, badge mode: every image
    opts = context.new_page()
    opts.goto(f"chrome-extension://{ext_id}/extension/options.html")
    expect(opts.locator("input[name=mark][value=auto]")).to_be_checked()
    opts.check("input[name=mark][value=medical]")
    expect(cat).to_have_attribute("data-medlens-text", "")  # only medical images are marked now
    assert sw.evaluate("chrome.storage.local.get('mark')") == {"mark": "medical"}
    opts.check("input[name=mark][value=auto]")
    expect(cat).to_have_attribute("data-medlens-text", "Non-medical")
    opts.close()
    page.close()
