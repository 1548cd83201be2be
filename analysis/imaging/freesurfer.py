"""Import of FreeSurfer outputs: the ``aseg`` segmentation and the ``stats/`` text files.

The paper obtained thalamic volume, total grey-matter volume and mean cortical thickness from
FreeSurfer 5.1. This module reads the same quantities from a FreeSurfer subject directory::

    <subject_dir>/mri/aseg.mgz            (or aparc+aseg.mgz, or a NIfTI copy)
    <subject_dir>/stats/aseg.stats        per-structure volumes, TotalGrayVol in the header
    <subject_dir>/stats/lh.aparc.stats    MeanThickness, NumVert (left hemisphere)
    <subject_dir>/stats/rh.aparc.stats    (right hemisphere)

Stats file format
-----------------
A ``.stats`` file is a commented header followed by a whitespace-separated table:

* ``# key value`` provenance lines (``generating_program``, ``cvs_version``, ``CreationTime``, ...);
* ``# Measure <Category>, <Name>, <Description>, <value>, <unit>`` global measures
  (e.g. ``# Measure TotalGray, TotalGrayVol, Total gray matter volume, 612345.6, mm^3``);
* ``# ColHeaders`` naming the table columns, then one row per structure.

The table is parsed through its ``# ColHeaders`` line, never by fixed line or column numbers
(``mri_segstats`` adds or drops columns depending on its options). ``# Measure`` lines are
split on commas from the *right*: the last two fields are always the value and the unit, the
first the category. FreeSurfer 6.0 writes ``# Measure Cortex, CortexVol Total cortical gray
matter volume, 390925.9, mm^3`` (comma missing after the name) in every ``?h.aparc.stats``
(freesurfer/freesurfer issue #675, fixed for 7); the name is then the first word of the merged
field.

Versions
--------
* FreeSurfer <= 6 names the thalamus ``Left-/Right-Thalamus-Proper`` (labels 10 and 49) and
  labels 9/48 ``Left-/Right-Thalamus``; FreeSurfer 7 renamed 10/49 to ``Left-/Right-Thalamus``
  and 9/48 to ``Left-/Right-Thalamus-unused``. Thalami are therefore looked up by **label id**
  (``SegId`` 10 and 49), and the name is only checked to be one of the two spellings.
* The version is read from the header (:func:`detect_version`), in decreasing order of certainty:
  a plain release in ``# cvs_version 7.1.1`` (FreeSurfer 7 writes the release there); a build
  stamp ``freesurfer-<platform>-7.1.1-<date>-<hash>`` (6.0: ``...-stable-pub-v6.0.0-<hash>``, the
  form of ``$FREESURFER_HOME/build-stamp.txt``) on a ``# FreeSurfer`` or other non-path header
  line (accepted for files annotated with it; it is not verified that a release writes it into
  stats files); the dates of CVS ``$Id: file.c,v REV YYYY/MM/DD ... $`` lines (FreeSurfer 5.x and
  6.0). A ``$Id`` date is the date the *source file* last changed, so it only bounds the release
  from below: it is mapped to the first release after that date and reported as ``"5.x"`` or
  ``"6.0"`` with the reasoning in ``detail``. ``# CreationTime`` (processing date,
  ``?h.aparc.stats`` only) bounds the release from above. Without any of these the thalamus
  spelling gives ``"<=6"`` or ``">=7"``. Uncertainty: the 5.1 header lines of the test fixtures
  are written from knowledge of that format, not copied from a 5.1 run (their CVS revision numbers
  are illustrative); the 6.0 and 7.x fixtures follow the layout of files produced by 6.0 and 7.0
  (``cvs_version 7.0.0``); release dates used for ``$Id`` dates are approximate, hence ``"5.x"``
  rather than a minor release.
"""

from __future__ import annotations

import datetime as _dt
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from analysis.imaging.labels import LEFT_THALAMUS, RIGHT_THALAMUS, THALAMUS_NAMES

__all__ = [
    "MissingMeasureError", "Measure", "FreeSurferVersion", "StatsFile",
    "detect_version", "read_stats_file", "read_aseg_stats",
    "read_aparc_stats", "thalamic_volumes", "SEGMENTATION_CANDIDATES", "find_segmentation",
    "load_aseg",
    "read_subject_stats",
]

# ---------------------------------------------------------------------------------------------
# Data classes
# ---------------------------------------------------------------------------------------------

