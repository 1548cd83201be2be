"""Notebook 04-imaging-cohort: parameters, and a headless run on a tiny random cohort.

The run uses 3 subjects of a small random cohort (``analysis.simulation.imaging_cohort.example_cohort``, not
the calibrated ``data/cohort.csv``) at 2 mm in temporary folders, then runs the notebook again to
check that the second run reuses the per-subject results written by the first (another process).
"""

import nbformat
import pandas as pd
import pytest

from analysis.cohort.dictionary import COLUMN_NAMES, load_cohort
from analysis.simulation.imaging_cohort import SIMULATED_COLUMNS, example_cohort
from tests.helpers.notebooks import execute_notebook, notebook_path

STEM = "04-imaging-cohort"
PARAMETERS = {"cohort_csv": "data/cohort.csv", "output_dir": "results/tables", "figures_dir": "figures",
              "seed": 20180301, "work_dir": "results/work", "resolution_mm": 2.0, "scheduler_address": None}


def test_notebook_declares_its_parameters_and_has_no_outputs():
    import papermill as pm

    path = notebook_path(STEM)
    declared = pm.inspect_notebook(str(path))
    assert set(PARAMETERS) | {"n_subjects", "snr", "n_jobs", "realism"} == set(declared)
    assert declared["realism"]["default"] == '"realistic"'
    for name, default in PARAMETERS.items():
        assert declared[name]["default"] == repr(default).replace("'", '"'), name
    nb = nbformat.read(str(path), as_version=4)
    assert nb.nbformat == 4 and nb.metadata["kernelspec"]["name"] == "python3"
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None
    assert "simulated head phantom, not a patient" in nb.cells[0].source


@pytest.mark.slow
def test_notebook_runs_on_a_tiny_cohort_and_resumes(tmp_path):
    csv = tmp_path / "cohort.csv"
    cohort = example_cohort(6, seed=3)
    cohort.to_csv(csv, index=False)
    # the simple phantom keeps this mechanics test short; the realistic one is tested in tests/simulation
    params = dict(cohort_csv=str(csv), work_dir=str(tmp_path / "work"), n_subjects=3, n_jobs=2, realism="simple")
    run = execute_notebook(STEM, tmp_path / "first", **params)
    out = run.stdout()
    assert "3 computed now, 0 reused" in out and "SIMULATED" in out

    measured = load_cohort(run.output_dir / "imaging_cohort_measured.csv")
    assert list(measured.columns) == list(COLUMN_NAMES) and len(measured) == 3
    assert set(measured["subject_id"]) <= set(cohort["subject_id"])
    agreement = pd.read_csv(run.output_dir / "imaging_cohort_agreement.csv")
    assert list(agreement["variable"]) == list(SIMULATED_COLUMNS)
    assert agreement["n"].eq(3).all()
    assert "SIMULATED" in (run.output_dir / "imaging_cohort_agreement.md").read_text()
    subjects = pd.read_csv(run.output_dir / "imaging_cohort_subjects.csv")
    assert subjects["status"].eq("ok").all() and len(subjects) == 3
    lesion = pd.read_csv(run.output_dir / "imaging_cohort_lesion_model.csv")
    assert list(lesion["model"]) == ["unadjusted", "adjusted"]
    assert lesion.set_index("model").loc["adjusted"].isna()["measured_coef"]   # 3 subjects, 6 coefficients
    for name in ("imaging_cohort_bland_altman.png", "imaging_cohort_scatter.png"):
        assert (run.figures_dir / name).stat().st_size > 10_000

    again = execute_notebook(STEM, tmp_path / "second", **params)
    assert "0 computed now, 3 reused" in again.stdout()
    pd.testing.assert_frame_equal(load_cohort(again.output_dir / "imaging_cohort_measured.csv"), measured)
