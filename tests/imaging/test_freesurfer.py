"""Tests of analysis.imaging.freesurfer on stats fixtures written in FreeSurfer 5.1, 6.0 and 7.1 formats.

Fixtures (``tests/data/freesurfer/<subject>/stats``): ``fs51`` (5.1 headers: CVS ``$Id`` lines
of 2011, ``IntraCranialVol``/``ICV``, ``Left-Thalamus-Proper``), ``fs6`` (6.0: ``$Id`` lines of
2016, the missing comma of ``# Measure Cortex, CortexVol Total ...`` in ``?h.aparc.stats``) and
``fs7`` (7.1.1: ``# cvs_version 7.1.1``, ``Left-Thalamus``). Tables are complete (45 aseg rows,
34 aparc regions) with made-up values.
"""

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from analysis.imaging import freesurfer as fs
from analysis.imaging import labels

DATA = Path(__file__).resolve().parents[1] / "data" / "freesurfer"

EXPECTED = {
    "fs51": dict(left=7012.4, right=6890.1, gray=612345.678901, lh=(2.41234, 121547),
                 rh=(2.39876, 119832), version="5.x", major=5, suffix="-Thalamus-Proper",
                 tiv=1498765.4321),
    "fs6": dict(left=7321.7, right=7180.2, gray=598765.432109, lh=(2.50461, 147550),
                rh=(2.48790, 146210), version="6.0", major=6, suffix="-Thalamus-Proper",
                tiv=1520198.334455),
    "fs7": dict(left=8178.8, right=7387.3, gray=625759.696158, lh=(2.39891, 118968),
                rh=(2.41123, 120455), version="7.1.1", major=7, suffix="-Thalamus",
                tiv=1420434.160521),
}


@pytest.mark.parametrize("subject", sorted(EXPECTED))
def test_read_subject_stats(subject):
    e = EXPECTED[subject]
    out = fs.read_subject_stats(DATA / subject)
    assert out["left_thalamic_volume_mm3"] == pytest.approx(e["left"])
    assert out["right_thalamic_volume_mm3"] == pytest.approx(e["right"])
    assert out["thalamic_volume_mm3"] == pytest.approx(e["left"] + e["right"])
    assert out["total_gray_volume_mm3"] == pytest.approx(e["gray"])
    assert out["estimated_tiv_mm3"] == pytest.approx(e["tiv"])
    (lt, ln), (rt, rn) = e["lh"], e["rh"]
    assert out["lh_mean_thickness_mm"] == pytest.approx(lt)
    assert out["rh_num_vertices"] == rn
    weighted = (lt * ln + rt * rn) / (ln + rn)
    assert out["mean_cortical_thickness_mm"] == pytest.approx(weighted, abs=1e-12)
    assert out["freesurfer_version"] == e["version"]
    assert out["left_thalamus_name"] == "Left" + e["suffix"]
    assert out["right_thalamus_name"] == "Right" + e["suffix"]


def test_vertex_weighting_differs_from_plain_average():
    out = fs.read_subject_stats(DATA / "fs51")
    plain = (2.41234 + 2.39876) / 2
    # lh has more vertices and is thicker, so the weighted mean is above the plain average
    assert out["mean_cortical_thickness_mm"] > plain
    assert out["mean_cortical_thickness_mm"] - plain == pytest.approx(
        (2.41234 - 2.39876) / 2 * (121547 - 119832) / (121547 + 119832), abs=1e-12)


def test_aseg_stats_table_and_measures():
    measures, table = fs.read_aseg_stats(DATA / "fs6" / "stats" / "aseg.stats")
    assert measures["TotalGrayVol"] == pytest.approx(598765.432109)
    assert measures["eTIV"] == pytest.approx(1520198.334455)
    assert measures["lhSurfaceHoles"] == 31
    assert len(table) == 45
    assert list(table.columns[:5]) == ["Index", "SegId", "NVoxels", "Volume_mm3", "StructName"]
    assert table["SegId"].dtype.kind == "i"
    row = table[table.StructName == "Right-Thalamus-Proper"].iloc[0]
    assert row.SegId == 49 and row.Volume_mm3 == pytest.approx(7180.2)
    assert table.attrs["freesurfer_version"] == "6.0"
    # FS 5.1 names the intracranial volume differently
    m51, _ = fs.read_aseg_stats(DATA / "fs51" / "stats" / "aseg.stats")
    assert "ICV" in m51 and "eTIV" not in m51
    assert m51["CorticalWhiteMatterVol"] == pytest.approx(481082.642215)


