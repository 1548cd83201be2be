"""From a study's derivatives to the cohort CSV (the library behind ``python -m analysis measure``).

This is the real-data bridge between the imaging half and the statistics notebooks. For every
χ map of a QSM derivative dataset (``sub-<L>/anat/sub-<L>_Chimap.nii.gz``, as written by
``python -m analysis qsm``) it

1. reads the subject's FreeSurfer stats (thalamic volume, ``TotalGrayVol``, mean cortical
   thickness; :func:`analysis.imaging.freesurfer.read_subject_stats`);
2. measures the relative thalamic susceptibility (ppb) with vein exclusion and the atrial CSF
   reference (:func:`analysis.imaging.roi.thalamic_susceptibility`), on a segmentation **registered to
   the χ map** and inside the derivative's brain mask;
3. measures the T2 lesion volume (mL) of the subject's lesion mask
   (:func:`analysis.imaging.roi.lesion_volume_ml`);

and writes one row per subject in the cohort CSV's column names. With a clinical CSV
(``subject_id`` plus age, sex, EDSS, disease duration, DMT use, enhancing lesions) the rows are
merged into the full cohort format, validated by :func:`analysis.cohort.dictionary.validate_cohort` and ready
for ``cohort_csv`` in ``params.yml``. A second file, ``<output>_measurements.csv``, keeps the
quality-control numbers per subject (thalamus and CSF means, voxel counts, veins excluded, each
side's value, the files used).

Paths of the per-subject files are templates with the placeholders ``{subject}`` (``sub-01``)
and ``{label}`` (``01``), e.g. ``lesions/{subject}/anat/{subject}_desc-lesion_mask.nii.gz``.

Registration is built in: each subject's FreeSurfer anatomy (``mri/brain.mgz``, else
``brainmask.mgz``, ``norm.mgz`` or ``T1.mgz``) is registered rigidly to the echo-combined GRE
magnitude that ``python -m analysis qsm`` writes beside the χ map (``…_T2starw.nii.gz``), with
mutual information (:mod:`analysis.imaging.registration`), and ``mri/aseg.mgz`` is resampled onto
the χ grid with nearest neighbour. The transform, a registration overlay, a mosaic of magnitude,
field, χ and ROIs, and an HTML page per subject go to ``<output stem>_qc/`` (``index.html``). An
implausible registration fails that subject with the reason. ``--aseg`` takes segmentations
already registered to the χ maps; ``--no-registration`` uses ``mri/aseg.mgz`` as it is (right
only when T1 and GRE share scanner coordinates).
"""

from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.cohort.dictionary import validate_cohort
from analysis.cohort.subject import COHORT_COLUMNS, IMAGING_COLUMNS, QC_COLUMNS, measure_subject, merge_clinical
from analysis.imaging.bids import clean_label, parse_entities
from analysis.imaging.freesurfer import find_segmentation
from analysis.imaging.qc import load_on_grid, subject_mosaic, write_index, write_subject_report
from analysis.imaging.registration import (
    choose_anatomy,
    register_anatomy_to_gre,
    registration_overlay_png,
    resample_image,
    resample_labels,
    save_transform,
)
from analysis.io import atomic_path, ensure_not_input

logger = logging.getLogger(__name__)

__all__ = ["ChimapSeries", "REGISTRATION_COLUMNS", "find_chimaps", "measure_dataset", "run_measure"]

_PLACEHOLDERS = {"subject", "label"}


@dataclass(frozen=True)
class ChimapSeries:
    """One χ map of a QSM derivative dataset.

    Attributes
    ----------
    label : str
        Participant label without ``sub-``.
    subject_id : str
        ``sub-<label>``, the cohort CSV's ``subject_id``.
    chimap : Path
        ``…_Chimap.nii.gz`` (ppm).
    brain_mask : Path or None
        ``…_desc-brain_mask.nii.gz`` beside it, if present.
    magnitude : Path or None
        ``…_T2starw.nii.gz`` beside it (the echo-combined GRE magnitude that ``python -m
        analysis qsm`` writes): the target of the anatomy's registration.
    local_field : Path or None
        ``fmap/…_desc-local_fieldmap.nii.gz`` (Hz), if the derivatives hold it (QC report).
    """

    label: str
    subject_id: str
    chimap: Path
    brain_mask: Path | None
    magnitude: Path | None = None
    local_field: Path | None = None


