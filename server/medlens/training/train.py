"""The heads: weighted XGBoost on cached features of plain, augmented and framed views; the
calibration and threshold decision; the modality classes. training/recipe.py runs them through
the source-grouped study that `medlens train` ships and `medlens evaluate --grouped-folds`
reruns; `medlens evaluate --leave-sources-out` calls `leave_sources_out()` here.

Leave-sources-out thinking runs through all of it: images of one source (crops of one slide,
slices of one volume) are near-duplicates, so every split keeps a source, and every composite
showing its pixels, on one side.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import xgboost as xgb

from medlens.model.calibration import Calibrator
from medlens.training.calibration import fit_calibrator, reliability
from medlens.model.card import CARD_FILE, CARD_FORMAT, HEAD_FILE, MODALITY_FILE, file_sha256
from medlens.model.classifier import Head
from medlens.training.dataset import Sample
from medlens.training.features import FeatureTable, extract_features, framed_samples
from medlens.model.labels import OTHER_MODALITY
from medlens.training.metrics import balanced_accuracy, binary_report, choose_threshold, roc_auc

log = logging.getLogger(__name__)

DEFAULT_VIEWS = 5  # view 0 is the plain image, views 1.. are augmented
FRAMED_VIEWS = 2
FRAMED_WEIGHT = 0.5  # a framed copy counts half as much as its bare image
CALIBRATION = "platt"
BINARY_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "eta": 0.08,
    "max_depth": 3,
    "min_child_weight": 2.0,
    "subsample": 0.8,
    "colsample_bytree": 0.3,
    "lambda": 2.0,
    "max_bin": 64,
    "tree_method": "hist",
}
# 0.08 x 200 against 0.16 x 100 and 0.04 x 400 on the 10 source-grouped folds: balanced accuracy
# 0.902 / 0.893 / 0.901, ROC AUC 0.961 / 0.957 / 0.958 (model card: levers)
BINARY_ROUNDS = 200
MODALITY_PARAMS: dict[str, Any] = {
    "objective": "multi:softprob",
    "eval_metric": "mlogloss",
    "eta": 0.1,
    "max_depth": 3,
    "subsample": 0.8,
    "colsample_bytree": 0.3,
    "max_bin": 64,
    "tree_method": "hist",
}
MODALITY_ROUNDS = 120  # 0.1 x 120 names 48 % right against 46 % for 0.2 x 60, same folds
# Kinds that are X-ray imaging by physics, named with their family (issue: mammograms and X-ray
# angiograms were called "fundus" when each stood alone with one source).
MODALITY_FAMILY = {"mammography": "xray", "angiography": "xray"}
MIN_MODALITY_SOURCES = 2


@dataclass
class TrainingSet:
    """Bare images and their framed composites, fitted together; the bare ones are what is scored."""

    real: FeatureTable
    framed: FeatureTable | None = None

    def without_sources(self, sources: set[str] | frozenset[str]) -> "TrainingSet":
        return TrainingSet(
            self.real.without_sources(sources), self.framed.without_sources(sources) if self.framed else None
        )

    def only_real_indices(self, idx: Sequence[int]) -> "TrainingSet":
        """The real samples at `idx`, with the composites whose sources all lie among theirs."""
        real = self.real.subset(idx)
        if self.framed is None:
            return TrainingSet(real)
        keep = {s.source for s in real.samples}
        framed = self.framed.subset([i for i, s in enumerate(self.framed.samples) if s.sources <= keep])
        return TrainingSet(real, framed)


def extract_training_set(
    samples: Sequence[Sample], extractor: Any, *, views: int = DEFAULT_VIEWS, seed: int = 0,
    cache_dir: Path | None = None, framed: bool = True, progress: bool = True, framed_views: int = FRAMED_VIEWS,
) -> TrainingSet:
    """Features of every sample's views and, unless `framed` is off, of its framed copy: what
    `medlens train` fits and `medlens evaluate --leave-sources-out` studies, built one way."""
    real = extract_features(samples, extractor, views=views, seed=seed, cache_dir=cache_dir, progress=progress)
    if not framed:
        return TrainingSet(real)
    copies = extract_features(framed_samples(real.samples, seed), extractor, views=framed_views, seed=seed,
                              cache_dir=cache_dir, progress=progress, desc="framed")
    return TrainingSet(real, copies)


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
    return w * len(samples) / w.sum() if len(samples) else w


def design_matrix(data: TrainingSet, labels: Callable[[Sample], int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of every view of every sample, with labels and weights (views share their sample's weight)."""
    label_of = labels or (lambda s: s.y)
    weights = sample_weights(data.real.samples)
    parts = [(data.real, weights, 1.0)]
    if data.framed is not None and len(data.framed.samples):
        by_path = {s.path: w for s, w in zip(data.real.samples, weights)}
        fw = np.array([by_path.get(s.path, 0.0) for s in data.framed.samples])
        parts.append((data.framed, fw, FRAMED_WEIGHT))
    xs, ys, ws = [], [], []
    for table, w, factor in parts:
        n, v, d = table.features.shape
        xs.append(table.features.reshape(n * v, d))
        ys.append(np.repeat([label_of(s) for s in table.samples], v))
        ws.append(np.repeat(w * factor, v) / v)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def fit_binary(data: TrainingSet, seed: int = 0, nthread: int = 0) -> xgb.Booster:
    X, y, w = design_matrix(data)
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


