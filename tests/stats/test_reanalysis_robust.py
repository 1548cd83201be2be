"""Tests of analysis.stats.robust: HC3, the case bootstrap (percentile, BCa) and Huber regression.

HC3 (statsmodels' ``cov_type="HC3"``) is checked against the sandwich formula written out here
and Stata's t(n - p) reference; the BCa interval against :func:`scipy.stats.bootstrap` on the same
resamples and statistic, and against the percentile interval when the bootstrap distribution is
symmetric and unbiased; the bootstrap's coverage on simulated data with a known slope; Huber
regression against fully converged fits, on volume outcomes in mm³ in particular.
"""

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from analysis.cohort.dictionary import load_cohort
from analysis.stats import diagnostics as dg
from analysis.stats import models, robust
from tests.helpers.cohorts import simulate_cohort

BUNDLED = Path(__file__).resolve().parents[2] / "data" / "cohort.csv"

LESION_ADJ = models.table1_formula("t2_lesion_volume_log", adjusted=True)
CHI = models.SUSCEPTIBILITY


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(seed=21)


# -- HC3 -------------------------------------------------------------------------------------------


def _sandwich_hc3(X, y):
    """HC3 written out (MacKinnon & White 1985): (X'X)^-1 X' diag(e^2/(1 - h)^2) X (X'X)^-1."""
    xtx_inv = np.linalg.inv(X.T @ X)
    e = y - X @ (xtx_inv @ X.T @ y)
    h = np.einsum("ij,jk,ik->i", X, xtx_inv, X)
    meat = X.T @ (X * ((e / (1.0 - h)) ** 2)[:, None])
    return xtx_inv @ meat @ xtx_inv


def test_hc3_covariance_is_the_sandwich(cohort):
    res = smf.ols(LESION_ADJ, cohort).fit()
    X, y = res.model.exog, res.model.endog
    np.testing.assert_allclose(robust.hc3_covariance(X, y), _sandwich_hc3(X, y), rtol=1e-10)
    with pytest.raises(ValueError, match="rank deficient"):
        robust.hc3_covariance(np.column_stack([X, X[:, 1]]), y)
    with pytest.raises(ValueError, match="shape"):
        robust.hc3_covariance(X, y[:-1])


def test_hc3_matches_the_sandwich_with_t_reference(cohort):
    """Stata's regress, vce(hc3): sandwich SE, t(n - p) CI and P."""
    tab = robust.hc3_table(cohort)
    assert len(tab) == 8 + 5 + 5
    for spec in dg.model_specs():
        ols = smf.ols(spec.formula, cohort).fit()
        X, y = ols.model.exog, ols.model.endog
        cov = _sandwich_hc3(X, y)
        df = X.shape[0] - X.shape[1]
        names = list(ols.model.exog_names)
        rows = tab[(tab["table"] == spec.table) & (tab["key"] == spec.key) & (tab["model"] == spec.model)]
        for (_, r), coef in zip(rows.iterrows(), spec.coef_names):
            j = names.index(coef)
            b, se = ols.params[coef], np.sqrt(cov[j, j])
            crit = stats.t.isf(0.025, df)
            assert r["se_hc3"] == pytest.approx(se, rel=1e-9)
            assert r["p_hc3"] == pytest.approx(2 * stats.t.sf(abs(b / se), df), rel=1e-7)
            assert (r["ci_low_hc3"], r["ci_high_hc3"]) == pytest.approx((b - crit * se, b + crit * se), rel=1e-9)
            assert r["se_ratio"] == pytest.approx(se / ols.bse[coef], rel=1e-9)
            assert r["se"] == pytest.approx(ols.bse[coef]) and r["p"] == pytest.approx(ols.pvalues[coef])


def test_hc3_normal_reference(cohort):
    spec = [s for s in dg.model_specs(tables="table1") if s.key == "thalamic_volume"]
    tab = robust.hc3_table(cohort, specs=spec, use_t=False, alpha=0.1)
    ols = smf.ols(spec[1].formula, cohort).fit()
    j = list(ols.model.exog_names).index(CHI)
    se = np.sqrt(_sandwich_hc3(ols.model.exog, ols.model.endog)[j, j])
    r = tab[tab["model"] == "adjusted"].iloc[0]
    assert r["p_hc3"] == pytest.approx(2 * stats.norm.sf(abs(ols.params[CHI] / se)), rel=1e-7)
    assert r["ci_low_hc3"] == pytest.approx(ols.params[CHI] - stats.norm.isf(0.05) * se, rel=1e-9)
    with pytest.raises(ValueError, match="use_t"):
        robust.hc3_table(cohort, specs=spec, use_t="yes")


