"""A simulated cohort for the re-analysis tests (not a test module).

Simple correlated simulation with known slopes, shaped like the paper's cohort (n = 95 by default)
and valid under :func:`analysis.cohort.dictionary.validate_cohort`. Not the calibrated ``data/cohort.csv``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.cohort.dictionary import validate_cohort

#: True slopes (per ppb of relative susceptibility) of the simulated outcomes.
TRUE_SLOPES = {"thalamic_volume_mm3": 10.0, "total_gray_matter_volume_mm3": -800.0,
               "mean_cortical_thickness_mm": 0.0, "log_t2_lesion_volume_ml": 0.03}


def simulate_cohort(n=95, *, seed=1, lesion_slope=TRUE_SLOPES["log_t2_lesion_volume_ml"], heavy_tails=False):
    """Return a validated cohort DataFrame of ``n`` simulated patients.

    ``np.log(t2_lesion_volume_ml) = 1.2 + lesion_slope * chi + 0.04 * (duration - 9) + e``,
    e ~ N(0, 1.1^2) (or a scaled t with 3 df when ``heavy_tails``), with chi the relative
    susceptibility; the other outcomes are linear in chi with the slopes of :data:`TRUE_SLOPES`.
    """
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(42, 10, n), 19, 75).round(1)
    sex = np.where(rng.random(n) < 2 / 3, "F", "M")
    duration = np.clip(rng.gamma(1.3, 6.8, n), 0.3, 40.0).round(1)
    duration = np.minimum(duration, age - 15)
    dmt = (rng.random(n) < 0.6).astype(int)
    enh = (rng.random(n) < 0.12).astype(int)
    enh[:3] = 1                                   # a few always, so resamples rarely lack them
    chi = -29 + 0.25 * (age - 42) + 9 * enh + rng.normal(0, 11, n)
    err = rng.standard_t(3, n) / np.sqrt(3) if heavy_tails else rng.normal(0, 1, n)
    log_les = 1.2 + lesion_slope * chi + 0.04 * (duration - 9) + 1.1 * err
    thal = 14000 + TRUE_SLOPES["thalamic_volume_mm3"] * (chi + 29) - 40 * (age - 42) + rng.normal(0, 1900, n)
    gm = 607000 + TRUE_SLOPES["total_gray_matter_volume_mm3"] * (chi + 29) - 2000 * (age - 42) \
        + rng.normal(0, 60000, n)
    thick = 2.4 - 0.004 * (age - 42) + rng.normal(0, 0.15, n)
    df = pd.DataFrame({
        "subject_id": [f"sub-{i:03d}" for i in range(1, n + 1)],
        "age_years": age,
        "sex": sex,
        "edss": np.clip(np.round(rng.gamma(1.2, 1.8, n) * 2) / 2, 0, 8.5),
        "disease_duration_years": duration,
        "dmt_use": dmt,
        "enhancing_lesions_present": enh,
        "t2_lesion_volume_ml": np.clip(np.exp(log_les), 0.05, 1500),
        "thalamic_volume_mm3": np.clip(thal, 1500, 39000),
        "thalamic_relative_susceptibility_ppb": np.clip(chi, -400, 400),
        "total_gray_matter_volume_mm3": np.clip(gm, 150000, 1400000),
        "mean_cortical_thickness_mm": np.clip(thick, 0.6, 4.9),
    })
    return validate_cohort(df, source="simulated")
