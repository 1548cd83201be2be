"""Quantitative susceptibility mapping from multi-echo gradient echo: every step from phase to χ.

Data flow (one function per arrow; shapes (X, Y, Z[, E]), χ and fields in ppm)::

    complex echoes --fit_field_complex--> field (rad/ΔTE) + noise map
        --unwrap_laplacian / unwrap_path--> unwrapped field --rad_to_ppm--> total field (ppm)
        --brain_mask--> mask --pdf / vsharp--> local field (ppm)
        --medi / tkd--> χ (ppm)

:func:`reconstruct_megre` chains them; :func:`reconstruct_recipes` runs several background removals
and inversions on one fitted field. Conventions (units, kernel, axes) are in
:mod:`analysis.imaging.qsm.kernels`; MEDI's parameters and the meaning of λ in :mod:`analysis.imaging.qsm.dipole`.
"""

from .admm import medi_admm, medi_objective
from .background import pdf, smv, vsharp
from .dipole import DEFAULT_B0_TESLA, DEFAULT_DELTA_TE_S, gradient_mask, medi, smv_radii_mm, tkd
from .fit import (
    FieldFit,
    combine_magnitude,
    fit_field_complex,
    hz_to_ppm,
    ppm_to_rad,
    r2star_loglinear,
    rad_per_ppm,
    rad_to_hz,
    rad_to_ppm,
)
from .kernels import (
    GAMMA_HZ_PER_T,
    b0_direction_from_affine,
    dipole_kernel,
    fast_shape,
    forward_field,
    sphere_kernel,
)
from .mask import brain_mask, csf_mask_from_r2star, erode_mm
from .pipeline import reconstruct_megre, reconstruct_recipes
from .recipes import RECIPES, WHOLE_BRAIN_RECIPE, complete_recipe, resolve_recipe, vsharp_radii_mm
from .unwrap import unwrap_laplacian, unwrap_path, wrap

__all__ = [
    "DEFAULT_B0_TESLA",
    "DEFAULT_DELTA_TE_S",
    "FieldFit",
    "GAMMA_HZ_PER_T",
    "RECIPES",
    "WHOLE_BRAIN_RECIPE",
    "b0_direction_from_affine",
    "brain_mask",
    "combine_magnitude",
    "complete_recipe",
    "csf_mask_from_r2star",
    "dipole_kernel",
    "erode_mm",
    "fast_shape",
    "fit_field_complex",
    "forward_field",
    "gradient_mask",
    "hz_to_ppm",
    "medi",
    "medi_admm",
    "medi_objective",
    "pdf",
    "ppm_to_rad",
    "r2star_loglinear",
    "rad_per_ppm",
    "rad_to_hz",
    "rad_to_ppm",
    "reconstruct_megre",
    "reconstruct_recipes",
    "resolve_recipe",
    "smv",
    "smv_radii_mm",
    "sphere_kernel",
    "tkd",
    "unwrap_laplacian",
    "unwrap_path",
    "vsharp",
    "vsharp_radii_mm",
    "wrap",
]
