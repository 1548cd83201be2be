"""Tests of analysis.stats.published: the paper's printed numbers and comparison at its precision.

Expected values are worked out by hand from the printed strings: a number printed with d decimals
stands for the half-open interval [v - 0.5·10^-d, v + 0.5·10^-d); rounding is half away from zero
on the decimal representation of the float (so 0.0365 prints as .037, not .036 as binary
rounding of 0.0365 would give).
"""

import math

import pytest

from analysis.stats import published as pub
from analysis.stats.published import decimals, format_like, interval, prints_as, table_rows

# -- decimals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("printed,expected", [
    (".037", 3), ("-860", 0), ("0.0016", 4), ("9.0", 1), ("8.40", 2), ("-0.00008", 5),
    ("<.001", 3), ("95", 0), (" .63 ", 2), ("-28.0", 1),
])
def test_decimals(printed, expected):
    assert decimals(printed) == expected


# -- interval ----------------------------------------------------------------------------------


@pytest.mark.parametrize("printed,low,high", [
    (".037", 0.0365, 0.0375),
    ("-860", -860.5, -859.5),
    ("9.0", 8.95, 9.05),
    ("0.0016", 0.00155, 0.00165),
    ("-0.00008", -0.000085, -0.000075),
    ("8.40", 8.395, 8.405),
    ("305", 304.5, 305.5),
])
def test_interval(printed, low, high):
    lo, hi = interval(printed)
    assert lo == pytest.approx(low, abs=1e-12) and hi == pytest.approx(high, abs=1e-12)
    assert hi - lo == pytest.approx(10.0 ** -decimals(printed))


# -- format_like -------------------------------------------------------------------------------


@pytest.mark.parametrize("value,printed,expected", [
    (0.6312, ".63", ".63"),            # P-value style: no leading zero
    (0.625, ".63", ".63"),             # half rounds up
    (0.6249999, ".63", ".62"),
    (0.0365, ".037", ".037"),          # decimal, not binary, half: 0.0365 is 0.03649999... as a float
    (0.16, "0.16", "0.16"),            # leading zero kept when the paper prints one
    (0.9449, "0.94", "0.94"),
    (-859.5, "-860", "-860"),          # half away from zero for negatives
    (-859.49, "-860", "-859"),
    (304.5, "305", "305"),
    (8.995, "9.0", "9.0"),
    (8.4, "8.40", "8.40"),             # trailing zeros kept
    (10.675, "10.68", "10.68"),
    (-0.000081, "-0.00008", "-0.00008"),
    (-0.000084999, "-0.00008", "-0.00008"),
    (-0.000085, "-0.00008", "-0.00009"),
    (0.0057, "0.0057", "0.0057"),
    (-0.01, "9.0", "0.0"),             # no negative zero
    (-0.00004, "-0.0007", "0.0000"),
    (1.0, ".63", "1.00"),
])
def test_format_like_rounds(value, printed, expected):
    assert format_like(value, printed) == expected


@pytest.mark.parametrize("value,printed,expected", [
    (0.0284, ".02", ".02"),            # Table 2's adjusted age P: .028 truncated is .02
    (0.9472, ".94", ".94"),            # the text's cortical-thickness P: .9472 truncated
    (0.639, ".63", ".63"),
    (-859.9, "-860", "-859"),          # toward zero
    (8.4999, "8.40", "8.49"),
    (-0.0001, "-0.0007", "-0.0001"),
])
def test_format_like_truncates(value, printed, expected):
    assert format_like(value, printed, rule="truncate") == expected


def test_format_like_rejects_unknown_rule():
    with pytest.raises(ValueError, match="rule"):
        format_like(0.5, ".5", rule="ceil")


# -- prints_as: rounding vs truncation ---------------------------------------------------------


@pytest.mark.parametrize("value,printed,rule,expected", [
    (0.0284, ".028", "round", True),
    (0.0284, ".02", "round", False),   # rounds to .03
    (0.0284, ".02", "truncate", True),
    (0.0284, ".03", "round", True),
    (0.9472, ".95", "round", True),    # Table 1 (rounded) ...
    (0.9472, ".94", "truncate", True),  # ... and the text (truncated) agree only for .945 <= P < .95
    (0.9472, ".94", "round", False),
    (0.9442, ".95", "round", False),
    (8.95, "9.0", "round", True),      # lower end of the interval is in
    (9.05, "9.0", "round", False),     # upper end is out
    (9.0499, "9.0", "round", True),
    (-860.4, "-860", "round", True),
    (-860.5, "-860", "round", False),
    (-859.5, "-860", "round", True),
    (-0.000075, "-0.00008", "round", True),
    (-0.000074, "-0.00008", "round", False),
    (0.0016, "0.0016", "round", True),
    (0.00166, "0.0016", "round", False),
    (0.00166, "0.0016", "truncate", True),
])
def test_prints_as(value, printed, rule, expected):
    assert prints_as(value, printed, rule=rule) is expected


