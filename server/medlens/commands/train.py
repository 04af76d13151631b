"""`medlens train`: fit the heads on a labelled folder and save them with their model card."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from medlens.commands import load_settings


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train the heads on labelled images",
        description="Train the medical/non-medical head and the modality head on DIR (a manifest.csv with "
        "path,label,modality,source columns, or medical/ and non-medical/ sub-folders). Backbone features of "
        "augmented views are cached, so a second run is fast.",
    )
    parser.add_argument("--data", required=True, type=Path, help="training data folder")
    parser.add_argument("--backbone", help="backbone name from the registry (default: mobilenet_v2)")
    parser.add_argument("--weights", help="explicit backbone weight file")
    parser.add_argument("--out", type=Path, default=Path("medlens-model"), help="where to write the head and card")
    parser.add_argument("--views", type=int, default=None, help="views per image: 1 plain + N-1 augmented (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5, help="source-grouped folds for the threshold")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    return parser


def run(args: argparse.Namespace) -> int:
    from medlens.model.backbones import load_backbone
    from medlens.model.dataset import load_dataset
    from medlens.model.train import DEFAULT_VIEWS, extract_features, train

    settings = load_settings(args, backbone=args.backbone, weights_path=args.weights)
    samples = load_dataset(args.data)
    extractor = load_backbone(settings.backbone, settings.weights_path or None, settings.device, runtime=settings.runtime)
    progress = sys.stderr.isatty()
    table = extract_features(
        samples, extractor, views=args.views or DEFAULT_VIEWS, seed=args.seed,
        cache_dir=None if args.no_cache else settings.cache_path, progress=progress,
    )
    head, validation = train(
        table, extractor, seed=args.seed, n_folds=args.folds, data_name=str(args.data), progress=progress
    )
    head.save(args.out)
    auc = validation["roc_auc"]
    print(f"trained on {len(table.samples)} images ({len(table.skipped)} unreadable skipped) -> {args.out}")
    for path, reason in table.skipped:
        print(f"  skipped {path}: {reason}")
    print(
        f"threshold {head.threshold:.4f}; source-grouped validation: balanced accuracy "
        f"{validation['balanced_accuracy']:.4f}, ROC AUC {auc:.4f}" if auc is not None else "ROC AUC n/a"
    )
    return 0
