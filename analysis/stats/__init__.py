"""Statistics stage: the paper's models, their diagnostics and re-analysis, power and agreement.

The statistics see only the cohort table -- one row per patient with the columns of
:mod:`analysis.cohort.dictionary` (:func:`analysis.cohort.dictionary.load_cohort`) -- and the
paper's printed numbers (:mod:`analysis.stats.published`); nothing here reads an image.

Modules
-------
``models``       Tables 1 and 2 and the age sensitivity analysis (OLS, as Stata's ``regress``).
``published``    The paper's printed numbers and comparison at the printed precision.
``report``       Our numbers beside the paper's: tables and forest plots.
``power``        Power and sample size of the correlation test, three ways.
``normality``    Stata's ``sktest`` and ``ladder``/``qladder``/``gladder``.
``diagnostics``  Influence, leverage, collinearity of the 14 models.
``robust``       HC3 standard errors, case bootstrap (BCa), Huber regression.
``reanalysis``   Multiplicity, Box-Cox, rank correlation, effect sizes, "does it survive?".
``agreement``    Bland-Altman, intraclass correlation, the lesion model refitted on measurements.

The main functions are re-exported here (``from analysis.stats import table1``). They are
loaded on first use, so ``import analysis.stats`` stays cheap: statsmodels, scipy and
matplotlib are imported only with the module that needs them.
"""

from __future__ import annotations

import importlib

#: Re-exported name -> the module of :mod:`analysis.stats` that defines it.
_EXPORTS = {
    # models
    "SUSCEPTIBILITY": "models", "fit_ols": "models", "table1": "models", "table2": "models",
    "sensitivity_age": "models", "sensitivity_age_sweep": "models", "compare_with_published": "models",
    # published (not its function ``published``, which the submodule's name would shadow)
    "format_like": "published", "prints_as": "published", "table_rows": "published",
    # power
    "power_correlation": "power", "n_for_power": "power", "detectable_r": "power", "power_table": "power",
    # normality
    "sktest": "normality", "ladder": "normality",
    # diagnostics
    "ModelSpec": "diagnostics", "model_specs": "diagnostics", "influence_table": "diagnostics",
    "influence_summary": "diagnostics", "vif_table": "diagnostics",
    # robust
    "hc3_table": "robust", "bootstrap_ols": "robust", "bootstrap_table": "robust", "huber_table": "robust",
    # reanalysis
    "multiplicity_table": "reanalysis", "boxcox_table": "reanalysis", "spearman_table": "reanalysis",
    "effect_sizes": "reanalysis", "observed_power_table": "reanalysis", "survive_table": "reanalysis",
    # agreement
    "bland_altman": "agreement", "icc": "agreement", "agreement_table": "agreement",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    """Load a re-exported name from its module on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
