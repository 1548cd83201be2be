"""One subject of the imaging cohort: a phantom built from a cohort row, a failure reported, not raised."""

import numpy as np
import pytest

from analysis.simulation import imaging_cohort as ic
from analysis.simulation.phantom_qsm import true_thalamic_susceptibility
from tests.helpers.imaging_cohort import BAD, small_cohort


@pytest.mark.parametrize("realism", ["simple", "realistic"])
def test_build_subject_phantom_follows_the_row(realism):
    s = ic.ImagingSettings(realism=realism)
    ph, info = ic.build_subject_phantom(relative_susceptibility_ppb=-37.5, thalamic_volume_mm3=12500.0,
                                        t2_lesion_volume_ml=7.3, seed=5, settings=s)
    assert ph.realism == realism
    assert true_thalamic_susceptibility(ph)["relative_ppb"] == pytest.approx(-37.5, abs=1e-3)
    assert abs(info["thalamic_volume_mm3"] / 12500.0 - 1) <= 0.02          # tolerance 1 %, steps ~1 %
    assert info["thalamic_volume_mm3"] == np.isin(ph.aseg, (10, 49)).sum() * 8.0
    # simple: exact up to one 2 mm voxel; realistic: the lesions are drawn on the fine grid, and their labels on the
    # acquisition grid differ by partial volume (measured 7.01 mL)
    assert ph.params["lesion_volume_ml"] == pytest.approx(7.3, abs=0.008 if realism == "simple" else 0.05 * 7.3)
    assert 1 <= info["volume_iterations"] <= s.max_volume_iterations


@pytest.mark.parametrize("column, kwargs", [
    ("thalamic_volume_mm3", {"thalamic_volume_mm3": 1000.0, "t2_lesion_volume_ml": 5.0}),
    ("t2_lesion_volume_ml", {"thalamic_volume_mm3": 14000.0, "t2_lesion_volume_ml": 500.0}),
])
def test_build_subject_phantom_names_the_column_it_cannot_build(column, kwargs):
    with pytest.raises(ValueError, match=column):
        ic.build_subject_phantom(relative_susceptibility_ppb=-30.0, seed=0, settings=ic.ImagingSettings(),
                                 **kwargs)


def test_failing_subject_returns_its_error():
    row = small_cohort().iloc[4].to_dict()
    res = ic.measure_cohort_subject(row, ic.ImagingSettings(), index=4)
    assert res["status"] == "failed" and res["subject_id"] == BAD
    assert "thalamic_volume_mm3" in res["error"] and "Traceback" in res["traceback"]
    assert set(res) == set(ic.RESULT_KEYS)
