"""The no-flash test page (real images, a deliberately slow third-party script) and how to load it
while sampling screenshots; shared by tests/e2e/test_shield.py and bench/extension.py."""

from __future__ import annotations

import time

from e2e.exposure import Target, exposures, sample_chromium
from e2e.pages import CAT, CHART, CT, CUPS, FUNDUS, HISTOLOGY, MRI, PHOTO, XRAY
from fixtures.data import image

MEDICAL = {"m-xray": XRAY, "m-ct": CT, "m-fundus": FUNDUS, "m-mri": MRI, "m-histology": HISTOLOGY}
NON_MEDICAL = {"n-cat": CAT, "n-photo": PHOTO, "n-cups": CUPS, "n-chart": CHART}
SLOW_SCRIPT_MS = 3000
VIEWPORT = {"width": 900, "height": 620}
SHIELD_READY = """async () => (await chrome.scripting.getRegisteredContentScripts()).map(s => (s.css || []).join(','))"""


def add_shield_page(site, tag: str) -> str:
    """A news-like page: nine real images (five medical) above a slow script on another origin,
    so the load event comes SLOW_SCRIPT_MS late. Fresh URLs per `tag`."""
    imgs = "\n".join(f'<img id="{k}" src="{site.image(rel)}?{tag}" width="200" height="150" alt="">'
                     for k, rel in [*MEDICAL.items(), *NON_MEDICAL.items()])
    return site.add_page(f"shield-{tag}.html", f"""<!doctype html><html><head><meta charset="utf-8">
<title>News with a slow script</title><style>body {{ margin: 8px; font: 14px sans-serif; }}
.g {{ display: flex; flex-wrap: wrap; gap: 8px; width: 860px; }} img {{ display: block; }}</style></head>
<body><h1 style="margin:4px 0 8px">Today's pictures</h1><div class="g">
{imgs}
</div><script src="{site.other_base}/slow/{SLOW_SCRIPT_MS}.js"></script><p>after the slow script</p></body></html>""")


def wait_shield(sw, css: str, timeout_s: float = 10.0) -> None:
    """Until the service worker has (re)registered the document_start shield with this style."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = sw.evaluate(SHIELD_READY)
        if got and got[0].endswith(css):
            return
        time.sleep(0.05)
    raise AssertionError(f"shield script not registered with {css!r}: {got}")


def load_and_sample(context, url: str, seconds: float):
    """Open `url` in a new tab and take screenshots from navigation on; returns the page, the
    frames, the per-image exposure series and the targets."""
    page = context.new_page()
    page.set_viewport_size(VIEWPORT)
    t0 = time.monotonic()
    page.goto(url, wait_until="commit")
    frames = sample_chromium(page, seconds, t0)
    rects = page.evaluate("""ids => Object.fromEntries(ids.map(id => [id, document.getElementById(id).getBoundingClientRect().toJSON()]))""",
                          [*MEDICAL, *NON_MEDICAL])
    targets = [Target.of(k, k in MEDICAL, image(rel), rects[k]) for k, rel in [*MEDICAL.items(), *NON_MEDICAL.items()]]
    return page, frames, exposures(frames, targets), targets
