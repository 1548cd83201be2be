"""Saving and loading rigid transforms (JSON, or ITK text in LPS for ANTs / ITK-SNAP)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from analysis.imaging.registration._common import (
    ITK_HEADER,
    LPS,
    TRANSFORM_FORMAT,
    RigidRegistration,
    rotation_angle_deg,
)

# ---------------------------------------------------------------------------------------------
# Transform files
# ---------------------------------------------------------------------------------------------


def save_transform(path, transform):
    """Write a ``fixed_to_moving`` transform to a file.

    Two formats, chosen by the suffix:

    ``.json`` (recommended)
        ``{"format": "thalamic-qsm rigid transform v1", "convention": ..., "space": "RAS+ mm",
        "fixed_to_moving": 4 x 4, "moving_to_fixed": 4 x 4, ...}``; with a
        :class:`RigidRegistration` the rest of :meth:`RigidRegistration.as_dict` (rotation,
        translation, NMI, flags, files, options) is stored too.
    ``.txt`` or ``.tfm``
        ITK transform file (``AffineTransform_double_3_3``, in ITK's LPS coordinates, centre
        0), readable by ANTs (``antsApplyTransforms -t``), ITK-SNAP and SimpleITK. In ITK's
        convention the transform maps fixed points to moving points, as here.

    Parameters
    ----------
    path : str or Path
    transform : RigidRegistration or ndarray (4, 4)

    Returns
    -------
    Path
    """
    path = Path(path)
    m = as_matrix(transform)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        doc = {"format": TRANSFORM_FORMAT,
               "convention": "fixed_to_moving maps a point (x, y, z, 1) of the fixed image's world space "
                             "(the GRE / chi grid) to the corresponding point of the moving image's world "
                             "space (the anatomy); use it to resample the anatomy onto the fixed grid. "
                             "moving_to_fixed is its inverse.",
               "space": "RAS+ mm (nibabel affines: scanner RAS for NIfTI and FreeSurfer .mgz)"}
        if isinstance(transform, RigidRegistration):
            doc.update(transform.as_dict())
        else:
            doc.update({"fixed_to_moving": m.tolist(), "moving_to_fixed": np.linalg.inv(m).tolist(),
                        "rotation_deg": rotation_angle_deg(m), "translation_mm": m[:3, 3].tolist()})
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    elif suffix in (".txt", ".tfm"):
        lps = LPS @ m @ LPS
        params = " ".join(repr(float(v)) for v in [*lps[:3, :3].ravel(), *lps[:3, 3]])
        path.write_text(f"{ITK_HEADER}\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
                        f"Parameters: {params}\nFixedParameters: 0 0 0\n", encoding="utf-8")
    else:
        raise ValueError(f"{path}: unknown transform format {path.suffix!r} (use .json, or .txt/.tfm for ITK)")
    return path


def load_transform(path):
    """Read a transform written by :func:`save_transform` (JSON or ITK text).

    ITK files: a single ``AffineTransform`` or ``MatrixOffsetTransformBase`` (double or float,
    3-D) with any centre (``FixedParameters``); composite, Euler/versor-parametrised and
    non-linear transforms are not supported.

    Returns
    -------
    ndarray, shape (4, 4)
        ``fixed_to_moving`` in RAS+ mm.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing or malformed file (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"transform file {path}: no such file")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
            m = np.asarray(doc["fixed_to_moving"], dtype=float)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"transform file {path}: not a {TRANSFORM_FORMAT!r} JSON file ({exc})") from None
    elif text.startswith(ITK_HEADER):
        fields = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                fields.setdefault(k.strip(), v.strip())
        kind = fields.get("Transform", "")
        if not kind.startswith(("AffineTransform_double_3_3", "AffineTransform_float_3_3",
                                "MatrixOffsetTransformBase_double_3_3", "MatrixOffsetTransformBase_float_3_3")):
            raise ValueError(f"transform file {path}: unsupported ITK transform {kind!r} "
                             "(a 3-D AffineTransform is expected)")
        try:
            p = np.array(fields["Parameters"].split(), dtype=float)
            c = np.array(fields.get("FixedParameters", "0 0 0").split(), dtype=float)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"transform file {path}: malformed ITK parameters ({exc})") from None
        if p.size != 12 or c.size != 3:
            raise ValueError(f"transform file {path}: expected 12 parameters and 3 fixed parameters")
        a, t = p[:9].reshape(3, 3), p[9:]
        lps = np.eye(4)
        lps[:3, :3] = a
        lps[:3, 3] = t + c - a @ c  # ITK: T(x) = A (x - c) + c + t
        m = LPS @ lps @ LPS
    else:
        raise ValueError(f"transform file {path}: neither a JSON transform nor an ITK transform file")
    try:
        return as_matrix(m)
    except ValueError as exc:
        raise ValueError(f"transform file {path}: {exc}") from None


def as_matrix(transform, what="transform"):
    """A transform as a 4 × 4 ``fixed_to_moving`` matrix: ``None`` (identity), a
    :class:`RigidRegistration`, a file of :func:`save_transform` or a matrix."""
    if transform is None:
        return np.eye(4)
    if isinstance(transform, RigidRegistration):
        return np.asarray(transform.fixed_to_moving, dtype=float)
    if isinstance(transform, (str, Path)):
        return load_transform(transform)
    m = np.asarray(transform, dtype=float)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)) or not np.allclose(m[3], [0, 0, 0, 1]):
        raise ValueError(f"{what}: expected a 4 x 4 affine matrix with last row (0, 0, 0, 1), got {m.tolist()}")
    return m
