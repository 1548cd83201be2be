"""End-to-end reconstruction of a simulated multi-echo acquisition."""

import warnings

import numpy as np
import pytest

from analysis.imaging.metrics import nrmse
from analysis.imaging.qsm import (
    GAMMA_HZ_PER_T,
    brain_mask,
    combine_magnitude,
    erode_mm,
    forward_field,
    reconstruct_megre,
    reconstruct_recipes,
)
from analysis.imaging.qsm._synthetic import ellipsoid_brain

N = 48
VS = (3.0, 3.0, 3.0)
TE = 4.3e-3 + 4.8e-3 * np.arange(6)


def _acquisition(sigma):
    ph = ellipsoid_brain((N, N, N))
    x, y, z = np.meshgrid(*[np.arange(N) - N / 2 + 0.5] * 3, indexing="ij")
    head = (x / 23) ** 2 + (y / 23) ** 2 + (z / 23) ** 2 <= 1
    air = x**2 + y**2 + (z + 32) ** 2 < 10**2  # an air pocket below the field of view
    chi_bg = np.where(air, 9.4, 0.0).astype(np.float32)
    # its field plus a linear (harmonic) field of distant sources: 2 ppm across the field of view
    f_bg = forward_field(chi_bg, voxel_size=VS, pad=48) + 2.0 * y / N
    f_loc = forward_field(ph["chi"], voxel_size=VS)
    total = f_bg + f_loc
    rng = np.random.default_rng(0)
    rho = np.where(head, np.maximum(ph["magnitude"], 0.5), 0.0)
    offset = 0.8 * x / N + 0.3
    hz = total * 1e-6 * GAMMA_HZ_PER_T * 3.0
    sig = rho[..., None] * np.exp(-25 * TE) * np.exp(1j * (offset[..., None] + 2 * np.pi * hz[..., None] * TE))
    if sigma:
        sig += sigma * (rng.standard_normal(sig.shape) + 1j * rng.standard_normal(sig.shape))
    return {**ph, "mag": np.abs(sig), "phase": np.angle(sig), "total": total, "f_bg": f_bg, "f_loc": f_loc}


@pytest.fixture(scope="module")
def acquisition():
    return _acquisition(0.01)


def test_reconstruct_medi_and_tkd(acquisition):
    a = acquisition
    m = a["mask"]
    # the phase really wraps in the brain
    assert np.ptp(2 * np.pi * a["total"][m] * 1e-6 * GAMMA_HZ_PER_T * 3 * 4.8e-3) > 2 * np.pi
    out = reconstruct_megre(a["mag"], a["phase"], TE, voxel_size_mm=VS, mask=m, progress=False)
    for key in ("chi_ppm", "mask", "total_field_ppm", "local_field_ppm", "noise_std", "magnitude"):
        assert out[key].shape == m.shape
    # total field recovered up to a constant (unwrapping + fit)
    d = (out["total_field_ppm"] - a["total"])[m]
    assert np.std(d) < 0.01
    # the background is removed: what remains is close to the local field's scale
    assert np.std(out["local_field_ppm"][m]) < 0.2 * np.std(a["f_bg"][m])
    # PDF also removes the harmonic part of the brain's own field (worst at the boundary), so
    # compare away from the boundary, offset removed; structure means referenced to CSF
    inner = erode_mm(m, 3.0, voxel_size=VS)
    chi = out["chi_ppm"]
    e_medi = nrmse(chi, a["chi"], mask=inner, demean=True)
    tkd = reconstruct_megre(a["mag"], a["phase"], TE, voxel_size_mm=VS, mask=m, method="tkd", progress=False)
    e_tkd = nrmse(tkd["chi_ppm"], a["chi"], mask=inner, demean=True)
    assert e_medi < 0.6 * e_tkd
    lab = a["labels"]
    ref = chi[lab == 3].mean()
    for k, true in ((4, 0.04), (5, 0.07), (6, 0.06), (7, 0.15), (2, -0.03)):
        assert abs(chi[lab == k].mean() - ref - true) < 0.01  # within 10 ppb
    assert out["parameters"]["method"] == "MEDI"
    assert out["parameters"]["delta_te_s"] == pytest.approx(4.8e-3)
    assert out["info"]["n_iter"] >= 1 and out["info"]["solver"] == "admm"
    assert out["parameters"]["lambda_method"] == "auto-normalised" and out["parameters"]["lambda"] > 0


