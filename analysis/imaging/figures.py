"""Plotting helpers for the imaging figures (matplotlib; nilearn for reorientation/resampling).

Every image is first brought to an axis-aligned RAS+ grid (:func:`to_canonical`, nilearn's
``reorder_img``; an oblique image is resampled), and every overlay onto the grid of the image
it is drawn on (nearest neighbour for masks and labels), so images from different grids line
up. Slices are chosen by world coordinate (mm). Axial and coronal views are shown in the
**radiological convention** by default (patient's left on the right of the picture, as in the
paper's figures); a small "R"/"L" marks the sides.

Building blocks: :func:`show_slice` (background), :func:`overlay_mask`, :func:`outline_mask`,
:func:`overlay_labels`; slice pickers :func:`thalamic_level_mm`, :func:`busiest_slices_mm`;
the compendium's figures :func:`figure1_segmentation`, :func:`figure1_qsm` and
:func:`figure2_lesions`.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from analysis.imaging.labels import GRAY_MATTER, THALAMUS

__all__ = [
    "FREESURFER_COLORS", "THALAMUS_COLOR", "LESION_COLOR", "GRAY_MATTER_COLOR", "VEIN_COLOR",
    "CSF_REFERENCE_COLOR", "to_canonical", "on_grid", "plane", "show_slice", "overlay_mask",
    "outline_mask", "overlay_labels", "panel_label", "thalamic_level_mm", "busiest_slices_mm",
    "parcel_colors", "figure1_segmentation", "figure1_qsm", "figure2_lesions",
]

#: RGB (0-255) of the aseg labels, after FreeSurfer's ``FreeSurferColorLUT.txt``.
FREESURFER_COLORS = {
    2: (245, 245, 245), 3: (205, 62, 78), 4: (120, 18, 134), 5: (196, 58, 250),
    7: (220, 248, 164), 8: (230, 148, 34), 10: (0, 118, 14), 11: (122, 186, 220),
    12: (236, 13, 176), 13: (12, 48, 255), 14: (204, 182, 142), 15: (42, 204, 164),
    16: (119, 159, 176), 17: (220, 216, 20), 18: (103, 255, 255), 24: (60, 60, 60),
    26: (255, 165, 0), 28: (165, 42, 42), 30: (160, 32, 240), 31: (0, 200, 200),
    41: (245, 245, 245), 42: (205, 62, 78), 43: (120, 18, 134), 44: (196, 58, 250),
    46: (220, 248, 164), 47: (230, 148, 34), 49: (0, 118, 14), 50: (122, 186, 220),
    51: (236, 13, 176), 52: (13, 48, 255), 53: (220, 216, 20), 54: (103, 255, 255),
    58: (255, 165, 0), 60: (165, 42, 42), 62: (160, 32, 240), 63: (0, 200, 221),
    72: (120, 190, 150), 77: (200, 70, 255), 80: (164, 108, 226), 85: (234, 169, 30),
    251: (0, 0, 64), 252: (0, 0, 112), 253: (0, 0, 160), 254: (0, 0, 208), 255: (0, 0, 255),
}
#: Colours of the compendium's overlays (thalamic VOIs in green and lesions in purple, as in
#: the paper's Figures 1 and 2).
THALAMUS_COLOR = "#00e000"
LESION_COLOR = "#a020f0"
GRAY_MATTER_COLOR = "#ffd000"
VEIN_COLOR = "#ff3030"
CSF_REFERENCE_COLOR = "#00c8ff"
_AXES = {"x": 0, "y": 1, "z": 2, "sagittal": 0, "coronal": 1, "axial": 2}


# ---------------------------------------------------------------------------------------------
# Grids and slices
# ---------------------------------------------------------------------------------------------

def _as_img(img):
    if isinstance(img, nib.spatialimages.SpatialImage):
        return img
    return nib.load(str(img))


def to_canonical(img, *, interpolation="continuous"):
    """The image on an axis-aligned RAS+ grid (nilearn ``reorder_img``), as a Nifti1Image.

    Axis flips and permutations are exact; an oblique affine is resampled with
    ``interpolation`` (``'nearest'`` for masks and labels).
    """
    from nilearn.image import reorder_img

    img = _as_img(img)
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"expected a 3-D image, got shape {data.shape}")
    if data.dtype == bool:
        data = data.astype(np.uint8)
    nimg = nib.Nifti1Image(np.asarray(data), img.affine)
    aff = nimg.affine[:3, :3]
    if np.allclose(aff, np.diag(np.diag(aff))) and np.all(np.diag(aff) > 0):
        return nimg
    return reorder_img(nimg, resample=interpolation, copy_header=True)


def on_grid(img, reference, *, interpolation="nearest"):
    """``img`` resampled onto the grid of ``reference`` (both canonicalised); data as ndarray.

    Returns the data array of shape ``reference.shape`` (after :func:`to_canonical`).
    """
    from nilearn.image import resample_to_img

    kind = "nearest" if interpolation == "nearest" else "continuous"
    ref = to_canonical(reference)
    src = to_canonical(img, interpolation=kind)
    if src.shape == ref.shape and np.allclose(src.affine, ref.affine, atol=1e-4):
        return np.asarray(src.dataobj)
    out = resample_to_img(src, ref, interpolation=interpolation, force_resample=True,
                          copy_header=True)
    return np.asarray(out.dataobj)


def plane(img, axis, coord_mm, *, data=None):
    """One slice of a canonical image at world coordinate ``coord_mm`` along ``axis``.

    Parameters
    ----------
    img : nibabel image
        Canonical (:func:`to_canonical`).
    axis : {'x', 'y', 'z'} or {'sagittal', 'coronal', 'axial'}
    coord_mm : float
        World coordinate of the slice (the nearest voxel plane is taken).
    data : ndarray, optional
        Data on ``img``'s grid to slice instead of the image's own.

    Returns
    -------
    slice2d : ndarray, shape (n_horizontal, n_vertical)
        Horizontal axis x (axial, coronal) or y (sagittal); vertical y (axial) or z.
    h_mm, v_mm : ndarray
        World coordinates of the columns and rows.
    index : int
        Voxel index of the slice.
    """
    ax = _AXES[axis]
    aff = img.affine
    vol = np.asarray(img.dataobj) if data is None else np.asarray(data)
    n = vol.shape[ax]
    idx = int(np.clip(np.rint((coord_mm - aff[ax, 3]) / aff[ax, ax]), 0, n - 1))
    sl = np.take(vol, idx, axis=ax)
    others = [a for a in range(3) if a != ax]
    coords = [aff[a, 3] + aff[a, a] * np.arange(vol.shape[a]) for a in others]
    return sl, coords[0], coords[1], idx


def _extent(h, v):
    dh = (h[1] - h[0]) if len(h) > 1 else 1.0
    dv = (v[1] - v[0]) if len(v) > 1 else 1.0
    return (h[0] - dh / 2, h[-1] + dh / 2, v[0] - dv / 2, v[-1] + dv / 2)


def _finish_axes(ax, axis, radiological, orientation_labels):
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    flip = radiological and _AXES[axis] in (1, 2)
    x0, x1 = sorted(ax.get_xlim())
    # kept on the axes: drawing an overlay with imshow resets the limits (and the flip)
    ax._compendium_limits = ((x1, x0) if flip else (x0, x1), tuple(sorted(ax.get_ylim())))
    _restore_limits(ax)
    if orientation_labels and _AXES[axis] in (1, 2):
        left_txt, right_txt = ("R", "L") if flip else ("L", "R")
        kw = dict(transform=ax.transAxes, color="w", fontsize=8, va="center", fontweight="bold")
        ax.text(0.02, 0.5, left_txt, ha="left", **kw)
        ax.text(0.98, 0.5, right_txt, ha="right", **kw)


def _restore_limits(ax):
    lims = getattr(ax, "_compendium_limits", None)
    if lims is not None:
        ax.set_xlim(*lims[0])
        ax.set_ylim(*lims[1])


def show_slice(ax, img, *, axis="z", coord_mm, cmap="gray", vmin=None, vmax=None,
               radiological=True, orientation_labels=True, title=None, interpolation="continuous"):
    """Draw one slice of ``img`` (background) on matplotlib axes ``ax``.

    ``vmin``/``vmax`` default to the 1st and 99.5th percentiles of the non-zero voxels. Returns
    the ``AxesImage`` (for a colour bar).
    """
    cimg = to_canonical(img, interpolation=interpolation)
    sl, h, v, _ = plane(cimg, axis, coord_mm)
    sl = np.asarray(sl, dtype=float)
    if vmin is None or vmax is None:
        vals = np.asarray(cimg.dataobj, dtype=float)
        vals = vals[np.isfinite(vals) & (vals != 0)]
        lo, hi = (np.percentile(vals, [1, 99.5]) if vals.size else (0.0, 1.0))
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    ax.set_facecolor("k")
    im = ax.imshow(np.ma.masked_invalid(sl).T, origin="lower", extent=_extent(h, v), cmap=cmap,
                   vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_aspect("equal")
    _finish_axes(ax, axis, radiological, orientation_labels)
    if title:
        ax.set_title(title, fontsize=9)
    return im


def _overlay_plane(mask_img, background, axis, coord_mm):
    ref = to_canonical(background)
    data = on_grid(mask_img, ref, interpolation="nearest")
    sl, h, v, _ = plane(ref, axis, coord_mm, data=data)
    return sl, h, v


def overlay_mask(ax, mask_img, background, *, axis="z", coord_mm, color, alpha=0.5):
    """Fill the voxels of a binary mask (non-zero) on a slice drawn from ``background``."""
    from matplotlib.colors import ListedColormap

    sl, h, v = _overlay_plane(mask_img, background, axis, coord_mm)
    m = np.ma.masked_where(~(np.asarray(sl) > 0), np.ones(sl.shape))
    ax.imshow(m.T, origin="lower", extent=_extent(h, v), cmap=ListedColormap([color]), alpha=alpha,
              vmin=0, vmax=1, interpolation="nearest")
    _restore_limits(ax)


def outline_mask(ax, mask_img, background, *, axis="z", coord_mm, color, linewidth=1.2):
    """Draw the outline (0.5 iso-line) of a binary mask on a slice drawn from ``background``."""
    sl, h, v = _overlay_plane(mask_img, background, axis, coord_mm)
    m = (np.asarray(sl) > 0).astype(float)
    if m.any():
        ax.contour(h, v, m.T, levels=[0.5], colors=[color], linewidths=linewidth)
        _restore_limits(ax)


def parcel_colors(ids, *, seed=0):
    """Distinct colours for cortical parcel ids (tab20/tab20b, not FreeSurfer's aparc colours)."""
    import matplotlib

    pal = list(matplotlib.colormaps["tab20"].colors) + list(matplotlib.colormaps["tab20b"].colors)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pal))
    return {int(i): tuple(int(255 * c) for c in pal[order[(int(i) % 1000) % len(pal)]]) for i in ids}


