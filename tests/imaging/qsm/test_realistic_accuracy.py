"""Accuracy on the realistic head phantom (texture, iron gradients, partial volume, field simulated on
a grid twice as fine and averaged): the automatic λ and the default brain mask.

One 2 mm phantom and its 3 T acquisition (SNR 100) are built once (about 30 s on 2 cores).
"""

import numpy as np
import pytest

from analysis.imaging.metrics import nrmse
from analysis.imaging.qsm import brain_mask, medi
from analysis.simulation.acquisition import phantom_fields, simulate_megre, simulation_seed
from analysis.simulation.phantom import make_head_phantom

#: Field noise (ppm) of the 11-echo fit at SNR 100 on this phantom (benchmarks/bench_lambda.py).
NOISE_PPM = 0.00035


@pytest.fixture(scope="module")
def realistic():
    ph = make_head_phantom(resolution_mm=2.0, seed=0, realism="realistic")
    sim = simulate_megre(ph, snr=100.0, seed=simulation_seed(0))
    mask = np.asarray(ph.brain_mask, bool)
    magnitude = np.sqrt((sim.magnitude.astype(np.float32) ** 2).sum(-1))
    _, local = phantom_fields(ph)
    rng = np.random.default_rng(1)
    field = np.where(mask, local + NOISE_PPM * rng.standard_normal(local.shape, dtype=np.float32), 0.0)
    return {"phantom": ph, "mask": mask, "magnitude": magnitude, "field": field.astype(np.float32),
            "truth": np.where(mask, ph.chi_ppm, 0.0).astype(np.float32), "voxel_size": tuple(ph.voxel_size_mm)}


@pytest.mark.slow
def test_automatic_lambda_is_near_the_best(realistic):
    """medi()'s default λ against λ ×/÷ 10^0.5: within 10 % of the best of the three, and the map
    within 25 % NRMSE (measured: 18.1 % at λ·σ_φ ≈ 85; 20.4 % and 21.9 % at ÷ and × 10^0.5)."""
    r = realistic
    kw = dict(voxel_size=r["voxel_size"])
    chi, info = medi(r["field"], r["mask"], r["magnitude"], return_info=True, **kw)
    scores = {1.0: nrmse(chi, r["truth"], mask=r["mask"])}
    for k in (10**-0.5, 10**0.5):
        other = medi(r["field"], r["mask"], r["magnitude"], lambda_=info["lambda"] * k, **kw)
        scores[k] = nrmse(other, r["truth"], mask=r["mask"])
    assert scores[1.0] <= 1.10 * min(scores.values())
    assert scores[1.0] < 25.0
    assert 30.0 < info["lambda_normalised"] <= 100.0
    # without a magnitude (uniform edge mask), the same rule still lands near the best
    uniform = medi(r["field"], r["mask"], np.ones_like(r["magnitude"]), **kw)
    assert nrmse(uniform, r["truth"], mask=r["mask"]) < 1.10 * min(scores.values())


@pytest.mark.slow
def test_default_brain_mask_covers_the_brain(realistic):
    """The magnitude-based brain mask against the true brain mask: Dice ≥ 0.9 (measured 0.97)."""
    r = realistic
    got = brain_mask(r["magnitude"], voxel_size=r["voxel_size"])
    got = got[0] if isinstance(got, tuple) else np.asarray(got, bool)
    dice = 2 * np.count_nonzero(got & r["mask"]) / (np.count_nonzero(got) + np.count_nonzero(r["mask"]))
    assert dice >= 0.9


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known limitation: the default recipe's 5 mm SMV high-pass loses about 8 ppb of "
                                        "thalamus - CSF contrast on the realistic phantom (measured -9.4 ppb)")
def test_default_recipe_keeps_the_thalamic_contrast(realistic):
    """Target: the default CLI recipe measures thalamus − CSF within 3 ppb on the realistic phantom."""
    from analysis.imaging.qsm import WHOLE_BRAIN_RECIPE, reconstruct_megre
    from analysis.simulation.phantom_qsm import phantom_qsm_accuracy

    ph = realistic["phantom"]
    sim = simulate_megre(ph, snr=100.0, seed=simulation_seed(0))
    rec = reconstruct_megre(sim.magnitude, sim.phase, sim.echo_times_s, voxel_size_mm=sim.voxel_size_mm,
                            b0_tesla=sim.b0_tesla, b0_direction=sim.b0_direction, progress=False, **WHOLE_BRAIN_RECIPE)
    acc = phantom_qsm_accuracy({"default": (rec["chi_ppm"], rec["mask"])}, ph)
    assert abs(float(acc["thalamus_relative_error_ppb"].iloc[0])) <= 3.0
