"""Background field removal: fields of sources outside the mask vanish inside it."""

import warnings

import numpy as np
import pytest

from analysis.imaging.qsm import forward_field, pdf, smv, vsharp

N = 48


def _setup():
    x, y, z = np.meshgrid(*[np.arange(N) - N / 2 + 0.5] * 3, indexing="ij")
    mask = (x / 15) ** 2 + (y / 17) ** 2 + (z / 13) ** 2 <= 1
    # exterior sources: an air pocket below, a bone-like slab at the side, both outside the mask
    chi_bg = np.zeros((N, N, N), np.float32)
    chi_bg[(x**2 + (y - 4) ** 2 + (z + 20) ** 2) < 5**2] = 9.4
    chi_bg[(np.abs(x - 21) < 2) & (np.abs(y) < 15)] = -2.0
    assert not np.any(mask & (chi_bg != 0))
    # interior source: a small paramagnetic blob well inside
    chi_in = np.zeros((N, N, N), np.float32)
    chi_in[(x - 2) ** 2 + (y + 3) ** 2 + z**2 < 3**2] = 0.2
    return mask, forward_field(chi_bg, pad=32), forward_field(chi_in, pad=32)


def test_pdf_removes_exterior_fields():
    mask, f_bg, f_in = _setup()
    bg_rms = np.sqrt(np.mean(f_bg[mask] ** 2))
    assert bg_rms > 0.05  # a strong background (ppm)
    # the toolbox defaults (CG tolerance 0.1, 30 iterations) remove ~90 % of this strong,
    # close background; a converged solve removes > 99 %
    local = pdf(f_bg, mask, voxel_size=1.0)
    assert np.sqrt(np.mean(local[mask] ** 2)) < 0.12 * bg_rms
    assert np.all(local[~mask] == 0)
    local = pdf(f_bg, mask, voxel_size=1.0, tol=1e-3, max_iter=300)
    assert np.sqrt(np.mean(local[mask] ** 2)) < 0.01 * bg_rms
    # with an interior source, its (non-harmonic) field largely survives
    local, bg = pdf(f_bg + f_in, mask, voxel_size=1.0, tol=0.01, max_iter=200, return_background=True)
    core = mask & (np.abs(f_in) > 0.01)
    err = local[core] - f_in[core]
    assert np.sqrt(np.mean(err**2)) < 0.15 * np.sqrt(np.mean(f_in[core] ** 2))
    np.testing.assert_allclose((local + bg)[mask], (f_bg + f_in)[mask], atol=1e-5)


def test_pdf_stops_at_the_noise_level():
    """The toolbox's criterion: with noise_std in field units, tol=0.1 leaves ~noise-level residuals."""
    mask, f_bg, _ = _setup()
    for sigma in (0.002, 0.01):
        local = pdf(f_bg, mask, voxel_size=1.0, noise_std=np.full(mask.shape, sigma))
        rms = np.sqrt(np.mean(local[mask] ** 2))
        assert rms < sigma
    assert rms > 0.002  # a higher noise level stops earlier


def test_pdf_noise_weighting_and_errors():
    mask, f_bg, _ = _setup()
    noise = np.where(mask, 1e-3, 0.0)
    noise[mask & (np.arange(N)[:, None, None] > 30)] = 0.1  # unreliable part: fitted less
    local = pdf(f_bg, mask, voxel_size=1.0, noise_std=noise, tol=0.1, max_iter=300)
    good = mask & (np.arange(N)[:, None, None] <= 30)
    assert np.sqrt(np.mean(local[good] ** 2)) < 0.01 * np.sqrt(np.mean(f_bg[good] ** 2))
    with pytest.raises(ValueError, match="mask is empty"):
        pdf(f_bg, np.zeros_like(mask), voxel_size=1.0)
    with pytest.raises(ValueError, match="mask shape"):
        pdf(f_bg, mask[:-1], voxel_size=1.0)
    with pytest.raises(ValueError, match="tol"):
        pdf(f_bg, mask, voxel_size=1.0, tol=2)


def test_vsharp_removes_exterior_fields_and_erodes():
    mask, f_bg, _ = _setup()
    local, emask = vsharp(f_bg, mask, voxel_size=1.0, radii_mm=[8, 6, 4, 2])
    assert emask.sum() < mask.sum() and np.all(mask[emask])
    assert np.all(local[~emask] == 0)
    assert np.sqrt(np.mean(local[emask] ** 2)) < 0.02 * np.sqrt(np.mean(f_bg[emask] ** 2))


def test_smv_of_harmonic_function_is_itself():
    # the mean value property: a harmonic (here linear + xy) function equals its spherical mean
    x, y, z = np.meshgrid(*[np.arange(32.0)] * 3, indexing="ij")
    h = (0.3 * x - 0.2 * z + 0.01 * x * y).astype(np.float32)
    s = smv(h, radius_mm=4.0)
    inner = (slice(6, -6),) * 3
    np.testing.assert_allclose(s[inner], h[inner], atol=1e-4)


def test_pdf_noise_free_data_fall_back_to_uniform_weights():
    """An all-zero noise map (noise-free data) used to stop PDF (no positive weight); tiny
    round-off-level noise overflowed float32 (1/σ²) and returned NaN."""
    mask, f_bg, _ = _setup()
    with pytest.warns(RuntimeWarning, match="noise-free"):
        local = pdf(f_bg, mask, voxel_size=1.0, noise_std=np.zeros(mask.shape))
    bg_rms = np.sqrt(np.mean(f_bg[mask] ** 2))
    assert np.all(np.isfinite(local))
    # uniform weights, max_iter (30) iterations: better than the relative stop at tol=0.1
    assert np.sqrt(np.mean(local[mask] ** 2)) < 0.05 * bg_rms
    ref = pdf(f_bg, mask, voxel_size=1.0, tol=1e-9, max_iter=30)
    np.testing.assert_allclose(local, ref, atol=1e-6)
    # round-off-sized noise: finite, and the same solution as the same map scaled up (weights
    # are relative; only the stopping level moves with the noise level)
    tiny = np.where(mask, 1e-21 * (1 + np.random.default_rng(0).random(mask.shape)), 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no overflow warning, no noise-free warning
        a = pdf(f_bg, mask, voxel_size=1.0, noise_std=tiny, max_iter=20)
    b = pdf(f_bg, mask, voxel_size=1.0, noise_std=tiny * 1e18, tol=1e-9, max_iter=20)
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_pdf_zero_noise_voxels_are_reliable_not_ignored():
    mask, f_bg, _ = _setup()
    noise = np.where(mask, 1e-3, 1.0)
    some = mask & (np.arange(N)[:, None, None] < 20)
    noise[some] = 0.0                       # fitted exactly: the most reliable voxels
    local = pdf(f_bg, mask, voxel_size=1.0, noise_std=noise, tol=1e-3, max_iter=200)
    assert np.all(np.isfinite(local))
    assert np.sqrt(np.mean(local[some] ** 2)) < 0.01 * np.sqrt(np.mean(f_bg[some] ** 2))
    with pytest.raises(ValueError, match="negative"):
        pdf(f_bg, mask, voxel_size=1.0, noise_std=np.where(mask, -1.0, 1.0))
    with pytest.raises(ValueError, match="not finite"):
        pdf(f_bg, mask, voxel_size=1.0, noise_std=np.full(mask.shape, np.nan))
