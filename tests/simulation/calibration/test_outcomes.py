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
