"""Tests of analysis.imaging.roi on a small synthetic head with known susceptibilities.

Geometry (world RAS, mm): two ellipsoid thalami (labels 10/49) at x = ∓10, lateral ventricles
(4/43) made of a body above the thalamus and an atrium posterior-lateral to it, a third
ventricle, white matter around. An internal cerebral vein (+0.35 ppm, radius 2 mm as widened
by QSM blooming) runs along the medial-dorsal edge of each thalamus, with exact partial volume
(4³ sub-samples per voxel); FreeSurfer would label it thalamus, so the segmentation ignores it. χ (ppm): thalamus
-0.029, CSF 0, white matter -0.040, so the true relative susceptibility is -29 ppb.
The χ grid is 2 mm with voxel centres on odd millimetres; the 1 mm segmentation grid has
centres on every millimetre, so nearest-neighbour resampling is exact.
"""

import shutil

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from analysis.cohort.subject import measure_subject
from analysis.imaging import roi

CHI_THAL, CHI_CSF, CHI_WM, CHI_VEIN = -0.029, 0.0, -0.040, 0.35
TRUE_RELATIVE_PPB = (CHI_THAL - CHI_CSF) * 1000
THAL = {10: (-10.0, -15.0, 5.0), 49: (10.0, -15.0, 5.0)}
THAL_AXES = (7.0, 15.0, 9.0)
BODY = {4: (-8.0, -5.0, 19.0), 43: (8.0, -5.0, 19.0)}
BODY_AXES = (4.0, 26.0, 4.0)
ATRIUM = {4: (-18.0, -40.0, 6.0), 43: (18.0, -40.0, 6.0)}
ATRIUM_AXES = (8.0, 9.0, 10.0)
VEIN_RADIUS = 2.0
VEINS = [((s * 4.5, -28.0, 10.5), (s * 4.5, -2.0, 10.5)) for s in (-1, 1)]

CHI_SHAPE, CHI_ORIGIN = (40, 48, 36), (-39.0, -59.0, -29.0)     # 2 mm, centres on odd mm
SEG1_SHAPE, SEG1_ORIGIN = (81, 97, 73), (-40.0, -60.0, -30.0)    # 1 mm


def _affine(vox, origin):
    a = np.diag([vox, vox, vox, 1.0])
    a[:3, 3] = origin
    return a


def _centres(shape, affine):
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _in_ellipsoid(xyz, centre, axes):
    return (((xyz - np.asarray(centre)) / np.asarray(axes)) ** 2).sum(axis=-1) <= 1.0


def labels_at(xyz):
    """aseg labels of the phantom at world points ``xyz`` (..., 3)."""
    lab = np.zeros(xyz.shape[:-1], dtype=np.int32)
    brain = _in_ellipsoid(xyz, (0.0, -10.0, 5.0), (38.0, 52.0, 34.0))
    lab[brain & (xyz[..., 0] < 0)] = 2
    lab[brain & (xyz[..., 0] >= 0)] = 41
    for label, c in THAL.items():
        lab[_in_ellipsoid(xyz, c, THAL_AXES)] = label
    for label in (4, 43):
        ventricle = _in_ellipsoid(xyz, BODY[label], BODY_AXES) | _in_ellipsoid(xyz, ATRIUM[label], ATRIUM_AXES)
        lab[ventricle] = label
    third = (np.abs(xyz[..., 0]) <= 2) & (xyz[..., 1] >= -25) & (xyz[..., 1] <= 0) & \
            (xyz[..., 2] >= -4) & (xyz[..., 2] <= 12)
    lab[third] = 14
    return lab


def _segment_distance(p, a, b):
    a, b = np.asarray(a), np.asarray(b)
    t = np.clip(((p - a) @ (b - a)) / ((b - a) @ (b - a)), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * (b - a)), axis=-1)


def vein_fraction(xyz, vox, n_sub=4):
    """Fraction of each voxel (centre ``xyz``, edge ``vox``) inside a vein (exact to 1/n_sub³)."""
    frac = np.zeros(xyz.shape[:-1])
    offs = (np.arange(n_sub) + 0.5) / n_sub * vox - vox / 2
    sub = np.stack(np.meshgrid(offs, offs, offs, indexing="ij"), axis=-1).reshape(-1, 3)
    for a, b in VEINS:
        near = _segment_distance(xyz, a, b) <= VEIN_RADIUS + vox
        pts = xyz[near][:, None, :] + sub[None]
        inside = _segment_distance(pts, a, b) <= VEIN_RADIUS
        frac[near] = np.maximum(frac[near], inside.mean(axis=1))
    return frac


