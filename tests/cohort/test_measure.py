"""``python -m analysis measure``: QSM derivatives + FreeSurfer + lesion masks (+ clinical CSV) → cohort CSV.

Two phantom subjects with known truth stand in for a study: their true χ maps written as QSM
derivatives, their FreeSurfer-like subject folders and lesion masks.
"""

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from analysis.cohort import measure
from analysis.cohort.dictionary import load_cohort
from analysis.imaging.qsm import combine_magnitude
from analysis.simulation.acquisition import simulate_megre
from analysis.simulation.freesurfer_subject import write_phantom_subject
from analysis.simulation.phantom import make_head_phantom
from analysis.simulation.phantom_qsm import true_thalamic_susceptibility

THALAMUS_PPM = {"01": 0.040, "02": 0.025}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    truth = {}
    for label, chi_thal in THALAMUS_PPM.items():
        ph = make_head_phantom(resolution_mm=2.0, seed=int(label), thalamus_chi_ppm=chi_thal,
                               lesion_volume_ml=2.0 * int(label), n_lesions=3)
        anat = root / "qsm" / f"sub-{label}" / "anat"
        anat.mkdir(parents=True)
        chi = np.where(ph.brain_mask, ph.chi_ppm, 0).astype(np.float32)   # derivatives hold 0 outside
        nib.save(nib.Nifti1Image(chi, ph.affine), anat / f"sub-{label}_Chimap.nii.gz")
        nib.save(nib.Nifti1Image(ph.brain_mask.astype(np.uint8), ph.affine),
                 anat / f"sub-{label}_desc-brain_mask.nii.gz")
        sim = simulate_megre(ph, snr=100.0, seed=int(label))          # the GRE magnitude: registration target
        nib.save(nib.Nifti1Image(combine_magnitude(sim.magnitude), ph.affine), anat / f"sub-{label}_T2starw.nii.gz")
        subj = write_phantom_subject(ph, root / "freesurfer", f"sub-{label}")
        truth[f"sub-{label}"] = {
            "relative_ppb": true_thalamic_susceptibility(ph)["relative_ppb"],
            "lesion_ml": float(ph.lesion_mask.sum()) * 8.0 / 1000.0,
            **subj.expected,
        }
    clinical = pd.DataFrame({
        "subject_id": ["01", "02", "03"],           # bare labels; 03 has no images
        "age_years": [34.0, 51.0, 40.0], "sex": ["F", "M", "F"], "edss": [1.5, 3.0, 2.0],
        "disease_duration_years": [4.2, 12.0, 6.0], "dmt_use": [1, 0, 1], "enhancing_lesions_present": [0, 1, 0]})
    clinical.to_csv(root / "clinical.csv", index=False)
    return root, truth


def _args(root, out, *extra):
    return ["measure", str(root / "qsm"), str(root / "freesurfer"), str(out),
            "--lesion-mask", str(root / "freesurfer" / "{subject}" / "mri" / "lesions.mgz"), "--no-progress", *extra]


def test_measure_writes_a_valid_cohort_with_the_true_values(study, capsys):
    root, truth = study
    out = root / "out" / "cohort.csv"
    clinical_before = (root / "clinical.csv").read_bytes()
    assert main(_args(root, out, "--clinical", str(root / "clinical.csv"))) == 0
    assert "wrote 2 subject(s)" in capsys.readouterr().out
    cohort = load_cohort(out)                       # valid for the statistics notebooks
    assert list(cohort["subject_id"]) == ["sub-01", "sub-02"]
    for _, row in cohort.iterrows():
        t = truth[row["subject_id"]]
        # vein exclusion on the true map recovers the tissue value (truth 40 and 25 ppb)
        assert row["thalamic_relative_susceptibility_ppb"] == pytest.approx(t["relative_ppb"], abs=0.5)
        assert row["thalamic_volume_mm3"] == pytest.approx(t["thalamic_volume_mm3"])
        assert row["total_gray_matter_volume_mm3"] == pytest.approx(t["total_gray_volume_mm3"])
        assert row["mean_cortical_thickness_mm"] == pytest.approx(t["mean_cortical_thickness_mm"])
        assert row["t2_lesion_volume_ml"] == pytest.approx(t["lesion_ml"])
    assert cohort.set_index("subject_id").loc["sub-02", "age_years"] == 51.0
    assert truth["sub-01"]["relative_ppb"] == pytest.approx(40.0, abs=0.01)
    qc = pd.read_csv(root / "out" / "cohort_measurements.csv")
    assert (qc["n_vein_voxels_excluded"] > 0).all() and (qc["n_csf_voxels"] > 0).all()
    assert qc["brain_mask"].str.endswith("_desc-brain_mask.nii.gz").all()
    # registered by default (same session here: the transform is about the identity) with its QC
    assert qc["registration"].str.startswith("rigid").all() and (qc["registration_rotation_deg"] < 0.5).all()
    assert (qc["registration_translation_mm"] < 0.5).all() and qc["registration_flags"].isna().all()
    report = root / "out" / "cohort_qc"
    for sid in ("sub-01", "sub-02"):
        assert (report / f"{sid}.html").is_file() and (report / f"{sid}_registration.png").is_file()
        assert (report / f"{sid}_mosaic.png").is_file() and (report / f"{sid}_from-T1w_to-GRE_xfm.json").is_file()
    assert "sub-02.html" in (report / "index.html").read_text()
    # a second run refuses to overwrite unless asked
    assert main(_args(root, out, "--clinical", str(root / "clinical.csv"))) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(_args(root, out, "--clinical", str(root / "clinical.csv"), "--overwrite", "--no-qc")) == 0
    assert (root / "clinical.csv").read_bytes() == clinical_before   # input untouched


