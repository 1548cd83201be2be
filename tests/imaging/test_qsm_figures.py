"""Accuracy table (analysis.imaging.metrics.qsm_accuracy_table, phantom_qsm_accuracy) and the QSM step figures."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from analysis.imaging import qsm_figures as qf  # noqa: E402
from analysis.imaging.metrics import QSM_STRUCTURES, qsm_accuracy_table  # noqa: E402

SHAPE = (24, 28, 20)
AFF = np.diag([2.0, 2.0, 2.0, 1.0])
AFF[:3, 3] = (-24.0, -28.0, -20.0)


def _labels():
    lab = np.full(SHAPE, 2, np.int16)                 # white matter
    lab[4:8, 4:8, 4:8] = 4                            # ventricle (the CSF reference)
    lab[10:16, 10:16, 8:12] = 10                      # thalamus
    lab[18:20, 18:22, 12:16] = 13                     # pallidum
    return lab


def test_qsm_accuracy_table_references_to_csf_and_reports_ppb():
    lab = _labels()
    truth = np.choose(np.searchsorted([2, 4, 10, 13], lab), [-0.03, 0.0, 0.04, 0.15]).astype(np.float32)
    mask = np.ones(SHAPE, bool)
    perfect_shifted = truth + 0.5                     # a constant offset is no error after referencing
    low_thalamus = truth - 0.005 * (lab == 10)        # thalamus 5 ppb low
    t = qsm_accuracy_table({"shifted": perfect_shifted, "low": low_thalamus}, truth, mask=mask, labels=lab)
    assert list(t["method"]) == ["shifted", "low"]
    assert list(t.columns[:5]) == ["method", "n_voxels", "nrmse_pct", "hfen_pct", "ssim"]
    assert {f"{k.lower().replace(' ', '_')}_error_ppb" for k in QSM_STRUCTURES} <= set(t.columns)
    s = t.set_index("method")
    assert s.loc["shifted", "nrmse_pct"] == pytest.approx(0.0, abs=1e-3)      # float32 round-off of +0.5
    assert s.loc["shifted", "ssim"] == pytest.approx(1.0, abs=1e-6)
    assert s.loc["low", "thalamus_error_ppb"] == pytest.approx(-5.0, abs=1e-4)
    assert s.loc["low", "pallidum_error_ppb"] == pytest.approx(0.0, abs=1e-4)
    assert np.isnan(s.loc["low", "veins_error_ppb"])               # no vein label here
    assert s.loc["low", "n_voxels"] == mask.sum()
    with pytest.raises(ValueError, match="reference_labels"):
        qsm_accuracy_table({"a": truth}, truth, mask=mask, labels=lab, reference_labels=(43,))
    with pytest.raises(ValueError, match="not finite"):
        qsm_accuracy_table({"a": np.where(lab == 10, np.nan, truth)}, truth, mask=mask, labels=lab)
    with pytest.raises(ValueError, match="non-empty mapping"):
        qsm_accuracy_table({}, truth, mask=mask, labels=lab)
    with pytest.raises(ValueError, match="mask is empty"):
        qsm_accuracy_table({"a": truth}, truth, mask=np.zeros(SHAPE, bool), labels=lab)


def _maps():
    rng = np.random.default_rng(0)
    mask = np.zeros(SHAPE, bool)
    mask[2:-2, 2:-2, 2:-2] = True
    f = np.where(mask, rng.normal(0, 0.02, SHAPE), 0).astype(np.float32)
    return mask, f


def test_step_figures_build():
    mask, f = _maps()
    lab = _labels()
    z, y = qf.slice_levels_mm(AFF, labels=lab)
    centre = np.argwhere(lab == 10).mean(0)
    assert (z, y) == pytest.approx((AFF[2, 3] + 2 * centre[2], AFF[1, 3] + 2 * centre[1]))
    mag = np.abs(np.random.default_rng(1).normal(1, 0.1, SHAPE + (3,))).astype(np.float32)
    phase = np.angle(np.exp(1j * np.random.default_rng(2).normal(0, 2, SHAPE + (3,)))).astype(np.float32)
    figs = [
        qf.figure_acquisition(mag, phase, [0.004, 0.009, 0.014], AFF, mask=mask),
        qf.figure_field_map(np.angle(np.exp(3j * f)), f, mask, mag[..., 0], AFF, noise_std_ppm=np.abs(f),
                            true_mask=mask),
        qf.figure_local_fields({"PDF": (f, mask), "V-SHARP": f}, AFF, true_local_ppm=f),
        qf.figure_chi_maps({"MEDI": (f, mask), "TKD": (2 * f, mask)}, AFF, true_chi_ppm=f, true_mask=mask),
        qf.figure_chi_maps({"MEDI": (f, mask)}, AFF),                # no truth: two rows
    ]
    assert len(figs[0].axes) >= 6 and len(figs[3].axes) >= 9
    assert figs[4].axes[0].get_subplotspec().get_gridspec().get_geometry() == (2, 1)
    for fig in figs:
        plt.close(fig)


def test_step_figures_reject_bad_input():
    mask, f = _maps()
    with pytest.raises(ValueError, match="affine"):
        qf.figure_chi_maps({"a": f}, np.eye(3))
    with pytest.raises(ValueError, match="chi_maps"):
        qf.figure_chi_maps({}, AFF)
    with pytest.raises(ValueError, match="does not match"):
        qf.figure_chi_maps({"a": (f, mask[:-1])}, AFF)
    with pytest.raises(ValueError, match="vmin_ppm"):
        qf.figure_chi_maps({"a": f}, AFF, vmin_ppm=0.1, vmax_ppm=-0.1)
    with pytest.raises(ValueError, match="echoes"):
        qf.figure_acquisition(np.ones(SHAPE + (2,)), np.zeros(SHAPE + (2,)), [0.004, 0.009], AFF, echoes=[5])
    with pytest.raises(ValueError, match="echo_times_s"):
        qf.figure_acquisition(np.ones(SHAPE + (2,)), np.zeros(SHAPE + (2,)), [0.004], AFF)
    with pytest.raises(ValueError, match="brain_mask is empty"):
        qf.figure_field_map(f, f, np.zeros(SHAPE, bool), f, AFF)
    with pytest.raises(ValueError, match="mask or labels"):
        qf.slice_levels_mm(AFF)


def test_phantom_qsm_accuracy_on_the_true_map():
    from analysis.simulation.phantom import make_head_phantom
    from analysis.simulation.phantom_qsm import phantom_qsm_accuracy

    ph = make_head_phantom(resolution_mm=4.0, seed=1)
    m = ph.brain_mask
    t = phantom_qsm_accuracy({"truth": (ph.chi_ppm, m), "half": (0.5 * ph.chi_ppm, m)}, ph)
    s = t.set_index("method")
    assert s.loc["truth", "nrmse_pct"] == pytest.approx(0.0, abs=1e-6)
    assert s.loc["half", "nrmse_pct"] == pytest.approx(50.0, rel=1e-3)
    assert s.loc["half", "thalamus_error_ppb"] == pytest.approx(-20.0, abs=1e-3)
    assert abs(s.loc["truth", "thalamus_relative_error_ppb"]) < 1.0
    with pytest.raises(ValueError, match="pair"):
        phantom_qsm_accuracy({"a": ph.chi_ppm}, ph)
