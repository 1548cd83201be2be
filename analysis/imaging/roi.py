"""Thalamic susceptibility from a χ map and a FreeSurfer segmentation; T2 lesion volume.

The paper drew the thalamic volumes of interest (VOIs) by hand on QSM fused to FLAIR, nudged the
internal cerebral veins and basal veins of Rosenthal out of them, and placed "a small circular
ROI ... in the CSF in the atrium of each lateral ventricle, adjacent to the thalamus" as zero
reference. This module does the same automatically and reproducibly:

1. **Segmentation in QSM space** (:func:`to_qsm_space`). The aseg labels are resampled onto the
   χ-map grid with nearest-neighbour interpolation (nilearn), using the two images' affines.
   That is only correct if both images are in the same world space: FreeSurfer's T1 and the GRE
   are registered first (:mod:`analysis.imaging.registration`, done by default by
   ``python -m analysis measure``; or an external rigid registration whose resampled labels are
   passed in). Any grid and orientation is then accepted; where the two resolutions differ,
   :func:`partial_volume_voi` drops the VOI voxels the coarser grid makes uncertain.
2. **Thalamic VOI**: labels 10 (left) and 49 (right), the same ids in FreeSurfer 5.x-7.
3. **Vein exclusion** (:func:`vein_mask`): see the function; a robust outlier rule (median +
   k·1.4826·MAD of the VOI, k = 3) finds the vein cores, a one-voxel dilation inside the VOI
   removes their partial-volume rim.
4. **CSF reference** (:func:`csf_reference_mask`): a sphere (radius <= 3 mm) in the atrium of
   each lateral ventricle, centred on the deepest ventricle point posterior to the thalamus at
   its axial level, fully inside the ventricle and, where the atrium is wide enough, one voxel
   off its wall.
5. **Relative susceptibility** = thalamus − CSF, in ppb (χ maps are in ppm).

Sign convention
---------------
The paper's Methods say the relative susceptibility "was calculated by subtracting the mean
susceptibility in the thalami from that in the CSF ROI", i.e. CSF − thalamus, yet its Results
read higher values as more iron ("higher thalamic susceptibility associated with a greater T2
lesion burden"; enhancing lesions, +8.4 ppb, "associated with higher iron levels"), which only
holds for thalamus − CSF. The compendium uses **thalamus − CSF** (``sign="thalamus_minus_csf"``),
and reads the published cohort mean of −29.0 ± 11.7 ppb in that convention;
``sign="csf_minus_thalamus"`` gives the literal reading of the Methods sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nilearn.image import resample_to_img
from scipy import ndimage

from analysis.imaging.freesurfer import load_aseg
from analysis.imaging.labels import (
    LEFT_LATERAL_VENTRICLE,
    LEFT_THALAMUS,
    RIGHT_LATERAL_VENTRICLE,
    RIGHT_THALAMUS,
    THALAMUS_NAMES,
)
from analysis.imaging.partial_volume import partial_volume_voi, voxel_sizes_mm

__all__ = [
    "SIDES", "MIN_VOI_VOXELS", "ThalamicROIs",
    "to_qsm_space", "vein_mask", "csf_reference_mask", "thalamic_rois",
    "thalamic_susceptibility", "lesion_volume_ml",
]

#: side -> (thalamus label, lateral-ventricle label)
SIDES = {"left": (LEFT_THALAMUS, LEFT_LATERAL_VENTRICLE),
         "right": (RIGHT_THALAMUS, RIGHT_LATERAL_VENTRICLE)}
_VENTRICLE_NAMES = {LEFT_LATERAL_VENTRICLE: "Left-Lateral-Ventricle",
                    RIGHT_LATERAL_VENTRICLE: "Right-Lateral-Ventricle"}

PPM_TO_PPB = 1000.0
#: Fewest thalamic voxels (per side, after vein exclusion) that give a usable mean.
MIN_VOI_VOXELS = 10


# ---------------------------------------------------------------------------------------------
# Images and grids
# ---------------------------------------------------------------------------------------------

def _load_3d(img, what):
    """Load ``img`` (path or image) as a float 3-D Nifti1Image; ``ValueError`` otherwise."""
    if isinstance(img, (str, Path)):
        p = Path(img)
        if not p.is_file():
            raise FileNotFoundError(f"{what} not found: {p}")
        img = nib.load(str(p))
        what = f"{what} {p}"
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{what}: expected a 3-D image, got shape {data.shape}")
    return nib.Nifti1Image(np.asarray(data, dtype=np.float64), img.affine)





def _same_grid(a, b):
    return a.shape[:3] == b.shape[:3] and np.allclose(a.affine, b.affine, atol=1e-4)


def to_qsm_space(seg_img, chimap_img):
    """Put a label image on the grid of the χ map (nearest-neighbour resampling).

    Parameters
    ----------
    seg_img : str, Path or nibabel image
        aseg-style labels (``aseg.mgz``, ``aparc+aseg.mgz``, NIfTI) **already registered** to the
        QSM acquisition (same world space; see the module docstring for the registration
        step). Grid, voxel size and orientation may differ from the χ map.
    chimap_img : str, Path or nibabel image
        χ map (ppm), 3-D; only its grid (shape and affine) is used.

    Returns
    -------
    nibabel.Nifti1Image
        ``int32`` labels of shape ``chimap.shape``, with the χ map's affine. Voxels of the χ
        grid outside the segmentation's field of view get label 0.

    Notes
    -----
    Nearest-neighbour interpolation keeps labels intact (no label mixing at boundaries). When
    the label grid is coarser than the χ grid it is upsampled blockwise; when finer, each χ
    voxel takes the label at its centre.
    """
    seg = load_aseg(seg_img)
    chi = _load_3d(chimap_img, "χ map")
    if _same_grid(seg, chi):
        return nib.Nifti1Image(np.asarray(seg.dataobj, dtype=np.int32), chi.affine)
    res = resample_to_img(seg, chi, interpolation="nearest", force_resample=True,
                          copy_header=True)
    labels = np.rint(np.asarray(res.dataobj, dtype=np.float64)).astype(np.int32)
    return nib.Nifti1Image(labels, chi.affine)


def _world_coords(affine, ijk):
    """World (RAS, mm) coordinates of voxel indices ``ijk`` (N, 3) -> (N, 3)."""
    ijk = np.asarray(ijk, dtype=np.float64)
    return ijk @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


def _bbox(mask, pad, shape):
    """Slices of the bounding box of ``mask`` grown by ``pad`` voxels (clipped to ``shape``)."""
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


# ---------------------------------------------------------------------------------------------
# Vein exclusion
# ---------------------------------------------------------------------------------------------

def vein_mask(chi_ppm, voi, *, affine, threshold_mad=3.0, dilation_mm=None):
    """Voxels of a thalamic VOI to exclude as veins.

    Parameters
    ----------
    chi_ppm : ndarray, shape (X, Y, Z)
        χ map in ppm.
    voi : ndarray of bool, shape (X, Y, Z)
        The thalamic VOI of one hemisphere (non-finite χ already excluded).
    affine : ndarray, shape (4, 4)
        Voxel-to-world affine of the χ grid (for voxel sizes in mm).
    threshold_mad : float, optional
        k in the threshold ``median + k * 1.4826 * MAD`` of χ over the VOI (default 3).
    dilation_mm : float, optional
        Radius of the dilation of the detected vein cores, in mm, restricted to the VOI. Default:
        one voxel (the largest voxel edge), i.e. the face neighbours on an isotropic grid. 0
        disables the dilation.

    Returns
    -------
    mask : ndarray of bool, shape (X, Y, Z)
        Excluded voxels (a subset of ``voi``).
    threshold_ppm : float
        The χ threshold used (ppm).

    Notes
    -----
    The rule. Veins are strongly paramagnetic (deoxyhaemoglobin: +0.3 to +0.5 ppm in QSM at
    typical venous oxygenation) next to thalamic tissue at a few tens of ppb, so vein voxels
    are upper outliers of the VOI's χ distribution. Median and MAD are robust: they describe
    the tissue even when up to half of the VOI is vein, so the threshold is not pulled up by
    the veins it is meant to find; 1.4826·MAD estimates the SD of the tissue (noise plus
    heterogeneity), and k = 3 keeps 99.9 % of Gaussian tissue voxels. The rule is one-sided
    (only paramagnetic outliers), since the veins the paper removed are paramagnetic; a
    diamagnetic calcification would need its own rule. Voxels that only partly contain a vein
    fall below the threshold, so the cores are dilated by one voxel inside the VOI.

    Limitations: a vein running just *outside* the VOI leaves only a weak partial-volume rim in
    it, which is not detected; very iron-rich thalamic nuclei (pulvinar) in older subjects may
    lose a few voxels at k = 3 (raise ``threshold_mad`` if that matters more than veins).
    """
    if threshold_mad <= 0:
        raise ValueError(f"threshold_mad must be positive, got {threshold_mad}")
    voi = np.asarray(voi, dtype=bool)
    values = chi_ppm[voi]
    if values.size == 0:
        raise ValueError("vein_mask: the VOI is empty")
    med = float(np.median(values))
    sigma = 1.4826 * float(np.median(np.abs(values - med)))
    threshold = med + threshold_mad * sigma
    cores = voi & (chi_ppm > threshold)
    vox = voxel_sizes_mm(affine)
    if dilation_mm is None:
        dilation_mm = float(vox.max())
    if dilation_mm < 0:
        raise ValueError(f"dilation_mm must be >= 0, got {dilation_mm}")
    if dilation_mm == 0 or not cores.any():
        return cores, threshold
    pad = int(np.ceil(dilation_mm / vox.min())) + 1
    box = _bbox(voi, pad, voi.shape)
    dist = ndimage.distance_transform_edt(~cores[box], sampling=vox)
    out = np.zeros_like(voi)
    out[box] = (dist <= dilation_mm + 1e-6) & voi[box]
    return out, threshold


# ---------------------------------------------------------------------------------------------
# CSF reference in the atrium
# ---------------------------------------------------------------------------------------------

def csf_reference_mask(labels, affine, *, side, radius_mm=3.0, search_mm=20.0,
                       margin_voxels="auto", min_radius_mm=None, valid=None):
    """Spherical CSF ROI in the atrium of the lateral ventricle next to one thalamus.

    Parameters
    ----------
    labels : ndarray of int, shape (X, Y, Z)
        aseg labels on the χ grid (:func:`to_qsm_space`).
    affine : ndarray, shape (4, 4)
        Voxel-to-world (RAS+, mm) affine of that grid; any orientation.
    side : {'left', 'right'}
        Thalamus 10 with ventricle 4, or thalamus 49 with ventricle 43.
    radius_mm : float, optional
        Largest sphere radius (mm), default 3 (a "small" ROI of 19 voxels at 2 mm, 123 at 1 mm).
    search_mm : float, optional
        Candidate ventricle voxels lie within this distance (mm) of the thalamus (default 20).
    margin_voxels : int or 'auto', optional
        Every voxel of the sphere is farther than this many voxel edges from the nearest
        non-ventricle voxel; with 1 no sphere voxel shares a face with tissue or choroid
        plexus (partial volume). ``'auto'`` (default) uses 1 where the atrium is wide enough
        for a sphere of ``min_radius_mm`` with it, else 0 (sphere voxels inside the ventricle
        but possibly on its boundary layer: coarse grids, narrow ventricles); the value used
        is returned.
    min_radius_mm : float, optional
        Smallest acceptable radius (mm); default one voxel (the largest voxel edge), i.e. at
        least 7 voxels on an isotropic grid.
    valid : ndarray of bool, shape (X, Y, Z), optional
        Voxels with a usable χ value (finite); others are treated as outside the ventricle.

    Returns
    -------
    mask : ndarray of bool, shape (X, Y, Z)
    center_mm : ndarray, shape (3,)
        World coordinates of the sphere centre (mm).
    radius_mm : float
        Radius actually used (mm), shrunk when the atrium is narrow.
    margin_voxels : int
        Margin actually used.

    Raises
    ------
    ValueError
        If the thalamus or ventricle label is empty, no ventricle voxel lies posterior to the
        thalamus at its axial level within ``search_mm``, or the ventricle there is too narrow
        for a sphere of ``min_radius_mm`` with the margin.

    Notes
    -----
    The atrium (trigone) is where body, occipital and temporal horns of the lateral ventricle
    meet, posterior and lateral to the pulvinar. Candidates are the ventricle voxels that are
    (i) posterior to the thalamic centroid (world y smaller, RAS), (ii) between the lowest and
    highest thalamic slice (world z), and (iii) within ``search_mm`` of the thalamus. The
    centre is the candidate farthest from the ventricle wall (maximum of the Euclidean distance
    transform, ``d``; ties go to the candidate nearest the thalamus), which is the middle of the
    atrium and the place least affected by partial volume and segmentation error. The radius
    is ``min(radius_mm, d - margin_voxels * voxel)`` (a hair less): a sphere voxel at distance
    ``r`` from the centre is then more than ``d - r >= margin_voxels * voxel`` from any
    non-ventricle voxel, so the sphere is fully inside the ventricle, off its wall. A radius
    below ``min_radius_mm`` is an error rather than a one-voxel reference.
    """
    if side not in SIDES:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    if margin_voxels == "auto":
        margins = (1, 0)
    elif isinstance(margin_voxels, (int, np.integer)) and margin_voxels >= 0:
        margins = (int(margin_voxels),)
    else:
        raise ValueError(f"margin_voxels must be 'auto' or an integer >= 0, got {margin_voxels!r}")
    if radius_mm <= 0 or search_mm <= 0:
        raise ValueError(f"radius_mm and search_mm must be positive (got {radius_mm}, {search_mm})")
    thal_label, vent_label = SIDES[side]
    vent_name = f"label {vent_label} ({_VENTRICLE_NAMES[vent_label]})"
    thal = labels == thal_label
    vent = labels == vent_label
    if valid is not None:
        vent &= valid
    if not thal.any():
        raise ValueError(f"thalamus label {thal_label} ({' / '.join(THALAMUS_NAMES[thal_label])}) "
                         "is empty on the χ grid; cannot place the CSF reference")
    if not vent.any():
        raise ValueError(f"lateral ventricle {vent_name} is empty on the χ grid; "
                         "cannot place the CSF reference ROI")
    vox = voxel_sizes_mm(affine)
    # crop around the thalamus; generous so that the depth of candidate voxels is exact
    pad = int(np.ceil((search_mm + 15.0) / vox.min())) + 2
    box = _bbox(thal, pad, labels.shape)
    offset = np.array([s.start for s in box])
    thal_b = np.pad(thal[box], 1)          # pad: the box edge counts as outside the ventricle
    vent_b = np.pad(vent[box], 1)
    offset = offset - 1
    depth = ndimage.distance_transform_edt(vent_b, sampling=vox)
    to_thal = ndimage.distance_transform_edt(~thal_b, sampling=vox)

    thal_xyz = _world_coords(affine, np.argwhere(thal_b) + offset)
    centroid_y = thal_xyz[:, 1].mean()
    z_lo, z_hi = thal_xyz[:, 2].min(), thal_xyz[:, 2].max()
    cand_idx = np.argwhere(vent_b & (to_thal <= search_mm))
    cand_xyz = _world_coords(affine, cand_idx + offset)
    keep = (cand_xyz[:, 1] < centroid_y) & (cand_xyz[:, 2] >= z_lo - 1e-6) & (cand_xyz[:, 2] <= z_hi + 1e-6)
    if not keep.any():
        raise ValueError(f"no voxel of lateral ventricle {vent_name} lies posterior to the {side} "
                         f"thalamus at its axial level within {search_mm} mm: ventricle too "
                         "small, or segmentation not registered to the χ map")
    cand_idx, cand_xyz = cand_idx[keep], cand_xyz[keep]
    d = depth[tuple(cand_idx.T)]
    near = to_thal[tuple(cand_idx.T)]
    best = np.lexsort((near, -np.round(d, 6)))[0]
    d_best = float(d[best])
    if min_radius_mm is None:
        min_radius_mm = float(vox.max())
    for margin in margins:
        margin_mm = margin * float(vox.max())
        radius = min(float(radius_mm), d_best - margin_mm - 1e-6)
        if radius >= min(min_radius_mm, radius_mm) - 1e-9:
            break
    else:
        raise ValueError(
            f"lateral ventricle {vent_name} is too narrow behind the {side} thalamus: its deepest "
            f"point is {d_best:.1f} mm from the wall, a CSF sphere of radius {min_radius_mm:.1f} mm "
            f"needs more than {min_radius_mm + margin_mm:.1f} mm (margin_voxels={margin})")
    center = cand_xyz[best]
    # sphere: voxels of the padded box whose centres lie within `radius` of the centre
    r_vox = int(np.ceil(radius / vox.min())) + 1
    c = cand_idx[best]
    lo = np.maximum(c - r_vox, 0)
    hi = np.minimum(c + r_vox + 1, vent_b.shape)
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), axis=-1)
    xyz = _world_coords(affine, grid.reshape(-1, 3) + offset).reshape(grid.shape)
    inside = np.linalg.norm(xyz - center, axis=-1) <= radius + 1e-9
    sphere_b = np.zeros_like(vent_b)
    sphere_b[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = inside
    if np.any(sphere_b & ~vent_b):         # guaranteed by construction; keep the promise checked
        raise RuntimeError("CSF sphere leaves the ventricle; please report this as a bug")
    mask = np.zeros(labels.shape, dtype=bool)
    inner = tuple(slice(1, n - 1) for n in sphere_b.shape)
    mask[box] = sphere_b[inner]
    return mask, center, radius, margin


# ---------------------------------------------------------------------------------------------
# ROI set and susceptibility
# ---------------------------------------------------------------------------------------------

@dataclass
class ThalamicROIs:
    """ROIs of one subject on the χ grid, for measurement and figures.

    Attributes
    ----------
    affine : ndarray, shape (4, 4)
        Affine of the χ grid.
    labels : ndarray of int32, shape (X, Y, Z)
        aseg labels resampled onto the χ grid.
    voi : dict side -> ndarray of bool
        Thalamic VOI before vein exclusion (finite χ only).
    veins : dict side -> ndarray of bool
        Voxels excluded as veins (all False when exclusion is off).
    csf : dict side -> ndarray of bool
        CSF reference spheres.
    csf_center_mm, csf_radius_mm, csf_margin_voxels : dict side -> ndarray (3,) / float / int
    partial_volume : dict side -> dict
        What :func:`partial_volume_voi` did (``rule``, ``n_dropped``).
    vein_threshold_ppm : dict side -> float or None
    sides : tuple of str
        The hemispheres measured.
    chi_ppm : ndarray of float, shape (X, Y, Z)
        The χ map (ppm) the ROIs were built on.
    """

    affine: np.ndarray
    labels: np.ndarray
    sides: tuple
    voi: dict = field(default_factory=dict)
    veins: dict = field(default_factory=dict)
    csf: dict = field(default_factory=dict)
    csf_center_mm: dict = field(default_factory=dict)
    csf_radius_mm: dict = field(default_factory=dict)
    csf_margin_voxels: dict = field(default_factory=dict)
    vein_threshold_ppm: dict = field(default_factory=dict)
    partial_volume: dict = field(default_factory=dict)
    chi_ppm: np.ndarray | None = None

    def _union(self, masks, side):
        sides = self.sides if side == "both" else (side,)
        out = np.zeros(self.labels.shape, dtype=bool)
        for s in sides:
            out |= masks[s]
        return out

    def thalamus(self, side="both", *, exclude_veins=True):
        """Thalamic VOI (bool, χ-grid shape), minus veins unless ``exclude_veins=False``."""
        voi = self._union(self.voi, side)
        return voi & ~self._union(self.veins, side) if exclude_veins else voi

    def vein(self, side="both"):
        """Excluded vein voxels (bool, χ-grid shape)."""
        return self._union(self.veins, side)

    def csf_reference(self, side="both"):
        """CSF reference spheres (bool, χ-grid shape)."""
        return self._union(self.csf, side)


def _check_hemisphere(hemisphere):
    if hemisphere == "both":
        return ("left", "right")
    if hemisphere in SIDES:
        return (hemisphere,)
    raise ValueError(f"hemisphere must be 'both', 'left' or 'right', got {hemisphere!r}")


def thalamic_rois(chimap_img, aseg_img, *, exclude_veins=True, vein_threshold_mad=3.0,
                  vein_dilation_mm=None, csf_radius_mm=3.0, csf_search_mm=20.0,
                  csf_margin_voxels="auto", csf_min_radius_mm=None, hemisphere="both",
                  brain_mask_img=None, partial_volume=True):
    """Build the thalamic VOIs, vein masks and CSF spheres on the χ grid.

    Parameters are those of :func:`thalamic_susceptibility`. Returns :class:`ThalamicROIs`.
    """
    sides = _check_hemisphere(hemisphere)
    chi_img = _load_3d(chimap_img, "χ map")
    chi = np.asarray(chi_img.dataobj, dtype=np.float64)
    seg_img = load_aseg(aseg_img)
    labels = np.asarray(to_qsm_space(seg_img, chi_img).dataobj, dtype=np.int32)
    valid = np.isfinite(chi)
    if brain_mask_img is not None:
        try:
            mask = np.asarray(to_qsm_space(brain_mask_img, chi_img).dataobj)
        except ValueError as err:
            raise ValueError(f"brain_mask_img: {err}") from err
        if mask.shape != chi.shape:
            raise ValueError(f"brain_mask_img: shape {mask.shape} on the χ grid, expected {chi.shape}")
        valid &= mask > 0
    rois = ThalamicROIs(affine=chi_img.affine.copy(), labels=labels, sides=sides, chi_ppm=chi)
    for side in sides:
        tl, _ = SIDES[side]
        voi = (labels == tl) & valid
        if not voi.any():
            raise ValueError(
                f"thalamic VOI ({side}) is empty: label {tl} ({' / '.join(THALAMUS_NAMES[tl])}) "
                f"has no voxel with a finite χ on the χ grid {chi.shape}; check the segmentation "
                "and its registration to the χ map")
        if partial_volume:
            voi, rois.partial_volume[side] = partial_volume_voi(voi, label=tl, seg_img=seg_img, chimap_img=chi_img)
        else:
            rois.partial_volume[side] = {"rule": "off", "n_dropped": 0}
        rois.voi[side] = voi
        if exclude_veins:
            rois.veins[side], rois.vein_threshold_ppm[side] = vein_mask(
                chi, voi, affine=chi_img.affine, threshold_mad=vein_threshold_mad,
                dilation_mm=vein_dilation_mm)
        else:
            rois.veins[side] = np.zeros_like(voi)
            rois.vein_threshold_ppm[side] = None
        left = int((voi & ~rois.veins[side]).sum())
        if left < MIN_VOI_VOXELS:
            raise ValueError(
                f"thalamic VOI ({side}) keeps {left} voxel(s) after excluding {int(rois.veins[side].sum())} vein "
                f"voxel(s) of {int(voi.sum())} (fewer than {MIN_VOI_VOXELS}): the segmentation hardly overlaps the "
                "thalamus of this χ map; check its registration, or measure with exclude_veins=False")
        (rois.csf[side], rois.csf_center_mm[side], rois.csf_radius_mm[side],
         rois.csf_margin_voxels[side]) = csf_reference_mask(
            labels, chi_img.affine, side=side, radius_mm=csf_radius_mm, search_mm=csf_search_mm,
            margin_voxels=csf_margin_voxels, min_radius_mm=csf_min_radius_mm, valid=valid)
    return rois


def thalamic_susceptibility(chimap_img, aseg_img, *, exclude_veins=True, vein_threshold_mad=3.0,
                            csf_radius_mm=3.0, hemisphere="both", sign="thalamus_minus_csf",
                            vein_dilation_mm=None, csf_search_mm=20.0, csf_margin_voxels="auto",
                            csf_min_radius_mm=None, brain_mask_img=None, partial_volume=True, return_rois=False):
    """Relative thalamic susceptibility (ppb) of one subject.

    Parameters
    ----------
    chimap_img : str, Path or nibabel image
        χ map in **ppm**, 3-D. Non-finite voxels are ignored.
    aseg_img : str, Path or nibabel image
        aseg-style labels registered to the χ map (any grid; see :func:`to_qsm_space`), or a
        FreeSurfer subject directory whose ``mri/aseg.mgz`` is already in QSM space.
    exclude_veins : bool, optional
        Remove veins from the thalamic VOI (:func:`vein_mask`); default True.
    vein_threshold_mad : float, optional
        k of the vein threshold ``median + k * 1.4826 * MAD`` (default 3); median and MAD are
        taken over each hemisphere's VOI separately.
    csf_radius_mm : float, optional
        Largest radius of the CSF spheres (mm), default 3.
    hemisphere : {'both', 'left', 'right'}, optional
        'both' pools the voxels of both thalami (one VOI "encompassing both thalami", as in the
        paper) and of both atrial CSF spheres; a single side uses its own thalamus and atrium.
    sign : {'thalamus_minus_csf', 'csf_minus_thalamus'}, optional
        Convention of the relative value; see the module docstring. Default thalamus − CSF.
    vein_dilation_mm : float, optional
        Dilation of the vein cores (mm); default one voxel.
    csf_search_mm : float, optional
        Search distance of the atrium from the thalamus (mm), default 20.
    csf_margin_voxels : int or 'auto', optional
        Distance, in voxels, kept between the sphere's voxels and non-ventricle voxels; 1 keeps
        the sphere off the ventricle's boundary layer; 'auto' (default) uses 1 where the atrium
        allows it, else 0 (:func:`csf_reference_mask`).
    csf_min_radius_mm : float, optional
        Smallest acceptable CSF sphere radius (mm); default one voxel.
    brain_mask_img : str, Path or nibabel image, optional
        Mask of the voxels where χ was reconstructed (e.g. the QSM derivative's brain mask).
        QSM derivatives hold 0, not NaN, outside their mask; pass it on real data so that such
        voxels never enter the VOI or the CSF sphere (resampled to the χ grid, nearest neighbour).
    partial_volume : bool, optional
        When the segmentation and the χ map differ in resolution, drop the VOI voxels that the
        coarser grid makes uncertain (:func:`partial_volume_voi`); default True. No effect when
        both have the same voxel size.
    return_rois : bool, optional
        Also return the :class:`ThalamicROIs` (masks for figures) under the key ``"rois"``.

    Returns
    -------
    dict
        ``thalamus_ppb`` (mean χ of the VOI after vein exclusion), ``csf_reference_ppb`` (mean χ
        of the CSF spheres), ``relative_ppb``, ``n_voxels`` (VOI voxels measured),
        ``n_voxels_before_exclusion``, ``n_vein_voxels_excluded``, ``n_csf_voxels``,
        ``voxel_volume_mm3``, ``hemisphere``, ``sign``, and per side
        ``<side>_thalamus_ppb``, ``<side>_csf_reference_ppb``, ``<side>_relative_ppb``,
        ``<side>_n_voxels``, ``<side>_n_vein_voxels_excluded``, ``<side>_vein_threshold_ppm``,
        ``<side>_csf_center_mm`` (tuple, world mm), ``<side>_csf_radius_mm``,
        ``<side>_csf_margin_voxels``, ``<side>_partial_volume_rule``,
        ``<side>_n_partial_volume_dropped``.

    Raises
    ------
    ValueError
        Empty VOI (naming the label), unusable ventricle, bad option.
    """
    if sign not in ("thalamus_minus_csf", "csf_minus_thalamus"):
        raise ValueError(f"sign must be 'thalamus_minus_csf' or 'csf_minus_thalamus', got {sign!r}")
    rois = thalamic_rois(chimap_img, aseg_img, exclude_veins=exclude_veins,
                         vein_threshold_mad=vein_threshold_mad, vein_dilation_mm=vein_dilation_mm,
                         csf_radius_mm=csf_radius_mm, csf_search_mm=csf_search_mm,
                         csf_margin_voxels=csf_margin_voxels, csf_min_radius_mm=csf_min_radius_mm,
                         hemisphere=hemisphere, brain_mask_img=brain_mask_img, partial_volume=partial_volume)
    chi = rois.chi_ppm
    factor = 1.0 if sign == "thalamus_minus_csf" else -1.0

    def summarise(side):
        thal = rois.thalamus(side)
        csf = rois.csf_reference(side)
        t = float(chi[thal].mean()) * PPM_TO_PPB
        c = float(chi[csf].mean()) * PPM_TO_PPB
        return t, c, factor * (t - c), int(thal.sum()), int(csf.sum())

    t, c, rel, n, ncsf = summarise("both")
    out = {
        "hemisphere": hemisphere, "sign": sign,
        "thalamus_ppb": t, "csf_reference_ppb": c, "relative_ppb": rel,
        "n_voxels": n, "n_voxels_before_exclusion": int(rois.thalamus(exclude_veins=False).sum()),
        "n_vein_voxels_excluded": int(rois.vein().sum()), "n_csf_voxels": ncsf,
        "voxel_volume_mm3": float(abs(np.linalg.det(rois.affine[:3, :3]))),
    }
    for side in rois.sides:
        t, c, rel, n, ncsf = summarise(side)
        out.update({
            f"{side}_thalamus_ppb": t, f"{side}_csf_reference_ppb": c, f"{side}_relative_ppb": rel,
            f"{side}_n_voxels": n, f"{side}_n_vein_voxels_excluded": int(rois.veins[side].sum()),
            f"{side}_vein_threshold_ppm": rois.vein_threshold_ppm[side],
            f"{side}_csf_center_mm": tuple(float(v) for v in rois.csf_center_mm[side]),
            f"{side}_csf_radius_mm": float(rois.csf_radius_mm[side]),
            f"{side}_csf_margin_voxels": int(rois.csf_margin_voxels[side]),
            f"{side}_partial_volume_rule": rois.partial_volume[side]["rule"],
            f"{side}_n_partial_volume_dropped": int(rois.partial_volume[side]["n_dropped"]),
        })
    if return_rois:
        out["rois"] = rois
    return out


# ---------------------------------------------------------------------------------------------
# Lesions
# ---------------------------------------------------------------------------------------------

def lesion_volume_ml(lesion_img, *, threshold=0.5):
    """T2 lesion volume (mL) of a binary or probabilistic lesion mask.

    Parameters
    ----------
    lesion_img : str, Path or nibabel image
        3-D mask: 0/1 (or 0/255) labels, or lesion probabilities in [0, 1]. NaN counts as 0.
    threshold : float, optional
        A voxel is lesion when its value is ``>= threshold`` (default 0.5).

    Returns
    -------
    float
        ``n_lesion_voxels * voxel_volume_mm3 / 1000`` (mL); the voxel volume is
        ``|det(affine[:3, :3])|`` from the image header (mm³), so oblique and anisotropic grids
        are handled.
    """
    if not np.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold must be a positive number, got {threshold}")
    img = _load_3d(lesion_img, "lesion mask")
    data = np.nan_to_num(np.asarray(img.dataobj, dtype=np.float64), nan=0.0)
    voxel_mm3 = float(abs(np.linalg.det(img.affine[:3, :3])))
    if voxel_mm3 <= 0:
        raise ValueError("lesion mask has a singular affine (voxel volume 0)")
    return float(np.count_nonzero(data >= threshold)) * voxel_mm3 / 1000.0
