"""Multi-echo complex field fit and unit conversions."""

import numpy as np
import pytest

from analysis.imaging.qsm import (
    GAMMA_HZ_PER_T,
    fit_field_complex,
    hz_to_ppm,
    ppm_to_rad,
    r2star_loglinear,
    rad_per_ppm,
    rad_to_hz,
    rad_to_ppm,
)

TE = 4.3e-3 + 4.8e-3 * np.arange(8)
DTE = 4.8e-3


def _echoes(field_hz, offset, *, r2s=20.0, s0=100.0, sigma=0.0, seed=0):
    rng = np.random.default_rng(seed)
    sig = s0 * np.exp(-r2s * TE) * np.exp(1j * (offset[..., None] + 2 * np.pi * field_hz[..., None] * TE))
    if sigma:
        sig = sig + sigma * (rng.standard_normal(sig.shape) + 1j * rng.standard_normal(sig.shape))
    return sig


def test_fit_recovers_field_offset_and_noise_level():
    rng = np.random.default_rng(1)
    shape = (16, 16, 16)
    # |2π f ΔTE| < π (no aliasing in time): |f| < 104 Hz
    f_hz = rng.uniform(-90, 90, shape)
    off = rng.uniform(-3, 3, shape)
    fit = fit_field_complex(_echoes(f_hz, off, sigma=2.0), TE)
    true_rad = 2 * np.pi * f_hz * DTE
    err = fit.field_rad - true_rad
    assert fit.delta_te_s == pytest.approx(DTE)
    # unbiased, and the predicted standard deviation matches the observed one
    assert abs(err.mean()) < 3 * err.std() / np.sqrt(err.size)
    assert np.std(err) == pytest.approx(np.median(fit.noise_std_rad), rel=0.1)
    # Cramér–Rao for amplitude-weighted phase: σ / sqrt(Σ S_n² (t_n − t̄_w)²) · ΔTE
    w = (100 * np.exp(-20 * TE)) ** 2
    tbar = (w * TE).sum() / w.sum()
    crb = 2.0 / np.sqrt((w * (TE - tbar) ** 2).sum()) * DTE
    assert np.std(err) == pytest.approx(crb, rel=0.1)
    d_off = np.angle(np.exp(1j * (fit.phase_offset_rad - off)))
    assert np.sqrt(np.mean(d_off**2)) < 0.05
    assert fit.residual.max() < 0.2


def test_fit_is_exact_without_noise_and_rewraps_large_fields():
    f_hz = np.linspace(-300, 300, 4 * 4 * 5).reshape(4, 4, 5)  # up to 1.4 cycles per ΔTE
    fit = fit_field_complex(_echoes(f_hz, np.zeros(f_hz.shape)), TE)
    want = np.angle(np.exp(1j * 2 * np.pi * f_hz * DTE))
    np.testing.assert_allclose(np.angle(np.exp(1j * (fit.field_rad - want))), 0, atol=1e-5)
    assert np.all(np.abs(fit.field_rad) <= np.pi + 1e-6)
    assert fit.residual.max() < 1e-5


def test_fit_mask_and_bad_input():
    f_hz = np.full((4, 4, 4), 20.0)
    sig = _echoes(f_hz, np.zeros(f_hz.shape))
    mask = np.zeros((4, 4, 4), bool)
    mask[1:3, 1:3, 1:3] = True
    fit = fit_field_complex(sig, TE, mask=mask)
    assert np.all(fit.field_rad[~mask] == 0)
    np.testing.assert_allclose(fit.field_rad[mask], 2 * np.pi * 20 * DTE, atol=1e-5)
    with pytest.raises(ValueError, match="at least 2 echoes"):
        fit_field_complex(sig[..., :1], TE[:1])
    with pytest.raises(ValueError, match="echo_times_s has"):
        fit_field_complex(sig, TE[:3])
    with pytest.raises(ValueError, match="milliseconds"):
        fit_field_complex(sig, TE * 1000)
    with pytest.raises(ValueError, match="increasing"):
        fit_field_complex(sig, TE[::-1])
    with pytest.raises(ValueError, match="complex"):
        fit_field_complex(np.abs(sig), TE)


def test_unit_conversions():
    # 1 ppm at 3 T is 127.7 Hz; over 4.8 ms that is 2π·0.613 rad
    assert hz_to_ppm(GAMMA_HZ_PER_T * 3.0 * 1e-6, b0_tesla=3.0) == pytest.approx(1.0)
    assert rad_per_ppm(delta_te_s=DTE, b0_tesla=3.0) == pytest.approx(2 * np.pi * DTE * 127.7324, rel=1e-5)
    x = np.array([0.1, -0.4])
    np.testing.assert_allclose(rad_to_ppm(ppm_to_rad(x, delta_te_s=DTE), delta_te_s=DTE), x)
    assert rad_to_hz(np.pi, delta_te_s=0.005) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="delta_te_s"):
        rad_to_ppm(1.0, delta_te_s=0)


def test_r2star_loglinear():
    mag = np.abs(_echoes(np.zeros((3, 3, 3)), np.zeros((3, 3, 3)), r2s=35.0))
    np.testing.assert_allclose(r2star_loglinear(mag, TE), 35.0, rtol=1e-4)
