"""Metric arithmetic on cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.training.metrics import balanced_accuracy, binary_report, choose_threshold, roc_auc


def test_roc_auc_known_values():
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert roc_auc(y, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert roc_auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)
    assert roc_auc(np.array([1, 1]), np.array([0.2, 0.3])) is None


def test_balanced_accuracy_weighs_classes_equally():
    y = np.array([0] * 9 + [1])
    assert balanced_accuracy(y, np.zeros(10, dtype=int)) == 0.5
    assert balanced_accuracy(y, y) == 1.0


def test_threshold_is_the_middle_of_the_best_plateau():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.6, 0.9])
    assert choose_threshold(y, p) == pytest.approx(0.4)


def test_report_shape_and_counts():
    y = [1, 1, 0, 0, 0]
    p = [0.9, 0.3, 0.6, 0.1, 0.2]
    rep = binary_report(y, p, 0.5, ["s1", "s1", "s2", "s2", "s3"], ["m", "m", "n", "n", "n"])
    assert {"n", "accuracy", "balanced_accuracy", "roc_auc", "threshold", "confusion", "per_source", "per_modality"} <= set(rep)
    assert rep["confusion"]["matrix"] == [[2, 1], [1, 1]]
    assert rep["accuracy"] == pytest.approx(0.6)
    assert rep["per_source"]["s1"] == {"n": 2, "label": "medical", "accuracy": 0.5, "errors": 1, "mean_probability": 0.6}
    assert rep["per_class"]["medical"]["precision"] == pytest.approx(0.5)
    assert rep["per_class"]["non-medical"]["recall"] == pytest.approx(2 / 3)
