"""Robust inference beside the paper's OLS: HC3 standard errors, case bootstrap, Huber regression.

* :func:`hc3_table` -- heteroskedasticity-consistent standard errors HC3 (MacKinnon & White 1985),
  V = (X'X)^-1 X' diag(e_i^2 / (1 - h_ii)^2) X (X'X)^-1, from statsmodels' ``cov_type="HC3"``;
  CIs and P values use the t distribution with the residual degrees of freedom n - p
  (``use_t=True``, as Stata's ``regress, vce(hc3)``), beside the classical OLS ones.
* :func:`bootstrap_ols` / :func:`bootstrap_table` -- case-resampling (pairs) bootstrap of the OLS
  coefficients: patients are drawn with replacement, the model is refitted, the bootstrap
  distribution gives percentile and BCa intervals (Efron & Tibshirani 1993, ch. 14). The BCa
  acceleration comes from the jackknife (leave-one-patient-out) coefficients, computed exactly
  from the full fit (beta_(i) = beta - (X'X)^-1 x_i e_i / (1 - h_ii)). The resamples are drawn
  with a seeded :class:`numpy.random.Generator` as ``rng.integers(0, n, (B, n))`` -- the draws
  :func:`scipy.stats.bootstrap` makes from the same generator, which the tests use to check the
  intervals against scipy. A resample whose design is rank deficient (e.g. no patient with
  enhancing lesions drawn) cannot be fitted; it is dropped and counted in ``n_failed``. Hand-written
  rather than statsmodels' or scipy's: thousands of refits are done as one batched least-squares
  solve, and the BCa acceleration uses the exact jackknife of OLS instead of n refits.
* :func:`huber_table` -- M-estimation with Huber's norm (statsmodels ``RLM``, tuning constant
  1.345, MAD scale), which down-weights patients with large residuals. The iterations stop on the
  weights (a scale-free rule), not on statsmodels' default, which stops volume outcomes in mm³
  after 2-5 iterations, before the estimate has converged (see :func:`huber_table`).

References
----------
MacKinnon JG, White H. Some heteroskedasticity-consistent covariance matrix estimators with improved
finite sample properties. J Econom 1985;29:305-25.
Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall; 1993.
Huber PJ. Robust estimation of a location parameter. Ann Math Stat 1964;35:73-101.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import special
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from analysis.cohort.dictionary import DEFAULT_SEED
from analysis.stats.diagnostics import (
    REQUIRED_COLUMNS,
    check_alpha,
    check_data,
    check_design,
    check_specs,
    fit_spec,
    model_specs,
)

__all__ = [
    "hc3_covariance",
    "hc3_table",
    "bootstrap_ols",
    "bca_interval",
    "percentile_interval",
    "bootstrap_table",
    "huber_table",
    "HUBER_TOL",
    "HUBER_MAXITER",
    "bootstrap_figure",
]

#: Smallest number of bootstrap resamples accepted.
MIN_BOOTSTRAP = 20

#: Resamples fitted at once (memory: chunk * n * p floats).
_CHUNK = 500

#: Default convergence tolerance of :func:`huber_table`: largest change of any patient's weight.
HUBER_TOL = 1e-10

#: Default iteration limit of :func:`huber_table`.
HUBER_MAXITER = 1000


# ----------------------------------------------------------------------------------------------
# HC3
# ----------------------------------------------------------------------------------------------
def hc3_covariance(X, y):
    """HC3 covariance matrix of the OLS coefficients (statsmodels ``OLS(y, X).fit(cov_type="HC3")``).

    Parameters
    ----------
    X : array_like, shape (n, p)
        Design matrix, full column rank.
    y : array_like, shape (n,)
        Outcome.

    Returns
    -------
    numpy.ndarray, shape (p, p)
        (X'X)^-1 X' diag(e_i^2 / (1 - h_ii)^2) X (X'X)^-1, in (outcome units / column units)^2.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must have shape (n, p) and y shape (n,), got {X.shape} and {y.shape}")
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError("X is rank deficient (a covariate is constant or collinear)")
    return np.asarray(sm.OLS(y, X).fit(cov_type="HC3").cov_params(), dtype=float)


def hc3_table(data, *, specs=None, alpha=0.05, use_t=True):
    """Classical OLS and HC3 inference side by side, one row per model and coefficient of interest.

    Parameters
    ----------
    data : pandas.DataFrame
        A validated cohort (:func:`analysis.cohort.dictionary.load_cohort`).
    specs : sequence of ModelSpec, keyword-only
        Models (default: all 14 of :func:`analysis.stats.diagnostics.model_specs`).
    alpha : float, keyword-only
        1 - confidence level.
    use_t : bool, keyword-only
        t distribution with n - p degrees of freedom for the HC3 CI and P (default, as Stata);
        ``False`` uses the normal distribution (statsmodels' default for robust covariances).

    Returns
    -------
    pandas.DataFrame
        ``table, key, model, term, coef, se, ci_low, ci_high, p, se_hc3, ci_low_hc3, ci_high_hc3,
        p_hc3, se_ratio`` (``se_ratio`` = se_hc3 / se); coefficients, SEs and CIs in outcome units
        per unit of the term.
    """
    check_data(data)
    alpha = check_alpha(alpha)
    specs = check_specs(specs)
    if not isinstance(use_t, bool):
        raise ValueError(f"use_t must be True or False, got {use_t!r}")
    rows = []
    for spec in specs:
        res = fit_spec(spec, data)
        rob = fit_spec(spec, data, cov_type="HC3", use_t=use_t)
        ci, ci_r = res.conf_int(alpha=alpha), rob.conf_int(alpha=alpha)
        for term, coef in zip(spec.terms, spec.coef_names):
            se, se_r = float(res.bse[coef]), float(rob.bse[coef])
            rows.append({"table": spec.table, "key": spec.key, "model": spec.model, "term": term,
                         "coef": float(res.params[coef]), "se": se, "ci_low": float(ci.loc[coef, 0]),
                         "ci_high": float(ci.loc[coef, 1]), "p": float(res.pvalues[coef]),
                         "se_hc3": se_r, "ci_low_hc3": float(ci_r.loc[coef, 0]),
                         "ci_high_hc3": float(ci_r.loc[coef, 1]), "p_hc3": float(rob.pvalues[coef]),
                         "se_ratio": se_r / se})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# bootstrap
# ----------------------------------------------------------------------------------------------
def _check_n_bootstrap(n_bootstrap):
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) \
            or n_bootstrap < MIN_BOOTSTRAP:
        raise ValueError(f"n_bootstrap must be an integer >= {MIN_BOOTSTRAP}, got {n_bootstrap!r}")
    return int(n_bootstrap)


def percentile_interval(theta_boot, *, alpha=0.05):
    """Percentile interval: the alpha/2 and 1 - alpha/2 quantiles (linear interpolation).

    Parameters
    ----------
    theta_boot : array_like, shape (B,)
        Bootstrap replicates of the statistic.
    alpha : float, keyword-only
        1 - confidence level.

    Returns
    -------
    (float, float)
    """
    alpha = check_alpha(alpha)
    b = np.asarray(theta_boot, dtype=float)
    lo, hi = np.quantile(b, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bca_interval(theta_hat, theta_boot, theta_jack, *, alpha=0.05):
    """Bias-corrected and accelerated (BCa) bootstrap interval.

    Parameters
    ----------
    theta_hat : float
        The statistic on the original sample.
    theta_boot : array_like, shape (B,)
        Bootstrap replicates.
    theta_jack : array_like, shape (n,)
        Jackknife (leave-one-out) values of the statistic.
    alpha : float, keyword-only
        1 - confidence level.

    Returns
    -------
    dict
        ``low, high`` (the interval), ``z0`` (bias correction: the normal quantile of the share of
        replicates below ``theta_hat``, ties counted half), ``acceleration``
        (a = sum d^3 / (6 (sum d^2)^1.5), d = mean(theta_jack) - theta_jack) and ``alpha_low,
        alpha_high`` (the adjusted quantile levels). NaN interval if every replicate lies on one
        side of ``theta_hat`` (z0 infinite).

    Notes
    -----
    alpha_{1,2} = Phi(z0 + (z0 + z_{alpha/2, 1-alpha/2}) / (1 - a (z0 + z_{...}))); the interval
    is the alpha_1 and alpha_2 quantiles of ``theta_boot`` (Efron & Tibshirani 1993, eq. 14.10,
    14.15). With z0 = a = 0 it is the percentile interval.
    """
    alpha = check_alpha(alpha)
    b = np.asarray(theta_boot, dtype=float)
    jack = np.asarray(theta_jack, dtype=float)
    if b.ndim != 1 or b.size < 2 or jack.ndim != 1 or jack.size < 3:
        raise ValueError("theta_boot and theta_jack must be 1-D with at least 2 and 3 values")
    share = (np.count_nonzero(b < theta_hat) + np.count_nonzero(b <= theta_hat)) / (2.0 * b.size)
    z0 = special.ndtri(share)
    d = jack.mean() - jack
    den = np.sum(d ** 2)
    a = float(np.sum(d ** 3) / (6.0 * den ** 1.5)) if den > 0 else 0.0
    out = {"z0": float(z0), "acceleration": a}
    if not np.isfinite(z0):
        return {"low": np.nan, "high": np.nan, **out, "alpha_low": np.nan, "alpha_high": np.nan}
    levels = []
    for z in (special.ndtri(alpha / 2), special.ndtri(1 - alpha / 2)):
        levels.append(float(special.ndtr(z0 + (z0 + z) / (1.0 - a * (z0 + z)))))
    lo, hi = np.quantile(b, levels)
    return {"low": float(lo), "high": float(hi), **out, "alpha_low": levels[0], "alpha_high": levels[1]}


def _batched_lstsq(Xb, yb):
    """Least squares for a stack of designs; NaN rows where the design is rank deficient."""
    u, s, vt = np.linalg.svd(Xb, full_matrices=False)
    tol = s[:, :1] * max(Xb.shape[1:]) * np.finfo(float).eps
    ok = np.all(s > tol, axis=1)
    s_inv = np.where(s > tol, 1.0 / np.where(s > tol, s, 1.0), 0.0)
    uty = np.einsum("bnk,bn->bk", u, yb)
    beta = np.einsum("bkp,bk->bp", vt, uty * s_inv)
    beta[~ok] = np.nan
    return beta


def bootstrap_ols(data, formula, terms=None, *, n_bootstrap=2000, seed=DEFAULT_SEED, alpha=0.05,
                  return_distribution=False):
    """Case-resampling bootstrap of OLS coefficients with percentile and BCa intervals.

    Parameters
    ----------
    data : pandas.DataFrame
        Any data frame holding the formula's variables.
    formula : str
        statsmodels/patsy formula, e.g. ``"np.log(t2_lesion_volume_ml) ~ thalamic_relative_susceptibility_ppb"``.
    terms : sequence of str, optional
        Coefficient names as statsmodels gives them (default: every coefficient but the intercept).
    n_bootstrap : int, keyword-only
        Number of resamples B (default 2000; at least 20).
    seed : int, numpy.random.SeedSequence or numpy.random.Generator, keyword-only
        Seed of the resampling (default: the compendium's 20180301). The resamples are
        ``numpy.random.default_rng(seed).integers(0, n, (B, n))``.
    alpha : float, keyword-only
        1 - confidence level.
    return_distribution : bool, keyword-only
        Also return the bootstrap replicates.

    Returns
    -------
    pandas.DataFrame
        One row per term: ``term, coef, boot_mean, boot_se, bias, pct_low, pct_high, bca_low,
        bca_high, z0, acceleration, n_bootstrap, n_failed``.
    pandas.DataFrame, shape (B - n_failed, len(terms))
        Only with ``return_distribution=True``: the replicates, one column per term.
    """
    alpha = check_alpha(alpha)
    n_bootstrap = _check_n_bootstrap(n_bootstrap)
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    res = check_design(smf.ols(formula, data=data).fit(), label="bootstrap_ols")
    names = list(res.model.exog_names)
    terms = [t for t in names if t != "Intercept"] if terms is None else list(terms)
    unknown = [t for t in terms if t not in names]
    if unknown or not terms:
        raise ValueError(f"terms {unknown or terms} not in the model; terms: {names}")
    X, y = np.asarray(res.model.exog, float), np.asarray(res.model.endog, float)
    n, p = X.shape
    cols = [names.index(t) for t in terms]
    beta = np.asarray(res.params, float)
    # jackknife, exact: beta_(i) = beta - (X'X)^-1 x_i e_i / (1 - h_i)
    xtx_inv = np.linalg.inv(X.T @ X)
    e = y - X @ beta
    h = np.einsum("ij,jk,ik->i", X, xtx_inv, X)
    jack = beta[None, :] - (X @ xtx_inv) * (e / (1.0 - h))[:, None]
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"seed must be a non-negative integer, SeedSequence or Generator, got {seed!r}") from exc
    idx = rng.integers(0, n, (n_bootstrap, n))
    boot = np.empty((n_bootstrap, p))
    for k in range(0, n_bootstrap, _CHUNK):
        ii = idx[k:k + _CHUNK]
        boot[k:k + _CHUNK] = _batched_lstsq(X[ii], y[ii])
    failed = np.isnan(boot).any(axis=1)
    boot = boot[~failed]
    if boot.shape[0] < MIN_BOOTSTRAP:
        raise ValueError(f"only {boot.shape[0]} of {n_bootstrap} resamples could be fitted "
                         f"(rank-deficient designs); the model is too sparse for the bootstrap")
    rows = []
    for t, j in zip(terms, cols):
        lo, hi = percentile_interval(boot[:, j], alpha=alpha)
        bca = bca_interval(beta[j], boot[:, j], jack[:, j], alpha=alpha)
        rows.append({"term": t, "coef": float(beta[j]), "boot_mean": float(boot[:, j].mean()),
                     "boot_se": float(boot[:, j].std(ddof=1)), "bias": float(boot[:, j].mean() - beta[j]),
                     "pct_low": lo, "pct_high": hi, "bca_low": bca["low"], "bca_high": bca["high"],
                     "z0": bca["z0"], "acceleration": bca["acceleration"],
                     "n_bootstrap": n_bootstrap, "n_failed": int(failed.sum())})
    table = pd.DataFrame(rows)
    if return_distribution:
        return table, pd.DataFrame(boot[:, cols], columns=terms)
    return table


def bootstrap_table(data, *, specs=None, n_bootstrap=2000, seed=DEFAULT_SEED, alpha=0.05):
    """Bootstrap percentile and BCa intervals beside the OLS interval for every model.

    Every model is bootstrapped with the same ``seed``, i.e. on the same resamples of patients
    (common random numbers), so models can be compared resample by resample.

    Parameters
    ----------
    data : pandas.DataFrame
        A validated cohort.
    specs : sequence of ModelSpec, keyword-only
        Models (default: all 14).
    n_bootstrap, seed, alpha
        As in :func:`bootstrap_ols`.

    Returns
    -------
    pandas.DataFrame
        ``table, key, model, term, coef, ci_low, ci_high, p, boot_se, bias, pct_low, pct_high,
        bca_low, bca_high, z0, acceleration, ols_excludes_0, pct_excludes_0, bca_excludes_0,
        n_bootstrap, n_failed``.
    """
    check_data(data)
    specs = check_specs(specs)
    alpha = check_alpha(alpha)
    frames = []
    for spec in specs:
        res = fit_spec(spec, data)
        ci = res.conf_int(alpha=alpha)
        bt = bootstrap_ols(data, spec.formula, list(spec.coef_names), n_bootstrap=n_bootstrap,
                           seed=seed, alpha=alpha)
        bt["ci_low"] = [float(ci.loc[c, 0]) for c in spec.coef_names]
        bt["ci_high"] = [float(ci.loc[c, 1]) for c in spec.coef_names]
        bt["p"] = [float(res.pvalues[c]) for c in spec.coef_names]
        bt["term"] = list(spec.terms)
        bt.insert(0, "model", spec.model)
        bt.insert(0, "key", spec.key)
        bt.insert(0, "table", spec.table)
        frames.append(bt)
    out = pd.concat(frames, ignore_index=True)
    for kind, lo, hi in (("ols", "ci_low", "ci_high"), ("pct", "pct_low", "pct_high"),
                         ("bca", "bca_low", "bca_high")):
        out[f"{kind}_excludes_0"] = (out[lo] > 0) | (out[hi] < 0)
    return out[["table", "key", "model", "term", "coef", "ci_low", "ci_high", "p", "boot_se", "bias",
                "pct_low", "pct_high", "bca_low", "bca_high", "z0", "acceleration", "ols_excludes_0",
                "pct_excludes_0", "bca_excludes_0", "n_bootstrap", "n_failed"]]


# ----------------------------------------------------------------------------------------------
# Huber M-estimation
# ----------------------------------------------------------------------------------------------
def huber_table(data, *, specs=None, alpha=0.05, tuning=1.345, id_column="subject_id", tol=HUBER_TOL,
                maxiter=HUBER_MAXITER):
    """Huber robust regression (statsmodels ``RLM``) beside OLS.

    Parameters
    ----------
    data : pandas.DataFrame
        A validated cohort.
    specs : sequence of ModelSpec, keyword-only
        Models (default: the 8 of Table 1).
    alpha : float, keyword-only
        1 - confidence level (normal-based, as RLM reports).
    tuning : float, keyword-only
        Huber's tuning constant t (1.345: 95 % efficiency under normal errors).
    id_column : str, keyword-only
        Column identifying the patients.
    tol : float, keyword-only
        The iterations stop when no patient's weight changes by more than ``tol`` (default 1e-10)
        from one iteration to the next.
    maxiter : int, keyword-only
        Most iterations (default 1000); a model that has not converged by then is reported with a
        :class:`statsmodels.tools.sm_exceptions.ConvergenceWarning` naming it.

    Returns
    -------
    pandas.DataFrame
        ``table, key, model, term, coef_ols, p_ols, coef, se, ci_low, ci_high, p,
        n_downweighted, min_weight, min_weight_subject, iterations`` (coefficients and CIs in
        outcome units per unit of the term; weights < 1 are patients whose scaled residual
        exceeds ``tuning``; ``iterations`` = iteratively reweighted least-squares steps).

    Notes
    -----
    statsmodels' default stopping rule for ``RLM.fit`` (``conv="dev"``, ``tol=1e-8``) compares
    successive values of sum rho(e_i / s^2), where s^2 is the weighted residual *variance*: its
    argument has the units 1/outcome, so for volumes in mm³ (residuals ~10³ mm³, s^2 ~10⁶-10⁹)
    the criterion is ~1e-5 and its change falls below 1e-8 after 2-5 iterations, long before the
    estimate has converged (total grey-matter volume, unadjusted: -1001.5 instead of -1016.3
    mm³/ppb on the bundled cohort). The rule used here (``conv="weights"``) compares the weights
    w_i = psi(r_i / sigma) / (r_i / sigma), which are dimensionless: rescaling the outcome (mm³ to
    mL) or the covariates leaves every iterate's weights unchanged, so the same ``tol`` means the
    same thing for every outcome and the fit no longer depends on the outcome's units.
    """
    check_data(data, columns=(*REQUIRED_COLUMNS, id_column))
    alpha = check_alpha(alpha)
    if isinstance(tuning, bool) or not (isinstance(tuning, (int, float)) and tuning > 0):
        raise ValueError(f"tuning must be a positive number, got {tuning!r}")
    if isinstance(tol, bool) or not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 2:
        raise ValueError(f"maxiter must be an integer >= 2, got {maxiter!r}")
    specs = check_specs(specs, default=model_specs(tables=("table1",)))
    rows = []
    for spec in specs:
        ols = fit_spec(spec, data)
        rlm = smf.rlm(spec.formula, data=data, M=sm.robust.norms.HuberT(t=tuning)).fit(
            conv="weights", tol=tol, maxiter=int(maxiter))
        history = rlm.fit_history
        last_change = float(np.max(np.abs(history["weights"][-1] - history["weights"][-2])))
        if not last_change <= tol:
            warnings.warn(f"{spec.label}: Huber regression did not converge in {history['iteration']} "
                          f"iterations (last weight change {last_change:.2g} > tol = {tol:g})",
                          ConvergenceWarning, stacklevel=2)
        ci = rlm.conf_int(alpha=alpha)
        w = np.asarray(rlm.weights)
        labels = rlm.model.data.row_labels
        imin = int(np.argmin(w))
        for term, coef in zip(spec.terms, spec.coef_names):
            rows.append({"table": spec.table, "key": spec.key, "model": spec.model, "term": term,
                         "coef_ols": float(ols.params[coef]), "p_ols": float(ols.pvalues[coef]),
                         "coef": float(rlm.params[coef]), "se": float(rlm.bse[coef]),
                         "ci_low": float(ci.loc[coef, 0]), "ci_high": float(ci.loc[coef, 1]),
                         "p": float(rlm.pvalues[coef]), "n_downweighted": int(np.sum(w < 1 - 1e-12)),
                         "min_weight": float(w[imin]),
                         "min_weight_subject": str(data.loc[labels[imin], id_column]),
                         "iterations": int(history["iteration"])})
    return pd.DataFrame(rows)


def bootstrap_figure(replicates, *, coef, intervals, title=None, xlabel=None, figsize=(5.5, 3.5)):
    """Histogram of bootstrap replicates with the estimate and several intervals.

    Parameters
    ----------
    replicates : array_like, shape (B,)
        Bootstrap replicates of one coefficient (e.g. a column of the distribution returned by
        :func:`bootstrap_ols` with ``return_distribution=True``).
    coef : float, keyword-only
        The estimate on the original sample.
    intervals : dict, keyword-only
        Label -> (low, high), e.g. ``{"OLS": (lo, hi), "percentile": ..., "BCa": ...}``; drawn as
        horizontal bars under the histogram.
    title, xlabel : str, keyword-only
    figsize : (float, float), keyword-only

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    b = np.asarray(replicates, dtype=float)
    if b.ndim != 1 or b.size < 2:
        raise ValueError("replicates must be a 1-D array with at least 2 values")
    if not isinstance(intervals, dict) or not intervals:
        raise ValueError("intervals must be a non-empty dict label -> (low, high)")
    fig, ax = plt.subplots(figsize=figsize)
    counts, _, _ = ax.hist(b, bins=40, color="0.75", edgecolor="white")
    top = counts.max()
    ax.axvline(coef, color="k", lw=1)
    ax.axvline(0.0, color="tab:red", lw=0.8, ls=":")
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")
    for i, (label, (lo, hi)) in enumerate(intervals.items()):
        y = -top * (0.08 + 0.08 * i)
        ax.plot([lo, hi], [y, y], color=colors[i % len(colors)], lw=3, solid_capstyle="butt", label=label)
    ax.set_ylim(-top * (0.12 + 0.08 * len(intervals)), top * 1.05)
    ax.set_yticks([])
    ax.set_xlabel(xlabel or "coefficient")
    ax.legend(fontsize=7, frameon=False, loc="upper right")
    ax.set_title(title or f"Bootstrap distribution (B = {b.size})", fontsize=9)
    fig.tight_layout()
    return fig
