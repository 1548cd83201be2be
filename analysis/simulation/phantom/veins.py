"""The deep veins of the phantom: centre lines from the thalamus geometry, rasterised as tubes.

Internal cerebral veins 901/902 along the dorsomedial edge of each thalamus, basal veins of
Rosenthal 903/904 along its inferolateral (pulvinar) edge, both joining the great cerebral vein
of Galen 905 behind the thalami (see :mod:`analysis.simulation.phantom`).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["rasterise_tube", "vein_centrelines"]


def _mm_to_vox(points_mm, affine):
    inv = np.linalg.inv(affine)
    return points_mm @ inv[:3, :3].T + inv[:3, 3]


def rasterise_tube(points_mm, radius_mm, shape, affine):
    """Boolean mask of the voxels whose centre lies within ``radius_mm`` of the poly-line."""
    vox = _mm_to_vox(points_mm, affine)
    vs = np.sqrt((affine[:3, :3] ** 2).sum(0))
    pad = np.ceil(radius_mm / vs).astype(int) + 1
    lo = np.maximum(np.floor(vox.min(0)).astype(int) - pad, 0)
    hi = np.minimum(np.ceil(vox.max(0)).astype(int) + pad + 1, shape)
    out = np.zeros(shape, bool)
    if np.any(hi <= lo):
        return out
    idx = np.indices(tuple(hi - lo)).reshape(3, -1).T + lo
    mm = idx @ affine[:3, :3].T + affine[:3, 3]
    d, _ = cKDTree(points_mm).query(mm, distance_upper_bound=radius_mm + 1e-6)
    sel = idx[np.isfinite(d)]
    out[tuple(sel.T)] = True
    return out


def _densify(points, step=0.25):
    """Resample a poly-line (N, 3) at ``step`` mm."""
    points = np.asarray(points, float)
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.arange(0.0, s[-1] + step, step)
    return np.stack([np.interp(t, s, points[:, k]) for k in range(3)], axis=1)


def _bezier(p0, p1, p2, n=40):
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def vein_centrelines(lab, affine):
    """Centre lines (mm) of the deep veins from the thalamus geometry on the 1 mm grid.

    Returns a list of (label, radius_mm, points (N, 3)).
    """
    lines = []
    posterior = []
    for t, sign, icv, bvr in ((10, -1.0, 901, 903), (49, 1.0, 902, 904)):
        p = np.argwhere(lab == t) @ affine[:3, :3].T + affine[:3, 3]
        ymin, ymax = p[:, 1].min(), p[:, 1].max()
        length = ymax - ymin
        ax = np.abs(p[:, 0])
        icv_s, bvr_s = [], []
        for y0 in np.arange(ymin + 1.0, ymax - 1.0, 1.0):
            sl = np.abs(p[:, 1] - y0) <= 0.5
            if sl.sum() < 10:
                continue
            a, z = ax[sl], p[sl, 2]
            band = a <= a.min() + 3.0
            if y0 <= ymax - 0.2 * length:  # internal cerebral vein: dorsomedial edge
                icv_s.append((sign * (a.min() + 1.5), y0, z[band].max() - 1.0))
            lat = a >= np.median(a)
            if lat.sum() >= 3 and y0 <= ymax - 0.35 * length:  # basal vein: inferolateral edge
                zb = z[lat].min()
                low = lat & (z <= zb + 2.0)
                bvr_s.append((sign * a[low].mean(), y0, zb + 1.0))
        icv_s, bvr_s = np.array(icv_s), np.array(bvr_s)
        ys = np.arange(ymax - 0.2 * length, ymin, -0.5)
        icv_line = np.stack([np.polyval(np.polyfit(icv_s[:, 1], icv_s[:, 0], 2), ys), ys,
                             np.polyval(np.polyfit(icv_s[:, 1], icv_s[:, 2], 2), ys)], axis=1)
        yb = np.arange(ymax - 0.35 * length, ymin + 2.0, -0.5)
        bvr_line = np.stack([np.polyval(np.polyfit(bvr_s[:, 1], bvr_s[:, 0], 2), yb), yb,
                             np.polyval(np.polyfit(bvr_s[:, 1], bvr_s[:, 2], 2), yb)], axis=1)
        lines.append([icv, 1.5, icv_line])
        lines.append([bvr, 1.25, bvr_line])
        posterior.append((ymin, icv_line[-1], bvr_line[-1]))
    ymin = min(q[0] for q in posterior)
    z_icv = np.mean([q[1][2] for q in posterior])
    galen = np.array([0.0, ymin - 8.0, z_icv + 2.0])
    for k, (_, icv_end, bvr_end) in enumerate(posterior):
        # ICV end → Galen; BVR end curves up and medially behind the pulvinar → Galen
        lines[2 * k][2] = np.vstack([lines[2 * k][2], _bezier(icv_end, np.array([icv_end[0] * 0.5, ymin - 4.0, icv_end[2]]), galen)])
        ctrl = np.array([bvr_end[0], ymin - 8.0, bvr_end[2] + 2.0])
        lines[2 * k + 1][2] = np.vstack([lines[2 * k + 1][2], _bezier(bvr_end, ctrl, galen)])
    galen_pts = np.vstack([galen, galen + np.array([0.0, -8.0, 3.0]), galen + np.array([0.0, -16.0, 8.0])])
    lines.append([905, 2.5, galen_pts])
    return [(lab_id, r, _densify(pts)) for lab_id, r, pts in lines]
