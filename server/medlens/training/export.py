"""`medlens export`: the verified backbone weights (and the fine-tuned blocks, when the model has
them) -> the one ONNX graph serving runs: uint8 pixels and log aspect ratio in, everything the
heads read out (training/graph.py).

Reproducible: the same weights, tuned blocks, backbone spec and torch version give the same
file, byte for byte (`medlens export --check` compares). The result is described (file, sha256,
source weights and tuned blocks with their sha256, feature layout, input) in a dict that the
model card stores under "feature_extractor", so loading can verify what it runs.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlens.errors import ModelError
from medlens.model.card import file_sha256
from medlens.training.image_stats import STAT_NAMES, STATS_SIZE, STATS_VERSION
from medlens.model.preprocess import INPUT_SIDE
from medlens.training.backbones import FeatureNet, load_feature_net
from medlens.training.graph import ModelGraph

FEATURES_FILE = "features.onnx"
TUNED_FILE = "tuned_blocks.npz"
OPSET = 17


def save_tuned(net: FeatureNet, first_block: int, path: Path) -> None:
    """The fine-tuned blocks' parameters and buffers, float32, no pickle (np.load allow_pickle=False)."""
    state = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()
             if k.startswith("blocks.") and int(k.split(".")[1]) >= first_block}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.savez(fh, **state)


def load_tuned(net: FeatureNet, path: Path) -> None:
    try:
        with np.load(path, allow_pickle=False) as data:
            state = {k: torch.from_numpy(data[k]) for k in data.files}
    except (OSError, ValueError) as exc:
        raise ModelError("weights_invalid", f"cannot read tuned blocks {path}: {exc}") from exc
    current = net.state_dict()
    unknown = sorted(set(state) - set(current))
    if unknown or any(state[k].shape != current[k].shape for k in state):
        raise ModelError("weights_invalid", f"tuned blocks {path} do not fit backbone {net.spec.name!r}")
    net.load_state_dict({**current, **state}, strict=True)


def first_tuned_block(path: Path) -> int:
    with np.load(path, allow_pickle=False) as data:
        return min(int(k.split(".")[1]) for k in data.files)


def export_graph(
    out_path: Path, backbone: str = "mobilenet_v2", weights_path: str | Path | None = None, tuned: Path | None = None,
) -> dict[str, Any]:
    net, _, weights_sha = load_feature_net(backbone, weights_path)
    if tuned is not None:
        load_tuned(net, tuned)
    return write_onnx(net.eval(), out_path, weights_sha, tuned)


def onnx_export(module: torch.nn.Module, out_path: Path) -> None:
    """(pixels uint8 NHWC, aspects float32) -> "features", batch dimension dynamic; written atomically."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    example = (torch.zeros(1, INPUT_SIDE, INPUT_SIDE, 3, dtype=torch.uint8), torch.zeros(1, dtype=torch.float32))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated but exact and dependency-light
            torch.onnx.export(
                module, example, str(tmp), input_names=["pixels", "aspects"], output_names=["features"],
                dynamic_axes={"pixels": {0: "batch"}, "aspects": {0: "batch"}, "features": {0: "batch"}},
                opset_version=OPSET, dynamo=False,
            )
        tmp.replace(out_path)
    finally:
        tmp.unlink(missing_ok=True)


def write_onnx(net: FeatureNet, out_path: Path, weights_sha: str, tuned: Path | None) -> dict[str, Any]:
    """Export `net` with the statistics as the model's graph; the card's description of it."""
    onnx_export(ModelGraph(net, INPUT_SIDE).eval(), out_path)
    spec = net.spec
    return {
        "file": out_path.name,
        "sha256": file_sha256(out_path),
        "backbone": spec.name,
        "weights_file": spec.weights_file,
        "weights_sha256": weights_sha,
        "tuned_blocks": None if tuned is None else {
            "file": tuned.name, "sha256": file_sha256(tuned), "first_block": first_tuned_block(tuned),
        },
        "feature_size": spec.feature_size + STATS_SIZE,
        "layout": {
            "last_block_mean": spec.last_size,
            "tap_means": list(spec.tap_channels),
            "tap_stds": list(spec.tap_channels),
            "image_statistics": STAT_NAMES,
        },
        "last_block_size": spec.last_size,
        "taps": list(spec.taps),
        "tap_channels": list(spec.tap_channels),
        "image_stats_version": STATS_VERSION,
        "input": {
            "name": "pixels", "dtype": "uint8", "layout": "NHWC", "side": INPUT_SIDE, "resize": "whole image, bilinear",
            "aspects": "float32 (N,) log(width / height) of the original image",
        },
        "opset": OPSET,
        "exported_with": f"torch {torch.__version__.split('+')[0]}",
        "bytes": out_path.stat().st_size,
    }
