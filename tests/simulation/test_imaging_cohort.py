"""Tests of analysis.simulation.imaging_cohort: phantoms built from cohort rows, measured back, in parallel.

The cohort is a small random one (``example_cohort``, not the calibrated ``data/cohort.csv``),
plus one subject whose thalamic volume the phantom cannot build (a deliberately failing
subject). The slow tests share one joblib run of 4 + 1 subjects at 2 mm in a temporary work
folder; they check resuming (nothing recomputed, the failure retried or not), a Dask cluster
(2 in-process workers) against joblib, and the issue's acceptance criterion.
"""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.simulation import imaging_cohort as ic
from analysis.stats.agreement import bland_altman, icc
from analysis.cohort.dictionary import COLUMN_NAMES, validate_cohort

GOOD = ["sub-001", "sub-002", "sub-003", "sub-004"]
BAD = "sub-bad"


def small_cohort():
    """4 random subjects + one with a thalamic volume of 1000 mm³ (scale 0.05: cannot be built)."""
    df = ic.example_cohort(4, seed=11)
    bad = df.iloc[[0]].copy()
    bad["subject_id"] = BAD
    bad["thalamic_volume_mm3"] = 1000.0
    return validate_cohort(pd.concat([df, bad], ignore_index=True))


# -- seeds, selection, settings ------------------------------------------------------------------


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
                                          ({"background": "sharp"}, "background"), ({"n_lesions": 0}, "n_lesions")])
def test_settings_validation_names_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ic.ImagingSettings(**kwargs)


def test_example_cohort_is_valid():
    df = ic.example_cohort(12, seed=2)
    assert list(df.columns) == list(COLUMN_NAMES)
    assert df["thalamic_relative_susceptibility_ppb"].between(-61.5, 6.4).all()


def test_fingerprint_depends_on_settings_row_and_position():
    row = ic.example_cohort(1).iloc[0].to_dict()
    s = ic.ImagingSettings()
    f = ic._fingerprint(row, 0, s)
    assert f == ic._fingerprint(row, 0, ic.ImagingSettings(image_dir="/tmp/x"))   # not part of it
    assert f != ic._fingerprint(row, 1, s)
    assert f != ic._fingerprint(row, 0, ic.ImagingSettings(snr=50.0))
    assert f != ic._fingerprint(dict(row, thalamic_volume_mm3=row["thalamic_volume_mm3"] + 1), 0, s)


# -- one subject -----------------------------------------------------------------------------------


def test_build_subject_phantom_follows_the_row():
    from analysis.simulation.phantom_subject import true_thalamic_susceptibility

    s = ic.ImagingSettings()
    ph, info = ic.build_subject_phantom(relative_susceptibility_ppb=-37.5, thalamic_volume_mm3=12500.0,
                                        t2_lesion_volume_ml=7.3, seed=5, settings=s)
    assert true_thalamic_susceptibility(ph)["relative_ppb"] == pytest.approx(-37.5, abs=1e-3)
    assert abs(info["thalamic_volume_mm3"] / 12500.0 - 1) <= 0.02          # tolerance 1 %, steps ~1 %
    assert info["thalamic_volume_mm3"] == np.isin(ph.aseg, (10, 49)).sum() * 8.0
    assert ph.params["lesion_volume_ml"] == pytest.approx(7.3, abs=0.008)   # one 2 mm voxel
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


def test_failed_results_are_retried_unless_asked_and_recomputed_for_new_settings(tmp_path):
    cohort = small_cohort()
    s = ic.ImagingSettings()
    first = ic.run_imaging_cohort(cohort, work_dir=tmp_path, settings=s, subject_ids=[BAD], progress=False)
    assert first.computed == [BAD] and list(first.failed["subject_id"]) == [BAD]
    again = ic.run_imaging_cohort(cohort, work_dir=tmp_path, settings=s, subject_ids=[BAD],
                                  retry_failed=False, progress=False)
    assert again.computed == [] and again.cached == [BAD]
    retried = ic.run_imaging_cohort(cohort, work_dir=tmp_path, settings=s, subject_ids=[BAD], progress=False)
    assert retried.computed == [BAD]
    other = ic.run_imaging_cohort(cohort, work_dir=tmp_path, settings=ic.ImagingSettings(snr=50.0),
                                  subject_ids=[BAD], retry_failed=False, progress=False)
    assert other.computed == [BAD]                 # stale fingerprint: not reused
    doc = json.loads((tmp_path / ic.WORK_SUBDIR / f"{BAD}.json").read_text())
    assert doc["simulated"] is True and doc["settings"]["snr"] == 50.0


def test_run_rejects_bad_arguments(tmp_path):
    cohort = small_cohort()
    with pytest.raises(ValueError, match="n_jobs"):
        ic.run_imaging_cohort(cohort, work_dir=tmp_path, n_jobs=0)
    with pytest.raises(ValueError, match="settings"):
        ic.run_imaging_cohort(cohort, work_dir=tmp_path, settings={"snr": 1})
    bad = cohort.drop(columns=["thalamic_volume_mm3"])
    with pytest.raises(ValueError, match="thalamic_volume_mm3"):
        ic.run_imaging_cohort(bad, work_dir=tmp_path)


