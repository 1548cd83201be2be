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
  Global measures follow FreeSurfer's definitions on the labels (see
  :data:`analysis.imaging.labels.SUBCORTICAL_GRAY` and
  :func:`analysis.simulation.anatomy.phantom_subject_measures`): ``TotalGrayVol`` = cortex (3/42) + subcortical grey
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

The images and numbers come from :mod:`analysis.simulation.anatomy`; this module writes them in
FreeSurfer's formats.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from analysis.imaging.labels import label_lookup_table
from analysis.io import atomic_path, write_text
from analysis.simulation.anatomy import cortical_parcellation, phantom_subject_measures, synthetic_flair, synthetic_t1

__all__ = ["PROVENANCE_FILE", "PhantomSubject", "write_phantom_subject"]

#: Provenance file that marks a directory as written by :func:`write_phantom_subject`.
PROVENANCE_FILE = Path("scripts") / "phantom_subject.json"
_GENERATOR = "analysis.simulation.freesurfer_subject.write_phantom_subject"


# ---------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------

_NOTES = (
    "SIMULATED subject written by analysis.simulation.freesurfer_subject from the numerical head phantom; no "
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
        :func:`analysis.simulation.anatomy.phantom_subject_measures`).
    measures : dict
        Everything written (:func:`analysis.simulation.anatomy.phantom_subject_measures`).
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
