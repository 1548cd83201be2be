"""Tables from the imaging cohort's results: the measured cohort, and the random example cohort."""

import numpy as np
import pandas as pd

from analysis.cohort.dictionary import COLUMN_NAMES
from analysis.simulation import imaging_cohort as ic


def test_example_cohort_is_valid():
    df = ic.example_cohort(12, seed=2)
    assert list(df.columns) == list(COLUMN_NAMES)
    assert df["thalamic_relative_susceptibility_ppb"].between(-61.5, 6.4).all()


def test_measured_cohort_replaces_only_the_simulated_columns():
    cohort = ic.example_cohort(3, seed=4)
    res = pd.DataFrame([dict.fromkeys(ic.RESULT_KEYS) for _ in range(3)])
    res["subject_id"] = cohort["subject_id"]
    res["status"] = ["ok", "failed", "ok"]
    res["measured_thalamic_relative_susceptibility_ppb"] = [-20.0, np.nan, -30.0]
    res["measured_thalamic_volume_mm3"] = [12000.0, np.nan, 15000.0]
    res["measured_t2_lesion_volume_ml"] = [3.0, np.nan, 4.0]
    m = ic.measured_cohort(cohort, res)
    assert list(m.columns) == list(COLUMN_NAMES) and list(m["subject_id"]) == ["sub-001", "sub-003"]
    assert list(m["thalamic_relative_susceptibility_ppb"]) == [-20.0, -30.0]
    keep = cohort.set_index("subject_id").loc[["sub-001", "sub-003"], list(ic.CARRIED_COLUMNS)]
    pd.testing.assert_frame_equal(m.set_index("subject_id")[list(ic.CARRIED_COLUMNS)], keep)
