"""Dipole inversion: MEDI vs TKD on a small phantom, MEDI+0, edge mask, input validation."""

import numpy as np
import pytest
from scipy import ndimage

from analysis.imaging.metrics import nrmse
from analysis.imaging.qsm import gradient_mask, smv_radii_mm, tkd
from analysis.imaging.qsm import medi as medi_default
from analysis.imaging.qsm.dipole import AUTO_SMV_RADII_MM, smv_eroded_mask
from tests.helpers.qsm import noisy_ellipsoid

VS = (3.0, 3.0, 3.0)


def medi(*args, **kwargs):
    """The Gauss–Newton/CG solver (the toolbox-equivalent reference), which this file tests."""
    kwargs.setdefault("solver", "gncg")
    return medi_default(*args, **kwargs)


@pytest.fixture(scope="module")
def phantom():
    return noisy_ellipsoid((48, 48, 48), voxel_size=VS, noise_ppm=0.005, seed=0)


def test_medi_beats_tkd(phantom):
    m = phantom["mask"]
    chi, info = medi(phantom["field"], m, phantom["magnitude"], voxel_size=VS, return_info=True)
    chi_tkd = tkd(phantom["field"], m, voxel_size=VS)
    e_medi = nrmse(chi, phantom["chi"], mask=m)
    e_tkd = nrmse(chi_tkd, phantom["chi"], mask=m)
    assert e_medi < 0.85 * e_tkd
    assert e_medi < 80
    assert 1 <= info["n_gn"] <= 10 and all(k <= 100 for k in info["n_cg"])
    assert info["update_ratio"][-1] < 0.1 or info["n_gn"] == 10
    assert np.all(chi[~m] == 0)
    # the pallidum (+0.15 ppm) is recovered within 20 ppb, and ordering of deep grey is kept
    lab = phantom["labels"]
    mean = {name: chi[lab == k].mean() for k, name in phantom["names"].items() if np.any(lab == k)}
    assert abs(mean["pallidum"] - 0.15) < 0.02
    assert mean["pallidum"] > mean["caudate"] > mean["thalamus"] > mean["white_matter"]


def test_default_is_admm_with_automatic_lambda(phantom):
    """medi() by default: ADMM with λ chosen from the field, recorded in info; on this noisy
    field (0.005 ppm noise, σ_φ/σ_n ≈ 1.5) the rule regularises strongly, and the map beats
    both TKD and the toolbox's fixed λ = 1000."""
    m = phantom["mask"]
    chi, info = medi_default(phantom["field"], m, phantom["magnitude"], voxel_size=VS, return_info=True)
    assert info["solver"] == "admm" and info["lambda_method"] == "auto-normalised"
    assert info["lambda_normalised"] == pytest.approx(info["lambda"] * info["lambda_field_scale_rad"])
    assert 1.0 < info["lambda_normalised"] < 10.0
    fixed = medi_default(phantom["field"], m, phantom["magnitude"], voxel_size=VS, lambda_=1000.0)
    e_auto = nrmse(chi, phantom["chi"], mask=m)
    assert e_auto < 0.6 * nrmse(fixed, phantom["chi"], mask=m)
    assert e_auto < 0.5 * nrmse(tkd(phantom["field"], m, voxel_size=VS), phantom["chi"], mask=m)
    with pytest.raises(ValueError, match="lambda_"):
        medi_default(phantom["field"], m, phantom["magnitude"], voxel_size=VS, lambda_="best")
    with pytest.raises(ValueError, match="constant"):
        medi_default(np.where(m, 0.01, 0.0), m, phantom["magnitude"], voxel_size=VS)


def test_medi_lambda_is_defined_for_radians(phantom):
    """ppm → rad by s = 2π ΔTE γ̄ B0: doubling ΔTE with λ/2 (and ε·4) is the same problem."""
    m = phantom["mask"]
    kw = dict(voxel_size=VS, max_iter=3, cg_tol=1e-3, cg_max_iter=300)
    a = medi(phantom["field"], m, phantom["magnitude"], lambda_=1000.0, **kw)
    b = medi(phantom["field"], m, phantom["magnitude"], delta_te_s=9.6e-3, lambda_=500.0, epsilon=4e-6, **kw)
    assert np.linalg.norm(a - b) < 1e-3 * np.linalg.norm(a)


