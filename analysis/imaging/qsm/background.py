"""Background field removal: PDF (as in MEDI), V-SHARP, and the SMV filter.

The total field inside the brain is the sum of the *local* field of the brain's own
susceptibility and a *background* field of sources outside the brain (air–tissue interfaces,
bone, the rest of the body). Inside the brain mask the background field is harmonic.

* :func:`pdf` — projection onto dipole fields (Liu et al. 2011): fit the field inside the mask
  with dipoles placed only *outside* the mask, by weighted least squares (weights 1/N_std) solved
  with CG (toolbox defaults: tolerance 0.1 relative to the noise level, ≤ 30 iterations, 40 voxels
  of zero padding in all); the fitted field is the background estimate.
* :func:`vsharp` — variable-radius SHARP (Wu et al. 2012): the spherical mean value property of
  harmonic functions removes the background with ``f − S⊛f``, using the largest sphere that
  fits at every voxel; the high-pass is undone by a truncated deconvolution. The mask is eroded
  by the smallest radius.
* :func:`smv` — the spherical mean value filter itself.

All functions are linear in the field, so ppm, Hz or radians in give the same unit out.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.fft as sfft

from analysis.io import progress_bar

from .kernels import (
    FFT_WORKERS,
    as_direction,
    as_voxel_size,
    convolve,
    crop_array,
    dipole_kernel,
    fast_shape,
    mask_bounding_box,
    pad_array,
    sphere_kernel,
)
from .reductions import inner, norm, sum_squares

__all__ = ["pdf", "vsharp", "smv"]


def _check_field_mask(field, mask, name="total_field"):
    f = np.asarray(field)
    if f.ndim != 3:
        raise ValueError(f"{name} must be 3-D (X, Y, Z), got shape {f.shape}")
    m = np.asarray(mask)
    if m.shape != f.shape:
        raise ValueError(f"mask shape {m.shape} does not match {name} shape {f.shape}")
    m = m.astype(bool)
    if not m.any():
        raise ValueError("mask is empty (no voxel is True)")
    if not np.all(np.isfinite(f[m])):
        raise ValueError(f"{name} contains non-finite values inside the mask")
    return f, m


def smv(x, *, radius_mm, voxel_size=(1.0, 1.0, 1.0), pad=None, workers=None):
    """Spherical mean value filter: the mean of ``x`` over a sphere around every voxel.

    Parameters
    ----------
    x : ndarray, shape (X, Y, Z)
        Any real map (zero outside its support).
    radius_mm : float
        Sphere radius (mm).
    voxel_size : tuple of 3 float
        Voxel size (mm).
    pad : int, optional
        Zero padding on each side (voxels); default the radius in voxels + 1.
    workers : int, optional
        FFT threads.

    Returns
    -------
    ndarray, float32, shape (X, Y, Z)
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"x must be 3-D, got shape {x.shape}")
    vs = as_voxel_size(voxel_size)
    if pad is None:
        pad = int(np.ceil(radius_mm / min(vs))) + 1
    shp = fast_shape(x.shape, pad=pad)
    xp, sl = pad_array(x, shp)
    s = sphere_kernel(shp, radius_mm=radius_mm, voxel_size=vs)
    return crop_array(convolve(xp, s, workers=workers), sl)


#: Largest PDF weight relative to the median weight of the mask (noise floored at 1e-3 × its median).
_MAX_RELATIVE_WEIGHT = 1e3


def _pdf_weights(noise_std, shape, mask):
    """PDF's data weights, normalised to median 1 in the mask, and the noise level that sets CG's stop.

    Returns ``(w, sigma)``: ``w`` (float32) ∝ ``1/noise_std`` in the mask, 0 outside; ``sigma``
    the median noise (field units), ``None`` without ``noise_std`` (level unknown) or ``0.0`` for
    noise-free data. Only relative weights change PDF's solution; normalising them (instead of
    using ``1/noise_std`` as is) keeps float32 arithmetic in range when the noise is tiny
    (1/σ² overflows for σ ≲ 1e-19, and loses precision long before). Non-finite noise
    (unusable voxels) gets weight 0; noise below 1e-3 × the median — zero included: a voxel whose
    echoes the fit explained exactly — is floored there, the most reliable voxels. A median of 0
    (noise-free data: :func:`analysis.imaging.qsm.fit_field_complex` reports 0 where the residual is at
    round-off) gives uniform weights, with a warning.
    """
    if noise_std is None:
        return mask.astype(np.float32), None
    n = np.asarray(noise_std, dtype=np.float64)
    if n.shape != shape:
        raise ValueError(f"noise_std shape {n.shape} does not match total_field shape {shape}")
    nm = n[mask]
    if np.any(nm < 0):
        raise ValueError("noise_std must not be negative inside the mask (it is a standard deviation)")
    finite = np.isfinite(nm)
    if not finite.any():
        raise ValueError("noise_std is not finite anywhere in the mask")
    usable = mask & np.isfinite(n)
    sigma = float(np.median(nm[finite]))
    if sigma == 0.0:
        warnings.warn("PDF: noise_std is zero in most of the mask (noise-free data?); using uniform "
                      "weights and running max_iter CG iterations", RuntimeWarning, stacklevel=3)
        return usable.astype(np.float32), 0.0
    rel = np.maximum(np.where(usable, n, 1.0) / sigma, 1.0 / _MAX_RELATIVE_WEIGHT)
    return np.where(usable, 1.0 / rel, 0.0).astype(np.float32), sigma


