"""Tests of analysis.stats.reanalysis: multiplicity, Box-Cox, (partial) correlations, effect sizes, verdicts.

Independent references: Holm and Benjamini-Hochberg computed by hand; :func:`scipy.stats.boxcox`
for lambda and its CI; residual-on-residual correlations from statsmodels fits; scipy's Spearman.
"""

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from analysis.stats import diagnostics as dg
from analysis.stats import models, power, robust
from analysis.stats import reanalysis as ra
from tests.helpers.cohorts import simulate_cohort

CHI = models.SUSCEPTIBILITY
COV = ["age_years", "male", "disease_duration_years", "dmt_use"]


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(seed=31)


@pytest.fixture(scope="module")
def numeric(cohort):
    return cohort.assign(male=(cohort["sex"] == "M").astype(float),
                         log_lesion=np.log(cohort["t2_lesion_volume_ml"]))


# -- multiplicity -----------------------------------------------------------------------------------


def _hand_holm(p):
    p = np.asarray(p, float)
    m, order = len(p), np.argsort(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def _hand_bh(p):
    p = np.asarray(p, float)
    m, order = len(p), np.argsort(p)[::-1]
    adj = np.empty(m)
    running = 1.0
    for k, i in enumerate(order):            # from the largest P down
        rank = m - k
        running = min(running, p[i] * m / rank)
        adj[i] = running
    return adj


def test_holm_and_bh_by_hand():
    # the paper's adjusted Table 1 P values: thalamic .63, GM .16, thickness .95, lesion .015
    t1 = pd.DataFrame({"outcome": list(models.TABLE1_OUTCOMES), "model": "adjusted",
                       "coef": [9.4, -720, -8e-5, 0.029], "p": [0.63, 0.16, 0.95, 0.015]})
    m = ra.multiplicity_table(t1)
    np.testing.assert_allclose(m["p_holm"], _hand_holm(t1["p"]), rtol=1e-12)
    np.testing.assert_allclose(m["p_bh"], _hand_bh(t1["p"]), rtol=1e-12)
    lesion = m.set_index("outcome").loc["t2_lesion_volume_log"]
    assert lesion["p_holm"] == pytest.approx(0.06) and lesion["p_bh"] == pytest.approx(0.06)
    assert lesion["significant"] and not lesion["significant_holm"] and not lesion["significant_bh"]
    assert (m["m"] == 4).all()


def test_multiplicity_families_are_per_model(cohort):
    t1 = models.table1(cohort)
    m = ra.multiplicity_table(t1)
    assert len(m) == 8
    for model in ("unadjusted", "adjusted"):
        g = m[m["model"] == model]
        np.testing.assert_allclose(g["p_holm"], _hand_holm(g["p"]), rtol=1e-12)
        np.testing.assert_allclose(g["p_bh"], _hand_bh(g["p"]), rtol=1e-12)
    with pytest.raises(ValueError, match="'p'"):
        ra.multiplicity_table(t1.assign(p=2.0))
    with pytest.raises(ValueError, match="methods"):
        ra.multiplicity_table(t1, methods=("bonferroni",))


# -- Box-Cox ----------------------------------------------------------------------------------------


def test_boxcox_profile_intercept_only_equals_scipy(cohort):
    x = cohort["t2_lesion_volume_ml"].to_numpy()
    _, lam, (lo, hi) = stats.boxcox(x, alpha=0.05)
    prof = ra.boxcox_profile(cohort, "t2_lesion_volume_ml ~ 1")
    assert prof["lambda"] == pytest.approx(lam, abs=1e-5)
    assert (prof["ci_low"], prof["ci_high"]) == pytest.approx((lo, hi), abs=1e-5)
    # computed on y / geometric mean: the log-likelihood shifts by n log(gm), lambda does not move
    gm = np.exp(np.mean(np.log(x)))
    assert prof["loglik"] == pytest.approx(stats.boxcox_llf(prof["lambda"], x) + len(x) * np.log(gm), rel=1e-10)


def test_boxcox_lambda_is_the_root_of_the_score_and_stable_under_rounding(cohort):
    """lambda-hat to ~1e-15, not to the ~1e-8 a maximiser of a flat top gives (its last digits moved
    by 3e-7 between two machines): a last-bit change of the data, or another search interval, moves it by
    rounding only; the intercept-only lambda is at least as likely as scipy's."""
    f = f"t2_lesion_volume_ml ~ {CHI} + age_years"
    a = ra.boxcox_profile(cohort, f)
    b = ra.boxcox_profile(cohort.assign(t2_lesion_volume_ml=cohort["t2_lesion_volume_ml"] * (1 + 2e-16)), f)
    c = ra.boxcox_profile(cohort, f, bounds=(a["lambda"] - 0.7, a["lambda"] + 0.4))
    assert b["lambda"] == pytest.approx(a["lambda"], abs=1e-12)
    assert c["lambda"] == pytest.approx(a["lambda"], abs=1e-12)
    x = cohort["t2_lesion_volume_ml"].to_numpy()
    _, lam_scipy, _ = stats.boxcox(x, alpha=0.05)
    marg = ra.boxcox_profile(cohort, "t2_lesion_volume_ml ~ 1")
    log_gm = np.mean(np.log(x))
    assert marg["loglik"] >= stats.boxcox_llf(lam_scipy, x) + len(x) * log_gm - 1e-9


def test_boxcox_is_scale_invariant_and_finds_the_log(cohort):
    f = f"t2_lesion_volume_ml ~ {CHI} + age_years"
    a = ra.boxcox_profile(cohort, f)
    b = ra.boxcox_profile(cohort.assign(t2_lesion_volume_ml=cohort["t2_lesion_volume_ml"] * 1000), f)
    assert a["lambda"] == pytest.approx(b["lambda"], abs=1e-6)
    # the simulated lesion volumes are log-normal given the covariates: lambda = 0 lies in the CI
    tab = ra.boxcox_table(cohort)
    les = tab[tab["outcome"] == "t2_lesion_volume_log"]
    assert les["paper_lambda_in_ci"].all() and (les["lambda_ci_low"] < 0).all()
    # refit at lambda-hat: equals an OLS fit of the transformed outcome
    row = les[les["model"] == "adjusted"].iloc[0]
    y = stats.boxcox(cohort["t2_lesion_volume_ml"].to_numpy(), row["lambda"])
    rhs = models.table1_formula("t2_lesion_volume_log", adjusted=True).split("~")[1]
    ref = smf.ols(f"y ~ {rhs}", cohort.assign(y=y)).fit()
    assert row["p_boxcox"] == pytest.approx(ref.pvalues[CHI], rel=1e-6)
    assert row["t_boxcox"] == pytest.approx(ref.tvalues[CHI], rel=1e-6)
    with pytest.raises(ValueError, match="> 0"):
        ra.boxcox_profile(cohort.assign(t2_lesion_volume_ml=-1.0), f)


# -- correlations -----------------------------------------------------------------------------------


def test_partial_correlation_is_residual_on_residual(numeric):
    rx = smf.ols(f"{CHI} ~ " + " + ".join(COV), numeric).fit().resid
    ry = smf.ols("log_lesion ~ " + " + ".join(COV), numeric).fit().resid
    r_ref = np.corrcoef(rx, ry)[0, 1]
    pc = ra.partial_correlation(numeric, x=CHI, y="log_lesion", covariates=COV).iloc[0]
    assert pc["r"] == pytest.approx(r_ref, rel=1e-10)
    full = smf.ols(f"log_lesion ~ {CHI} + " + " + ".join(COV), numeric).fit()
    assert pc["p"] == pytest.approx(full.pvalues[CHI], rel=1e-8)        # same t test
    se = 1 / np.sqrt(len(numeric) - 3 - 4)
    assert pc["ci_low"] == pytest.approx(np.tanh(np.arctanh(r_ref) - 1.959963984540054 * se))
    plain = ra.partial_correlation(numeric, x=CHI, y="log_lesion").iloc[0]
    r, p = stats.pearsonr(numeric[CHI], numeric["log_lesion"])
    assert plain["r"] == pytest.approx(r) and plain["p"] == pytest.approx(p, rel=1e-8)


def test_spearman_table(cohort, numeric):
    sp = ra.spearman_table(cohort)
    assert len(sp) == 8
    un = sp[(sp["outcome"] == "t2_lesion_volume_log") & (sp["model"] == "unadjusted")].iloc[0]
    ref = stats.spearmanr(numeric[CHI], numeric["t2_lesion_volume_ml"])
    assert un["rho"] == pytest.approx(ref.statistic) and un["p"] == pytest.approx(ref.pvalue, rel=1e-8)
    se = np.sqrt(1.06 / (len(cohort) - 3))
    assert un["ci_high"] == pytest.approx(np.tanh(np.arctanh(un["rho"]) + stats.norm.isf(0.025) * se))
    adj = sp[(sp["outcome"] == "t2_lesion_volume_log") & (sp["model"] == "adjusted")].iloc[0]
    rk = numeric[[CHI, "log_lesion", *COV]].rank()
    rx = smf.ols(f"{CHI} ~ " + " + ".join(COV), rk).fit().resid
    ry = smf.ols("log_lesion ~ " + " + ".join(COV), rk).fit().resid
    assert adj["rho"] == pytest.approx(np.corrcoef(rx, ry)[0, 1], rel=1e-10) and adj["k"] == 4


def test_partial_correlation_errors(numeric):
    with pytest.raises(ValueError, match="'nope'"):
        ra.partial_correlation(numeric, x=CHI, y="nope")
    with pytest.raises(ValueError, match="'sex'"):
        ra.partial_correlation(numeric, x=CHI, y="log_lesion", covariates=["sex"])
    with pytest.raises(ValueError, match="method"):
        ra.partial_correlation(numeric, x=CHI, y="log_lesion", method="kendall")


# -- effect sizes and power -------------------------------------------------------------------------


def test_effect_sizes(cohort, numeric):
    es = ra.effect_sizes(cohort).set_index(["outcome", "model"])
    z = numeric.assign(zx=(numeric[CHI] - numeric[CHI].mean()) / numeric[CHI].std(),
                       zy=(numeric["log_lesion"] - numeric["log_lesion"].mean()) / numeric["log_lesion"].std())
    std = smf.ols("zy ~ zx + " + " + ".join(COV), z).fit().params["zx"]
    row = es.loc[("t2_lesion_volume_log", "adjusted")]
    assert row["std_coef"] == pytest.approx(std, rel=1e-10)
    un = es.loc[("t2_lesion_volume_log", "unadjusted")]
    assert un["std_coef"] == pytest.approx(un["partial_r"], rel=1e-10)     # one predictor: beta_std = r
    rx = smf.ols(f"{CHI} ~ " + " + ".join(COV), numeric).fit().resid
    ry = smf.ols("log_lesion ~ " + " + ".join(COV), numeric).fit().resid
    assert row["partial_r"] == pytest.approx(np.corrcoef(rx, ry)[0, 1], rel=1e-10)
    assert row["std_ci_low"] < row["std_coef"] < row["std_ci_high"]


def test_observed_power(cohort):
    es = ra.effect_sizes(cohort)
    pw = ra.observed_power_table(es, outcomes=["t2_lesion_volume_log"], methods=["fisher_z", "fixed_x_regression"])
    assert len(pw) == 4
    r = pw[(pw["model"] == "adjusted") & (pw["method"] == "fisher_z")].iloc[0]
    assert r["n_effective"] == len(cohort) - 4
    assert r["power_at_observed_r"] == pytest.approx(power.power_correlation(r["partial_r"], len(cohort) - 4))
    assert r["detectable_r"] == pytest.approx(power.detectable_r(len(cohort) - 4))
    with pytest.raises(ValueError, match="effect_sizes"):
        ra.observed_power_table(pd.DataFrame({"x": [1]}))


# -- verdicts ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pieces(cohort):
    specs = dg.model_specs(tables="table1")
    return {"hc3": robust.hc3_table(cohort, specs=specs),
            "bootstrap": robust.bootstrap_table(cohort, specs=specs, n_bootstrap=200, seed=1),
            "multiplicity": ra.multiplicity_table(models.table1(cohort)),
            "boxcox": ra.boxcox_table(cohort), "spearman": ra.spearman_table(cohort),
            "huber": robust.huber_table(cohort)}


def test_survive_table_structure(cohort, pieces):
    sv = ra.survive_table(**pieces)
    assert list(sv["outcome"]) == list(models.TABLE1_OUTCOMES)
    ref = models.table1(cohort)
    ref = ref[ref["model"] == "adjusted"].set_index("outcome")
    np.testing.assert_allclose(sv["p_ols"], ref.loc[sv["outcome"], "p"], rtol=1e-12)
    assert sv["checks_agreeing"].between(0, 7).all()
    assert sv["verdict"].str.len().gt(20).all()
    un = ra.survive_table(**pieces, model="unadjusted")
    assert (un["model"] == "unadjusted").all()


def test_verdict_for_a_result_lost_to_multiplicity(pieces):
    # the paper's situation: lesion P = .015 adjusted, Holm/BH P = .06, everything else agrees
    p = {k: v.copy() for k, v in pieces.items()}
    les = "t2_lesion_volume_log"
    sel = lambda d, key="key": (d[key] == les) & (d["model"] == "adjusted")  # noqa: E731
    p["hc3"].loc[sel(p["hc3"]) & (p["hc3"]["table"] == "table1"), ["coef", "p", "p_hc3"]] = [0.029, 0.015, 0.02]
    p["bootstrap"].loc[sel(p["bootstrap"]), ["bca_low", "bca_high", "bca_excludes_0"]] = [0.004, 0.05, True]
    p["multiplicity"].loc[sel(p["multiplicity"], "outcome"), ["p_holm", "p_bh"]] = [0.06, 0.06]
    p["boxcox"].loc[sel(p["boxcox"], "outcome"), ["p_boxcox", "t_boxcox"]] = [0.02, 2.4]
    p["spearman"].loc[sel(p["spearman"], "outcome"), ["p", "rho"]] = [0.03, 0.22]
    p["huber"].loc[sel(p["huber"]), ["p", "coef"]] = [0.01, 0.03]
    row = ra.survive_table(**p).set_index("outcome").loc[les]
    assert row["checks_agreeing"] == 5
    assert "multiplicity" in row["verdict"] and "Holm correction (P .060)" in row["verdict"]
    # and a fragile one: the rank correlation disagrees as well
    p["spearman"].loc[sel(p["spearman"], "outcome"), "p"] = 0.2
    row = ra.survive_table(**p).set_index("outcome").loc[les]
    assert row["verdict"].startswith("Fragile") and not row["spearman_agrees"]


def test_survive_table_errors(pieces):
    p = dict(pieces)
    p["spearman"] = p["spearman"][p["spearman"]["outcome"] != "cortical_thickness"]
    with pytest.raises(ValueError, match="cortical_thickness"):
        ra.survive_table(**p)
    with pytest.raises(ValueError, match="model"):
        ra.survive_table(**pieces, model="both")


def test_format_p():
    assert [ra.format_p(p) for p in (0.0004, 0.015, 0.06, 0.63, 0.949)] == ["<.001", ".015", ".060", ".63", ".95"]


def test_detectable_r_where_scipy_nct_returns_nan():
    # n - k = 76: the search for the fixed-X method used to meet a NaN from
    # scipy.stats.nct.cdf (fixed in analysis.stats.power); observed_power_table returns the root
    es = pd.DataFrame([{"outcome": "t2_lesion_volume_log", "model": "adjusted", "n": 80, "k": 4, "partial_r": 0.25}])
    pw = ra.observed_power_table(es, methods=["fixed_x_regression"]).iloc[0]
    assert pw["n_effective"] == 76
    assert power.power_correlation(pw["detectable_r"], 76, method="fixed_x_regression") == pytest.approx(0.8, abs=1e-9)
    assert 0.28 < pw["detectable_r"] < 0.33


def test_survive_table_with_influence_check(cohort, pieces):
    from analysis.stats import diagnostics

    infl = diagnostics.influence_summary(cohort, specs=diagnostics.model_specs(tables="table1"))
    sv = ra.survive_table(**pieces, influence=infl)
    assert {"p_without_influential", "influence_agrees"} <= set(sv.columns)
    assert sv["checks_agreeing"].between(0, 8).all()
    ref = infl[infl["model"] == "adjusted"].set_index("key").loc[sv["outcome"], "p_without"]
    np.testing.assert_allclose(sv["p_without_influential"], ref)
