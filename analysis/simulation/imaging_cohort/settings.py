"""What determines a simulated subject's result: settings, seeds, subject selection, fingerprint.

:class:`ImagingSettings` holds everything besides the row and its position; subject ``i`` gets
the seed :func:`subject_seed` ``(seed, i)``; :func:`select_subjects` picks the rows to run; a
result's fingerprint (:func:`result_fingerprint`) hashes the settings, the row's targets, its
position and the pipeline's source code (:func:`pipeline_code_hash`). :data:`RESULT_KEYS` are the
keys of every per-subject result.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.cohort.dictionary import COLUMN_NAMES, DEFAULT_SEED
from analysis.imaging.qsm.recipes import check_lambda
from analysis.simulation.phantom_qsm import PHANTOM_LAMBDA

__all__ = ["SAFE_SUBJECT_ID", "check_subject_id",
    "SIMULATED_COLUMNS", "CARRIED_COLUMNS", "RESULT_KEYS", "PIPELINE_SOURCES", "ImagingSettings", "subject_seed",
    "select_subjects", "pipeline_source_files", "pipeline_code_hash", "subject_targets", "result_fingerprint",
]

#: Cohort columns that the phantom reproduces and the pipeline measures back.
SIMULATED_COLUMNS = ("thalamic_relative_susceptibility_ppb", "thalamic_volume_mm3", "t2_lesion_volume_ml")
#: Cohort columns taken unchanged from the input row into the measured cohort.
CARRIED_COLUMNS = tuple(c for c in COLUMN_NAMES if c not in SIMULATED_COLUMNS and c != "subject_id")
#: Keys of every per-subject result (failed subjects have NaN/None where nothing was measured).
RESULT_KEYS = (
    "subject_id", "index", "status", "error", "seed", "qsm_route", "resolution_mm",
    *(f"target_{c}" for c in SIMULATED_COLUMNS),
    "thalamus_scale", "thalamus_chi_ppm", "volume_iterations",
    *(f"true_{c}" for c in SIMULATED_COLUMNS),
    *(f"measured_{c}" for c in SIMULATED_COLUMNS),
    "measured_thalamic_relative_susceptibility_no_vein_exclusion_ppb",
    "true_map_thalamic_relative_susceptibility_ppb",
    "measured_total_gray_matter_volume_mm3", "measured_mean_cortical_thickness_mm",
    "n_thalamus_voxels", "n_vein_voxels_excluded", "n_csf_voxels", "reconstruction_nrmse_percent",
    "seconds_phantom", "seconds_reconstruction", "seconds_measurement", "seconds_total",
    "host", "finished_utc", "fingerprint", "traceback",
)
#: Sources whose content defines the pipeline (their hash is part of the fingerprint), relative to
#: the ``analysis`` package folder: folders (every ``*.py`` below them) or single files.
PIPELINE_SOURCES = ("imaging", "simulation", "cohort", "cli/qsm.py")
#: The ``analysis`` package folder (this file is ``analysis/simulation/imaging_cohort/settings.py``).
_ANALYSIS_DIR = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ImagingSettings:
    """Everything that determines one subject's result (besides its row and position).

    Parameters
    ----------
    resolution_mm : float
        Isotropic voxel size of phantom, acquisition and χ map (mm); 2 mm: 80 × 96 × 84 grid.
    realism : {'realistic', 'simple'}
        Head phantom (:func:`analysis.simulation.phantom.make_head_phantom`): ``'realistic'``
        (default: texture and iron gradients inside structures, partial volume, the field simulated
        on a grid twice as fine and averaged into the voxels — the reconstruction is not measured
        against its own forward model) or ``'simple'`` (piecewise constant, simulated on the
        acquisition grid; about 3 × faster, for tests). The realistic phantom's lesions are drawn on
        the fine grid: their volume on the acquisition grid is within a few % of the row's value
        (simple: one voxel).
    snr : float or None
        First-echo SNR in the brain of the simulated acquisition (None: noise-free).
    seed : int
        Cohort seed; subject i uses :func:`subject_seed` ``(seed, i)``.
    background : {'pdf', 'vsharp', 'none'}
        Background field removal (default PDF, as
        :func:`analysis.simulation.phantom_qsm.reconstruct_phantom`; after PDF, MEDI uses the SMV
        high-pass of the default recipe — 5 mm, after passes of 30, 20 and 10 mm for the deeper brain — and
        MERIT).
    vsharp_max_radius_mm : float
        Largest V-SHARP sphere (mm), for ``background='vsharp'``.
    method : {'medi0', 'medi', 'tkd'}
        Dipole inversion (default MEDI+0 with a CSF mask from R2*, as on real data).
    lambda_ : float
        MEDI data weight (default :data:`analysis.simulation.phantom_qsm.PHANTOM_LAMBDA`, 2000).
    solver : {'admm', 'gncg'}
        MEDI's solver (default ADMM; ``'gncg'``: the toolbox's Gauss–Newton scheme).
    n_lesions : int
        Number of lesions the T2 lesion volume is split into.
    vein_threshold_mad : float
        Vein threshold of the thalamic ROI (median + k·1.4826·MAD).
    qsm_route : {'phantom', 'bids'}
        'phantom': simulate and reconstruct in memory
        (:func:`analysis.simulation.phantom_qsm.reconstruct_phantom`). 'bids': write the simulated
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
    realism: str = "realistic"
    snr: float | None = 100.0
    seed: int = DEFAULT_SEED
    background: str = "pdf"
    vsharp_max_radius_mm: float = 25.0
    method: str = "medi0"
    lambda_: float | str = PHANTOM_LAMBDA
    solver: str = "admm"
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
        if self.realism not in ("realistic", "simple"):
            bad("realism", "must be 'realistic' or 'simple'")
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
        if self.solver not in ("admm", "gncg"):
            bad("solver", "must be 'admm' or 'gncg'")
        try:
            check_lambda(self.lambda_)
        except ValueError:
            bad("lambda_", "must be 'auto' or positive")
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


