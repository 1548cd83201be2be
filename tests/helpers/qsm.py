"""Synthetic local fields shared by the QSM solver tests (not a test module)."""

import numpy as np

from analysis.imaging.qsm import forward_field
from analysis.imaging.qsm._synthetic import ellipsoid_brain


def noisy_ellipsoid(shape, *, voxel_size, noise_ppm, seed):
    """:func:`ellipsoid_brain` of ``shape`` with ``ph["field"]``: its dipole field (ppm) plus Gaussian
    noise of ``noise_ppm`` inside the brain mask, 0 outside (float32)."""
    ph = ellipsoid_brain(shape)
    rng = np.random.default_rng(seed)
    f = forward_field(ph["chi"], voxel_size=voxel_size)
    ph["field"] = np.where(ph["mask"], f + noise_ppm * rng.standard_normal(f.shape), 0.0).astype(np.float32)
    return ph
