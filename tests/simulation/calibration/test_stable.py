"""Decisions of the calibration that do not depend on rounding (analysis.simulation.calibration.stable)."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from analysis.simulation.calibration.stable import RTOL, improves, single_threaded, snap


def test_improves_refuses_a_tie_within_rounding():
    cur = 0.7318
    assert not improves(cur * (1 - 1e-14), cur)          # a null move that rounding made "better"
    assert not improves(cur * (1 + 1e-14), cur)
    assert not improves(cur, cur)
    assert improves(cur * (1 - 10 * RTOL), cur)           # a real improvement is taken
    assert not improves(cur * (1 + 10 * RTOL), cur)
    assert improves(-1.0, 0.0) and not improves(0.0, 0.0)


def test_snap_rounds_to_significant_digits_and_absorbs_rounding_noise():
    assert snap(0.123456789) == 0.123457
    assert snap(-987654.321) == -987654.0
    x = np.array([[1.23456789e-5, 3.3333333], [0.0, np.inf]])
    out = snap(x)
    assert out.shape == x.shape
    np.testing.assert_array_equal(out, [[1.23457e-5, 3.33333], [0.0, np.inf]])
    # two results of an optimiser that differ in the last bits snap to the same number
    v = 0.4271938473
    assert snap(v) == snap(v * (1 + 3e-15)) == snap(v * (1 - 3e-15))


def test_single_threaded_limits_blas_inside_the_block_only():
    before = [d["num_threads"] for d in threadpool_info()]
    with single_threaded():
        assert all(d["num_threads"] == 1 for d in threadpool_info())
    assert [d["num_threads"] for d in threadpool_info()] == before


@pytest.mark.parametrize("rel", [1e-15, -1e-15, 4e-14])
def test_shaped_residuals_do_not_move_with_last_bit_noise(rel):
    """The outcome construction lands on the same values when its input differs by rounding noise
    (the SLSQP run it replaced moved by up to 2.3 ppb between two BLAS kernels)."""
    from analysis.simulation.calibration.outcomes import shape_residuals

    n = 95
    rng = np.random.default_rng(5)
    s = rng.normal(-29, 11.7, n)
    D = np.column_stack([np.ones(n), s])
    summary = {"mean": "14.0", "sd": "2.1", "min": "8.4", "max": "20.0"}
    w0 = rng.standard_normal(n - 2)
    a = shape_residuals(9.0 * s, D, 2000.0 * np.sqrt(n - 2), summary, None, scale=1e-3, w0=w0)
    b = shape_residuals(9.0 * s * (1 + rel), D, 2000.0 * np.sqrt(n - 2), summary, None, scale=1e-3, w0=w0)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-8)            # mm³ values of ~14000
    assert a.min() == pytest.approx(8400.0) and a.max() == pytest.approx(20000.0)
