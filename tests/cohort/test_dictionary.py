"""Tests of analysis.cohort.dictionary: the data dictionary and the validation of a cohort CSV.

Every malformed input must raise ``ValueError`` naming the column and the (1-based) data row, and
:func:`load_cohort` must never modify the file it reads.
"""

import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.cohort import dictionary as cohort
from analysis.cohort.dictionary import COLUMN_NAMES, COLUMNS, data_dictionary, load_cohort, validate_cohort

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "data" / "cohort.csv"


def valid_frame(n=6):
    """A small cohort that meets every rule of the data dictionary."""
    return pd.DataFrame({
        "subject_id": [f"sub-{i:03d}" for i in range(1, n + 1)],
        "age_years": [25.0, 42.5, 71.0, 38.2, 50.0, 33.3][:n],
        "sex": ["F", "M", "F", "F", "M", "F"][:n],
        "edss": [0.0, 1.0, 8.5, 2.0, 3.5, 1.5][:n],
        "disease_duration_years": [0.3, 8.9, 33.7, 5.0, 12.1, 2.2][:n],
        "dmt_use": [1, 0, 1, 1, 0, 1][:n],
        "enhancing_lesions_present": [0, 1, 0, 0, 0, 1][:n],
        "t2_lesion_volume_ml": [0.1, 11.0, 122.4, 3.5, 20.25, 7.0][:n],
        "thalamic_volume_mm3": [14000.0, 8400.0, 20000.0, 15123.4, 13050.0, 12500.5][:n],
        "thalamic_relative_susceptibility_ppb": [-29.0, -61.5, 6.4, -30.2, -15.0, -40.0][:n],
        "total_gray_matter_volume_mm3": [607000.0, 411000.0, 784000.0, 650000.0, 590000.0, 620000.0][:n],
        "mean_cortical_thickness_mm": [2.40, 1.92, 2.68, 2.45, 2.30, 2.50][:n],
    })


def write(df, path):
    df.to_csv(path, index=False)
    return path


def bad_csv(tmp_path, column, row, value):
    """A valid cohort with ``df.loc[row, column] = value`` (``row`` 0-based), written as text."""
    df = valid_frame().astype({column: object})
    df.loc[row, column] = value
    return write(df, tmp_path / "cohort.csv")


def assert_names(exc, column, row=None):
    msg = str(exc.value)
    assert f"'{column}'" in msg or column in msg, msg
    if row is not None:
        assert re.search(rf"\brows? {row}\b", msg), f"row {row} not named in: {msg}"


# -- data dictionary ---------------------------------------------------------------------------


def test_dictionary_has_every_required_column_once():
    required = {"subject_id", "age_years", "sex", "edss", "disease_duration_years", "dmt_use",
                "enhancing_lesions_present", "t2_lesion_volume_ml", "thalamic_volume_mm3",
                "thalamic_relative_susceptibility_ppb", "total_gray_matter_volume_mm3",
                "mean_cortical_thickness_mm"}
    assert set(COLUMN_NAMES) == required
    assert len(COLUMN_NAMES) == len(set(COLUMN_NAMES))
    dd = data_dictionary()
    assert list(dd.columns) == ["column", "type", "unit", "allowed", "description"]
    assert list(dd["column"]) == list(COLUMN_NAMES)
    assert (dd["description"].str.len() > 10).all()
    by = dd.set_index("column")
    assert by.loc["t2_lesion_volume_ml", "allowed"].startswith("> 0")   # strictly positive: logged
    assert by.loc["sex", "allowed"] == "'F', 'M'"
    assert by.loc["dmt_use", "allowed"] == "0, 1"
    assert "steps of 0.5" in by.loc["edss", "allowed"]


# -- valid input -------------------------------------------------------------------------------


