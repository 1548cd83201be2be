"""Tests of analysis.stats.power: the paper's "n = 95 for 80% power to detect r = 0.28" three ways.

References: Stata ``power onecorrelation 0 0.28, power(0.8)`` (Fisher z) gives N = 98 from
n = ((z_.975 + z_.80)/atanh .28)^2 + 3 = 97.84; G*Power's exact bivariate-normal correlation test
gives 97; the fixed-X regression t test (noncentral t, f^2 = r^2/(1 - r^2), lambda = f^2 n,
df = n - 2) gives 95 with power 0.803.
"""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import integrate, special, stats  # noqa: E402

from analysis.stats.power import (  # noqa: E402
    METHODS,
    detectable_r,
    exact_r_pdf,
    fisher_z_sample_size,
    n_for_power,
    power_correlation,
    power_curve_figure,
    power_table,
)

R, ALPHA, POWER, N = 0.28, 0.05, 0.80, 95


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------------------------
# the three answers
# ----------------------------------------------------------------------------------------------
def test_sample_sizes_three_methods():
    assert n_for_power(R, method="fisher_z") == 98
    assert n_for_power(R, method="exact_bivariate_normal") == 97
    assert n_for_power(R, method="fixed_x_regression") == 95
    # smallest n: one fewer falls short
    for m, n in [("fisher_z", 98), ("exact_bivariate_normal", 97), ("fixed_x_regression", 95)]:
        assert power_correlation(R, n, method=m) >= POWER > power_correlation(R, n - 1, method=m)


def test_fixed_x_power_at_95():
    p = power_correlation(R, N, method="fixed_x_regression")
    assert 0.80 <= p < 0.81
    assert round(p, 3) == 0.803


def test_fisher_closed_form():
    za, zb = stats.norm.ppf(0.975), stats.norm.ppf(0.80)
    n_cont = ((za + zb) / math.atanh(R)) ** 2 + 3
    assert n_cont == pytest.approx(97.84, abs=0.005)
    assert fisher_z_sample_size(R) == pytest.approx(n_cont, rel=1e-14)
    assert n_for_power(R, method="fisher_z") == math.ceil(n_cont)
    # power formula (both tails) written out
    for n in (20, 95, 300):
        d = math.atanh(R) * math.sqrt(n - 3)
        ref = stats.norm.cdf(d - za) + stats.norm.cdf(-d - za)
        assert power_correlation(R, n, method="fisher_z") == pytest.approx(ref, rel=1e-14)
    # at the continuous n the near-tail power is exactly the target
    d = math.atanh(R) * math.sqrt(n_cont - 3)
    assert stats.norm.cdf(d - za) == pytest.approx(POWER, rel=1e-12)


def test_fixed_x_equals_noncentral_f():
    # G*Power's F test of R^2 with one predictor: F(1, n - 2) with noncentrality f^2 n
    f2 = R**2 / (1 - R**2)
    for n in (30, 95, 200):
        crit = stats.f.isf(ALPHA, 1, n - 2)
        ref = stats.ncf.sf(crit, 1, n - 2, f2 * n)
        assert power_correlation(R, n, method="fixed_x_regression") == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("r", [0.1, R, -0.45])
@pytest.mark.parametrize("n", [10, 95, 150])
def test_fixed_x_equals_noncentral_t(r, n):
    """The slope's t test written out: df n - 2, delta = sqrt(f^2 n); both tails, or the upper one
    (kept where scipy's nct.cdf is finite; see test_fixed_x_power_survives_scipy_nct_tail_nan)."""
    df, delta = n - 2, abs(r) / math.sqrt(1 - r * r) * math.sqrt(n)
    tc2, tc1 = stats.t.isf(ALPHA / 2, df), stats.t.isf(ALPHA, df)
    two = stats.nct.sf(tc2, df, delta) + stats.nct.cdf(-tc2, df, delta)
    assert power_correlation(r, n, method="fixed_x_regression") == pytest.approx(two, rel=1e-9)
    one = stats.nct.sf(tc1, df, delta)
    assert power_correlation(r, n, method="fixed_x_regression", sides=1) == pytest.approx(one, rel=1e-9)


