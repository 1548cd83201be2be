"""analysis.stats.models on small simulated cohorts: formulas, tidy output, and errors for designs that
cannot be estimated. (The bundled cohort against the paper: tests/test_calibrated_cohort.py.)"""

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from analysis.stats import models


@pytest.fixture
def cohort():
    rng = np.random.default_rng(3)
    n = 60
    df = pd.DataFrame({
        "subject_id": [f"sub-{i:03d}" for i in range(n)],
        "age_years": rng.uniform(25, 65, n).round(1),
        "sex": rng.choice(["F", "M"], n),
        "edss": rng.choice([0, 1, 1.5, 2, 3], n),
        "disease_duration_years": rng.uniform(0.5, 20, n).round(1),
        "dmt_use": rng.integers(0, 2, n),
        "enhancing_lesions_present": rng.integers(0, 2, n),
        "thalamic_relative_susceptibility_ppb": rng.normal(-29, 11.7, n),
    })
    s = df["thalamic_relative_susceptibility_ppb"]
    df["t2_lesion_volume_ml"] = np.exp(1.5 + 0.03 * s + rng.normal(0, 1, n))
    df["thalamic_volume_mm3"] = 14000 + 9 * s + rng.normal(0, 2000, n)
    df["total_gray_matter_volume_mm3"] = 607000 - 800 * s + rng.normal(0, 60000, n)
    df["mean_cortical_thickness_mm"] = 2.4 + rng.normal(0, 0.15, n)
    return df


def test_table1_matches_statsmodels_directly(cohort):
    t1 = models.table1(cohort, full=True).set_index(["outcome", "model"])
    assert list(t1.index.get_level_values(0).unique()) == list(models.TABLE1_OUTCOMES)
    fit = smf.ols("np.log(t2_lesion_volume_ml) ~ thalamic_relative_susceptibility_ppb + age_years + C(sex) "
                  "+ disease_duration_years + dmt_use", data=cohort).fit()
    row = t1.loc[("t2_lesion_volume_log", "adjusted")]
    term = "thalamic_relative_susceptibility_ppb"
    assert row["coef"] == pytest.approx(fit.params[term], rel=1e-12)
    assert row["se"] == pytest.approx(fit.bse[term], rel=1e-12)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(fit.conf_int().loc[term]), rel=1e-12)
    assert row["df_resid"] == len(cohort) - 6


def test_table2_sex_is_a_male_indicator(cohort):
    t2 = models.table2(cohort).set_index(["predictor", "model"])
    diff = (cohort.loc[cohort.sex == "M", "thalamic_relative_susceptibility_ppb"].mean()
            - cohort.loc[cohort.sex == "F", "thalamic_relative_susceptibility_ppb"].mean())
    assert t2.loc[("sex", "unadjusted"), "coef"] == pytest.approx(diff, rel=1e-10)


def test_constant_covariate_is_named(cohort):
    cohort["dmt_use"] = 1
    with pytest.raises(ValueError, match=r"dmt_use.*single value"):
        models.table1(cohort)


def test_single_sex_cohort_is_explained(cohort):
    cohort["sex"] = "F"
    with pytest.raises(ValueError, match="single level"):
        models.table2(cohort)


def test_sensitivity_sweep_matches_single_cutoffs(cohort):
    sweep = models.sensitivity_age_sweep(cohort, [45, 50, 55]).set_index("max_age_years")
    one = models.sensitivity_age(cohort, max_age_years=50).set_index("model").loc["adjusted"]
    assert sweep.loc[50.0, "p"] == pytest.approx(one["p"], rel=1e-12)
    assert sweep.loc[50.0, "n"] == (cohort["age_years"] < 50).sum()
    with pytest.raises(ValueError, match="min_n"):
        models.sensitivity_age_sweep(cohort, [26], min_n=20)
