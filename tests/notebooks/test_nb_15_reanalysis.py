"""Execute notebooks/15-reanalysis.ipynb on a simulated cohort that is NOT the default one.

The notebook must run on any CSV that ``analysis.cohort.dictionary.load_cohort`` accepts; the numbers it writes
are compared with independent statsmodels fits on the same CSV and with the package functions.
"""

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from analysis.cohort.dictionary import load_cohort
from analysis.stats import robust
from analysis.stats.diagnostics import model_specs
from tests.helpers.cohorts import simulate_cohort
from tests.helpers.notebooks import execute_notebook

pytestmark = pytest.mark.slow

OUTCOMES = ["thalamic_volume", "total_gray_matter_volume", "cortical_thickness", "t2_lesion_volume_log"]
LHS = {"thalamic_volume": "thalamic_volume_mm3", "total_gray_matter_volume": "total_gray_matter_volume_mm3",
       "cortical_thickness": "mean_cortical_thickness_mm", "t2_lesion_volume_log": "np.log(t2_lesion_volume_ml)"}
CHI = "thalamic_relative_susceptibility_ppb"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nb15")
    csv = tmp / "my_cohort.csv"
    simulate_cohort(n=80, seed=4242).to_csv(csv, index=False)
    return execute_notebook("15-reanalysis", tmp, cohort_csv=str(csv), n_bootstrap=200, seed=7), csv


def test_survive_table_matches_statsmodels_on_that_csv(run):
    nb, csv = run
    df = load_cohort(csv)
    sv = pd.read_csv(nb.output_dir / "reanalysis_survive.csv")
    assert list(sv["outcome"]) == OUTCOMES and (sv["model"] == "adjusted").all()
    for _, r in sv.iterrows():
        fit = smf.ols(f"{LHS[r['outcome']]} ~ {CHI} + age_years + C(sex) + disease_duration_years + dmt_use",
                      data=df).fit()
        assert r["p_ols"] == pytest.approx(fit.pvalues[CHI], rel=1e-8)
        assert r["coef"] == pytest.approx(fit.params[CHI], rel=1e-9)
        hc3 = smf.ols(f"{LHS[r['outcome']]} ~ {CHI} + age_years + C(sex) + disease_duration_years + dmt_use",
                      data=df).fit(cov_type="HC3", use_t=True)
        assert r["p_hc3"] == pytest.approx(hc3.pvalues[CHI], rel=1e-7)
    assert sv["verdict"].str.len().gt(20).all()
    assert sv["checks_agreeing"].between(0, 8).all()
    un = pd.read_csv(nb.output_dir / "reanalysis_survive_unadjusted.csv")
    assert list(un["outcome"]) == OUTCOMES and (un["model"] == "unadjusted").all()


def test_bootstrap_uses_the_parameters(run):
    nb, csv = run
    df = load_cohort(csv)
    boot = pd.read_csv(nb.output_dir / "reanalysis_bootstrap.csv")
    assert len(boot) == 8 + 5 + 5 and (boot["n_bootstrap"] == 200).all()
    spec = [s for s in model_specs(tables="table1") if s.key == "t2_lesion_volume_log" and s.model == "adjusted"]
    ref = robust.bootstrap_table(df, specs=spec, n_bootstrap=200, seed=7).iloc[0]
    row = boot[(boot["key"] == "t2_lesion_volume_log") & (boot["model"] == "adjusted")].iloc[0]
    assert row["bca_low"] == pytest.approx(ref["bca_low"], rel=1e-12)
    assert row["pct_high"] == pytest.approx(ref["pct_high"], rel=1e-12)


def test_other_tables_and_figures(run):
    nb, csv = run
    n = len(load_cohort(csv))
    infl = pd.read_csv(nb.output_dir / "reanalysis_influence.csv")
    assert len(infl) == 14 * n
    assert (infl["influential"] == (infl["cooks_d"] > 4 / n)).all()
    mult = pd.read_csv(nb.output_dir / "reanalysis_multiplicity.csv")
    assert len(mult) == 8 and (mult["p_holm"] >= mult["p"]).all() and (mult["p_bh"] >= mult["p"] - 1e-15).all()
    # the paper's printed P values (.63, .16, .95, .015): Holm and BH both give .06 for the lesion association
    pub = pd.read_csv(nb.output_dir / "reanalysis_multiplicity_published.csv").set_index(["outcome", "model"])
    assert pub.loc[("t2_lesion_volume_log", "adjusted"), "p_holm"] == pytest.approx(0.06)
    assert pub.loc[("t2_lesion_volume_log", "adjusted"), "p_bh"] == pytest.approx(0.06)
    for name in ("vif", "hc3", "boxcox", "spearman", "huber", "alternatives", "effect_sizes", "power", "models"):
        assert (nb.output_dir / f"reanalysis_{name}.csv").is_file(), name
        assert (nb.output_dir / f"reanalysis_{name}.md").is_file(), name
    power = pd.read_csv(nb.output_dir / "reanalysis_power.csv")
    assert set(power["outcome"]) == {"t2_lesion_volume_log"} and np.isfinite(power["power_at_observed_r"]).all()
    figs = sorted(p.name for p in nb.figures_dir.glob("reanalysis_*.png"))
    assert len(figs) == 7, figs
    # not the default cohort: the tables say which file they describe and do not claim to be the simulation
    md = (nb.output_dir / "reanalysis_survive.md").read_text()
    assert str(csv) in md and "SIMULATED DATA" not in md
    assert f"{csv}: {n} patients" in nb.stdout()


def test_huber_table_is_the_package_fit_and_says_how_it_stopped(run):
    nb, csv = run
    df = load_cohort(csv)
    huber = pd.read_csv(nb.output_dir / "reanalysis_huber.csv")
    ref = robust.huber_table(df)
    assert list(huber["iterations"]) == list(ref["iterations"])          # the scale-free stopping rule's count
    np.testing.assert_allclose(huber["coef"], ref["coef"], rtol=1e-12)
    md = (nb.output_dir / "reanalysis_huber.md").read_text()
    assert f"weight changes by more than {robust.HUBER_TOL:g}" in md
