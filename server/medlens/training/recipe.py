"""The shipped recipe: fine-tune the backbone's last blocks, then fit the XGBoost heads on the
tuned features; every choice that reads labels (calibration, threshold, the modality naming
rule) is made on source-grouped out-of-fold predictions, where each fold fine-tunes its own
network and fits its own heads without any image of its held-out sources.

`grouped_study` is that protocol as a measurement (what the card reports and `medlens evaluate
--grouped-folds` reruns): fold k's calibration, threshold and naming rule come from the other
folds' predictions only, so no fold is scored by a rule that saw it. `fit_final` is the shipped
fit: the same steps on all of the data, with the decisions taken from the pooled predictions.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from medlens.model.classifier import Head
from medlens.model.labels import OTHER_MODALITY
from medlens.training.backbones import FeatureNet
from medlens.training.calibration import reliability
from medlens.training.finetune import TrunkLayout, fine_tune, snapshot, tuned_training_set
from medlens.training.metrics import balanced_accuracy, roc_auc
from medlens.training.train import (
    Decision, TrainingSet, decide, fit_binary, fit_modality, grouped_folds, modality_names,
)

log = logging.getLogger(__name__)


@dataclass
class FoldResult:
    test: np.ndarray
    raw: np.ndarray
    framed_idx: np.ndarray
    framed_raw: np.ndarray
    modality: np.ndarray | None
    curve: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    # raw held-out scores of the levers measured beside the recipe: heads on the untuned network,
    # heads without framed composites
    variants: dict[str, np.ndarray] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.test.tolist(), "raw": self.raw.tolist(), "framed_idx": self.framed_idx.tolist(),
            "framed_raw": self.framed_raw.tolist(), "modality": None if self.modality is None else self.modality.tolist(),
            "curve": self.curve, "seconds": self.seconds, "variants": {k: v.tolist() for k, v in self.variants.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FoldResult":
        return cls(
            np.asarray(d["test"], dtype=int), np.asarray(d["raw"]), np.asarray(d["framed_idx"], dtype=int),
            np.asarray(d["framed_raw"]), None if d["modality"] is None else np.asarray(d["modality"]),
            d["curve"], d["seconds"], {k: np.asarray(v) for k, v in d["variants"].items()},
        )


NAMING_PROBABILITIES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)


@dataclass(frozen=True)
class NamingRule:
    """Name the modality only when the calibrated probability of medical and the modality head's
    confidence both reach their bars; otherwise `modality: null`."""

    min_probability: float
    min_confidence: float

    def names(self, proba: np.ndarray, modality: np.ndarray, classes: Sequence[str]) -> list[str | None]:
        out: list[str | None] = []
        for p, row in zip(proba, modality):
            k = int(row.argmax())
            ok = p >= self.min_probability and row[k] >= self.min_confidence and classes[k] != OTHER_MODALITY
            out.append(classes[k] if ok else None)
        return out


def _train_indices(acts: TrainingSet, test: np.ndarray) -> np.ndarray:
    held = {acts.real.samples[i].source for i in test}
    return np.array([i for i, s in enumerate(acts.real.samples) if s.source not in held], dtype=int)


def run_fold(
    net: FeatureNet | None, base: dict | None, layout: TrunkLayout | None, acts: TrainingSet, test: np.ndarray,
    spec: dict[str, Any], classes: list[str], *, seed: int = 0, framed_heads: bool = True, levers: bool = False,
    fixed: TrainingSet | None = None,
) -> FoldResult:
    """Fine-tune (unless `fixed` features are given: heads only) and fit the heads without fold
    `test`'s sources; score its images and their composites."""
    t0 = time.monotonic()
    train_idx = _train_indices(acts, test)
    held = {acts.real.samples[i].source for i in test}
    variants = {}
    curve: list[dict[str, float]] = []
    if fixed is not None:
        tuned = fixed
    else:
        net.load_state_dict(base)
        if levers:
            untuned = tuned_training_set(net, layout, acts, framed=True)
            variants["untuned network"] = fit_binary(
                untuned.only_real_indices(train_idx).without_sources(held), seed, nthread=1
            ).inplace_predict(untuned.real.features[test, 0])
        curve = fine_tune(net, layout, acts, train_idx, spec, seed=seed, eval_idx=test)
        tuned = tuned_training_set(net, layout, acts, framed=True)
    train_set = tuned.only_real_indices(train_idx).without_sources(held)
    if levers:
        other = TrainingSet(train_set.real) if framed_heads else train_set
        variants["heads without composites" if framed_heads else "heads with composites"] = fit_binary(
            other, seed, nthread=1).inplace_predict(tuned.real.features[test, 0])
    if not framed_heads:
        train_set = TrainingSet(train_set.real)
    booster = fit_binary(train_set, seed, nthread=1)
    raw = np.asarray(booster.inplace_predict(tuned.real.features[test, 0]), dtype=np.float64)
    framed_idx = np.array([i for i, s in enumerate(tuned.framed.samples) if s.source in held], dtype=int) \
        if tuned.framed is not None else np.zeros(0, dtype=int)
    framed_raw = np.asarray(booster.inplace_predict(tuned.framed.features[framed_idx, 0]), dtype=np.float64) \
        if len(framed_idx) else np.zeros(0)
    fitted = fit_modality(train_set, classes, seed, nthread=1)
    modality = None
    if fitted is not None:
        modality = np.asarray(fitted[0].inplace_predict(tuned.real.features[test, 0])).reshape(len(test), -1)
    return FoldResult(test, raw, framed_idx, framed_raw, modality, curve, time.monotonic() - t0,
                      {k: np.asarray(v, dtype=np.float64) for k, v in variants.items()})


