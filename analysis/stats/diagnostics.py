"""Regression diagnostics for every model of Tables 1 and 2: influence, leverage, collinearity.

The paper's 14 ordinary least-squares models (:mod:`analysis.stats.models`) are enumerated by
:func:`model_specs`: Table 1's four outcomes on relative susceptibility, each unadjusted and
adjusted for age, sex, disease duration and DMT use (8 models), and Table 2's susceptibility on
each of five characteristics alone (5 models) and on all five together (1 model).

For each model :func:`influence_table` computes, per patient, the fitted value, the residual, the
leverage h_ii (diagonal of the hat matrix), the internally and externally studentized residuals and
Cook's distance with statsmodels' :class:`~statsmodels.stats.outliers_influence.OLSInfluence`
(``tests/stats/test_reanalysis_diagnostics`` checks them against the textbook formulas written out
from a QR decomposition and against leave-one-out refits). **Rule for an influential patient:**
Cook's distance D_i > 4/n (n = patients in the model), a common screening rule (Bollen & Jackman 1990);
it flags patients to look at, it is not a test. High leverage is flagged at h_ii > 2p/n
(p = coefficients including the intercept). :func:`influence_summary` refits each model without its
flagged patients to show whether they carry the conclusion, and adds a Breusch-Pagan test of
constant variance (statsmodels' ``het_breuschpagan``) and Stata's skewness-kurtosis test of the
residuals (:func:`analysis.stats.normality.sktest`). :func:`vif_table` gives the variance inflation
factors 1/(1 - R_j^2) of the adjusted models (statsmodels' ``variance_inflation_factor``).

Three figures per set of models: residual quantile-normal plot (:func:`residual_qq_figure`),
residuals against fitted values (:func:`residual_fitted_figure`) and leverage against studentized
residual with Cook's-distance contours (:func:`influence_figure`). matplotlib is imported by the
figure functions only, so that the numbers can be computed without it.

The input checks :func:`check_data`, :func:`check_alpha`, :func:`check_specs` and
:func:`check_design` are public: :mod:`analysis.stats.robust` and :mod:`analysis.stats.reanalysis`
validate their inputs with them.

References
----------
Cook RD. Detection of influential observation in linear regression. Technometrics 1977;19:15-8.
Bollen KA, Jackman RW. Regression diagnostics: an expository treatment of outliers and influential
cases. In: Fox J, Long JS, eds. Modern Methods of Data Analysis. Sage; 1990:257-91.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.nonparametric.smoothers_lowess import lowess
from statsmodels.stats.diagnostic import het_breuschpagan
from statsmodels.stats.outliers_influence import OLSInfluence, variance_inflation_factor

from analysis.stats import models
from analysis.stats._validation import check_alpha, rank_deficiency
from analysis.stats.normality import sktest

__all__ = [
    "ModelSpec",
    "model_specs",
    "fit_spec",
    "check_data",
    "check_alpha",
    "check_specs",
    "check_design",
    "REQUIRED_COLUMNS",
    "INFLUENCE_RULE",
    "influence_measures",
    "influence_table",
    "influence_summary",
    "vif",
    "vif_table",
    "residual_qq_figure",
    "residual_fitted_figure",
    "influence_figure",
]

#: Cohort columns the models use.
REQUIRED_COLUMNS = ("subject_id", models.SUSCEPTIBILITY, "age_years", "sex", "disease_duration_years",
                    "dmt_use", "enhancing_lesions_present", "t2_lesion_volume_ml", "thalamic_volume_mm3",
                    "total_gray_matter_volume_mm3", "mean_cortical_thickness_mm")

#: The rule behind the ``influential`` flag (printed in tables and figures).
INFLUENCE_RULE = "Cook's distance > 4/n"

#: Fewest patients a model is fitted on.
MIN_N = 10


@dataclass(frozen=True)
class ModelSpec:
    """One regression of Table 1 or Table 2.

    Attributes
    ----------
    table : {"table1", "table2"}
    key : str
        Table 1 outcome (``"thalamic_volume"``, ...), Table 2 predictor (``"age"``, ...) or
        ``"all"`` for Table 2's model with all five characteristics.
    model : {"unadjusted", "adjusted"}
    formula : str
        statsmodels/patsy formula.
    terms : tuple of str
        Readable names of the coefficients of interest (``thalamic_relative_susceptibility_ppb``
        for Table 1, the predictor names for Table 2).
    coef_names : tuple of str
        The same coefficients as statsmodels names them.
    """

    table: str
    key: str
    model: str
    formula: str
    terms: tuple
    coef_names: tuple

    @property
    def label(self):
        """Short label, e.g. ``"table1 t2_lesion_volume_log (adjusted)"``."""
        return f"{self.table} {self.key} ({self.model})"


def model_specs(*, tables=("table1", "table2")):
    """The models of Table 1 and/or Table 2 as :class:`ModelSpec` objects, in the tables' order.

    Parameters
    ----------
    tables : sequence of {"table1", "table2"}, keyword-only
        Which tables.

    Returns
    -------
    list of ModelSpec
        Table 1: for each outcome the unadjusted then the adjusted model (8). Table 2: the five
        one-predictor models, then the model with all five (6).
    """
    tables = (tables,) if isinstance(tables, str) else tuple(tables)
    bad = [t for t in tables if t not in ("table1", "table2")]
    if bad or not tables:
        raise ValueError(f"tables must be a non-empty subset of ('table1', 'table2'), got {tables!r}")
    specs = []
    if "table1" in tables:
        for outcome in models.TABLE1_OUTCOMES:
            for model in ("unadjusted", "adjusted"):
                specs.append(ModelSpec("table1", outcome, model,
                                       models.table1_formula(outcome, adjusted=model == "adjusted"),
                                       (models.SUSCEPTIBILITY,), (models.SUSCEPTIBILITY,)))
    if "table2" in tables:
        for name, (_, coef) in models.TABLE2_PREDICTORS.items():
            specs.append(ModelSpec("table2", name, "unadjusted", models.table2_formula(name), (name,), (coef,)))
        specs.append(ModelSpec("table2", "all", "adjusted", models.table2_formula(),
                               tuple(models.TABLE2_PREDICTORS),
                               tuple(c for _, c in models.TABLE2_PREDICTORS.values())))
    return specs


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------
def check_data(data, *, columns=REQUIRED_COLUMNS, name="data"):
    """Raise ``ValueError`` naming the missing column(s) or a too small cohort; return ``data``."""
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame (a validated cohort), got {type(data).__name__}")
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; "
                         "validate it with analysis.cohort.dictionary.validate_cohort")
    if len(data) < MIN_N:
        raise ValueError(f"{name}: {len(data)} rows; the models need at least {MIN_N} patients")
    return data


def check_specs(specs, *, default=None):
    """Return ``specs`` as a list of :class:`ModelSpec`; raise ``ValueError`` naming ``specs`` if not.

    Parameters
    ----------
    specs : sequence of ModelSpec or None
        Models; ``None`` selects ``default``.
    default : sequence of ModelSpec, keyword-only, optional
        Models used when ``specs`` is None (default: all 14 of :func:`model_specs`).

    Returns
    -------
    list of ModelSpec
    """
    if specs is None:
        specs = model_specs() if default is None else default
    specs = list(specs)
    if not specs or not all(isinstance(s, ModelSpec) for s in specs):
        raise ValueError("specs must be a non-empty sequence of ModelSpec (see model_specs())")
    return specs


def check_design(result, *, label="model"):
    """Raise ``ValueError`` naming the column(s) if a fitted model's design is rank deficient.

    statsmodels fits a rank-deficient design silently (pseudo-inverse); a cohort in which, e.g.,
    every patient is on DMT or none has enhancing lesions cannot estimate that coefficient.

    Returns
    -------
    statsmodels results
        ``result`` unchanged, when its design has full column rank.
    """
    what = rank_deficiency(result, data_label="this cohort")
    if what is not None:
        raise ValueError(f"{label}: cannot be estimated, {what} ({result.model.formula})")
    return result


def fit_spec(spec, data, **fit_kwargs):
    """Fit one :class:`ModelSpec` by OLS (statsmodels formula API) and return the results.

    ``fit_kwargs`` go to :meth:`statsmodels.regression.linear_model.OLS.fit` (e.g.
    ``cov_type="HC3", use_t=True``). Raises ``ValueError`` naming the column when the design is
    rank deficient (:func:`check_design`).
    """
    return check_design(smf.ols(spec.formula, data=data).fit(**fit_kwargs), label=spec.label)


# ----------------------------------------------------------------------------------------------
# influence
# ----------------------------------------------------------------------------------------------
def influence_measures(X, y):
    """Leverage, residuals, studentized residuals and Cook's distance of an OLS fit.

    Computed by statsmodels' :class:`~statsmodels.stats.outliers_influence.OLSInfluence` on
    ``OLS(y, X)``; this function adds the checks statsmodels does not make (a rank-deficient
    ``X`` is fitted silently by pseudo-inverse there) and returns the measures as one table.

    Parameters
    ----------
    X : array_like, shape (n, p)
        Design matrix (with the intercept column), full column rank.
    y : array_like, shape (n,)
        Outcome.

    Returns
    -------
    pandas.DataFrame, shape (n, 6)
        ``fitted``, ``residual`` (outcome units), ``leverage`` (h_ii), ``student_internal``
        (e_i / (s sqrt(1 - h_ii))), ``student_external`` (the same with s estimated without
        patient i) and ``cooks_d`` (student_internal^2 h_ii / (p (1 - h_ii))).
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n, p), got shape {X.shape}")
    n, p = X.shape
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},), got {y.shape}")
    if n <= p + 1:
        raise ValueError(f"need more observations (n = {n}) than coefficients + 1 (p = {p})")
    if np.linalg.matrix_rank(X) < p:
        raise ValueError("X is rank deficient (a covariate is constant or collinear)")
    return _influence_frame(sm.OLS(y, X).fit())