# -- bootstrap ---------------------------------------------------------------------------------------


def test_bca_equals_percentile_for_symmetric_unbiased_distribution():
    # replicates symmetric about theta_hat (z0 = 0) and a symmetric jackknife (acceleration 0)
    theta = 1.5
    half = stats.norm.ppf((np.arange(1, 1000) / 1000.0))
    boot = theta + np.concatenate([half, -half, [0.0]])
    jack = theta + np.linspace(-1, 1, 51)
    bca = robust.bca_interval(theta, boot, jack, alpha=0.05)
    assert bca["z0"] == pytest.approx(0.0, abs=1e-12) and bca["acceleration"] == pytest.approx(0.0, abs=1e-12)
    assert (bca["low"], bca["high"]) == pytest.approx(robust.percentile_interval(boot, alpha=0.05), rel=1e-12)
    assert (bca["alpha_low"], bca["alpha_high"]) == pytest.approx((0.025, 0.975))


def test_bca_shifts_with_bias():
    rng = np.random.default_rng(3)
    boot = rng.normal(0.3, 1.0, 4000)   # replicates centred above theta_hat = 0: z0 = ndtri(.38) < 0
    bca = robust.bca_interval(0.0, boot, np.linspace(-1, 1, 30))
    pct = robust.percentile_interval(boot)
    assert bca["z0"] == pytest.approx(-0.3, abs=0.05) and bca["low"] < pct[0] and bca["high"] < pct[1]
    nan = robust.bca_interval(-10.0, boot, np.linspace(-1, 1, 30))
    assert np.isnan(nan["low"]) and np.isinf(nan["z0"])


def _scipy_bootstrap(cohort, formula, term, *, n_resamples, seed, method):
    res = smf.ols(formula, cohort).fit()
    X, y = res.model.exog, res.model.endog
    j = list(res.model.exog_names).index(term)

    def coef(idx):
        idx = np.asarray(idx, dtype=int)
        return np.linalg.lstsq(X[idx], y[idx], rcond=None)[0][j]

    return stats.bootstrap((np.arange(len(y)),), coef, vectorized=False, n_resamples=n_resamples,
                           method=method, confidence_level=0.95, rng=np.random.default_rng(seed))


def test_bootstrap_matches_scipy_on_the_same_resamples(cohort):
    B, seed = 400, 2024
    tab, dist = robust.bootstrap_ols(cohort, LESION_ADJ, [CHI], n_bootstrap=B, seed=seed,
                                     return_distribution=True)
    r = tab.iloc[0]
    bca = _scipy_bootstrap(cohort, LESION_ADJ, CHI, n_resamples=B, seed=seed, method="BCa")
    pct = _scipy_bootstrap(cohort, LESION_ADJ, CHI, n_resamples=B, seed=seed, method="percentile")
    np.testing.assert_allclose(np.sort(dist[CHI]), np.sort(bca.bootstrap_distribution), rtol=1e-9)
    assert (r["bca_low"], r["bca_high"]) == pytest.approx(
        (bca.confidence_interval.low, bca.confidence_interval.high), rel=1e-9)
    assert (r["pct_low"], r["pct_high"]) == pytest.approx(
        (pct.confidence_interval.low, pct.confidence_interval.high), rel=1e-9)
    assert r["boot_se"] == pytest.approx(bca.standard_error, rel=1e-9)
    assert r["n_failed"] == 0 and r["n_bootstrap"] == B


def test_jackknife_acceleration_matches_refits(cohort):
    res = smf.ols(LESION_ADJ, cohort).fit()
    jack = np.array([smf.ols(LESION_ADJ, cohort.drop(index=i)).fit().params[CHI] for i in cohort.index])
    d = jack.mean() - jack
    a = np.sum(d ** 3) / (6 * np.sum(d ** 2) ** 1.5)
    tab = robust.bootstrap_ols(cohort, LESION_ADJ, [CHI], n_bootstrap=50, seed=1)
    assert tab["acceleration"].iloc[0] == pytest.approx(a, rel=1e-6)
    assert tab["coef"].iloc[0] == pytest.approx(res.params[CHI], rel=1e-12)


