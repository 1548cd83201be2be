"""The head phantom and its builder: template anatomy + veins + lesions + head layers, cropped to a FOV.

:func:`make_head_phantom` scales the thalami of the 1 mm template (:mod:`~analysis.simulation.phantom.atlas`),
draws the deep veins (:mod:`~analysis.simulation.phantom.veins`) from their geometry, resamples to
the requested grid, wraps the brain in CSF, skull and scalp with air cavities, places the lesions
(:mod:`~analysis.simulation.phantom.lesions`), fills χ, R2*, M0 and T1 from the tissue table
(:mod:`~analysis.simulation.phantom.tissues`) and crops the field of view; see
:mod:`analysis.simulation.phantom` for the whole description.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.image import resample_img
from scipy import ndimage

from analysis.imaging.labels import THALAMUS, VENTRICULAR_CSF
from analysis.simulation.phantom._geometry import closing_mm
from analysis.simulation.phantom.atlas import (
    ATLAS_PACKAGE,
    ATLAS_RELPATH,
    atlas_version,
    scale_thalamus,
    world_atlas_1mm,
)
from analysis.simulation.phantom.lesions import place_lesions
from analysis.simulation.phantom.tissues import AIR_CAVITY, AIR_CHI_PPM, LESION, SCALP, SKULL, TISSUES, VEINS
from analysis.simulation.phantom.veins import rasterise_tube, vein_centrelines

__all__ = ["DEFAULT_FOV_MM", "HeadPhantom", "make_head_phantom"]

#: Field of view (mm, x/y/z = left-right, posterior-anterior, inferior-superior).
DEFAULT_FOV_MM = (160.0, 192.0, 168.0)
_CSF_LAYER_MM = 1.5
_SKULL_MM = 5.0
_SCALP_MM = 4.0
_HEAD_CLOSING_MM = 15.0
_SHELL_MM = 3.0

#: Air cavities: (name, centre in MNI mm, semi-axes in mm). Schematic positions of the frontal
#: sinus, the sphenoid sinus and the mastoid air cells; each is kept ≥ 1 mm outside the CSF layer.
_CAVITIES = (
    ("frontal-sinus", (0.0, 80.0, 2.0), (14.0, 5.0, 9.0)),
    ("sphenoid-sinus", (0.0, 12.0, -38.0), (11.0, 10.0, 8.0)),
    ("left-mastoid", (-58.0, -25.0, -45.0), (8.0, 10.0, 7.0)),
    ("right-mastoid", (58.0, -25.0, -45.0), (8.0, 10.0, 7.0)),
)


@dataclass
class HeadPhantom:
    """A numerical head phantom on the field-of-view grid (all arrays shape (X, Y, Z), RAS+).

    Attributes
    ----------
    chi_ppm : ndarray, float32
        Ground-truth susceptibility (ppm, relative to CSF = 0; air +9.4).
    labels : ndarray, int16
        Truth labels (FreeSurfer ids, veins 901–905, skull 911, scalp 912, air cavities 913,
        air 0); see :func:`~analysis.simulation.phantom.label_names`.
    aseg : ndarray, int16
        What FreeSurfer would segment: brain labels only (0 outside the brain), the veins carry
        the label of the tissue they lie in (mostly thalamus, CSF, white matter).
    brain_mask, csf_mask, vein_mask, lesion_mask, head_mask : ndarray, bool
        Closed brain (incl. ventricles, sulcal CSF, veins, lesions); ventricular CSF (lateral,
        inferior lateral, 3rd, 4th ventricles: the CSF reference of MEDI+0); veins 901–905;
        lesions (77); everything that is not air.
    r2star_hz : ndarray, float32
        R2* (Hz, 3 T).
    m0 : ndarray, float32
        Proton density (CSF = 1; 0 in air).
    t1_s : ndarray, float32
        T1 (s, 3 T), for the steady-state signal.
    affine : ndarray, shape (4, 4)
        Voxel → MNI152 mm (RAS+).
    voxel_size_mm : tuple of 3 float
    truth : pandas.DataFrame
        One row per label present: ``label, structure, chi_ppm, r2star_hz, m0, t1_s, n_voxels,
        volume_ml``.
    params : dict
        The parameters used and derived values (thalamic and lesion volumes in mL, seed, source).
    world_chi_ppm : ndarray, float32
        χ on the larger world grid that contains the whole head (used to simulate the field).
    world_affine : ndarray, shape (4, 4)
    fov_slices : tuple of 3 slice
        ``world_chi_ppm[fov_slices]`` is ``chi_ppm``.
    fine : analysis.simulation.phantom.realistic.FineGrid or None
        Realistic phantom only: the fine grid the forward model runs on (``None`` for the simple
        phantom, whose field is simulated on this grid). In the realistic phantom ``chi_ppm``,
        ``r2star_hz``, ``m0``, ``t1_s`` and ``world_chi_ppm`` are means of the fine maps over each
        voxel, and ``labels``/``aseg`` majority labels.
    vein_fraction : ndarray, float32, or None
        Realistic phantom only: fraction of each voxel that is vein (0–1).
    """

    chi_ppm: np.ndarray
    labels: np.ndarray
    aseg: np.ndarray
    brain_mask: np.ndarray
    csf_mask: np.ndarray
    vein_mask: np.ndarray
    lesion_mask: np.ndarray
    head_mask: np.ndarray
    r2star_hz: np.ndarray
    m0: np.ndarray
    t1_s: np.ndarray
    affine: np.ndarray
    voxel_size_mm: tuple
    truth: pd.DataFrame
    params: dict = field(default_factory=dict)
    world_chi_ppm: np.ndarray | None = None
    world_affine: np.ndarray | None = None
    fov_slices: tuple | None = None
    fine: object | None = None
    vein_fraction: np.ndarray | None = None

    @property
    def realism(self):
        """``"realistic"`` if the phantom has a fine grid for the forward model, else ``"simple"``."""
        return "simple" if self.fine is None else "realistic"

    @property
    def shape(self):
        """Grid shape (X, Y, Z) of the field of view."""
        return self.chi_ppm.shape

    def mask_of(self, *labels):
        """Boolean mask of the voxels whose truth label is one of ``labels``."""
        if not labels:
            raise ValueError("mask_of needs at least one label id")
        return np.isin(self.labels, np.asarray(labels))

    def to_nifti(self, name):
        """A NIfTI image of the attribute ``name`` (e.g. ``"chi_ppm"``, ``"labels"``, ``"brain_mask"``)."""
        if name not in {"chi_ppm", "labels", "aseg", "brain_mask", "csf_mask", "vein_mask", "lesion_mask",
                        "head_mask", "r2star_hz", "m0", "t1_s", "vein_fraction"}:
            raise ValueError(f"HeadPhantom has no image called {name!r}")
        data = getattr(self, name)
        if data is None:
            raise ValueError(f"this phantom has no {name!r} image (realistic phantom only)")
        if data.dtype == bool:
            data = data.astype(np.uint8)
        img = nib.Nifti1Image(data, self.affine)
        img.header.set_xyzt_units("mm", "sec")
        img.header.set_qform(self.affine, code=4)  # MNI152
        img.header.set_sform(self.affine, code=4)
        return img


def _world_coords(shape, affine):
    ii = np.indices(shape, dtype=np.float32).reshape(3, -1)
    return (affine[:3, :3].astype(np.float32) @ ii + affine[:3, 3:4].astype(np.float32)).reshape((3,) + tuple(shape))


def _ellipsoid(coords, centre, semi_axes):
    q = sum(((coords[k] - centre[k]) / semi_axes[k]) ** 2 for k in range(3))
    return q


def _as_resolution(resolution_mm):
    r = np.atleast_1d(np.asarray(resolution_mm, dtype=float)).ravel()
    if r.size == 1:
        r = np.repeat(r, 3)
    if r.size != 3 or not np.all(np.isfinite(r)) or np.any(r <= 0) or np.any(r > 8):
        raise ValueError(f"resolution_mm must be one or three voxel sizes in (0, 8] mm, got {resolution_mm!r}")
    return tuple(float(v) for v in r)


def _chi_table(thalamus_chi_ppm, vein_chi_ppm, chi_overrides):
    """χ (ppm) per label id: the tissue table with the caller's thalamic, vein and other values."""
    tchi = np.broadcast_to(np.asarray(thalamus_chi_ppm, float), (2,))
    chi_table = {k: t.chi_ppm for k, t in TISSUES.items()}
    chi_table.update({10: float(tchi[0]), 49: float(tchi[1])})
    chi_table.update({v: float(vein_chi_ppm) for v in VEINS})
    for k, v in dict(chi_overrides or {}).items():
        if int(k) not in TISSUES:
            raise ValueError(f"chi_overrides: unknown label id {k!r} (see analysis.simulation.phantom.TISSUES)")
        chi_table[int(k)] = float(v)
    return tchi, chi_table


