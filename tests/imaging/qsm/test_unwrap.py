"""Phase unwrapping of wrapped smooth fields; brain mask."""

import numpy as np
import pytest

from analysis.imaging.qsm import brain_mask, unwrap_laplacian, unwrap_path, wrap


def _smooth_phase(n=40):
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n)] * 3, indexing="ij")
    # up to ~±15 rad, at most ~1.5 rad between neighbours: many wraps, no aliasing
    true = 12 * np.exp(-(x**2 + 2 * y**2 + z**2) / 0.5) + 5 * x * y + 3 * z
    mask = x**2 + y**2 + z**2 < 0.8
    return true, mask


def _assert_equal_up_to_2pi(u, true, sel, atol):
    d = (u - true)[sel]
    k = np.round(d.mean() / (2 * np.pi))
    assert abs(d.mean() - 2 * np.pi * k) < atol  # the constant is a multiple of 2π
    np.testing.assert_allclose(d, 2 * np.pi * k, atol=atol)


def test_wrap_range():
    p = np.linspace(-20, 20, 101)
    w = wrap(p)
    assert w.min() >= -np.pi and w.max() < np.pi
    np.testing.assert_allclose(np.cos(w), np.cos(p), atol=1e-12)


def test_laplacian_unwrap_recovers_smooth_field():
    true, _ = _smooth_phase()
    psi = wrap(true)
    assert np.abs(psi - true).max() > 6  # really wrapped
    _assert_equal_up_to_2pi(unwrap_laplacian(psi), true, np.ones(true.shape, bool), atol=1e-4)


def test_laplacian_unwrap_ignores_noise_outside_mask():
    true, mask = _smooth_phase()
    rng = np.random.default_rng(0)
    psi = np.where(mask, wrap(true), rng.uniform(-np.pi, np.pi, true.shape))
    u = unwrap_laplacian(psi, mask=mask, voxel_size=(1.0, 1.0, 2.0))
    _assert_equal_up_to_2pi(u, true, mask, atol=1e-3)
    assert np.all(u[~mask] == 0)
    # congruent variant equals the data modulo 2π exactly
    uc = unwrap_laplacian(psi, mask=mask, congruent=True)
    np.testing.assert_allclose(wrap(uc - psi)[mask], 0, atol=1e-5)
    _assert_equal_up_to_2pi(uc, true, mask, atol=1e-4)


def test_path_unwrap_recovers_smooth_field_exactly():
    true, mask = _smooth_phase()
    rng = np.random.default_rng(0)
    psi = np.where(mask, wrap(true), rng.uniform(-np.pi, np.pi, true.shape))
    u = unwrap_path(psi, mask=mask, seed=0)
    _assert_equal_up_to_2pi(u, true, mask, atol=1e-5)
    assert np.all(u[~mask] == 0)


def test_unwrap_bad_input():
    with pytest.raises(ValueError, match="3-D"):
        unwrap_laplacian(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="mask shape"):
        unwrap_laplacian(np.zeros((4, 4, 4)), mask=np.ones((4, 4, 3), bool))
    with pytest.raises(ValueError, match="empty"):
        unwrap_path(np.zeros((4, 4, 4)), mask=np.zeros((4, 4, 4), bool))
    with pytest.raises(ValueError, match="non-finite"):
        unwrap_laplacian(np.full((4, 4, 4), np.nan))


def test_brain_mask_finds_the_bright_ellipsoid():
    n = 40
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n)] * 3, indexing="ij")
    obj = (x / 0.7) ** 2 + (y / 0.8) ** 2 + (z / 0.6) ** 2 <= 1
    rng = np.random.default_rng(0)
    mag = np.where(obj, 1.0, 0.0) + 0.05 * np.abs(rng.standard_normal(obj.shape))
    mag[20, 20, 20] = 0.0  # a dark voxel inside (a vein): filled
    m = brain_mask(mag, voxel_size=2.0, erosion_mm=0)
    assert m[20, 20, 20]
    dice = 2 * np.sum(m & obj) / (m.sum() + obj.sum())
    assert dice > 0.97
    m2 = brain_mask(mag, voxel_size=2.0, erosion_mm=2.0)
    assert m2.sum() < m.sum() and np.all(m[m2])