def test_without_vein_exclusion_the_veins_bias_it(study):
    root, truth = study
    out = root / "out2" / "imaging.csv"
    assert main(_args(root, out, "--no-vein-exclusion", "--participant-label", "01", "--no-registration")) == 0
    got = pd.read_csv(out)
    assert list(got.columns)[:2] == ["subject_id", "thalamic_volume_mm3"] and "age_years" not in got.columns
    assert got.loc[0, "thalamic_relative_susceptibility_ppb"] > truth["sub-01"]["relative_ppb"] + 3.0


def test_errors_name_what_is_missing(study, tmp_path, capsys):
    root, _ = study
    out = tmp_path / "c.csv"
    # a lesion template without a placeholder would give every subject the same volume
    assert main(["measure", str(root / "qsm"), str(root / "freesurfer"), str(out),
                 "--lesion-mask", str(root / "lesions.nii.gz"), "--no-progress"]) == 2
    assert "names one file for all 2 subjects" in capsys.readouterr().err
    assert main(_args(root, out, "--aseg", "{sujet}.nii.gz")) == 2
    assert "unknown placeholder(s) ['sujet']" in capsys.readouterr().err
    # a registered segmentation that is not there
    assert main(_args(root, out, "--aseg", str(tmp_path / "{subject}_aseg.nii.gz"))) == 2
    err = capsys.readouterr().err
    assert "sub-01_aseg.nii.gz does not exist" in err and "2 subject(s) could not be measured" in err
    assert not out.exists()
    # unknown participant, missing folder, clinical CSV without one of the subjects
    assert main(_args(root, out, "--participant-label", "07")) == 2
    assert "['07']" in capsys.readouterr().err
    assert main(["measure", str(tmp_path / "none"), str(root / "freesurfer"), str(out), "--lesion-mask", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err
    pd.DataFrame({"subject_id": ["sub-01"], "age_years": [30.0]}).to_csv(tmp_path / "clin.csv", index=False)
    assert main(_args(root, out, "--clinical", str(tmp_path / "clin.csv"))) == 2
    assert "lacks column(s)" in capsys.readouterr().err
    # never overwrite an input: neither the CSV nor its measurements file may be the clinical table
    with pytest.raises(ValueError, match="refusing to overwrite"):
        measure.run_measure(root / "qsm", root / "freesurfer", root / "clinical.csv",
                            lesion_mask=str(root / "freesurfer/{subject}/mri/lesions.mgz"),
                            clinical=root / "clinical.csv", progress=False)
    shutil.copy(root / "clinical.csv", tmp_path / "out_measurements.csv")
    before = (tmp_path / "out_measurements.csv").read_bytes()
    assert main(_args(root, tmp_path / "out.csv", "--clinical", str(tmp_path / "out_measurements.csv"))) == 2
    assert "refusing to overwrite the input file" in capsys.readouterr().err
    assert (tmp_path / "out_measurements.csv").read_bytes() == before


def test_allow_missing_keeps_the_measured_subjects(study, tmp_path):
    root, _ = study
    les = tmp_path / "les"
    (les / "sub-02").mkdir(parents=True)
    img = nib.load(root / "freesurfer/sub-02/mri/lesions.mgz")
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine), les / "sub-02" / "mask.nii.gz")
    res = measure.run_measure(root / "qsm", root / "freesurfer", tmp_path / "c.csv",
                              lesion_mask=str(les / "{subject}" / "mask.nii.gz"), allow_missing=True,
                              progress=False, register=False)
    assert res["n"] == 1 and len(res["failures"]) == 1 and "sub-01" in res["failures"][0]
    assert list(pd.read_csv(tmp_path / "c.csv")["subject_id"]) == ["sub-02"]


def test_find_chimaps_sessions(tmp_path):
    for ses in ("a", "b"):
        d = tmp_path / "sub-01" / f"ses-{ses}" / "anat"
        d.mkdir(parents=True)
        nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), d / f"sub-01_ses-{ses}_Chimap.nii.gz")
    with pytest.raises(ValueError, match="sub-01 has 2 χ maps"):
        measure.find_chimaps(tmp_path)
    (s,) = measure.find_chimaps(tmp_path, session="ses-b")
    assert s.subject_id == "sub-01" and "ses-b" in s.chimap.name and s.brain_mask is None
    json.dumps(str(s))   # printable
