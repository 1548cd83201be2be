"""Rigid registration by mutual information (dipy) and the normalised-mutual-information check."""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage

from analysis.imaging.registration._common import (
    OPTIMIZER_OPTIONS,
    RigidRegistration,
    crop_to,
    downsample_to,
    load_image,
    load_mask,
    load_volume,
    pull,
    rotation_angle_deg,
    translation_part,
    voxel_sizes,
)
from analysis.imaging.registration.transforms import as_matrix

# ---------------------------------------------------------------------------------------------
# Similarity
# ---------------------------------------------------------------------------------------------


def robust_bins(values, nbins):
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
    ia = robust_bins(a[sel], nbins)
    ib = robust_bins(b[sel], nbins)
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

    fimg, fname = load_image(fixed_img, "fixed image")
    mimg, mname = load_image(moving_img, "moving image")
    fixed, faff = load_volume(fimg, fname, "fixed image", combine_echoes=True)
    moving, maff = load_volume(mimg, mname, "moving image")
    fmask = load_mask(fixed_mask, fixed.shape, faff, fname, "fixed mask")
    mmask = load_mask(moving_mask, moving.shape, maff, mname, "moving mask")
    if fmask is None:
        fmask = np.ones(fixed.shape, bool)
    fvals = fixed[fmask]
    if not np.ptp(fvals) > 0:
        raise ValueError(f"fixed image {fname}: constant inside the mask, nothing to register")
    mkeep = (moving != 0) if mmask is None else mmask
    if not mkeep.any() or not np.ptp(moving[mkeep]) > 0:
        raise ValueError(f"moving image {mname}: empty or constant, nothing to register")

    # work on crops: the fixed mask's box and the moving head/brain box (margins in mm)
    fvs, mvs = voxel_sizes(faff), voxel_sizes(maff)
    fixed_c, faff_c, fsl = crop_to(fixed, faff, fmask, np.ceil(crop_margin_mm / fvs).astype(int))
    fmask_c = fmask[fsl]
    moving_c, maff_c, msl = crop_to(moving, maff, mkeep, np.ceil(crop_margin_mm / mvs).astype(int))
    mmask_c = None if mmask is None else mmask[msl]
    # working grids: images finer than `work` are smoothed and resampled to about `work` mm voxels
    # (the GRE when finer than working_voxel_mm, the anatomy when finer than the GRE)
    work = float(fvs.min()) if working_voxel_mm is None else max(float(working_voxel_mm), float(fvs.min()))
    fixed_w, faff_w = downsample_to(fixed_c, faff_c, work)
    fmask_w = fmask_c
    if fixed_w.shape != fixed_c.shape:
        fmask_w = pull(fmask_c.astype(np.float32), faff_c, fixed_w.shape, faff_w, np.eye(4), order=1) > 0.5
        if not fmask_w.any():
            raise ValueError(f"fixed mask of {fname}: nothing left at the working voxel size {work:g} mm")
    moving_w, maff_w = downsample_to(moving_c, maff_c, work)
    mmask_w = None
    if mmask_c is not None:
        mmask_w = pull(mmask_c.astype(np.float32), maff_c, moving_w.shape, maff_w, np.eye(4), order=1) > 0.5

    # world origin at the centre of the fixed mask (conditioning of rotation vs translation)
    centre = (faff @ np.append(np.argwhere(fmask).mean(0), 1.0))[:3]
    to_c, from_c = translation_part(-centre), translation_part(centre)
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
            candidates["centre-of-mass"] = translation_part((cm - cf)[:3])
        if len(candidates) > 1:
            scores = {k: coarse_nmi(fixed_w, faff_r, fmask_w, moving_w, maff_r, m, nbins, factors[0])
                      for k, m in candidates.items()}
            init_name = max(scores, key=lambda k: (np.nan_to_num(scores[k], nan=-1.0), k == "header"))
        else:
            init_name = next(iter(candidates))
        start = candidates[init_name]
    else:
        init_name = "given"
        start = to_c @ as_matrix(initial, "initial") @ from_c

    metric = MutualInformationMetric(nbins=int(nbins), sampling_proportion=None)
    reg = AffineRegistration(metric=metric, level_iters=[int(i) for i in level_iters],
                             sigmas=[float(s) for s in sigmas], factors=[int(f) for f in factors],
                             options=dict(OPTIMIZER_OPTIONS), verbosity=0)
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
    moved = pull(moving_w, maff_w, fixed_w.shape, faff_w, f2m, order=1)
    nmi = normalised_mutual_information(fixed_w, moved, mask=fmask_w, nbins=nbins)
    shifted = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            d = np.zeros(3)
            d[axis] = sign * shift_check_mm
            m = pull(moving_w, maff_w, fixed_w.shape, faff_w, f2m @ translation_part(d), order=1)
            shifted.append(normalised_mutual_information(fixed_w, m, mask=fmask_w, nbins=nbins))
    nmi_drop = float(nmi - np.nanmean(shifted)) if np.isfinite(nmi) else float("nan")
    rot = rotation_angle_deg(f2m)
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
        "library": f"dipy {package_version('dipy')} (dipy.align.imaffine.AffineRegistration)",
        "metric": "mutual information (MutualInformationMetric, dense sampling)",
        "transform": "rigid (RigidTransform3D, 6 parameters)",
        "nbins": int(nbins), "level_iters": [int(i) for i in level_iters],
        "optimizer": dict(method="L-BFGS-B", **OPTIMIZER_OPTIONS),
        "factors": [int(f) for f in factors], "sigmas": [float(s) for s in sigmas],
        "initial": initial if isinstance(initial, str) else "given",
        "fixed_mask": fixed_mask is not None, "moving_mask": moving_mask is not None,
        "working_voxel_mm": None if working_voxel_mm is None else float(working_voxel_mm),
        "fixed_working_voxel_mm": [float(v) for v in voxel_sizes(faff_w)],
        "moving_working_voxel_mm": [float(v) for v in voxel_sizes(maff_w)],
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


def coarse_nmi(fixed, faff, fmask, moving, maff, f2m, nbins, factor):
    """NMI of a starting transform on the fixed grid shrunk by ``factor`` (smoothed images)."""
    f = max(int(factor), 1)
    sl = (slice(None, None, f),) * 3
    fs = ndimage.gaussian_filter(fixed, 0.5 * f)[sl]
    ms = ndimage.gaussian_filter(moving, 0.5 * f * max(1.0, float(voxel_sizes(faff).min() / voxel_sizes(maff).min())))
    m = pull(ms, maff, fs.shape, faff @ np.diag([f, f, f, 1.0]), f2m, order=1, cval=np.nan)
    return normalised_mutual_information(fs, m, mask=fmask[sl], nbins=nbins)


def package_version(name):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"
