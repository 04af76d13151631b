#!/usr/bin/env python
"""Which levers generalise to unseen sources: the card's source-grouped study with levers beside it.

Each fold of N source-grouped folds fine-tunes the backbone's blocks from --first-block on (or,
with --heads-only, fits only the heads on the pretrained graph) and fits the heads without the
fold's sources. Beside the recipe, each fold also scores the heads on the untuned network and the
heads with or without framed composites, at cross-fitted thresholds. The trunk (blocks before
--cache-block) runs once per view and is cached; deeper variants start from that cache.

    python scripts/model_levers.py --data ../shared/data --first-block 18 --lr 3e-4 --epochs 2 --report out.json
    python scripts/model_levers.py --data ../shared/data --heads-only --only-folds 0,1,2 --report part1.json

Run folds in several processes with --only-folds and merge the reports with --merge a.json b.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from medlens.training.dataset import load_dataset  # noqa: E402
from medlens.training.finetune import TUNE_DEFAULTS, advance, trunk_activations, tuned_training_set  # noqa: E402
from medlens.training.recipe import FoldResult, grouped_study, summarise  # noqa: E402
from medlens.training.train import grouped_folds, modality_names  # noqa: E402


def _print(report: dict) -> None:
    m = report["modality"]
    print(f"folds {report['folds_run']}: balanced accuracy {report['balanced_accuracy']:.4f}, AUC {report['roc_auc']:.4f}, "
          f"ECE {report['calibration']['ece']:.4f}, framed {report['framed_accuracy']}, modality {m['accuracy_known_kinds']}")
    print(f"{'lever':<32}{'balanced acc':>14}{'AUC':>9}")
    for name, row in report["levers"].items():
        print(f"{name:<32}{row['balanced_accuracy']:>14.4f}{row['roc_auc']:>9.4f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("MEDLENS_CACHE_DIR", "~/.cache/medlens")).expanduser())
    parser.add_argument("--cache-block", type=int, default=14, help="first block not in the cached trunk")
    parser.add_argument("--first-block", type=int, default=18, help="first fine-tuned block")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--draws", type=int, default=TUNE_DEFAULTS["draws_per_epoch"])
    parser.add_argument("--views", type=int, default=3, help="cached views per image: 1 plain + augmented")
    parser.add_argument("--heads-only", action="store_true", help="no fine-tuning: heads on the pretrained graph")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--only-folds", help="comma-separated folds to run (for several processes)")
    parser.add_argument("--merge", nargs="+", type=Path, help="merge reports written with --only-folds")
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    samples = load_dataset(args.data)
    net, _, layout, acts = trunk_activations(samples, args.cache, first_block=args.cache_block, views=args.views,
                                             framed_views=1, progress=sys.stderr.isatty())
    if args.first_block != args.cache_block:
        layout, acts = advance(net, layout, acts, args.first_block)
    spec = {**TUNE_DEFAULTS, "first_block": args.first_block, "lr": args.lr, "epochs": args.epochs, "draws_per_epoch": args.draws}
    fixed = tuned_training_set(net, layout, acts, framed=True) if args.heads_only else None
    if args.merge:
        folds = grouped_folds([s.source for s in samples], args.folds)
        classes, _ = modality_names([s for s in samples if s.y == 1])
        parts = [json.loads(p.read_text()) for p in args.merge]
        results = sorted((int(k), FoldResult.from_dict(v)) for p in parts for k, v in p["fold_results"].items())
        report = summarise(fixed or acts, folds, results, classes)
    else:
        only = [int(k) for k in args.only_folds.split(",")] if args.only_folds else None
        report = grouped_study(None if fixed else net, None if fixed else layout, fixed or acts, spec,
                               n_folds=args.folds, only_folds=only, levers=True, fixed=fixed)
    report["spec"] = {"heads_only": args.heads_only, **spec}
    _print(report)
    if args.report:
        args.report.write_text(json.dumps(report) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
