"""Framed training composites: content placed inside a real screenshot or page, from another source."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures.data import image
from medlens.training.composite import LAYOUTS, compose
from medlens.training.dataset import load_dataset
from medlens.training.features import framed_samples, render


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_shows_the_content_on_the_canvas(layout: str):
    content = Image.new("RGB", (300, 300), (255, 0, 255))  # a colour neither canvas has
    canvas = Image.open(image("non-medical/screenshot/debian-htmldocs-screens_api_addons_0.png"))
    out = compose([content] * 4, canvas, layout, random.Random(1))
    arr = np.asarray(out).reshape(-1, 3).astype(int)
    magenta = ((arr[:, 0] > 200) & (arr[:, 1] < 60) & (arr[:, 2] > 200)).mean()
    assert 0.12 < magenta < 0.9, magenta  # the content is the main part, the frame is still there
    assert out == compose([content] * 4, canvas, layout, random.Random(1))


def test_unknown_layout_is_refused():
    with pytest.raises(ValueError):
        compose([Image.new("RGB", (8, 8))], Image.new("RGB", (8, 8)), "collage", random.Random(0))


def test_framed_samples_keep_labels_and_never_frame_on_their_own_source(shared_data: Path):
    samples = load_dataset(shared_data)
    framed = framed_samples(samples, seed=0)
    assert len(framed) > 0.8 * len(samples)
    assert {f.frame.layout for f in framed} == set(LAYOUTS)
    for f in framed:
        assert f.frame.canvas_source != f.source
        assert f.sources == {f.source, f.frame.canvas_source}
        assert f.modality not in ("screenshot", "document")
    assert {f.label for f in framed} == {"medical", "non-medical"}
    first = framed[0]
    assert render(first, 1, 0) == render(first, 1, 0)
