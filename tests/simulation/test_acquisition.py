"""Forward MEGRE simulation: phase = φ0 + 2π γ̄ B0 field TE (wrapped), magnitude decay, noise at the SNR."""

import numpy as np
import pytest

from analysis.imaging.qsm.kernels import GAMMA_HZ_PER_T
from analysis.simulation.acquisition import (
    PAPER_PROTOCOL,
    field_to_phase,
    paper_echo_times,
    phantom_fields,
    simulate_megre,
    simulation_seed,
)
from analysis.simulation.phantom import make_head_phantom


@pytest.fixture(scope="module")
def ph():
    return make_head_phantom(resolution_mm=2.0, seed=0)


@pytest.fixture(scope="module")
def fields(ph):
    return phantom_fields(ph)


@pytest.fixture(scope="module")
def clean(ph, fields):
    return simulate_megre(ph, snr=None, fields=fields, seed=7)


def _wrap(x):
    return (x + np.pi) % (2 * np.pi) - np.pi


def test_protocol_echo_times():
    te = paper_echo_times()
    assert te.shape == (11,)
    assert te[0] == pytest.approx(0.0043) and te[-1] == pytest.approx(0.0523)
    assert np.allclose(np.diff(te), 0.0048)
    assert te[-1] < PAPER_PROTOCOL["repetition_time_s"] == 0.057
    # 1 ppm at 3 T is 127.73 Hz: over 1 ms that is 0.8026 rad
    assert field_to_phase(1.0, 1e-3, b0_tesla=3.0) == pytest.approx(2 * np.pi * 127.732e-3, rel=1e-4)
    assert GAMMA_HZ_PER_T == pytest.approx(42.577478518e6)


def test_phase_equals_field_times_te_wrapped(ph, clean):
    sim = clean
    assert sim.magnitude.shape == ph.shape + (11,) and sim.phase.dtype == np.float32
    head = ph.m0 > 0
    for n, te in enumerate(sim.echo_times_s):
        expected = sim.phase_offset_rad + 2 * np.pi * GAMMA_HZ_PER_T * 3.0 * 1e-6 * sim.total_field_ppm * te
        err = _wrap(sim.phase[..., n] - expected)[head]
        assert np.abs(err).max() < 2e-3, n
    # wrapped to (−π, π], and really wrapped: the unwrapped phase at the last echo exceeds ±π in the brain
    assert sim.phase.min() >= -np.pi - 1e-6 and sim.phase.max() <= np.pi + 1e-6
    unwrapped = sim.phase_offset_rad + field_to_phase(sim.total_field_ppm, sim.echo_times_s[-1])
    assert np.mean(np.abs(unwrapped[ph.brain_mask]) > np.pi) > 0.3
    # the phase offset is smooth and not zero
    assert np.ptp(sim.phase_offset_rad) > 0.5 and np.abs(np.diff(sim.phase_offset_rad, axis=0)).max() < 0.2


def test_magnitude_steady_state_and_r2star(ph, clean):
    a, tr = np.deg2rad(20.0), 0.057
    e1 = np.exp(-tr / 0.85)
    wm = (ph.labels == 2)
    for n, te in enumerate(clean.echo_times_s):
        expected = 1000 * 0.69 * np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1) * np.exp(-20.0 * te)
        assert np.allclose(clean.magnitude[..., n][wm], expected, rtol=1e-5)
    assert np.all(clean.magnitude[ph.labels == 0] == 0)  # air has no signal (noise-free)
    # log-linear R2* from two echoes recovers the pallidum's 38 Hz
    pal = ph.labels == 13
    r2 = (np.log(clean.magnitude[..., 0][pal] / clean.magnitude[..., 5][pal])
          / (clean.echo_times_s[5] - clean.echo_times_s[0]))
    assert np.allclose(r2, 38.0, rtol=1e-4)


