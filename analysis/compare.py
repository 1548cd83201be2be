"""Compare a run's tables with a reference set (e.g. the committed ``results/tables``), with stated tolerances.

``make all`` on another machine should give the committed tables. What "the same" means differs by
table (:data:`TOLERANCES`, first matching pattern wins); the README's *Same inputs, same numbers*
section says where each tolerance comes from:

* statistics (everything computed from the cohort CSV): the cohort CSV is byte-identical everywhere
  (:mod:`analysis.simulation.calibration.stable`), and the models' last bits follow LAPACK's, so
  numbers agree to ``rtol`` 1e-9 (measured: below 1e-12) and print identically;
* imaging tables (phantom reconstructions and ROI measures): the same bits with any thread count and
  BLAS kernel; numpy's vectorised ``exp``, ``log``, ``arctan2`` and ``power`` round differently on a
  CPU without AVX-512, which moves the phantom measures by ~1e-5 (relative), so ``rtol`` 1e-3.

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
    """How close two versions of a table must be: ``|a - b| <= atol + rtol |b|`` for every number."""

    pattern: str          #: file-name pattern (fnmatch), e.g. ``"imaging_cohort_*.csv"``
    rtol: float
    atol: float
    why: str


#: Tolerances by table, first match wins.
TOLERANCES = (
    Tolerance("imaging_cohort_*.csv", 1e-3, 1e-6, "imaging: numpy's vectorised transcendentals differ by CPU"),
    Tolerance("qsm_*.csv", 1e-3, 1e-6, "imaging: numpy's vectorised transcendentals differ by CPU"),
    Tolerance("roi_*.csv", 1e-3, 1e-6, "imaging: numpy's vectorised transcendentals differ by CPU"),
    Tolerance("freesurfer_*.csv", 1e-3, 1e-6, "imaging: phantom segmentation statistics"),
    Tolerance("*.csv", 1e-9, 1e-12, "statistics from the byte-identical cohort CSV (LAPACK's last bits)"),
)


def tolerance_for(name, tolerances=TOLERANCES):
    """The first :class:`Tolerance` whose pattern matches the file name ``name``."""
    for tol in tolerances:
        if fnmatch.fnmatch(Path(name).name, tol.pattern):
            return tol
    raise ValueError(f"no tolerance matches {name!r}")


def _compare_frames(run, ref, tol):
    """(number of cells compared, number outside the tolerance, largest relative difference, worst cell)."""
    if list(run.columns) != list(ref.columns):
        return 0, -1, np.nan, f"columns differ: {list(run.columns)} vs {list(ref.columns)}"
    if run.shape != ref.shape:
        return 0, -1, np.nan, f"shape differs: {run.shape} vs {ref.shape}"
    n_bad, worst, worst_cell = 0, 0.0, ""
    for col in ref.columns:
        a, b = run[col], ref[col]
        num_a, num_b = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
        numeric = num_a.notna() & num_b.notna()
        text_a, text_b = a[~numeric].astype(str), b[~numeric].astype(str)
        bad_text = text_a != text_b
        n_bad += int(bad_text.sum())
        if bad_text.any():
            i = bad_text.idxmax()
            worst_cell = worst_cell or f"{col}[{i}]: {a[i]!r} vs {b[i]!r}"
        x, y = num_a[numeric].to_numpy(float), num_b[numeric].to_numpy(float)
        diff = np.abs(x - y)
        bad = diff > tol.atol + tol.rtol * np.abs(y)
        n_bad += int(bad.sum())
        rel = diff / np.maximum(np.abs(y), tol.atol / max(tol.rtol, 1e-300))
        if rel.size and rel.max() > worst:
            k = int(np.argmax(rel))
            worst = float(rel[k])
            i = num_a[numeric].index[k]
            worst_cell = f"{col}[{i}]: {x[k]!r} vs {y[k]!r}"
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
        One row per table: ``table``, ``status`` (``identical``: the same bytes; ``within``: numbers
        within the tolerance; ``DIFFERENT``; ``missing``: not in the run; ``extra``: only in the run),
        ``cells``, ``cells_outside``, ``max_rel_diff``, ``worst_cell``, ``rtol``, ``atol``, ``why``.
    """
    run_dir, reference_dir = Path(run_dir), Path(reference_dir)
    for d, what in ((run_dir, "run_dir"), (reference_dir, "reference_dir")):
        if not d.is_dir():
            raise ValueError(f"{what}: {d} is not a folder")
    rows = []
    ref_files = sorted(p.name for p in reference_dir.glob("*.csv"))
    for name in ref_files:
        tol = tolerance_for(name, tolerances)
        row = dict(table=name, cells=0, cells_outside=0, max_rel_diff=np.nan, worst_cell="", rtol=tol.rtol,
                   atol=tol.atol, why=tol.why)
        run_file, ref_file = run_dir / name, reference_dir / name
        if not run_file.exists():
            rows.append({**row, "status": "missing"})
            continue
        if run_file.read_bytes() == ref_file.read_bytes():
            rows.append({**row, "status": "identical", "max_rel_diff": 0.0})
            continue
        cells, n_bad, worst, cell = _compare_frames(pd.read_csv(run_file, keep_default_na=False),
                                                    pd.read_csv(ref_file, keep_default_na=False), tol)
        rows.append({**row, "status": "within" if n_bad == 0 else "DIFFERENT", "cells": cells,
                     "cells_outside": max(n_bad, 0), "max_rel_diff": worst, "worst_cell": cell})
    for name in sorted({p.name for p in run_dir.glob("*.csv")} - set(ref_files)):
        rows.append(dict(table=name, status="extra", cells=0, cells_outside=0, max_rel_diff=np.nan, worst_cell="",
                         rtol=np.nan, atol=np.nan, why=""))
    cols = ["table", "status", "cells", "cells_outside", "max_rel_diff", "worst_cell", "rtol", "atol", "why"]
    return pd.DataFrame(rows, columns=cols)
