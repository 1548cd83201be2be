"""Robust inference beside the paper's OLS: HC3 standard errors, case bootstrap, Huber regression.

* :func:`hc3_table` -- heteroskedasticity-consistent standard errors HC3 (MacKinnon & White 1985),
  V = (X'X)^-1 X' diag(e_i^2 / (1 - h_ii)^2) X (X'X)^-1, computed from the design matrix; CIs and
  P values use the t distribution with the residual degrees of freedom (as Stata's
  ``regress, vce(hc3)``), beside the classical OLS ones.
* :func:`bootstrap_ols` / :func:`bootstrap_table` -- case-resampling (pairs) bootstrap of the OLS
  coefficients: patients are drawn with replacement, the model is refitted, the bootstrap
  distribution gives percentile and BCa intervals (Efron & Tibshirani 1993, ch. 14). The BCa
  acceleration comes from the jackknife (leave-one-patient-out) coefficients, computed exactly
  from the full fit (beta_(i) = beta - (X'X)^-1 x_i e_i / (1 - h_ii)). The resamples are drawn
  with a seeded :class:`numpy.random.Generator` as ``rng.integers(0, n, (B, n))`` -- the draws
  :func:`scipy.stats.bootstrap` makes from the same generator, which the tests use to check the
  intervals against scipy. A resample whose design is rank deficient (e.g. no patient with
  enhancing lesions drawn) cannot be fitted; it is dropped and counted in ``n_failed``.
* :func:`huber_table` -- M-estimation with Huber's norm (statsmodels ``RLM``, tuning constant
  1.345, MAD scale), which down-weights patients with large residuals.

References
----------
MacKinnon JG, White H. Some heteroskedasticity-consistent covariance matrix estimators with improved
finite sample properties. J Econom 1985;29:305-25.
Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall; 1993.
Huber PJ. Robust estimation of a location parameter. Ann Math Stat 1964;35:73-101.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special, stats

from analysis.cohort.dictionary import DEFAULT_SEED
from analysis.stats.diagnostics import (REQUIRED_COLUMNS, _check_specs, check_alpha, check_data, check_design, fit_spec,
                          model_specs)

__all__ = [
    "hc3_covariance",
    "hc3_table",
    "bootstrap_ols",
    "bca_interval",
    "percentile_interval",
    "bootstrap_table",
    "huber_table",
    "bootstrap_figure",
]

#: Smallest number of bootstrap resamples accepted.
MIN_BOOTSTRAP = 20

#: Resamples fitted at once (memory: chunk * n * p floats).
_CHUNK = 500


# ----------------------------------------------------------------------------------------------
# HC3
# ----------------------------------------------------------------------------------------------
def hc3_covariance(X, y):
    """HC3 covariance matrix of the OLS coefficients.

    Parameters
    ----------
    X : array_like, shape (n, p)
        Design matrix, full column rank.
    y : array_like, shape (n,)
        Outcome.

    Returns
    -------
    numpy.ndarray, shape (p, p)
        (X'X)^-1 X' diag(e_i^2 / (1 - h_ii)^2) X (X'X)^-1.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    xtx_inv = np.linalg.inv(X.T @ X)
    beta = xtx_inv @ X.T @ y
    e = y - X @ beta
    h = np.einsum("ij,jk,ik->i", X, xtx_inv, X)
    w = (e / (1.0 - h)) ** 2
    meat = X.T @ (X * w[:, None])
    return xtx_inv @ meat @ xtx_inv


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
        p_hc3, se_ratio`` (``se_ratio`` = se_hc3 / se).
    """
    check_data(data)
    alpha = check_alpha(alpha)
    specs = _check_specs(specs)
    rows = []
    for spec in specs:
        res = fit_spec(spec, data)
        X, y = res.model.exog, res.model.endog
        cov = hc3_covariance(X, y)
        df = res.df_resid
        crit = stats.t.isf(alpha / 2, df) if use_t else stats.norm.isf(alpha / 2)
        ci = res.conf_int(alpha=alpha)
        names = list(res.model.exog_names)
        for term, coef in zip(spec.terms, spec.coef_names):
            j = names.index(coef)
            b, se_r = float(res.params[coef]), float(np.sqrt(cov[j, j]))
            t = b / se_r
            p_r = 2 * (stats.t.sf(abs(t), df) if use_t else stats.norm.sf(abs(t)))
            rows.append({"table": spec.table, "key": spec.key, "model": spec.model, "term": term,
                         "coef": b, "se": float(res.bse[coef]), "ci_low": float(ci.loc[coef, 0]),
                         "ci_high": float(ci.loc[coef, 1]), "p": float(res.pvalues[coef]),
                         "se_hc3": se_r, "ci_low_hc3": b - crit * se_r, "ci_high_hc3": b + crit * se_r,
                         "p_hc3": float(p_r), "se_ratio": se_r / float(res.bse[coef])})
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
    import statsmodels.formula.api as smf

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
    specs = _check_specs(specs)
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
def huber_table(data, *, specs=None, alpha=0.05, tuning=1.345, id_column="subject_id"):
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

    Returns
    -------
    pandas.DataFrame
        ``table, key, model, term, coef_ols, p_ols, coef, se, ci_low, ci_high, p,
        n_downweighted, min_weight, min_weight_subject`` (weights < 1 are patients whose scaled
        residual exceeds ``tuning``).
    """
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    check_data(data, columns=(*REQUIRED_COLUMNS, id_column))
    alpha = check_alpha(alpha)
    if not (isinstance(tuning, (int, float)) and tuning > 0):
        raise ValueError(f"tuning must be a positive number, got {tuning!r}")
    specs = _check_specs(model_specs(tables=("table1",)) if specs is None else specs)
    rows = []
    for spec in specs:
        ols = fit_spec(spec, data)
        rlm = smf.rlm(spec.formula, data=data, M=sm.robust.norms.HuberT(t=tuning)).fit()
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
                         "min_weight_subject": str(data.loc[labels[imin], id_column])})
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