def find_chimaps(qsm_dir, participant_label=None, *, session=None):
    """The χ maps of a QSM derivative dataset, one per participant.

    Parameters
    ----------
    qsm_dir : str or Path
        Derivative dataset (``sub-*/[ses-*/]anat/*_Chimap.nii[.gz]``).
    participant_label : str or sequence of str, optional
        Only these participants (with or without ``sub-``).
    session : str, optional
        Only this session (with or without ``ses-``); needed when a participant has several.

    Returns
    -------
    list of ChimapSeries
        Sorted by participant.

    Raises
    ------
    ValueError
        Missing folder, no χ map, an unknown participant, or several χ maps for one participant
        (naming them).
    """
    root = Path(qsm_dir)
    if not root.is_dir():
        raise ValueError(f"QSM derivative folder {root} does not exist")
    ses = None if session is None else str(session).removeprefix("ses-")
    found = {}
    for path in sorted(root.glob("sub-*/**/anat/*_Chimap.nii*")):
        ents, suffix = parse_entities(path)
        if suffix != "Chimap" or "sub" not in ents:
            continue
        if ses is not None and ents.get("ses") != ses:
            continue
        found.setdefault(ents["sub"], []).append((path, ents))
    if participant_label is not None:
        wanted = [participant_label] if isinstance(participant_label, str) else list(participant_label)
        wanted = [clean_label(w) for w in wanted]
        unknown = [w for w in wanted if w not in found]
        if unknown:
            raise ValueError(f"no χ map (*_Chimap.nii.gz) for participant(s) {unknown} under {root}")
        found = {k: found[k] for k in wanted}
    if not found:
        raise ValueError(f"no χ map (sub-*/anat/*_Chimap.nii.gz) under {root}")
    out = []
    for label in sorted(found):
        items = found[label]
        if len(items) > 1:
            names = ", ".join(p.name for p, _ in items)
            raise ValueError(f"sub-{label} has {len(items)} χ maps ({names}); choose one with --session "
                             "or keep one per participant")
        path, ents = items[0]
        stem = path.name[: path.name.index("_Chimap")]
        masks = sorted(path.parent.glob(f"{stem}_desc-brain_mask.nii*"))
        mags = sorted(path.parent.glob(f"{stem}_T2starw.nii*"))
        fields = sorted((path.parent.parent / "fmap").glob(f"{stem}_desc-local_fieldmap.nii*"))
        out.append(ChimapSeries(label=label, subject_id=f"sub-{label}", chimap=path,
                                brain_mask=masks[0] if masks else None, magnitude=mags[0] if mags else None,
                                local_field=fields[0] if fields else None))
    return out


def _check_template(template, what):
    """Raise on an unknown placeholder; return the set of placeholders used."""
    names = {f for _, f, _, _ in string.Formatter().parse(str(template)) if f is not None}
    bad = names - _PLACEHOLDERS
    if bad:
        raise ValueError(f"{what} template {template!r} has unknown placeholder(s) {sorted(bad)}; "
                         f"use {{subject}} (sub-01) or {{label}} (01)")
    return names


def _fill(template, series):
    return Path(str(template).format(subject=series.subject_id, label=series.label))


def _freesurfer_dir(subjects_dir, template, series):
    if template is not None:
        path = Path(subjects_dir) / _fill(template, series)
        if not path.is_dir():
            raise ValueError(f"{series.subject_id}: FreeSurfer subject folder {path} does not exist")
        return path
    for name in (series.subject_id, series.label):
        path = Path(subjects_dir) / name
        if path.is_dir():
            return path
    raise ValueError(f"{series.subject_id}: no FreeSurfer subject folder {Path(subjects_dir) / series.subject_id} "
                     f"(or …/{series.label}); pass --freesurfer-subject with the folder name template")


#: Columns of the registration quality in the measurements file.
REGISTRATION_COLUMNS = ("registration", "registration_rotation_deg", "registration_translation_mm",
                        "registration_nmi", "registration_nmi_drop", "registration_flags")


