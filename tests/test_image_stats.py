"""Image statistics: the physics cues they are there for, computed per image whatever the batch."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fixtures.data import image
from medlens.model.image_stats import STAT_NAMES, STATS_SIZE, batch_statistics
from medlens.model.preprocess import model_batch


def _stats(*imgs: Image.Image) -> dict[str, np.ndarray]:
    pixels, aspects = model_batch(list(imgs))
    out = batch_statistics(pixels, aspects)
    assert out.shape == (len(imgs), STATS_SIZE) and out.dtype == np.float32 and np.isfinite(out).all()
    return {name: out[:, k] for k, name in enumerate(STAT_NAMES)}


def test_grey_radiograph_and_colour_photo_differ_where_expected():
    xray = Image.open(image("medical/xray/pydicom-data_RG1_J2KI.jpg"))
    photo = Image.open(image("non-medical/photo/skimage-data_astronaut.jpg"))
    s = _stats(xray, photo)
    assert s["exact_gray_share"][0] > 0.95 > s["exact_gray_share"][1]
    assert s["sat_mean"][0] < 0.05 < s["sat_mean"][1]
    assert s["colour_count_log"][0] < s["colour_count_log"][1]


def test_dark_border_is_seen():
    img = Image.new("L", (256, 256), 0)
    img.paste(200, (30, 30, 226, 226))
    s = _stats(img.convert("RGB"))
    assert s["border_val"][0] < 0.05 and s["centre_val"][0] > 0.5 and s["border_minus_centre"][0] < -0.4


def test_uniform_image_has_no_edges_and_defined_correlation():
    s = _stats(Image.new("RGB", (100, 100), (120, 30, 200)))
    assert s["edge_mean"][0] < 1e-6 and s["lap_mean"][0] < 1e-6
    assert s["rg_corr"][0] == 1.0 and s["entropy"][0] == 0


def test_rows_do_not_depend_on_batch_company():
    a = Image.open(image("medical/fundus/idrid-codras_0001.jpg"))
    b = Image.open(image("non-medical/chart/charts-sklearn-data_area_0.png"))
    together = batch_statistics(*model_batch([a, b]))
    alone = np.concatenate([batch_statistics(*model_batch([a])), batch_statistics(*model_batch([b]))])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-4)  # float32 sums in another order


def test_empty_batch():
    pixels, aspects = model_batch([])
    assert batch_statistics(pixels, aspects).shape == (0, STATS_SIZE)
