"""Rigid registration of a FreeSurfer subject's anatomy to the GRE (χ) grid.

The thalamic susceptibility is measured by putting FreeSurfer's ``aseg`` labels (T1 space) on the χ
map (GRE space). The two were acquired in different series (often a different session), so the head
moves between them; the header's scanner coordinates alone are not enough. This module estimates the
rigid (6 degrees of freedom: 3 rotations, 3 translations) transform between the two world spaces,
checks it, and resamples labels and images with it.

Typical use (the ``measure`` step)::

    anat = choose_anatomy(subject_dir)                  # mri/brain.mgz, ... (see choose_anatomy)
    reg = register_anatomy_to_gre(anat, gre_magnitude,  # echo-combined magnitude on the χ grid
                                  fixed_mask=qsm_brain_mask)
    if not reg.plausible:
        ...                                             # reg.flags says why; look at the QC figure
    aseg_on_chi = resample_labels(subject_dir / "mri" / "aseg.mgz", gre_magnitude, reg)
    save_transform(out / "anat_to_gre.json", reg)
    registration_overlay_png(out / "registration.png", gre_magnitude,
                             resample_image(anat, gre_magnitude, reg), labels_img=aseg_on_chi)

Conventions
-----------
* **World space** is each image's ``affine`` (nibabel): voxel indices → RAS+ mm. For FreeSurfer
  ``.mgz`` files that is the scanner vox2ras (not the ``tkr`` one), and for the GRE NIfTI the
  scanner coordinates written by the DICOM converter, so the two are already close when both come
  from the same session. Grids, voxel sizes and orientations may differ arbitrarily (1 mm LIA
  conformed T1 vs 1 × 1 × 2 mm or 2 mm oblique GRE): everything is done in world mm.
* A transform is a 4 × 4 matrix ``fixed_to_moving`` that maps a point ``(x, y, z, 1)`` of the
  **fixed** (GRE) world to the corresponding point of the **moving** (anatomy) world. This is the
  direction needed to pull the moving image onto the fixed grid, and the ITK/ANTs convention for a
  transform estimated with that fixed image. :attr:`RigidRegistration.moving_to_fixed` is its
  inverse (anatomy points → GRE points).

Method
------
Mutual information (Mattes-style joint histogram, 32 bins) between the GRE magnitude and the T1-like
image, because the contrasts differ: the GRE magnitude is proton-density/T2*-weighted (CSF bright,
deep grey matter dark from iron), the T1 is T1-weighted (CSF dark, white matter bright). A
correlation or least-squares cost would be wrong here. The optimisation (L-BFGS-B) runs
coarse-to-fine over three levels (shrink factors 4, 2, 1 of the fixed grid; Gaussian smoothing of
3, 1 and 0 voxels). It starts from the better (by normalised mutual information on a coarse grid)
of two guesses: the headers as they are (right when both series come from one session) and the
alignment of the centres of mass of the fixed (inside its mask) and moving images (right when the
world frames are unrelated). The world origin is moved to the centre of the fixed mask during the
optimisation so that rotations and translations are well conditioned, and the result is
expressed back in the original world coordinates.

Speed and determinism: the metric is evaluated densely (every voxel of the fixed mask; no random
sampling, so a given input always gives the same result; dipy also ignores masks under random
sampling). What keeps it fast is the size of the grids: the fixed image is cropped to its mask
(plus ``crop_margin_mm``), a GRE finer than ``working_voxel_mm`` (2 mm) is smoothed and resampled
to about 2 mm voxels for the optimisation, and the anatomy is cropped to its non-zero voxels and
smoothed and resampled onto a grid about as coarse (a 256³ conformed ``brain.mgz`` becomes about
2 mm). The estimated transform is accurate to a small fraction of that voxel size (0.02–0.1 mm on
the phantom). One registration takes about 3–15 s on two shared cores (2 mm GRE; the finest level
dominates).

Why dipy
--------
Two well-kept libraries were considered (checked with pip in this project's environment, Python
3.11, numpy 2.4.6, scipy 1.17.1):

* ``dipy`` 1.12.1 (``dipy.align.imaffine``): a 10.9 MB manylinux wheel, installs with pip alone
  next to the pinned numpy/scipy (it requires ``numpy>=1.22.4``, ``scipy>=1.8``, ``nibabel>=3``,
  plus ``h5py``, ``tqdm``, ``packaging`` and ``trx-python``, which brings ``pydantic``, ``typer``,
  ``rich`` and ``deepdiff``; none of them conflicts); it is on
  conda-forge under the same name. Its ``AffineRegistration`` offers exactly what is needed:
  ``MutualInformationMetric``, ``RigidTransform3D``, a multi-resolution scale space that honours
  each image's grid-to-world affine, fixed- and moving-image masks and centre-of-mass
  initialisation.
* ``antspyx`` 0.6.3 (ANTs): a 22.4 MB wheel whose metadata requires ``numpy<2.4.0`` and
  ``scipy<1.16``, i.e. pip would downgrade the project's pinned numpy 2.4.6 and scipy 1.17.1. It
  is also a much larger dependency (ITK + ANTs binaries, ``requests``, ``webcolors``, ``Pillow``)
  for one rigid registration.

dipy was chosen. Only its registration (``dipy.align``) is used; resampling of labels and images
is done here with :func:`scipy.ndimage.affine_transform` so that the integer dtype of label images
is kept and the convention above is explicit.

Quality checks
--------------
:class:`RigidRegistration` reports the rotation angle (deg), the translation (mm) and the
displacement of the centre of the fixed mask (mm), the final metric, the normalised mutual
information ``NMI = (H(F) + H(M)) / H(F, M)`` (1 = independent, 2 = identical; on the fixed mask)
of the fixed image with the resampled moving image, and how much the NMI drops when the result is
shifted by a few mm (a true alignment is a sharp maximum; an unrelated image gives a flat NMI).
:attr:`RigidRegistration.flags` lists what is implausible: rotation above ``max_rotation_deg``
(default 20°), shift above ``max_shift_mm`` (30 mm), NMI below ``min_nmi`` or no NMI peak. The
thresholds are heuristics (the within-session head motion between two series is a few mm and a
few degrees); a flagged registration should be looked at (:func:`registration_overlay_png`)
rather than used. A left–right flip cannot be detected from the images (the brain is nearly
symmetric); it is an error in the headers that registration cannot fix.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

__all__ = [
    "ANATOMY_CANDIDATES",
    "RigidRegistration",
    "choose_anatomy",
    "load_transform",
    "normalised_mutual_information",
    "register_anatomy_to_gre",
    "registration_overlay_png",
    "resample_image",
    "resample_labels",
    "save_transform",
]

#: T1-like images of a FreeSurfer subject, in the order :func:`choose_anatomy` tries them.
ANATOMY_CANDIDATES = ("mri/brain.mgz", "mri/brainmask.mgz", "mri/norm.mgz", "mri/T1.mgz")

#: L-BFGS-B options of each level (dipy adds ``maxfun`` = ``level_iters``). A projected-gradient
#: tolerance of 1e-3 (dipy's default 1e-4) halves the evaluations of the finest, costliest level
#: without changing the result on the phantom (0.02 mm). Note that L-BFGS-B checks ``maxfun`` only
#: between iterations, so a level may use up to about twice ``level_iters`` evaluations.
_OPTIMIZER_OPTIONS = {"gtol": 1e-3}

#: ``format`` entry of the JSON transform files written by :func:`save_transform`.
TRANSFORM_FORMAT = "thalamic-qsm rigid transform v1"

_ITK_HEADER = "#Insight Transform File V1.0"
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS (its own inverse)

#: aseg ids drawn by :func:`registration_overlay_png`: thalami and lateral ventricles.
_OVERLAY_LABELS = {"thalamus": ((10, 49), "#ff3b30"), "lateral ventricles": ((4, 43), "#00c7ff")}


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


def _describe(img, what):
    name = img.get_filename() if hasattr(img, "get_filename") else None
    return str(name) if name else f"<in-memory {what}>"


def _load(img, what):
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
        return img, _describe(img, what)
    raise TypeError(f"{what}: expected a file name or a nibabel image, got {type(img).__name__}")


def _volume(img, name, what, *, combine_echoes=False):
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


def _mask(mask, shape, affine, name, what):
    """Boolean mask on the grid ``(shape, affine)`` of the image ``name``, or None."""
    if mask is None:
        return None
    if isinstance(mask, (str, Path, nib.spatialimages.SpatialImage)):
        mimg, mname = _load(mask, what)
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


def _as_matrix(transform, what="transform"):
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


# ---------------------------------------------------------------------------------------------
# Geometry helpers
# ---------------------------------------------------------------------------------------------


def _translation(t):
    m = np.eye(4)
    m[:3, 3] = t
    return m


def _rotation_angle_deg(matrix):
    r = np.asarray(matrix, float)[:3, :3]
    c = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(c)))


def _voxel_sizes(affine):
    return np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(0))


def _crop(data, affine, keep, margin_vox):
    """Crop ``data`` to the bounding box of ``keep`` (+ margin): (data, affine, slices)."""
    idx = np.argwhere(keep)
    lo = np.maximum(idx.min(0) - margin_vox, 0)
    hi = np.minimum(idx.max(0) + margin_vox + 1, data.shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    return data[sl], affine @ _translation(lo), sl


def _downsample(data, affine, target_mm):
    """Smooth and resample ``data`` to voxels of about ``target_mm`` (along its own axes)."""
    vs = _voxel_sizes(affine)
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


def _pull(data, src_affine, ref_shape, ref_affine, fixed_to_moving, *, order, cval=0.0, output=None):
    """Values of ``data`` (on ``src_affine``) at the voxels of the reference grid mapped by the transform."""
    m = np.linalg.inv(src_affine) @ fixed_to_moving @ ref_affine
    return ndimage.affine_transform(data, m[:3, :3], offset=m[:3, 3], output_shape=tuple(ref_shape),
                                    order=order, mode="constant", cval=cval, prefilter=False,
                                    output=output)


# ---------------------------------------------------------------------------------------------
# Similarity
# ---------------------------------------------------------------------------------------------


def _robust_bins(values, nbins):
    lo, hi = np.percentile(values, [0.5, 99.5])
    if not hi > lo:
        hi = lo + 1.0
    b = np.floor((np.clip(values, lo, hi) - lo) / (hi - lo) * nbins).astype(np.int64)
    return np.minimum(b, nbins - 1)


def normalised_mutual_information(a, b, *, mask=None, nbins=32):
    """Normalised mutual information ``(H(A) + H(B)) / H(A, B)`` of two images on one grid.

    Parameters
    ----------
    a, b : ndarray
        Images of the same shape (any contrast; intensities are binned between their 0.5th and
        99.5th percentiles inside ``mask``).
    mask : ndarray of bool, optional
        Voxels to use (default all).
    nbins : int
        Histogram bins per image.

    Returns
    -------
    float
        1 for statistically independent images, 2 for images that determine each other; NaN when
        fewer than 10 voxels are in the mask.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {a.shape} and {b.shape}")
    sel = np.ones(a.shape, bool) if mask is None else np.asarray(mask, bool)
    sel = sel & np.isfinite(a) & np.isfinite(b)
    if sel.sum() < 10:
        return float("nan")
    ia = _robust_bins(a[sel], nbins)
    ib = _robust_bins(b[sel], nbins)
    joint = np.bincount(ia * nbins + ib, minlength=nbins * nbins).astype(float)
    p = joint / joint.sum()

    def entropy(q):
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    hab = entropy(p)
    if hab <= 0:
        return float("nan")
    return (entropy(p.reshape(nbins, nbins).sum(1)) + entropy(p.reshape(nbins, nbins).sum(0))) / hab


