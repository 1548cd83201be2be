"""Shared pieces of the registration subpackage: the result type, constants, image loading and grid
helpers (private to the subpackage)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

#: T1-like images of a FreeSurfer subject, in the order :func:`choose_anatomy` tries them.
ANATOMY_CANDIDATES = ("mri/brain.mgz", "mri/brainmask.mgz", "mri/norm.mgz", "mri/T1.mgz")

#: L-BFGS-B options of each level (dipy adds ``maxfun`` = ``level_iters``). A projected-gradient
#: tolerance of 1e-3 (dipy's default 1e-4) halves the evaluations of the finest, costliest level
#: without changing the result on the phantom (0.02 mm). Note that L-BFGS-B checks ``maxfun`` only
#: between iterations, so a level may use up to about twice ``level_iters`` evaluations.
OPTIMIZER_OPTIONS = {"gtol": 1e-3}

#: ``format`` entry of the JSON transform files written by :func:`save_transform`.
TRANSFORM_FORMAT = "thalamic-qsm rigid transform v1"

ITK_HEADER = "#Insight Transform File V1.0"
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS (its own inverse)

#: aseg ids drawn by :func:`registration_overlay_png`: thalami and lateral ventricles.
OVERLAY_LABELS = {"thalamus": ((10, 49), "#ff3b30"), "lateral ventricles": ((4, 43), "#00c7ff")}



# ---------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RigidRegistration:
    """The result of :func:`register_anatomy_to_gre`.

    Attributes
    ----------
    fixed_to_moving : ndarray, shape (4, 4)
        Maps a fixed-image (GRE) world point (RAS+ mm, homogeneous) to the moving-image (anatomy)
        world point that images the same tissue. Pass the result (or this matrix) to
        :func:`resample_labels` / :func:`resample_image` to bring anatomy onto the GRE grid.
    rotation_deg : float
        Rotation angle of the transform (axis–angle magnitude, degrees).
    translation_mm : tuple of 3 float
        Translation column of ``fixed_to_moving`` (mm): the displacement of the world origin
        (the scanner isocentre for scanner coordinates).
    centre_shift_mm : float
        Displacement (mm) of the centre of the fixed mask, ``|T(c) - c|``: the head motion
        between the two series, independent of where the world origin is.
    metric : float
        Final value of the optimised cost at the finest level: minus the mutual information
        (nats) of dipy's ``MutualInformationMetric``; lower is better.
    nmi : float
        Normalised mutual information ``(H(F) + H(M)) / H(F, M)`` of the fixed image and the
        moving image resampled with the transform, over the fixed mask (32 bins), on the working
        grids of the optimisation (about 2 mm voxels, see ``working_voxel_mm``): 1 for unrelated
        images, 2 for identical ones.
    nmi_drop : float
        ``nmi`` minus the mean NMI after shifting the result by ``±shift_check_mm`` along each
        world axis: how sharp the optimum is (about 0 for an unrelated image).
    flags : tuple of str
        Why the result is implausible (empty when it is not): rotation, shift, NMI or NMI peak
        beyond the thresholds of :func:`register_anatomy_to_gre`.
    initialisation : str
        ``"header"`` or ``"centre-of-mass"`` (``"auto"`` picks the better one) or ``"given"``.
    elapsed_s : float
        Wall-clock time of the registration (s).
    fixed, moving : str
        File names (or a description) of the images.
    parameters : dict
        Options used (levels, iterations, bins, thresholds), for provenance.
    """

    fixed_to_moving: np.ndarray
    rotation_deg: float
    translation_mm: tuple
    centre_shift_mm: float
    metric: float
    nmi: float
    nmi_drop: float
    flags: tuple = ()
    initialisation: str = ""
    elapsed_s: float = float("nan")
    fixed: str = ""
    moving: str = ""
    parameters: dict = field(default_factory=dict)

    @property
    def moving_to_fixed(self):
        """Inverse transform: anatomy world point → GRE world point (4 × 4)."""
        return np.linalg.inv(self.fixed_to_moving)

    @property
    def plausible(self):
        """True when no check failed (``flags`` is empty)."""
        return not self.flags

    def summary(self):
        """One line: rotation, translation, NMI and the flags."""
        t = ", ".join(f"{v:+.1f}" for v in self.translation_mm)
        s = (f"rigid {self.moving} -> {self.fixed}: rotation {self.rotation_deg:.2f} deg, "
             f"translation ({t}) mm, centre shift {self.centre_shift_mm:.1f} mm, NMI {self.nmi:.3f} "
             f"(peak {self.nmi_drop:+.3f}), {self.elapsed_s:.1f} s")
        return s + ("; IMPLAUSIBLE: " + "; ".join(self.flags) if self.flags else "; plausible")

    def as_dict(self):
        """JSON-serialisable summary (what :func:`save_transform` stores with the matrix)."""
        return {
            "fixed_to_moving": np.asarray(self.fixed_to_moving, float).tolist(),
            "moving_to_fixed": np.asarray(self.moving_to_fixed, float).tolist(),
            "rotation_deg": float(self.rotation_deg),
            "translation_mm": [float(v) for v in self.translation_mm],
            "centre_shift_mm": float(self.centre_shift_mm),
            "metric": float(self.metric),
            "nmi": float(self.nmi),
            "nmi_drop": float(self.nmi_drop),
            "plausible": bool(self.plausible),
            "flags": list(self.flags),
            "initialisation": self.initialisation,
            "elapsed_s": float(self.elapsed_s),
            "fixed": self.fixed,
            "moving": self.moving,
            "parameters": dict(self.parameters),
        }


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def describe_image(img, what):
    name = img.get_filename() if hasattr(img, "get_filename") else None
    return str(name) if name else f"<in-memory {what}>"


def load_image(img, what):
    """``(nibabel image, name)`` of a path or an image; errors name the file."""
    if isinstance(img, (str, Path)):
        path = Path(img)
        if not path.is_file():
            raise FileNotFoundError(f"{what} {path}: no such file")
        try:
            loaded = nib.load(str(path))
        except Exception as exc:  # nibabel raises several types for unreadable files
            raise ValueError(f"{what} {path}: cannot read the image ({exc})") from None
        return loaded, str(path)
    if isinstance(img, nib.spatialimages.SpatialImage):
        return img, describe_image(img, what)
    raise TypeError(f"{what}: expected a file name or a nibabel image, got {type(img).__name__}")


def load_volume(img, name, what, *, combine_echoes=False):
    """Float32 3-D data (NaN → 0) and affine of an image; a 4-D image is echo-combined (RSS)."""
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:
        raise ValueError(f"{what} {name}: cannot read the image data ({exc})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 4 and combine_echoes:
        data = np.sqrt(np.einsum("...e,...e->...", data, data))
    if data.ndim != 3:
        raise ValueError(f"{what} {name}: expected a 3-D image, got shape {data.shape}")
    affine = np.asarray(img.affine, dtype=float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise ValueError(f"{what} {name}: the image has no valid voxel-to-world affine")
    data = np.where(np.isfinite(data), data, np.float32(0))
    return data, affine


def load_mask(mask, shape, affine, name, what):
    """Boolean mask on the grid ``(shape, affine)`` of the image ``name``, or None."""
    if mask is None:
        return None
    if isinstance(mask, (str, Path, nib.spatialimages.SpatialImage)):
        mimg, mname = load_image(mask, what)
        m = np.asarray(mimg.dataobj)
        if m.ndim == 4 and m.shape[3] == 1:
            m = m[..., 0]
        if m.shape != tuple(shape) or not np.allclose(mimg.affine, affine, atol=1e-3):
            raise ValueError(f"{what} {mname}: not on the grid of {name} "
                             f"(shape {m.shape} vs {tuple(shape)} or a different affine)")
    else:
        mname = f"<{what} array>"
        m = np.asarray(mask)
        if m.shape != tuple(shape):
            raise ValueError(f"{what}: shape {m.shape} does not match {name} {tuple(shape)}")
    m = np.asarray(m, dtype=float)
    m = np.isfinite(m) & (m > 0)
    if not m.any():
        raise ValueError(f"{what} {mname}: the mask is empty")
    return m


# ---------------------------------------------------------------------------------------------
# Geometry helpers
# ---------------------------------------------------------------------------------------------


def translation_part(t):
    m = np.eye(4)
    m[:3, 3] = t
    return m


def rotation_angle_deg(matrix):
    r = np.asarray(matrix, float)[:3, :3]
    c = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(c)))


def voxel_sizes(affine):
    return np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(0))


def crop_to(data, affine, keep, margin_vox):
    """Crop ``data`` to the bounding box of ``keep`` (+ margin): (data, affine, slices)."""
    idx = np.argwhere(keep)
    lo = np.maximum(idx.min(0) - margin_vox, 0)
    hi = np.minimum(idx.max(0) + margin_vox + 1, data.shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    return data[sl], affine @ translation_part(lo), sl


def downsample_to(data, affine, target_mm):
    """Smooth and resample ``data`` to voxels of about ``target_mm`` (along its own axes)."""
    vs = voxel_sizes(affine)
    f = np.maximum(np.asarray(target_mm, float) / vs, 1.0)
    if np.all(f < 1.3):
        return data, affine
    sigma = np.where(f >= 1.3, 0.42 * f, 0.0)  # ~FWHM of the new voxel
    smooth = ndimage.gaussian_filter(data, sigma, mode="nearest")
    offset = (f - 1.0) / 2.0  # keep the centre of the FOV
    shape = tuple(int(max(1, np.floor((n - 1 - o) / s) + 1)) for n, o, s in zip(data.shape, offset, f))
    out = ndimage.affine_transform(smooth, f, offset=offset, output_shape=shape, order=1,
                                   mode="nearest", prefilter=False)
    new = np.eye(4)
    new[:3, :3] = np.diag(f)
    new[:3, 3] = offset
    return out.astype(np.float32), affine @ new


def pull(data, src_affine, ref_shape, ref_affine, fixed_to_moving, *, order, cval=0.0, output=None):
    """Values of ``data`` (on ``src_affine``) at the voxels of the reference grid mapped by the transform."""
    m = np.linalg.inv(src_affine) @ fixed_to_moving @ ref_affine
    return ndimage.affine_transform(data, m[:3, :3], offset=m[:3, 3], output_shape=tuple(ref_shape),
                                    order=order, mode="constant", cval=cval, prefilter=False,
                                    output=output)