def test_noise_matches_snr(ph, fields, clean):
    noisy = simulate_megre(ph, snr=40.0, fields=fields, seed=7)
    s1_brain = clean.magnitude[..., 0][ph.brain_mask].mean()
    assert noisy.noise_sigma == pytest.approx(s1_brain / 40.0, rel=1e-6)
    assert noisy.snr == 40.0
    # same seed → same φ0, so the complex difference is the noise alone
    assert np.array_equal(noisy.phase_offset_rad, clean.phase_offset_rad)
    for n in (0, 10):
        z = noisy.magnitude[..., n] * np.exp(1j * noisy.phase[..., n])
        z0 = clean.magnitude[..., n] * np.exp(1j * clean.phase[..., n])
        d = (z - z0).ravel()
        assert np.std(d.real) == pytest.approx(noisy.noise_sigma, rel=0.01)
        assert np.std(d.imag) == pytest.approx(noisy.noise_sigma, rel=0.01)
        assert abs(np.mean(d.real)) < 0.01 * noisy.noise_sigma
    # in air the magnitude is Rayleigh: mean σ √(π/2)
    air = ph.labels == 0
    assert noisy.magnitude[..., 3][air].mean() == pytest.approx(noisy.noise_sigma * np.sqrt(np.pi / 2), rel=0.01)
    # the measured first-echo SNR in the brain is the one asked for
    assert noisy.magnitude[..., 0][ph.brain_mask].mean() / noisy.noise_sigma == pytest.approx(40.0, rel=0.01)


def test_fields_physics(ph, fields):
    total, local = fields
    bg = total - local
    brain = ph.brain_mask
    # realistic magnitudes: background up to about a few ppm near the sinuses, local ≈ tens of ppb
    assert 0.3 < np.percentile(np.abs(bg[brain]), 99) < 3.0
    assert 0.01 < np.percentile(np.abs(local[brain]), 99) < 0.2
    # the background comes from sources outside the brain: harmonic inside. The discrete Laplacian
    # of an FFT-computed field is not exactly local (Gibbs ringing of the 9.4 ppm air step), so
    # compare with the local field's and check that the residual fades away from the brain edge.
    from scipy import ndimage

    ratios = []
    for depth in (3, 5, 7):
        inner = ndimage.binary_erosion(brain, iterations=depth)
        rms_bg = np.sqrt(np.mean(ndimage.laplace(bg.astype(np.float64))[inner] ** 2))
        rms_loc = np.sqrt(np.mean(ndimage.laplace(local.astype(np.float64))[inner] ** 2))
        ratios.append(rms_bg / rms_loc)
    assert ratios[1] < 0.25 and ratios[2] < ratios[1] < ratios[0]
    # the veins (χ +0.45) give a local dipole pattern stronger than the thalamus around them
    assert np.abs(local[ph.vein_mask]).max() > 0.05


def test_deterministic_and_errors(ph, fields):
    a = simulate_megre(ph, snr=50, fields=fields, seed=1, echo_times_s=[0.004, 0.008])
    b = simulate_megre(ph, snr=50, fields=fields, seed=1, echo_times_s=[0.004, 0.008])
    assert np.array_equal(a.magnitude, b.magnitude) and np.array_equal(a.phase, b.phase)
    assert a.magnitude.shape[-1] == 2
    with pytest.raises(ValueError, match="increasing"):
        simulate_megre(ph, fields=fields, echo_times_s=[0.01, 0.005])
    with pytest.raises(ValueError, match="repetition_time_s"):
        simulate_megre(ph, fields=fields, echo_times_s=[0.01, 0.06])
    with pytest.raises(ValueError, match="snr"):
        simulate_megre(ph, fields=fields, snr=-1)
    with pytest.raises(ValueError, match="shape"):
        simulate_megre(ph, fields=(np.zeros((2, 2, 2)), np.zeros((2, 2, 2))))


def test_simulation_seed_is_derived_from_the_phantom_seed():
    """One rule for the BIDS export, the notebooks and the imaging cohort: first word of SeedSequence(seed)."""
    assert simulation_seed(20180301) == int(np.random.SeedSequence(20180301).generate_state(1)[0])
    assert simulation_seed(0) != simulation_seed(1)
