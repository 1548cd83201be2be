"""Figures of the QSM reconstruction, one per step (notebook 01-qsm-reconstruction).

Every figure shows axial (and, where the dipole pattern matters, coronal) slices through the
thalami, in the radiological convention of :mod:`analysis.imaging.figures` (patient's right on the left),
from arrays on one voxel grid with its affine:

* :func:`figure_acquisition` — echo magnitudes and wrapped phases;
* :func:`figure_field_map` — mask, fitted field (still wrapped), unwrapped total field, noise map;
* :func:`figure_local_fields` — local fields of the background-removal methods (and the truth);
* :func:`figure_chi_maps` — χ maps beside the truth, and their differences from it.

Arrays are (X, Y, Z) (echo arrays (X, Y, Z, E)); fields in ppm unless the name says rad;
χ in ppm. Voxels outside a map's mask are drawn black (NaN).
"""

from __future__ import annotations

from collections.abc import Mapping

import nibabel as nib
import numpy as np

from analysis.imaging.figures import outline_mask, panel_label, show_slice
from analysis.imaging.labels import THALAMUS

__all__ = ["slice_levels_mm", "figure_acquisition", "figure_field_map", "figure_local_fields",
           "figure_chi_maps", "figure_lambda_sweep"]

_TEXT = "w"
_FACE = "k"


def _check_affine(affine):
    a = np.asarray(affine, dtype=float)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise ValueError(f"affine must be a finite 4 x 4 matrix, got shape {a.shape}")
    return a


def _check_3d(name, data, shape=None):
    d = np.asarray(data)
    if d.ndim != 3:
        raise ValueError(f"{name} must be 3-D (X, Y, Z), got shape {d.shape}")
    if shape is not None and d.shape != tuple(shape):
        raise ValueError(f"{name} shape {d.shape} does not match {tuple(shape)}")
    return d


def _img(data, affine, mask=None):
    d = np.asarray(data, dtype=np.float32)
    if mask is not None:
        d = np.where(np.asarray(mask, bool), d, np.nan).astype(np.float32)
    return nib.Nifti1Image(d, affine)


def _world(affine, ijk):
    return affine[:3, :3] @ np.asarray(ijk, float) + affine[:3, 3]


def slice_levels_mm(affine, *, mask=None, labels=None, thalamus_labels=THALAMUS):
    """World coordinates (mm) of the axial (z) and coronal (y) slices the figures show.

    Through the centre of the thalami (``labels`` with ids ``thalamus_labels``) when a
    segmentation with them is given, else through the centre of mass of ``mask``, else through
    the centre of the grid.

    Parameters
    ----------
    affine : ndarray, shape (4, 4)
        Voxel-to-world (mm) affine of the grid (RAS+ axis-aligned expected).
    mask : ndarray of bool, shape (X, Y, Z), optional
    labels : ndarray of int, shape (X, Y, Z), optional

    Returns
    -------
    z_mm, y_mm : float
    """
    aff = _check_affine(affine)
    sel = None
    if labels is not None:
        lab = _check_3d("labels", labels)
        sel = np.isin(lab, thalamus_labels)
        if not sel.any():
            sel = None
    if sel is None and mask is not None:
        sel = _check_3d("mask", mask).astype(bool)
        if not sel.any():
            raise ValueError("mask is empty (no voxel is True)")
    if sel is None:
        raise ValueError("give mask or labels to place the slices")
    centre = _world(aff, np.argwhere(sel).mean(axis=0))
    return float(centre[2]), float(centre[1])


def _dark(fig):
    fig.patch.set_facecolor(_FACE)
    return fig


def _colorbar(fig, im, ax, label):
    """Colour bar beside ``ax`` (one axes, or a row of them sharing the colour scale)."""
    axes = list(np.ravel(ax)) if isinstance(ax, (list, np.ndarray)) else [ax]
    cb = fig.colorbar(im, ax=axes, orientation="vertical", fraction=0.046 / len(axes), pad=0.01, shrink=0.8)
    cb.set_label(label, color=_TEXT, fontsize=8)
    cb.ax.tick_params(colors=_TEXT, labelsize=7)
    return cb


