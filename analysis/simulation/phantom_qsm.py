"""The head phantom as a QSM subject: its images, a simulated reconstruction, its truth, ROI scores.

For the ROI notebook, the QSM notebook and the imaging cohort:
:func:`phantom_images` (true χ, aseg, synthetic FLAIR/T1, lesion mask as NIfTI),
:func:`reconstruct_phantom` (simulated 3 T MEGRE acquisition → χ map),
:func:`invert_ideal_background` (diagnostic inversion with the true background field removed),
:func:`true_thalamic_susceptibility` (the truth), :func:`vein_detection_scores` (excluded voxels
vs the phantom's veins), :func:`phantom_roi_table` (measured vs true relative susceptibility,
with and without vein exclusion) and :func:`phantom_qsm_accuracy` (whole-brain and ROI accuracy
of several χ maps). For the QSM notebook's step-by-step checks against the truth:
:func:`label_composition` (truth labels under a mask), :func:`mask_and_field_agreement` (computed
brain mask and total field vs the phantom's), :func:`local_field_errors` (background removal vs
the true local field) and :func:`ventricle_referenced` (a χ map with the lateral ventricles as zero).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from analysis.imaging.labels import LATERAL_VENTRICLES, THALAMUS
from analysis.imaging.metrics import qsm_accuracy_table
from analysis.imaging.qsm import erode_mm, medi
from analysis.imaging.qsm.pipeline import medi_noise_std, reconstruct_megre
from analysis.imaging.qsm.recipes import complete_recipe
from analysis.imaging.roi import thalamic_susceptibility
from analysis.simulation.acquisition import simulate_megre, simulation_seed
from analysis.simulation.anatomy import synthetic_flair, synthetic_t1
from analysis.simulation.phantom import label_names

__all__ = [
    "PHANTOM_LAMBDA", "ROI_TABLE_COLUMNS", "phantom_images", "reconstruct_phantom", "invert_ideal_background",
    "true_thalamic_susceptibility", "vein_detection_scores", "phantom_roi_table", "phantom_qsm_accuracy",
    "label_composition", "mask_and_field_agreement", "local_field_errors", "ventricle_referenced",
]


def phantom_images(phantom):
    """The phantom's images as NIfTI (all on the phantom grid, in its world space).

    Returns
    -------
    dict of str -> nibabel.Nifti1Image
        ``chi`` (true χ, ppm, float32, NaN outside the brain mask, as a QSM map is only
        defined in the brain), ``aseg`` (int32), ``flair`` and ``t1`` (synthetic, uint8),
        ``lesions`` and ``brain_mask`` (uint8).
    """
    aff = phantom.affine
    chi = np.where(phantom.brain_mask, phantom.chi_ppm, np.nan).astype(np.float32)
    return {
        "chi": nib.Nifti1Image(chi, aff),
        "aseg": nib.Nifti1Image(np.asarray(phantom.aseg, np.int32), aff),
        "flair": synthetic_flair(phantom),
        "t1": synthetic_t1(phantom),
        "lesions": nib.Nifti1Image(np.asarray(phantom.lesion_mask, np.uint8), aff),
        "brain_mask": nib.Nifti1Image(np.asarray(phantom.brain_mask, np.uint8), aff),
    }


#: Data weight λ of MEDI in :func:`reconstruct_phantom`'s default recipe (see its Notes).
PHANTOM_LAMBDA = 2000.0


def reconstruct_phantom(phantom, *, snr=100.0, seed=0, background="pdf",
                        vsharp_max_radius_mm=25.0, method="medi0", lambda_=PHANTOM_LAMBDA, progress=False,
                        smv_radius_mm=None, merit=None, solver="admm"):
    """Simulate the phantom's multi-echo GRE acquisition and reconstruct its χ map.

    The phantom's own brain mask is used (:func:`analysis.imaging.qsm.pipeline.reconstruct_megre` with
    ``mask=phantom.brain_mask``), as a brain extraction would give on real data; for
    ``method='medi0'`` the CSF mask comes from R2* of the simulated echoes, as on real data (see
    Notes for why not the ventricle labels).

    The default is the MEDI toolbox's whole-brain recipe (``MEDI_full_process``): PDF background
    removal, then MEDI+0 (CSF regularisation and zero reference) with the SMV high-pass and
    MERIT — with the nested SMV passes of the default CLI recipe (5 mm, inside passes of 30, 20
    and 10 mm for the deeper brain) and λ = 2000 (see Notes).

    Parameters
    ----------
    phantom : analysis.simulation.phantom.HeadPhantom
    snr : float or None
        First-echo SNR in the brain (:func:`analysis.simulation.acquisition.simulate_megre`).
    seed : int
        Phantom seed; the acquisition uses :func:`analysis.simulation.acquisition.simulation_seed` of it.
    background : {'pdf', 'vsharp', 'none'}
        Background field removal (default PDF).
    vsharp_max_radius_mm : float
        Largest V-SHARP sphere (mm), for ``background='vsharp'``; radii go down to one voxel in
        one-voxel steps (:func:`analysis.imaging.qsm.recipes.vsharp_radii_mm`). (The pipeline's
        default is 12 mm; 25 mm gave the lower whole-brain error with V-SHARP on the phantom.)
    method : {'medi0', 'medi', 'tkd'}
        Dipole inversion (default MEDI+0).
    lambda_ : float or "auto"
        MEDI data weight (field in radians; default :data:`PHANTOM_LAMBDA` = 2000, the toolbox's
        default is 1000; ``"auto"``: chosen from the local field).
    progress : bool
        Progress bars.
    smv_radius_mm : float, optional
        MEDI's SMV high-pass radius (mm). Default (None): the rule of
        :func:`analysis.imaging.qsm.recipes.complete_recipe` — the nested passes of ``"auto"``
        after PDF or no background removal, none after V-SHARP (whose local field is already high-passed) or for TKD; 0
        switches it off.
    merit : bool, optional
        MEDI's MERIT reweighting. Default (None): on whenever the SMV high-pass is.
    solver : {'admm', 'gncg'}
        MEDI's solver (:func:`analysis.imaging.qsm.medi`): ADMM (default) or the toolbox's
        Gauss–Newton scheme; at λ 2000 both give the same accuracy on the phantom (see
        ``benchmarks/bench_solvers.py``), ADMM in a fraction of the time.

    Returns
    -------
    chi_img : nibabel.Nifti1Image
        χ (ppm, float32), NaN outside the reconstruction's mask (eroded by the SMV radius or by
        V-SHARP).
    recon : dict
        The output of ``reconstruct_megre``.
    sim : analysis.simulation.acquisition.MegreSimulation

    Notes
    -----
    Relative thalamic susceptibility (thalamus − atrial CSF, veins excluded,
    :func:`analysis.imaging.roi.thalamic_susceptibility`) of the 2 mm phantom at SNR 100, error of
    the reconstruction in ppb (the measure on the map minus the same measure on the true map;
    :func:`phantom_qsm_accuracy`'s ``thalamus_reconstruction_error_ppb``):

    ==========================================================  =================  ==============
    recipe (PDF 30 iterations, MEDI+0, MERIT, λ 2000)           simple (seeds      realistic
                                                                20180301, 1, 2)    (20180301, 1)
    ==========================================================  =================  ==============
    SMV 5 mm, CSF mask = the lateral ventricles (the former)    −1.5 … −1.7        −13.9 (seed 0)
    SMV 5 mm, CSF mask from R2* (all CSF)                       −0.7 (seed 0)      −5.8 (seed 0)
    SMV 10 mm then 5 mm, CSF mask from R2* (the former)         −0.36 … −0.49      −0.2, −2.0
    SMV 30, 20, 10, 5 mm, CSF mask from R2* (default)           −0.33 … −0.47      +1.1, −0.9
    ==========================================================  =================  ==============

    MEDI+0's CSF term holds χ uniform over the CSF mask. A mask that spans the brain (the R2*
    mask takes the ventricles *and* the sulcal and outer CSF) pins the low spatial frequencies
    that the SMV high-pass leaves to the regulariser; the ventricles alone pin one place, and on
    the realistic phantom, whose χ varies smoothly inside structures, the deep grey matter then
    lost 14 ppb (the ventricles eroded by a voxel, with no partial volume left: 12 ppb). The
    realistic phantom's measure on its true map is itself 3.1–3.4 ppb below the label means
    (veins and partial volume); the reconstruction error above excludes it. λ = 2000 minimised
    the whole-brain NRMSE over the brain eroded by 5 mm at SNR 100 (19.2 % vs 21.0 % at λ 1000
    and 20.4 % at λ 4000 for seed 20180301, with the former recipe); ``lambda_="auto"`` gives
    within 1 % NRMSE of it and the same thalamic errors within 0.2 ppb.
    """
    kw = complete_recipe(background=background, method=method, lambda_=lambda_,
                         voxel_size_mm=phantom.voxel_size_mm, vsharp_max_radius_mm=vsharp_max_radius_mm,
                         smv_radius_mm=smv_radius_mm, merit=merit, solver=solver)
    sim = simulate_megre(phantom, snr=snr, seed=simulation_seed(seed))
    rec = reconstruct_megre(sim.magnitude, sim.phase, sim.echo_times_s,
                            voxel_size_mm=sim.voxel_size_mm, b0_tesla=sim.b0_tesla,
                            b0_direction=sim.b0_direction, mask=phantom.brain_mask, progress=progress, **kw)
    chi = np.where(rec["mask"], rec["chi_ppm"], np.nan).astype(np.float32)
    return nib.Nifti1Image(chi, phantom.affine), rec, sim


def invert_ideal_background(phantom, sim, recon):
    """Diagnostic: MEDI on the reconstruction's own field with the *true* background removed.

    The fitted, unwrapped total field of ``recon`` minus the simulation's true background field
    (and minus the constant offset of the fit, taken against the truth), inverted with the same
    MEDI settings (λ, SMV radius, MERIT, CSF mask and the other scalar options), noise weights
    and magnitude on the phantom's brain mask. Comparing it with ``recon`` isolates the error of
    the background-removal step from that of noise, field fit and dipole inversion.

    Returns
    -------
    nibabel.Nifti1Image
        χ (ppm), NaN outside the inversion's mask (the brain mask, eroded by the SMV radius if
        the reconstruction used one).
    """
    mask = np.asarray(phantom.brain_mask, bool)
    total = np.asarray(recon["total_field_ppm"], np.float64)
    offset = float(np.median((total - sim.total_field_ppm)[mask]))
    local = np.where(mask, total - offset - sim.background_field_ppm, 0.0).astype(np.float32)
    noise = medi_noise_std(recon["noise_std_rad"], mask)
    params = recon["parameters"]
    lam = params.get("lambda") or 1000.0
    options = {k: v for k, v in params.get("options", {}).items()
               if k in ("smv_radius_mm", "merit", "percentage", "lambda_csf", "max_iter", "cg_max_iter",
                        "tol_norm_ratio", "cg_tol", "epsilon", "zero_reference", "solver") and v is not None}
    csf = recon.get("csf_mask")
    chi, info = medi(local, mask, recon["magnitude"], voxel_size=sim.voxel_size_mm, noise_std=noise,
                     b0_direction=sim.b0_direction, lambda_=lam, delta_te_s=recon["delta_te_s"],
                     b0_tesla=sim.b0_tesla, csf_mask=None if csf is None else csf & mask,
                     return_info=True, **options)
    return nib.Nifti1Image(np.where(info["mask"], chi, np.nan).astype(np.float32), phantom.affine)


def true_thalamic_susceptibility(phantom):
    """The truth the ROI measurement aims at, from the phantom's truth labels.

    Returns
    -------
    dict
        ``thalamus_ppb`` (mean true χ of the thalamic tissue, labels 10/49, veins not included),
        ``csf_reference_ppb`` (mean true χ of the lateral ventricles 4/43) and
        ``relative_ppb`` (thalamus − CSF).
    """
    chi = np.asarray(phantom.chi_ppm, np.float64)
    labels = np.asarray(phantom.labels)
    thal = float(chi[np.isin(labels, THALAMUS)].mean()) * 1000.0
    csf = float(chi[np.isin(labels, LATERAL_VENTRICLES)].mean()) * 1000.0
    return {"thalamus_ppb": thal, "csf_reference_ppb": csf, "relative_ppb": thal - csf}


def vein_detection_scores(rois, phantom):
    """How well the automatic vein exclusion found the phantom's true veins inside the VOI.

    Parameters
    ----------
    rois : analysis.imaging.roi.ThalamicROIs
        Built with ``exclude_veins=True`` on a χ map on the phantom grid.
    phantom : analysis.simulation.phantom.HeadPhantom

    Returns
    -------
    dict
        ``n_true_vein_voxels`` (true vein voxels inside the VOI), ``n_excluded``,
        ``sensitivity`` (fraction of those excluded), ``precision`` (fraction of excluded voxels
        that are vein), ``rim_precision`` (fraction of excluded voxels that are vein or share a
        face with a vein voxel: the partial-volume rim the one-voxel dilation is meant to
        remove).
    """
    voi = rois.thalamus(exclude_veins=False)
    excluded = rois.vein()
    vein = np.asarray(phantom.vein_mask, bool)
    if vein.shape != voi.shape:
        raise ValueError(f"ROIs on grid {voi.shape}, phantom on {vein.shape}: not the same grid")
    truth = vein & voi
    rim = ndimage.binary_dilation(vein)
    n_ex = int(excluded.sum())
    return {
        "n_true_vein_voxels": int(truth.sum()),
        "n_excluded": n_ex,
        "sensitivity": float((excluded & truth).sum() / truth.sum()) if truth.any() else float("nan"),
        "precision": float((excluded & vein).sum() / n_ex) if n_ex else float("nan"),
        "rim_precision": float((excluded & rim).sum() / n_ex) if n_ex else float("nan"),
    }


#: Columns of the ROI table written by the ROI notebook (``results/tables/roi_phantom.csv``).
ROI_TABLE_COLUMNS = ("map", "exclude_veins", "thalamus_ppb", "csf_reference_ppb", "relative_ppb",
                     "true_relative_ppb", "error_ppb", "n_voxels", "n_vein_voxels_excluded",
                     "true_thalamus_ppb", "vein_sensitivity", "vein_precision",
                     "vein_rim_precision")


def phantom_roi_table(chi_maps, phantom, **roi_options):
    """Relative thalamic susceptibility of several χ maps of the phantom, with and without veins.

    Parameters
    ----------
    chi_maps : dict of str -> nibabel image
        χ maps (ppm) on the phantom grid, e.g. ``{"true": ..., "reconstructed": ...}``.
    phantom : analysis.simulation.phantom.HeadPhantom
        Its ``aseg`` is the segmentation (thalamus label on the vein voxels, as FreeSurfer
        would draw it); its truth labels give the true values.
    **roi_options
        Passed to :func:`analysis.imaging.roi.thalamic_susceptibility`.

    Returns
    -------
    table : pandas.DataFrame
        One row per map and ``exclude_veins`` (True, False), columns :data:`ROI_TABLE_COLUMNS`;
        ``error_ppb`` = ``relative_ppb`` − ``true_relative_ppb``; vein scores only for rows with
        exclusion.
    rois : dict of (str, bool) -> analysis.imaging.roi.ThalamicROIs
    """
    aseg = nib.Nifti1Image(np.asarray(phantom.aseg, np.int32), phantom.affine)
    truth = true_thalamic_susceptibility(phantom)
    rows, rois = [], {}
    for name, img in chi_maps.items():
        for exclude in (True, False):
            r = thalamic_susceptibility(img, aseg, exclude_veins=exclude, return_rois=True,
                                        **roi_options)
            rois[(name, exclude)] = r.pop("rois")
            scores = (vein_detection_scores(rois[(name, exclude)], phantom) if exclude
                      else dict.fromkeys(("sensitivity", "precision", "rim_precision"), np.nan))
            rows.append({
                "map": name, "exclude_veins": exclude,
                "thalamus_ppb": r["thalamus_ppb"], "csf_reference_ppb": r["csf_reference_ppb"],
                "relative_ppb": r["relative_ppb"], "true_relative_ppb": truth["relative_ppb"],
                "error_ppb": r["relative_ppb"] - truth["relative_ppb"],
                "n_voxels": r["n_voxels"], "n_vein_voxels_excluded": r["n_vein_voxels_excluded"],
                "true_thalamus_ppb": truth["thalamus_ppb"],
                "vein_sensitivity": scores["sensitivity"], "vein_precision": scores["precision"],
                "vein_rim_precision": scores["rim_precision"],
            })
    return pd.DataFrame(rows, columns=list(ROI_TABLE_COLUMNS)), rois


def phantom_qsm_accuracy(chi_maps, phantom, *, mask=None, **roi_options):
    """Accuracy of χ maps of the phantom: whole-brain metrics, structure errors, thalamic ROI error.

    Parameters
    ----------
    chi_maps : mapping of str to (ndarray, ndarray of bool)
        Method name → (χ (ppm), shape ``phantom.shape``; the mask where it is defined).
    phantom : analysis.simulation.phantom.HeadPhantom
    mask : ndarray of bool, optional
        Evaluation mask; default the phantom's brain mask intersected with every map's mask, so
        that all methods are compared on the same voxels.
    **roi_options
        Passed to :func:`analysis.imaging.roi.thalamic_susceptibility`.

    Returns
    -------
    pandas.DataFrame
        One row per method: the columns of :func:`analysis.imaging.metrics.qsm_accuracy_table` (maps
        referenced to the lateral ventricles; NRMSE/HFEN in %, structure errors in ppb) and
        ``thalamus_relative_ppb`` / ``thalamus_relative_error_ppb`` — the paper's measure
        (thalamus − atrial CSF, veins excluded, on the map inside its own mask) and its error
        against :func:`true_thalamic_susceptibility` (ppb); ``thalamus_measured_on_truth_ppb`` —
        the same measure on the *true* χ map inside the same mask, and
        ``thalamus_reconstruction_error_ppb`` — the map's measure minus that one: the error of the
        reconstruction alone. The two errors differ by the measurement's own bias, 0 on the simple
        phantom; on the realistic one (veins, texture and partial volume at the ventricles' and
        thalami's edges) the measure on the true map is 1.6–4.1 ppb below the label means.
    """
    if not isinstance(chi_maps, dict) or not chi_maps:
        raise ValueError("chi_maps must be a non-empty dict of name to (chi_ppm, mask)")
    maps = {}
    for name, value in chi_maps.items():
        if not (isinstance(value, tuple) and len(value) == 2):
            raise ValueError(f"chi_maps[{name!r}] must be a (chi_ppm, mask) pair")
        chi, m = np.asarray(value[0], np.float32), np.asarray(value[1], bool)
        if chi.shape != phantom.shape or m.shape != phantom.shape:
            raise ValueError(f"chi_maps[{name!r}] is not on the phantom grid {phantom.shape}")
        maps[str(name)] = (chi, m)
    if mask is None:
        mask = np.asarray(phantom.brain_mask, bool).copy()
        for _, m in maps.values():
            mask &= m
    table = qsm_accuracy_table({k: v[0] for k, v in maps.items()}, phantom.chi_ppm, mask=mask,
                               labels=phantom.labels)
    imgs = {k: nib.Nifti1Image(np.where(m, chi, np.nan).astype(np.float32), phantom.affine)
            for k, (chi, m) in maps.items()}
    truth = np.asarray(phantom.chi_ppm, np.float32)
    on_truth = {k: f"{k} \N{RIGHTWARDS ARROW} truth" for k in maps}  # the true map through the same measurement
    imgs.update({on_truth[k]: nib.Nifti1Image(np.where(m, truth, np.nan).astype(np.float32), phantom.affine)
                 for k, (_, m) in maps.items()})
    roi_table, _ = phantom_roi_table(imgs, phantom, **roi_options)
    roi_ex = roi_table[roi_table["exclude_veins"]].set_index("map")
    table["thalamus_relative_ppb"] = [float(roi_ex.loc[k, "relative_ppb"]) for k in table["method"]]
    table["thalamus_relative_error_ppb"] = [float(roi_ex.loc[k, "error_ppb"]) for k in table["method"]]
    table["thalamus_measured_on_truth_ppb"] = [float(roi_ex.loc[on_truth[k], "relative_ppb"]) for k in table["method"]]
    table["thalamus_reconstruction_error_ppb"] = (table["thalamus_relative_ppb"]
                                                  - table["thalamus_measured_on_truth_ppb"])
    return table


def _phantom_grid_mask(mask, phantom, what):
    m = np.asarray(mask)
    if m.shape != phantom.shape:
        raise ValueError(f"{what} has shape {m.shape}, not the phantom grid {phantom.shape}")
    return m.astype(bool)


def label_composition(mask, phantom, *, normalize=False):
    """The phantom's truth labels under a mask, by structure name, most frequent first.

    Parameters
    ----------
    mask : ndarray of bool, shape ``phantom.shape``
    phantom : analysis.simulation.phantom.HeadPhantom
    normalize : bool, keyword-only
        Fractions of the mask's voxels instead of counts.

    Returns
    -------
    pandas.Series
        Structure name (:func:`analysis.simulation.phantom.label_names`; the id as text for an
        unnamed label) -> voxel count (or fraction); empty for an empty mask.
    """
    m = _phantom_grid_mask(mask, phantom, "mask")
    names = label_names()
    return pd.Series(phantom.labels[m]).map(lambda k: names.get(int(k), str(k))).value_counts(normalize=normalize)


def mask_and_field_agreement(brain_mask, total_field_ppm, phantom, sim):
    """A reconstruction's brain mask and total field against the phantom's.

    Parameters
    ----------
    brain_mask : ndarray of bool, shape ``phantom.shape``
        The brain mask the pipeline computed.
    total_field_ppm : ndarray, shape ``phantom.shape``
        The unwrapped total field (ppm of B0) the pipeline estimated.
    phantom : analysis.simulation.phantom.HeadPhantom
    sim : analysis.simulation.acquisition.MegreSimulation
        Its ``total_field_ppm`` is the truth.

    Returns
    -------
    dict
        ``dice`` (Dice coefficient of the mask and the phantom's brain), ``n_missed`` (brain
        voxels outside the mask), ``n_extra`` (mask voxels outside the brain),
        ``extra_by_structure`` (the extra voxels by truth label, :func:`label_composition`, as a
        dict), and over the voxels in both: ``field_offset_ppb`` (median of estimate − truth: a
        constant, which no later step sees) and ``field_spread_ppb`` (standard deviation about
        that median).
    """
    bm = _phantom_grid_mask(brain_mask, phantom, "brain_mask")
    tm = np.asarray(phantom.brain_mask, bool)
    field = np.asarray(total_field_ppm)
    if field.shape != phantom.shape:
        raise ValueError(f"total_field_ppm has shape {field.shape}, not the phantom grid {phantom.shape}")
    err = (field - sim.total_field_ppm)[bm & tm]
    return {
        "dice": 2 * (bm & tm).sum() / (bm.sum() + tm.sum()),
        "n_missed": int((tm & ~bm).sum()),
        "n_extra": int((bm & ~tm).sum()),
        "extra_by_structure": label_composition(bm & ~tm, phantom).to_dict(),
        "field_offset_ppb": 1000 * np.median(err),
        "field_spread_ppb": 1000 * np.std(err - np.median(err)),
    }


def local_field_errors(local_fields, sim, phantom, *, mask, erosion_mm=5.0):
    """Local fields from several background removals against the simulation's true local field.

    Parameters
    ----------
    local_fields : dict of str -> (ndarray, ndarray of bool)
        Name (e.g. ``"PDF"``) -> (local field (ppm), the mask where it is defined), on the
        phantom grid.
    sim : analysis.simulation.acquisition.MegreSimulation
        Its ``local_field_ppm`` is the truth.
    phantom : analysis.simulation.phantom.HeadPhantom
    mask : ndarray of bool, keyword-only
        The computed brain mask; the evaluation region is it and the phantom's brain, eroded by
        ``erosion_mm``, where every field is defined (the same voxels for every method).
    erosion_mm : float, keyword-only
        Erosion of the region (mm), default 5: keeps the brain boundary, where every method
        fails differently, out of the comparison.

    Returns
    -------
    pandas.DataFrame
        One row per field: ``background removal``, ``valid voxels`` (its mask),
        ``RMS error, brain eroded <e> mm (ppb)`` (of estimate − truth after removing the mean
        difference, a constant) and ``RMS of the true local field (ppb)`` (its standard
        deviation over the region, for scale).
    """
    if not isinstance(local_fields, dict) or not local_fields:
        raise ValueError("local_fields must be a non-empty dict of name -> (local_field_ppm, mask)")
    bm = _phantom_grid_mask(mask, phantom, "mask")
    inner = erode_mm(np.asarray(phantom.brain_mask, bool) & bm, erosion_mm, voxel_size=phantom.voxel_size_mm)
    for name, value in local_fields.items():
        if not (isinstance(value, tuple) and len(value) == 2):
            raise ValueError(f"local_fields[{name!r}] must be a (local_field_ppm, mask) pair")
        inner &= _phantom_grid_mask(value[1], phantom, f"the mask of local_fields[{name!r}]")
    truth = sim.local_field_ppm
    rows = []
    for name, (f, m) in local_fields.items():
        d = (f - truth)[inner]
        rows.append({"background removal": name, "valid voxels": int(np.asarray(m, bool).sum()),
                     f"RMS error, brain eroded {erosion_mm:g} mm (ppb)": 1000 * np.sqrt(np.mean((d - d.mean()) ** 2)),
                     "RMS of the true local field (ppb)": 1000 * np.std(truth[inner])})
    return pd.DataFrame(rows)


def ventricle_referenced(chi_ppm, mask, phantom):
    """A χ map with the mean over the lateral ventricles as zero (the phantom truth's reference).

    Parameters
    ----------
    chi_ppm : ndarray, shape ``phantom.shape``
    mask : ndarray of bool
        Where ``chi_ppm`` is defined.
    phantom : analysis.simulation.phantom.HeadPhantom
        Its truth labels 4/43 (lateral ventricles) inside ``mask`` are the reference.

    Returns
    -------
    ndarray
        ``chi_ppm`` minus that mean inside ``mask``, 0 outside.

    Raises
    ------
    ValueError
        No lateral-ventricle voxel inside ``mask``.
    """
    m = _phantom_grid_mask(mask, phantom, "mask")
    chi = np.asarray(chi_ppm)
    ref = m & np.isin(phantom.labels, LATERAL_VENTRICLES)
    if not ref.any():
        raise ValueError("no lateral-ventricle voxel inside the mask: nothing to reference to")
    return np.where(m, chi - chi[ref].mean(), 0.0)
