"""MEDI by ADMM (medi_admm): medi()'s objective reached in a few dozen FFT pairs; MEDI+0; data terms."""

import numpy as np
import pytest
import scipy.fft as sfft

from analysis.imaging.metrics import nrmse
from analysis.imaging.qsm import forward_field, gradient_mask, medi, rad_per_ppm, tkd
from analysis.imaging.qsm._synthetic import ellipsoid_brain
from analysis.imaging.qsm.admm import _diff_symbol2, _pdiff, _pdiff_adjoint_add, medi_admm, medi_objective
from tests.helpers.qsm import noisy_ellipsoid

VS = (3.0, 3.0, 3.0)
#: medi() run to convergence (its default stops when the update falls below 10 % of χ)
GN_CONVERGED = dict(max_iter=10, tol_norm_ratio=1e-9, cg_tol=1e-3, cg_max_iter=300)


@pytest.fixture(scope="module")
def phantom():
    """The phantom of test_dipole: 48³ ellipsoid brain, 3 mm, 0.005 ppm noise inside the mask."""
    return noisy_ellipsoid((48, 48, 48), voxel_size=VS, noise_ppm=0.005, seed=0)


@pytest.fixture(scope="module")
def box():
    """A problem whose mask is the whole 40³ array, with ``pad=0``: the FFT grid is the array, so a
    returned map is each solver's whole solution and :func:`medi_objective` of it is exactly the
    value that solver reached (with a brain mask, χ outside the mask is free inside the solvers
    but returned as 0)."""
    ph = ellipsoid_brain((40, 40, 40))
    rng = np.random.default_rng(1)
    f = forward_field(ph["chi"], voxel_size=VS)
    ph["field"] = (f + 0.002 * rng.standard_normal(f.shape)).astype(np.float32)
    ph["full"] = np.ones(f.shape, bool)
    ph["kw"] = dict(voxel_size=VS, pad=0)
    return ph


def _args(ph, mask_key="mask"):
    return ph["field"], ph[mask_key], ph["magnitude"]


def test_periodic_differences_adjoint_and_symbol():
    shape = (6, 7, 5)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    p = rng.standard_normal(shape).astype(np.float32)
    out = np.empty(shape, np.float32)
    total = np.zeros(shape, np.float32)
    for k in range(3):
        np.testing.assert_allclose(_pdiff(x, k, out), np.roll(x, -1, axis=k) - x, atol=1e-6)
        adj = _pdiff_adjoint_add(p, k, np.zeros(shape, np.float32))
        np.testing.assert_allclose(adj, np.roll(p, 1, axis=k) - p, atol=1e-6)
        assert np.dot(out.ravel(), p.ravel()) == pytest.approx(np.dot(x.ravel(), adj.ravel()), rel=1e-5)
        _pdiff_adjoint_add(out, k, total)
    # Σ δ_kᵀ δ_k is diagonal in k-space with symbol Σ 4 sin²(π ν_k)
    ref = sfft.irfftn(sfft.rfftn(x) * _diff_symbol2(shape), s=shape)
    np.testing.assert_allclose(total, ref, atol=1e-5)


def _reference_edge_mask(mag, mask, vs, pct):
    """The edge mask by its definition: threshold = the n-th largest of all 3·X·Y·Z gradient
    values (full sort), n = pct × mask voxels."""
    vs = np.broadcast_to(np.asarray(vs, float), (3,))
    m = np.asarray(mag, np.float32) * mask
    g = np.stack([np.abs(np.diff(m, axis=d, append=m.take([-1], axis=d))) / np.float32(vs[d]) for d in range(3)])
    n = int(round(pct * mask.sum()))
    thr = np.sort(g.ravel())[g.size - n - 1]
    return g <= thr


