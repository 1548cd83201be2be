"""Rigid registration of the anatomy to the GRE grid (analysis.imaging.registration) on the head phantom.

Known truth: the "GRE" is the simulated multi-echo magnitude of the phantom (root-sum-of-squares over
echoes) with its world frame moved by a known rigid transform ``W`` (the same voxels, affine
``W @ A``), while the T1 keeps the phantom affine ``A``. A tissue point at GRE world ``x`` is then at
T1 world ``W⁻¹ x``, so the true ``fixed_to_moving`` is ``W⁻¹``. Errors are the mean displacement
(mm) of the brain voxels between the recovered and the true transform, and the Dice overlap of the
resampled aseg thalamus with the truth thalamus on the GRE grid.

The resolution-mismatch case registers a finer T1 (1.5 mm phantom, written as a FreeSurfer-like
LIA ``.mgz`` subject) to a 2.5 mm GRE. 2.5 mm rather than 2 mm: the phantom generator samples its 1 mm
atlas by nearest neighbour, and 2 mm voxel centres fall exactly half-way between atlas voxels, so
a 2 mm phantom sits about 0.5 mm per axis away from a finer one (measured: the registration of a
1 mm to a 2 mm phantom finds (0.48, 0.42, 0.56) mm, and below 0.05 mm for 2.5 or 3 mm). That
offset belongs to the phantom, not to the registration, and would blur a 1 mm criterion.
"""

import json

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform
from scipy import ndimage
from scipy.spatial.transform import Rotation

from analysis.imaging import registration as reg_mod
from analysis.imaging.qsm import combine_magnitude
from analysis.imaging.registration import (
    RigidRegistration,
    choose_anatomy,
    load_transform,
    normalised_mutual_information,
    register_anatomy_to_gre,
    registration_overlay_png,
    resample_image,
    resample_labels,
    save_transform,
)
from analysis.simulation.acquisition import simulate_megre
from analysis.simulation.anatomy import synthetic_t1
from analysis.simulation.phantom import make_head_phantom

THALAMUS = (10, 49)
AXIS = (1.0, 0.6, 0.3)     # oblique rotation axis (RAS)


def world_motion(phantom, angle_deg, shift_mm, axis=AXIS):
    """Rigid world transform: rotation about the FOV centre by ``angle_deg`` about ``axis``, then ``shift_mm``."""
    a = np.asarray(axis, float)
    rot = Rotation.from_rotvec(np.deg2rad(angle_deg) * a / np.linalg.norm(a)).as_matrix()
    centre = (phantom.affine @ np.append((np.array(phantom.shape) - 1) / 2.0, 1.0))[:3]
    w = np.eye(4)
    w[:3, :3] = rot
    w[:3, 3] = centre - rot @ centre + np.asarray(shift_mm, float)
    return w


def gre_of(phantom, motion, *, seed=1):
    """(GRE magnitude image, brain-mask image) of the phantom, world frame moved by ``motion``."""
    sim = simulate_megre(phantom, snr=100, seed=seed)
    aff = motion @ phantom.affine
    mag = nib.Nifti1Image(combine_magnitude(sim.magnitude).astype(np.float32), aff)
    mask = nib.Nifti1Image(phantom.brain_mask.astype(np.uint8), aff)
    return mag, mask


def brain_points(phantom, affine):
    idx = np.argwhere(phantom.brain_mask)
    return affine @ np.c_[idx, np.ones(len(idx))].T


def mean_displacement_mm(estimate, truth, points):
    return float(np.linalg.norm((estimate @ points - truth @ points)[:3], axis=0).mean())


def rotation_error_deg(estimate, truth):
    r = (np.asarray(estimate) @ np.linalg.inv(truth))[:3, :3]
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))


def dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def to_lia(data, affine):
    """Data and affine reoriented to FreeSurfer's conformed LIA axes (same world positions)."""
    t = ornt_transform(io_orientation(affine), axcodes2ornt(("L", "I", "A")))
    return apply_orientation(data, t), affine @ inv_ornt_aff(t, data.shape)


# ---------------------------------------------------------------------------------------------
# 2 mm phantom, 8° about an oblique axis and a (4, -3, 3.5) mm shift (6.1 mm)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def phantom2(head_phantom):
    return head_phantom(2.0, 0)


