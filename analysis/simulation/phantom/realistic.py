"""The realistic head phantom: χ that varies inside structures, partial volume, thin veins, a finer grid.

The simple phantom (:func:`~analysis.simulation.phantom.make_head_phantom`, the default) has one χ
per label on the acquisition grid and its field is simulated on that same grid with the same
kernel the inversion uses — the "inverse crime", which flatters every reconstruction. This module
builds a phantom whose accuracy numbers transfer better to real data:

Anatomy on a **fine grid**
    The acquisition voxel (``resolution_mm``) is split ``oversample`` times along each axis (default
    2 along axes of ≥ 1 mm, 1 along finer ones: the anatomy is a 1 mm atlas, so finer voxels would
    add memory, not detail). The labels come from the simple phantom's builder run on a *master*
    grid (the fine voxel, or an integer multiple of it ≤ 1 mm, repeated onto the fine grid), so
    head layers, air cavities and lesions are the simple phantom's.

Susceptibility on the fine grid (ppm, CSF = 0)
    * each tissue's table value (:data:`~analysis.simulation.phantom.TISSUES`, the caller's
      ``thalamus_chi_ppm``, ``vein_chi_ppm``, ``chi_overrides``) is its **mean**;
    * **texture**: two seeded Gaussian random fields (correlation σ 1.5 mm and 5 mm, drawn on the
      1 mm atlas lattice in MNI mm and interpolated, so the texture is the same at every resolution
      for a given seed), with per-tissue amplitudes (:data:`TEXTURE_PPM`, ``texture_scale``):
      white matter is not constant (±8 ppb coarse), cortex varies (±8 ppb fine), deep grey
      matter ±6 ppb;
    * **iron gradients** in deep grey matter (:data:`IRON_GRADIENTS_PPB_PER_MM`, ``iron_gradients``):
      putamen higher posteriorly and laterally, pallidum posteriorly and inferiorly, caudate head
      higher than its body, thalamus higher posteriorly (pulvinar) and laterally, ventral
      diencephalon (substantia nigra, red nucleus) inferiorly; linear in mm about each structure's
      centroid;
    * texture and gradient are made zero-mean over each label (so the table value stays the mean),
      and R2* of deep grey matter follows its χ perturbation (150 Hz/ppm);
    * **veins** drawn with their true radii as voxel *fractions*
      (:func:`~analysis.simulation.phantom.veins.tube_fraction`):
      internal cerebral veins (1.5 mm), basal veins (1.25 mm), vein of Galen (2.5 mm),
      thalamostriate veins (0.8 mm, in the caudothalamic groove: labels 906/907) and
      ``n_medullary_veins`` thin medullary veins (0.3–0.6 mm, label 908) from the ventricle wall
      through the white matter. Venous blood is ``vein_chi_ppm`` (default +0.45 ppm vs CSF:
      deoxygenated blood at 3 T, Hct 0.4, Y ≈ 0.6–0.7); a voxel's χ, R2*, M0 and T1 mix tissue and
      blood by the vein fraction, so small vessels are partial-volumed.

Acquisition grid
    ``chi_ppm`` (the truth) is the mean of the fine χ over the fine voxels of each acquisition
    voxel (partial volume at every boundary); R2*, M0, T1 likewise; ``labels`` is the majority
    fine label (brain and non-brain voxels apart, so the brain mask — brain in ≥ half of the voxel —
    holds brain labels only; a fine voxel is "vein" where its vein fraction is ≥ 0.5);
    ``vein_fraction`` is the mean vein fraction. The forward model on the fine grid is in
    :func:`analysis.simulation.acquisition.simulate_megre` (field and complex signal on the fine
    grid, complex signal averaged into each acquisition voxel).

Thalamic truth (exact)
    The truth the ROI measurements aim at is :func:`thalamic_truth_ppb`: on the acquisition grid,
    the mean truth χ over the voxels labelled thalamus (10, 49; voxels whose majority is vein carry
    the vein's label and are excluded, voxels with < 50 % vein are included with their averaged χ)
    minus the mean over the lateral ventricles (4, 43), in ppb — the definition of
    :func:`analysis.simulation.phantom_qsm.true_thalamic_susceptibility`. Partial volume would
    move it by a few ppb, so the builder adds one constant per side to the thalamic tissue (fine
    grid, before the field is computed) that makes it equal ``thalamus_chi_ppm`` × 1000 for each
    side, exactly (to float32 round-off); the constants are in ``params["thalamus_offset_ppm"]``.

Anisotropic voxels and cropping
    ``resolution_mm=(0.5, 0.5, 2.0)`` (the paper's voxel) gives a fine grid of 0.5 × 0.5 × 1 mm;
    the whole head must be on the fine grid for its field (39 M voxels). Measured on the shared
    2-core machine (load ≈ 6): whole 160 × 192 × 168 mm FOV (320 × 384 × 84 voxels) 64 s to build,
    166 s to simulate 11 echoes, 3.6 GB peak; ``slab_mm=40`` (20 slices centred on the thalami)
    37 s + 37 s, 3.1 GB. ``slab_mm`` crops the acquisition to an axial slab centred on the
    thalami, which shrinks the signal simulation and the returned arrays; ``fov_mm`` crops
    in-plane. At 2 mm (fine grid 1 mm) building takes about 12 CPU seconds and simulating 6.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage

from analysis.imaging.labels import LATERAL_VENTRICLES, THALAMUS, VENTRICULAR_CSF
from analysis.simulation.phantom.atlas import ATLAS_PACKAGE, ATLAS_RELPATH, atlas_version, world_atlas_1mm
from analysis.simulation.phantom.head import (
    DEFAULT_FOV_MM,
    HeadPhantom,
    _as_resolution,
    _build_world,
    _check_arguments,
    _chi_table,
    _fov_start,
)
from analysis.simulation.phantom.tissues import AIR_CAVITY, AIR_CHI_PPM, LESION, TISSUES, VEINS
from analysis.simulation.phantom.veins import medullary_centrelines, thalamostriate_centrelines, tube_fraction

__all__ = [
    "FineGrid",
    "IRON_GRADIENTS_PPB_PER_MM",
    "TEXTURE_PPM",
    "block_mean",
    "make_realistic_head_phantom",
    "thalamic_truth_ppb",
]

#: Texture amplitude per tissue group (ppm): SD of the fine (σ 1.5 mm) and coarse (σ 5 mm) field.
TEXTURE_PPM = {
    "white_matter": (0.004, 0.008),
    "cortex": (0.008, 0.006),
    "cerebellar_cortex": (0.006, 0.005),
    "deep_grey": (0.006, 0.005),
    "other_grey": (0.005, 0.004),
    "lesion": (0.005, 0.003),
}
_TEXTURE_GROUPS = {
    "white_matter": (2, 41, 7, 46, 85, 251, 252, 253, 254, 255),
    "cortex": (3, 42),
    "cerebellar_cortex": (8, 47),
    "deep_grey": (10, 49, 11, 50, 12, 51, 13, 52, 26, 58, 28, 60),
    "other_grey": (16, 17, 53, 18, 54),
    "lesion": (LESION,),
}
#: Iron gradients (ppb per mm) along (lateral, posterior, superior), about each structure's centroid.
IRON_GRADIENTS_PPB_PER_MM = {
    "putamen": ((12, 51), (0.5, 1.0, 0.0)),
    "pallidum": ((13, 52), (0.0, 0.8, -0.5)),
    "caudate": ((11, 50), (0.0, -0.6, 0.0)),
    "thalamus": ((10, 49), (0.4, 0.6, 0.0)),
    "ventral_dc": ((28, 60), (0.0, 0.0, -1.0)),
}
_DEEP_GREY = _TEXTURE_GROUPS["deep_grey"]
#: R2* (Hz) per ppm of χ perturbation in deep grey matter (iron raises both).
_R2STAR_HZ_PER_PPM = 150.0
_TEXTURE_SIGMA_MM = (1.5, 5.0)
_VEIN_TISSUE = 901  # tissue row whose R2*, M0, T1 are those of venous blood


@dataclass
class FineGrid:
    """The realistic phantom's fine grid: what :func:`~analysis.simulation.acquisition.simulate_megre` needs.

    Attributes
    ----------
    factor : tuple of 3 int
        Fine voxels per acquisition voxel along each axis.
    voxel_size_mm : tuple of 3 float
    world_chi_ppm : ndarray, float32
        Fine χ (ppm vs CSF, air +9.4) on the whole fine world grid (for the field).
    world_brain_mask : ndarray, bool
        Brain on the fine world grid (the local field is that of χ inside it).
    world_affine : ndarray (4, 4)
    fov_slices : tuple of 3 slice
        The acquisition field of view on the fine world grid.
    affine : ndarray (4, 4)
        Voxel → MNI mm of the fine field of view.
    labels : ndarray, int16
        Fine truth labels in the field of view (vein where the vein fraction is ≥ 0.5).
    vein_fraction, r2star_hz, m0, t1_s : ndarray, float32
        Fine maps in the field of view.
    vein_label : ndarray, int16
        The vein (901–908) with the largest fraction in each fine voxel (0 where none).
    """

    factor: tuple
    voxel_size_mm: tuple
    world_chi_ppm: np.ndarray
    world_brain_mask: np.ndarray
    world_affine: np.ndarray
    fov_slices: tuple
    affine: np.ndarray
    labels: np.ndarray
    vein_fraction: np.ndarray
    r2star_hz: np.ndarray
    m0: np.ndarray
    t1_s: np.ndarray
    vein_label: np.ndarray
    field_cache: dict = field(default_factory=dict, repr=False)

    @property
    def shape(self):
        """Shape of the fine field of view."""
        return self.labels.shape

    @property
    def chi_ppm(self):
        """Fine χ in the field of view (a view of :attr:`world_chi_ppm`)."""
        return self.world_chi_ppm[self.fov_slices]


# --- grid helpers ------------------------------------------------------------------------------------

def _blocks(a, f):
    """View ``a`` (shape multiple of ``f``) as (X, Y, Z, f0·f1·f2) blocks (a copy)."""
    X, Y, Z = (s // k for s, k in zip(a.shape, f))
    return a.reshape(X, f[0], Y, f[1], Z, f[2]).transpose(0, 2, 4, 1, 3, 5).reshape(X, Y, Z, -1)


def block_mean(a, factor, *, dtype=np.float64):
    """Mean of ``a`` over blocks of ``factor`` voxels (shape must be a multiple of ``factor``)."""
    f = tuple(int(k) for k in factor)
    if any(s % k for s, k in zip(a.shape, f)):
        raise ValueError(f"shape {a.shape} is not a multiple of the block {f}")
    X, Y, Z = (s // k for s, k in zip(a.shape, f))
    return a.reshape(X, f[0], Y, f[1], Z, f[2]).mean(axis=(1, 3, 5), dtype=dtype)


def _block_mode(labels, factor, valid=None):
    """Most frequent label per block (only ``valid`` fine voxels vote; ties → first in block order)."""
    b = _blocks(labels, factor)
    n = b.shape[-1]
    if n == 1:
        return b[..., 0].copy()
    v = _blocks(valid, factor) if valid is not None else None
    counts = np.zeros(b.shape, np.int16)
    for k in range(n):
        hit = b == b[..., k:k + 1]
        if v is not None:
            hit &= v[..., k:k + 1]
        counts += hit
    if v is not None:
        counts[~v] = -1
    j = counts.argmax(-1)
    return np.take_along_axis(b, j[..., None], -1)[..., 0]


def _repeat_to(a, q, shape, fill=0):
    """Repeat ``a`` ``q`` times along each axis and crop/pad (with ``fill``) to ``shape``."""
    out = a
    for ax, k in enumerate(q):
        if k > 1:
            out = np.repeat(out, k, axis=ax)
    res = np.full(shape, fill, dtype=a.dtype)
    sl = tuple(slice(0, min(s, t)) for s, t in zip(out.shape, shape))
    res[sl] = out[sl]
    return res


def _interp_axis(a, u, axis):
    """Linear interpolation of ``a`` at fractional indices ``u`` along ``axis`` (clamped)."""
    n = a.shape[axis]
    u = np.clip(u, 0.0, n - 1.0)
    i0 = np.floor(u).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (u - i0).astype(np.float32)
    shp = [1, 1, 1]
    shp[axis] = -1
    w = w.reshape(shp)
    lo = np.take(a, i0, axis=axis)
    if not np.any(w):
        return lo
    return lo * (1 - w) + np.take(a, i1, axis=axis) * w


def _texture_fields(rng):
    """Two unit-SD smooth Gaussian random fields on the 1 mm atlas lattice (brain box + 10 mm)."""
    world1, _, hull = world_atlas_1mm()
    nz = np.argwhere(hull)
    lo = np.maximum(nz.min(0) - 10, 0)
    hi = np.minimum(nz.max(0) + 11, world1.shape)
    shape = tuple(int(b - a) for a, b in zip(lo, hi))
    out = []
    for sigma in _TEXTURE_SIGMA_MM:
        g = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma, mode="reflect")
        g /= np.float32(g.std())
        out.append(g)
    return out, lo


def _sample_texture(fields, lattice_lo, fine_lo, fine_shape, r_f):
    """Texture fields at the fine voxel centres of a box starting at fine index ``fine_lo``."""
    out = []
    for g in fields:
        a = g
        for ax in range(3):
            j = np.arange(fine_shape[ax]) + fine_lo[ax]
            u = (j + 0.5) * r_f[ax] - 0.5 - lattice_lo[ax]  # index on the 1 mm lattice
            a = _interp_axis(a, u, ax)
        out.append(np.ascontiguousarray(a, dtype=np.float32))
    return out


def _default_oversample(res):
    return tuple(2 if r >= 1.0 - 1e-9 else 1 for r in res)


def _as_oversample(oversample, res):
    if oversample is None:
        return _default_oversample(res)
    f = np.atleast_1d(np.asarray(oversample)).ravel()
    if f.size == 1:
        f = np.repeat(f, 3)
    if f.size != 3 or np.any(f < 1) or np.any(f > 8) or not np.all(f == np.round(f)):
        raise ValueError(f"oversample must be one or three integers in [1, 8], got {oversample!r}")
    return tuple(int(v) for v in f)


# --- the builder -------------------------------------------------------------------------------------

def make_realistic_head_phantom(*, resolution_mm=2.0, seed=0, thalamus_scale=1.0, thalamus_chi_ppm=0.04,
                                lesion_volume_ml=5.0, n_lesions=6, vein_chi_ppm=0.45, chi_overrides=None,
                                fov_mm=DEFAULT_FOV_MM, cavities=True, oversample=None, slab_mm=None,
                                texture_scale=1.0, iron_gradients=1.0, n_medullary_veins=40,
                                max_fine_voxels=64_000_000):
    """Build the realistic head phantom (see the module docstring).

    Parameters
    ----------
    resolution_mm, seed, thalamus_scale, lesion_volume_ml, n_lesions, vein_chi_ppm, chi_overrides, cavities
        As :func:`~analysis.simulation.phantom.make_head_phantom`; ``resolution_mm`` is the
        acquisition voxel. Lesion volumes are exact on the master grid (the fine voxel, or a
        multiple of it up to 1 mm), approximate on the acquisition grid.
    thalamus_chi_ppm : float or (float, float)
        True relative thalamic χ (ppm vs the lateral ventricles), both sides or (left, right):
        :func:`thalamic_truth_ppb` returns it × 1000 exactly.
    fov_mm : tuple of 3 float
        Field of view (mm) of the acquisition grid, centred on the brain.
    oversample : int or tuple of 3 int, optional
        Fine voxels per acquisition voxel along each axis; default 2 along axes of ≥ 1 mm, 1 along
        finer ones (0.5 × 0.5 × 2 mm → fine 0.5 × 0.5 × 1 mm).
    slab_mm : float, optional
        Crop the acquisition to an axial slab of this thickness centred on the thalami.
    texture_scale : float
        Factor on the texture amplitudes :data:`TEXTURE_PPM` (0: no texture).
    iron_gradients : float or bool
        Factor on :data:`IRON_GRADIENTS_PPB_PER_MM` (``False``/0: none).
    n_medullary_veins : int
        Thin medullary veins (drawn with the seed; some stop early and are dropped).
    max_fine_voxels : int
        Refuse fine world grids larger than this. Peak memory of building and simulating is about
        95 bytes per fine voxel (0.5 × 0.5 × 2 mm, whole FOV: 39 M fine voxels, 3.6 GB; with a
        40 mm slab 3.1 GB — the field needs the whole head); the default caps it near 6 GB.

    Returns
    -------
    HeadPhantom
        On the acquisition grid, with ``fine`` (:class:`FineGrid`) and ``vein_fraction`` set and
        ``params["realism"] == "realistic"``.
    """
    res = _as_resolution(resolution_mm)
    _check_arguments(thalamus_scale, lesion_volume_ml, n_lesions)
    if not (np.isfinite(texture_scale) and texture_scale >= 0):
        raise ValueError(f"texture_scale must be ≥ 0, got {texture_scale!r}")
    iron = float(iron_gradients)
    if not (np.isfinite(iron) and iron >= 0):
        raise ValueError(f"iron_gradients must be ≥ 0, got {iron_gradients!r}")
    if slab_mm is not None and not (np.isfinite(slab_mm) and slab_mm >= res[2]):
        raise ValueError(f"slab_mm must be at least one voxel ({res[2]} mm), got {slab_mm!r}")
    f = _as_oversample(oversample, res)
    r_f = tuple(r / k for r, k in zip(res, f))
    q = tuple(1 if r >= 1.0 - 1e-9 else int(np.floor(1.0 / r + 1e-9)) for r in r_f)
    r_m = tuple(k * r for k, r in zip(q, r_f))
    tchi, chi_table = _chi_table(thalamus_chi_ppm, vein_chi_ppm, chi_overrides)

    world1, aff1, _ = world_atlas_1mm()
    ext = np.array(world1.shape, float)
    acq_world_shape = tuple(int(np.ceil(e / r - 1e-9)) for e, r in zip(ext, res))
    fine_shape = tuple(n * k for n, k in zip(acq_world_shape, f))
    if int(np.prod(fine_shape, dtype=np.int64)) > int(max_fine_voxels):
        raise ValueError(f"the fine grid {fine_shape} ({np.prod(fine_shape, dtype=np.int64) / 1e6:.0f} M voxels of "
                         f"{r_f} mm) exceeds max_fine_voxels={max_fine_voxels}; lower oversample or coarsen "
                         "resolution_mm")

    ss = np.random.SeedSequence(seed)
    tex_rng, vein_rng = (np.random.default_rng(s) for s in ss.spawn(2))

    # master grid: the simple phantom's labels (head layers, cavities, deep veins, lesions)
    w = _build_world(r_m, rng=np.random.default_rng(seed), thalamus_scale=thalamus_scale,
                     lesion_volume_ml=lesion_volume_ml, n_lesions=n_lesions, cavities=cavities)
    tissue_m = w.labels.copy()
    vm = np.isin(tissue_m, VEINS)
    tissue_m[vm] = np.where(w.brain[vm], w.aseg[vm], 24)  # the tissue under the veins
    tissue = _repeat_to(tissue_m, q, fine_shape, 0)
    aseg = _repeat_to(w.aseg, q, fine_shape, 0)
    brain = _repeat_to(w.brain, q, fine_shape, False)
    del tissue_m, vm
    faff = np.diag(list(r_f) + [1.0])
    faff[:3, 3] = aff1[:3, 3] - 0.5 + np.array(r_f) / 2.0

    # veins: true radii, as voxel fractions on the fine grid
    lines = list(w.veins_mm) + thalamostriate_centrelines(w.lab1, w.aff1, w.veins_mm) \
        + medullary_centrelines(w.lab1, w.aff1, vein_rng, n_medullary_veins)
    vfrac = np.zeros(fine_shape, np.float32)
    vid = np.zeros(fine_shape, np.int16)
    allowed = brain | (tissue == 24)
    for lab_id, radius, pts in lines:
        box, fr = tube_fraction(pts, radius, fine_shape, faff)
        fr = fr * allowed[box]
        better = fr > vfrac[box]
        vfrac[box] = np.where(better, fr, vfrac[box])
        vid[box] = np.where(better, lab_id, vid[box])
    del allowed

    # tissue χ (table means), texture and iron gradients inside the brain box
    lut = np.zeros((4, 1000), np.float32)
    for k, t in TISSUES.items():
        lut[:, k] = (chi_table[k], t.r2star_hz, t.m0, t.t1_s)
    chi = lut[0][tissue]
    nzb = np.argwhere(brain.any(axis=(1, 2)))[:, 0], np.argwhere(brain.any(axis=(0, 2)))[:, 0], \
        np.argwhere(brain.any(axis=(0, 1)))[:, 0]
    blo = np.array([a.min() for a in nzb])
    bhi = np.array([a.max() + 1 for a in nzb])
    bbox = tuple(slice(int(a), int(b)) for a, b in zip(blo, bhi))
    tb = tissue[bbox]
    pert = np.zeros(tb.shape, np.float32)
    if texture_scale > 0:
        fields, lat_lo = _texture_fields(tex_rng)
        tex = _sample_texture(fields, lat_lo, blo, tb.shape, r_f)
        amp = np.zeros((2, 1000), np.float32)
        for group, ids in _TEXTURE_GROUPS.items():
            amp[:, list(ids)] = np.asarray(TEXTURE_PPM[group], np.float32)[:, None] * np.float32(texture_scale)
        pert += amp[0][tb] * tex[0]
        pert += amp[1][tb] * tex[1]
        del tex, fields
    gradients = {}
    if iron > 0:
        for ids, (g_lat, g_post, g_sup) in IRON_GRADIENTS_PPB_PER_MM.values():
            for lab_id in ids:
                idx = np.nonzero(tb == lab_id)
                if idx[0].size == 0:
                    continue
                mm = (np.stack(idx, 1) + blo) * np.array(r_f) + faff[:3, 3]
                c = mm.mean(0)
                side = np.sign(c[0]) if c[0] != 0 else 1.0
                g = np.array([side * g_lat, -g_post, g_sup]) * 1e-3 * iron  # ppm/mm in MNI axes
                pert[idx] += ((mm - c) @ g).astype(np.float32)
                gradients[int(lab_id)] = [float(v) for v in g * 1e3]
    # zero mean per label over the fine tissue, so the table value is the mean
    sums = np.bincount(tb.ravel(), weights=pert.ravel(), minlength=1000)
    counts = np.bincount(tb.ravel(), minlength=1000)
    means = np.divide(sums, counts, out=np.zeros(len(sums)), where=counts > 0).astype(np.float32)
    pert -= means[tb]
    chi[bbox] += pert
    r2s_pert = np.zeros(fine_shape, np.float32)
    dg = np.isin(tb, _DEEP_GREY)
    r2s_pert[bbox] = np.where(dg, np.float32(_R2STAR_HZ_PER_PPM) * pert, 0.0)
    del pert, dg, tb

    # mix in venous blood
    vein_chi = np.float32(vein_chi_ppm)
    chi += vfrac * (vein_chi - chi)

    # acquisition grid, field of view (centred on the brain; the slab on the thalami)
    brain_aw = block_mean(brain, f, dtype=np.float32) >= 0.5
    start, fov_n = _fov_start(brain_aw, res, fov_mm, acq_world_shape, ext)
    if slab_mm is not None:
        n_z = int(round(float(slab_mm) / res[2]))
        thal_z = np.argwhere(np.isin(tissue, THALAMUS).any(axis=(0, 1)))[:, 0]
        cz = (thal_z.min() + thal_z.max() + 1) / 2.0 / f[2] - 0.5
        start[2] = int(np.clip(round(cz - n_z / 2.0 + 0.5), 0, acq_world_shape[2] - n_z))
        fov_n[2] = n_z
    fov = tuple(slice(a, a + n) for a, n in zip(start, fov_n))
    ffov = tuple(slice(a * k, (a + n) * k) for a, n, k in zip(start, fov_n, f))
    aff = np.diag(list(res) + [1.0])
    aff[:3, 3] = aff1[:3, 3] - 0.5 + np.array(res) / 2.0
    acq_aff = aff.copy()
    acq_aff[:3, 3] = aff[:3, :3] @ np.array(start, float) + aff[:3, 3]
    fine_aff = faff.copy()
    fine_aff[:3, 3] = faff[:3, :3] @ np.array([s.start for s in ffov], float) + faff[:3, 3]

    tissue_f, vfrac_f, vid_f = tissue[ffov], vfrac[ffov], vid[ffov]
    truth_fine = np.where(vfrac_f >= 0.5, vid_f, tissue_f).astype(np.int16)
    brain_f = brain[ffov]
    brain_a = block_mean(brain_f, f, dtype=np.float32) >= 0.5
    lab_in = _block_mode(truth_fine, f, brain_f)
    lab_out = _block_mode(truth_fine, f, ~brain_f)
    labels = np.where(brain_a, lab_in, lab_out).astype(np.int16)
    aseg_a = np.where(brain_a, _block_mode(aseg[ffov], f, brain_f), 0).astype(np.int16)
    del lab_in, lab_out

    # thalamic truth: one constant per side on the thalamic tissue makes it exact
    target = np.asarray(tchi, float)
    roi = {10: labels == 10, 49: labels == 49}
    ref = np.isin(labels, LATERAL_VENTRICLES)
    for k, m in roi.items():
        if not m.any():
            raise ValueError(f"the field of view holds no voxel of thalamus label {k}; widen fov_mm / slab_mm")
    if not ref.any():
        raise ValueError("the field of view holds no lateral-ventricle voxel (the χ reference); widen it")
    chi_a = block_mean(chi[ffov], f)
    basis = {k: block_mean(((1.0 - vfrac_f) * (tissue_f == k)).astype(np.float32), f) for k in THALAMUS}
    rel0 = np.array([chi_a[roi[k]].mean() - chi_a[ref].mean() for k in THALAMUS])
    mat = np.array([[basis[j][roi[k]].mean() - basis[j][ref].mean() for j in THALAMUS] for k in THALAMUS])
    offsets = np.linalg.solve(mat, target - rel0)
    for k, c in zip(THALAMUS, offsets):
        sel = tissue == k
        chi[sel] += np.float32(c) * (1.0 - vfrac[sel])
    del basis

    # acquisition-grid maps: means of the fine maps
    chi_world_a = block_mean(chi, f).astype(np.float32)
    chi_a = np.ascontiguousarray(chi_world_a[fov])
    r2s_f = lut[1][tissue_f] + r2s_pert[ffov]
    del r2s_pert
    r2s_f = np.maximum(r2s_f, 1.0, where=tissue_f > 0, out=r2s_f)
    m0_f, t1_f = lut[2][tissue_f], lut[3][tissue_f]
    blood = lut[:, _VEIN_TISSUE]
    r2s_f += vfrac_f * (blood[1] - r2s_f)
    m0_f += vfrac_f * (blood[2] - m0_f)
    t1_f += vfrac_f * (blood[3] - t1_f)
    r2s_a = block_mean(r2s_f, f).astype(np.float32)
    m0_a = block_mean(m0_f, f).astype(np.float32)
    t1_a = block_mean(t1_f, f).astype(np.float32)
    vf_a = block_mean(vfrac_f, f).astype(np.float32)

    fine = FineGrid(factor=f, voxel_size_mm=r_f, world_chi_ppm=chi, world_brain_mask=brain, world_affine=faff,
                    fov_slices=ffov, affine=fine_aff, labels=truth_fine, vein_fraction=np.ascontiguousarray(vfrac_f),
                    r2star_hz=np.ascontiguousarray(r2s_f), m0=np.ascontiguousarray(m0_f),
                    t1_s=np.ascontiguousarray(t1_f), vein_label=np.ascontiguousarray(vid_f))
    del tissue, aseg, vfrac, vid

    vvox_ml = float(np.prod(res)) / 1000.0
    ids, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    inv = inv.ravel()

    def _lab_mean(a):
        return np.bincount(inv, weights=np.asarray(a, np.float64).ravel()) / counts

    chi_mean = _lab_mean(chi_a)
    chi_sd = np.sqrt(np.maximum(_lab_mean(np.asarray(chi_a, np.float64) ** 2) - chi_mean ** 2, 0.0))
    truth = pd.DataFrame({
        "label": ids.astype(int),
        "structure": [TISSUES[int(i)].name for i in ids],
        "chi_ppm": chi_mean,
        "r2star_hz": _lab_mean(r2s_a),
        "m0": _lab_mean(m0_a),
        "t1_s": _lab_mean(t1_a),
        "n_voxels": counts.astype(int),
        "volume_ml": counts * vvox_ml,
        "chi_sd_ppm": chi_sd,
    })
    thal_ml = {t: float((labels == t).sum() * vvox_ml) for t in THALAMUS}
    phantom = HeadPhantom(
        chi_ppm=chi_a,
        labels=labels,
        aseg=aseg_a,
        brain_mask=brain_a,
        csf_mask=np.isin(labels, VENTRICULAR_CSF),
        vein_mask=np.isin(labels, VEINS),
        lesion_mask=labels == LESION,
        head_mask=~np.isin(labels, (0, AIR_CAVITY)),
        r2star_hz=r2s_a,
        m0=m0_a,
        t1_s=t1_a,
        affine=acq_aff,
        voxel_size_mm=res,
        truth=truth,
        params={},
        world_chi_ppm=chi_world_a,
        world_affine=aff,
        fov_slices=fov,
        fine=fine,
        vein_fraction=vf_a,
    )
    truth_ppb = thalamic_truth_ppb(phantom)
    phantom.params = {
        "realism": "realistic",
        "resolution_mm": list(res),
        "oversample": list(f),
        "fine_voxel_size_mm": list(r_f),
        "master_voxel_size_mm": list(r_m),
        "seed": int(seed) if seed is not None else None,
        "thalamus_scale": float(thalamus_scale),
        "thalamus_chi_ppm": [float(tchi[0]), float(tchi[1])],
        "thalamus_truth_ppb": truth_ppb,
        "thalamus_offset_ppm": [float(c) for c in offsets],
        "truth_definition": "thalamic_truth_ppb: acquisition grid, mean truth chi over labels 10/49 (majority-vein "
                            "voxels excluded) minus the mean over the lateral ventricles 4/43, ppb",
        "vein_chi_ppm": float(vein_chi_ppm),
        "n_vein_lines": len(lines),
        "n_medullary_veins": int(sum(1 for line in lines if line[0] == 908)),
        "texture_scale": float(texture_scale),
        "texture_ppm": {k: list(v) for k, v in TEXTURE_PPM.items()},
        "iron_gradients": iron,
        "iron_gradients_ppb_per_mm": gradients,
        "lesion_volume_ml_requested": float(lesion_volume_ml),
        "lesion_volume_ml": float((labels == LESION).sum() * vvox_ml),
        "n_lesions": len(w.lesions),
        "lesions": w.lesions,
        "thalamus_volume_ml": {"left": thal_ml[10], "right": thal_ml[49], "total": thal_ml[10] + thal_ml[49]},
        "aseg_thalamus_volume_ml": float(np.isin(aseg_a, THALAMUS).sum() * vvox_ml),
        "air_chi_ppm": AIR_CHI_PPM,
        "chi_reference": "CSF = 0 (ppm, SI)",
        "fov_mm": [float(n * r) for n, r in zip(fov_n, res)],
        "slab_mm": None if slab_mm is None else float(slab_mm),
        "cavities": bool(cavities),
        "chi_overrides": {int(k): float(v) for k, v in dict(chi_overrides or {}).items()},
        "anatomy": f"{ATLAS_PACKAGE} {atlas_version()}: {'/'.join(ATLAS_RELPATH)} "
                   "(FreeSurfer 6 aparc+aseg of cvs_avg35_inMNI152)",
    }
    return phantom


def thalamic_truth_ppb(phantom):
    """The true relative thalamic χ (ppb) of a phantom (simple or realistic), per side and pooled.

    On the phantom's acquisition grid: mean truth χ over the voxels whose truth label is the
    thalamus (10 left, 49 right; vein voxels carry a vein label and are not included) minus the
    mean over the lateral ventricles (4, 43), × 1000. For the simple phantom this is the
    thalamic table value; for the realistic one it equals ``thalamus_chi_ppm`` × 1000 by
    construction.

    Returns
    -------
    dict
        ``left``, ``right``, ``both`` (voxel-weighted over both thalami), ``csf_reference_ppb``.
    """
    chi = np.asarray(phantom.chi_ppm, np.float64)
    lab = np.asarray(phantom.labels)
    ref = chi[np.isin(lab, LATERAL_VENTRICLES)].mean()
    return {"left": float(1000.0 * (chi[lab == 10].mean() - ref)),
            "right": float(1000.0 * (chi[lab == 49].mean() - ref)),
            "both": float(1000.0 * (chi[np.isin(lab, THALAMUS)].mean() - ref)),
            "csf_reference_ppb": float(1000.0 * ref)}
