"""The real-data commands never write over files they did not create and never return a wrong
number silently: each case below was a probe that destroyed a file or gave a wrong number with
exit code 0."""

import json

import numpy as np
import pytest

from analysis.cli import main
from analysis.imaging import reconstruct
from analysis.imaging.bids import find_megre, load_megre
from analysis.simulation.bids_dataset import write_megre_subject
from tests.cli.test_qsm import FakeReconstruct
from tests.helpers.megre import _edit_json, _tiny_sim


@pytest.fixture
def fake(monkeypatch):
    f = FakeReconstruct()
    monkeypatch.setattr(reconstruct, "reconstruct_megre", f)
    return f


def _bids(tmp_path, subjects=("01",)):
    for i, s in enumerate(subjects):
        write_megre_subject(tmp_path / "bids", _tiny_sim(n_echoes=3, seed=i), subject=s)
    return tmp_path / "bids"


# -- never lose data ---------------------------------------------------------------------------

def test_qsm_refuses_another_pipelines_derivatives(tmp_path, fake, capsys):
    bids = _bids(tmp_path)
    other = bids / "derivatives" / "fmriprep"
    (other / "sub-01" / "anat").mkdir(parents=True)
    (other / "dataset_description.json").write_text(json.dumps(
        {"Name": "fMRIPrep outputs", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
         "GeneratedBy": [{"Name": "fMRIPrep"}]}))
    precious = other / "sub-01" / "anat" / "sub-01_Chimap.nii.gz"
    precious.write_bytes(b"not ours")
    assert main(["qsm", str(bids), str(other), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "another pipeline" in err and "fMRIPrep" in err
    assert precious.read_bytes() == b"not ours" and not fake.calls


def test_qsm_refuses_a_folder_of_unrelated_files(tmp_path, fake, capsys):
    bids = _bids(tmp_path)
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["qsm", str(bids), str(out), "--no-progress"]) == 2
    assert "no dataset_description.json" in capsys.readouterr().err
    assert main(["qsm", str(bids), str(bids / "sub-01"), "--no-progress"]) == 2
    assert "inside the input dataset" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_qsm_reruns_into_its_own_folder_and_replaces_the_set(tmp_path, fake):
    bids = _bids(tmp_path)
    out = bids / "derivatives" / "qsm"
    assert main(["qsm", str(bids), str(out), "--no-progress"]) == 0
    assert (out / "sub-01/fmap/sub-01_desc-total_fieldmap.nii.gz").exists()
    (out / ".staging-sub-01-leftover").mkdir()                 # as a killed run would leave it
    assert main(["qsm", str(bids), str(out), "--no-progress", "--no-fields"]) == 0
    assert not (out / "sub-01/fmap/sub-01_desc-total_fieldmap.nii.gz").exists()   # stale fields removed
    assert not list(out.glob(".staging-*"))
    side = json.loads((out / "sub-01/anat/sub-01_Chimap.json").read_text())
    assert side["Parameters"]["recipe"] == "whole-brain"


def test_phantom_refuses_an_existing_subject(tmp_path, capsys):
    bids = tmp_path / "ds"
    write_megre_subject(bids, _tiny_sim(n_echoes=2), subject="01")
    before = (bids / "sub-01/anat/sub-01_echo-1_part-mag_MEGRE.nii.gz").read_bytes()
    assert main(["phantom", str(bids), "--subject", "01", "--resolution", "6"]) == 2
    assert "refusing to write over it" in capsys.readouterr().err
    assert (bids / "sub-01/anat/sub-01_echo-1_part-mag_MEGRE.nii.gz").read_bytes() == before
    assert main(["phantom", str(bids), "--subject", "01", "--resolution", "6", "--overwrite"]) == 0
    assert len(list((bids / "sub-01/anat").glob("*_MEGRE.nii.gz"))) == 22   # the phantom's 11 echoes, no stale ones


# -- no silent wrong numbers -------------------------------------------------------------------

def test_phase_in_degrees_is_converted(tmp_path):
    sim = _tiny_sim(n_echoes=3)
    write_megre_subject(tmp_path, sim, phase_units="deg")
    data = load_megre(find_megre(tmp_path)[0])
    assert np.abs(np.angle(np.exp(1j * (data.phase - sim.phase)))).max() < 1e-5
    assert any("degrees" in n for n in data.notes)


def test_integer_phase_labelled_radians_is_an_error(tmp_path):
    sim = _tiny_sim(n_echoes=2)
    write_megre_subject(tmp_path, sim, phase_units="arbitrary")
    for p in (tmp_path / "sub-01/anat").glob("*part-phase_MEGRE.json"):
        _edit_json(p, Units="rad")
    with pytest.raises(ValueError, match="not radians"):
        load_megre(find_megre(tmp_path)[0])
    for p in (tmp_path / "sub-01/anat").glob("*part-phase_MEGRE.json"):
        _edit_json(p, Units="Hz")
    with pytest.raises(ValueError, match="Units 'Hz' not understood"):
        load_megre(find_megre(tmp_path)[0])


def test_implausible_field_strength_is_refused(tmp_path):
    write_megre_subject(tmp_path, _tiny_sim(n_echoes=2))
    for p in (tmp_path / "sub-01/anat").glob("*.json"):
        _edit_json(p, MagneticFieldStrength=30000)
    with pytest.raises(ValueError, match=r"30000(\.0)? is not a field strength in tesla"):
        load_megre(find_megre(tmp_path)[0])


def test_phase_sign_flips_the_phase_and_is_recorded(tmp_path, fake):
    sim = _tiny_sim(n_echoes=3)
    write_megre_subject(tmp_path / "bids", sim)
    assert main(["qsm", str(tmp_path / "bids"), str(tmp_path / "out"), "--phase-sign", "-1", "--no-progress"]) == 0
    assert np.allclose(fake.calls[0]["phase"], -sim.phase, atol=1e-6)
    side = json.loads((tmp_path / "out/sub-01/anat/sub-01_Chimap.json").read_text())
    assert side["Parameters"]["phase_sign"] == -1


@pytest.mark.slow
def test_reversed_polarity_is_flagged(tmp_path):
    """TKD of the 3 mm phantom: veins come out diamagnetic with the phase negated, which the
    polarity check flags in the log and the sidecar."""
    bids = tmp_path / "ph"
    assert main(["phantom", str(bids), "--resolution", "3", "--seed", "1"]) == 0
    notes = {}
    for sign in ("1", "-1"):
        out = tmp_path / f"q{sign}"
        assert main(["qsm", str(bids), str(out), "--method", "tkd", "--phase-sign", sign, "--no-progress"]) == 0
        side = json.loads((out / "sub-01/anat/sub-01_Chimap.json").read_text())
        notes[sign] = side["Parameters"]["polarity_check"]["suspect"]
    assert notes == {"1": False, "-1": True}


# -- batches survive bad subjects ----------------------------------------------------------------

def test_a_truncated_file_fails_its_subject_only(tmp_path, fake, capsys):
    bids = _bids(tmp_path, ("01", "02", "03"))
    bad = bids / "sub-02/anat/sub-02_echo-2_part-phase_MEGRE.nii.gz"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])                   # a truncated download
    rc = main(["qsm", str(bids), str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "1 of 3 series failed" in err and "sub-02_echo-2_part-phase_MEGRE.nii.gz" in err
    assert "Traceback" not in err and err.startswith("error: ") and err.count("\nerror") == 0
    assert (tmp_path / "out/sub-01/anat/sub-01_Chimap.nii.gz").exists()
    assert (tmp_path / "out/sub-03/anat/sub-03_Chimap.nii.gz").exists()
    assert not (tmp_path / "out/sub-02").exists()


def test_bids_app_options(tmp_path, fake):
    bids = _bids(tmp_path, ("01", "02"))
    assert main(["qsm", str(bids), str(tmp_path / "out"), "--participant_label", "02", "--no-progress"]) == 0
    assert len(fake.calls) == 1 and (tmp_path / "out/sub-02").exists() and not (tmp_path / "out/sub-01").exists()
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
