"""From images to the cohort table: one simulated head phantom per cohort row, measured back.

For each subject (row) of a cohort table (:data:`analysis.cohort.dictionary.COLUMNS`) this module

1. builds a numerical head phantom (:func:`analysis.simulation.phantom.make_head_phantom`) whose
   **thalamic relative susceptibility** (thalamus − CSF, ppb), **thalamic volume** (aseg
   thalamus, mm³) and **T2 lesion volume** (mL) are the row's values (see
   :func:`build_subject_phantom`);
2. simulates its 3 T multi-echo GRE acquisition and reconstructs χ with the compendium's QSM
   pipeline (:func:`analysis.simulation.phantom_subject.reconstruct_phantom`, in memory; or, with
   ``qsm_route="bids"``, through a BIDS dataset on disk and :func:`analysis.cli.qsm.run_qsm`,
   the path real data take);
3. writes the phantom's FreeSurfer-like subject directory
   (:func:`analysis.simulation.phantom_subject.write_phantom_subject`) and measures it as a real subject
   would be measured: FreeSurfer stats (:func:`analysis.imaging.freesurfer.read_subject_stats`),
   relative thalamic susceptibility with vein exclusion and atrial CSF reference
   (:func:`analysis.imaging.roi.thalamic_susceptibility`), lesion volume from the lesion mask
   (:func:`analysis.imaging.roi.lesion_volume_ml`);
4. returns one flat ``dict`` per subject: targets (the row), truths (the phantom as built) and
   measured values (``target_*``, ``true_*``, ``measured_*`` + the cohort column name).

**The subjects are simulated phantoms, not patients.** The phantom varies only the three
quantities above; every phantom has the template's grey matter and cortex, so the measured
cohort table (:func:`measured_cohort`) takes ``total_gray_matter_volume_mm3`` and
``mean_cortical_thickness_mm`` (and the clinical columns) **from the input row**
(:data:`CARRIED_COLUMNS`); the phantom's own values are kept in the per-subject results as
``measured_total_gray_matter_volume_mm3`` / ``measured_mean_cortical_thickness_mm``.

Seeds
-----
Subject ``i`` (0-based row position in the **whole** cohort table, whatever subset is run) gets
``subject_seed(seed, i)`` — the i-th child of ``numpy.random.SeedSequence(seed)`` — which seeds
its phantom (lesion positions, shapes) and, through
:func:`analysis.simulation.phantom_subject.simulation_seed`, its acquisition (phase offset, noise). Results
do not depend on the order, the subset, the number of workers or the machine.

Parallel execution and resuming
-------------------------------
:func:`measure_cohort_subject` is a pure function of ``(row, settings)``: it writes only to a
temporary folder (or to ``settings.image_dir`` if images are to be kept) and returns a dict;
errors are caught and returned (``status="failed"``, ``error``, ``traceback``). The driver
:func:`run_imaging_cohort` maps it over the subjects that are not done yet, locally with joblib
(``n_jobs``; a tqdm progress bar) or on a Dask distributed cluster (``scheduler_address``), and
writes each result **as it arrives**, atomically, to ``<work_dir>/imaging_cohort/<subject>.json``.
A subject whose JSON holds a successful result with the same *fingerprint* (settings, row values,
subject position, and a hash of the pipeline's source code) is not computed again; a failed one
is retried (``retry_failed=True``), and an interrupted run loses only the subjects in flight.

On a SLURM cluster (``pip install dask-jobqueue``; the workers need this package installed,
e.g. the same ``.venv`` on a shared file system)::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=2, processes=1, memory="8GB", walltime="02:00:00",
                           job_extra_directives=["--cpus-per-task=2"],
                           python="/path/to/compendium/.venv/bin/python")
    cluster.scale(jobs=20)                       # 20 single-subject workers
    run = run_imaging_cohort(cohort, work_dir="results/work",
                             scheduler_address=cluster.scheduler_address)

Only the driver reads and writes ``work_dir``, so it need not be shared with the workers
(``settings.image_dir``, if set, must be). Memory per subject: about 0.7 GB peak at 2 mm
(measured); 1 mm has 8 times the voxels, plan for 6 GB or more per worker.

Cost: about 8–10 s of one CPU core per subject at 2 mm (phantom 1–3 s, reconstruction 5–6 s,
measurement 1 s), plus 5 s once per worker process to load the atlas.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import functools
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import tempfile
import time
import traceback as _tb
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from joblib import Parallel, delayed
from tqdm import tqdm  # text bar: works in terminals, notebooks and papermill logs

from analysis.cohort.dictionary import COLUMN_NAMES, DEFAULT_SEED, load_cohort, validate_cohort
from analysis.cohort.subject import measure_subject
from analysis.imaging.freesurfer import load_aseg
from analysis.imaging.labels import LATERAL_VENTRICLES, THALAMUS
from analysis.imaging.metrics import nrmse
from analysis.imaging.qsm.recipes import complete_recipe
from analysis.imaging.reconstruct import reconstruct_dataset
from analysis.imaging.roi import thalamic_susceptibility
from analysis.io import json_default, write_text
from analysis.simulation import phantom_subject as ps
from analysis.simulation.acquisition import simulate_megre
from analysis.simulation.bids_dataset import write_megre_subject
from analysis.simulation.phantom import TISSUES, make_head_phantom

logger = logging.getLogger(__name__)

__all__ = [
    "SIMULATED_COLUMNS", "CARRIED_COLUMNS", "RESULT_KEYS", "WORK_SUBDIR", "ImagingSettings",
    "ImagingCohortRun", "subject_seed", "select_subjects", "template_thalamic_volume_mm3",
    "build_subject_phantom", "measure_cohort_subject", "run_imaging_cohort", "load_results",
    "measured_cohort", "agreement_subjects", "example_cohort", "pipeline_code_hash",
]

#: Cohort columns that the phantom reproduces and the pipeline measures back.
SIMULATED_COLUMNS = ("thalamic_relative_susceptibility_ppb", "thalamic_volume_mm3", "t2_lesion_volume_ml")
#: Cohort columns taken unchanged from the input row into the measured cohort.
CARRIED_COLUMNS = tuple(c for c in COLUMN_NAMES if c not in SIMULATED_COLUMNS and c != "subject_id")
#: Sub-folder of ``work_dir`` holding one JSON per subject.
WORK_SUBDIR = "imaging_cohort"
#: Keys of every per-subject result (failed subjects have NaN/None where nothing was measured).
RESULT_KEYS = (
    "subject_id", "index", "status", "error", "seed", "qsm_route", "resolution_mm",
    *(f"target_{c}" for c in SIMULATED_COLUMNS),
    "thalamus_scale", "thalamus_chi_ppm", "volume_iterations",
    *(f"true_{c}" for c in SIMULATED_COLUMNS),
    *(f"measured_{c}" for c in SIMULATED_COLUMNS),
    "measured_thalamic_relative_susceptibility_no_vein_exclusion_ppb",
    "measured_total_gray_matter_volume_mm3", "measured_mean_cortical_thickness_mm",
    "n_thalamus_voxels", "n_vein_voxels_excluded", "n_csf_voxels", "reconstruction_nrmse_percent",
    "seconds_phantom", "seconds_reconstruction", "seconds_measurement", "seconds_total",
    "host", "finished_utc", "fingerprint", "traceback",
)
#: Thalamus scale range accepted by :func:`analysis.simulation.phantom.make_head_phantom`.
_SCALE_RANGE = (0.3, 2.0)
#: Largest lesion volume the phantom builds (mL).
_MAX_LESION_ML = 200.0
#: Source files whose content defines the pipeline (their hash is part of the fingerprint).
_PIPELINE_SOURCES = ("imaging", "simulation", "cohort", "cli/qsm.py")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# ---------------------------------------------------------------------------------------------
# Settings and seeds
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImagingSettings:
    """Everything that determines one subject's result (besides its row and position).

    Parameters
    ----------
    resolution_mm : float
        Isotropic voxel size of phantom, acquisition and χ map (mm); 2 mm: 80 × 96 × 84 grid.
    snr : float or None
        First-echo SNR in the brain of the simulated acquisition (None: noise-free).
    seed : int
        Cohort seed; subject i uses :func:`subject_seed` ``(seed, i)``.
    background : {'pdf', 'vsharp', 'none'}
        Background field removal (default PDF, as
        :func:`analysis.simulation.phantom_subject.reconstruct_phantom`; after PDF, MEDI uses the toolbox's
        5 mm SMV high-pass and MERIT).
    vsharp_max_radius_mm : float
        Largest V-SHARP sphere (mm), for ``background='vsharp'``.
    method : {'medi0', 'medi', 'tkd'}
        Dipole inversion (default MEDI+0 with the lateral ventricles as CSF mask).
    lambda_ : float
        MEDI data weight (default :data:`analysis.simulation.phantom_subject.PHANTOM_LAMBDA`, 2000).
    n_lesions : int
        Number of lesions the T2 lesion volume is split into.
    vein_threshold_mad : float
        Vein threshold of the thalamic ROI (median + k·1.4826·MAD).
    qsm_route : {'phantom', 'bids'}
        'phantom': simulate and reconstruct in memory
        (:func:`analysis.simulation.phantom_subject.reconstruct_phantom`). 'bids': write the simulated
        acquisition as a BIDS dataset, reconstruct it with :func:`analysis.cli.qsm.run_qsm`
        (brain mask from the phantom's truth derivatives, the same V-SHARP spheres) and read
        the χ map back: the same data and numbers up to float32 storage, plus file I/O.
    volume_tolerance : float
        Relative tolerance of the thalamic volume (aseg, on the phantom grid) against the row's
        value; the thalamus scale is refined until it is met or ``max_volume_iterations``.
    max_volume_iterations : int
        Phantom builds allowed to match the thalamic volume (≥ 1).
    image_dir : str or None
        Keep each subject's images (BIDS data, FreeSurfer-like subject directory) under
        ``image_dir/<subject_id>/``; None (default) works in a temporary folder that is removed.
        Not part of the fingerprint.
    """

    resolution_mm: float = 2.0
    snr: float | None = 100.0
    seed: int = DEFAULT_SEED
    background: str = "pdf"
    vsharp_max_radius_mm: float = 25.0
    method: str = "medi0"
    lambda_: float = 2000.0      # analysis.simulation.phantom_subject.PHANTOM_LAMBDA
    n_lesions: int = 6
    vein_threshold_mad: float = 3.0
    qsm_route: str = "phantom"
    volume_tolerance: float = 0.01
    max_volume_iterations: int = 3
    image_dir: str | None = None

    def __post_init__(self):
        def bad(name, why):
            raise ValueError(f"ImagingSettings: {name} {why}, got {getattr(self, name)!r}")

        if not (np.isfinite(self.resolution_mm) and 0.5 <= float(self.resolution_mm) <= 4.0):
            bad("resolution_mm", "must be an isotropic voxel size in [0.5, 4] mm")
        if self.snr is not None and not (np.isfinite(self.snr) and float(self.snr) > 0):
            bad("snr", "must be positive or None")
        if not isinstance(self.seed, (int, np.integer)) or int(self.seed) < 0:
            bad("seed", "must be a non-negative integer")
        if self.background not in ("vsharp", "pdf", "none"):
            bad("background", "must be 'vsharp', 'pdf' or 'none'")
        if not (np.isfinite(self.vsharp_max_radius_mm) and self.vsharp_max_radius_mm >= self.resolution_mm):
            bad("vsharp_max_radius_mm", "must be at least one voxel")
        if self.method not in ("medi", "medi0", "tkd"):
            bad("method", "must be 'medi', 'medi0' or 'tkd'")
        if not (np.isfinite(self.lambda_) and self.lambda_ > 0):
            bad("lambda_", "must be positive")
        if int(self.n_lesions) < 1:
            bad("n_lesions", "must be >= 1")
        if not (np.isfinite(self.vein_threshold_mad) and self.vein_threshold_mad > 0):
            bad("vein_threshold_mad", "must be positive")
        if self.qsm_route not in ("phantom", "bids"):
            bad("qsm_route", "must be 'phantom' or 'bids'")
        if not (np.isfinite(self.volume_tolerance) and 0 <= self.volume_tolerance < 0.5):
            bad("volume_tolerance", "must be in [0, 0.5)")
        if int(self.max_volume_iterations) < 1:
            bad("max_volume_iterations", "must be >= 1")

    def fingerprint_dict(self):
        """The settings that determine the numbers (``image_dir`` left out), JSON-ready."""
        d = dataclasses.asdict(self)
        d.pop("image_dir")
        return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in d.items()}


def subject_seed(seed, index):
    """Seed of subject ``index`` (0-based position in the whole cohort) for cohort seed ``seed``.

    The ``index``-th child of ``numpy.random.SeedSequence(seed)`` (``spawn_key=(index,)``),
    reduced to one 32-bit integer; independent of which other subjects are run.
    """
    if int(index) < 0:
        raise ValueError(f"index must be >= 0, got {index!r}")
    ss = np.random.SeedSequence(int(seed), spawn_key=(int(index),))
    return int(ss.generate_state(1)[0])


def select_subjects(cohort, n_subjects=None, *, seed=DEFAULT_SEED, subject_ids=None):
    """Positions (0-based, cohort order) of the subjects to run.

    Parameters
    ----------
    cohort : pandas.DataFrame
        Validated cohort.
    n_subjects : int or None
        None: every subject. Otherwise a random sample of this many subjects (without
        replacement, ``numpy.random.default_rng(seed)``), returned in cohort order; the sample
        for ``n`` is not nested in that for ``n + 1``.
    seed : int
    subject_ids : sequence of str, optional
        Exactly these subjects instead (``n_subjects`` must then be None).

    Returns
    -------
    list of int
    """
    ids = cohort["subject_id"].astype(str).tolist()
    if subject_ids is not None:
        if n_subjects is not None:
            raise ValueError("give n_subjects or subject_ids, not both")
        pos = {s: i for i, s in enumerate(ids)}
        missing = [s for s in subject_ids if str(s) not in pos]
        if missing:
            raise ValueError(f"subject_ids not in the cohort: {missing}")
        return sorted(pos[str(s)] for s in subject_ids)
    if n_subjects is None:
        return list(range(len(ids)))
    if isinstance(n_subjects, bool) or not isinstance(n_subjects, (int, np.integer)) or n_subjects < 1:
        raise ValueError(f"n_subjects must be a positive integer or None, got {n_subjects!r}")
    if n_subjects >= len(ids):
        return list(range(len(ids)))
    rng = np.random.default_rng(int(seed))
    return sorted(int(i) for i in rng.choice(len(ids), size=int(n_subjects), replace=False))


@functools.lru_cache(maxsize=1)
def pipeline_code_hash():
    """SHA-256 (first 16 hex digits) of the source files that produce a subject's numbers.

    Part of each result's fingerprint, so a change to the phantom, simulation, reconstruction or
    ROI code makes earlier results stale. Computed once per process.
    """
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for name in _PIPELINE_SOURCES:
        p = root / name
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            if f.is_file():
                h.update(f.relative_to(root).as_posix().encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _targets(row):
    return {c: float(row[c]) for c in SIMULATED_COLUMNS}


def _fingerprint(row, index, settings):
    payload = {"settings": settings.fingerprint_dict(), "index": int(index),
               "subject_id": str(row["subject_id"]), "targets": _targets(row),
               "code": pipeline_code_hash()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


# ---------------------------------------------------------------------------------------------
# One subject
# ---------------------------------------------------------------------------------------------

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
    return ph, {"thalamus_scale": float(scale), "thalamus_chi_ppm": chi, "volume_iterations": it,
                "thalamic_volume_mm3": got}


def _reconstruct(phantom, seed, settings, scratch):
    """χ map (nibabel image, ppm, NaN outside the reconstruction mask) and the raw results."""
    import nibabel as nib

    if settings.qsm_route == "phantom":
        chi_img, rec, _ = ps.reconstruct_phantom(
            phantom, snr=settings.snr, seed=seed, background=settings.background,
            vsharp_max_radius_mm=settings.vsharp_max_radius_mm, method=settings.method,
            lambda_=settings.lambda_)
        return chi_img, rec["chi_ppm"], rec["mask"]

    # BIDS route: the acquisition as files, reconstructed by the same code as ``python -m analysis qsm``
    bids_dir, qsm_dir = scratch / "bids", scratch / "bids" / "derivatives" / "qsm"
    label = "01"
    sim = simulate_megre(phantom, snr=settings.snr, seed=ps.simulation_seed(seed))
    write_megre_subject(bids_dir, sim, subject=label, phantom=phantom, write_truth_files=True)
    opts = complete_recipe(background=settings.background, method=settings.method, lambda_=settings.lambda_,
                           voxel_size_mm=phantom.voxel_size_mm, vsharp_max_radius_mm=settings.vsharp_max_radius_mm,
                           csf_mask=np.isin(phantom.labels, LATERAL_VENTRICLES))
    method, lambda_ = opts.pop("method"), opts.pop("lambda_", None)
    reconstruct_dataset(bids_dir, qsm_dir, participant_label=label, recipe="plain", method=method, lambda_=lambda_,
                        brain_mask_dir=bids_dir / "derivatives" / "truth", save_fields=False, progress=False, **opts)
    anat = qsm_dir / f"sub-{label}" / "anat"
    chi = np.asarray(nib.load(str(anat / f"sub-{label}_Chimap.nii.gz")).dataobj, dtype=np.float32)
    mask = np.asarray(nib.load(str(anat / f"sub-{label}_desc-brain_mask.nii.gz")).dataobj) > 0
    # the derivative holds 0 outside the mask; the ROI code ignores only non-finite voxels
    chi_img = nib.Nifti1Image(np.where(mask, chi, np.nan).astype(np.float32), phantom.affine)
    return chi_img, chi, mask


def _failed_result(subject_id, index, seed, settings, fingerprint, exc, t0):
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
        exclusion, the phantom's grey-matter volume and cortical thickness, ROI voxel counts,
        the reconstruction's whole-brain NRMSE (%), timings (s), host and a fingerprint.
    """
    t0 = time.perf_counter()
    subject_id = str(row.get("subject_id", f"index-{index}"))
    seed = subject_seed(settings.seed, index)
    fingerprint = None
    scratch_ctx = None
    try:
        if not _SAFE_ID.match(subject_id):
            raise ValueError(f"subject_id {subject_id!r} is not usable as a file name "
                             "(letters, digits, '.', '_', '-')")
        missing = [c for c in SIMULATED_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"row lacks column(s) {missing}")
        fingerprint = _fingerprint(row, index, settings)
        targets = _targets(row)
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
        truth = ps.true_thalamic_susceptibility(phantom)
        t_phantom = time.perf_counter() - t

        t = time.perf_counter()
        chi_img, chi_raw, rec_mask = _reconstruct(phantom, seed, settings, scratch)
        err = nrmse(chi_raw, phantom.chi_ppm, mask=rec_mask)
        t_recon = time.perf_counter() - t

        t = time.perf_counter()
        subj = ps.write_phantom_subject(phantom, scratch / "freesurfer", subject_id)
        imaging = measure_subject(subject_id, freesurfer_dir=subj.subject_dir, chimap=chi_img,
                                  lesion_mask=subj.subject_dir / "mri" / "lesions.mgz", exclude_veins=True,
                                  vein_threshold_mad=settings.vein_threshold_mad)
        sus_all = thalamic_susceptibility(chi_img, load_aseg(subj.subject_dir), exclude_veins=False)
        t_measure = time.perf_counter() - t
    except Exception as exc:  # noqa: BLE001 - a failing subject must not stop the others
        logger.warning("subject %s failed: %s", subject_id, exc)
        return _failed_result(subject_id, index, seed, settings, fingerprint, exc, t0)
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
        "measured_total_gray_matter_volume_mm3": float(imaging["total_gray_matter_volume_mm3"]),
        "measured_mean_cortical_thickness_mm": float(imaging["mean_cortical_thickness_mm"]),
        "n_thalamus_voxels": int(imaging["n_voxels"]),
        "n_vein_voxels_excluded": int(imaging["n_vein_voxels_excluded"]), "n_csf_voxels": int(imaging["n_csf_voxels"]), "reconstruction_nrmse_percent": float(err),
        "seconds_phantom": t_phantom, "seconds_reconstruction": t_recon, "seconds_measurement": t_measure,
        "seconds_total": time.perf_counter() - t0, "host": platform.node(),
        "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": fingerprint,
    })
    return out


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

