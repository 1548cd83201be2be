"""Reconstruction recipes: named sets of :func:`~analysis.imaging.qsm.pipeline.reconstruct_megre`
keywords, and the rules that complete them — the one place where they are written.

Every path that reconstructs χ (the ``qsm`` command, the phantom notebooks, the imaging cohort)
takes its recipe from here, so the physics cannot drift apart between them.

- :data:`RECIPES` holds the named recipes of ``python -m analysis qsm --recipe``;
  :data:`TOOLBOX_RECIPE` is the MEDI toolbox's ``MEDI_full_process`` (PDF, then
  ``MEDI_L1('lambda', 1000, 'lambda_CSF', 100, 'merit', 'smv', 5)``), which gives χ only on
  the mask eroded by the SMV radius; :data:`WHOLE_BRAIN_RECIPE` (the default) is the same with
  PDF run to 100 iterations, λ chosen from the data, the SMV radius adapted to the voxel size
  (:func:`~analysis.imaging.qsm.dipole.smv_radii_mm`) and the eroded rim filled, so that χ
  covers the whole mask (see :func:`~analysis.imaging.qsm.pipeline.reconstruct_megre`, Notes).
- :func:`resolve_recipe` lays explicit choices over a named recipe (the command line).
- :func:`complete_recipe` turns the few choices of a simulation study (background removal,
  inversion, λ, V-SHARP's largest sphere, an optional CSF mask) into full keywords with the
  toolbox's coupling rules: SMV high-pass (5 mm, with a deeper pass at coarse voxels) and MERIT
  whenever MEDI follows PDF (or no background removal), none after V-SHARP, whose local field
  is already high-passed.
- :func:`vsharp_radii_mm` gives V-SHARP's sphere radii, from the largest down to one voxel.
"""

from __future__ import annotations

import numpy as np

from .dipole import TOOLBOX_SMV_RADIUS_MM

__all__ = ["RECIPES", "WHOLE_BRAIN_RECIPE", "TOOLBOX_RECIPE", "MEDI_ONLY_OPTIONS", "METHOD_NAMES",
           "DEFAULT_SMV_RADIUS_MM", "AUTO_SMV_RADIUS", "DEFAULT_PDF_MAX_ITER", "resolve_recipe", "complete_recipe",
           "vsharp_radii_mm"]

#: The toolbox's SMV high-pass radius (mm) in its whole-brain recipe (``medi-full-process``).
DEFAULT_SMV_RADIUS_MM = TOOLBOX_SMV_RADIUS_MM
#: The SMV radius of the ``whole-brain`` recipe and of :func:`complete_recipe`: the toolbox's 5 mm,
#: nested inside deeper passes of 30, 20 and 10 mm (and 40 mm with a compact CSF mask) wherever they fit
#: the object (:func:`~analysis.imaging.qsm.dipole.smv_radii_mm`).
AUTO_SMV_RADIUS = "auto"

#: PDF's CG iterations in the default recipe (the toolbox stops at 30, before PDF has removed
#: the background near the brain's edge: 13 ppb rms of local-field error 2–4 mm from the edge
#: of the 2 mm phantom, 8 ppb with 100; see ``reconstruct_megre``'s Notes).
DEFAULT_PDF_MAX_ITER = 100

