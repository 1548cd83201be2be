"""The paper's regression models (Tables 1 and 2, the age < 50 sensitivity analysis).

All models are ordinary least squares fitted with the statsmodels formula API, as Stata's
``regress`` would fit them (classical standard errors, t-based 95 % CIs and two-sided P values).

Choices the paper leaves open, made here and documented in the notebooks:

* ``sex`` enters as a male indicator (female, two-thirds of the cohort, is the reference level).
* Table 1's adjusted models add age, sex, disease duration and DMT use; Table 2's "after
  adjustment" column is one model with all five characteristics.
* The sensitivity analysis refits the adjusted lesion model on patients younger than the cutoff.
"""

from __future__ import annotations

import numpy as np  # noqa: F401 -- the formulas' "np.log(...)" is evaluated in this module's namespace
import pandas as pd
import statsmodels.formula.api as smf

from analysis.stats._validation import rank_deficiency
from analysis.stats.published import format_like, prints_as, table_rows

__all__ = [
    "SUSCEPTIBILITY",
    "TABLE1_OUTCOMES",
    "TABLE2_PREDICTORS",
    "COVARIATES",
    "RESULT_COLUMNS",
    "fit_ols",
    "coefficient_row",
    "table1_formula",
    "table1",
    "table2_formula",
    "table2",
    "sensitivity_age",
    "sensitivity_age_sweep",
    "lesion_covariate_effects",
    "compare_with_published",
]

#: The predictor of Table 1 / outcome of Table 2 (cohort column, ppb).
SUSCEPTIBILITY = "thalamic_relative_susceptibility_ppb"

#: Table 1 outcome name -> formula left-hand side (columns of the cohort CSV).
TABLE1_OUTCOMES = {
    "thalamic_volume": "thalamic_volume_mm3",
    "total_gray_matter_volume": "total_gray_matter_volume_mm3",
    "cortical_thickness": "mean_cortical_thickness_mm",
    "t2_lesion_volume_log": "np.log(t2_lesion_volume_ml)",
}

#: Table 2 predictor name -> formula term and the name statsmodels gives its coefficient.
TABLE2_PREDICTORS = {
    "enhancing_lesions_present": ("enhancing_lesions_present", "enhancing_lesions_present"),
    "age": ("age_years", "age_years"),
    "sex": ("C(sex, Treatment('F'))", "C(sex, Treatment('F'))[T.M]"),
    "dmt_use": ("dmt_use", "dmt_use"),
    "disease_duration": ("disease_duration_years", "disease_duration_years"),
}

#: Covariates of Table 1's adjusted models.
COVARIATES = ("age_years", "C(sex, Treatment('F'))", "disease_duration_years", "dmt_use")

RESULT_COLUMNS = ("coef", "ci_low", "ci_high", "p")


def fit_ols(formula, data):
    """Fit ``formula`` by OLS on ``data`` (statsmodels formula API) and return the results.

    Raises ``ValueError`` naming the column(s) when the design cannot be estimated (statsmodels
    would fit a rank-deficient design silently with a pseudo-inverse), e.g. a cohort in which every
    patient is on DMT or none has enhancing lesions.
    """
    result = smf.ols(formula, data=data).fit()
    what = rank_deficiency(result, data_label="these data")
    if what is not None:
        raise ValueError(f"model {formula!r} cannot be estimated: {what}")
    return result


def coefficient_row(result, term, *, alpha=0.05):
    """Tidy summary of one coefficient: ``coef, se, ci_low, ci_high, t, p, n, df_resid``."""
    if term not in result.params.index:
        hint = (" (a categorical variable with a single level in these data, e.g. one sex only?)"
                if term.startswith("C(") else "")
        raise ValueError(f"term {term!r} not in the model{hint}; terms: {list(result.params.index)}")
    ci = result.conf_int(alpha=alpha).loc[term]
    return {"coef": float(result.params[term]), "se": float(result.bse[term]),
            "ci_low": float(ci.iloc[0]), "ci_high": float(ci.iloc[1]),
            "t": float(result.tvalues[term]), "p": float(result.pvalues[term]),
            "n": int(result.nobs), "df_resid": int(result.df_resid)}


def table1_formula(outcome, *, adjusted):
    """Formula of one Table 1 model, e.g. ``table1_formula("thalamic_volume", adjusted=True)``."""
    if outcome not in TABLE1_OUTCOMES:
        raise ValueError(f"unknown Table 1 outcome {outcome!r}; choose from {list(TABLE1_OUTCOMES)}")
    rhs = [SUSCEPTIBILITY, *(COVARIATES if adjusted else ())]
    return f"{TABLE1_OUTCOMES[outcome]} ~ " + " + ".join(rhs)


def table1(df, *, full=False):
    """Table 1: each outcome regressed on thalamic relative susceptibility (per ppb).

    Parameters
    ----------
    df : pandas.DataFrame
        A validated cohort (:func:`analysis.cohort.dictionary.load_cohort`).
    full : bool
        Also return ``se, t, n, df_resid`` (default: only ``outcome, model, coef, ci_low, ci_high, p``).

    Returns
    -------
    pandas.DataFrame
        One row per outcome and model (``unadjusted``, ``adjusted``). Coefficients are in outcome
        units per ppb: mm³/ppb for volumes, mm/ppb for thickness, log(mL)/ppb for lesion volume.
    """
    rows = []
    for outcome in TABLE1_OUTCOMES:
        for model in ("unadjusted", "adjusted"):
            res = fit_ols(table1_formula(outcome, adjusted=model == "adjusted"), df)
            rows.append({"outcome": outcome, "model": model, **coefficient_row(res, SUSCEPTIBILITY)})
    return _tidy(rows, "outcome", full)