# ---------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------


def register_anatomy_to_gre(moving_img, fixed_img, *, fixed_mask=None, moving_mask=None, initial="auto",
                            level_iters=(100, 50, 25), factors=(4, 2, 1), sigmas=(3.0, 1.0, 0.0),
                            nbins=32, working_voxel_mm=2.0, crop_margin_mm=8.0, max_rotation_deg=20.0,
                            max_shift_mm=30.0, min_nmi=1.02, min_nmi_drop=0.005, shift_check_mm=4.0):
    """Rigid (6-DOF) registration of a T1-like anatomy to the GRE magnitude by mutual information.

    Parameters
    ----------
    moving_img : str, Path or nibabel image
        The anatomy (e.g. FreeSurfer ``mri/brain.mgz``, see :func:`choose_anatomy`), any grid and
        orientation; world coordinates from its affine (mm).
    fixed_img : str, Path or nibabel image
        The GRE magnitude on the χ grid (echo-combined, e.g. root-sum-of-squares of the echoes). A
        4-D multi-echo magnitude is combined by root-sum-of-squares over its last axis.
    fixed_mask : str, Path, nibabel image or ndarray, optional
        Brain mask on the fixed grid (e.g. the QSM brain mask). Strongly recommended: the cost is
        then computed in the brain only, where the two contrasts are related, and the fixed image
        is cropped to the mask (faster). Default: the whole fixed image.
    moving_mask : str, Path, nibabel image or ndarray, optional
        Mask on the moving grid (e.g. FreeSurfer ``brainmask.mgz > 0``); only needed when the
        anatomy is not skull-stripped and the fixed mask is not given. Default: the whole image.
    initial : {"auto", "header", "centre-of-mass"} or ndarray (4, 4)
        Starting transform (``fixed_to_moving``): the headers as they are, the translation that
        aligns the centres of mass (fixed image inside its mask, moving image inside its mask),
        the better of both by normalised mutual information on a coarse grid (``"auto"``,
        default), or a given matrix.
    level_iters : sequence of int
        Maximum L-BFGS-B function evaluations per level, coarse to fine.
    factors : sequence of int
        Shrink factors of the fixed grid per level, coarse to fine (last 1).
    sigmas : sequence of float
        Gaussian smoothing per level (voxels), coarse to fine.
    nbins : int
        Joint-histogram bins of the mutual information (and of the NMI check).
    working_voxel_mm : float or None
        Voxel size (mm) of the finest level: a GRE with finer voxels is smoothed and resampled
        to about this size (per axis, along its own axes) for the optimisation and the checks,
        and so is an anatomy finer than the resulting grid. Rigid alignment to a small fraction
        of a voxel does not need finer voxels, and the cost grows with their number. ``None``:
        the GRE's own grid.
    crop_margin_mm : float
        Margin (mm) kept around the fixed mask and around the moving image's non-zero voxels.
    max_rotation_deg, max_shift_mm : float
        A rotation angle above ``max_rotation_deg`` (degrees) or a displacement of the fixed-mask
        centre above ``max_shift_mm`` (mm) is flagged as implausible.
    min_nmi : float
        An NMI (see :func:`normalised_mutual_information`) below this is flagged.
    min_nmi_drop : float
        The NMI must drop by at least this much (on average) when the result is shifted by
        ``shift_check_mm`` along each world axis; otherwise the optimum is flat (flagged).
        Calibration on the phantom (noisy GRE, SNR 100): aligned pairs give NMI 1.07–1.17 and a
        drop of 0.03–0.11; noise, a blurred head outline or an upside-down or back-to-front T1
        give NMI 1.00–1.03 and a drop below 0.001. The drop is the more decisive check; real
        images have lower NMI than the piecewise-constant phantom, hence the low ``min_nmi``.
    shift_check_mm : float
        Shift (mm) of the peak check.

    Returns
    -------
    RigidRegistration

    Raises
    ------
    FileNotFoundError
        A file name that does not exist (the message names it).
    ValueError
        An unreadable image, one that is not 3-D (4-D for the fixed image), that is constant
        inside its mask, a mask not on its image's grid or empty, or bad options; the message
        names the file.
    """
    t0 = time.perf_counter()
    from dipy.align.imaffine import AffineRegistration, MutualInformationMetric
    from dipy.align.transforms import RigidTransform3D

    levels = len(level_iters)
    if not (levels == len(factors) == len(sigmas)) or levels < 1:
        raise ValueError("level_iters, factors and sigmas must have the same (non-zero) length")
    if int(factors[-1]) != 1:
        raise ValueError(f"the last shrink factor must be 1, got {factors!r}")
    if int(nbins) < 8:
        raise ValueError(f"nbins must be at least 8, got {nbins!r}")

    fimg, fname = _load(fixed_img, "fixed image")
    mimg, mname = _load(moving_img, "moving image")
    fixed, faff = _volume(fimg, fname, "fixed image", combine_echoes=True)
    moving, maff = _volume(mimg, mname, "moving image")
    fmask = _mask(fixed_mask, fixed.shape, faff, fname, "fixed mask")
    mmask = _mask(moving_mask, moving.shape, maff, mname, "moving mask")
    if fmask is None:
        fmask = np.ones(fixed.shape, bool)
    fvals = fixed[fmask]
    if not np.ptp(fvals) > 0:
        raise ValueError(f"fixed image {fname}: constant inside the mask, nothing to register")
    mkeep = (moving != 0) if mmask is None else mmask
    if not mkeep.any() or not np.ptp(moving[mkeep]) > 0:
        raise ValueError(f"moving image {mname}: empty or constant, nothing to register")

    # work on crops: the fixed mask's box and the moving head/brain box (margins in mm)
    fvs, mvs = _voxel_sizes(faff), _voxel_sizes(maff)
    fixed_c, faff_c, fsl = _crop(fixed, faff, fmask, np.ceil(crop_margin_mm / fvs).astype(int))
    fmask_c = fmask[fsl]
    moving_c, maff_c, msl = _crop(moving, maff, mkeep, np.ceil(crop_margin_mm / mvs).astype(int))
    mmask_c = None if mmask is None else mmask[msl]
    # working grids: images finer than `work` are smoothed and resampled to about `work` mm voxels
    # (the GRE when finer than working_voxel_mm, the anatomy when finer than the GRE)
    work = float(fvs.min()) if working_voxel_mm is None else max(float(working_voxel_mm), float(fvs.min()))
    fixed_w, faff_w = _downsample(fixed_c, faff_c, work)
    fmask_w = fmask_c
    if fixed_w.shape != fixed_c.shape:
        fmask_w = _pull(fmask_c.astype(np.float32), faff_c, fixed_w.shape, faff_w, np.eye(4), order=1) > 0.5
        if not fmask_w.any():
            raise ValueError(f"fixed mask of {fname}: nothing left at the working voxel size {work:g} mm")
    moving_w, maff_w = _downsample(moving_c, maff_c, work)
    mmask_w = None
    if mmask_c is not None:
        mmask_w = _pull(mmask_c.astype(np.float32), maff_c, moving_w.shape, maff_w, np.eye(4), order=1) > 0.5

    # world origin at the centre of the fixed mask (conditioning of rotation vs translation)
    centre = (faff @ np.append(np.argwhere(fmask).mean(0), 1.0))[:3]
    to_c, from_c = _translation(-centre), _translation(centre)
    faff_r, maff_r = to_c @ faff_w, to_c @ maff_w

    # starting transform (in the recentred frame)
    if isinstance(initial, str):
        if initial not in ("auto", "header", "centre-of-mass"):
            raise ValueError(f"initial must be 'auto', 'header', 'centre-of-mass' or a 4 x 4 matrix, got {initial!r}")
        candidates = {}
        if initial in ("auto", "header"):
            candidates["header"] = np.eye(4)
        if initial in ("auto", "centre-of-mass"):
            fw = np.where(fmask_w, fixed_w - fixed_w[fmask_w].min(), 0)
            mw = moving_w - moving_w.min()
            if mmask_w is not None:
                mw = np.where(mmask_w, mw, 0)
            cf = faff_r @ np.append(ndimage.center_of_mass(fw), 1.0)
            cm = maff_r @ np.append(ndimage.center_of_mass(mw), 1.0)
            candidates["centre-of-mass"] = _translation((cm - cf)[:3])
        if len(candidates) > 1:
            scores = {k: _coarse_nmi(fixed_w, faff_r, fmask_w, moving_w, maff_r, m, nbins, factors[0])
                      for k, m in candidates.items()}
            init_name = max(scores, key=lambda k: (np.nan_to_num(scores[k], nan=-1.0), k == "header"))
        else:
            init_name = next(iter(candidates))
        start = candidates[init_name]
    else:
        init_name = "given"
        start = to_c @ _as_matrix(initial, "initial") @ from_c

    metric = MutualInformationMetric(nbins=int(nbins), sampling_proportion=None)
    reg = AffineRegistration(metric=metric, level_iters=[int(i) for i in level_iters],
                             sigmas=[float(s) for s in sigmas], factors=[int(f) for f in factors],
                             options=dict(_OPTIMIZER_OPTIONS), verbosity=0)
    amap, _, fopt = reg.optimize(fixed_w.astype(np.float64), moving_w.astype(np.float64), RigidTransform3D(),
                                 None, static_grid2world=faff_r, moving_grid2world=maff_r,
                                 starting_affine=start, ret_metric=True,
                                 static_mask=fmask_w.astype(np.int32),
                                 moving_mask=None if mmask_w is None else mmask_w.astype(np.int32))
    rec = np.asarray(amap.affine, float)
    # re-orthonormalise (numerical round-off only) and go back to the original world frame
    u, _, vt = np.linalg.svd(rec[:3, :3])
    rec[:3, :3] = u @ vt
    f2m = from_c @ rec @ to_c

    # checks on the working grids
    moved = _pull(moving_w, maff_w, fixed_w.shape, faff_w, f2m, order=1)
    nmi = normalised_mutual_information(fixed_w, moved, mask=fmask_w, nbins=nbins)
    shifted = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            d = np.zeros(3)
            d[axis] = sign * shift_check_mm
            m = _pull(moving_w, maff_w, fixed_w.shape, faff_w, f2m @ _translation(d), order=1)
            shifted.append(normalised_mutual_information(fixed_w, m, mask=fmask_w, nbins=nbins))
    nmi_drop = float(nmi - np.nanmean(shifted)) if np.isfinite(nmi) else float("nan")
    rot = _rotation_angle_deg(f2m)
    shift = float(np.linalg.norm((f2m @ np.append(centre, 1.0))[:3] - centre))
    flags = []
    if rot > max_rotation_deg:
        flags.append(f"rotation {rot:.1f} deg > {max_rotation_deg:g} deg")
    if shift > max_shift_mm:
        flags.append(f"shift of the brain centre {shift:.1f} mm > {max_shift_mm:g} mm")
    if not (nmi >= min_nmi):
        flags.append(f"normalised mutual information {nmi:.3f} < {min_nmi:g} (images unrelated?)")
    if not (nmi_drop >= min_nmi_drop):
        flags.append(f"no similarity peak: NMI drops by {nmi_drop:.4f} < {min_nmi_drop:g} "
                     f"when shifted by {shift_check_mm:g} mm")
    params = {
        "library": f"dipy {_version('dipy')} (dipy.align.imaffine.AffineRegistration)",
        "metric": "mutual information (MutualInformationMetric, dense sampling)",
        "transform": "rigid (RigidTransform3D, 6 parameters)",
        "nbins": int(nbins), "level_iters": [int(i) for i in level_iters],
        "optimizer": dict(method="L-BFGS-B", **_OPTIMIZER_OPTIONS),
        "factors": [int(f) for f in factors], "sigmas": [float(s) for s in sigmas],
        "initial": initial if isinstance(initial, str) else "given",
        "fixed_mask": fixed_mask is not None, "moving_mask": moving_mask is not None,
        "working_voxel_mm": None if working_voxel_mm is None else float(working_voxel_mm),
        "fixed_working_voxel_mm": [float(v) for v in _voxel_sizes(faff_w)],
        "moving_working_voxel_mm": [float(v) for v in _voxel_sizes(maff_w)],
        "crop_margin_mm": float(crop_margin_mm), "max_rotation_deg": float(max_rotation_deg),
        "max_shift_mm": float(max_shift_mm), "min_nmi": float(min_nmi),
        "min_nmi_drop": float(min_nmi_drop), "shift_check_mm": float(shift_check_mm),
        "fixed_mask_centre_mm": [float(v) for v in centre],
    }
    return RigidRegistration(
        fixed_to_moving=f2m, rotation_deg=rot, translation_mm=tuple(float(v) for v in f2m[:3, 3]),
        centre_shift_mm=shift, metric=float(fopt), nmi=float(nmi), nmi_drop=nmi_drop, flags=tuple(flags),
        initialisation=init_name, elapsed_s=time.perf_counter() - t0, fixed=fname, moving=mname,
        parameters=params)


