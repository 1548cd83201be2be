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

from analysis.imaging.registration._common import ANATOMY_CANDIDATES, TRANSFORM_FORMAT, RigidRegistration
from analysis.imaging.registration.overlay import registration_overlay_png
from analysis.imaging.registration.resample import choose_anatomy, resample_image, resample_labels
from analysis.imaging.registration.rigid import normalised_mutual_information, register_anatomy_to_gre
from analysis.imaging.registration.transforms import load_transform, save_transform

__all__ = [
    "ANATOMY_CANDIDATES",
    "TRANSFORM_FORMAT",
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