#: Named sets of :func:`~analysis.imaging.qsm.pipeline.reconstruct_megre` keywords for
#: ``--recipe``. ``whole-brain`` (the default) is the toolbox's ``MEDI_full_process`` with PDF run
#: to :data:`DEFAULT_PDF_MAX_ITER` iterations, χ on the whole mask (the SMV-eroded rim filled),
#: λ chosen from the data, the ADMM solver and the SMV radii of :data:`AUTO_SMV_RADIUS` (nested
#: passes of 30, 20, 10 and 5 mm where they fit; 40 mm first with a compact CSF mask). Simulated
#: data, SNR 100, thalamus − CSF error of the reconstruction (the ROI measure on the map minus the
#: same on the true map): 2 mm simple phantom NRMSE 20.3 % over 100 % of the mask, −0.7 ppb (5 mm
#: alone: 19.5 %, −0.43 ppb; toolbox λ 1000 and Gauss–Newton: 22.0 %, −1.0 ppb); 2 mm realistic
#: phantom 47.5 %, −0.8 ppb (5 mm alone: 48.1 %, −6.8 ppb; λ 1000 and Gauss–Newton: 95 %,
#: −8.8 ppb); realistic 1 mm and 1 × 1 × 2 mm: +0.6 and +0.1 ppb; with the ventricles' CSF alone
#: −0.6 (2 mm), +0.3 (1 × 1 × 2 mm) and +0.6 ppb (1 mm);
#: ``medi-full-process`` is ``MEDI_full_process`` itself (λ 1000, Gauss–Newton, χ on the mask
#: eroded by 5 mm: 16.7 % over 79 % of the mask); ``plain`` is PDF + MEDI (λ chosen from the data),
#: which leaves errors at the brain edge.
RECIPES = {
    "whole-brain": {"background": "pdf", "method": "medi0", "lambda_": "auto", "solver": "admm",
                    "smv_radius_mm": AUTO_SMV_RADIUS, "merit": True, "fill_rim": "medi",
                    "background_options": {"max_iter": DEFAULT_PDF_MAX_ITER}},
    "medi-full-process": {"background": "pdf", "method": "medi0", "lambda_": 1000.0, "solver": "gncg",
                "smv_radius_mm": DEFAULT_SMV_RADIUS_MM, "merit": True},
    "plain": {"background": "pdf", "method": "medi", "lambda_": "auto", "solver": "admm"},
}
#: The default recipe as keyword arguments of ``reconstruct_megre`` / a recipe of
#: ``reconstruct_recipes`` (χ on the whole mask).
WHOLE_BRAIN_RECIPE = RECIPES["whole-brain"]
#: The MEDI toolbox's whole-brain recipe (``MEDI_full_process``) exactly: χ on the mask eroded
#: by the SMV radius.
TOOLBOX_RECIPE = RECIPES["medi-full-process"]
#: Options only MEDI understands: a recipe's values are dropped when the method is TKD.
MEDI_ONLY_OPTIONS = ("smv_radius_mm", "merit", "lambda_csf", "percentage", "max_iter", "cg_max_iter", "cg_tol", "tol",
                     "fill_rim", "solver", "admm_options")
#: Display names of the inversions (sidecars, tables).
METHOD_NAMES = {"medi": "MEDI", "medi0": "MEDI+0", "tkd": "TKD"}


