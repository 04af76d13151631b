"""Training: cached backbone features of augmented views, a weighted XGBoost head, a threshold
chosen on source-grouped validation, and a modality head. `medlens train` calls `train()`.

Leave-sources-out thinking runs through all of it: images of one source (crops of one slide,
slices of one volume) are near-duplicates, so every split keeps a source on one side.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import xgboost as xgb
from PIL import Image
from tqdm import tqdm

from medlens.image_modes import to_rgb
from medlens.model.augment import AUGMENT_SPEC, augment, augment_key, view_rng
from medlens.model.backbones import FeatureExtractor
from medlens.model.classifier import Head, head_input_size, image_features
from medlens.model.image_stats import STATS_VERSION
from medlens.model.dataset import Sample
from medlens.model.metrics import balanced_accuracy, binary_report, choose_threshold, roc_auc

log = logging.getLogger(__name__)

DEFAULT_VIEWS = 5  # view 0 is the plain image, views 1.. are augmented
MIN_MODALITY_IMAGES = 5
BINARY_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "eta": 0.05,
    "max_depth": 3,
    "min_child_weight": 2.0,
    "subsample": 0.8,
    "colsample_bytree": 0.3,
    "lambda": 2.0,
    "tree_method": "hist",
}
BINARY_ROUNDS = 300
MODALITY_PARAMS: dict[str, Any] = {
    "objective": "multi:softprob",
    "eval_metric": "mlogloss",
    "eta": 0.1,
    "max_depth": 3,
    "subsample": 0.8,
    "colsample_bytree": 0.3,
    "tree_method": "hist",
}
MODALITY_ROUNDS = 120


@dataclass
class FeatureTable:
    """Features of every readable sample: `features[i, v]` is view v of sample i."""

    samples: list[Sample]
    features: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def y(self) -> np.ndarray:
        return np.array([s.y for s in self.samples], dtype=int)

    @property
    def views(self) -> int:
        return int(self.features.shape[1])

    def subset(self, idx: Sequence[int]) -> "FeatureTable":
        return FeatureTable([self.samples[i] for i in idx], self.features[np.asarray(idx, dtype=int)], [])


class FeatureCache:
    """One .npy per (backbone weights, augmentation, seed, image sha256, view): reruns skip the backbone."""

    def __init__(self, root: Path, extractor: FeatureExtractor, seed: int):
        self.dir = root / "features" / f"{extractor.name}-{extractor.weights_sha256[:12]}" / f"aug-{augment_key()}-stats{STATS_VERSION}-seed{seed}"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, image_sha: str, view: int) -> Path:
        return self.dir / f"{image_sha}_{view}.npy"

    def get(self, image_sha: str, view: int) -> np.ndarray | None:
        path = self.path(image_sha, view)
        if not path.is_file():
            return None
        try:
            return np.load(path)
        except (OSError, ValueError):
            return None

    def put(self, image_sha: str, view: int, vec: np.ndarray) -> None:
        path = self.path(image_sha, view)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vec.astype(np.float32))
        tmp.replace(path)


def open_training_image(data: bytes, target_side: int = 256) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    if img.format == "JPEG":
        img.draft("RGB", (target_side, target_side))
    img.load()
    return to_rgb(img)


def extract_features(
    samples: Sequence[Sample],
    extractor: FeatureExtractor,
    *,
    views: int = DEFAULT_VIEWS,
    seed: int = 0,
    cache_dir: Path | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> FeatureTable:
    cache = FeatureCache(cache_dir, extractor, seed) if cache_dir else None
    kept: list[Sample] = []
    rows: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    pending: list[tuple[int, int, Image.Image, str]] = []  # (row, view, image, sha)

    def flush() -> None:
        if not pending:
            return
        feats = image_features(extractor, [item[2] for item in pending])
        for (row, view, _, sha), vec in zip(pending, feats):
            rows[row][view] = vec
            if cache:
                cache.put(sha, view, vec)
        pending.clear()

    for sample in tqdm(samples, desc="features", unit="img", disable=not progress, leave=False):
        try:
            data = sample.path.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            cached = [cache.get(sha, v) if cache else None for v in range(views)]
            base = None if all(c is not None for c in cached) else open_training_image(data)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            skipped.append((str(sample.path), f"{exc.__class__.__name__}: {exc}"))
            continue
        row = len(rows)
        kept.append(sample)
        rows.append(np.zeros((views, head_input_size(extractor)), dtype=np.float32))
        for view in range(views):
            if cached[view] is not None:
                rows[row][view] = cached[view]
                continue
            img = base if view == 0 else augment(base, view_rng(sha, view, seed))
            pending.append((row, view, img, sha))
            if len(pending) >= batch_size:
                flush()
    flush()
    if skipped:
        log.warning("skipped %d unreadable image(s)", len(skipped))
    features = np.stack(rows) if rows else np.zeros((0, views, head_input_size(extractor)), dtype=np.float32)
    return FeatureTable(kept, features, skipped)


def sample_weights(samples: Sequence[Sample], temper: float = 0.5) -> np.ndarray:
    """Each label weighs the same; inside it modalities, and inside those sources, share by count**temper.

    Fundus (one big source) would otherwise teach "orange disc = medical" and little else;
    tempering keeps big groups somewhat heavier than a single nuclear-medicine scan.
    """
    by_label: dict[str, Counter] = defaultdict(Counter)
    by_mod: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for s in samples:
        by_label[s.label][s.modality] += 1
        by_mod[(s.label, s.modality)][s.source] += 1
    w = np.zeros(len(samples))
    for i, s in enumerate(samples):
        mods = by_label[s.label]
        mod_share = mods[s.modality] ** temper / sum(n**temper for n in mods.values())
        srcs = by_mod[(s.label, s.modality)]
        src_share = srcs[s.source] ** temper / sum(n**temper for n in srcs.values())
        w[i] = mod_share * src_share / srcs[s.source]
    return w * len(samples) / w.sum()


def _expand(table: FeatureTable, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, v, d = table.features.shape
    X = table.features.reshape(n * v, d)
    y = np.repeat(table.y, v)
    w = np.repeat(weights, v) / v
    return X, y, w


def fit_binary(table: FeatureTable, weights: np.ndarray, seed: int = 0, nthread: int = 0) -> xgb.Booster:
    X, y, w = _expand(table, weights)
    params = {**BINARY_PARAMS, "seed": seed, "nthread": nthread or 0}
    return xgb.train(params, xgb.DMatrix(X, label=y, weight=w), num_boost_round=BINARY_ROUNDS)


def grouped_folds(groups: Sequence[str], n_folds: int, seed: int = 0) -> list[np.ndarray]:
    """Test-index folds with every group on one side, sizes balanced greedily (largest groups first)."""
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        by_group[g].append(i)
    rng = np.random.default_rng(seed)
    names = sorted(by_group, key=lambda g: (-len(by_group[g]), rng.random()))
    folds: list[list[int]] = [[] for _ in range(min(n_folds, len(names)))]
    for name in names:
        min(folds, key=len).extend(by_group[name])
    return [np.asarray(sorted(f)) for f in folds]


def out_of_fold(
    table: FeatureTable, weights: np.ndarray, folds: Sequence[np.ndarray], seed: int = 0,
    on_fold: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Probability for view 0 of every sample, each from a head that never saw its fold."""
    proba = np.full(len(table.samples), np.nan)
    all_idx = np.arange(len(table.samples))
    for k, test in enumerate(folds):
        train_idx = np.setdiff1d(all_idx, test)
        sub = table.subset(train_idx)
        if len(np.unique(sub.y)) < 2:
            continue
        booster = fit_binary(sub, sample_weights(sub.samples), seed)
        proba[test] = booster.inplace_predict(table.features[test, 0])
        if on_fold:
            on_fold(k)
    return proba