def test_bootstrap_coverage_with_known_slope():
    """95 % intervals of 60 simulated cohorts (true lesion slope 0.03/ppb): coverage near 95 %."""
    truth = 0.03
    formula = models.table1_formula("t2_lesion_volume_log", adjusted=False)
    hits = {"pct": 0, "bca": 0}
    reps = 60
    for rep in range(reps):
        d = simulate_cohort(n=60, seed=1000 + rep, lesion_slope=truth)
        t = robust.bootstrap_ols(d, formula, [CHI], n_bootstrap=199, seed=rep).iloc[0]
        hits["pct"] += t["pct_low"] <= truth <= t["pct_high"]
        hits["bca"] += t["bca_low"] <= truth <= t["bca_high"]
    # binomial(60, .95): P(hits <= 51) < 0.01; allow for the intervals' small-B undercoverage
    assert hits["pct"] >= 51 and hits["bca"] >= 51, hits


def test_bootstrap_is_deterministic_and_counts_failed_resamples(cohort):
    a = robust.bootstrap_ols(cohort, LESION_ADJ, n_bootstrap=100, seed=5)
    b = robust.bootstrap_ols(cohort, LESION_ADJ, n_bootstrap=100, seed=5)
    c = robust.bootstrap_ols(cohort, LESION_ADJ, n_bootstrap=100, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["bca_low"], c["bca_low"])
    assert len(a) == 5                                            # every coefficient but the intercept
    rare = cohort.copy()
    rare["enhancing_lesions_present"] = 0
    rare.loc[rare.index[0], "enhancing_lesions_present"] = 1        # one patient: ~37 % of resamples lack it
    t = robust.bootstrap_ols(rare, models.table2_formula(), n_bootstrap=200, seed=1)
    assert 40 < t["n_failed"].iloc[0] < 110
    assert np.isfinite(t[["pct_low", "pct_high", "bca_low", "bca_high"]].to_numpy()).all()


def test_bootstrap_table(cohort):
    specs = dg.model_specs(tables="table1")
    tab = robust.bootstrap_table(cohort, specs=specs, n_bootstrap=100, seed=9)
    assert len(tab) == 8
    one = robust.bootstrap_ols(cohort, specs[7].formula, [CHI], n_bootstrap=100, seed=9).iloc[0]
    row = tab.iloc[7]
    assert row["bca_low"] == one["bca_low"] and row["pct_high"] == one["pct_high"]
    ols = smf.ols(specs[7].formula, cohort).fit()
    assert row["ci_low"] == pytest.approx(ols.conf_int().loc[CHI, 0])
    assert row["bca_excludes_0"] == (row["bca_low"] > 0 or row["bca_high"] < 0)


def test_bootstrap_errors(cohort):
    with pytest.raises(ValueError, match="n_bootstrap"):
        robust.bootstrap_ols(cohort, LESION_ADJ, n_bootstrap=5)
    with pytest.raises(ValueError, match="n_bootstrap"):
        robust.bootstrap_ols(cohort, LESION_ADJ, n_bootstrap=True)
    with pytest.raises(ValueError, match="alpha"):
        robust.bootstrap_ols(cohort, LESION_ADJ, alpha=0)
    with pytest.raises(ValueError, match="not in the model"):
        robust.bootstrap_ols(cohort, LESION_ADJ, ["edss"])


# -- Huber ----------------------------------------------------------------------------------------


def _converged_rlm(formula, data):
    """Huber fit iterated until the coefficients stop changing at all (tol 0) or 3000 steps."""
    return smf.rlm(formula, data, M=sm.robust.norms.HuberT(t=1.345)).fit(conv="coefs", tol=0.0, maxiter=3000)


def test_huber_matches_rlm_and_resists_an_outlier(cohort):
    tab = robust.huber_table(cohort)
    assert len(tab) == 8 and (tab["iterations"] > 2).all()
    ref = _converged_rlm(LESION_ADJ, cohort)
    r = tab[(tab["key"] == "t2_lesion_volume_log") & (tab["model"] == "adjusted")].iloc[0]
    assert r["coef"] == pytest.approx(ref.params[CHI], rel=1e-8)
    assert r["se"] == pytest.approx(ref.bse[CHI], rel=1e-8)
    assert r["p"] == pytest.approx(ref.pvalues[CHI], rel=1e-8)
    assert r["n_downweighted"] == int((ref.weights < 1 - 1e-12).sum())
    bad = cohort.copy()
    i = int(np.argmax(bad[CHI]))
    bad.loc[bad.index[i], "t2_lesion_volume_ml"] = 0.01       # huge negative residual at high chi
    hub = robust.huber_table(bad, specs=[s for s in dg.model_specs(tables="table1")
                                         if s.key == "t2_lesion_volume_log"])
    h = hub[hub["model"] == "adjusted"].iloc[0]
    assert abs(h["coef"] - r["coef"]) < abs(h["coef_ols"] - r["coef_ols"])
    assert h["min_weight_subject"] == bad["subject_id"].iloc[i]


