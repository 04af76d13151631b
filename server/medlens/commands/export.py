"""`medlens export`: write the ONNX feature extractor from the checksum-verified backbone weights.

Needs the train extra (torch). The shipped file was made this way; rerun it after changing the
backbone, then retrain, since heads are tied to the extractor's sha256.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export",
        help="export the backbone to the ONNX feature extractor (needs medlens[train])",
        description="Load the backbone's verified weights, export its feature network (uint8 pixels in, pooled "
        "features out) to ONNX, and print what the model card records about it. With --check, export to a "
        "temporary file and compare its features with the extractor in --model-dir instead of writing.",
    )
    parser.add_argument("--backbone", default="mobilenet_v2", help="backbone name from the registry")
    parser.add_argument("--weights", help="explicit backbone weight file (default: found from the registry)")
    parser.add_argument("--out", type=Path, default=Path("features.onnx"), help="ONNX file to write")
    parser.add_argument("--check", action="store_true", help="compare a fresh export with the model's extractor")
    return parser


def run(args: argparse.Namespace) -> int:
    from medlens.training.export import export_features

    if args.check:
        return _check(args)
    info = export_features(args.out, args.backbone, args.weights)
    print(json.dumps(info, indent=2, sort_keys=True))
    return 0


def _check(args: argparse.Namespace) -> int:
    import tempfile

    import numpy as np

    from medlens.commands import load_settings
    from medlens.model.card import read_card, resolve_model_dir
    from medlens.model.classifier import load_extractor
    from medlens.model.onnx_features import OnnxFeatures
    from medlens.training.export import export_features

    model_dir = resolve_model_dir(load_settings(args).model_dir)
    card = read_card(model_dir)
    shipped = load_extractor(model_dir, card, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        info = export_features(Path(tmp) / "features.onnx", card["feature_extractor"]["backbone"], args.weights)
        fresh = OnnxFeatures(Path(tmp) / "features.onnx", sha256=info["sha256"], feature_size=info["feature_size"], device="cpu")
        pixels = np.random.default_rng(0).integers(0, 256, size=(4, shipped.side, shipped.side, 3), dtype=np.uint8)
        aspects = np.zeros(len(pixels), dtype=np.float32)
        diff = float(np.abs(shipped.features(pixels, aspects) - fresh.features(pixels, aspects)).max())
    same_weights = info["weights_sha256"] == card["feature_extractor"]["weights_sha256"]
    print(f"weights sha256 {'match' if same_weights else 'DIFFER'}; file sha256 "
          f"{'identical' if info['sha256'] == shipped.sha256 else 'differs'}; max feature difference {diff:.2e}")
    return 0 if same_weights and diff < 1e-3 else 1