def test_aparc_stats_with_the_fs6_missing_comma():
    stats = fs.read_stats_file(DATA / "fs6" / "stats" / "lh.aparc.stats")
    m = stats.measures["CortexVol"]          # '# Measure Cortex, CortexVol Total cortical ...'
    assert (m.category, m.name, m.unit) == ("Cortex", "CortexVol", "mm^3")
    assert m.description == "Total cortical gray matter volume"
    assert m.value == pytest.approx(454444.111110)
    measures, regions = fs.read_aparc_stats(DATA / "fs6" / "stats" / "lh.aparc.stats")
    assert measures["MeanThickness"] == pytest.approx(2.50461)
    assert measures["NumVert"] == 147550
    assert measures["WhiteSurfArea"] == pytest.approx(98536.5)
    assert len(regions) == 34 and regions.attrs["hemi"] == "lh"
    assert regions.loc[regions.StructName == "insula", "ThickAvg"].iloc[0] > 0
    # FS 5.1 writes SurfArea instead of WhiteSurfArea
    m51, _ = fs.read_aparc_stats(DATA / "fs51" / "stats" / "rh.aparc.stats")
    assert m51["SurfArea"] == pytest.approx(82756.9) and "WhiteSurfArea" not in m51


@pytest.mark.parametrize("header, version, major, exact", [
    ({"cvs_version": "7.1.1"}, "7.1.1", 7, True),
    ({"cvs_version": "7.4.1"}, "7.4.1", 7, True),
    ({"FreeSurfer": "freesurfer-linux-centos7_x86_64-7.1.1-20200723-8b40551"}, "7.1.1", 7, True),
    ({"FreeSurfer": "freesurfer-Linux-centos6_x86_64-stable-pub-v6.0.0-2beef8f"}, "6.0.0", 6, True),
    ({"cvs_version": "$Id: mri_segstats.c,v 1.75.2.9 2011/04/27 20:47:55 greve Exp $"}, "5.x", 5, False),
    ({"cvs_version": "$Id: mri_segstats.c,v 1.86.2.3 2013/05/02 18:00:00 nicks Exp $"}, "5.x", 5, False),
    ({"cvs_version": "$Id: mris_anatomical_stats.c,v 1.79 2016/03/14 15:15:34 greve Exp $",
      "mrisurf.c-cvs_version": "$Id: mrisurf.c,v 1.781.2.6 2016/12/27 16:47:14 zkaufman Exp $"},
     "6.0", 6, False),
    ({"cvs_version": "$Id: mri_segstats.c,v 1.130 2018/02/01 10:00:00 greve Exp $"}, ">=6", 6, False),
    ({"CreationTime": "2019/05/09-21:02:17-GMT"}, "<=6", 6, False),
    ({"cmdline": "mri_segstats --ctab /opt/freesurfer-dev-7.2.0/ASegStatsLUT.txt"}, "unknown", None, False),
    ({}, "unknown", None, False),
])
def test_detect_version(header, version, major, exact):
    v = fs.detect_version(header)
    assert (v.version, v.major, v.exact) == (version, major, exact)
    assert v.detail


def test_detect_version_from_thalamus_names_only():
    assert fs.detect_version({}, structure_names=["Left-Thalamus-Proper"]).version == "<=6"
    v7 = fs.detect_version({}, structure_names=["Left-Thalamus", "Left-Caudate"])
    assert v7.version == ">=7" and v7.thalamus_suffix == "-Thalamus"


def test_label_lookup_tables():
    v6, v7 = labels.label_lookup_table(version=6), labels.label_lookup_table(version=7)
    assert (v6[10], v6[49], v6[9]) == ("Left-Thalamus-Proper", "Right-Thalamus-Proper", "Left-Thalamus")
    assert (v7[10], v7[49], v7[9]) == ("Left-Thalamus", "Right-Thalamus", "Left-Thalamus-unused")
    assert v6[4] == v7[4] == "Left-Lateral-Ventricle" and v7[43] == "Right-Lateral-Ventricle"
    assert labels.label_lookup_table(version="5.x")[10] == "Left-Thalamus-Proper"
    stats = fs.read_stats_file(DATA / "fs7" / "stats" / "aseg.stats")
    assert labels.label_name(49, version=stats.version) == "Right-Thalamus"
    with pytest.raises(ValueError, match="9999"):
        labels.label_name(9999)


# --------------------------------------------------------------------------- errors

def _copy_subject(tmp_path, subject="fs7"):
    dst = tmp_path / subject
    shutil.copytree(DATA / subject, dst)
    return dst


def _drop_lines(path, predicate):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines if not predicate(line)))


def test_missing_measure_is_named(tmp_path):
    sub = _copy_subject(tmp_path)
    _drop_lines(sub / "stats" / "aseg.stats", lambda line: "TotalGrayVol" in line)
    with pytest.raises(fs.MissingMeasureError, match=r"'TotalGrayVol' not found in .*aseg\.stats"):
        fs.read_subject_stats(sub)
    sub = _copy_subject(tmp_path, "fs6")
    _drop_lines(sub / "stats" / "rh.aparc.stats", lambda line: "MeanThickness" in line)
    with pytest.raises(ValueError, match=r"'MeanThickness' not found in .*rh\.aparc\.stats"):
        fs.read_subject_stats(sub)


def test_missing_thalamus_row_is_named(tmp_path):
    sub = _copy_subject(tmp_path)
    path = sub / "stats" / "aseg.stats"
    _drop_lines(path, lambda line: "Right-Thalamus " in line)
    with pytest.raises(ValueError, match="NRows 45.*44 table rows"):
        fs.read_subject_stats(sub)       # the header's row count catches the truncation
    path.write_text(path.read_text().replace("# NRows 45", "# NRows 44"))
    with pytest.raises(fs.MissingMeasureError, match=r"label 49 \(Right-Thalamus-Proper / Right-Thalamus\)"):
        fs.read_subject_stats(sub)