def test_medi_noise_weights_are_scale_free(phantom):
    """Noise weights are normalised to mean 1: scaling noise_std changes nothing."""
    m = phantom["mask"]
    n = np.where(m, 0.01, 1.0) * (1 + 0.5 * np.random.default_rng(1).random(m.shape))
    kw = dict(voxel_size=VS, max_iter=2)
    a = medi(phantom["field"], m, phantom["magnitude"], noise_std=n, **kw)
    b = medi(phantom["field"], m, phantom["magnitude"], noise_std=7.0 * n, **kw)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_medi_smv_noise_weights_do_not_depend_on_the_unit(phantom):
    """With the SMV option the noise map is filtered in float32: it must not matter whether it
    is given in rad (~1e-3) or ppm (~1e-4); before the fix, the round-off of the padding's 1.0
    swamped ppm-sized values and changed the result (thalamus −2.96 vs −2.46 ppb on the phantom)."""
    m = phantom["mask"]
    n = np.where(m, 1.0, 0.0) * (1 + np.random.default_rng(2).random(m.shape))
    kw = dict(voxel_size=VS, max_iter=2, smv_radius_mm=6.0, merit=True)
    a = medi(phantom["field"], m, phantom["magnitude"], noise_std=np.where(m, 3e-3 * n, 1.0), **kw)
    b = medi(phantom["field"], m, phantom["magnitude"], noise_std=np.where(m, 1e-5 * n, 1.0), **kw)
    np.testing.assert_allclose(a, b, atol=1e-5 * np.abs(a).max())


def test_medi0_zero_references_to_csf(phantom):
    m = phantom["mask"]
    csf = phantom["labels"] == 3
    chi = medi(phantom["field"] + 0.0, m, phantom["magnitude"], voxel_size=VS, csf_mask=csf, max_iter=3)
    assert abs(chi[csf].mean()) < 1e-6
    chi_t = tkd(phantom["field"], m, voxel_size=VS, csf_mask=csf)
    assert abs(chi_t[csf].mean()) < 1e-6
    # the CSF term makes the ventricles more uniform than plain MEDI
    plain = medi(phantom["field"], m, phantom["magnitude"], voxel_size=VS, max_iter=3)
    assert chi[csf].std() < plain[csf].std()


def test_medi_options_smv_and_merit(phantom):
    m = phantom["mask"]
    chi, info = medi(phantom["field"], m, phantom["magnitude"], voxel_size=VS, smv_radius_mm=5.0, merit=True,
                     return_info=True, max_iter=3)
    em = info["mask"]
    assert em.sum() < m.sum() and np.all(m[em]) and np.all(chi[~em] == 0)
    assert nrmse(chi, phantom["chi"], mask=em) < 90


def test_smv_radii_rule():
    """``"auto"``: every 10 mm from 40 mm down, then the toolbox's 5 mm (``medi`` keeps the deeper ones that fit)."""
    for vs in ((2.0, 2.0, 2.0), (1.0, 1.0, 1.0), (1.0, 1.0, 2.0), (0.5, 0.5, 2.0), (3.0, 3.0, 3.0)):
        assert smv_radii_mm("auto", vs) == (40.0, 30.0, 20.0, 10.0, 5.0) == AUTO_SMV_RADII_MM
    assert smv_radii_mm(None, VS) == () and smv_radii_mm(0, VS) == ()
    assert smv_radii_mm(5, VS) == (5.0,)
    assert smv_radii_mm([4.0, 9.0, 4.0], VS) == (9.0, 4.0)       # deepest first, duplicates dropped
    for bad in ("big", -1.0, [5.0, np.nan]):
        with pytest.raises(ValueError, match="smv_radius_mm"):
            smv_radii_mm(bad, VS)