def _check_arguments(thalamus_scale, lesion_volume_ml, n_lesions):
    for name, v, lo, hi in (("thalamus_scale", thalamus_scale, 0.3, 2.0),
                            ("lesion_volume_ml", lesion_volume_ml, 0.0, 200.0)):
        if not np.isfinite(v) or not lo <= float(v) <= hi:
            raise ValueError(f"{name} must be within [{lo}, {hi}], got {v!r}")
    if int(n_lesions) < 0:
        raise ValueError(f"n_lesions must be ≥ 0, got {n_lesions!r}")


@dataclass
class _World:
    """The labelled head on a world grid (internal: shared by the simple and the realistic phantom)."""

    labels: np.ndarray        # truth labels (veins, lesions, head layers, air)
    aseg: np.ndarray          # FreeSurfer's view (brain only, no veins)
    brain: np.ndarray         # closed brain
    vein_mask: np.ndarray
    affine: np.ndarray
    res: tuple
    ext: np.ndarray           # world extent (mm)
    veins_mm: list            # (label, radius_mm, centre line (N, 3) mm)
    lesions: list
    lab1: np.ndarray          # the 1 mm anatomy (thalamus scaled) the grid was resampled from
    aff1: np.ndarray


def _build_world(res, *, rng, thalamus_scale, lesion_volume_ml, n_lesions, cavities, min_vein_radius_vox=0.87):
    """Anatomy, head layers, air cavities, veins and lesions on the world grid of voxel size ``res``."""
    # 1 mm anatomy, thalamus scaled, vein centre lines from its geometry
    world1, aff1, hull1 = world_atlas_1mm()
    lab1 = scale_thalamus(world1, float(thalamus_scale))
    veins_mm = vein_centrelines(lab1, aff1)

    # target world grid
    ext = np.array(world1.shape, float)  # mm (1 mm atlas)
    shape = tuple(int(np.ceil(e / r)) for e, r in zip(ext, res))
    aff = np.diag(list(res) + [1.0])
    aff[:3, 3] = aff1[:3, 3] - 0.5 + np.array(res) / 2.0
    if np.allclose(res, 1.0):
        lab = np.array(lab1, dtype=np.int16)
    else:
        img = nib.Nifti1Image(lab1.astype(np.int16), aff1)
        lab = np.asarray(resample_img(img, target_affine=aff, target_shape=shape, interpolation="nearest",
                                      force_resample=True, copy_header=True).dataobj).astype(np.int16)
    brain = lab > 0
    sampling = res

    # head layers
    d_out = ndimage.distance_transform_edt(~brain, sampling=sampling)
    csf_t = max(_CSF_LAYER_MM, max(res))
    skull_t = csf_t + _SKULL_MM
    head = closing_mm(d_out <= skull_t + _SCALP_MM, _HEAD_CLOSING_MM, sampling) | (d_out <= skull_t + _SCALP_MM)
    lab[(d_out > 0) & (d_out <= csf_t)] = 24
    lab[(d_out > csf_t) & (d_out <= skull_t)] = SKULL
    lab[head & (d_out > skull_t)] = SCALP
    if cavities:
        coords = _world_coords(shape, aff)
        outside = d_out > csf_t + 1.0
        for _, centre, axes in _CAVITIES:
            q_air = _ellipsoid(coords, centre, axes)
            q_shell = _ellipsoid(coords, centre, [a + _SHELL_MM for a in axes])
            shell = (q_shell <= 1.0) & (d_out > csf_t) & (lab != AIR_CAVITY)
            lab[shell] = SKULL
            lab[(q_air <= 1.0) & outside] = AIR_CAVITY
        del coords
    del d_out, head

    # aseg (FreeSurfer's view: brain only, no veins, lesions added below)
    aseg = np.where(brain, lab, 0).astype(np.int16)

    # veins (truth labels only), restricted to the brain and its CSF layer
    allowed = brain | (lab == 24)
    vein_mask = np.zeros(shape, bool)
    min_r = min_vein_radius_vox * max(res)
    for lab_id, radius, pts in veins_mm:
        tube = rasterise_tube(pts, max(radius, min_r), shape, aff) & allowed
        lab[tube] = lab_id
        vein_mask |= tube

    # lesions (truth and aseg)
    lab, lesions = place_lesions(lab, vein_mask, sampling, aff, volume_ml=float(lesion_volume_ml),
                                  n_lesions=int(n_lesions), rng=rng)
    aseg[lab == LESION] = LESION
    return _World(labels=lab, aseg=aseg, brain=brain, vein_mask=vein_mask, affine=aff, res=tuple(res), ext=ext,
                  veins_mm=veins_mm, lesions=lesions, lab1=lab1, aff1=aff1)


