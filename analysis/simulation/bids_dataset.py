"""The simulated acquisition and the phantom's truth as a BIDS dataset (writer and truth reader).

:func:`write_megre_subject` writes a :class:`~analysis.simulation.acquisition.MegreSimulation` as
``sub-<L>/anat/*_echo-<n>_part-{mag,phase}_MEGRE.nii.gz`` with sidecars, the way a scanner
conversion would, so that the real-data reader (:mod:`analysis.imaging.bids`) reads it back;
:func:`write_truth` / :func:`load_truth` keep the ground truth in ``derivatives/truth``.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from analysis import __version__
from analysis.imaging.bids import anat_dir, bids_name, clean_label, dataset_description, save_nifti, write_json
from analysis.imaging.qsm.kernels import GAMMA_HZ_PER_T
from analysis.io import atomic_path
from analysis.simulation.phantom import label_names

__all__ = ["SIMULATOR_NAME", "write_megre_subject", "write_truth", "load_truth", "read_truth_field_ppm"]


#: ``GeneratedBy`` name of the simulated datasets.
SIMULATOR_NAME = "thalamic-qsm-compendium phantom"


def _refuse_existing(folder, what, overwrite):
    """Refuse to write into ``folder`` if it already holds files (unless ``overwrite``)."""
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise ValueError(f"{folder} already exists with files ({what}); refusing to write over it "
                             "(choose another subject label or output folder, or pass overwrite=True / --overwrite)")
        return True
    return False


def write_megre_subject(bids_dir, sim, *, subject="01", session=None, phase_units="rad", phantom=None,
                        write_truth_files=True, overwrite=False):
    """Write a simulated MEGRE acquisition as a BIDS subject (and, optionally, its truth).

    Parameters
    ----------
    bids_dir : str or Path
        Dataset root (created if needed; ``dataset_description.json`` is (re)written).
    sim : analysis.simulation.acquisition.MegreSimulation
        Magnitude and wrapped phase, shape (X, Y, Z, E).
    subject : str
        Participant label (alphanumeric, without ``sub-``).
    session : str, optional
        Session label.
    phase_units : {"rad", "deg", "arbitrary"}
        ``"rad"``: float32 radians in (−π, π]. ``"deg"``: float32 degrees in (−180, 180].
        ``"arbitrary"``: 12-bit integers 0…4095 (``round((φ + π) · 4096 / 2π) mod 4096``) as
        many scanners write them.
    phantom : analysis.simulation.phantom.HeadPhantom, optional
        If given (and ``write_truth_files``), its truth goes to ``derivatives/truth`` (see
        :func:`write_truth`).

    overwrite : bool
        Replace an existing subject (its MEGRE files, and its truth). Default: a subject folder
        that already holds files is refused, so a real dataset is never written over.

    Returns
    -------
    list of Path
        Files written.
    """
    sub = clean_label(subject)
    ents = {"sub": sub}
    if session is not None:
        ents["ses"] = clean_label(session, "session label")
    if phase_units not in ("rad", "deg", "arbitrary"):
        raise ValueError(f"phase_units must be 'rad', 'deg' or 'arbitrary', got {phase_units!r}")
    mag, pha = np.asarray(sim.magnitude), np.asarray(sim.phase)
    if mag.ndim != 4 or mag.shape != pha.shape or mag.shape[-1] != len(sim.echo_times_s):
        raise ValueError(f"magnitude/phase must be (X, Y, Z, E) with E = {len(sim.echo_times_s)} echoes, "
                         f"got {mag.shape} and {pha.shape}")
    root = Path(bids_dir)
    anat = anat_dir(root, ents)
    if _refuse_existing(anat, f"participant sub-{sub}", overwrite):
        for f in anat.glob("*_MEGRE.*"):
            f.unlink()
    if phantom is not None and write_truth_files:
        _refuse_existing(anat_dir(root / "derivatives" / "truth", ents), f"truth of sub-{sub}", overwrite)
    written = [dataset_description(root, name="Simulated MEGRE head phantom (thalamic QSM compendium)",
                                   generated_by=[{"Name": SIMULATOR_NAME, "Version": __version__}])]
    common = {
        "MagneticFieldStrength": float(sim.b0_tesla),
        "RepetitionTime": sim.repetition_time_s,
        "FlipAngle": sim.flip_angle_deg,
        "MRAcquisitionType": "3D",
        "ScanningSequence": "GR",
        "SequenceVariant": "SP",
        "PulseSequenceType": "spoiled multi-echo gradient echo",
        "Manufacturer": "simulated (analysis.simulation.acquisition)",
        "EchoTrainLength": int(len(sim.echo_times_s)),
        "NoiseSigma": float(sim.noise_sigma),
        "SNRFirstEchoBrain": sim.snr,
    }
    common = {k: v for k, v in common.items() if v is not None}
    for n, te in enumerate(sim.echo_times_s):
        for part in ("mag", "phase"):
            e = dict(ents, echo=str(n + 1), part=part)
            nii = anat / bids_name(e, "MEGRE")
            side = dict(common, EchoTime=float(te), EchoNumber=n + 1)
            if part == "mag":
                save_nifti(mag[..., n], sim.affine, nii, dtype=np.float32)
                side["Units"] = "arbitrary"
                side["ImageType"] = ["ORIGINAL", "PRIMARY", "M"]
            elif phase_units in ("rad", "deg"):
                scale = 1.0 if phase_units == "rad" else 180.0 / np.pi
                save_nifti(pha[..., n] * scale, sim.affine, nii, dtype=np.float32)
                side["Units"] = phase_units
                side["ImageType"] = ["ORIGINAL", "PRIMARY", "P"]
            else:
                ints = np.mod(np.round((pha[..., n].astype(np.float64) + np.pi) * 4096.0 / (2 * np.pi)), 4096)
                save_nifti(ints, sim.affine, nii, dtype=np.int16)
                side["Units"] = "arbitrary"
                side["ImageType"] = ["ORIGINAL", "PRIMARY", "P"]
            written.append(nii)
            written.append(write_json(anat / bids_name(e, "MEGRE", ".json"), side))
    if phantom is not None and write_truth_files:
        written += write_truth(root / "derivatives" / "truth", phantom, subject=sub, session=session, sim=sim)
    return written


def write_truth(truth_dir, phantom, *, subject="01", session=None, sim=None):
    """Write the phantom's ground truth as a BIDS derivative dataset (valid for the BIDS validator).

    Files in ``truth_dir/sub-<L>/anat/``: ``_Chimap.nii.gz`` (χ, ppm; its sidecar holds the
    phantom parameters as ``PhantomParameters``: thalamic and lesion volumes, seed, simulation),
    ``_desc-truth_dseg.nii.gz`` (truth labels) with ``_desc-truth_dseg.tsv`` (one row per label:
    name, χ in ppm, R2* in Hz, M0, T1 in s, voxel count and volume in mL), ``_desc-aseg_dseg``
    (FreeSurfer-like aseg), masks ``_desc-{brain,csf,veins,lesions}_mask``, ``_R2starmap`` (Hz),
    ``_M0map``; and if ``sim`` is given, in ``fmap/``, the fields
    ``_desc-{total,local}_fieldmap.nii.gz`` (Hz) with the first-echo ``_magnitude``.
    """
    sub = clean_label(subject)
    ents = {"sub": sub}
    if session is not None:
        ents["ses"] = clean_label(session, "session label")
    root = Path(truth_dir)
    out = [dataset_description(root, name="Ground truth of the simulated head phantom", derivative=True,
                               generated_by=[{"Name": SIMULATOR_NAME, "Version": __version__}])]
    anat = anat_dir(root, ents)
    fmap = anat.parent / "fmap"
    aff = phantom.affine

    def nm(suffix, ext=".nii.gz", folder=anat, **extra):
        return folder / bids_name(dict(ents, **extra), suffix, ext)

    params = dict(phantom.params)
    if sim is not None:
        params["simulation"] = {"echo_times_s": list(map(float, sim.echo_times_s)), "b0_tesla": sim.b0_tesla,
                                "snr": sim.snr, "noise_sigma": sim.noise_sigma, "seed": sim.seed,
                                "repetition_time_s": sim.repetition_time_s, "flip_angle_deg": sim.flip_angle_deg}
    out.append(save_nifti(phantom.chi_ppm, aff, nm("Chimap"), dtype=np.float32))
    out.append(write_json(nm("Chimap", ".json"), {
        "Units": "ppm", "SkullStripped": False, "Description": "ground-truth susceptibility, relative to CSF = 0",
        "AirSusceptibility": phantom.params.get("air_chi_ppm"), "PhantomParameters": params}))
    out.append(save_nifti(phantom.labels, aff, nm("dseg", desc="truth"), dtype=np.int16))
    out.append(save_nifti(phantom.aseg, aff, nm("dseg", desc="aseg"), dtype=np.int16))
    table = pd.DataFrame(sorted(label_names().items()), columns=["index", "name"])
    truth = phantom.truth.rename(columns={"label": "index"}).drop(columns=["structure"], errors="ignore")
    table = table.merge(truth, on="index", how="left")
    table["n_voxels"] = table["n_voxels"].fillna(0).astype(int)
    for desc in ("truth", "aseg"):
        with atomic_path(nm("dseg", ".tsv", desc=desc)) as tmp:
            table.to_csv(tmp, sep="\t", index=False, na_rep="n/a")
        out.append(nm("dseg", ".tsv", desc=desc))
    for desc, arr in (("brain", phantom.brain_mask), ("csf", phantom.csf_mask), ("veins", phantom.vein_mask),
                      ("lesions", phantom.lesion_mask)):
        out.append(save_nifti(arr, aff, nm("mask", desc=desc), dtype=np.uint8))
    out.append(save_nifti(phantom.r2star_hz, aff, nm("R2starmap"), dtype=np.float32))
    out.append(write_json(nm("R2starmap", ".json"), {"Units": "Hz", "SkullStripped": False}))
    out.append(save_nifti(phantom.m0, aff, nm("M0map"), dtype=np.float32))
    out.append(write_json(nm("M0map", ".json"), {"Units": "arbitrary", "SkullStripped": False}))
    if sim is not None:
        hz_per_ppm = GAMMA_HZ_PER_T * float(sim.b0_tesla) * 1e-6
        for desc, arr in (("total", sim.total_field_ppm), ("local", sim.local_field_ppm)):
            out.append(save_nifti(np.asarray(arr, np.float64) * hz_per_ppm, aff, nm("fieldmap", folder=fmap, desc=desc),
                                  dtype=np.float32))
            out.append(write_json(nm("fieldmap", ".json", folder=fmap, desc=desc),
                                  {"Units": "Hz", "MagneticFieldStrength": float(sim.b0_tesla),
                                   "B0Direction": list(sim.b0_direction), "SkullStripped": False,
                                   "Description": f"true {desc} field (Hz = ppm of B0 × γ̄·B0)"}))
        out.append(save_nifti(np.asarray(sim.magnitude)[..., 0], aff, nm("magnitude", folder=fmap), dtype=np.float32))
        out.append(write_json(nm("magnitude", ".json", folder=fmap),
                              {"SkullStripped": False, "Description": "first-echo magnitude"}))
    return out


def read_truth_field_ppm(truth_dir, participant_label, kind="total", *, session=None):
    """A true field written by :func:`write_truth` (``kind`` 'total' or 'local'), in ppm of B0."""
    ents = {"sub": clean_label(participant_label)}
    if session is not None:
        ents["ses"] = clean_label(session, "session label")
    path = anat_dir(truth_dir, ents).parent / "fmap" / bids_name(dict(ents, desc=kind), "fieldmap")
    if not path.exists():
        raise ValueError(f"missing truth file {path}")
    side = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text(encoding="utf-8"))
    hz = np.asarray(nib.load(path).dataobj, dtype=np.float64)
    return (hz / (GAMMA_HZ_PER_T * float(side["MagneticFieldStrength"]) * 1e-6)).astype(np.float32)


def load_truth(truth_dir, participant_label, *, session=None):
    """Read what :func:`write_truth` wrote: a dict of arrays (``chi_ppm``, ``labels``, ``aseg``,
    ``brain_mask``, ``csf_mask``, ``vein_mask``, ``lesion_mask``), ``affine``, ``truth``
    (DataFrame) and ``params`` (dict)."""
    ents = {"sub": clean_label(participant_label)}
    if session is not None:
        ents["ses"] = clean_label(session, "session label")
    anat = anat_dir(truth_dir, ents)

    def p(suffix, ext=".nii.gz", **extra):
        path = anat / bids_name(dict(ents, **extra), suffix, ext)
        if not path.exists():
            raise ValueError(f"missing truth file {path}")
        return path

    chi = nib.load(p("Chimap"))
    out = {"chi_ppm": np.asarray(chi.dataobj, dtype=np.float32), "affine": chi.affine}
    out["labels"] = np.asarray(nib.load(p("dseg", desc="truth")).dataobj).astype(np.int16)
    out["aseg"] = np.asarray(nib.load(p("dseg", desc="aseg")).dataobj).astype(np.int16)
    for key, desc in (("brain_mask", "brain"), ("csf_mask", "csf"), ("vein_mask", "veins"), ("lesion_mask", "lesions")):
        out[key] = np.asarray(nib.load(p("mask", desc=desc)).dataobj) > 0
    table = pd.read_csv(p("dseg", ".tsv", desc="truth"), sep="\t", na_values="n/a")
    table = table[table["n_voxels"] > 0].rename(columns={"index": "label", "name": "structure"})
    out["truth"] = table.reset_index(drop=True)
    out["params"] = json.loads(p("Chimap", ".json").read_text(encoding="utf-8"))["PhantomParameters"]
    return out
