"""Every PIL mode becomes the RGB image a person would expect."""

from __future__ import annotations

import numpy as np
from PIL import Image

from medlens.image_modes import to_rgb


def test_transparency_goes_onto_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert to_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("LA", (4, 4), (0, 128))
    assert to_rgb(half).getpixel((0, 0)) == (127, 127, 127)


def test_palette_with_transparency():
    p = Image.new("P", (4, 4), 3)
    p.putpalette([0, 0, 0] * 3 + [0, 255, 0] + [0, 0, 0] * 252)
    assert to_rgb(p).getpixel((0, 0)) == (0, 255, 0)
    p.info["transparency"] = 3
    assert to_rgb(p).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_is_windowed_to_its_range():
    arr = np.tile(np.linspace(1000, 5000, 64, dtype=np.uint16), (8, 1))
    out = np.asarray(to_rgb(Image.fromarray(arr)))
    assert out.shape == (8, 64, 3)
    assert out[..., 0].min() <= 2 and out[..., 0].max() >= 253


def test_float_with_nan_and_flat_images():
    arr = np.full((5, 5), np.nan, dtype=np.float32)
    arr[0, 0] = 1.0
    assert to_rgb(Image.fromarray(arr)).mode == "RGB"
    assert to_rgb(Image.new("I;16", (3, 3), 7)).getpixel((1, 1)) == (0, 0, 0)


def test_cmyk_and_bilevel():
    assert to_rgb(Image.new("CMYK", (2, 2), (0, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(Image.new("1", (2, 2), 1)).getpixel((0, 0)) == (255, 255, 255)
    rgb = Image.new("RGB", (2, 2))
    assert to_rgb(rgb) is rgb