@pytest.fixture(scope="module")
def moved(phantom2):
    motion = world_motion(phantom2, 8.0, (4.0, -3.0, 3.5))
    gre, mask = gre_of(phantom2, motion)
    return {"motion": motion, "truth": np.linalg.inv(motion), "gre": gre, "mask": mask,
            "t1": synthetic_t1(phantom2),
            "aseg": nib.Nifti1Image(np.asarray(phantom2.aseg, np.int16), phantom2.affine)}


@pytest.fixture(scope="module")
def registered(moved):
    return register_anatomy_to_gre(moved["t1"], moved["gre"], fixed_mask=moved["mask"])


def test_recovers_known_rigid_transform(phantom2, moved, registered):
    r = registered
    pts = brain_points(phantom2, moved["gre"].affine)
    assert rotation_error_deg(r.fixed_to_moving, moved["truth"]) < 1.0
    assert mean_displacement_mm(r.fixed_to_moving, moved["truth"], pts) < 1.0
    assert r.rotation_deg == pytest.approx(8.0, abs=1.0)
    assert np.allclose(r.moving_to_fixed, moved["motion"], atol=0.05)
    assert r.plausible and r.flags == ()
    assert r.nmi > 1.08 and r.nmi_drop > 0.02          # a sharp optimum
    assert r.elapsed_s < 30.0
    assert "dipy" in r.parameters["library"]


def test_resampled_thalamus_overlaps_truth(phantom2, moved, registered):
    out = resample_labels(moved["aseg"], moved["gre"], registered)
    lab = np.asarray(out.dataobj)
    assert lab.dtype == np.int16 and lab.shape == phantom2.shape
    assert np.allclose(out.affine, moved["gre"].affine)
    truth = np.asarray(phantom2.aseg)
    for t in THALAMUS:
        assert dice(lab == t, truth == t) >= 0.8
    # the headers alone (no registration) put the thalamus in the wrong place
    unreg = np.asarray(resample_labels(moved["aseg"], moved["gre"]).dataobj)
    assert dice(np.isin(unreg, THALAMUS), np.isin(truth, THALAMUS)) < 0.75


def test_resample_image_on_the_gre_grid(phantom2, moved, registered):
    t1_on_gre = resample_image(moved["t1"], moved["gre"], registered)
    data = np.asarray(t1_on_gre.dataobj)
    assert data.dtype == np.float32 and data.shape == phantom2.shape
    brain = phantom2.brain_mask
    t1 = np.asarray(moved["t1"].dataobj, float)     # on the same voxels as the GRE
    assert np.corrcoef(data[brain], t1[brain])[0, 1] > 0.9
    assert normalised_mutual_information(np.asarray(moved["gre"].dataobj), data, mask=brain) == \
        pytest.approx(registered.nmi, abs=1e-6)


def test_qc_overlay_png(tmp_path, moved, registered):
    t1_on_gre = resample_image(moved["t1"], moved["gre"], registered)
    labels = resample_labels(moved["aseg"], moved["gre"], registered)
    path = registration_overlay_png(tmp_path / "qc" / "registration.png", moved["gre"], t1_on_gre,
                                    labels_img=labels, title=registered.summary())
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) > 10_000
    img = __import__("matplotlib.image", fromlist=["imread"]).imread(path)
    assert img.shape[0] > 300 and img.shape[1] > 900
    # without labels, and with a 4-D (multi-echo) fixed image, echo-combined
    four_d = nib.Nifti1Image(np.stack([np.asarray(moved["gre"].dataobj)] * 2, -1), moved["gre"].affine)
    assert registration_overlay_png(tmp_path / "plain.png", four_d, t1_on_gre).is_file()


def test_transform_files_round_trip(tmp_path, registered):
    m = registered.fixed_to_moving
    j = save_transform(tmp_path / "anat_to_gre.json", registered)
    doc = json.loads(j.read_text())
    assert doc["format"] == reg_mod.TRANSFORM_FORMAT
    assert doc["plausible"] is True and doc["rotation_deg"] == pytest.approx(registered.rotation_deg)
    assert np.allclose(np.array(doc["moving_to_fixed"]) @ m, np.eye(4), atol=1e-9)
    assert np.allclose(load_transform(j), m, atol=1e-12)
    itk = save_transform(tmp_path / "anat_to_gre.txt", m)
    assert itk.read_text().startswith("#Insight Transform File V1.0")
    assert np.allclose(load_transform(itk), m, atol=1e-9)
    # a plain matrix to JSON; a path as the transform of the resamplers
    assert np.allclose(load_transform(save_transform(tmp_path / "m.json", m)), m)


