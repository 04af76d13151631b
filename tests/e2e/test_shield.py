"""Shield mode in Chromium: with blur (or hide) and auto-scan on, nothing medical is seen before
it is classified. Screenshots from navigation on (every few tens of ms) of a page whose load event
a slow third-party script holds back; "seen" is decided from the pixels (e2e/exposure.py)."""

from __future__ import annotations

import io
import statistics

from PIL import Image
from playwright.sync_api import expect

from e2e.conftest import MedLensServer, badges, free_port, in_extension_world, set_settings
from e2e.exposure import EXPOSED, exposed_ms, first_exposed
from e2e.shield_page import MEDICAL, NON_MEDICAL, add_shield_page, load_and_sample, wait_shield


def check_no_flash(frames, series, probe, label: str) -> dict[str, float | None]:
    """No medical pixels in any drawn frame (screencast) nor in any animation frame (the page's
    probe); the detector is checked both ways on the last frame."""
    assert len(frames) >= 3, (label, len(frames))
    assert probe["frames"] >= 10 and statistics.median(probe["gaps"]) <= 50, (label, probe["frames"], statistics.median(probe["gaps"]))
    assert probe["bad"] == [], (label, probe["bad"][:10])
    for name in MEDICAL:
        assert exposed_ms(series[name]) == 0, (label, name, [s for s in series[name] if s[1] > EXPOSED][:5])
    uncovered = {name: first_exposed(series[name]) for name in NON_MEDICAL}
    for name in NON_MEDICAL:
        assert series[name][-1][1] > EXPOSED, (label, name, series[name][-3:])
    for name in MEDICAL:
        assert series[name][-1][1] < EXPOSED, (label, name, series[name][-3:])
    print(f"\n{label}: {len(frames)} drawn frames, {probe['frames']} animation frames checked (gap median "
          f"{statistics.median(probe['gaps']):.0f} ms, max {max(probe['gaps']):.0f} ms); medical exposed 0 ms; "
          "non-medical uncovered at " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in uncovered.items()))
    return uncovered


def test_no_medical_pixels_before_classification_cold_and_warm(context, sw, classifier, site, tmp_path, reports_dir):
    # cold: a server that has seen none of these images (empty result cache), first page after start
    cold = MedLensServer(classifier, tmp_path / "cold-config").start()
    try:
        set_settings(sw, serverUrl=cold.url, token=cold.token, threshold=None, offSites=[], mark="auto",
                     autoScan=True, medicalMode="blur")
        wait_shield(sw, "shield-blur.css")
        for run in ("cold", "warm"):
            page, frames, series, _, probe = load_and_sample(context, add_shield_page(site, f"{run}-{id(cold)}"), 20)
            uncovered = check_no_flash(frames, series, probe, f"blur, {run} server")
            # classified as soon as the addresses were known: uncovered while the page was still parsing
            first_clear = {k: next(x for x in probe["states"] if x[0] == k and x[1] == "clear") for k in NON_MEDICAL}
            assert all(x[3] == "loading" for x in first_clear.values()), first_clear
            marks = {b["src"].split("/")[-1].split("?")[0]: b for b in badges(page)}
            assert all(b["action"] == "blurred" for b in marks.values() if b["label"] == "medical"), marks
            assert sum(b["label"] == "medical" for b in marks.values()) == len(MEDICAL), marks
            page.screenshot(path=str(reports_dir / f"shield-blur-{run}.png"))
            page.close()
        set_settings(sw, medicalMode="hide")
        wait_shield(sw, "shield-hide.css")
        page, frames, series, _, probe = load_and_sample(context, add_shield_page(site, f"hide-{id(cold)}"), 20)
        check_no_flash(frames, series, probe, "hide, warm server")
        page.screenshot(path=str(reports_dir / "shield-hide.png"))
        page.close()
    finally:
        set_settings(sw, autoScan=False, medicalMode="badge")
        cold.stop()


def test_server_down_keeps_images_covered_with_a_notice(context, sw, site, reports_dir):
    set_settings(sw, serverUrl=f"http://127.0.0.1:{free_port()}", token="x", threshold=None, offSites=[], mark="auto",
                 autoScan=True, medicalMode="blur")
    try:
        wait_shield(sw, "shield-blur.css")
        page, frames, series, targets, probe = load_and_sample(context, add_shield_page(site, "down"), 2.0)
        assert probe["bad"] == [], probe["bad"][:10]
        for name, s in series.items():
            assert exposed_ms(s) == 0, (name, [x for x in s if x[1] > EXPOSED][:5])
        notice = page.locator("medlens-notice")
        notice.wait_for(state="attached")
        text = notice.get_attribute("data-medlens-text")
        assert "medlens serve" in text and "covered" in text, text
        marks = badges(page)
        assert len(marks) == len(MEDICAL) + len(NON_MEDICAL), marks
        assert all(b["action"] == "blurred" and b["text"] == "Not checked" for b in marks), marks
        why = in_extension_world(page, """[...document.querySelectorAll('medlens-badge')].map(b =>
            MedLens.badge.rootOf(b).querySelector('.mark').getAttribute('aria-label'))""")
        assert all("server not running" in w for w in why), why
        assert not any("Failed to fetch" in (b["text"] or "") or "127.0.0.1" in (b["text"] or "") for b in marks)
        page.screenshot(path=str(reports_dir / "shield-server-down.png"))
        # one click shows one image anyway
        cat = next(t for t in targets if t.name == "n-cat")
        src = page.eval_on_selector("#n-cat", "e => e.currentSrc")
        xy = in_extension_world(page, """(src => { const b = [...document.querySelectorAll('medlens-badge')]
            .find(b => b.getAttribute('data-medlens-src') === src);
            const r = MedLens.badge.rootOf(b).querySelector('button').getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2]; })(%r)""" % src)
        page.mouse.click(*xy)
        page.wait_for_timeout(300)
        shot = Image.open(io.BytesIO(page.screenshot(type="png"))).convert("RGB")
        assert cat.score(shot) > EXPOSED
        assert all(t.score(shot) < EXPOSED for t in targets if t.name != "n-cat")
        page.close()
    finally:
        set_settings(sw, autoScan=False, medicalMode="badge")