def _result_path(work_dir, subject_id):
    return Path(work_dir) / WORK_SUBDIR / f"{subject_id}.json"


def _write_result(work_dir, result, settings):
    doc = {"result": result, "settings": settings.fingerprint_dict(), "code": pipeline_code_hash(),
           "simulated": True,
           "note": "simulated head phantom (analysis.simulation.imaging_cohort), not a patient"}
    return write_text(_result_path(work_dir, result["subject_id"]),
                      json.dumps(doc, indent=1, default=json_default, allow_nan=True) + "\n")


def _read_result(path):
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        res = doc["result"]
        if not isinstance(res, dict) or "status" not in res:
            raise KeyError("status")
        return res
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring unreadable result %s (%s); the subject is run again", path, exc)
        return None


def load_results(work_dir):
    """Every per-subject result found in ``<work_dir>/imaging_cohort`` (DataFrame, one row each)."""
    folder = Path(work_dir) / WORK_SUBDIR
    rows = [r for p in sorted(folder.glob("*.json")) if (r := _read_result(p)) is not None]
    return pd.DataFrame(rows, columns=list(RESULT_KEYS))


@dataclass
class ImagingCohortRun:
    """What :func:`run_imaging_cohort` did.

    Attributes
    ----------
    results : pandas.DataFrame
        One row per requested subject (cohort order), columns :data:`RESULT_KEYS`.
    cohort : pandas.DataFrame
        The input rows of those subjects (validated).
    settings : ImagingSettings
    work_dir : Path
    computed, cached : list of str
        Subject ids computed in this run / taken from earlier results.
    seconds : float
        Wall time of the run.
    """

    results: pd.DataFrame
    cohort: pd.DataFrame
    settings: ImagingSettings
    work_dir: Path
    computed: list
    cached: list
    seconds: float

    @property
    def failed(self):
        """Failed subjects: ``subject_id, index, error``."""
        f = self.results[self.results["status"] != "ok"]
        return f[["subject_id", "index", "error"]].reset_index(drop=True)

    @property
    def ok(self):
        """Results of the successful subjects."""
        return self.results[self.results["status"] == "ok"].reset_index(drop=True)

    def measured_cohort(self):
        """The measured cohort table (:func:`measured_cohort`)."""
        return measured_cohort(self.cohort, self.results)

    def agreement_subjects(self):
        """Per-subject targets, truths and measured values (:func:`agreement_subjects`)."""
        return agreement_subjects(self.results)


