"""QSM derivatives as a BIDS derivative dataset: ownership check, and one series' files written as a set.

:func:`check_derivative_folder` refuses an output folder that this compendium did not create
(another pipeline's derivatives, a folder of unrelated files); :func:`write_qsm_derivatives`
writes a series' χ map, mask, magnitude and fields to a staging folder and only then replaces the
series' previous files, so a killed run never leaves a new χ map beside an old sidecar. The
folder passes the official BIDS validator (``tests/imaging/test_bids_validator.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from analysis import __version__
from analysis._version import DIST_NAME
from analysis.imaging.bids import (
    BIDS_VERSION,
    anat_dir,
    bids_name,
    parse_entities,
    save_nifti,
    software_versions,
    write_json,
)
from analysis.imaging.qsm.kernels import GAMMA_HZ_PER_T
from analysis.io import ensure_not_input

__all__ = ["QSM_PIPELINE_NAME", "QSM_DERIVATIVE_SUFFIXES", "check_derivative_folder", "clean_staging",
           "write_qsm_derivatives"]


#: ``GeneratedBy[0].Name`` of the QSM derivatives this compendium writes.
QSM_PIPELINE_NAME = "thalamic-qsm-compendium qsm"
# Names that earlier versions wrote: their folders are ours too.
_OUR_PIPELINE_NAMES = {QSM_PIPELINE_NAME, "analysis qsm"}
_STAGING_PREFIX = ".staging-"
#: Suffixes of the files :func:`write_qsm_derivatives` writes for a series (replaced as a set).
QSM_DERIVATIVE_SUFFIXES = ("Chimap", "mask", "T2starw", "fieldmap", "magnitude")


def check_derivative_folder(out_dir, *, bids_dir=None):
    """Refuse an output folder that is not (yet) a QSM derivative dataset of this compendium.

    The folder may be absent, empty, or hold a ``dataset_description.json`` whose
    ``GeneratedBy`` names :data:`QSM_PIPELINE_NAME`; anything else (another pipeline's
    derivatives, a raw dataset, a folder of unrelated files) is refused, so that no file this
    compendium did not create is ever written over.

    Parameters
    ----------
    out_dir : str or Path
        Derivative folder to write.
    bids_dir : str or Path, optional
        The input dataset: ``out_dir`` must not be it, contain it, or lie inside it other than
        under its ``derivatives/``.

    Raises
    ------
    ValueError
        Naming the folder and why.
    """
    out = Path(out_dir)
    if bids_dir is not None:
        b, o = Path(bids_dir).resolve(), out.resolve()
        if o == b:
            raise ValueError(f"OUT_DIR must differ from BIDS_DIR ({bids_dir}); "
                             f"e.g. {Path(bids_dir) / 'derivatives' / 'qsm'}")
        if o in b.parents:
            raise ValueError(f"OUT_DIR {out} contains the input dataset {bids_dir}; choose e.g. "
                             f"{Path(bids_dir) / 'derivatives' / 'qsm'}")
        if b in o.parents and "derivatives" not in o.relative_to(b).parts:
            raise ValueError(f"OUT_DIR {out} lies inside the input dataset {bids_dir} but not under its derivatives/ "
                             f"folder; choose e.g. {Path(bids_dir) / 'derivatives' / 'qsm'}")
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"OUT_DIR {out} exists and is not a folder")
    entries = [e for e in out.iterdir() if not e.name.startswith(_STAGING_PREFIX)]
    if not entries:
        return
    desc = out / "dataset_description.json"
    if not desc.is_file():
        raise ValueError(f"OUT_DIR {out} already holds files but no dataset_description.json, so it is not a QSM "
                         "derivative folder of this compendium; refusing to write into it "
                         "(choose a new or empty folder)")
    try:
        meta = json.loads(desc.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{desc}: invalid JSON ({exc}); refusing to write into {out}") from None
    names = ([g.get("Name") for g in meta.get("GeneratedBy", []) if isinstance(g, dict)]
             if isinstance(meta, dict) else [])
    if not set(names) & _OUR_PIPELINE_NAMES:
        who = ", ".join(str(n) for n in names) if names else f"dataset {meta.get('Name', '?')!r}"
        raise ValueError(f"OUT_DIR {out} belongs to another pipeline or dataset ({who}); refusing to write into it "
                         "(choose a new folder, e.g. derivatives/qsm-compendium)")


def clean_staging(out_dir):
    """Remove staging folders left in ``out_dir`` by an interrupted :func:`write_qsm_derivatives`.

    Only call this on a folder that :func:`check_derivative_folder` accepted (it is ours).
    """
    out = Path(out_dir)
    if not out.is_dir():
        return []
    removed = []
    for d in out.glob(_STAGING_PREFIX + "*"):
        if d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def _versions_string(versions):
    return "; ".join(f"{k} {v}" for k, v in versions.items())


def _series_files(folder, ents):
    """Files in ``folder`` written for the series ``ents`` (same entities apart from ``desc``)."""
    if not folder.is_dir():
        return []
    out = []
    for f in folder.iterdir():
        fe, suffix = parse_entities(f)
        fe.pop("desc", None)
        if suffix in QSM_DERIVATIVE_SUFFIXES and fe == ents:
            out.append(f)
    return out


def write_qsm_derivatives(out_dir, series, chi_ppm, mask, affine, *, method, parameters=None, notes=None,
                          magnitude=None, fields_ppm=None, fieldmap_magnitude=None, b0_tesla=None):
    """Write one series' χ map and its companions as BIDS derivatives, replacing the previous set whole.

    Files (``<e>`` = the series' entities, e.g. ``sub-01_ses-pre``)::

        anat/<e>_Chimap.nii.gz (+ .json)            χ (ppm), 0 outside the mask, SkullStripped
        anat/<e>_desc-brain_mask.nii.gz (+ .json)   mask of the reconstruction
        anat/<e>_T2starw.nii.gz (+ .json)           echo-combined magnitude (registration target), if given
        fmap/<e>_desc-{total,local}_fieldmap.nii.gz (+ .json)  fields (Hz), if given
        fmap/<e>_magnitude.nii.gz (+ .json)         first-echo magnitude that the fieldmaps require

    Every file is first written to a staging folder inside ``out_dir``; only when all are
    written are the series' previous files removed and the new ones moved in, so an
    interrupted run never leaves a new χ map beside an old sidecar, stale files of an earlier
    run (e.g. fields from a run that saved them) disappear, and the staging folder is removed
    even on error. ``dataset_description.json`` is (re)written with ``GeneratedBy``
    (:data:`QSM_PIPELINE_NAME`) and ``DatasetLinks`` to the raw dataset. Check the folder
    first with :func:`check_derivative_folder`.

    Parameters
    ----------
    out_dir : str or Path
        Derivative dataset root.
    series : MegreSeries
        The source series (names the outputs and lists the sources).
    chi_ppm : ndarray, shape (X, Y, Z)
        Susceptibility (ppm).
    mask : ndarray, shape (X, Y, Z)
        Brain mask used by the reconstruction.
    affine : ndarray, shape (4, 4)
    method : str
        Reconstruction method (e.g. ``"MEDI"``, ``"TKD"``).
    parameters : dict, optional
        Parameters of the reconstruction (go to the sidecar).
    notes : list of str, optional
        Notes from loading and reconstruction (phase rescaling, polarity check, …).
    magnitude : ndarray, shape (X, Y, Z), optional
        Echo-combined magnitude (arbitrary units), written as ``_T2starw``.
    fields_ppm : dict of str -> ndarray, optional
        ``{"total": …, "local": …}`` fields in ppm of B0, written in Hz (needs ``b0_tesla``).
    fieldmap_magnitude : ndarray, shape (X, Y, Z), optional
        Magnitude for the fieldmaps (first echo); default ``magnitude``.
    b0_tesla : float, optional
        Field strength (T), to convert the fields to Hz.

    Returns
    -------
    list of Path
        The files written (final paths).
    """
    root = Path(out_dir)
    chi = np.asarray(chi_ppm, dtype=np.float32)
    msk = np.asarray(mask)
    if chi.ndim != 3 or msk.shape != chi.shape:
        raise ValueError(f"chi_ppm and mask must be 3-D arrays of one shape, got {chi.shape} and {msk.shape}")
    fields_ppm = dict(fields_ppm or {})
    for name, arr in [*fields_ppm.items(), ("magnitude", magnitude), ("fieldmap_magnitude", fieldmap_magnitude)]:
        if arr is not None and np.shape(arr) != chi.shape:
            raise ValueError(f"{name} has shape {np.shape(arr)}, expected {chi.shape}")
    if fields_ppm and (b0_tesla is None or not b0_tesla > 0):
        raise ValueError("b0_tesla is needed to write the fields in Hz")
    if fields_ppm and fieldmap_magnitude is None:
        fieldmap_magnitude = magnitude
    if fields_ppm and fieldmap_magnitude is None:
        raise ValueError("fields need a magnitude image (BIDS fieldmaps come with one)")
    ents = dict(series.entities)
    inputs = [Path(p) for p in series.files]
    versions = software_versions()
    sources = [f"bids:raw:{p.relative_to(series.root).as_posix()}" for p in inputs]
    final_anat, final_fmap = anat_dir(root, ents), anat_dir(root, ents).parent / "fmap"
    root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{bids_name(ents, '', '').rstrip('_')}-", dir=root))
    try:
        s_anat, s_fmap = stage / "anat", stage / "fmap"
        common = {"Sources": sources, "SoftwareVersions": _versions_string(versions)}
        staged = []
        chi_side = {"Units": "ppm", "SkullStripped": True,
                    "Description": "magnetic susceptibility (SI, ppm), 0 outside the brain mask; the reference "
                                   "is set by the method (see Parameters)",
                    "Method": method, "Parameters": parameters or {}, **common}
        if notes:
            chi_side["Notes"] = list(notes)
        staged.append(save_nifti(chi, affine, s_anat / bids_name(ents, "Chimap"), dtype=np.float32))
        staged.append(write_json(s_anat / bids_name(ents, "Chimap", ".json"), chi_side))
        mask_ents = dict(ents, desc="brain")
        staged.append(save_nifti(msk.astype(bool), affine, s_anat / bids_name(mask_ents, "mask"), dtype=np.uint8))
        staged.append(write_json(s_anat / bids_name(mask_ents, "mask", ".json"),
                                 {"Type": "Brain", "Description": f"mask used by {method}", **common}))
        if magnitude is not None:
            staged.append(save_nifti(np.asarray(magnitude, np.float32), affine, s_anat / bids_name(ents, "T2starw"),
                                     dtype=np.float32))
            staged.append(write_json(s_anat / bids_name(ents, "T2starw", ".json"),
                                     {"SkullStripped": False, "Description": "root-sum-of-squares magnitude over "
                                      "echoes (T2*-weighted); the registration target of the anatomy", **common}))
        if fields_ppm:
            hz_per_ppm = GAMMA_HZ_PER_T * float(b0_tesla) * 1e-6
            for desc, arr in fields_ppm.items():
                fe = dict(ents, desc=desc)
                staged.append(save_nifti(np.asarray(arr, np.float64) * hz_per_ppm, affine,
                                         s_fmap / bids_name(fe, "fieldmap"), dtype=np.float32))
                staged.append(write_json(s_fmap / bids_name(fe, "fieldmap", ".json"),
                                         {"Units": "Hz", "SkullStripped": True,
                                          "MagneticFieldStrength": float(b0_tesla),
                                          "Description": f"{desc} field (Hz; ppm of B0 × γ̄·B0)", **common}))
            staged.append(save_nifti(np.asarray(fieldmap_magnitude, np.float32), affine,
                                     s_fmap / bids_name(ents, "magnitude"), dtype=np.float32))
            staged.append(write_json(s_fmap / bids_name(ents, "magnitude", ".json"),
                                     {"SkullStripped": False, "Description": "first-echo magnitude", **common}))
        finals = [(final_anat if f.parent == s_anat else final_fmap) / f.name for f in staged]
        for f in finals:
            ensure_not_input(f, *inputs)
        desc = {"Name": "QSM derivatives (thalamic QSM compendium)", "BIDSVersion": BIDS_VERSION,
                "DatasetType": "derivative",
                "GeneratedBy": [{"Name": QSM_PIPELINE_NAME, "Version": versions.get(DIST_NAME, __version__),
                                 "Description": "python -m analysis qsm"}],
                "DatasetLinks": {"raw": os.path.relpath(Path(series.root).resolve(), root.resolve())}}
        written = [write_json(root / "dataset_description.json", desc)]
        for folder in (final_anat, final_fmap):
            for old in _series_files(folder, ents):
                old.unlink()
        for src, dst in zip(staged, finals):
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            written.append(dst)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return written