def resolve_recipe(recipe="whole-brain", **explicit):
    """The reconstruction keywords of a named recipe with explicit choices laid over it.

    Parameters
    ----------
    recipe : {"whole-brain", "medi-full-process", "plain"}
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
        ``smv_radius_mm=0`` removes the SMV step. A recipe's ``background_options`` belong to
        its background removal: they are dropped when another ``background`` is given.

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
    settings["lambda_"] = check_lambda(settings["lambda_"])
    if settings.get("smv_radius_mm") == 0:        # "0 = none": switches a recipe's SMV off
        settings.pop("smv_radius_mm")
    if ("background" in given and given["background"] != base.get("background")
            and "background_options" in base and "background_options" not in given):
        settings.pop("background_options")         # e.g. PDF's max_iter does not apply to V-SHARP
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


def check_lambda(lambda_):
    """Return ``lambda_`` as ``"auto"`` or a positive float; ``ValueError`` otherwise.

    Accepts the strings a command line gives (``"auto"``, ``"500"``).
    """
    if isinstance(lambda_, str):
        text = lambda_.strip().lower()
        if text == "auto":
            return "auto"
        try:
            lambda_ = float(text)
        except ValueError:
            raise ValueError(f"lambda must be 'auto' or a positive number, got {lambda_!r}") from None
    try:
        lam = float(lambda_)
    except (TypeError, ValueError):
        raise ValueError(f"lambda must be 'auto' or a positive number, got {lambda_!r}") from None
    if not np.isfinite(lam) or lam <= 0:
        raise ValueError(f"lambda must be 'auto' or a positive number, got {lambda_!r}")
    return lam


def complete_recipe(*, background="pdf", method="medi0", lambda_=1000.0, voxel_size_mm=None,
                    vsharp_max_radius_mm=25.0, csf_mask=None, smv_radius_mm=None, merit=None, fill_rim=None,
                    pdf_max_iter=None, solver="admm"):
    """Full :func:`~analysis.imaging.qsm.pipeline.reconstruct_megre` keywords from a study's few choices.

    The coupling rules of the toolbox's whole-brain recipe, written once for every simulation
    path (phantom notebooks, imaging cohort): MEDI after PDF (or no background removal) gets the
    SMV high-pass of :data:`AUTO_SMV_RADIUS` and MERIT; after V-SHARP neither (its local
    field is already high-passed); TKD takes neither.

    Parameters
    ----------
    background : {'pdf', 'vsharp', 'none'}
        Background field removal.
    method : {'medi0', 'medi', 'tkd'}
        Dipole inversion.
    lambda_ : float or "auto"
        MEDI data weight (ignored for TKD); ``"auto"``: chosen from the field (see
        :func:`analysis.imaging.qsm.medi`).
    voxel_size_mm : sequence of 3 float, optional
        Needed for ``background='vsharp'`` (the radii step).
    vsharp_max_radius_mm : float
        Largest V-SHARP sphere (mm), for ``background='vsharp'``.
    csf_mask : ndarray of bool, shape (X, Y, Z), optional
        CSF mask for MEDI+0 (passed only when ``method='medi0'``; MEDI+0 finds its own from R2*
        without it).
    smv_radius_mm : float, sequence of float or "auto", optional
        Override of the SMV radius (mm; see :func:`~analysis.imaging.qsm.dipole.smv_radii_mm`);
        0 switches it off. Default: :data:`AUTO_SMV_RADIUS` after PDF or no background removal.
    merit : bool, optional
        Override of MERIT (default: on whenever the SMV high-pass is).
    fill_rim : {'none', 'medi'}, optional
        χ in the SMV-eroded rim (see ``reconstruct_megre``); default ``'none'`` (the toolbox's
        eroded mask, as the simulation studies were measured: their ROIs lie inside it).
    pdf_max_iter : int, optional
        PDF's CG iterations (default: PDF's own, the toolbox's 30; the ``whole-brain`` recipe
        uses :data:`DEFAULT_PDF_MAX_ITER`).
    solver : {'admm', 'gncg'}
        MEDI's solver (see :func:`analysis.imaging.qsm.medi`; ignored for TKD).

    Returns
    -------
    dict
        Keywords ``background``, ``method`` and, as they apply, ``lambda_``,
        ``background_options``, ``csf_mask``, ``smv_radius_mm``, ``merit``, ``fill_rim``.

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
    elif background == "pdf" and pdf_max_iter is not None:
        kw["background_options"] = {"max_iter": int(pdf_max_iter)}
    if method == "medi0" and csf_mask is not None:
        kw["csf_mask"] = csf_mask
    if method == "tkd":
        if smv_radius_mm or merit or (fill_rim not in (None, "none")):
            raise ValueError("smv_radius_mm, merit and fill_rim are MEDI options; method='tkd' takes none of them")
        return kw
    kw["lambda_"] = check_lambda(lambda_)
    if solver not in ("admm", "gncg"):
        raise ValueError(f"solver must be 'admm' or 'gncg', got {solver!r}")
    kw["solver"] = solver
    if smv_radius_mm is None:
        smv_radius_mm = AUTO_SMV_RADIUS if background != "vsharp" else 0.0
    if merit is None:
        merit = bool(smv_radius_mm)
    if smv_radius_mm:
        kw["smv_radius_mm"] = smv_radius_mm if isinstance(smv_radius_mm, str) else float(smv_radius_mm)
    if merit:
        kw["merit"] = True
    if smv_radius_mm and fill_rim not in (None, "none"):
        kw["fill_rim"] = fill_rim
    return kw
