"""Automatic λ (analysis.imaging.qsm.regularisation): rule, units, model errors, API, figure."""

import json

import numpy as np
import pytest

from analysis.imaging.metrics import nrmse
from analysis.imaging.qsm import forward_field, medi, rad_per_ppm
from analysis.imaging.qsm._synthetic import ellipsoid_brain
from analysis.imaging.qsm.regularisation import (
    LOCALITY_THRESHOLD,
    LambdaChoice,
    _locality_choice,
    choose_lambda,
    estimate_noise_std,
    plot_lambda_choice,
)

VS = (3.0, 3.0, 3.0)
NOISE_PPM = 0.002


@pytest.fixture(scope="module")
def phantom():
    ph = ellipsoid_brain((48, 48, 48))
    rng = np.random.default_rng(0)
    m = ph["mask"]
    f = forward_field(ph["chi"], voxel_size=VS)
    ph["field"] = np.where(m, f + NOISE_PPM * rng.standard_normal(f.shape), 0.0).astype(np.float32)
    # a residual background field: an air-like sphere (−9 ppm, 15 mm radius) below the brain, its
    # field (harmonic inside the brain) at 1/80 of its strength — rms 40 % of the local field's
    z = np.indices(m.shape, dtype=float)
    src = np.where((z[0] - 24) ** 2 + (z[1] - 34) ** 2 + (z[2] - 8) ** 2 <= 25, -9.0, 0.0).astype(np.float32)
    bg = forward_field(src, voxel_size=VS) / 80.0
    ph["background"] = np.where(m, bg, 0.0).astype(np.float32)
    return ph


@pytest.fixture(scope="module")
def choice(phantom):
    scores = {}

    def score(lam, chi, info):
        scores[lam] = nrmse(chi, phantom["chi"], mask=phantom["mask"])

    c = choose_lambda(phantom["field"], phantom["mask"], phantom["magnitude"], voxel_size=VS, callback=score)
    c.scores = scores
    return c


# --------------------------------------------------------------------------------------------
# the rule on its own


def test_locality_choice_regimes():
    lam = [1.0, 10.0, 100.0, 1000.0, 10000.0]
    fit = [0.6, 0.3, 0.1, 0.05, 0.02]  # ρ/ρ₀: the first solve explains less than half of the field

    def choose(q):
        return _locality_choice(zip(lam, q, fit), 0.02)

    # q falls then rises, below ε: the parabola's vertex, between the neighbours of the minimum
    lam_min, ok, regime, _ = choose([0.5, 1e-3, 5e-4, 2e-3, 8e-3])
    assert ok and regime == "minimum" and 10.0 < lam_min < 1000.0
    # q rises through ε from the start of the meaningful range: the crossing, in (log λ, log q)
    lam_x, ok, regime, _ = choose([0.5, 1e-2, 4e-2, 1e-1, 2e-1])
    assert ok and regime == "non-local" and lam_x == pytest.approx(10.0 * 10**0.5, rel=1e-9)
    # q rises and flattens below ε, then rises again: the flattest point
    lam_f, ok, regime, _ = choose([0.5, 1e-3, 1.2e-3, 1.3e-3, 1e-2])
    assert ok and regime == "flattest" and lam_f in (100.0, 1000.0)
    # q ≤ 0 (fully local) at first: where it rises above 0; the first solve (ρ > ρ₀/2) is ignored
    lam_m, ok, regime, _ = choose([0.5, -1e-5, -2e-5, 1e-4, 5e-4])
    assert ok and regime == "minimum" and 100.0 < lam_m < 1000.0
    # q ≥ ε already where the fit starts to count: the most regularised meaningful λ
    lam_n, ok, regime, _ = choose([0.5, 0.2, 0.3, 0.4, 0.5])
    assert ok and regime == "non-local" and lam_n == 10.0
    # q rising from the smallest λ, which already explains most of the field: look below
    _, ok, _, direction = _locality_choice(zip(lam, [0.008, 0.01, 0.03, 0.05, 0.06], [0.4] * 5), 0.02)
    assert not ok and direction == -1
    # q still falling at the largest λ: look above
    _, ok, _, direction = choose([0.5, 3e-3, 2e-3, 1e-3, 5e-4])
    assert not ok and direction == 1


