"""Table 2 in the continuous: the predictors' covariance that lets every Table 2 number print.

Table 2 (relative susceptibility on each predictor, unadjusted and adjusted) depends on the
covariates only through their covariance matrix. :func:`table2_residuals` gives the normalised
distance of every printed Table 2 number for a covariance, adjusted coefficients and residual SD;
:func:`table2_covariance_target` finds the correlations, SDs, coefficients and residual SD that
minimise the largest one (minimax). The correlations between the binary predictors are fixed by
cross-counts of patients (:data:`CROSS_COUNTS`, chosen with :func:`choose_cross_counts`).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import optimize

from analysis.simulation.calibration.printed import (
    N_DMT,
    N_ENHANCING,
    N_FEMALE,
    P_INTERVALS,
    T2_ORDER,
    N,
    printed_centres,
    row_distances,
)
from analysis.simulation.calibration.stable import snap
from analysis.stats.published import interval, published, table_rows

__all__ = ["CROSS_COUNTS", "table2_residuals", "table2_covariance_target", "fit_theta_minimax",
           "choose_cross_counts"]

#: Patients with both attributes: (enhancing & male, enhancing & DMT, male & DMT). The only
#: combination near the copula's expectations under which all of Table 2 can print (see
#: :func:`choose_cross_counts`, which tries the others).
CROSS_COUNTS = (1, 4, 15)

_SCALE_T2 = np.r_[np.full(7, 0.1), np.full(5, 0.001), 0.01, 0.1, 0.01]


#: Plausible correlations of Table 2's predictors (T2 order) used to pick one solution of the
#: under-determined covariance equations: younger patients and early disease have more enhancing
#: lesions, age and duration go together.
_PRIOR_CORRELATION = {(0, 1): -0.2, (0, 4): -0.1, (1, 4): 0.35, (3, 4): 0.1}


def _binary_corr(sds, i, j, n11):
    """Correlation of binary predictors i and j (T2 order) when n11 patients have both."""
    counts = {0: N_ENHANCING, 2: N - N_FEMALE, 3: N_DMT}
    pi, pj = counts[i] / N, counts[j] / N
    return (n11 / N - pi * pj) * N / (N - 1) / (sds[i] * sds[j])


_BINARY_PAIRS = ((0, 2), (0, 3), (2, 3))
_FREE_PAIRS = ((0, 1), (0, 4), (1, 2), (1, 3), (1, 4), (2, 4), (3, 4))


def choose_cross_counts(tg, *, candidates=((0, 1, 2), (3, 4, 5), (14, 15, 16, 17))):
    """Try binary cross-counts (enhancing & male, enhancing & DMT, male & DMT) and return them
    sorted by the worst normalised distance of Table 2's continuous optimum (list of
    ``(worst, counts)``); :data:`CROSS_COUNTS` is the best. Takes about a minute."""
    out = []
    for counts in itertools.product(*candidates):
        try:
            out.append((table2_covariance_target(tg, cross_counts=counts)["worst"], counts))
        except ValueError:  # impossible counts
            continue
    return sorted(out)


_T2_ROWS = None


def _t2_rows():
    """Published Table 2 rows in T2 order: unadjusted rows then adjusted rows."""
    global _T2_ROWS
    if _T2_ROWS is None:
        rows = {(r["predictor"], r["model"]): r for r in table_rows("table2")}
        keys = [(k, "unadjusted") for k in T2_ORDER] + [(k, "adjusted") for k in T2_ORDER]
        _T2_ROWS = printed_centres([(k, rows[k]) for k in keys], P_INTERVALS)
    return _T2_ROWS


def table2_residuals(S, theta, sigma):
    """Normalised distances of every printed Table 2 number (and the SD of s) from its centre."""
    n = N
    a = np.sqrt(np.diag(np.linalg.inv(S * (n - 1))))
    var_s = theta @ S @ theta + (n - 6) * sigma**2 / (n - 1)
    b = (S @ theta) / np.diag(S)
    se = np.sqrt(np.maximum(var_s / np.diag(S) - b**2, 1e-30) / (n - 2))
    centres, hw = _t2_rows()
    d_un = row_distances(b, se, n - 2, centres[:5], hw[:5])
    d_adj = row_distances(theta, sigma * a, n - 6, centres[5:], hw[5:])
    lo, hi = interval(published()["cohort"]["thalamic_relative_susceptibility_ppb"]["sd"])
    d_sd = (np.sqrt(var_s) - (lo + hi) / 2) / ((hi - lo) / 2)
    return np.r_[d_un.ravel(), d_adj.ravel(), d_sd]


def _minimax(res, z0, scale):
    """min over z of max |res(z)|: least squares on res**p (p = 1, 2, 4, 8), then SLSQP on the
    epigraph form. Returns ``(z, worst)``, ``z`` snapped to 6 significant digits
    (:func:`~analysis.simulation.calibration.stable.snap`: the optimiser's result differs by ~1e-9
    relative across BLAS kernels and thread counts, and it feeds the searches that follow)."""
    z = np.asarray(z0, float)
    for pw in (1, 2, 4, 8):
        z = optimize.least_squares(lambda v, pw=pw: np.sign(res(v)) * np.abs(res(v)) ** pw, z, x_scale=scale).x
    u0 = np.r_[z / scale, np.abs(res(z)).max()]
    cons = [{"type": "ineq", "fun": lambda u: np.r_[u[-1] - res(u[:-1] * scale), u[-1] + res(u[:-1] * scale)]}]
    sol = optimize.minimize(lambda u: u[-1], u0, constraints=cons, method="SLSQP",
                            options={"maxiter": 300, "ftol": 1e-10})
    z2 = sol.x[:-1] * scale
    if np.abs(res(z2)).max() < np.abs(res(z)).max():
        z = z2
    z = snap(z)
    return z, float(np.abs(res(z)).max())


def table2_covariance_target(tg, *, cross_counts=CROSS_COUNTS):
    """Continuous minimax solution of Table 2: the correlations and SDs of the five predictors,
    adjusted coefficients and residual SD that put every printed number farthest inside its
    interval. Age and duration SDs are free within their printed windows (10 and 7.8).

    Returns a dict with ``R`` (5, 5), ``sds`` (5,), ``theta`` (5,), ``sigma`` and ``worst``
    (largest normalised distance; < 1 = everything prints).
    """
    sds0 = np.array([np.sqrt(k * (N - k) / (N * (N - 1))) for k in (N_ENHANCING, 0, N - N_FEMALE, N_DMT, 0)])
    age_sd, dur_sd = (published()["cohort"][k]["sd"] for k in ("age_years", "disease_duration_years"))
    b_t = np.array([tg[(k, "adjusted")]["b"] for k in T2_ORDER])

    def build(z):
        sds = sds0.copy()
        sds[1], sds[4] = z[13], z[14]
        R = np.eye(5)
        for (i, j), n11 in zip(_BINARY_PAIRS, cross_counts):
            R[i, j] = R[j, i] = _binary_corr(sds, i, j, n11)
        for k, (i, j) in enumerate(_FREE_PAIRS):
            R[i, j] = R[j, i] = z[k]
        return R, sds

    a_c, a_h = np.mean(interval(age_sd)), np.ptp(interval(age_sd)) / 2
    d_c, d_h = np.mean(interval(dur_sd)), np.ptp(interval(dur_sd)) / 2

    def res(z):
        R, sds = build(z)
        if np.linalg.eigvalsh(R).min() < 0.02:
            return np.full(43, 1e3)
        return np.r_[table2_residuals(np.outer(sds, sds) * R, z[7:12], z[12]),
                     (z[13] - a_c) / a_h, (z[14] - d_c) / d_h]

    z0 = np.r_[[_PRIOR_CORRELATION.get(ij, 0.0) for ij in _FREE_PAIRS], b_t, 11.4, 10.3, 7.8]
    z, worst = _minimax(res, z0, _SCALE_T2)
    R, sds = build(z)
    return {"R": R, "sds": sds, "theta": z[7:12], "sigma": float(z[12]), "worst": worst}


def fit_theta_minimax(X, z):
    """Adjusted Table 2 coefficients and residual SD minimising the worst normalised distance."""
    S = np.cov(X, rowvar=False)
    return _minimax(lambda v: table2_residuals(S, v[:5], v[5]), z, _SCALE_T2[7:13])