@pytest.mark.parametrize("pct", [0.9, 0.3, 1.0, 1e-4])
def test_gradient_mask_selects_the_edges(phantom, pct):
    """The fast selection (among positive gradients) gives the edge mask of its definition exactly:
    on the phantom (many zero gradients outside the brain), on quantised random data (ties) and
    with more edges than non-zero values."""
    cases = [(phantom["magnitude"], phantom["mask"], VS)]
    rng = np.random.default_rng(0)
    mask = np.zeros((20, 20, 20), bool)
    mask[3:17, 3:17, 3:17] = True
    cases.append((np.round(rng.random((20, 20, 20)) * 4).astype(np.float32), mask, (1, 1, 2)))
    sparse = np.zeros((20, 20, 20), np.float32)
    sparse[10, 10, 10] = 1.0
    cases.append((sparse, mask, 1.0))
    for mag, m, vs in cases:
        np.testing.assert_array_equal(gradient_mask(mag, m, voxel_size=vs, percentage=pct),
                                      _reference_edge_mask(mag, m, vs, pct))
    with pytest.raises(ValueError, match="not a percent"):
        gradient_mask(phantom["magnitude"], phantom["mask"], voxel_size=VS, percentage=90)


@pytest.mark.parametrize("with_csf", [False, True], ids=["MEDI", "MEDI+0"])
def test_reaches_the_gauss_newton_objective(box, with_csf):
    """Same objective, same λ: ADMM ends at least as low as medi() run to convergence, in
    well under medi()'s default time, and far below medi()'s default (early) stop."""
    args = _args(box, "full")
    csf = (box["labels"] == 3) if with_csf else None
    kw = dict(box["kw"], csf_mask=csf, zero_reference=False, lambda_=1000.0)
    gn = medi(*args, **kw, solver="gncg")
    gn_conv = medi(*args, **kw, **GN_CONVERGED, solver="gncg")
    chi, info = medi_admm(*args, return_info=True, **kw)

    def objective(c):
        return medi_objective(c, *args, **box["kw"], csf_mask=csf, lambda_=1000.0)["total"]

    f_gn, f_conv, f_admm = objective(gn), objective(gn_conv), objective(chi)
    assert f_admm <= f_conv * (1 + 1e-3)
    assert f_admm < f_gn
    assert info["converged"] and info["n_iter"] < 60
    # info["objective"] is evaluated on the solver's grid, here the array itself
    assert info["objective"]["total"] == pytest.approx(f_admm, rel=1e-4)
    # and the two minimisers are the same map (up to the unobservable offset)
    brain = box["mask"]
    assert nrmse(chi, gn_conv, mask=brain, demean=True) < 5.0
    assert (nrmse(chi, box["chi"], mask=brain, demean=True)
            <= nrmse(gn_conv, box["chi"], mask=brain, demean=True) + 1.0)


def test_accuracy_on_the_phantom(phantom):
    """The checks of test_dipole's test_medi_beats_tkd, at λ = 100: ADMM beats TKD and matches
    medi() run to convergence; χ is zero outside the mask, the pallidum is recovered within
    20 ppb and deep grey matter keeps its order.

    (At λ = 1000 this noisy phantom is under-regularised: the minimiser, which ADMM and a
    converged medi() both reach, is no better than TKD — medi()'s default beats TKD there only
    because it stops after a few Gauss–Newton steps, far above the minimum.)"""
    m = phantom["mask"]
    chi, info = medi_admm(*_args(phantom), voxel_size=VS, lambda_=100.0, return_info=True)
    gn_conv = medi(*_args(phantom), voxel_size=VS, lambda_=100.0, **GN_CONVERGED, solver="gncg")
    chi_tkd = tkd(phantom["field"], m, voxel_size=VS)
    assert chi.dtype == np.float32 and chi.shape == m.shape
    assert np.all(chi[~m] == 0)
    e_admm = nrmse(chi, phantom["chi"], mask=m, demean=True)
    assert e_admm < 0.85 * nrmse(chi_tkd, phantom["chi"], mask=m, demean=True)
    assert e_admm <= nrmse(gn_conv, phantom["chi"], mask=m, demean=True) + 1.0
    lab = phantom["labels"]
    mean = {name: chi[lab == k].mean() for k, name in phantom["names"].items() if np.any(lab == k)}
    assert abs(mean["pallidum"] - 0.15) < 0.02
    assert mean["pallidum"] > mean["caudate"] > mean["thalamus"] > mean["white_matter"]
    assert info["converged"] and info["update_ratio"][-1] < 5e-3
    assert set(info["mu"]) == {"gradient", "data", "csf"} and info["mu"]["csf"] == 0.0