def grouped_threshold(
    table: FeatureTable, weights: np.ndarray, folds: Sequence[np.ndarray], seed: int = 0,
    on_fold: Callable[[int], None] | None = None,
) -> tuple[float, np.ndarray]:
    """Decision threshold chosen on out-of-fold probabilities (0.5 if no fold could be fitted), and those probabilities."""
    oof = out_of_fold(table, weights, folds, seed, on_fold=on_fold)
    valid = ~np.isnan(oof)
    threshold = choose_threshold(table.y[valid], oof[valid]) if valid.any() else 0.5
    return threshold, oof


def fit_modality(table: FeatureTable, seed: int = 0) -> tuple[xgb.Booster, list[str]] | None:
    """Modality head on medical images; modalities with too few images are named "other"."""
    med = [i for i, s in enumerate(table.samples) if s.y == 1]
    if not med:
        return None
    counts = Counter(table.samples[i].modality for i in med)
    classes = sorted(m for m, n in counts.items() if n >= MIN_MODALITY_IMAGES)
    if any(n < MIN_MODALITY_IMAGES for n in counts.values()):
        classes.append("other")
    if len(classes) < 2:
        return None
    sub = table.subset(med)
    names = [s.modality if s.modality in classes else "other" for s in sub.samples]
    weights = sample_weights([Sample(s.path, n, n, s.source) for s, n in zip(sub.samples, names)])
    n, v, d = sub.features.shape
    y = np.repeat([classes.index(m) for m in names], v)
    dm = xgb.DMatrix(sub.features.reshape(n * v, d), label=y, weight=np.repeat(weights, v) / v)
    params = {**MODALITY_PARAMS, "num_class": len(classes), "seed": seed}
    return xgb.train(params, dm, num_boost_round=MODALITY_ROUNDS), classes


