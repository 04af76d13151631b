"""The shipped ONNX feature extractor: verified against its model card before it runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from medlens.errors import ModelError
from medlens.model.classifier import SHIPPED_MODEL_DIR, Classifier, load_extractor, read_card
from medlens.model.onnx_features import OnnxFeatures


def _copy_model(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(SHIPPED_MODEL_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_shipped_extractor_matches_its_card():
    card = read_card(SHIPPED_MODEL_DIR)
    ex = load_extractor(SHIPPED_MODEL_DIR, card, device="cpu")
    assert ex.sha256 == card["feature_extractor"]["sha256"]
    assert ex.device == "cpu" and ex.side == card["feature_extractor"]["input"]["side"]
    pixels = np.random.default_rng(0).integers(0, 256, (3, ex.side, ex.side, 3), dtype=np.uint8)
    aspects = np.zeros(3, dtype=np.float32)
    out = ex.features(pixels, aspects)
    assert out.shape == (3, ex.feature_size) and np.isfinite(out).all()
    np.testing.assert_allclose(ex.features(pixels[1:2], aspects[1:2]), out[1:2], rtol=1e-4, atol=1e-4)
    assert ex.features(pixels[:0], aspects[:0]).shape == (0, ex.feature_size)


def test_damaged_extractor_is_refused(tmp_path: Path):
    model_dir = _copy_model(tmp_path)
    path = model_dir / read_card(model_dir)["feature_extractor"]["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError) as err:
        Classifier.load(model_dir, device="cpu")
    assert err.value.code == "weights_invalid"
    assert "damaged or replaced" in err.value.message


def test_missing_extractor_says_how_to_get_it(tmp_path: Path):
    model_dir = _copy_model(tmp_path)
    (model_dir / read_card(model_dir)["feature_extractor"]["file"]).unlink()
    with pytest.raises(ModelError) as err:
        Classifier.load(model_dir, device="cpu")
    assert err.value.code == "backbone_unavailable" and "medlens export" in err.value.message


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path):
    bad = tmp_path / "features.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError) as err:
        OnnxFeatures(bad, sha256=None, feature_size=10, device="cpu")
    assert err.value.code == "weights_invalid"


def test_unknown_device_and_missing_cuda_are_clear_errors():
    path = SHIPPED_MODEL_DIR / read_card(SHIPPED_MODEL_DIR)["feature_extractor"]["file"]
    with pytest.raises(ModelError) as err:
        OnnxFeatures(path, sha256=None, feature_size=1, device="tpu")
    assert "auto, cpu or cuda" in err.value.message
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider: the refusal cannot be shown here")
    with pytest.raises(ModelError) as err:
        OnnxFeatures(path, sha256=None, feature_size=1, device="cuda")
    assert "medlens[gpu]" in err.value.message


def test_an_older_extractor_without_the_statistics_is_refused(tmp_path: Path):
    """A graph of MedLens v2 (pixels in, network features out; statistics on the host) cannot feed these heads."""
    onnx = pytest.importorskip("onnx", reason="building a graph needs the onnx package (train extra)")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["pixels"], ["f"], to=TensorProto.FLOAT),
         helper.make_node("ReduceMean", ["f"], ["features"], axes=[1, 2], keepdims=0)],
        "v2", [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["batch", 224, 224, 3])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 3])],
    )
    path = tmp_path / "old.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelError) as err:
        OnnxFeatures(path, sha256=None, feature_size=3, device="cpu")
    assert err.value.code == "head_mismatch" and "older MedLens" in err.value.message
