"""Notebook 01-qsm-reconstruction, executed headless with papermill (tests/helpers/notebooks.py).

The phantom run (realistic phantom, 2 mm, SNR 100, the notebook's defaults; about 2 min on 2 cores) checks the numbers
of the written accuracy table against the truth; the user-data run reconstructs a 4 mm BIDS dataset
written by ``python -m analysis phantom`` through ``bids_dir`` (no truth: no table).
"""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from tests.helpers.notebooks import execute_notebook

RECIPES = ["MEDI+0", "MEDI+0 (λ 1000)", "MEDI", "MEDI (V-SHARP)", "TKD"]
FIGURES = ["qsm_acquisition.png", "qsm_field_mask.png", "qsm_local_fields.png", "qsm_chi_maps.png",
           "qsm_lambda_sweep.png"]


@pytest.fixture(scope="module")
def phantom_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nb01")
    run = execute_notebook("01-qsm-reconstruction", tmp, resolution_mm=2.0, snr=100.0, seed=20180301,
                           work_dir=str(tmp / "work"))
    table = pd.read_csv(run.output_dir / "qsm_accuracy.csv").set_index("method")
    return run, table, tmp / "work"


@pytest.mark.slow
def test_accuracy_table_numbers(phantom_run):
    """The realistic phantom (the notebook's default), 2 mm, SNR 100, seed 20180301."""
    _, t, _ = phantom_run
    assert list(t.index) == RECIPES
    medi0, tkd = t.loc["MEDI+0"], t.loc["TKD"]
    # measured: NRMSE 42.3 %, HFEN 35.2 %, SSIM 0.79; TKD 69.4 %, 55.0 %, 0.45
    assert medi0["nrmse_pct"] < 45.0
    assert medi0["nrmse_pct"] < 0.7 * tkd["nrmse_pct"]
    assert medi0["hfen_pct"] < 0.7 * tkd["hfen_pct"]
    assert medi0["ssim"] > 0.75 > 0.5 > tkd["ssim"]
    # the whole-brain error orders the recipes as the notebook's narrative says
    assert medi0["nrmse_pct"] < t.loc["MEDI+0 (λ 1000)", "nrmse_pct"]
    assert medi0["nrmse_pct"] < min(t.loc["MEDI", "nrmse_pct"], t.loc["MEDI (V-SHARP)", "nrmse_pct"])
    assert t["nrmse_pct"].idxmax() == "TKD"
    # the paper's measure: thalamus - atrial CSF, veins excluded; the reconstruction's own error (map minus the
    # same measure on the true map) within the ±3 ppb target (measured +0.7 ppb); the measure itself reads the
    # realistic true map about 3 ppb low (36.9 against 40 ppb)
    assert abs(medi0["thalamus_reconstruction_error_ppb"]) <= 3.0
    assert medi0["thalamus_relative_ppb"] == pytest.approx(40.0, abs=6.0)
    assert -4.5 < medi0["thalamus_measured_on_truth_ppb"] - 40.0 < -1.5
    assert medi0["thalamus_relative_error_ppb"] == pytest.approx(
        medi0["thalamus_measured_on_truth_ppb"] - 40.0 + medi0["thalamus_reconstruction_error_ppb"], abs=1e-6)
    # structure means (ppb), CSF-referenced: deep grey matter within 5 ppb with MEDI+0 (measured -0.1, -1.9, -3.5,
    # -3.6), white matter within 6 (+5.3; +4.5 with the former 10 + 5 mm SMV passes), TKD far off
    for s in ("thalamus", "caudate", "putamen", "pallidum", "csf"):
        assert abs(medi0[f"{s}_error_ppb"]) < 5.0, s
    assert abs(medi0["white_matter_error_ppb"]) < 6.0
    assert tkd["pallidum_error_ppb"] < -20.0
    assert t["n_voxels"].nunique() == 1                       # one evaluation mask for all
    assert t.loc["MEDI+0", "lambda"] == 2000.0 and t.loc["MEDI+0 (λ 1000)", "lambda"] == 1000.0


@pytest.mark.slow
def test_outputs_figures_and_derivatives(phantom_run):
    run, _, work = phantom_run
    md = (run.output_dir / "qsm_accuracy.md").read_text()
    assert md.startswith("# QSM reconstruction accuracy") and "SIMULATED" in md and "| MEDI+0" in md
    for name in FIGURES:
        assert (run.figures_dir / name).stat().st_size > 20_000, name
    out = run.stdout()
    assert "SIMULATED head phantom" in out and "0 brain voxels missed" in out
    anat = work / "qsm" / "medi0" / "sub-01" / "anat"
    chi = nib.load(anat / "sub-01_Chimap.nii.gz")
    mask = np.asarray(nib.load(anat / "sub-01_desc-brain_mask.nii.gz").dataobj) > 0
    data = np.asarray(chi.dataobj)
    assert chi.shape == (80, 96, 84) and np.all(data[~mask] == 0) and 0.05 < np.abs(data[mask]).max() < 2.0
    side = json.loads((anat / "sub-01_Chimap.json").read_text())
    assert side["Units"] == "ppm" and side["Method"] == "MEDI+0"
    assert side["Parameters"]["recipe"] == "MEDI+0" and side["Parameters"]["lambda"] == 2000.0
    assert side["Parameters"]["options"] == {"smv_radius_mm": "auto", "merit": True, "solver": "gncg"}
    assert side["Parameters"]["smv_radii_mm"] == [30.0, 20.0, 10.0, 5.0]
    assert side["Parameters"]["lambda_method"] == "given" and side["Parameters"]["solver"] == "gncg"
    for slug in ("medi0-lambda1000", "medi", "medi-vsharp", "tkd"):
        assert (work / "qsm" / slug / "sub-01" / "anat" / "sub-01_Chimap.nii.gz").is_file(), slug
    # the simulated input is BIDS, with its truth beside it
    raw = work / "qsm_phantom" / "sub-01" / "anat"
    assert len(list(raw.glob("sub-01_echo-*_part-phase_MEGRE.nii.gz"))) == 11
    assert (work / "qsm_phantom" / "derivatives" / "truth").is_dir()


@pytest.mark.slow
def test_user_bids_dataset_without_truth(tmp_path):
    """bids_dir given: the same steps on 'your data' (here a 4 mm phantom written by the CLI); no table."""
    from analysis.cli import main

    bids = tmp_path / "mydata"
    assert main(["phantom", str(bids), "--resolution", "4", "--subject", "p7", "--seed", "3"]) == 0
    before = {p: p.stat().st_mtime_ns for p in bids.rglob("*") if p.is_file()}
    run = execute_notebook("01-qsm-reconstruction", tmp_path, bids_dir=str(bids), participant_label="p7",
                           work_dir=str(tmp_path / "work"))
    assert not (run.output_dir / "qsm_accuracy.csv").exists()
    assert "accuracy table skipped" in run.stdout()
    for name in FIGURES:
        assert (run.figures_dir / name).is_file(), name
    chi = tmp_path / "work" / "qsm" / "medi0" / "sub-p7" / "anat" / "sub-p7_Chimap.nii.gz"
    assert nib.load(chi).shape == (40, 48, 42)
    assert {p: p.stat().st_mtime_ns for p in bids.rglob("*") if p.is_file()} == before   # inputs untouched
