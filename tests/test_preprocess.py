"""One preprocessing pass: any image to the model's uint8 square, the same way every time."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from fixtures.data import image
from medlens.model.preprocess import INPUT_SIDE, log_aspect, model_batch, model_input, open_for_model


def test_whole_image_is_squeezed_to_the_input_square():
    img = Image.open(image("medical/xray/pydicom-data_RG1_J2KI.jpg"))
    arr = model_input(img)
    assert arr.shape == (INPUT_SIDE, INPUT_SIDE, 3) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, model_input(img))


def test_nothing_is_cropped_away():
    """A bright stripe at the very edge of a wide image survives: the network sees the borders."""
    wide = Image.new("RGB", (900, 300), (0, 0, 0))
    wide.paste((255, 255, 255), (0, 0, 30, 300))
    arr = model_input(wide)
    assert arr[:, :4].mean() > 200 and arr[:, -20:].mean() < 5


def test_batch_keeps_aspect_ratios_of_the_originals():
    imgs = [Image.new("RGB", (400, 200)), Image.new("L", (100, 100)), Image.new("RGBA", (50, 200))]
    pixels, aspects = model_batch(imgs)
    assert pixels.shape == (3, INPUT_SIDE, INPUT_SIDE, 3)
    np.testing.assert_allclose(aspects, [np.log(2), 0.0, np.log(0.25)], rtol=1e-6)
    assert log_aspect(0, 10) == np.log(1 / 10)


def test_large_jpeg_is_decoded_at_reduced_size():
    big = Image.new("RGB", (4000, 3000), (200, 40, 40))
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    img = open_for_model(buf.getvalue())
    assert img.mode == "RGB"
    assert INPUT_SIDE <= min(img.size) < 3000  # JPEG draft: a power-of-two reduction, still >= the input side
    assert np.abs(model_input(img).astype(int) - model_input(big).astype(int)).max() <= 3


def test_empty_batch():
    pixels, aspects = model_batch([])
    assert pixels.shape == (0, INPUT_SIDE, INPUT_SIDE, 3) and aspects.shape == (0,)
