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

QSM reconstruction challenge 2.0 metrics (Bilgic et al. 2021; XSIM: Milovic et al. 2022/2024)
---------------------------------------------------------------------------------------------
* :func:`challenge_rmse` — the challenge's **RMSE** (%): both maps demeaned over the mask, then
  ``100 ‖e − t‖₂ / ‖t‖₂`` (``compute_rmse_detrend``); ``detrend=True`` gives **dRMSE**, the same
  after undoing a least-squares line ``e ≈ a t + b`` (``(e − b)/a``), which forgives a global
  under-estimation by regularisation.
* :func:`hfen` — as above (the 2016 challenge's ``compute_hfen``); ``convention="qsm-ci"`` gives
  QSM-CI's variant (scipy ``gaussian_laplace``, σ 1.5, reflecting edges, norms over the mask).
* :func:`xsim` — **XSIM**, the challenge's SSIM for QSM (``compute_xsim`` v2.0, Milovic 2022):
  maps in ppm, *not* rescaled; data range L = 1 ppm; K1 = 0.01, K2 = 0.001 (C1 = 1e-4,
  C2 = 1e-6 ppm²); local statistics with a Gaussian window of σ = 1.5 voxels on a 7×7×7 support
  (MATLAB ``imgaussfilt3(·, 1.5, 'FilterSize', 7)``, replicated edges); the SSIM map is averaged
  over the mask. ``window="box"`` gives QSM-CI's / QSM.rs's variant (5×5×5 uniform window,
  truncated at the array edges).
* :func:`dgm_slope` — the **RC2 deep-grey-matter slope**: least-squares slope of the mean χ of
  deep-grey-matter ROIs, reconstruction (y) against truth (x); the challenge reports
  ``|1 − slope|``. The challenge's six ROIs (caudate, globus pallidus, putamen, red nucleus,
  dentate nucleus, substantia nigra) are not all in the FreeSurfer anatomy of the head phantom:
  :data:`DGM_ROIS` uses the eight it has — caudate, putamen, pallidum, thalamus, left and right
  separately (thalamus is a "tissue" ROI in the challenge but is the compendium's VOI).
* :func:`challenge_metrics` / :func:`challenge_metrics_table` — all of them at once.

Masking: the challenge scores masked maps, so every challenge metric first sets both maps to 0
outside the mask (this matters for the filtered metrics, HFEN and XSIM, near the mask edge).
``tests/imaging/test_metrics_challenge.py`` cross-checks each metric against QSM-CI's scorer
(``qsm_ci.qsm_eval``, an independent port of the QSM.rs reference implementation) and against
independent formulas.

All maps are arrays of shape (X, Y, Z) in ppm.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.imaging.labels import (
    CAUDATE,
    CEREBRAL_WHITE_MATTER,
    LATERAL_VENTRICLES,
    PALLIDUM,
    PUTAMEN,
    THALAMUS,
    VENTRICULAR_CSF,
)

__all__ = ["nrmse", "hfen", "ssim", "log_kernel", "label_errors", "accuracy_table", "QSM_STRUCTURES",
           "CSF_REFERENCE_LABELS", "qsm_accuracy_table", "challenge_rmse", "xsim", "dgm_slope", "DGM_ROIS",
           "XSIM_DATA_RANGE_PPM", "XSIM_K", "challenge_metrics", "challenge_metrics_table"]

#: Structures of :func:`qsm_accuracy_table`: name → label ids (FreeSurfer aseg ids, and the
#: head phantom's vein ids 901-905), left and right pooled.
QSM_STRUCTURES = {
    "thalamus": THALAMUS,
    "caudate": CAUDATE,
    "putamen": PUTAMEN,
    "pallidum": PALLIDUM,
    "white matter": CEREBRAL_WHITE_MATTER,
    "CSF": VENTRICULAR_CSF,
    "veins": (901, 902, 903, 904, 905, 906, 907, 908),  # the phantom's veins (906-908: realistic mode only)
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


def hfen(estimate, truth, *, mask=None, sigma=1.5, size=15, convention="challenge2016"):
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
        Kernel support (voxels per axis), 15 (``convention="challenge2016"`` only).
    convention : {"challenge2016", "qsm-ci"}
        ``"challenge2016"`` (default): the 2016 challenge's ``compute_hfen`` — MATLAB
        ``fspecial``-style LoG on a ``size``³ support (:func:`log_kernel`), zero padding, norms
        over the whole volume. ``"qsm-ci"``: QSM-CI's scorer — :func:`scipy.ndimage.gaussian_laplace`
        (σ, truncated at 5 σ, reflecting edges), norms over the mask only. The two differ by a few
        per cent (a different discrete LoG).

    Returns
    -------
    float
        ``100 · ‖LoG⊛e − LoG⊛t‖ / ‖LoG⊛t‖`` (over the whole volume, or the mask for ``"qsm-ci"``).
    """
    e, t, m = _prep(estimate, truth, mask)
    if convention == "qsm-ci":
        from scipy.ndimage import gaussian_laplace

        fe = gaussian_laplace(np.where(m, e, 0.0), sigma=sigma, truncate=5.0)
        ft = gaussian_laplace(np.where(m, t, 0.0), sigma=sigma, truncate=5.0)
        fe, ft = fe[m], ft[m]
    elif convention == "challenge2016":
        from scipy.signal import fftconvolve

        k = log_kernel(sigma=sigma, size=size)
        fe = fftconvolve(np.where(m, e, 0.0), k, mode="same")
        ft = fftconvolve(np.where(m, t, 0.0), k, mode="same")
    else:
        raise ValueError(f"convention must be 'challenge2016' or 'qsm-ci', got {convention!r}")
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


# --- QSM reconstruction challenge 2.0 metrics -------------------------------------------------------

#: XSIM's data range L (ppm): the maps are compared in ppm, not rescaled (Milovic et al.).
XSIM_DATA_RANGE_PPM = 1.0
#: XSIM's (K1, K2): C1 = (K1 L)², C2 = (K2 L)². K2 = 0.001 (SSIM: 0.03) makes it sensitive to streaking.
XSIM_K = (0.01, 0.001)

#: Deep-grey-matter ROIs of :func:`dgm_slope`: name → label ids (FreeSurfer aseg), one ROI per
#: hemisphere and structure. (The QSM challenge 2.0 uses caudate, globus pallidus, putamen, red
#: nucleus, dentate nucleus and substantia nigra; the phantom's anatomy has the first three, and
#: the thalamus, the compendium's volume of interest, is added.)
DGM_ROIS = {
    "Left-Caudate": (11,), "Right-Caudate": (50,),
    "Left-Putamen": (12,), "Right-Putamen": (51,),
    "Left-Pallidum": (13,), "Right-Pallidum": (52,),
    "Left-Thalamus": (10,), "Right-Thalamus": (49,),
}


def challenge_rmse(estimate, truth, *, mask=None, detrend=False):
    """The QSM challenge 2.0 RMSE (%): NRMSE of the maps demeaned over ``mask``.

    Parameters
    ----------
    estimate, truth : ndarray, shape (X, Y, Z)
        Reconstruction and true χ (ppm).
    mask : ndarray of bool, optional
        Evaluation mask (default everything).
    detrend : bool
        dRMSE: fit ``e ≈ a t + b`` by least squares (demeaned values in the mask) and compare
        ``(e − b) / a`` with ``t`` instead of ``e``.

    Returns
    -------
    float
        ``100 ‖ê − t̂‖₂ / ‖t̂‖₂`` with ``ê, t̂`` the demeaned (and, with ``detrend``, corrected) values.
    """
    e, t, m = _prep(estimate, truth, mask)
    ev, tv = e[m] - e[m].mean(), t[m] - t[m].mean()
    den = np.linalg.norm(tv)
    if den == 0:
        raise ValueError("truth is constant in the mask: RMSE undefined")
    if detrend:
        slope, intercept = np.polyfit(tv, ev, 1)
        if slope == 0:
            raise ValueError("the reconstruction does not depend on the truth (slope 0): dRMSE undefined")
        ev = (ev - intercept) / slope
    return float(100.0 * np.linalg.norm(ev - tv) / den)


def _local_means(x, window, sigma, radius, box_size):
    """Windowed local mean of ``x`` for :func:`xsim`."""
    from scipy import ndimage

    if window == "gaussian":
        return ndimage.gaussian_filter(x, sigma=sigma, radius=radius, mode="nearest")
    ones = np.ones(x.shape)
    count = ndimage.uniform_filter(ones, size=box_size, mode="constant", cval=0.0)
    return ndimage.uniform_filter(x, size=box_size, mode="constant", cval=0.0) / count


def xsim(estimate, truth, *, mask=None, window="gaussian", sigma=1.5, radius=3, box_size=5, full=False):
    """XSIM: the structural similarity index of the QSM challenge 2.0 tools (Milovic et al.).

    Parameters
    ----------
    estimate, truth : ndarray, shape (X, Y, Z)
        Reconstruction and true χ (**ppm**: the constants assume L = 1 ppm); both are set to 0
        outside ``mask`` first.
    mask : ndarray of bool, optional
        Region over which the XSIM map is averaged (default everything).
    window : {"gaussian", "box"}
        ``"gaussian"`` (default, ``compute_xsim`` v2.0): Gaussian weights of ``sigma`` voxels on a
        ``2·radius + 1`` support per axis, normalised, replicated edges. ``"box"`` (QSM-CI /
        QSM.rs): uniform ``box_size``³ window, truncated at the array edges (only the in-bounds
        voxels are averaged).
    sigma, radius : float, int
        Gaussian window (voxels): σ 1.5 on a 7-voxel support by default.
    box_size : int
        Side of the uniform window (voxels).
    full : bool
        Also return the XSIM map.

    Returns
    -------
    float, or (float, ndarray)
        Mean of ``(2 μe μt + C1)(2 σet + C2) / ((μe² + μt² + C1)(σe² + σt² + C2))`` over the
        mask, with C1 = (0.01 · 1 ppm)², C2 = (0.001 · 1 ppm)²; 1 is perfect.
    """
    if window not in ("gaussian", "box"):
        raise ValueError(f"window must be 'gaussian' or 'box', got {window!r}")
    if window == "gaussian" and (not sigma > 0 or int(radius) < 1):
        raise ValueError(f"sigma must be > 0 and radius >= 1, got sigma={sigma!r}, radius={radius!r}")
    if window == "box" and (int(box_size) < 1 or int(box_size) % 2 == 0):
        raise ValueError(f"box_size must be a positive odd integer, got {box_size!r}")
    e, t, m = _prep(estimate, truth, mask)
    e, t = np.where(m, e, 0.0), np.where(m, t, 0.0)
    c1 = (XSIM_K[0] * XSIM_DATA_RANGE_PPM) ** 2
    c2 = (XSIM_K[1] * XSIM_DATA_RANGE_PPM) ** 2
    args = (window, float(sigma), int(radius), int(box_size))
    mu_e, mu_t = _local_means(e, *args), _local_means(t, *args)
    var_e = _local_means(e * e, *args) - mu_e * mu_e
    var_t = _local_means(t * t, *args) - mu_t * mu_t
    cov = _local_means(e * t, *args) - mu_e * mu_t
    smap = ((2.0 * mu_e * mu_t + c1) * (2.0 * cov + c2)) / ((mu_e ** 2 + mu_t ** 2 + c1) * (var_e + var_t + c2))
    value = float(smap[m].mean())
    return (value, smap) if full else value


def dgm_slope(estimate, truth, labels, *, rois=None, mask=None, min_voxels=1):
    """The RC2 deep-grey-matter slope: regression of ROI-mean χ, reconstruction on truth.

    Parameters
    ----------
    estimate, truth : ndarray, shape (X, Y, Z)
        Reconstruction and true χ (ppm). No referencing is needed: the slope ignores offsets.
    labels : ndarray of int, shape (X, Y, Z)
        Label image (e.g. a phantom's truth labels).
    rois : mapping of str to sequence of int, optional
        ROI name → label ids; default :data:`DGM_ROIS` (caudate, putamen, pallidum, thalamus,
        left and right).
    mask : ndarray of bool, optional
        Only ROI voxels inside it count.
    min_voxels : int
        ROIs with fewer voxels are skipped.

    Returns
    -------
    dict
        ``slope`` and ``intercept`` of the least-squares line ``mean_e = slope · mean_t +
        intercept`` (ppm), ``slope_error`` = ``|1 − slope|`` (the challenge's "DGM slope error"),
        ``n_rois``, and ``rois``: a :class:`pandas.DataFrame` (``roi``, ``n_voxels``,
        ``truth_ppb``, ``estimate_ppb``).
    """
    e, t, m = _prep(estimate, truth, mask)
    lab = np.asarray(labels)
    if lab.shape != t.shape:
        raise ValueError(f"labels shape {lab.shape} does not match truth shape {t.shape}")
    rows = []
    for name, ids in dict(DGM_ROIS if rois is None else rois).items():
        sel = m & np.isin(lab, np.atleast_1d(ids))
        n = int(sel.sum())
        if n >= max(int(min_voxels), 1):
            rows.append({"roi": str(name), "n_voxels": n, "truth_ppb": 1000.0 * t[sel].mean(),
                         "estimate_ppb": 1000.0 * e[sel].mean()})
    table = pd.DataFrame(rows, columns=["roi", "n_voxels", "truth_ppb", "estimate_ppb"])
    if len(table) < 2 or np.ptp(table["truth_ppb"].to_numpy()) == 0:
        raise ValueError("the DGM slope needs at least two ROIs with different true means")
    slope, intercept = np.polyfit(table["truth_ppb"].to_numpy() / 1000.0, table["estimate_ppb"].to_numpy() / 1000.0, 1)
    return {"slope": float(slope), "intercept": float(intercept), "slope_error": float(abs(1.0 - slope)),
            "n_rois": int(len(table)), "rois": table}


def challenge_metrics(estimate, truth, *, mask, labels=None, rois=None):
    """All QSM challenge 2.0 style metrics of one reconstruction (see the module docstring).

    Returns
    -------
    dict
        ``rmse_pct``, ``drmse_pct`` (detrended), ``hfen_pct`` (2016 convention), ``xsim``, and,
        with ``labels``, ``dgm_slope`` and ``dgm_slope_error``.
    """
    out = {"rmse_pct": challenge_rmse(estimate, truth, mask=mask),
           "drmse_pct": challenge_rmse(estimate, truth, mask=mask, detrend=True),
           "hfen_pct": hfen(estimate, truth, mask=mask),
           "xsim": xsim(estimate, truth, mask=mask)}
    if labels is not None:
        d = dgm_slope(estimate, truth, labels, rois=rois, mask=mask)
        out["dgm_slope"], out["dgm_slope_error"] = d["slope"], d["slope_error"]
    return out


def challenge_metrics_table(estimates, truth, *, mask, labels=None, rois=None):
    """:func:`challenge_metrics` of several reconstructions, one row per method (column ``method``)."""
    if not isinstance(estimates, Mapping) or not estimates:
        raise ValueError("estimates must be a non-empty mapping of method name to chi map")
    return pd.DataFrame([{"method": str(k), **challenge_metrics(v, truth, mask=mask, labels=labels, rois=rois)}
                         for k, v in estimates.items()])
