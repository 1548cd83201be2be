"""Accuracy on the realistic head phantom (texture, iron gradients, partial volume, field simulated on
a grid twice as fine and averaged): the automatic λ, the default brain mask and the default recipe's
deep-grey contrast.

One 2 mm phantom and its 3 T acquisition (SNR 100) are built once (about 30 s on 2 cores).
"""

import numpy as np
import pytest
from scipy import ndimage

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


def _pure_ventricles(phantom, csf_mask):
    """A compact CSF mask: the R2* CSF mask's voxels in and next to the lateral ventricles (the CSF a skull-stripped
    brain built from FreeSurfer labels holds)."""
    vent = np.isin(phantom.labels, (4, 43)) & np.asarray(phantom.brain_mask, bool)
    return csf_mask & ndimage.binary_dilation(vent, iterations=2)


@pytest.mark.slow
def test_default_recipe_keeps_the_thalamic_contrast(realistic):
    """The default CLI recipe on the realistic phantom (mask from the magnitude): χ on ≥ 95 % of its mask and
    the thalamus − CSF contrast within 3 ppb of the true map's through the same measurement — with the R2* CSF
    mask, which spans the brain (nested SMV passes of 30, 20, 10 and 5 mm; measured −0.8 ppb), and with a compact
    one, the ventricles' CSF alone (a 40 mm pass first; −0.6 ppb). 5 mm alone still loses more than 5 ppb (−6.8),
    which the test checks so that it shows what the nesting buys."""
    from analysis.imaging.qsm import WHOLE_BRAIN_RECIPE, reconstruct_recipes
    from analysis.simulation.phantom_qsm import phantom_qsm_accuracy, true_thalamic_susceptibility

    ph = realistic["phantom"]
    sim = simulate_megre(ph, snr=100.0, seed=simulation_seed(0))
    common = dict(voxel_size_mm=sim.voxel_size_mm, b0_tesla=sim.b0_tesla, b0_direction=sim.b0_direction,
                  progress=False)
    recipes = {"default": WHOLE_BRAIN_RECIPE, "5 mm only": {**WHOLE_BRAIN_RECIPE, "smv_radius_mm": 5.0}}
    out = reconstruct_recipes(sim.magnitude, sim.phase, sim.echo_times_s, recipes=recipes, **common)
    rec = out["default"]
    assert rec["parameters"]["smv_radii_mm"] == [30.0, 20.0, 10.0, 5.0]
    assert rec["parameters"]["csf_mask_spread_mm"] < 15.0 and rec["parameters"]["csf_warning"] is None
    assert np.count_nonzero(rec["mask"]) >= 0.95 * np.count_nonzero(rec["brain_mask"])
    compact = reconstruct_recipes(sim.magnitude, sim.phase, sim.echo_times_s, recipes={"default": WHOLE_BRAIN_RECIPE},
                                  csf_mask=_pure_ventricles(ph, rec["csf_mask"]), **common)["default"]
    assert compact["parameters"]["smv_radii_mm"] == [40.0, 30.0, 20.0, 10.0, 5.0]
    assert compact["parameters"]["csf_mask_spread_mm"] > 15.0 and compact["parameters"]["csf_warning"] is None
    maps = {k: (r["chi_ppm"], r["mask"]) for k, r in out.items()}
    maps["compact CSF"] = (compact["chi_ppm"], compact["mask"])
    acc = phantom_qsm_accuracy(maps, ph).set_index("method")
    err = acc["thalamus_reconstruction_error_ppb"]
    assert abs(err["default"]) <= 3.0
    assert abs(err["compact CSF"]) <= 3.0
    assert err["5 mm only"] < -5.0
    # the measurement itself (veins, partial volume) reads the true map 2.7 ppb low on this phantom
    truth = true_thalamic_susceptibility(ph)["relative_ppb"]
    assert -4.0 < acc.loc["default", "thalamus_measured_on_truth_ppb"] - truth < -1.5
    assert acc.loc["default", "nrmse_pct"] < acc.loc["5 mm only", "nrmse_pct"]


@pytest.mark.slow
def test_default_recipe_keeps_the_thalamic_contrast_with_anisotropic_voxels():
    """1 × 1 × 2 mm realistic phantom (field simulated on the 0.5 × 0.5 × 1 mm grid; about 2 min and 3.3 GB): χ on
    the whole mask and the reconstruction's thalamus − CSF error within 3 ppb, with the R2* CSF mask (passes of 30,
    20, 10 and 5 mm; measured +0.1 ppb) and with the ventricles' CSF alone (40 mm first; +0.3 ppb, −4.7 ppb with
    5 mm alone). The ROI measure on the true map reads 4.1 ppb below the label means here."""
    from analysis.imaging.qsm import WHOLE_BRAIN_RECIPE, reconstruct_recipes
    from analysis.simulation.phantom_qsm import phantom_qsm_accuracy

    ph = make_head_phantom(resolution_mm=(1.0, 1.0, 2.0), seed=0, realism="realistic", max_fine_voxels=96_000_000)
    sim = simulate_megre(ph, snr=100.0, seed=simulation_seed(0))
    common = dict(voxel_size_mm=sim.voxel_size_mm, b0_tesla=sim.b0_tesla, b0_direction=sim.b0_direction,
                  progress=False, recipes={"default": WHOLE_BRAIN_RECIPE})
    rec = reconstruct_recipes(sim.magnitude, sim.phase, sim.echo_times_s, **common)["default"]
    assert rec["parameters"]["smv_radii_mm"] == [30.0, 20.0, 10.0, 5.0]
    assert np.count_nonzero(rec["mask"]) >= 0.95 * np.count_nonzero(rec["brain_mask"])
    compact = reconstruct_recipes(sim.magnitude, sim.phase, sim.echo_times_s,
                                  csf_mask=_pure_ventricles(ph, rec["csf_mask"]), **common)["default"]
    assert compact["parameters"]["smv_radii_mm"] == [40.0, 30.0, 20.0, 10.0, 5.0]
    acc = phantom_qsm_accuracy({"default": (rec["chi_ppm"], rec["mask"]),
                                "compact CSF": (compact["chi_ppm"], compact["mask"])}, ph).set_index("method")
    assert abs(acc.loc["default", "thalamus_reconstruction_error_ppb"]) <= 3.0
    assert abs(acc.loc["compact CSF", "thalamus_reconstruction_error_ppb"]) <= 3.0
    assert acc.loc["default", "nrmse_pct"] < 50.0