def test_every_kind_of_image_is_covered_from_the_first_frame(context, sw, paired, site, reports_dir):
    """picture/source, lazy data-src, a stylesheet background, an svg <image> and an image inside a
    cross-origin iframe: none of these medical pictures is ever on screen uncovered."""
    import time

    from e2e.exposure import Target, exposures, sample_chromium
    from e2e.pages import CT, FUNDUS, GIF_1PX, HISTOLOGY, MRI, XRAY
    from fixtures.data import image

    img = site.image
    frame = site.other(site.add_page("kinds-frame.html", f"""<!doctype html><body style="margin:0">
<img id="f-med" src="{site.other(img(HISTOLOGY))}?kinds" width="200" height="150"></body>"""))
    url = site.add_page("kinds.html", f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin: 8px; }} .g {{ display: flex; flex-wrap: wrap; gap: 8px; }} .g > * {{ display: block; }}
.bg {{ width: 200px; height: 150px; background: url('{img(FUNDUS)}?kinds') 0 0 / 100% 100% no-repeat; }}</style></head>
<body><div class="g">
<picture><source srcset="{img(CT)}?kinds" type="image/jpeg"><img id="k-picture" src="{GIF_1PX}" width="200" height="150"></picture>
<img id="k-lazy" src="{GIF_1PX}" data-src="{img(MRI)}?kinds" width="200" height="150">
<div id="k-bg" class="bg"></div>
<svg id="k-svg" width="200" height="150"><image href="{img(XRAY)}?kinds" width="200" height="150" preserveAspectRatio="none"/></svg>
<iframe id="k-frame" src="{frame}" width="200" height="150" style="border:0"></iframe>
</div><script>setTimeout(() => {{ const i = document.getElementById('k-lazy'); i.src = i.dataset.src; }}, 400);</script>
<script src="{site.other_base}/slow/2500.js"></script></body></html>""")
    set_settings(sw, autoScan=True, medicalMode="blur")
    try:
        wait_shield(sw, "shield-blur.css")
        page = context.new_page()
        page.set_viewport_size({"width": 900, "height": 400})
        page.goto("about:blank")
        t0 = time.time()
        cast = sample_chromium(page, 4.5, t0)
        page.goto(url, wait_until="commit")
        frames = cast.collect(page)
        rects = page.evaluate("""() => Object.fromEntries(['k-picture', 'k-lazy', 'k-bg', 'k-svg', 'k-frame']
            .map(id => [id, document.getElementById(id).getBoundingClientRect().toJSON()]))""")
        sources = {"k-picture": CT, "k-lazy": MRI, "k-bg": FUNDUS, "k-svg": XRAY, "k-frame": HISTOLOGY}
        targets = [Target.of(k, True, image(rel), rects[k]) for k, rel in sources.items()]
        series = exposures(frames, targets)
        for name, s in series.items():
            assert exposed_ms(s) == 0, (name, [x for x in s if x[1] > EXPOSED][:5])
        inner = page.frame_locator("#k-frame").locator("medlens-badge")
        expect(inner).to_have_attribute("data-medlens-label", "medical", timeout=20_000)
        found = {b["src"].split("/")[-1].split("?")[0]: b for b in badges(page)}
        for rel in (CT, MRI, FUNDUS, XRAY):
            b = found[rel.split("/")[-1]]
            assert b["label"] == "medical" and b["action"] == "blurred", b
        # the detector sees these pictures once shown: every one is found uncovered after "show all"
        page.screenshot(path=str(reports_dir / "shield-kinds.png"))
        set_settings(sw, autoScan=False, medicalMode="badge")
        page.wait_for_timeout(500)
        shot = Image.open(io.BytesIO(page.screenshot(type="png", path=str(reports_dir / "shield-kinds-shown.png")))).convert("RGB")
        assert all(t.score(shot) > EXPOSED for t in targets), {t.name: round(t.score(shot), 2) for t in targets}
        page.close()
    finally:
        set_settings(sw, autoScan=False, medicalMode="badge")
