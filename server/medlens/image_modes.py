"""Turn any PIL image into 8-bit RGB the way a person would expect to see it.

Shared by ingestion (decoded downloads) and the model (images handed in by callers), so a
16-bit X-ray, a palette GIF with transparency and a CMYK JPEG all reach the backbone alike.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_HIGH_DEPTH = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
WINDOW_BLOCK_BYTES = 16 * 1024 * 1024  # the window_block_bytes setting's default
PERCENTILE_SAMPLE = 1 << 20


def to_rgb(
    img: Image.Image,
    background: tuple[int, int, int] = (255, 255, 255),
    *,
    block_bytes: int = WINDOW_BLOCK_BYTES,
) -> Image.Image:
    """RGB copy of `img`: transparency composited onto `background`, high bit depth windowed to
    8 bits using at most `block_bytes` of scratch memory (the `window_block_bytes` setting)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _HIGH_DEPTH:
        return _window_to_8bit(img, block_bytes).convert("RGB")
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


def _window_to_8bit(img: Image.Image, block_bytes: int) -> Image.Image:
    """Map the 0.5-99.5 percentile range of a 16/32-bit or float image to 0-255.

    The percentiles come from an evenly strided sample of at most PERCENTILE_SAMPLE pixels, and
    the mapping runs in float32 row blocks of at most `block_bytes` into one uint8 result, so the
    cost beyond the decoded pixels is fixed (a 7000 x 7000 16-bit image once took 1.7 GB in float64).
    """
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., 0]
    height, width = arr.shape
    step = max(1, arr.size // PERCENTILE_SAMPLE)
    sample = arr.reshape(-1)[::step].astype(np.float32)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return Image.new("L", img.size, 0)
    lo, hi = (float(v) for v in np.percentile(finite, [0.5, 99.5]))
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return Image.new("L", img.size, 0)
    scale = np.float32(255.0 / (hi - lo))
    out = np.empty((height, width), dtype=np.uint8)
    rows = max(1, block_bytes // max(1, width * 4))
    for top in range(0, height, rows):
        block = arr[top : top + rows].astype(np.float32)
        np.nan_to_num(block, copy=False, nan=lo, posinf=hi, neginf=lo)
        block -= np.float32(lo)
        block *= scale
        np.clip(block, 0.0, 255.0, out=block)
        np.rint(block, out=block)
        out[top : top + rows] = block
    return Image.fromarray(out)