def modality_accuracy(table: FeatureTable, folds: Sequence[np.ndarray], seed: int = 0) -> dict[str, Any]:
    """Per-modality accuracy of the modality head on medical images of held-out source folds."""
    hits: dict[str, list[int]] = defaultdict(list)
    all_idx = np.arange(len(table.samples))
    overall = Counter(s.modality for s in table.samples if s.y == 1)
    for test in folds:
        fitted = fit_modality(table.subset(np.setdiff1d(all_idx, test)), seed)
        if fitted is None:
            continue
        booster, classes = fitted
        med_test = [i for i in test if table.samples[i].y == 1]
        if not med_test:
            continue
        proba = np.asarray(booster.inplace_predict(table.features[med_test, 0])).reshape(len(med_test), -1)
        for i, k in zip(med_test, proba.argmax(axis=1)):
            truth = table.samples[i].modality
            truth = truth if overall[truth] >= MIN_MODALITY_IMAGES else "other"
            hits[truth].append(int(classes[int(k)] == truth))
    return {m: {"n": len(h), "accuracy": float(np.mean(h))} for m, h in sorted(hits.items())}


def train(
    table: FeatureTable,
    extractor: FeatureExtractor,
    *,
    seed: int = 0,
    n_folds: int = 5,
    data_name: str = "",
    progress: bool = True,
) -> tuple[Head, dict[str, Any]]:
    """Fit the heads on all of `table`; validate on source-grouped folds to pick the threshold."""
    t0 = time.monotonic()
    samples = table.samples
    weights = sample_weights(samples)
    folds = grouped_folds([s.source for s in samples], n_folds, seed)
    bar = tqdm(total=len(folds), desc="validation folds", disable=not progress, leave=False)
    threshold, oof = grouped_threshold(table, weights, folds, seed, on_fold=lambda _: bar.update())
    bar.close()
    valid = ~np.isnan(oof)
    validation = binary_report(
        table.y[valid], oof[valid], threshold,
        [s.source for s, ok in zip(samples, valid) if ok],
        [f"{s.label}/{s.modality}" for s, ok in zip(samples, valid) if ok],
    )
    validation["scheme"] = f"{len(folds)}-fold grouped by source, view 0 (no augmentation)"
    binary = fit_binary(table, weights, seed)
    fitted = fit_modality(table, seed)
    mod_acc = modality_accuracy(table, folds, seed) if fitted else {}
    # The same head on random image folds: sources are seen in training, crops and slices of
    # one parent may straddle folds, so this is the optimistic bound beside the harsh one.
    random_folds = np.array_split(np.random.default_rng(seed).permutation(len(samples)), n_folds)
    mod_acc_seen = modality_accuracy(table, random_folds, seed) if fitted else {}
    card: dict[str, Any] = {
        "backbone": {
            "name": extractor.name,
            "weights_file": extractor.spec.weights_file,
            "weights_sha256": extractor.weights_sha256,
            "feature_size": extractor.feature_size,
        },
        "image_stats_version": STATS_VERSION,
        "feature_size": head_input_size(extractor),
        "labels": ["non-medical", "medical"],
        "training": {
            "data": data_name,
            "seed": seed,
            "views_per_image": table.views,
            "augmentation": AUGMENT_SPEC,
            "binary_params": {**BINARY_PARAMS, "rounds": BINARY_ROUNDS},
            "weighting": "per label equal; modality and source shares by count**0.5",
            "counts": _counts(samples),
            "sources": dict(sorted(Counter(s.source for s in samples).items())),
            "skipped": len(table.skipped),
            "seconds": round(time.monotonic() - t0, 1),
        },
        "validation": validation,
    }
    if fitted:
        card["modality_head"] = {
            "accuracy_per_modality": mod_acc,
            "scheme": validation["scheme"] + "; a modality whose only source is held out cannot be named",
            "accuracy_per_modality_seen_sources": mod_acc_seen,
            "scheme_seen_sources": f"{n_folds} random image folds (sources seen in training; optimistic)",
        }
    head = Head(binary, threshold, card)
    if fitted:
        head.modality, head.modality_classes = fitted
    return head, validation