def _fov_start(brain, res, fov_mm, shape, ext):
    """First voxel and size of the field of view, centred on the brain (``fov_mm`` validated)."""
    nzb = np.argwhere(brain)
    centre_vox = (nzb.min(0) + nzb.max(0)) / 2.0
    fov_n = [int(round(f / r)) for f, r in zip(fov_mm, res)]
    if any(n < 1 for n in fov_n) or any(n > s for n, s in zip(fov_n, shape)):
        raise ValueError(f"fov_mm must be positive and at most {tuple(e for e in ext)} mm, got {fov_mm!r}")
    start = [int(np.clip(round(c - n / 2.0 + 0.5), 0, s - n)) for c, n, s in zip(centre_vox, fov_n, shape)]
    return start, fov_n


def make_head_phantom(*, resolution_mm=1.0, seed=0, thalamus_scale=1.0, thalamus_chi_ppm=0.04,
                      lesion_volume_ml=5.0, n_lesions=6, vein_chi_ppm=0.45, chi_overrides=None,
                      fov_mm=DEFAULT_FOV_MM, cavities=True, realism="simple", **realistic_options):
    """Build the numerical head phantom.

    Parameters
    ----------
    resolution_mm : float or tuple of 3 float
        Voxel size (mm). 1 mm gives a 160 × 192 × 168 field of view, 2 mm 80 × 96 × 84.
    seed : int
        Random seed (lesion positions, shapes and sizes; in the realistic mode also the tissue
        texture and the small veins). Same arguments → identical phantom.
    thalamus_scale : float
        Volume factor applied to each thalamus about its centroid (1 = template size, about
        10.9 mL per side; 0.85 = 15 % atrophy). Lost thalamus becomes the nearest neighbouring
        tissue (3rd ventricle, white matter); a larger thalamus takes over its neighbours.
    thalamus_chi_ppm : float or (float, float)
        Thalamic χ (ppm vs CSF), both sides or (left, right). In the realistic mode: the true
        relative thalamic χ (:func:`~analysis.simulation.phantom.thalamic_truth_ppb`), exactly.
    lesion_volume_ml : float
        Total T2 lesion volume (mL); 0 for none. Exact up to one voxel.
    n_lesions : int
        Number of lesions the volume is split into (Dirichlet split, ≥ 1 voxel each).
    vein_chi_ppm : float
        χ of the deep veins (ppm).
    chi_overrides : mapping of int → float, optional
        χ (ppm) for other label ids (see :data:`TISSUES`).
    fov_mm : tuple of 3 float
        Field of view (mm), centred on the brain.
    cavities : bool
        Include the air cavities (sinuses, mastoids); without them the background field comes
        from the head/air boundary and the skull only.
    realism : {"simple", "realistic"}
        ``"simple"`` (default): piecewise-constant χ per label on the acquisition grid (the unit
        tests' phantom). ``"realistic"``: textured χ with iron gradients, partial volume and thin
        veins, built on a finer grid that :func:`~analysis.simulation.acquisition.simulate_megre`
        uses for the forward model; see :func:`~analysis.simulation.phantom.realistic.make_realistic_head_phantom`.
    **realistic_options
        Only with ``realism="realistic"``: ``oversample``, ``slab_mm``, ``texture_scale``,
        ``iron_gradients``, ``n_medullary_veins`` (see
        :func:`~analysis.simulation.phantom.realistic.make_realistic_head_phantom`).

    Returns
    -------
    HeadPhantom
    """
    if realism == "realistic":
        from analysis.simulation.phantom.realistic import make_realistic_head_phantom

        return make_realistic_head_phantom(
            resolution_mm=resolution_mm, seed=seed, thalamus_scale=thalamus_scale, thalamus_chi_ppm=thalamus_chi_ppm,
            lesion_volume_ml=lesion_volume_ml, n_lesions=n_lesions, vein_chi_ppm=vein_chi_ppm,
            chi_overrides=chi_overrides, fov_mm=fov_mm, cavities=cavities, **realistic_options)
    if realism != "simple":
        raise ValueError(f"realism must be 'simple' or 'realistic', got {realism!r}")
    if realistic_options:
        raise TypeError(f"options {sorted(realistic_options)} need realism='realistic'")
    res = _as_resolution(resolution_mm)
    _check_arguments(thalamus_scale, lesion_volume_ml, n_lesions)
    tchi, chi_table = _chi_table(thalamus_chi_ppm, vein_chi_ppm, chi_overrides)
    rng = np.random.default_rng(seed)

    w = _build_world(res, rng=rng, thalamus_scale=thalamus_scale, lesion_volume_ml=lesion_volume_ml,
                     n_lesions=n_lesions, cavities=cavities)
    lab, aseg, brain, aff, lesions = w.labels, w.aseg, w.brain, w.affine, w.lesions

    # maps from the label table
    lut = np.zeros((4, 1000), np.float32)
    for k, t in TISSUES.items():
        lut[:, k] = (chi_table[k], t.r2star_hz, t.m0, t.t1_s)
    world_chi = lut[0][lab]

    # crop to the field of view, centred on the brain
    start, fov_n = _fov_start(brain, res, fov_mm, lab.shape, w.ext)
    fov = tuple(slice(a, a + n) for a, n in zip(start, fov_n))
    faff = aff.copy()
    faff[:3, 3] = aff[:3, :3] @ np.array(start, float) + aff[:3, 3]

    labels_f = np.ascontiguousarray(lab[fov])
    vvox_ml = float(np.prod(res)) / 1000.0
    ids, counts = np.unique(labels_f, return_counts=True)
    truth = pd.DataFrame({
        "label": ids.astype(int),
        "structure": [TISSUES[int(i)].name for i in ids],
        "chi_ppm": [chi_table[int(i)] for i in ids],
        "r2star_hz": [TISSUES[int(i)].r2star_hz for i in ids],
        "m0": [TISSUES[int(i)].m0 for i in ids],
        "t1_s": [TISSUES[int(i)].t1_s for i in ids],
        "n_voxels": counts.astype(int),
        "volume_ml": counts * vvox_ml,
    })
    thal_ml = {t: float((labels_f == t).sum() * vvox_ml) for t in THALAMUS}
    params = {
        "resolution_mm": list(res),
        "seed": int(seed) if seed is not None else None,
        "thalamus_scale": float(thalamus_scale),
        "thalamus_chi_ppm": [float(tchi[0]), float(tchi[1])],
        "vein_chi_ppm": float(vein_chi_ppm),
        "lesion_volume_ml_requested": float(lesion_volume_ml),
        "lesion_volume_ml": float((labels_f == LESION).sum() * vvox_ml),
        "n_lesions": len(lesions),
        "lesions": lesions,
        "thalamus_volume_ml": {"left": thal_ml[10], "right": thal_ml[49], "total": thal_ml[10] + thal_ml[49]},
        "aseg_thalamus_volume_ml": float(np.isin(aseg[fov], THALAMUS).sum() * vvox_ml),
        "air_chi_ppm": AIR_CHI_PPM,
        "chi_reference": "CSF = 0 (ppm, SI)",
        "fov_mm": [float(f) for f in fov_mm],
        "cavities": bool(cavities),
        "chi_overrides": {int(k): float(v) for k, v in dict(chi_overrides or {}).items()},
        "anatomy": f"{ATLAS_PACKAGE} {atlas_version()}: {'/'.join(ATLAS_RELPATH)} "
                   "(FreeSurfer 6 aparc+aseg of cvs_avg35_inMNI152)",
    }
    return HeadPhantom(
        chi_ppm=np.ascontiguousarray(world_chi[fov]),
        labels=labels_f,
        aseg=np.ascontiguousarray(aseg[fov]),
        brain_mask=np.ascontiguousarray(brain[fov]),
        csf_mask=np.isin(labels_f, VENTRICULAR_CSF),
        vein_mask=np.isin(labels_f, VEINS),
        lesion_mask=labels_f == LESION,
        head_mask=~np.isin(labels_f, (0, AIR_CAVITY)),
        r2star_hz=lut[1][labels_f],
        m0=lut[2][labels_f],
        t1_s=lut[3][labels_f],
        affine=faff,
        voxel_size_mm=res,
        truth=truth,
        params=params,
        world_chi_ppm=world_chi,
        world_affine=aff,
        fov_slices=fov,
    )
