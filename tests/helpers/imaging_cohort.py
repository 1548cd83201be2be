"""A small cohort for the imaging-cohort tests, with one subject the phantom cannot build (not a test module)."""

import pandas as pd

from analysis.cohort.dictionary import validate_cohort
from analysis.simulation.imaging_cohort import example_cohort

#: The buildable subjects of :func:`small_cohort`, and the one that fails.
GOOD = ["sub-001", "sub-002", "sub-003", "sub-004"]
BAD = "sub-bad"


def small_cohort():
    """4 random subjects + one with a thalamic volume of 1000 mm³ (scale 0.05: cannot be built)."""
    df = example_cohort(4, seed=11)
    bad = df.iloc[[0]].copy()
    bad["subject_id"] = BAD
    bad["thalamic_volume_mm3"] = 1000.0
    return validate_cohort(pd.concat([df, bad], ignore_index=True))
