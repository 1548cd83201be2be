"""k-space kernels (dipole, spherical mean value), FFT padding helpers and unit constants.

Conventions used throughout :mod:`analysis.imaging.qsm`
-----------------------------------------------
* Arrays are indexed ``(x, y, z)`` in **voxel axes**; ``voxel_size`` is the voxel edge length along
  those axes in **mm**; ``b0_direction`` is the unit vector of the main field in the same voxel
  axes (``(0, 0, 1)`` for an axial acquisition without obliquity; see
  :func:`b0_direction_from_affine`).
* Susceptibility χ and field perturbations are dimensionless and given in **ppm** (parts per
  million of B0) unless a name says ``_rad`` (phase in radians accrued over an echo spacing ΔTE)
  or ``_hz``.
* The field of a susceptibility distribution is the convolution with the unit dipole,
  ``δB/B0 = d ⊛ χ``, with the **Lorentz-sphere-corrected** kernel (SI units, |χ| ≪ 1)::

      D(k) = 1/3 − (k·b̂)² / |k|²,    D(0) = 0.

  With this convention the field *inside* a uniformly magnetised sphere is 0 and the field
  outside it is ``χ (a/r)³ (3 cos²θ − 1) / 3``; in real space, away from the origin, the kernel
  is ``d(r) = V_voxel (3 cos²θ − 1) / (4π r³)``.
* Real FFTs (:func:`scipy.fft.rfftn`) are used on float32 data: a kernel for an array of shape
  ``(X, Y, Z)`` has shape ``(X, Y, Z // 2 + 1)``. Kernels are cached (read-only) per shape,
  voxel size and direction, because iterative solvers ask for the same kernel many times.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import scipy.fft as sfft

#: Gyromagnetic ratio of ¹H divided by 2π (Hz/T), CODATA 2018.
GAMMA_HZ_PER_T = 42.577478518e6

__all__ = [
    "GAMMA_HZ_PER_T",
    "FFT_WORKERS",
    "as_voxel_size",
    "as_direction",
    "b0_direction_from_affine",
    "kspace_coordinates",
    "dipole_kernel",
    "sphere_kernel",
    "fast_shape",
    "pad_array",
    "crop_array",
    "mask_bounding_box",
    "convolve",
    "forward_field",
]

#: Default number of threads handed to :mod:`scipy.fft` (override with the environment variable
#: ``ANALYSIS_FFT_WORKERS``).
FFT_WORKERS = int(os.environ.get("ANALYSIS_FFT_WORKERS", os.cpu_count() or 1))


def as_voxel_size(voxel_size, *, name="voxel_size"):
    """Validate a voxel size and return it as a tuple of three positive floats (mm).

    A scalar means an isotropic voxel.
    """
    vs = np.atleast_1d(np.asarray(voxel_size, dtype=float)).ravel()
    if vs.size == 1:
        vs = np.repeat(vs, 3)
    if vs.size != 3 or not np.all(np.isfinite(vs)) or np.any(vs <= 0):
        raise ValueError(f"{name} must be three positive finite lengths in mm, got {voxel_size!r}")
    return tuple(float(v) for v in vs)


def as_direction(b0_direction, *, name="b0_direction"):
    """Validate a field direction and return it as a unit 3-tuple (voxel axes)."""
    b = np.asarray(b0_direction, dtype=float).ravel()
    n = np.linalg.norm(b) if b.size == 3 else 0.0
    if b.size != 3 or not np.all(np.isfinite(b)) or n == 0:
        raise ValueError(f"{name} must be a non-zero finite 3-vector, got {b0_direction!r}")
    return tuple(float(v) for v in b / n)


def b0_direction_from_affine(affine):
    """Direction of B0 in voxel axes for an image whose voxel-to-world affine is given.

    Assumes the main field points along the scanner's (world) z axis, as in NIfTI scanner/RAS
    coordinates. For an axial, non-oblique acquisition this returns ``(0, 0, ±1)``; the sign is
    irrelevant to the dipole kernel.

    Parameters
    ----------
    affine : array_like, shape (4, 4)
        Voxel-to-world affine (mm).

    Returns
    -------
    tuple of 3 floats
        Unit vector of B0 expressed in voxel axes.
    """
    a = np.asarray(affine, dtype=float)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise ValueError(f"affine must be a finite 4x4 matrix, got shape {a.shape}")
    rot = a[:3, :3] / np.linalg.norm(a[:3, :3], axis=0, keepdims=True)
    # world z expressed in voxel axes: columns of rot are the voxel axes in world coordinates.
    return as_direction(np.linalg.solve(rot, [0.0, 0.0, 1.0]))


def _check_shape(shape):
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or any(s < 1 for s in shape):
        raise ValueError(f"shape must be three positive integers, got {shape!r}")
    return shape


def kspace_coordinates(shape, *, voxel_size=(1.0, 1.0, 1.0), real=True):
    """Spatial frequencies (cycles/mm) of an FFT grid, as three broadcastable arrays.

    Parameters
    ----------
    shape : tuple of 3 int
        Real-space array shape ``(X, Y, Z)``.
    voxel_size : tuple of 3 float
        Voxel size (mm).
    real : bool
        If true the last axis holds the ``Z // 2 + 1`` non-negative frequencies of
        :func:`scipy.fft.rfftn`.

    Returns
    -------
    kx, ky, kz : ndarray, float64
        Shapes ``(X, 1, 1)``, ``(1, Y, 1)``, ``(1, 1, Z')``.
    """
    shape = _check_shape(shape)
    vs = as_voxel_size(voxel_size)
    kx = sfft.fftfreq(shape[0], d=vs[0])[:, None, None]
    ky = sfft.fftfreq(shape[1], d=vs[1])[None, :, None]
    kz = (sfft.rfftfreq if real else sfft.fftfreq)(shape[2], d=vs[2])[None, None, :]
    return kx, ky, kz


@functools.lru_cache(maxsize=16)
def _dipole_kernel_cached(shape, voxel_size, b0_direction, real):
    kx, ky, kz = kspace_coordinates(shape, voxel_size=voxel_size, real=real)
    bx, by, bz = b0_direction
    k2 = kx * kx + ky * ky + kz * kz
    kb = kx * bx + ky * by + kz * bz
    with np.errstate(invalid="ignore", divide="ignore"):
        d = 1.0 / 3.0 - kb * kb / k2
    d[0, 0, 0] = 0.0
    d = d.astype(np.float32)
    d.flags.writeable = False
    return d


def dipole_kernel(shape, *, voxel_size=(1.0, 1.0, 1.0), b0_direction=(0.0, 0.0, 1.0), real=True):
    """Unit dipole kernel ``D(k) = 1/3 − (k·b̂)²/|k|²`` on an FFT grid (Lorentz-corrected).

    Parameters
    ----------
    shape : tuple of 3 int
        Real-space grid shape ``(X, Y, Z)`` (include any padding).
    voxel_size : tuple of 3 float
        Voxel size (mm); only the anisotropy matters, D is dimensionless.
    b0_direction : tuple of 3 float
        Direction of B0 in voxel axes (normalised internally).
    real : bool
        Return the half-spectrum for :func:`scipy.fft.rfftn` (shape ``(X, Y, Z//2 + 1)``)
        instead of the full spectrum (shape ``(X, Y, Z)``).

    Returns
    -------
    ndarray, float32, read-only
        Kernel values in [−2/3, 1/3]; exactly 0 at k = 0 (the mean field of a
        susceptibility distribution is not measurable). Cached: do not modify.

    Notes
    -----
    This is the sampled continuous kernel (as in the MEDI toolbox and the QSM challenges). Its
    inverse FFT matches ``(3cos²θ − 1)/(4π r³)`` off the coordinate axes (within ~1 % at
    4–10 voxels); *on* the axes the sampling of the discontinuity at k = 0 aliases and the
    real-space values are wrong, which matters little for smooth sources.
    """
    return _dipole_kernel_cached(
        _check_shape(shape), as_voxel_size(voxel_size), as_direction(b0_direction), bool(real)
    )


@functools.lru_cache(maxsize=32)
def _sphere_kernel_cached(shape, voxel_size, radius_mm, real):
    grids = [np.fft.fftfreq(n, d=1.0 / n) * v for n, v in zip(shape, voxel_size)]  # signed mm
    x, y, z = (g.reshape([-1 if i == j else 1 for j in range(3)]) for i, g in enumerate(grids))
    sphere = ((x * x + y * y + z * z) <= radius_mm**2 + 1e-9).astype(np.float64)
    sphere /= sphere.sum()
    k = sfft.rfftn(sphere) if real else sfft.fftn(sphere)
    # the sphere is symmetric about the origin, so its spectrum is real
    k = np.ascontiguousarray(k.real, dtype=np.float32)
    k.flags.writeable = False
    return k


def sphere_kernel(shape, *, radius_mm, voxel_size=(1.0, 1.0, 1.0), real=True):
    """Spectrum of the normalised spherical mean value (SMV) kernel.

    The real-space kernel is 1/N on the N voxels whose centres lie within ``radius_mm`` of the
    origin (wrapped around the grid) and 0 elsewhere, so that ``S ⊛ f`` is the local mean of
    ``f`` over a sphere. Its spectrum is real; ``S(0) = 1``.

    Parameters
    ----------
    shape : tuple of 3 int
        Real-space grid shape (include padding).
    radius_mm : float
        Sphere radius (mm), at least half the smallest voxel edge.
    voxel_size : tuple of 3 float
        Voxel size (mm).
    real : bool
        Half-spectrum for :func:`scipy.fft.rfftn` if true.

    Returns
    -------
    ndarray, float32, read-only
        Shape ``(X, Y, Z//2 + 1)`` (``real``) or ``(X, Y, Z)``. Cached: do not modify.
    """
    vs = as_voxel_size(voxel_size)
    r = float(radius_mm)
    if not np.isfinite(r) or r < 0.5 * min(vs):
        raise ValueError(f"radius_mm must be at least half a voxel ({0.5 * min(vs)} mm), got {radius_mm!r}")
    return _sphere_kernel_cached(_check_shape(shape), vs, r, bool(real))


def fast_shape(shape, *, pad=0):
    """Grid shape for FFTs: each axis ``n + 2*pad`` rounded up to a fast length (5-smooth).

    Parameters
    ----------
    shape : tuple of int
        Array shape (voxels).
    pad : int or tuple of int
        Minimum zero margin on *each* side (voxels).

    Returns
    -------
    tuple of int
    """
    pads = np.broadcast_to(np.asarray(pad, dtype=int), (len(shape),))
    if np.any(pads < 0):
        raise ValueError(f"pad must be non-negative, got {pad!r}")
    return tuple(int(sfft.next_fast_len(int(n) + 2 * int(p), real=True)) for n, p in zip(shape, pads))


def pad_array(x, shape, *, dtype=np.float32):
    """Zero-pad ``x`` to ``shape`` with ``x`` centred; return ``(padded, slices)``.

    ``padded[slices]`` is ``x`` again (see :func:`crop_array`).
    """
    shape = tuple(int(s) for s in shape)
    if any(s < n for s, n in zip(shape, x.shape)):
        raise ValueError(f"shape {shape} is smaller than the array shape {x.shape}")
    out = np.zeros(shape, dtype=dtype)
    sl = tuple(slice((s - n) // 2, (s - n) // 2 + n) for s, n in zip(shape, x.shape))
    out[sl] = x
    return out, sl


def crop_array(x, slices):
    """Inverse of :func:`pad_array`: a contiguous copy of ``x[slices]``."""
    return np.ascontiguousarray(x[slices])


def mask_bounding_box(mask, *, margin=0):
    """Slices of the bounding box of the True voxels of ``mask``, widened by ``margin`` voxels.

    Raises ``ValueError`` if the mask is empty.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("mask is empty (no voxel is True)")
    sl = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        idx = np.flatnonzero(mask.any(axis=other))
        sl.append(slice(max(int(idx[0]) - margin, 0), min(int(idx[-1]) + 1 + margin, mask.shape[ax])))
    return tuple(sl)


def convolve(x, kernel, *, workers=None):
    """Periodic convolution of a real float32 array with a real half-spectrum ``kernel``.

    Parameters
    ----------
    x : ndarray, shape (X, Y, Z)
        Real array (cast to float32).
    kernel : ndarray, shape (X, Y, Z//2 + 1)
        Real spectrum (e.g. :func:`dipole_kernel`).
    workers : int, optional
        Threads for :mod:`scipy.fft` (default :data:`FFT_WORKERS`).

    Returns
    -------
    ndarray, float32, shape (X, Y, Z)
    """
    w = FFT_WORKERS if workers is None else workers
    spec = sfft.rfftn(np.asarray(x, dtype=np.float32), workers=w)
    spec *= kernel
    return sfft.irfftn(spec, s=x.shape, workers=w, overwrite_x=True)


def forward_field(chi_ppm, *, voxel_size=(1.0, 1.0, 1.0), b0_direction=(0.0, 0.0, 1.0), pad=None, workers=None):
    """Field perturbation (ppm) of a susceptibility map (ppm): ``d ⊛ χ``.

    The map is zero-padded (default: half its size on each side, so that periodic images
    contribute less than ~1 %) before the FFT convolution.

    Parameters
    ----------
    chi_ppm : ndarray, shape (X, Y, Z)
        Susceptibility (ppm), zero outside the object.
    voxel_size : tuple of 3 float
        Voxel size (mm).
    b0_direction : tuple of 3 float
        B0 direction in voxel axes.
    pad : int, optional
        Zero margin on each side (voxels); default ``max(shape) // 2``.
    workers : int, optional
        FFT threads.

    Returns
    -------
    ndarray, float32, shape (X, Y, Z)
        Relative field perturbation ``δB/B0`` (ppm).
    """
    chi = np.asarray(chi_ppm)
    if chi.ndim != 3:
        raise ValueError(f"chi_ppm must be 3-D, got shape {chi.shape}")
    if not np.all(np.isfinite(chi)):
        raise ValueError("chi_ppm contains non-finite values")
    pad = max(chi.shape) // 2 if pad is None else int(pad)
    shp = fast_shape(chi.shape, pad=pad)
    xp, sl = pad_array(chi, shp)
    d = dipole_kernel(shp, voxel_size=voxel_size, b0_direction=b0_direction)
    return crop_array(convolve(xp, d, workers=workers), sl)
