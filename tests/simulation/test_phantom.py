"""Numerical head phantom: grid, truth values per label, veins beside the thalami, lesions, masks."""

import numpy as np
import pytest
from scipy import ndimage

from analysis.imaging.labels import THALAMUS, VENTRICULAR_CSF
from analysis.simulation import phantom as P
from analysis.simulation.phantom import TISSUES, make_head_phantom
from analysis.simulation.phantom.atlas import world_atlas_1mm


@pytest.fixture(scope="module")
def ph():
    return make_head_phantom(resolution_mm=2.0, seed=0)


def test_atlas_ships_inside_the_wheel():
    path = P.atlas_path()
    assert path.is_file() and "site-packages" in str(path) and path.name == "atlas_desikan_killiany.nii.gz"
    world, aff, hull = world_atlas_1mm()
    ids = set(np.unique(world).tolist())
    # every structure the compendium needs is in the bundled FreeSurfer segmentation
    assert {2, 41, 3, 42, 4, 43, 10, 49, 11, 50, 12, 51, 13, 52, 24} <= ids
    assert np.allclose(np.diag(aff)[:3], 1.0)  # RAS+, 1 mm
    assert hull.sum() > 1_200_000  # closed brain ≈ 1.3–1.5 L


def test_grid_and_types(ph):
    assert ph.shape == (80, 96, 84)  # 160 × 192 × 168 mm at 2 mm
    assert ph.voxel_size_mm == (2.0, 2.0, 2.0)
    assert np.allclose(ph.affine[:3, :3], np.diag([2.0, 2.0, 2.0]))  # RAS+, axial: B0 along axis 2
    assert ph.chi_ppm.dtype == np.float32 and ph.labels.dtype == np.int16
    for name in ("brain_mask", "csf_mask", "vein_mask", "lesion_mask", "head_mask"):
        assert getattr(ph, name).dtype == bool and getattr(ph, name).shape == ph.shape
    # the thalami sit near MNI (±12, −18, +6) mm
    for lab, x in ((10, -11.0), (49, 12.0)):
        c = ph.affine[:3, :3] @ np.argwhere(ph.labels == lab).mean(0) + ph.affine[:3, 3]
        assert abs(c[0] - x) < 3 and abs(c[1] + 18) < 4 and abs(c[2] - 6) < 4
    # world grid holds the whole head; the FOV is a crop of it
    assert np.array_equal(ph.world_chi_ppm[ph.fov_slices], ph.chi_ppm)
    edge = np.concatenate([ph.world_chi_ppm[[0, -1]].ravel(), ph.world_chi_ppm[:, [0, -1]].ravel(),
                           ph.world_chi_ppm[:, :, [0, -1]].ravel()])
    assert np.all(edge == np.float32(P.AIR_CHI_PPM))  # air all around the head


def test_fov_shape_at_one_mm_without_building():
    # 1 mm: 160 × 192 × 168 voxels (the benchmark grid); checked cheaply from the same rule
    assert [int(round(f / 1.0)) for f in P.DEFAULT_FOV_MM] == [160, 192, 168]