# A modality name on a non-medical image makes the wrong label look authoritative: the naming rule
# may put one on at most this share of the non-medical images it is chosen on.
MAX_NAMED_NON_MEDICAL = 0.01


def choose_naming_rule(
    proba: np.ndarray, modality: np.ndarray, truth: Sequence[str | None], classes: Sequence[str], threshold: float = 0.5,
    max_named_non_medical: float = MAX_NAMED_NON_MEDICAL,
) -> NamingRule:
    """The bars that maximise right names minus wrong ones out of fold, among those that name at
    most `max_named_non_medical` of the non-medical images; a name on a non-medical image counts
    as wrong, and so does a wrong kind. `truth` is None for non-medical images and "other" for
    medical kinds the head cannot name. The strictest bars (naming next to nothing) always qualify."""
    confidence = modality.max(axis=1) if len(modality) else np.zeros(0)
    top = [classes[int(k)] for k in modality.argmax(axis=1)] if len(modality) else []
    nameable = np.array([t != OTHER_MODALITY for t in top], dtype=bool)
    correct = np.array([t == u for t, u in zip(top, truth)], dtype=bool)
    non_medical = np.array([t is None for t in truth], dtype=bool)
    allowed = max_named_non_medical * int(non_medical.sum())
    p_grid = sorted({max(p, threshold) for p in NAMING_PROBABILITIES})
    best, best_score = NamingRule(float(p_grid[-1]), 1.0), -np.inf
    for p_min in p_grid:
        for c_min in np.round(np.linspace(0.0, 1.0, 101), 2):
            named = (proba >= p_min) & (confidence >= c_min) & nameable
            if int((named & non_medical).sum()) > allowed:
                continue
            right = int((named & correct).sum())
            score = right - (int(named.sum()) - right)
            if score > best_score:
                best, best_score = NamingRule(float(p_min), float(c_min)), score
    return best


def modality_truth(acts: TrainingSet, classes: Sequence[str]) -> list[str | None]:
    """Each real sample's modality class (families merged; one-source kinds "other"); None if non-medical."""
    medical = [s for s in acts.real.samples if s.y == 1]
    _, names = modality_names(medical)
    by_path = {s.path: n if n in classes else OTHER_MODALITY for s, n in zip(medical, names)}
    return [by_path.get(s.path) if s.y == 1 else None for s in acts.real.samples]


