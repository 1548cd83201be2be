"""Multi-echo field fit (as MEDI's ``Fit_ppm_complex``), R2*, and unit conversions.

Signal model per voxel, echo ``n`` at echo time ``t_n`` (s)::

    S_n ≈ |S_n| · exp(i (φ0 + ω t_n))

with the phase offset φ0 (rad, the phase extrapolated to t = 0: receiver/coil phase) and the
angular frequency ω (rad/s) of the local field. The amplitude is taken from the data, so the fit
minimises ``Σ_n |S_n|² · 2 (1 − cos(ψ_n − φ0 − ω t_n))`` (ψ_n the measured phase): a complex
least-squares fit whose phase errors are weighted by ``|S_n|²``, solved per voxel by
Gauss–Newton (two parameters, closed-form 2×2 normal equations).

The field is returned, as in the MEDI toolbox, in **radians per echo spacing** ΔTE
(``field_rad = ω·ΔTE``, rewrapped to [−π, π]), so it still needs spatial unwrapping when the
field exceeds ±π/ΔTE. Conversions::

    f [Hz]   = field_rad / (2π ΔTE)
    f [ppm]  = f [Hz] / (γ̄ B0) · 1e6,       γ̄ = 42.577 MHz/T
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from analysis.io import progress_bar

from .kernels import GAMMA_HZ_PER_T

__all__ = [
    "FieldFit",
    "fit_field_complex",
    "rad_to_ppm",
    "ppm_to_rad",
    "rad_to_hz",
    "hz_to_ppm",
    "rad_per_ppm",
    "r2star_loglinear",
    "combine_magnitude",
]


def rad_per_ppm(*, delta_te_s, b0_tesla):
    """Phase (rad) accrued over ``delta_te_s`` by a 1 ppm field at ``b0_tesla``: 2π ΔTE γ̄ B0 1e-6."""
    _check_positive(delta_te_s, "delta_te_s")
    _check_positive(b0_tesla, "b0_tesla")
    return 2.0 * np.pi * float(delta_te_s) * GAMMA_HZ_PER_T * float(b0_tesla) * 1e-6


def rad_to_ppm(field_rad, *, delta_te_s, b0_tesla=3.0):
    """Convert a field in rad per ΔTE to ppm of B0 (array or scalar)."""
    return np.asarray(field_rad) / rad_per_ppm(delta_te_s=delta_te_s, b0_tesla=b0_tesla)


def ppm_to_rad(field_ppm, *, delta_te_s, b0_tesla=3.0):
    """Convert a field in ppm of B0 to rad accrued per ΔTE (array or scalar)."""
    return np.asarray(field_ppm) * rad_per_ppm(delta_te_s=delta_te_s, b0_tesla=b0_tesla)


def rad_to_hz(field_rad, *, delta_te_s):
    """Convert a field in rad per ΔTE to Hz: ``field_rad / (2π ΔTE)``."""
    _check_positive(delta_te_s, "delta_te_s")
    return np.asarray(field_rad) / (2.0 * np.pi * float(delta_te_s))


def hz_to_ppm(field_hz, *, b0_tesla=3.0):
    """Convert a frequency offset (Hz) to ppm of the Larmor frequency γ̄ B0."""
    _check_positive(b0_tesla, "b0_tesla")
    return np.asarray(field_hz) / (GAMMA_HZ_PER_T * float(b0_tesla)) * 1e6


def _check_positive(v, name):
    try:
        ok = np.isfinite(float(v)) and float(v) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")


def _check_echo_times(echo_times_s, n_echoes):
    te = np.asarray(echo_times_s, dtype=float).ravel()
    if te.size != n_echoes:
        raise ValueError(f"echo_times_s has {te.size} values but the data have {n_echoes} echoes")
    if not np.all(np.isfinite(te)) or np.any(te < 0):
        raise ValueError(f"echo_times_s must be finite and non-negative (seconds), got {te.tolist()}")
    if np.any(np.diff(te) <= 0):
        raise ValueError(f"echo_times_s must be strictly increasing, got {te.tolist()}")
    if te.max() > 1.0:
        raise ValueError(f"echo_times_s must be in seconds; got {te.max()} (milliseconds given?)")
    return te


class FieldFit(NamedTuple):
    """Result of :func:`fit_field_complex` (arrays of shape (X, Y, Z), float32)."""

    #: Field in rad per echo spacing ``delta_te_s`` (ω·ΔTE), rewrapped to [−π, π].
    field_rad: np.ndarray
    #: Standard deviation of ``field_rad`` (rad per ΔTE) from the fit's covariance (N_std).
    noise_std_rad: np.ndarray
    #: Phase offset φ0 at t = 0 (rad, wrapped to [−π, π]).
    phase_offset_rad: np.ndarray
    #: Relative residual ``sqrt(Σ|S_n − model_n|² / Σ|S_n|²)`` (dimensionless).
    residual: np.ndarray
    #: Echo spacing that defines the unit of ``field_rad`` (s): ``TE_2 − TE_1``.
    delta_te_s: float
    #: Gauss–Newton iterations used.
    n_iter: int


def fit_field_complex(signal, echo_times_s, *, mask=None, max_iter=30, reltol=1e-4, progress=False):
    """Nonlinear complex fit of the field across echoes, with its noise map.

    Parameters
    ----------
    signal : ndarray, complex, shape (X, Y, Z, E)
        Complex multi-echo signal (E ≥ 2 echoes along the last axis).
    echo_times_s : sequence of E float
        Echo times (s), strictly increasing; need not be uniformly spaced.
    mask : ndarray of bool, shape (X, Y, Z), optional
        Fit only these voxels (others are 0 in the outputs); default all voxels with signal.
    max_iter : int
        Maximum Gauss–Newton iterations (toolbox: 30).
    reltol : float
        Stop when ``‖Δp‖ / ‖p‖ < reltol`` over all fitted voxels (toolbox: 1e-4).
    progress : bool
        Show a tqdm bar over iterations.

    Returns
    -------
    FieldFit
        ``field_rad`` (rad per ΔTE, ΔTE = TE₂ − TE₁), ``noise_std_rad``, ``phase_offset_rad``,
        ``residual``, ``delta_te_s`` and ``n_iter``.

    Notes
    -----
    Starting values come from the first two echoes (ω from the phase of ``S_2 S_1*``), the
    temporal unwrapping used by the toolbox. The standard deviation of ω·ΔTE is
    ``sqrt(σ̂² [(JᵀJ)⁻¹]_ωω)·ΔTE`` with ``JᵀJ = Σ|S_n|² [[1, t_n], [t_n, t_n²]]`` and the residual
    variance ``σ̂² = Σ|r_n|² / (E − 2)`` (one real degree of freedom per echo, the phase, minus
    two parameters). With three or more echoes, where the relative residual is below
    :data:`NOISE_FREE_RESIDUAL` (1e-5, float32 round-off: noise-free data) the noise is reported
    as 0. With only two echoes σ̂ cannot be estimated and is taken as 1, so the map is
    then only *relative* (which is all PDF and MEDI use: they normalise their weights).
    """
    s = np.asarray(signal)
    if s.ndim != 4:
        raise ValueError(f"signal must have shape (X, Y, Z, E), got {s.shape}")
    n_echo = s.shape[-1]
    if n_echo < 2:
        raise ValueError(f"signal has {n_echo} echo; the field fit needs at least 2 echoes")
    if not np.iscomplexobj(s):
        raise ValueError("signal must be complex (magnitude * exp(1j * phase))")
    te = _check_echo_times(echo_times_s, n_echo)
    if not np.all(np.isfinite(s)):
        raise ValueError("signal contains non-finite values")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter!r}")
    shape = s.shape[:3]
    if mask is None:
        sel = np.any(s != 0, axis=-1)
    else:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != shape:
            raise ValueError(f"mask shape {mask.shape} does not match signal shape {shape}")
        sel = mask
    dte = float(te[1] - te[0])
    tau = te / dte  # echo times in units of ΔTE: the fitted slope is then rad per ΔTE
    idx = np.flatnonzero(sel.ravel())
    flat = s.reshape(-1, n_echo)
    n_vox = idx.size
    p0 = np.zeros(n_vox)
    p1 = np.zeros(n_vox)
    var_p1 = np.zeros(n_vox)
    resid = np.zeros(n_vox)
    n_iter = 0
    starts = range(0, n_vox, _BLOCK)
    for i0 in progress_bar(starts, desc="field fit", enabled=progress and len(starts) > 1, nested=True):
        blk = slice(i0, min(i0 + _BLOCK, n_vox))
        out = _fit_block(flat[idx[blk]], tau, int(max_iter), float(reltol))
        p0[blk], p1[blk], var_p1[blk], resid[blk], k = out
        n_iter = max(n_iter, k)

    def scatter(v, fill=0.0):
        out = np.full(shape, fill, dtype=np.float32)
        out[sel] = v
        return out

    field = np.angle(np.exp(1j * p1))
    noise = np.sqrt(var_p1)
    noise = np.where(np.isfinite(noise), noise, np.nanmax(noise[np.isfinite(noise)], initial=np.pi))
    if n_echo > 2:  # (two echoes are always fitted exactly: their map is relative, σ̂ = 1)
        # a residual at float32 round-off is no noise estimate (noise-free data): report 0 there,
        # which PDF and MEDI read as "uniform weights" instead of weights made of round-off
        noise = np.where(resid < NOISE_FREE_RESIDUAL, 0.0, noise)
    return FieldFit(
        field_rad=scatter(field),
        noise_std_rad=scatter(noise),
        phase_offset_rad=scatter(np.angle(np.exp(1j * p0))),
        residual=scatter(resid),
        delta_te_s=dte,
        n_iter=int(n_iter),
    )


_BLOCK = 1 << 18  # voxels per block: bounds the memory of the fit to ~100 MB
#: Relative fit residual ``sqrt(Σ|r_n|² / Σ|S_n|²)`` below which a voxel counts as noise-free and
#: its ``noise_std_rad`` is 0: about 100 × the float32 round-off of the fit (an SNR near 10⁵, far
#: above any acquisition; noise-free simulations reach ~1e-7).
NOISE_FREE_RESIDUAL = 1e-5


def _fit_block(y, tau, max_iter, reltol):
    """Gauss–Newton fit of ``y`` (N, E) complex; returns p0, p1, var(p1), residual, iterations."""
    y = y.astype(np.complex64, copy=False)
    n_echo = y.shape[1]
    amp = np.abs(y)
    w = amp * amp  # |S_n|^2
    tau32 = tau.astype(np.float32)
    a = w.sum(axis=1, dtype=np.float64)
    b = (w * tau32).sum(axis=1, dtype=np.float64)
    c = (w * tau32 * tau32).sum(axis=1, dtype=np.float64)
    det = a * c - b * b
    ok = det > 1e-9 * np.maximum(a * c, 1e-30)
    det = np.where(ok, det, 1.0)
    # starting values from the first two echoes (temporal unwrapping)
    p1 = np.angle(y[:, 1] * np.conj(y[:, 0])).astype(np.float64) / (tau[1] - tau[0])
    p0 = np.angle(y[:, 0] * np.exp(-1j * p1 * tau[0]).astype(np.complex64)).astype(np.float64)
    k = 0
    for k in range(1, max_iter + 1):  # noqa: B007 -- k (the iteration count) is returned
        theta = (p0[:, None] + p1[:, None] * tau[None, :]).astype(np.float32)
        # amp * Im(S e^{-iθ}) = |S|^2 sin(ψ − θ)
        g = amp * (y.imag * np.cos(theta) - y.real * np.sin(theta))
        g0 = g.sum(axis=1, dtype=np.float64)
        g1 = (g * tau32).sum(axis=1, dtype=np.float64)
        d0 = np.where(ok, (c * g0 - b * g1) / det, 0.0)
        d1 = np.where(ok, (a * g1 - b * g0) / det, 0.0)
        p0 += d0
        p1 += d1
        rel = np.sqrt(np.sum(d0 * d0 + d1 * d1) / max(np.sum(p0 * p0 + p1 * p1), 1e-30))
        if rel < reltol:
            break
    theta = (p0[:, None] + p1[:, None] * tau[None, :]).astype(np.float32)
    r = amp * np.exp(1j * theta) - y
    rss = np.sum(r.real**2 + r.imag**2, axis=1, dtype=np.float64)
    sigma2 = rss / (n_echo - 2) if n_echo > 2 else np.ones_like(rss)
    var_p1 = np.where(ok, sigma2 * a / det, np.inf)  # sigma^2 [(JᵀJ)^-1]_11, (rad/ΔTE)^2
    resid = np.sqrt(rss / np.maximum(a, 1e-30))
    return p0, p1, var_p1, resid, k


def combine_magnitude(magnitude):
    """Root-sum-of-squares magnitude over echoes: ``sqrt(Σ_n |S_n|²)``, shape (X, Y, Z)."""
    m = np.asarray(magnitude, dtype=np.float32)
    if m.ndim != 4:
        raise ValueError(f"magnitude must have shape (X, Y, Z, E), got {m.shape}")
    return np.sqrt(np.einsum("...e,...e->...", m, m))


def r2star_loglinear(magnitude, echo_times_s, *, mask=None, max_r2star=500.0):
    """R2* (1/s) from a magnitude-weighted log-linear fit ``log|S_n| = log S0 − R2* t_n``.

    Parameters
    ----------
    magnitude : ndarray, shape (X, Y, Z, E)
        Echo magnitudes (arbitrary units).
    echo_times_s : sequence of E float
        Echo times (s).
    mask : ndarray of bool, shape (X, Y, Z), optional
        Voxels to fit (others 0).
    max_r2star : float
        Results are clipped to ``[0, max_r2star]`` (1/s).

    Returns
    -------
    ndarray, float32, shape (X, Y, Z)
        R2* (1/s). Weights ``|S_n|²`` (the variance of log|S| is ≈ σ²/|S|²).
    """
    m = np.asarray(magnitude, dtype=np.float32)
    if m.ndim != 4:
        raise ValueError(f"magnitude must have shape (X, Y, Z, E), got {m.shape}")
    te = _check_echo_times(echo_times_s, m.shape[-1])
    if m.shape[-1] < 2:
        raise ValueError("R2* needs at least 2 echoes")
    sel = np.ones(m.shape[:3], bool) if mask is None else np.asarray(mask, dtype=bool)
    if sel.shape != m.shape[:3]:
        raise ValueError(f"mask shape {sel.shape} does not match magnitude shape {m.shape[:3]}")
    y = m[sel].astype(np.float64)
    w = y * y
    logy = np.log(np.maximum(y, 1e-12 * max(float(y.max(initial=0.0)), 1e-30)))
    sw = w.sum(1)
    swt = (w * te).sum(1)
    swtt = (w * te * te).sum(1)
    swy = (w * logy).sum(1)
    swty = (w * te * logy).sum(1)
    det = sw * swtt - swt * swt
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (sw * swty - swt * swy) / det
    r2 = np.clip(np.nan_to_num(-slope, nan=0.0, posinf=max_r2star, neginf=0.0), 0.0, max_r2star)
    out = np.zeros(m.shape[:3], np.float32)
    out[sel] = r2
    return out
