"""Tables from the imaging cohort's results, and a small random cohort to run it on.

:func:`measured_cohort` is the cohort table with the simulated columns measured from the images;
:func:`agreement_subjects` sets targets, truths and measured values side by side;
:func:`example_cohort` is a random, uncalibrated cohort for tests and benchmarks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.cohort.dictionary import COLUMN_NAMES, validate_cohort
from analysis.simulation.imaging_cohort.settings import CARRIED_COLUMNS, SIMULATED_COLUMNS

__all__ = ["measured_cohort", "agreement_subjects", "example_cohort"]


def measured_cohort(cohort, results):
    """The measured cohort table, in the cohort CSV format (successful subjects only).

    Parameters
    ----------
    cohort : pandas.DataFrame
        The input cohort (at least the subjects of ``results``).
    results : pandas.DataFrame
        Per-subject results (:attr:`~analysis.simulation.imaging_cohort.runner.ImagingCohortRun.results`
        or :func:`~analysis.simulation.imaging_cohort.runner.load_results`).

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
        relative susceptibility without vein exclusion, the same measure on the true map,
        ``thalamus_scale``,
        ``n_vein_voxels_excluded`` and ``reconstruction_nrmse_percent``. Timings are left out so
        that the same cohort and seed give the same table (they stay in ``results``).
    """
    df = results.copy()
    cols = ["subject_id", "status", "error"]
    for c in SIMULATED_COLUMNS:
        df[f"error_{c}"] = df[f"measured_{c}"].astype(float) - df[f"target_{c}"].astype(float)
        cols += [f"target_{c}", f"true_{c}", f"measured_{c}", f"error_{c}"]
    cols += ["measured_thalamic_relative_susceptibility_no_vein_exclusion_ppb",
             "true_map_thalamic_relative_susceptibility_ppb", "thalamus_scale",
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