@pytest.fixture(scope="module")
def bundled():
    return load_cohort(BUNDLED)


def test_huber_converges_on_volume_outcomes_in_mm3(bundled):
    """statsmodels' default stopping rule (conv="dev") stopped the mm³ fits after 2-5 iterations:
    total grey-matter volume, unadjusted, 6 mm³/ppb off on the bundled simulated cohort."""
    specs = [s for s in dg.model_specs(tables="table1")
             if s.key in ("thalamic_volume", "total_gray_matter_volume")]
    tab = robust.huber_table(bundled, specs=specs)
    assert len(tab) == 4
    for spec, (_, r) in zip(specs, tab.iterrows()):
        ref = _converged_rlm(spec.formula, bundled)
        assert r["coef"] == pytest.approx(ref.params[CHI], rel=1e-8), spec.label
        assert r["se"] == pytest.approx(ref.bse[CHI], rel=1e-8), spec.label
        assert r["p"] == pytest.approx(ref.pvalues[CHI], rel=1e-8), spec.label
        assert r["min_weight"] == pytest.approx(ref.weights.min(), rel=1e-8), spec.label
    gm = tab[(tab["key"] == "total_gray_matter_volume") & (tab["model"] == "unadjusted")].iloc[0]
    spec = next(s for s in specs if s.key == "total_gray_matter_volume" and s.model == "unadjusted")
    early = smf.rlm(spec.formula, bundled, M=sm.robust.norms.HuberT(t=1.345)).fit()   # statsmodels' default
    assert early.fit_history["iteration"] <= 5 and gm["iterations"] > 5
    assert abs(gm["coef"] - early.params[CHI]) > 1.0  # mm³/ppb: the early stop is off (simulated: -961.7 vs -967.6)


def test_huber_does_not_depend_on_the_outcome_units(bundled):
    """The same fit with grey-matter volume in mL: coefficients x 1000, same weights and iterations."""
    spec = next(s for s in dg.model_specs(tables="table1")
                if s.key == "total_gray_matter_volume" and s.model == "adjusted")
    ml = dataclasses.replace(spec, formula=spec.formula.replace("total_gray_matter_volume_mm3",
                                                                "I(total_gray_matter_volume_mm3 / 1000)"))
    a = robust.huber_table(bundled, specs=[spec]).iloc[0]
    b = robust.huber_table(bundled, specs=[ml]).iloc[0]
    assert a["coef"] == pytest.approx(1000 * b["coef"], rel=1e-9)
    assert a["se"] == pytest.approx(1000 * b["se"], rel=1e-9)
    assert a["p"] == pytest.approx(b["p"], rel=1e-9)
    assert a["min_weight"] == pytest.approx(b["min_weight"], rel=1e-9)
    assert a["iterations"] == b["iterations"] and a["n_downweighted"] == b["n_downweighted"]


def test_huber_warns_when_not_converged_and_checks_options(cohort):
    spec = [s for s in dg.model_specs(tables="table1") if s.key == "cortical_thickness"]
    with pytest.warns(ConvergenceWarning, match=r"table1 cortical_thickness \(unadjusted\).*2 iterations"):
        robust.huber_table(cohort, specs=spec[:1], maxiter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        robust.huber_table(cohort, specs=spec)
    for kw, match in (({"tol": 0}, "tol"), ({"maxiter": 1}, "maxiter"), ({"maxiter": 10.5}, "maxiter"),
                      ({"tuning": -1}, "tuning"), ({"alpha": 2}, "alpha"), ({"specs": []}, "specs")):
        with pytest.raises(ValueError, match=match):
            robust.huber_table(cohort, **kw)


def test_bootstrap_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = robust.bootstrap_figure(np.random.default_rng(0).normal(size=300), coef=0.0,
                                  intervals={"OLS": (-2, 2), "BCa": (-1.9, 2.1)})
    assert len(fig.axes) == 1
    plt.close(fig)
    with pytest.raises(ValueError, match="intervals"):
        robust.bootstrap_figure([1.0, 2.0], coef=0.0, intervals={})


@pytest.mark.filterwarnings("ignore")      # statsmodels warns about the singular design first
def test_bootstrap_rejects_bad_seed_and_singular_design(cohort):
    with pytest.raises(ValueError, match="seed"):
        robust.bootstrap_ols(cohort, LESION_ADJ, n_bootstrap=20, seed="abc")
    with pytest.raises(ValueError, match="'dmt_use'"):
        robust.bootstrap_ols(cohort.assign(dmt_use=0), LESION_ADJ, n_bootstrap=20)