def make_phantom(*, noise_ppm=0.003, seed=1):
    aff = _affine(2.0, CHI_ORIGIN)
    xyz = _centres(CHI_SHAPE, aff)
    lab = labels_at(xyz)
    tissue = np.zeros(CHI_SHAPE)
    tissue[np.isin(lab, (2, 41))] = CHI_WM
    tissue[np.isin(lab, (10, 49))] = CHI_THAL
    tissue[np.isin(lab, (4, 43, 14))] = CHI_CSF
    f = vein_fraction(xyz, 2.0)
    clean = (1 - f) * tissue + f * CHI_VEIN
    chi = clean + np.random.default_rng(seed).normal(0.0, noise_ppm, CHI_SHAPE)
    return {"chi": nib.Nifti1Image(chi, aff), "clean": clean, "labels": lab,
            "seg": nib.Nifti1Image(lab, aff), "vein_fraction": f, "affine": aff, "xyz": xyz}


@pytest.fixture(scope="module")
def phantom():
    return make_phantom()


@pytest.fixture(scope="module")
def measured(phantom):
    return roi.thalamic_susceptibility(phantom["chi"], phantom["seg"], return_rois=True)


# --------------------------------------------------------------------------- susceptibility

def test_relative_susceptibility_recovered_with_vein_exclusion(measured):
    # noise 3 ppb: SE of the thalamic mean ~0.1 ppb, of the CSF mean (2 x 19 voxels) ~0.5 ppb
    assert measured["relative_ppb"] == pytest.approx(TRUE_RELATIVE_PPB, abs=1.0)
    assert measured["thalamus_ppb"] == pytest.approx(CHI_THAL * 1000, abs=0.5)
    assert measured["csf_reference_ppb"] == pytest.approx(CHI_CSF * 1000, abs=1.0)
    for side in ("left", "right"):                  # one sphere of 19 voxels: SE ~0.7 ppb
        assert measured[f"{side}_thalamus_ppb"] == pytest.approx(CHI_THAL * 1000, abs=0.5)
        assert measured[f"{side}_relative_ppb"] == pytest.approx(TRUE_RELATIVE_PPB, abs=2.5)
    assert measured["n_voxels"] + measured["n_vein_voxels_excluded"] == measured["n_voxels_before_exclusion"]


def test_veins_bias_the_value_without_exclusion(phantom, measured):
    raw = roi.thalamic_susceptibility(phantom["chi"], phantom["seg"], exclude_veins=False)
    voi = np.isin(phantom["labels"], (10, 49))
    expected_bias = (phantom["clean"][voi].mean() - CHI_THAL) * 1000    # from the known veins
    assert expected_bias > 5.0                      # the phantom's veins matter (~ +9 ppb)
    bias = raw["relative_ppb"] - TRUE_RELATIVE_PPB
    assert bias > 5.0                               # veins push the thalamus up (paramagnetic)
    assert bias == pytest.approx(expected_bias, abs=1.0)
    assert raw["n_vein_voxels_excluded"] == 0
    assert raw["n_voxels"] == int(voi.sum())
    # exclusion removes at least 90 % of the bias
    assert abs(measured["relative_ppb"] - TRUE_RELATIVE_PPB) < 0.1 * bias


def test_vein_mask_finds_the_vein_and_little_else(phantom, measured):
    rois = measured["rois"]
    veins = rois.vein()
    voi = rois.thalamus(exclude_veins=False)
    f = phantom["vein_fraction"]
    assert np.all(veins[voi & (f >= 0.05)])         # every voxel >= 5 % vein is excluded
    near_vein = ndimage.binary_dilation(f > 0, iterations=2)
    false_pos = veins & ~near_vein
    assert false_pos.sum() <= 0.02 * voi.sum()      # noise outliers: < 2 % of the VOI
    for side in ("left", "right"):
        thr = measured[f"{side}_vein_threshold_ppm"]
        assert CHI_THAL + 0.005 < thr < CHI_THAL + 0.015    # median + 3 sigma, sigma = 3 ppb


