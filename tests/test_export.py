"""`medlens export` (train extra): the shipped ONNX file is what the verified weights export to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export needs the train extra (torch)")

from fixtures.data import image  # noqa: E402
from medlens.cli import main  # noqa: E402
from medlens.training.backbones import get_spec, load_feature_net  # noqa: E402
from medlens.model.classifier import SHIPPED_MODEL_DIR, load_extractor, read_card  # noqa: E402
from medlens.training.export import export_features  # noqa: E402
from medlens.model.onnx_features import OnnxFeatures  # noqa: E402
from medlens.model.preprocess import model_batch  # noqa: E402
from PIL import Image  # noqa: E402

REAL = ["medical/xray/pydicom-data_RG1_J2KI.jpg", "non-medical/photo/skimage-data_astronaut.jpg"]


def test_shipped_extractor_equals_a_fresh_export_of_the_verified_weights(tmp_path: Path):
    card = read_card(SHIPPED_MODEL_DIR)
    info = export_features(tmp_path / "features.onnx", card["feature_extractor"]["backbone"])
    assert info["weights_sha256"] == card["feature_extractor"]["weights_sha256"] == get_spec("mobilenet_v2").sha256
    assert info["feature_size"] == card["feature_extractor"]["feature_size"]
    fresh = OnnxFeatures(tmp_path / "features.onnx", sha256=info["sha256"], feature_size=info["feature_size"], device="cpu")
    shipped = load_extractor(SHIPPED_MODEL_DIR, card, device="cpu")
    pixels, aspects = model_batch([Image.open(image(p)) for p in REAL])
    np.testing.assert_allclose(fresh.features(pixels, aspects), shipped.features(pixels, aspects), rtol=1e-4, atol=1e-4)


def test_onnx_equals_the_torch_network_it_came_from(tmp_path: Path):
    net, _, _ = load_feature_net("mobilenet_v2")
    info = export_features(tmp_path / "f.onnx")
    ex = OnnxFeatures(tmp_path / "f.onnx", sha256=info["sha256"], feature_size=info["feature_size"], device="cpu")
    pixels, aspects = model_batch([Image.open(image(p)) for p in REAL])
    with torch.inference_mode():
        expected = net(torch.from_numpy(pixels)).numpy()
    np.testing.assert_allclose(ex.features(pixels, aspects)[:, : info["feature_size"]], expected, rtol=1e-4, atol=1e-4)


def test_export_is_reproducible(tmp_path: Path):
    a = export_features(tmp_path / "a.onnx")
    b = export_features(tmp_path / "b.onnx")
    assert a["sha256"] == b["sha256"]


def test_export_check_command_agrees_with_the_shipped_file(capsys):
    assert main(["export", "--check"]) == 0
    assert "weights sha256 match" in capsys.readouterr().out
