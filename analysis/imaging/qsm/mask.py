"""Brain mask from a magnitude image and CSF mask from R2*: threshold + morphology.

These are deliberately simple, documented stand-ins for FSL BET and the MEDI toolbox's
``extract_CSF``; on real data a proper skull stripping (or a mask from FreeSurfer) is better,
and :func:`analysis.imaging.qsm.reconstruct_megre` accepts any mask.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .kernels import as_voxel_size

__all__ = ["ball", "brain_mask", "erode_mm", "csf_mask_from_r2star", "largest_component"]


def ball(radius_mm, voxel_size):
    """Boolean ellipsoidal structuring element of physical radius ``radius_mm`` (mm)."""
    vs = as_voxel_size(voxel_size)
    r = [int(np.floor(radius_mm / v + 1e-9)) for v in vs]
    grids = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    d2 = sum((g * v) ** 2 for g, v in zip(grids, vs))
    return d2 <= radius_mm**2 + 1e-9


def largest_component(mask):
    """Keep the largest 6-connected component of a boolean mask (empty stays empty)."""
    lab, n = ndimage.label(mask)
    if n <= 1:
        return lab > 0
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def erode_mm(mask, radius_mm, *, voxel_size):
    """Erode a boolean mask by a ball of ``radius_mm`` (mm); radius 0 returns a copy."""
    mask = np.asarray(mask, dtype=bool)
    if radius_mm <= 0:
        return mask.copy()
    return ndimage.binary_erosion(mask, structure=ball(radius_mm, voxel_size), border_value=0)


def brain_mask(magnitude, *, voxel_size=(1.0, 1.0, 1.0), threshold=None, opening_mm=2.0, erosion_mm=1.0):
    """Brain (object) mask from a magnitude image.

    Steps: (1) threshold — by default a two-level Otsu: Otsu's threshold t₁ of the non-zero
    voxels separates background noise from the head, Otsu's threshold t₂ of the voxels above
    t₁ separates dark (bone, air cavities) from bright tissue, and the threshold is ``0.25 t₂``,
    low enough to keep dark but valid tissue (iron-rich nuclei, veins, late-echo decay);
    (2) morphological opening with a ball of ``opening_mm`` to cut thin bridges (scalp, noise);
    (3) largest connected component; (4) hole filling (ventricles, veins); (5) erosion by
    ``erosion_mm`` to drop the unreliable boundary layer of phase.

    Parameters
    ----------
    magnitude : ndarray, shape (X, Y, Z) or (X, Y, Z, E)
        Magnitude (arbitrary units); with echoes the root-sum-of-squares is used.
    voxel_size : tuple of 3 float
        Voxel size (mm).
    threshold : float, optional
        Absolute threshold (same units as ``magnitude``); default as described above.
    opening_mm, erosion_mm : float
        Radii (mm) of the opening and of the final erosion (0 to skip).

    Returns
    -------
    ndarray of bool, shape (X, Y, Z)

    Notes
    -----
    On the simulated head phantom (11-echo RSS) the mask is the brain plus its outer CSF layer
    (≈ 2 mm; no skull, scalp or air, no brain voxel missed) at 2 and 4 mm for first-echo SNR ≥ 20
    and for noise-free data. At SNR 10 it takes in most of the scalp through the noisy skull, and
    at SNR 5 air as well: at such SNR, or whenever the head is not surrounded by air, give a
    mask from a skull-stripping tool (``mask=``; ``--brain-mask-dir`` on the command line). The
    erosion is by whole voxels, so ``erosion_mm`` smaller than a voxel (1 mm at 2 mm) does
    nothing.
    """
    from skimage.filters import threshold_otsu

    m = np.asarray(magnitude, dtype=np.float32)
    if m.ndim == 4:
        m = np.sqrt(np.sum(m * m, axis=-1))
    if m.ndim != 3:
        raise ValueError(f"magnitude must be 3-D or 4-D, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("magnitude contains non-finite values")
    vs = as_voxel_size(voxel_size)
    if threshold is None:
        nz = m[m > 0]
        if nz.size < 2 or nz.min() == nz.max():
            raise ValueError("magnitude has no contrast: cannot choose a threshold; pass threshold=")
        t1 = float(threshold_otsu(nz))
        above = nz[nz > t1]
        threshold = 0.25 * float(threshold_otsu(above)) if above.size > 1 and above.min() < above.max() else t1
    mask = m > float(threshold)
    if opening_mm > 0:
        mask = ndimage.binary_opening(mask, structure=ball(opening_mm, vs))
    mask = largest_component(mask)
    if not mask.any():
        raise ValueError(f"no voxel above threshold {threshold}: mask is empty")
    mask = ndimage.binary_fill_holes(mask)
    mask = erode_mm(mask, erosion_mm, voxel_size=vs)
    if not mask.any():
        raise ValueError("mask is empty after erosion; lower erosion_mm")
    return mask


def csf_mask_from_r2star(r2star, mask, *, voxel_size=(1.0, 1.0, 1.0), threshold_per_s=5.0, erosion_mm=5.0,
                         min_volume_ml=0.5):
    """CSF (ventricle) mask: low R2* well inside the brain, as MEDI's ``extract_CSF``.

    Voxels of ``mask`` eroded by ``erosion_mm`` with ``R2* < threshold_per_s`` are kept, and of
    their 6-connected components those larger than ``min_volume_ml`` (the ventricles, not
    isolated noisy voxels).

    Parameters
    ----------
    r2star : ndarray, shape (X, Y, Z)
        R2* (1/s).
    mask : ndarray of bool, shape (X, Y, Z)
        Brain mask.
    voxel_size : tuple of 3 float
        Voxel size (mm).
    threshold_per_s : float
        R2* threshold (1/s); the toolbox uses 5 s⁻¹.
    erosion_mm : float
        Erosion of the brain mask (mm) that keeps surface CSF out.
    min_volume_ml : float
        Smallest component kept (mL).

    Returns
    -------
    ndarray of bool, shape (X, Y, Z)
        May be empty if no CSF is found.
    """
    r2 = np.asarray(r2star, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    if r2.shape != mask.shape or r2.ndim != 3:
        raise ValueError(f"r2star shape {r2.shape} and mask shape {mask.shape} must be the same 3-D shape")
    vs = as_voxel_size(voxel_size)
    cand = erode_mm(mask, erosion_mm, voxel_size=vs) & (r2 < threshold_per_s)
    lab, n = ndimage.label(cand)
    if n == 0:
        return cand
    sizes = np.bincount(lab.ravel()) * float(np.prod(vs)) / 1000.0
    sizes[0] = 0
    keep = np.flatnonzero(sizes >= min_volume_ml)
    return np.isin(lab, keep)