def test_itk_file_is_lps_with_centre(tmp_path):
    ras = np.eye(4)
    ras[:3, 3] = (1.0, 2.0, 3.0)
    text = save_transform(tmp_path / "t.tfm", ras).read_text()
    params = [float(v) for v in text.split("Parameters:")[1].split("\n")[0].split()]
    assert params[9:] == [-1.0, -2.0, 3.0]          # RAS (1, 2, 3) is LPS (-1, -2, 3)
    # ITK's centred form T(x) = A (x - c) + c + t, written by hand
    a = Rotation.from_rotvec([0.0, 0.0, 0.2]).as_matrix()
    c, t = np.array([10.0, -20.0, 5.0]), np.array([1.0, 2.0, 3.0])
    f = tmp_path / "centred.txt"
    f.write_text("#Insight Transform File V1.0\n#Transform 0\nTransform: MatrixOffsetTransformBase_double_3_3\n"
                 f"Parameters: {' '.join(map(str, [*a.ravel(), *t]))}\n"
                 f"FixedParameters: {' '.join(map(str, c))}\n")
    lps = np.eye(4)
    lps[:3, :3], lps[:3, 3] = a, t + c - a @ c
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    assert np.allclose(load_transform(f), flip @ lps @ flip)


# ---------------------------------------------------------------------------------------------
# Resolution and orientation mismatch: a 1.5 mm LIA FreeSurfer-like subject vs a 2.5 mm GRE
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def freesurfer_subject(tmp_path_factory):
    p = make_head_phantom(resolution_mm=1.5, seed=0)
    t1 = np.asarray(synthetic_t1(p).dataobj) * p.brain_mask     # skull-stripped, like brain.mgz
    sdir = tmp_path_factory.mktemp("subjects") / "sub01"
    (sdir / "mri").mkdir(parents=True)
    data, aff = to_lia(t1.astype(np.uint8), p.affine)
    nib.save(nib.MGHImage(data, aff), sdir / "mri" / "brain.mgz")
    data, aff = to_lia(np.asarray(p.aseg, np.int32), p.affine)
    nib.save(nib.MGHImage(data, aff), sdir / "mri" / "aseg.mgz")
    return sdir


def test_resolution_and_orientation_mismatch(freesurfer_subject):
    anat = choose_anatomy(freesurfer_subject)
    assert anat.name == "brain.mgz"
    assert nib.aff2axcodes(nib.load(anat).affine) == ("L", "I", "A")
    p = make_head_phantom(resolution_mm=2.5, seed=0)
    motion = world_motion(p, 7.0, (-5.0, 2.0, 4.0), axis=(0.2, 1.0, -0.5))
    gre, mask = gre_of(p, motion)
    r = register_anatomy_to_gre(anat, gre, fixed_mask=mask)
    truth = np.linalg.inv(motion)
    assert r.moving == str(anat)
    assert r.plausible, r.summary()
    assert rotation_error_deg(r.fixed_to_moving, truth) < 1.0
    assert mean_displacement_mm(r.fixed_to_moving, truth, brain_points(p, gre.affine)) < 1.0
    lab = np.asarray(resample_labels(freesurfer_subject / "mri" / "aseg.mgz", gre, r).dataobj)
    assert lab.dtype == np.int32
    for t in THALAMUS:
        assert dice(lab == t, np.asarray(p.aseg) == t) >= 0.8
    assert r.elapsed_s < 30.0


# ---------------------------------------------------------------------------------------------
# Implausible results are flagged (3 mm grids)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def phantom3():
    p = make_head_phantom(resolution_mm=3.0, seed=0)
    gre, mask = gre_of(p, np.eye(4))
    return p, gre, mask, synthetic_t1(p)


@pytest.mark.parametrize("kind", ["noise", "flipped"])
def test_unrelated_or_flipped_anatomy_is_flagged(phantom3, kind):
    p, gre, mask, t1 = phantom3
    data = np.asarray(t1.dataobj)
    if kind == "noise":
        rng = np.random.default_rng(0)
        bad = ndimage.gaussian_filter(rng.standard_normal(data.shape), 1.5).astype(np.float32)
    else:
        bad = np.ascontiguousarray(data[:, :, ::-1])      # upside down: no rigid transform fixes it
    r = register_anatomy_to_gre(nib.Nifti1Image(bad, p.affine), gre, fixed_mask=mask)
    assert not r.plausible
    assert any("NMI" in f or "mutual information" in f for f in r.flags), r.flags


@pytest.mark.parametrize("angle, shift, word", [(30.0, (0.0, 0.0, 0.0), "rotation"),
                                                 (5.0, (40.0, 0.0, -10.0), "shift")])
