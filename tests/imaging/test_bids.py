"""BIDS MEGRE writer/reader: exact round trip, phase rescaling, inheritance, errors that name the file."""

import json
import logging

import nibabel as nib
import numpy as np
import pytest

from analysis.imaging.bids import find_megre, load_megre, parse_entities
from analysis.imaging.derivatives import write_qsm_derivatives
from analysis.simulation.bids_dataset import load_truth, write_megre_subject, write_truth
from tests.helpers.megre import _edit_json, _tiny_sim


def test_entities_and_layout(tmp_path):
    files = write_megre_subject(tmp_path, _tiny_sim(), subject="01")
    names = sorted(p.name for p in files if p.parent.name == "anat")
    assert "sub-01_echo-1_part-mag_MEGRE.nii.gz" in names and "sub-01_echo-3_part-phase_MEGRE.json" in names
    assert parse_entities(tmp_path / "sub-01/anat/sub-01_echo-2_part-phase_MEGRE.nii.gz") == (
        {"sub": "01", "echo": "2", "part": "phase"}, "MEGRE")
    desc = json.loads((tmp_path / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] and desc["DatasetType"] == "raw"
    side = json.loads((tmp_path / "sub-01/anat/sub-01_echo-2_part-phase_MEGRE.json").read_text())
    assert side["EchoTime"] == pytest.approx(0.0091) and side["EchoNumber"] == 2
    assert side["MagneticFieldStrength"] == 3.0 and side["RepetitionTime"] == 0.057 and side["FlipAngle"] == 20.0
    assert side["Units"] == "rad"


def test_round_trip_exact(tmp_path):
    sim = _tiny_sim()
    write_megre_subject(tmp_path, sim, subject="ab1")
    (series,) = find_megre(tmp_path)
    assert series.subject == "ab1" and sorted(series.echoes) == [1, 2, 3]
    data = load_megre(series)
    assert np.array_equal(data.magnitude, sim.magnitude)
    assert np.array_equal(data.phase, sim.phase)
    assert np.array_equal(data.echo_times_s, sim.echo_times_s)
    assert np.allclose(data.affine, sim.affine, atol=1e-6)
    assert data.voxel_size_mm == pytest.approx((0.5, 0.5, 2.0))
    assert data.b0_tesla == 3.0 and data.notes == []
    # B0 along scanner z seen from the oblique voxel axes: (0, sin 0.3, cos 0.3)
    assert np.allclose(data.b0_direction, (0.0, np.sin(0.3), np.cos(0.3)), atol=1e-6)


def test_arbitrary_phase_rescaled_with_note(tmp_path, caplog):
    sim = _tiny_sim()
    write_megre_subject(tmp_path, sim, phase_units="arbitrary")
    raw = np.asarray(nib.load(tmp_path / "sub-01/anat/sub-01_echo-1_part-phase_MEGRE.nii.gz").dataobj)
    assert raw.dtype == np.int16 and raw.min() >= 0 and raw.max() <= 4095
    with caplog.at_level(logging.INFO, logger="analysis.imaging.bids"):
        data = load_megre(find_megre(tmp_path)[0])
    err = np.angle(np.exp(1j * (data.phase - sim.phase)))
    assert np.abs(err).max() <= np.pi / 4096 + 1e-6
    assert len(data.notes) == 3 and "sub-01_echo-1_part-phase_MEGRE.nii.gz" in data.notes[0]
    assert "rescaled to radians" in caplog.text


@pytest.mark.parametrize("kind", ["signed", "milliradians", "float-0-2pi"])
def test_other_phase_scalings(tmp_path, kind):
    sim = _tiny_sim()
    write_megre_subject(tmp_path, sim)
    anat = tmp_path / "sub-01/anat"
    for n in (1, 2, 3):
        p = anat / f"sub-01_echo-{n}_part-phase_MEGRE.nii.gz"
        img = nib.load(p)
        phi = sim.phase[..., n - 1].astype(np.float64)
        # make both ends of the range appear, as in a real image
        phi.flat[0], phi.flat[1] = -np.pi, np.pi - 1e-3
        sim.phase[..., n - 1] = phi
        if kind == "signed":
            data, units, tol = (np.round(phi * 4096 / np.pi).clip(-4096, 4095).astype(np.int16), "arbitrary",
                                np.pi / 4096)
        elif kind == "milliradians":
            data, units, tol = np.round(phi * 1000).astype(np.int16), "arbitrary", 1e-3
        else:
            data, units, tol = np.mod(phi, 2 * np.pi).astype(np.float32), "rad", 1e-5
        nib.save(nib.Nifti1Image(data, img.affine), p)
        _edit_json(p.with_name(p.name.replace(".nii.gz", ".json")), Units=units)
    out = load_megre(find_megre(tmp_path)[0])
    err = np.angle(np.exp(1j * (out.phase - sim.phase)))
    assert np.abs(err).max() <= tol + 1e-6
    assert len(out.notes) == (0 if units == "rad" else 3)  # radians are used as they are (only exp(i phase) matters)


def test_inheritance_sessions_and_filters(tmp_path):
    for ses in ("1", "2"):
        write_megre_subject(tmp_path, _tiny_sim(n_echoes=2), subject="01", session=ses)
    write_megre_subject(tmp_path, _tiny_sim(n_echoes=2), subject="02")
    # move MagneticFieldStrength to a dataset-level sidecar (BIDS inheritance)
    for js in tmp_path.glob("sub-*/**/anat/*_MEGRE.json"):
        _edit_json(js, MagneticFieldStrength=None)
    (tmp_path / "MEGRE.json").write_text("{}")  # not a valid BIDS name: ignored
    (tmp_path / "part-phase_MEGRE.json").write_text(json.dumps({"MagneticFieldStrength": 7.0}))
    series = find_megre(tmp_path)
    assert [s.label for s in series] == ["sub-01_ses-1", "sub-01_ses-2", "sub-02"]
    assert load_megre(series[2]).b0_tesla == 7.0
    assert [s.label for s in find_megre(tmp_path, participant_label=["sub-02"])] == ["sub-02"]
    with pytest.raises(ValueError, match=r"participant\(s\) \['03'\]"):
        find_megre(tmp_path, participant_label="03")


def test_errors_name_the_file(tmp_path):
    write_megre_subject(tmp_path, _tiny_sim(n_echoes=3))
    anat = tmp_path / "sub-01/anat"
    # missing EchoTime
    js = anat / "sub-01_echo-2_part-phase_MEGRE.json"
    saved = js.read_text()
    _edit_json(js, EchoTime=None)
    with pytest.raises(ValueError, match=r"sub-01_echo-2_part-phase_MEGRE\.json: missing 'EchoTime'"):
        load_megre(find_megre(tmp_path)[0])
    js.write_text(saved)
    # mismatched shape
    p = anat / "sub-01_echo-3_part-mag_MEGRE.nii.gz"
    good = nib.load(p)
    good = nib.Nifti1Image(np.asarray(good.dataobj), good.affine)  # in memory: the file is overwritten below
    nib.save(nib.Nifti1Image(np.zeros((6, 7, 4), np.float32), good.affine), p)
    with pytest.raises(ValueError, match=r"sub-01_echo-3_part-mag_MEGRE\.nii\.gz: image shape"):
        load_megre(find_megre(tmp_path)[0])
    # mismatched affine
    aff = good.affine.copy()
    aff[0, 3] += 1.0
    nib.save(nib.Nifti1Image(np.asarray(good.dataobj), aff), p)
    with pytest.raises(ValueError, match=r"sub-01_echo-3_part-mag_MEGRE\.nii\.gz: affine differs"):
        load_megre(find_megre(tmp_path)[0])
    nib.save(nib.Nifti1Image(np.asarray(good.dataobj), good.affine), p)
    # too few echoes
    with pytest.raises(ValueError, match=r"sub-01_echo-1_part-mag_MEGRE\.nii\.gz: .* 3 echo\(es\) but at least 4"):
        load_megre(find_megre(tmp_path)[0], min_echoes=4)
    # missing phase of an echo
    ph3 = anat / "sub-01_echo-3_part-phase_MEGRE.nii.gz"
    ph3.rename(tmp_path / "moved.nii.gz")
    with pytest.raises(ValueError, match=r"sub-01_echo-3_part-mag_MEGRE\.nii\.gz: echo 3 has no matching part-phase"):
        find_megre(tmp_path)
    (tmp_path / "moved.nii.gz").rename(ph3)
    # missing field strength (no fallback given)
    for j in anat.glob("*.json"):
        _edit_json(j, MagneticFieldStrength=None)
    with pytest.raises(ValueError, match=r"sub-01_echo-1_part-mag_MEGRE\.nii\.gz: no 'MagneticFieldStrength'"):
        load_megre(find_megre(tmp_path)[0])
    assert load_megre(find_megre(tmp_path)[0], b0_tesla=1.5).b0_tesla == 1.5
    # 4-D file with several volumes
    nib.save(nib.Nifti1Image(np.zeros((6, 7, 5, 2), np.float32), good.affine), p)
    with pytest.raises(ValueError, match=r"sub-01_echo-3_part-mag_MEGRE\.nii\.gz: expected one 3-D volume"):
        load_megre(find_megre(tmp_path)[0], b0_tesla=3)
    # nothing there at all
    with pytest.raises(ValueError, match="no MEGRE series"):
        find_megre(tmp_path / "sub-01")


def test_real_imag_pairs(tmp_path):
    sim = _tiny_sim(n_echoes=2)
    write_megre_subject(tmp_path, sim)
    anat = tmp_path / "sub-01/anat"
    for n in (1, 2):
        z = sim.magnitude[..., n - 1] * np.exp(1j * sim.phase[..., n - 1].astype(np.float64))
        for part, arr in (("real", z.real), ("imag", z.imag)):
            nib.save(nib.Nifti1Image(arr.astype(np.float32), sim.affine),
                     anat / f"sub-01_echo-{n}_part-{part}_MEGRE.nii.gz")
            (anat / f"sub-01_echo-{n}_part-{part}_MEGRE.json").write_text(
                json.dumps({"EchoTime": float(sim.echo_times_s[n - 1]), "MagneticFieldStrength": 3.0}))
        for part in ("mag", "phase"):
            (anat / f"sub-01_echo-{n}_part-{part}_MEGRE.nii.gz").unlink()
    data = load_megre(find_megre(tmp_path)[0])
    assert np.allclose(data.magnitude, sim.magnitude, rtol=1e-5)
    assert np.abs(np.angle(np.exp(1j * (data.phase - sim.phase)))).max() < 1e-4


def test_derivatives_writer(tmp_path):
    sim = _tiny_sim()
    write_megre_subject(tmp_path / "raw", sim, subject="01", session="pre")
    (series,) = find_megre(tmp_path / "raw")
    chi = np.random.default_rng(1).normal(0, 0.05, sim.magnitude.shape[:3]).astype(np.float32)
    mask = chi > 0
    mag = sim.magnitude[..., 0]
    files = write_qsm_derivatives(tmp_path / "out", series, chi, mask, sim.affine, method="MEDI",
                                  parameters={"lambda": 1000.0}, notes=["a note"], magnitude=mag,
                                  fields_ppm={"local": chi * 2}, b0_tesla=3.0)
    anat = tmp_path / "out/sub-01/ses-pre/anat"
    assert anat / "sub-01_ses-pre_Chimap.nii.gz" in files
    img = nib.load(anat / "sub-01_ses-pre_Chimap.nii.gz")
    assert np.array_equal(np.asarray(img.dataobj), chi) and np.allclose(img.affine, sim.affine)
    m = np.asarray(nib.load(anat / "sub-01_ses-pre_desc-brain_mask.nii.gz").dataobj)
    assert np.array_equal(m > 0, mask)
    side = json.loads((anat / "sub-01_ses-pre_Chimap.json").read_text())
    assert side["Units"] == "ppm" and side["Method"] == "MEDI" and side["Parameters"]["lambda"] == 1000.0
    assert isinstance(side["SoftwareVersions"], str)  # BIDS: a string
    assert all(k in side["SoftwareVersions"] for k in ("python", "numpy", "scipy", "nibabel"))
    assert side["SkullStripped"] is True
    assert side["Sources"][0].startswith("bids:raw:sub-01/ses-pre/anat/") and side["Notes"] == ["a note"]
    desc = json.loads((tmp_path / "out/dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["DatasetLinks"] == {"raw": "../raw"}
    assert np.allclose(np.asarray(nib.load(anat / "sub-01_ses-pre_T2starw.nii.gz").dataobj), mag)
    fmap = anat.parent / "fmap"
    hz = np.asarray(nib.load(fmap / "sub-01_ses-pre_desc-local_fieldmap.nii.gz").dataobj)
    assert np.allclose(hz, chi * 2 * 42.577478518 * 3.0, rtol=1e-5, atol=1e-4)  # ppm -> Hz at 3 T
    assert json.loads((fmap / "sub-01_ses-pre_desc-local_fieldmap.json").read_text())["Units"] == "Hz"
    assert (fmap / "sub-01_ses-pre_magnitude.nii.gz").exists()
    # a second run without fields replaces the whole set: the stale fields go, no staging folder stays
    write_qsm_derivatives(tmp_path / "out", series, chi, mask, sim.affine, method="TKD")
    assert not fmap.exists() or not any(fmap.iterdir())
    assert not (anat / "sub-01_ses-pre_T2starw.nii.gz").exists()
    assert not list((tmp_path / "out").glob(".staging-*"))
    with pytest.raises(ValueError, match="one shape"):
        write_qsm_derivatives(tmp_path / "out", series, chi, mask[:2], sim.affine, method="MEDI")


def test_truth_round_trip(tmp_path):
    from analysis.simulation.phantom import make_head_phantom

    ph = make_head_phantom(resolution_mm=4.0, seed=0, lesion_volume_ml=2.0, n_lesions=2)
    write_truth(tmp_path / "truth", ph, subject="07")
    t = load_truth(tmp_path / "truth", "sub-07")
    assert np.array_equal(t["chi_ppm"], ph.chi_ppm) and np.array_equal(t["labels"], ph.labels)
    assert np.array_equal(t["aseg"], ph.aseg) and np.array_equal(t["vein_mask"], ph.vein_mask)
    assert np.allclose(t["affine"], ph.affine)
    assert t["truth"].set_index("label").loc[10, "chi_ppm"] == pytest.approx(0.04)
    assert t["params"]["lesion_volume_ml"] == pytest.approx(2.0, abs=0.064)
    with pytest.raises(ValueError, match="missing truth file"):
        load_truth(tmp_path / "truth", "08")
