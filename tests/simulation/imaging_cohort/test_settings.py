"""Settings, seeds, subject selection and fingerprints of the imaging cohort."""

from pathlib import Path

import numpy as np
import pytest

import analysis
from analysis.simulation import imaging_cohort as ic
from analysis.simulation.imaging_cohort.settings import (
    PIPELINE_SOURCES,
    pipeline_code_hash,
    pipeline_source_files,
    result_fingerprint,
)


def test_subject_seed_is_the_spawned_child():
    children = np.random.SeedSequence(20180301).spawn(5)
    for i in (0, 3, 4):
        assert ic.subject_seed(20180301, i) == int(children[i].generate_state(1)[0])
    assert len({ic.subject_seed(1, i) for i in range(50)}) == 50
    with pytest.raises(ValueError, match="index"):
        ic.subject_seed(1, -1)


def test_select_subjects():
    cohort = ic.example_cohort(20, seed=0)
    a = ic.select_subjects(cohort, 5, seed=3)
    assert a == sorted(a) and len(set(a)) == 5 and a == ic.select_subjects(cohort, 5, seed=3)
    assert ic.select_subjects(cohort, None) == list(range(20))
    assert ic.select_subjects(cohort, 50) == list(range(20))
    assert ic.select_subjects(cohort, subject_ids=["sub-010", "sub-002"]) == [1, 9]
    with pytest.raises(ValueError, match="sub-999"):
        ic.select_subjects(cohort, subject_ids=["sub-999"])
    with pytest.raises(ValueError, match="n_subjects"):
        ic.select_subjects(cohort, 0)


@pytest.mark.parametrize("kwargs, name", [({"resolution_mm": 0.1}, "resolution_mm"), ({"snr": -1}, "snr"),
                                          ({"method": "star"}, "method"), ({"qsm_route": "x"}, "qsm_route"),
                                          ({"background": "sharp"}, "background"), ({"n_lesions": 0}, "n_lesions"),
                                          ({"realism": "photo"}, "realism")])
def test_settings_validation_names_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ic.ImagingSettings(**kwargs)



def test_fingerprint_depends_on_settings_row_and_position():
    row = ic.example_cohort(1).iloc[0].to_dict()
    s = ic.ImagingSettings()
    f = result_fingerprint(row, 0, s)
    assert f == result_fingerprint(row, 0, ic.ImagingSettings(image_dir="/tmp/x"))   # not part of it
    assert f != result_fingerprint(row, 1, s)
    assert f != result_fingerprint(row, 0, ic.ImagingSettings(snr=50.0))
    assert f != result_fingerprint(row, 0, ic.ImagingSettings(realism="simple"))
    assert f != result_fingerprint(dict(row, thalamic_volume_mm3=row["thalamic_volume_mm3"] + 1), 0, s)


def test_pipeline_sources_are_found_and_hashed():
    """The hashed sources exist (paths relative to the analysis package) and include this subpackage."""
    files = pipeline_source_files()
    names = {f.relative_to(Path(analysis.__file__).resolve().parent).as_posix() for f in files}
    assert "cli/qsm.py" in names and "simulation/imaging_cohort/settings.py" in names
    for folder in ("imaging", "simulation", "cohort"):
        assert folder in PIPELINE_SOURCES and any(n.startswith(folder + "/") for n in names), folder
    assert len(pipeline_code_hash()) == 16
