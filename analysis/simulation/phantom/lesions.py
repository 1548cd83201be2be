"""The phantom's MS lesions: ovoid clusters in periventricular and deep white matter (label 77)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from analysis.imaging.labels import LATERAL_VENTRICLES
from analysis.simulation.phantom.tissues import LESION

__all__ = ["place_lesions"]

_WM = (2, 41)


def place_lesions(labels, vein, sampling, affine, *, volume_ml, n_lesions, rng):
    """Grow ``n_lesions`` ovoid lesions in cerebral WM with a total of ``volume_ml`` (in place)."""
    vvox_ml = float(np.prod(sampling)) / 1000.0
    n_total = int(round(volume_ml / vvox_ml))
    if n_total == 0 or n_lesions == 0:
        return labels, []
    n_lesions = max(1, min(int(n_lesions), n_total))
    wm = np.isin(labels, _WM)
    near_vein = ndimage.distance_transform_edt(~vein, sampling=sampling) <= 3.0 if vein.any() else np.zeros_like(wm)
    d_vent = ndimage.distance_transform_edt(~np.isin(labels, LATERAL_VENTRICLES), sampling=sampling)
    d_nonwm = ndimage.distance_transform_edt(wm, sampling=sampling)
    cand = wm & ~near_vein & (d_nonwm >= 2.5) & (d_vent <= 20.0)
    if not cand.any():
        cand = wm & ~near_vein
    idx = np.argwhere(cand)
    w = np.exp(-d_vent[cand] / 10.0)
    w /= w.sum()
    # split the voxel budget (largest remainder, ≥ 1 voxel each)
    frac = rng.dirichlet(np.full(n_lesions, 2.0))
    raw = frac * n_total
    counts = np.maximum(np.floor(raw).astype(int), 1)
    while counts.sum() < n_total:
        counts[np.argmax(raw - counts)] += 1
    while counts.sum() > n_total:
        counts[np.argmax(counts)] -= 1
    sampling = np.asarray(sampling, float)
    free = wm & ~near_vein
    lesions = []
    carry = 0
    for k, n in enumerate(counts):
        n = int(n) + carry
        seed = idx[rng.choice(len(idx), p=w)]
        rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        axes = np.array([1.0, rng.uniform(0.45, 0.8), rng.uniform(0.45, 0.8)])
        radius = (3.0 * n * np.prod(sampling) / (4.0 * np.pi * axes.prod())) ** (1.0 / 3.0)
        half = np.ceil(3.0 * radius / sampling).astype(int) + 2
        lo = np.maximum(seed - half, 0)
        hi = np.minimum(seed + half + 1, labels.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        ok = free[box]
        pts = np.argwhere(ok)
        if len(pts) == 0:
            carry = n
            continue
        rel = (pts + lo - seed) * sampling
        metric = (((rel @ rot) / axes) ** 2).sum(1)
        take = pts[np.argsort(metric, kind="stable")[:n]]
        sel = tuple((take + lo).T)
        labels[sel] = LESION
        free[sel] = False
        carry = n - len(take)
        centre_mm = affine[:3, :3] @ seed + affine[:3, 3]
        lesions.append({"lesion": k + 1, "n_voxels": int(len(take)), "volume_ml": len(take) * vvox_ml,
                        "x_mm": float(centre_mm[0]), "y_mm": float(centre_mm[1]), "z_mm": float(centre_mm[2])})
    return labels, lesions
