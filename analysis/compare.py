"""Compare a run's tables with a reference set (e.g. the committed ``results/tables``), with stated tolerances.

``make all`` on another machine should give the committed tables. What "the same" means differs by
table and column (:data:`TOLERANCES`, first match wins); the README's *Same inputs, same numbers*
section says where each tolerance comes from:

* statistics (everything computed from the cohort CSV): the cohort CSV is byte-identical everywhere
  (:mod:`analysis.simulation.calibration.stable`), and the models' last bits follow LAPACK's, so
  numbers agree to ``rtol`` 1e-9 (measured: at most 5e-12) and print identically;
* imaging tables (phantom reconstructions and ROI measures): the same bits with any thread count and
  BLAS kernel; numpy's vectorised ``exp``, ``log``, ``arctan2`` and ``power`` round differently on a
  CPU without AVX-512, and the iterative solvers carry that into their results. Measured with
  numpy's AVX-512 paths disabled and OpenBLAS' Haswell kernel: the thalamic measure moved by up to
  0.003 ppb, accuracy errors by 0.02 ppb, vein exclusion by 12 of 2764 voxels. So: ppb and percent
  columns within 0.05 (absolute), voxel counts and vein statistics within 5 %, the rest within 1 %.

:func:`compare_tables` returns one tidy row per CSV; ``python -m analysis compare RUN REFERENCE``
prints them and exits non-zero when a table is missing or outside its tolerance (``make compare``
runs it against the committed tables).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["Tolerance", "TOLERANCES", "tolerance_for", "compare_tables"]


@dataclass(frozen=True)
class Tolerance:
    """How close two versions of a column must be: ``|a - b| <= atol + rtol |b|`` for every number."""

    pattern: str                 #: table file-name pattern (fnmatch), e.g. ``"imaging_cohort_*.csv"``
    rtol: float
    atol: float
    why: str
    columns: tuple = ("*",)      #: column-name patterns the rule applies to


_IMAGING = ("imaging_cohort_*.csv", "qsm_*.csv", "roi_*.csv", "freesurfer_*.csv")
_CPU = "numpy's vectorised transcendentals round differently without AVX-512"

#: Tolerances by table and column, first match wins (see the module docstring for the measurements).
TOLERANCES = (
    *(Tolerance(p, 0.05, 0.0, "voxels at a threshold flip: " + _CPU, ("n_*", "vein_*")) for p in _IMAGING),
    *(Tolerance(p, 0.0, 0.05, "ppb / percent, absolute: " + _CPU, ("*_ppb", "*_pct", "*_percent")) for p in _IMAGING),
    *(Tolerance(p, 1e-2, 1e-4, _CPU) for p in _IMAGING),
    Tolerance("*.csv", 1e-9, 1e-10, "statistics from the byte-identical cohort CSV (LAPACK's last bits)"),
)


def tolerance_for(name, column="*", tolerances=TOLERANCES):
    """The first :class:`Tolerance` that matches table file name ``name`` and ``column``."""
    for tol in tolerances:
        if fnmatch.fnmatch(Path(name).name, tol.pattern) and any(fnmatch.fnmatch(column, c) for c in tol.columns):
            return tol
    raise ValueError(f"no tolerance matches {name!r}, column {column!r}")


def _compare_frames(run, ref, name, tolerances):
    """Cells compared, cells outside their tolerance, largest difference in tolerance units, worst cell.

    A difference of 1 is at the edge of the tolerance; above 1 is outside."""
    if list(run.columns) != list(ref.columns):
        return 0, -1, np.nan, f"columns differ: {list(run.columns)} vs {list(ref.columns)}"
    if run.shape != ref.shape:
        return 0, -1, np.nan, f"shape differs: {run.shape} vs {ref.shape}"
    n_bad, worst, worst_cell = 0, 0.0, ""
    for col in ref.columns:
        tol = tolerance_for(name, str(col), tolerances)
        a, b = run[col], ref[col]
        num_a, num_b = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
        numeric = num_a.notna() & num_b.notna()
        text_a, text_b = a[~numeric].astype(str), b[~numeric].astype(str)
        bad_text = text_a != text_b
        n_bad += int(bad_text.sum())
        if bad_text.any() and worst < np.inf:
            i = bad_text.idxmax()
            worst, worst_cell = np.inf, f"{col}[{i}]: {a[i]!r} vs {b[i]!r} (text)"
        x, y = num_a[numeric].to_numpy(float), num_b[numeric].to_numpy(float)
        with np.errstate(invalid="ignore"):
            diff = np.where(x == y, 0.0, np.abs(x - y))          # equal infinities are equal
        allowed = tol.atol + tol.rtol * np.abs(y)
        bad = diff > allowed
        n_bad += int(bad.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(diff == 0, 0.0, diff / allowed)
        if score.size and score.max() > worst:
            k = int(np.argmax(score))
            worst = float(score[k])
            i = num_a[numeric].index[k]
            worst_cell = f"{col}[{i}]: {x[k]!r} vs {y[k]!r} (rtol {tol.rtol:g}, atol {tol.atol:g})"
    return int(ref.size), n_bad, worst, worst_cell


def compare_tables(run_dir, reference_dir, *, tolerances=TOLERANCES):
    """Compare every CSV of ``reference_dir`` with the file of the same name in ``run_dir``.

    Parameters
    ----------
    run_dir, reference_dir : str or Path
        Folders of CSV tables (e.g. a fresh ``results/tables`` and the committed one).
    tolerances : sequence of Tolerance
        Per-table tolerances, first match wins (default :data:`TOLERANCES`).

    Returns
    -------
    DataFrame
        One row per table: ``table``, ``status`` (``identical``: the same bytes; ``within``: every
        number within its column's tolerance; ``DIFFERENT``; ``missing``: not in the run; ``extra``:
        only in the run), ``cells``, ``cells_outside``, ``worst`` (the largest difference in units of
        its tolerance: at most 1 is within), ``worst_cell`` (with its tolerance).
    """
    run_dir, reference_dir = Path(run_dir), Path(reference_dir)
    for d, what in ((run_dir, "run_dir"), (reference_dir, "reference_dir")):
        if not d.is_dir():
            raise ValueError(f"{what}: {d} is not a folder")
    rows = []
    ref_files = sorted(p.name for p in reference_dir.glob("*.csv"))
    for name in ref_files:
        row = dict(table=name, cells=0, cells_outside=0, worst=np.nan, worst_cell="")
        run_file, ref_file = run_dir / name, reference_dir / name
        if not run_file.exists():
            rows.append({**row, "status": "missing"})
            continue
        if run_file.read_bytes() == ref_file.read_bytes():
            rows.append({**row, "status": "identical", "worst": 0.0})
            continue
        cells, n_bad, worst, cell = _compare_frames(pd.read_csv(run_file, keep_default_na=False),
                                                    pd.read_csv(ref_file, keep_default_na=False), name, tolerances)
        rows.append({**row, "status": "within" if n_bad == 0 else "DIFFERENT", "cells": cells,
                     "cells_outside": max(n_bad, 0), "worst": worst, "worst_cell": cell})
    for name in sorted({p.name for p in run_dir.glob("*.csv")} - set(ref_files)):
        rows.append(dict(table=name, status="extra", cells=0, cells_outside=0, worst=np.nan, worst_cell=""))
    return pd.DataFrame(rows, columns=["table", "status", "cells", "cells_outside", "worst", "worst_cell"])