def out_of_fold(data: TrainingSet, folds: Sequence[np.ndarray], seed: int = 0, nthread: int = 0) -> np.ndarray:
    """Raw probability for view 0 of every real sample, each from a head that never saw its fold's sources."""
    proba = np.full(len(data.real.samples), np.nan)
    all_idx = np.arange(len(data.real.samples))
    for test in folds:
        held = {s.source for s in data.real.subset(test).samples}
        train_set = data.only_real_indices(np.setdiff1d(all_idx, test)).without_sources(held)
        if len(np.unique(train_set.real.y)) < 2:
            continue
        booster = fit_binary(train_set, seed, nthread)
        proba[test] = booster.inplace_predict(data.real.features[test, 0])
    return proba


@dataclass(frozen=True)
class Decision:
    """How raw scores become labels: a calibrator and a threshold on the calibrated probability."""

    calibrator: Calibrator
    threshold: float


def decide(y: np.ndarray, raw: np.ndarray, method: str = CALIBRATION) -> Decision:
    """Calibrate on out-of-fold scores, then take the balanced-accuracy optimum of the calibrated probability."""
    valid = ~np.isnan(raw)
    if not valid.any() or len(np.unique(y[valid])) < 2:
        return Decision(Calibrator("none", {}), 0.5)
    calibrator = fit_calibrator(method, y[valid], raw[valid])
    return Decision(calibrator, choose_threshold(y[valid], calibrator.apply(raw[valid])))


def modality_names(samples: Sequence[Sample]) -> tuple[list[str], list[str]]:
    """Class list and each medical sample's class: families merged, kinds with one source -> "other"."""
    family = [MODALITY_FAMILY.get(s.modality, s.modality) for s in samples]
    sources: dict[str, set[str]] = defaultdict(set)
    for s, f in zip(samples, family):
        sources[f].add(s.source)
    classes = sorted(f for f, src in sources.items() if len(src) >= MIN_MODALITY_SOURCES)
    names = [f if f in classes else OTHER_MODALITY for f in family]
    if OTHER_MODALITY in names:
        classes.append(OTHER_MODALITY)
    return classes, names


def fit_modality(
    data: TrainingSet, classes: Sequence[str] | None = None, seed: int = 0, nthread: int = 0
) -> tuple[xgb.Booster, list[str]] | None:
    """Modality head on the medical samples (and their framed copies)."""
    med = TrainingSet(
        data.real.subset([i for i, s in enumerate(data.real.samples) if s.y == 1]),
        data.framed.subset([i for i, s in enumerate(data.framed.samples) if s.y == 1]) if data.framed else None,
    )
    if not med.real.samples:
        return None
    found, names = modality_names(med.real.samples)
    classes = list(classes) if classes is not None else found
    if len(classes) < 2:
        return None
    name_of = {s.path: n for s, n in zip(med.real.samples, names)}
    index = {c: k for k, c in enumerate(classes)}
    fallback = index.get(OTHER_MODALITY)

    def label(s: Sample) -> int:
        k = index.get(name_of.get(s.path, OTHER_MODALITY), fallback)
        return -1 if k is None else k

    X, y, w = design_matrix(med, label)
    keep = y >= 0
    # weights inside the medical class: modalities and sources share as in the binary head
    params = {**MODALITY_PARAMS, "num_class": len(classes), "seed": seed, "nthread": nthread or 0}
    booster = xgb.train(params, xgb.DMatrix(X[keep], label=y[keep], weight=w[keep]), num_boost_round=MODALITY_ROUNDS)
    return booster, classes


def _lso_fold(args: tuple[TrainingSet, str, int, int, int]) -> dict[str, Any]:
    """One held-out source: inner folds calibrate and set the threshold, then the head scores the source."""
    data, source, seed, inner_folds, nthread = args
    test = np.array([i for i, s in enumerate(data.real.samples) if s.source == source])
    train_set = data.without_sources({source})
    inner = grouped_folds([s.source for s in train_set.real.samples], inner_folds, seed)
    decision = decide(train_set.real.y, out_of_fold(train_set, inner, seed, nthread))
    booster = fit_binary(train_set, seed, nthread)
    raw = booster.inplace_predict(data.real.features[test, 0])
    out = {"source": source, "test": test, "raw": raw, "proba": decision.calibrator.apply(raw), "threshold": decision.threshold}
    if data.framed is not None:
        framed_idx = np.array([i for i, s in enumerate(data.framed.samples) if s.source == source], dtype=int)
        if len(framed_idx):
            out["framed_idx"] = framed_idx
            out["framed_proba"] = decision.calibrator.apply(booster.inplace_predict(data.framed.features[framed_idx, 0]))
    return out