# -- the real pipeline on a small cohort (slow) ----------------------------------------------------


@pytest.fixture(scope="module")
def joblib_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("imaging_work")
    run = ic.run_imaging_cohort(small_cohort(), work_dir=work, n_jobs=2, progress=False)
    return run


@pytest.mark.slow
def test_joblib_run_measures_every_good_subject_and_reports_the_bad_one(joblib_run):
    run = joblib_run
    assert sorted(run.computed) == sorted(GOOD + [BAD]) and run.cached == []
    assert list(run.results["subject_id"]) == GOOD + [BAD]                 # cohort order
    assert list(run.failed["subject_id"]) == [BAD]
    assert "thalamic_volume_mm3" in run.failed.loc[0, "error"]
    ok = run.ok
    assert (ok["true_thalamic_relative_susceptibility_ppb"]
            - ok["target_thalamic_relative_susceptibility_ppb"]).abs().max() < 1e-3
    assert (ok["measured_t2_lesion_volume_ml"] - ok["target_t2_lesion_volume_ml"]).abs().max() <= 0.008
    assert ((ok["measured_thalamic_volume_mm3"] / ok["target_thalamic_volume_mm3"] - 1).abs() <= 0.02).all()
    measured = run.measured_cohort()
    assert list(measured["subject_id"]) == GOOD
    validate_cohort(measured)
    for sid in GOOD + [BAD]:
        assert (run.work_dir / ic.WORK_SUBDIR / f"{sid}.json").is_file()


@pytest.mark.slow
def test_second_run_does_no_work(joblib_run):
    work = joblib_run.work_dir
    files = {p: p.stat().st_mtime_ns for p in (work / ic.WORK_SUBDIR).glob("sub-0*.json")}
    again = ic.run_imaging_cohort(small_cohort(), work_dir=work, n_jobs=2, retry_failed=False, progress=False)
    assert again.computed == [] and sorted(again.cached) == sorted(GOOD + [BAD])
    assert again.seconds < 10
    pd.testing.assert_frame_equal(again.results, joblib_run.results)
    assert {p: p.stat().st_mtime_ns for p in files} == files
    retry = ic.run_imaging_cohort(small_cohort(), work_dir=work, n_jobs=1, progress=False)
    assert retry.computed == [BAD]                     # only the failure is tried again
    assert list(retry.failed["subject_id"]) == [BAD]


@pytest.mark.slow
def test_dask_cluster_gives_the_joblib_results(joblib_run, tmp_path):
    from distributed import LocalCluster

    subset = GOOD[:2]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        run = ic.run_imaging_cohort(small_cohort(), work_dir=tmp_path, subject_ids=subset,
                                    scheduler_address=cluster.scheduler_address, progress=False)
    assert sorted(run.computed) == subset
    ref = joblib_run.results.set_index("subject_id").loc[subset]
    got = run.results.set_index("subject_id")
    for col in ic.RESULT_KEYS:
        if col.startswith(("measured_", "true_", "target_")) or col in ("seed", "thalamus_scale", "index"):
            np.testing.assert_allclose(got[col].astype(float), ref[col].astype(float), rtol=1e-9, atol=1e-9,
                                       err_msg=col)
    assert (got["fingerprint"] == ref["fingerprint"]).all()


@pytest.mark.slow
def test_acceptance_bias_and_icc(joblib_run):
    """Issue 5: measured relative susceptibility within 2 ppb on average, ICC(A,1) > 0.9."""
    ok = joblib_run.ok
    x = ok["measured_thalamic_relative_susceptibility_ppb"].to_numpy(float)
    y = ok["target_thalamic_relative_susceptibility_ppb"].to_numpy(float)
    ba = bland_altman(x, y)
    r = icc(np.column_stack([x, y]), kind="A,1")
    assert abs(ba["bias"]) < 2.0, ba
    assert r["icc"] > 0.9, r


@pytest.mark.slow
def test_bids_route_measures_the_same_as_the_in_memory_route(joblib_run):
    """The acquisition written as BIDS and reconstructed by ``run_qsm`` gives the same numbers."""
    row = small_cohort().iloc[0].to_dict()
    res = ic.measure_cohort_subject(row, ic.ImagingSettings(qsm_route="bids"), index=0)
    assert res["status"] == "ok", res["error"]
    ref = joblib_run.results.set_index("subject_id").loc[GOOD[0]]
    for c in ic.SIMULATED_COLUMNS:
        assert res[f"measured_{c}"] == pytest.approx(ref[f"measured_{c}"], abs=1e-6), c
    assert res["reconstruction_nrmse_percent"] == pytest.approx(ref["reconstruction_nrmse_percent"], abs=1e-6)
    assert res["fingerprint"] != ref["fingerprint"]            # the route is part of the settings
