"""Tests of analysis.stats.normality against Stata's printed output and independent computations.

Reference values for Stata's auto data (``tests/data/stata_auto_mpg.csv``, the 74 values of mpg):
Stata 13 manual [R] sktest, ``sktest mpg``: Pr(Skewness) 0.0015, Pr(Kurtosis) 0.0804,
adj chi2(2) 10.95, Prob>chi2 0.0042; ``summarize mpg, detail``: skewness .9487176, kurtosis 3.975005.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from analysis.stats.normality import RUNGS, gladder, ladder, qladder, qnorm_points, sktest  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def mpg():
    return pd.read_csv(DATA / "stata_auto_mpg.csv")["mpg"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------------------------
# sktest
# ----------------------------------------------------------------------------------------------
def test_sktest_matches_stata_manual(mpg):
    res = sktest(mpg).iloc[0]
    assert len(mpg) == 74 and res["n"] == 74 and res["n_missing"] == 0
    # printed to 4 decimals (P) and 2 decimals (adj chi2)
    assert round(res["p_skew"], 4) == 0.0015
    assert round(res["p_kurt"], 4) == 0.0804
    assert round(res["chi2"], 2) == 10.95
    assert round(res["p"], 4) == 0.0042
    # summarize, detail (7 significant digits)
    assert res["skewness"] == pytest.approx(0.9487176, abs=5e-8)
    assert res["kurtosis"] == pytest.approx(3.975005, abs=5e-7)
    # adjusted chi2 is -2 ln P
    assert res["chi2"] == pytest.approx(-2 * np.log(res["p"]), rel=1e-12)
    assert sktest(mpg).index[0] == "mpg"


def test_sktest_noadjust_equals_scipy(mpg):
    res = sktest(mpg, adjust=False).iloc[0]
    k2, p = stats.normaltest(mpg)
    assert res["chi2"] == pytest.approx(k2, rel=1e-12)
    assert res["p"] == pytest.approx(p, rel=1e-12)
    z1, p1 = stats.skewtest(mpg)
    z2, p2 = stats.kurtosistest(mpg)
    assert res["z_skew"] == pytest.approx(z1, rel=1e-12)
    assert res["z_kurt"] == pytest.approx(z2, rel=1e-12)
    assert res["p_skew"] == pytest.approx(p1, rel=1e-12)
    assert res["p_kurt"] == pytest.approx(p2, rel=1e-12)
    # the marginal tests do not depend on the adjustment
    adj = sktest(mpg).iloc[0]
    assert adj["p_skew"] == res["p_skew"] and adj["p_kurt"] == res["p_kurt"]


def test_sktest_moments_divisor_n():
    x = np.random.default_rng(1).gamma(2.0, size=57)
    res = sktest(x).iloc[0]
    assert res["skewness"] == pytest.approx(stats.skew(x, bias=True), rel=1e-12)
    assert res["kurtosis"] == pytest.approx(stats.kurtosis(x, fisher=False, bias=True), rel=1e-12)


def test_royston_adjustment_identity_for_small_k2():
    # When ZC2 = -Phi^-1(exp(-K2/2)) < -1 Royston's Z equals ZC2, so the adjusted P equals the
    # unadjusted chi2(2) tail exp(-K2/2). That happens for K2 < -2 ln Phi(1) = 0.345.
    x = stats.norm.ppf((np.arange(1, 201) - 0.375) / 200.25)  # near-perfectly normal sample
    raw = sktest(x, adjust=False).iloc[0]
    assert raw["chi2"] < -2 * np.log(stats.norm.cdf(1.0))
    adj = sktest(x).iloc[0]
    assert adj["p"] == pytest.approx(np.exp(-raw["chi2"] / 2), rel=1e-10)
    assert adj["chi2"] == pytest.approx(raw["chi2"], rel=1e-8)


def test_royston_adjustment_formula_by_hand(mpg):
    # recompute the adjusted P from Z1, Z2 with the published constants (Royston 1991)
    res = sktest(mpg).iloc[0]
    n = 74.0
    k2 = res["z_skew"] ** 2 + res["z_kurt"] ** 2
    zc2 = -stats.norm.ppf(np.exp(-k2 / 2))
    L = np.log(n)
    cut = 0.55 * n**0.2 - 0.21
    a1 = (-5 + 3.46 * L) * np.exp(-1.37 * L)
    b1 = 1 + (0.854 - 0.148 * L) * np.exp(-0.55 * L)
    d = 2.13 / (1 - 2.37 * L)
    assert -1 <= zc2 and zc2 >= cut  # mpg is on the third branch
    z = (a1 - d * cut) + (d + b1) * zc2
    assert res["p"] == pytest.approx(stats.norm.sf(z), rel=1e-12)


def test_sktest_kurtosis_missing_when_cube_root_base_negative():
    # a 50/50 two-point sample of 100 has b2 = 1, below the n = 100 limit (about 1.38) where the
    # Anscombe-Glynn cube-root base turns negative: Stata prints Pr(Kurtosis) and chi2 as missing
    x = np.r_[np.zeros(50), np.ones(50)]
    res = sktest(x).iloc[0]
    assert res["kurtosis"] == pytest.approx(1.0)
    assert np.isnan(res["z_kurt"]) and np.isnan(res["p_kurt"])
    assert np.isnan(res["chi2"]) and np.isnan(res["p"])
    assert res["p_skew"] == pytest.approx(1.0)


def test_sktest_drops_nan(mpg):
    x = np.r_[mpg.to_numpy(float), [np.nan, np.nan, np.nan]]
    res = sktest(x).iloc[0]
    assert res["n"] == 74 and res["n_missing"] == 3
    assert res["chi2"] == pytest.approx(sktest(mpg).iloc[0]["chi2"], rel=1e-14)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.arange(7.0), "at least 8"),
        (np.r_[np.arange(7.0), np.nan, np.nan], "at least 8"),
        (np.array(list("abcdefghij")), "numeric"),
        (pd.Series(list("abcdefghij"), name="sex"), "sex"),
        (np.ones(10), "zero variance"),
        (np.ones((10, 2)), "one-dimensional"),
        (np.r_[np.arange(10.0), np.inf], "infinite"),
    ],
)
def test_sktest_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        sktest(bad)


# ----------------------------------------------------------------------------------------------
# ladder
# ----------------------------------------------------------------------------------------------
STATA_LABELS = ["cubic", "square", "identity", "square root", "log", "1/(square root)", "inverse",
                "1/square", "1/cubic"]
STATA_FORMULAS = ["mpg^3", "mpg^2", "mpg", "sqrt(mpg)", "log(mpg)", "1/sqrt(mpg)", "1/mpg",
                  "1/(mpg^2)", "1/(mpg^3)"]
NUMPY_RUNGS = [lambda v: v**3, lambda v: v**2, lambda v: v, np.sqrt, np.log, lambda v: 1 / np.sqrt(v),
               lambda v: 1 / v, lambda v: 1 / v**2, lambda v: 1 / v**3]


def test_ladder_labels_and_identity(mpg):
    lad = ladder(mpg)
    assert list(lad.columns) == ["transformation", "formula", "chi2", "p"]
    assert lad["transformation"].tolist() == STATA_LABELS
    assert lad["formula"].tolist() == STATA_FORMULAS
    ident = lad.set_index("transformation").loc["identity"]
    ref = sktest(mpg).iloc[0]
    assert ident["chi2"] == pytest.approx(ref["chi2"], rel=1e-12)
    assert round(ident["chi2"], 2) == 10.95 and round(ident["p"], 3) == 0.004


def test_ladder_rungs_equal_sktest_of_float32_transforms(mpg):
    lad = ladder(mpg)
    v32 = mpg.to_numpy(float).astype(np.float32).astype(float)
    for (_, row), fn in zip(lad.iterrows(), NUMPY_RUNGS):
        t = fn(v32).astype(np.float32).astype(float)
        ref = sktest(t).iloc[0]
        assert row["chi2"] == pytest.approx(ref["chi2"], rel=1e-12), row["transformation"]
        assert row["p"] == pytest.approx(ref["p"], rel=1e-12)
    # noadjust rungs are scipy's K^2 of the same transforms
    raw = ladder(mpg, adjust=False)
    for (_, row), fn in zip(raw.iterrows(), NUMPY_RUNGS):
        k2, p = stats.normaltest(fn(v32).astype(np.float32).astype(float))
        assert row["chi2"] == pytest.approx(k2, rel=1e-12)
        assert row["p"] == pytest.approx(p, rel=1e-12)


def test_ladder_float32_storage_matters():
    # cubes of 5-digit values lose digits in single precision; ladder must test the float32 copy
    x = 12345.0 + np.random.default_rng(3).normal(scale=50.0, size=40).round(3)
    lad = ladder(x).set_index("transformation")
    f32 = (x.astype(np.float32).astype(float) ** 3).astype(np.float32).astype(float)
    assert lad.loc["cubic", "chi2"] == pytest.approx(sktest(f32).iloc[0]["chi2"], rel=1e-12)


def test_ladder_undefined_rungs():
    base = np.random.default_rng(4).lognormal(size=30)
    with_zero = np.r_[base, 0.0]
    lad = ladder(with_zero).set_index("transformation")
    undefined = ["log", "1/(square root)", "inverse", "1/square", "1/cubic"]
    assert lad.loc[undefined, "chi2"].isna().all() and lad.loc[undefined, "p"].isna().all()
    assert lad.drop(index=undefined)["chi2"].notna().all()

    with_negative = np.r_[base, -1.5]
    lad = ladder(with_negative).set_index("transformation")
    # Stata: sqrt() and ln() of a negative value are missing; powers of a nonzero value are not
    assert lad.loc[["square root", "log", "1/(square root)"], "chi2"].isna().all()
    assert lad.loc[["cubic", "square", "identity", "inverse", "1/square", "1/cubic"], "chi2"].notna().all()
    inv = sktest((1 / with_negative.astype(np.float32).astype(float)).astype(np.float32).astype(float))
    assert lad.loc["inverse", "chi2"] == pytest.approx(inv.iloc[0]["chi2"], rel=1e-12)


def test_ladder_errors():
    with pytest.raises(ValueError, match="at least 8"):
        ladder(np.arange(1.0, 6.0))
    with pytest.raises(ValueError, match="numeric"):
        ladder(np.array(["a"] * 10))


def test_ladder_lognormal_prefers_log():
    # a large lognormal sample is normal on the log rung and far from it untransformed
    x = np.random.default_rng(5).lognormal(mean=1.0, sigma=1.4, size=500)
    lad = ladder(x).set_index("transformation")
    assert lad.loc["identity", "p"] < 1e-6
    assert lad.loc["log", "p"] > 0.01
    assert lad["chi2"].idxmin() == "log"


# ----------------------------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------------------------
def test_qnorm_points(mpg):
    pts = qnorm_points(mpg)
    n = 74
    q = stats.norm.ppf(np.arange(1, n + 1) / (n + 1))
    np.testing.assert_allclose(pts["expected"], mpg.mean() + mpg.std(ddof=1) * q, rtol=1e-12)
    np.testing.assert_array_equal(pts["observed"], np.sort(mpg.to_numpy(float)))


def test_qladder_data(mpg):
    fig = qladder(mpg, unit="mpg")
    axes = fig.axes
    assert len(axes) == 9
    assert [ax.get_title() for ax in axes] == [r[0] for r in RUNGS]
    v = mpg.to_numpy(float)
    n = v.size
    q = stats.norm.ppf(np.arange(1, n + 1) / (n + 1))
    for ax, fn, (_, power, _) in zip(axes, NUMPY_RUNGS, RUNGS):
        t = fn(v).astype(np.float32).astype(float)
        t = -t if power < 0 else t  # Stata plots -1/sqrt(x), -1/x, ... to keep the order
        line = ax.get_lines()[0]
        np.testing.assert_allclose(line.get_ydata(), np.sort(t), rtol=1e-12)
        np.testing.assert_allclose(line.get_xdata(), t.mean() + t.std(ddof=1) * q, rtol=1e-10)
    # order kept: the largest mpg is the largest plotted value on the inverse panel too
    inv = axes[6].get_lines()[0].get_ydata()
    assert inv[-1] == pytest.approx(-1 / v.max(), rel=1e-6)


def test_gladder_data(mpg):
    fig = gladder(mpg, bins=10, title="mpg ladder")
    axes = fig.axes
    assert len(axes) == 9
    assert fig._suptitle.get_text() == "mpg ladder"
    v = mpg.to_numpy(float)
    for ax, fn, (_, power, _) in zip(axes, NUMPY_RUNGS, RUNGS):
        t = fn(v).astype(np.float32).astype(float)
        t = -t if power < 0 else t
        heights = np.array([p.get_height() for p in ax.patches])
        widths = np.array([p.get_width() for p in ax.patches])
        assert len(heights) == 10
        assert np.sum(heights * widths) == pytest.approx(1.0, rel=1e-9)  # a density histogram
        assert ax.patches[0].get_x() == pytest.approx(t.min(), rel=1e-9, abs=1e-12)
        curve = ax.get_lines()[0]
        np.testing.assert_allclose(curve.get_ydata(),
                                   stats.norm.pdf(curve.get_xdata(), t.mean(), t.std(ddof=1)), rtol=1e-12)


def test_plots_mark_undefined_rungs():
    x = np.r_[np.random.default_rng(6).lognormal(size=30), 0.0]
    for fig in (qladder(x), gladder(x)):
        assert len(fig.axes) == 9
        texts = {ax.get_title(): [t.get_text() for t in ax.texts] for ax in fig.axes}
        assert texts["log"] == ["undefined"] and texts["1/cubic"] == ["undefined"]
        assert texts["identity"] == [] and texts["square root"] == []
