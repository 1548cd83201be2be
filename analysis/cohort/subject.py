"""One subject's imaging measurements as a row of the cohort table — written once, used by every path.

:func:`measure_subject` is the single place where a χ map, a segmentation on its grid, a
FreeSurfer subject and a lesion mask become the imaging columns of the cohort CSV (thalamic
volume, relative thalamic susceptibility, grey-matter volume, cortical thickness, T2 lesion
volume) plus quality-control numbers. The real-data command (``python -m analysis measure``,
:mod:`analysis.cohort.measure`) and the simulated imaging cohort
(:mod:`analysis.simulation.imaging_cohort`) both call it. :func:`merge_clinical` joins the
imaging rows with a clinical table into the data dictionary's format.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.cohort.dictionary import COLUMN_NAMES
from analysis.imaging.freesurfer import load_aseg, read_subject_stats
from analysis.imaging.roi import lesion_volume_ml, thalamic_susceptibility

__all__ = ["IMAGING_COLUMNS", "CLINICAL_COLUMNS", "COHORT_COLUMNS", "QC_COLUMNS", "subject_row",
           "measure_subject", "merge_clinical"]

#: Columns of a per-subject imaging row (the imaging half of the cohort CSV).
IMAGING_COLUMNS = ("subject_id", "thalamic_volume_mm3", "thalamic_relative_susceptibility_ppb",
                   "total_gray_matter_volume_mm3", "mean_cortical_thickness_mm",
                   "t2_lesion_volume_ml")
#: Columns that come from the clinical CSV, merged by ``subject_id``.
CLINICAL_COLUMNS = ("age_years", "sex", "edss", "disease_duration_years", "dmt_use",
                    "enhancing_lesions_present")
#: Column order of the cohort CSV: the data dictionary's (:data:`analysis.cohort.dictionary.COLUMN_NAMES`).
COHORT_COLUMNS = tuple(COLUMN_NAMES)
if set(COHORT_COLUMNS) != set(IMAGING_COLUMNS) | set(CLINICAL_COLUMNS):  # pragma: no cover
    raise ImportError("analysis.cohort.subject: IMAGING_COLUMNS + CLINICAL_COLUMNS differ from the cohort "
                      "data dictionary (analysis.cohort.dictionary.COLUMNS)")
#: Quality-control numbers of :func:`measure_subject` (besides the imaging columns).
QC_COLUMNS = ("thalamus_ppb", "csf_reference_ppb", "n_voxels", "n_voxels_before_exclusion",
              "n_vein_voxels_excluded", "n_csf_voxels", "left_relative_ppb", "right_relative_ppb",
              "freesurfer_version")


def subject_row(subject_id, *, freesurfer_stats, susceptibility, t2_lesion_volume_ml):
    """One subject's imaging values in the cohort CSV's column names.

    Parameters
    ----------
    subject_id : str
    freesurfer_stats : dict
        From :func:`analysis.imaging.freesurfer.read_subject_stats` (``thalamic_volume_mm3``,
        ``total_gray_volume_mm3``, ``mean_cortical_thickness_mm``).
    susceptibility : dict or float
        From :func:`analysis.imaging.roi.thalamic_susceptibility` (its ``relative_ppb``), or the value in ppb.
    t2_lesion_volume_ml : float
        From :func:`analysis.imaging.roi.lesion_volume_ml` (mL).

    Returns
    -------
    dict
        Keys :data:`IMAGING_COLUMNS`, in that order.
    """
    rel = susceptibility["relative_ppb"] if isinstance(susceptibility, dict) else susceptibility
    try:
        row = {
            "subject_id": str(subject_id),
            "thalamic_volume_mm3": float(freesurfer_stats["thalamic_volume_mm3"]),
            "thalamic_relative_susceptibility_ppb": float(rel),
            "total_gray_matter_volume_mm3": float(freesurfer_stats["total_gray_volume_mm3"]),
            "mean_cortical_thickness_mm": float(freesurfer_stats["mean_cortical_thickness_mm"]),
            "t2_lesion_volume_ml": float(t2_lesion_volume_ml),
        }
    except KeyError as exc:
        raise ValueError(f"subject {subject_id}: freesurfer_stats lacks {exc.args[0]!r}") from None
    return row


def measure_subject(subject_id, *, freesurfer_dir, chimap, lesion_mask, segmentation=None, brain_mask=None,
                    return_rois=False, **roi_options):
    """Measure one subject: its imaging row of the cohort table and quality-control numbers.

    Parameters
    ----------
    subject_id : str
        Row id (e.g. ``sub-01``).
    freesurfer_dir : str or Path
        FreeSurfer subject directory: ``stats/aseg.stats`` and ``stats/?h.aparc.stats`` give the
        thalamic volume (mm³), ``TotalGrayVol`` (mm³) and the mean cortical thickness (mm); its
        ``mri/aseg.mgz`` is the segmentation when ``segmentation`` is not given.
    chimap : str, Path or nibabel image
        χ map (ppm), 3-D.
    lesion_mask : str, Path or nibabel image
        T2 lesion mask (any grid; binary or probability ≥ 0.5).
    segmentation : str, Path or nibabel image, optional
        aseg labels **registered to the χ map** (any grid; resampled with nearest neighbour).
        Default: the subject's own ``mri/aseg.mgz``, right only when the T1 and the GRE share
        scanner coordinates.
    brain_mask : str, Path or nibabel image, optional
        The QSM brain mask (derivatives hold 0, not NaN, outside it).
    return_rois : bool
        Also return the ROIs (:class:`analysis.imaging.roi.ThalamicROIs`, for QC figures) under
        the key ``"rois"``.
    **roi_options
        Passed to :func:`analysis.imaging.roi.thalamic_susceptibility` (``exclude_veins``,
        ``vein_threshold_mad``, ``csf_radius_mm``, ``hemisphere``, …).

    Returns
    -------
    dict
        Keys :data:`IMAGING_COLUMNS` (in that order, ppb, mm³, mm, mL) then :data:`QC_COLUMNS`
        (thalamus and CSF means in ppb, voxel counts, each side's relative value, FreeSurfer
        version; a QC key is ``None`` when the ROI options do not produce it).

    Raises
    ------
    ValueError, FileNotFoundError
        Missing or unreadable files, missing stats, or an ROI that cannot be measured (the
        message names the file or the label).
    """
    stats = read_subject_stats(freesurfer_dir)
    seg = load_aseg(segmentation if segmentation is not None else freesurfer_dir)
    sus = thalamic_susceptibility(chimap, seg, brain_mask_img=brain_mask, return_rois=return_rois, **roi_options)
    row = subject_row(subject_id, freesurfer_stats=stats, susceptibility=sus,
                      t2_lesion_volume_ml=lesion_volume_ml(lesion_mask))
    qc = {k: sus.get(k) for k in QC_COLUMNS}
    qc["freesurfer_version"] = stats.get("freesurfer_version")
    out = {**row, **qc}
    if return_rois:
        out["rois"] = sus["rois"]
    return out


def merge_clinical(imaging, clinical):
    """Merge imaging rows with the clinical table by ``subject_id`` into the cohort format.

    Parameters
    ----------
    imaging : pandas.DataFrame or sequence of dict
        Rows with :data:`IMAGING_COLUMNS`.
    clinical : pandas.DataFrame, str or Path
        Clinical table (or CSV) with ``subject_id`` and :data:`CLINICAL_COLUMNS`.

    Returns
    -------
    pandas.DataFrame
        One row per imaging subject, columns :data:`COHORT_COLUMNS` first (extra clinical
        columns kept after them).

    Raises
    ------
    FileNotFoundError
        Missing clinical CSV (named).
    ValueError
        Missing column (named), duplicated subject ids, or imaging subjects without a clinical
        row (named).
    """
    img = pd.DataFrame(list(imaging)) if not isinstance(imaging, pd.DataFrame) else imaging.copy()
    if isinstance(clinical, (str, Path)):
        if not Path(clinical).is_file():
            raise FileNotFoundError(f"clinical CSV not found: {clinical}")
        clin = pd.read_csv(clinical)
    else:
        clin = clinical.copy()
    for name, df, cols in (("imaging table", img, IMAGING_COLUMNS),
                           ("clinical table", clin, ("subject_id", *CLINICAL_COLUMNS))):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"{name} lacks column(s) {missing}")
        df["subject_id"] = df["subject_id"].astype(str)
        dup = df["subject_id"][df["subject_id"].duplicated()].unique()
        if len(dup):
            raise ValueError(f"{name}: duplicated subject_id {list(dup)}")
    absent = sorted(set(img["subject_id"]) - set(clin["subject_id"]))
    if absent:
        raise ValueError(f"no clinical row for subject_id {absent}")
    clin = clin.drop(columns=[c for c in IMAGING_COLUMNS if c in clin.columns and c != "subject_id"])
    merged = img[list(IMAGING_COLUMNS)].merge(clin, on="subject_id", how="left", validate="1:1")
    extra = [c for c in merged.columns if c not in COHORT_COLUMNS]
    return merged[list(COHORT_COLUMNS) + extra]