# ----------------------------------------------------------------------------------------------
# the exact bivariate-normal method
# ----------------------------------------------------------------------------------------------
def test_exact_density_is_a_density():
    for rho, n in [(0.0, 10), (0.28, 95), (-0.6, 40), (0.9, 6)]:
        f = lambda x, rho=rho, n=n: exact_r_pdf(x, rho, n)  # noqa: E731
        assert integrate.quad(f, -1, 1)[0] == pytest.approx(1.0, abs=1e-9)
        # Olkin & Pratt (1958): G(r) = r 2F1(1/2, 1/2; (n - 2)/2; 1 - r^2) is exactly unbiased for rho
        g = lambda x, n=n, f=f: x * special.hyp2f1(0.5, 0.5, (n - 2) / 2, 1 - x * x) * f(x)  # noqa: E731
        assert integrate.quad(g, -1, 1, limit=200)[0] == pytest.approx(rho, abs=1e-10)
        # and r itself is biased towards 0 by about rho (1 - rho^2) / (2 n) (Fisher 1915)
        mean = integrate.quad(lambda x, f=f: x * f(x), -1, 1)[0]
        assert abs(mean) <= abs(rho)


def test_exact_density_null_is_t_distribution():
    # under rho = 0, r sqrt(n-2)/sqrt(1-r^2) ~ t(n-2): density of r is the t density times the Jacobian
    n = 25
    r = np.linspace(-0.9, 0.9, 19)
    t = r * np.sqrt(n - 2) / np.sqrt(1 - r**2)
    jac = np.sqrt(n - 2) / (1 - r**2) ** 1.5
    np.testing.assert_allclose(exact_r_pdf(r, 0.0, n), stats.t.pdf(t, n - 2) * jac, rtol=1e-10)


def _exact_power_by_mixture(rho, n, alpha=0.05):
    """Random X as a mixture of fixed X: given x, t ~ nct(n - 2, rho/sqrt(1-rho^2) sqrt(W)),
    W = sum (x - xbar)^2 ~ chi2(n - 1). Integrate the fixed-X power over W (independent route)."""
    df = n - 2
    tc = stats.t.isf(alpha / 2, df)
    k = rho / math.sqrt(1 - rho**2)

    def integrand(w):
        d = k * math.sqrt(w)
        return (stats.nct.sf(tc, df, d) + stats.nct.cdf(-tc, df, d)) * stats.chi2.pdf(w, n - 1)

    lo, hi = stats.chi2.ppf([1e-15, 1 - 1e-15], n - 1)  # the rest has mass < 2e-15
    return integrate.quad(integrand, lo, hi, epsabs=1e-12, epsrel=1e-10, limit=200)[0]


@pytest.mark.parametrize("n", [30, 96, 97])
def test_exact_power_matches_mixture_integration(n):
    ref = _exact_power_by_mixture(R, n)
    assert power_correlation(R, n, method="exact_bivariate_normal") == pytest.approx(ref, abs=1e-7)


def test_exact_power_matches_monte_carlo():
    # 20,000 samples of 97 bivariate-normal pairs: binomial SE of the rejection rate at power 0.80
    # is sqrt(.8 * .2 / 20000) = 0.0028; 4 SE = 0.011 keeps a false failure below 1e-4.
    rng = np.random.default_rng(20180301)
    n, reps = 97, 20_000
    x = rng.standard_normal((reps, n))
    y = R * x + math.sqrt(1 - R**2) * rng.standard_normal((reps, n))
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    r = (xc * yc).sum(1) / np.sqrt((xc**2).sum(1) * (yc**2).sum(1))
    t = r * np.sqrt(n - 2) / np.sqrt(1 - r**2)
    mc = np.mean(np.abs(t) > stats.t.isf(0.025, n - 2))
    se = math.sqrt(POWER * (1 - POWER) / reps)
    assert power_correlation(R, n, method="exact_bivariate_normal") == pytest.approx(mc, abs=4 * se)