def test_large_motion_is_recovered_but_flagged(phantom3, angle, shift, word):
    p, _, _, t1 = phantom3
    motion = world_motion(p, angle, shift)
    gre, mask = gre_of(p, motion)
    r = register_anatomy_to_gre(t1, gre, fixed_mask=mask)
    assert mean_displacement_mm(r.fixed_to_moving, np.linalg.inv(motion), brain_points(p, gre.affine)) < 1.5
    assert not r.plausible
    assert len(r.flags) == 1 and r.flags[0].startswith(word), r.flags
    assert r.nmi_drop > 0.02          # the images themselves match


@pytest.mark.parametrize("initial", ["header", "centre-of-mass", "given"])
def test_every_initialisation_converges(phantom3, initial):
    p, _, _, t1 = phantom3
    motion = world_motion(p, 6.0, (-3.0, 4.0, 2.0), axis=(-0.3, 0.4, 1.0))
    gre, mask = gre_of(p, motion)
    truth = np.linalg.inv(motion)
    start = truth @ world_motion(p, 1.0, (1.0, 0.0, 0.0)) if initial == "given" else initial
    r = register_anatomy_to_gre(t1, gre, fixed_mask=mask, initial=start)
    assert r.initialisation == initial
    assert mean_displacement_mm(r.fixed_to_moving, truth, brain_points(p, gre.affine)) < 1.0
    assert r.plausible, r.summary()


def test_registration_is_deterministic(phantom3):
    p, _, _, t1 = phantom3
    motion = world_motion(p, 5.0, (3.0, 1.0, -2.0))
    gre, mask = gre_of(p, motion)
    a = register_anatomy_to_gre(t1, gre, fixed_mask=mask.get_fdata() > 0)
    b = register_anatomy_to_gre(t1, gre, fixed_mask=mask.get_fdata() > 0)
    assert np.array_equal(a.fixed_to_moving, b.fixed_to_moving) and a.nmi == b.nmi


# ---------------------------------------------------------------------------------------------
# Inputs, errors and small pieces
# ---------------------------------------------------------------------------------------------


def test_errors_name_the_file(tmp_path, phantom3):
    p, gre, mask, t1 = phantom3
    missing = tmp_path / "nope" / "brain.mgz"
    with pytest.raises(FileNotFoundError, match="brain.mgz"):
        register_anatomy_to_gre(missing, gre)
    garbage = tmp_path / "broken_gre.nii.gz"
    garbage.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="broken_gre.nii.gz"):
        register_anatomy_to_gre(t1, garbage)
    flat = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((10, 10), np.float32), np.eye(4)), flat)
    with pytest.raises(ValueError, match="slice.nii.gz.*3-D"):
        register_anatomy_to_gre(flat, gre)
    const = tmp_path / "constant_gre.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(p.shape, np.float32), p.affine), const)
    with pytest.raises(ValueError, match="constant_gre.nii.gz.*constant"):
        register_anatomy_to_gre(t1, const)
    gre_file = tmp_path / "gre_mag.nii.gz"
    nib.save(gre, gre_file)
    wrong_mask = tmp_path / "mask_other_grid.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.eye(4)), wrong_mask)
    with pytest.raises(ValueError, match="mask_other_grid.nii.gz.*gre_mag.nii.gz"):
        register_anatomy_to_gre(t1, gre_file, fixed_mask=wrong_mask)
    empty = tmp_path / "empty_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(p.shape, np.uint8), gre.affine), empty)
    with pytest.raises(ValueError, match="empty_mask.nii.gz.*empty"):
        register_anatomy_to_gre(t1, gre_file, fixed_mask=empty)
    with pytest.raises(FileNotFoundError, match="aseg_missing.mgz"):
        resample_labels(tmp_path / "aseg_missing.mgz", gre)
    bad_tfm = tmp_path / "bad_transform.json"
    bad_tfm.write_text("{}")
    with pytest.raises(ValueError, match="bad_transform.json"):
        load_transform(bad_tfm)
    with pytest.raises(FileNotFoundError, match="no_transform.txt"):
        load_transform(tmp_path / "no_transform.txt")
    with pytest.raises(ValueError, match="xfm.mat"):
        save_transform(tmp_path / "xfm.mat", np.eye(4))
    with pytest.raises(ValueError, match="initial"):
        register_anatomy_to_gre(t1, gre, initial="magic")


