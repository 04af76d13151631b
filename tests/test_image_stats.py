"""Image statistics: the physics cues they are there for, computed per image whatever the batch."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fixtures.data import image
from medlens.training.image_stats import STAT_NAMES, STATS_SIZE, batch_statistics
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


# Saved outputs (statistics v2, the numbers the shipped heads were trained on): any rewrite of
# batch_statistics, e.g. for speed, must give these back.
SAVED = {
    "medical/fundus/idrid-codras_0001.jpg": [
        7.8483921e-01, 3.8798106e-01, 1.0000000e+00, 2.1783493e-01, 1.5421203e-01, 1.9443558e-01,
        2.0491868e-01, 3.0612245e-01, 0.0000000e+00, 1.0450914e-01, 3.0597726e-01, -2.0146811e-01,
        4.3875813e-03, 9.4771385e-03, 6.4136763e-03, 1.4617795e+00, 2.8332133e+00, 2.2513914e+00,
        9.8402679e-01, 4.0937901e-01, 8.7447542e-01, 5.1261642e-04, 6.3060626e-04, 0.0000000e+00,
        1.4812899e-03, 6.7716109e-04, 1.4144202e-03, 5.0256262e-03, 1.0381114e-01, 3.5349347e-03,
        3.9057243e-03, 4.5310622e-03,
    ],
    "non-medical/photo/skimage-data_astronaut.jpg": [
        3.6113429e-01, 3.3232269e-01, 8.5756195e-01, 5.6016332e-01, 3.1012109e-01, 3.1202167e-01,
        9.2315048e-02, 1.4516900e-01, 1.5465561e-02, 5.2353835e-01, 5.8864933e-01, -6.5110981e-02,
        5.5725608e-02, 1.6274509e-01, 6.8005823e-02, 1.2203693e+00, 5.8805332e+00, 4.7009349e+00,
        8.3583808e-01, 0.0000000e+00, 6.1408895e-01, 1.3671021e-01, 8.9042922e-03, 1.4046599e-03,
        1.0520753e-02, 1.1926469e-03, 1.2537967e-03, 4.0712631e-03, 7.0581958e-02, 1.4864341e-02,
        1.2965948e-02, 1.2344125e-01,
    ],
}


def test_statistics_match_the_saved_outputs_the_heads_were_trained_on():
    for rel, saved in SAVED.items():
        pixels, aspects = model_batch([Image.open(image(rel))])
        np.testing.assert_allclose(batch_statistics(pixels, aspects)[0], saved, rtol=2e-6, atol=2e-7, err_msg=rel)
