"""analysis.parameters: the notebooks' parameter checks name the parameter, the rule and the value."""

import numpy as np
import pytest

from analysis.parameters import check_choice, check_choices, check_given_together, check_integer, check_number


def test_check_number_returns_floats_within_the_bounds():
    assert check_number(2, name="resolution_mm", low=0.5, high=4.0) == 2.0
    assert isinstance(check_number(np.float32(2.5), name="x"), float)
    assert check_number(0.5, name="x", low=0.5) == 0.5                       # inclusive by default
    assert check_number(None, name="snr", none_means="noise-free") is None


@pytest.mark.parametrize("value, kwargs, message", [
    ("2 mm", dict(low=0.5, high=4.0), r"resolution_mm must be a number in \[0.5, 4\], got '2 mm'"),
    (5.0, dict(low=0.5, high=4.0), r"resolution_mm must be a number in \[0.5, 4\], got 5.0"),
    (0, dict(low=0, low_inclusive=False), r"resolution_mm must be a number > 0, got 0"),
    (1, dict(high=1, high_inclusive=False), r"resolution_mm must be a number < 1, got 1"),
    (float("nan"), {}, r"resolution_mm must be a number, got nan"),
    (float("inf"), dict(low=0), r"resolution_mm must be a number >= 0, got inf"),
    (True, {}, r"resolution_mm must be a number, got True"),
    (None, {}, r"resolution_mm must be a number, got None"),
    (-1, dict(low=0, low_inclusive=False, none_means="noise-free"),
     r"resolution_mm must be a number > 0, or None \(noise-free\), got -1"),
])
def test_check_number_names_the_parameter(value, kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_number(value, name="resolution_mm", **kwargs)


def test_check_integer():
    assert check_integer(np.int64(20), name="n_subjects", low=1) == 20
    assert check_integer(None, name="n_subjects", low=1, none_means="every subject") is None
    for bad in (2.0, 2.5, "3", True, None):
        with pytest.raises(ValueError, match=r"n_min must be an integer >= 4, got"):
            check_integer(bad, name="n_min", low=4)
    with pytest.raises(ValueError, match=r"n_max must be an integer >= 11, got 10"):
        check_integer(10, name="n_max", low=11)
    with pytest.raises(ValueError, match=r"must be an integer in \[1, 3\], or None \(all\), got 0"):
        check_integer(0, name="k", low=1, high=3, none_means="all")


def test_check_choice_and_choices():
    assert check_choice("pdf", name="qsm_background", choices=("pdf", "vsharp")) == "pdf"
    with pytest.raises(ValueError, match=r"qsm_background must be one of \['pdf', 'vsharp'\], got 'sharp'"):
        check_choice("sharp", name="qsm_background", choices=("pdf", "vsharp"))
    with pytest.raises(ValueError, match="got \\['pdf'\\]"):
        check_choice(["pdf"], name="qsm_background", choices={"pdf", "vsharp"})   # unhashable
    cols = ["age_years", "edss", "t2_lesion_volume_ml"]
    assert check_choices(("edss", "age_years"), name="outcomes", choices=cols) == ["edss", "age_years"]
    with pytest.raises(ValueError, match=r"outcomes: \['sex'\] not among the allowed values"):
        check_choices(["edss", "sex"], name="outcomes", choices=cols)
    with pytest.raises(ValueError, match=r"outcomes: \['edss'\] listed more than once"):
        check_choices(["edss", "age_years", "edss"], name="outcomes", choices=cols)
    with pytest.raises(ValueError, match="outcomes must not be empty"):
        check_choices([], name="outcomes", choices=cols)
    with pytest.raises(ValueError, match="outcomes must be a list"):
        check_choices("edss", name="outcomes", choices=cols)


def test_check_given_together():
    assert check_given_together({"chimap": None, "aseg": None}) is False
    assert check_given_together({"chimap": "chi.nii", "aseg": "aseg.nii"}) is True
    with pytest.raises(ValueError, match=r"^chimap is given without aseg: give both or neither \(the hint\)$"):
        check_given_together({"chimap": "chi.nii", "aseg": None}, hint="the hint")
    with pytest.raises(ValueError, match=r"^aseg is given without chimap: give both or neither$"):
        check_given_together({"chimap": None, "aseg": "aseg.nii"})
    with pytest.raises(ValueError, match=r"a, b are given without c: give all or none of a, b, c"):
        check_given_together({"a": 1, "b": 2, "c": None})
    with pytest.raises(ValueError, match="at least two"):
        check_given_together({"a": 1})
