"""``qsm`` then ``measure`` (no ``--aseg``) on a subject whose head moved between the T1 and the GRE.

The FreeSurfer subject is written in a world frame rotated by 8° about an oblique axis and shifted
by 6 mm relative to the GRE (as after repositioning between sessions): without registration the
aseg lands off the thalamus; with the built-in registration the relative χ comes back within 3 ppb
of the truth (40 ppb).
"""

import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from analysis.cli import main
from analysis.simulation.acquisition import simulate_megre
from analysis.simulation.bids_dataset import write_megre_subject
from analysis.simulation.freesurfer_subject import write_phantom_subject
from analysis.simulation.phantom import make_head_phantom
from analysis.simulation.phantom_qsm import true_thalamic_susceptibility


def _moved(affine, *, degrees=8.0, axis=(1.0, 2.0, 0.5), shift_mm=(4.0, -3.0, 3.5)):
    """``affine`` in a world frame rotated about the brain centre and shifted."""
    rot = Rotation.from_rotvec(np.deg2rad(degrees) * np.asarray(axis) / np.linalg.norm(axis)).as_matrix()
    centre = affine[:3, :3] @ (np.array([80, 96, 84]) / 2.0) + affine[:3, 3]
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = centre - rot @ centre + np.asarray(shift_mm)
    return m @ affine


@pytest.fixture(scope="module")
def moved_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("moved")
    ph = make_head_phantom(resolution_mm=2.0, seed=5, lesion_volume_ml=3.0, n_lesions=3)
    sim = simulate_megre(ph, snr=100.0, seed=5)
    write_megre_subject(root / "bids", sim, subject="01", phantom=ph)
    subj = write_phantom_subject(ph, root / "freesurfer", "sub-01")
    moved = _moved(ph.affine)
    for mgz in (subj.subject_dir / "mri").glob("*.mgz"):     # the T1 session's world frame
        img = nib.load(mgz)
        nib.save(nib.MGHImage(np.asarray(img.dataobj), moved), mgz)
    assert main(["qsm", str(root / "bids"), str(root / "bids/derivatives/qsm"), "--no-progress"]) == 0
    return root, true_thalamic_susceptibility(ph)["relative_ppb"]


def _measure(root, out, *extra):
    return main(["measure", str(root / "bids/derivatives/qsm"), str(root / "freesurfer"), str(out),
                 "--lesion-mask", str(root / "freesurfer/{subject}/mri/lesions.mgz"), "--no-progress", *extra])


@pytest.mark.slow
def test_registration_recovers_the_relative_susceptibility(moved_study):
    root, truth = moved_study
    assert truth == pytest.approx(40.0, abs=0.1)
    assert _measure(root, root / "registered.csv") == 0
    qc = pd.read_csv(root / "registered_measurements.csv")
    got = float(qc.loc[0, "thalamic_relative_susceptibility_ppb"])
    assert got == pytest.approx(truth, abs=3.0)
    assert qc.loc[0, "registration_rotation_deg"] == pytest.approx(8.0, abs=0.5)
    assert (root / "registered_qc" / "sub-01_registration.png").is_file()


@pytest.mark.slow
def test_an_implausible_registration_is_refused_not_measured(moved_study, tmp_path, capsys):
    """A T1 whose frame is 40° off the GRE (a wrong header, another subject's T1, ...) gives an
    error naming the reason and the QC overlay, not a number."""
    root, _ = moved_study
    fs = tmp_path / "freesurfer"
    shutil.copytree(root / "freesurfer", fs)
    for mgz in (fs / "sub-01" / "mri").glob("*.mgz"):
        img = nib.load(mgz)
        nib.save(nib.MGHImage(np.asarray(img.dataobj), _moved(img.affine, degrees=40.0, axis=(0, 0, 1))), mgz)
    out = tmp_path / "c.csv"
    rc = main(["measure", str(root / "bids/derivatives/qsm"), str(fs), str(out),
               "--lesion-mask", str(fs / "{subject}/mri/lesions.mgz"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "not plausible" in err and "rotation" in err and "registration.png" in err
    assert not out.exists()
