"""Tests of analysis.stats.diagnostics: influence measures, the influential-patient rule, VIF, figures.

The module computes with statsmodels (``OLSInfluence``, ``variance_inflation_factor``); the tests
check its numbers against independent computations: leverage, studentized residuals and Cook's
distance written out from a QR decomposition and from leave-one-out refits, and the VIFs from
auxiliary OLS regressions (1/(1 - R^2)).
"""

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import statsmodels.formula.api as smf  # noqa: E402

from analysis.stats import diagnostics as dg  # noqa: E402
from analysis.stats import models  # noqa: E402
from tests.helpers.cohorts import simulate_cohort  # noqa: E402


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(seed=11)


@pytest.fixture(scope="module")
def influence(cohort):
    return dg.influence_table(cohort)


def test_model_specs_cover_tables_1_and_2():
    specs = dg.model_specs()
    assert len(specs) == 14
    t1 = [s for s in specs if s.table == "table1"]
    assert [(s.key, s.model) for s in t1] == [(o, m) for o in models.TABLE1_OUTCOMES
                                             for m in ("unadjusted", "adjusted")]
    assert all(s.formula == models.table1_formula(s.key, adjusted=s.model == "adjusted") for s in t1)
    t2 = [s for s in specs if s.table == "table2"]
    assert [s.key for s in t2] == [*models.TABLE2_PREDICTORS, "all"]
    assert t2[-1].formula == models.table2_formula() and len(t2[-1].terms) == 5
    assert len(dg.model_specs(tables="table1")) == 8
    with pytest.raises(ValueError, match="tables"):
        dg.model_specs(tables=("table3",))


def _textbook_influence(X, y):
    """Leverage, studentized residuals and Cook's distance written out from a QR decomposition."""
    n, p = X.shape
    q, _ = np.linalg.qr(X)
    fitted = q @ (q.T @ y)
    e = y - fitted
    h = np.einsum("ij,ij->i", q, q)
    s2 = e @ e / (n - p)
    r_int = e / np.sqrt(s2 * (1.0 - h))
    s2_i = ((n - p) * s2 - e * e / (1.0 - h)) / (n - p - 1)          # s^2 without patient i
    return {"fitted": fitted, "residual": e, "leverage": h, "student_internal": r_int,
            "student_external": e / np.sqrt(s2_i * (1.0 - h)), "cooks_d": r_int ** 2 * h / (p * (1.0 - h))}