class MissingMeasureError(ValueError):
    """A measure or structure required by the compendium is absent from a stats file."""


@dataclass(frozen=True)
class Measure:
    """One ``# Measure`` header line.

    Attributes
    ----------
    category : str
        First field (``TotalGray``, ``Cortex``, ...).
    name : str
        Short name (``TotalGrayVol``, ``MeanThickness``, ...); the key used by this module.
    description : str
        Human-readable description.
    value : float
        The value, in ``unit``.
    unit : str
        ``mm^3``, ``mm^2``, ``mm`` or ``unitless``.
    """

    category: str
    name: str
    description: str
    value: float
    unit: str


@dataclass(frozen=True)
class FreeSurferVersion:
    """FreeSurfer version inferred from a stats header.

    Attributes
    ----------
    version : str
        ``"7.1.1"`` when written in the file, else ``"6.0"``, ``"5.x"``, ``"<=6"``, ``">=7"``
        or ``"unknown"``.
    major : int or None
        Major release (5, 6, 7, ...), or None when unknown; ``"<=6"`` maps to 6.
    exact : bool
        True when the release is written in the file, False when inferred.
    detail : str
        Which header line the inference rests on.
    """

    version: str
    major: int | None
    exact: bool
    detail: str

    @property
    def thalamus_suffix(self):
        """``"-Thalamus-Proper"`` (<= 6) or ``"-Thalamus"`` (>= 7); None if unknown."""
        if self.major is None:
            return None
        return "-Thalamus-Proper" if self.major <= 6 else "-Thalamus"

    def __str__(self):
        return self.version


@dataclass
class StatsFile:
    """A parsed FreeSurfer ``.stats`` file.

    Attributes
    ----------
    path : Path
    header : dict of str -> str
        ``# key value`` lines (first occurrence of each key), e.g. ``generating_program``.
    measures : dict of str -> Measure
        ``# Measure`` lines keyed by short name (``TotalGrayVol``, ``MeanThickness``, ...).
    table : pandas.DataFrame
        The per-structure table, columns from ``# ColHeaders``; numeric columns converted.
    version : FreeSurferVersion
    """

    path: Path
    header: dict = field(default_factory=dict)
    measures: dict = field(default_factory=dict)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    version: FreeSurferVersion | None = None

    def measure(self, name, *, unit=None):
        """Value of measure ``name`` (float); :class:`MissingMeasureError` naming file and measure.

        Parameters
        ----------
        name : str
            Short name, e.g. ``"TotalGrayVol"``.
        unit : str, optional
            Expected unit (``"mm^3"``, ``"mm"``, ...); a different unit raises ``ValueError``.
        """
        try:
            m = self.measures[name]
        except KeyError:
            raise MissingMeasureError(
                f"measure {name!r} not found in {self.path} (measures present: "
                f"{', '.join(self.measures) or 'none'})") from None
        if unit is not None and m.unit != unit:
            raise ValueError(f"measure {name!r} in {self.path} is in {m.unit!r}, expected {unit!r}")
        return m.value


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_ID_RE = re.compile(r"\$Id: (\S+),v (\S+) (\d{4})/(\d{2})/(\d{2})")
_BUILD_RE = re.compile(r"freesurfer-\S*?-v?(\d+\.\d+\.\d+)(?:-|\b)")
# header keys whose values are paths or command lines, not build stamps
_PATH_KEYS = ("cmdline", "SUBJECTS_DIR", "ColorTable", "AnnotationFile")
_PLAIN_RELEASE_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?\S*$")
_CREATION_RE = re.compile(r"(\d{4})/(\d{2})/(\d{2})")
# First public release of each version (approximate release dates); used to turn the date of a
# CVS $Id line (a lower bound) or of CreationTime (an upper bound) into a release.
_RELEASES = (
    ("5.0", _dt.date(2010, 8, 1)),
    ("5.1", _dt.date(2011, 5, 1)),
    ("5.3", _dt.date(2014, 12, 31)),   # released May 2013; patched 5.3 builds appeared until 2014
    ("6.0", _dt.date(2017, 1, 23)),
    ("7.0", _dt.date(2020, 5, 1)),
)


