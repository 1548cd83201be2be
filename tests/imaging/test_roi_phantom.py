"""Thalamic ROI on the head phantom, whose veins and susceptibilities are known.

The phantom's aseg labels the internal cerebral veins and basal veins of Rosenthal along the
thalami as thalamus (as FreeSurfer would from a T1); the veins are +450 ppb, the thalamus +40 ppb
relative to CSF. On the true χ map, vein exclusion must recover the truth and the VOI without it
must be biased. The reconstructed-map tests (slow) show the same on a χ map from a simulated
acquisition with the default recipe of ``reconstruct_phantom`` (PDF, MEDI+0 with SMV 5 mm and
MERIT, λ 2000), and check the issue's acceptance target (within 3 ppb) for a second seed and
thalamic χ too; the former V-SHARP + MEDI default missed it (−4.1 ppb).
"""

import numpy as np
import pytest

from analysis.simulation import phantom_qsm as pq
from analysis.simulation.phantom import make_head_phantom

SEED = 20180301          # the notebooks' default


@pytest.fixture(scope="module")
def phantom(head_phantom):
    return head_phantom(2.0, SEED)


@pytest.fixture(scope="module")
def true_map_table(phantom):
    table, rois = pq.phantom_roi_table({"true": pq.phantom_images(phantom)["chi"]}, phantom)
    return table.set_index("exclude_veins"), rois


def test_truth(phantom):
    truth = pq.true_thalamic_susceptibility(phantom)
    assert truth["relative_ppb"] == pytest.approx(1000 * phantom.params["thalamus_chi_ppm"][0], abs=1e-3)
    assert truth["csf_reference_ppb"] == pytest.approx(0.0, abs=1e-6)


def test_vein_exclusion_recovers_truth_on_true_map(true_map_table):
    table, _ = true_map_table
    with_ex, without = table.loc[True], table.loc[False]
    assert abs(with_ex["error_ppb"]) < 1.0
    assert without["error_ppb"] > 3.0                # the veins bias the uncorrected VOI upwards
    assert with_ex["vein_sensitivity"] == 1.0         # every true vein voxel of the VOI is excluded
    assert with_ex["vein_rim_precision"] > 0.9        # and little beyond the veins and their rim
    assert with_ex["n_voxels"] + with_ex["n_vein_voxels_excluded"] == without["n_voxels"]


def test_csf_reference_inside_ventricles(phantom, true_map_table):
    _, rois = true_map_table
    r = rois[("true", True)]
    for side, label in (("left", 4), ("right", 43)):
        sphere = r.csf_reference(side)
        assert sphere.sum() >= 7
        assert np.all(phantom.labels[sphere] == label)   # true ventricle, no vein, no tissue


@pytest.fixture(scope="module")
def reconstructed_table(phantom):
    chi_rec, _, _ = pq.reconstruct_phantom(phantom, snr=100.0, seed=SEED)
    table, _ = pq.phantom_roi_table({"reconstructed": chi_rec}, phantom)
    return table.set_index("exclude_veins")


@pytest.mark.slow
def test_vein_exclusion_on_reconstructed_map(reconstructed_table):
    with_ex, without = reconstructed_table.loc[True], reconstructed_table.loc[False]
    assert without["error_ppb"] > 3.0
    assert abs(with_ex["error_ppb"]) < abs(without["error_ppb"])
    assert with_ex["vein_sensitivity"] == 1.0


@pytest.mark.slow
def test_reconstructed_map_within_3_ppb(reconstructed_table):
    # measured -1.50 ppb (toolbox lambda 1000: -2.46; former V-SHARP + MEDI default: -4.13)
    assert abs(reconstructed_table.loc[True, "error_ppb"]) <= 3.0
    assert abs(reconstructed_table.loc[True, "error_ppb"]) <= 2.0     # the imaging cohort's margin


@pytest.mark.slow
def test_within_3_ppb_for_another_seed_and_thalamic_chi():
    """Not tuned to one phantom: seed 2 with a thalamus of +60 ppb (measured -1.6 ppb)."""
    ph = make_head_phantom(resolution_mm=2.0, seed=2, thalamus_chi_ppm=0.06)
    chi_rec, rec, _ = pq.reconstruct_phantom(ph, snr=100.0, seed=2)
    assert rec["parameters"]["method"] == "MEDI+0" and rec["parameters"]["background"] == "pdf"
    table, _ = pq.phantom_roi_table({"reconstructed": chi_rec}, ph)
    row = table[table["exclude_veins"]].iloc[0]
    assert row["true_relative_ppb"] == pytest.approx(60.0, abs=1e-3)
    assert abs(row["error_ppb"]) <= 3.0
