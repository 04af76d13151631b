"""The feature extractor that serving runs: the ONNX file `medlens export` wrote, in ONNX Runtime.

No torch here. The file is checked against the sha256 its model card records before a session
is opened, so a damaged or swapped file is refused instead of silently giving other numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlens.errors import ModelError
from medlens.model.card import file_sha256
from medlens.model.image_stats import STATS_SIZE, batch_statistics

DEVICES = ("auto", "cpu", "cuda")
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


class OnnxFeatures:
    """uint8 (N, S, S, 3) pixels and (N,) log aspect ratios in, float32 (N, width) out: everything
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
        self.input_name = inputs[0].name
        self.side = int(inputs[0].shape[1])
        # a graph with an aspect-ratio input computes the image statistics itself
        self._aspect_name = inputs[1].name if len(inputs) > 1 else None
        self.width = feature_size if self._aspect_name else feature_size + STATS_SIZE
        out = self._session.get_outputs()[0]
        if isinstance(out.shape[1], int) and out.shape[1] != feature_size:
            raise ModelError(
                "head_mismatch", f"feature extractor {path} gives {out.shape[1]} features, the model card says {feature_size}"
            )

    def features(self, pixels: np.ndarray, aspects: np.ndarray) -> np.ndarray:
        if len(pixels) == 0:
            return np.zeros((0, self.width), dtype=np.float32)
        pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
        aspects = np.ascontiguousarray(aspects, dtype=np.float32)
        if self._aspect_name:
            out = self._session.run(None, {self.input_name: pixels, self._aspect_name: aspects})[0]
            return np.asarray(out, dtype=np.float32)
        out = self._session.run(None, {self.input_name: pixels})[0]
        return np.concatenate([np.asarray(out, dtype=np.float32), batch_statistics(pixels, aspects)], axis=1)