def table2_formula(predictor=None):
    """Formula of Table 2: one predictor (unadjusted) or all five (``predictor=None``)."""
    if predictor is None:
        return f"{SUSCEPTIBILITY} ~ " + " + ".join(term for term, _ in TABLE2_PREDICTORS.values())
    if predictor not in TABLE2_PREDICTORS:
        raise ValueError(f"unknown Table 2 predictor {predictor!r}; choose from {list(TABLE2_PREDICTORS)}")
    return f"{SUSCEPTIBILITY} ~ {TABLE2_PREDICTORS[predictor][0]}"


def table2(df, *, full=False):
    """Table 2: thalamic relative susceptibility (ppb) on each characteristic, then on all five.

    Returns one row per predictor and model; coefficients in ppb per unit of the predictor
    (per year for age and disease duration; present vs absent, male vs female, on vs off DMT).
    """
    adjusted = fit_ols(table2_formula(), df)
    rows = []
    for name, (_, coef_name) in TABLE2_PREDICTORS.items():
        unadj = fit_ols(table2_formula(name), df)
        rows.append({"predictor": name, "model": "unadjusted", **coefficient_row(unadj, coef_name)})
        rows.append({"predictor": name, "model": "adjusted", **coefficient_row(adjusted, coef_name)})
    return _tidy(rows, "predictor", full)


def sensitivity_age(df, *, max_age_years=50, outcome="t2_lesion_volume_log", full=False):
    """Table 1's models for ``outcome`` refitted on patients younger than ``max_age_years``.

    The paper: "Repeating the analysis with patients younger than 50 years of age did not change
    the results (P = .036)". Returns Table 1's columns plus ``n`` (patients in the subset).
    """
    sub = df[df["age_years"] < max_age_years]
    if len(sub) < 10:
        raise ValueError(f"only {len(sub)} patients younger than max_age_years={max_age_years}; need >= 10")
    out = table1(sub, full=True)
    out = out[out["outcome"] == outcome].reset_index(drop=True)
    cols = ["outcome", "model", *RESULT_COLUMNS, "n"] + (["se", "t", "df_resid"] if full else [])
    return out[cols]


def lesion_covariate_effects(df):
    """P values of the covariates in the adjusted lesion model (the Results text's age/sex/DMT/duration)."""
    res = fit_ols(table1_formula("t2_lesion_volume_log", adjusted=True), df)
    names = {"age_years": "age", "C(sex, Treatment('F'))[T.M]": "sex",
             "disease_duration_years": "disease_duration", "dmt_use": "dmt_use"}
    return pd.DataFrame([{"covariate": label, **coefficient_row(res, term)} for term, label in names.items()])


def _tidy(rows, key, full):
    df = pd.DataFrame(rows)
    cols = [key, "model", *RESULT_COLUMNS] + (["se", "t", "n", "df_resid"] if full else [])
    return df[cols]


def compare_with_published(ours, table, *, text_overrides=True):
    """Our table beside the paper's, at the paper's printed precision.

    Parameters
    ----------
    ours : pandas.DataFrame
        Output of :func:`table1` or :func:`table2`.
    table : {"table1", "table2"}
    text_overrides : bool
        Where the paper's table and text disagree (adjusted age P: table .02, text .028; see
        ``analysis/data/published.yaml``) also report whether ours matches under the reading that
        reconciles them.

    Returns
    -------
    pandas.DataFrame
        Long format: ``<key>, model, statistic, ours, ours_printed, published, difference, match``
        where ``ours_printed`` is ours formatted like the paper's number and ``match`` says whether
        they print identically (rounded half away from zero).
    """
    key = "outcome" if table == "table1" else "predictor"
    pub = {(r[key], r["model"]): r for r in table_rows(table)}
    rows = []
    for _, r in ours.iterrows():
        p = pub[(r[key], r["model"])]
        for stat in RESULT_COLUMNS:
            printed = p[stat]
            match = prints_as(r[stat], printed)
            note = ""
            if text_overrides and table == "table2" and r[key] == "age" and r["model"] == "adjusted" \
                    and stat == "p":
                note = ("paper's table .02 vs text .028; ours prints as the text (.028) and truncates "
                        "to the table's .02" if prints_as(r[stat], ".028") and
                        prints_as(r[stat], printed, rule="truncate") else "")
            rows.append({key: r[key], "model": r["model"], "statistic": stat, "ours": float(r[stat]),
                         "ours_printed": format_like(r[stat], printed), "published": printed,
                         "difference": float(r[stat]) - float(printed), "match": bool(match),
                         "note": note})
    return pd.DataFrame(rows)


def sensitivity_age_sweep(df, cutoffs=range(35, 72), *, outcome="t2_lesion_volume_log", min_n=20):
    """The age sensitivity analysis repeated over a range of cutoffs (an exploratory extension).

    Parameters
    ----------
    df : pandas.DataFrame
        A validated cohort.
    cutoffs : iterable of float
        Age cutoffs (years); each refits the adjusted model on patients younger than the cutoff.
    min_n : int
        Cutoffs leaving fewer patients are skipped.

    Returns
    -------
    pandas.DataFrame
        ``max_age_years, n, coef, ci_low, ci_high, p`` of the adjusted model, one row per cutoff.
    """
    rows = []
    for cut in cutoffs:
        if (df["age_years"] < cut).sum() < min_n:
            continue
        r = sensitivity_age(df, max_age_years=cut, outcome=outcome).set_index("model").loc["adjusted"]
        rows.append({"max_age_years": float(cut), "n": int(r["n"]),
                     **{k: float(r[k]) for k in RESULT_COLUMNS}})
    if not rows:
        raise ValueError(f"no cutoff in {list(cutoffs)} leaves at least min_n={min_n} patients")
    return pd.DataFrame(rows)