def test_valid_csv_round_trips(tmp_path):
    df = valid_frame()
    out = load_cohort(write(df, tmp_path / "cohort.csv"))
    expected = df.astype({c.name: float for c in COLUMNS if c.dtype == "float"})
    expected = expected.astype({"dmt_use": int, "enhancing_lesions_present": int})
    pd.testing.assert_frame_equal(out.reset_index(drop=True), expected, check_dtype=False)
    assert out["sex"].tolist() == df["sex"].tolist()
    assert out["subject_id"].tolist() == df["subject_id"].tolist()
    for c in COLUMNS:
        if c.dtype == "float":
            assert out[c.name].dtype == float, c.name
        elif c.dtype == "binary":
            assert pd.api.types.is_integer_dtype(out[c.name]), c.name


def test_extra_columns_and_column_order_are_accepted(tmp_path):
    df = valid_frame()
    df["site"] = "A"
    df = df[list(reversed(df.columns))]
    out = load_cohort(write(df, tmp_path / "cohort.csv"))
    assert "site" in out.columns and len(out) == len(df)


def test_whitespace_around_categories_is_stripped(tmp_path):
    df = valid_frame().astype({"sex": object})
    df.loc[0, "sex"] = " F "
    out = load_cohort(write(df, tmp_path / "cohort.csv"))
    assert out.loc[0, "sex"] == "F"


def test_boundaries_are_inclusive_except_the_lesion_volume(tmp_path):
    df = valid_frame()
    df.loc[0, "age_years"] = 18.0
    df.loc[1, "age_years"] = 100.0
    df.loc[2, "edss"] = 10.0
    df.loc[3, "edss"] = 0.5                      # a multiple of the 0.5 step
    df.loc[4, "disease_duration_years"] = 0.0
    df.loc[5, "t2_lesion_volume_ml"] = 0.001     # tiny but > 0
    load_cohort(write(df, tmp_path / "cohort.csv"))


# -- invalid input: every error names the column (and the row) ---------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_cohort(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="does not exist"):
        load_cohort(tmp_path)  # a folder is not a CSV


@pytest.mark.parametrize("content", [b"\xff\xfe\x00\x01garbage\x00\n\x80\x81", b"", b"a,b\n1,2\n"])
def test_not_a_cohort_csv(tmp_path, content):
    path = tmp_path / "cohort.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError):
        load_cohort(path)


@pytest.mark.parametrize("column", ["age_years", "sex", "t2_lesion_volume_ml", "subject_id"])
def test_missing_column(tmp_path, column):
    path = write(valid_frame().drop(columns=column), tmp_path / "cohort.csv")
    with pytest.raises(ValueError, match="missing column") as exc:
        load_cohort(path)
    assert column in str(exc.value)


def test_empty_table(tmp_path):
    path = write(valid_frame().iloc[:0], tmp_path / "cohort.csv")
    with pytest.raises(ValueError, match="no rows"):
        load_cohort(path)


@pytest.mark.parametrize("column,value", [
    ("age_years", "forty"),
    ("edss", "2,5"),
    ("thalamic_volume_mm3", "14 mL"),
    ("dmt_use", "yes"),
    ("thalamic_relative_susceptibility_ppb", "n/a-ish"),
])
def test_non_numeric_value(tmp_path, column, value):
    with pytest.raises(ValueError, match="not numeric") as exc:
        load_cohort(bad_csv(tmp_path, column, 3, value))
    assert_names(exc, column, row=4)
    assert value in str(exc.value)


@pytest.mark.parametrize("column", ["age_years", "sex", "subject_id", "t2_lesion_volume_ml"])
def test_empty_value(tmp_path, column):
    with pytest.raises(ValueError, match="empty") as exc:
        load_cohort(bad_csv(tmp_path, column, 2, ""))
    assert_names(exc, column, row=3)


@pytest.mark.parametrize("value", [0.0, -1.5])
def test_lesion_volume_that_cannot_be_logged(tmp_path, value):
    with pytest.raises(ValueError, match="out of range") as exc:
        load_cohort(bad_csv(tmp_path, "t2_lesion_volume_ml", 1, value))
    assert_names(exc, "t2_lesion_volume_ml", row=2)
    assert "log" in str(exc.value)          # says why 0 is not allowed
    assert "> 0" in str(exc.value)