def test_medi0_zero_references_and_flattens_csf(phantom):
    m = phantom["mask"]
    csf = phantom["labels"] == 3
    chi = medi_admm(*_args(phantom), voxel_size=VS, csf_mask=csf)
    assert abs(chi[csf].mean()) < 1e-6
    plain = medi_admm(*_args(phantom), voxel_size=VS)
    assert chi[csf].std() < 0.8 * plain[csf].std()
    assert np.all(chi[~m] == 0)
    # lambda_csf=0 switches the term off (but still zero-references)
    off = medi_admm(*_args(phantom), voxel_size=VS, csf_mask=csf, lambda_csf=0.0)
    np.testing.assert_allclose(off, plain - plain[csf & m].mean() * m, atol=1e-6)


def test_each_data_term_minimises_its_own_objective(box):
    """With large phase residuals (ΔTE 20 ms, 0.05 ppm noise) the two data terms differ, and each
    solution is the better one for its own objective."""
    rng = np.random.default_rng(2)
    field = (box["field"] + 0.05 * rng.standard_normal(box["field"].shape)).astype(np.float32)
    args = (field, box["full"], box["magnitude"])
    kw = dict(box["kw"], delta_te_s=20e-3, lambda_=300.0)
    chi = {t: medi_admm(*args, data_term=t, tol=1e-4, max_iter=500, **kw) for t in ("nonlinear", "linear")}

    def objective(c, t):
        return medi_objective(c, *args, data_term=t, **kw)["total"]

    assert objective(chi["nonlinear"], "nonlinear") < objective(chi["linear"], "nonlinear")
    assert objective(chi["linear"], "linear") < objective(chi["nonlinear"], "linear")
    assert nrmse(chi["nonlinear"], chi["linear"], mask=box["mask"]) > 10.0
    # with small residuals (ΔTE 4.8 ms, 0.002 ppm) they agree
    small = {t: medi_admm(*_args(box, "full"), data_term=t, **box["kw"]) for t in ("nonlinear", "linear")}
    assert nrmse(small["nonlinear"], small["linear"], mask=box["mask"]) < 1.0


def test_nonlinear_term_ignores_phase_wraps(box):
    """e^{iφ} does not see 2π: wrapping the field at 5 % of the voxels changes nothing with the
    nonlinear term and ruins the linear one."""
    scale = rad_per_ppm(delta_te_s=4.8e-3, b0_tesla=3.0)
    wrapped = box["field"].copy()
    sel = np.random.default_rng(3).random(wrapped.shape) < 0.05
    wrapped[sel] += np.float32(2 * np.pi / scale)
    base = medi_admm(*_args(box, "full"), lambda_=1000.0, **box["kw"])
    again = medi_admm(wrapped, box["full"], box["magnitude"], lambda_=1000.0, **box["kw"])
    assert nrmse(again, base, mask=box["mask"]) < 0.01
    linear = medi_admm(wrapped, box["full"], box["magnitude"], data_term="linear", lambda_=1000.0, **box["kw"])
    assert nrmse(linear, base, mask=box["mask"]) > 100


def test_lambda_is_defined_for_radians(box):
    """As for medi(): doubling ΔTE doubles the field in radians; with λ/2 (linear data term, exact
    L1) the objective doubles and the minimiser in ppm is the same — and so is the ADMM path,
    whose penalties are scale-free."""
    a = medi_admm(*_args(box, "full"), data_term="linear", lambda_=1000.0, **box["kw"])
    b = medi_admm(*_args(box, "full"), data_term="linear", delta_te_s=9.6e-3, lambda_=500.0, **box["kw"])
    assert np.linalg.norm(a - b) < 1e-4 * np.linalg.norm(a)