def test_reconstruct_medi0_vsharp_path(acquisition):
    a = acquisition
    csf = a["labels"] == 3
    out = reconstruct_megre(a["mag"], a["phase"], TE, voxel_size_mm=VS, mask=a["mask"], unwrap="path",
                            background="vsharp", method="medi0", csf_mask=csf, progress=False,
                            background_options={"radii_mm": [9.0, 6.0, 3.0]}, max_iter=3)
    assert out["parameters"]["method"] == "MEDI+0"
    assert out["mask"].sum() < a["mask"].sum()  # V-SHARP eroded it
    sel = out["csf_mask"]
    assert abs(out["chi_ppm"][sel].mean()) < 1e-6  # zero-referenced to CSF


def test_reconstruct_rejects_bad_input(acquisition):
    a = acquisition
    mag, ph = a["mag"], a["phase"]
    kw = dict(voxel_size_mm=VS, progress=False)
    with pytest.raises(ValueError, match="phase shape"):
        reconstruct_megre(mag, ph[..., :3], TE, **kw)
    with pytest.raises(ValueError, match="echo_times_s has"):
        reconstruct_megre(mag, ph, TE[:4], **kw)
    with pytest.raises(ValueError, match="at least 2 echoes"):
        reconstruct_megre(mag[..., :1], ph[..., :1], TE[:1], **kw)
    with pytest.raises(ValueError, match="method"):
        reconstruct_megre(mag, ph, TE, method="star", **kw)
    with pytest.raises(ValueError, match="unknown option"):
        reconstruct_megre(mag, ph, TE, lambada=3, **kw)
    with pytest.raises(ValueError, match="mask shape"):
        reconstruct_megre(mag, ph, TE, mask=np.ones((3, 3, 3), bool), **kw)
    with pytest.raises(ValueError, match="voxel_size_mm"):
        reconstruct_megre(mag, ph, TE, voxel_size_mm=(1, 1), progress=False)


def test_reconstruct_noise_free_data():
    """Noise-free echoes: the fit's noise map is 0 (its residual is float32 round-off), PDF falls
    back to uniform weights (it used to fail: 'noise_std is not positive ... anywhere') and MEDI
    uses uniform weights; the result is at least as good as with noise."""
    a = _acquisition(0.0)
    m = a["mask"]
    with pytest.warns(RuntimeWarning, match="noise-free"):
        out = reconstruct_megre(a["mag"], a["phase"], TE, voxel_size_mm=VS, mask=m, progress=False,
                                method="medi0", csf_mask=a["labels"] == 3, smv_radius_mm=6.0, merit=True)
    assert np.all(out["noise_std"][m] == 0)
    assert out["parameters"]["noise_weights"].startswith("uniform")
    assert np.all(np.isfinite(out["chi_ppm"]))
    lab, chi = a["labels"], out["chi_ppm"]
    em = out["mask"]
    for k, true in ((5, 0.07), (7, 0.15), (2, -0.03)):
        assert abs(chi[(lab == k) & em].mean() - true) < 0.01


def test_reconstruct_recipes_share_the_field_and_match_reconstruct_megre(acquisition):
    a = acquisition
    m, csf = a["mask"], a["labels"] == 3
    kw = dict(voxel_size_mm=VS, mask=m, csf_mask=csf, progress=False)
    recipes = {"tkd-vsharp": {"background": "vsharp", "method": "tkd", "background_options": {"radii_mm": [9.0, 6.0]}},
               "tkd-pdf": {"background": "pdf", "method": "tkd"},
               "medi0": {"background": "pdf", "method": "medi0", "max_iter": 2, "smv_radius_mm": 6.0}}
    out = reconstruct_recipes(a["mag"], a["phase"], TE, recipes=recipes, **kw)
    assert list(out) == list(recipes)
    assert out["tkd-pdf"]["total_field_ppm"] is out["medi0"]["total_field_ppm"]       # computed once
    assert out["tkd-pdf"]["local_field_ppm"] is out["medi0"]["local_field_ppm"]       # same PDF, once
    assert out["tkd-vsharp"]["mask"].sum() < m.sum()
    assert out["medi0"]["parameters"]["method"] == "MEDI+0"
    assert out["medi0"]["parameters"]["options"]["smv_radius_mm"] == 6.0
    assert out["medi0"]["fitted_field_rad"].shape == m.shape
    assert np.abs(out["medi0"]["fitted_field_rad"]).max() <= np.pi + 1e-6                 # wrapped
    one = reconstruct_megre(a["mag"], a["phase"], TE, method="medi0", max_iter=2, smv_radius_mm=6.0, **kw)
    np.testing.assert_array_equal(one["chi_ppm"], out["medi0"]["chi_ppm"])
    with pytest.raises(ValueError, match="unknown option"):
        reconstruct_recipes(a["mag"], a["phase"], TE, recipes={"x": {"method": "tkd", "merit": True}}, **kw)
    with pytest.raises(ValueError, match="background"):
        reconstruct_recipes(a["mag"], a["phase"], TE, recipes={"x": {"background": "sharp"}}, **kw)
    with pytest.raises(ValueError, match="recipes"):
        reconstruct_recipes(a["mag"], a["phase"], TE, recipes={}, **kw)
    with pytest.raises(ValueError, match="fit_options"):
        reconstruct_recipes(a["mag"], a["phase"], TE, recipes={"x": {"fit_options": {}}}, **kw)


