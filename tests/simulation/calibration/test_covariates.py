"""Covariate building blocks: binary profiles with exact cross-counts, multisets with the published moments."""

import numpy as np
import pytest

from analysis.simulation.calibration import covariates
from analysis.simulation.calibration.table2 import CROSS_COUNTS


def test_binary_profiles_have_the_requested_counts():
    prof = covariates.binary_profiles(CROSS_COUNTS)
    e, m, d, k = prof.T
    assert k.sum() == 95 and (k >= 0).all()
    assert (k * e).sum() == 9 and (k * m).sum() == 31 and (k * d).sum() == 57
    assert ((k * e * m).sum(), (k * e * d).sum(), (k * m * d).sum()) == CROSS_COUNTS
    with pytest.raises(ValueError, match="impossible"):
        covariates.binary_profiles((9, 9, 40))


def test_fix_moments_meets_mean_sd_and_range():
    rng = np.random.default_rng(1)
    x = covariates._fix_moments(rng.normal(40, 8, 95), lo=25, hi=71, mean=42.0, sd=10.4, step=0.1, rng=rng,
                                mean_tol=0.05, sd_tol=0.002)
    assert abs(x.mean() - 42) < 0.05 and abs(x.std(ddof=1) - 10.4) < 0.002
    assert x.min() == 25 and x.max() == 71
    assert np.allclose(x * 10, np.round(x * 10))
