"""The no-flash test page (real images, a deliberately slow third-party script) and how to load it
while sampling screenshots; shared by tests/e2e/test_shield.py and bench/extension.py."""

from __future__ import annotations

import json
import time

from e2e.exposure import Target, exposures, sample_chromium
from e2e.pages import CAT, CHART, CT, CUPS, FUNDUS, HISTOLOGY, MRI, PHOTO, XRAY
from fixtures.data import image

MEDICAL = {"m-xray": XRAY, "m-ct": CT, "m-fundus": FUNDUS, "m-mri": MRI, "m-histology": HISTOLOGY}
NON_MEDICAL = {"n-cat": CAT, "n-photo": PHOTO, "n-cups": CUPS, "n-chart": CHART}
SLOW_SCRIPT_MS = 20000  # the load event comes this late (tests do not wait for it: generous for a busy machine)
VIEWPORT = {"width": 900, "height": 620}
# The page's own per-frame check (main world, every animation frame from the first): a medical
# image that is decoded (paintable) while neither blurred nor hidden is a violation.
PROBE = """<script>window.__probe = {frames: 0, gaps: [], bad: [], states: []};
requestAnimationFrame(function f(t) { const p = window.__probe; if (p.last) p.gaps.push(t - p.last); p.last = t; p.frames++;
  for (const id of %s) { const e = document.getElementById(id); if (!e || !e.complete || !e.naturalWidth) continue;
    const cs = getComputedStyle(e); if (cs.filter === 'none' && cs.visibility !== 'hidden') p.bad.push([id, Math.round(t)]); }
  if (p.frames < 3000) requestAnimationFrame(f); });
new MutationObserver((ms) => { for (const m of ms) window.__probe.states.push([m.target.id,
  m.target.getAttribute('data-medlens-state'), Math.round(performance.now()), document.readyState]); })
  .observe(document, {subtree: true, attributes: true, attributeFilter: ['data-medlens-state']});</script>"""
ALL_SETTLED = """ids => ids.every(id => window.__probe && window.__probe.states.some(s => s[0] === id && s[1] === 'clear'))"""
SHIELD_READY = """async () => (await chrome.scripting.getRegisteredContentScripts()).map(s => (s.css || []).join(','))"""


def add_shield_page(site, tag: str, slow_ms: int = SLOW_SCRIPT_MS) -> str:
    """A news-like page: nine real images (five medical) above a slow script on another origin,
    so parsing stops there and the load event comes `slow_ms` late. Fresh URLs per `tag`."""
    imgs = "\n".join(f'<img id="{k}" src="{site.image(rel)}?{tag}" width="200" height="150" alt="">'
                     for k, rel in [*MEDICAL.items(), *NON_MEDICAL.items()])
    return site.add_page(f"shield-{tag}.html", f"""<!doctype html><html><head><meta charset="utf-8">
<title>News with a slow script</title>{PROBE % json.dumps(list(MEDICAL))}<style>body {{ margin: 8px; font: 14px sans-serif; }}
.g {{ display: flex; flex-wrap: wrap; gap: 8px; width: 860px; }} img {{ display: block; }}</style></head>
<body><h1 style="margin:4px 0 8px">Today's pictures</h1><div class="g">
{imgs}
</div><script src="{site.other_base}/slow/{slow_ms}.js"></script><p>after the slow script</p></body></html>""")


def wait_shield(sw, css: str, timeout_s: float = 10.0) -> None:
    """Until the service worker has (re)registered the document_start shield with this style."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = sw.evaluate(SHIELD_READY)
        if got and got[0].endswith(css):
            return
        time.sleep(0.05)
    raise AssertionError(f"shield script not registered with {css!r}: {got}")


def load_and_sample(context, url: str, seconds: float, settled=ALL_SETTLED):
    """Open `url` in a new tab and record every frame drawn from navigation on; returns the page,
    the frames, the per-image exposure series, the targets and the page's own per-frame probe."""
    page = context.new_page()
    page.set_viewport_size(VIEWPORT)
    page.goto("about:blank")
    t0 = time.time()
    cast = sample_chromium(page, seconds, t0)
    page.goto(url, wait_until="commit")
    frames = cast.collect(page, settled and (lambda: page.evaluate(settled, list(NON_MEDICAL))))
    rects = page.evaluate("""ids => Object.fromEntries(ids.map(id => [id, document.getElementById(id).getBoundingClientRect().toJSON()]))""",
                          [*MEDICAL, *NON_MEDICAL])
    targets = [Target.of(k, k in MEDICAL, image(rel), rects[k]) for k, rel in [*MEDICAL.items(), *NON_MEDICAL.items()]]
    probe = page.evaluate("window.__probe")
    return page, frames, exposures(frames, targets), targets, probe
