"""Was an image's own picture visible in a screenshot? Used by the no-flash tests and
bench/extension.py.

A screenshot region "shows" an image when its fine detail matches the image's: the correlation of
the high-pass (image minus its 5x5 box blur) of the middle of its box (the corners hold marks and
page controls) and of the image's own pixels scaled to the box. An uncovered image scores about 0.8-1 (the screenshot is a JPEG); blurred (18 px) or
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
        # the middle of the box: the corners are where marks and the page's own controls sit
        W, H = round(rect["width"]), round(rect["height"])
        dx, dy = round(W * 0.2), round(H * 0.2)
        full = Image.open(path).convert("RGB").resize((W, H), Image.BILINEAR)
        box = (round(rect["x"]) + dx, round(rect["y"]) + dy, W - 2 * dx, H - 2 * dy)
        return cls(name, medical, box, _high_pass(full.crop((dx, dy, W - dx, H - dy))))

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


def sample_chromium(page, seconds: float, start: float) -> list[Frame]:
    """Every frame Chromium's compositor draws for `page` (CDP screencast, JPEG), for `seconds`
    after `start` (a time.time() value taken before the navigation), each with its own timestamp.
    Call it before navigating: frames are pushed as they are drawn."""
    import base64

    frames: list[Frame] = []
    cdp = page.context.new_cdp_session(page)

    def on_frame(event: dict) -> None:
        frames.append(Frame(event["metadata"]["timestamp"] - start, base64.b64decode(event["data"])))
        try:
            cdp.send("Page.screencastFrameAck", {"sessionId": event["sessionId"]})
        except Exception:  # noqa: BLE001 - the session may be gone at the end
            pass

    cdp.on("Page.screencastFrame", on_frame)
    cdp.send("Page.startScreencast", {"format": "jpeg", "quality": 80, "everyNthFrame": 1})
    return _Screencast(cdp, frames, start, seconds)


class _Screencast:
    """A running screencast: `collect()` pumps events until the time is up and returns the frames."""

    def __init__(self, cdp, frames: list[Frame], start: float, seconds: float) -> None:
        self.cdp, self.frames, self.start, self.seconds = cdp, frames, start, seconds

    def collect(self, page, done=None, linger_s: float = 0.4) -> list[Frame]:
        """Frames until the time is up, or `linger_s` after `done()` first says true."""
        end = self.start + self.seconds
        while time.time() < end:
            page.wait_for_timeout(50)
            if done and end - time.time() > linger_s and done():
                end = time.time() + linger_s
        try:
            self.cdp.send("Page.stopScreencast")
        finally:
            self.cdp.detach()
        return sorted(self.frames, key=lambda f: f.t)


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