def _counts(samples: Sequence[Sample]) -> dict[str, Any]:
    per_label = Counter(s.label for s in samples)
    per_modality = Counter(f"{s.label}/{s.modality}" for s in samples)
    return {"per_label": dict(sorted(per_label.items())), "per_modality": dict(sorted(per_modality.items()))}


def leave_sources_out(table: FeatureTable, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Hold out each source in turn; train on the rest (threshold from their own grouped folds).

    The harshest honest test here: for a modality with a single source (fundus, H&E tiles) the
    held-out fold has no example of its modality at all in training.
    """
    sources = sorted({s.source for s in table.samples})
    proba = np.full(len(table.samples), np.nan)
    pred = np.zeros(len(table.samples), dtype=int)
    per_source: dict[str, Any] = {}
    all_idx = np.arange(len(table.samples))
    for source in tqdm(sources, desc="leave-source-out", disable=not progress, leave=False):
        test = np.array([i for i, s in enumerate(table.samples) if s.source == source])
        train_tab = table.subset(np.setdiff1d(all_idx, test))
        w = sample_weights(train_tab.samples)
        inner = grouped_folds([s.source for s in train_tab.samples], 3, seed)
        cut, _ = grouped_threshold(train_tab, w, inner, seed)
        booster = fit_binary(train_tab, w, seed)
        p = booster.inplace_predict(table.features[test, 0])
        proba[test] = p
        pred[test] = (p >= cut).astype(int)
        y = table.y[test]
        per_source[source] = {
            "n": int(len(test)),
            "label": table.samples[test[0]].label,
            "threshold": cut,
            "accuracy": float((pred[test] == y).mean()),
            "errors": int((pred[test] != y).sum()),
            "mean_probability": float(p.mean()),
            "modalities": dict(Counter(table.samples[i].modality for i in test)),
        }
    y = table.y
    return {
        "scheme": "leave one source out; threshold from 3 source-grouped folds of the remaining sources",
        "n": int(len(y)),
        "balanced_accuracy": balanced_accuracy(y, pred),
        "accuracy": float((pred == y).mean()),
        "roc_auc": roc_auc(y, proba),
        "per_source": per_source,
        "probabilities": [float(x) for x in proba],
        "predictions": [int(x) for x in pred],
        "paths": [str(s.path) for s in table.samples],
    }
