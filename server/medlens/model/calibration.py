"""Calibrated probability of "medical": the map from the head's raw score to a frequency, read
from the model card as plain numbers (training/calibration.py fits it).

XGBoost's raw output on label-balanced weights is a score, not a frequency: the extension's
"call it medical when at least 70 % sure" only means 70 % after this step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

METHODS = ("platt", "isotonic", "none")
_EPS = 1e-6


def sigmoid(z: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibrator:
    method: str
    params: dict[str, Any]

    def apply(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        if self.method == "platt":
            return sigmoid(self.params["a"] * logit(p) + self.params["b"])
        if self.method == "isotonic":
            return np.interp(p, self.params["x"], self.params["y"])
        return p

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **self.params}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Calibrator":
        if not data:
            return cls("none", {})
        method = data.get("method", "none")
        if method not in METHODS:
            raise ValueError(f"unknown calibration method {method!r}")
        return cls(method, {k: v for k, v in data.items() if k != "method"})
