"""analysis.imaging.roi_tables: the ROI notebook's tables for your own data (χ maps + a segmentation).

Measured on the head phantom's true χ map and aseg, written to NIfTI files as a user's data would
be: the table must hold exactly what ``thalamic_susceptibility`` returns for each map and
exclusion, and agree with the phantom's own table (``phantom_roi_table``, which adds the truth).
"""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from analysis.imaging import roi
from analysis.imaging.roi_tables import HEMISPHERE_QUANTITIES, ROI_COLUMNS, hemisphere_table, roi_table
from analysis.simulation import phantom_qsm as pq


@pytest.fixture(scope="module")
def phantom(head_phantom):
    return head_phantom(2.0, 20180301)


@pytest.fixture(scope="module")
def files(phantom, tmp_path_factory):
    """A 'subject' on disk: the true χ map (NaN outside the brain) and the aseg, as NIfTI files."""
    images = pq.phantom_images(phantom)
    tmp = tmp_path_factory.mktemp("roi_tables")
    chi, aseg = tmp / "sub-01_Chimap.nii.gz", tmp / "sub-01_aseg.nii.gz"
    nib.save(images["chi"], chi)
    nib.save(images["aseg"], aseg)
    half = tmp / "sub-01_half_Chimap.nii.gz"
    nib.save(nib.Nifti1Image(0.5 * images["chi"].get_fdata(dtype=np.float32), images["chi"].affine), half)
    return {"chi": chi, "aseg": aseg, "half": half, "images": images}


def test_roi_table_rows_are_the_measurements(files):
    table, rois = roi_table({"subject": files["chi"], "half": files["half"]}, files["aseg"], vein_threshold_mad=3.0)
    assert list(table.columns) == list(ROI_COLUMNS)
    assert list(zip(table["map"], table["exclude_veins"])) == [("subject", True), ("subject", False),
                                                               ("half", True), ("half", False)]
    assert set(rois) == {("subject", True), ("subject", False), ("half", True), ("half", False)}
    for _, row in table.iterrows():
        path = files["chi"] if row["map"] == "subject" else files["half"]
        ref = roi.thalamic_susceptibility(path, files["aseg"], exclude_veins=bool(row["exclude_veins"]))
        for col in ROI_COLUMNS[2:]:
            assert row[col] == ref[col], (row["map"], row["exclude_veins"], col)
    s = table.set_index(["map", "exclude_veins"])
    # the veins raise the VOI without exclusion; halving χ halves the relative value (exclusion then finds the
    # same voxels, the threshold scales with χ)
    assert s.loc[("subject", False), "relative_ppb"] > s.loc[("subject", True), "relative_ppb"] + 5
    assert s.loc[("subject", True), "n_vein_voxels_excluded"] > 0 == s.loc[("subject", False), "n_vein_voxels_excluded"]
    assert s.loc[("half", True), "relative_ppb"] == pytest.approx(0.5 * s.loc[("subject", True), "relative_ppb"],
                                                                  rel=1e-5)
    assert rois[("subject", True)].vein().sum() == s.loc[("subject", True), "n_vein_voxels_excluded"]


def test_roi_table_agrees_with_the_phantom_table(phantom, files):
    table, _ = roi_table({"true": files["images"]["chi"]}, files["images"]["aseg"])
    ptable, _ = pq.phantom_roi_table({"true": files["images"]["chi"]}, phantom)
    pd.testing.assert_frame_equal(table, ptable[list(ROI_COLUMNS)])


def test_roi_table_options_and_errors(files):
    table, rois = roi_table({"s": files["chi"]}, files["aseg"], exclude_veins=(True,), hemisphere="left")
    assert len(table) == 1 and list(rois) == [("s", True)]
    assert table.loc[0, "relative_ppb"] == roi.thalamic_susceptibility(files["chi"], files["aseg"],
                                                                       hemisphere="left")["relative_ppb"]
    with pytest.raises(ValueError, match="non-empty dict"):
        roi_table({}, files["aseg"])
    with pytest.raises(ValueError, match="non-empty dict"):
        roi_table([files["chi"]], files["aseg"])
    with pytest.raises(ValueError, match="exclude_veins must be"):
        roi_table({"s": files["chi"]}, files["aseg"], exclude_veins=())
    with pytest.raises(ValueError, match="return_rois"):
        roi_table({"s": files["chi"]}, files["aseg"], return_rois=False)


def test_hemisphere_table(files):
    detail = roi.thalamic_susceptibility(files["chi"], files["aseg"])
    t = hemisphere_table(detail)
    assert list(t.columns) == ["left", "right"] and list(t.index) == list(HEMISPHERE_QUANTITIES)
    for side in ("left", "right"):
        for q in HEMISPHERE_QUANTITIES:
            assert t.loc[q, side] == detail[f"{side}_{q}"], (side, q)
    assert hemisphere_table(detail, quantities=("relative_ppb",)).shape == (1, 2)
    one_side = roi.thalamic_susceptibility(files["chi"], files["aseg"], hemisphere="left")
    with pytest.raises(ValueError, match="right_"):
        hemisphere_table(one_side)
