"""Framed images made at training time: a picture shown inside a program window, on a printed
page, or as a labelled figure panel.

Policy (README, "The model"): an image whose main content is a medical image is medical, even
inside a viewer window, a print layout or a figure with labels; a screenshot or document
without one is not. On the web medical images often come framed like that, and a head trained
only on bare images learns "window chrome = screenshot = not medical". So every content image,
medical or not, is also shown to the head framed on a real screenshot or document page, with its
own label: what decides is the content, never the frame.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Sequence

from PIL import Image, ImageDraw

from medlens.image_modes import to_rgb

LAYOUTS = ("window", "page", "grid", "figure")
COMPOSITE_SPEC = {
    "version": 1,
    "layouts": list(LAYOUTS),
    "content_area": [0.3, 0.75],
    "canvas_side": [480, 900],
    "frame_kinds": ["screenshot", "document"],
}
# kinds of non-medical picture that serve as the frame (canvas), never as framed content
FRAME_KINDS = frozenset(COMPOSITE_SPEC["frame_kinds"])


def composite_key() -> str:
    return hashlib.sha256(json.dumps(COMPOSITE_SPEC, sort_keys=True).encode()).hexdigest()[:12]


def compose(contents: Sequence[Image.Image], canvas: Image.Image, layout: str, rng: random.Random) -> Image.Image:
    """`contents` (one image, or up to four for "grid") placed on `canvas` as `layout` says."""
    canvas = to_rgb(canvas)
    contents = [to_rgb(c) for c in contents]
    if layout == "window":
        return _window(contents[0], canvas, rng)
    if layout == "page":
        return _page(contents[:1], canvas, rng)
    if layout == "grid":
        return _page(contents[:4], canvas, rng)
    if layout == "figure":
        return _figure(contents[0], canvas, rng)
    raise ValueError(f"unknown layout {layout!r}")


def _fit(img: Image.Image, box_w: int, box_h: int) -> Image.Image:
    scale = min(box_w / img.width, box_h / img.height)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _landscape(canvas: Image.Image, rng: random.Random) -> Image.Image:
    w = rng.randint(*COMPOSITE_SPEC["canvas_side"])
    h = round(w * rng.uniform(0.55, 0.8))
    return canvas.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0)


def _window(content: Image.Image, canvas: Image.Image, rng: random.Random) -> Image.Image:
    """A viewer window: the screenshot's chrome around a dark panel that shows the content."""
    out = _landscape(canvas, rng)
    w, h = out.size
    area = rng.uniform(*COMPOSITE_SPEC["content_area"])
    pw = min(w - 8, round(w * area ** 0.5 * rng.uniform(0.9, 1.2)))
    ph = min(h - 8, round(w * h * area / pw))
    x0, y0 = rng.randint(4, w - pw - 4), rng.randint(4, h - ph - 4)
    panel = rng.choice([(0, 0, 0), (20, 20, 24), (40, 40, 40), (235, 235, 235)])
    ImageDraw.Draw(out).rectangle((x0, y0, x0 + pw, y0 + ph), fill=panel, outline=(90, 90, 90), width=2)
    fitted = _fit(content, pw - 6, ph - 6)
    out.paste(fitted, (x0 + (pw - fitted.width) // 2, y0 + (ph - fitted.height) // 2))
    return out


def _page(contents: Sequence[Image.Image], canvas: Image.Image, rng: random.Random) -> Image.Image:
    """A printed page (or print preview): the document's text around one picture or a grid of them."""
    w = rng.randint(*COMPOSITE_SPEC["canvas_side"])
    h = round(w * rng.uniform(1.2, 1.45))
    out = canvas.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0)
    area = rng.uniform(*COMPOSITE_SPEC["content_area"])
    bw = round(w * min(0.95, area ** 0.5 * rng.uniform(1.0, 1.25)))
    bh = min(h - 8, round(w * h * area / bw))
    x0, y0 = (w - bw) // 2, rng.randint(4, h - bh - 4)
    background = rng.choice([(255, 255, 255), (0, 0, 0), (250, 250, 246)])
    ImageDraw.Draw(out).rectangle((x0, y0, x0 + bw, y0 + bh), fill=background)
    cols = 1 if len(contents) == 1 else 2
    rows = (len(contents) + cols - 1) // cols
    gap = 6
    cw, ch = (bw - gap * (cols + 1)) // cols, (bh - gap * (rows + 1)) // rows
    for k, img in enumerate(contents):
        fitted = _fit(img, max(cw, 1), max(ch, 1))
        cx = x0 + gap + (k % cols) * (cw + gap) + (cw - fitted.width) // 2
        cy = y0 + gap + (k // cols) * (ch + gap) + (ch - fitted.height) // 2
        out.paste(fitted, (cx, cy))
    return out


def _figure(content: Image.Image, canvas: Image.Image, rng: random.Random) -> Image.Image:
    """A labelled figure panel: the picture above a caption cut from a document, a panel letter on it."""
    side = rng.randint(*COMPOSITE_SPEC["canvas_side"]) // 2 + 120
    fitted = _fit(content, side, side)
    caption_h = max(24, round(fitted.height * rng.uniform(0.15, 0.35)))
    out = Image.new("RGB", (fitted.width + 16, fitted.height + caption_h + 16), (255, 255, 255))
    out.paste(fitted, (8, 8))
    strip = canvas.resize((out.width, max(caption_h * 4, 1)), Image.Resampling.BILINEAR)
    top = rng.randint(0, max(0, strip.height - caption_h))
    out.paste(strip.crop((0, top, out.width, top + caption_h)), (0, fitted.height + 12))
    draw = ImageDraw.Draw(out)
    draw.rectangle((12, 12, 34, 36), fill=(255, 255, 255))
    draw.text((17, 16), rng.choice("ABCDEF"), fill=(0, 0, 0))
    if rng.random() < 0.5:  # an arrow or marker, as figures often carry
        x, y = rng.randint(20, max(21, fitted.width - 20)), rng.randint(20, max(21, fitted.height - 20))
        draw.line((x, y, x + 18, y - 18), fill=(255, 255, 0), width=3)
    return out