def test_influence_matches_textbook_formulas(cohort, influence):
    for spec in dg.model_specs():
        res = smf.ols(spec.formula, data=cohort).fit()
        ref = _textbook_influence(res.model.exog, res.model.endog)
        d = influence[(influence["table"] == spec.table) & (influence["key"] == spec.key)
                      & (influence["model"] == spec.model)]
        assert len(d) == len(cohort)
        np.testing.assert_allclose(d["leverage"], ref["leverage"], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(d["cooks_d"], ref["cooks_d"], rtol=1e-8, atol=1e-14)
        np.testing.assert_allclose(d["student_internal"], ref["student_internal"], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(d["student_external"], ref["student_external"], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(d["fitted"], ref["fitted"], rtol=1e-10)
        np.testing.assert_allclose(d["residual"], ref["residual"], rtol=1e-7,
                                   atol=1e-9 * np.abs(ref["residual"]).max())
        np.testing.assert_allclose(d["observed"], res.model.endog, rtol=1e-15)
        assert list(d["subject_id"]) == list(cohort["subject_id"])


def test_influence_measures_match_leave_one_out_refits(cohort):
    """Cook's D_i = |fitted - fitted without i|^2 / (p s^2); the external studentized residual
    uses the s of the refit without patient i (both by definition, refitting)."""
    res = smf.ols(models.table1_formula("t2_lesion_volume_log", adjusted=True), data=cohort).fit()
    X, y = res.model.exog, res.model.endog
    n, p = X.shape
    m = dg.influence_measures(X, y)
    s2 = res.ssr / res.df_resid
    for i in (0, 17, int(np.argmax(m["cooks_d"]))):
        keep = np.arange(n) != i
        beta_i, *_ = np.linalg.lstsq(X[keep], y[keep], rcond=None)
        cooks = np.sum((X @ res.params.to_numpy() - X @ beta_i) ** 2) / (p * s2)
        s2_i = np.sum((y[keep] - X[keep] @ beta_i) ** 2) / (n - 1 - p)
        assert m["cooks_d"].iloc[i] == pytest.approx(cooks, rel=1e-9)
        ext = res.resid.iloc[i] / np.sqrt(s2_i * (1 - m["leverage"].iloc[i]))
        assert m["student_external"].iloc[i] == pytest.approx(ext, rel=1e-9)


def test_influence_measures_errors():
    rng = np.random.default_rng(1)
    X = np.column_stack([np.ones(20), rng.normal(size=20)])
    y = rng.normal(size=20)
    with pytest.raises(ValueError, match="rank deficient"):
        dg.influence_measures(np.column_stack([X, 2 * X[:, 1]]), y)
    with pytest.raises(ValueError, match="shape"):
        dg.influence_measures(X, y[:-1])
    with pytest.raises(ValueError, match="more observations"):
        dg.influence_measures(X[:3], y[:3])


def test_influential_flag_is_cooks_d_above_4_over_n(cohort, influence):
    n = len(cohort)
    assert np.allclose(influence["cooks_threshold"], 4 / n)
    assert (influence["influential"] == (influence["cooks_d"] > 4 / n)).all()
    assert influence["influential"].any()                    # a realistic cohort flags a few
    p = {s.label: len(smf.ols(s.formula, cohort).fit().params) for s in dg.model_specs()}
    for (table, key, model), d in influence.groupby(["table", "key", "model"]):
        pp = p[f"{table} {key} ({model})"]
        assert np.isclose(d["leverage"].sum(), pp)            # trace of the hat matrix
        assert (d["high_leverage"] == (d["leverage"] > 2 * pp / n)).all()
    strict = dg.influence_table(cohort, specs=dg.model_specs(tables="table1"), cooks_threshold=0.5)
    assert (strict["influential"] == (strict["cooks_d"] > 0.5)).all()
    with pytest.raises(ValueError, match="cooks_threshold"):
        dg.influence_table(cohort, cooks_threshold=-1)


def test_planted_outlier_is_flagged(cohort):
    d = cohort.copy()
    i = int(np.argmax(d["thalamic_relative_susceptibility_ppb"]))   # high-leverage patient
    d.loc[d.index[i], "thalamic_volume_mm3"] = 38000.0
    infl = dg.influence_table(d, specs=[s for s in dg.model_specs(tables="table1")
                                        if s.key == "thalamic_volume"])
    top = infl.sort_values("cooks_d").iloc[-1]
    assert top["subject_id"] == d["subject_id"].iloc[i] and top["influential"]


def test_influence_summary_refits_without_flagged_patients(cohort, influence):
    summ = dg.influence_summary(cohort, specs=dg.model_specs(tables="table1"))
    assert len(summ) == 8
    row = summ[(summ["key"] == "t2_lesion_volume_log") & (summ["model"] == "adjusted")].iloc[0]
    d = influence[(influence["key"] == "t2_lesion_volume_log") & (influence["model"] == "adjusted")]
    flagged = set(d.loc[d["influential"], "subject_id"])
    assert row["n_influential"] == len(flagged) and set(row["influential_subjects"].split(", ")) == flagged
    ref = smf.ols(models.table1_formula("t2_lesion_volume_log", adjusted=True),
                  cohort[~cohort["subject_id"].isin(flagged)]).fit()
    assert row["coef_without"] == pytest.approx(ref.params[models.SUSCEPTIBILITY], rel=1e-10)
    assert row["p_without"] == pytest.approx(ref.pvalues[models.SUSCEPTIBILITY], rel=1e-8)
    assert row["n_without"] == len(cohort) - len(flagged)
    assert row["max_cooks_d"] == pytest.approx(d["cooks_d"].max())
    assert 0 <= row["breusch_pagan_p"] <= 1 and 0 <= row["residual_sktest_p"] <= 1


def test_vif_equals_one_over_one_minus_r2(cohort):
    vt = dg.vif_table(cohort)
    assert set(vt["design"]) == {"table1_adjusted", "table2_adjusted"}
    t1 = vt[vt["design"] == "table1_adjusted"].set_index("term")
    d = cohort.assign(male=(cohort["sex"] == "M").astype(float))
    others = ["age_years", "male", "disease_duration_years", "dmt_use"]
    r2 = smf.ols(f"{models.SUSCEPTIBILITY} ~ " + " + ".join(others), d).fit().rsquared
    assert t1.loc[models.SUSCEPTIBILITY, "vif"] == pytest.approx(1 / (1 - r2), rel=1e-10)
    r2_age = smf.ols("age_years ~ " + " + ".join([models.SUSCEPTIBILITY, "male",
                                                  "disease_duration_years", "dmt_use"]), d).fit().rsquared
    assert t1.loc["age_years", "vif"] == pytest.approx(1 / (1 - r2_age), rel=1e-10)
    assert t1.loc["age_years", "r2"] == pytest.approx(r2_age, rel=1e-10)
    # every column of the design against its auxiliary regression, written out with lstsq
    res = smf.ols(models.table1_formula("thalamic_volume", adjusted=True), cohort).fit()
    X = res.model.exog
    for j, name in enumerate(res.model.exog_names):
        if name == "Intercept":
            assert name not in t1.index
            continue
        others = np.delete(X, j, axis=1)
        resid = X[:, j] - others @ np.linalg.lstsq(others, X[:, j], rcond=None)[0]
        r2_j = 1 - resid @ resid / np.sum((X[:, j] - X[:, j].mean()) ** 2)
        assert t1.loc[name, "vif"] == pytest.approx(1 / (1 - r2_j), rel=1e-9)
        assert t1.loc[name, "r2"] == pytest.approx(r2_j, rel=1e-9)


def test_vif_of_collinear_columns_is_large():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    X = np.column_stack([np.ones(200), x, x + rng.normal(scale=0.05, size=200), rng.normal(size=200)])
    v = dg.vif(X, ["const", "x", "x_copy", "z"]).set_index("term")["vif"]
    assert v["x"] > 100 and v["x_copy"] > 100 and v["z"] < 1.2
    with warnings.catch_warnings():          # statsmodels warns that the design is singular
        warnings.simplefilter("ignore")
        exact = dg.vif(np.column_stack([X, 2 * X[:, 3]]), ["const", "x", "x_copy", "z", "2z"]).set_index("term")
    assert exact.loc["2z", "vif"] > 1e12 and exact.loc["2z", "r2"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="intercept"):
        dg.vif(X[:, 1:])


def test_figures(influence):
    t1 = influence[(influence["table"] == "table1") & (influence["model"] == "adjusted")]
    for fn in (dg.residual_qq_figure, dg.residual_fitted_figure, dg.influence_figure):
        fig = fn(t1)
        assert sum(ax.get_visible() for ax in fig.axes) == 4
        plt.close(fig)
    fig = dg.influence_figure(influence[influence["table"] == "table2"], ncols=3)
    assert sum(ax.get_visible() for ax in fig.axes) == 6
    plt.close(fig)
    with pytest.raises(ValueError, match="influence_table"):
        dg.residual_qq_figure(pd.DataFrame({"x": [1]}))


def test_errors_name_the_problem(cohort):
    with pytest.raises(ValueError, match="mean_cortical_thickness_mm"):
        dg.influence_table(cohort.drop(columns="mean_cortical_thickness_mm"))
    with pytest.raises(ValueError, match="alpha"):
        dg.influence_summary(cohort, alpha=1.5)
    with pytest.raises(ValueError, match="at least"):
        dg.influence_table(cohort.head(5))
    with pytest.raises(ValueError, match="specs"):
        dg.vif_table(cohort, specs=["not a spec"])


@pytest.mark.filterwarnings("ignore")      # statsmodels warns about the singular design first
def test_constant_covariate_is_named(cohort):
    everyone_on_dmt = cohort.assign(dmt_use=1)
    with pytest.raises(ValueError, match=r"table1 thalamic_volume \(adjusted\).*'dmt_use'"):
        dg.influence_table(everyone_on_dmt)