def pdf(total_field, mask, *, voxel_size, noise_std=None, b0_direction=(0.0, 0.0, 1.0), tol=0.1, max_iter=30,
        pad=20, progress=False, workers=None, return_background=False):
    """Projection onto dipole fields (PDF) background removal.

    Solves ``min_χb ‖W (M (d ⊛ χb) − M f)‖²`` over background sources χb that vanish inside the
    mask (they live outside it, including in the zero padding), with W = 1/N_std, by conjugate
    gradients on the normal equations; the local field is ``M (f − d ⊛ χb)``.

    Parameters
    ----------
    total_field : ndarray, shape (X, Y, Z)
        Unwrapped total field (ppm, Hz or rad: the output has the same unit).
    mask : ndarray of bool, shape (X, Y, Z)
        Brain mask.
    voxel_size : tuple of 3 float
        Voxel size (mm).
    noise_std : ndarray, shape (X, Y, Z), optional
        Noise standard deviation of the field, **in the unit of** ``total_field``: weights are
        ``W = 1/noise_std`` and it sets the stopping level. Default: uniform weights. Voxels
        with non-finite noise get weight 0; noise is floored at 1e-3 × its median in the mask
        (zero noise included), so no weight exceeds 1000 × the median weight; if it is zero in
        most of the mask (noise-free data) the weights are uniform, CG runs ``max_iter``
        iterations (the noise level that sets the stopping rule is zero) and a
        ``RuntimeWarning`` says so.
    b0_direction : tuple of 3 float
        B0 direction in voxel axes.
    tol : float
        Stopping level of CG. With ``noise_std`` (the toolbox's criterion): stop when the
        residual of the normal equations ``‖(1−M)(D W² (f − D χb))‖`` falls below
        ``tol · ‖(1−M) D W‖``, i.e. when the unexplained field is about ``tol`` × the noise
        level (toolbox 0.1). Without ``noise_std`` that level is unknown and CG stops when the
        residual falls below ``tol`` × its initial value, which at 0.1 stops early and leaves
        ~10 % of a strong background: pass ``noise_std`` or a smaller ``tol`` (e.g. 1e-3).
    max_iter : int
        Maximum CG iterations (toolbox 30).
    pad : int
        Zero padding (voxels) on each side of the mask's bounding box (the toolbox crops to the
        bounding box and adds 40 voxels in all, i.e. 20 per side on the periodic grid).
    progress : bool
        Show a tqdm bar over CG iterations.
    workers : int, optional
        FFT threads.
    return_background : bool
        Also return the background field (inside the mask).

    Returns
    -------
    local_field : ndarray, float32, shape (X, Y, Z)
        Local field, zero outside the mask.
    background : ndarray, float32, shape (X, Y, Z)
        Only with ``return_background``.
    """
    f, m = _check_field_mask(total_field, mask)
    vs = as_voxel_size(voxel_size)
    b0 = as_direction(b0_direction)
    if not (0 < float(tol) < 1):
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter!r}")
    if int(pad) < 0:
        raise ValueError(f"pad must be >= 0, got {pad!r}")
    workers = FFT_WORKERS if workers is None else workers
    wt, sigma = _pdf_weights(noise_std, f.shape, m)
    box = mask_bounding_box(m)
    shp = fast_shape(tuple(s.stop - s.start for s in box), pad=int(pad))
    mp, sl = pad_array(m[box], shp, dtype=bool)
    fp, _ = pad_array(np.where(m, f, 0)[box], shp)
    w2, _ = pad_array((wt * wt)[box], shp)
    d = dipole_kernel(shp, voxel_size=vs, b0_direction=b0)

    def dconv(x):
        return sfft.irfftn(sfft.rfftn(x, workers=workers) * d, s=shp, workers=workers, overwrite_x=True)

    def apply_a(x):  # (1−M) D W² D (1−M) x ; x already zero inside the mask
        y = dconv(x)
        y *= w2
        y = dconv(y)
        y[mp] = 0.0
        return y

    b = dconv(w2 * fp)
    b[mp] = 0.0
    if sigma is None:  # noise level unknown: relative to the initial residual
        stop = tol * norm(b)
    else:
        # the toolbox's criterion, ‖r‖ < tol ‖(1−M) D W‖ with W = 1/N_std, written for the
        # normalised weights W' = σ W (σ the median noise): ‖r'‖ < tol σ ‖(1−M) D W'‖; σ = 0
        # (noise-free) runs max_iter iterations
        wp, _ = pad_array(wt[box], shp)
        e_noise = dconv(wp)
        e_noise[mp] = 0.0
        stop = tol * sigma * norm(e_noise)
        del wp, e_noise
    x = np.zeros(shp, np.float32)
    r = b.copy()
    p = r.copy()
    rr = sum_squares(r)
    rr0 = rr
    bar = progress_bar(range(int(max_iter)), desc="PDF", enabled=progress, nested=True)
    for _ in bar:
        if rr <= stop * stop or rr0 == 0:
            break
        ap = apply_a(p)
        alpha = rr / inner(p, ap)
        x += alpha * p
        r -= alpha * ap
        rr_new = sum_squares(r)
        bar.set_postfix(res=f"{np.sqrt(rr_new) / max(stop, 1e-30):.2e}")
        p *= rr_new / rr
        p += r
        rr = rr_new
    bar.close()
    bg_p = dconv(x)
    bg = np.zeros(f.shape, np.float32)
    bg[box] = crop_array(bg_p, sl)
    bg[~m] = 0.0
    local = np.where(m, f - bg, 0.0).astype(np.float32)
    if return_background:
        return local, bg
    return local


