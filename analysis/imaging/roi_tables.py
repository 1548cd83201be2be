"""Tables of thalamic ROI measurements, for notebooks and reports.

:mod:`analysis.imaging.roi` measures one χ map (:func:`~analysis.imaging.roi.thalamic_susceptibility`);
this module lays its results out as tables:

- :func:`roi_table` — several χ maps of one subject, each measured with and without vein
  exclusion, one row per (map, exclusion): the ROI notebook's table for your own data
  (``roi_subject.csv``);
- :func:`hemisphere_table` — one measurement's per-hemisphere details (thalamus, CSF reference,
  voxels, vein threshold, CSF sphere), one column per side.

Real-data path: nothing here imports :mod:`analysis.simulation` (the phantom's version of the
table, with its truth beside the measurement, is
:func:`analysis.simulation.phantom_qsm.phantom_roi_table`).
"""

from __future__ import annotations

import pandas as pd

from analysis.imaging.roi import thalamic_susceptibility

__all__ = ["ROI_COLUMNS", "HEMISPHERE_QUANTITIES", "roi_table", "hemisphere_table"]

#: Columns of :func:`roi_table`.
ROI_COLUMNS = ("map", "exclude_veins", "thalamus_ppb", "csf_reference_ppb", "relative_ppb", "n_voxels",
               "n_vein_voxels_excluded")
#: Rows of :func:`hemisphere_table` (keys ``<side>_<quantity>`` of ``thalamic_susceptibility``).
HEMISPHERE_QUANTITIES = ("thalamus_ppb", "csf_reference_ppb", "relative_ppb", "n_voxels", "n_vein_voxels_excluded",
                         "vein_threshold_ppm", "csf_center_mm", "csf_radius_mm", "csf_margin_voxels")


def roi_table(chi_maps, segmentation, *, exclude_veins=(True, False), **roi_options):
    """Relative thalamic susceptibility of one subject's χ maps, with and without vein exclusion.

    Parameters
    ----------
    chi_maps : dict of str -> nibabel image or path
        χ maps (ppm) of one subject, e.g. ``{"subject": "sub-01_Chimap.nii.gz"}``; the keys name
        the rows.
    segmentation : nibabel image or path
        aseg-style labels registered to the χ maps (see :func:`analysis.imaging.roi.to_qsm_space`).
    exclude_veins : sequence of bool, keyword-only
        The measurements made of each map, in row order (default: with, then without).
    **roi_options
        Passed to :func:`analysis.imaging.roi.thalamic_susceptibility` (``vein_threshold_mad``,
        ``brain_mask_img``, ...).

    Returns
    -------
    table : pandas.DataFrame
        One row per map and ``exclude_veins`` value, columns :data:`ROI_COLUMNS` (ppb; voxel
        counts of the VOI measured and of the vein voxels excluded).
    rois : dict of (str, bool) -> analysis.imaging.roi.ThalamicROIs
        The masks of each measurement (for figures), keyed like the rows.

    Raises
    ------
    ValueError
        ``chi_maps`` empty or not a dict, ``exclude_veins`` empty, ``return_rois`` or
        ``exclude_veins`` among ``roi_options``; and what ``thalamic_susceptibility`` raises
        (empty VOI, unusable ventricle).
    """
    if not isinstance(chi_maps, dict) or not chi_maps:
        raise ValueError("chi_maps must be a non-empty dict of name -> χ map")
    exclude_veins = tuple(exclude_veins)
    if not exclude_veins or not all(isinstance(e, bool) for e in exclude_veins):
        raise ValueError(f"exclude_veins must be a non-empty sequence of True/False, got {exclude_veins!r}")
    if "return_rois" in roi_options:
        raise ValueError("return_rois is not an option of roi_table (the ROIs are always returned)")
    rows, rois = [], {}
    for name, img in chi_maps.items():
        for exclude in exclude_veins:
            r = thalamic_susceptibility(img, segmentation, exclude_veins=exclude, return_rois=True, **roi_options)
            rois[(name, exclude)] = r.pop("rois")
            rows.append({"map": name, "exclude_veins": exclude, **{k: r[k] for k in ROI_COLUMNS[2:]}})
    return pd.DataFrame(rows, columns=list(ROI_COLUMNS)), rois


def hemisphere_table(result, *, quantities=HEMISPHERE_QUANTITIES):
    """One measurement's per-hemisphere values, one column per side.

    Parameters
    ----------
    result : dict
        From :func:`analysis.imaging.roi.thalamic_susceptibility` with ``hemisphere="both"``
        (it holds ``left_<quantity>`` and ``right_<quantity>``).
    quantities : sequence of str, keyword-only
        The rows (default :data:`HEMISPHERE_QUANTITIES`).

    Returns
    -------
    pandas.DataFrame
        Index ``quantities``, columns ``left`` and ``right``.

    Raises
    ------
    ValueError
        A quantity missing from ``result`` (named).
    """
    missing = [f"{side}_{q}" for q in quantities for side in ("left", "right") if f"{side}_{q}" not in result]
    if missing:
        raise ValueError(f"result has no {missing}: pass the dict of thalamic_susceptibility(..., hemisphere='both')")
    return pd.DataFrame({side: {q: result[f"{side}_{q}"] for q in quantities} for side in ("left", "right")})
