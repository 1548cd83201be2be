"""QSM accuracy metrics against hand-computed values."""

import numpy as np
import pytest

from analysis.imaging.metrics import accuracy_table, hfen, label_errors, log_kernel, nrmse, ssim


def test_nrmse_hand_computed():
    t = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 4)
    e = np.array([1.0, 2.0, 3.0, 5.0]).reshape(1, 1, 4)
    assert nrmse(e, t) == pytest.approx(100 / np.sqrt(30))
    # mask drops the wrong voxel
    assert nrmse(e, t, mask=np.array([1, 1, 1, 0], bool).reshape(1, 1, 4)) == 0.0
    # demeaned: t − 2.5 = (−1.5, −.5, .5, 1.5), e − 2.75 = (−1.75, −.75, .25, 2.25)
    num = np.sqrt(3 * 0.25**2 + 0.75**2)  # differences (−.25, −.25, −.25, .75)
    assert nrmse(e, t, demean=True) == pytest.approx(100 * num / np.sqrt(2 * 1.5**2 + 2 * 0.5**2))
    with pytest.raises(ValueError, match="shape"):
        nrmse(e, t[..., :3])
    with pytest.raises(ValueError, match="empty"):
        nrmse(e, t, mask=np.zeros(t.shape, bool))


def test_log_kernel_is_fspecial_style():
    k = log_kernel(sigma=1.5, size=15)
    assert k.shape == (15, 15, 15)
    assert abs(k.sum()) < 1e-12
    ax = np.arange(15) - 7.0
    g = np.exp(-(ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2) / (2 * 1.5**2))
    g /= g.sum()
    raw_centre = g[7, 7, 7] * (0 - 3 * 1.5**2) / 1.5**4
    mean = (g * ((ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2) - 3 * 1.5**2)
            / 1.5**4).mean()
    assert k[7, 7, 7] == pytest.approx(raw_centre - mean)
    assert k[7, 7, 7] < 0


def test_hfen_hand_computed():
    rng = np.random.default_rng(0)
    t = rng.standard_normal((40, 40, 40))
    assert hfen(t, t) == 0.0
    assert hfen(2 * t, t) == pytest.approx(100.0)
    # an impulse error far from the edges: numerator = |ε| ‖LoG‖
    e = t.copy()
    e[20, 20, 20] += 0.3
    from scipy.signal import fftconvolve

    den = np.linalg.norm(fftconvolve(t, log_kernel(), mode="same"))
    assert hfen(e, t) == pytest.approx(100 * 0.3 * np.linalg.norm(log_kernel()) / den, rel=1e-6)


def test_ssim_behaviour_and_data_range():
    rng = np.random.default_rng(0)
    t = rng.random((24, 24, 24))
    assert ssim(t, t) == pytest.approx(1.0)
    noisy = t + 0.1 * rng.standard_normal(t.shape)
    s1 = ssim(noisy, t)
    assert 0 < s1 < 1
    assert ssim(t + 0.3 * rng.standard_normal(t.shape), t) < s1
    # a larger stated data range makes the same error look smaller
    assert ssim(noisy, t, data_range=10.0) > s1
    with pytest.raises(ValueError, match="data_range"):
        ssim(noisy, t, data_range=0)


def test_label_errors_and_accuracy_table():
    truth = np.zeros((8, 8, 8))
    labels = np.zeros((8, 8, 8), int)
    labels[:2] = 10
    labels[2:3] = 49
    truth[labels == 10] = 0.04
    truth[labels == 49] = 0.15
    est = truth.copy()
    est[labels == 10] += 0.002  # +2 ppb
    est[2, 0, 0] -= 0.064  # one of 64 voxels: −1 ppb on average
    tab = label_errors(est, truth, labels, names={10: "Left-Thalamus"})
    assert list(tab["structure"]) == ["Left-Thalamus", "label_49"]
    np.testing.assert_allclose(tab["error_ppb"], [2.0, -1.0], atol=1e-9)
    np.testing.assert_allclose(tab["truth_ppb"], [40.0, 150.0])
    assert list(tab["n_voxels"]) == [128, 64]
    mask = labels > 0
    acc = accuracy_table({"MEDI": est, "TKD": truth * 0.5}, truth, mask=mask, labels=labels)
    assert set(acc.columns) == {"method", "metric", "structure", "value", "unit"}
    row = acc[(acc.method == "TKD") & (acc.metric == "NRMSE")]
    assert row["value"].item() == pytest.approx(50.0)
    assert row["unit"].item() == "%"
    assert set(acc[acc.metric == "mean_error"]["unit"]) == {"ppb"}