def grouped_study(
    net: FeatureNet | None, layout: TrunkLayout | None, acts: TrainingSet, spec: dict[str, Any], *, n_folds: int = 10,
    seed: int = 0, framed_heads: bool = True, only_folds: Sequence[int] | None = None, levers: bool = False,
    fixed: TrainingSet | None = None,
) -> dict[str, Any]:
    """Every fold fine-tuned (or, given `fixed` features, only its heads) and fitted apart; the
    figures of the card from the pooled held-out predictions."""
    base = snapshot(net) if net is not None else None
    samples = acts.real.samples
    folds = grouped_folds([s.source for s in samples], n_folds, seed)
    classes, _ = modality_names([s for s in samples if s.y == 1])
    results = []
    for k, test in enumerate(folds):
        if only_folds is not None and k not in only_folds:
            continue
        results.append((k, run_fold(net, base, layout, acts, test, spec, classes, seed=seed, framed_heads=framed_heads,
                                      levers=levers, fixed=fixed)))
        log.info("fold %d done in %.0f s", k, results[-1][1].seconds)
    if net is not None:
        net.load_state_dict(base)
    report = summarise(acts, folds, results, classes)
    report["fold_results"] = {str(k): r.to_dict() for k, r in results}
    return report


def summarise(
    acts: TrainingSet, folds: Sequence[np.ndarray], results: Sequence[tuple[int, FoldResult]], classes: list[str],
) -> dict[str, Any]:
    samples = acts.real.samples
    y = acts.real.y
    n = len(samples)
    raw = np.full(n, np.nan)
    fold_of = np.full(n, -1)
    mod = np.zeros((n, len(classes)))
    for k, r in results:
        raw[r.test] = r.raw
        fold_of[r.test] = k
        if r.modality is not None:
            mod[r.test] = r.modality
    truth = modality_truth(acts, classes)
    done = [k for k, _ in results]
    proba = np.full(n, np.nan)
    pred = np.zeros(n, dtype=int)
    names: list[str | None] = [None] * n
    per_fold = []
    framed_hits: dict[str, list[int]] = defaultdict(list)
    for k, r in results:
        # fold k is scored by a calibration, threshold and naming rule fitted on the other folds only
        others = np.flatnonzero((fold_of >= 0) & (fold_of != k))
        decision = decide(y[others], raw[others]) if len(done) > 1 else decide(y[r.test], r.raw)
        cal_others = decision.calibrator.apply(raw[others])
        rule = choose_naming_rule(cal_others, mod[others], [truth[i] for i in others], classes, decision.threshold)
        proba[r.test] = decision.calibrator.apply(r.raw)
        pred[r.test] = (proba[r.test] >= decision.threshold).astype(int)
        for i, name in zip(r.test, rule.names(proba[r.test], mod[r.test], classes)):
            names[i] = name
        fp = decision.calibrator.apply(r.framed_raw) >= decision.threshold
        for i, hit in zip(r.framed_idx, fp.astype(int) == acts.framed.y[r.framed_idx]):
            framed_hits[f"{acts.framed.samples[i].label}/{acts.framed.samples[i].frame.layout}"].append(int(hit))
        yt = y[r.test]
        per_fold.append({
            "fold": k, "n": int(len(r.test)), "sources": sorted({samples[i].source for i in r.test}),
            "threshold": decision.threshold, "calibration": decision.calibrator.to_dict(),
            "naming_rule": {"min_probability": rule.min_probability, "min_confidence": rule.min_confidence},
            "balanced_accuracy": balanced_accuracy(yt, pred[r.test]), "errors": int((pred[r.test] != yt).sum()),
            "curve": r.curve, "seconds": round(r.seconds, 1),
        })
    idx = np.flatnonzero(fold_of >= 0)
    thresholds = [f["threshold"] for f in per_fold]
    report: dict[str, Any] = {
        "scheme": f"{len(folds)} source-grouped folds; each fold fine-tunes its own network and fits its own heads "
                  "without its sources; its calibration, threshold and naming rule come from the other folds' "
                  "held-out predictions",
        "n": int(len(idx)),
        "folds_run": done,
        "balanced_accuracy": balanced_accuracy(y[idx], pred[idx]),
        "accuracy": float((pred[idx] == y[idx]).mean()),
        "roc_auc": roc_auc(y[idx], proba[idx]),
        "roc_auc_raw": roc_auc(y[idx], raw[idx]),
        "calibration": reliability(y[idx], proba[idx]),
        "threshold_between_folds": {"min": min(thresholds), "max": max(thresholds),
                                    "mean": float(np.mean(thresholds)), "all": thresholds},
        "framed": {k: {"n": len(v), "accuracy": float(np.mean(v))} for k, v in sorted(framed_hits.items())},
        "per_fold": per_fold,
    }
    fh = [h for v in framed_hits.values() for h in v]
    report["framed_accuracy"] = float(np.mean(fh)) if fh else None
    report["modality"] = _naming_report(idx, y, pred, names, truth)
    report["per_source"] = _per_source(acts, idx, y, pred, proba, fold_of)
    report["per_kind"] = _per_kind(acts, idx, y, pred)
    report["errors"] = [
        {"path": str(samples[i].path), "source": samples[i].source, "label": samples[i].label,
         "modality": samples[i].modality, "probability": round(float(proba[i]), 4), "named": names[i]}
        for i in idx if pred[i] != y[i]
    ]
    report["levers"] = _levers(acts, results, raw)
    framed_raw = np.full(len(acts.framed.samples) if acts.framed is not None else 0, np.nan)
    for _, r in results:
        framed_raw[r.framed_idx] = r.framed_raw
    report["oof"] = {"raw": raw.tolist(), "fold": fold_of.tolist(), "modality": mod.tolist(), "classes": classes,
                     "framed_raw": framed_raw.tolist()}
    return report