def overlay_labels(ax, label_img, background, *, axis="z", coord_mm, colors=None, alpha=0.45,
                   exclude=(0,)):
    """Colour the labels of a segmentation on a slice (colours: ``{label: (r, g, b)}``).

    Labels without a colour get grey; labels in ``exclude`` are transparent. Default colours:
    :data:`FREESURFER_COLORS` plus :func:`parcel_colors` for cortical parcels (1000-2999).
    """
    sl, h, v = _overlay_plane(label_img, background, axis, coord_mm)
    sl = np.asarray(sl).astype(np.int64)
    if colors is None:
        colors = dict(FREESURFER_COLORS)
        parcels = [int(k) for k in np.unique(sl) if 1000 <= k < 3000]
        colors.update(parcel_colors(parcels))
    rgba = np.zeros(sl.shape + (4,), float)
    for lab in np.unique(sl):
        if int(lab) in exclude:
            continue
        c = colors.get(int(lab), (128, 128, 128))
        rgba[sl == lab] = (*(np.asarray(c) / 255.0), alpha)
    ax.imshow(np.transpose(rgba, (1, 0, 2)), origin="lower", extent=_extent(h, v),
              interpolation="nearest")
    _restore_limits(ax)


def panel_label(ax, letter):
    """Bold panel letter (A, B, ...) at the top left of ``ax``."""
    ax.text(0.02, 0.98, letter, transform=ax.transAxes, color="w", fontsize=12, fontweight="bold",
            va="top", ha="left")


