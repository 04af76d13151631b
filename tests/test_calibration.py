"""Calibration: Platt and isotonic fits move scores toward observed frequencies, and the ECE says so."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.model.calibration import Calibrator
from medlens.training.calibration import fit_calibrator, reliability


def _overconfident(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores pushed toward 0 and 1 much harder than the true frequencies justify."""
    rng = np.random.default_rng(seed)
    true_p = rng.uniform(0.05, 0.95, n)
    y = (rng.uniform(size=n) < true_p).astype(int)
    logit = np.log(true_p / (1 - true_p)) * 3.0
    return y, 1 / (1 + np.exp(-logit))


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_lowers_the_error_of_overconfident_scores(method: str):
    y, raw = _overconfident()
    before = reliability(y, raw)["ece"]
    cal = fit_calibrator(method, y[:2000], raw[:2000])
    after = reliability(y[2000:], cal.apply(raw[2000:]))["ece"]
    assert before > 0.08
    assert after < 0.04 < before


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrators_are_monotone_and_round_trip_through_the_card(method: str):
    y, raw = _overconfident(seed=1)
    cal = fit_calibrator(method, y, raw)
    grid = np.linspace(0, 1, 101)
    out = cal.apply(grid)
    assert np.all(np.diff(out) >= -1e-12)
    assert np.all((out >= 0) & (out <= 1))
    again = Calibrator.from_dict(cal.to_dict())
    np.testing.assert_allclose(again.apply(grid), out)


def test_perfectly_separated_scores_stay_finite():
    y = np.array([0] * 50 + [1] * 50)
    raw = np.r_[np.full(50, 0.01), np.full(50, 0.99)]
    for method in ("platt", "isotonic"):
        out = fit_calibrator(method, y, raw).apply(raw)
        assert np.all(np.isfinite(out))
        assert out[:50].max() < 0.1 and out[50:].min() > 0.9


def test_reliability_bins_count_every_prediction():
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.05, 0.95, 0.91, 0.45, 0.55])
    rel = reliability(y, p)
    assert sum(b["n"] for b in rel["bins"]) == 5
    assert rel["ece"] == pytest.approx((0.05 + 2 * 0.07 + 0.45 + 0.45) / 5, abs=1e-9)


def test_unknown_method_in_a_card_is_refused():
    with pytest.raises(ValueError):
        Calibrator.from_dict({"method": "magic"})
    assert Calibrator.from_dict(None).apply(np.array([0.3]))[0] == pytest.approx(0.3)
