"""Turn any PIL image into 8-bit RGB the way a person would expect to see it.

Shared by ingestion (decoded downloads) and the model (images handed in by callers), so a
16-bit X-ray, a palette GIF with transparency and a CMYK JPEG all reach the backbone alike.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_HIGH_DEPTH = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """RGB copy of `img`: transparency composited onto `background`, high bit depth windowed to 8 bits."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _HIGH_DEPTH:
        return _window_to_8bit(img).convert("RGB")
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if mode == "1":
        return img.convert("L").convert("RGB")
    return img.convert("RGB")


def _window_to_8bit(img: Image.Image) -> Image.Image:
    """Map the 0.5-99.5 percentile range of a 16/32-bit or float image to 0-255."""
    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[..., 0]
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return Image.new("L", img.size, 0)
    lo, hi = np.percentile(finite, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return Image.new("L", img.size, 0)
    scaled = np.clip((np.nan_to_num(arr, nan=lo) - lo) / (hi - lo), 0.0, 1.0) * 255.0
    return Image.fromarray(scaled.round().astype(np.uint8), mode="L")
