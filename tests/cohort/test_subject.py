"""analysis.cohort.subject: one subject's imaging row, and its merge with a clinical table."""

from pathlib import Path

import pandas as pd
import pytest

from analysis.cohort.subject import COHORT_COLUMNS, IMAGING_COLUMNS, merge_clinical, subject_row
from analysis.imaging.freesurfer import read_subject_stats

FS7 = Path(__file__).resolve().parents[1] / "data" / "freesurfer" / "fs7"


def test_subject_row_and_merge_with_clinical():
    stats = read_subject_stats(FS7)
    row = subject_row("sub-01", freesurfer_stats=stats, susceptibility={"relative_ppb": -27.5},
                          t2_lesion_volume_ml=4.25)
    assert list(row) == list(IMAGING_COLUMNS)
    assert row["thalamic_volume_mm3"] == pytest.approx(8178.8 + 7387.3)
    assert row["total_gray_matter_volume_mm3"] == pytest.approx(625759.696158)
    assert row["mean_cortical_thickness_mm"] == pytest.approx(
        (2.39891 * 118968 + 2.41123 * 120455) / (118968 + 120455))
    row2 = subject_row("sub-02", freesurfer_stats=stats, susceptibility=-31.0, t2_lesion_volume_ml=12.0)
    clinical = pd.DataFrame({"subject_id": ["sub-02", "sub-01", "sub-03"], "age_years": [40, 35, 50],
                             "sex": ["F", "M", "F"], "edss": [2.0, 1.5, 3.0],
                             "disease_duration_years": [5.0, 2.5, 9.0], "dmt_use": [1, 0, 1],
                             "enhancing_lesions_present": [0, 1, 0], "site": ["a", "b", "c"]})
    cohort = merge_clinical([row, row2], clinical)
    assert list(cohort.columns) == list(COHORT_COLUMNS) + ["site"]
    assert list(cohort["subject_id"]) == ["sub-01", "sub-02"]
    assert list(cohort["age_years"]) == [35, 40]
    assert list(cohort["thalamic_relative_susceptibility_ppb"]) == [-27.5, -31.0]
    with pytest.raises(ValueError, match="sub-01"):
        merge_clinical([row], clinical[clinical.subject_id != "sub-01"])
    with pytest.raises(ValueError, match="edss"):
        merge_clinical([row], clinical.drop(columns="edss"))