def _influence_frame(result):
    """The six columns of :func:`influence_measures` from a fitted OLS result."""
    inf = OLSInfluence(result)
    return pd.DataFrame({"fitted": np.asarray(result.fittedvalues, dtype=float),
                         "residual": np.asarray(result.resid, dtype=float),
                         "leverage": np.asarray(inf.hat_matrix_diag, dtype=float),
                         "student_internal": np.asarray(inf.resid_studentized_internal, dtype=float),
                         "student_external": np.asarray(inf.resid_studentized_external, dtype=float),
                         "cooks_d": np.asarray(inf.cooks_distance[0], dtype=float)})


def _cooks_threshold(cooks_threshold, n):
    if cooks_threshold is None:
        return 4.0 / n
    if not (isinstance(cooks_threshold, (int, float)) and cooks_threshold > 0):
        raise ValueError(f"cooks_threshold must be a positive number or None (4/n), got {cooks_threshold!r}")
    return float(cooks_threshold)


def influence_table(data, *, specs=None, cooks_threshold=None, id_column="subject_id"):
    """Per-patient diagnostics of every model (long format, one row per model and patient).

    Parameters
    ----------
    data : pandas.DataFrame
        A validated cohort (:func:`analysis.cohort.dictionary.load_cohort`).
    specs : sequence of ModelSpec, keyword-only
        Models (default: all 14 of :func:`model_specs`).
    cooks_threshold : float, keyword-only
        Cook's distance above which a patient is flagged ``influential``; default ``None`` = 4/n.
    id_column : str, keyword-only
        Column identifying the patients.

    Returns
    -------
    pandas.DataFrame
        Columns ``table, key, model, subject_id, observed, fitted, residual, leverage,
        student_internal, student_external, cooks_d, cooks_threshold, influential, high_leverage``.
        ``observed`` is the outcome as modelled (e.g. the natural log of lesion volume);
        ``high_leverage`` is h_ii > 2p/n.
    """
    check_data(data, columns=(*REQUIRED_COLUMNS, id_column))
    specs = check_specs(specs)
    frames = []
    for spec in specs:
        res = fit_spec(spec, data)
        y = np.asarray(res.model.endog, dtype=float)
        n, p = res.model.exog.shape
        if n <= p + 1:
            raise ValueError(f"{spec.label}: need more patients (n = {n}) than coefficients + 1 (p = {p})")
        m = _influence_frame(res)
        thr = _cooks_threshold(cooks_threshold, n)
        rows = res.model.data.row_labels
        m.insert(0, "observed", y)
        m.insert(0, "subject_id", data.loc[rows, id_column].astype(str).to_numpy())
        m.insert(0, "model", spec.model)
        m.insert(0, "key", spec.key)
        m.insert(0, "table", spec.table)
        m["cooks_threshold"] = thr
        m["influential"] = m["cooks_d"] > thr
        m["high_leverage"] = m["leverage"] > 2.0 * p / n
        frames.append(m)
    return pd.concat(frames, ignore_index=True)


