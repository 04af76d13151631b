"""The one graph computes everything the heads read: its image statistics equal the numpy
reference (training/image_stats.py, itself pinned by saved outputs) on real images of every
kind, within float tolerance; so a host only decodes and resizes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fixtures.data import DataItem, image
from medlens.model.classifier import SHIPPED_MODEL_DIR, load_extractor, read_card
from medlens.model.preprocess import model_batch
from medlens.training.image_stats import STAT_NAMES, STATS_SIZE, batch_statistics

# float32 sums in another order (a masked mean in numpy, a weighted sum in the graph)
ATOL = 2e-4


@pytest.fixture(scope="module")
def graph():
    return load_extractor(SHIPPED_MODEL_DIR, read_card(SHIPPED_MODEL_DIR), device="cpu")


def _one_per_kind(items: list[DataItem]) -> list[DataItem]:
    seen: dict[str, DataItem] = {}
    for item in items:
        seen.setdefault(f"{item.label}/{item.modality}", item)
    return list(seen.values())


def test_graph_statistics_equal_the_numpy_reference(graph, data_items: list[DataItem]):
    chosen = _one_per_kind(data_items)
    pixels, aspects = model_batch([Image.open(i.path) for i in chosen])
    out = graph.features(pixels, aspects)
    reference = batch_statistics(pixels, aspects)
    assert out.shape == (len(chosen), graph.feature_size)
    diff = np.abs(out[:, -STATS_SIZE:] - reference)
    worst = {STAT_NAMES[k]: float(diff[:, k].max()) for k in range(STATS_SIZE) if diff[:, k].max() > ATOL}
    assert not worst, worst


def test_graph_statistics_on_odd_shapes_and_flat_images(graph):
    imgs = [
        Image.new("RGB", (1, 1), (10, 200, 30)),
        Image.new("L", (3, 500), 128).convert("RGB"),
        Image.new("RGB", (300, 40), (255, 255, 255)),
        Image.open(image("non-medical/icon/debian-desktop-base_logo-256.png")),
    ]
    pixels, aspects = model_batch(imgs)
    np.testing.assert_allclose(graph.features(pixels, aspects)[:, -STATS_SIZE:], batch_statistics(pixels, aspects), atol=ATOL)


def test_graph_layout_is_the_cards(graph):
    card = read_card(SHIPPED_MODEL_DIR)["feature_extractor"]
    layout = card["layout"]
    assert layout["image_statistics"] == STAT_NAMES
    assert graph.feature_size == layout["last_block_mean"] + sum(layout["tap_means"]) + sum(layout["tap_stds"]) + STATS_SIZE


def test_torch_statistics_module_equals_numpy():
    torch = pytest.importorskip("torch", reason="the torch module belongs to the train extra")
    from medlens.training.graph import ImageStatistics

    imgs = [Image.open(image(p)) for p in (
        "medical/fundus/idrid-codras_0001.jpg", "non-medical/chart/charts-sklearn-data_area_0.png",
        "medical/xray/pydicom-data_RG1_J2KI.jpg", "non-medical/photo/skimage-data_astronaut.jpg",
    )]
    pixels, aspects = model_batch(imgs)
    with torch.inference_mode():
        out = ImageStatistics(pixels.shape[1])(torch.from_numpy(pixels), torch.from_numpy(aspects)).numpy()
    np.testing.assert_allclose(out, batch_statistics(pixels, aspects), atol=ATOL)
