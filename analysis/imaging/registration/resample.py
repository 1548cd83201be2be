"""Resampling labels (nearest neighbour) and images (trilinear) through a rigid transform; choosing the
anatomy of a FreeSurfer subject."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from analysis.imaging.registration._common import ANATOMY_CANDIDATES, load_image, pull
from analysis.imaging.registration.transforms import as_matrix

# ---------------------------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------------------------


def output_image(data, ref_img):
    out = nib.Nifti1Image(data, np.asarray(ref_img.affine, float))
    code = 1  # scanner
    if isinstance(ref_img, nib.Nifti1Image):
        code = int(ref_img.header["sform_code"]) or int(ref_img.header["qform_code"]) or 1
    out.set_sform(ref_img.affine, code=code)
    out.set_qform(ref_img.affine, code=code)
    out.header.set_xyzt_units("mm", "sec")
    return out


def reference_grid(reference_img):
    rimg, rname = load_image(reference_img, "reference image")
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
    limg, lname = load_image(label_img, "label image")
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
    rimg, _, shape = reference_grid(reference_img)
    out = np.zeros(shape, dtype=data.dtype)
    pull(data, np.asarray(limg.affine, float), shape, np.asarray(rimg.affine, float),
          as_matrix(transform), order=0, output=out)
    return output_image(out, rimg)


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
    iimg, iname = load_image(img, "image")
    try:
        data = np.asarray(iimg.dataobj, dtype=np.float32)
    except Exception as exc:
        raise ValueError(f"image {iname}: cannot read the image data ({exc})") from None
    if data.ndim not in (3, 4):
        raise ValueError(f"image {iname}: expected a 3-D or 4-D image, got shape {data.shape}")
    data = np.where(np.isfinite(data), data, np.float32(0))
    rimg, _, shape = reference_grid(reference_img)
    m = as_matrix(transform)
    src, ref = np.asarray(iimg.affine, float), np.asarray(rimg.affine, float)
    if data.ndim == 3:
        out = pull(data, src, shape, ref, m, order=1).astype(np.float32)
    else:
        out = np.stack([pull(data[..., k], src, shape, ref, m, order=1) for k in range(data.shape[3])],
                       axis=-1).astype(np.float32)
    return output_image(out, rimg)


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