# ----------------------------------------------------------------------------------------------
# detectable r, table, figure, validation
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_detectable_r_consistency(method):
    r95 = detectable_r(N, method=method)
    assert power_correlation(r95, N, method=method) == pytest.approx(POWER, abs=1e-9)
    n_req = n_for_power(R, method=method)
    # at the required n, r = 0.28 is detectable, so the detectable r is at most 0.28
    assert detectable_r(n_req, method=method) <= R
    assert detectable_r(n_req - 1, method=method) > R


def test_one_sided():
    # one-sided Fisher z: n = ((z_.95 + z_.80)/atanh r)^2 + 3
    n_cont = ((stats.norm.ppf(0.95) + stats.norm.ppf(0.80)) / math.atanh(R)) ** 2 + 3
    assert n_for_power(R, sides=1, method="fisher_z") == math.ceil(n_cont)
    for m in METHODS:
        assert n_for_power(R, sides=1, method=m) < n_for_power(R, method=m)
        # symmetric in the sign of r
        pos = power_correlation(R, 60, method=m)
        assert power_correlation(-R, 60, method=m) == pytest.approx(pos, rel=1e-9)


def test_size_under_null():
    for m in METHODS:
        assert power_correlation(1e-12, 50, method=m) == pytest.approx(ALPHA, abs=1e-8)


def test_power_table():
    tab = power_table()
    assert list(tab.columns) == ["method", "n_required", "power_at_n95", "detectable_r_at_n95"]
    assert tab["method"].tolist() == list(METHODS)
    t = tab.set_index("method")
    assert t["n_required"].tolist() == [98, 97, 95]
    assert t.loc["fixed_x_regression", "power_at_n95"] == pytest.approx(0.80328, abs=5e-5)
    assert t.loc["fisher_z", "power_at_n95"] < POWER
    assert t.loc["exact_bivariate_normal", "power_at_n95"] < POWER
    assert (t["detectable_r_at_n95"] > 0.27).all() and (t["detectable_r_at_n95"] < 0.29).all()


def test_power_curve_figure():
    ns = range(20, 151, 10)
    fig = power_curve_figure(r_values=(0.2, 0.28), n_range=ns, methods=("fixed_x_regression",))
    (ax,) = fig.axes
    lines = ax.get_lines()
    curve = [ln for ln in lines if ln.get_label() == "r = 0.28, fixed_x_regression"][0]
    np.testing.assert_array_equal(curve.get_xdata(), list(ns))
    expected = [power_correlation(0.28, n, method="fixed_x_regression") for n in ns]
    np.testing.assert_allclose(curve.get_ydata(), expected, rtol=1e-12)
    # reference lines at power .80 and n = 95
    assert any(np.allclose(ln.get_ydata(), 0.80) for ln in lines)
    assert any(np.allclose(ln.get_xdata(), 95) for ln in lines)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: power_correlation(1.2, 50), "r must be in"),
        (lambda: power_correlation(0.3, 3), "n must be an integer"),
        (lambda: power_correlation(0.3, 50.5), "n must be an integer"),
        (lambda: power_correlation(0.3, 50, method="bogus"), "method must be one of"),
        (lambda: power_correlation(0.3, 50, alpha=1.5), "alpha"),
        (lambda: power_correlation(0.3, 50, sides=3), "sides"),
        (lambda: n_for_power(0.0), "nonzero"),
        (lambda: n_for_power(0.3, power=1.0), "power must be in"),
        (lambda: detectable_r(95, power=0.01), "power must exceed"),
        (lambda: power_curve_figure(n_range=[2, 3]), "n_range"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_fixed_x_power_survives_scipy_nct_tail_nan():
    """scipy's nct.cdf is NaN far in its lower tail (df 74, delta ~ 10); power must stay defined."""
    from analysis.stats import power as pw

    assert pw.power_correlation(0.79, 76, method="fixed_x_regression") == pytest.approx(1.0, abs=1e-12)
    assert pw.power_correlation(0.79, 76, method="fixed_x_regression", sides=1) == pytest.approx(1.0, abs=1e-12)
    r = pw.detectable_r(76, method="fixed_x_regression")
    assert pw.power_correlation(r, 76, method="fixed_x_regression") == pytest.approx(0.80, abs=1e-9)
    assert 0.3 < r < 0.33
