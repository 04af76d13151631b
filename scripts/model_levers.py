#!/usr/bin/env python
"""Which feature levers generalise to unseen sources: leave-one-source-out on ../shared/data.

Each variant is a choice of feature blocks (MobileNetV2's last layer, its pooled intermediate
blocks, EfficientNet-Lite0's last layer, the image statistics), views (plain only, or plain + 4
augmented) and framed composites. Levers are compared at a fixed 0.5 cut on the label-balanced
head (one fit per held-out source); `--full` then runs the shipped protocol on the chosen one
(calibration and threshold from inner source-grouped folds, framed composites scored, the
modality head held out by source). Prints a table; `--report` writes everything as JSON.

    python scripts/model_levers.py --data ../shared/data --jobs 2               # build features here, run
    python scripts/model_levers.py --save-bundle carry/levers.npz                # features only, for another machine
    python scripts/model_levers.py --bundle carry/levers.npz --jobs 16 --full    # run from a bundle
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from medlens.training.dataset import Frame, Sample, load_dataset  # noqa: E402
from medlens.training.features import FeatureTable, extract_features, framed_samples  # noqa: E402
from medlens.training.metrics import balanced_accuracy, roc_auc  # noqa: E402
from medlens.training import train as T  # noqa: E402

MNV2_LAST, MNV2_TAPS, STATS = "mnv2_last", "mnv2_taps", "stats"
EFF_LAST = "eff_last"
VARIANTS = {
    # name: (blocks, views, framed)
    "mnv2 last layer (plain)": ([MNV2_LAST], 1, False),
    "+ pooled blocks 3/6/13": ([MNV2_LAST, MNV2_TAPS], 1, False),
    "+ image statistics": ([MNV2_LAST, MNV2_TAPS, STATS], 1, False),
    "+ 2 augmented views": ([MNV2_LAST, MNV2_TAPS, STATS], 3, False),
    "+ framed composites": ([MNV2_LAST, MNV2_TAPS, STATS], 3, True),
    "+ EfficientNet-Lite0 (concat)": ([MNV2_LAST, MNV2_TAPS, STATS, EFF_LAST], 3, True),
    "EfficientNet-Lite0 last layer (plain)": ([EFF_LAST], 1, False),
    "mnv2 last + stats, views, framed (no taps)": ([MNV2_LAST, STATS], 3, True),
    "+ 4 augmented views (5 in all), framed x2": ([MNV2_LAST, MNV2_TAPS, STATS], 5, True),
}


def build_bundle(data_dir: Path, cache: Path, seed: int, backbones: list[str]) -> dict[str, object]:
    from medlens.training.export import export_features
    from medlens.model.onnx_features import OnnxFeatures

    samples = load_dataset(data_dir)
    framed = framed_samples(samples, seed)
    out: dict[str, object] = {}
    for tag, backbone in (("mnv2", "mobilenet_v2"), ("eff", "efficientnet_lite0")):
        if tag not in backbones:
            continue
        info = export_features(cache / f"levers-{backbone}.onnx", backbone)
        ex = OnnxFeatures(cache / info["file"], sha256=info["sha256"], feature_size=info["feature_size"], device="cpu")
        real = extract_features(samples, ex, views=5, seed=seed, cache_dir=cache, desc=f"{tag} real")
        fr = extract_features(framed, ex, views=2, seed=seed, cache_dir=cache, desc=f"{tag} framed")
        assert len(real.samples) == len(samples) and len(fr.samples) == len(framed), "unreadable training images"
        out[f"{tag}_real"], out[f"{tag}_framed"] = real.features, fr.features
    out["meta"] = json.dumps({"real": [_meta(s) for s in samples], "framed": [_meta(s) for s in framed]})
    return out


def _meta(s: Sample) -> dict[str, object]:
    m = {"path": str(s.path), "label": s.label, "modality": s.modality, "source": s.source}
    if s.frame:
        m["frame"] = {"layout": s.frame.layout, "canvas": str(s.frame.canvas), "canvas_source": s.frame.canvas_source}
    return m


def _sample(m: dict) -> Sample:
    f = m.get("frame")
    frame = Frame(f["layout"], Path(f["canvas"]), f["canvas_source"]) if f else None
    return Sample(Path(m["path"]), m["label"], m["modality"], m["source"], frame)


def blocks_of(arrays: dict[str, np.ndarray], part: str) -> dict[str, np.ndarray]:
    mn = arrays[f"mnv2_{part}"].astype(np.float32)
    out = {MNV2_LAST: mn[..., :1280], MNV2_TAPS: mn[..., 1280:1584], STATS: mn[..., 1584:]}
    if f"eff_{part}" in arrays:
        out[EFF_LAST] = arrays[f"eff_{part}"][..., :1280].astype(np.float32)
    return out


def variant_set(arrays: dict, meta: dict, blocks: list[str], views: int, framed: bool) -> T.TrainingSet:
    real_b, framed_b = blocks_of(arrays, "real"), blocks_of(arrays, "framed")
    real = FeatureTable([_sample(m) for m in meta["real"]], np.concatenate([real_b[b][:, :views] for b in blocks], axis=-1))
    fr = None
    if framed:
        framed_views = 1 if views <= 3 else 2
        fr = FeatureTable([_sample(m) for m in meta["framed"]], np.concatenate([framed_b[b][:, :framed_views] for b in blocks], axis=-1))
    return T.TrainingSet(real, fr)


def _fixed_cut_fold(args: tuple[T.TrainingSet, str]) -> tuple[np.ndarray, np.ndarray]:
    data, source = args
    test = np.array([i for i, s in enumerate(data.real.samples) if s.source == source])
    booster = T.fit_binary(data.without_sources({source}), 0, 1)
    return test, booster.inplace_predict(data.real.features[test, 0])


def lso_fixed_cut(data: T.TrainingSet, jobs: int) -> dict[str, object]:
    sources = sorted({s.source for s in data.real.samples})
    proba = np.zeros(len(data.real.samples))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for test, p in pool.map(_fixed_cut_fold, [(data, s) for s in sources]):
            proba[test] = p
    y = data.real.y
    pred = (proba >= 0.5).astype(int)
    per_source = {}
    for s in sources:
        idx = [i for i, x in enumerate(data.real.samples) if x.source == s]
        per_source[s] = {"n": len(idx), "accuracy": float((pred[idx] == y[idx]).mean()), "errors": int((pred[idx] != y[idx]).sum())}
    worst = sorted(per_source, key=lambda s: per_source[s]["accuracy"])[:5]
    return {"balanced_accuracy": balanced_accuracy(y, pred), "roc_auc": roc_auc(y, proba), "worst": {w: per_source[w] for w in worst}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=Path(".cache"))
    ap.add_argument("--bundle", type=Path, help="read features from this .npz instead of extracting them")
    ap.add_argument("--save-bundle", type=Path, help="extract features, write them here, and stop")
    ap.add_argument("--variants", default="all", help="comma-separated variant numbers (1-based) or 'all' or 'none'")
    ap.add_argument("--full", type=int, default=0, help="also run the full protocol on this variant number")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--backbones", default="mnv2,eff", help="which feature sets to extract: mnv2, eff")
    ap.add_argument("--report", type=Path)
    ap.add_argument("--bundle-views", type=int, default=5, help="with --save-bundle: views kept (framed: 1 if <= 3, else 2)")
    args = ap.parse_args()

    if args.bundle:
        loaded = np.load(args.bundle)
        arrays = {k: loaded[k] for k in loaded.files if k != "meta"}
        meta = json.loads(str(loaded["meta"]))
    else:
        built = build_bundle(args.data, args.cache, 0, args.backbones.split(","))
        meta = json.loads(built.pop("meta"))
        arrays = built
        if args.save_bundle:
            args.save_bundle.parent.mkdir(parents=True, exist_ok=True)
            keep = {"real": args.bundle_views, "framed": 1 if args.bundle_views <= 3 else 2}
            arrays = {k: v[:, : keep[k.rsplit("_", 1)[1]]] for k, v in arrays.items()}
            small = {k: v.astype(np.float16) for k, v in arrays.items()}
            # statistics keep full precision: a float16 aspect ratio or share would be coarse
            small["mnv2_real_stats"] = arrays["mnv2_real"][..., 1584:]
            small["mnv2_framed_stats"] = arrays["mnv2_framed"][..., 1584:]
            np.savez(args.save_bundle, meta=np.array(json.dumps(meta)), **small)
            print(f"wrote {args.save_bundle} ({args.save_bundle.stat().st_size / 1e6:.1f} MB)")
            return 0
    for part in ("real", "framed"):
        if f"mnv2_{part}_stats" in arrays:
            arrays[f"mnv2_{part}"] = np.concatenate([arrays[f"mnv2_{part}"][..., :1584].astype(np.float32), arrays[f"mnv2_{part}_stats"]], axis=-1)

    names = list(VARIANTS)
    chosen = names if args.variants == "all" else [] if args.variants == "none" else [names[int(k) - 1] for k in args.variants.split(",")]
    report: dict[str, object] = {"variants": {}}
    print(f"{'variant':<46}{'bal.acc':>8}{'AUC':>8}{'s':>7}   worst five held-out sources (accuracy)")
    for name in chosen:
        blocks, views, framed = VARIANTS[name]
        if any(b == EFF_LAST for b in blocks) and "eff_real" not in arrays:
            continue
        t0 = time.time()
        r = lso_fixed_cut(variant_set(arrays, meta, blocks, views, framed), args.jobs)
        r["seconds"] = round(time.time() - t0, 1)
        report["variants"][name] = r
        worst = ", ".join(f"{w} {v['accuracy']:.2f}" for w, v in r["worst"].items())
        print(f"{name:<46}{r['balanced_accuracy']:>8.3f}{r['roc_auc']:>8.3f}{r['seconds']:>7.0f}   {worst}", flush=True)
    if args.full:
        name = names[args.full - 1]
        blocks, views, framed = VARIANTS[name]
        data = variant_set(arrays, meta, blocks, views, framed)
        t0 = time.time()
        full = T.leave_sources_out(data, jobs=args.jobs, progress=False)
        mod = T.modality_leave_sources_out(data, jobs=args.jobs)
        full.pop("probabilities"), full.pop("predictions"), full.pop("paths")
        report["full"] = {"variant": name, "binary": full, "modality": mod, "seconds": round(time.time() - t0, 1)}
        print(f"\nfull protocol on '{name}': balanced accuracy {full['balanced_accuracy']:.4f}, AUC {full['roc_auc']:.4f}, "
              f"ECE {full['calibration']['ece']:.4f}, framed accuracy {full['framed_accuracy']}, modality {mod['accuracy']:.3f} "
              f"(named precision {mod['named_precision']:.3f}, min confidence {mod['min_confidence']})")
        for s in full["worst_sources"]:
            print(f"  worst: {s} {full['per_source'][s]}")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