@contextlib.contextmanager
def _fft_workers_env(n_workers):
    """Give worker processes started inside the block ``ANALYSIS_FFT_WORKERS`` = cores / workers."""
    key = "ANALYSIS_FFT_WORKERS"
    if key in os.environ or n_workers <= 1:
        yield
        return
    os.environ[key] = str(max(1, (os.cpu_count() or 1) // n_workers))
    try:
        yield
    finally:
        os.environ.pop(key, None)


def _run_joblib(tasks, settings, n_jobs, on_result):
    workers = n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    with _fft_workers_env(min(workers, len(tasks))):
        par = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        for res in par(delayed(measure_cohort_subject)(row, settings, index=i) for i, row in tasks):
            on_result(res)


def _run_dask(tasks, settings, scheduler_address, on_result):
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - pinned in requirements.txt
        raise ValueError(f"scheduler_address given but dask.distributed is not installed ({exc}); "
                         "pip install dask distributed") from None
    client = Client(scheduler_address)
    try:
        futures = {}
        for i, row in tasks:
            fut = client.submit(measure_cohort_subject, row, settings, index=i, pure=False,
                                key=f"imaging-cohort-{row['subject_id']}-{i}-{time.time_ns()}")
            futures[fut] = (i, row)
        for fut in as_completed(list(futures)):
            i, row = futures[fut]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: record, go on
                res = _failed_result(str(row["subject_id"]), i, subject_seed(settings.seed, i), settings,
                                     _fingerprint(row, i, settings), exc, time.perf_counter())
            on_result(res)
    finally:
        client.close()


def run_imaging_cohort(cohort, *, work_dir, settings=None, n_subjects=None, subject_ids=None,
                       n_jobs=1, scheduler_address=None, retry_failed=True, progress=True):
    """Measure cohort subjects on simulated phantoms, in parallel, resuming earlier work.

    Parameters
    ----------
    cohort : pandas.DataFrame, str or Path
        Cohort table or CSV (validated with :func:`analysis.cohort.dictionary.validate_cohort`; never
        written to).
    work_dir : str or Path
        Results go to ``<work_dir>/imaging_cohort/<subject_id>.json`` (atomic writes).
    settings : ImagingSettings, optional
        Default ``ImagingSettings()`` (2 mm, SNR 100, V-SHARP + MEDI, seed 20180301).
    n_subjects : int, optional
        Run a seeded random subset of this many subjects (:func:`select_subjects`); None: all.
    subject_ids : sequence of str, optional
        Run exactly these subjects.
    n_jobs : int
        joblib workers (processes, loky backend) when no ``scheduler_address`` is given; 1 runs
        in this process, -1 uses every core.
    scheduler_address : str, optional
        Address of a Dask distributed scheduler (``"tcp://host:8786"``, or
        ``cluster.scheduler_address`` of a ``LocalCluster`` or dask-jobqueue ``SLURMCluster``);
        the subjects are then submitted to it and ``n_jobs`` is ignored.
    retry_failed : bool
        Run subjects whose earlier result is a failure again (default). Successful results
        with a matching fingerprint are always reused.
    progress : bool
        tqdm progress bar over the subjects to compute.

    Returns
    -------
    ImagingCohortRun

    Raises
    ------
    ValueError
        Invalid cohort (naming column and row), unknown ``subject_ids``, bad ``n_jobs``.
    """
    t0 = time.perf_counter()
    settings = ImagingSettings() if settings is None else settings
    if not isinstance(settings, ImagingSettings):
        raise ValueError(f"settings must be an ImagingSettings, got {type(settings).__name__}")
    if isinstance(cohort, (str, Path)):
        cohort = load_cohort(cohort)
    else:
        cohort = validate_cohort(cohort)
    cohort = cohort.reset_index(drop=True)
    if scheduler_address is None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer))
                                      or n_jobs == 0):
        raise ValueError(f"n_jobs must be a non-zero integer, got {n_jobs!r}")
    positions = select_subjects(cohort, n_subjects, seed=settings.seed, subject_ids=subject_ids)
    work_dir = Path(work_dir)
    (work_dir / WORK_SUBDIR).mkdir(parents=True, exist_ok=True)

    results, tasks, cached = {}, [], []
    for i in positions:
        row = cohort.iloc[i].to_dict()
        sid = str(row["subject_id"])
        path = _result_path(work_dir, sid)
        prev = _read_result(path) if path.is_file() else None
        if prev is not None and prev.get("fingerprint") == _fingerprint(row, i, settings) \
                and (prev["status"] == "ok" or not retry_failed):
            results[sid] = prev
            cached.append(sid)
        else:
            tasks.append((i, row))
    computed = []

    bar = tqdm(total=len(tasks), desc="imaging cohort", unit="subject", disable=not progress or not tasks)

    def on_result(res):
        _write_result(work_dir, res, settings)
        results[res["subject_id"]] = res
        computed.append(res["subject_id"])
        if res["status"] != "ok":
            logger.warning("%s failed: %s", res["subject_id"], res["error"])
        bar.set_postfix(failed=sum(r["status"] != "ok" for r in results.values()), refresh=False)
        bar.update(1)

    try:
        if tasks and scheduler_address is not None:
            _run_dask(tasks, settings, scheduler_address, on_result)
        elif tasks:
            _run_joblib(tasks, settings, int(n_jobs), on_result)
    finally:
        bar.close()

    order = [str(cohort.at[i, "subject_id"]) for i in positions]
    table = pd.DataFrame([results[s] for s in order], columns=list(RESULT_KEYS))
    return ImagingCohortRun(results=table, cohort=cohort.iloc[positions].reset_index(drop=True),
                            settings=settings, work_dir=work_dir, computed=computed, cached=cached,
                            seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

def measured_cohort(cohort, results):
    """The measured cohort table, in the cohort CSV format (successful subjects only).

    Parameters
    ----------
    cohort : pandas.DataFrame
        The input cohort (at least the subjects of ``results``).
    results : pandas.DataFrame
        Per-subject results (:attr:`ImagingCohortRun.results` or :func:`load_results`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`analysis.cohort.dictionary.COLUMN_NAMES`, one row per successful subject in the
        order of ``results``: :data:`SIMULATED_COLUMNS` measured from the images,
        :data:`CARRIED_COLUMNS` copied from the input row. Passes
        :func:`analysis.cohort.dictionary.validate_cohort`.
    """
    ok = results[results["status"] == "ok"]
    if ok.empty:
        raise ValueError("no successful subject: nothing to put in the measured cohort")
    base = cohort.assign(subject_id=cohort["subject_id"].astype(str)).set_index("subject_id")
    missing = sorted(set(ok["subject_id"]) - set(base.index))
    if missing:
        raise ValueError(f"results for subject_id(s) {missing} have no row in the cohort")
    out = base.loc[ok["subject_id"].tolist(), list(CARRIED_COLUMNS)].reset_index()
    for c in SIMULATED_COLUMNS:
        out[c] = ok[f"measured_{c}"].to_numpy(dtype=float)
    return validate_cohort(out[list(COLUMN_NAMES)], source="measured cohort")


def agreement_subjects(results):
    """Per-subject targets (calibrated cohort), truths (phantom) and measured values, with errors.

    Returns
    -------
    pandas.DataFrame
        ``subject_id, status, error`` and for each of :data:`SIMULATED_COLUMNS`
        ``target_<c>, true_<c>, measured_<c>, error_<c>`` (measured − target), plus the
        relative susceptibility without vein exclusion, ``thalamus_scale``,
        ``n_vein_voxels_excluded`` and ``reconstruction_nrmse_percent``. Timings are left out so
        that the same cohort and seed give the same table (they stay in ``results``).
    """
    df = results.copy()
    cols = ["subject_id", "status", "error"]
    for c in SIMULATED_COLUMNS:
        df[f"error_{c}"] = df[f"measured_{c}"].astype(float) - df[f"target_{c}"].astype(float)
        cols += [f"target_{c}", f"true_{c}", f"measured_{c}", f"error_{c}"]
    cols += ["measured_thalamic_relative_susceptibility_no_vein_exclusion_ppb", "thalamus_scale",
             "n_vein_voxels_excluded", "reconstruction_nrmse_percent"]
    return df[cols].reset_index(drop=True)


def example_cohort(n_subjects=8, *, seed=0):
    """A small **random, uncalibrated** cohort in the cohort format, for tests and benchmarks.

    Values are drawn around the paper's printed summaries (relative susceptibility −29 ± 11.7
    ppb, thalamic volume 14.0 ± 2.1 mL, lognormal lesion volume with median ~6 mL), clipped to
    the published ranges. It is **not** the calibrated cohort (``data/cohort.csv``) and
    reproduces none of the paper's models.

    Returns
    -------
    pandas.DataFrame
        ``n_subjects`` rows that pass :func:`analysis.cohort.dictionary.validate_cohort`.
    """
    if int(n_subjects) < 1:
        raise ValueError(f"n_subjects must be >= 1, got {n_subjects!r}")
    rng = np.random.default_rng(seed)
    n = int(n_subjects)
    age = np.round(rng.uniform(25, 71, n), 1)
    df = pd.DataFrame({
        "subject_id": [f"sub-{i + 1:03d}" for i in range(n)],
        "age_years": age,
        "sex": rng.choice(["F", "M"], n, p=[2 / 3, 1 / 3]),
        "edss": np.round(rng.uniform(0, 6.5, n) * 2) / 2,
        "disease_duration_years": np.round(np.minimum(rng.uniform(0.5, 30, n), age - 16), 1),
        "dmt_use": rng.integers(0, 2, n),
        "enhancing_lesions_present": (rng.random(n) < 0.1).astype(int),
        "t2_lesion_volume_ml": np.round(np.clip(np.exp(rng.normal(np.log(6.0), 1.0, n)), 0.1, 122.4), 2),
        "thalamic_volume_mm3": np.round(np.clip(rng.normal(14000, 2100, n), 8400, 20000)),
        "thalamic_relative_susceptibility_ppb": np.round(np.clip(rng.normal(-29.0, 11.7, n), -61.5, 6.4), 2),
        "total_gray_matter_volume_mm3": np.round(rng.normal(620000, 50000, n)),
        "mean_cortical_thickness_mm": np.round(rng.normal(2.45, 0.1, n), 3),
    })
    return validate_cohort(df, source="example cohort")
