"""Checks shared by the statistics modules (private to :mod:`analysis.stats`).

Modules of the subpackage import from here; nothing outside ``analysis/stats`` should. The public
checks that callers may want (:func:`analysis.stats.diagnostics.check_alpha`,
:func:`~analysis.stats.diagnostics.check_design`, ...) are re-exported by the modules that
document them.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_alpha", "rank_deficiency"]


def check_alpha(alpha, *, name="alpha"):
    """Return ``alpha`` as a float; raise ``ValueError`` naming ``name`` unless 0 < alpha < 1.

    Parameters
    ----------
    alpha : float
        Significance level or 1 - confidence level.
    name : str, keyword-only
        Parameter name used in the error message.

    Returns
    -------
    float
    """
    ok = (isinstance(alpha, numbers.Real) and not isinstance(alpha, bool)
          and np.isfinite(alpha) and 0.0 < float(alpha) < 1.0)
    if not ok:
        raise ValueError(f"{name} must be in (0, 1), got {alpha!r}")
    return float(alpha)


def rank_deficiency(result, *, data_label="these data"):
    """Why a fitted statsmodels model's design cannot be estimated, or ``None`` if it can.

    statsmodels fits a rank-deficient design silently (pseudo-inverse); a cohort in which, e.g.,
    every patient is on DMT or none has enhancing lesions cannot estimate that coefficient.

    Parameters
    ----------
    result : statsmodels results
        A fitted model with ``model.exog`` (shape (n, p)) and ``model.exog_names``.
    data_label : str, keyword-only
        How the message refers to the data (``"these data"``, ``"this cohort"``).

    Returns
    -------
    str or None
        ``"column(s) ['dmt_use'] take a single value in these data"`` when non-intercept columns
        are constant, ``"its columns [...] are collinear"`` otherwise; ``None`` for a design of
        full column rank.
    """
    X = np.asarray(result.model.exog, dtype=float)
    if np.linalg.matrix_rank(X) == X.shape[1]:
        return None
    names = list(result.model.exog_names)
    const = [n for j, n in enumerate(names) if n != "Intercept" and np.all(X[:, j] == X[0, j])]
    return (f"column(s) {const} take a single value in {data_label}" if const
            else f"its columns {names} are collinear")
