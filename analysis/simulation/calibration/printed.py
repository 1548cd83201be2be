"""What the paper's printed numbers allow: feasible (b, SE) regions, normalised distances, margins.

Each printed number is an interval (half a unit of its last digit, :func:`analysis.stats.published.interval`).
:func:`row_region` finds the (b, SE) pairs for which a regression row (coefficient, 95 % CI, P)
prints as published and :func:`targets` the centre of that region for every row of Tables 1 and 2.
:func:`row_distances` (normalised distance from the centre of each interval: |d| < 1 prints) and
:func:`print_margin` (1 at the centre, 0 at the edges) are the criteria of the calibration.
The cohort's counts (:data:`N`, :data:`N_FEMALE`, ...) and :data:`T2_ORDER` live here too.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, stats

from analysis.stats.published import interval, published, table_rows

__all__ = ["N", "N_FEMALE", "N_DMT", "N_ENHANCING", "MIN_ONSET_AGE", "T2_ORDER", "P_INTERVALS", "row_region",
           "targets", "printed_centres", "row_distances", "print_margin"]

N = 95
N_FEMALE = 64          # "two-thirds" (63 or 64); only 64 fits Table 2's sex row with SD 11.7 (see notes)
N_DMT = 57
N_ENHANCING = 9
MIN_ONSET_AGE = 16.0   # age minus disease duration (years)

#: Table 2 predictor order used internally (enhancing, age, male, dmt, duration).
T2_ORDER = ("enhancing_lesions_present", "age", "sex", "dmt_use", "disease_duration")


def row_region(row, df_resid, *, p_printed=None, grid=400):
    """Region of (b, SE) pairs for which a Stata row prints as published.

    Parameters
    ----------
    row : dict
        Printed strings ``coef, ci_low, ci_high, p`` (from :func:`analysis.stats.published.table_rows`).
    df_resid : int
        Residual degrees of freedom of the model (n - number of parameters).
    p_printed : str, optional
        Use this printed P instead of ``row["p"]`` (for the one cell where the text's P is the one
        consistent with the table's CI).

    Returns
    -------
    dict
        ``b`` and ``se``: the centre of the feasible region; ``b_halfwidth``, ``se_halfwidth``:
        half its extent; ``n_points``: grid points inside (0 means infeasible).
    """
    t = stats.t.ppf(0.975, df_resid)
    b_lo, b_hi = interval(row["coef"])
    lo_l, lo_h = interval(row["ci_low"])
    hi_l, hi_h = interval(row["ci_high"])
    p_lo, p_hi = interval(p_printed or row["p"])
    se_lo = max((hi_l - b_hi) / t, (b_lo - lo_h) / t, 1e-15)
    se_hi = min((hi_h - b_lo) / t, (b_hi - lo_l) / t)
    if se_hi <= se_lo:
        return {"b": np.nan, "se": np.nan, "b_halfwidth": 0.0, "se_halfwidth": 0.0, "n_points": 0}
    bb, ss = np.meshgrid(np.linspace(b_lo, b_hi, grid), np.linspace(se_lo, se_hi, grid), indexing="ij")
    lo, hi = bb - t * ss, bb + t * ss
    p = 2 * stats.t.sf(np.abs(bb) / ss, df_resid)
    ok = (lo >= lo_l) & (lo < lo_h) & (hi >= hi_l) & (hi < hi_h) & (p >= p_lo) & (p < p_hi)
    if not ok.any():
        return {"b": np.nan, "se": np.nan, "b_halfwidth": 0.0, "se_halfwidth": 0.0, "n_points": 0}
    # centre: the feasible point farthest (in normalised units) from the region's boundary
    depth = ndimage.distance_transform_edt(np.pad(ok, 1))[1:-1, 1:-1]
    i, j = np.unravel_index(np.argmax(depth), depth.shape)
    return {"b": float(bb[i, j]), "se": float(ss[i, j]),
            "b_halfwidth": float((bb[ok].max() - bb[ok].min()) / 2),
            "se_halfwidth": float((ss[ok].max() - ss[ok].min()) / 2), "n_points": int(ok.sum()),
            "points": (bb[ok], ss[ok])}


def targets(n=N):
    """Centre of the printed region of every Table 1 and Table 2 row (dict keyed by (name, model))."""
    out = {}
    for table, key in (("table1", "outcome"), ("table2", "predictor")):
        for row in table_rows(table):
            df_resid = n - 2 if row["model"] == "unadjusted" else n - 6
            p_override = None
            if table == "table2" and row[key] == "age" and row["model"] == "adjusted":
                p_override = published()["text"]["age_adjusted_p"]  # ".028": the P the CI implies
            reg = row_region(row, df_resid, p_printed=p_override)
            if reg["n_points"] == 0:
                raise RuntimeError(f"{table} {row[key]} {row['model']}: printed numbers are inconsistent")
            out[(row[key], row["model"])] = reg
    # cortical thickness adjusted: aim at P in [.945, .95) so that the text's .94 is its truncation
    reg = out[("cortical_thickness", "adjusted")]
    t89 = stats.t.isf(0.9475 / 2, n - 6)
    reg["se"] = abs(reg["b"]) / t89
    return out


#: P intervals that differ from the table's printed P (see analysis/data/published.yaml):
#: adjusted age, the text's .028 (the table's .02 is its truncation); adjusted cortical thickness,
#: [.945, .95) so that the table's .95 (rounded) and the text's .94 (truncated) both hold.
P_INTERVALS = {("age", "adjusted"): (0.0275, 0.0285),
               ("cortical_thickness", "adjusted"): (0.945, 0.95)}


def printed_centres(rows, p_intervals):
    """Centres and half-widths of (coef, CI low, CI high, P) of each row: arrays (n_rows, 4)."""
    c, h = [], []
    for key, row in rows:
        ivs = [interval(row["coef"]), interval(row["ci_low"]), interval(row["ci_high"]),
               p_intervals.get(key) or interval(row["p"])]
        c.append([(a + b) / 2 for a, b in ivs])
        h.append([(b - a) / 2 for a, b in ivs])
    return np.array(c), np.array(h)


def row_distances(b, se, df, centres, halfwidths):
    """Normalised distances of printed (coef, CI low, CI high, P) from their interval centres.

    ``b``, ``se``: arrays (k,); returns (k, 4). |distance| < 1 means the number prints as published.
    """
    t = stats.t.ppf(0.975, df)
    p = 2 * stats.t.sf(np.abs(b) / se, df)
    vals = np.column_stack([b, b - t * se, b + t * se, p])
    return (vals - centres) / halfwidths


def print_margin(value, lo, hi):
    """1 at the centre of the printed interval [lo, hi), 0 at its edges, negative outside."""
    c, h = (lo + hi) / 2, (hi - lo) / 2
    return 1.0 - abs(value - c) / h