def test_auto_lambda_is_unit_free(box):
    """lambda_="auto" makes the same choice whatever the field's radian unit (ΔTE, B0): twice
    the ΔTE gives half the λ, the same normalised λ and the same map in ppm."""
    a, ia = medi_admm(*_args(box, "full"), data_term="linear", return_info=True, **box["kw"])
    b, ib = medi_admm(*_args(box, "full"), data_term="linear", delta_te_s=9.6e-3, b0_tesla=3.0, return_info=True,
                      **box["kw"])
    assert ia["lambda_method"] == "auto-normalised" and ia["solver"] == "admm"
    assert ib["lambda"] == pytest.approx(ia["lambda"] / 2, rel=1e-5)
    assert ib["lambda_normalised"] == pytest.approx(ia["lambda_normalised"], rel=1e-5)
    assert np.linalg.norm(a - b) < 1e-4 * np.linalg.norm(a)
    # the same field given in ppm at 7 T: the same map again
    c = medi_admm(*_args(box, "full"), data_term="linear", b0_tesla=7.0, **box["kw"])
    assert np.linalg.norm(a - c) < 1e-4 * np.linalg.norm(a)


def test_noise_weights_are_scale_free(phantom):
    m = phantom["mask"]
    n = np.where(m, 0.01, 1.0) * (1 + 0.5 * np.random.default_rng(1).random(m.shape))
    a = medi_admm(*_args(phantom), voxel_size=VS, noise_std=n, max_iter=10)
    b = medi_admm(*_args(phantom), voxel_size=VS, noise_std=7.0 * n, max_iter=10)
    np.testing.assert_allclose(a, b, atol=1e-5 * np.abs(a).max())


def test_single_thread_gives_the_same_map(phantom):
    a = medi_admm(*_args(phantom), voxel_size=VS, max_iter=8, workers=1)
    b = medi_admm(*_args(phantom), voxel_size=VS, max_iter=8, workers=3)
    assert np.array_equal(a, b)   # several chunks of planes: tests/imaging/qsm/test_reductions.py


def test_smv_and_merit_options(phantom):
    m = phantom["mask"]
    csf = phantom["labels"] == 3
    chi, info = medi_admm(*_args(phantom), voxel_size=VS, smv_radius_mm=5.0, merit=True, csf_mask=csf,
                          lambda_=100.0, return_info=True, max_iter=40, merit_every=10)
    em = info["mask"]
    assert em.sum() < m.sum() and np.all(m[em]) and np.all(chi[~em] == 0)
    assert info["n_merit"] >= 1
    assert abs(chi[csf & em].mean()) < 1e-6
    chi_tkd = tkd(phantom["field"], m, voxel_size=VS)
    assert nrmse(chi, phantom["chi"], mask=em, demean=True) < 0.5 * nrmse(chi_tkd, phantom["chi"], mask=em, demean=True)
    # the same eroded mask as medi()'s
    _, gn_info = medi(*_args(phantom), voxel_size=VS, smv_radius_mm=5.0, max_iter=1, return_info=True,
                      solver="gncg")
    np.testing.assert_array_equal(em, gn_info["mask"])