def test_missing_files_are_named(tmp_path):
    sub = _copy_subject(tmp_path)
    (sub / "stats" / "rh.aparc.stats").unlink()
    with pytest.raises(FileNotFoundError, match=r"rh\.aparc\.stats"):
        fs.read_subject_stats(sub)
    with pytest.raises(FileNotFoundError, match="nosuchsubject"):
        fs.read_subject_stats(tmp_path / "nosuchsubject")
    with pytest.raises(FileNotFoundError, match=r"lh\.aparc\.stats"):
        fs.read_aparc_stats(tmp_path / "lh.aparc.stats")


def test_malformed_files(tmp_path):
    bad = tmp_path / "aseg.stats"
    src = (DATA / "fs7" / "stats" / "aseg.stats").read_text()
    bad.write_text(src.replace("Left-Caudate   ", "Left Caudate   "))   # one field too many
    with pytest.raises(ValueError, match=r"line \d+: 11 fields"):
        fs.read_aseg_stats(bad)
    bad.write_text("\n".join(line for line in src.splitlines() if "ColHeaders" not in line))
    with pytest.raises(ValueError, match="ColHeaders"):
        fs.read_aseg_stats(bad)
    with pytest.raises(ValueError, match="not an aparc stats table"):
        fs.read_aparc_stats(DATA / "fs7" / "stats" / "aseg.stats")


def test_mixed_versions_warn(tmp_path):
    sub = _copy_subject(tmp_path, "fs51")
    for hemi in ("lh", "rh"):
        shutil.copy(DATA / "fs7" / "stats" / f"{hemi}.aparc.stats", sub / "stats")
    with pytest.warns(UserWarning, match="different FreeSurfer versions"):
        out = fs.read_subject_stats(sub)
    assert out["freesurfer_version"] == "5.x"            # the aseg.stats version is reported
    assert out["left_thalamus_name"] == "Left-Thalamus-Proper"


def test_thalamus_spelling_contradicting_the_header_warns(tmp_path):
    sub = _copy_subject(tmp_path, "fs7")
    path = sub / "stats" / "aseg.stats"
    path.write_text(path.read_text().replace("Left-Thalamus    ", "Left-Thalamus-Proper"))
    with pytest.warns(UserWarning, match="thalamus named 'Left-Thalamus-Proper'"):
        out = fs.read_subject_stats(sub)
    assert out["left_thalamic_volume_mm3"] == pytest.approx(8178.8)


# --------------------------------------------------------------------------- images

def _labels():
    lab = np.zeros((6, 7, 8), dtype=np.int32)
    lab[1:3, 2:4, 3:5] = 10
    lab[3:5, 2:4, 3:5] = 49
    lab[2, 5, 5] = 4
    return lab


def test_load_aseg_from_mgz_and_subject_dir(tmp_path):
    aff = np.array([[-1.0, 0, 0, 3], [0, 0, 1, -4], [0, -1, 0, 5], [0, 0, 0, 1]])   # LIA, conformed
    (tmp_path / "sub" / "mri").mkdir(parents=True)
    nib.save(nib.MGHImage(_labels(), aff), tmp_path / "sub" / "mri" / "aparc+aseg.mgz")
    img = fs.load_aseg(tmp_path / "sub")                      # falls back to aparc+aseg.mgz
    assert isinstance(img, nib.Nifti1Image) and img.get_data_dtype() == np.int32
    np.testing.assert_allclose(img.affine, aff)
    assert np.array_equal(np.asarray(img.dataobj), _labels())
    other = _labels()
    other[other == 49] = 0
    nib.save(nib.MGHImage(other, aff), tmp_path / "sub" / "mri" / "aseg.mgz")
    assert fs.find_segmentation(tmp_path / "sub").name == "aseg.mgz"   # aseg.mgz preferred
    assert not np.any(np.asarray(fs.load_aseg(tmp_path / "sub").dataobj) == 49)
    nib.save(nib.Nifti1Image(_labels().astype(np.float32), aff), tmp_path / "seg.nii.gz")
    assert np.array_equal(np.asarray(fs.load_aseg(tmp_path / "seg.nii.gz").dataobj), _labels())


def test_load_aseg_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="aseg.mgz"):
        fs.load_aseg(tmp_path)                                 # no mri/ folder
    with pytest.raises(FileNotFoundError, match="missing.mgz"):
        fs.load_aseg(tmp_path / "missing.mgz")
    nib.save(nib.Nifti1Image(np.full((3, 3, 3), 0.5, np.float32), np.eye(4)), tmp_path / "p.nii.gz")
    with pytest.raises(ValueError, match="non-integer"):
        fs.load_aseg(tmp_path / "p.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2), np.int16), np.eye(4)), tmp_path / "t.nii.gz")
    with pytest.raises(ValueError, match="3-D"):
        fs.load_aseg(tmp_path / "t.nii.gz")
