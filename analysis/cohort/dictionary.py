"""The cohort table: data dictionary, validation, and the bundled synthetic cohort.

One row per patient. The bundled ``data/cohort.csv`` is **simulated**: the study's patient-level
data were never published, so :mod:`analysis.simulation.calibration` generates a cohort of 95 whose marginal
summaries and regression tables print exactly as the paper's. Point any notebook at your own CSV
(same columns) with its ``cohort_csv`` parameter; :func:`load_cohort` checks it first.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.io import ROOT

__all__ = ["DEFAULT_COHORT_CSV", "DEFAULT_SEED", "Column", "COLUMNS", "COLUMN_NAMES", "CohortUnitsWarning",
           "data_dictionary", "validate_cohort", "load_cohort", "describe_cohort"]

#: Default location of the bundled (simulated) cohort.
DEFAULT_COHORT_CSV = ROOT / "data" / "cohort.csv"

#: Seed of the bundled synthetic cohort.
DEFAULT_SEED = 20180301


@dataclass(frozen=True)
class Column:
    """One column of the cohort CSV."""

    name: str
    dtype: str            # "str", "int", "float", "category", "binary"
    unit: str
    description: str
    min: float | None = None            # inclusive bounds; None = unbounded
    max: float | None = None
    exclusive_min: bool = False         # True when the bound itself is not allowed (e.g. > 0 for logs)
    categories: tuple = ()
    step: float | None = None           # values must be multiples of this (EDSS half points)


COLUMNS = (
    Column("subject_id", "str", "-", "Participant label (BIDS style, e.g. 'sub-001'); unique."),
    Column("age_years", "float", "years", "Age at the MRI scan.", 18, 100),
    Column("sex", "category", "-", "Sex: 'F' (female) or 'M' (male).", categories=("F", "M")),
    Column("edss", "float", "EDSS points", "Expanded Disability Status Scale (0, 1.0, 1.5, ..., 10).",
           0, 10, step=0.5),
    Column("disease_duration_years", "float", "years",
           "Time since the first reported symptom, at the scan.", 0, 80),
    Column("dmt_use", "binary", "-", "On a disease-modifying therapy at the scan (1 = yes, 0 = no)."),
    Column("enhancing_lesions_present", "binary", "-",
           "At least one gadolinium-enhancing lesion at the scan (1 = yes, 0 = no)."),
    Column("t2_lesion_volume_ml", "float", "mL", "Total T2-hyperintense white-matter lesion volume; "
           "must be > 0 because the models use its natural log.", 0, 2000, exclusive_min=True),
    Column("thalamic_volume_mm3", "float", "mm³", "Left + right thalamus volume (FreeSurfer aseg).",
           1000, 40000),
    Column("thalamic_relative_susceptibility_ppb", "float", "ppb",
           "Mean thalamic susceptibility (veins excluded) minus the mean in the CSF reference ROI.",
           -500, 500),
    Column("total_gray_matter_volume_mm3", "float", "mm³", "FreeSurfer TotalGrayVol.", 100000, 1500000),
    Column("mean_cortical_thickness_mm", "float", "mm",
           "Vertex-weighted mean cortical thickness of both hemispheres (FreeSurfer aparc).", 0.5, 5),
)

COLUMN_NAMES = tuple(c.name for c in COLUMNS)
_BY_NAME = {c.name: c for c in COLUMNS}


def data_dictionary():
    """The data dictionary as a DataFrame (column, type, unit, allowed values, description)."""
    rows = []
    for c in COLUMNS:
        if c.categories:
            allowed = ", ".join(repr(v) for v in c.categories)
        elif c.dtype == "binary":
            allowed = "0, 1"
        elif c.min is not None:
            lo = f"> {c.min:g}" if c.exclusive_min else f">= {c.min:g}"
            allowed = f"{lo} and <= {c.max:g}" + (f", steps of {c.step:g}" if c.step else "")
        else:
            allowed = "unique, non-empty"
        rows.append({"column": c.name, "type": c.dtype, "unit": c.unit, "allowed": allowed,
                     "description": c.description})
    return pd.DataFrame(rows)


def _where(path, rows):
    """'rows 3, 7 (subject_id sub-003, sub-007)'-style location of bad rows (1-based CSV data rows)."""
    rows = list(rows)
    shown = ", ".join(str(r + 1) for r in rows[:5]) + (" ..." if len(rows) > 5 else "")
    return f"{path}: row{'s' if len(rows) > 1 else ''} {shown}"


def validate_cohort(df, *, source="cohort"):
    """Check a cohort DataFrame against the data dictionary and return a cleaned copy.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per patient with at least the columns of :data:`COLUMNS` (extra columns are kept).
    source : str
        Name used in error messages (usually the CSV path).

    Returns
    -------
    pandas.DataFrame
        A copy with numeric columns as float/int, ``sex`` as a string column.

    Raises
    ------
    ValueError
        Naming the column (and the data rows, 1-based) for a missing column, a missing or
        non-numeric value, a value out of range, a value off its step, an unknown category or a
        duplicated subject id.
    """
    missing = [c for c in COLUMN_NAMES if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; expected {list(COLUMN_NAMES)}")
    if len(df) == 0:
        raise ValueError(f"{source}: no rows")
    out = df.copy()
    for c in COLUMNS:
        col = out[c.name]
        empty = col.isna() | (col.astype(str).str.strip() == "")
        if empty.any():
            raise ValueError(f"{_where(source, np.flatnonzero(empty))}: column '{c.name}' is empty")
        if c.dtype == "str":
            out[c.name] = col.astype(str).str.strip()
            dup = out[c.name].duplicated(keep=False)
            if dup.any():
                raise ValueError(f"{_where(source, np.flatnonzero(dup))}: column '{c.name}' has duplicated "
                                 f"values {sorted(set(out[c.name][dup]))}")
            continue
        if c.dtype == "category":
            vals = col.astype(str).str.strip()
            bad = ~vals.isin(c.categories)
            if bad.any():
                raise ValueError(f"{_where(source, np.flatnonzero(bad))}: column '{c.name}' has unknown "
                                 f"categor{'ies' if bad.sum() > 1 else 'y'} {sorted(set(vals[bad]))}; "
                                 f"allowed: {list(c.categories)}")
            out[c.name] = vals
            continue
        num = pd.to_numeric(col, errors="coerce")
        bad = num.isna()
        if bad.any():
            raise ValueError(f"{_where(source, np.flatnonzero(bad))}: column '{c.name}' is not numeric "
                             f"({list(col[bad].astype(str))[:5]})")
        if c.dtype == "binary":
            bad = ~num.isin([0, 1])
            if bad.any():
                raise ValueError(f"{_where(source, np.flatnonzero(bad))}: column '{c.name}' must be 0 or 1, "
                                 f"got {list(num[bad])[:5]}")
            out[c.name] = num.astype(int)
            continue
        lo_bad = (num <= c.min) if c.exclusive_min else (num < c.min)
        bad = lo_bad | (num > c.max)
        if bad.any():
            lo = f"> {c.min:g}" if c.exclusive_min else f">= {c.min:g}"
            hint = " (it is log-transformed)" if c.name == "t2_lesion_volume_ml" else ""
            raise ValueError(f"{_where(source, np.flatnonzero(bad))}: column '{c.name}' out of range{hint}: "
                             f"{list(num[bad])[:5]} not {lo} and <= {c.max:g} {c.unit}")
        if c.step:
            off = ~np.isclose(num / c.step, np.round(num / c.step))
            if off.any():
                raise ValueError(f"{_where(source, np.flatnonzero(off))}: column '{c.name}' must be in "
                                 f"steps of {c.step:g}, got {list(num[off])[:5]}")
        out[c.name] = num.astype(float)
    _warn_implausible_units(out, source)
    return out


class CohortUnitsWarning(UserWarning):
    """A cohort column whose values are in range but look like the wrong unit (e.g. ppm for ppb)."""


def _warn_implausible_units(df, source):
    """Flag columns whose every value suggests another unit; the numbers are kept as they are."""
    sus = df["thalamic_relative_susceptibility_ppb"].astype(float)
    if len(sus) >= 3 and (sus.abs() < 1.0).all():
        warnings.warn(f"{source}: every thalamic_relative_susceptibility_ppb is within ±1 (max |value| "
                      f"{sus.abs().max():.3g}): these look like ppm, not ppb; multiply by 1000 if so "
                      "(the published cohort mean is −29 ppb)", CohortUnitsWarning, stacklevel=3)


def load_cohort(path=DEFAULT_COHORT_CSV):
    """Read and validate a cohort CSV (never writes to it).

    Parameters
    ----------
    path : str or Path
        CSV with the columns of the data dictionary (``data/README.md``).

    Returns
    -------
    pandas.DataFrame
        The validated cohort (see :func:`validate_cohort`).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"cohort CSV {path} does not exist")
    try:
        df = pd.read_csv(path, dtype={"subject_id": str, "sex": str}, keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable CSV ({exc})") from exc
    return validate_cohort(df, source=str(path))


def describe_cohort(df):
    """Descriptive statistics in the paper's units, one row per variable (tidy DataFrame).

    Continuous variables: mean, SD (n - 1), min, max; volumes converted to mL as the paper prints
    them. Counts: number of patients with the attribute.
    """
    scale = {"thalamic_volume_mm3": ("thalamic_volume_ml", 1e-3),
             "total_gray_matter_volume_mm3": ("total_gray_matter_volume_ml", 1e-3),
             "mean_cortical_thickness_mm": ("cortical_thickness_mm", 1.0),
             "thalamic_relative_susceptibility_ppb": ("thalamic_relative_susceptibility_ppb", 1.0)}
    rows = [{"variable": "n", "statistic": "count", "value": float(len(df))}]
    for name in ("age_years", "edss", "disease_duration_years", "t2_lesion_volume_ml",
                 "thalamic_volume_mm3", "thalamic_relative_susceptibility_ppb",
                 "total_gray_matter_volume_mm3", "mean_cortical_thickness_mm"):
        label, f = scale.get(name, (name, 1.0))
        x = df[name].astype(float) * f
        for stat, val in (("mean", x.mean()), ("sd", x.std(ddof=1)), ("min", x.min()), ("max", x.max())):
            rows.append({"variable": label, "statistic": stat, "value": float(val)})
    rows.append({"variable": "female", "statistic": "count", "value": float((df["sex"] == "F").sum())})
    rows.append({"variable": "on_dmt", "statistic": "count", "value": float(df["dmt_use"].sum())})
    rows.append({"variable": "enhancing_lesions_present", "statistic": "count",
                 "value": float(df["enhancing_lesions_present"].sum())})
    return pd.DataFrame(rows)