def test_truth_values_per_label(ph):
    expected = {2: -0.03, 41: -0.03, 3: 0.02, 42: 0.02, 10: 0.04, 49: 0.04, 11: 0.07, 50: 0.07, 12: 0.06,
                51: 0.06, 13: 0.15, 52: 0.15, 4: 0.0, 43: 0.0, 24: 0.0, 77: 0.0, 901: 0.45, 902: 0.45, 903: 0.45,
                904: 0.45, 905: 0.45, 911: -2.0, 0: 9.4, 913: 9.4}
    table = ph.truth.set_index("label")
    for lab, chi in expected.items():
        vox = ph.chi_ppm[ph.labels == lab]
        assert vox.size > 0, lab
        assert np.all(vox == np.float32(chi)), lab
        assert table.loc[lab, "chi_ppm"] == pytest.approx(chi, abs=1e-7)
    # every voxel's χ, R2*, M0 follow its label's row
    for row in ph.truth.itertuples():
        sel = ph.labels == row.label
        assert sel.sum() == row.n_voxels
        assert np.all(ph.r2star_hz[sel] == np.float32(row.r2star_hz))
        assert np.all(ph.m0[sel] == np.float32(row.m0))
        assert row.volume_ml == pytest.approx(row.n_voxels * 0.008)
    assert set(ph.truth["structure"]) >= {"Left-Thalamus", "Right-Thalamus", "Left-Internal-Cerebral-Vein",
                                          "Right-Basal-Vein-of-Rosenthal", "Skull", "Air-Cavity"}
    # R2*: pallidum > putamen > WM > cortex > CSF (3 T ordering)
    r = table["r2star_hz"]
    assert r[13] > r[12] > r[2] > r[3] > r[4] > 0


def test_veins_beside_the_thalami(ph):
    thal_aseg = np.isin(ph.aseg, THALAMUS)
    thal_true = np.isin(ph.labels, THALAMUS)
    d_thal = ndimage.distance_transform_edt(~thal_true, sampling=ph.voxel_size_mm)
    for vein in (901, 902, 903, 904):
        v = ph.labels == vein
        assert v.sum() >= 20
        # the tube hugs the thalamus: most of it within 6 mm of the true thalamus …
        assert np.mean(d_thal[v] <= 6.0) > 0.6
        # … and part of it inside the FreeSurfer-like thalamus (the "sloppy VOI")
        assert (v & thal_aseg).sum() >= 5
    # left veins on the left, right on the right (RAS: x < 0 is left)
    x = ph.affine[0, 0] * np.indices(ph.shape)[0] + ph.affine[0, 3]
    assert x[ph.labels == 901].mean() < 0 < x[ph.labels == 902].mean()
    assert x[ph.labels == 903].mean() < 0 < x[ph.labels == 904].mean()
    # the nuisance: a VOI from the aseg is biased upwards by the veins, excluding them removes the bias
    assert ph.chi_ppm[thal_aseg].mean() > 0.04 + 0.005
    assert np.all(ph.chi_ppm[thal_aseg & ~ph.vein_mask] == np.float32(0.04))
    assert ph.params["aseg_thalamus_volume_ml"] > ph.params["thalamus_volume_ml"]["total"]


def test_masks_consistent(ph):
    assert np.array_equal(ph.vein_mask, np.isin(ph.labels, P.VEINS))
    assert np.array_equal(ph.lesion_mask, ph.labels == P.LESION)
    assert np.array_equal(ph.csf_mask, np.isin(ph.labels, VENTRICULAR_CSF))
    assert not (ph.csf_mask & ~ph.brain_mask).any()
    assert not (ph.lesion_mask & ~ph.brain_mask).any()
    assert (ph.vein_mask & ph.brain_mask).sum() / ph.vein_mask.sum() > 0.9
    assert not (ph.brain_mask & ~ph.head_mask).any()
    # no skull, scalp or air inside the brain; no brain label outside it in the aseg
    assert not np.isin(ph.labels[ph.brain_mask], (0, 911, 912, 913)).any()
    assert not ph.aseg[~ph.brain_mask].any()
    assert np.array_equal(ph.aseg[ph.brain_mask & ~ph.vein_mask], ph.labels[ph.brain_mask & ~ph.vein_mask])
    assert np.all(ph.m0[ph.labels == 0] == 0) and np.all(ph.r2star_hz[ph.brain_mask] > 0)
    # skull separates brain and scalp: a ring of skull between the brain and the air
    assert (ph.labels == 911).sum() > 0.2 * ph.brain_mask.sum()
    # ventricles ≈ 15 mL in the template
    assert 10 < ph.csf_mask.sum() * 0.008 < 25


