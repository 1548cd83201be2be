"""Notebooks 02-segmentation-import and 03-roi-extraction, executed headless (tests/helpers/notebooks.py).

Both run on the simulated 2 mm head phantom (their defaults); the assertions read the tables they
write. Notebook 02 takes about 10 s, notebook 03 about 25 s (it simulates and reconstructs the
phantom with ``reconstruct_phantom``'s default recipe). Notebook 03 also runs on "your data" (a χ map
and a segmentation given as files: the phantom's, without its truth) and refuses half of that pair.
"""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from papermill.exceptions import PapermillExecutionError

from analysis.imaging.roi_tables import roi_table
from analysis.simulation.anatomy import phantom_subject_measures
from analysis.simulation.phantom import make_head_phantom
from analysis.simulation.phantom_qsm import phantom_images
from tests.helpers.notebooks import execute_notebook


@pytest.mark.slow
def test_segmentation_import_notebook(tmp_path):
    run = execute_notebook("02-segmentation-import", tmp_path, resolution_mm=2.0, seed=20180301,
                           work_dir=str(tmp_path / "freesurfer"))
    t = pd.read_csv(run.output_dir / "freesurfer_phantom_stats.csv").set_index("measure")
    # what the reader got back is exactly what the writer computed from the phantom's labels
    np.testing.assert_array_equal(t["value"].to_numpy(float), t["computed_from_phantom"].to_numpy(float))
    expected = phantom_subject_measures(make_head_phantom(resolution_mm=2.0, seed=20180301))["expected"]
    assert t.loc["thalamic_volume_mm3", "value"] == expected["thalamic_volume_mm3"]          # 22112 mm³
    assert t.loc["thalamic_volume_mm3", "value"] == (t.loc["left_thalamic_volume_mm3", "value"]
                                                     + t.loc["right_thalamic_volume_mm3", "value"])
    assert 15_000 < t.loc["thalamic_volume_mm3", "value"] < 30_000
    assert 5e5 < t.loc["total_gray_volume_mm3", "value"] < 9e5                                # 723520 mm³
    assert 2.0 < t.loc["mean_cortical_thickness_mm", "value"] < 4.0                           # 3.02 mm
    assert set(t["freesurfer_version"]) == {">=7"}
    assert (run.figures_dir / "figure1_segmentation.png").stat().st_size > 20_000
    assert (tmp_path / "freesurfer" / "phantom" / "stats" / "aseg.stats").is_file()
    assert "SIMULATED phantom subject" in run.stdout()


@pytest.mark.slow
def test_roi_extraction_notebook(tmp_path):
    run = execute_notebook("03-roi-extraction", tmp_path, resolution_mm=2.0, snr=100.0, seed=20180301)
    t = pd.read_csv(run.output_dir / "roi_phantom.csv")
    get = lambda m, ex: t[(t["map"] == m) & (t["exclude_veins"] == ex)].iloc[0]  # noqa: E731
    true_ex, true_no = get("true", True), get("true", False)
    rec_ex, rec_no = get("reconstructed", True), get("reconstructed", False)
    # the truth map: vein exclusion recovers the truth (40.00 ppb), the raw VOI is biased upwards
    assert true_ex["true_relative_ppb"] == pytest.approx(40.0, abs=1e-3)
    assert true_ex["relative_ppb"] == pytest.approx(40.0, abs=0.5)
    assert true_no["error_ppb"] > 5.0                                             # +12.2 ppb
    assert true_ex["vein_sensitivity"] == 1.0
    # the reconstructed map (default recipe): within the +-3 ppb target (measured -1.50 ppb)
    assert abs(rec_ex["error_ppb"]) <= 3.0
    assert rec_no["error_ppb"] > 5.0 and abs(rec_ex["error_ppb"]) < abs(rec_no["error_ppb"])
    assert rec_ex["vein_sensitivity"] == 1.0
    # the diagnostic with the true background: the inversion's own error is about the same
    ideal_ex = get("ideal_background", True)
    assert abs(ideal_ex["error_ppb"]) <= 3.0
    out = run.stdout()
    assert "MEDI+0" in out and "background pdf" in out and "lambda 2000" in out
    assert "T2 lesion volume: 5.00 mL (phantom truth 5.00 mL)" in out
    for name in ("figure1_qsm_thalamus.png", "figure2_lesions.png"):
        assert (run.figures_dir / name).stat().st_size > 20_000, name


@pytest.mark.slow
def test_roi_extraction_notebook_on_your_data(tmp_path):
    images = phantom_images(make_head_phantom(resolution_mm=2.0, seed=20180301))
    chi, aseg = tmp_path / "sub-01_Chimap.nii.gz", tmp_path / "sub-01_aseg.nii.gz"
    nib.save(images["chi"], chi)
    nib.save(images["aseg"], aseg)
    run = execute_notebook("03-roi-extraction", tmp_path, chimap=str(chi), aseg=str(aseg))
    assert not (run.output_dir / "roi_phantom.csv").exists()
    table = pd.read_csv(run.output_dir / "roi_subject.csv")
    expected, _ = roi_table({"subject": chi}, aseg)
    pd.testing.assert_frame_equal(table, expected, rtol=1e-5, check_dtype=False)   # the CSV keeps 6 digits
    assert list(table["exclude_veins"]) == [True, False]
    assert "Figure 2 skipped" in run.stdout()
    assert (run.figures_dir / "figure1_qsm_thalamus.png").stat().st_size > 20_000


@pytest.mark.slow
def test_roi_extraction_notebook_wants_both_chimap_and_aseg(tmp_path):
    with pytest.raises(PapermillExecutionError, match="chimap is given without aseg: give both or neither"):
        execute_notebook("03-roi-extraction", tmp_path, chimap=str(tmp_path / "chi.nii.gz"))
