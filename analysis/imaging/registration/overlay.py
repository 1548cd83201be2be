"""The registration QC figure: GRE magnitude with the registered anatomy's edges and aseg contours."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.imaging.registration._common import OVERLAY_LABELS, load_image, load_volume, voxel_sizes

# ---------------------------------------------------------------------------------------------
# Quality-control figure
# ---------------------------------------------------------------------------------------------


def registration_overlay_png(path, fixed_img, moving_resampled_img, *, labels_img=None, title=None, dpi=110):
    """QC figure of a registration: 3 orthogonal slices of the GRE with the anatomy on top.

    Each column is a slice along one voxel axis of the fixed grid, through the centre of the
    thalami when ``labels_img`` has them (the sagittal-most one through the left thalamus), else
    through the centre of the anatomy. The GRE
    magnitude is drawn in grey; on top, the contours of the thalami (red) and lateral ventricles
    (cyan) of ``labels_img`` when it is given, and always the edges (yellow, Canny) of the
    resampled anatomy. Misregistration shows as edges that cross the GRE's own boundaries.

    Parameters
    ----------
    path : str or Path
        Output PNG.
    fixed_img : str, Path or nibabel image
        GRE magnitude on the χ grid (a 4-D magnitude is echo-combined by root-sum-of-squares).
    moving_resampled_img : str, Path or nibabel image
        The anatomy resampled onto that grid (:func:`resample_image`).
    labels_img : str, Path or nibabel image, optional
        aseg labels on that grid (:func:`resample_labels`).
    title : str, optional
        Figure title (e.g. :meth:`RigidRegistration.summary`).
    dpi : int

    Returns
    -------
    Path
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from skimage.feature import canny

    fimg, fname = load_image(fixed_img, "fixed image")
    fixed, faff = load_volume(fimg, fname, "fixed image", combine_echoes=True)
    aimg, aname = load_image(moving_resampled_img, "resampled anatomy")
    anat, _ = load_volume(aimg, aname, "resampled anatomy")
    if anat.shape != fixed.shape:
        raise ValueError(f"resampled anatomy {aname}: shape {anat.shape} is not the fixed grid {fixed.shape} "
                         f"of {fname} (resample it with resample_image first)")
    labels = None
    if labels_img is not None:
        limg, lname = load_image(labels_img, "label image")
        labels = np.asarray(limg.dataobj)
        if labels.shape != fixed.shape:
            raise ValueError(f"label image {lname}: shape {labels.shape} is not the fixed grid {fixed.shape}")
    thal = None if labels is None else np.isin(labels, OVERLAY_LABELS["thalamus"][0])
    if thal is not None and thal.any():
        centre = np.rint(np.argwhere(thal).mean(0)).astype(int)
        left = labels == OVERLAY_LABELS["thalamus"][0][0]
        if left.any():  # the sagittal-most slice through the left thalamus, not the midline
            lr = int(np.argmax(np.abs(faff[0, :3]) / voxel_sizes(faff)))
            centre[lr] = int(np.rint(np.argwhere(left)[:, lr].mean()))
    elif (anat > 0).any():
        centre = np.rint(np.argwhere(anat > 0).mean(0)).astype(int)
    else:
        centre = np.array(fixed.shape) // 2
    vs = voxel_sizes(faff)
    lo, hi = np.percentile(fixed[fixed > 0], [1, 99.5]) if (fixed > 0).any() else (0.0, 1.0)
    alo, ahi = np.percentile(anat[anat > 0], [1, 99.5]) if (anat > 0).any() else (0.0, 1.0)

    fig = Figure(figsize=(12, 4.4))
    axes = fig.subplots(1, 3)
    for axis, ax in enumerate(axes):
        sl = [slice(None)] * 3
        sl[axis] = int(centre[axis])
        sl = tuple(sl)
        rest = [a for a in range(3) if a != axis]
        img = fixed[sl].T
        aspect = vs[rest[1]] / vs[rest[0]]
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower", aspect=aspect, interpolation="nearest")
        a2 = np.clip((anat[sl] - alo) / max(ahi - alo, 1e-6), 0, 1).T
        edges = canny(a2, sigma=1.0) & (a2 > 0)
        ax.imshow(np.ma.masked_where(~edges, edges), cmap=ListedColormap(["#ffd60a"]), alpha=0.75,
                  origin="lower", aspect=aspect, interpolation="nearest", vmin=0, vmax=1)
        if labels is not None:
            for ids, colour in OVERLAY_LABELS.values():
                m = np.isin(labels[sl], ids).T.astype(float)
                if m.any():
                    ax.contour(m, levels=[0.5], colors=[colour], linewidths=1.8)
        ax.set_title(f"voxel axis {axis} = {int(centre[axis])}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    legend = "GRE magnitude (grey), anatomy edges (yellow)"
    if labels is not None:
        legend += ", thalamus (red), lateral ventricles (cyan)"
    fig.suptitle((title + "\n" if title else "") + legend, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
