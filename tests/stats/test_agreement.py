"""Tests of analysis.stats.agreement against independent computations.

ICC: Shrout & Fleiss (1979) Table 2 (6 targets rated by 4 judges), whose ICCs they publish in
Table 4; the confidence intervals printed by R's ``psych::ICC`` for the same data (its help-page
example); mean squares from a statsmodels two-way ANOVA; for two raters, the closed form
ICC(A,1) = 2·s_xy / (s_x² + s_y² + (x̄ − ȳ)² − s_d²/n); and the coverage of the F-based interval
in simulation. Bland–Altman: the formulas written out by hand, and the coverage of the exact
(non-central t) interval of the limits of agreement in simulation.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from analysis.simulation.imaging_cohort import example_cohort  # noqa: E402
from analysis.stats import agreement as ag  # noqa: E402
from analysis.stats import models  # noqa: E402

#: Shrout & Fleiss (1979), Table 2: rows = targets, columns = judges.
SF_TABLE2 = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)
#: Their Table 4 (two decimals).
SF_PUBLISHED = {"1,1": 0.17, "A,1": 0.29, "C,1": 0.71, "1,k": 0.44, "A,k": 0.62, "C,k": 0.91}
#: 95 % bounds printed by R psych::ICC(sf) (lower, upper).
PSYCH_CI = {"1,1": (-0.133, 0.72), "A,1": (0.019, 0.76), "C,1": (0.342, 0.95),
            "1,k": (-0.884, 0.91), "A,k": (0.071, 0.93), "C,k": (0.676, 0.99)}


@pytest.mark.parametrize("kind", list(SF_PUBLISHED))
def test_icc_shrout_fleiss_published_values(kind):
    r = ag.icc(SF_TABLE2, kind=kind)
    assert round(r["icc"], 2) == pytest.approx(SF_PUBLISHED[kind], abs=1e-9)
    assert (r["n"], r["k"]) == (6, 4)


@pytest.mark.parametrize("kind", list(PSYCH_CI))
def test_icc_confidence_interval_matches_psych(kind):
    r = ag.icc(SF_TABLE2, kind=kind)
    lo, hi = PSYCH_CI[kind]
    decimals_lo = len(str(lo).split(".")[1])
    decimals_hi = len(str(hi).split(".")[1])
    assert round(r["ci_low"], decimals_lo) == pytest.approx(lo, abs=1e-9)
    assert round(r["ci_high"], decimals_hi) == pytest.approx(hi, abs=1e-9)
    assert r["ci_low"] < r["icc"] < r["ci_high"]


def test_mean_squares_match_statsmodels_anova():
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    long = pd.DataFrame([{"target": i, "judge": j, "y": SF_TABLE2[i, j]}
                         for i in range(6) for j in range(4)])
    tab = anova_lm(smf.ols("y ~ C(target) + C(judge)", data=long).fit())
    a = ag.two_way_anova(SF_TABLE2)
    assert a["ms_rows"] == pytest.approx(tab.loc["C(target)", "mean_sq"])
    assert a["ms_cols"] == pytest.approx(tab.loc["C(judge)", "mean_sq"])
    assert a["ms_error"] == pytest.approx(tab.loc["Residual", "mean_sq"])
    one_way = anova_lm(smf.ols("y ~ C(target)", data=long).fit())
    assert a["ms_within"] == pytest.approx(one_way.loc["Residual", "mean_sq"])
    # Shrout & Fleiss Table 3: BMS 11.24, WMS 6.26, JMS 32.49, EMS 1.02
    assert (round(a["ms_rows"], 2), round(a["ms_within"], 2), round(a["ms_cols"], 2),
            round(a["ms_error"], 2)) == (11.24, 6.26, 32.49, 1.02)


def test_icc_a1_two_raters_closed_form():
    rng = np.random.default_rng(1)
    truth = rng.normal(-29, 11.7, 40)
    measured = 0.9 * truth - 3 + rng.normal(0, 2, 40)
    x, y = measured, truth
    n = x.size
    sxy = np.cov(x, y, ddof=1)[0, 1]
    sd2 = np.var(x - y, ddof=1)
    expected = 2 * sxy / (x.var(ddof=1) + y.var(ddof=1) + (x.mean() - y.mean()) ** 2 - sd2 / n)
    assert ag.icc(np.column_stack([x, y]), kind="A,1")["icc"] == pytest.approx(expected, rel=1e-12)
    # consistency ignores the offset, absolute agreement does not
    shifted = np.column_stack([x + 10, y])
    assert ag.icc(shifted, kind="C,1")["icc"] == pytest.approx(ag.icc(np.column_stack([x, y]), kind="C,1")["icc"])
    assert ag.icc(shifted, kind="A,1")["icc"] < ag.icc(np.column_stack([x, y]), kind="A,1")["icc"]


def test_icc_a1_interval_coverage():
    """ICC(A,1) with subject SD 10, rater offsets SD 3, error SD 4: true value 100 / 125 = 0.8."""
    rng = np.random.default_rng(20180301)
    n, k, reps = 20, 3, 400
    true_icc = 100.0 / (100.0 + 9.0 + 16.0)
    hits = 0
    for _ in range(reps):
        table = (rng.normal(0, 10, (n, 1)) + rng.normal(0, 3, (1, k)) + rng.normal(0, 4, (n, k)))
        r = ag.icc(table, kind="A,1")
        hits += r["ci_low"] <= true_icc <= r["ci_high"]
    assert 0.90 <= hits / reps <= 0.99


def test_icc_rejects_bad_input():
    with pytest.raises(ValueError, match="kind"):
        ag.icc(SF_TABLE2, kind="2,1")
    with pytest.raises(ValueError, match="non-finite"):
        ag.icc(np.array([[1.0, np.nan], [2.0, 3.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        ag.icc(np.arange(5.0))


def test_bland_altman_by_hand():
    measured = np.array([10.2, 12.1, 9.8, 15.3, 11.0, 13.4, 8.9, 14.2])
    reference = np.array([10.0, 11.5, 10.1, 14.8, 11.2, 12.9, 9.3, 13.5])
    d = measured - reference
    n = d.size
    bias, sd = d.mean(), d.std(ddof=1)
    t = stats.t.ppf(0.975, n - 1)
    z = stats.norm.ppf(0.975)
    r = ag.bland_altman(measured, reference)
    assert r["n"] == n
    assert r["bias"] == pytest.approx(bias)
    assert r["sd_diff"] == pytest.approx(sd)
    assert (r["bias_ci_low"], r["bias_ci_high"]) == pytest.approx((bias - t * sd / np.sqrt(n),
                                                                   bias + t * sd / np.sqrt(n)))
    assert (r["loa_low"], r["loa_high"]) == pytest.approx((bias - 1.959964 * sd, bias + 1.959964 * sd), rel=1e-6)
    se_loa = sd * np.sqrt(1 / n + z ** 2 / (2 * (n - 1)))
    assert (r["loa_high_ci_low"], r["loa_high_ci_high"]) == pytest.approx((r["loa_high"] - t * se_loa,
                                                                           r["loa_high"] + t * se_loa))
    assert (r["loa_low_ci_low"], r["loa_low_ci_high"]) == pytest.approx((r["loa_low"] - t * se_loa,
                                                                         r["loa_low"] + t * se_loa))
    assert r["max_abs_diff"] == pytest.approx(np.abs(d).max())


def test_bland_altman_exact_interval_coverage_and_large_n():
    """Carkeet's exact interval covers the population's upper limit (μ + 1.96σ) 95 % of the time."""
    rng = np.random.default_rng(7)
    n, reps, mu, sigma = 12, 600, -2.0, 3.0
    target = mu + stats.norm.ppf(0.975) * sigma
    hits_exact = 0
    for _ in range(reps):
        d = rng.normal(mu, sigma, n)
        r = ag.bland_altman(d, np.zeros(n), loa_ci="exact")
        hits_exact += r["loa_high_ci_low"] <= target <= r["loa_high_ci_high"]
    assert 0.92 <= hits_exact / reps <= 0.98
    # for large n the approximate and exact intervals agree
    d = rng.normal(mu, sigma, 400)
    a = ag.bland_altman(d, np.zeros(400), loa_ci="approximate")
    e = ag.bland_altman(d, np.zeros(400), loa_ci="exact")
    width_a = a["loa_high_ci_high"] - a["loa_high_ci_low"]
    width_e = e["loa_high_ci_high"] - e["loa_high_ci_low"]
    assert width_e == pytest.approx(width_a, rel=0.03)


def test_bland_altman_rejects_bad_input():
    with pytest.raises(ValueError, match="paired"):
        ag.bland_altman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 3"):
        ag.bland_altman([1, 2], [1, 2])
    with pytest.raises(ValueError, match="loa_ci"):
        ag.bland_altman([1, 2, 3], [1, 2, 4], loa_ci="bootstrap")
    with pytest.raises(ValueError, match="alpha"):
        ag.bland_altman([1, 2, 3], [1, 2, 4], alpha=1.5)


def test_agreement_table_rows_and_columns():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"ref_a": rng.normal(0, 10, 30)})
    df["meas_a"] = df["ref_a"] + rng.normal(1, 1, 30)
    df["ref_b"] = rng.normal(100, 5, 30)
    df["meas_b"] = df["ref_b"] * 1.01
    t = ag.agreement_table(df, {"a": ("meas_a", "ref_a"), "b": ("meas_b", "ref_b")}, units={"a": "ppb"})
    assert list(t["variable"]) == ["a", "b"] and list(t["unit"]) == ["ppb", ""]
    assert t.loc[0, "bias"] == pytest.approx(ag.bland_altman(df["meas_a"], df["ref_a"])["bias"])
    assert t.loc[0, "icc_a1"] == pytest.approx(ag.icc(df[["meas_a", "ref_a"]].to_numpy())["icc"])
    with pytest.raises(ValueError, match="meas_c"):
        ag.agreement_table(df, {"c": ("meas_c", "ref_a")})


def test_lesion_model_comparison_matches_models():
    cohort = example_cohort(30, seed=5)
    measured = cohort.copy()
    measured["thalamic_relative_susceptibility_ppb"] += np.random.default_rng(0).normal(0, 3, 30)
    cmp = ag.lesion_model_comparison(cohort, measured)
    ref = models.table1(cohort).query("outcome == 't2_lesion_volume_log'").set_index("model")
    meas = models.table1(measured).query("outcome == 't2_lesion_volume_log'").set_index("model")
    for _, row in cmp.iterrows():
        for key in ("coef", "ci_low", "ci_high", "p"):
            assert row[f"calibrated_{key}"] == pytest.approx(ref.loc[row["model"], key])
            assert row[f"measured_{key}"] == pytest.approx(meas.loc[row["model"], key])
        assert row["coef_difference"] == pytest.approx(row["measured_coef"] - row["calibrated_coef"])
        assert row["n"] == 30
    # only the common subjects are used; too few for the adjusted model gives NaN, not an error
    small = ag.lesion_model_comparison(cohort, measured.iloc[:5])
    assert (small["n"] == 5).all()
    assert np.isnan(small.set_index("model").loc["adjusted", "measured_coef"])
    assert np.isfinite(small.set_index("model").loc["unadjusted", "measured_coef"])


def test_plots_draw():
    rng = np.random.default_rng(0)
    ref = rng.normal(-29, 11.7, 20)
    meas = ref + rng.normal(-1, 2, 20)
    fig, (a1, a2) = plt.subplots(1, 2)
    ag.bland_altman_plot(a1, meas, ref, unit="ppb", x_axis="reference", title="χ")
    ag.agreement_scatter(a2, meas, ref, unit="ppb", icc_=ag.icc(np.column_stack([meas, ref])))
    assert len(a1.collections) == 1 and len(a1.lines) == 4     # points; bias, 2 LoA, zero
    assert a1.get_ylabel() == "measured − reference (ppb)"
    s = ag.bland_altman(meas, ref)
    labels = {t.get_text(): t.get_position()[1] for t in a1.texts}   # in the right margin, at their lines
    assert labels[f"bias {s['bias']:+.3g}"] == pytest.approx(s["bias"])
    assert labels[f"LoA {s['loa_high']:.3g}"] == pytest.approx(s["loa_high"])
    assert all(t.get_position()[0] > 1 for t in a1.texts) and a1.get_legend() is None
    assert "n = 20, 95 % CI shaded" in a1.get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="x_axis"):
        ag.bland_altman_plot(a1, meas, ref, x_axis="difference")