def test_estimate_noise_std_on_white_noise():
    rng = np.random.default_rng(3)
    m = np.zeros((40, 40, 40), bool)
    m[4:-4, 4:-4, 4:-4] = True
    x = np.linspace(0, 1, 40)
    smooth = 0.01 * np.sin(2 * x)[:, None, None] * np.cos(3 * x)[None, :, None] * np.ones(40)
    f = smooth + 0.003 * rng.standard_normal(m.shape)
    assert estimate_noise_std(f, m) == pytest.approx(0.003, rel=0.05)


# --------------------------------------------------------------------------------------------
# choices on the ellipsoid phantom


def test_choice_is_near_the_best_lambda(phantom, choice):
    """Automatic λ within 10 % (relative NRMSE) of the best λ of a sweep of ±1 decade around it."""
    m, truth = phantom["mask"], phantom["chi"]
    scores = dict(choice.scores)
    for dec in (-1.0, -0.5, 0.5, 1.0):
        lam = choice.lambda_ * 10.0**dec
        scores[lam] = nrmse(medi(phantom["field"], m, phantom["magnitude"], voxel_size=VS, lambda_=lam), truth, mask=m)
    auto = nrmse(choice.chi, truth, mask=m)
    assert auto <= 1.10 * min(scores.values())
    assert choice.bracketed and choice.regime == "minimum"


def test_choice_record_and_table(phantom, choice):
    assert isinstance(choice, LambdaChoice)
    assert choice.method == "locality" and choice.solver == "medi"
    assert choice.lambda_normalised == pytest.approx(choice.lambda_ * choice.field_scale_rad)
    scale = rad_per_ppm(delta_te_s=4.8e-3, b0_tesla=3.0)
    assert choice.field_scale_rad == pytest.approx(np.std(phantom["field"][phantom["mask"]]) * scale, rel=1e-5)
    tab = choice.table
    assert list(tab.columns) == ["lambda", "lambda_normalised", "residual", "residual_local", "external_fraction",
                                 "regularisation", "curvature", "seconds"]
    assert np.all(np.diff(tab["lambda"].to_numpy()) > 0)
    assert len(tab) == choice.n_solves and 3 <= choice.n_solves <= 10
    assert np.all(tab["residual"] > 0) and np.all(tab["regularisation"] > 0)
    # larger λ fits the data more closely
    assert tab["residual"].iloc[-1] < tab["residual"].iloc[0]
    rec = choice.record()
    json.dumps(rec)
    assert rec["lambda"] == choice.lambda_ and rec["lambda_method"] == "locality"
    assert rec["lambda_normalised"] == choice.lambda_normalised
    assert choice.chi.shape == phantom["field"].shape and np.all(choice.chi[~phantom["mask"]] == 0)
    assert choice.info["lambda"] == choice.lambda_ and choice.info["lambda_method"] == "locality"
    assert choice.seconds > 0


def test_units_ppm_radians_and_echo_time_give_the_same_choice(phantom, choice):
    """The same data in ppm at ΔTE 2.4 ms / 7 T, or in radians, give the same normalised λ and χ."""
    m = phantom["mask"]
    s_default = rad_per_ppm(delta_te_s=4.8e-3, b0_tesla=3.0)
    # ppm at another echo spacing and field strength: the solver's λ changes, λ_norm does not
    other = choose_lambda(phantom["field"], m, phantom["magnitude"], voxel_size=VS, delta_te_s=2.4e-3, b0_tesla=7.0)
    s_other = rad_per_ppm(delta_te_s=2.4e-3, b0_tesla=7.0)
    assert other.lambda_normalised == pytest.approx(choice.lambda_normalised, rel=0.03)
    assert other.lambda_ == pytest.approx(choice.lambda_ * s_default / s_other, rel=0.03)
    assert nrmse(other.chi, choice.chi, mask=m) < 2.0
    # the field in radians (per 4.8 ms at 3 T), passed with a ΔTE that makes the conversion 1
    rad = phantom["field"] * np.float32(s_default)
    dte_unit = 4.8e-3 / s_default
    in_rad = choose_lambda(rad, m, phantom["magnitude"], voxel_size=VS, delta_te_s=dte_unit, b0_tesla=3.0)
    assert in_rad.lambda_normalised == pytest.approx(choice.lambda_normalised, rel=0.03)
    assert in_rad.lambda_ == pytest.approx(choice.lambda_, rel=0.03)  # same radians: same λ
    assert nrmse(in_rad.chi / s_default, choice.chi, mask=m) < 2.0


