"""`medlens export`: the verified backbone weights -> the ONNX feature extractor serving runs.

Reproducible: the same weights, backbone spec and torch version give the same file. The result
is described (file, sha256, source weights and their sha256, feature size, input) in a dict that
the model card stores under "feature_extractor", so loading can verify what it runs.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from medlens.training.backbones import load_feature_net
from medlens.model.card import file_sha256
from medlens.model.preprocess import INPUT_SIDE

FEATURES_FILE = "features.onnx"
OPSET = 17


def export_features(out_path: Path, backbone: str = "mobilenet_v2", weights_path: str | Path | None = None) -> dict[str, Any]:
    net, _, weights_sha = load_feature_net(backbone, weights_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    example = torch.zeros(1, INPUT_SIDE, INPUT_SIDE, 3, dtype=torch.uint8)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated but exact and dependency-light
            torch.onnx.export(
                net, (example,), str(tmp), input_names=["pixels"], output_names=["features"],
                dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}}, opset_version=OPSET, dynamo=False,
            )
        tmp.replace(out_path)
    finally:
        tmp.unlink(missing_ok=True)
    spec = net.spec
    return {
        "file": out_path.name,
        "sha256": file_sha256(out_path),
        "backbone": spec.name,
        "weights_file": spec.weights_file,
        "weights_sha256": weights_sha,
        "feature_size": spec.feature_size,
        "last_block_size": spec.last_size,
        "taps": list(spec.taps),
        "tap_channels": list(spec.tap_channels),
        "input": {"name": "pixels", "dtype": "uint8", "layout": "NHWC", "side": INPUT_SIDE, "resize": "whole image, bilinear"},
        "opset": OPSET,
        "exported_with": f"torch {torch.__version__.split('+')[0]}",
        "bytes": out_path.stat().st_size,
    }