def test_sign_option_and_hemispheres(phantom, measured):
    flipped = roi.thalamic_susceptibility(phantom["chi"], phantom["seg"], sign="csf_minus_thalamus")
    assert flipped["relative_ppb"] == pytest.approx(-measured["relative_ppb"], abs=1e-9)
    left = roi.thalamic_susceptibility(phantom["chi"], phantom["seg"], hemisphere="left")
    right = roi.thalamic_susceptibility(phantom["chi"], phantom["seg"], hemisphere="right")
    assert left["n_voxels"] + right["n_voxels"] == measured["n_voxels"]
    assert left["relative_ppb"] == pytest.approx(measured["left_relative_ppb"], abs=1e-9)
    assert "right_relative_ppb" not in left
    with pytest.raises(ValueError, match="sign"):
        roi.thalamic_susceptibility(phantom["chi"], phantom["seg"], sign="thalamus-csf")
    with pytest.raises(ValueError, match="hemisphere"):
        roi.thalamic_susceptibility(phantom["chi"], phantom["seg"], hemisphere="middle")


# --------------------------------------------------------------------------- CSF reference

def test_csf_sphere_inside_atrium_posterior_to_thalamus(phantom, measured):
    rois = measured["rois"]
    lab = phantom["labels"]
    xyz = phantom["xyz"]
    for side, (tl, vl) in roi.SIDES.items():
        csf = rois.csf_reference(side)
        assert measured[f"{side}_csf_radius_mm"] == pytest.approx(3.0)
        assert measured[f"{side}_csf_margin_voxels"] == 1
        assert csf.sum() == 19                       # radius 3 mm on a 2 mm grid: 1 + 6 + 12
        assert np.all(lab[csf] == vl)                # fully inside the ventricle ...
        eroded = ndimage.binary_erosion(lab == vl)   # ... and one voxel away from its wall
        assert np.all(eroded[csf])
        thal_xyz = xyz[lab == tl]
        pts = xyz[csf]
        assert pts[:, 1].max() < thal_xyz[:, 1].min()            # posterior to the pulvinar
        assert thal_xyz[:, 2].min() <= pts[:, 2].min() and pts[:, 2].max() <= thal_xyz[:, 2].max()
        assert np.all(_in_ellipsoid(pts, ATRIUM[vl], ATRIUM_AXES))  # in the atrium, not the body
        centre = np.array(measured[f"{side}_csf_center_mm"])
        assert np.sign(centre[0]) == (-1 if side == "left" else 1)


def test_csf_radius_shrinks_then_errors_for_a_narrow_ventricle(phantom):
    lab = phantom["labels"].copy()
    xyz = phantom["xyz"]
    lab[lab == 43] = 41
    # a cubic right atrium of 5 x 5 x 5 voxels (10 mm) behind the thalamus
    cube = np.all(np.abs(xyz - np.array([19.0, -39.0, 5.0])) <= 4.5, axis=-1)
    lab[cube] = 43
    seg = nib.Nifti1Image(lab, phantom["affine"])
    res = roi.thalamic_susceptibility(phantom["chi"], seg, hemisphere="right", csf_radius_mm=5.0,
                                      return_rois=True)
    # depth of the centre 6 mm, minus one voxel of margin: the 5 mm request shrinks to 4 mm,
    # which is exactly the 3 x 3 x 3 core of the cube (its boundary layer is left out)
    assert res["right_csf_radius_mm"] == pytest.approx(4.0, abs=1e-5)
    assert res["n_csf_voxels"] == 27
    assert np.array_equal(res["rois"].csf_reference("right"), ndimage.binary_erosion(cube))
    assert res["right_csf_center_mm"] == pytest.approx((19.0, -39.0, 5.0))
    assert res["right_csf_margin_voxels"] == 1
    # 3 voxels wide: no room for a margin; 'auto' drops it, an explicit margin of 1 fails
    lab[cube & (np.abs(xyz[..., 0] - 19) > 2.5)] = 41
    seg = nib.Nifti1Image(lab, phantom["affine"])
    res = roi.thalamic_susceptibility(phantom["chi"], seg, hemisphere="right", return_rois=True)
    assert res["right_csf_margin_voxels"] == 0 and res["right_csf_radius_mm"] == pytest.approx(3.0)
    assert res["n_csf_voxels"] == 19 and np.all(lab[res["rois"].csf_reference("right")] == 43)
    with pytest.raises(ValueError, match=r"43 \(Right-Lateral-Ventricle\) is too narrow"):
        roi.thalamic_susceptibility(phantom["chi"], seg, hemisphere="right", csf_margin_voxels=1)
    # 1 voxel wide: too narrow for any sphere
    lab[cube & (np.abs(xyz[..., 0] - 19) > 0.5)] = 41
    with pytest.raises(ValueError, match=r"43 \(Right-Lateral-Ventricle\) is too narrow"):
        roi.thalamic_susceptibility(phantom["chi"], nib.Nifti1Image(lab, phantom["affine"]),
                                    hemisphere="right")