def test_stopping_rule_and_info(phantom):
    chi, info = medi_admm(*_args(phantom), voxel_size=VS, max_iter=3, return_info=True)
    assert info["n_iter"] == 3 and not info["converged"] and len(info["update_ratio"]) == 3
    assert info["grid_shape"] == tuple(info["grid_shape"]) and len(info["grid_shape"]) == 3
    assert info["rad_per_ppm"] == pytest.approx(rad_per_ppm(delta_te_s=4.8e-3, b0_tesla=3.0))
    # chi_unmasked: the solution over the bounding box, equal to chi on the mask (as medi's)
    m = phantom["mask"]
    np.testing.assert_array_equal(info["chi_unmasked"][m], chi[m])
    assert np.any(info["chi_unmasked"][~m] != 0)
    assert set(info["objective"]) == {"tv", "data", "csf", "total"}
    _, loose = medi_admm(*_args(phantom), voxel_size=VS, tol=0.05, return_info=True)
    assert loose["converged"] and loose["update_ratio"][-1] < 0.05 <= min(loose["update_ratio"][:-1])


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(local_field=np.zeros((4, 4, 4))), "mask shape"),
        (dict(magnitude=np.ones((8, 8, 9))), "magnitude shape"),
        (dict(magnitude=None), "magnitude is required"),
        (dict(mask=np.zeros((8, 8, 8), bool)), "mask is empty"),
        (dict(local_field=np.full((8, 8, 8), np.nan)), "non-finite"),
        (dict(magnitude=-np.ones((8, 8, 8))), "non-negative"),
        (dict(noise_std=np.zeros((8, 8, 8))), "noise_std"),
        (dict(lambda_=-1), "lambda_"),
        (dict(lambda_csf=-1), "lambda_csf"),
        (dict(percentage=90), "percentage"),
        (dict(delta_te_s=0), "delta_te_s"),
        (dict(voxel_size=(1, 1)), "voxel_size"),
        (dict(b0_direction=(0, 0, 0)), "b0_direction"),
        (dict(max_iter=0), "max_iter"),
        (dict(tol=-1e-3), "tol"),
        (dict(data_term="quadratic"), "data_term"),
        (dict(mu_gradient=0), "mu_gradient"),
        (dict(mu_data=-1), "mu_data"),
        (dict(mu_csf=np.inf), "mu_csf"),
        (dict(relaxation=2.0), "relaxation"),
        (dict(newton_steps=-1), "newton_steps"),
        (dict(merit_every=0), "merit_every"),
        (dict(pad=-1), "pad"),
        (dict(workers=0), "workers"),
        (dict(smv_radius_mm=-5.0), "smv_radius_mm"),
        (dict(csf_mask=np.zeros((8, 8, 8), bool)), "csf_mask"),
        (dict(csf_mask=np.ones((8, 8, 7), bool)), "csf_mask"),
        (dict(csf_mask=np.pad(np.ones((1, 8, 8), bool), ((0, 7), (0, 0), (0, 0))), smv_radius_mm=1.5), "eroded"),
        (dict(local_field=np.zeros((8, 8, 8, 2))), "3-D"),
    ],
)
def test_rejects_bad_input(change, match):
    kw = dict(local_field=np.zeros((8, 8, 8)), mask=np.ones((8, 8, 8), bool), magnitude=np.ones((8, 8, 8)),
              voxel_size=1.0)
    kw.update(change)
    args = [kw.pop("local_field"), kw.pop("mask"), kw.pop("magnitude")]
    with pytest.raises(ValueError, match=match):
        medi_admm(*args, **kw)


def test_objective_rejects_a_map_of_another_shape(phantom):
    with pytest.raises(ValueError, match="chi shape"):
        medi_objective(np.zeros((4, 4, 4)), *_args(phantom), voxel_size=VS)


def test_medi_solver_option_runs_admm():
    """``medi(solver="admm")`` is ``medi_admm`` (same inputs, same result); unknown solvers are refused."""
    from analysis.imaging.qsm import forward_field, medi, medi_admm
    from analysis.imaging.qsm._synthetic import ellipsoid_brain

    b = ellipsoid_brain((32, 32, 32))
    field = forward_field(b["chi"], voxel_size=(1.0, 1.0, 1.0)) * b["mask"]
    a = medi(field, b["mask"], b["magnitude"], voxel_size=(1, 1, 1), lambda_=100.0, solver="admm")
    c = medi_admm(field, b["mask"], b["magnitude"], voxel_size=(1, 1, 1), lambda_=100.0)
    assert np.array_equal(a, c)
    with pytest.raises(ValueError, match="solver must be"):
        medi(field, b["mask"], b["magnitude"], voxel_size=(1, 1, 1), solver="fansi")
