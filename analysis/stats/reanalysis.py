"""Exploratory re-analysis of Table 1: multiplicity, transformations, rank and effect-size views.

Each function returns a tidy DataFrame; :func:`survive_table` puts them together, one row per
Table 1 association, and says in plain words whether the paper's conclusion survives.

* :func:`multiplicity_table` -- Holm and Benjamini-Hochberg adjusted P values across the four
  Table 1 outcomes (one family per model: unadjusted, adjusted), with statsmodels' ``multipletests``.
* :func:`boxcox_profile` / :func:`boxcox_table` -- Box-Cox transformation of each outcome with
  lambda estimated by profile likelihood *in the regression model* (Box & Cox 1964), its
  likelihood-ratio CI, the paper's choice (log: lambda = 0 for lesion volume; none: lambda = 1 for
  the others) tested against it, and the model refitted on the Box-Cox scale. The marginal lambda
  (no covariates: the estimate of :func:`scipy.stats.boxcox`) is reported beside it. Lambda is the
  root of the profile score, so that its last digits are the same on every machine. The refit treats lambda as known,
  which makes its P slightly optimistic. The profile is written out because scipy's and
  statsmodels' Box-Cox estimators are marginal (they ignore the regression's covariates).
* :func:`partial_correlation` / :func:`spearman_table` -- Pearson or Spearman (rank) partial
  correlation, residual on residual, with a Fisher-z CI (SE 1/sqrt(n - 3 - k) for Pearson,
  sqrt(1.06/(n - 3 - k)) for Spearman, Fieller, Hartley & Pearson 1957) and the t-test P (df n - 2 - k).
* :func:`effect_sizes` and :func:`observed_power_table` -- standardized coefficients and partial
  correlations with CIs; the power a true correlation equal to the observed one would have at this
  n (:mod:`analysis.stats.power`, with n - k patients for k covariates). Such "observed power" is a
  function of P alone (Hoenig & Heisey 2001) and says nothing new about the data; the detectable
  correlation at 80 % power is the informative number.

References
----------
Box GEP, Cox DR. An analysis of transformations. J R Stat Soc B 1964;26:211-52.
Holm S. A simple sequentially rejective multiple test procedure. Scand J Stat 1979;6:65-70.
Benjamini Y, Hochberg Y. Controlling the false discovery rate. J R Stat Soc B 1995;57:289-300.
Fieller EC, Hartley HO, Pearson ES. Tests for rank correlation coefficients. I. Biometrika
1957;44:470-81.
Hoenig JM, Heisey DM. The abuse of power. Am Stat 2001;55:19-24.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import optimize, special, stats
from statsmodels.stats.multitest import multipletests

from analysis.stats import models
from analysis.stats import power as pw
from analysis.stats.diagnostics import check_alpha, check_data, fit_spec, model_specs

__all__ = [
    "RAW_OUTCOMES",
    "PAPER_LAMBDA",
    "multiplicity_table",
    "boxcox_profile",
    "boxcox_table",
    "partial_correlation",
    "spearman_table",
    "effect_sizes",
    "observed_power_table",
    "survive_table",
    "format_p",
]

#: Table 1 outcome -> the cohort column it is computed from.
RAW_OUTCOMES = {
    "thalamic_volume": "thalamic_volume_mm3",
    "total_gray_matter_volume": "total_gray_matter_volume_mm3",
    "cortical_thickness": "mean_cortical_thickness_mm",
    "t2_lesion_volume_log": "t2_lesion_volume_ml",
}

#: The Box-Cox lambda of the paper's choice for each outcome (log = 0, untransformed = 1).
PAPER_LAMBDA = {"thalamic_volume": 1.0, "total_gray_matter_volume": 1.0, "cortical_thickness": 1.0,
                "t2_lesion_volume_log": 0.0}

#: Covariates of the adjusted models as numeric columns (sex as a male indicator).
_COVARIATES = ("age_years", "male", "disease_duration_years", "dmt_use")

_METHOD_LABEL = {"holm": "p_holm", "fdr_bh": "p_bh"}


def format_p(p):
    """P as the paper prints it: ``.015``, ``.63``, ``<.001``."""
    if not np.isfinite(p):
        return "NA"
    if p < 0.001:
        return "<.001"
    s = f"{p:.3f}" if p < 0.01 else f"{p:.2f}" if p >= 0.1 else f"{p:.3f}"
    return s.lstrip("0") if s.startswith("0") else s


def _table1_specs(model=None):
    specs = model_specs(tables=("table1",))
    return [s for s in specs if model is None or s.model == model]


def _numeric_frame(data):
    """Cohort columns the re-analysis needs, numeric, with ``male`` = 1 for sex 'M'."""
    out = data.copy()
    out["male"] = (out["sex"].astype(str) == "M").astype(float)
    return out


# ----------------------------------------------------------------------------------------------
# multiplicity
# ----------------------------------------------------------------------------------------------
def multiplicity_table(table1, *, alpha=0.05, methods=("holm", "fdr_bh")):
    """Holm and Benjamini-Hochberg adjusted P across the Table 1 outcomes, per model family.

    Parameters
    ----------
    table1 : pandas.DataFrame
        Output of :func:`analysis.stats.models.table1` (columns ``outcome, model, coef, p`` at least).
    alpha : float, keyword-only
        Family-wise error rate (Holm) / false discovery rate (BH).
    methods : sequence of {"holm", "fdr_bh"}, keyword-only
        Adjustments (statsmodels ``multipletests`` names).

    Returns
    -------
    pandas.DataFrame
        ``outcome, model, coef, p, m`` (family size) and for each method ``p_holm`` / ``p_bh`` and
        ``significant``, ``significant_holm``, ``significant_bh`` at ``alpha``.
    """
    alpha = check_alpha(alpha)
    if not isinstance(table1, pd.DataFrame):
        raise ValueError("table1 must be the DataFrame returned by analysis.stats.models.table1")
    missing = [c for c in ("outcome", "model", "coef", "p") if c not in table1.columns]
    if missing:
        raise ValueError(f"table1: missing column(s) {missing}")
    bad = [m for m in methods if m not in _METHOD_LABEL]
    if bad or not methods:
        raise ValueError(f"methods must be a non-empty subset of {tuple(_METHOD_LABEL)}, got {methods!r}")
    p = pd.to_numeric(table1["p"], errors="coerce")
    if p.isna().any() or ((p < 0) | (p > 1)).any():
        raise ValueError("table1: column 'p' must hold P values in [0, 1]")
    frames = []
    for _model, g in table1.groupby("model", sort=False):
        g = g[["outcome", "model", "coef", "p"]].copy()
        g["m"] = len(g)
        g["significant"] = g["p"] < alpha
        for meth in methods:
            label = _METHOD_LABEL[meth]
            g[label] = multipletests(g["p"].to_numpy(float), alpha=alpha, method=meth)[1]
        for meth in methods:
            label = _METHOD_LABEL[meth]
            g[f"significant_{label[2:]}"] = g[label] < alpha
        frames.append(g)
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------------------------
# Box-Cox
# ----------------------------------------------------------------------------------------------
def boxcox_profile(data, formula, *, alpha=0.05, bounds=(-3.0, 3.0)):
    """Box-Cox lambda of a regression's outcome by profile likelihood, with its likelihood-ratio CI.

    The profile log-likelihood of lambda for y^(lambda) = (y^lambda - 1)/lambda regressed on X is
    l(lambda) = -n/2 log(RSS(lambda)/n) + (lambda - 1) sum log y. With an intercept-only model this
    is the log-likelihood that :func:`scipy.stats.boxcox` maximizes.

    Parameters
    ----------
    data : pandas.DataFrame
        Holds the formula's variables.
    formula : str
        ``"<raw outcome column> ~ <right-hand side>"``; the outcome must be strictly positive
        (e.g. ``"t2_lesion_volume_ml ~ thalamic_relative_susceptibility_ppb"``).
    alpha : float, keyword-only
        1 - confidence level of the CI {lambda : 2 (l(lambda_hat) - l(lambda)) <= chi2_1(1 - alpha)}.
    bounds : (float, float), keyword-only
        Search interval for lambda and its CI. A CI limit outside it is returned as -inf / +inf.

    Returns
    -------
    dict
        ``lambda, ci_low, ci_high, loglik, n``.
    """
    alpha = check_alpha(alpha)
    lo_b, hi_b = (float(b) for b in bounds)
    if not lo_b < hi_b:
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds!r}")
    design = smf.ols(formula, data=data)
    name, X = design.endog_names, np.asarray(design.exog, dtype=float)
    y = np.asarray(design.endog, dtype=float)
    if np.any(y <= 0):
        raise ValueError(f"outcome {name!r} must be > 0 for a Box-Cox transformation")
    n = y.size
    ys = y / np.exp(np.mean(np.log(y)))        # scale-free; lambda and t statistics are unchanged
    logs = np.log(ys)
    q, _ = np.linalg.qr(X)

    def loglik(lam):
        z = special.boxcox(ys, lam)
        r = z - q @ (q.T @ z)
        return -0.5 * n * np.log(r @ r / n) + (lam - 1.0) * logs.sum()

    def score(lam):
        """d loglik / d lambda = -n (r . dz/dlambda) / (r . r) + sum log y (r = M z, M idempotent)."""
        z = special.boxcox(ys, lam)
        r = z - q @ (q.T @ z)
        if abs(lam) < 1e-6:   # series of dz/dlambda about 0
            dz = logs**2 / 2 + lam * logs**3 / 3
        else:
            dz = (np.exp(lam * logs) * logs - z) / lam
        return -n * (r @ dz) / (r @ r) + logs.sum()

    opt = optimize.minimize_scalar(lambda lam: -loglik(lam), bounds=(lo_b, hi_b), method="bounded",
                                   options={"xatol": 1e-10})
    lam = float(opt.x)
    # a maximiser of a function pins its argument only to ~sqrt(machine eps) (the top is flat), so the
    # last digits of lambda differed between machines (3e-7); the root of the score pins it to ~1e-15
    step = 1e-3
    lo_r, hi_r = max(lo_b, lam - step), min(hi_b, lam + step)
    if score(lo_r) > 0 > score(hi_r):
        lam = float(optimize.brentq(score, lo_r, hi_r, xtol=1e-15, rtol=4 * np.finfo(float).eps))
    lmax = float(loglik(lam))
    cut = lmax - 0.5 * stats.chi2.ppf(1 - alpha, 1)
    f = lambda v: loglik(v) - cut  # noqa: E731
    ci_low = optimize.brentq(f, lo_b, lam, xtol=1e-12) if f(lo_b) < 0 else -np.inf
    ci_high = optimize.brentq(f, lam, hi_b, xtol=1e-12) if f(hi_b) < 0 else np.inf
    return {"lambda": lam, "ci_low": float(ci_low), "ci_high": float(ci_high), "loglik": lmax, "n": n}


def boxcox_table(data, *, alpha=0.05, bounds=(-3.0, 3.0)):
    """Table 1 with each outcome Box-Cox transformed at its profile-likelihood lambda.

    Parameters
    ----------
    data : pandas.DataFrame
        A validated cohort.
    alpha : float, keyword-only
        1 - confidence level of the lambda CIs; significance level of ``same_conclusion``.
    bounds : (float, float), keyword-only
        Search interval for lambda (see :func:`boxcox_profile`).

    Returns
    -------
    pandas.DataFrame
        One row per Table 1 outcome and model: ``outcome, model, raw_column, lambda, lambda_ci_low,
        lambda_ci_high, paper_lambda, paper_lambda_in_ci, lambda_marginal, lambda_marginal_ci_low,
        lambda_marginal_ci_high, t_boxcox, p_boxcox, coef_paper, p_paper, same_conclusion``.
        ``t_boxcox``/``p_boxcox`` are the susceptibility coefficient's t and P on the Box-Cox
        scale (its sign is comparable with the paper's because the transformation is increasing);
        ``same_conclusion`` is True when both P are on the same side of ``alpha`` and, if
        significant, the signs agree.
    """
    check_data(data)
    alpha = check_alpha(alpha)
    rows = []
    for spec in _table1_specs():
        raw = RAW_OUTCOMES[spec.key]
        rhs = spec.formula.split("~", 1)[1].strip()
        prof = boxcox_profile(data, f"{raw} ~ {rhs}", alpha=alpha, bounds=bounds)
        x = data[raw].to_numpy(float)
        marginal = boxcox_profile(data, f"{raw} ~ 1", alpha=alpha, bounds=bounds)   # scipy.stats.boxcox's lambda
        lam_m, lo_m, hi_m = marginal["lambda"], marginal["ci_low"], marginal["ci_high"]
        d = data.copy()
        d["boxcox_outcome"] = special.boxcox(x / np.exp(np.mean(np.log(x))), prof["lambda"])
        bc = fit_spec(dataclasses.replace(spec, formula=f"boxcox_outcome ~ {rhs}"), d)
        paper = fit_spec(spec, data)
        term = models.SUSCEPTIBILITY
        p_bc, p_pa = float(bc.pvalues[term]), float(paper.pvalues[term])
        same = (p_bc < alpha) == (p_pa < alpha) and (
            p_pa >= alpha or np.sign(bc.params[term]) == np.sign(paper.params[term]))
        lam_paper = PAPER_LAMBDA[spec.key]
        rows.append({"outcome": spec.key, "model": spec.model, "raw_column": raw,
                     "lambda": prof["lambda"], "lambda_ci_low": prof["ci_low"], "lambda_ci_high": prof["ci_high"],
                     "paper_lambda": lam_paper,
                     "paper_lambda_in_ci": bool(prof["ci_low"] <= lam_paper <= prof["ci_high"]),
                     "lambda_marginal": float(lam_m), "lambda_marginal_ci_low": float(lo_m),
                     "lambda_marginal_ci_high": float(hi_m),
                     "t_boxcox": float(bc.tvalues[term]), "p_boxcox": p_bc,
                     "coef_paper": float(paper.params[term]), "p_paper": p_pa, "same_conclusion": bool(same)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# correlations
# ----------------------------------------------------------------------------------------------
def partial_correlation(data, *, x, y, covariates=(), method="pearson", alpha=0.05):
    """Partial correlation of ``x`` and ``y`` given ``covariates``, residual on residual.

    Parameters
    ----------
    data : pandas.DataFrame
        Numeric columns ``x``, ``y`` and ``covariates`` (no missing values).
    x, y : str, keyword-only
        Column names.
    covariates : sequence of str, keyword-only
        Columns partialled out (empty: the ordinary correlation).
    method : {"pearson", "spearman"}, keyword-only
        ``"spearman"`` ranks every column first (average ranks for ties).
    alpha : float, keyword-only
        1 - confidence level.

    Returns
    -------
    pandas.DataFrame, shape (1, 9)
        ``x, y, method, n, k, r, ci_low, ci_high, p``: r is the correlation of the residuals of x
        and y regressed on the covariates (with an intercept); P from t = r sqrt((n - 2 - k)/(1 - r^2))
        with n - 2 - k df; CI tanh(atanh r -/+ z_{1-alpha/2} SE) with SE = 1/sqrt(n - 3 - k)
        (Pearson) or sqrt(1.06/(n - 3 - k)) (Spearman).
    """
    alpha = check_alpha(alpha)
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    cols = [x, y, *covariates]
    for c in cols:
        if c not in data.columns:
            raise ValueError(f"column {c!r} not in data")
        if not pd.api.types.is_numeric_dtype(data[c]) or data[c].isna().any():
            raise ValueError(f"column {c!r} must be numeric without missing values")
    if len(set(cols)) != len(cols):
        raise ValueError(f"x, y and covariates must be distinct columns, got {cols}")
    d = data[cols].astype(float)
    if method == "spearman":
        d = d.rank(method="average")
    n, k = len(d), len(covariates)
    if n - 3 - k < 1:
        raise ValueError(f"need n > k + 3 (n = {n}, k = {k} covariates)")
    Z = np.column_stack([np.ones(n), d[covariates].to_numpy()]) if k else np.ones((n, 1))
    q, _ = np.linalg.qr(Z)
    rx = d[x].to_numpy() - q @ (q.T @ d[x].to_numpy())
    ry = d[y].to_numpy() - q @ (q.T @ d[y].to_numpy())
    r = float(rx @ ry / np.sqrt((rx @ rx) * (ry @ ry)))
    df = n - 2 - k
    t = r * np.sqrt(df / max(1.0 - r * r, 1e-300))
    p = float(2 * stats.t.sf(abs(t), df))
    se = np.sqrt((1.06 if method == "spearman" else 1.0) / (n - 3 - k))
    zc = stats.norm.isf(alpha / 2)
    lo, hi = np.tanh(np.arctanh(r) - zc * se), np.tanh(np.arctanh(r) + zc * se)
    return pd.DataFrame([{"x": x, "y": y, "method": method, "n": n, "k": k, "r": r,
                          "ci_low": float(lo), "ci_high": float(hi), "p": p}])


def _outcome_frame(data):
    """Numeric cohort with the Table 1 outcomes as modelled (log lesion volume) under their keys."""
    d = _numeric_frame(data)
    for key, raw in RAW_OUTCOMES.items():
        d[key] = np.log(d[raw]) if key == "t2_lesion_volume_log" else d[raw].astype(float)
    return d


def spearman_table(data, *, alpha=0.05):
    """Spearman correlation (unadjusted) and partial Spearman correlation (adjusted) for Table 1.

    Ranks are invariant to any increasing transformation, so the lesion association is the same
    whether lesion volume is logged, Box-Cox transformed or raw.

    Parameters
    ----------
    data : pandas.DataFrame
        A validated cohort.
    alpha : float, keyword-only
        1 - confidence level.

    Returns
    -------
    pandas.DataFrame
        ``outcome, model, n, k, rho, ci_low, ci_high, p`` (see :func:`partial_correlation`; the
        adjusted model partials out the ranks of age, male sex, disease duration and DMT use).
    """
    check_data(data)
    d = _outcome_frame(data)
    rows = []
    for spec in _table1_specs():
        cov = _COVARIATES if spec.model == "adjusted" else ()
        r = partial_correlation(d, x=models.SUSCEPTIBILITY, y=spec.key, covariates=cov,
                                method="spearman", alpha=alpha).iloc[0]
        rows.append({"outcome": spec.key, "model": spec.model, "n": int(r["n"]), "k": int(r["k"]),
                     "rho": r["r"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "p": r["p"]})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# effect sizes and power
# ----------------------------------------------------------------------------------------------
def effect_sizes(data, *, alpha=0.05):
    """Standardized coefficients and (partial) correlations of the Table 1 associations.

    Parameters
    ----------
    data : pandas.DataFrame
        A validated cohort.
    alpha : float, keyword-only
        1 - confidence level.

    Returns
    -------
    pandas.DataFrame
        ``outcome, model, n, k, coef, ci_low, ci_high, p, sd_x, sd_y, std_coef, std_ci_low,
        std_ci_high, partial_r, partial_r_ci_low, partial_r_ci_high``. ``std_coef`` = coef *
        SD(susceptibility) / SD(outcome as modelled): the change in outcome SDs per SD of
        susceptibility, with the OLS CI scaled the same way (sample SDs treated as fixed).
        ``partial_r`` = t / sqrt(t^2 + df_resid), the Pearson correlation of susceptibility and
        outcome with the k covariates partialled out (k = 0: the ordinary r), with a Fisher-z CI.
    """
    check_data(data)
    alpha = check_alpha(alpha)
    d = _outcome_frame(data)
    sd_x = float(d[models.SUSCEPTIBILITY].std(ddof=1))
    rows = []
    for spec in _table1_specs():
        res = fit_spec(spec, data)
        term = models.SUSCEPTIBILITY
        ci = res.conf_int(alpha=alpha).loc[term]
        sd_y = float(d[spec.key].std(ddof=1))
        k = 4 if spec.model == "adjusted" else 0
        pr = partial_correlation(d, x=term, y=spec.key, covariates=_COVARIATES if k else (),
                                 alpha=alpha).iloc[0]
        f = sd_x / sd_y
        rows.append({"outcome": spec.key, "model": spec.model, "n": int(res.nobs), "k": k,
                     "coef": float(res.params[term]), "ci_low": float(ci.iloc[0]), "ci_high": float(ci.iloc[1]),
                     "p": float(res.pvalues[term]), "sd_x": sd_x, "sd_y": sd_y,
                     "std_coef": float(res.params[term]) * f, "std_ci_low": float(ci.iloc[0]) * f,
                     "std_ci_high": float(ci.iloc[1]) * f, "partial_r": float(pr["r"]),
                     "partial_r_ci_low": float(pr["ci_low"]), "partial_r_ci_high": float(pr["ci_high"])})
    return pd.DataFrame(rows)


def observed_power_table(effects, *, alpha=0.05, power=0.80, outcomes=None, methods=None):
    """Power that a true correlation equal to the observed (partial) r had, and the detectable r.

    Parameters
    ----------
    effects : pandas.DataFrame
        Output of :func:`effect_sizes`.
    alpha : float, keyword-only
        Two-sided significance level.
    power : float, keyword-only
        Target power of ``detectable_r``.
    outcomes : sequence of str, keyword-only
        Restrict to these Table 1 outcomes (default: all rows).
    methods : sequence of str, keyword-only
        Methods of :mod:`analysis.stats.power` (default: all three).

    Returns
    -------
    pandas.DataFrame
        ``outcome, model, method, partial_r, n_effective, power_at_observed_r, detectable_r``;
        ``n_effective`` = n - k (a partial correlation with k covariates is tested like an
        ordinary one on n - k pairs).
    """
    alpha = check_alpha(alpha)
    methods = pw.METHODS if methods is None else tuple(methods)
    need = {"outcome", "model", "n", "k", "partial_r"}
    if not isinstance(effects, pd.DataFrame) or need - set(effects.columns):
        raise ValueError(f"effects must be the output of effect_sizes(); needs columns {sorted(need)}")
    e = effects if outcomes is None else effects[effects["outcome"].isin(list(outcomes))]
    if e.empty:
        raise ValueError(f"no rows for outcomes {outcomes!r}")
    rows = []
    for _, r in e.iterrows():
        n_eff = int(r["n"] - r["k"])
        for m in methods:
            rows.append({"outcome": r["outcome"], "model": r["model"], "method": m,
                         "partial_r": float(r["partial_r"]), "n_effective": n_eff,
                         "power_at_observed_r": pw.power_correlation(float(r["partial_r"]), n_eff,
                                                                     alpha=alpha, method=m),
                         "detectable_r": pw.detectable_r(n_eff, alpha=alpha, power=power, method=m)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# does the conclusion survive?
# ----------------------------------------------------------------------------------------------
def _pick(df, name, cols, *, key="outcome", model="adjusted", table=True):
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name} must be a DataFrame")
    sel = df
    if "table" in df.columns and table:
        sel = sel[sel["table"] == "table1"]
    kcol = "key" if "key" in sel.columns else key
    missing = [c for c in (kcol, "model", *cols) if c not in sel.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}")
    sel = sel[sel["model"] == model].set_index(kcol)
    absent = [o for o in models.TABLE1_OUTCOMES if o not in sel.index]
    if absent:
        raise ValueError(f"{name}: no {model} row for Table 1 outcome(s) {absent}")
    return sel.loc[list(models.TABLE1_OUTCOMES), list(cols)]


def survive_table(*, hc3, bootstrap, multiplicity, boxcox, spearman, huber, influence=None, model="adjusted",
                  alpha=0.05):
    """Does each Table 1 conclusion survive the re-analysis? One row per association.

    Parameters
    ----------
    hc3 : pandas.DataFrame
        :func:`analysis.stats.robust.hc3_table` (Table 1 rows used).
    bootstrap : pandas.DataFrame
        :func:`analysis.stats.robust.bootstrap_table`.
    multiplicity : pandas.DataFrame
        :func:`multiplicity_table`.
    boxcox : pandas.DataFrame
        :func:`boxcox_table`.
    spearman : pandas.DataFrame
        :func:`spearman_table`.
    huber : pandas.DataFrame
        :func:`analysis.stats.robust.huber_table`.
    influence : pandas.DataFrame, optional
        :func:`analysis.stats.diagnostics.influence_summary`; adds an eighth check, the refit without the
        patients flagged influential (``p_without_influential``, ``influence_agrees``).
    model : {"adjusted", "unadjusted"}, keyword-only
        Which Table 1 model (the paper's conclusions rest on the adjusted one).
    alpha : float, keyword-only
        Significance level of every check.

    Returns
    -------
    pandas.DataFrame
        ``outcome, model, coef, ci_low, ci_high, p_ols, p_hc3, bca_low, bca_high, bca_excludes_0,
        p_holm, p_bh, p_boxcox, boxcox_agrees, rho_spearman, p_spearman, spearman_agrees, p_huber,
        huber_agrees, checks_agreeing, verdict``. An alternative *agrees* when it reaches the same
        decision at ``alpha`` as OLS and, when significant, the same sign; ``checks_agreeing``
        counts the seven checks (HC3, BCa, Holm, BH, Box-Cox, Spearman, Huber) that agree, eight
        with ``influence``.
    """
    alpha = check_alpha(alpha)
    if model not in ("adjusted", "unadjusted"):
        raise ValueError(f"model must be 'adjusted' or 'unadjusted', got {model!r}")
    h = _pick(hc3, "hc3", ["coef", "ci_low", "ci_high", "p", "p_hc3"], model=model)
    b = _pick(bootstrap, "bootstrap", ["bca_low", "bca_high", "bca_excludes_0"], model=model)
    m = _pick(multiplicity, "multiplicity", ["p_holm", "p_bh"], model=model)
    bc = _pick(boxcox, "boxcox", ["p_boxcox", "t_boxcox"], model=model)
    sp = _pick(spearman, "spearman", ["rho", "p"], model=model)
    hu = _pick(huber, "huber", ["coef", "p"], model=model)
    inf = None if influence is None else _pick(influence, "influence", ["coef_without", "p_without"], model=model)
    rows = []
    for o in models.TABLE1_OUTCOMES:
        coef, p = float(h.loc[o, "coef"]), float(h.loc[o, "p"])
        sig, sign = p < alpha, np.sign(coef)

        def agrees(p_alt, est_alt, sig=sig, sign=sign):
            return bool((p_alt < alpha) == sig and (not sig or np.sign(est_alt) == sign))

        checks = {
            "HC3 standard errors": (float(h.loc[o, "p_hc3"]) < alpha) == sig,
            "bootstrap BCa interval": bool(b.loc[o, "bca_excludes_0"]) == sig and (
                not sig or np.sign(b.loc[o, "bca_low"]) == sign),
            "Holm correction": (float(m.loc[o, "p_holm"]) < alpha) == sig,
            "Benjamini-Hochberg correction": (float(m.loc[o, "p_bh"]) < alpha) == sig,
            "Box-Cox outcome": agrees(float(bc.loc[o, "p_boxcox"]), float(bc.loc[o, "t_boxcox"])),
            "rank (Spearman) correlation": agrees(float(sp.loc[o, "p"]), float(sp.loc[o, "rho"])),
            "Huber robust regression": agrees(float(hu.loc[o, "p"]), float(hu.loc[o, "coef"])),
        }
        if inf is not None:
            checks["refit without influential patients"] = agrees(float(inf.loc[o, "p_without"]),
                                                                   float(inf.loc[o, "coef_without"]))
        pvals = {"HC3 standard errors": h.loc[o, "p_hc3"], "Holm correction": m.loc[o, "p_holm"],
                 "Benjamini-Hochberg correction": m.loc[o, "p_bh"], "Box-Cox outcome": bc.loc[o, "p_boxcox"],
                 "rank (Spearman) correlation": sp.loc[o, "p"], "Huber robust regression": hu.loc[o, "p"]}
        extra = {}
        if inf is not None:
            pvals["refit without influential patients"] = inf.loc[o, "p_without"]
            extra = {"p_without_influential": float(inf.loc[o, "p_without"]),
                     "influence_agrees": checks["refit without influential patients"]}
        rows.append({
            "outcome": o, "model": model, "coef": coef, "ci_low": float(h.loc[o, "ci_low"]),
            "ci_high": float(h.loc[o, "ci_high"]), "p_ols": p, "p_hc3": float(h.loc[o, "p_hc3"]),
            "bca_low": float(b.loc[o, "bca_low"]), "bca_high": float(b.loc[o, "bca_high"]),
            "bca_excludes_0": bool(b.loc[o, "bca_excludes_0"]),
            "p_holm": float(m.loc[o, "p_holm"]), "p_bh": float(m.loc[o, "p_bh"]),
            "p_boxcox": float(bc.loc[o, "p_boxcox"]), "boxcox_agrees": checks["Box-Cox outcome"],
            "rho_spearman": float(sp.loc[o, "rho"]), "p_spearman": float(sp.loc[o, "p"]),
            "spearman_agrees": checks["rank (Spearman) correlation"],
            "p_huber": float(hu.loc[o, "p"]), "huber_agrees": checks["Huber robust regression"], **extra,
            "checks_agreeing": int(sum(checks.values())),
            "verdict": _verdict(sig, p, checks, pvals),
        })
    return pd.DataFrame(rows)


def _verdict(sig, p, checks, pvals):
    def named(names):
        parts = [f"{c} (P {format_p(float(pvals[c]))})" if c in pvals else c for c in names]
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]

    failed = [c for c, ok in checks.items() if not ok]
    multiplicity = {"Holm correction", "Benjamini-Hochberg correction"}
    if sig:
        if not failed:
            return f"Survives: significant by OLS (P {format_p(p)}) and by every check."
        if set(failed) <= multiplicity:
            return (f"Robust to the error model, outliers and the transformation, but not to multiplicity: "
                    f"significant by OLS (P {format_p(p)}), not after {named(failed)} across the four "
                    f"Table 1 outcomes. Treat as a hypothesis, not a finding.")
        return (f"Fragile: significant by OLS (P {format_p(p)}) but not by {named(failed)}.")
    if not failed:
        return f"No association: not significant by OLS (P {format_p(p)}) nor by any alternative."
    return (f"No association by OLS (P {format_p(p)}); only {named(failed)} "
            f"point{'s' if len(failed) == 1 else ''} to one -- weak evidence at most.")
