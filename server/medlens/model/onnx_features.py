"""The model's graph that serving runs: the ONNX file `medlens export` wrote, in ONNX Runtime.

It takes the uint8 pixels and the log aspect ratio and returns everything the heads read (the
network's pooled features, its tapped blocks' statistics and the image statistics), so the host
only decodes and resizes. No torch here. The file is checked against the sha256 its model card records before a session
is opened, so a damaged or swapped file is refused instead of silently giving other numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlens.errors import ModelError
from medlens.model.card import file_sha256

DEVICES = ("auto", "cpu", "cuda")
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


class OnnxFeatures:
    """uint8 (N, S, S, 3) pixels and (N,) log aspect ratios in, float32 (N, feature_size) out: everything
    the heads read. Safe to call from several threads."""

    def __init__(self, path: Path, *, sha256: str | None, feature_size: int, device: str = "auto", threads: int = 0):
        if device not in DEVICES:
            raise ModelError("backbone_unavailable", f"device must be auto, cpu or cuda, not {device!r}")
        if not path.is_file():
            raise ModelError(
                "backbone_unavailable", f"feature extractor {path} is missing; reinstall MedLens or run `medlens export`"
            )
        actual = file_sha256(path)
        if sha256 is not None and actual != sha256:
            raise ModelError(
                "weights_invalid",
                f"feature extractor {path} is damaged or replaced: sha256 {actual[:16]}… does not match the model "
                f"card's {sha256[:16]}…; reinstall MedLens or run `medlens export`",
            )
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError("backbone_unavailable", "MedLens needs onnxruntime: pip install onnxruntime") from None
        available = ort.get_available_providers()
        if device == "cuda" and _CUDA not in available:
            raise ModelError(
                "backbone_unavailable",
                "device 'cuda' asked for, but ONNX Runtime has no CUDA provider: pip install 'medlens[gpu]'",
            )
        providers = [_CUDA, _CPU] if device in ("auto", "cuda") and _CUDA in available else [_CPU]
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for a bad graph
            raise ModelError("weights_invalid", f"cannot load feature extractor {path}: {exc}") from exc
        self.path = path
        self.sha256 = actual
        self.feature_size = feature_size
        self.device = "cuda" if _CUDA in self._session.get_providers() else "cpu"
        inputs = self._session.get_inputs()
        if len(inputs) != 2:
            raise ModelError(
                "head_mismatch", f"{path} is a feature extractor of an older MedLens (no aspect-ratio input); "
                "reinstall MedLens or retrain with `medlens train`",
            )
        self.input_name, self._aspect_name = inputs[0].name, inputs[1].name
        self.side = int(inputs[0].shape[1])
        out = self._session.get_outputs()[0]
        if isinstance(out.shape[1], int) and out.shape[1] != feature_size:
            raise ModelError(
                "head_mismatch", f"feature extractor {path} gives {out.shape[1]} features, the model card says {feature_size}"
            )

    def features(self, pixels: np.ndarray, aspects: np.ndarray) -> np.ndarray:
        if len(pixels) == 0:
            return np.zeros((0, self.feature_size), dtype=np.float32)
        feeds = {
            self.input_name: np.ascontiguousarray(pixels, dtype=np.uint8),
            self._aspect_name: np.ascontiguousarray(aspects, dtype=np.float32),
        }
        return np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)
