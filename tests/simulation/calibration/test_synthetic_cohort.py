"""The bundled SIMULATED cohort reproduces every number the paper prints (Tables 1-2, summaries).

These tests fit the paper's models with the compendium's own code (``analysis.stats.models``) on
``data/cohort.csv`` and compare at the paper's printed precision. The regeneration test (slow)
checks that ``python -m analysis cohort`` gives the committed file byte for byte with 1 and with 2
BLAS threads (the calibration does not depend on the BLAS kernel or thread count).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.cohort.dictionary import describe_cohort, load_cohort
from analysis.simulation import calibration as calibrate
from analysis.stats import models
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


#: Regenerate the cohort into argv[1] and print the BLAS kernel(s) and thread counts it ran with.
_REGENERATE = """
import json, sys
from threadpoolctl import threadpool_info
from analysis.simulation.calibration import write_synthetic_cohort
write_synthetic_cohort(sys.argv[1])
print(json.dumps([[d["internal_api"], d.get("architecture"), d["num_threads"]] for d in threadpool_info()]))
"""


def _printing_failures(df):
    """Every published number that the cohort ``df`` does not print (empty list: all print)."""
    bad = []
    for table, fit in (("table1", models.table1), ("table2", models.table2)):
        cmp = models.compare_with_published(fit(df), table)
        for _, r in cmp[~cmp["match"]].iterrows():
            key = (r.get("predictor"), r["model"], r["statistic"])
            if table == "table2" and key == ("age", "adjusted", "p") and prints_as(float(r["ours"]), ".028"):
                continue                                   # the documented exception (text .028)
            bad.append(f"{table} {r.get('outcome', r.get('predictor'))} {r['model']} {r['statistic']}")
    d = describe_cohort(df)
    for name in ("age_years", "edss", "disease_duration_years", "t2_lesion_volume_ml", "thalamic_volume_ml",
                 "thalamic_relative_susceptibility_ppb", "total_gray_matter_volume_ml", "cortical_thickness_mm"):
        ours = d[d["variable"] == name].set_index("statistic")["value"]
        bad += [f"{name} {st}" for st in ("mean", "sd", "min", "max")
                if not prints_as(ours[st], published()["cohort"][name][st])]
    p50 = models.sensitivity_age(df).set_index("model").loc["adjusted", "p"]
    if not prints_as(p50, published()["text"]["lesion_association_under_50_p"]):
        bad.append("age < 50 P")
    return bad


def test_printing_failures_sees_a_broken_cohort(df):
    """The check used on regenerated cohorts does flag a cohort that no longer prints."""
    assert _printing_failures(df) == []
    broken = df.copy()
    broken["t2_lesion_volume_ml"] = broken["t2_lesion_volume_ml"] ** 1.1      # the log-model slope moves by 10 %
    assert any(b.startswith("table1 t2_lesion_volume_log") for b in _printing_failures(broken))


@pytest.mark.slow
def test_regeneration_is_byte_identical_with_1_and_2_threads(tmp_path):
    """`python -m analysis cohort` with 1 and with 2 BLAS threads (two processes side by side,
    about 70 s) prints every published number and reproduces the committed data/cohort.csv byte
    for byte. (To check another BLAS kernel by hand: OPENBLAS_CORETYPE=Haswell make cohort.)"""
    runs = {}
    for threads in (1, 2):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        out = tmp_path / f"cohort-{threads}.csv"
        runs[threads] = (out, subprocess.Popen([sys.executable, "-c", _REGENERATE, str(out)], env=env, cwd=ROOT,
                                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for threads, (out, proc) in runs.items():
        stdout, stderr = proc.communicate(timeout=1200)
        assert proc.returncode == 0, f"{threads} thread(s): regeneration failed\n{stderr[-3000:]}"
        blas = json.loads(stdout.strip().splitlines()[-1])
        where = f"BLAS {blas}, OPENBLAS_NUM_THREADS={threads}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}"
        assert _printing_failures(load_cohort(out)) == [], f"{where}: some published numbers do not print"
        assert out.read_bytes() == BUNDLED.read_bytes(), (
            f"{where}: the regenerated cohort prints every published number but differs from the committed "
            "data/cohort.csv; the calibration is meant to be independent of the BLAS kernel and thread count")
