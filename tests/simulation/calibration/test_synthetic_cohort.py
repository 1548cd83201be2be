"""The bundled SIMULATED cohort reproduces every number the paper prints (Tables 1-2, summaries).

These tests fit the paper's models with the compendium's own code (``analysis.stats.models``) on
``data/cohort.csv`` and compare at the paper's printed precision. The regeneration test (slow)
checks that ``python -m analysis cohort`` gives the committed file byte for byte.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.simulation import calibration as calibrate
from analysis.simulation.calibration import write_synthetic_cohort
from analysis.stats import models
from analysis.cohort.dictionary import describe_cohort, load_cohort
from analysis.stats.published import prints_as, published, table_rows

ROOT = Path(__file__).resolve().parents[3]
BUNDLED = ROOT / "data" / "cohort.csv"


@pytest.fixture(scope="module")
def df():
    return load_cohort(BUNDLED)


@pytest.mark.parametrize("table, fit", [("table1", models.table1), ("table2", models.table2)])
def test_every_table_cell_prints_as_published(df, table, fit):
    comparison = models.compare_with_published(fit(df), table)
    n_rows = len(table_rows(table))
    assert len(comparison) == 4 * n_rows        # coef, ci_low, ci_high, p of every row
    bad = comparison[~comparison["match"]]
    if table == "table2":
        # the one documented exception: adjusted age P, table .02 (truncated) vs text .028
        assert list(zip(bad["predictor"], bad["model"], bad["statistic"])) == [("age", "adjusted", "p")]
        p = float(bad["ours"].iloc[0])
        assert prints_as(p, ".028") and prints_as(p, ".02", rule="truncate")
    else:
        assert bad.empty, bad.to_string()


def test_cortical_thickness_adjusted_p_fits_table_and_text(df):
    t1 = models.table1(df).set_index(["outcome", "model"])
    p = t1.loc[("cortical_thickness", "adjusted"), "p"]
    assert prints_as(p, ".95") and prints_as(p, "0.94", rule="truncate")


def test_age_under_50_sensitivity_p(df):
    res = models.sensitivity_age(df).set_index("model")
    assert res.loc["adjusted", "n"] == (df["age_years"] < 50).sum()
    assert prints_as(res.loc["adjusted", "p"], published()["text"]["lesion_association_under_50_p"])


def test_lesion_model_covariates_of_the_results_text(df):
    cov = models.lesion_covariate_effects(df).set_index("covariate")["p"]
    text = published()["text"]
    assert cov["disease_duration"] < 0.001                      # "P < .001"
    assert prints_as(cov["sex"], text["lesion_vs_sex_p"])       # .90
    assert prints_as(cov["dmt_use"], text["lesion_vs_dmt_p"])   # .81
    # age (.25 in the text) is not reachable together with Tables 1-2 (see analysis.simulation.calibration);
    # the cohort's value is documented in data/README.md
    readme = (ROOT / "data" / "README.md").read_text(encoding="utf-8")
    assert f"P = {cov['age']:.2f}".replace("0.", ".") in readme


@pytest.mark.parametrize("name", ["age_years", "edss", "disease_duration_years", "t2_lesion_volume_ml",
                                  "thalamic_volume_ml", "thalamic_relative_susceptibility_ppb",
                                  "total_gray_matter_volume_ml", "cortical_thickness_mm"])
def test_summaries_print_as_the_results_paragraph(df, name):
    d = describe_cohort(df)
    ours = d[d["variable"] == name].set_index("statistic")["value"]
    pub = published()["cohort"][name]
    for stat in ("mean", "sd", "min", "max"):
        assert prints_as(ours[stat], pub[stat]), f"{name} {stat}: {ours[stat]} vs {pub[stat]}"


def test_counts(df):
    assert len(df) == int(published()["cohort"]["n"])
    assert (df["sex"] == "F").sum() == calibrate.N_FEMALE == 64            # "two-thirds"
    assert df["dmt_use"].sum() == int(published()["cohort"]["on_dmt"])
    assert df["enhancing_lesions_present"].sum() == int(published()["cohort"]["enhancing_lesions_present"])
    both = {
        "enhancing_male": ((df.enhancing_lesions_present == 1) & (df.sex == "M")).sum(),
        "enhancing_dmt": ((df.enhancing_lesions_present == 1) & (df.dmt_use == 1)).sum(),
        "male_dmt": ((df.sex == "M") & (df.dmt_use == 1)).sum(),
    }
    assert tuple(both.values()) == calibrate.CROSS_COUNTS


def test_values_are_realistic(df):
    assert np.allclose(df["disease_duration_years"] * 10, np.round(df["disease_duration_years"] * 10))
    assert np.allclose(df["thalamic_relative_susceptibility_ppb"] * 100,
                       np.round(df["thalamic_relative_susceptibility_ppb"] * 100))
    assert ((df["age_years"] - df["disease_duration_years"]) >= 16 - 1e-9).all()
    assert df["subject_id"].is_unique


@pytest.mark.slow
def test_regeneration_is_byte_identical(tmp_path):
    """`python -m analysis cohort` reproduces the committed data/cohort.csv exactly (about 3 min)."""
    out = write_synthetic_cohort(tmp_path / "cohort.csv")
    assert out.read_bytes() == BUNDLED.read_bytes()
    pd.testing.assert_frame_equal(load_cohort(out), load_cohort(BUNDLED))