def _register(series, fs_dir, seg_path, qc_dir):
    """Register the subject's anatomy to its GRE magnitude; labels on the χ grid and QC values."""
    if series.magnitude is None:
        raise ValueError(f"{series.subject_id}: no echo-combined magnitude ({series.chimap.name.split('_Chimap')[0]}"
                         "_T2starw.nii.gz) beside the χ map to register the anatomy to; reconstruct with "
                         "'python -m analysis qsm' (which writes it), give --aseg with segmentations already "
                         "registered to the χ maps, or --no-registration if T1 and GRE share scanner coordinates")
    anat = choose_anatomy(fs_dir)
    reg = register_anatomy_to_gre(anat, series.magnitude, fixed_mask=series.brain_mask)
    seg = resample_labels(seg_path, series.chimap, reg)
    files = {}
    if qc_dir is not None:
        qc_dir.mkdir(parents=True, exist_ok=True)
        files["transform"] = save_transform(qc_dir / f"{series.subject_id}_from-T1w_to-GRE_xfm.json", reg)
        files["overlay"] = registration_overlay_png(
            qc_dir / f"{series.subject_id}_registration.png", series.magnitude,
            resample_image(anat, series.magnitude, reg), labels_img=seg,
            title=(f"{series.subject_id}: rotation {reg.rotation_deg:.2f}°, translation "
                   f"{np.linalg.norm(reg.translation_mm):.1f} mm, NMI {reg.nmi:.3f}"))
    qc = {"registration": f"rigid, mutual information ({anat.name} -> {series.magnitude.name})",
          "registration_rotation_deg": float(reg.rotation_deg),
          "registration_translation_mm": float(np.linalg.norm(reg.translation_mm)),
          "registration_nmi": float(reg.nmi), "registration_nmi_drop": float(reg.nmi_drop),
          "registration_flags": "; ".join(reg.flags)}
    if not reg.plausible:
        where = f"; see {files['overlay']}" if "overlay" in files else ""
        raise ValueError(f"{series.subject_id}: the registration of {anat} to {series.magnitude} is not plausible "
                         f"({'; '.join(reg.flags)}){where}; check the images, or register them yourself and pass "
                         "--aseg")
    return seg, qc, files


def _qc_page(qc_dir, series, row, rois, files, flags):
    """Mosaic + HTML page of one subject."""
    chi_img = nib.load(str(series.chimap))
    mosaic = subject_mosaic(qc_dir / f"{series.subject_id}_mosaic.png", chi_img=chi_img,
                            mask_img=load_on_grid(series.brain_mask, chi_img),
                            magnitude_img=load_on_grid(series.magnitude, chi_img),
                            field_img=load_on_grid(series.local_field, chi_img), rois=rois)
    numbers = {k: row[k] for k in (*IMAGING_COLUMNS, *QC_COLUMNS, *REGISTRATION_COLUMNS)
               if k in row and k != "subject_id"}
    return write_subject_report(qc_dir, series.subject_id, numbers=numbers, mosaic_png=mosaic,
                                registration_png=files.get("overlay"), flags=flags,
                                notes=[f"χ map: {series.chimap}", "χ in ppm; relative χ = thalamus − CSF (ppb)"])


