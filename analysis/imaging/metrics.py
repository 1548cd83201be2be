"""Accuracy of susceptibility maps against a known truth, as in the QSM reconstruction challenges.

* :func:`nrmse` — ``100 ‖χ − χ_true‖₂ / ‖χ_true‖₂`` over the mask (%), the 2016 challenge's RMSE.
* :func:`hfen` — high-frequency error norm (Ravishankar & Bresler 2011; 2016 QSM challenge):
  the same ratio after filtering both maps with a Laplacian-of-Gaussian of σ = 1.5 voxels on a
  15×15×15 support (MATLAB ``fspecial``-style: Gaussian normalised to sum 1, LoG shifted to zero
  sum), with zero padding outside the (masked) maps (%).
* :func:`ssim` — structural similarity (scikit-image), averaged over the mask, with a stated
  ``data_range`` (default: the range of the truth inside the mask).
* :func:`label_errors` — mean χ per labelled structure and its error in **ppb** (1 ppb =
  0.001 ppm), as a tidy :class:`pandas.DataFrame`.
* :func:`accuracy_table` — all of the above for several methods, one tidy table.
* :func:`qsm_accuracy_table` — the same as one wide row per method, on CSF-referenced maps, with
  the mean error of grouped structures (:data:`QSM_STRUCTURES`): the table of notebook 01.

All maps are arrays of shape (X, Y, Z) in ppm.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.imaging.labels import (CAUDATE, CEREBRAL_WHITE_MATTER, LATERAL_VENTRICLES, PALLIDUM, PUTAMEN, THALAMUS,
                                     VENTRICULAR_CSF)

__all__ = ["nrmse", "hfen", "ssim", "log_kernel", "label_errors", "accuracy_table", "QSM_STRUCTURES",
           "CSF_REFERENCE_LABELS", "qsm_accuracy_table"]

#: Structures of :func:`qsm_accuracy_table`: name → label ids (FreeSurfer aseg ids, and the
#: head phantom's vein ids 901-905), left and right pooled.
QSM_STRUCTURES = {
    "thalamus": THALAMUS,
    "caudate": CAUDATE,
    "putamen": PUTAMEN,
    "pallidum": PALLIDUM,
    "white matter": CEREBRAL_WHITE_MATTER,
    "CSF": VENTRICULAR_CSF,
    "veins": (901, 902, 903, 904, 905),
}
#: Labels of the CSF reference of :func:`qsm_accuracy_table`: the lateral ventricles.
CSF_REFERENCE_LABELS = LATERAL_VENTRICLES


def _prep(estimate, truth, mask):
    e = np.asarray(estimate, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if e.shape != t.shape:
        raise ValueError(f"estimate shape {e.shape} does not match truth shape {t.shape}")
    if mask is None:
        m = np.ones(t.shape, bool)
    else:
        m = np.asarray(mask, dtype=bool)
        if m.shape != t.shape:
            raise ValueError(f"mask shape {m.shape} does not match truth shape {t.shape}")
    if not m.any():
        raise ValueError("mask is empty (no voxel is True)")
    if not (np.all(np.isfinite(e[m])) and np.all(np.isfinite(t[m]))):
        raise ValueError("estimate or truth has non-finite values inside the mask")
    return e, t, m


def nrmse(estimate, truth, *, mask=None, demean=False):
    """Normalised root-mean-square error (%) over ``mask``.

    Parameters
    ----------
    estimate, truth : ndarray, shape (X, Y, Z)
        Susceptibility maps (ppm).
    mask : ndarray of bool, shape (X, Y, Z), optional
        Region of evaluation (default everything).
    demean : bool
        Subtract each map's mean over the mask first (removes the unobservable offset).

    Returns
    -------
    float
        ``100 · ‖e − t‖ / ‖t‖`` over the mask.
    """
    e, t, m = _prep(estimate, truth, mask)
    ev, tv = e[m], t[m]
    if demean:
        ev, tv = ev - ev.mean(), tv - tv.mean()
    den = np.linalg.norm(tv)
    if den == 0:
        raise ValueError("truth is zero everywhere in the mask: NRMSE undefined")
    return float(100.0 * np.linalg.norm(ev - tv) / den)


def log_kernel(*, sigma=1.5, size=15):
    """3-D Laplacian-of-Gaussian kernel, MATLAB ``fspecial('log')`` style, shape (size,)*3.

    ``h = exp(−r²/2σ²)/Σ``; ``LoG = h (r² − 3σ²)/σ⁴``, then shifted to sum exactly 0.
    """
    if not (sigma > 0) or int(size) < 3:
        raise ValueError(f"sigma must be > 0 and size >= 3, got sigma={sigma!r}, size={size!r}")
    half = (int(size) - 1) / 2.0
    ax = np.arange(int(size)) - half
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij")
    r2 = x * x + y * y + z * z
    h = np.exp(-r2 / (2.0 * sigma * sigma))
    h /= h.sum()
    log = h * (r2 - 3.0 * sigma * sigma) / sigma**4
    return log - log.mean()


def hfen(estimate, truth, *, mask=None, sigma=1.5, size=15):
    """High-frequency error norm (%): NRMSE of LoG-filtered maps.

    Parameters
    ----------
    estimate, truth : ndarray, shape (X, Y, Z)
        Susceptibility maps (ppm); both are set to 0 outside ``mask`` before filtering.
    mask : ndarray of bool, shape (X, Y, Z), optional
        Brain mask (default everything).
    sigma : float
        LoG width (voxels), 1.5 as in the 2016 challenge.
    size : int
        Kernel support (voxels per axis), 15.

    Returns
    -------
    float
        ``100 · ‖LoG⊛e − LoG⊛t‖ / ‖LoG⊛t‖`` over the whole volume.
    """
    from scipy.signal import fftconvolve

    e, t, m = _prep(estimate, truth, mask)
    k = log_kernel(sigma=sigma, size=size)
    fe = fftconvolve(np.where(m, e, 0.0), k, mode="same")
    ft = fftconvolve(np.where(m, t, 0.0), k, mode="same")
    den = np.linalg.norm(ft)
    if den == 0:
        raise ValueError("the LoG-filtered truth is zero: HFEN undefined")
    return float(100.0 * np.linalg.norm(fe - ft) / den)


def ssim(estimate, truth, *, mask=None, data_range=None, win_size=7):
    """Structural similarity (scikit-image), mean of the SSIM map over ``mask``.

    Parameters
    ----------
    estimate, truth : ndarray, shape (X, Y, Z)
        Susceptibility maps (ppm); both are set to 0 outside ``mask``.
    mask : ndarray of bool, shape (X, Y, Z), optional
        Region over which the SSIM map is averaged (default everything).
    data_range : float, optional
        Dynamic range used in SSIM's stabilising constants (ppm): default
        ``max(truth[mask]) − min(truth[mask])``. Results depend on it; state it with the number.
    win_size : int
        Side of the uniform window (voxels, odd).

    Returns
    -------
    float
        Mean SSIM in the mask (1 is perfect).
    """
    from skimage.metrics import structural_similarity

    e, t, m = _prep(estimate, truth, mask)
    if data_range is None:
        data_range = float(t[m].max() - t[m].min())
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range!r}")
    _, smap = structural_similarity(np.where(m, t, 0.0), np.where(m, e, 0.0), data_range=float(data_range),
                                    win_size=int(win_size), full=True)
    return float(smap[m].mean())


def label_errors(estimate, truth, labels, *, names=None, mask=None):
    """Mean χ per structure and its error (ppb).

    Parameters
    ----------
    estimate, truth : ndarray, shape (X, Y, Z)
        Susceptibility maps (ppm).
    labels : ndarray of int, shape (X, Y, Z)
        Structure labels; 0 is background and skipped.
    names : mapping of int to str, optional
        Structure name per label (default ``"label_<n>"``).
    mask : ndarray of bool, shape (X, Y, Z), optional
        Only voxels inside it count.

    Returns
    -------
    pandas.DataFrame
        One row per label present: ``label``, ``structure``, ``n_voxels``, ``truth_ppb``,
        ``estimate_ppb``, ``error_ppb`` (= estimate − truth, ppb).
    """
    e, t, m = _prep(estimate, truth, mask)
    lab = np.asarray(labels)
    if lab.shape != t.shape:
        raise ValueError(f"labels shape {lab.shape} does not match truth shape {t.shape}")
    names = dict(names or {})
    rows = []
    for v in np.unique(lab[m]):
        if v == 0:
            continue
        sel = (lab == v) & m
        te, ee = t[sel].mean() * 1000.0, e[sel].mean() * 1000.0
        rows.append({"label": int(v), "structure": names.get(int(v), f"label_{int(v)}"),
                     "n_voxels": int(sel.sum()), "truth_ppb": te, "estimate_ppb": ee, "error_ppb": ee - te})
    return pd.DataFrame(rows, columns=["label", "structure", "n_voxels", "truth_ppb", "estimate_ppb", "error_ppb"])


def accuracy_table(estimates, truth, *, mask, labels=None, names=None, data_range=None):
    """Tidy accuracy table of several reconstructions against one truth.

    Parameters
    ----------
    estimates : mapping of str to ndarray, shape (X, Y, Z)
        Method name -> χ map (ppm).
    truth : ndarray, shape (X, Y, Z)
        True χ (ppm).
    mask : ndarray of bool, shape (X, Y, Z)
        Brain mask.
    labels, names : optional
        Structure labels and names for per-structure mean errors (see :func:`label_errors`).
    data_range : float, optional
        SSIM data range (ppm), see :func:`ssim`.

    Returns
    -------
    pandas.DataFrame
        Columns ``method``, ``metric`` (``NRMSE``, ``HFEN``, ``SSIM``, ``mean_error``),
        ``structure`` (``brain`` for whole-mask metrics), ``value``, ``unit`` (``%``, ``1``,
        ``ppb``).
    """
    if not isinstance(estimates, Mapping) or not estimates:
        raise ValueError("estimates must be a non-empty mapping of method name to chi map")
    rows = []
    for meth, est in estimates.items():
        rows.append((meth, "NRMSE", "brain", nrmse(est, truth, mask=mask), "%"))
        rows.append((meth, "HFEN", "brain", hfen(est, truth, mask=mask), "%"))
        rows.append((meth, "SSIM", "brain", ssim(est, truth, mask=mask, data_range=data_range), "1"))
        if labels is not None:
            tab = label_errors(est, truth, labels, names=names, mask=mask)
            for _, r in tab.iterrows():
                rows.append((meth, "mean_error", r["structure"], float(r["error_ppb"]), "ppb"))
    return pd.DataFrame(rows, columns=["method", "metric", "structure", "value", "unit"])


def _slug(name):
    return "".join(c if c.isalnum() else "_" for c in str(name).lower()).strip("_")


def qsm_accuracy_table(estimates, truth, *, mask, labels, structures=None, reference_labels=CSF_REFERENCE_LABELS,
                       data_range=None):
    """Accuracy of several χ maps against one truth: one row per method, CSF-referenced.

    Every map — and the truth — is first referenced to its own mean over ``reference_labels``
    inside ``mask`` (χ is only defined up to a constant; the compendium's convention is CSF = 0),
    then compared over ``mask``: NRMSE and HFEN (%), SSIM, and, per structure, the mean error
    (estimate − truth, ppb) over the structure's voxels inside ``mask``.

    Parameters
    ----------
    estimates : mapping of str to ndarray, shape (X, Y, Z)
        Method name → χ map (ppm); must be finite inside ``mask``.
    truth : ndarray, shape (X, Y, Z)
        True χ (ppm).
    mask : ndarray of bool, shape (X, Y, Z)
        Evaluation mask, common to all methods (e.g. the intersection of their masks).
    labels : ndarray of int, shape (X, Y, Z)
        Structure labels (truth labels of a phantom).
    structures : mapping of str to sequence of int, optional
        Structure name → label ids; default :data:`QSM_STRUCTURES`.
    reference_labels : sequence of int
        Labels whose mean is the zero of every map (default the lateral ventricles 4/43).
    data_range : float, optional
        SSIM data range (ppm); default the range of the referenced truth in ``mask``.

    Returns
    -------
    pandas.DataFrame
        Columns ``method``, ``n_voxels``, ``nrmse_pct``, ``hfen_pct``, ``ssim``, then
        ``<structure>_error_ppb`` per structure (lower case, non-alphanumerics as ``_``: e.g.
        ``white_matter_error_ppb``); NaN for a structure with no voxel in ``mask``.
    """
    if not isinstance(estimates, Mapping) or not estimates:
        raise ValueError("estimates must be a non-empty mapping of method name to chi map")
    t = np.asarray(truth, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    lab = np.asarray(labels)
    if m.shape != t.shape or lab.shape != t.shape:
        raise ValueError(f"mask {m.shape} and labels {lab.shape} must have the truth's shape {t.shape}")
    if not m.any():
        raise ValueError("mask is empty (no voxel is True)")
    structures = dict(QSM_STRUCTURES if structures is None else structures)
    ref = m & np.isin(lab, reference_labels)
    if not ref.any():
        raise ValueError(f"no voxel of reference_labels {tuple(reference_labels)} inside the mask")
    t_ref = np.where(m, t - t[ref].mean(), 0.0)
    sel = {name: m & np.isin(lab, ids) for name, ids in structures.items()}
    rows = []
    for meth, est in estimates.items():
        e = np.asarray(est, dtype=np.float64)
        if e.shape != t.shape:
            raise ValueError(f"estimate {meth!r} has shape {e.shape}, expected {t.shape}")
        if not np.all(np.isfinite(e[m])):
            raise ValueError(f"estimate {meth!r} is not finite everywhere in the mask")
        e_ref = np.where(m, e - e[ref].mean(), 0.0)
        row = {"method": str(meth), "n_voxels": int(m.sum()), "nrmse_pct": nrmse(e_ref, t_ref, mask=m),
               "hfen_pct": hfen(e_ref, t_ref, mask=m), "ssim": ssim(e_ref, t_ref, mask=m, data_range=data_range)}
        for name, s in sel.items():
            row[f"{_slug(name)}_error_ppb"] = (float(1000.0 * (e_ref[s].mean() - t_ref[s].mean())) if s.any()
                                               else float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)
