"""A small synthetic brain of ellipsoids with literature susceptibilities (tests and benchmarks).

Not the compendium's head phantom (that is :mod:`analysis.simulation.phantom`, built from real anatomy):
this is a resolution-independent stand-in, defined in coordinates normalised to the field of
view, so a 48³ grid and a 160×192×168 grid show the same "anatomy". Axes: x left–right,
y posterior–anterior, z inferior–superior (B0 along z).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ellipsoid_brain", "STRUCTURES"]

#: name -> (label, χ in ppm, magnitude (a.u.), list of (centre, semi-axes) in normalised units)
STRUCTURES = {
    "cortex": (1, 0.02, 0.65, None),
    "white_matter": (2, -0.03, 0.80, None),
    "lateral_ventricle": (3, 0.0, 1.00, [((-0.12, 0.05, 0.14), (0.07, 0.30, 0.10)),
                                          ((0.12, 0.05, 0.14), (0.07, 0.30, 0.10))]),
    "thalamus": (4, 0.04, 0.60, [((-0.14, -0.10, 0.0), (0.10, 0.15, 0.10)),
                                  ((0.14, -0.10, 0.0), (0.10, 0.15, 0.10))]),
    "caudate": (5, 0.07, 0.55, [((-0.21, 0.22, 0.12), (0.05, 0.12, 0.07)),
                                 ((0.21, 0.22, 0.12), (0.05, 0.12, 0.07))]),
    "putamen": (6, 0.06, 0.55, [((-0.33, 0.06, 0.0), (0.05, 0.15, 0.10)),
                                 ((0.33, 0.06, 0.0), (0.05, 0.15, 0.10))]),
    "pallidum": (7, 0.15, 0.40, [((-0.26, 0.03, -0.02), (0.035, 0.08, 0.06)),
                                  ((0.26, 0.03, -0.02), (0.035, 0.08, 0.06))]),
    "lesion": (8, 0.02, 0.90, [((0.45, -0.3, 0.3), (0.05, 0.05, 0.05)),
                                ((-0.4, 0.35, 0.25), (0.04, 0.06, 0.04)),
                                ((0.2, 0.5, -0.2), (0.05, 0.04, 0.05))]),
    "vein": (9, 0.35, 0.25, None),
}


def _ellipsoid(grids, centre, axes):
    x, y, z = grids
    return (((x - centre[0]) / axes[0]) ** 2 + ((y - centre[1]) / axes[1]) ** 2
            + ((z - centre[2]) / axes[2]) ** 2) <= 1.0


def ellipsoid_brain(shape=(64, 64, 64)):
    """Synthetic brain: χ (ppm), magnitude, labels and brain mask on a grid of ``shape``.

    Parameters
    ----------
    shape : tuple of 3 int
        Grid shape; the brain fills ~80 % of the field of view along each axis.

    Returns
    -------
    dict
        ``chi`` (float32, ppm), ``magnitude`` (float32, a.u.), ``labels`` (int16, see
        :data:`STRUCTURES`), ``mask`` (bool, the brain), ``names`` (label -> name).
    """
    shape = tuple(int(s) for s in shape)
    grids = np.meshgrid(*[(np.arange(n) + 0.5) / n * 2.0 - 1.0 for n in shape], indexing="ij", sparse=True)
    brain = _ellipsoid(grids, (0.0, 0.0, 0.0), (0.80, 0.85, 0.75))
    wm = _ellipsoid(grids, (0.0, 0.0, 0.0), (0.72, 0.77, 0.67))
    labels = np.zeros(shape, np.int16)
    labels[brain] = STRUCTURES["cortex"][0]
    labels[wm] = STRUCTURES["white_matter"][0]
    for name in ("lateral_ventricle", "lesion", "thalamus", "caudate", "putamen", "pallidum"):
        lab, _, _, parts = STRUCTURES[name]
        for centre, axes in parts:
            labels[_ellipsoid(grids, centre, axes) & brain] = lab
    # internal cerebral veins: two thin tubes along y just above and between the thalami,
    # joining a vein of Galen running up-back (radius ~1.5 % of the field of view)
    x, y, z = grids
    r = 0.018
    for xc in (-0.035, 0.035):
        tube = ((x - xc) ** 2 + (z - 0.12) ** 2 <= r * r) & (y > -0.30) & (y < 0.10)
        labels[tube & brain] = STRUCTURES["vein"][0]
    galen = ((x**2 + (z - 0.12 - 0.6 * (-0.30 - y)) ** 2) <= r * r) & (y <= -0.30) & (y > -0.5)
    labels[galen & brain] = STRUCTURES["vein"][0]
    chi = np.zeros(shape, np.float32)
    mag = np.zeros(shape, np.float32)
    names = {}
    for name, (lab, c, mval, _) in STRUCTURES.items():
        sel = labels == lab
        chi[sel] = c
        mag[sel] = mval
        names[lab] = name
    return {"chi": chi, "magnitude": mag, "labels": labels, "mask": brain, "names": names}
