"""analysis.compare: a run's tables against a reference set, with the stated tolerances."""

import pandas as pd
import pytest

from analysis.cli import main
from analysis.compare import TOLERANCES, compare_tables, tolerance_for


def _write(folder, name, df):
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / name, index=False)


@pytest.fixture
def folders(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    stats = pd.DataFrame({"outcome": ["a", "b"], "coef": [0.123456789012, -2.5], "p": [0.04, 0.9]})
    imaging = pd.DataFrame({"subject_id": ["sub-01"], "chi_ppb": [-27.06949657]})
    for folder in (ref, run):
        _write(folder, "table1.csv", stats)
        _write(folder, "imaging_cohort_subjects.csv", imaging)
    return ref, run, stats, imaging


def test_identical_tables(folders):
    ref, run, *_ = folders
    out = compare_tables(run, ref).set_index("table")
    assert (out["status"] == "identical").all()


def test_statistics_are_held_to_1e_9_and_imaging_to_its_measured_tolerance(folders):
    ref, run, stats, imaging = folders
    _write(run, "table1.csv", stats.assign(coef=stats["coef"] * (1 + 1e-12)))            # LAPACK's last bits
    _write(run, "imaging_cohort_subjects.csv", imaging.assign(chi_ppb=imaging["chi_ppb"] * (1 + 1e-5)))
    out = compare_tables(run, ref).set_index("table")
    assert out.loc["table1.csv", "status"] == "within"
    assert out.loc["imaging_cohort_subjects.csv", "status"] == "within"
    # 27.07 ppb x 1e-5 = 2.7e-4 ppb, in units of the ppb columns' 0.05 ppb
    assert out.loc["imaging_cohort_subjects.csv", "worst"] == pytest.approx(27.06949657e-5 / 0.05, rel=1e-3)
    _write(run, "imaging_cohort_subjects.csv", imaging.assign(chi_ppb=imaging["chi_ppb"] + 0.1))      # 0.1 ppb
    assert compare_tables(run, ref).set_index("table").loc["imaging_cohort_subjects.csv", "status"] == "DIFFERENT"
    _write(run, "table1.csv", stats.assign(coef=stats["coef"] * (1 + 1e-6)))             # a real change
    out = compare_tables(run, ref).set_index("table")
    assert out.loc["table1.csv", "status"] == "DIFFERENT"
    assert out.loc["table1.csv", "cells_outside"] == 2
    assert "coef" in out.loc["table1.csv", "worst_cell"]


def test_text_columns_missing_and_extra_tables(folders):
    ref, run, stats, _ = folders
    _write(run, "table1.csv", stats.assign(outcome=["a", "c"]))
    (run / "imaging_cohort_subjects.csv").unlink()
    _write(run, "new.csv", stats)
    out = compare_tables(run, ref).set_index("table")
    assert out.loc["table1.csv", "status"] == "DIFFERENT" and "outcome" in out.loc["table1.csv", "worst_cell"]
    assert out.loc["table1.csv", "worst"] == float("inf")
    assert out.loc["imaging_cohort_subjects.csv", "status"] == "missing"
    assert out.loc["new.csv", "status"] == "extra"
    _write(run, "table1.csv", stats.drop(columns="p"))
    assert compare_tables(run, ref).set_index("table").loc["table1.csv", "status"] == "DIFFERENT"


def test_tolerances_by_table_and_column():
    assert tolerance_for("table1.csv", "coef").rtol == 1e-9
    assert tolerance_for("qsm_accuracy.csv", "thalamus_error_ppb").atol == 0.05
    assert tolerance_for("roi_phantom.csv", "n_vein_voxels_excluded").rtol == 0.05
    assert tolerance_for("imaging_cohort_agreement.csv", "icc_a1").rtol == 1e-2
    from analysis.io import ROOT

    for path in sorted((ROOT / "results" / "tables").glob("*.csv")):
        assert tolerance_for(path.name) in TOLERANCES


def test_cli_exit_status(folders, capsys):
    ref, run, stats, _ = folders
    with pytest.raises(SystemExit) as no:
        _write(run, "table1.csv", stats.assign(p=[0.05, 0.9]))
        main(["compare", str(run), str(ref)])
    assert no.value.code == 1
    assert "DIFFERENT  table1.csv" in capsys.readouterr().out
    _write(run, "table1.csv", stats)
    assert main(["compare", str(run), str(ref)]) in (0, None)
    assert main(["compare", str(run / "nope"), str(ref)]) == 2          # one-line error, no traceback