def test_missing_ventricle_raises(phantom):
    lab = phantom["labels"].copy()
    lab[lab == 43] = 41
    with pytest.raises(ValueError, match=r"label 43 \(Right-Lateral-Ventricle\) is empty"):
        roi.thalamic_susceptibility(phantom["chi"], nib.Nifti1Image(lab, phantom["affine"]))
    # the body alone (above the thalamus) is not an atrium
    lab = phantom["labels"].copy()
    lab[(lab == 43) & _in_ellipsoid(phantom["xyz"], ATRIUM[43], ATRIUM_AXES)] = 41
    with pytest.raises(ValueError, match="posterior to the right thalamus"):
        roi.thalamic_susceptibility(phantom["chi"], nib.Nifti1Image(lab, phantom["affine"]))


# --------------------------------------------------------------------------- grids

def test_segmentation_on_a_1mm_grid_gives_the_same_answer(phantom, measured):
    aff1 = _affine(1.0, SEG1_ORIGIN)
    seg1 = nib.Nifti1Image(labels_at(_centres(SEG1_SHAPE, aff1)), aff1)
    on_chi = roi.to_qsm_space(seg1, phantom["chi"])
    assert on_chi.shape == CHI_SHAPE
    np.testing.assert_allclose(on_chi.affine, phantom["affine"])
    assert np.array_equal(np.asarray(on_chi.dataobj), phantom["labels"])
    res = roi.thalamic_susceptibility(phantom["chi"], seg1, partial_volume=False)
    for key in ("relative_ppb", "thalamus_ppb", "csf_reference_ppb", "n_voxels", "n_vein_voxels_excluded"):
        assert res[key] == pytest.approx(measured[key], abs=1e-9)
    # with the partial-volume rule (finer segmentation) only voxels mostly inside the thalamus stay
    pv = roi.thalamic_susceptibility(phantom["chi"], seg1)
    assert pv["left_partial_volume_rule"] == "fraction" and pv["n_voxels"] <= res["n_voxels"]
    assert pv["relative_ppb"] == pytest.approx(TRUE_RELATIVE_PPB, abs=1.0)


def test_reoriented_and_shifted_segmentation_gives_the_same_answer(phantom, measured):
    seg = phantom["seg"]
    # LIP-like orientation with permuted axes: same world labels, different voxel order
    ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(seg.affine),
                                           nib.orientations.axcodes2ornt(("S", "L", "P")))
    reoriented = seg.as_reoriented(ornt)
    assert nib.aff2axcodes(reoriented.affine) == ("S", "L", "P")
    # a larger grid whose origin is shifted by 5 voxels
    big = np.zeros(tuple(n + 10 for n in CHI_SHAPE), dtype=np.int32)
    big[5:-5, 5:-5, 5:-5] = phantom["labels"]
    shifted = nib.Nifti1Image(big, _affine(2.0, np.asarray(CHI_ORIGIN) - 10.0))
    for other in (reoriented, shifted):
        assert np.array_equal(np.asarray(roi.to_qsm_space(other, phantom["chi"]).dataobj),
                              phantom["labels"])
        res = roi.thalamic_susceptibility(phantom["chi"], other)
        assert res["relative_ppb"] == pytest.approx(measured["relative_ppb"], abs=1e-9)


