"""Forward simulation of a 3 T multi-echo gradient-echo (MEGRE) acquisition of the head phantom.

Physics
-------
* **Field.** The relative field perturbation (ppm) is the convolution of χ with the unit dipole,
  ``δB/B0 = d ⊛ χ`` (Lorentz-corrected kernel ``D(k) = 1/3 − (k·b̂)²/|k|²``, ``D(0) = 0``),
  computed with :func:`analysis.imaging.qsm.kernels.forward_field` on the phantom's *world* grid (the
  whole head in air, zero-padded) with χ taken relative to air, so the field is that of the head
  in an infinite air space; then cropped to the field of view. This ``total_field_ppm`` is the
  sum of the **local field** (``local_field_ppm``: the field of χ inside the brain mask, χ = 0
  elsewhere, i.e. relative to CSF) and the **background field** (everything else: air/tissue
  boundaries, sinuses, skull).
* **Signal** of echo ``n`` at echo time ``TE_n`` (spoiled GRE steady state)::

      S_n = s · M0 · sin α (1 − E1) / (1 − cos α E1) · exp(−R2* TE_n) · exp(i φ_n),  E1 = exp(−TR/T1)
      φ_n = φ0 + 2π γ̄ B0 · δB/B0 · TE_n          (γ̄ = 42.577 MHz/T, δB/B0 in ppm × 1e-6)

  with ``s`` = ``signal_scale`` and φ0 a smooth (quadratic) receive-phase offset. Positive χ
  gives a positive field along B0 and a positive phase slope (the MEDI convention).
* **Noise.** Complex Gaussian, independent in the real and imaginary parts with standard
  deviation σ each. **SNR** is defined as the mean noise-free magnitude of the *first echo*
  over the brain mask divided by σ (so σ = mean(|S_1| in brain) / SNR). Magnitude and phase are
  taken from the noisy complex signal; the phase is wrapped to (−π, π].

Realistic phantom: the forward model on a finer grid
---------------------------------------------------
For a phantom built with ``realism="realistic"`` (it carries a
:class:`~analysis.simulation.phantom.FineGrid`), :func:`phantom_fields` and :func:`simulate_megre`
avoid the "inverse crime" (simulating with the very discretisation the inversion assumes):

* the field is computed on the **fine grid** (e.g. 1 mm for a 2 mm acquisition) from the fine χ,
  with the dipole kernel sampled on that grid (the whole head in air, zero-padded by a quarter of
  the head's largest extent in mm on each side), and the local field from the fine χ inside the
  fine brain;
* the complex signal of every echo is computed on the fine grid (fine M0, T1, R2*, field) and
  **averaged over the fine voxels of each acquisition voxel** — intravoxel dephasing and partial
  volume, so the phase is no longer exactly field × TE and the magnitude decays faster where the
  field varies inside a voxel (veins, air/tissue boundaries);
* φ0 and the noise are added on the acquisition grid as before; σ follows the same SNR rule, with
  the mean first-echo magnitude of the averaged signal in the brain;
* the returned truth fields are the fine fields averaged over each acquisition voxel.

``forward="acquisition"`` simulates such a phantom the simple way (acquisition-grid χ, the
inversion's own kernel and grid), for comparison. The fine fields are cached on the phantom, so
several SNRs or seeds cost one field computation.

Protocol
--------
The paper (3 T GE Signa HDxt): spoiled multi-echo GRE, TR 57 ms, first TE 4.3 ms, flip angle
20°. The echo count and spacing are not printed; we use the Cornell protocol's usual
**11 echoes, ΔTE 4.8 ms** (TE 4.3 … 52.3 ms, which fits in TR = 57 ms):
:func:`paper_echo_times`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.imaging.qsm.kernels import GAMMA_HZ_PER_T, as_direction, forward_field
from analysis.simulation.bids_dataset import write_megre_subject
from analysis.simulation.phantom import AIR_CHI_PPM, make_head_phantom

__all__ = [
    "PAPER_PROTOCOL",
    "MegreSimulation",
    "field_to_phase",
    "fine_fields",
    "paper_echo_times",
    "phantom_fields",
    "simulate_bids_subject",
    "simulate_megre",
    "simulation_seed",
]

#: The paper's protocol (seconds, degrees, tesla) with the documented echo train.
PAPER_PROTOCOL = {
    "first_echo_time_s": 0.0043,
    "echo_spacing_s": 0.0048,
    "n_echoes": 11,
    "repetition_time_s": 0.057,
    "flip_angle_deg": 20.0,
    "b0_tesla": 3.0,
}


def paper_echo_times(n_echoes=11, *, first_te_s=0.0043, echo_spacing_s=0.0048):
    """Echo times (s) of the simulated protocol: ``first_te_s + k · echo_spacing_s``, k = 0 … n−1.

    The default is 4.3, 9.1, …, 52.3 ms (11 echoes), the last echo within TR = 57 ms.
    """
    n = int(n_echoes)
    if n < 1:
        raise ValueError(f"n_echoes must be ≥ 1, got {n_echoes!r}")
    if not first_te_s > 0 or not echo_spacing_s > 0:
        raise ValueError("first_te_s and echo_spacing_s must be positive (seconds)")
    return np.round(first_te_s + echo_spacing_s * np.arange(n, dtype=float), 9)


def field_to_phase(field_ppm, echo_time_s, *, b0_tesla=3.0):
    """Phase (rad, unwrapped) accrued by a field (ppm) at an echo time (s): 2π γ̄ B0 · field · 1e-6 · TE."""
    return 2.0 * np.pi * GAMMA_HZ_PER_T * float(b0_tesla) * 1e-6 * np.asarray(field_ppm) * float(echo_time_s)


@dataclass
class MegreSimulation:
    """Simulated MEGRE data on the phantom's field-of-view grid.

    Attributes
    ----------
    magnitude : ndarray, float32, shape (X, Y, Z, E)
        Magnitude (arbitrary units, ``signal_scale`` × proton density).
    phase : ndarray, float32, shape (X, Y, Z, E)
        Wrapped phase (rad, (−π, π]).
    echo_times_s : ndarray, shape (E,)
    b0_tesla : float
    b0_direction : tuple of 3 float
        Unit B0 direction in voxel axes.
    affine : ndarray, shape (4, 4)
    voxel_size_mm : tuple of 3 float
    repetition_time_s, flip_angle_deg : float
    total_field_ppm, local_field_ppm, background_field_ppm : ndarray, float32, shape (X, Y, Z)
        Truth fields (ppm): total = local + background.
    phase_offset_rad : ndarray, float32, shape (X, Y, Z)
        The receive-phase offset φ0 (rad, not wrapped).
    noise_sigma : float
        σ of the real and imaginary noise (same units as ``magnitude``); 0 if noise-free.
    snr : float or None
        First-echo SNR in the brain as defined in the module docstring.
    forward : {"acquisition", "fine"}
        Where the field and the signal were computed: on this grid (simple phantom, the inverse
        crime) or on the realistic phantom's fine grid, averaged into each voxel.
    oversample : tuple of 3 int or None
        Fine voxels per voxel along each axis (``forward="fine"``).
    """

    magnitude: np.ndarray
    phase: np.ndarray
    echo_times_s: np.ndarray
    b0_tesla: float
    b0_direction: tuple
    affine: np.ndarray
    voxel_size_mm: tuple
    repetition_time_s: float
    flip_angle_deg: float
    total_field_ppm: np.ndarray
    local_field_ppm: np.ndarray
    background_field_ppm: np.ndarray
    phase_offset_rad: np.ndarray
    noise_sigma: float
    snr: float | None
    seed: int | None = None
    forward: str = "acquisition"
    oversample: tuple | None = None


def phantom_fields(phantom, *, b0_direction=(0.0, 0.0, 1.0), forward="auto"):
    """Total and local field (ppm) of a :class:`~analysis.simulation.phantom.HeadPhantom` on its FOV grid.

    Parameters
    ----------
    phantom : HeadPhantom
    b0_direction : tuple of 3 float
    forward : {"auto", "acquisition", "fine"}
        ``"auto"``: on the fine grid for a realistic phantom (averaged into each voxel), on the
        acquisition grid otherwise. ``"acquisition"`` forces the acquisition grid (the inverse
        crime) for a realistic phantom too.

    Returns
    -------
    total_field_ppm, local_field_ppm : ndarray, float32, shape (X, Y, Z)
        ``total`` is the field of the whole head in air (χ − χ_air on the world grid, padded by
        a quarter of its largest dimension on each side), ``local`` the field of χ inside the
        brain mask only (χ = 0 elsewhere).
    """
    if _forward_mode(phantom, forward) == "fine":
        from analysis.simulation.phantom.realistic import block_mean

        total_f, local_f = fine_fields(phantom, b0_direction=b0_direction)
        f = phantom.fine.factor
        return block_mean(total_f, f).astype(np.float32), block_mean(local_f, f).astype(np.float32)
    if phantom.world_chi_ppm is None or phantom.fov_slices is None:
        raise ValueError("the phantom has no world grid (world_chi_ppm/fov_slices); build it with make_head_phantom")
    vs = phantom.voxel_size_mm
    world = phantom.world_chi_ppm - np.float32(phantom.params.get("air_chi_ppm", AIR_CHI_PPM))
    total = forward_field(world, voxel_size=vs, b0_direction=b0_direction, pad=max(world.shape) // 4)
    total = np.ascontiguousarray(total[phantom.fov_slices], dtype=np.float32)
    del world
    inside = np.where(phantom.brain_mask, phantom.chi_ppm, np.float32(0.0)).astype(np.float32)
    local = forward_field(inside, voxel_size=vs, b0_direction=b0_direction, pad=max(inside.shape) // 4)
    return total, np.asarray(local, dtype=np.float32)


def _forward_mode(phantom, forward):
    if forward not in ("auto", "acquisition", "fine"):
        raise ValueError(f"forward must be 'auto', 'acquisition' or 'fine', got {forward!r}")
    fine = getattr(phantom, "fine", None)
    if forward == "fine" and fine is None:
        raise ValueError("forward='fine' needs a realistic phantom (make_head_phantom(realism='realistic'))")
    if forward == "auto":
        return "acquisition" if fine is None else "fine"
    return forward


def _field_padded(chi, voxel_size, b0_direction, pad_mm):
    """``d ⊛ χ`` (ppm, float32) with ``pad_mm`` of zeros on each side (per-axis voxels), uncached kernel."""
    import scipy.fft as sfft

    from analysis.imaging.qsm.kernels import FFT_WORKERS, fast_shape, kspace_coordinates, pad_array

    pads = tuple(int(np.ceil(pad_mm / v)) for v in voxel_size)
    shp = fast_shape(chi.shape, pad=pads)
    xp, sl = pad_array(chi, shp)
    spec = sfft.rfftn(xp, workers=FFT_WORKERS)
    del xp
    kx, ky, kz = (k.astype(np.float32) for k in kspace_coordinates(shp, voxel_size=voxel_size))
    bx, by, bz = (np.float32(b) for b in b0_direction)
    for i in range(spec.shape[0]):  # slab by slab: the kernel is never held whole
        k2 = kx[i] ** 2 + ky ** 2 + kz ** 2
        kb = kx[i] * bx + ky * by + kz * bz
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.float32(1.0 / 3.0) - kb * kb / k2
        if i == 0:
            d[0, 0, 0] = 0.0
        spec[i] *= d[0]
    out = sfft.irfftn(spec, s=shp, workers=FFT_WORKERS, overwrite_x=True)
    del spec
    return np.ascontiguousarray(out[sl], dtype=np.float32)


def fine_fields(phantom, *, b0_direction=(0.0, 0.0, 1.0)):
    """Total and local field (ppm) of a realistic phantom on its fine field-of-view grid (cached).

    Returns
    -------
    total_field_ppm, local_field_ppm : ndarray, float32, shape ``phantom.fine.shape``
        The field of the whole head in air from the fine χ (zero-padded by a quarter of the
        world's largest extent, in mm, on each side) and of the fine χ inside the fine brain.
    """
    fine = getattr(phantom, "fine", None)
    if fine is None:
        raise ValueError("the phantom has no fine grid (build it with realism='realistic')")
    bdir = as_direction(b0_direction)
    key = ("fields", bdir)
    if key not in fine.field_cache:
        vs = fine.voxel_size_mm
        pad_mm = max(n * v for n, v in zip(fine.world_chi_ppm.shape, vs)) / 4.0
        world = fine.world_chi_ppm - np.float32(phantom.params.get("air_chi_ppm", AIR_CHI_PPM))
        total = _field_padded(world, vs, bdir, pad_mm)[fine.fov_slices]
        del world
        inside = np.where(fine.world_brain_mask, fine.world_chi_ppm, np.float32(0.0))
        local = _field_padded(inside, vs, bdir, pad_mm)[fine.fov_slices]
        del inside
        fine.field_cache[key] = (np.ascontiguousarray(total), np.ascontiguousarray(local))
    return fine.field_cache[key]


def _phase_offset(shape, rng, *, amplitude=1.0):
    """Smooth quadratic receive-phase offset (rad) over the grid, coefficients drawn from ``rng``."""
    u = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    u = [u[0][:, None, None], u[1][None, :, None], u[2][None, None, :]]
    c0 = rng.uniform(-np.pi, np.pi)
    lin = rng.normal(0.0, 0.6 * amplitude, size=3)
    quad = rng.normal(0.0, 0.3 * amplitude, size=(3, 3))
    phi = np.full(shape, c0, dtype=np.float32)
    for i in range(3):
        phi += np.float32(lin[i]) * u[i]
        for j in range(i, 3):
            phi += np.float32(quad[i, j]) * (u[i] * u[j])
    return phi


def _steady_state(m0, t1_s, flip_angle_deg, repetition_time_s, signal_scale):
    amp = m0.astype(np.float32) * np.float32(signal_scale)
    if flip_angle_deg is not None:
        a = np.deg2rad(float(flip_angle_deg))
        e1 = np.exp(-float(repetition_time_s) / np.maximum(t1_s, 1e-3)).astype(np.float32)
        amp *= np.float32(np.sin(a)) * (1 - e1) / (1 - np.float32(np.cos(a)) * e1)
    return amp


def simulate_megre(phantom, *, echo_times_s=None, snr=100.0, b0_tesla=3.0, b0_direction=(0.0, 0.0, 1.0),
                   flip_angle_deg=20.0, repetition_time_s=0.057, phase_offset=True, signal_scale=1000.0,
                   seed=0, fields=None, forward="auto"):
    """Simulate magnitude and wrapped phase of a multi-echo GRE acquisition of the phantom.

    Parameters
    ----------
    phantom : analysis.simulation.phantom.HeadPhantom
    echo_times_s : array_like, shape (E,), optional
        Echo times (s), increasing; default :func:`paper_echo_times` (11 echoes, 4.3–52.3 ms).
    snr : float or None
        First-echo SNR in the brain (see module docstring); ``None`` or ``inf`` for noise-free data.
    b0_tesla : float
        Field strength (T).
    b0_direction : tuple of 3 float
        B0 direction in voxel axes (the phantom is axial RAS+, so ``(0, 0, 1)``).
    flip_angle_deg, repetition_time_s : float
        Spoiled-GRE steady state (paper: 20°, 57 ms). ``flip_angle_deg=None`` uses M0 directly.
    phase_offset : bool
        Add a smooth receive-phase offset φ0.
    signal_scale : float
        Scale of the magnitude (arbitrary units).
    seed : int
        Seed of φ0 and of the noise; same inputs and seed → identical output.
    fields : tuple (total_field_ppm, local_field_ppm), optional
        Precomputed :func:`phantom_fields` (to simulate several SNRs without recomputing); with
        ``forward="fine"`` the fine fields of :func:`fine_fields` (they are cached on the phantom
        anyway).
    forward : {"auto", "acquisition", "fine"}
        ``"auto"``: the fine-grid forward model for a realistic phantom (see the module
        docstring), the acquisition grid otherwise; ``"acquisition"`` forces the simple (inverse
        crime) forward model.

    Returns
    -------
    MegreSimulation
    """
    te = paper_echo_times() if echo_times_s is None else np.asarray(echo_times_s, dtype=float).ravel()
    if te.size < 1 or not np.all(np.isfinite(te)) or np.any(te <= 0) or np.any(np.diff(te) <= 0):
        raise ValueError(f"echo_times_s must be positive and strictly increasing (seconds), got {te.tolist()}")
    if repetition_time_s is not None and te[-1] >= repetition_time_s:
        raise ValueError(f"the last echo time ({te[-1]} s) must be shorter than "
                         f"repetition_time_s ({repetition_time_s} s)")
    if not (np.isfinite(b0_tesla) and b0_tesla > 0):
        raise ValueError(f"b0_tesla must be positive, got {b0_tesla!r}")
    if snr is not None and not (snr > 0):
        raise ValueError(f"snr must be positive (or None for noise-free data), got {snr!r}")
    bdir = as_direction(b0_direction)
    mode = _forward_mode(phantom, forward)
    if mode == "fine":
        return _simulate_megre_fine(phantom, te=te, snr=snr, b0_tesla=b0_tesla, bdir=bdir,
                                    flip_angle_deg=flip_angle_deg, repetition_time_s=repetition_time_s,
                                    phase_offset=phase_offset, signal_scale=signal_scale, seed=seed, fields=fields)
    rng = np.random.default_rng(seed)

    if fields is None:
        total, local = phantom_fields(phantom, b0_direction=bdir, forward="acquisition")
    else:
        total, local = (np.asarray(f, dtype=np.float32) for f in fields)
        if total.shape != phantom.shape or local.shape != phantom.shape:
            raise ValueError(f"fields must have the phantom's shape {phantom.shape}")
    phi0 = _phase_offset(phantom.shape, rng) if phase_offset else np.zeros(phantom.shape, np.float32)

    amp = _steady_state(phantom.m0, phantom.t1_s, flip_angle_deg, repetition_time_s, signal_scale)
    r2s = phantom.r2star_hz.astype(np.float32)
    omega = np.float32(2.0 * np.pi * GAMMA_HZ_PER_T * b0_tesla * 1e-6) * total  # rad/s

    mag1 = amp * np.exp(-r2s * np.float32(te[0]))
    if snr is None or not np.isfinite(snr):
        sigma = 0.0
    else:
        brain_mean = float(mag1[phantom.brain_mask].mean())
        sigma = brain_mean / float(snr)

    shape4 = phantom.shape + (te.size,)
    magnitude = np.empty(shape4, np.float32)
    phase = np.empty(shape4, np.float32)
    for n, t in enumerate(te):
        s = (amp * np.exp(-r2s * np.float32(t))) * np.exp(1j * (phi0 + omega * np.float32(t)))
        _store_echo(s, n, magnitude, phase, rng, sigma)
    return _simulation(phantom, magnitude=magnitude, phase=phase, te=te, b0_tesla=b0_tesla, bdir=bdir,
                       repetition_time_s=repetition_time_s, flip_angle_deg=flip_angle_deg, total=total,
                       local=local, phi0=phi0, sigma=sigma, snr=snr, seed=seed)


def _store_echo(s, n, magnitude, phase, rng, sigma):
    """Add complex Gaussian noise (standard deviation ``sigma`` per channel) to echo ``n``'s signal
    ``s`` and store its magnitude and phase in ``magnitude[..., n]`` and ``phase[..., n]``."""
    if sigma > 0:
        noise = rng.standard_normal(size=s.shape + (2,), dtype=np.float32) * np.float32(sigma)
        s = s + (noise[..., 0] + 1j * noise[..., 1])
    s = s.astype(np.complex64, copy=False)
    magnitude[..., n] = np.abs(s)
    phase[..., n] = np.angle(s)


def _simulation(phantom, *, magnitude, phase, te, b0_tesla, bdir, repetition_time_s, flip_angle_deg, total, local,
                phi0, sigma, snr, seed, **extra):
    """The :class:`MegreSimulation` of one run (``extra``: ``forward``, ``oversample``)."""
    return MegreSimulation(
        magnitude=magnitude,
        phase=phase,
        echo_times_s=te,
        b0_tesla=float(b0_tesla),
        b0_direction=bdir,
        affine=np.array(phantom.affine, dtype=float),
        voxel_size_mm=tuple(float(v) for v in phantom.voxel_size_mm),
        repetition_time_s=float(repetition_time_s) if repetition_time_s is not None else None,
        flip_angle_deg=float(flip_angle_deg) if flip_angle_deg is not None else None,
        total_field_ppm=total,
        local_field_ppm=local,
        background_field_ppm=(total - local).astype(np.float32),
        phase_offset_rad=phi0,
        noise_sigma=float(sigma),
        snr=None if sigma == 0 else float(snr),
        seed=seed,
        **extra,
    )


def _simulate_megre_fine(phantom, *, te, snr, b0_tesla, bdir, flip_angle_deg, repetition_time_s, phase_offset,
                         signal_scale, seed, fields):
    """:func:`simulate_megre` of a realistic phantom: field and complex signal on the fine grid, averaged."""
    from analysis.simulation.phantom.realistic import block_mean

    fine = phantom.fine
    f = fine.factor
    rng = np.random.default_rng(seed)
    if fields is None:
        total_f, local_f = fine_fields(phantom, b0_direction=bdir)
    else:
        total_f, local_f = (np.asarray(a, dtype=np.float32) for a in fields)
        if total_f.shape != fine.shape or local_f.shape != fine.shape:
            raise ValueError(f"with forward='fine', fields must be the fine fields of shape {fine.shape} "
                             "(fine_fields(phantom))")
    phi0 = _phase_offset(phantom.shape, rng) if phase_offset else np.zeros(phantom.shape, np.float32)
    amp = _steady_state(fine.m0, fine.t1_s, flip_angle_deg, repetition_time_s, signal_scale)
    r2s = fine.r2star_hz.astype(np.float32)
    omega = np.float32(2.0 * np.pi * GAMMA_HZ_PER_T * b0_tesla * 1e-6) * total_f  # rad/s
    n_block = int(np.prod(f))
    X, Y, Z = phantom.shape

    def voxel_signal(t):
        s = (amp * np.exp(-r2s * np.float32(t))) * np.exp(1j * (omega * np.float32(t)))
        s = s.astype(np.complex64, copy=False)
        return s.reshape(X, f[0], Y, f[1], Z, f[2]).sum(axis=(1, 3, 5)) / np.float32(n_block)

    clean = [voxel_signal(t) for t in te[:1]]
    if snr is None or not np.isfinite(snr):
        sigma = 0.0
    else:
        sigma = float(np.abs(clean[0])[phantom.brain_mask].mean()) / float(snr)
    rot = np.exp(1j * phi0).astype(np.complex64)
    shape4 = phantom.shape + (te.size,)
    magnitude = np.empty(shape4, np.float32)
    phase = np.empty(shape4, np.float32)
    for n, t in enumerate(te):
        s = (clean[0] if n == 0 else voxel_signal(t)) * rot
        _store_echo(s, n, magnitude, phase, rng, sigma)
    omega = amp = r2s = None  # released (not del: voxel_signal refers to them)
    total = block_mean(total_f, f).astype(np.float32)
    local = block_mean(local_f, f).astype(np.float32)
    return _simulation(phantom, magnitude=magnitude, phase=phase, te=te, b0_tesla=b0_tesla, bdir=bdir,
                       repetition_time_s=repetition_time_s, flip_angle_deg=flip_angle_deg, total=total,
                       local=local, phi0=phi0, sigma=sigma, snr=snr, seed=seed, forward="fine",
                       oversample=tuple(int(k) for k in f))


def simulation_seed(seed):
    """Seed of the acquisition (phase offset, noise) derived from the phantom seed.

    :func:`simulate_bids_subject` uses it, and so do
    :func:`analysis.simulation.phantom_qsm.reconstruct_phantom` and the imaging cohort, so a
    notebook and a BIDS export with the same ``seed`` simulate the same data.
    """
    return int(np.random.SeedSequence(int(seed)).generate_state(1)[0])


def simulate_bids_subject(bids_dir, *, subject="01", session=None, resolution_mm=2.0, snr=100.0, seed=0,
                          echo_times_s=None, b0_tesla=3.0, phase_units="rad", write_truth=True, overwrite=False,
                          **phantom_kwargs):
    """Build a phantom, simulate its MEGRE acquisition and write both as a BIDS subject.

    Parameters
    ----------
    bids_dir : str or Path
        Dataset root.
    subject, session : str
        BIDS labels.
    resolution_mm : float
        Phantom voxel size (mm).
    snr : float or None
        First-echo SNR in the brain (``None``: noise-free).
    seed : int
        One seed for everything: the phantom gets ``seed``, the simulation (phase offset, noise)
        a seed derived from it, so subjects with different seeds differ in lesions and noise.
    echo_times_s, b0_tesla : see :func:`simulate_megre`.
    phase_units : {"rad", "arbitrary"}
        How the phase images are stored (see :func:`analysis.simulation.bids_dataset.write_megre_subject`).
    overwrite : bool
        Replace an existing subject (default: refuse, see
        :func:`analysis.simulation.bids_dataset.write_megre_subject`).
    write_truth : bool
        Also write ``derivatives/truth/sub-<L>/…``.
    **phantom_kwargs
        Passed to :func:`analysis.simulation.phantom.make_head_phantom` (``thalamus_scale``,
        ``thalamus_chi_ppm``, ``lesion_volume_ml``, ``n_lesions``, ``realism="realistic"`` and
        its options ``oversample``, ``slab_mm``, …). A realistic phantom is simulated on its fine
        grid (see the module docstring); the truth written is on the acquisition grid.

    Returns
    -------
    phantom : HeadPhantom
    sim : MegreSimulation
    files : list of Path
    """
    sim_seed = simulation_seed(seed)
    phantom = make_head_phantom(resolution_mm=resolution_mm, seed=seed, **phantom_kwargs)
    sim = simulate_megre(phantom, echo_times_s=echo_times_s, snr=snr, b0_tesla=b0_tesla, seed=sim_seed)
    files = write_megre_subject(bids_dir, sim, subject=subject, session=session, phase_units=phase_units,
                                phantom=phantom, write_truth_files=write_truth, overwrite=overwrite)
    return phantom, sim, files
