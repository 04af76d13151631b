"""`medlens evaluate`: metrics of a trained model on labelled data, or a leave-sources-out study."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from medlens.commands import load_settings


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="measure a model on labelled images",
        description="Print accuracy, balanced accuracy, per-class precision/recall/F1, ROC AUC, the confusion "
        "matrix and per-source / per-modality accuracy; write them as JSON (--report) with ROC, confusion and "
        "reliability plots beside it. --leave-sources-out instead trains one head per held-out source.",
    )
    parser.add_argument("--data", required=True, type=Path, help="labelled data folder (as for train)")
    parser.add_argument("--report", type=Path, help="JSON report path; plots go next to it")
    parser.add_argument("--threshold", type=float, help="decision threshold (default: the model's)")
    parser.add_argument("--leave-sources-out", action="store_true",
                        help="hold out each source in turn and train on the rest (slow: one head per source)")
    parser.add_argument("--views", type=int, default=None, help="with --leave-sources-out: views per image")
    parser.add_argument("--sources", help="with --leave-sources-out: hold out only these sources (comma-separated)")
    parser.add_argument("--jobs", type=int, default=1, help="with --leave-sources-out: processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grouped-folds", type=int, metavar="N",
                        help="rerun the model card's study: N source-grouped folds, each fitted without its sources "
                        "(and fine-tuned, if the model is), scored with calibration, threshold and naming rule from "
                        "the other folds")
    parser.add_argument("--only-folds", help="with --grouped-folds: rerun only these folds (comma-separated); the "
                        "others' held-out predictions come from the model card")
    return parser


def run(args: argparse.Namespace) -> int:
    from medlens.training.dataset import load_dataset
    from medlens.training.evaluate import evaluate, format_report, write_plots, write_report

    settings = load_settings(args)
    samples = load_dataset(args.data)
    progress = sys.stderr.isatty()
    if args.leave_sources_out:
        return _leave_sources_out(args, settings, samples, progress)
    if args.grouped_folds:
        return _grouped_folds(args, settings, samples, progress)
    from medlens.model.classifier import Classifier

    classifier = Classifier.from_settings(settings)
    report, y, proba = evaluate(classifier, samples, threshold=args.threshold, progress=progress)
    print(format_report(report))
    if args.report:
        write_report(report, args.report)
        try:
            plots = write_plots(report, y, proba, args.report.parent)
        except ImportError:  # the lean install has no matplotlib; the JSON report is still whole
            print(f"\nreport: {args.report}; no plots: they need matplotlib (pip install 'medlens[train]')")
        else:
            print(f"\nreport: {args.report}; plots: {', '.join(str(p) for p in plots)}")
    return 0


def _leave_sources_out(args: argparse.Namespace, settings: Any, samples: list, progress: bool) -> int:
    from medlens.model.card import read_card, resolve_model_dir
    from medlens.model.classifier import load_extractor
    from medlens.training.train import DEFAULT_VIEWS, extract_training_set, leave_sources_out

    model_dir = resolve_model_dir(settings.model_dir)
    extractor = load_extractor(model_dir, read_card(model_dir), device=settings.device)
    data = extract_training_set(samples, extractor, views=args.views or DEFAULT_VIEWS, seed=args.seed,
                                cache_dir=settings.cache_path, progress=progress)
    only = set(args.sources.split(",")) if args.sources else None
    report = leave_sources_out(data, seed=args.seed, jobs=args.jobs, progress=progress, only=only)
    print(f"leave-sources-out: {len(report['per_source'])} held-out sources, {report['n']} images")
    print(f"balanced accuracy {report['balanced_accuracy']:.4f}   accuracy {report['accuracy']:.4f}   "
          f"ROC AUC {report['roc_auc'] or float('nan'):.4f}   ECE {report['calibration']['ece']:.4f}   "
          f"framed {report['framed_accuracy'] if report['framed_accuracy'] is not None else 'n/a'}")
    print(f"\n{'held-out source':<30}{'label':<13}{'n':>4}{'acc':>8}{'errors':>8}{'thr':>7}{'mean p':>8}")
    for name, m in report["per_source"].items():
        print(f"{name:<30}{m['label']:<13}{m['n']:>4}{m['accuracy']:>8.3f}{m['errors']:>8}{m['threshold']:>7.3f}"
              f"{m['mean_probability']:>8.3f}")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"\nreport: {args.report}")
    return 0


def _grouped_folds(args: argparse.Namespace, settings: Any, samples: list, progress: bool) -> int:
    from medlens.model.card import read_card, resolve_model_dir
    from medlens.model.classifier import load_extractor
    from medlens.training.recipe import format_study, results_from_card, run_fold, summarise
    from medlens.training.train import extract_training_set, grouped_folds, modality_names

    model_dir = resolve_model_dir(settings.model_dir)
    card = read_card(model_dir)
    tuning = card.get("training", {}).get("fine_tuning", {})
    if tuning.get("epochs"):
        print("this model's graph is fine-tuned: rerun its study with `medlens train --fine-tune` (the folds tune too)")
        return 1
    extractor = load_extractor(model_dir, card, device=settings.device)
    data = extract_training_set(samples, extractor, views=1, seed=args.seed, cache_dir=settings.cache_path,
                                progress=progress, framed_views=1)
    folds = grouped_folds([s.source for s in data.real.samples], args.grouped_folds, args.seed)
    classes, _ = modality_names([s for s in data.real.samples if s.y == 1])
    rerun = [int(k) for k in args.only_folds.split(",")] if args.only_folds else list(range(len(folds)))
    results = {k: run_fold(None, None, None, data, folds[k], {}, classes, seed=args.seed, fixed=data) for k in rerun}
    stored = card.get("held_out_predictions")
    if len(rerun) < len(folds):
        if not stored or len(stored["raw"]) != len(data.real.samples):
            print("--only-folds needs the data the model card's study ran on (its held-out predictions)")
            return 1
        for k, r in results_from_card(stored, data, folds):
            results.setdefault(k, r)
    report = summarise(data, folds, sorted(results.items()), classes)
    report.pop("oof")
    report["rerun_folds"] = rerun
    print(format_study(report))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"\nreport: {args.report}")
    return 0