def _levers(acts: TrainingSet, results: Sequence[tuple[int, FoldResult]], raw: np.ndarray) -> dict[str, Any]:
    """Each lever's held-out balanced accuracy at its own cross-fitted threshold, and its AUC, beside the recipe's."""
    y = acts.real.y
    names = sorted({k for _, r in results for k in r.variants})
    out = {}
    for name in ["recipe", *names]:
        scores = np.full(len(y), np.nan)
        for _, r in results:
            scores[r.test] = r.raw if name == "recipe" else r.variants[name]
        pred = np.zeros(len(y), dtype=int)
        for _, r in results:
            others = np.setdiff1d(np.flatnonzero(~np.isnan(scores)), r.test)
            d = decide(y[others], scores[others]) if len(others) else decide(y[r.test], scores[r.test])
            pred[r.test] = (d.calibrator.apply(scores[r.test]) >= d.threshold).astype(int)
        ok = ~np.isnan(scores)
        out[name] = {"balanced_accuracy": balanced_accuracy(y[ok], pred[ok]), "roc_auc": roc_auc(y[ok], scores[ok])}
    return out


def _naming_report(idx: np.ndarray, y: np.ndarray, pred: np.ndarray, names: list, truth: list) -> dict[str, Any]:
    scored = [i for i in idx if truth[i] is not None and truth[i] != OTHER_MODALITY]
    non = [i for i in idx if y[i] == 0]
    wrong_label_named = sum(1 for i in idx if pred[i] != y[i] and names[i] is not None)
    per_kind: dict[str, Any] = {}
    for i in scored:
        row = per_kind.setdefault(truth[i], {"n": 0, "right": 0, "null": 0, "named": Counter()})
        row["n"] += 1
        row["right"] += int(names[i] == truth[i])
        row["null"] += int(names[i] is None)
        if names[i]:
            row["named"][names[i]] += 1
    return {
        "accuracy_known_kinds": float(np.mean([names[i] == truth[i] for i in scored])) if scored else None,
        "n_known_kinds": len(scored),
        "named_precision": float(np.mean([names[i] == truth[i] for i in scored if names[i]])) if any(names[i] for i in scored) else None,
        "named_non_medical": int(sum(names[i] is not None for i in non)),
        "named_non_medical_share": float(np.mean([names[i] is not None for i in non])) if non else None,
        "wrong_label_images": int(sum(pred[i] != y[i] for i in idx)),
        "wrong_label_images_named": int(wrong_label_named),
        "per_kind": {k: {**v, "named": dict(v["named"])} for k, v in sorted(per_kind.items())},
    }


