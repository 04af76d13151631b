"""`medlens export` (train extra): the shipped graph is what the verified weights and the shipped
tuned blocks export to, byte for byte, and it computes what torch computes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export needs the train extra (torch)")

from fixtures.data import image  # noqa: E402
from medlens.cli import main  # noqa: E402
from medlens.model.classifier import SHIPPED_MODEL_DIR, load_extractor, read_card  # noqa: E402
from medlens.model.onnx_features import OnnxFeatures  # noqa: E402
from medlens.model.preprocess import model_batch  # noqa: E402
from medlens.training.backbones import get_spec, load_feature_net  # noqa: E402
from medlens.training.export import export_graph, first_tuned_block, load_tuned, save_tuned  # noqa: E402
from medlens.training.graph import ModelGraph  # noqa: E402
from PIL import Image  # noqa: E402

REAL = ["medical/xray/pydicom-data_RG1_J2KI.jpg", "non-medical/photo/skimage-data_astronaut.jpg"]


def _tuned_file() -> Path | None:
    """The shipped model's fine-tuned blocks, if it has any (the card says)."""
    tuned = read_card(SHIPPED_MODEL_DIR)["feature_extractor"].get("tuned_blocks")
    return SHIPPED_MODEL_DIR / tuned["file"] if tuned else None


def test_shipped_graph_is_a_byte_identical_fresh_export(tmp_path: Path):
    card = read_card(SHIPPED_MODEL_DIR)
    info = export_graph(tmp_path / "features.onnx", card["feature_extractor"]["backbone"], tuned=_tuned_file())
    assert info["weights_sha256"] == card["feature_extractor"]["weights_sha256"] == get_spec("mobilenet_v2").sha256
    assert info["sha256"] == card["feature_extractor"]["sha256"]
    assert info["feature_size"] == card["feature_extractor"]["feature_size"]


def test_export_check_command_agrees_with_the_shipped_graph(capsys):
    assert main(["export", "--check"]) == 0
    assert "graph sha256 identical" in capsys.readouterr().out


def test_export_check_honours_the_model_dir_setting(tmp_path: Path, monkeypatch, capsys):
    model = tmp_path / "model"
    shutil.copytree(SHIPPED_MODEL_DIR, model, ignore=shutil.ignore_patterns("__pycache__"))
    card = json.loads((model / "model_card.json").read_text())
    card["feature_extractor"]["weights_sha256"] = "0" * 64  # a card that names other weights
    (model / "model_card.json").write_text(json.dumps(card))
    monkeypatch.setenv("MEDLENS_MODEL_DIR", str(model))
    assert main(["export", "--check"]) == 1
    assert "weights sha256 DIFFER" in capsys.readouterr().out


def test_tuned_blocks_go_into_the_graph_and_it_equals_the_torch_module(tmp_path: Path):
    """What `medlens train --fine-tune` ships: the tuned blocks' file, exported into the graph."""
    net, _, _ = load_feature_net("mobilenet_v2")
    with torch.no_grad():
        net.blocks[18][0].weight.mul_(1.05)  # a stand-in for fine-tuned weights
    save_tuned(net, 18, tmp_path / "tuned_blocks.npz")
    assert first_tuned_block(tmp_path / "tuned_blocks.npz") == 18
    info = export_graph(tmp_path / "f.onnx", tuned=tmp_path / "tuned_blocks.npz")
    assert info["tuned_blocks"]["first_block"] == 18 and info["sha256"] != read_card(SHIPPED_MODEL_DIR)["feature_extractor"]["sha256"]
    ex = OnnxFeatures(tmp_path / "f.onnx", sha256=info["sha256"], feature_size=info["feature_size"], device="cpu")
    pixels, aspects = model_batch([Image.open(image(p)) for p in REAL])
    fresh, _, _ = load_feature_net("mobilenet_v2")
    load_tuned(fresh, tmp_path / "tuned_blocks.npz")
    with torch.inference_mode():
        expected = ModelGraph(fresh.eval(), pixels.shape[1]).eval()(torch.from_numpy(pixels), torch.from_numpy(aspects)).numpy()
    np.testing.assert_allclose(ex.features(pixels, aspects), expected, rtol=1e-4, atol=1e-4)


def test_pretrained_export_is_reproducible(tmp_path: Path):
    a = export_graph(tmp_path / "a.onnx")
    b = export_graph(tmp_path / "b.onnx")
    assert a["sha256"] == b["sha256"] and a["tuned_blocks"] is None


def test_shipped_extractor_matches_its_card():
    card = read_card(SHIPPED_MODEL_DIR)
    ex = load_extractor(SHIPPED_MODEL_DIR, card, device="cpu")
    assert ex.sha256 == card["feature_extractor"]["sha256"]