def influence_summary(data, *, specs=None, cooks_threshold=None, alpha=0.05, id_column="subject_id"):
    """One row per model and coefficient of interest: what the flagged patients do to it.

    Parameters
    ----------
    data : pandas.DataFrame
        A validated cohort.
    specs : sequence of ModelSpec, keyword-only
        Models (default: all 14).
    cooks_threshold : float, keyword-only
        As in :func:`influence_table` (default 4/n).
    alpha : float, keyword-only
        Significance level for ``significant`` / ``significant_without``.
    id_column : str, keyword-only
        Column identifying the patients.

    Returns
    -------
    pandas.DataFrame
        ``table, key, model, term, n, n_influential, influential_subjects, max_cooks_d,
        max_cooks_subject, max_leverage, max_abs_student_external, breusch_pagan_p,
        residual_sktest_p, coef, p, coef_without, p_without, n_without, significant,
        significant_without, conclusion_kept`` where ``*_without`` refit the model without the
        patients flagged by the rule; ``conclusion_kept`` is True when the significance at ``alpha``
        and (if significant) the sign are unchanged.
    """
    alpha = check_alpha(alpha)
    specs = check_specs(specs)
    infl = influence_table(data, specs=specs, cooks_threshold=cooks_threshold, id_column=id_column)
    rows = []
    for spec in specs:
        d = infl[(infl["table"] == spec.table) & (infl["key"] == spec.key) & (infl["model"] == spec.model)]
        res = fit_spec(spec, data)
        flagged = d.loc[d["influential"], "subject_id"].tolist()
        keep = ~data[id_column].astype(str).isin(flagged)
        res_wo = fit_spec(spec, data[keep]) if flagged else res
        bp_p = float(het_breuschpagan(res.resid, res.model.exog)[1])
        sk_p = float(sktest(np.asarray(res.resid))["p"].iloc[0])
        imax = int(np.argmax(d["cooks_d"].to_numpy()))
        for term, coef in zip(spec.terms, spec.coef_names):
            b, p = float(res.params[coef]), float(res.pvalues[coef])
            b_wo, p_wo = float(res_wo.params[coef]), float(res_wo.pvalues[coef])
            sig, sig_wo = p < alpha, p_wo < alpha
            kept = (sig == sig_wo) and (not sig or np.sign(b) == np.sign(b_wo))
            rows.append({
                "table": spec.table, "key": spec.key, "model": spec.model, "term": term,
                "n": int(res.nobs), "n_influential": len(flagged),
                "influential_subjects": ", ".join(flagged),
                "max_cooks_d": float(d["cooks_d"].max()),
                "max_cooks_subject": str(d["subject_id"].iloc[imax]),
                "max_leverage": float(d["leverage"].max()),
                "max_abs_student_external": float(d["student_external"].abs().max()),
                "breusch_pagan_p": bp_p, "residual_sktest_p": sk_p,
                "coef": b, "p": p, "coef_without": b_wo, "p_without": p_wo,
                "n_without": int(res_wo.nobs), "significant": bool(sig),
                "significant_without": bool(sig_wo), "conclusion_kept": bool(kept),
            })
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# collinearity
# ----------------------------------------------------------------------------------------------
def vif(X, names=None):
    """Variance inflation factors of the columns of a design matrix with an intercept.

    VIF_j = 1 / (1 - R_j^2), R_j^2 the (centred) coefficient of determination of column j regressed
    on all other columns (including the intercept), computed by statsmodels'
    :func:`~statsmodels.stats.outliers_influence.variance_inflation_factor`; R_j^2 is reported as
    1 - 1/VIF_j. The intercept column itself is skipped (its "VIF" is not a collinearity measure).

    Parameters
    ----------
    X : array_like, shape (n, p)
        Design matrix whose columns include a constant column.
    names : sequence of str, optional
        Column names (default ``x0, x1, ...``).

    Returns
    -------
    pandas.DataFrame
        ``term, r2, vif`` for each non-constant column. A column that the others reproduce
        exactly has r2 = 1 and a VIF of inf or, through rounding, above 1e12 (statsmodels then
        warns that the design is singular).
    """
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    names = [f"x{j}" for j in range(p)] if names is None else list(names)
    if len(names) != p:
        raise ValueError(f"names has {len(names)} entries for {p} columns")
    const = np.all(X == X[0], axis=0)
    if not const.any():
        raise ValueError("X needs an intercept (constant) column for centred R^2")
    rows = []
    for j in range(p):
        if const[j]:
            continue
        with np.errstate(divide="ignore"):     # exact collinearity: R^2 = 1, VIF = inf
            v = float(variance_inflation_factor(X, j))
        rows.append({"term": names[j], "r2": 1.0 - 1.0 / v, "vif": v})
    return pd.DataFrame(rows)


