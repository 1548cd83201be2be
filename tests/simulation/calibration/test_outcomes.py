"""Outcome construction: residuals orthogonal to the design keep the planted fit and the summary."""

import numpy as np
import pytest

from analysis.simulation.calibration.outcomes import shape_residuals


def test_shape_residuals_keeps_the_exact_fit_and_the_summary():
    """y = fitted + residuals orthogonal to D: OLS of y on D returns the planted coefficients."""
    rng = np.random.default_rng(2)
    n = 95
    s = rng.normal(-29, 11.7, n)
    D = np.column_stack([np.ones(n), s])
    summary = {"mean": "14.0", "sd": "2.1", "min": "8.4", "max": "20.0"}
    y = shape_residuals(9.0 * s, D, 2000.0 * np.sqrt(n - 2), summary, rng, scale=1e-3)
    coef, *_ = np.linalg.lstsq(D, y, rcond=None)
    assert coef[1] == pytest.approx(9.0, abs=1e-6)
    resid = y - D @ coef
    assert np.sqrt(resid @ resid / (n - 2)) == pytest.approx(2000.0, rel=1e-6)
    for stat, value in (("mean", y.mean()), ("min", y.min()), ("max", y.max())):
        assert value * 1e-3 == pytest.approx(float(summary[stat]), abs=1e-6)


def test_shape_residuals_on_the_log_scale_meets_moments_and_an_extra_equality():
    """Log scale (lesion volume): mean, SD, minimum and maximum of exp(y) as published, the planted
    fit on the log scale, and an extra equality given with its gradient."""
    rng = np.random.default_rng(3)
    n = 95
    s = rng.normal(-29, 11.7, n)
    D = np.column_stack([np.ones(n), s])
    summary = {"mean": "9.9", "sd": "12.1", "min": "0.1", "max": "71.3"}
    e = np.zeros(n)
    e[:2] = (1.0, -1.0)

    def gap(y):  # y[0] - y[1] = 0.25, with its gradient
        return y[0] - y[1] - 0.25, e

    y = shape_residuals(0.02 * s, D, 1.1 * np.sqrt(n - 2), summary, rng, log_scale=True, extra_eq=(gap,))
    v = np.exp(y)
    assert v.mean() == pytest.approx(9.9, rel=1e-9) and v.std(ddof=1) == pytest.approx(12.1, rel=1e-9)
    assert v.min() == pytest.approx(0.1, rel=1e-9) and v.max() == pytest.approx(71.3, rel=1e-9)
    assert y[0] - y[1] == pytest.approx(0.25, abs=1e-10)
    coef, *_ = np.linalg.lstsq(D, y, rcond=None)
    assert coef[1] == pytest.approx(0.02, abs=1e-9)
    resid = y - D @ coef
    assert np.sqrt(resid @ resid / (n - 2)) == pytest.approx(1.1, rel=1e-9)