def _labels_data(img):
    c = to_canonical(img, interpolation="nearest")
    return c, np.rint(np.asarray(c.dataobj, dtype=float)).astype(np.int64)


def thalamic_level_mm(aseg_img, *, labels=THALAMUS):
    """World z (mm) of the axial slice with the most thalamic voxels (labels 10/49)."""
    c, data = _labels_data(aseg_img)
    counts = np.isin(data, labels).sum(axis=(0, 1))
    if not counts.any():
        raise ValueError(f"no voxel with label {labels} in the segmentation")
    k = int(np.argmax(counts))
    return float(c.affine[2, 3] + c.affine[2, 2] * k)


def busiest_slices_mm(mask_img, *, n=3, min_gap_mm=10.0, axis="z"):
    """World coordinates of the ``n`` slices with the most mask voxels, ``min_gap_mm`` apart.

    Returned in increasing order; fewer than ``n`` when the mask spans too few slices.
    """
    c, data = _labels_data(mask_img)
    ax = _AXES[axis]
    other = tuple(a for a in range(3) if a != ax)
    counts = (data > 0).sum(axis=other)
    if not counts.any():
        raise ValueError("the mask is empty")
    coords = c.affine[ax, 3] + c.affine[ax, ax] * np.arange(len(counts))
    chosen = []
    for k in np.argsort(-counts, kind="stable"):
        if counts[k] == 0:
            break
        if all(abs(coords[k] - coords[j]) >= min_gap_mm for j in chosen):
            chosen.append(int(k))
        if len(chosen) == n:
            break
    return sorted(float(coords[k]) for k in chosen)