def test_lesions_exact_volume_in_white_matter():
    a = make_head_phantom(resolution_mm=2.0, seed=3, lesion_volume_ml=3.0, n_lesions=4)
    none = make_head_phantom(resolution_mm=2.0, seed=3, lesion_volume_ml=0.0)
    assert a.params["lesion_volume_ml"] == pytest.approx(3.0, abs=0.008)
    assert a.lesion_mask.sum() == 375  # 3 mL / 8 µL
    assert not none.lesion_mask.any() and none.params["n_lesions"] == 0
    # lesions replace cerebral white matter only, and carry FreeSurfer's WM-hypointensity label in the aseg
    assert np.isin(none.labels[a.lesion_mask], (2, 41)).all()
    assert np.all(a.aseg[a.lesion_mask] == 77)
    assert np.all(a.chi_ppm[a.lesion_mask] == np.float32(0.0))
    n_comp = ndimage.label(a.lesion_mask, structure=np.ones((3, 3, 3)))[1]
    assert 1 <= n_comp <= 4 and a.params["n_lesions"] == 4
    assert sum(les["n_voxels"] for les in a.params["lesions"]) == 375


def test_thalamus_scale_and_chi():
    base = make_head_phantom(resolution_mm=2.0, seed=0, lesion_volume_ml=0.0)
    small = make_head_phantom(resolution_mm=2.0, seed=0, lesion_volume_ml=0.0, thalamus_scale=0.8,
                              thalamus_chi_ppm=(0.055, 0.05))
    ratio = small.params["thalamus_volume_ml"]["total"] / base.params["thalamus_volume_ml"]["total"]
    assert ratio == pytest.approx(0.8, abs=0.05)
    assert np.all(small.chi_ppm[small.labels == 10] == np.float32(0.055))
    assert np.all(small.chi_ppm[small.labels == 49] == np.float32(0.05))
    # the lost thalamus became neighbouring tissue, not air or a hole in the brain
    assert small.brain_mask.sum() == base.brain_mask.sum()


def test_deterministic_and_seed_dependent(ph):
    again = make_head_phantom(resolution_mm=2.0, seed=0)
    assert np.array_equal(again.labels, ph.labels) and np.array_equal(again.chi_ppm, ph.chi_ppm)
    other = make_head_phantom(resolution_mm=2.0, seed=1)
    assert not np.array_equal(other.lesion_mask, ph.lesion_mask)
    assert np.array_equal(other.vein_mask, ph.vein_mask)  # anatomy does not depend on the seed


def test_overrides_and_errors():
    p = make_head_phantom(resolution_mm=2.0, seed=0, lesion_volume_ml=0, chi_overrides={13: 0.2}, cavities=False)
    assert np.all(p.chi_ppm[p.labels == 13] == np.float32(0.2)) and not (p.labels == 913).any()
    with pytest.raises(ValueError, match="resolution_mm"):
        make_head_phantom(resolution_mm=0)
    with pytest.raises(ValueError, match="chi_overrides"):
        make_head_phantom(resolution_mm=2.0, chi_overrides={12345: 0.1})
    with pytest.raises(ValueError, match="thalamus_scale"):
        make_head_phantom(resolution_mm=2.0, thalamus_scale=5)
    with pytest.raises(ValueError, match="no image"):
        p.to_nifti("nothing")
    img = p.to_nifti("labels")
    assert img.shape == p.shape and np.allclose(img.affine, p.affine)
    assert set(TISSUES) >= set(np.unique(p.labels).tolist())


@pytest.mark.slow
def test_one_mm_phantom_grid():
    p = make_head_phantom(resolution_mm=1.0, seed=0)
    assert p.shape == (160, 192, 168)
    assert p.params["lesion_volume_ml"] == pytest.approx(5.0, abs=0.001)
    assert 9.0 < p.params["thalamus_volume_ml"]["left"] < 12.5
