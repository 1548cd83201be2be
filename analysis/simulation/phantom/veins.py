"""The deep veins of the phantom: centre lines from the thalamus geometry, rasterised as tubes.

Internal cerebral veins 901/902 along the dorsomedial edge of each thalamus, basal veins of
Rosenthal 903/904 along its inferolateral (pulvinar) edge, both joining the great cerebral vein
of Galen 905 behind the thalami (see :mod:`analysis.simulation.phantom`).

The realistic phantom (:mod:`~analysis.simulation.phantom.realistic`) adds the thalamostriate
veins 906/907 (in the groove between caudate and thalamus, on the floor of the lateral ventricle,
joining the internal cerebral vein at the foramen of Monro: :func:`thalamostriate_centrelines`)
and thin medullary veins 908 (from the lateral-ventricle wall outwards through the white matter:
:func:`medullary_centrelines`), and draws every vein with its true radius as a voxel *fraction*
(:func:`tube_fraction`) instead of a whole-voxel tube.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = ["medullary_centrelines", "rasterise_tube", "thalamostriate_centrelines", "tube_fraction",
           "vein_centrelines"]

#: Radius (mm) of the thalamostriate veins (diameter about 1.5 mm).
THALAMOSTRIATE_RADIUS_MM = 0.8
#: Range of the medullary veins' radii (mm) and lengths (mm).
MEDULLARY_RADIUS_MM = (0.3, 0.6)
MEDULLARY_LENGTH_MM = (10.0, 25.0)


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
        lines[2 * k][2] = np.vstack([lines[2 * k][2],
                                     _bezier(icv_end, np.array([icv_end[0] * 0.5, ymin - 4.0, icv_end[2]]), galen)])
        ctrl = np.array([bvr_end[0], ymin - 8.0, bvr_end[2] + 2.0])
        lines[2 * k + 1][2] = np.vstack([lines[2 * k + 1][2], _bezier(bvr_end, ctrl, galen)])
    galen_pts = np.vstack([galen, galen + np.array([0.0, -8.0, 3.0]), galen + np.array([0.0, -16.0, 8.0])])
    lines.append([905, 2.5, galen_pts])
    return [(lab_id, r, _densify(pts)) for lab_id, r, pts in lines]


def tube_fraction(points_mm, radius_mm, shape, affine, *, subsamples=4):
    """Fraction of each voxel inside a tube of ``radius_mm`` around a poly-line (partial volume).

    Voxels whose centre is farther than half a voxel diagonal from the tube surface are 0 or 1;
    the others are sampled on ``subsamples``³ points.

    Returns
    -------
    slices : tuple of 3 slice
        Bounding box of the tube in the grid.
    fraction : ndarray, float32
        Volume fraction (0–1) inside the box.
    """
    vox = _mm_to_vox(points_mm, affine)
    vs = np.sqrt((affine[:3, :3] ** 2).sum(0))
    pad = np.ceil(radius_mm / vs).astype(int) + 2
    lo = np.maximum(np.floor(vox.min(0)).astype(int) - pad, 0)
    hi = np.minimum(np.ceil(vox.max(0)).astype(int) + pad + 1, shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    if np.any(hi <= lo):
        return box, np.zeros(tuple(max(int(b - a), 0) for a, b in zip(lo, hi)), np.float32)
    sub_shape = tuple(int(b - a) for a, b in zip(lo, hi))
    idx = np.indices(sub_shape).reshape(3, -1).T + lo
    mm = idx @ affine[:3, :3].T + affine[:3, 3]
    half_diag = 0.5 * float(np.linalg.norm(vs))
    tree = cKDTree(points_mm)
    d, _ = tree.query(mm, distance_upper_bound=radius_mm + half_diag)
    frac = np.zeros(len(mm), np.float32)
    frac[d <= radius_mm - half_diag] = 1.0
    border = np.flatnonzero((d > radius_mm - half_diag) & np.isfinite(d))
    if border.size:
        s = int(subsamples)
        off = ((np.arange(s) + 0.5) / s - 0.5)
        grid = np.stack(np.meshgrid(off, off, off, indexing="ij"), -1).reshape(-1, 3) * vs  # voxel axes, mm
        offs = grid @ (affine[:3, :3] / vs).T                                                # to world mm
        pts = (mm[border][:, None, :] + offs[None]).reshape(-1, 3)
        dd, _ = tree.query(pts, distance_upper_bound=radius_mm)
        frac[border] = np.isfinite(dd).reshape(len(border), -1).mean(1)
    return box, frac.reshape(sub_shape)


def thalamostriate_centrelines(lab, affine, deep_veins):
    """Centre lines (mm) of the thalamostriate veins 906/907 on the 1 mm anatomy.

    Along each thalamus, the vein runs in the groove where the thalamus meets the caudate body
    (1 mm above their junction, on the ventricular floor) forwards to the foramen of Monro, and
    joins the internal cerebral vein at its anterior end (the venous angle). Where a shrunken
    thalamus (e.g. the smallest thalamic volume of the cohort) no longer touches the caudate, the
    groove is the thalamus' band nearest to it.

    Parameters
    ----------
    lab : ndarray of int
        1 mm labels (FreeSurfer ids).
    affine : ndarray (4, 4)
    deep_veins : list
        :func:`vein_centrelines` of the same anatomy (for the internal cerebral veins' ends).

    Returns
    -------
    list of (label, radius_mm, points (N, 3))
    """
    icv_start = {lab_id: pts[0] for lab_id, _, pts in deep_veins if lab_id in (901, 902)}
    out = []
    for thal, caud, lab_id, icv in ((10, 11, 906, 901), (49, 50, 907, 902)):
        pt = np.argwhere(lab == thal) @ affine[:3, :3].T + affine[:3, 3]
        pc = np.argwhere(lab == caud) @ affine[:3, :3].T + affine[:3, 3]
        if len(pt) < 20 or len(pc) < 20 or icv not in icv_start:
            continue
        d, _ = cKDTree(pc).query(pt)
        adj = pt[d <= 1.8]
        if len(adj) < 20:  # a shrunken thalamus (atrophy) no longer touches the caudate: its nearest band
            adj = pt[d <= d.min() + 1.8]
        start = icv_start[icv]
        y_post = max(adj[:, 1].min() + 3.0, start[1] - 25.0)
        y_ant = start[1] + 4.0
        samples = []
        for y0 in np.arange(y_post, y_ant + 0.5, 1.0):
            sl = adj[np.abs(adj[:, 1] - y0) <= 0.5]
            if len(sl) >= 2:
                top = sl[sl[:, 2] >= sl[:, 2].max() - 1.0]
                samples.append((top[:, 0].mean(), y0, top[:, 2].max() + 1.0))
        if len(samples) < 4:
            continue
        samples = np.array(samples)
        ys = np.arange(samples[:, 1].min(), samples[:, 1].max() + 1e-9, 0.5)
        line = np.stack([np.polyval(np.polyfit(samples[:, 1], samples[:, 0], 2), ys), ys,
                         np.polyval(np.polyfit(samples[:, 1], samples[:, 2], 2), ys)], axis=1)
        end = line[-1]
        ctrl = np.array([0.5 * (end[0] + start[0]), end[1] + 2.0, 0.5 * (end[2] + start[2])])
        line = np.vstack([line, _bezier(end, ctrl, start)])
        out.append((lab_id, THALAMOSTRIATE_RADIUS_MM, _densify(line)))
    return out


def medullary_centrelines(lab, affine, rng, n_veins):
    """Centre lines (mm) of ``n_veins`` thin medullary veins 908 on the 1 mm anatomy.

    Seeds are white-matter voxels on the wall of the lateral ventricles, drawn with ``rng``; each
    vein follows the gradient of the distance from the ventricles outwards (0.5 mm steps) for a
    random length in :data:`MEDULLARY_LENGTH_MM`, and stops where it leaves the cerebral white
    matter. Radii are drawn uniformly in :data:`MEDULLARY_RADIUS_MM`.

    Returns
    -------
    list of (label, radius_mm, points (N, 3))
    """
    n_veins = int(n_veins)
    if n_veins <= 0:
        return []
    vent = np.isin(lab, (4, 43))
    nz = np.argwhere(vent)
    lo = np.maximum(nz.min(0) - 35, 0)
    hi = np.minimum(nz.max(0) + 36, lab.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    sub, vsub = lab[box], vent[box]
    wm = np.isin(sub, (2, 41))
    dist = ndimage.distance_transform_edt(~vsub)
    grad = np.stack(np.gradient(ndimage.gaussian_filter(dist, 1.0)))
    seeds = np.argwhere(wm & (dist <= 1.5))
    if len(seeds) == 0:
        return []
    out = []
    for _ in range(n_veins):
        p = seeds[rng.integers(len(seeds))].astype(float) + rng.uniform(-0.4, 0.4, 3)
        length = rng.uniform(*MEDULLARY_LENGTH_MM)
        radius = rng.uniform(*MEDULLARY_RADIUS_MM)
        pts = [p.copy()]
        for _ in range(int(length / 0.5)):
            g = np.array([ndimage.map_coordinates(grad[k], p[:, None], order=1, mode="nearest")[0] for k in range(3)])
            n = np.linalg.norm(g)
            if n < 1e-6:
                break
            p = p + 0.5 * g / n
            i = np.round(p).astype(int)
            if np.any(i < 0) or np.any(i >= sub.shape) or not wm[tuple(i)]:
                break
            pts.append(p.copy())
        if len(pts) < 6:
            continue
        vox = np.array(pts) + lo
        out.append((908, float(radius), _densify(vox @ affine[:3, :3].T + affine[:3, 3])))
    return out
