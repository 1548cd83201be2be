"""From images to the cohort table: one simulated head phantom per cohort row, measured back.

For each subject (row) of a cohort table (:data:`analysis.cohort.dictionary.COLUMNS`) this module

1. builds a numerical head phantom (:func:`analysis.simulation.phantom.make_head_phantom`) whose
   **thalamic relative susceptibility** (thalamus − CSF, ppb), **thalamic volume** (aseg
   thalamus, mm³) and **T2 lesion volume** (mL) are the row's values (see
   :func:`build_subject_phantom`);
2. simulates its 3 T multi-echo GRE acquisition and reconstructs χ with the compendium's QSM
   pipeline (:func:`analysis.simulation.phantom_qsm.reconstruct_phantom`, in memory; or, with
   ``qsm_route="bids"``, through a BIDS dataset on disk and :func:`analysis.cli.qsm.run_qsm`,
   the path real data take);
3. writes the phantom's FreeSurfer-like subject directory
   (:func:`analysis.simulation.freesurfer_subject.write_phantom_subject`) and measures it as a real subject
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
:func:`analysis.simulation.acquisition.simulation_seed`, its acquisition (phase offset, noise). Results
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

Modules
-------
- :mod:`~analysis.simulation.imaging_cohort.settings`: :class:`ImagingSettings`, seeds, subject
  selection, the result's keys and fingerprint (including :func:`pipeline_code_hash`);
- :mod:`~analysis.simulation.imaging_cohort.subject`: one subject, row -> phantom -> χ map ->
  measured values (:func:`measure_cohort_subject`);
- :mod:`~analysis.simulation.imaging_cohort.runner`: the per-subject result files and the
  joblib / Dask driver :func:`run_imaging_cohort`;
- :mod:`~analysis.simulation.imaging_cohort.results`: tables from the results
  (:func:`measured_cohort`, :func:`agreement_subjects`) and :func:`example_cohort`.
"""

from analysis.simulation.imaging_cohort.results import agreement_subjects, example_cohort, measured_cohort
from analysis.simulation.imaging_cohort.runner import WORK_SUBDIR, ImagingCohortRun, load_results, run_imaging_cohort
from analysis.simulation.imaging_cohort.settings import (
                                                         CARRIED_COLUMNS,
                                                         RESULT_KEYS,
                                                         SIMULATED_COLUMNS,
                                                         ImagingSettings,
                                                         pipeline_code_hash,
                                                         select_subjects,
                                                         subject_seed,
)
from analysis.simulation.imaging_cohort.subject import (
                                                         build_subject_phantom,
                                                         measure_cohort_subject,
                                                         template_thalamic_volume_mm3,
)

__all__ = [
    "SIMULATED_COLUMNS", "CARRIED_COLUMNS", "RESULT_KEYS", "WORK_SUBDIR", "ImagingSettings",
    "ImagingCohortRun", "subject_seed", "select_subjects", "template_thalamic_volume_mm3",
    "build_subject_phantom", "measure_cohort_subject", "run_imaging_cohort", "load_results",
    "measured_cohort", "agreement_subjects", "example_cohort", "pipeline_code_hash",
]
