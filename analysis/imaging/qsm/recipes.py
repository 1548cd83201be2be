"""Reconstruction recipes: named sets of :func:`~analysis.imaging.qsm.pipeline.reconstruct_megre`
keywords, and the rules that complete them — the one place where they are written.

Every path that reconstructs χ (the ``qsm`` command, the phantom notebooks, the imaging cohort)
takes its recipe from here, so the physics cannot drift apart between them.

- :data:`RECIPES` holds the named recipes of ``python -m analysis qsm --recipe``;
  :data:`WHOLE_BRAIN_RECIPE` is the MEDI toolbox's ``MEDI_full_process`` (PDF, then
  ``MEDI_L1('lambda', 1000, 'lambda_CSF', 100, 'merit', 'smv', 5)``).
- :func:`resolve_recipe` lays explicit choices over a named recipe (the command line).
- :func:`complete_recipe` turns the few choices of a simulation study (background removal,
  inversion, λ, V-SHARP's largest sphere, an optional CSF mask) into full keywords with the
  toolbox's coupling rules: SMV high-pass of 5 mm and MERIT whenever MEDI follows PDF (or no
  background removal), none after V-SHARP, whose local field is already high-passed.
- :func:`vsharp_radii_mm` gives V-SHARP's sphere radii, from the largest down to one voxel.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RECIPES", "WHOLE_BRAIN_RECIPE", "MEDI_ONLY_OPTIONS", "METHOD_NAMES", "DEFAULT_SMV_RADIUS_MM",
           "resolve_recipe", "complete_recipe", "vsharp_radii_mm"]

#: The toolbox's SMV high-pass radius (mm) in its whole-brain recipe.
DEFAULT_SMV_RADIUS_MM = 5.0

#: Named sets of :func:`~analysis.imaging.qsm.pipeline.reconstruct_megre` keywords for
#: ``--recipe``. ``whole-brain`` is the toolbox's ``MEDI_full_process``: on the 2 mm phantom
#: (notebook 01) it is the most accurate of the recipes compared there; ``plain`` is PDF + MEDI
#: with the toolbox's ``MEDI_L1`` defaults, which leaves errors at the brain edge.
RECIPES = {
    "whole-brain": {"background": "pdf", "method": "medi0", "lambda_": 1000.0,
                    "smv_radius_mm": DEFAULT_SMV_RADIUS_MM, "merit": True},
    "plain": {"background": "pdf", "method": "medi", "lambda_": 1000.0},
}
#: The MEDI toolbox's whole-brain recipe (``MEDI_full_process``) as keyword arguments of
#: ``reconstruct_megre`` / a recipe of ``reconstruct_recipes``.
WHOLE_BRAIN_RECIPE = RECIPES["whole-brain"]
#: Options only MEDI understands: a recipe's values are dropped when the method is TKD.
MEDI_ONLY_OPTIONS = ("smv_radius_mm", "merit", "lambda_csf", "percentage", "max_iter", "cg_max_iter", "cg_tol", "tol")
#: Display names of the inversions (sidecars, tables).
METHOD_NAMES = {"medi": "MEDI", "medi0": "MEDI+0", "tkd": "TKD"}


def resolve_recipe(recipe="whole-brain", **explicit):
    """The reconstruction keywords of a named recipe with explicit choices laid over it.

    Parameters
    ----------
    recipe : {"whole-brain", "plain"}
        Name in :data:`RECIPES`.
    **explicit
        ``method``, ``lambda_``, ``background`` or any other keyword of
        :func:`~analysis.imaging.qsm.pipeline.reconstruct_megre`; ``None`` means "the recipe's".

    Returns
    -------
    dict
        Keywords for ``reconstruct_megre`` (``method`` and ``lambda_`` always present). A
        recipe's MEDI-only options (SMV radius, MERIT, …) are left out when the method is
        ``"tkd"``; given explicitly with TKD they are kept (and the inversion rejects them).
        ``smv_radius_mm=0`` removes the SMV step.

    Raises
    ------
    ValueError
        Unknown recipe or method, or a non-positive ``lambda_``.
    """
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {recipe!r}")
    base = dict(RECIPES[recipe])
    given = {k: v for k, v in explicit.items() if v is not None}
    settings = {**base, **given}
    settings["method"] = str(settings["method"]).lower()
    if settings["method"] not in METHOD_NAMES:
        raise ValueError(f"method must be one of {sorted(METHOD_NAMES)}, got {settings['method']!r}")
    lam = settings["lambda_"]
    if not np.isfinite(lam) or lam <= 0:
        raise ValueError(f"lambda must be positive, got {lam!r}")
    settings["lambda_"] = float(lam)
    if settings.get("smv_radius_mm") == 0:        # "0 = none": switches a recipe's SMV off
        settings.pop("smv_radius_mm")
    if settings["method"] == "tkd":
        for key in MEDI_ONLY_OPTIONS:
            if key in base and key not in given:
                settings.pop(key)
    return settings


def vsharp_radii_mm(max_radius_mm, voxel_size_mm):
    """V-SHARP sphere radii (mm): from ``max_radius_mm`` down to one voxel in one-voxel steps.

    Parameters
    ----------
    max_radius_mm : float
        Largest sphere (mm); the pipeline's default is 12 mm, the phantom studies use 25 mm.
    voxel_size_mm : sequence of 3 float
        Voxel size (mm); the step is the largest voxel edge.

    Returns
    -------
    ndarray of float, shape (n,)
        Decreasing radii (mm).
    """
    step = float(max(np.atleast_1d(voxel_size_mm)))
    if not np.isfinite(max_radius_mm) or max_radius_mm < step:
        raise ValueError(f"max_radius_mm must be at least one voxel ({step} mm), got {max_radius_mm!r}")
    return np.arange(float(max_radius_mm), step - 1e-9, -step)


def complete_recipe(*, background="pdf", method="medi0", lambda_=1000.0, voxel_size_mm=None,
                    vsharp_max_radius_mm=25.0, csf_mask=None, smv_radius_mm=None, merit=None):
    """Full :func:`~analysis.imaging.qsm.pipeline.reconstruct_megre` keywords from a study's few choices.

    The coupling rules of the toolbox's whole-brain recipe, written once for every simulation
    path (phantom notebooks, imaging cohort): MEDI after PDF (or no background removal) gets the
    SMV high-pass of :data:`DEFAULT_SMV_RADIUS_MM` and MERIT; after V-SHARP neither (its local
    field is already high-passed); TKD takes neither.

    Parameters
    ----------
    background : {'pdf', 'vsharp', 'none'}
        Background field removal.
    method : {'medi0', 'medi', 'tkd'}
        Dipole inversion.
    lambda_ : float
        MEDI data weight (ignored for TKD).
    voxel_size_mm : sequence of 3 float, optional
        Needed for ``background='vsharp'`` (the radii step).
    vsharp_max_radius_mm : float
        Largest V-SHARP sphere (mm), for ``background='vsharp'``.
    csf_mask : ndarray of bool, shape (X, Y, Z), optional
        CSF mask for MEDI+0 (passed only when ``method='medi0'``; MEDI+0 finds its own from R2*
        without it).
    smv_radius_mm : float, optional
        Override of the SMV radius (mm); 0 switches it off.
    merit : bool, optional
        Override of MERIT (default: on whenever the SMV high-pass is).

    Returns
    -------
    dict
        Keywords ``background``, ``method`` and, as they apply, ``lambda_``,
        ``background_options``, ``csf_mask``, ``smv_radius_mm``, ``merit``.

    Raises
    ------
    ValueError
        Unknown method, or SMV/MERIT asked for with TKD.
    """
    if method not in METHOD_NAMES:
        raise ValueError(f"method must be one of {sorted(METHOD_NAMES)}, got {method!r}")
    kw = {"background": background, "method": method}
    if background == "vsharp":
        if voxel_size_mm is None:
            raise ValueError("voxel_size_mm is needed for background='vsharp' (the sphere radii)")
        kw["background_options"] = {"radii_mm": vsharp_radii_mm(vsharp_max_radius_mm, voxel_size_mm)}
    if method == "medi0" and csf_mask is not None:
        kw["csf_mask"] = csf_mask
    if method == "tkd":
        if smv_radius_mm or merit:
            raise ValueError("smv_radius_mm and merit are MEDI options; method='tkd' takes neither")
        return kw
    kw["lambda_"] = float(lambda_)
    if smv_radius_mm is None:
        smv_radius_mm = DEFAULT_SMV_RADIUS_MM if background != "vsharp" else 0.0
    if merit is None:
        merit = bool(smv_radius_mm)
    if smv_radius_mm:
        kw["smv_radius_mm"] = float(smv_radius_mm)
    if merit:
        kw["merit"] = True
    return kw
