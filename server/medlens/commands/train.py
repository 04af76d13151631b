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
    parser.add_argument("--views", type=int, default=None,
                        help="views per image: 1 plain + N-1 augmented (default 1; with --fine-tune 3, for the tuning)")
    parser.add_argument("--no-framed", action="store_true", help="train without framed composites")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=10,
                        help="source-grouped folds of the study that sets calibration, threshold and naming rule")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    tune = parser.add_argument_group(
        "fine-tuning (the shipped recipe; needs medlens[train])",
        "--fine-tune tunes the backbone's last blocks on cached activations of the frozen ones, in every "
        "source-grouped fold (--folds, 10 for the shipped model) and then on all data; exports the tuned graph "
        "and fits the heads on its features. The card records the grouped study.",
    )
    tune.add_argument("--fine-tune", action="store_true", help="fine-tune the backbone's last blocks first")
    tune.add_argument("--first-block", type=int, default=None, help="first tuned block (default 14)")
    tune.add_argument("--lr", type=float, default=None, help="learning rate of the tuned blocks (default 1e-4)")
    tune.add_argument("--epochs", type=int, default=None, help="epochs of --draws batches' worth (default 3)")
    tune.add_argument("--draws", type=int, default=None, help="images drawn per epoch (default 2048)")
    tune.add_argument("--levers", action="store_true",
                      help="in the same folds, also score heads on the untuned network and heads without composites "
                           "(the card's grouped_folds.levers): what the tuning and the composites each add")
    return parser


def run(args: argparse.Namespace) -> int:
    import time

    from medlens.model.card import read_card, resolve_model_dir
    from medlens.model.onnx_features import OnnxFeatures
    from medlens.training.dataset import load_dataset
    from medlens.training.recipe import fit_final, grouped_study, pooled_decisions, tuned_card
    from medlens.training.train import extract_training_set, save_model

    t0 = time.monotonic()
    settings = load_settings(args)
    samples = load_dataset(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    framed = not args.no_framed
    if args.fine_tune:
        return _fine_tune(args, settings, samples, t0)
    if args.backbone or args.weights:
        from medlens.training.export import FEATURES_FILE, export_graph

        info = export_graph(args.out / FEATURES_FILE, args.backbone or "mobilenet_v2", args.weights)
    else:
        source_dir = resolve_model_dir(settings.model_dir)
        info = dict(read_card(source_dir)["feature_extractor"])
        for name in (info["file"], (info.get("tuned_blocks") or {}).get("file")):
            if name and (args.out / name).resolve() != (source_dir / name).resolve():
                shutil.copyfile(source_dir / name, args.out / name)
    extractor = OnnxFeatures(args.out / info["file"], sha256=info["sha256"], feature_size=info["feature_size"], device=settings.device)
    cache = None if args.no_cache else settings.cache_path
    data = extract_training_set(samples, extractor, views=args.views or 1, seed=args.seed, cache_dir=cache,
                                framed=framed, progress=sys.stderr.isatty(), framed_views=1)
    spec = {"epochs": 0, "note": "heads only, on the graph as it is"}
    study = grouped_study(None, None, data, spec, n_folds=args.folds, seed=args.seed, framed_heads=framed, fixed=data)
    decision, rule = pooled_decisions(study, data)
    head, _ = fit_final(None, None, data, spec, decision, rule, seed=args.seed, framed_heads=framed, fixed=data)
    head.card = tuned_card(info, data, spec, study, decision, rule, seed=args.seed, data_name=str(args.data),
                           framed_heads=framed, seconds=time.monotonic() - t0)
    save_model(head, args.out)
    for path, reason in data.real.skipped:
        print(f"  skipped {printable(path)}: {printable(reason)}")
    _print_summary(head, study, len(data.real.samples), len(data.real.skipped), args)
    return 0


def _fine_tune(args: argparse.Namespace, settings: Any, samples: list, t0: float) -> int:
    import time

    from medlens.training.export import FEATURES_FILE, TUNED_FILE, save_tuned, write_onnx
    from medlens.training.finetune import TUNE_DEFAULTS, trunk_activations
    from medlens.training.recipe import fit_final, grouped_study, pooled_decisions, tuned_card
    from medlens.training.train import save_model

    spec = dict(TUNE_DEFAULTS)
    for key, value in (("first_block", args.first_block), ("lr", args.lr), ("epochs", args.epochs),
                       ("draws_per_epoch", args.draws)):
        if value is not None:
            spec[key] = value
    spec["framed"] = not args.no_framed
    net, weights_sha, layout, acts = trunk_activations(
        samples, settings.cache_path, first_block=spec["first_block"], views=args.views or 3,
        framed_views=0 if args.no_framed else 1, seed=args.seed, backbone=args.backbone or "mobilenet_v2",
        weights_path=args.weights, progress=sys.stderr.isatty(),
    )
    study = grouped_study(net, layout, acts, spec, n_folds=args.folds, seed=args.seed, framed_heads=spec["framed"],
                          levers=args.levers)
    decision, rule = pooled_decisions(study, acts)
    head, _ = fit_final(net, layout, acts, spec, decision, rule, seed=args.seed, framed_heads=spec["framed"])
    save_tuned(net, spec["first_block"], args.out / TUNED_FILE)
    info = write_onnx(net, args.out / FEATURES_FILE, weights_sha, args.out / TUNED_FILE)
    head.card = tuned_card(info, acts, spec, study, decision, rule, seed=args.seed, data_name=str(args.data),
                           framed_heads=spec["framed"], seconds=time.monotonic() - t0)
    save_model(head, args.out)
    _print_summary(head, study, len(acts.real.samples), len(acts.real.skipped), args)
    return 0


def _print_summary(head: Any, study: dict[str, Any], n: int, skipped: int, args: argparse.Namespace) -> None:
    thr = study["threshold_between_folds"]
    print(f"trained on {n} images ({skipped} unreadable skipped) -> {args.out}")
    print(f"{args.folds} source-grouped folds: balanced accuracy {study['balanced_accuracy']:.4f}, ROC AUC "
          f"{_auc(study['roc_auc'])}, ECE {study['calibration']['ece']:.4f}, framed {study['framed_accuracy']}, "
          f"modality {study['modality']['accuracy_known_kinds']}")
    print(f"calibration {head.calibrator.method}, threshold {head.threshold:.4f} (between folds {thr['min']:.3f} .. {thr['max']:.3f})")


def _auc(auc: float | None) -> str:
    return f"{auc:.4f}" if auc is not None else "n/a (one class only)"