def test_medi_nested_smv_passes(phantom):
    """Two radii: χ from the deep pass where its sphere fits, from the shallow pass (shifted by the mean
    difference over the deep mask) in the band between; the union of the masks is returned."""
    m = phantom["mask"]
    kw = dict(voxel_size=VS, lambda_=1000.0, merit=True)
    deep, di = medi_default(phantom["field"], m, phantom["magnitude"], smv_radius_mm=12.0, return_info=True, **kw)
    shallow, si = medi_default(phantom["field"], m, phantom["magnitude"], smv_radius_mm=6.0, return_info=True, **kw)
    chi, info = medi_default(phantom["field"], m, phantom["magnitude"], smv_radius_mm=(6.0, 12.0), return_info=True,
                             **kw)
    dm, sm = di["mask"], si["mask"]
    assert dm.sum() < sm.sum() and np.all(sm[dm])
    np.testing.assert_array_equal(info["mask"], sm)
    np.testing.assert_allclose(chi[dm], deep[dm], atol=1e-6)
    offset = float(np.mean(shallow[dm] - deep[dm]))
    band = sm & ~dm
    np.testing.assert_allclose(chi[band], shallow[band] - offset, atol=1e-6)
    assert np.all(chi[~sm] == 0)
    assert info["smv_radii_mm"] == [12.0, 6.0]
    assert [p["radius_mm"] for p in info["smv_passes"]] == [12.0, 6.0]
    assert info["smv_passes"][1]["offset_ppm"] == pytest.approx(offset, abs=1e-7)
    assert sum(p["n_voxels"] for p in info["smv_passes"]) == sm.sum()
    # outside the mask: the shallow pass's own solution, on the same reference
    np.testing.assert_allclose(info["chi_unmasked"][band], chi[band], atol=1e-6)
    # "auto" keeps the deeper candidates whose eroded mask holds >= 10 mL of voxels with their 6 neighbours in it
    # (and >= 0.5 mL of the CSF mask when there is one), always the toolbox's 5 mm; a 13 mm ball keeps 5 mm alone
    fits = [r for r in AUTO_SMV_RADII_MM[:-1]
            if ndimage.binary_erosion(smv_eroded_mask(m, r, voxel_size=VS)).sum() * 27e-3 >= 10.0]
    assert fits == [40.0, 30.0, 20.0, 10.0]          # the ellipsoid (a brain-sized object) takes them all
    _, ai = medi_default(phantom["field"], m, phantom["magnitude"], smv_radius_mm="auto", return_info=True, **kw)
    assert ai["smv_radii_mm"] == fits + [5.0]
    assert ai["mask"].sum() == smv_eroded_mask(m, 5.0, voxel_size=VS).sum()
    # with a CSF mask only near the edge, no deeper pass holds CSF: 5 mm alone
    rim_csf = m & ~smv_eroded_mask(m, 10.0, voxel_size=VS)
    _, ci = medi_default(phantom["field"], m, phantom["magnitude"], smv_radius_mm="auto", return_info=True,
                         csf_mask=rim_csf, **kw)
    assert ci["smv_radii_mm"] == [5.0]
    # with a CSF mask that spans the object (every third plane), no pass deeper than 30 mm; a compact one
    # (a 12 mm ball at the centre) keeps the 40 mm pass
    spread = m & (np.arange(m.shape[0]) % 3 == 0)[:, None, None]
    _, wi = medi_default(phantom["field"], m, phantom["magnitude"], smv_radius_mm="auto", return_info=True,
                         csf_mask=spread, **kw)
    assert wi["smv_radii_mm"] == [30.0, 20.0, 10.0, 5.0]
    c = np.array(m.shape) / 2
    centre = m & (np.sum((np.indices(m.shape).T - c) ** 2, axis=-1).T * 9.0 < 12.0**2)
    _, ki = medi_default(phantom["field"], m, phantom["magnitude"], smv_radius_mm="auto", return_info=True,
                         csf_mask=centre, **kw)
    assert ki["smv_radii_mm"] == [40.0, 30.0, 20.0, 10.0, 5.0]
    ball = m & (np.sum((np.indices(m.shape).T - c) ** 2, axis=-1).T * 9.0 < 13.0**2)
    _, bi = medi_default(np.where(ball, phantom["field"], 0), ball, phantom["magnitude"], smv_radius_mm="auto",
                         return_info=True, **kw)
    assert bi["smv_radii_mm"] == [5.0] and bi["mask"].any()
    # a slab 13 voxels (39 mm) thick: the 20 mm pass would leave at most a sheet one voxel thick (no voxel with
    # its 6 neighbours inside, where λ's noise estimate fails), so it is dropped, 10 mm kept
    slab = m.copy()
    zc = m.shape[2] // 2
    slab[..., : zc - 6] = False
    slab[..., zc + 7:] = False
    _, si = medi_default(np.where(slab, phantom["field"], 0), slab, phantom["magnitude"], smv_radius_mm="auto",
                         return_info=True, **kw)
    assert si["smv_radii_mm"] == [10.0, 5.0]