def _panel(fig, ax, img, *, axis, coord_mm, cmap, vmin, vmax, title, unit=None, letter=None):
    im = show_slice(ax, img, axis=axis, coord_mm=coord_mm, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_title(title, color=_TEXT, fontsize=9)
    if letter:
        panel_label(ax, letter)
    if unit is not None:
        _colorbar(fig, im, ax, unit)
    return im


def _robust_max(values, q=99.0):
    v = np.abs(np.asarray(values, dtype=float))
    v = v[np.isfinite(v)]
    return float(np.percentile(v, q)) if v.size else 1.0


def figure_acquisition(magnitude, phase, echo_times_s, affine, *, echoes=None, z_mm=None, mask=None):
    """Echo magnitudes (top row) and wrapped phases (bottom row) of a multi-echo acquisition.

    Parameters
    ----------
    magnitude, phase : ndarray, shape (X, Y, Z, E)
        Magnitude (any unit) and phase (rad) of the echoes.
    echo_times_s : sequence of E float
        Echo times (s), for the titles.
    affine : ndarray, shape (4, 4)
    echoes : sequence of int, optional
        0-based echoes to show; default first, middle and last.
    z_mm : float, optional
        Axial level (world mm); default through the centre of ``mask`` or of the signal.
    mask : ndarray of bool, shape (X, Y, Z), optional
        Only used to place the default slice.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    aff = _check_affine(affine)
    mag = np.asarray(magnitude)
    ph = np.asarray(phase)
    if mag.ndim != 4 or ph.shape != mag.shape:
        raise ValueError(f"magnitude and phase must be (X, Y, Z, E) of one shape, got {mag.shape} and {ph.shape}")
    te = np.asarray(echo_times_s, dtype=float).ravel()
    n = mag.shape[-1]
    if te.size != n:
        raise ValueError(f"echo_times_s has {te.size} values for {n} echoes")
    echoes = [0, n // 2, n - 1] if echoes is None else [int(e) for e in echoes]
    echoes = list(dict.fromkeys(echoes))
    if not echoes or min(echoes) < 0 or max(echoes) >= n:
        raise ValueError(f"echoes must be indices in [0, {n - 1}], got {echoes}")
    if z_mm is None:
        z_mm, _ = slice_levels_mm(aff, mask=mask if mask is not None else mag[..., 0] > 0)
    vmax = float(np.percentile(mag[..., echoes[0]], 99.5)) or 1.0
    fig, axes = plt.subplots(2, len(echoes), figsize=(3.3 * len(echoes), 7.4), squeeze=False)
    _dark(fig)
    for j, e in enumerate(echoes):
        im_m = _panel(fig, axes[0, j], _img(mag[..., e], aff), axis="z", coord_mm=z_mm, cmap="gray", vmin=0.0,
                      vmax=vmax, title=f"magnitude, echo {e + 1} (TE {1e3 * te[e]:.1f} ms)")
        im_p = _panel(fig, axes[1, j], _img(ph[..., e], aff), axis="z", coord_mm=z_mm, cmap="twilight",
                      vmin=-np.pi, vmax=np.pi, title=f"wrapped phase, echo {e + 1}")
    _colorbar(fig, im_m, axes[0], "a.u.")
    _colorbar(fig, im_p, axes[1], "rad")
    panel_label(axes[0, 0], "A")
    panel_label(axes[1, 0], "B")
    return fig


def figure_field_map(fitted_field_rad, total_field_ppm, brain_mask, magnitude, affine, *, noise_std_ppm=None,
                     z_mm=None, y_mm=None, true_mask=None):
    """Brain mask, fitted field before and after unwrapping, and the field's noise map.

    Panels: **A** echo-combined magnitude with the brain mask outlined (and ``true_mask``, e.g.
    the phantom's brain, in another colour); **B** the field fitted across echoes, in rad per
    echo spacing, still wrapped to (−π, π]; **C, D** the unwrapped total field (ppm) on the axial
    and coronal slices; **E** the noise standard deviation of the field (ppb), if given.

    Parameters
    ----------
    fitted_field_rad : ndarray, shape (X, Y, Z)
        Field from the multi-echo fit (rad per ΔTE, wrapped).
    total_field_ppm : ndarray, shape (X, Y, Z)
        Unwrapped total field (ppm).
    brain_mask : ndarray of bool, shape (X, Y, Z)
    magnitude : ndarray, shape (X, Y, Z)
        Echo-combined magnitude (any unit).
    affine : ndarray, shape (4, 4)
    noise_std_ppm : ndarray, shape (X, Y, Z), optional
        Noise standard deviation of the field (ppm; drawn in ppb).
    z_mm, y_mm : float, optional
        Axial and coronal levels (world mm); default through the centre of the mask.
    true_mask : ndarray of bool, shape (X, Y, Z), optional
        A reference mask to outline beside ``brain_mask``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    aff = _check_affine(affine)
    m = _check_3d("brain_mask", brain_mask).astype(bool)
    shape = m.shape
    fit = _check_3d("fitted_field_rad", fitted_field_rad, shape)
    tot = _check_3d("total_field_ppm", total_field_ppm, shape)
    mag = _check_3d("magnitude", magnitude, shape)
    if not m.any():
        raise ValueError("brain_mask is empty (no voxel is True)")
    zc, yc = slice_levels_mm(aff, mask=m)
    z_mm = zc if z_mm is None else float(z_mm)
    y_mm = yc if y_mm is None else float(y_mm)
    n_panels = 5 if noise_std_ppm is not None else 4
    fig, axes = plt.subplots(1, n_panels, figsize=(3.4 * n_panels, 4.3))
    _dark(fig)
    mag_img = _img(mag, aff)
    _panel(fig, axes[0], mag_img, axis="z", coord_mm=z_mm, cmap="gray", vmin=0.0,
           vmax=float(np.percentile(mag[m], 99.5)), title="magnitude (RSS) and brain mask", unit="a.u.",
           letter="A")
    outline_mask(axes[0], nib.Nifti1Image(m.astype(np.uint8), aff), mag_img, coord_mm=z_mm, color="#ffd000")
    if true_mask is not None:
        tm = _check_3d("true_mask", true_mask, shape).astype(np.uint8)
        outline_mask(axes[0], nib.Nifti1Image(tm, aff), mag_img, coord_mm=z_mm, color="#00c8ff", linewidth=0.8)
    _panel(fig, axes[1], _img(fit, aff, m), axis="z", coord_mm=z_mm, cmap="twilight", vmin=-np.pi, vmax=np.pi,
           title="fitted field (wrapped)", unit="rad per ΔTE", letter="B")
    lim = _robust_max(tot[m], 99.5)
    _panel(fig, axes[2], _img(tot, aff, m), axis="z", coord_mm=z_mm, cmap="RdBu_r", vmin=-lim, vmax=lim,
           title="unwrapped total field", unit="ppm", letter="C")
    _panel(fig, axes[3], _img(tot, aff, m), axis="y", coord_mm=y_mm, cmap="RdBu_r", vmin=-lim, vmax=lim,
           title=f"total field, coronal y = {round(y_mm)} mm", unit="ppm", letter="D")
    if noise_std_ppm is not None:
        noise = _check_3d("noise_std_ppm", noise_std_ppm, shape) * 1000.0
        hi = _robust_max(noise[m], 99.0) or 1.0
        _panel(fig, axes[4], _img(noise, aff, m), axis="z", coord_mm=z_mm, cmap="magma", vmin=0.0, vmax=hi,
               title="noise of the field", unit="ppb", letter="E")
    return fig


def _named_maps(maps, what):
    """``{name: (array, mask)}`` checked to be 3-D of one shape (the first entry's); returns it and the shape."""
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError(f"{what} must be a non-empty mapping of name to (array, mask)")
    first = next(iter(maps.values()))
    shape = np.shape(first[0] if isinstance(first, tuple) else first)
    out = {}
    for name, value in maps.items():
        if isinstance(value, tuple) and len(value) == 2:
            data, mask = value
        else:
            data, mask = value, None
        d = _check_3d(f"{what}[{name!r}]", data, shape)
        mk = np.isfinite(d) if mask is None else _check_3d(f"mask of {what}[{name!r}]", mask, shape).astype(bool)
        out[str(name)] = (d, mk)
    return out, shape


def figure_local_fields(local_fields, affine, *, true_local_ppm=None, true_mask=None, z_mm=None, y_mm=None,
                        vmax_ppm=None):
    """Local fields after background removal, axial (top) and coronal (bottom), beside the truth.

    Parameters
    ----------
    local_fields : mapping of str to (ndarray, ndarray of bool)
        Method name → (local field (ppm), shape (X, Y, Z); mask where it is valid). A bare
        array is taken as valid where finite.
    affine : ndarray, shape (4, 4)
    true_local_ppm : ndarray, shape (X, Y, Z), optional
        The true local field (ppm), drawn in the last column inside ``true_mask``.
    true_mask : ndarray of bool, optional
        Default: the union of the methods' masks.
    z_mm, y_mm : float, optional
        Slice levels (world mm); default through the centre of the first mask.
    vmax_ppm : float, optional
        Colour limit (± ppm); default the 99th percentile of |field| over the maps.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    aff = _check_affine(affine)
    maps, shape = _named_maps(local_fields, "local_fields")
    union = np.any([mk for _, mk in maps.values()], axis=0)
    if true_local_ppm is not None:
        tm = union if true_mask is None else _check_3d("true_mask", true_mask, shape).astype(bool)
        maps["truth"] = (_check_3d("true_local_ppm", true_local_ppm, shape), tm)
    zc, yc = slice_levels_mm(aff, mask=next(iter(maps.values()))[1])
    z_mm = zc if z_mm is None else float(z_mm)
    y_mm = yc if y_mm is None else float(y_mm)
    if vmax_ppm is None:
        vmax_ppm = max(_robust_max(d[mk], 99.0) for d, mk in maps.values())
    n = len(maps)
    fig, axes = plt.subplots(2, n, figsize=(3.4 * n, 7.6), squeeze=False)
    _dark(fig)
    for j, (name, (d, mk)) in enumerate(maps.items()):
        img = _img(d, aff, mk)
        im = _panel(fig, axes[0, j], img, axis="z", coord_mm=z_mm, cmap="RdBu_r", vmin=-vmax_ppm, vmax=vmax_ppm,
                    title=f"local field: {name}")
        _panel(fig, axes[1, j], img, axis="y", coord_mm=y_mm, cmap="RdBu_r", vmin=-vmax_ppm, vmax=vmax_ppm,
               title=f"coronal y = {round(y_mm)} mm")
    _colorbar(fig, im, axes[0], "ppm")
    _colorbar(fig, im, axes[1], "ppm")
    panel_label(axes[0, 0], "A")
    panel_label(axes[1, 0], "B")
    return fig


def figure_chi_maps(chi_maps, affine, *, true_chi_ppm=None, true_mask=None, z_mm=None, y_mm=None,
                    vmin_ppm=-0.15, vmax_ppm=0.15, diff_max_ppm=0.05):
    """χ maps beside the truth (axial, coronal) and, with a truth, their difference from it.

    Rows: **A** axial χ, **B** coronal χ, **C** (with ``true_chi_ppm``) axial difference
    estimate − truth on the voxels where both are defined.

    Parameters
    ----------
    chi_maps : mapping of str to (ndarray, ndarray of bool)
        Method name → (χ (ppm), shape (X, Y, Z); mask where it is defined). A bare array is taken
        as defined where finite.
    affine : ndarray, shape (4, 4)
    true_chi_ppm : ndarray, shape (X, Y, Z), optional
        True χ (ppm), shown first, inside ``true_mask`` (default: where finite).
    z_mm, y_mm : float, optional
        Slice levels (world mm); default through the centre of the first map's mask.
    vmin_ppm, vmax_ppm : float
        Colour window of χ (ppm).
    diff_max_ppm : float
        Colour limit (± ppm) of the differences.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    aff = _check_affine(affine)
    maps, shape = _named_maps(chi_maps, "chi_maps")
    if not (vmax_ppm > vmin_ppm) or not diff_max_ppm > 0:
        raise ValueError(f"need vmin_ppm < vmax_ppm and diff_max_ppm > 0, got {vmin_ppm}, {vmax_ppm}, {diff_max_ppm}")
    shown = dict(maps)
    truth = None
    if true_chi_ppm is not None:
        t = _check_3d("true_chi_ppm", true_chi_ppm, shape)
        tm = np.isfinite(t) if true_mask is None else _check_3d("true_mask", true_mask, shape).astype(bool)
        truth = (t, tm)
        shown = {"truth": truth, **maps}
    zc, yc = slice_levels_mm(aff, mask=next(iter(maps.values()))[1])
    z_mm = zc if z_mm is None else float(z_mm)
    y_mm = yc if y_mm is None else float(y_mm)
    n = len(shown)
    rows = 3 if truth is not None else 2
    fig, axes = plt.subplots(rows, n, figsize=(3.3 * n, 3.9 * rows), squeeze=False)
    _dark(fig)
    im_d = None
    for j, (name, (d, mk)) in enumerate(shown.items()):
        img = _img(d, aff, mk)
        im = _panel(fig, axes[0, j], img, axis="z", coord_mm=z_mm, cmap="gray", vmin=vmin_ppm, vmax=vmax_ppm,
                    title=f"χ: {name}")
        _panel(fig, axes[1, j], img, axis="y", coord_mm=y_mm, cmap="gray", vmin=vmin_ppm, vmax=vmax_ppm,
               title=f"coronal y = {round(y_mm)} mm")
        if truth is not None:
            ax = axes[2, j]
            if name == "truth":
                ax.set_facecolor(_FACE)
                ax.axis("off")
                ax.text(0.5, 0.5, "difference\nestimate − truth", color=_TEXT, ha="center", va="center",
                        transform=ax.transAxes, fontsize=10)
                continue
            both = mk & truth[1]
            im_d = _panel(fig, ax, _img(d - truth[0], aff, both), axis="z", coord_mm=z_mm, cmap="RdBu_r",
                          vmin=-diff_max_ppm, vmax=diff_max_ppm, title=f"{name} − truth")
    _colorbar(fig, im, axes[0], "χ (ppm)")
    _colorbar(fig, im, axes[1], "χ (ppm)")
    if im_d is not None:
        _colorbar(fig, im_d, axes[2], "difference (ppm)")
    for i, letter in enumerate("ABC"[:rows]):
        panel_label(axes[i, 0], letter)
    return fig


def figure_lambda_sweep(table, maps, masks, affine, *, z_mm=None, show=(0.1, 1.0, 10.0), vmin_ppm=-0.15,
                        vmax_ppm=0.15):
    """What the regularisation weight λ does: error and roughness against λ, and three maps.

    Top left: the NRMSE (%) against the normalised λ (``table["nrmse_pct"]``, phantoms), top
    right: the roughness of the map, mean |∇χ| (ppm/mm), against the same axis — both with the
    automatic choice marked. Bottom: axial χ at the factors ``show`` of the automatic λ — too much
    regularisation (small λ: flat, blurred), the automatic choice, too little (large λ: noise and
    streaks fitted).

    Parameters
    ----------
    table : pandas.DataFrame
        First result of :func:`analysis.imaging.qsm.regularisation.lambda_sweep`.
    maps : mapping of float to ndarray
        Second result: factor → χ (ppm), shape (X, Y, Z).
    masks : mapping of float to ndarray of bool, or ndarray of bool
        Where each map is defined (one mask for all, or one per factor).
    affine : ndarray, shape (4, 4)
    z_mm : float, optional
        Axial level (world mm) of the maps (default: the middle of the grid).
    show : sequence of 3 float
        Factors of the automatic λ shown as maps (each must be in ``maps``).
    vmin_ppm, vmax_ppm : float
        Grey scale of the maps (ppm).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    aff = _check_affine(affine)
    missing = [f for f in show if f not in maps]
    if missing:
        raise ValueError(f"show: factors {missing} are not in maps (have {sorted(maps)})")
    need = {"factor", "lambda_normalised", "gradient_l1", "auto"}
    if not need <= set(table.columns):
        raise ValueError(f"table lacks columns {sorted(need - set(table.columns))}")
    fig = plt.figure(figsize=(12, 8), layout="constrained")
    grid = fig.add_gridspec(2, 3, height_ratios=(1.0, 1.3))
    ax_err, ax_tv = fig.add_subplot(grid[0, :2]), fig.add_subplot(grid[0, 2])
    x = table["lambda_normalised"].to_numpy(float)
    auto = table["auto"].to_numpy(bool)
    if "nrmse_pct" in table:
        ax_err.plot(x, table["nrmse_pct"], "o-", color="tab:blue")
        ax_err.plot(x[auto], table["nrmse_pct"][auto], "*", ms=16, color="tab:red", label="automatic λ")
        ax_err.set_ylabel("NRMSE vs truth (%)")
    else:
        ax_err.text(0.5, 0.5, "no truth for these data", ha="center", va="center", transform=ax_err.transAxes)
    ax_err.set_xscale("log")
    ax_err.set_xlabel("normalised λ (λ × σ of the field in rad)")
    ax_err.axvspan(x.min(), x[auto].min(), color="tab:orange", alpha=0.08)
    ax_err.axvspan(x[auto].max(), x.max(), color="tab:purple", alpha=0.08)
    ax_err.text(0.02, 0.04, "← too much regularisation", transform=ax_err.transAxes, va="bottom", color="tab:orange")
    ax_err.text(0.98, 0.04, "too little →", transform=ax_err.transAxes, va="bottom", ha="right", color="tab:purple")
    if "nrmse_pct" in table:
        ax_err.legend(loc="upper center")
    panel_label(ax_err, "A")
    ax_tv.plot(x, table["gradient_l1"], "o-", color="0.3")
    ax_tv.plot(x[auto], table["gradient_l1"][auto], "*", ms=16, color="tab:red")
    ax_tv.set_xscale("log")
    ax_tv.set_yscale("log")
    ax_tv.set_xlabel("normalised λ")
    ax_tv.set_ylabel("mean |∇χ| (ppm/mm)")
    ax_tv.set_title("roughness of the map")
    panel_label(ax_tv, "B")
    if z_mm is None:
        z_mm = float(_world(aff, np.array(next(iter(maps.values())).shape) / 2.0)[2])
    names = {f: ("automatic λ" if f == 1.0 else f"{f:g} × automatic λ") for f in show}
    for j, f in enumerate(show):
        ax = fig.add_subplot(grid[1, j])
        m = masks if not isinstance(masks, Mapping) else masks[f]
        im = _panel(fig, ax, _img(maps[f], aff, np.asarray(m, bool)), axis="z", coord_mm=z_mm, cmap="gray",
                    vmin=vmin_ppm, vmax=vmax_ppm, title=names[f], letter="CDE"[j])
        ax.title.set_color("k")   # this figure has a light background
        if j == len(show) - 1:
            cb = _colorbar(fig, im, ax, "χ (ppm)")
            cb.ax.yaxis.label.set_color("k")
            cb.ax.tick_params(colors="k")
    fig.suptitle("Regularisation weight λ of MEDI: the automatic choice between over-smoothing and fitting noise")
    return fig
