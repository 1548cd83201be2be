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

Registration is not done here: FreeSurfer's ``mri/aseg.mgz`` lies on the T1 grid, and using it
directly (the default when no ``--aseg`` template is given) is right only if the T1 and the GRE
were acquired in one session without motion, so that their scanner coordinates agree. Otherwise
register the T1 to the GRE magnitude (e.g. ANTs, FSL FLIRT, FreeSurfer ``bbregister``), resample
the aseg with nearest neighbour and pass that file.
"""

from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from analysis.cohort.dictionary import validate_cohort
from analysis.cohort.subject import COHORT_COLUMNS, IMAGING_COLUMNS, QC_COLUMNS, measure_subject, merge_clinical
from analysis.imaging.bids import clean_label, parse_entities
from analysis.imaging.freesurfer import find_segmentation
from analysis.io import ensure_not_input, write_csv

logger = logging.getLogger(__name__)

__all__ = ["ChimapSeries", "find_chimaps", "measure_dataset", "run_measure"]

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
    """

    label: str
    subject_id: str
    chimap: Path
    brain_mask: Path | None


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
        out.append(ChimapSeries(label=label, subject_id=f"sub-{label}", chimap=path,
                                brain_mask=masks[0] if masks else None))
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


def measure_dataset(qsm_dir, subjects_dir, *, lesion_mask, aseg=None, freesurfer_subject=None,
                    participant_label=None, session=None, progress=True, **roi_options):
    """Measure every subject of a QSM derivative dataset.

    Parameters
    ----------
    qsm_dir : str or Path
        QSM derivatives (:func:`find_chimaps`).
    subjects_dir : str or Path
        FreeSurfer ``$SUBJECTS_DIR``.
    lesion_mask : str
        Template of each subject's T2 lesion mask (any grid; binary or probability ≥ 0.5).
    aseg : str, optional
        Template of each subject's segmentation **registered to its χ map** (aseg labels; any
        grid, resampled with nearest neighbour). Default: the subject's ``mri/aseg.mgz`` (see
        the module docstring for when that is right).
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
        :data:`QC_COLUMNS` and the files used (``chimap``, ``brain_mask``, ``aseg``,
        ``lesion_mask``, ``freesurfer_dir``).
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
    rows, failures = [], []
    bar = tqdm(series_list, desc="measuring", unit="subject", disable=not progress)
    for series in bar:
        bar.set_postfix_str(series.subject_id)
        try:
            fs_dir = _freesurfer_dir(subjects_dir, freesurfer_subject, series)
            if aseg is None:
                seg_path = find_segmentation(fs_dir)
            else:
                seg_path = _fill(aseg, series)
                if not seg_path.is_file():
                    raise ValueError(f"registered segmentation {seg_path} does not exist")
            les_path = _fill(lesion_mask, series)
            if not les_path.is_file():
                raise ValueError(f"lesion mask {les_path} does not exist")
            row = measure_subject(series.subject_id, freesurfer_dir=fs_dir, chimap=str(series.chimap),
                                  segmentation=seg_path, lesion_mask=str(les_path),
                                  brain_mask=str(series.brain_mask) if series.brain_mask is not None else None,
                                  **roi_options)
        except (ValueError, FileNotFoundError) as exc:
            msg = str(exc) if series.subject_id in str(exc) else f"{series.subject_id}: {exc}"
            logger.error("%s", msg)
            failures.append(msg)
            continue
        rows.append({**row, "chimap": str(series.chimap),
                     "brain_mask": str(series.brain_mask) if series.brain_mask else "",
                     "aseg": str(seg_path),
                     "lesion_mask": str(les_path), "freesurfer_dir": str(fs_dir)})
    columns = [*IMAGING_COLUMNS, *QC_COLUMNS, "chimap", "brain_mask", "aseg", "lesion_mask", "freesurfer_dir"]
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


def run_measure(qsm_dir, subjects_dir, output, *, lesion_mask, clinical=None, allow_missing=False, **kwargs):
    """Measure a dataset and write the cohort (or imaging) CSV and its measurements file.

    Parameters
    ----------
    qsm_dir, subjects_dir, lesion_mask, **kwargs
        As for :func:`measure_dataset`.
    output : str or Path
        CSV to write: the cohort format (with ``clinical``) or the imaging columns (without).
        ``<stem>_measurements.csv`` beside it gets the quality-control columns.
    clinical : str or Path, optional
        Clinical CSV with ``subject_id`` and :data:`analysis.cohort.subject.CLINICAL_COLUMNS`; ids may be
        ``sub-01`` or ``01``.
    allow_missing : bool
        Write the subjects that could be measured even if others failed (the failures are
        logged and listed in the return value); default: fail.

    Returns
    -------
    dict
        ``output``, ``measurements`` (paths), ``n`` (rows written), ``failures``.

    Raises
    ------
    ValueError
        Bad input (named), failed subjects (unless ``allow_missing``), or a merged cohort that
        fails validation (naming column and row).
    """
    output = Path(output)
    if output.suffix.lower() != ".csv":
        raise ValueError(f"output must be a .csv file, got {output}")
    clin = _read_clinical(clinical) if clinical is not None else None
    ensure_not_input(output, clinical)
    rows, failures = measure_dataset(qsm_dir, subjects_dir, lesion_mask=lesion_mask, **kwargs)
    if failures and not allow_missing:
        raise ValueError(f"{len(failures)} subject(s) could not be measured: " + "; ".join(failures))
    if rows.empty:
        raise ValueError("no subject could be measured: " + "; ".join(failures))
    for p in rows[["chimap", "lesion_mask", "aseg"]].to_numpy().ravel():
        ensure_not_input(output, p)
    if clin is not None:
        table = merge_clinical(rows[list(IMAGING_COLUMNS)], clin)
        table = validate_cohort(table[list(COHORT_COLUMNS)], source=str(output))
    else:
        table = rows[list(IMAGING_COLUMNS)]
    measurements = output.with_name(output.stem + "_measurements.csv")
    write_csv(rows, measurements)
    write_csv(table, output)
    return {"output": output, "measurements": measurements, "n": len(table), "failures": failures}
