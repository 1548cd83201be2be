"""One simulated subject: cohort row -> head phantom -> simulated acquisition -> χ map -> measured values.

:func:`build_subject_phantom` builds a phantom with the row's thalamic relative susceptibility,
thalamic volume and lesion volume; :func:`measure_cohort_subject` reconstructs its χ map (in
memory or through a BIDS dataset), writes its FreeSurfer-like subject directory and measures it
as a real subject, returning one flat result dict (never raising for a bad subject).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import logging
import platform
import shutil
import tempfile
import time
import traceback as _tb
from pathlib import Path

import nibabel as nib
import numpy as np

from analysis.cohort.subject import measure_subject
from analysis.imaging.freesurfer import load_aseg
from analysis.imaging.labels import LATERAL_VENTRICLES, THALAMUS
from analysis.imaging.metrics import nrmse
from analysis.imaging.qsm.recipes import complete_recipe
from analysis.imaging.reconstruct import reconstruct_dataset
from analysis.imaging.roi import thalamic_susceptibility
from analysis.simulation.acquisition import simulate_megre, simulation_seed
from analysis.simulation.bids_dataset import write_megre_subject
from analysis.simulation.freesurfer_subject import write_phantom_subject
from analysis.simulation.imaging_cohort.settings import (
    RESULT_KEYS,
    SIMULATED_COLUMNS,
    check_subject_id,
    result_fingerprint,
    subject_seed,
    subject_targets,
)
from analysis.simulation.phantom import TISSUES, make_head_phantom
from analysis.simulation.phantom_qsm import reconstruct_phantom, true_thalamic_susceptibility

logger = logging.getLogger(__name__)

__all__ = ["template_thalamic_volume_mm3", "build_subject_phantom", "failed_result", "measure_cohort_subject"]

#: Thalamus scale range accepted by :func:`analysis.simulation.phantom.make_head_phantom`.
_SCALE_RANGE = (0.3, 2.0)
#: Largest lesion volume the phantom builds (mL).
_MAX_LESION_ML = 200.0


def _aseg_thalamus_mm3(phantom):
    voxel_mm3 = float(np.prod(phantom.voxel_size_mm))
    return float(np.count_nonzero(np.isin(phantom.aseg, THALAMUS))) * voxel_mm3


@functools.lru_cache(maxsize=4)
def template_thalamic_volume_mm3(resolution_mm):
    """aseg thalamic volume (left + right, mm³) of the unscaled phantom on a ``resolution_mm`` grid.

    The thalamus scale of a subject starts from ``target / template``. Cached per process.
    """
    ph = make_head_phantom(resolution_mm=float(resolution_mm), seed=0, lesion_volume_ml=0.0)
    return _aseg_thalamus_mm3(ph)


def _csf_reference_chi_ppm():
    return float(np.mean([TISSUES[k].chi_ppm for k in LATERAL_VENTRICLES]))


def build_subject_phantom(*, relative_susceptibility_ppb, thalamic_volume_mm3, t2_lesion_volume_ml,
                          seed, settings):
    """Head phantom whose thalamus − CSF χ, aseg thalamic volume and lesion volume are given.

    Parameters
    ----------
    relative_susceptibility_ppb : float
        Thalamus − CSF (lateral ventricles) true χ (ppb); the thalamic χ is set to this plus the
        ventricles' χ (0 ppm in :data:`analysis.simulation.phantom.TISSUES`). Exact.
    thalamic_volume_mm3 : float
        Left + right aseg thalamus volume on the phantom grid (what FreeSurfer's stats report on
        it). ``thalamus_scale`` starts at target / :func:`template_thalamic_volume_mm3` and is
        refined (a proportional step ``scale · target / achieved``, then secant steps between the
        closest builds on either side) until the relative error is within
        ``settings.volume_tolerance`` (the best of ``settings.max_volume_iterations``
        builds is kept; at 2 mm the aseg thalamus changes in steps of 0.5–1.5 %, so not every
        volume can be reached).
    t2_lesion_volume_ml : float
        Total lesion volume (mL), exact up to one voxel.
    seed : int
        Phantom seed (lesions).
    settings : ImagingSettings

    Returns
    -------
    phantom : analysis.simulation.phantom.HeadPhantom
    info : dict
        ``thalamus_scale``, ``thalamus_chi_ppm``, ``volume_iterations``,
        ``thalamic_volume_mm3`` (achieved).

    Raises
    ------
    ValueError
        Naming the cohort column whose value the phantom cannot reproduce (thalamic volume
        outside the scale range [0.3, 2] × template, lesion volume below one voxel or above
        200 mL).
    """
    res = float(settings.resolution_mm)
    template = template_thalamic_volume_mm3(res)
    target = float(thalamic_volume_mm3)
    scale = target / template
    if not _SCALE_RANGE[0] <= scale <= _SCALE_RANGE[1]:
        raise ValueError(
            f"thalamic_volume_mm3 = {target:g} mm³ needs thalamus_scale = {scale:.3f}, outside the phantom's "
            f"range {list(_SCALE_RANGE)} (template thalamus {template:g} mm³ at {res:g} mm)")
    lesion = float(t2_lesion_volume_ml)
    voxel_ml = res ** 3 / 1000.0
    if not (0.5 * voxel_ml <= lesion <= _MAX_LESION_ML):
        raise ValueError(f"t2_lesion_volume_ml = {lesion:g} mL cannot be built: the phantom needs "
                         f"{0.5 * voxel_ml:g} mL (half a voxel at {res:g} mm) to {_MAX_LESION_ML:g} mL")
    chi = float(relative_susceptibility_ppb) / 1000.0 + _csf_reference_chi_ppm()
    tried, best = [], None          # (scale, achieved volume); best = (error, phantom, scale, volume)
    for _ in range(int(settings.max_volume_iterations)):
        ph = make_head_phantom(resolution_mm=res, seed=int(seed), thalamus_scale=scale,
                               thalamus_chi_ppm=chi, lesion_volume_ml=lesion,
                               n_lesions=int(settings.n_lesions))
        got = _aseg_thalamus_mm3(ph)
        tried.append((scale, got))
        err = abs(got / target - 1.0)
        if best is None or err < best[0]:
            best = (err, ph, scale, got)
        if err <= settings.volume_tolerance:
            break
        below = [p for p in tried if p[1] < target]
        above = [p for p in tried if p[1] > target]
        if below and above:             # secant between the closest builds on either side
            (s0, v0), (s1, v1) = max(below, key=lambda p: p[1]), min(above, key=lambda p: p[1])
            scale = s0 + (target - v0) * (s1 - s0) / (v1 - v0)
        else:                           # proportional step
            scale = scale * target / got
        scale = float(np.clip(scale, *_SCALE_RANGE))
        if any(abs(scale - s) < 1e-4 for s, _ in tried):
            break
    it = len(tried)
    _, ph, scale, got = best
    if settings.realism != "simple":
        # the scale is searched on the simple phantom (its labels are those of the realistic one up to
        # the fine grid's partial volume: thalamus within 0.1 %), then the realistic phantom is built once
        ph = make_head_phantom(resolution_mm=res, seed=int(seed), thalamus_scale=scale, thalamus_chi_ppm=chi,
                               lesion_volume_ml=lesion, n_lesions=int(settings.n_lesions), realism=settings.realism)
        got = _aseg_thalamus_mm3(ph)
    return ph, {"thalamus_scale": float(scale), "thalamus_chi_ppm": chi, "volume_iterations": it,
                "thalamic_volume_mm3": got}


def _reconstruct(phantom, seed, settings, scratch):
    """χ map (nibabel image, ppm, NaN outside the reconstruction mask) and the raw results."""
    if settings.qsm_route == "phantom":
        chi_img, rec, _ = reconstruct_phantom(
            phantom, snr=settings.snr, seed=seed, background=settings.background,
            vsharp_max_radius_mm=settings.vsharp_max_radius_mm, method=settings.method,
            lambda_=settings.lambda_, solver=settings.solver)
        return chi_img, rec["chi_ppm"], rec["mask"]

    # BIDS route: the acquisition as files, reconstructed by the same code as ``python -m analysis qsm``
    bids_dir, qsm_dir = scratch / "bids", scratch / "bids" / "derivatives" / "qsm"
    label = "01"
    sim = simulate_megre(phantom, snr=settings.snr, seed=simulation_seed(seed))
    write_megre_subject(bids_dir, sim, subject=label, phantom=phantom, write_truth_files=True)
    opts = complete_recipe(background=settings.background, method=settings.method, lambda_=settings.lambda_,
                           voxel_size_mm=phantom.voxel_size_mm, vsharp_max_radius_mm=settings.vsharp_max_radius_mm,
                           solver=settings.solver)
    method, lambda_ = opts.pop("method"), opts.pop("lambda_", None)
    reconstruct_dataset(bids_dir, qsm_dir, participant_label=label, recipe="plain", method=method, lambda_=lambda_,
                        brain_mask_dir=bids_dir / "derivatives" / "truth", save_fields=False, progress=False, **opts)
    anat = qsm_dir / f"sub-{label}" / "anat"
    chi = np.asarray(nib.load(str(anat / f"sub-{label}_Chimap.nii.gz")).dataobj, dtype=np.float32)
    mask = np.asarray(nib.load(str(anat / f"sub-{label}_desc-brain_mask.nii.gz")).dataobj) > 0
    # the derivative holds 0 outside the mask; the ROI code ignores only non-finite voxels
    chi_img = nib.Nifti1Image(np.where(mask, chi, np.nan).astype(np.float32), phantom.affine)
    return chi_img, chi, mask


def failed_result(subject_id, index, seed, settings, fingerprint, exc, t0):
    """The result of a subject that failed with ``exc`` (call it inside the ``except`` block).

    Keys :data:`RESULT_KEYS`, ``status="failed"``, the error and its traceback; nothing measured.
    ``t0`` is the ``time.perf_counter()`` value at the subject's start.
    """
    out = dict.fromkeys(RESULT_KEYS)
    out.update({"subject_id": subject_id, "index": index, "status": "failed", "seed": seed,
                "qsm_route": settings.qsm_route, "resolution_mm": float(settings.resolution_mm),
                "error": f"{type(exc).__name__}: {exc}", "traceback": _tb.format_exc(),
                "seconds_total": time.perf_counter() - t0, "host": platform.node(),
                "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "fingerprint": fingerprint})
    return out


def measure_cohort_subject(row, settings, *, index):
    """Build, simulate, reconstruct and measure one subject; never raises for a bad subject.

    Parameters
    ----------
    row : mapping
        One cohort row (needs ``subject_id`` and :data:`SIMULATED_COLUMNS`).
    settings : ImagingSettings
    index : int
        0-based position of the subject in the whole cohort (for its seed).

    Returns
    -------
    dict
        Keys :data:`RESULT_KEYS`: ``status`` ('ok' or 'failed'), ``error`` and ``traceback``
        (failed), ``target_<column>`` (the row), ``true_<column>`` (the phantom as built: true
        thalamus − CSF χ from the truth labels, aseg thalamic volume, lesion volume),
        ``measured_<column>`` (from the images), the relative susceptibility without vein
        exclusion, ``true_map_thalamic_relative_susceptibility_ppb`` (the same measure on the true
        χ map inside the reconstruction's mask: measured minus it is the reconstruction's own
        error, it minus the truth the measurement's), the phantom's grey-matter volume and cortical
        thickness, ROI voxel counts, the reconstruction's whole-brain NRMSE (%), timings (s), host and
        a fingerprint.
    """
    t0 = time.perf_counter()
    subject_id = str(row.get("subject_id", f"index-{index}"))
    seed = subject_seed(settings.seed, index)
    fingerprint = None
    scratch_ctx = None
    try:
        check_subject_id(subject_id)
        missing = [c for c in SIMULATED_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"row lacks column(s) {missing}")
        fingerprint = result_fingerprint(row, index, settings)
        targets = subject_targets(row)
        if settings.image_dir is not None:
            scratch = Path(settings.image_dir) / subject_id
            if scratch.exists():
                shutil.rmtree(scratch)
            scratch.mkdir(parents=True)
        else:
            scratch_ctx = tempfile.TemporaryDirectory(prefix=f"imaging-{subject_id}-")
            scratch = Path(scratch_ctx.name)

        t = time.perf_counter()
        phantom, info = build_subject_phantom(
            relative_susceptibility_ppb=targets["thalamic_relative_susceptibility_ppb"],
            thalamic_volume_mm3=targets["thalamic_volume_mm3"],
            t2_lesion_volume_ml=targets["t2_lesion_volume_ml"], seed=seed, settings=settings)
        truth = true_thalamic_susceptibility(phantom)
        t_phantom = time.perf_counter() - t

        t = time.perf_counter()
        chi_img, chi_raw, rec_mask = _reconstruct(phantom, seed, settings, scratch)
        err = nrmse(chi_raw, phantom.chi_ppm, mask=rec_mask)
        t_recon = time.perf_counter() - t

        t = time.perf_counter()
        subj = write_phantom_subject(phantom, scratch / "freesurfer", subject_id)
        imaging = measure_subject(subject_id, freesurfer_dir=subj.subject_dir, chimap=chi_img,
                                  lesion_mask=subj.subject_dir / "mri" / "lesions.mgz", exclude_veins=True,
                                  vein_threshold_mad=settings.vein_threshold_mad)
        aseg = load_aseg(subj.subject_dir)
        sus_all = thalamic_susceptibility(chi_img, aseg, exclude_veins=False)
        # the same measure on the true χ inside the reconstruction's mask: what a perfect map would give
        true_img = nib.Nifti1Image(np.where(rec_mask, phantom.chi_ppm, np.nan).astype(np.float32), chi_img.affine)
        sus_truth = thalamic_susceptibility(true_img, aseg, exclude_veins=True,
                                            vein_threshold_mad=settings.vein_threshold_mad)
        t_measure = time.perf_counter() - t
    except Exception as exc:  # noqa: BLE001 - a failing subject must not stop the others
        logger.warning("subject %s failed: %s", subject_id, exc)
        return failed_result(subject_id, index, seed, settings, fingerprint, exc, t0)
    finally:
        if scratch_ctx is not None:
            with contextlib.suppress(OSError):
                scratch_ctx.cleanup()

    out = dict.fromkeys(RESULT_KEYS)
    out.update({
        "subject_id": subject_id, "index": int(index), "status": "ok", "seed": seed,
        "qsm_route": settings.qsm_route, "resolution_mm": float(settings.resolution_mm),
        **{f"target_{c}": targets[c] for c in SIMULATED_COLUMNS},
        "thalamus_scale": info["thalamus_scale"], "thalamus_chi_ppm": info["thalamus_chi_ppm"],
        "volume_iterations": int(info["volume_iterations"]),
        "true_thalamic_relative_susceptibility_ppb": float(truth["relative_ppb"]),
        "true_thalamic_volume_mm3": float(info["thalamic_volume_mm3"]),
        "true_t2_lesion_volume_ml": float(phantom.params["lesion_volume_ml"]),
        **{f"measured_{c}": float(imaging[c]) for c in SIMULATED_COLUMNS},
        "measured_thalamic_relative_susceptibility_no_vein_exclusion_ppb": float(sus_all["relative_ppb"]),
        "true_map_thalamic_relative_susceptibility_ppb": float(sus_truth["relative_ppb"]),
        "measured_total_gray_matter_volume_mm3": float(imaging["total_gray_matter_volume_mm3"]),
        "measured_mean_cortical_thickness_mm": float(imaging["mean_cortical_thickness_mm"]),
        "n_thalamus_voxels": int(imaging["n_voxels"]),
        "n_vein_voxels_excluded": int(imaging["n_vein_voxels_excluded"]), "n_csf_voxels": int(imaging["n_csf_voxels"]),
        "reconstruction_nrmse_percent": float(err),
        "seconds_phantom": t_phantom, "seconds_reconstruction": t_recon, "seconds_measurement": t_measure,
        "seconds_total": time.perf_counter() - t0, "host": platform.node(),
        "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": fingerprint,
    })
    return out