def vsharp(total_field, mask, *, voxel_size, radii_mm=None, threshold=0.05, workers=None):
    """V-SHARP background removal (variable-radius spherical mean value filtering).

    Parameters
    ----------
    total_field : ndarray, shape (X, Y, Z)
        Unwrapped total field (any unit; the output has the same unit).
    mask : ndarray of bool, shape (X, Y, Z)
        Brain mask.
    voxel_size : tuple of 3 float
        Voxel size (mm).
    radii_mm : sequence of float, optional
        Sphere radii (mm); default from 12 mm down to the largest voxel edge in steps of one
        voxel edge (at least one radius).
    threshold : float
        Truncation of the deconvolution: spectral values of ``1 − S_rmax`` below it are zeroed.
    workers : int, optional
        FFT threads.

    Returns
    -------
    local_field : ndarray, float32, shape (X, Y, Z)
        Local field, zero outside ``eroded_mask``.
    eroded_mask : ndarray of bool, shape (X, Y, Z)
        The mask eroded by the smallest radius: where the local field is valid.
    """
    f, m = _check_field_mask(total_field, mask)
    vs = as_voxel_size(voxel_size)
    if radii_mm is None:
        step = max(vs)
        radii_mm = np.arange(12.0, step - 1e-9, -step)
    radii = sorted({float(r) for r in np.atleast_1d(radii_mm)}, reverse=True)
    if not radii or radii[-1] < 0.5 * max(vs):
        raise ValueError(f"radii_mm must be at least half a voxel, got {radii_mm!r}")
    if not (0 < threshold < 1):
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    workers = FFT_WORKERS if workers is None else workers
    box = mask_bounding_box(m)
    pad = int(np.ceil(radii[0] / min(vs))) + 1
    shp = fast_shape(tuple(s.stop - s.start for s in box), pad=pad)
    mp, sl = pad_array(m[box], shp)
    fp, _ = pad_array(np.where(m, f, 0)[box], shp)
    fk = sfft.rfftn(fp, workers=workers)
    mk = sfft.rfftn(mp, workers=workers)
    hp = np.zeros(shp, np.float32)
    done = np.zeros(shp, bool)
    eroded = None
    for r in radii:
        s = sphere_kernel(shp, radius_mm=r, voxel_size=vs)
        eroded = sfft.irfftn(mk * s, s=shp, workers=workers) > 0.999
        sel = eroded & ~done
        if sel.any():
            hp[sel] = (fp - sfft.irfftn(fk * s, s=shp, workers=workers))[sel]
            done |= sel
    if not eroded.any():
        raise ValueError("mask is empty after erosion by the smallest radius; use smaller radii_mm")
    kern = 1.0 - sphere_kernel(shp, radius_mm=radii[0], voxel_size=vs)
    with np.errstate(divide="ignore"):
        inv = np.where(np.abs(kern) > threshold, 1.0 / kern, 0.0).astype(np.float32)
    local_p = convolve(hp, inv, workers=workers)
    local_p[~eroded] = 0.0
    local = np.zeros(f.shape, np.float32)
    emask = np.zeros(f.shape, bool)
    local[box] = crop_array(local_p, sl)
    emask[box] = crop_array(eroded, sl)
    return local, emask