def test_without_magnitude_and_noise_map(phantom):
    m, truth = phantom["mask"], phantom["chi"]
    c = choose_lambda(phantom["field"], m, None, voxel_size=VS)
    assert c.bracketed and c.chi.shape == m.shape
    uniform = np.ones(m.shape, np.float32)
    scores = [nrmse(medi(phantom["field"], m, uniform, voxel_size=VS, lambda_=c.lambda_ * 10.0**d, solver="gncg"),
                    truth, mask=m)
              for d in (-0.5, 0.5)]
    assert nrmse(c.chi, truth, mask=m) <= 1.10 * min(scores)


def test_residual_background_is_detected(phantom, choice):
    """A non-local (harmonic) error field is fitted by χ outside the mask: the rule sees it."""
    m, truth = phantom["mask"], phantom["chi"]
    field = phantom["field"] + phantom["background"]
    scores = {}
    c = choose_lambda(field, m, phantom["magnitude"], voxel_size=VS,
                      callback=lambda lam, chi, info: scores.__setitem__(lam, nrmse(chi, truth, mask=m)))
    assert c.regime == "non-local" and c.bracketed
    assert c.lambda_ < choice.lambda_
    assert (c.table["external_fraction"] > choice.table["external_fraction"].max()).any()
    default = nrmse(medi(field, m, phantom["magnitude"], voxel_size=VS, lambda_=1000.0), truth, mask=m)
    auto = nrmse(c.chi, truth, mask=m)
    assert auto < 0.95 * default
    assert auto <= 1.10 * min(min(scores.values()), default)


# --------------------------------------------------------------------------------------------
# other rules, explicit grids, solver options


def test_lcurve_and_discrepancy_on_a_grid(phantom):
    m = phantom["mask"]
    grid = [30.0, 100.0, 300.0, 1000.0, 3000.0]
    lc = choose_lambda(phantom["field"], m, phantom["magnitude"], voxel_size=VS, method="lcurve", lambdas=grid,
                       solve_final=False)
    assert lc.method == "lcurve" and lc.lambda_ in grid[1:-1] and lc.n_solves == 5 and lc.chi is None
    assert np.isfinite(lc.table["curvature"].iloc[1:-1]).all()
    noise = np.where(m, NOISE_PPM, 1.0)
    grid = [1.0, 3.0, 10.0, 30.0, 100.0]  # the residual reaches N σ² at λ ≈ 30 here
    dp = choose_lambda(phantom["field"], m, phantom["magnitude"], voxel_size=VS, method="discrepancy",
                       noise_std=noise, lambdas=grid, solve_final=False)
    n = int(m.sum())
    assert dp.target == pytest.approx(n * (NOISE_PPM * rad_per_ppm(delta_te_s=4.8e-3, b0_tesla=3.0)) ** 2)
    rho = dp.table["residual"].to_numpy()
    lam = dp.table["lambda"].to_numpy()
    i = np.flatnonzero(rho <= dp.target)[0]
    assert i > 0 and dp.bracketed
    assert lam[i - 1] <= dp.lambda_ <= lam[i] and dp.noise_std_ppm == pytest.approx(NOISE_PPM)
    est = choose_lambda(phantom["field"], m, phantom["magnitude"], voxel_size=VS, method="discrepancy", lambdas=grid,
                        solve_final=False)
    assert est.noise_std_ppm >= NOISE_PPM * 0.9  # the field-based estimate is an upper bound


def test_csf_zero_reference_applies_to_the_final_map_only(phantom):
    m = phantom["mask"]
    csf = phantom["labels"] == 3
    c = choose_lambda(phantom["field"], m, phantom["magnitude"], voxel_size=VS, csf_mask=csf,
                      lambdas=[300.0, 1000.0, 3000.0])
    assert abs(float(c.chi[csf].mean())) < 1e-6
    assert c.n_solves <= 4  # three for the sweep (and one at the interpolated λ), referenced afterwards


def test_admm_solver(phantom):
    admm = pytest.importorskip("analysis.imaging.qsm.admm")
    m = phantom["mask"]
    c = choose_lambda(phantom["field"], m, phantom["magnitude"], voxel_size=VS, solver=admm.medi_admm)
    assert c.solver == "medi_admm" and c.bracketed and c.lambda_ > 0
    assert nrmse(c.chi, phantom["chi"], mask=m) < 60


