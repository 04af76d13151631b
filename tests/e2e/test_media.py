"""Video and canvas in shield mode (Chromium): a canvas viewer drawing a real CT slice is covered,
and uncovered when it repaints with a photo; a tainted canvas is covered with "not checked"; a
cross-origin video without CORS is classified by the server from its URL, a same-origin video of
CT frames from its frames."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from playwright.sync_api import expect

from e2e.conftest import set_settings
from e2e.pages import CAT, CT, PHOTO
from e2e.shield_page import wait_shield
from fixtures.data import image


def webm_clip(rel: str, frames: int = 12, side: int = 256) -> bytes:
    """A short VP8 clip (5 fps) of a real image slowly panning: a video made of that picture."""
    import av

    src = Image.open(image(rel)).convert("RGB").resize((side + frames * 4, side + frames * 4))
    out = io.BytesIO()
    with av.open(out, "w", format="webm") as box:
        stream = box.add_stream("libvpx", rate=5)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.asarray(src.crop((i * 4, i * 4, i * 4 + side, i * 4 + side))), format="rgb24")
            for packet in stream.encode(frame):
                box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)
    return out.getvalue()


def test_video_and_canvas_are_covered_until_checked(context, sw, paired, site, reports_dir):
    clip = site.add_file("ct-clip.webm", webm_clip(CT), "video/webm")
    url = site.add_page("media.html", f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ font: 14px sans-serif; margin: 12px; }} .g {{ display: flex; flex-wrap: wrap; gap: 12px; }} figure {{ margin: 0; }}</style></head>
<body><h1>A web viewer, a clip and a foreign canvas</h1><div class="g">
<figure><canvas id="viewer" width="256" height="256"></canvas><figcaption>canvas viewer (same-origin CT)</figcaption></figure>
<figure><canvas id="tainted" width="256" height="256"></canvas><figcaption>canvas with a cross-origin image</figcaption></figure>
<figure><video id="same" src="{clip}" width="256" height="256" autoplay muted loop playsinline></video><figcaption>same-origin clip</figcaption></figure>
<figure><video id="cross" src="{site.other(clip)}" width="256" height="256" autoplay muted loop playsinline></video><figcaption>cross-origin clip, no CORS</figcaption></figure>
</div><script>
function draw(id, src, done) {{ const img = new Image(); img.onload = () => {{
  document.getElementById(id).getContext('2d').drawImage(img, 0, 0, 256, 256); done && done(); }}; img.src = src; }}
draw('viewer', {site.image(CT)!r});
draw('tainted', {site.other(site.image(PHOTO))!r});
window.showPhoto = () => draw('viewer', {site.image(CAT)!r});
</script></body></html>""")
    set_settings(sw, autoScan=True, medicalMode="blur")
    try:
        wait_shield(sw, "shield-blur.css")
        page = context.new_page()
        page.goto(url)

        viewer = page.locator("medlens-badge[data-medlens-src^='canvas:']").and_(page.locator("[data-medlens-label=medical]"))
        expect(viewer).to_have_count(1, timeout=20_000)
        expect(viewer).to_have_attribute("data-medlens-action", "blurred")
        assert "blur" in page.eval_on_selector("#viewer", "e => getComputedStyle(e).filter")
        # the tainted canvas cannot be read: covered, says so, one click shows it
        unreadable = page.locator("medlens-badge[data-medlens-label=error]")
        expect(unreadable).to_have_count(1, timeout=20_000)  # the tainted canvas
        expect(unreadable).to_have_attribute("data-medlens-action", "blurred")
        expect(unreadable).to_have_attribute("data-medlens-text", "Not checked")
        assert "blur" in page.eval_on_selector("#tainted", "e => getComputedStyle(e).filter")
        # the cross-origin clip without CORS: the page may not read its frames, so its URL went to
        # the server, whose video support samples them
        cross = page.locator(f"medlens-badge[data-medlens-src='{site.other(clip)}']")
        expect(cross).to_have_attribute("data-medlens-label", "medical", timeout=30_000)
        assert "blur" in page.eval_on_selector("#cross", "e => getComputedStyle(e).filter")
        # the same-origin clip is classified from its frames
        same = page.locator(f"medlens-badge[data-medlens-src='{clip}']")
        expect(same).to_have_attribute("data-medlens-label", "medical", timeout=20_000)
        expect(same).to_have_attribute("data-medlens-action", "blurred")
        page.screenshot(path=str(reports_dir / "media-covered.png"))
        # the viewer now shows a photo: re-checked (bounded rate) and uncovered
        page.evaluate("showPhoto()")
        expect(page.locator("medlens-badge[data-medlens-src^='canvas:'][data-medlens-label=non-medical]")).to_have_count(1, timeout=20_000)
        assert page.eval_on_selector("#viewer", "e => getComputedStyle(e).filter") == "none"
        page.screenshot(path=str(reports_dir / "media-repainted.png"))
        page.close()
    finally:
        set_settings(sw, autoScan=False, medicalMode="badge")