# ---------------------------------------------------------------------------------------------
# The compendium's figures
# ---------------------------------------------------------------------------------------------

def _mm(value):
    """A coordinate for a title: whole millimetres, never '-0'."""
    return f"{int(round(float(value)))}"


def _mask_img(data, like):
    return nib.Nifti1Image(np.asarray(data).astype(np.uint8), like.affine)


def _panel_letters(letters, n):
    letters = [str(x) for x in letters]
    if len(letters) != n:
        raise ValueError(f"panel_letters must give {n} letters, got {len(letters)}: {letters}")
    return letters


def _figure_legend(fig, axes, handles, *, ncol):
    """A legend in white on the figure's black background, centred just under ``axes``."""
    boxes = []
    for ax in axes:
        ax.apply_aspect()            # the box the image is drawn in, not the space it was given
        boxes.append(ax.get_position())
    left, right = min(b.x0 for b in boxes), max(b.x1 for b in boxes)
    bottom = min(b.y0 for b in boxes)
    return fig.legend(handles=handles, loc="upper center", bbox_to_anchor=((left + right) / 2, bottom),
                      ncol=ncol, frameon=False, fontsize=8, handlelength=1.6, labelcolor="w")


def figure1_segmentation(t1_img, aseg_img, *, parcellation_img=None, z_mm=None,
                         ribbon_z_offset_mm=28.0, sagittal_x_mm=None, gray_labels=None,
                         t1_title="T1-weighted", panel_letters="ABCEF", legend=True):
    """Analogue of the paper's Figure 1 A-C, E and F (its panel D is :func:`figure1_qsm`).

    Panels, lettered as in the paper: **A** axial T1 through the thalami; **B** the same with
    the grey-matter mask (yellow); **C** with the segmentation (FreeSurfer colours) and the
    thalamic VOIs in green; **E, F** the cortical ribbon coloured by parcel
    (``parcellation_img``, e.g. ``aparc+aseg``; else the cortex labels 3/42) on an axial slice
    ``ribbon_z_offset_mm`` above the thalami and on a sagittal slice through the left
    hemisphere, in place of the paper's pial-boundary (E) and segmentation-outline (F) panels.
    The paper's D, the susceptibility map with the thalamic outline, is drawn by
    :func:`figure1_qsm` on the QSM grid.

    Parameters
    ----------
    t1_img, aseg_img : nibabel images or paths
        T1-weighted image and aseg labels (same world space).
    parcellation_img : nibabel image or path, optional
    z_mm : float, optional
        Axial level; default :func:`thalamic_level_mm`.
    sagittal_x_mm : float, optional
        Default: 20 mm left of the centre of the left thalamus.
    gray_labels : sequence of int, optional
        Labels of the grey-matter mask; default :data:`analysis.imaging.labels.GRAY_MATTER`.
    t1_title : str, keyword-only
        What panel A's title calls the image; say there when it is not a scanner's, e.g.
        ``"synthetic T1-weighted (phantom)"``.
    panel_letters : str or sequence of 5 str, keyword-only
        Letters of the five panels (default ``"ABCEF"``, the paper's).
    legend : bool, keyword-only
        A legend under the panels: the grey-matter mask and thalamic VOI colours, the ribbon's
        colouring and where panel D is.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    letters = _panel_letters(panel_letters, 5)
    t1 = to_canonical(t1_img)
    aseg_c, labels = _labels_data(aseg_img)
    aseg_c = nib.Nifti1Image(labels.astype(np.int32), aseg_c.affine)
    if z_mm is None:
        z_mm = thalamic_level_mm(aseg_c)
    gm = _mask_img(np.isin(labels, GRAY_MATTER if gray_labels is None else gray_labels), aseg_c)
    thal = _mask_img(np.isin(labels, THALAMUS), aseg_c)
    if parcellation_img is not None:
        parc_c, parc = _labels_data(parcellation_img)
        ribbon = nib.Nifti1Image(np.where((parc >= 1000) & (parc < 3000), parc, 0).astype(np.int32),
                                 parc_c.affine)
    else:
        ribbon = nib.Nifti1Image(np.where(np.isin(labels, (3, 42)), labels, 0).astype(np.int32),
                                 aseg_c.affine)
    if sagittal_x_mm is None:
        xs = np.argwhere(labels == 10)
        x0 = aseg_c.affine[0, 3] + aseg_c.affine[0, 0] * xs[:, 0].mean() if len(xs) else 0.0
        sagittal_x_mm = float(x0) - 20.0

    fig, axes = plt.subplots(1, 5, figsize=(15, 3.9), facecolor="k")
    a, b, c, d, e = axes
    show_slice(a, t1, coord_mm=z_mm)
    show_slice(b, t1, coord_mm=z_mm)
    overlay_mask(b, gm, t1, coord_mm=z_mm, color=GRAY_MATTER_COLOR, alpha=0.45)
    show_slice(c, t1, coord_mm=z_mm)
    overlay_labels(c, aseg_c, t1, coord_mm=z_mm, exclude=(0, 24, 2, 41))
    overlay_mask(c, thal, t1, coord_mm=z_mm, color=THALAMUS_COLOR, alpha=0.8)
    outline_mask(c, thal, t1, coord_mm=z_mm, color=THALAMUS_COLOR)
    show_slice(d, t1, coord_mm=z_mm + ribbon_z_offset_mm)
    overlay_labels(d, ribbon, t1, coord_mm=z_mm + ribbon_z_offset_mm, alpha=0.85)
    show_slice(e, t1, axis="x", coord_mm=sagittal_x_mm)
    overlay_labels(e, ribbon, t1, axis="x", coord_mm=sagittal_x_mm, alpha=0.85)
    titles = (f"{t1_title}, z = {_mm(z_mm)} mm", "grey-matter mask", "segmentation, thalamic VOIs",
              f"cortical ribbon, z = {_mm(z_mm + ribbon_z_offset_mm)} mm",
              f"cortical ribbon, x = {_mm(sagittal_x_mm)} mm")
    for ax, letter, title in zip(axes, letters, titles):
        panel_label(ax, letter)
        ax.set_title(title, color="w", fontsize=9)
    fig.tight_layout()
    if legend:
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=GRAY_MATTER_COLOR, alpha=0.8, label=f"grey-matter mask ({letters[1]})"),
                   Patch(facecolor=THALAMUS_COLOR, label=f"thalamic VOIs, aseg 10/49 ({letters[2]})"),
                   Patch(facecolor="none", edgecolor="none",
                         label=f"{letters[3]}, {letters[4]}: cortical ribbon coloured by parcel")]
        if "D" not in letters:
            handles.append(Patch(facecolor="none", edgecolor="none",
                                 label="D: the χ map with the thalamic VOI (separate figure)"))
        _figure_legend(fig, axes, handles, ncol=len(handles))
    return fig


def figure1_qsm(chi_imgs, aseg_img, *, rois=None, z_mm=None, vmin_ppm=-0.15, vmax_ppm=0.15,
                panel_letters=None, legend=True):
    """Analogue of the paper's Figure 1 D: χ maps at the thalamic level with the thalamus outline.

    Parameters
    ----------
    chi_imgs : dict of str -> nibabel image
        χ maps (ppm) to show side by side, e.g. ``{"true": ..., "reconstructed": ...}``.
    aseg_img : nibabel image
        Segmentation in QSM space; thalamic labels 10/49 are outlined in green.
    rois : dict of str -> analysis.imaging.roi.ThalamicROIs, optional
        Per map (same keys): also outline the excluded vein voxels (red) and the CSF reference
        spheres (cyan).
    z_mm : float, optional
        Axial level; default :func:`thalamic_level_mm`.
    panel_letters : sequence of str, optional, keyword-only
        One letter per map; default ``"D"`` for a single map (the paper's panel), else ``"D1"``,
        ``"D2"``, ... (the other panels of Figure 1 are :func:`figure1_segmentation`'s).
    legend : bool, keyword-only
        A legend under the panels naming the outlines drawn.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if not isinstance(chi_imgs, dict) or not chi_imgs:
        raise ValueError("chi_imgs must be a non-empty dict of name -> χ map")
    n = len(chi_imgs)
    if panel_letters is None:
        panel_letters = ["D"] if n == 1 else [f"D{i}" for i in range(1, n + 1)]
    letters = _panel_letters(panel_letters, n)
    aseg_c, labels = _labels_data(aseg_img)
    if z_mm is None:
        z_mm = thalamic_level_mm(aseg_c)
    thal = _mask_img(np.isin(labels, THALAMUS), aseg_c)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n + 0.8, 4.4), facecolor="k", squeeze=False)
    im = None
    drawn_rois = False
    for ax, letter, (name, img) in zip(axes[0], letters, chi_imgs.items()):
        chi = to_canonical(img)
        im = show_slice(ax, chi, coord_mm=z_mm, vmin=vmin_ppm, vmax=vmax_ppm)
        outline_mask(ax, thal, chi, coord_mm=z_mm, color=THALAMUS_COLOR, linewidth=1.4)
        r = (rois or {}).get(name)
        if r is not None:
            drawn_rois = True
            veins = nib.Nifti1Image(r.vein().astype(np.uint8), r.affine)
            csf = nib.Nifti1Image(r.csf_reference().astype(np.uint8), r.affine)
            outline_mask(ax, veins, chi, coord_mm=z_mm, color=VEIN_COLOR, linewidth=0.9)
            outline_mask(ax, csf, chi, coord_mm=z_mm, color=CSF_REFERENCE_COLOR, linewidth=1.2)
        panel_label(ax, letter)
        ax.set_title(f"χ, {name} (z = {_mm(z_mm)} mm)", color="w", fontsize=9)
    cb = fig.colorbar(im, ax=list(axes[0]), fraction=0.025, pad=0.02)
    cb.set_label("χ (ppm)", color="w")
    cb.ax.tick_params(colors="w")
    if legend:
        handles = [Line2D([], [], color=THALAMUS_COLOR, lw=1.4, label="thalamic VOI (aseg 10/49)")]
        if drawn_rois:
            handles += [Line2D([], [], color=VEIN_COLOR, lw=1.2, label="excluded vein voxels"),
                        Line2D([], [], color=CSF_REFERENCE_COLOR, lw=1.2,
                               label="CSF reference, atrium (where it cuts this slice)")]
        _figure_legend(fig, list(axes[0]), handles, ncol=len(handles))
    return fig


