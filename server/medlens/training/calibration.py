"""Fitting the calibration (Platt scaling or isotonic regression) on out-of-fold predictions of
source-grouped folds, and measuring it: expected calibration error (ECE) and the reliability
diagram's bins, for the card and `medlens evaluate`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medlens.model.calibration import Calibrator, logit, sigmoid

ECE_BINS = 10


def fit_platt(y: np.ndarray, p: np.ndarray, iterations: int = 100) -> Calibrator:
    """Logistic regression of the label on the raw score's logit (Newton's method, tiny ridge)."""
    x = logit(p)
    y = np.asarray(y, dtype=np.float64)
    # Platt's targets keep the fit finite when the scores separate the classes perfectly
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    def loss(a: float, b: float) -> float:
        z = a * x + b
        # cross-entropy against the soft targets, written to stay finite for large |z|
        return float((np.logaddexp(0, z) - t * z).sum() + 5e-4 * a * a)

    a, b = 1.0, 0.0
    for _ in range(iterations):
        q = sigmoid(a * x + b)
        g = np.array([((q - t) * x).sum() + 1e-3 * a, (q - t).sum()])
        w = q * (1 - q)
        h = np.array([[(w * x * x).sum() + 1e-3, (w * x).sum()], [(w * x).sum(), w.sum() + 1e-9]])
        step = np.linalg.solve(h, g)
        scale, current = 1.0, loss(a, b)
        while scale > 1e-6 and loss(a - scale * step[0], b - scale * step[1]) > current:
            scale /= 2  # Newton can overshoot on a flat stretch: halve until the loss falls
        a, b = a - scale * step[0], b - scale * step[1]
        if np.abs(scale * step).max() < 1e-9:
            break
    return Calibrator("platt", {"a": float(a), "b": float(b)})


def fit_isotonic(y: np.ndarray, p: np.ndarray) -> Calibrator:
    """Pool-adjacent-violators on the sorted scores; a step function stored as its knots."""
    order = np.argsort(p, kind="mergesort")
    xs, ys = np.asarray(p, dtype=np.float64)[order], np.asarray(y, dtype=np.float64)[order]
    blocks: list[list[float]] = []  # [sum_y, count, x_min, x_max]
    for x, v in zip(xs, ys):
        blocks.append([v, 1.0, x, x])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, c, lo, _ = blocks.pop(-2)
            blocks[-1] = [blocks[-1][0] + s, blocks[-1][1] + c, lo, blocks[-1][3]]
    knots_x, knots_y = [], []
    for s, c, lo, hi in blocks:
        # shrink each block's rate toward 0.5 by one pseudo-count: no hard 0 or 1 from a few images
        rate = (s + 0.5) / (c + 1.0)
        knots_x += [lo, hi]
        knots_y += [rate, rate]
    return Calibrator("isotonic", {"x": [float(v) for v in knots_x], "y": [float(v) for v in knots_y]})


def fit_calibrator(method: str, y: np.ndarray, p: np.ndarray) -> Calibrator:
    if method == "platt":
        return fit_platt(y, p)
    if method == "isotonic":
        return fit_isotonic(y, p)
    return Calibrator("none", {})


def reliability(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> dict[str, Any]:
    """Equal-width bins: mean predicted probability, observed share medical and count per bin, and the ECE."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    idx = np.clip((p * bins).astype(int), 0, bins - 1)
    rows = []
    ece = 0.0
    for b in range(bins):
        mask = idx == b
        n = int(mask.sum())
        if not n:
            continue
        mean_p, observed = float(p[mask].mean()), float(y[mask].mean())
        ece += n / len(p) * abs(mean_p - observed)
        rows.append({"bin": [b / bins, (b + 1) / bins], "n": n, "mean_probability": mean_p, "observed": observed})
    return {"ece": float(ece), "bins": rows}