def _rotation(axis, degrees):
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def test_conformed_aseg_on_an_oblique_anisotropic_chi_grid():
    """FreeSurfer-like 1 mm LIA aseg.mgz, χ on a tilted 0.9 x 0.9 x 1.8 mm grid: no exact
    voxel correspondence, so boundary voxels mix; the answer stays within 1 ppb of the truth."""
    lia = np.array([[-1.0, 0, 0, 52], [0, 0, 1, -64], [0, -1, 0, 58], [0, 0, 0, 1]])
    seg = nib.MGHImage(labels_at(_centres((104, 104, 104), lia)), lia)
    aff = np.eye(4)
    aff[:3, :3] = _rotation(0, 12) @ _rotation(2, 8) @ np.diag([0.9, 0.9, 1.8])
    shape = (96, 110, 44)
    aff[:3, 3] = np.array([0.0, -15.0, 5.0]) - aff[:3, :3] @ ((np.array(shape) - 1) / 2)
    xyz = _centres(shape, aff)
    lab = labels_at(xyz)
    tissue = np.where(np.isin(lab, (2, 41)), CHI_WM, 0.0) + np.where(np.isin(lab, (10, 49)), CHI_THAL, 0.0)
    f = vein_fraction(xyz, 1.2)
    chi = (1 - f) * tissue + f * CHI_VEIN + np.random.default_rng(0).normal(0.0, 0.005, shape)
    chi_img = nib.Nifti1Image(chi, aff)
    res = roi.thalamic_susceptibility(chi_img, seg)
    raw = roi.thalamic_susceptibility(chi_img, seg, exclude_veins=False)
    assert res["relative_ppb"] == pytest.approx(TRUE_RELATIVE_PPB, abs=1.0)
    assert res["left_csf_radius_mm"] == pytest.approx(3.0) and res["n_csf_voxels"] > 100
    assert raw["relative_ppb"] - TRUE_RELATIVE_PPB > 5.0


def test_unregistered_segmentation_fails_clearly(phantom):
    far = nib.Nifti1Image(phantom["labels"], _affine(2.0, np.asarray(CHI_ORIGIN) + 500.0))
    with pytest.raises(ValueError, match="label 10"):
        roi.thalamic_susceptibility(phantom["chi"], far)


# --------------------------------------------------------------------------- empty VOI

def test_empty_voi_raises_naming_the_label(phantom):
    lab = phantom["labels"].copy()
    lab[lab == 10] = 2
    seg = nib.Nifti1Image(lab, phantom["affine"])
    with pytest.raises(ValueError, match=r"label 10 \(Left-Thalamus-Proper / Left-Thalamus\)"):
        roi.thalamic_susceptibility(phantom["chi"], seg)
    with pytest.raises(ValueError, match="label 10"):
        roi.thalamic_susceptibility(phantom["chi"], seg, hemisphere="left")
    right = roi.thalamic_susceptibility(phantom["chi"], seg, hemisphere="right")
    assert right["relative_ppb"] == pytest.approx(TRUE_RELATIVE_PPB, abs=2.5)
    assert right["thalamus_ppb"] == pytest.approx(CHI_THAL * 1000, abs=0.5)


def test_nan_voxels_are_ignored_and_all_nan_voi_is_empty(phantom, measured):
    chi = np.asarray(phantom["chi"].dataobj).copy()
    lab = phantom["labels"]
    left = lab == 10
    chi[left & (phantom["xyz"][..., 2] > 8)] = np.nan
    res = roi.thalamic_susceptibility(nib.Nifti1Image(chi, phantom["affine"]), phantom["seg"])
    assert res["n_voxels_before_exclusion"] < measured["n_voxels_before_exclusion"]
    assert np.isfinite(res["relative_ppb"])
    chi[left] = np.nan
    with pytest.raises(ValueError, match="label 10"):
        roi.thalamic_susceptibility(nib.Nifti1Image(chi, phantom["affine"]), phantom["seg"])