def measure_dataset(qsm_dir, subjects_dir, *, lesion_mask, aseg=None, register=True, qc_dir=None,
                    freesurfer_subject=None, participant_label=None, session=None, progress=True, **roi_options):
    """Measure every subject of a QSM derivative dataset.

    For each χ map the subject's FreeSurfer anatomy is registered rigidly to the GRE magnitude
    of the QSM derivatives (mutual information, :mod:`analysis.imaging.registration`) and its
    ``aseg`` resampled onto the χ grid (nearest neighbour), unless a segmentation already
    registered to the χ map is given (``aseg``) or ``register=False``. A subject whose
    registration is implausible (large rotation or shift, no mutual-information peak) fails
    with a message naming the reason and the QC overlay, instead of giving a number.

    Parameters
    ----------
    qsm_dir : str or Path
        QSM derivatives (:func:`find_chimaps`).
    subjects_dir : str or Path
        FreeSurfer ``$SUBJECTS_DIR``: per subject ``stats/`` and ``mri/aseg.mgz`` plus a T1-like
        image (``mri/brain.mgz``, ``brainmask.mgz``, ``norm.mgz`` or ``T1.mgz``).
    lesion_mask : str
        Template of each subject's T2 lesion mask (any grid; binary or probability ≥ 0.5).
    aseg : str, optional
        Template of each subject's segmentation **already registered to its χ map** (aseg
        labels; any grid, resampled with nearest neighbour); no registration is done then.
    register : bool
        Register the anatomy to the GRE (default). ``False`` uses the subject's
        ``mri/aseg.mgz`` as it is: right only when the T1 and the GRE share scanner coordinates.
    qc_dir : str or Path, optional
        Folder for the per-subject QC: registration transform (JSON) and overlay (PNG), a
        mosaic and an HTML page per subject, and ``index.html``.
    freesurfer_subject : str, optional
        Template of the subject's folder name in ``subjects_dir``; default ``sub-<L>``, else
        ``<L>``.
    participant_label, session
        As for :func:`find_chimaps`.
    progress : bool
        Progress bar over subjects.
    **roi_options
        Passed to :func:`analysis.imaging.roi.thalamic_susceptibility` (``exclude_veins``,
        ``vein_threshold_mad``, ``csf_radius_mm``, ``hemisphere``, …).

    Returns
    -------
    rows : pandas.DataFrame
        One row per subject measured: :data:`analysis.cohort.subject.IMAGING_COLUMNS`, then
        :data:`~analysis.cohort.subject.QC_COLUMNS`, :data:`REGISTRATION_COLUMNS` and the files
        used (``chimap``, ``brain_mask``, ``aseg``, ``lesion_mask``, ``freesurfer_dir``).
    failures : list of str
        ``"<subject_id>: <reason>"`` for each subject that could not be measured.
    """
    if lesion_mask is None:
        raise ValueError("lesion_mask template is required (the cohort needs the T2 lesion volume)")
    lesion_per_subject = bool(_check_template(lesion_mask, "lesion mask"))
    for template, what in ((aseg, "aseg"), (freesurfer_subject, "FreeSurfer subject")):
        if template is not None:
            _check_template(template, what)
    subjects_dir = Path(subjects_dir)
    if not subjects_dir.is_dir():
        raise ValueError(f"FreeSurfer subjects folder {subjects_dir} does not exist")
    series_list = find_chimaps(qsm_dir, participant_label, session=session)
    if len(series_list) > 1 and not lesion_per_subject:
        raise ValueError(f"lesion mask template {lesion_mask!r} names one file for all {len(series_list)} subjects; "
                         "put {subject} or {label} in it")
    qc_dir = None if qc_dir is None else Path(qc_dir)
    rows, failures, index = [], [], []
    bar = tqdm(series_list, desc="measuring", unit="subject", disable=not progress)
    for series in bar:
        bar.set_postfix_str(series.subject_id)
        files, reg_qc = {}, {"registration": "none (segmentation used as it is)"}
        try:
            fs_dir = _freesurfer_dir(subjects_dir, freesurfer_subject, series)
            if aseg is not None:
                seg_path = _fill(aseg, series)
                if not seg_path.is_file():
                    raise ValueError(f"registered segmentation {seg_path} does not exist")
                seg, reg_qc = seg_path, {"registration": "given (--aseg: already registered to the χ map)"}
            else:
                seg_path = find_segmentation(fs_dir)
                seg = seg_path
                if register:
                    seg, reg_qc, files = _register(series, fs_dir, seg_path, qc_dir)
            les_path = _fill(lesion_mask, series)
            if not les_path.is_file():
                raise ValueError(f"lesion mask {les_path} does not exist")
            row = measure_subject(series.subject_id, freesurfer_dir=fs_dir, chimap=str(series.chimap),
                                  segmentation=seg, lesion_mask=str(les_path),
                                  brain_mask=str(series.brain_mask) if series.brain_mask is not None else None,
                                  return_rois=qc_dir is not None, **roi_options)
        except (ValueError, FileNotFoundError, OSError) as exc:
            msg = str(exc) if series.subject_id in str(exc) else f"{series.subject_id}: {exc}"
            logger.error("%s", msg)
            failures.append(msg)
            index.append({"subject_id": series.subject_id, "flags": [msg]})
            continue
        rois = row.pop("rois", None)
        row = {**row, **{k: reg_qc.get(k) for k in REGISTRATION_COLUMNS}}
        if qc_dir is not None:
            _qc_page(qc_dir, series, row, rois, files, flags=[])
            index.append({"subject_id": series.subject_id,
                          "relative χ (ppb)": row["thalamic_relative_susceptibility_ppb"],
                          "thalamus voxels": row["n_voxels"], "veins excluded": row["n_vein_voxels_excluded"],
                          "registration NMI": row.get("registration_nmi") or "", "flags": []})
        rows.append({**row, "chimap": str(series.chimap),
                     "brain_mask": str(series.brain_mask) if series.brain_mask else "",
                     "aseg": str(seg_path),
                     "lesion_mask": str(les_path), "freesurfer_dir": str(fs_dir)})
    if qc_dir is not None and index:
        write_index(qc_dir, index, title="Quality control of the measured subjects",
                    columns=["relative χ (ppb)", "thalamus voxels", "veins excluded", "registration NMI"])
    columns = [*IMAGING_COLUMNS, *QC_COLUMNS, *REGISTRATION_COLUMNS, "chimap", "brain_mask", "aseg", "lesion_mask",
               "freesurfer_dir"]
    return pd.DataFrame(rows, columns=columns), failures


