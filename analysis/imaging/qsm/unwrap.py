"""Spatial phase unwrapping: Laplacian (least squares, DCT/PCG) and quality-guided path following.

Both functions take a wrapped phase (rad, any range) of shape (X, Y, Z) and return an unwrapped
phase (rad, float32) that differs from the true phase by a multiple of 2π (constant per
connected region of the mask) wherever the true phase changes by less than π between
neighbouring voxels.

* :func:`unwrap_laplacian` — the Laplacian method (Schofield & Zhu 2003) in its discrete,
  least-squares form (Ghiglia & Romero 1994): find φ whose finite differences best match the
  *wrapped* finite differences of the data, i.e. solve the Poisson equation
  ``∇·(W ∇φ) = ∇·(W wrap(∇ψ))`` with Neumann boundaries. Without a mask this is one DCT solve;
  with a mask (differences that leave the mask get zero weight W) it is solved by conjugate
  gradients preconditioned by the DCT solver. For a smooth field it is exact up to a constant;
  the constant is then chosen so that the result matches the data modulo 2π (median per
  connected component), so "exact up to 2π multiples". With ``congruent=True`` the result is
  additionally snapped onto the data: ``ψ + 2π round((φ − ψ)/2π)``.
* :func:`unwrap_path` — scikit-image's quality-guided path follower (Herráez et al. 2002,
  reliability = second differences); congruent with the data by construction.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from analysis.io import progress_bar

from .kernels import FFT_WORKERS, as_voxel_size
from .reductions import inner, norm

__all__ = ["wrap", "unwrap_laplacian", "unwrap_path"]


def wrap(phase):
    """Wrap a phase (rad) to [−π, π)."""
    p = np.asarray(phase)
    return (p + np.pi) % (2.0 * np.pi) - np.pi


def _check_phase_mask(phase, mask):
    p = np.asarray(phase)
    if p.ndim != 3:
        raise ValueError(f"phase must be 3-D (X, Y, Z), got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("phase contains non-finite values")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != p.shape:
            raise ValueError(f"mask shape {mask.shape} does not match phase shape {p.shape}")
        if not mask.any():
            raise ValueError("mask is empty (no voxel is True)")
    return p, mask


def _diff(x, ax):
    """Forward difference along ``ax`` (length n-1)."""
    sl1 = [slice(None)] * 3
    sl0 = [slice(None)] * 3
    sl1[ax] = slice(1, None)
    sl0[ax] = slice(None, -1)
    return x[tuple(sl1)] - x[tuple(sl0)]


def _div_adj(g, ax, out):
    """Add ``Dᵀ g`` to ``out`` where D is the forward difference along ``ax`` (g has n-1)."""
    sl1 = [slice(None)] * 3
    sl0 = [slice(None)] * 3
    sl1[ax] = slice(1, None)
    sl0[ax] = slice(None, -1)
    out[tuple(sl1)] += g
    out[tuple(sl0)] -= g


def _neumann_eigenvalues(shape, h2inv):
    """Eigenvalues of the (negative) Neumann Laplacian under the DCT-II, shape broadcastable."""
    lam = 0.0
    for ax, (n, w) in enumerate(zip(shape, h2inv)):
        k = np.arange(n)
        e = (2.0 - 2.0 * np.cos(np.pi * k / n)) * w
        lam = lam + e.reshape([-1 if a == ax else 1 for a in range(3)])
    lam = np.asarray(lam, dtype=np.float64)
    lam.flat[0] = 1.0  # the constant mode: left at zero below
    return lam


def _poisson_neumann(rhs, lam, workers):
    """Solve ``DᵀD φ = rhs`` (= −Δφ, Neumann boundaries) by DCT-II; the mean of φ is set to 0."""
    c = sfft.dctn(rhs, type=2, norm="ortho", workers=workers)
    c /= lam
    c.flat[0] = 0.0
    return sfft.idctn(c, type=2, norm="ortho", workers=workers)


def unwrap_laplacian(
    phase,
    *,
    mask=None,
    voxel_size=(1.0, 1.0, 1.0),
    congruent=False,
    tol=1e-5,
    max_iter=100,
    progress=False,
    workers=None,
):
    """Laplacian (least-squares) phase unwrapping.

    Parameters
    ----------
    phase : ndarray, shape (X, Y, Z)
        Wrapped phase (rad).
    mask : ndarray of bool, shape (X, Y, Z), optional
        Region whose phase is trusted. Finite differences with an end outside it are ignored,
        so noise outside the object does not leak in. Outputs are 0 outside the mask.
    voxel_size : tuple of 3 float
        Voxel size (mm): differences are weighted by ``1/h²`` (the continuous Laplacian).
    congruent : bool
        Snap the smooth least-squares solution onto the data modulo 2π.
    tol : float
        Relative residual at which the preconditioned CG stops (masked case).
    max_iter : int
        Maximum CG iterations (masked case).
    progress : bool
        Show a tqdm bar over CG iterations.
    workers : int, optional
        Threads for the DCTs.

    Returns
    -------
    ndarray, float32, shape (X, Y, Z)
        Unwrapped phase (rad).
    """
    psi, mask = _check_phase_mask(phase, mask)
    vs = as_voxel_size(voxel_size)
    workers = FFT_WORKERS if workers is None else workers
    psi = np.asarray(psi, dtype=np.float64)
    h2inv = [1.0 / (v * v) for v in vs]
    weights = []
    rhs = np.zeros(psi.shape)
    for ax in range(3):
        w = h2inv[ax]
        if mask is not None:
            w = (mask[tuple(slice(1, None) if a == ax else slice(None) for a in range(3))]
                 & mask[tuple(slice(None, -1) if a == ax else slice(None) for a in range(3))]) * h2inv[ax]
        weights.append(w)
        _div_adj(w * wrap(_diff(psi, ax)), ax, rhs)
    # normal equations A φ = b with A = Σ Dᵀ W D (positive semi-definite), b = Σ Dᵀ W wrap(Dψ)
    b = rhs
    lam = _neumann_eigenvalues(psi.shape, h2inv)
    if mask is None:
        phi = _poisson_neumann(b, lam, workers)
    else:
        def apply_a(x):
            out = np.zeros_like(x)
            for ax in range(3):
                _div_adj(weights[ax] * _diff(x, ax), ax, out)
            return out

        mf = mask.astype(np.float64)
        b *= mf
        phi = np.zeros_like(b)
        r = b.copy()
        z = _poisson_neumann(r, lam, workers) * mf
        p = z.copy()
        rz = inner(r, z)
        bnorm = norm(b)
        bar = progress_bar(range(int(max_iter)), desc="Laplacian unwrap", enabled=progress, nested=True)
        if bnorm > 0:
            for _ in bar:
                ap = apply_a(p)
                alpha = rz / inner(p, ap)
                phi += alpha * p
                r -= alpha * ap
                res = norm(r) / bnorm
                bar.set_postfix(res=f"{res:.1e}")
                if res < tol:
                    break
                z = _poisson_neumann(r, lam, workers) * mf
                rz_new = inner(r, z)
                p *= rz_new / rz
                p += z
                rz = rz_new
        bar.close()
    # fix the free constant(s): match the data modulo 2π (median per connected component)
    if mask is None:
        labels, n_lab = np.ones(psi.shape, dtype=np.int32), 1
    else:
        labels, n_lab = ndimage.label(mask)
    out = np.zeros(psi.shape, dtype=np.float64)
    for lab in range(1, n_lab + 1):
        sel = labels == lab
        off = np.median(wrap(psi[sel] - phi[sel]))
        out[sel] = phi[sel] + off
    if congruent:
        out = psi + 2.0 * np.pi * np.round((out - psi) / (2.0 * np.pi))
        if mask is not None:
            out[~mask] = 0.0
    return out.astype(np.float32)


def unwrap_path(phase, *, mask=None, seed=None):
    """Quality-guided path-following unwrapping (scikit-image ``unwrap_phase``).

    Parameters
    ----------
    phase : ndarray, shape (X, Y, Z)
        Wrapped phase (rad); values outside [−π, π) are wrapped first.
    mask : ndarray of bool, shape (X, Y, Z), optional
        Voxels to unwrap (others are 0 in the output).
    seed : int, optional
        Seed of scikit-image's random tie-breaking.

    Returns
    -------
    ndarray, float32, shape (X, Y, Z)
        Unwrapped phase (rad); congruent with the input modulo 2π.
    """
    from skimage.restoration import unwrap_phase

    psi, mask = _check_phase_mask(phase, mask)
    psi = wrap(np.asarray(psi, dtype=np.float64))
    if mask is None:
        out = unwrap_phase(psi, rng=seed)
    else:
        out = unwrap_phase(np.ma.masked_array(psi, mask=~mask), rng=seed)
        out = np.ma.filled(out, 0.0)
    return np.asarray(out, dtype=np.float32)
