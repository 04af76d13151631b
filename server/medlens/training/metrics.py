"""Binary-classification metrics in plain numpy, in the report shape `medlens evaluate` writes."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np


def roc_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score, ties handled as one step."""
    order = np.argsort(-p, kind="mergesort")
    y, p = y[order], p[order]
    distinct = np.r_[np.flatnonzero(np.diff(p)), len(p) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    pos, neg = max(int(y.sum()), 1), max(int(len(y) - y.sum()), 1)
    return np.r_[0.0, fps / neg], np.r_[0.0, tps / pos]


def roc_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    fpr, tpr = roc_curve(y, p)
    return float(np.trapezoid(tpr, fpr))


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    recalls = [float((pred[y == c] == c).mean()) for c in (0, 1) if (y == c).any()]
    return float(np.mean(recalls)) if recalls else float("nan")


def choose_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """Threshold with the best balanced accuracy; the middle of the best plateau, so it is not on an edge."""
    candidates = np.unique(np.r_[p, 0.0, 1.0])
    mids = (candidates[:-1] + candidates[1:]) / 2
    scores = np.array([balanced_accuracy(y, (p >= t).astype(int)) for t in mids])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    # widest-margin choice among ties: the centre of the span of best thresholds
    lo, hi = mids[best[0]], mids[best[-1]]
    return float(round((lo + hi) / 2, 4))


def binary_report(
    y: Sequence[int],
    p: Sequence[float],
    threshold: float,
    sources: Sequence[str],
    modalities: Sequence[str],
) -> dict[str, Any]:
    y_arr = np.asarray(y, dtype=int)
    p_arr = np.asarray(p, dtype=float)
    pred = (p_arr >= threshold).astype(int)
    tp = int(((pred == 1) & (y_arr == 1)).sum())
    tn = int(((pred == 0) & (y_arr == 0)).sum())
    fp = int(((pred == 1) & (y_arr == 0)).sum())
    fn = int(((pred == 0) & (y_arr == 1)).sum())
    per_class = {
        "medical": _prf(tp, fp, fn),
        "non-medical": _prf(tn, fn, fp),
    }
    return {
        "n": int(len(y_arr)),
        "threshold": float(threshold),
        "accuracy": float((pred == y_arr).mean()) if len(y_arr) else float("nan"),
        "balanced_accuracy": balanced_accuracy(y_arr, pred),
        "roc_auc": roc_auc(y_arr, p_arr),
        "per_class": per_class,
        "confusion": {
            "labels": ["non-medical", "medical"],
            "matrix": [[tn, fp], [fn, tp]],
            "tn": tn, "fp": fp, "fn": fn, "tp": tp,
        },
        "per_source": _grouped(y_arr, pred, p_arr, sources),
        "per_modality": _grouped(y_arr, pred, p_arr, modalities),
    }


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}


def _grouped(y: np.ndarray, pred: np.ndarray, p: np.ndarray, keys: Sequence[str]) -> dict[str, Any]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    out = {}
    for key in sorted(groups):
        idx = np.asarray(groups[key])
        out[key] = {
            "n": int(len(idx)),
            "label": "medical" if y[idx].mean() == 1 else "non-medical" if y[idx].mean() == 0 else "mixed",
            "accuracy": float((pred[idx] == y[idx]).mean()),
            "errors": int((pred[idx] != y[idx]).sum()),
            "mean_probability": float(p[idx].mean()),
        }
    return out
