"""Was an image's own picture visible in a screenshot? Used by the no-flash tests and
bench/extension.py.

A screenshot region "shows" an image when its fine detail matches the image's: the correlation of
the high-pass (image minus its 5x5 box blur) of the region and of the image's own pixels scaled to
the region. An uncovered image scores about 0.8-1 (the screenshot is a JPEG); blurred (18 px) or
hidden ones, and anything drawn over them, score near 0. Checked both ways in the tests: every
image shown at the end scores above EXPOSED, every covered one below.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

EXPOSED = 0.5  # correlation above which the region shows the image's own pixels


def _high_pass(img: Image.Image) -> np.ndarray:
    gray = img.convert("L")
    a = np.asarray(gray, dtype=np.float32)
    return a - np.asarray(gray.filter(ImageFilter.BoxBlur(2)), dtype=np.float32)


@dataclass
class Target:
    """One image on the test page: where it is drawn and what its own pixels look like there."""

    name: str
    medical: bool
    box: tuple[int, int, int, int]  # left, top, width, height in screenshot px
    ref: np.ndarray = field(repr=False, default=None)

    @classmethod
    def of(cls, name: str, medical: bool, path: Path, rect: dict) -> "Target":
        # a few px in from the edges: borders and anti-aliasing are not the image
        left, top = round(rect["x"]) + 3, round(rect["y"]) + 3
        w, h = round(rect["width"]) - 6, round(rect["height"]) - 6
        full = Image.open(path).convert("RGB").resize((round(rect["width"]), round(rect["height"])), Image.BILINEAR)
        return cls(name, medical, (left, top, w, h), _high_pass(full.crop((3, 3, 3 + w, 3 + h))))

    def score(self, shot: Image.Image) -> float:
        left, top, w, h = self.box
        if left < 0 or top < 0 or left + w > shot.width or top + h > shot.height:
            return 0.0
        hp = _high_pass(shot.crop((left, top, left + w, top + h)))
        den = float(np.sqrt((hp * hp).sum() * (self.ref * self.ref).sum()))
        return float((hp * self.ref).sum() / den) if den > 0 else 0.0


@dataclass
class Frame:
    t: float  # seconds since navigation started
    jpeg: bytes

    def image(self) -> Image.Image:
        return Image.open(io.BytesIO(self.jpeg)).convert("RGB")


def sample_chromium(page, seconds: float, start: float, stop=None) -> list[Frame]:
    """Screenshots of `page` as fast as CDP gives them (JPEG) for `seconds` after `start` (a
    time.monotonic() value), or until `stop()` is true."""
    import base64

    cdp = page.context.new_cdp_session(page)
    frames: list[Frame] = []
    try:
        while time.monotonic() - start < seconds and not (stop and stop()):
            got = cdp.send("Page.captureScreenshot", {"format": "jpeg", "quality": 80, "optimizeForSpeed": True})
            frames.append(Frame(time.monotonic() - start, base64.b64decode(got["data"])))
    finally:
        cdp.detach()
    return frames


def exposures(frames: list[Frame], targets: list[Target]) -> dict[str, list[tuple[float, float]]]:
    """For each target, (time, score) of every frame."""
    out: dict[str, list[tuple[float, float]]] = {t.name: [] for t in targets}
    for f in frames:
        shot = f.image()
        for t in targets:
            out[t.name].append((f.t, t.score(shot)))
    return out


def exposed_ms(series: list[tuple[float, float]]) -> float:
    """How long (ms) the image's pixels were visible: summed over the frames that showed it, each
    counted until the next frame."""
    total = 0.0
    for (t, s), (t_next, _) in zip(series, series[1:] + [(series[-1][0], 0.0)]):
        if s > EXPOSED:
            total += t_next - t
    return total * 1000


def first_exposed(series: list[tuple[float, float]]) -> float | None:
    """Seconds from navigation to the first frame that showed the image (None: never)."""
    return next((t for t, s in series if s > EXPOSED), None)


def gaps_ms(frames: list[Frame]) -> list[float]:
    return [(b.t - a.t) * 1000 for a, b in zip(frames, frames[1:])]
