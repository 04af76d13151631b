"""One preprocessing pass per image: any PIL image to the model's small uint8 RGB array.

The network and the colour/layout statistics both read this one array, so an image is resized
once. The whole image is squeezed to a square (no centre crop): the borders of a radiograph or
the window frame around a CT slice carry as much of "how the image was made" as the centre, and
the aspect ratio the squeeze loses is kept as a statistic. Normalisation to the weights' mean
and std happens inside the ONNX graph, so callers hand over plain uint8 pixels.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image

from medlens.image_modes import to_rgb

INPUT_SIDE = 224
# PIL first shrinks by a whole factor (cheap box filter) to within this factor of the target,
# then resamples: as smooth as a plain bilinear resize and several times faster on large images.
REDUCING_GAP = 2.0


def model_input(img: Image.Image, side: int = INPUT_SIDE) -> np.ndarray:
    """`side`x`side`x3 uint8 RGB array of the whole image."""
    rgb = to_rgb(img)
    if rgb.size != (side, side):
        rgb = rgb.resize((side, side), Image.Resampling.BILINEAR, reducing_gap=REDUCING_GAP)
    return np.asarray(rgb, dtype=np.uint8)


def model_batch(images: Sequence[Image.Image], side: int = INPUT_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """(N, side, side, 3) uint8 pixels and the (N,) log aspect ratios of the originals."""
    if not images:
        return np.zeros((0, side, side, 3), dtype=np.uint8), np.zeros(0, dtype=np.float32)
    pixels = np.stack([model_input(img, side) for img in images])
    aspects = np.array([log_aspect(img.width, img.height) for img in images], dtype=np.float32)
    return pixels, aspects


def log_aspect(width: int, height: int) -> float:
    return float(np.log(max(width, 1) / max(height, 1)))


def open_for_model(data: bytes, side: int = INPUT_SIDE) -> Image.Image:
    """Decode encoded bytes at reduced size where the format allows it (JPEG draft), RGB out."""
    img = Image.open(io.BytesIO(data))
    if img.format == "JPEG":
        img.draft("RGB", (side, side))
    img.load()
    return to_rgb(img)