@pytest.mark.parametrize("column,value", [
    ("age_years", 12.0), ("age_years", 150.0), ("edss", 10.5), ("edss", -0.5),
    ("disease_duration_years", -0.1), ("thalamic_volume_mm3", 14.0),     # mL instead of mm3
    ("total_gray_matter_volume_mm3", 607.0), ("mean_cortical_thickness_mm", 24.0),
    ("thalamic_relative_susceptibility_ppb", -0.029 * 1e5),
])
def test_out_of_range(tmp_path, column, value):
    with pytest.raises(ValueError, match="out of range") as exc:
        load_cohort(bad_csv(tmp_path, column, 5, value))
    assert_names(exc, column, row=6)


@pytest.mark.parametrize("value", [2.3, 1.25, 7.75])
def test_edss_off_its_half_point_step(tmp_path, value):
    with pytest.raises(ValueError, match="steps of 0.5") as exc:
        load_cohort(bad_csv(tmp_path, "edss", 0, value))
    assert_names(exc, "edss", row=1)


@pytest.mark.parametrize("column,value", [("dmt_use", 2), ("enhancing_lesions_present", -1),
                                          ("enhancing_lesions_present", 0.5)])
def test_binary_not_0_or_1(tmp_path, column, value):
    with pytest.raises(ValueError, match="must be 0 or 1") as exc:
        load_cohort(bad_csv(tmp_path, column, 4, value))
    assert_names(exc, column, row=5)


@pytest.mark.parametrize("value", ["female", "f", "X", "1"])
def test_unknown_sex_category(tmp_path, value):
    with pytest.raises(ValueError, match="unknown categor") as exc:
        load_cohort(bad_csv(tmp_path, "sex", 2, value))
    assert_names(exc, "sex", row=3)
    assert repr(value) in str(exc.value) or value in str(exc.value)


def test_duplicated_subject_id(tmp_path):
    with pytest.raises(ValueError, match="duplicated") as exc:
        load_cohort(bad_csv(tmp_path, "subject_id", 4, "sub-002"))
    assert_names(exc, "subject_id")
    msg = str(exc.value)
    assert re.search(r"rows 2, 5\b", msg), msg    # both copies are named
    assert "sub-002" in msg


def test_several_bad_rows_are_all_named(tmp_path):
    df = valid_frame().astype({"age_years": object})
    df.loc[[1, 4], "age_years"] = "?"
    with pytest.raises(ValueError, match="not numeric") as exc:
        load_cohort(write(df, tmp_path / "cohort.csv"))
    assert re.search(r"rows 2, 5\b", str(exc.value))


def test_error_names_the_source_file(tmp_path):
    path = bad_csv(tmp_path, "sex", 0, "Q")
    with pytest.raises(ValueError) as exc:
        load_cohort(path)
    assert str(path) in str(exc.value)


def test_validate_cohort_does_not_modify_its_argument():
    df = valid_frame().astype({"sex": object})
    df.loc[0, "sex"] = " F "
    before = df.copy()
    validate_cohort(df)
    pd.testing.assert_frame_equal(df, before)


# -- the input file is never written -----------------------------------------------------------


@pytest.mark.parametrize("broken", [False, True])
def test_load_never_modifies_the_input_file(tmp_path, broken):
    path = bad_csv(tmp_path, "edss", 2, 2.3) if broken else write(valid_frame(), tmp_path / "cohort.csv")
    old = time.time() - 3600
    os.utime(path, (old, old))                       # an mtime a rewrite could not reproduce
    before_bytes, before_stat = path.read_bytes(), path.stat()
    before_listing = sorted(p.name for p in tmp_path.iterdir())
    if broken:
        with pytest.raises(ValueError):
            load_cohort(path)
    else:
        load_cohort(path)
    after = path.stat()
    assert path.read_bytes() == before_bytes
    assert after.st_mtime_ns == before_stat.st_mtime_ns
    assert after.st_ino == before_stat.st_ino          # not replaced by a rename either
    assert sorted(p.name for p in tmp_path.iterdir()) == before_listing  # no side files


