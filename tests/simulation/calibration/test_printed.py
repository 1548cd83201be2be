"""What a printed row allows: the calibration's distance criterion agrees with printing."""

import numpy as np
from scipy import stats

from analysis.simulation.calibration.printed import printed_centres, row_distances, row_region
from analysis.stats.published import prints_as, table_rows


def test_row_distance_below_one_iff_prints():
    """The calibration's criterion agrees with printing, on a grid around Table 2's enhancing row."""
    row = {(r["predictor"], r["model"]): r for r in table_rows("table2")}[("enhancing_lesions_present",
                                                                        "unadjusted")]
    centres, hw = printed_centres([(None, row)], {})
    rng = np.random.default_rng(0)
    b = rng.uniform(8.39, 8.41, 2000)
    se = rng.uniform(4.022, 4.031, 2000)
    d = row_distances(b, se, 93, centres, hw)
    t = stats.t.ppf(0.975, 93)
    p = 2 * stats.t.sf(np.abs(b / se), 93)
    printed = np.array([prints_as(bi, row["coef"]) and prints_as(bi - t * si, row["ci_low"]) and
                        prints_as(bi + t * si, row["ci_high"]) and prints_as(pi, row["p"])
                        for bi, si, pi in zip(b, se, p)])
    assert printed.any() and (~printed).any()
    assert np.array_equal(np.abs(d).max(axis=1) < 1, printed)


def test_row_region_detects_the_inconsistent_table2_age_p():
    row = {(r["predictor"], r["model"]): r for r in table_rows("table2")}[("age", "adjusted")]
    assert row_region(row, 89)["n_points"] == 0                    # .02 cannot go with the CI
    assert row_region(row, 89, p_printed=".028")["n_points"] > 0   # the text's .028 can
