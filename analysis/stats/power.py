"""Power and sample size for testing a Pearson correlation against zero, three ways.

The paper (Statistical Analysis): "A sample size of 95 was determined to have 80% power to detect a
correlation coefficient of 0.28 between variables with a 2-sided alpha of .05." The three usual
calculations give different answers for r = 0.28, alpha = .05 (two-sided), power = .80:

``fisher_z``
    Normal approximation to Fisher's z = atanh(r), SE 1/sqrt(n - 3), as Stata's
    ``power onecorrelation``: n = ((z_{1-alpha/2} + z_{power}) / atanh r)^2 + 3 = 97.84 -> **98**.
``exact_bivariate_normal``
    The exact distribution of the sample correlation coefficient when (X, Y) is bivariate normal
    with correlation rho (Fisher 1915; Hotelling 1953), tested with the exact critical value of r
    under rho = 0 (G*Power's "exact" correlation test): **97**.
``fixed_x_regression``
    The t test of the slope in a simple regression with fixed X (G*Power's "linear multiple
    regression: fixed model, R^2 deviation from zero", one predictor): Cohen's f^2 = r^2/(1 - r^2),
    noncentrality lambda = f^2 * n (so the noncentral t has delta = sqrt(f^2 * n)), df = n - 2:
    **95** with power 0.8033 -- the paper's 95. Computed by statsmodels: two-sided as the F test
    :class:`statsmodels.stats.power.FTestPowerF2` with ``df_num = 1``, ``df_denom = n - 2`` and
    ``ncc = 1`` (its noncentrality f^2 (df_num + df_denom + ncc) is then f^2 n; F = t^2, so the
    upper F tail is both t tails); one-sided as the t test
    :class:`statsmodels.stats.power.TTestPower` with effect size f = sqrt(f^2), ``nobs = n`` and
    ``df = n - 2`` (delta = f sqrt(n)). The two-sided power is *not* taken from ``TTestPower``:
    it adds the noncentral t's lower tail, which scipy returns as NaN far out (e.g. r = 0.79,
    n = 76), while the F form has no second tail.

The other two are written out here because no library computes them: statsmodels' power classes
have no test of a correlation (Fisher's z would be its normal test with a transformed effect
size, the exact method needs the distribution of r), and the sample-size searches here return
the smallest *integer* n (statsmodels' ``solve_power`` solves for a continuous n).

All three test H0: rho = 0. Only the two-sided test (the paper's) and the one-sided test in the
direction of ``r`` are supported.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import integrate, optimize, special, stats
from statsmodels.stats.power import FTestPowerF2, TTestPower

__all__ = [
    "METHODS",
    "power_correlation",
    "n_for_power",
    "detectable_r",
    "fisher_z_sample_size",
    "exact_r_pdf",
    "power_table",
    "power_curve_figure",
]

#: Method names accepted by the functions of this module.
METHODS = ("fisher_z", "exact_bivariate_normal", "fixed_x_regression")

#: Smallest sample size handled (Fisher's z needs n > 3).
MIN_N = 4

#: Largest sample size searched by :func:`n_for_power`.
MAX_N = 100_000


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------
def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _check_alpha_sides(alpha, sides):
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if sides not in (1, 2):
        raise ValueError(f"sides must be 1 or 2, got {sides!r}")


def _check_r(r, *, name="r"):
    if not (np.isfinite(r) and -1.0 < r < 1.0):
        raise ValueError(f"{name} must be in (-1, 1), got {r!r}")


def _check_power(power):
    if not (0.0 < power < 1.0):
        raise ValueError(f"power must be in (0, 1), got {power!r}")


def _check_n(n):
    if isinstance(n, bool) or not float(n).is_integer() or n < MIN_N:
        raise ValueError(f"n must be an integer >= {MIN_N}, got {n!r}")
    return int(n)


# ----------------------------------------------------------------------------------------------
# the three methods
# ----------------------------------------------------------------------------------------------
def _power_fisher_z(r, n, alpha, sides):
    """Stata ``power onecorrelation`` (r0 = 0): both rejection tails when two-sided."""
    delta = np.arctanh(r) * np.sqrt(n - 3.0)
    zc = stats.norm.isf(alpha / sides)
    if sides == 1:
        return stats.norm.cdf(abs(delta) - zc)
    return stats.norm.cdf(delta - zc) + stats.norm.cdf(-delta - zc)


def _power_fixed_x(r, n, alpha, sides):
    """G*Power's fixed model: f^2 = r^2/(1 - r^2), noncentrality f^2 n, df n - 2 (statsmodels).

    Two-sided: F(1, n - 2) test, :class:`~statsmodels.stats.power.FTestPowerF2` with ncc = 1 (no
    lower tail, so no NaN where scipy's noncentral t cdf fails far in its tail). One-sided, in the
    direction of ``r``: noncentral t upper tail, :class:`~statsmodels.stats.power.TTestPower`.
    """
    f2 = r * r / (1.0 - r * r)
    if sides == 1:
        return TTestPower().power(effect_size=math.sqrt(f2), nobs=n, alpha=alpha, df=n - 2,
                                  alternative="larger")
    return FTestPowerF2().power(effect_size=f2, df_num=1, df_denom=n - 2, alpha=alpha, ncc=1)


def _r_critical(n, alpha, sides):
    """Exact critical |r| under rho = 0: r_c = t_c / sqrt(df + t_c^2), df = n - 2."""
    df = n - 2
    tc = stats.t.isf(alpha / sides, df)
    return tc / math.sqrt(df + tc * tc)


def exact_r_pdf(r_sample, rho, n):
    """Exact density of the sample correlation coefficient of a bivariate normal sample.

    Hotelling's (1953) form::

        f(r) = (n - 2) Gamma(n - 1) (1 - rho^2)^((n - 1)/2) (1 - r^2)^((n - 4)/2)
               / (sqrt(2 pi) Gamma(n - 1/2) (1 - rho r)^(n - 3/2))
               * 2F1(1/2, 1/2; n - 1/2; (1 + rho r)/2)

    Parameters
    ----------
    r_sample : float or array_like, shape (m,)
        Values of the sample correlation, in [-1, 1].
    rho : float
        Population correlation, in (-1, 1).
    n : int
        Sample size (number of pairs), >= 4.

    Returns
    -------
    float or numpy.ndarray, shape (m,)
        Density (per unit r); zero outside [-1, 1].
    """
    _check_r(rho, name="rho")
    n = _check_n(n)
    rs = np.asarray(r_sample, dtype=float)
    inside = np.abs(rs) < 1.0
    rr = np.where(inside, rs, 0.0)
    log_c = (math.log(n - 2.0) + special.gammaln(n - 1.0) - special.gammaln(n - 0.5)
             - 0.5 * math.log(2.0 * math.pi) + 0.5 * (n - 1.0) * math.log1p(-rho * rho))
    log_f = (log_c + 0.5 * (n - 4.0) * np.log1p(-rr * rr) - (n - 1.5) * np.log1p(-rho * rr)
             + np.log(special.hyp2f1(0.5, 0.5, n - 0.5, 0.5 * (1.0 + rho * rr))))
    out = np.where(inside, np.exp(log_f), 0.0)
    return out if out.ndim else float(out)


def _power_exact(r, n, alpha, sides):
    """P(|R| >= r_c) (two-sided) or P(R >= r_c) in the direction of r, R ~ exact density.

    Computed as one minus the acceptance-region probability: the acceptance region never holds the
    density's peak when power is high, so the quadrature stays accurate for rho close to 1.
    """
    rc = _r_critical(n, alpha, sides)
    rho = abs(r)  # the distribution of -R under rho is that of R under -rho
    f = lambda x: exact_r_pdf(x, rho, n)  # noqa: E731
    lo = -rc if sides == 2 else -1.0
    peak = [rho] if lo < rho < rc else None
    accept = integrate.quad(f, lo, rc, epsabs=1e-13, epsrel=1e-11, limit=200, points=peak)[0]
    return min(1.0, max(0.0, 1.0 - accept))


_POWER = {"fisher_z": _power_fisher_z, "exact_bivariate_normal": _power_exact,
          "fixed_x_regression": _power_fixed_x}


def power_correlation(r, n, *, alpha=0.05, sides=2, method="fisher_z"):
    """Power of the test of H0: rho = 0 when the true correlation is ``r``.

    Parameters
    ----------
    r : float
        True correlation (effect size), in (-1, 1).
    n : int
        Sample size (pairs), >= 4.
    alpha : float, keyword-only
        Significance level.
    sides : {1, 2}, keyword-only
        Two-sided test (default, the paper's) or one-sided in the direction of ``r``.
    method : {"fisher_z", "exact_bivariate_normal", "fixed_x_regression"}, keyword-only
        Calculation (see the module docstring).

    Returns
    -------
    float
        Power, in (0, 1).
    """
    _check_method(method)
    _check_r(r)
    _check_alpha_sides(alpha, sides)
    n = _check_n(n)
    return float(_POWER[method](float(r), n, alpha, sides))


def fisher_z_sample_size(r, *, alpha=0.05, power=0.80, sides=2):
    """Closed-form (continuous) Fisher-z sample size, ignoring the far rejection tail.

    n = ((z_{1 - alpha/sides} + z_{power}) / atanh r)^2 + 3; for r = 0.28, alpha = .05 two-sided,
    power = .80 this is 97.84, which Stata rounds up to 98.

    Returns
    -------
    float
        Sample size before rounding up.
    """
    _check_r(r)
    _check_alpha_sides(alpha, sides)
    _check_power(power)
    if r == 0:
        raise ValueError("r must be nonzero to compute a sample size")
    za = stats.norm.isf(alpha / sides)
    zb = stats.norm.ppf(power)
    return float(((za + zb) / np.arctanh(abs(r))) ** 2 + 3.0)


def n_for_power(r, *, alpha=0.05, power=0.80, sides=2, method="fisher_z"):
    """Smallest integer sample size whose power reaches ``power``.

    Parameters
    ----------
    r : float
        Correlation to detect, in (-1, 1), nonzero.
    alpha, sides, method
        As in :func:`power_correlation`.
    power : float, keyword-only
        Target power, in (alpha, 1).

    Returns
    -------
    int
        Smallest n >= 4 with ``power_correlation(r, n) >= power`` (power increases with n).
    """
    _check_method(method)
    _check_r(r)
    _check_alpha_sides(alpha, sides)
    _check_power(power)
    if r == 0:
        raise ValueError("r must be nonzero to compute a sample size")
    if power <= alpha / sides:
        raise ValueError(f"power must exceed the test's size alpha/sides = {alpha / sides}, got {power!r}")

    def pw(n):
        return power_correlation(r, n, alpha=alpha, sides=sides, method=method)

    # start near the Fisher-z answer, then step to the exact integer boundary
    guess = max(MIN_N, min(MAX_N, int(math.ceil(fisher_z_sample_size(r, alpha=alpha, power=power,
                                                                        sides=sides)))))
    n = guess
    if pw(n) >= power:
        while n > MIN_N and pw(n - 1) >= power:
            n -= 1
        return n
    lo, hi = n, n + 1
    while pw(hi) < power:  # exponential search upward, then bisection
        lo, hi = hi, min(MAX_N, 2 * hi)
        if hi == MAX_N and pw(hi) < power:
            raise ValueError(f"power {power} is not reached with n <= {MAX_N}")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if pw(mid) < power else (lo, mid)
    return hi


def detectable_r(n, *, alpha=0.05, power=0.80, sides=2, method="fisher_z"):
    """Smallest positive correlation detected with probability ``power`` at sample size ``n``.

    Parameters
    ----------
    n : int
        Sample size (pairs), >= 4.
    alpha, power, sides, method
        As in :func:`n_for_power`.

    Returns
    -------
    float
        r in (0, 1) with ``power_correlation(r, n) == power`` (to about 1e-10).
    """
    _check_method(method)
    _check_alpha_sides(alpha, sides)
    _check_power(power)
    n = _check_n(n)
    if power <= alpha / sides:
        raise ValueError(f"power must exceed the test's size alpha/sides = {alpha / sides}, got {power!r}")
    f = lambda r: power_correlation(r, n, alpha=alpha, sides=sides, method=method) - power  # noqa: E731
    return float(optimize.brentq(f, 1e-9, 1.0 - 1e-6, xtol=1e-12, rtol=1e-12))


# ----------------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------------
def power_table(r=0.28, alpha=0.05, power=0.80, n=95, *, sides=2):
    """The paper's sample-size statement under the three methods.

    Parameters
    ----------
    r : float
        Correlation to detect (paper: 0.28).
    alpha : float
        Significance level (paper: .05, two-sided).
    power : float
        Target power (paper: .80).
    n : int
        The paper's sample size (95), at which power and detectable r are evaluated.
    sides : {1, 2}, keyword-only
        Sidedness of the test.

    Returns
    -------
    pandas.DataFrame, shape (3, 4)
        Columns ``method``, ``n_required`` (smallest integer n reaching ``power``),
        ``power_at_n95`` (power at ``n``) and ``detectable_r_at_n95`` (r detectable with ``power``
        at ``n``); the column names keep "n95" whatever ``n`` is, so that tables stay comparable.
    """
    rows = []
    for m in METHODS:
        rows.append({
            "method": m,
            "n_required": n_for_power(r, alpha=alpha, power=power, sides=sides, method=m),
            "power_at_n95": power_correlation(r, n, alpha=alpha, sides=sides, method=m),
            "detectable_r_at_n95": detectable_r(n, alpha=alpha, power=power, sides=sides, method=m),
        })
    return pd.DataFrame(rows, columns=["method", "n_required", "power_at_n95", "detectable_r_at_n95"])


def power_curve_figure(r_values=(0.2, 0.28, 0.35, 0.45), n_range=range(10, 201), *, alpha=0.05,
                       power=0.80, n=95, sides=2, methods=("fixed_x_regression", "fisher_z"),
                       title=None, figsize=(6.5, 4.5)):
    """Power against sample size for several correlations.

    Parameters
    ----------
    r_values : sequence of float
        Correlations, one color each.
    n_range : sequence of int
        Sample sizes (x axis), each >= 4.
    alpha, sides : keyword-only
        As in :func:`power_correlation`.
    power : float, keyword-only
        Target power, drawn as a horizontal line.
    n : int, keyword-only
        The paper's sample size, drawn as a vertical line.
    methods : sequence of str, keyword-only
        Methods to draw, one line style each (default: the fixed-X regression behind the paper's
        95, and Stata's Fisher z).
    title : str, keyword-only, optional
        Axes title.
    figsize : (float, float), keyword-only
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One axes; one line per (r, method), labelled ``"r = 0.28, fixed_x_regression"``; the
        first line of each holds ``n_range`` as x data and the powers as y data.
    """
    import matplotlib.pyplot as plt

    ns = np.asarray(list(n_range))
    if ns.size == 0 or np.any(ns < MIN_N) or not np.all(np.equal(np.mod(ns, 1), 0)):
        raise ValueError(f"n_range must be a non-empty sequence of integers >= {MIN_N}")
    if len(r_values) == 0:
        raise ValueError("r_values must hold at least one correlation")
    for m in methods:
        _check_method(m)
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    for i, r in enumerate(r_values):
        for j, m in enumerate(methods):
            pw = [power_correlation(r, int(k), alpha=alpha, sides=sides, method=m) for k in ns]
            ax.plot(ns, pw, styles[j % len(styles)], color=f"C{i}", lw=1.4,
                    label=f"r = {r:g}, {m}")
    ax.axhline(power, color="0.3", lw=0.8, ls="--")
    ax.axvline(n, color="0.3", lw=0.8, ls=":")
    ax.set_xlabel("Sample size n (pairs)")
    ax.set_ylabel(f"Power ({'two' if sides == 2 else 'one'}-sided alpha = {alpha:g})")
    ax.set_ylim(0, 1)
    ax.set_xlim(ns.min(), ns.max())
    default = f"Power to detect a correlation; n = {n} and power = {power:g} marked"
    ax.set_title(title if title is not None else default)
    ax.legend(fontsize=7, loc="lower right")
    return fig