def test_errors_name_the_parameter(phantom):
    f, m, mag = phantom["field"], phantom["mask"], phantom["magnitude"]
    with pytest.raises(ValueError, match="method"):
        choose_lambda(f, m, mag, voxel_size=VS, method="gcv")
    with pytest.raises(ValueError, match="threshold"):
        choose_lambda(f, m, mag, voxel_size=VS, threshold=0)
    with pytest.raises(ValueError, match="discrepancy_factor"):
        choose_lambda(f, m, mag, voxel_size=VS, discrepancy_factor=-1)
    with pytest.raises(ValueError, match="lambdas"):
        choose_lambda(f, m, mag, voxel_size=VS, lambdas=[10.0, -1.0])
    with pytest.raises(ValueError, match="lambdas"):
        choose_lambda(f, m, mag, voxel_size=VS, method="lcurve", lambdas=[10.0, 100.0])
    with pytest.raises(ValueError, match="solver"):
        choose_lambda(f, m, mag, voxel_size=VS, solver="medi")
    with pytest.raises(ValueError, match="lambda_"):
        choose_lambda(f, m, mag, voxel_size=VS, lambda_=10.0)
    with pytest.raises(ValueError, match="mask"):
        choose_lambda(f, m[:-1], mag, voxel_size=VS)
    with pytest.raises(ValueError, match="magnitude"):
        choose_lambda(f, m, mag[:-1], voxel_size=VS)
    with pytest.raises(ValueError, match="local_field"):
        choose_lambda(np.zeros_like(f), m, mag, voxel_size=VS)
    with pytest.raises(ValueError, match="delta_te_s"):
        choose_lambda(f, m, mag, voxel_size=VS, delta_te_s=0)


def test_plot(choice):
    import matplotlib

    matplotlib.use("Agg")
    fig = plot_lambda_choice(choice, truth_nrmse=[choice.scores[k] for k in choice.table["lambda"]])
    assert len(fig.axes) >= 3
    with pytest.raises(ValueError, match="truth_nrmse"):
        plot_lambda_choice(choice, truth_nrmse=[1.0])
    with pytest.raises(ValueError, match="choice"):
        plot_lambda_choice({"lambda": 1.0})
    import matplotlib.pyplot as plt

    plt.close("all")


def test_default_threshold_value():
    assert LOCALITY_THRESHOLD == 0.02


def test_locality_refuses_smv(phantom):
    with pytest.raises(ValueError, match="smv_radius_mm"):
        choose_lambda(phantom["field"], phantom["mask"], phantom["magnitude"], voxel_size=VS, smv_radius_mm=5.0)


def test_lambda_sweep_and_its_figure(phantom):
    """The teaching sweep: solves at multiples of the automatic λ; its row is flagged, the λ grow
    with the factor, the map roughens as λ grows and 10× the automatic λ fits noise. (This
    piecewise-constant phantom's noise-free magnitude puts MEDI's edges exactly on the true
    boundaries, an inverse crime that rewards far stronger regularisation: 0.1× is best here.)"""
    import matplotlib

    matplotlib.use("Agg")

    from analysis.imaging.qsm.regularisation import lambda_sweep
    from analysis.imaging.qsm_figures import figure_lambda_sweep

    m = phantom["mask"]
    table, maps, map_mask = lambda_sweep(phantom["field"], m, phantom["magnitude"], voxel_size=VS,
                                         factors=(0.1, 1.0, 10.0), truth=phantom["chi"])
    assert list(table["factor"]) == [0.1, 1.0, 10.0] and table["auto"].tolist() == [False, True, False]
    lam = table["lambda"].to_numpy()
    assert lam[0] == pytest.approx(0.1 * lam[1]) and lam[2] == pytest.approx(10 * lam[1])
    assert table["gradient_l1"].is_monotonic_increasing
    assert table["nrmse_pct"].iloc[1] < 0.5 * table["nrmse_pct"].iloc[2]
    assert set(maps) == {0.1, 1.0, 10.0} and np.array_equal(map_mask, m)
    fig = figure_lambda_sweep(table, maps, map_mask, np.diag([3.0, 3.0, 3.0, 1.0]), show=(0.1, 1.0, 10.0))
    assert len(fig.axes) >= 5
    with pytest.raises(ValueError, match="lambda_"):
        lambda_sweep(phantom["field"], m, voxel_size=VS, lambda_=10.0)
    with pytest.raises(ValueError, match="show"):
        figure_lambda_sweep(table, maps, map_mask, np.eye(4), show=(0.5, 1.0, 2.0))