def vif_table(data, *, specs=None):
    """VIFs of the adjusted models (Table 1's four share one design, so it is listed once).

    Parameters
    ----------
    data : pandas.DataFrame
        A validated cohort.
    specs : sequence of ModelSpec, keyword-only
        Models to consider (default all); only those with ``model == "adjusted"`` are used and
        models with identical right-hand sides are reported once.

    Returns
    -------
    pandas.DataFrame
        ``design, formula_rhs, term, r2, vif`` (``design`` is ``table1_adjusted`` or
        ``table2_adjusted``).
    """
    check_data(data)
    specs = check_specs(specs)
    frames, seen = [], set()
    for spec in specs:
        if spec.model != "adjusted":
            continue
        rhs = spec.formula.split("~", 1)[1].strip()
        if rhs in seen:
            continue
        seen.add(rhs)
        res = fit_spec(spec, data)
        t = vif(res.model.exog, res.model.exog_names)
        t.insert(0, "formula_rhs", rhs)
        t.insert(0, "design", f"{spec.table}_adjusted")
        frames.append(t)
    if not frames:
        raise ValueError("specs contains no adjusted model")
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------
def _panels(influence):
    need = {"table", "key", "model", "fitted", "student_internal", "leverage", "cooks_d", "influential",
            "subject_id", "residual", "cooks_threshold"}
    if not isinstance(influence, pd.DataFrame) or need - set(influence.columns):
        missing = sorted(need - set(getattr(influence, "columns", [])))
        raise ValueError(f"influence must be the output of influence_table(); missing column(s) {missing}")
    groups = list(influence.groupby(["table", "key", "model"], sort=False))
    if not groups:
        raise ValueError("influence is empty")
    return groups