def _parse_measure(text, path, lineno):
    """Parse the part of a ``# Measure`` line after the keyword into a :class:`Measure`."""
    fields = [f.strip() for f in text.split(",")]
    if len(fields) < 3:
        raise ValueError(f"{path}, line {lineno}: cannot parse '# Measure {text}' "
                         "(expected 'Category, Name, Description, value, unit')")
    unit = fields[-1]
    try:
        value = float(fields[-2])
    except ValueError:
        raise ValueError(f"{path}, line {lineno}: measure value {fields[-2]!r} is not a number") from None
    category, middle = fields[0], fields[1:-2]
    if len(middle) >= 2:                       # the normal five-field line
        name, description = middle[0], ", ".join(middle[1:])
    elif len(middle) == 1:                     # FS 6: 'CortexVol Total cortical gray ...'
        name, _, description = middle[0].partition(" ")
    else:
        name, description = category, ""
    if not name:
        raise ValueError(f"{path}, line {lineno}: measure without a name: '# Measure {text}'")
    return Measure(category, name, description.strip(), value, unit)


def read_stats_file(path):
    """Parse a FreeSurfer ``.stats`` file (``aseg.stats``, ``?h.aparc.stats``, ...).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    StatsFile
        Header lines, measures, table and detected version.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (the message names it).
    ValueError
        For a file without ``# ColHeaders``, a row whose number of fields differs from the
        header, a row count that differs from ``# NRows``, or an unparsable ``# Measure``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FreeSurfer stats file not found: {path}")
    stats = StatsFile(path=path)
    columns = None
    rows = []
    nrows_declared = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line:
                continue
            if line.startswith("#"):
                body = line[1:].strip()
                key, _, rest = body.partition(" ")
                rest = rest.strip()
                if key == "Measure":
                    m = _parse_measure(rest, path, lineno)
                    stats.measures.setdefault(m.name, m)
                elif key == "ColHeaders":
                    columns = rest.split()
                elif key == "NRows":
                    try:
                        nrows_declared = int(rest.split()[0])
                    except (ValueError, IndexError):
                        raise ValueError(f"{path}, line {lineno}: bad '# NRows' line") from None
                elif key and key != "TableCol":
                    stats.header.setdefault(key, rest)
                continue
            if columns is None:
                raise ValueError(f"{path}, line {lineno}: table row before the '# ColHeaders' line")
            values = line.split()
            if len(values) != len(columns):
                raise ValueError(f"{path}, line {lineno}: {len(values)} fields, but '# ColHeaders' "
                                 f"names {len(columns)} ({' '.join(columns)})")
            rows.append(values)
    if columns is None:
        raise ValueError(f"{path}: no '# ColHeaders' line; not a FreeSurfer stats table")
    if nrows_declared is not None and nrows_declared != len(rows):
        raise ValueError(f"{path}: '# NRows {nrows_declared}' but {len(rows)} table rows "
                         "(truncated file?)")
    table = pd.DataFrame(rows, columns=columns)
    for col in table.columns:
        if col == "StructName":
            continue
        converted = pd.to_numeric(table[col], errors="coerce")
        if converted.notna().all():
            table[col] = converted
    stats.table = table
    stats.version = detect_version(stats.header, structure_names=table.get("StructName"))
    return stats


def _release_after(date):
    for name, released in _RELEASES:
        if date <= released:
            return name
    return None


def _release_before(date):
    found = None
    for name, released in _RELEASES:
        if released <= date:
            found = name
    return found


def detect_version(header, *, structure_names=None):
    """Infer the FreeSurfer version from the header lines of a stats file.

    Parameters
    ----------
    header : dict of str -> str
        ``StatsFile.header`` (``# key value`` lines).
    structure_names : sequence of str, optional
        ``StructName`` column; the thalamus spelling is the last resort.

    Returns
    -------
    FreeSurferVersion

    Notes
    -----
    Order of evidence: (1) a plain release in ``cvs_version`` (FreeSurfer 7 writes e.g.
    ``7.1.1``); (2) a build stamp ``freesurfer-<platform>-X.Y.Z-...`` in any header value
    (``# FreeSurfer ...`` line); (3) the latest date among CVS ``$Id`` lines, mapped to the
    first release on or after that date: before 2015 -> ``"5.x"`` (5.0-5.3), up to the 6.0
    release (January 2017) -> ``"6.0"``, later -> a 6.x/7 development build, reported as
    ``">=6"`` with major 6 (the ``-Thalamus-Proper`` naming lasted until 7.0);
    (4) ``CreationTime`` before the 7.0 release -> ``"<=6"``; (5) the thalamus spelling.
    """
    cvs = header.get("cvs_version", "").strip()
    m = _PLAIN_RELEASE_RE.match(cvs)
    if m and "$" not in cvs:
        return FreeSurferVersion(cvs, int(m.group(1)), True, f"'# cvs_version {cvs}'")
    for key, value in header.items():
        if key in _PATH_KEYS or key.endswith("File"):
            continue
        b = _BUILD_RE.search(value)
        if b:
            rel = b.group(1)
            return FreeSurferVersion(rel, int(rel.split(".")[0]), True,
                                     f"build stamp '# {key} {value.strip()}'")
    dates = []
    for value in header.values():
        for fname, rev, y, mo, d in _ID_RE.findall(value):
            dates.append((_dt.date(int(y), int(mo), int(d)), f"{fname},v {rev}"))
    if dates:
        date, which = max(dates)
        first = _release_after(date)
        if first is not None and first.startswith("5"):
            return FreeSurferVersion("5.x", 5, False,
                                     f"CVS $Id {which} dated {date}: FreeSurfer {first} or a later 5.x")
        if first == "6.0":
            return FreeSurferVersion("6.0", 6, False, f"CVS $Id {which} dated {date}: FreeSurfer 6.0")
        return FreeSurferVersion(">=6", 6, False,
                                 f"CVS $Id {which} dated {date}: a 6.x/7 development build")
    created = header.get("CreationTime", "")
    c = _CREATION_RE.search(created)
    if c:
        date = _dt.date(*(int(g) for g in c.groups()))
        latest = _release_before(date)
        if latest is not None and int(latest[0]) <= 6:
            return FreeSurferVersion("<=6", 6, False,
                                     f"CreationTime {date} precedes FreeSurfer 7.0")
    if structure_names is not None:
        names = set(map(str, structure_names))
        if names & {"Left-Thalamus-Proper", "Right-Thalamus-Proper"}:
            return FreeSurferVersion("<=6", 6, False, "thalamus named '*-Thalamus-Proper'")
        if names & {"Left-Thalamus", "Right-Thalamus"}:
            return FreeSurferVersion(">=7", 7, False, "thalamus named '*-Thalamus'")
    return FreeSurferVersion("unknown", None, False, "no version information in the header")


def _check_table(stats, required, kind):
    missing = [c for c in required if c not in stats.table.columns]
    if missing:
        raise ValueError(f"{stats.path} is not an {kind} stats table: column(s) {missing} "
                         f"missing from '# ColHeaders' ({' '.join(stats.table.columns)})")


def read_aseg_stats(path):
    """Read ``stats/aseg.stats``: header measures and the per-structure table.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    measures : dict of str -> float
        ``# Measure`` values by short name (``TotalGrayVol`` in mm³, ``eTIV`` or ``ICV`` in mm³,
        ...). Units are in :attr:`StatsFile.measures` (:func:`read_stats_file`).
    structures : pandas.DataFrame
        One row per structure; at least ``SegId``, ``Volume_mm3`` (mm³) and ``StructName``.
        ``structures.attrs`` holds ``path`` and ``freesurfer_version``.
    """
    stats = read_stats_file(path)
    _check_table(stats, ("SegId", "Volume_mm3", "StructName"), "aseg")
    table = stats.table.copy()
    table.attrs.update(path=str(stats.path), freesurfer_version=str(stats.version))
    return {k: m.value for k, m in stats.measures.items()}, table


def read_aparc_stats(path):
    """Read ``stats/?h.aparc.stats``: hemisphere measures and the per-region table.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    measures : dict of str -> float
        ``MeanThickness`` (mm), ``NumVert`` (vertices), ``WhiteSurfArea`` (mm², FS >= 5.3; 5.1
        may write ``SurfArea``) and whatever else the header holds.
    regions : pandas.DataFrame
        One row per cortical region: ``StructName``, ``NumVert``, ``SurfArea`` (mm²),
        ``GrayVol`` (mm³), ``ThickAvg`` (mm), ...; ``regions.attrs`` holds ``path``, ``hemi``
        and ``freesurfer_version``.
    """
    stats = read_stats_file(path)
    _check_table(stats, ("StructName", "NumVert", "ThickAvg"), "aparc")
    table = stats.table.copy()
    table.attrs.update(path=str(stats.path), hemi=stats.header.get("hemi"),
                       freesurfer_version=str(stats.version))
    return {k: m.value for k, m in stats.measures.items()}, table


def thalamic_volumes(structures):
    """Left and right thalamic volumes (mm³) from an aseg.stats table, looked up by label id.

    Parameters
    ----------
    structures : pandas.DataFrame
        Table from :func:`read_aseg_stats` (columns ``SegId``, ``Volume_mm3``, ``StructName``).

    Returns
    -------
    dict
        ``left_thalamic_volume_mm3``, ``right_thalamic_volume_mm3`` (float, mm³) and
        ``left_thalamus_name``, ``right_thalamus_name`` (the spelling found).

    Raises
    ------
    MissingMeasureError
        If label 10 or 49 is absent (message names label, both spellings and the file).
    ValueError
        If the row of label 10/49 carries another structure name (non-aseg lookup table).
    """
    src = structures.attrs.get("path", "the aseg.stats table")
    out = {}
    for side, label in (("left", LEFT_THALAMUS), ("right", RIGHT_THALAMUS)):
        names = THALAMUS_NAMES[label]
        rows = structures[structures["SegId"] == label]
        if rows.empty:
            raise MissingMeasureError(
                f"thalamus label {label} ({' / '.join(names)}) not found in {src}")
        if len(rows) > 1:
            raise ValueError(f"label {label} appears {len(rows)} times in {src}")
        name = str(rows["StructName"].iloc[0])
        if name not in names:
            raise ValueError(f"label {label} in {src} is named {name!r}, expected one of {names}")
        out[f"{side}_thalamic_volume_mm3"] = float(rows["Volume_mm3"].iloc[0])
        out[f"{side}_thalamus_name"] = name
    return out


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

#: Segmentation files looked for in ``<subject_dir>/mri``, in order.
SEGMENTATION_CANDIDATES = ("aseg.mgz", "aparc+aseg.mgz", "aseg.nii.gz", "aseg.nii",
                           "aparc+aseg.nii.gz", "aparc+aseg.nii")


def find_segmentation(subject_dir):
    """Path of the subject's segmentation: the first of :data:`SEGMENTATION_CANDIDATES` in ``mri/``.

    Raises ``FileNotFoundError`` naming the folder and the names tried.
    """
    mri = Path(subject_dir) / "mri"
    for name in SEGMENTATION_CANDIDATES:
        if (mri / name).is_file():
            return mri / name
    raise FileNotFoundError(f"no segmentation in {mri} (looked for {', '.join(SEGMENTATION_CANDIDATES)})")


def load_aseg(path):
    """Load an aseg-style label image (``aseg.mgz``, ``aparc+aseg.mgz`` or NIfTI).

    Parameters
    ----------
    path : str, Path or nibabel image
        A label image file, a FreeSurfer subject directory (then :func:`find_segmentation`),
        or an already loaded image.

    Returns
    -------
    nibabel.Nifti1Image
        3-D ``int32`` labels with the file's voxel-to-world affine (for MGH files the
        scanner-RAS ``vox2ras``, which is what a T1->QSM registration must start from).

    Raises
    ------
    FileNotFoundError
        Missing file or directory (named).
    ValueError
        Not 3-D, or non-integer values (not a label image).
    """
    if isinstance(path, (str, Path)):
        p = Path(path)
        if p.is_dir():
            p = find_segmentation(p)
        if not p.is_file():
            raise FileNotFoundError(f"segmentation file not found: {p}")
        img = nib.load(str(p))
        source = str(p)
    else:
        img, source = path, "the segmentation image"
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{source}: expected a 3-D label image, got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise ValueError(f"{source}: non-integer values; not a label image")
    labels = np.asarray(data, dtype=np.int32)
    out = nib.Nifti1Image(labels, img.affine)
    out.header.set_xyzt_units("mm")
    return out


# ---------------------------------------------------------------------------------------------
# Subject entry point
# ---------------------------------------------------------------------------------------------

def _most_specific(versions):
    """The most informative of several versions (exact first, then the one with a major)."""
    return sorted(versions, key=lambda v: (not v.exact, v.major is None, v.version == ">=6"))[0]


def read_subject_stats(subject_dir, *, aseg_stats="stats/aseg.stats",
                       lh_aparc_stats="stats/lh.aparc.stats", rh_aparc_stats="stats/rh.aparc.stats"):
    """Morphometry of one FreeSurfer subject directory, as used by the paper.

    Parameters
    ----------
    subject_dir : str or Path
        ``$SUBJECTS_DIR/<subject>``.
    aseg_stats, lh_aparc_stats, rh_aparc_stats : str, optional
        Paths of the stats files relative to ``subject_dir``.

    Returns
    -------
    dict
        ``thalamic_volume_mm3`` (left + right, mm³, as in the paper),
        ``left_thalamic_volume_mm3``, ``right_thalamic_volume_mm3``,
        ``total_gray_volume_mm3`` (``TotalGrayVol``, mm³: cortex + subcortical grey + cerebellar
        cortex), ``mean_cortical_thickness_mm`` (see Notes), ``lh_mean_thickness_mm``,
        ``rh_mean_thickness_mm``, ``lh_num_vertices``, ``rh_num_vertices``,
        ``estimated_tiv_mm3`` (``eTIV``, or ``ICV`` in 5.1; None if absent),
        ``freesurfer_version`` (str), ``freesurfer_version_detail``, ``left_thalamus_name``,
        ``right_thalamus_name``, ``subject_dir``.

    Raises
    ------
    FileNotFoundError
        Missing subject directory or stats file (named).
    MissingMeasureError
        ``TotalGrayVol``, ``MeanThickness``, ``NumVert`` or a thalamus row missing (named with
        the file).

    Notes
    -----
    FreeSurfer reports ``MeanThickness`` per hemisphere, as the mean over the vertices of the
    cortex label. The subject's mean cortical thickness is the **vertex-weighted** mean of the
    two hemispheres, ``(lh_mean * lh_nvert + rh_mean * rh_nvert) / (lh_nvert + rh_nvert)``,
    i.e. the mean thickness over all cortical vertices of both hemispheres (the plain average
    of the two hemisphere means differs from it by well under 0.01 mm for typical vertex counts).
    The paper does not say how it combined the hemispheres.
    """
    subject_dir = Path(subject_dir)
    if not subject_dir.is_dir():
        raise FileNotFoundError(f"FreeSurfer subject directory not found: {subject_dir}")
    aseg = read_stats_file(subject_dir / aseg_stats)
    _check_table(aseg, ("SegId", "Volume_mm3", "StructName"), "aseg")
    table = aseg.table.copy()
    table.attrs["path"] = str(aseg.path)
    out = {"subject_dir": str(subject_dir)}
    thal = thalamic_volumes(table)
    out.update(thal)
    out["thalamic_volume_mm3"] = thal["left_thalamic_volume_mm3"] + thal["right_thalamic_volume_mm3"]
    out["total_gray_volume_mm3"] = aseg.measure("TotalGrayVol", unit="mm^3")
    etiv = aseg.measures.get("eTIV") or aseg.measures.get("ICV")
    out["estimated_tiv_mm3"] = etiv.value if etiv is not None else None

    versions = [aseg.version]
    weights = {}
    for hemi, rel in (("lh", lh_aparc_stats), ("rh", rh_aparc_stats)):
        st = read_stats_file(subject_dir / rel)
        _check_table(st, ("StructName", "NumVert", "ThickAvg"), "aparc")
        out[f"{hemi}_mean_thickness_mm"] = st.measure("MeanThickness", unit="mm")
        nvert = st.measure("NumVert")
        if nvert <= 0:
            raise ValueError(f"NumVert = {nvert} in {st.path}; expected a positive vertex count")
        out[f"{hemi}_num_vertices"] = int(nvert)
        weights[hemi] = nvert
        versions.append(st.version)
    out["mean_cortical_thickness_mm"] = (
        (out["lh_mean_thickness_mm"] * weights["lh"] + out["rh_mean_thickness_mm"] * weights["rh"])
        / (weights["lh"] + weights["rh"]))

    majors = {v.major for v in versions if v.major is not None}
    if len(majors) > 1:
        warnings.warn(f"stats files of {subject_dir} come from different FreeSurfer versions "
                      f"({', '.join(str(v) for v in versions)}); reporting the aseg.stats version; "
                      "re-run recon-all?", stacklevel=2)
        best = aseg.version                 # volumes, the paper's main measures, come from aseg
    else:
        best = _most_specific(versions)
    # the thalamus spelling must agree with the version (catches a mis-detected version)
    suffix = best.thalamus_suffix
    if suffix is not None and not thal["left_thalamus_name"].endswith(suffix):
        warnings.warn(f"{aseg.path}: thalamus named {thal['left_thalamus_name']!r} but the header "
                      f"suggests FreeSurfer {best.version} ({best.detail})", stacklevel=2)
    out["freesurfer_version"] = best.version
    out["freesurfer_version_detail"] = best.detail
    return out