def _coarse_nmi(fixed, faff, fmask, moving, maff, f2m, nbins, factor):
    """NMI of a starting transform on the fixed grid shrunk by ``factor`` (smoothed images)."""
    f = max(int(factor), 1)
    sl = (slice(None, None, f),) * 3
    fs = ndimage.gaussian_filter(fixed, 0.5 * f)[sl]
    ms = ndimage.gaussian_filter(moving, 0.5 * f * max(1.0, float(_voxel_sizes(faff).min() / _voxel_sizes(maff).min())))
    m = _pull(ms, maff, fs.shape, faff @ np.diag([f, f, f, 1.0]), f2m, order=1, cval=np.nan)
    return normalised_mutual_information(fs, m, mask=fmask[sl], nbins=nbins)


def _version(name):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------------------------


def _output_image(data, ref_img):
    out = nib.Nifti1Image(data, np.asarray(ref_img.affine, float))
    code = 1  # scanner
    if isinstance(ref_img, nib.Nifti1Image):
        code = int(ref_img.header["sform_code"]) or int(ref_img.header["qform_code"]) or 1
    out.set_sform(ref_img.affine, code=code)
    out.set_qform(ref_img.affine, code=code)
    out.header.set_xyzt_units("mm", "sec")
    return out


def _reference_grid(reference_img):
    rimg, rname = _load(reference_img, "reference image")
    shape = tuple(int(n) for n in rimg.shape[:3])
    if len(rimg.shape) < 3:
        raise ValueError(f"reference image {rname}: expected a 3-D (or 4-D) image, got shape {rimg.shape}")
    return rimg, rname, shape


