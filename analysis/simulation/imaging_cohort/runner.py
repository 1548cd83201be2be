"""The imaging cohort's driver: per-subject result files, joblib or Dask execution, resuming.

:func:`run_imaging_cohort` maps :func:`~analysis.simulation.imaging_cohort.subject.measure_cohort_subject`
over the subjects that are not done yet (locally with joblib, or on a Dask distributed cluster) and
writes each result as it arrives, atomically, to ``<work_dir>/imaging_cohort/<subject>.json``;
:func:`load_results` reads them back. See :mod:`analysis.simulation.imaging_cohort`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm import tqdm  # text bar: works in terminals, notebooks and papermill logs

from analysis.cohort.dictionary import load_cohort, validate_cohort
from analysis.io import json_default, write_text
from analysis.simulation.imaging_cohort.results import agreement_subjects, measured_cohort
from analysis.simulation.imaging_cohort.settings import (
    RESULT_KEYS,
    SAFE_SUBJECT_ID,
    ImagingSettings,
    check_subject_id,
    pipeline_code_hash,
    result_fingerprint,
    select_subjects,
    subject_seed,
)
from analysis.simulation.imaging_cohort.subject import failed_result, measure_cohort_subject

logger = logging.getLogger(__name__)

__all__ = ["WORK_SUBDIR", "ImagingCohortRun", "load_results", "run_imaging_cohort"]

#: Sub-folder of ``work_dir`` holding one JSON per subject.
WORK_SUBDIR = "imaging_cohort"


def _result_path(work_dir, subject_id):
    folder = Path(work_dir) / WORK_SUBDIR
    path = folder / f"{check_subject_id(subject_id)}.json"
    if path.resolve().parent != folder.resolve():   # defence in depth: never outside the work folder
        raise ValueError(f"subject_id {subject_id!r} would write outside {folder}")
    return path


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
                res = failed_result(str(row["subject_id"]), i, subject_seed(settings.seed, i), settings,
                                    result_fingerprint(row, i, settings), exc, time.perf_counter())
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
    unsafe = [str(cohort.iloc[i]["subject_id"]) for i in positions
              if not SAFE_SUBJECT_ID.match(str(cohort.iloc[i]["subject_id"]))]
    if unsafe:
        raise ValueError(f"subject_id(s) {unsafe} are not usable as file names (letters, digits, '.', '_', '-'); "
                         "rename them in the cohort table")
    work_dir = Path(work_dir)
    (work_dir / WORK_SUBDIR).mkdir(parents=True, exist_ok=True)

    results, tasks, cached = {}, [], []
    for i in positions:
        row = cohort.iloc[i].to_dict()
        sid = str(row["subject_id"])
        path = _result_path(work_dir, sid)
        prev = _read_result(path) if path.is_file() else None
        if prev is not None and prev.get("fingerprint") == result_fingerprint(row, i, settings) \
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