def test_default_brain_mask_when_none_is_given(acquisition):
    """Without a mask, reconstruct_megre uses brain_mask of the echo RSS, which here is the head."""
    a = acquisition
    out = reconstruct_megre(a["mag"], a["phase"], TE, voxel_size_mm=VS, method="tkd", progress=False)
    assert out["parameters"]["mask"].startswith("brain_mask")
    np.testing.assert_array_equal(out["brain_mask"], brain_mask(combine_magnitude(a["mag"]), voxel_size=VS))
    x, y, z = np.meshgrid(*[np.arange(N) - N / 2 + 0.5] * 3, indexing="ij")
    head = (x / 23) ** 2 + (y / 23) ** 2 + (z / 23) ** 2 <= 1
    bm = out["brain_mask"]
    assert np.all(head[bm]) and bm.sum() > 0.9 * head.sum()


def test_a_compact_csf_mask_is_flagged(acquisition):
    """MEDI+0 with a CSF mask far from most of the brain (here the ellipsoid's ventricles) warns and says so in the
    parameters; the spread is the median distance of brain voxels to the mask."""
    from analysis.imaging.qsm.mask import COMPACT_CSF_SPREAD_MM, csf_mask_spread_mm

    a = acquisition
    csf = a["labels"] == 3
    spread = csf_mask_spread_mm(csf, a["mask"], voxel_size=VS)
    assert spread > COMPACT_CSF_SPREAD_MM
    # a mask spread over the brain (every 4th slice of it) is not compact
    spread_out = np.zeros_like(a["mask"])
    spread_out[::4] = a["mask"][::4]
    assert csf_mask_spread_mm(spread_out, a["mask"], voxel_size=VS) < COMPACT_CSF_SPREAD_MM
    assert csf_mask_spread_mm(np.zeros_like(csf), a["mask"], voxel_size=VS) == np.inf
    with pytest.warns(RuntimeWarning, match="compact CSF mask"):
        out = reconstruct_megre(a["mag"], a["phase"], TE, voxel_size_mm=VS, mask=a["mask"], method="medi0",
                                csf_mask=csf, progress=False)
    p = out["parameters"]
    assert p["method"] == "MEDI+0" and p["csf_mask"] == "given" and p["csf_warning"].startswith("compact CSF mask")
    assert p["csf_mask_spread_mm"] == pytest.approx(spread)
    # without the CSF term (lambda_csf=0) nothing is flagged
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out0 = reconstruct_megre(a["mag"], a["phase"], TE, voxel_size_mm=VS, mask=a["mask"], method="medi0",
                                 csf_mask=csf, lambda_csf=0.0, progress=False)
    assert out0["parameters"]["csf_mask"] == "given" and out0["parameters"]["csf_mask_spread_mm"] is None
    assert out0["parameters"]["csf_warning"] is None
    # with "auto" SMV passes, a pass of >= 30 mm (which fits this ellipsoid) pins the low frequencies instead:
    # the spread is recorded, nothing is flagged
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out1 = reconstruct_megre(a["mag"], a["phase"], TE, voxel_size_mm=VS, mask=a["mask"], method="medi0",
                                 csf_mask=csf, smv_radius_mm="auto", progress=False)
    p1 = out1["parameters"]
    assert max(p1["smv_radii_mm"]) >= 30.0 and p1["csf_warning"] is None
    assert p1["csf_mask_spread_mm"] == pytest.approx(spread, rel=0.2)
