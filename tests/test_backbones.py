"""Backbone registry: checksums, refusal of wrong or damaged files, deterministic preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from fixtures.data import image
from medlens.errors import ModelError
from medlens.model.backbones import BACKBONES, get_spec, load_backbone, resolve_device


@pytest.fixture(scope="module")
def mobilenet():
    return load_backbone("mobilenet_v2", device="cpu")


def test_registry_describes_each_backbone():
    assert set(BACKBONES) >= {"mobilenet_v2", "resnet50"}
    assert get_spec("mobilenet_v2").feature_size == 1280
    assert get_spec("resnet50").feature_size == 2048
    assert get_spec("mobilenet_v2").crop_size == 224


def test_unknown_backbone_is_refused():
    with pytest.raises(ModelError) as err:
        get_spec("vgg_blob")
    assert err.value.code == "backbone_unavailable"
    assert "mobilenet_v2" in err.value.message


def test_shipped_weights_are_verified(mobilenet):
    assert mobilenet.weights_sha256 == get_spec("mobilenet_v2").sha256
    assert mobilenet.device.type == "cpu"


def test_preprocessing_is_deterministic_and_sized(mobilenet):
    img = Image.open(image("medical/xray/pydicom-data_RG1_J2KI.jpg"))
    a, b = mobilenet.preprocess(img), mobilenet.preprocess(img)
    assert a.shape == (3, 224, 224)
    assert torch.equal(a, b)
    f1, f2 = mobilenet.features([img]), mobilenet.features([img])
    assert f1.shape == (1, 1280)
    np.testing.assert_array_equal(f1, f2)


def test_features_do_not_depend_on_batch_company(mobilenet):
    a = Image.open(image("medical/xray/pydicom-data_RG1_J2KI.jpg"))
    b = Image.open(image("non-medical/photo/skimage-data_astronaut.jpg"))
    together = mobilenet.features([a, b])
    alone = np.concatenate([mobilenet.features([a]), mobilenet.features([b])])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-4)


def test_damaged_registry_file_is_refused_by_checksum(tmp_path: Path):
    good = get_spec("mobilenet_v2").candidate_paths()[0].read_bytes()
    bad = tmp_path / "mobilenet_v2-b0353104.pth"
    bad.write_bytes(good[:1000] + bytes([good[1000] ^ 0xFF]) + good[1001:])
    with pytest.raises(ModelError) as err:
        load_backbone("mobilenet_v2", weights_path=bad)
    assert err.value.code == "weights_invalid"
    assert "sha256" in err.value.message


def test_truncated_file_is_refused(tmp_path: Path):
    good = get_spec("mobilenet_v2").candidate_paths()[0].read_bytes()
    cut = tmp_path / "mine.pth"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelError) as err:
        load_backbone("mobilenet_v2", weights_path=cut)
    assert err.value.code == "weights_invalid"


def test_weights_of_another_architecture_are_refused(tmp_path: Path):
    path = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ModelError) as err:
        load_backbone("mobilenet_v2", weights_path=path)
    assert err.value.code == "weights_invalid"
    assert "does not fit" in err.value.message


def test_resnet50_code_path_with_a_random_state_dict(tmp_path: Path):
    path = tmp_path / "random-resnet50.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    extractor = load_backbone("resnet50", weights_path=path, device="cpu", runtime="torch")
    feats = extractor.features([Image.open(image("medical/xray/pydicom-data_RG1_J2KI.jpg"))])
    assert feats.shape == (1, 2048)
    assert np.isfinite(feats).all()


def test_resnet50_missing_names_the_file_and_how_to_get_it(tmp_path: Path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        with pytest.raises(ModelError) as err:
            load_backbone("resnet50")
    finally:
        torch.hub.set_dir(old)
    assert err.value.code == "backbone_unavailable"
    assert "resnet50-11ad3fa6.pth" in err.value.message
    assert "--weights" in err.value.message


def test_missing_explicit_file_is_reported(tmp_path: Path):
    with pytest.raises(ModelError) as err:
        load_backbone("mobilenet_v2", weights_path=tmp_path / "nope.pth")
    assert err.value.code == "backbone_unavailable"


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ModelError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError) as err:
            resolve_device("cuda")
        assert "CUDA" in err.value.message


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cpu_and_cuda_features_agree():
    img = Image.open(image("medical/xray/pydicom-data_RG1_J2KI.jpg"))
    cpu = load_backbone(device="cpu").features([img])
    gpu = load_backbone(device="cuda").features([img])
    np.testing.assert_allclose(cpu, gpu, rtol=1e-3, atol=1e-3)


def test_onnx_runtime_matches_torch(mobilenet, tmp_path: Path):
    assert mobilenet.runtime == "onnx"
    eager = load_backbone("mobilenet_v2", device="cpu", runtime="torch")
    imgs = [Image.open(image("medical/xray/pydicom-data_RG1_J2KI.jpg")),
            Image.open(image("non-medical/photo/skimage-data_astronaut.jpg"))]
    np.testing.assert_allclose(mobilenet.features(imgs), eager.features(imgs), rtol=1e-4, atol=1e-4)
    fresh = load_backbone("mobilenet_v2", device="cpu", runtime="onnx", onnx_dir=tmp_path)
    assert len(list(tmp_path.glob("*.onnx"))) == 1
    np.testing.assert_allclose(fresh.features(imgs), mobilenet.features(imgs), rtol=1e-5, atol=1e-5)


def test_unknown_runtime_is_refused():
    with pytest.raises(ModelError):
        load_backbone("mobilenet_v2", device="cpu", runtime="tensorrt")