def _grid(n_panels, ncols, panel_size):
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n_panels))
    nrows = int(np.ceil(n_panels / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
                             squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return fig, axes.flat


def _title(key, table, model):
    return f"{key} ({model})" if table == "table1" else f"{table}: {key} ({model})"


def _label_flagged(ax, d, x, y):
    for _, r in d[d["influential"]].iterrows():
        ax.annotate(r["subject_id"], (r[x], r[y]), fontsize=6, xytext=(2, 2), textcoords="offset points")


def residual_qq_figure(influence, *, ncols=4, panel_size=(3.0, 3.0), title=None):
    """Quantile-normal plots of the internally studentized residuals, one panel per model.

    Parameters
    ----------
    influence : pandas.DataFrame
        Output of :func:`influence_table` (any subset of its models).
    ncols : int, keyword-only
        Panels per row.
    panel_size : (float, float), keyword-only
        Size of one panel in inches.
    title : str, keyword-only
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Blom plotting positions (i - 3/8)/(n + 1/4); the line is y = x. Patients flagged
        influential (red) are labelled.
    """
    groups = _panels(influence)
    fig, axes = _grid(len(groups), ncols, panel_size)
    for ax, ((table, key, model), d) in zip(axes, groups):
        d = d.sort_values("student_internal")
        n = len(d)
        q = stats.norm.ppf((np.arange(1, n + 1) - 0.375) / (n + 0.25))
        d = d.assign(theoretical=q)
        ax.scatter(d["theoretical"], d["student_internal"], s=10,
                   c=np.where(d["influential"], "tab:red", "tab:blue"))
        lim = max(np.abs(q).max(), d["student_internal"].abs().max()) * 1.05
        ax.plot([-lim, lim], [-lim, lim], color="0.4", lw=0.8)
        _label_flagged(ax, d, "theoretical", "student_internal")
        ax.set_title(_title(key, table, model), fontsize=8)
        ax.set_xlabel("normal quantile", fontsize=7)
        ax.set_ylabel("studentized residual", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(title or f"Residual Q-Q plots (red: {INFLUENCE_RULE})", fontsize=10)
    fig.tight_layout()
    return fig


def residual_fitted_figure(influence, *, ncols=4, panel_size=(3.0, 3.0), title=None):
    """Residuals against fitted values, one panel per model, with a LOWESS smooth.

    Parameters and return as :func:`residual_qq_figure`. Residuals are on the outcome's scale as
    modelled (mm³, mm, log mL or ppb).
    """
    groups = _panels(influence)
    fig, axes = _grid(len(groups), ncols, panel_size)
    for ax, ((table, key, model), d) in zip(axes, groups):
        ax.scatter(d["fitted"], d["residual"], s=10, c=np.where(d["influential"], "tab:red", "tab:blue"))
        ax.axhline(0.0, color="0.4", lw=0.8)
        f = d["fitted"].to_numpy()
        spread = np.ptp(f)
        if spread > 0 and np.unique(np.round((f - f.min()) / spread, 9)).size > 3:   # not a binary predictor
            sm = lowess(d["residual"], f, frac=0.6, return_sorted=True)
            ax.plot(sm[:, 0], sm[:, 1], color="tab:orange", lw=1.2)
        _label_flagged(ax, d, "fitted", "residual")
        ax.set_title(_title(key, table, model), fontsize=8)
        ax.set_xlabel("fitted", fontsize=7)
        ax.set_ylabel("residual", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(title or "Residuals vs fitted (orange: LOWESS)", fontsize=10)
    fig.tight_layout()
    return fig


def influence_figure(influence, *, ncols=4, panel_size=(3.0, 3.0), title=None, contours=None):
    """Leverage against internally studentized residual with contours of Cook's distance.

    Cook's D_i = r_i^2 h_i / (p (1 - h_i)) with r_i the internally studentized residual, so the
    contour of level D is r = ±sqrt(D p (1 - h) / h) -- drawn exactly for the threshold 4/n
    (dashed) and for D = 0.5 and 1 (dotted), the levels usually drawn.

    Parameters
    ----------
    influence : pandas.DataFrame
        Output of :func:`influence_table`.
    ncols, panel_size, title
        As in :func:`residual_qq_figure`.
    contours : sequence of float, keyword-only
        Extra Cook's distance levels (default (0.5, 1.0)).

    Returns
    -------
    matplotlib.figure.Figure
    """
    groups = _panels(influence)
    contours = (0.5, 1.0) if contours is None else tuple(contours)
    fig, axes = _grid(len(groups), ncols, panel_size)
    for ax, ((table, key, model), d) in zip(axes, groups):
        n = len(d)
        # p recovered from the leverages: sum(h_ii) = p
        p = int(round(d["leverage"].sum()))
        ax.scatter(d["leverage"], d["student_internal"], s=10,
                   c=np.where(d["influential"], "tab:red", "tab:blue"))
        hmax = max(d["leverage"].max() * 1.15, 2.2 * p / n)
        hgrid = np.linspace(max(d["leverage"].min() * 0.9, 1e-3), min(hmax, 0.99), 200)
        rlim = max(3.5, d["student_internal"].abs().max() * 1.1)
        levels = [(float(d["cooks_threshold"].iloc[0]), "--")] + [(c, ":") for c in contours]
        for level, ls in levels:
            r = np.sqrt(level * p * (1 - hgrid) / hgrid)
            for sign in (1, -1):
                ax.plot(hgrid, sign * r, color="0.5", ls=ls, lw=0.8)
            if r[-1] < 0.9 * rlim:
                ax.annotate(f"D={level:.2g}", (hgrid[-1], r[-1]), fontsize=6, color="0.4", ha="right",
                            va="bottom")
        ax.axvline(2.0 * p / n, color="tab:green", lw=0.6, ls="-.")
        ax.set_ylim(-rlim, rlim)
        ax.set_xlim(0, hgrid[-1] * 1.02)
        _label_flagged(ax, d, "leverage", "student_internal")
        ax.set_title(_title(key, table, model), fontsize=8)
        ax.set_xlabel("leverage h", fontsize=7)
        ax.set_ylabel("studentized residual (internal)", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(title or f"Leverage vs residual; dashed: {INFLUENCE_RULE}, dotted: D = "
                 + ", ".join(f"{c:g}" for c in contours) + "; green: h = 2p/n", fontsize=10)
    fig.tight_layout()
    return fig