def figure2_lesions(flair_img, lesion_img, *, z_mm=None, n_slices=3, flair_title="FLAIR"):
    """Analogue of the paper's Figure 2: FLAIR with the lesion segmentation in purple.

    Top row FLAIR alone, bottom row with the lesion mask filled in purple, on the ``n_slices``
    axial slices with the most lesion voxels (or the levels ``z_mm``). ``flair_title`` is what
    the top row's titles call the image (say there when it is not a scanner's, e.g.
    ``"synthetic FLAIR (phantom)"``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    flair = to_canonical(flair_img)
    les_c, les = _labels_data(lesion_img)
    les_img = _mask_img(les > 0, les_c)
    levels = busiest_slices_mm(les_img, n=n_slices) if z_mm is None else list(np.atleast_1d(z_mm))
    fig, axes = plt.subplots(2, len(levels), figsize=(3.4 * len(levels), 7.0), facecolor="k",
                             squeeze=False)
    for j, z in enumerate(levels):
        show_slice(axes[0, j], flair, coord_mm=z, title=None)
        show_slice(axes[1, j], flair, coord_mm=z)
        overlay_mask(axes[1, j], les_img, flair, coord_mm=z, color=LESION_COLOR, alpha=0.85)
        axes[0, j].set_title(f"{flair_title}, z = {_mm(z)} mm", color="w", fontsize=9)
        axes[1, j].set_title("lesion segmentation", color="w", fontsize=9)
    panel_label(axes[0, 0], "A")
    panel_label(axes[1, 0], "B")
    fig.tight_layout()
    return fig