def resample_labels(label_img, reference_img, transform=None):
    """Nearest-neighbour resampling of a label image (e.g. ``aseg.mgz``) onto the reference grid.

    Parameters
    ----------
    label_img : str, Path or nibabel image
        3-D integer labels (FreeSurfer ids), any grid; world coordinates from its affine.
    reference_img : str, Path or nibabel image
        Image whose grid (shape and affine) the output takes: the χ map or the GRE magnitude.
    transform : RigidRegistration, ndarray (4, 4), str or Path, optional
        ``fixed_to_moving`` (reference world → label world, mm), a
        :func:`register_anatomy_to_gre` result or a file of :func:`save_transform`. Default:
        identity (the headers are trusted).

    Returns
    -------
    nibabel.Nifti1Image
        Labels on the reference grid, with the label image's integer dtype; 0 outside its field of
        view.
    """
    limg, lname = _load(label_img, "label image")
    try:
        data = np.asanyarray(limg.dataobj)
    except Exception as exc:
        raise ValueError(f"label image {lname}: cannot read the image data ({exc})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"label image {lname}: expected a 3-D image, got shape {data.shape}")
    data = data.astype(data.dtype.newbyteorder("="), copy=False)  # .mgz data are big-endian
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.allclose(data, np.rint(data)):
            raise ValueError(f"label image {lname}: labels must be integers, got non-integer {data.dtype} values")
        data = np.rint(data).astype(np.int32)
    rimg, _, shape = _reference_grid(reference_img)
    out = np.zeros(shape, dtype=data.dtype)
    _pull(data, np.asarray(limg.affine, float), shape, np.asarray(rimg.affine, float),
          _as_matrix(transform), order=0, output=out)
    return _output_image(out, rimg)


def resample_image(img, reference_img, transform=None):
    """Trilinear resampling of an image onto the reference grid.

    Parameters
    ----------
    img : str, Path or nibabel image
        3-D image (or 4-D: each volume is resampled), any grid.
    reference_img : str, Path or nibabel image
        Image whose grid the output takes (the χ map or the GRE magnitude).
    transform : RigidRegistration, ndarray (4, 4), str or Path, optional
        ``fixed_to_moving`` (reference world → ``img`` world, mm); default identity.

    Returns
    -------
    nibabel.Nifti1Image
        float32 on the reference grid; 0 outside the field of view of ``img`` (NaN in ``img``
        become 0).
    """
    iimg, iname = _load(img, "image")
    try:
        data = np.asarray(iimg.dataobj, dtype=np.float32)
    except Exception as exc:
        raise ValueError(f"image {iname}: cannot read the image data ({exc})") from None
    if data.ndim not in (3, 4):
        raise ValueError(f"image {iname}: expected a 3-D or 4-D image, got shape {data.shape}")
    data = np.where(np.isfinite(data), data, np.float32(0))
    rimg, _, shape = _reference_grid(reference_img)
    m = _as_matrix(transform)
    src, ref = np.asarray(iimg.affine, float), np.asarray(rimg.affine, float)
    if data.ndim == 3:
        out = _pull(data, src, shape, ref, m, order=1).astype(np.float32)
    else:
        out = np.stack([_pull(data[..., k], src, shape, ref, m, order=1) for k in range(data.shape[3])],
                       axis=-1).astype(np.float32)
    return _output_image(out, rimg)


# ---------------------------------------------------------------------------------------------
# Anatomy of a FreeSurfer subject
# ---------------------------------------------------------------------------------------------


def choose_anatomy(subject_dir):
    """The T1-like image of a FreeSurfer subject to register to the GRE magnitude.

    Tries, in this order (:data:`ANATOMY_CANDIDATES`):

    1. ``mri/brain.mgz`` – skull-stripped, intensity-normalised T1 (white matter = 110);
    2. ``mri/brainmask.mgz`` – skull-stripped T1 (the brain mask applied to ``T1.mgz``);
    3. ``mri/norm.mgz`` – skull-stripped, bias-corrected and normalised;
    4. ``mri/T1.mgz`` – normalised whole-head T1.

    Skull-stripped images come first because the GRE side is restricted to the QSM brain mask:
    scalp, skull and neck of a whole-head T1 have no counterpart there and can pull the
    centre-of-mass start and the cost. All four share FreeSurfer's conformed grid and scanner
    vox2ras, and ``aseg.mgz`` is on the same grid, so the choice does not change the frame in
    which the transform is expressed.

    Parameters
    ----------
    subject_dir : str or Path
        ``$SUBJECTS_DIR/<subject>``.

    Returns
    -------
    Path

    Raises
    ------
    FileNotFoundError
        The folder does not exist, or none of the candidates does (the message names the folder
        and the files looked for).
    """
    sdir = Path(subject_dir)
    if not sdir.is_dir():
        raise FileNotFoundError(f"FreeSurfer subject folder {sdir}: no such directory")
    for rel in ANATOMY_CANDIDATES:
        p = sdir / rel
        if p.is_file():
            return p
    raise FileNotFoundError(f"FreeSurfer subject folder {sdir}: none of {', '.join(ANATOMY_CANDIDATES)} "
                            "exists (needed to register the anatomy to the GRE)")


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
    m = _as_matrix(transform)
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
                        "rotation_deg": _rotation_angle_deg(m), "translation_mm": m[:3, 3].tolist()})
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    elif suffix in (".txt", ".tfm"):
        lps = _LPS @ m @ _LPS
        params = " ".join(repr(float(v)) for v in [*lps[:3, :3].ravel(), *lps[:3, 3]])
        path.write_text(f"{_ITK_HEADER}\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
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
    elif text.startswith(_ITK_HEADER):
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
        m = _LPS @ lps @ _LPS
    else:
        raise ValueError(f"transform file {path}: neither a JSON transform nor an ITK transform file")
    try:
        return _as_matrix(m)
    except ValueError as exc:
        raise ValueError(f"transform file {path}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Quality-control figure
# ---------------------------------------------------------------------------------------------


def registration_overlay_png(path, fixed_img, moving_resampled_img, *, labels_img=None, title=None, dpi=110):
    """QC figure of a registration: 3 orthogonal slices of the GRE with the anatomy on top.

    Each column is a slice along one voxel axis of the fixed grid, through the centre of the
    thalami when ``labels_img`` has them (the sagittal-most one through the left thalamus), else
    through the centre of the anatomy. The GRE
    magnitude is drawn in grey; on top, the contours of the thalami (red) and lateral ventricles
    (cyan) of ``labels_img`` when it is given, and always the edges (yellow, Canny) of the
    resampled anatomy. Misregistration shows as edges that cross the GRE's own boundaries.

    Parameters
    ----------
    path : str or Path
        Output PNG.
    fixed_img : str, Path or nibabel image
        GRE magnitude on the χ grid (a 4-D magnitude is echo-combined by root-sum-of-squares).
    moving_resampled_img : str, Path or nibabel image
        The anatomy resampled onto that grid (:func:`resample_image`).
    labels_img : str, Path or nibabel image, optional
        aseg labels on that grid (:func:`resample_labels`).
    title : str, optional
        Figure title (e.g. :meth:`RigidRegistration.summary`).
    dpi : int

    Returns
    -------
    Path
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from skimage.feature import canny

    fimg, fname = _load(fixed_img, "fixed image")
    fixed, faff = _volume(fimg, fname, "fixed image", combine_echoes=True)
    aimg, aname = _load(moving_resampled_img, "resampled anatomy")
    anat, _ = _volume(aimg, aname, "resampled anatomy")
    if anat.shape != fixed.shape:
        raise ValueError(f"resampled anatomy {aname}: shape {anat.shape} is not the fixed grid {fixed.shape} "
                         f"of {fname} (resample it with resample_image first)")
    labels = None
    if labels_img is not None:
        limg, lname = _load(labels_img, "label image")
        labels = np.asarray(limg.dataobj)
        if labels.shape != fixed.shape:
            raise ValueError(f"label image {lname}: shape {labels.shape} is not the fixed grid {fixed.shape}")
    thal = None if labels is None else np.isin(labels, _OVERLAY_LABELS["thalamus"][0])
    if thal is not None and thal.any():
        centre = np.rint(np.argwhere(thal).mean(0)).astype(int)
        left = labels == _OVERLAY_LABELS["thalamus"][0][0]
        if left.any():  # the sagittal-most slice through the left thalamus, not the midline
            lr = int(np.argmax(np.abs(faff[0, :3]) / _voxel_sizes(faff)))
            centre[lr] = int(np.rint(np.argwhere(left)[:, lr].mean()))
    elif (anat > 0).any():
        centre = np.rint(np.argwhere(anat > 0).mean(0)).astype(int)
    else:
        centre = np.array(fixed.shape) // 2
    vs = _voxel_sizes(faff)
    lo, hi = np.percentile(fixed[fixed > 0], [1, 99.5]) if (fixed > 0).any() else (0.0, 1.0)
    alo, ahi = np.percentile(anat[anat > 0], [1, 99.5]) if (anat > 0).any() else (0.0, 1.0)

    fig = Figure(figsize=(12, 4.4))
    axes = fig.subplots(1, 3)
    for axis, ax in enumerate(axes):
        sl = [slice(None)] * 3
        sl[axis] = int(centre[axis])
        sl = tuple(sl)
        rest = [a for a in range(3) if a != axis]
        img = fixed[sl].T
        aspect = vs[rest[1]] / vs[rest[0]]
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower", aspect=aspect, interpolation="nearest")
        a2 = np.clip((anat[sl] - alo) / max(ahi - alo, 1e-6), 0, 1).T
        edges = canny(a2, sigma=1.0) & (a2 > 0)
        ax.imshow(np.ma.masked_where(~edges, edges), cmap=ListedColormap(["#ffd60a"]), alpha=0.75,
                  origin="lower", aspect=aspect, interpolation="nearest", vmin=0, vmax=1)
        if labels is not None:
            for name, (ids, colour) in _OVERLAY_LABELS.items():
                m = np.isin(labels[sl], ids).T.astype(float)
                if m.any():
                    ax.contour(m, levels=[0.5], colors=[colour], linewidths=1.8)
        ax.set_title(f"voxel axis {axis} = {int(centre[axis])}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    legend = "GRE magnitude (grey), anatomy edges (yellow)"
    if labels is not None:
        legend += ", thalamus (red), lateral ventricles (cyan)"
    fig.suptitle((title + "\n" if title else "") + legend, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
