"""The QSM notebook's checks against the phantom's truth (analysis.simulation.phantom_qsm helpers).

A 4 mm phantom and made-up "reconstructions" whose errors are known: a mask with a few voxels
added and removed, fields with a constant offset and a known error, a χ map shifted by a constant.
"""

from types import SimpleNamespace

import numpy as np
import pytest

from analysis.imaging.labels import LATERAL_VENTRICLES
from analysis.imaging.qsm import erode_mm
from analysis.simulation import phantom_qsm as pq
from analysis.simulation.phantom import label_names, make_head_phantom


@pytest.fixture(scope="module")
def phantom():
    return make_head_phantom(resolution_mm=4.0, seed=1)


@pytest.fixture(scope="module")
def sim(phantom):
    rng = np.random.default_rng(0)
    local = np.where(phantom.brain_mask, rng.normal(0.0, 0.01, phantom.shape), 0.0).astype(np.float32)
    total = (local + np.linspace(-0.2, 0.2, phantom.shape[2])[None, None, :]).astype(np.float32)
    return SimpleNamespace(total_field_ppm=total, local_field_ppm=local)


def test_label_composition(phantom):
    csf = np.isin(phantom.labels, LATERAL_VENTRICLES)
    counts = pq.label_composition(csf, phantom)
    names = label_names()
    assert set(counts.index) == {names[k] for k in LATERAL_VENTRICLES}
    assert counts.sum() == csf.sum() and counts.is_monotonic_decreasing
    share = pq.label_composition(csf, phantom, normalize=True)
    assert share.sum() == pytest.approx(1.0)
    assert pq.label_composition(np.zeros(phantom.shape, bool), phantom).empty
    with pytest.raises(ValueError, match="not the phantom grid"):
        pq.label_composition(csf[:-1], phantom)


def test_mask_and_field_agreement(phantom, sim):
    brain = np.asarray(phantom.brain_mask, bool)
    mask = brain.copy()
    inside = np.argwhere(brain)[:10]
    mask[tuple(inside.T)] = False                                 # 10 brain voxels missed
    outside = np.argwhere(~brain & (phantom.labels > 0))[:7]
    mask[tuple(outside.T)] = True                                 # 7 extra voxels (skull, scalp, ...)
    field = sim.total_field_ppm + 0.003                           # a constant offset of 3 ppb
    a = pq.mask_and_field_agreement(mask, field, phantom, sim)
    assert a["n_missed"] == 10 and a["n_extra"] == 7
    assert a["dice"] == pytest.approx(2 * (brain.sum() - 10) / (2 * brain.sum() - 3))
    assert sum(a["extra_by_structure"].values()) == 7
    assert set(a["extra_by_structure"]) <= set(label_names().values())
    assert a["field_offset_ppb"] == pytest.approx(3.0, abs=1e-3)
    assert a["field_spread_ppb"] == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(ValueError, match="total_field_ppm"):
        pq.mask_and_field_agreement(mask, field[..., :-1], phantom, sim)


def test_local_field_errors(phantom, sim):
    brain = np.asarray(phantom.brain_mask, bool)
    small = erode_mm(brain, 4.0, voxel_size=phantom.voxel_size_mm)
    rng = np.random.default_rng(1)
    noisy = sim.local_field_ppm + rng.normal(0.0, 0.002, phantom.shape)   # 2 ppb of error
    fields = {"exact + offset": (sim.local_field_ppm + 0.05, brain), "noisy": (noisy, small)}
    t = pq.local_field_errors(fields, sim, phantom, mask=brain, erosion_mm=4.0)
    assert list(t.columns) == ["background removal", "valid voxels", "RMS error, brain eroded 4 mm (ppb)",
                               "RMS of the true local field (ppb)"]
    s = t.set_index("background removal")
    assert s.loc["exact + offset", "RMS error, brain eroded 4 mm (ppb)"] == pytest.approx(0.0, abs=1e-3)
    assert s.loc["noisy", "RMS error, brain eroded 4 mm (ppb)"] == pytest.approx(2.0, rel=0.1)
    assert s.loc["noisy", "valid voxels"] == small.sum()
    region = erode_mm(brain, 4.0, voxel_size=phantom.voxel_size_mm) & small
    assert t["RMS of the true local field (ppb)"].nunique() == 1
    assert s.loc["noisy", "RMS of the true local field (ppb)"] == pytest.approx(
        1000 * np.std(sim.local_field_ppm[region]))
    with pytest.raises(ValueError, match="pair"):
        pq.local_field_errors({"a": sim.local_field_ppm}, sim, phantom, mask=brain)
    with pytest.raises(ValueError, match="non-empty dict"):
        pq.local_field_errors({}, sim, phantom, mask=brain)


def test_ventricle_referenced(phantom):
    mask = np.asarray(phantom.brain_mask, bool)
    chi = np.where(mask, phantom.chi_ppm + 0.7, 5.0)
    ref = pq.ventricle_referenced(chi, mask, phantom)
    ventricles = mask & np.isin(phantom.labels, LATERAL_VENTRICLES)
    assert ref[ventricles].mean() == pytest.approx(0.0, abs=1e-6)
    assert np.all(ref[~mask] == 0)
    np.testing.assert_allclose(ref[mask], (phantom.chi_ppm - phantom.chi_ppm[ventricles].mean())[mask], atol=1e-6)
    with pytest.raises(ValueError, match="no lateral-ventricle voxel"):
        pq.ventricle_referenced(chi, mask & ~ventricles, phantom)