def test_choose_anatomy_order_and_errors(tmp_path):
    sdir = tmp_path / "bert"
    with pytest.raises(FileNotFoundError, match="bert"):
        choose_anatomy(sdir)
    (sdir / "mri").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"bert.*brain\.mgz.*T1\.mgz"):
        choose_anatomy(sdir)
    img = nib.MGHImage(np.zeros((4, 4, 4), np.uint8), np.eye(4))
    for name, expected in (("T1.mgz", "T1.mgz"), ("norm.mgz", "norm.mgz"), ("brainmask.mgz", "brainmask.mgz"),
                           ("brain.mgz", "brain.mgz")):
        nib.save(img, sdir / "mri" / name)
        assert choose_anatomy(sdir) == sdir / "mri" / expected
    assert choose_anatomy(str(sdir)).name == "brain.mgz"


def test_resample_labels_dtype_and_identity(tmp_path):
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = (-10, -12, -8)
    rng = np.random.default_rng(3)
    for dtype in (np.uint8, np.int16, np.int32):
        lab = rng.integers(0, 60, size=(10, 12, 8)).astype(dtype)
        out = resample_labels(nib.Nifti1Image(lab, aff), nib.Nifti1Image(np.zeros((10, 12, 8), np.float32), aff))
        assert np.asarray(out.dataobj).dtype == dtype
        assert np.array_equal(np.asarray(out.dataobj), lab)
    # a shift of one voxel (2 mm) along x of the reference world: fixed_to_moving adds 2 mm
    shift = np.eye(4)
    shift[0, 3] = 2.0
    out = np.asarray(resample_labels(nib.Nifti1Image(lab, aff), nib.Nifti1Image(lab, aff), shift).dataobj)
    assert np.array_equal(out[:-1], lab[1:]) and np.all(out[-1] == 0)
    # integral float labels are accepted as int32; fractional ones are not
    fl = tmp_path / "float_labels.nii.gz"
    nib.save(nib.Nifti1Image(lab.astype(np.float32), aff), fl)
    assert np.asarray(resample_labels(fl, nib.Nifti1Image(lab, aff)).dataobj).dtype == np.int32
    frac = tmp_path / "fractional_labels.nii.gz"
    nib.save(nib.Nifti1Image(lab.astype(np.float32) + 0.3, aff), frac)
    with pytest.raises(ValueError, match="fractional_labels.nii.gz"):
        resample_labels(frac, nib.Nifti1Image(lab, aff))


def test_resample_image_between_grids():
    # a linear ramp along world x is reproduced exactly by trilinear resampling, on any grid
    src_aff = np.diag([1.0, 1.0, 1.0, 1.0])
    i, j, k = np.meshgrid(np.arange(30), np.arange(30), np.arange(30), indexing="ij")
    ramp = (3.0 * i + 1.0).astype(np.float32)          # world x = i
    ref_aff = np.array([[0, 0, 2.0, 5], [2.0, 0, 0, 6], [0, 2.0, 0, 7], [0, 0, 0, 1]])  # permuted axes, 2 mm
    out = np.asarray(resample_image(nib.Nifti1Image(ramp, src_aff),
                                    nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), ref_aff)).dataobj)
    ii, jj, kk = np.meshgrid(np.arange(8), np.arange(8), np.arange(8), indexing="ij")
    x = 2.0 * kk + 5
    assert np.allclose(out, 3.0 * x + 1.0, atol=1e-4)
    # 4-D input: each volume
    four = nib.Nifti1Image(np.stack([ramp, 2 * ramp], -1), src_aff)
    out4 = np.asarray(resample_image(four, nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), ref_aff)).dataobj)
    assert out4.shape == (8, 8, 8, 2) and np.allclose(out4[..., 1], 2 * out4[..., 0], atol=1e-4)


def test_normalised_mutual_information_range():
    rng = np.random.default_rng(0)
    a = rng.random((20, 20, 20))
    assert normalised_mutual_information(a, a) == pytest.approx(2.0, abs=1e-9)
    assert normalised_mutual_information(a, 1.0 - a) == pytest.approx(2.0, abs=1e-9)   # any contrast
    assert normalised_mutual_information(a, rng.random(a.shape)) < 1.03
    with pytest.raises(ValueError, match="same shape"):
        normalised_mutual_information(a, a[1:])


def test_result_summary_and_dict(registered):
    assert isinstance(registered, RigidRegistration)
    s = registered.summary()
    assert "rotation" in s and "plausible" in s
    d = registered.as_dict()
    json.dumps(d)
    assert d["flags"] == [] and len(d["translation_mm"]) == 3
