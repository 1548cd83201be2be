"""The phantom as a FreeSurfer-like subject: files, round trip through read_subject_stats, safety."""

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from analysis.imaging import (
    figures,
    roi,  # noqa: E402
)
from analysis.imaging import freesurfer as fs  # noqa: E402
from analysis.simulation.anatomy import gray_matter_mask  # noqa: E402
from analysis.simulation.freesurfer_subject import write_phantom_subject  # noqa: E402
from analysis.simulation.phantom import make_head_phantom  # noqa: E402
from analysis.simulation.phantom_qsm import true_thalamic_susceptibility  # noqa: E402


@pytest.fixture(scope="module")
def phantom():
    return make_head_phantom(resolution_mm=2.0, seed=3, lesion_volume_ml=4.0, n_lesions=4)


@pytest.fixture(scope="module")
def subject(phantom, tmp_path_factory):
    return write_phantom_subject(phantom, tmp_path_factory.mktemp("subjects"), "ph")


def test_round_trip_is_exact(phantom, subject):
    stats = fs.read_subject_stats(subject.subject_dir)
    for key, value in subject.expected.items():
        assert stats[key] == value, key
    # the expected values are what the phantom's labels say
    vox = float(np.prod(phantom.voxel_size_mm))
    assert stats["left_thalamic_volume_mm3"] == (phantom.aseg == 10).sum() * vox
    assert stats["thalamic_volume_mm3"] == np.isin(phantom.aseg, (10, 49)).sum() * vox
    assert stats["total_gray_volume_mm3"] == gray_matter_mask(phantom.aseg).sum() * vox
    # the aseg thalamus keeps the vein voxels: larger than the tissue
    assert stats["thalamic_volume_mm3"] > phantom.params["thalamus_volume_ml"]["total"] * 1000
    assert 1.5 < stats["mean_cortical_thickness_mm"] < 4.0
    names = (stats["left_thalamus_name"], stats["right_thalamus_name"])
    assert names == ("Left-Thalamus", "Right-Thalamus")
    assert stats["freesurfer_version"] == ">=7"
    measures, table = fs.read_aseg_stats(subject.files["aseg.stats"])
    assert measures["TotalGrayVol"] == pytest.approx(
        measures["CortexVol"] + measures["SubCortGrayVol"]
        + table.loc[table.SegId.isin([8, 47]), "Volume_mm3"].sum())
    assert set(table.SegId) >= {4, 10, 43, 49, 77}
    assert table.loc[table.SegId == 77, "NVoxels"].iloc[0] == phantom.lesion_mask.sum()


def test_aparc_tables(subject):
    for hemi in ("lh", "rh"):
        measures, regions = fs.read_aparc_stats(subject.files[f"{hemi}.aparc.stats"])
        assert len(regions) == 34 and "insula" in set(regions.StructName)
        assert regions.NumVert.sum() == measures["NumVert"]          # every vertex has a parcel
        assert regions.SurfArea.sum() == pytest.approx(measures["WhiteSurfArea"], rel=1e-3)
        cortex_vol = subject.measures["aseg_measures"][f"{hemi}CortexVol"][2]
        assert regions.GrayVol.sum() == pytest.approx(cortex_vol, rel=1e-3)   # parcels tile the cortex
        assert measures["MeanThickness"] == pytest.approx(cortex_vol / measures["WhiteSurfArea"], rel=1e-4)
        assert regions.ThickAvg.max() <= 5.0
        stats = fs.read_stats_file(subject.files[f"{hemi}.aparc.stats"])
        assert "phantom_note" in stats.header                     # nominal values are labelled


def test_freesurfer6_layout(phantom, subject, tmp_path):
    s6 = write_phantom_subject(phantom, tmp_path, "ph6", freesurfer_version=6)
    stats6 = fs.read_subject_stats(s6.subject_dir)
    stats7 = fs.read_subject_stats(subject.subject_dir)
    for key in subject.expected:
        assert stats6[key] == stats7[key]
    assert stats6["left_thalamus_name"] == "Left-Thalamus-Proper"
    assert stats6["freesurfer_version"] == "<=6"
    text = s6.files["lh.aparc.stats"].read_text()
    assert "# Measure Cortex, CortexVol Total cortical gray matter volume," in text   # FS 6 bug


def test_images(phantom, subject):
    seg = fs.load_aseg(subject.subject_dir)
    assert np.array_equal(np.asarray(seg.dataobj), phantom.aseg)
    assert np.allclose(seg.affine, phantom.affine)
    parc = np.asarray(nib.load(subject.files["aparc+aseg"]).dataobj)
    cortex = np.isin(phantom.aseg, (3, 42))
    assert np.all((parc[cortex] > 1000) & (parc[cortex] < 3000))
    assert np.array_equal(parc[~cortex], phantom.aseg[~cortex])
    t1 = np.asarray(nib.load(subject.files["T1"]).dataobj)
    assert t1.dtype == np.uint8
    assert np.percentile(t1[phantom.labels == 2], 90) == 110          # FreeSurfer's WM level
    flair = np.asarray(nib.load(subject.files["FLAIR"]).dataobj).astype(float)
    assert flair[phantom.lesion_mask].mean() > 1.5 * flair[phantom.labels == 2].mean()
    lesion_ml = roi.lesion_volume_ml(subject.files["lesions"])
    assert lesion_ml == pytest.approx(phantom.params["lesion_volume_ml"])
    prov = json.loads(subject.files["provenance"].read_text())
    assert prov["simulated"] is True and prov["phantom_params"]["seed"] == 3


def test_subject_dir_feeds_the_roi(phantom, subject):
    chi = nib.Nifti1Image(phantom.chi_ppm.astype(np.float32), phantom.affine)
    out = roi.thalamic_susceptibility(chi, subject.subject_dir)
    truth = true_thalamic_susceptibility(phantom)["relative_ppb"]
    assert out["relative_ppb"] == pytest.approx(truth, abs=1.0)


def test_never_overwrites(phantom, subject, tmp_path):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_phantom_subject(phantom, subject.subject_dir.parent, "ph")
    again = write_phantom_subject(phantom, subject.subject_dir.parent, "ph", overwrite=True)
    assert again.expected == subject.expected
    real = tmp_path / "bert"
    (real / "stats").mkdir(parents=True)
    (real / "stats" / "aseg.stats").write_text("# a real FreeSurfer file\n")
    with pytest.raises(FileExistsError, match="not written by"):
        write_phantom_subject(phantom, tmp_path, "bert", overwrite=True)
    assert (real / "stats" / "aseg.stats").read_text() == "# a real FreeSurfer file\n"
    with pytest.raises(ValueError, match="freesurfer_version"):
        write_phantom_subject(phantom, tmp_path, "x", freesurfer_version=5)


def test_figure1_segmentation_is_radiological(subject):
    mri = subject.subject_dir / "mri"
    fig = figures.figure1_segmentation(mri / "T1.mgz", mri / "aseg.mgz",
                                       parcellation_img=mri / "aparc+aseg.mgz")
    axes = fig.axes
    assert len(axes) == 5
    for ax in axes[:4]:                 # axial panels, overlays drawn: patient's right on the left
        x0, x1 = ax.get_xlim()
        assert x0 > x1
    x0, x1 = axes[4].get_xlim()         # sagittal: anterior to the right
    assert x0 < x1
    plt.close(fig)
