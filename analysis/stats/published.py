"""The paper's printed numbers, and how to compare ours with them at the paper's precision.

The values are kept as printed strings (``analysis/data/published.yaml``) because the number of
printed decimals is information: "9.0" means a value in [8.95, 9.05), ".037" a P in [.0365, .0375).

Source: AJNR Am J Neuroradiol 2018;39:467-72 (Results paragraph, Tables 1 and 2, Results text).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from functools import lru_cache
from importlib import resources

import yaml

__all__ = [
    "TABLE1_OUTCOMES",
    "TABLE2_PREDICTORS",
    "MODELS",
    "STATS",
    "published",
    "decimals",
    "interval",
    "format_like",
    "prints_as",
    "table_rows",
]

TABLE1_OUTCOMES = ("thalamic_volume", "total_gray_matter_volume", "cortical_thickness",
                   "t2_lesion_volume_log")
TABLE2_PREDICTORS = ("enhancing_lesions_present", "age", "sex", "dmt_use", "disease_duration")
MODELS = ("unadjusted", "adjusted")
STATS = ("coef", "ci_low", "ci_high", "p")


@lru_cache(maxsize=1)
def published():
    """Return the published numbers as a nested dict of printed strings (see module docstring)."""
    text = resources.files("analysis").joinpath("data/published.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def decimals(printed):
    """Number of decimals of a printed number: ``decimals(".037") == 3``, ``decimals("-860") == 0``."""
    s = str(printed).strip().lstrip("<>")
    return len(s.split(".")[1]) if "." in s else 0


def interval(printed):
    """The half-open interval of values that print as ``printed`` when rounded: ``(low, high)``."""
    s = str(printed).strip()
    v = float(s)
    h = 0.5 * 10.0 ** (-decimals(s))
    return v - h, v + h


def format_like(value, printed, *, rule="round"):
    """Format ``value`` with the decimals and style of ``printed``.

    Parameters
    ----------
    value : float
        Our number.
    printed : str
        The paper's printed number; its decimals and leading-zero style (".63" vs "0.16") are copied.
    rule : {"round", "truncate"}
        Round half away from zero (what Stata and most authors do) or truncate toward zero.

    Examples
    --------
    >>> format_like(0.6312, ".63")
    '.63'
    >>> format_like(-0.000081, "-0.00008")
    '-0.00008'
    """
    if rule not in ("round", "truncate"):
        raise ValueError(f"rule must be 'round' or 'truncate', got {rule!r}")
    s = str(printed).strip()
    q = Decimal(1).scaleb(-decimals(s))
    d = Decimal(repr(float(value))).quantize(q, rounding=ROUND_HALF_UP if rule == "round" else ROUND_DOWN)
    if d == 0:
        d = abs(d)  # no "-0.0"
    out = format(d, "f")
    if not s.lstrip("-").startswith("0") and s.lstrip("-").startswith("."):
        out = out.replace("0.", ".", 1)  # ".63" style (P values)
    return out


def prints_as(value, printed, *, rule="round"):
    """True when ``value`` prints exactly as ``printed`` at the paper's precision."""
    s = str(printed).strip()
    if s.startswith("<"):
        return float(value) < float(s[1:])
    return format_like(value, s, rule=rule) == format_like(float(s), s)


def table_rows(table):
    """Published rows of ``"table1"`` or ``"table2"`` as a list of dicts (printed strings)."""
    if table not in ("table1", "table2"):
        raise ValueError(f"table must be 'table1' or 'table2', got {table!r}")
    key = "outcome" if table == "table1" else "predictor"
    rows = []
    for name, models in published()[table].items():
        for model in MODELS:
            rows.append({key: name, "model": model, **models[model]})
    return rows