def _per_source(acts: TrainingSet, idx: np.ndarray, y: np.ndarray, pred: np.ndarray, proba: np.ndarray,
                fold_of: np.ndarray) -> dict[str, Any]:
    samples = acts.real.samples
    groups: dict[str, list[int]] = defaultdict(list)
    for i in idx:
        groups[samples[i].source].append(i)
    out = {}
    for source in sorted(groups):
        g = np.asarray(groups[source])
        out[source] = {
            "n": int(len(g)), "fold": int(fold_of[g[0]]),
            "label": samples[g[0]].label if len(set(y[g])) == 1 else "mixed",
            "errors": int((pred[g] != y[g]).sum()), "accuracy": float((pred[g] == y[g]).mean()),
            "mean_probability": float(proba[g].mean()),
            "modalities": dict(Counter(samples[i].modality for i in g)),
        }
    return out


def _per_kind(acts: TrainingSet, idx: np.ndarray, y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    samples = acts.real.samples
    groups: dict[str, list[int]] = defaultdict(list)
    for i in idx:
        groups[f"{samples[i].label}/{samples[i].modality}"].append(i)
    return {
        k: {"n": len(g), "errors": int((pred[g] != y[g]).sum()), "sources": len({samples[i].source for i in g})}
        for k, g in sorted(groups.items())
    }


def pooled_decisions(report: dict[str, Any], acts: TrainingSet) -> tuple[Decision, NamingRule]:
    """The shipped calibration, threshold and naming rule: fitted on all folds' held-out predictions."""
    oof = report["oof"]
    raw = np.asarray(oof["raw"])
    ok = np.asarray(oof["fold"]) >= 0
    y = acts.real.y
    decision = decide(y[ok], raw[ok])
    classes = oof["classes"]
    truth = modality_truth(acts, classes)
    mod = np.asarray(oof["modality"])
    rule = choose_naming_rule(decision.calibrator.apply(raw[ok]), mod[ok], [t for t, o in zip(truth, ok) if o], classes,
                              decision.threshold)
    return decision, rule


def fit_final(
    net: FeatureNet | None, layout: TrunkLayout | None, acts: TrainingSet, spec: dict[str, Any], decision: Decision,
    rule: NamingRule, *, seed: int = 0, framed_heads: bool = True, fixed: TrainingSet | None = None,
) -> tuple[Head, TrainingSet]:
    """Tune `net` on all of the data (in place; skipped given `fixed` features) and fit both heads."""
    if fixed is None:
        fine_tune(net, layout, acts, np.arange(len(acts.real.samples)), spec, seed=seed)
        tuned = tuned_training_set(net, layout, acts, framed=framed_heads)
    else:
        tuned = fixed if framed_heads else TrainingSet(fixed.real)
    binary = fit_binary(tuned, seed, nthread=1)
    head = Head(binary, decision.threshold, {}, decision.calibrator)
    classes, _ = modality_names([s for s in acts.real.samples if s.y == 1])
    fitted = fit_modality(tuned, classes, seed, nthread=1)
    if fitted is not None:
        head.modality, head.modality_classes = fitted
        head.modality_min_confidence = rule.min_confidence
        head.modality_min_probability = rule.min_probability
    return head, tuned


def tuned_card(
    extractor_info: dict[str, Any], acts: TrainingSet, spec: dict[str, Any], study: dict[str, Any],
    decision: Decision, rule: NamingRule, *, seed: int, data_name: str, framed_heads: bool, seconds: float,
) -> dict[str, Any]:
    """The model card of a fine-tuned model: what it was trained on and how, and the grouped study."""
    from medlens.training.image_stats import STATS_VERSION
    from medlens.training.augment import AUGMENT_SPEC
    from medlens.training.composite import COMPOSITE_SPEC
    from medlens.training.train import BINARY_PARAMS, BINARY_ROUNDS, FRAMED_WEIGHT, MODALITY_FAMILY, MODALITY_PARAMS, MODALITY_ROUNDS

    samples = acts.real.samples
    summary = {k: v for k, v in study.items() if k not in ("oof", "errors", "fold_results")}
    return {
        "feature_extractor": extractor_info,
        "image_stats_version": STATS_VERSION,
        "feature_size": int(extractor_info["feature_size"]),
        "labels": ["non-medical", "medical"],
        "training": {
            "data": data_name,
            "seed": seed,
            "fine_tuning": spec,
            "trunk_views_per_image": acts.real.views,
            "framed_images": len(acts.framed.samples) if acts.framed is not None else 0,
            "framed_in_heads": framed_heads,
            "framed_weight": FRAMED_WEIGHT,
            "head_views": "plain view of each image (and of its framed copy)",
            "augmentation": AUGMENT_SPEC,
            "composites": COMPOSITE_SPEC,
            "binary_params": {**BINARY_PARAMS, "rounds": BINARY_ROUNDS},
            "modality_params": {**MODALITY_PARAMS, "rounds": MODALITY_ROUNDS},
            "modality_families": MODALITY_FAMILY,
            "weighting": "per label equal; modality and source shares by count**0.5; framed copies x0.5; "
                         "fine-tuning draws batches with the same weights",
            "counts": {"per_label": dict(sorted(Counter(s.label for s in samples).items())),
                       "per_modality": dict(sorted(Counter(f"{s.label}/{s.modality}" for s in samples).items()))},
            "sources": dict(sorted(Counter(s.source for s in samples).items())),
            "skipped": len(acts.real.skipped),
            "seconds": round(seconds, 1),
        },
        "threshold_rule": "balanced-accuracy optimum of the calibrated held-out probability of the grouped folds "
                          "(centre of the best plateau)",
        "modality_rule": "named only when the calibrated probability of medical >= min_probability and the modality "
                         "head's top probability >= min_confidence (both chosen on the grouped folds' held-out "
                         "predictions to maximise right minus wrong names, a name on a non-medical image counting as "
                         f"wrong, among the bars that name at most {MAX_NAMED_NON_MEDICAL:.1%} of the non-medical "
                         "images there); otherwise null",
        "grouped_folds": summary,
        "what_the_threshold_means": threshold_meaning(study, samples, decision.threshold),
        "held_out_predictions": card_predictions(study, samples, data_name),
    }


def threshold_meaning(study: dict[str, Any], samples: Sequence[Any], threshold: float) -> str:
    """What "medical at p >= t" means for a user, in the study's own held-out numbers."""
    n_med = sum(1 for s in samples if s.y == 1)
    n_non = len(samples) - n_med
    missed = sum(1 for e in study["errors"] if e["label"] == "medical")
    false = len(study["errors"]) - missed
    return (
        f"An image is called medical when its calibrated probability is at least {threshold:.3f}. On sources held out "
        f"of training ({len(study['per_fold'])} source-grouped folds) that caught {1 - missed / max(n_med, 1):.0%} of the "
        f"medical images ({missed} of {n_med} missed) and called {false / max(n_non, 1):.1%} of the non-medical ones "
        f"medical ({false} of {n_non}); of the images given a probability near p, about that share was medical "
        f"(expected calibration error {study['calibration']['ece']:.3f}). The threshold chosen fold by fold moved "
        f"between {study['threshold_between_folds']['min']:.3f} and {study['threshold_between_folds']['max']:.3f}."
    )


def _rounded(values: Sequence[float]) -> list[float | None]:
    return [None if np.isnan(v) else round(float(v), 6) for v in values]


def card_predictions(study: dict[str, Any], samples: Sequence[Any], data_name: str) -> dict[str, Any]:
    """Every image's held-out raw score and fold, its modality head's top class and confidence, and
    each composite's held-out score: enough to recompute every figure of the study (`results_from_card`)."""
    oof = study["oof"]
    mod = np.asarray(oof["modality"])
    root = Path(data_name) if data_name else None
    paths = []
    for s in samples:
        try:
            paths.append(str(Path(s.path).relative_to(root)) if root else str(s.path))
        except ValueError:
            paths.append(str(s.path))
    return {
        "paths": paths, "raw": _rounded(oof["raw"]), "fold": oof["fold"], "classes": oof["classes"],
        "modality_top": [int(k) for k in mod.argmax(axis=1)], "modality_confidence": _rounded(mod.max(axis=1)),
        "framed_raw": _rounded(oof["framed_raw"]),
    }


def results_from_card(predictions: dict[str, Any], acts: TrainingSet, folds: Sequence[np.ndarray]) -> list[tuple[int, FoldResult]]:
    """The card's held-out predictions as fold results, for `summarise` (folds rerun replace theirs)."""
    raw = np.array([np.nan if v is None else v for v in predictions["raw"]])
    framed_raw = np.array([np.nan if v is None else v for v in predictions["framed_raw"]])
    k_classes = len(predictions["classes"])
    mod = np.zeros((len(raw), k_classes))
    for i, (top, conf) in enumerate(zip(predictions["modality_top"], predictions["modality_confidence"])):
        conf = 0.0 if conf is None else conf
        mod[i] = (1 - conf) / max(k_classes - 1, 1)  # argmax and max are all the naming rule reads
        mod[i, top] = conf
    out = []
    for k, test in enumerate(folds):
        held = {acts.real.samples[i].source for i in test}
        framed_idx = np.array([i for i, s in enumerate(acts.framed.samples) if s.source in held], dtype=int) \
            if acts.framed is not None else np.zeros(0, dtype=int)
        out.append((k, FoldResult(np.asarray(test), raw[test], framed_idx, framed_raw[framed_idx], mod[test])))
    return out


def format_study(report: dict[str, Any]) -> str:
    """The grouped study as a person reads it in the terminal."""
    m = report["modality"]
    thr = report["threshold_between_folds"]
    auc = report["roc_auc"]
    lines = [
        f"{len(report['per_fold'])} source-grouped folds, {report['n']} held-out images",
        f"balanced accuracy {report['balanced_accuracy']:.4f}   ROC AUC {auc if auc is None else round(auc, 4)}   "
        f"ECE {report['calibration']['ece']:.4f}   framed {report['framed_accuracy']}",
        f"threshold between folds {thr['min']:.3f} .. {thr['max']:.3f}",
        f"modality named right {m['accuracy_known_kinds']} of {m['n_known_kinds']}; names on non-medical images "
        f"{m['named_non_medical']}; wrong-label images named {m['wrong_label_images_named']} of {m['wrong_label_images']}",
        "",
        f"{'held-out source':<34}{'fold':>5}{'n':>5}{'errors':>8}{'mean p':>8}",
    ]
    for name, row in report["per_source"].items():
        lines.append(f"{name:<34}{row['fold']:>5}{row['n']:>5}{row['errors']:>8}{row['mean_probability']:>8.3f}")
    return "\n".join(lines)