def test_gradient_mask_edge_fraction():
    rng = np.random.default_rng(0)
    mag = rng.random((20, 20, 20)).astype(np.float32)
    mask = np.zeros((20, 20, 20), bool)
    mask[3:17, 3:17, 3:17] = True
    for pct in (0.9, 0.3):
        wg = gradient_mask(mag, mask, voxel_size=(1, 1, 2), percentage=pct)
        assert wg.shape == (3, 20, 20, 20)
        assert (~wg).sum() / mask.sum() == pytest.approx(pct, abs=2 / mask.sum())
    with pytest.raises(ValueError, match="not a percent"):
        gradient_mask(mag, mask, voxel_size=1.0, percentage=90)


def test_tkd_inverts_well_conditioned_fields_exactly():
    # a field containing only frequencies where |D| > threshold is inverted exactly
    n = 32
    rng = np.random.default_rng(3)
    chi = rng.standard_normal((n, n, n)).astype(np.float32)
    import scipy.fft as sfft

    from analysis.imaging.qsm import dipole_kernel

    d = dipole_kernel((n, n, n))
    spec = sfft.rfftn(chi)
    spec[np.abs(d) <= 0.25] = 0
    chi_bl = sfft.irfftn(spec, s=(n, n, n)).astype(np.float32)
    field = sfft.irfftn(spec * d, s=(n, n, n)).astype(np.float32)
    out = tkd(field, np.ones((n, n, n), bool), voxel_size=1.0, pad=0)
    np.testing.assert_allclose(out, chi_bl, atol=2e-4 * np.abs(chi_bl).max())


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(local_field=np.zeros((4, 4, 4))), "mask shape"),
        (dict(magnitude=np.ones((8, 8, 9))), "magnitude shape"),
        (dict(mask=np.zeros((8, 8, 8), bool)), "mask is empty"),
        (dict(local_field=np.full((8, 8, 8), np.nan)), "non-finite"),
        (dict(magnitude=-np.ones((8, 8, 8))), "non-negative"),
        (dict(noise_std=np.zeros((8, 8, 8))), "noise_std"),
        (dict(lambda_=-1), "lambda_"),
        (dict(percentage=90), "percentage"),
        (dict(delta_te_s=0), "delta_te_s"),
        (dict(voxel_size=(1, 1)), "voxel_size"),
        (dict(max_iter=0), "max_iter"),
        (dict(csf_mask=np.zeros((8, 8, 8), bool)), "csf_mask"),
        (dict(local_field=np.zeros((8, 8, 8, 2))), "3-D"),
    ],
)
def test_medi_rejects_bad_input(change, match):
    kw = dict(local_field=np.zeros((8, 8, 8)), mask=np.ones((8, 8, 8), bool), magnitude=np.ones((8, 8, 8)),
              voxel_size=1.0)
    kw.update(change)
    args = [kw.pop("local_field"), kw.pop("mask"), kw.pop("magnitude")]
    with pytest.raises(ValueError, match=match):
        medi(*args, **kw)