def test_zeros_outside_the_brain_mask_are_ignored_when_the_mask_is_given(phantom, measured):
    """QSM derivatives hold 0 (not NaN) outside their mask: with the mask, those zeros are ignored."""
    chi = np.asarray(phantom["chi"].dataobj).copy()
    cut = (phantom["labels"] == 10) & (phantom["xyz"][..., 2] > 8)   # part of the left thalamus
    chi[cut] = 0.0
    img = nib.Nifti1Image(chi, phantom["affine"])
    # without the mask the zeros enter the VOI (vein exclusion would hide some of them as outliers)
    biased = roi.thalamic_susceptibility(img, phantom["seg"], exclude_veins=False)
    assert biased["n_voxels_before_exclusion"] == measured["n_voxels_before_exclusion"]
    assert abs(biased["left_thalamus_ppb"] - CHI_THAL * 1000) > 5.0
    mask = nib.Nifti1Image((~cut).astype(np.uint8), phantom["affine"])
    res = roi.thalamic_susceptibility(img, phantom["seg"], brain_mask_img=mask)
    assert res["n_voxels_before_exclusion"] == measured["n_voxels_before_exclusion"] - int(cut.sum())
    assert res["left_thalamus_ppb"] == pytest.approx(CHI_THAL * 1000, abs=0.7)
    assert res["thalamus_ppb"] == pytest.approx(CHI_THAL * 1000, abs=0.5)
    with pytest.raises(ValueError, match="brain_mask_img"):
        roi.thalamic_susceptibility(img, phantom["seg"],
                                    brain_mask_img=nib.Nifti1Image(np.ones((3, 3, 3, 2)), phantom["affine"]))


# --------------------------------------------------------------------------- lesions and rows

def test_lesion_volume_ml_exact():
    data = np.zeros((10, 10, 10))
    data[2:5, 3:7, 4:6] = 1.0                       # 3 * 4 * 2 = 24 voxels
    aff = np.diag([1.0, 1.0, 3.0, 1.0])             # 3 mm³ voxels
    assert roi.lesion_volume_ml(nib.Nifti1Image(data, aff)) == pytest.approx(24 * 3 / 1000)
    # probabilistic map, threshold inclusive; NaN ignored
    prob = np.zeros((4, 4, 4))
    prob[0, 0, :] = [0.2, 0.5, 0.7, 1.0]
    prob[1, 1, 1] = np.nan
    img = nib.Nifti1Image(prob, np.diag([0.5, 0.5, 0.5, 1.0]))
    assert roi.lesion_volume_ml(img) == pytest.approx(3 * 0.125 / 1000)
    assert roi.lesion_volume_ml(img, threshold=0.75) == pytest.approx(0.125 / 1000)
    # oblique 0.9 x 0.9 x 3 mm grid: the voxel volume comes from the affine (2.43 mm³)
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) @ np.diag([0.9, 0.9, 3.0])
    oblique = np.eye(4)
    oblique[:3, :3] = rot
    assert roi.lesion_volume_ml(nib.Nifti1Image(data * 255, oblique)) == pytest.approx(24 * 2.43 / 1000)
    with pytest.raises(ValueError, match="threshold"):
        roi.lesion_volume_ml(img, threshold=0)


def test_lesion_volume_from_file(tmp_path):
    data = np.zeros((6, 6, 6), dtype=np.uint8)
    data[1:3, 1:3, 1:3] = 1
    path = tmp_path / "lesions.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([1.2, 1.2, 1.2, 1.0])), path)
    assert roi.lesion_volume_ml(path) == pytest.approx(8 * 1.728 / 1000)
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        roi.lesion_volume_ml(tmp_path / "missing.nii.gz")


FS7 = "tests/data/freesurfer/fs7"


def test_measure_subject_end_to_end(tmp_path, phantom):
    """analysis.cohort.subject.measure_subject on files: the ROI code end to end."""
    sub = tmp_path / "sub-01"
    shutil.copytree(FS7, sub)
    (sub / "mri").mkdir()
    nib.save(nib.MGHImage(phantom["labels"].astype(np.int32), phantom["affine"]), sub / "mri" / "aseg.mgz")
    nib.save(phantom["chi"], tmp_path / "chi.nii.gz")
    lesion = np.zeros(CHI_SHAPE, dtype=np.uint8)
    lesion[5:8, 5:8, 5:8] = 1
    nib.save(nib.Nifti1Image(lesion, phantom["affine"]), tmp_path / "lesion.nii.gz")
    row = measure_subject("sub-01", freesurfer_dir=sub, chimap=tmp_path / "chi.nii.gz",
                          lesion_mask=tmp_path / "lesion.nii.gz")
    assert row["thalamic_relative_susceptibility_ppb"] == pytest.approx(TRUE_RELATIVE_PPB, abs=1.0)
    assert row["t2_lesion_volume_ml"] == pytest.approx(27 * 8 / 1000)
    assert row["thalamic_volume_mm3"] == pytest.approx(15566.1)