@pytest.mark.parametrize("value,expected", [(0.0004, True), (0.000999, True), (0.001, False), (0.002, False)])
def test_prints_as_less_than(value, expected):
    assert prints_as(value, "<.001") is expected


def test_prints_as_agrees_with_interval():
    """A value prints as the printed number exactly when it lies in its half-open interval."""
    for printed in (".037", "-860", "9.0", "0.0016", "8.40", "-0.00008", ".63", "10.68"):
        lo, hi = interval(printed)
        width = hi - lo
        for frac in (0.001, 0.25, 0.5, 0.75, 0.999):
            assert prints_as(lo + frac * width, printed), (printed, frac)
        assert not prints_as(lo - 0.01 * width, printed)
        assert not prints_as(hi + 0.01 * width, printed)


def test_every_published_number_prints_as_itself():
    for table in ("table1", "table2"):
        for row in table_rows(table):
            for stat in pub.STATS:
                s = row[stat]
                assert prints_as(float(s), s), (table, row, stat)
                assert format_like(float(s), s) == s.strip(), (table, row, stat)


# -- the published numbers ---------------------------------------------------------------------


def test_table1_rows():
    rows = table_rows("table1")
    assert len(rows) == 8
    assert [r["outcome"] for r in rows] == [o for o in pub.TABLE1_OUTCOMES for _ in pub.MODELS]
    assert [r["model"] for r in rows] == list(pub.MODELS) * 4
    assert rows[0] == {"outcome": "thalamic_volume", "model": "unadjusted",
                       "coef": "9.0", "ci_low": "-28.0", "ci_high": "46.1", "p": ".63"}
    lesion_adj = rows[-1]
    assert lesion_adj["outcome"] == "t2_lesion_volume_log" and lesion_adj["model"] == "adjusted"
    assert (lesion_adj["coef"], lesion_adj["ci_low"], lesion_adj["ci_high"], lesion_adj["p"]) == \
        ("0.029", "0.0057", "0.053", ".015")


def test_table2_rows():
    rows = table_rows("table2")
    assert len(rows) == 10
    assert [r["predictor"] for r in rows] == [p for p in pub.TABLE2_PREDICTORS for _ in pub.MODELS]
    enh = {r["model"]: r for r in rows if r["predictor"] == "enhancing_lesions_present"}
    assert enh["unadjusted"]["coef"] == "8.40" and enh["unadjusted"]["p"] == ".04"
    assert enh["adjusted"]["ci_high"] == "19.09" and enh["adjusted"]["p"] == ".013"


def test_table_rows_rejects_other_tables():
    with pytest.raises(ValueError, match="table1"):
        table_rows("table3")


def test_numbers_are_kept_as_printed_strings():
    data = pub.published()
    for table in ("table1", "table2"):
        for row in table_rows(table):
            assert set(row) >= set(pub.STATS)
            assert all(isinstance(row[s], str) for s in pub.STATS), row
    assert data["cohort"]["n"] == "95"
    assert data["cohort"]["cortical_thickness_mm"]["mean"] == "2.40"   # the trailing zero survives
    assert data["text"]["lesion_association_under_50_p"] == ".036"
    assert len(data["inconsistencies"]) >= 3


def test_every_published_coefficient_lies_inside_its_ci():
    for table in ("table1", "table2"):
        for row in table_rows(table):
            lo, b, hi = (float(row[k]) for k in ("ci_low", "coef", "ci_high"))
            assert lo < b < hi, row
            p = float(row["p"])
            assert 0 < p < 1
            # a 95 % CI that excludes 0 goes with P < .05 and vice versa (at printed precision)
            assert (lo > 0 or hi < 0) == (p < 0.05), row


def test_published_is_cached_and_read_from_the_package():
    assert pub.published() is pub.published()
    assert math.isclose(float(pub.published()["power"]["r"]), 0.28)