def pipeline_source_files():
    """The source files whose content produces a subject's numbers, in the order they are hashed.

    Returns
    -------
    list of pathlib.Path
        Every ``*.py`` file below the folders of :data:`PIPELINE_SOURCES` (sorted, folder by
        folder) and the single files named there, inside the ``analysis`` package folder.
    """
    files = []
    for name in PIPELINE_SOURCES:
        p = _ANALYSIS_DIR / name
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return [f for f in files if f.is_file()]


@functools.lru_cache(maxsize=1)
def pipeline_code_hash():
    """SHA-256 (first 16 hex digits) of the source files that produce a subject's numbers.

    Part of each result's fingerprint, so a change to the phantom, simulation, reconstruction or
    ROI code makes earlier results stale. Hashes the path (relative to the ``analysis`` package
    folder) and content of each of :func:`pipeline_source_files`. Computed once per process.
    """
    h = hashlib.sha256()
    for f in pipeline_source_files():
        h.update(f.relative_to(_ANALYSIS_DIR).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def subject_targets(row):
    """The values of :data:`SIMULATED_COLUMNS` in a cohort row, as floats (what the phantom is built to)."""
    return {c: float(row[c]) for c in SIMULATED_COLUMNS}


def result_fingerprint(row, index, settings):
    """Fingerprint of a subject's result: settings (``image_dir`` left out), position, id, targets, code.

    A stored result is reused only if its fingerprint is the one of the current row, position,
    settings and :func:`pipeline_code_hash` (first 20 hex digits of a SHA-256).
    """
    payload = {"settings": settings.fingerprint_dict(), "index": int(index),
               "subject_id": str(row["subject_id"]), "targets": subject_targets(row),
               "code": pipeline_code_hash()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


#: Subject ids usable as file names: letters, digits, '.', '_', '-', not starting with '.'.
SAFE_SUBJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_subject_id(subject_id):
    """``subject_id`` as a string if it is a safe file name (:data:`SAFE_SUBJECT_ID`), else ``ValueError``.

    Subject ids name the per-subject result and scratch files; one like ``../../x`` would write
    outside the work folder.
    """
    sid = str(subject_id)
    if not SAFE_SUBJECT_ID.match(sid):
        raise ValueError(f"subject_id {sid!r} is not usable as a file name (letters, digits, '.', '_', '-'; "
                         "not starting with '.')")
    return sid