# -- the bundled (simulated) cohort --------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled():
    if not BUNDLED.is_file():
        pytest.skip("data/cohort.csv not generated yet (make cohort)")
    return load_cohort(BUNDLED)


def test_bundled_cohort_validates_and_has_95_patients(bundled):
    assert len(bundled) == 95
    assert list(bundled.columns[: len(COLUMN_NAMES)]) == list(COLUMN_NAMES)
    assert cohort.DEFAULT_COHORT_CSV == BUNDLED


def test_bundled_cohort_is_as_documented(bundled):
    """The properties that data/README.md states about the simulated cohort."""
    assert (bundled["sex"] == "F").sum() == 64
    assert bundled["dmt_use"].sum() == 57
    assert bundled["enhancing_lesions_present"].sum() == 9
    age = bundled["age_years"].to_numpy()
    assert np.allclose(age * 10, np.round(age * 10)), "ages are given to 0.1 year"
    edss = bundled["edss"].to_numpy()
    assert not np.isclose(edss, 0.5).any(), "EDSS has no 0.5 step"
    assert np.allclose(edss * 2, np.round(edss * 2))
    onset_age = bundled["age_years"] - bundled["disease_duration_years"]
    assert onset_age.min() >= 16 - 1e-9, "age minus disease duration must be >= 16"


# -- data/README.md documents the columns ------------------------------------------------------


def _readme_dictionary():
    """Rows of the data-dictionary table in data/README.md, as lists of stripped cells."""
    text = (ROOT / "data" / "README.md").read_text(encoding="utf-8")
    rows, in_table = [], False
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else None
        if cells and cells[:2] == ["column", "type"]:
            in_table, header = True, cells
            continue
        if in_table:
            if not cells:
                break
            if set("".join(cells)) <= set(":-"):
                continue
            rows.append(cells)
    assert in_table, "data/README.md has no data-dictionary table (header 'column | type | ...')"
    return header, rows


def test_data_readme_lists_every_column():
    header, rows = _readme_dictionary()
    assert header == list(data_dictionary().columns)
    listed = [r[0].strip("`") for r in rows]
    missing = [c for c in COLUMN_NAMES if c not in listed]
    extra = [c for c in listed if c not in COLUMN_NAMES]
    assert not missing and not extra, f"data/README.md: missing columns {missing}, unknown columns {extra}"


def test_data_readme_table_matches_the_code():
    """Every cell of the table equals analysis.cohort.dictionary.data_dictionary() (regenerate it if not:
    see the end of data/README.md)."""
    _, rows = _readme_dictionary()
    expected = [[str(v) for v in rec] for rec in data_dictionary().itertuples(index=False)]
    assert [[c.strip("`") if i == 0 else c for i, c in enumerate(r)] for r in rows] == expected


def test_data_readme_says_the_data_are_simulated():
    text = (ROOT / "data" / "README.md").read_text(encoding="utf-8")
    head = text[:800]
    assert "SIMULATED" in head
    assert str(cohort.DEFAULT_SEED) in text and "python -m analysis cohort" in text
    assert "analysis/simulation/calibration/__init__.py" in text


def test_susceptibility_in_ppm_is_flagged():
    """Values all within ±1 are in range for ppb but almost certainly ppm: kept, with a warning."""
    import warnings

    from analysis.cohort.dictionary import CohortUnitsWarning

    df = load_cohort()
    df["thalamic_relative_susceptibility_ppb"] = df["thalamic_relative_susceptibility_ppb"] / 1000.0
    with pytest.warns(CohortUnitsWarning, match="look like ppm"):
        out = validate_cohort(df, source="mine.csv")
    assert out["thalamic_relative_susceptibility_ppb"].abs().max() < 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", CohortUnitsWarning)
        validate_cohort(load_cohort())          # the bundled cohort (ppb) is not flagged
