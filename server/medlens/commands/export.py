"""`medlens export`: write the model's ONNX graph from the checksum-verified backbone weights and
the model's fine-tuned blocks, or check (`--check`) that a fresh export equals the one the model
ships, byte for byte.

Needs the train extra (torch). The shipped graph was made this way; heads are tied to the graph's
sha256, so a graph from other weights needs `medlens train` afterwards.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from medlens.commands import load_settings


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export",
        help="export the model's ONNX graph (needs medlens[train])",
        description="Load the backbone's verified weights (and, with --tuned or by default the model's own "
        "tuned_blocks.npz, its fine-tuned blocks), export the graph (uint8 pixels and aspect ratio in; pooled "
        "features, block statistics and image statistics out) to ONNX and print what the model card records "
        "about it. With --check, export to a temporary file and compare it with the graph of the model in "
        "--model-dir (MEDLENS_MODEL_DIR) instead of writing.",
    )
    parser.add_argument("--backbone", default=None, help="backbone name from the registry (default: the model's)")
    parser.add_argument("--weights", help="explicit backbone weight file (default: found from the registry)")
    parser.add_argument("--tuned", type=Path, help="fine-tuned blocks (.npz); default: the model's, if it has them")
    parser.add_argument("--pretrained", action="store_true", help="export the backbone as pretrained, no tuned blocks")
    parser.add_argument("--out", type=Path, default=Path("features.onnx"), help="ONNX file to write")
    parser.add_argument("--check", action="store_true", help="compare a fresh export with the model's graph")
    return parser


def _model_graph_source(args: argparse.Namespace) -> tuple[Path, dict[str, Any], str, Path | None]:
    """The model folder, its card, and the backbone and tuned blocks a fresh export should start from."""
    from medlens.model.card import read_card, resolve_model_dir

    model_dir = resolve_model_dir(load_settings(args).model_dir)
    card = read_card(model_dir)
    info = card.get("feature_extractor", {})
    tuned = args.tuned
    if tuned is None and not args.pretrained and info.get("tuned_blocks"):
        tuned = model_dir / info["tuned_blocks"]["file"]
    return model_dir, card, args.backbone or info.get("backbone", "mobilenet_v2"), tuned


def run(args: argparse.Namespace) -> int:
    from medlens.training.export import export_graph

    if args.check:
        return _check(args)
    if args.tuned is None and not args.pretrained:
        _, _, backbone, tuned = _model_graph_source(args)
    else:
        backbone, tuned = args.backbone or "mobilenet_v2", args.tuned
    info = export_graph(args.out, backbone, args.weights, tuned)
    print(json.dumps(info, indent=2, sort_keys=True))
    return 0


def _check(args: argparse.Namespace) -> int:
    import tempfile

    import numpy as np

    from medlens.model.classifier import load_extractor
    from medlens.model.card import file_sha256
    from medlens.model.onnx_features import OnnxFeatures
    from medlens.training.export import export_graph

    model_dir, card, backbone, tuned = _model_graph_source(args)
    want = card["feature_extractor"]
    if tuned is not None and want.get("tuned_blocks") and file_sha256(tuned) != want["tuned_blocks"]["sha256"]:
        print(f"tuned blocks {tuned} differ from the model card's (sha256)")
        return 1
    shipped = load_extractor(model_dir, card, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        info = export_graph(Path(tmp) / "features.onnx", backbone, args.weights, tuned)
        fresh = OnnxFeatures(Path(tmp) / "features.onnx", sha256=info["sha256"], feature_size=info["feature_size"], device="cpu")
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, size=(4, shipped.side, shipped.side, 3), dtype=np.uint8)
        aspects = rng.normal(0, 0.3, size=4).astype(np.float32)
        diff = float(np.abs(shipped.features(pixels, aspects) - fresh.features(pixels, aspects)).max())
    same_weights = info["weights_sha256"] == want["weights_sha256"]
    identical = info["sha256"] == shipped.sha256
    print(f"weights sha256 {'match' if same_weights else 'DIFFER'}; graph sha256 "
          f"{'identical' if identical else 'differs'}; max feature difference {diff:.2e}")
    return 0 if same_weights and identical and diff < 1e-3 else 1