def _read_clinical(path):
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"clinical CSV {path} does not exist")
    clin = pd.read_csv(path, dtype={"subject_id": str})
    if "subject_id" not in clin.columns:
        raise ValueError(f"{path}: no subject_id column")
    # ids as in participants.tsv (sub-01) or bare labels (01): both match the imaging rows
    clin["subject_id"] = [s if re.match(r"^sub-", s) else f"sub-{s}" for s in clin["subject_id"].astype(str)]
    return clin


def measure_outputs(output):
    """The files :func:`run_measure` writes for ``output``: the CSV, its measurements file and the QC folder."""
    output = Path(output)
    return output, output.with_name(output.stem + "_measurements.csv"), output.with_name(output.stem + "_qc")


def run_measure(qsm_dir, subjects_dir, output, *, lesion_mask, clinical=None, allow_missing=False, overwrite=False,
                qc=True, **kwargs):
    """Measure a dataset and write the cohort (or imaging) CSV, its measurements file and the QC report.

    Parameters
    ----------
    qsm_dir, subjects_dir, lesion_mask, **kwargs
        As for :func:`measure_dataset` (``aseg``, ``register``, ``freesurfer_subject``, …).
    output : str or Path
        CSV to write: the cohort format (with ``clinical``) or the imaging columns (without).
        ``<stem>_measurements.csv`` beside it gets the quality-control columns and
        ``<stem>_qc/`` the per-subject QC report (``index.html``).
    clinical : str or Path, optional
        Clinical CSV with ``subject_id`` and :data:`analysis.cohort.subject.CLINICAL_COLUMNS`; ids may be
        ``sub-01`` or ``01``.
    allow_missing : bool
        Write the subjects that could be measured even if others failed (the failures are
        logged and listed in the return value); default: fail.
    overwrite : bool
        Replace outputs of an earlier run. Default: refuse when the CSV or its measurements file
        exists (they may be someone else's files).
    qc : bool
        Write the QC report (registration overlays, mosaics, HTML pages).

    Returns
    -------
    dict
        ``output``, ``measurements`` (paths), ``qc`` (folder or None), ``n`` (rows written),
        ``failures``.

    Raises
    ------
    ValueError
        Bad input (named); an output that is an input file, or exists (without ``overwrite``);
        failed subjects (unless ``allow_missing``); a merged cohort that fails validation
        (naming column and row).
    """
    output, measurements, qc_dir = measure_outputs(output)
    if output.suffix.lower() != ".csv":
        raise ValueError(f"output must be a .csv file, got {output}")
    for out in (output, measurements):
        ensure_not_input(out, clinical)
        if out.exists() and not overwrite:
            raise ValueError(f"{out} already exists; refusing to write over it (choose another output, or pass "
                             "--overwrite to replace the outputs of an earlier run)")
    clin = _read_clinical(clinical) if clinical is not None else None
    rows, failures = measure_dataset(qsm_dir, subjects_dir, lesion_mask=lesion_mask,
                                     qc_dir=qc_dir if qc else None, **kwargs)
    if failures and not allow_missing:
        raise ValueError(f"{len(failures)} subject(s) could not be measured: " + "; ".join(failures))
    if rows.empty:
        raise ValueError("no subject could be measured: " + "; ".join(failures))
    inputs = [p for p in rows[["chimap", "lesion_mask", "aseg", "brain_mask"]].to_numpy().ravel() if p]
    for out in (output, measurements):
        ensure_not_input(out, *inputs)
    if clin is not None:
        table = merge_clinical(rows[list(IMAGING_COLUMNS)], clin)
        table = validate_cohort(table[list(COHORT_COLUMNS)], source=str(output))
    else:
        table = rows[list(IMAGING_COLUMNS)]
    # both files as one set: written to temporary files, then renamed together
    with atomic_path(measurements) as tmp_m, atomic_path(output) as tmp_o:
        rows.to_csv(tmp_m, index=False)
        table.to_csv(tmp_o, index=False)
    return {"output": output, "measurements": measurements, "qc": qc_dir if qc else None, "n": len(table),
            "failures": failures}
