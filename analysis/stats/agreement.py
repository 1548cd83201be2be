"""Agreement between a measurement and a reference: Bland–Altman, ICC, and the lesion model refitted.

Used by the imaging-cohort notebook (``04-imaging-cohort``) to compare what the imaging pipeline
*measures* on simulated head phantoms with the values the phantoms were *built* from (the
calibrated cohort), but nothing here is specific to phantoms: give any paired measurements.

Bland–Altman (Bland & Altman 1986, 1999)
----------------------------------------
Differences ``d = measured − reference``; bias = mean(d), SD of d with n − 1, limits of agreement
(LoA) = bias ± z·SD with z = Φ⁻¹(1 − α/2) (1.96 for 95 %). Confidence intervals:

* bias: t-based, bias ± t(1 − α/2, n − 1)·SD/√n;
* LoA, ``loa_ci="approximate"`` (Bland & Altman 1986): LoA ± t(1 − α/2, n − 1)·SD·√(1/n + z²/(2(n − 1)))
  (the variance of bias + z·SD is SD²/n + z²SD²/(2(n − 1)); Bland & Altman's rounded
  √(3/n)·SD is the value at z = 2 for large n);
* LoA, ``loa_ci="exact"`` (Carkeet 2015): bias + SD·q/√n with q the α/2 and 1 − α/2 quantiles of
  the non-central t distribution with n − 1 degrees of freedom and non-centrality z·√n (for the
  upper limit; the lower is symmetric). These are exact under normal differences.

Intraclass correlation (Shrout & Fleiss 1979; McGraw & Wong 1996)
-----------------------------------------------------------------
From the two-way ANOVA of an n × k table (n subjects, k raters or methods, no missing cells):
mean squares of rows ``MSR`` (subjects, n − 1 df), columns ``MSC`` (raters, k − 1 df), error
``MSE`` ((n − 1)(k − 1) df) and, for the one-way model, within-subject ``MSW`` (n(k − 1) df).

* ``"1,1"`` ICC(1,1), one-way random: (MSR − MSW) / (MSR + (k − 1)MSW);
* ``"A,1"`` ICC(A,1) = Shrout & Fleiss ICC(2,1), two-way, **absolute agreement**, single measure:
  (MSR − MSE) / (MSR + (k − 1)MSE + k(MSC − MSE)/n);
* ``"C,1"`` ICC(C,1) = ICC(3,1), two-way, consistency: (MSR − MSE) / (MSR + (k − 1)MSE);
* ``"1,k"``, ``"A,k"``, ``"C,k"``: the mean of k measurements (Spearman–Brown of the single-measure
  value, applied to the estimate and to both confidence bounds).

Confidence intervals are F-based: for ICC(1,1) and ICC(C,1) from F = MSR/MSW and F = MSR/MSE
with their exact F distributions; for ICC(A,1) with Satterthwaite's approximate denominator
degrees of freedom ν (McGraw & Wong 1996, Table 7, case 2A):

    a = k·ρ / (n(1 − ρ)),  b = 1 + k·ρ(n − 1) / (n(1 − ρ))      (ρ = the ICC(A,1) estimate)
    ν = (a·MSC + b·MSE)² / ((a·MSC)²/(k − 1) + (b·MSE)²/((n − 1)(k − 1)))
    F* = F(1 − α/2; n − 1, ν),  F_* = F(1 − α/2; ν, n − 1)
    lower = n(MSR − F*·MSE) / (F*(k·MSC + (kn − k − n)MSE) + n·MSR)
    upper = n(F_*·MSR − MSE) / (k·MSC + (kn − k − n)MSE + n·F_*·MSR)

Why written out: statsmodels' ``mean_diff_plot`` draws the Bland–Altman limits without confidence
intervals (neither the approximate nor the exact ones above), and neither statsmodels nor scipy
computes intraclass correlations; the two-way ANOVA behind them is checked against statsmodels'
``anova_lm`` in the tests.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from analysis.stats._validation import check_alpha
from analysis.stats.models import SUSCEPTIBILITY, coefficient_row, fit_ols, table1_formula

__all__ = [
    "ICC_KINDS", "bland_altman", "icc", "two_way_anova", "agreement_table",
    "bland_altman_plot", "agreement_scatter", "lesion_model_comparison",
]

#: ICC forms: McGraw & Wong's name -> (Shrout & Fleiss' name, description).
ICC_KINDS = {
    "1,1": ("ICC(1,1)", "one-way random effects, single measure"),
    "A,1": ("ICC(2,1)", "two-way random effects, absolute agreement, single measure"),
    "C,1": ("ICC(3,1)", "two-way mixed effects, consistency, single measure"),
    "1,k": ("ICC(1,k)", "one-way random effects, mean of k measures"),
    "A,k": ("ICC(2,k)", "two-way random effects, absolute agreement, mean of k measures"),
    "C,k": ("ICC(3,k)", "two-way mixed effects, consistency, mean of k measures"),
}


def _paired(measured, reference, what="measured/reference"):
    x = np.asarray(measured, dtype=float).ravel()
    y = np.asarray(reference, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{what}: measured has {x.size} values, reference {y.size}; they must be paired")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError(f"{what}: non-finite values (drop failed subjects first)")
    if x.size < 3:
        raise ValueError(f"{what}: need at least 3 pairs, got {x.size}")
    return x, y


# ---------------------------------------------------------------------------------------------
# Bland–Altman
# ---------------------------------------------------------------------------------------------

def bland_altman(measured, reference, *, alpha=0.05, loa_ci="approximate"):
    """Bland–Altman statistics of paired measurements (see the module docstring).

    Parameters
    ----------
    measured, reference : array_like, shape (n,)
        Paired values in the same unit (n ≥ 3, finite). Differences are measured − reference.
    alpha : float
        1 − confidence level, for the limits (z = Φ⁻¹(1 − α/2)) and for every CI.
    loa_ci : {'approximate', 'exact'}
        CI of the limits of agreement: Bland & Altman's normal approximation or Carkeet's exact
        non-central t interval.

    Returns
    -------
    dict
        ``n``, ``bias`` (mean difference), ``bias_ci_low``, ``bias_ci_high``, ``sd_diff``
        (SD of the differences, n − 1), ``loa_low``, ``loa_high``, ``loa_low_ci_low``,
        ``loa_low_ci_high``, ``loa_high_ci_low``, ``loa_high_ci_high``, ``z``, ``alpha``,
        ``loa_ci`` (method), ``mean_abs_diff``, ``max_abs_diff`` — all in the unit of the data.
    """
    alpha = check_alpha(alpha)
    if loa_ci not in ("approximate", "exact"):
        raise ValueError(f"loa_ci must be 'approximate' or 'exact', got {loa_ci!r}")
    x, y = _paired(measured, reference)
    d = x - y
    n = d.size
    bias = float(d.mean())
    sd = float(d.std(ddof=1))
    z = float(stats.norm.ppf(1 - alpha / 2))
    t = float(stats.t.ppf(1 - alpha / 2, n - 1))
    se_bias = sd / np.sqrt(n)
    lo, hi = bias - z * sd, bias + z * sd
    if loa_ci == "approximate":
        half = t * sd * np.sqrt(1.0 / n + z ** 2 / (2.0 * (n - 1)))
        lo_ci = (lo - half, lo + half)
        hi_ci = (hi - half, hi + half)
    else:
        nc = z * np.sqrt(n)
        q_lo, q_hi = stats.nct.ppf([alpha / 2, 1 - alpha / 2], n - 1, nc)
        hi_ci = (bias + sd * q_lo / np.sqrt(n), bias + sd * q_hi / np.sqrt(n))
        lo_ci = (bias - sd * q_hi / np.sqrt(n), bias - sd * q_lo / np.sqrt(n))
    return {
        "n": int(n), "bias": bias, "bias_ci_low": bias - t * se_bias, "bias_ci_high": bias + t * se_bias,
        "sd_diff": sd, "loa_low": lo, "loa_high": hi,
        "loa_low_ci_low": float(lo_ci[0]), "loa_low_ci_high": float(lo_ci[1]),
        "loa_high_ci_low": float(hi_ci[0]), "loa_high_ci_high": float(hi_ci[1]),
        "z": z, "alpha": alpha, "loa_ci": loa_ci,
        "mean_abs_diff": float(np.abs(d).mean()), "max_abs_diff": float(np.abs(d).max()),
    }


# ---------------------------------------------------------------------------------------------
# ICC
# ---------------------------------------------------------------------------------------------

def two_way_anova(ratings):
    """Mean squares of an n × k table (subjects × raters) without replication.

    Parameters
    ----------
    ratings : array_like, shape (n, k)
        n ≥ 2 subjects (rows) rated by k ≥ 2 raters or methods (columns); finite, no missing cells.

    Returns
    -------
    dict
        ``n``, ``k``, ``ms_rows`` (subjects), ``ms_cols`` (raters), ``ms_error`` (residual of the
        two-way model), ``ms_within`` (within subjects, one-way model), with their degrees of
        freedom ``df_rows``, ``df_cols``, ``df_error``, ``df_within``.
    """
    r = np.asarray(ratings, dtype=float)
    if r.ndim != 2 or r.shape[0] < 2 or r.shape[1] < 2:
        raise ValueError(f"ratings must be an (n, k) table with n >= 2 subjects and k >= 2 raters, "
                         f"got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("ratings contain missing or non-finite values (complete tables only)")
    n, k = r.shape
    grand = r.mean()
    ss_total = float(((r - grand) ** 2).sum())
    ss_rows = float(k * ((r.mean(axis=1) - grand) ** 2).sum())
    ss_cols = float(n * ((r.mean(axis=0) - grand) ** 2).sum())
    ss_error = ss_total - ss_rows - ss_cols
    df_rows, df_cols, df_error, df_within = n - 1, k - 1, (n - 1) * (k - 1), n * (k - 1)
    return {"n": n, "k": k,
            "ms_rows": ss_rows / df_rows, "ms_cols": ss_cols / df_cols,
            "ms_error": max(ss_error, 0.0) / df_error, "ms_within": (ss_total - ss_rows) / df_within,
            "df_rows": df_rows, "df_cols": df_cols, "df_error": df_error, "df_within": df_within}


def _spearman_brown(rho, k):
    return k * rho / (1.0 + (k - 1.0) * rho)


def icc(ratings, *, kind="A,1", alpha=0.05):
    """Intraclass correlation with its F-based confidence interval (see the module docstring).

    Parameters
    ----------
    ratings : array_like, shape (n, k)
        Subjects × raters (for agreement of a measurement with a reference: k = 2 columns,
        ``np.column_stack([measured, reference])``).
    kind : {'A,1', 'C,1', '1,1', 'A,k', 'C,k', '1,k'}
        McGraw & Wong's notation; 'A,1' is Shrout & Fleiss' ICC(2,1), 'C,1' their ICC(3,1).
    alpha : float
        1 − confidence level of the interval.

    Returns
    -------
    dict
        ``kind``, ``name`` (Shrout & Fleiss), ``icc``, ``ci_low``, ``ci_high``, ``f`` (F statistic
        of H0: ICC = 0), ``df1``, ``df2`` (its degrees of freedom), ``p`` (one-sided), ``n``,
        ``k``, and the mean squares ``ms_rows``, ``ms_cols``, ``ms_error``, ``ms_within``.
    """
    alpha = check_alpha(alpha)
    if kind not in ICC_KINDS:
        raise ValueError(f"kind must be one of {list(ICC_KINDS)}, got {kind!r}")
    a = two_way_anova(ratings)
    n, k = a["n"], a["k"]
    msr, msc, mse, msw = a["ms_rows"], a["ms_cols"], a["ms_error"], a["ms_within"]
    single = kind[0] + ",1"
    with np.errstate(divide="ignore", invalid="ignore"):
        if single in ("1,1", "C,1"):
            # one-way (1,1) or consistency (C,1): ratio of the rows' mean square to the within
            # or error mean square, with its exact F interval
            ms = msw if single == "1,1" else mse
            rho = (msr - ms) / (msr + (k - 1) * ms)
            f, df1, df2 = msr / ms, a["df_rows"], a["df_within" if single == "1,1" else "df_error"]
            f_lo = f / stats.f.ppf(1 - alpha / 2, df1, df2)
            f_hi = f * stats.f.ppf(1 - alpha / 2, df2, df1)
            lo, hi = (f_lo - 1) / (f_lo + k - 1), (f_hi - 1) / (f_hi + k - 1)
        else:  # A,1
            rho = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
            f, df1, df2 = msr / mse, a["df_rows"], a["df_error"]
            aa = k * rho / (n * (1 - rho))
            bb = 1 + k * rho * (n - 1) / (n * (1 - rho))
            nu = (aa * msc + bb * mse) ** 2 / ((aa * msc) ** 2 / (k - 1) + (bb * mse) ** 2 / ((n - 1) * (k - 1)))
            f_star = stats.f.ppf(1 - alpha / 2, n - 1, nu)
            f_sub = stats.f.ppf(1 - alpha / 2, nu, n - 1)
            c = k * msc + (k * n - k - n) * mse
            lo = n * (msr - f_star * mse) / (f_star * c + n * msr)
            hi = n * (f_sub * msr - mse) / (c + n * f_sub * msr)
        p = float(stats.f.sf(f, df1, df2))
    if kind.endswith(",k"):
        rho, lo, hi = (_spearman_brown(v, k) for v in (rho, lo, hi))
    return {"kind": kind, "name": ICC_KINDS[kind][0], "icc": float(rho), "ci_low": float(lo),
            "ci_high": float(hi), "f": float(f), "df1": int(df1), "df2": int(df2), "p": p,
            "n": n, "k": k, "ms_rows": msr, "ms_cols": msc, "ms_error": mse, "ms_within": msw}


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

def agreement_table(data, pairs, *, alpha=0.05, loa_ci="approximate", units=None):
    """Bland–Altman and ICC(A,1) for several measured/reference column pairs (one row per pair).

    Parameters
    ----------
    data : pandas.DataFrame
        One row per subject.
    pairs : mapping of str -> (str, str)
        ``{variable: (measured_column, reference_column)}``.
    alpha, loa_ci : see :func:`bland_altman`.
    units : mapping of str -> str, optional
        Unit of each variable (for the ``unit`` column).

    Returns
    -------
    pandas.DataFrame
        Columns ``variable, unit, n, reference_mean, reference_sd, measured_mean, measured_sd``,
        the :func:`bland_altman` statistics (``bias`` … ``loa_high_ci_high``, in the unit of the
        variable), ``icc_a1, icc_a1_ci_low, icc_a1_ci_high`` (ICC(A,1)), ``icc_c1`` (ICC(C,1),
        consistency) and ``pearson_r``.
    """
    rows = []
    for variable, (mcol, rcol) in pairs.items():
        for col in (mcol, rcol):
            if col not in data.columns:
                raise ValueError(f"agreement_table: column {col!r} (variable {variable!r}) not in the data")
        x, y = _paired(data[mcol], data[rcol], what=variable)
        ba = bland_altman(x, y, alpha=alpha, loa_ci=loa_ci)
        ia = icc(np.column_stack([x, y]), kind="A,1", alpha=alpha)
        ic = icc(np.column_stack([x, y]), kind="C,1", alpha=alpha)
        rows.append({
            "variable": variable, "unit": (units or {}).get(variable, ""), "n": ba["n"],
            "reference_mean": float(y.mean()), "reference_sd": float(y.std(ddof=1)),
            "measured_mean": float(x.mean()), "measured_sd": float(x.std(ddof=1)),
            **{key: ba[key] for key in ("bias", "bias_ci_low", "bias_ci_high", "sd_diff", "loa_low",
                                        "loa_high", "loa_low_ci_low", "loa_low_ci_high",
                                        "loa_high_ci_low", "loa_high_ci_high", "mean_abs_diff",
                                        "max_abs_diff")},
            "icc_a1": ia["icc"], "icc_a1_ci_low": ia["ci_low"], "icc_a1_ci_high": ia["ci_high"],
            "icc_c1": ic["icc"], "pearson_r": float(np.corrcoef(x, y)[0, 1]),
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

def bland_altman_plot(ax, measured, reference, *, stats_=None, x_axis="mean", unit="", title=None,
                      alpha=0.05, color="C0"):
    """Draw a Bland–Altman plot on ``ax``: differences against the mean (or the reference).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    measured, reference : array_like, shape (n,)
    stats_ : dict, optional
        Output of :func:`bland_altman` for these data (computed if not given).
    x_axis : {'mean', 'reference'}
        Abscissa: mean of the two (Bland & Altman) or the reference value (preferable when the
        reference is the truth, as for phantoms).
    unit : str
        Unit for the axis labels.
    title : str, optional
    alpha : float
        As in :func:`bland_altman` when ``stats_`` is computed here.
    color : str

    Returns
    -------
    matplotlib.axes.Axes
    """
    if x_axis not in ("mean", "reference"):
        raise ValueError(f"x_axis must be 'mean' or 'reference', got {x_axis!r}")
    x, y = _paired(measured, reference)
    s = stats_ if stats_ is not None else bland_altman(x, y, alpha=alpha)
    xs = (x + y) / 2 if x_axis == "mean" else y
    u = f" ({unit})" if unit else ""
    ax.scatter(xs, x - y, s=18, color=color, alpha=0.8, edgecolor="none")
    level = round(100 * (1 - s["alpha"]))
    # the lines are labelled in the right margin, where they cannot hide points
    for val, lo, hi, style, label in (
            (s["bias"], s["bias_ci_low"], s["bias_ci_high"], "-", f"bias {s['bias']:+.3g}"),
            (s["loa_low"], s["loa_low_ci_low"], s["loa_low_ci_high"], "--", f"LoA {s['loa_low']:.3g}"),
            (s["loa_high"], s["loa_high_ci_low"], s["loa_high_ci_high"], "--", f"LoA {s['loa_high']:.3g}")):
        ax.axhline(val, color="k", linestyle=style, linewidth=1, label=label)
        ax.axhspan(lo, hi, color="0.5", alpha=0.15, linewidth=0)
        ax.text(1.01, val, label, transform=ax.get_yaxis_transform(), va="center", ha="left", fontsize="small")
    ax.axhline(0.0, color="0.6", linewidth=0.6, linestyle=":")
    ax.set_xlabel(("mean of measured and reference" if x_axis == "mean" else "reference") + u)
    ax.set_ylabel("measured − reference" + u)
    note = f"n = {s['n']}, {level} % CI shaded"
    ax.set_title(f"{title}\n({note})" if title else note, fontsize="medium" if title else "small")
    return ax


def agreement_scatter(ax, measured, reference, *, unit="", title=None, color="C0", icc_=None):
    """Measured against reference with the identity line; ICC(A,1) in the legend if given.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    measured, reference : array_like, shape (n,)
    unit : str
    title : str, optional
    color : str
    icc_ : dict, optional
        Output of :func:`icc` (shown as text).

    Returns
    -------
    matplotlib.axes.Axes
    """
    x, y = _paired(measured, reference)
    u = f" ({unit})" if unit else ""
    ax.scatter(y, x, s=18, color=color, alpha=0.8, edgecolor="none")
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    pad = 0.05 * (hi - lo if hi > lo else 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", linewidth=0.8, label="identity")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("reference" + u)
    ax.set_ylabel("measured" + u)
    if icc_ is not None:
        ax.text(0.03, 0.97, f"ICC(A,1) = {icc_['icc']:.3f}\n[{icc_['ci_low']:.3f}, {icc_['ci_high']:.3f}]",
                transform=ax.transAxes, va="top", fontsize="small")
    if title:
        ax.set_title(title)
    return ax


# ---------------------------------------------------------------------------------------------
# The lesion model on measured vs reference values
# ---------------------------------------------------------------------------------------------

def lesion_model_comparison(reference, measured, *, labels=("calibrated", "measured"), outcome="t2_lesion_volume_log"):
    """Table 1's model for one outcome fitted on two versions of a cohort, side by side.

    Both tables must hold the same subjects (matched by ``subject_id``; only the common subjects
    are used, so the comparison isolates the effect of the measurement).

    Parameters
    ----------
    reference, measured : pandas.DataFrame
        Cohort tables (:data:`analysis.cohort.dictionary.COLUMNS`), e.g. the calibrated cohort and the
        cohort measured from the imaging pipeline.
    labels : tuple of 2 str
        Column prefixes of the two fits.
    outcome : str
        A key of :data:`analysis.stats.models.TABLE1_OUTCOMES` (default the lesion model,
        ``log(t2_lesion_volume_ml) ~ thalamic_relative_susceptibility_ppb [+ covariates]``).

    Returns
    -------
    pandas.DataFrame
        One row per model (``unadjusted``, ``adjusted``): ``outcome, model, n``, then for each
        label ``<label>_coef, <label>_ci_low, <label>_ci_high, <label>_p`` (coefficient of the
        relative susceptibility, log(mL) per ppb for the lesion model), and
        ``coef_difference`` (second − first). A model that cannot be estimated (fewer subjects
        than coefficients + 1, or a rank-deficient design) gives NaN.
    """
    if len(labels) != 2 or labels[0] == labels[1]:
        raise ValueError(f"labels must be two different names, got {labels!r}")
    for name, df in (("reference", reference), ("measured", measured)):
        if "subject_id" not in df.columns:
            raise ValueError(f"lesion_model_comparison: {name} table has no 'subject_id' column")
    common = [s for s in reference["subject_id"].astype(str) if s in set(measured["subject_id"].astype(str))]
    if not common:
        raise ValueError("lesion_model_comparison: the two tables have no subject_id in common")
    tables = []
    for df in (reference, measured):
        d = df.assign(subject_id=df["subject_id"].astype(str)).set_index("subject_id").loc[common]
        tables.append(d.reset_index())
    rows = []
    for model in ("unadjusted", "adjusted"):
        formula = table1_formula(outcome, adjusted=model == "adjusted")
        row = {"outcome": outcome, "model": model, "n": len(common)}
        for label, df in zip(labels, tables):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")       # rank-deficient fits are reported as NaN
                try:                                  # fit_ols raises for a rank-deficient design
                    res = fit_ols(formula, df)
                    vals = (coefficient_row(res, SUSCEPTIBILITY) if res.df_resid >= 1
                            else dict.fromkeys(("coef", "ci_low", "ci_high", "p"), np.nan))
                except ValueError:
                    vals = dict.fromkeys(("coef", "ci_low", "ci_high", "p"), np.nan)
            row.update({f"{label}_{key}": float(vals[key]) for key in ("coef", "ci_low", "ci_high", "p")})
        row["coef_difference"] = row[f"{labels[1]}_coef"] - row[f"{labels[0]}_coef"]
        rows.append(row)
    return pd.DataFrame(rows)