def leave_sources_out(
    data: TrainingSet, *, seed: int = 0, inner_folds: int = 3, jobs: int = 1, progress: bool = True,
    only: set[str] | None = None,
) -> dict[str, Any]:
    """Hold out each source in turn; train on the rest (calibration and threshold from their own grouped folds).

    The harshest honest test here: for a kind with a single source (dermoscopy, mammography) the
    held-out fold has no example of its kind at all in training. Framed composites of the held-out
    source are scored too (their canvases come from other sources), as the framed-image measure.
    """
    from tqdm import tqdm

    sources = sorted({s.source for s in data.real.samples} & only if only else {s.source for s in data.real.samples})
    samples = data.real.samples
    nthread = 1 if jobs > 1 else 0
    tasks = [(data, source, seed, inner_folds, nthread) for source in sources]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = list(tqdm(pool.map(_lso_fold, tasks), total=len(tasks), desc="leave-source-out", disable=not progress, leave=False))
    else:
        results = [_lso_fold(t) for t in tqdm(tasks, desc="leave-source-out", disable=not progress, leave=False)]
    proba = np.full(len(samples), np.nan)
    pred = np.zeros(len(samples), dtype=int)
    per_source: dict[str, Any] = {}
    framed_hits: dict[str, list[int]] = defaultdict(list)
    for r in results:
        test = r["test"]
        proba[test] = r["proba"]
        pred[test] = (r["proba"] >= r["threshold"]).astype(int)
        yt = data.real.y[test]
        per_source[r["source"]] = {
            "n": int(len(test)),
            "label": samples[test[0]].label if len(set(yt)) == 1 else "mixed",
            "threshold": r["threshold"],
            "accuracy": float((pred[test] == yt).mean()),
            "errors": int((pred[test] != yt).sum()),
            "mean_probability": float(r["proba"].mean()),
            "modalities": dict(Counter(samples[i].modality for i in test)),
        }
        if "framed_idx" in r:
            fy = data.framed.y[r["framed_idx"]]
            fpred = (r["framed_proba"] >= r["threshold"]).astype(int)
            for i, ok in zip(r["framed_idx"], fpred == fy):
                framed_hits[f"{data.framed.samples[i].label}/{data.framed.samples[i].frame.layout}"].append(int(ok))
    # metrics over the held-out images only (all of them, unless `only` named a few sources)
    idx = np.sort(np.concatenate([r["test"] for r in results]))
    y = data.real.y
    per_kind = binary_report(
        y[idx], proba[idx], 0.5, [samples[i].source for i in idx], [f"{samples[i].label}/{samples[i].modality}" for i in idx]
    )["per_modality"]
    for key, row in per_kind.items():  # per-kind accuracy at each fold's own threshold
        kind_idx = [i for i in idx if f"{samples[i].label}/{samples[i].modality}" == key]
        row["accuracy"] = float((pred[kind_idx] == y[kind_idx]).mean())
        row["errors"] = int((pred[kind_idx] != y[kind_idx]).sum())
    report = {
        "scheme": f"leave one source out; calibration ({CALIBRATION}) and threshold from {inner_folds} source-grouped folds of the remaining sources",
        "n": int(len(idx)),
        "sources": len(sources),
        "balanced_accuracy": balanced_accuracy(y[idx], pred[idx]),
        "accuracy": float((pred[idx] == y[idx]).mean()),
        "roc_auc": roc_auc(y[idx], proba[idx]),
        "calibration": reliability(y[idx], proba[idx]),
        "per_source": per_source,
        "per_kind": per_kind,
        "worst_sources": sorted(per_source, key=lambda s: per_source[s]["accuracy"])[:5],
        "framed": {
            k: {"n": len(v), "accuracy": float(np.mean(v))} for k, v in sorted(framed_hits.items())
        },
        "probabilities": [float(proba[i]) for i in idx],
        "predictions": [int(pred[i]) for i in idx],
        "paths": [str(samples[i].path) for i in idx],
    }
    fh = [h for v in framed_hits.values() for h in v]
    report["framed_accuracy"] = float(np.mean(fh)) if fh else None
    return report


def save_model(head: Head, directory: Path) -> None:
    """Write the heads and the card (with their sha256) into `directory`, beside the ONNX graph."""
    directory.mkdir(parents=True, exist_ok=True)
    head.binary.save_model(str(directory / HEAD_FILE))
    card = dict(head.card)
    card["format"] = CARD_FORMAT
    card["threshold"] = head.threshold
    card["calibration"] = head.calibrator.to_dict()
    card["head_file"] = HEAD_FILE
    card["head_sha256"] = file_sha256(directory / HEAD_FILE)
    if head.modality is not None:
        head.modality.save_model(str(directory / MODALITY_FILE))
        card["modality_head"] = {
            **card.get("modality_head", {}),
            "file": MODALITY_FILE,
            "classes": head.modality_classes,
            "min_confidence": head.modality_min_confidence,
            "min_probability": head.modality_min_probability,
            "sha256": file_sha256(directory / MODALITY_FILE),
        }
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    head.card = card
    head.sha256 = card["head_sha256"]
