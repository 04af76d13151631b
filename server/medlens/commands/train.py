"""`medlens train`: fit the heads on a labelled folder and save them, with the feature extractor
they were fitted on, beside their model card."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from medlens.commands import load_settings
from medlens.terminal_text import printable


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train the heads on labelled images",
        description="Train the medical/non-medical head and the modality head on DIR (a manifest.csv with "
        "path,label,modality,source columns, or medical/ and non-medical/ sub-folders). Features of plain, "
        "augmented and framed views are cached, so a second run is fast. By default the heads are fitted on "
        "the shipped ONNX feature extractor (no torch needed); --backbone/--weights export a new one first "
        "(needs medlens[train]).",
    )
    parser.add_argument("--data", required=True, type=Path, help="training data folder")
    parser.add_argument("--backbone", help="export this registry backbone first instead of using the shipped extractor")
    parser.add_argument("--weights", help="explicit backbone weight file (implies an export)")
    parser.add_argument("--out", type=Path, default=Path("medlens-model"), help="where to write the model")
    parser.add_argument("--views", type=int, default=None, help="views per image: 1 plain + N-1 augmented (default 5)")
    parser.add_argument("--no-framed", action="store_true", help="train without framed composites")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5, help="source-grouped folds for calibration and threshold")
    parser.add_argument("--leave-sources-out", action="store_true",
                        help="also run the leave-sources-out study and store it in the model card (slow)")
    parser.add_argument("--jobs", type=int, default=1, help="processes for --leave-sources-out")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    return parser


def run(args: argparse.Namespace) -> int:
    from medlens.model.card import read_card, resolve_model_dir
    from medlens.model.onnx_features import OnnxFeatures
    from medlens.training.dataset import load_dataset
    from medlens.training.train import (
        DEFAULT_VIEWS, extract_training_set, leave_sources_out, modality_leave_sources_out, save_model, train,
    )

    settings = load_settings(args)
    samples = load_dataset(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.backbone or args.weights:
        from medlens.training.export import FEATURES_FILE, export_features

        info = export_features(args.out / FEATURES_FILE, args.backbone or "mobilenet_v2", args.weights)
    else:
        source_dir = resolve_model_dir(settings.model_dir)
        info = dict(read_card(source_dir)["feature_extractor"])
        if (args.out / info["file"]).resolve() != (source_dir / info["file"]).resolve():
            shutil.copyfile(source_dir / info["file"], args.out / info["file"])
    extractor = OnnxFeatures(args.out / info["file"], sha256=info["sha256"], feature_size=info["feature_size"], device=settings.device)
    progress = sys.stderr.isatty()
    cache = None if args.no_cache else settings.cache_path
    data = extract_training_set(samples, extractor, views=args.views or DEFAULT_VIEWS, seed=args.seed, cache_dir=cache,
                                framed=not args.no_framed, progress=progress)
    head, validation = train(data, info, seed=args.seed, n_folds=args.folds, data_name=str(args.data))
    if args.leave_sources_out:
        lso = leave_sources_out(data, seed=args.seed, jobs=args.jobs, progress=progress)
        for key in ("probabilities", "predictions", "paths"):
            lso.pop(key)
        head.card["leave_sources_out"] = lso
        head.card.setdefault("modality_head", {})["leave_sources_out"] = modality_leave_sources_out(data, seed=args.seed, jobs=args.jobs)
    save_model(head, args.out)
    print(f"trained on {len(data.real.samples)} images ({len(data.real.skipped)} unreadable skipped) -> {args.out}")
    for path, reason in data.real.skipped:
        print(f"  skipped {printable(path)}: {printable(reason)}")
    print(
        f"calibration {head.calibrator.method}, threshold {head.threshold:.4f}; source-grouped validation: balanced "
        f"accuracy {validation['balanced_accuracy']:.4f}, ROC AUC {_auc(validation['roc_auc'])}, ECE "
        f"{validation['calibration']['calibrated']['ece']:.4f}"
    )
    if args.leave_sources_out:
        lso = head.card["leave_sources_out"]
        print(f"leave-sources-out: balanced accuracy {lso['balanced_accuracy']:.4f}, ROC AUC {_auc(lso['roc_auc'])}, "
              f"ECE {lso['calibration']['ece']:.4f}")
    return 0


def _auc(auc: float | None) -> str:
    return f"{auc:.4f}" if auc is not None else "n/a (one class only)"
