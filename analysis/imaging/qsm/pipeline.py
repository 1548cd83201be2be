"""The whole reconstruction, multi-echo magnitude/phase → χ, as MEDI's ``MEDI_full_process``.

Steps (each a public function of :mod:`analysis.imaging.qsm`):

1. root-sum-of-squares magnitude over echoes (:func:`combine_magnitude`);
2. brain mask, unless given (:func:`brain_mask`);
3. nonlinear complex field fit across echoes, with its noise map (:func:`fit_field_complex`);
4. spatial unwrapping of the fitted field (:func:`unwrap_laplacian` or :func:`unwrap_path`);
5. conversion to ppm of B0 (:func:`rad_to_ppm`);
6. background field removal (:func:`pdf` or :func:`vsharp`);
7. for MEDI+0, a CSF mask from R2* unless given (:func:`r2star_loglinear`,
   :func:`csf_mask_from_r2star`); where there is none, plain MEDI (a warning and a note);
8. dipole inversion (:func:`medi` or :func:`tkd`), zero-referenced to CSF when a CSF mask is used;
   with MEDI's SMV high-pass and ``fill_rim='medi'`` (the default recipe), a second MEDI pass
   without SMV fills the rim that the high-pass erodes, so χ covers the whole mask.

:func:`reconstruct_megre` runs them for one recipe (background removal + inversion and their
options); :func:`reconstruct_recipes` runs steps 1–5 once and 6–8 for several recipes, keeping
every intermediate (notebook 01 compares PDF with V-SHARP and MEDI, MEDI+0 and TKD that way).
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Mapping

import numpy as np

from analysis.io import progress_bar

from .background import pdf, vsharp
from .dipole import AUTO_SMV_ANCHORED_MAX_MM, DEFAULT_LAMBDA_CSF, medi, smv_eroded_mask, smv_radii_mm, tkd
from .fit import combine_magnitude, fit_field_complex, r2star_loglinear, rad_to_ppm
from .kernels import as_direction, as_voxel_size
from .mask import COMPACT_CSF_SPREAD_MM, brain_mask, csf_mask_from_r2star, csf_mask_spread_mm
from .recipes import check_lambda
from .unwrap import unwrap_laplacian, unwrap_path

__all__ = ["reconstruct_megre", "reconstruct_recipes", "medi_noise_std", "UNWRAP_METHODS", "BACKGROUND_METHODS",
           "INVERSION_METHODS", "RIM_METHODS"]

UNWRAP_METHODS = ("laplacian", "path", "none")
BACKGROUND_METHODS = ("pdf", "vsharp", "none")
INVERSION_METHODS = ("medi", "medi0", "tkd")
#: How χ is given in the rim that MEDI's SMV high-pass erodes (``fill_rim``): ``"none"`` leaves
#: it out (the toolbox: χ on the eroded mask only), ``"medi"`` fills it (see :func:`reconstruct_megre`).
RIM_METHODS = ("none", "medi")
_STEP_OPTIONS = ("fit_options", "mask_options", "unwrap_options", "background_options", "csf_options")
_SHARED_OPTIONS = ("fit_options", "mask_options", "unwrap_options")
_RECIPE_KEYS = ("background", "method", "lambda_", "background_options", "csf_options", "fill_rim")
#: Relative floor of the noise map given to MEDI (as PDF's): no weight exceeds 1000 × the median.
_MAX_RELATIVE_WEIGHT = 1e3



def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def reconstruct_megre(magnitude, phase, echo_times_s, *, voxel_size_mm, b0_tesla=3.0, b0_direction=(0.0, 0.0, 1.0),
                      mask=None, unwrap="laplacian", background="pdf", method="medi", lambda_="auto",
                      csf_mask=None, fill_rim="none", progress=True, **options):
    """Reconstruct a susceptibility map from multi-echo GRE magnitude and phase.

    Parameters
    ----------
    magnitude : ndarray, shape (X, Y, Z, E)
        Echo magnitudes (arbitrary units, non-negative).
    phase : ndarray, shape (X, Y, Z, E)
        Echo phases (radians; any range — only ``exp(i·phase)`` is used, so rescale phases
        stored in other units, e.g. 0–4095, to radians first).
    echo_times_s : sequence of E float
        Echo times (s), strictly increasing, E ≥ 2.
    voxel_size_mm : tuple of 3 float
        Voxel size (mm).
    b0_tesla : float
        Field strength (T).
    b0_direction : tuple of 3 float
        B0 direction in voxel axes (see :func:`analysis.imaging.qsm.b0_direction_from_affine`).
    mask : ndarray of bool, shape (X, Y, Z), optional
        Brain mask; default :func:`brain_mask` of the combined magnitude.
    unwrap : {'laplacian', 'path', 'none'}
        Spatial unwrapping of the fitted field.
    background : {'pdf', 'vsharp', 'none'}
        Background field removal (V-SHARP erodes the mask; the returned ``mask`` is the eroded one).
    method : {'medi', 'medi0', 'tkd'}
        Dipole inversion. ``'medi0'`` is MEDI+0: CSF regularisation and zero-referencing, with
        ``csf_mask`` or, if not given, a CSF mask from R2* < 5 s⁻¹. Where that finds no CSF in
        the (eroded) mask — a phantom in water, a small field of view — it falls back to plain
        MEDI (no CSF term, no zero reference) with a ``RuntimeWarning`` and says so in
        ``parameters["csf_mask"]``. ``'medi'`` with a ``csf_mask`` behaves as ``'medi0'`` (as
        the toolbox, which switches MEDI+0 on when a CSF mask exists); ``'tkd'`` with a
        ``csf_mask`` is only zero-referenced.
    lambda_ : float or "auto"
        MEDI's data weight for fields in radians (toolbox 1000); ``"auto"`` (default) chooses it
        from the local field (see :func:`analysis.imaging.qsm.medi`); ``parameters`` records the
        λ used and how it was chosen.
    csf_mask : ndarray of bool, shape (X, Y, Z), optional
        CSF (ventricle) or other reference mask; a given mask with no voxel in the (eroded)
        brain mask is an error. MEDI+0 holds χ uniform over it, which also pins the low spatial
        frequencies that the SMV high-pass leaves to the regulariser: a mask that spans the
        brain's CSF (the R2* default takes ventricles, sulci and the outer CSF) does that far
        better than the ventricles alone (2 mm realistic phantom, SMV 5 mm: thalamus − CSF
        −5.8 against −13.9 ppb). With ``smv_radius_mm="auto"`` a compact mask gets a 40 mm SMV
        pass for the deep brain instead (see :func:`~analysis.imaging.qsm.mask.csf_mask_spread_mm`);
        where none of 30 mm or more fits, a compact mask is flagged (a ``RuntimeWarning`` and
        ``parameters["csf_warning"]``).
    fill_rim : {'none', 'medi'}
        With MEDI's SMV high-pass (``smv_radius_mm``: mm, several radii or ``"auto"``, see
        :func:`~analysis.imaging.qsm.dipole.smv_radii_mm`), which erodes the mask by its (smallest) radius:
        ``'none'`` returns χ on the eroded mask (the toolbox); ``'medi'`` returns it on the
        whole mask, the interior from the SMV inversion and the eroded rim from a second MEDI
        pass without SMV (see Notes). Ignored without SMV and for TKD.
    progress : bool
        Show tqdm bars for the steps and the iterative solvers.
    **options
        ``fit_options``, ``mask_options``, ``unwrap_options``, ``background_options``,
        ``csf_options``: dicts of keyword arguments for :func:`fit_field_complex`,
        :func:`brain_mask`, the unwrapper, the background remover and
        :func:`csf_mask_from_r2star`. Every other option goes to the inversion
        (:func:`medi`: ``percentage``, ``max_iter``, ``cg_max_iter``, ``lambda_csf``,
        ``smv_radius_mm``, ``merit``, …; :func:`tkd`: ``threshold``, ``pad``).

    Notes
    -----
    The toolbox's whole-brain recipe (``MEDI_full_process``: ``MEDI_L1('lambda', 1000,
    'lambda_CSF', 100, 'merit', 'smv', 5)``) is ``method='medi0', smv_radius_mm=5, merit=True``
    (:data:`~analysis.imaging.qsm.recipes.WHOLE_BRAIN_RECIPE`;
    ``reconstruct_megre(..., **WHOLE_BRAIN_RECIPE)``). On noise-free data the fit's noise map is 0
    and PDF and MEDI use uniform weights (PDF warns).
    Plain MEDI after PDF leaves errors at the brain boundary: PDF also removes the part of the
    brain's own field that looks harmonic, and the inversion turns harmonic residuals into
    boundary artefacts. On the 2 mm head phantom (SNR 100, PDF, mask computed from the
    magnitude) the NRMSE against the truth, both referenced to the lateral ventricles, over the
    brain within the recipe's eroded mask was 53 % for plain MEDI and 16.7 % for the whole-brain
    recipe (thalamus −5.6 vs −1.0 ppb); notebook 01 (``results/tables/qsm_accuracy.csv``)
    compares the recipes, V-SHARP and TKD in more detail.

    **The rim (``fill_rim='medi'``).** The SMV high-pass is exact for a harmonic background
    only where the whole sphere lies in the mask, so the toolbox gives χ on the mask eroded by
    the radius: 79 % of the computed mask on the 2 mm phantom (85 % of its brain). The default
    recipe returns χ on the whole mask: inside the eroded mask the SMV result unchanged; in the
    rim the mean of (a) the SMV inversion's own solution there (χ is solved on the whole grid;
    the SMV-filtered kernel ties rim voxels within one radius to the interior's data) and (b) a
    second MEDI pass on the whole mask without SMV (same λ, MERIT, CSF), shifted by its mean
    difference to the SMV result over the interior. What limits the rim is the local field:
    PDF leaves 13 ppb rms of the brain's own field at 2–4 mm from the edge with the toolbox's
    30 CG iterations, 8 ppb with 100 (the default recipe's ``background_options``); given the
    true local field, plain MEDI is within 10 % NRMSE everywhere. With 60, 100 and 150 PDF
    iterations the default gave 23.6, 22.0 and 22.2 %; 300 let PDF absorb part of the brain's
    own field (interior 17.8 % instead of 15.4 %).
    On the 2 mm phantom (SNR 100, computed mask), NRMSE over the brain within the mask
    (ventricle-referenced), thalamus − CSF error:

    ===============================================  ===========  ======  =========
    χ in the rim from                                coverage     NRMSE   thalamus
    ===============================================  ===========  ======  =========
    (toolbox) nothing: eroded mask, PDF 30 iter.     79 % / 85 %  16.7 %  −1.0 ppb
    SMV pass's solution, PDF 30                      100 %        35.2 %  −1.0 ppb
    second MEDI pass without SMV, PDF 30             100 %        37.0 %  −1.0 ppb
    mean of the two, PDF 30                          100 %        29.4 %  −1.0 ppb
    0 (CSF) everywhere in the rim, PDF 30            100 %        27.0 %  −1.0 ppb
    SMV pass's solution, PDF 100                     100 %        25.9 %  −1.0 ppb
    second MEDI pass without SMV, PDF 100            100 %        24.6 %  −1.0 ppb
    **mean of the two, PDF 100 (default)**           100 %        22.0 %  −1.0 ppb
    ===============================================  ===========  ======  =========

    (coverage: of the computed mask / of the true brain; the interior alone is 15.4 % with
    PDF 100.) The two rim estimates err differently — the SMV one is better 4–6 mm from the
    edge, the plain one at 2–4 mm — so their mean is better than either. The second pass
    costs one more MEDI inversion without SMV (about half the first: 9 s vs 17 s at 2 mm).

    Returns
    -------
    dict
        ``chi_ppm`` (X, Y, Z) χ in ppm, 0 outside ``mask``; ``mask`` (bool) where χ is valid;
        ``smv_mask`` (bool or None) the SMV-eroded interior when the rim was filled;
        ``brain_mask`` (bool) the mask before any erosion; ``total_field_ppm`` unwrapped field
        (ppm, 0 outside the brain mask); ``local_field_ppm`` (ppm); ``noise_std`` (ppm) the
        field's standard deviation from the fit; ``noise_std_rad`` (rad per ΔTE);
        ``magnitude`` root-sum-of-squares over echoes; ``phase_offset_rad``; ``fit_residual``
        (relative); ``fitted_field_rad`` the fitted field before unwrapping (rad per ΔTE,
        wrapped); ``csf_mask`` (bool or None); ``r2star`` (1/s, or None if not computed);
        ``delta_te_s``; ``parameters`` (dict: everything needed to describe the run, for a JSON
        sidecar); ``info`` (dict: iterations and seconds per step).
    """
    step_opts = {k: options.pop(k, None) for k in _STEP_OPTIONS}
    recipe = {"background": background, "method": method, "lambda_": lambda_,
              "background_options": step_opts["background_options"], "csf_options": step_opts["csf_options"],
              "fill_rim": fill_rim, **options}
    out = reconstruct_recipes(magnitude, phase, echo_times_s, recipes={"": recipe}, voxel_size_mm=voxel_size_mm,
                              b0_tesla=b0_tesla, b0_direction=b0_direction, mask=mask, unwrap=unwrap,
                              csf_mask=csf_mask, progress=progress,
                              **{k: step_opts[k] for k in _SHARED_OPTIONS})
    return out[""]


def reconstruct_recipes(magnitude, phase, echo_times_s, *, recipes, voxel_size_mm, b0_tesla=3.0,
                        b0_direction=(0.0, 0.0, 1.0), mask=None, unwrap="laplacian", csf_mask=None, progress=True,
                        fit_options=None, mask_options=None, unwrap_options=None):
    """Several reconstructions of one acquisition, sharing the steps before background removal.

    The magnitude combination, brain mask, complex field fit and unwrapping run once; each
    recipe then removes the background (a background removal shared by several recipes with the
    same options runs once) and inverts the dipole. ``reconstruct_recipes(..., recipes={"a":
    kw})["a"]`` equals ``reconstruct_megre(..., **kw)``.

    Parameters
    ----------
    magnitude, phase, echo_times_s, voxel_size_mm, b0_tesla, b0_direction, mask, unwrap, csf_mask, progress
        As for :func:`reconstruct_megre` (magnitude and phase of shape (X, Y, Z, E), phase in
        radians, echo times in seconds, voxel size in mm, field strength in tesla).
    recipes : mapping of str to dict
        Name → keyword arguments of :func:`reconstruct_megre` that may differ between recipes:
        ``background``, ``method``, ``lambda_``, ``background_options``, ``csf_options``,
        ``fill_rim`` and the inversion's options (``smv_radius_mm``, ``merit``, ``threshold``, …); missing keys take
        :func:`reconstruct_megre`'s defaults. E.g. ``{"MEDI+0": WHOLE_BRAIN_RECIPE, "TKD":
        {"background": "vsharp", "method": "tkd"}}``.
    fit_options, mask_options, unwrap_options : dict, optional
        Keyword arguments of :func:`fit_field_complex`, :func:`brain_mask` and the unwrapper.

    Returns
    -------
    dict of str to dict
        Per recipe name, the dict :func:`reconstruct_megre` returns (shared arrays are the same
        objects), with ``fitted_field_rad`` (X, Y, Z), the fitted field before unwrapping (rad
        per ΔTE, wrapped to (−π, π]).
    """
    mag = np.asarray(magnitude)
    ph = np.asarray(phase)
    if mag.ndim != 4:
        raise ValueError(f"magnitude must have shape (X, Y, Z, E), got {mag.shape}")
    if ph.shape != mag.shape:
        raise ValueError(f"phase shape {ph.shape} does not match magnitude shape {mag.shape}")
    n_echo = mag.shape[-1]
    te = np.asarray(echo_times_s, dtype=float).ravel()
    if te.size != n_echo:
        raise ValueError(f"echo_times_s has {te.size} values but the data have {n_echo} echoes")
    if n_echo < 2:
        raise ValueError("reconstruct_megre needs at least 2 echoes (the field fit needs an echo spacing)")
    if not (np.all(np.isfinite(mag)) and np.all(np.isfinite(ph))):
        raise ValueError("magnitude or phase contains non-finite values")
    if np.any(mag < 0):
        raise ValueError("magnitude must be non-negative")
    vs = as_voxel_size(voxel_size_mm, name="voxel_size_mm")
    b0dir = as_direction(b0_direction)
    if not (np.isfinite(float(b0_tesla)) and float(b0_tesla) > 0):
        raise ValueError(f"b0_tesla must be positive, got {b0_tesla!r}")
    _check_choice(unwrap, "unwrap", UNWRAP_METHODS)
    if not isinstance(recipes, Mapping) or not recipes:
        raise ValueError("recipes must be a non-empty mapping of name to keyword arguments")
    checked = {str(name): _check_recipe(name, r) for name, r in recipes.items()}
    shape = mag.shape[:3]
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != shape:
            raise ValueError(f"mask shape {mask.shape} does not match the image shape {shape}")
        mask = mask.astype(bool)
        if not mask.any():
            raise ValueError("mask is empty (no voxel is True)")
    if csf_mask is not None:
        csf_mask = np.asarray(csf_mask)
        if csf_mask.shape != shape:
            raise ValueError(f"csf_mask shape {csf_mask.shape} does not match the image shape {shape}")
        csf_mask = csf_mask.astype(bool)
    fit_options, mask_options, unwrap_options = (dict(o or {}) for o in (fit_options, mask_options, unwrap_options))

    timings = {}
    bar = progress_bar(total=4 + 2 * len(checked), desc="QSM", enabled=progress, nested=True)

    def step(name):
        bar.set_description(f"QSM: {name}")
        return time.perf_counter()

    def done(name, t0, into=timings):
        into[name] = time.perf_counter() - t0
        bar.update(1)

    t0 = step("magnitude")
    mag_rss = combine_magnitude(mag)
    done("magnitude", t0)

    t0 = step("mask")
    bmask = mask if mask is not None else brain_mask(mag_rss, voxel_size=vs, **mask_options)
    done("mask", t0)

    t0 = step("field fit")
    signal = np.empty(mag.shape, np.complex64)
    for e in range(n_echo):  # echo by echo: bounds the temporaries
        signal[..., e] = mag[..., e] * np.exp(1j * ph[..., e].astype(np.float32))
    fit = fit_field_complex(signal, te, mask=bmask, progress=progress, **fit_options)
    del signal
    done("field fit", t0)

    t0 = step("unwrap")
    if unwrap == "laplacian":
        field_rad = unwrap_laplacian(fit.field_rad, mask=bmask, voxel_size=vs, progress=progress, **unwrap_options)
    elif unwrap == "path":
        field_rad = unwrap_path(fit.field_rad, mask=bmask, **unwrap_options)
    else:
        field_rad = np.where(bmask, fit.field_rad, 0.0).astype(np.float32)
    dte = fit.delta_te_s
    total_ppm = rad_to_ppm(field_rad, delta_te_s=dte, b0_tesla=b0_tesla).astype(np.float32)
    noise_ppm = rad_to_ppm(fit.noise_std_rad, delta_te_s=dte, b0_tesla=b0_tesla).astype(np.float32)
    done("unwrap", t0)

    shared = {
        "brain_mask": bmask,
        "total_field_ppm": np.where(bmask, total_ppm, 0.0).astype(np.float32),
        "noise_std": np.where(bmask, noise_ppm, 0.0).astype(np.float32),
        "noise_std_rad": fit.noise_std_rad,
        "magnitude": mag_rss,
        "phase_offset_rad": fit.phase_offset_rad,
        "fit_residual": fit.residual,
        "fitted_field_rad": fit.field_rad,
        "delta_te_s": dte,
    }
    backgrounds = {}   # (background, options) -> (local field, mask, seconds)
    r2star = None
    medi_noise = None
    results = {}
    for name, rc in checked.items():
        background, method, options = rc["background"], rc["method"], rc["options"]
        own = {}
        t0 = step(f"{name}: background" if name else "background")
        key = (background, _freeze(rc["background_options"]))
        if key not in backgrounds:
            if background == "pdf":
                # noise in the field's unit (ppm): it sets PDF's stopping level as in the toolbox
                bg_opts = {"noise_std": np.where(bmask, noise_ppm, 1.0), **rc["background_options"]}
                local_ppm = pdf(total_ppm, bmask, voxel_size=vs, b0_direction=b0dir, progress=progress, **bg_opts)
                cur_mask = bmask
            elif background == "vsharp":
                local_ppm, cur_mask = vsharp(total_ppm, bmask, voxel_size=vs, **rc["background_options"])
            else:
                local_ppm, cur_mask = np.where(bmask, total_ppm, 0.0).astype(np.float32), bmask
            backgrounds[key] = (local_ppm, cur_mask, time.perf_counter() - t0)
        local_ppm, cur_mask, bg_seconds = backgrounds[key]
        own["background"] = bg_seconds
        bar.update(1)

        t0 = step(f"{name}: inversion" if name else "inversion")
        where = f"recipe {name!r}: " if name else ""
        radii = smv_radii_mm(options.get("smv_radius_mm"), vs) if method != "tkd" else ()
        smv_r = radii[-1] if radii else None  # the smallest radius: the mask χ reaches
        inv_mask = smv_eroded_mask(cur_mask, smv_r, voxel_size=vs, pad=options.get("pad", 4)) if smv_r else cur_mask
        csf = csf_mask
        auto_csf = False
        csf_note = None
        if method == "medi0" and csf is None:
            if r2star is None:
                r2star = r2star_loglinear(mag, te, mask=bmask)
            csf = csf_mask_from_r2star(r2star, bmask, voxel_size=vs, **rc["csf_options"])
            auto_csf = True
            if not (csf & inv_mask).any():
                thr = float(rc["csf_options"].get("threshold_per_s", 5.0))
                inside = "the brain mask" if not smv_r else f"the brain mask eroded by the SMV radius ({smv_r:g} mm)"
                csf_note = f"none found (R2* < {thr:g} 1/s); fell back to MEDI"
                warnings.warn(f"{where}MEDI+0 found no CSF (R2* < {thr:g} 1/s) in {inside}: fell back to MEDI "
                              "(no CSF regularisation, no zero reference); pass csf_mask (--csf-mask-dir) to "
                              "use a reference region", RuntimeWarning, stacklevel=2)
                csf, auto_csf = None, False
        csf_spread = csf_note_compact = None
        if csf is not None:
            csf = csf & cur_mask
            if not csf.any():
                raise ValueError(f"{where}csf_mask has no voxel inside the (eroded) brain mask")
            if method != "tkd" and options.get("lambda_csf", DEFAULT_LAMBDA_CSF):   # MEDI's CSF term is on
                csf_spread = csf_mask_spread_mm(csf, cur_mask, voxel_size=vs)
        inv_info = {}
        smv_mask = None
        rim_note = None
        smv_note = None
        if method == "tkd":
            chi = tkd(local_ppm, cur_mask, voxel_size=vs, b0_direction=b0dir, csf_mask=csf, **options)
            chi_mask = cur_mask
        else:
            if medi_noise is None:
                medi_noise = (medi_noise_std(fit.noise_std_rad, bmask),)
            noise_in = medi_noise[0]
            if noise_in is not None:
                noise_in = np.where(cur_mask, noise_in, 1.0)
            medi_kw = dict(voxel_size=vs, noise_std=noise_in, b0_direction=b0dir, lambda_=rc["lambda_"],
                           delta_te_s=dte, b0_tesla=b0_tesla, csf_mask=csf, progress=progress, return_info=True)
            chi, inv_info = medi(local_ppm, cur_mask, mag_rss, **medi_kw, **options)
            chi_mask = inv_info.pop("mask")
            chi_smv_full = inv_info.pop("chi_unmasked", None)
            rim = cur_mask & ~chi_mask
            if smv_r and rc["fill_rim"] == "medi" and rim.any():
                plain_opts = {k: v for k, v in options.items() if k != "smv_radius_mm"}
                chi_plain, plain_info = medi(local_ppm, cur_mask, mag_rss, **medi_kw, **plain_opts)
                interior = chi_mask
                offset = float(np.mean(chi[interior] - chi_plain[interior]))
                chi = chi.copy()
                chi[rim] = 0.5 * (chi_smv_full[rim] + chi_plain[rim] + np.float32(offset))
                smv_mask, chi_mask = interior, cur_mask
                rim_note = (f"the {100 * rim.sum() / cur_mask.sum():.1f} % of the mask outside the SMV-eroded "
                            f"interior ({smv_r:g} mm): mean of the SMV inversion's solution there and a second MEDI "
                            "pass without SMV (shifted to the SMV result over the interior)")
                inv_info["rim_pass"] = {"n_iter": plain_info.get("n_iter", plain_info.get("n_gn")),
                                        "seconds": plain_info["seconds"], "offset_ppm": offset,
                                        "lambda": float(plain_info["lambda"])}
            if len(inv_info["smv_radii_mm"]) > 1:   # medi's radii after "auto" dropped a pass that did not fit
                used = inv_info["smv_radii_mm"]
                smv_note = (f"nested SMV passes of {', '.join(f'{r:g}' for r in used)} mm: each gives χ where its "
                            "sphere fits and the deeper ones do not")
            deepest = max(inv_info["smv_radii_mm"], default=0.0)
            if csf_spread is not None and csf_spread > COMPACT_CSF_SPREAD_MM and deepest < AUTO_SMV_ANCHORED_MAX_MM:
                csf_note_compact = (
                    f"compact CSF mask: brain voxels lie {csf_spread:.0f} mm (median) from it, more than "
                    f"{COMPACT_CSF_SPREAD_MM:g} mm (e.g. the ventricles alone), and no SMV pass of "
                    f"{AUTO_SMV_ANCHORED_MAX_MM:g} mm or more ({'none' if not deepest else f'{deepest:g} mm at most'}; "
                    "the object is too thin for one, or the radius was set): the low spatial frequencies are then "
                    "poorly pinned; on a realistic simulated head the thalamus - CSF contrast came out 5-10 ppb low. "
                    "A CSF mask that spans the brain's CSF (ventricles and sulci), or smv_radius_mm='auto' on a "
                    "whole brain, avoids it")
                warnings.warn(f"{where}{csf_note_compact}", RuntimeWarning, stacklevel=2)
        own["inversion"] = time.perf_counter() - t0
        bar.update(1)

        parameters = {
            "method": "TKD" if method == "tkd" else ("MEDI" if csf is None else "MEDI+0"),
            "unwrap": unwrap,
            "background": background,
            "lambda": float(inv_info["lambda"]) if method != "tkd" else None,
            "lambda_method": inv_info["lambda_method"] if method != "tkd" else None,
            "lambda_normalised": float(inv_info["lambda_normalised"]) if method != "tkd" else None,
            "solver": inv_info.get("solver") if method != "tkd" else None,
            "b0_tesla": float(b0_tesla),
            "b0_direction": list(b0dir),
            "voxel_size_mm": list(vs),
            "echo_times_s": te.tolist(),
            "delta_te_s": dte,
            "mask": "given" if mask is not None else "brain_mask (threshold + morphology)",
            "csf_mask": csf_note if csf_note else (None if csf is None else (
                f"R2* < {float(rc['csf_options'].get('threshold_per_s', 5.0)):g} 1/s" if auto_csf else "given")),
            "csf_mask_spread_mm": csf_spread,
            "csf_warning": csf_note_compact,
            "zero_reference": "CSF" if csf is not None and options.get("zero_reference", True) else None,
            "options": {k: v for k, v in options.items() if np.isscalar(v) or v is None},
            "rim": rim_note,
            "smv": smv_note,
            "smv_radii_mm": list(inv_info["smv_radii_mm"]) if method != "tkd" else [],
            "step_options": {k: {kk: vv for kk, vv in v.items() if np.isscalar(vv) or vv is None}
                             for k, v in (("fit_options", fit_options), ("mask_options", mask_options),
                                          ("unwrap_options", unwrap_options),
                                          ("background_options", rc["background_options"]),
                                          ("csf_options", rc["csf_options"])) if v},
            "units": {"chi": "ppm", "field": "ppm"},
        }
        if method != "tkd":
            parameters["noise_weights"] = ("fit noise map" if medi_noise[0] is not None
                                           else "uniform (noise map zero: noise-free data)")
        inv_info.pop("seconds", None)  # already in the timings
        info = {**inv_info, "seconds": {**timings, **own}, "fit_iterations": fit.n_iter}
        results[name] = {
            "chi_ppm": chi,
            "mask": chi_mask,
            "smv_mask": smv_mask,
            **shared,
            "local_field_ppm": local_ppm,
            "csf_mask": csf,
            "r2star": r2star if auto_csf else None,
            "parameters": parameters,
            "info": info,
        }
    bar.close()
    return results


def _check_recipe(name, recipe):
    """Validate one recipe; return its background, method, λ, step options and inversion options."""
    if not isinstance(recipe, Mapping):
        raise ValueError(f"recipe {name!r} must be a dict of keyword arguments, got {type(recipe).__name__}")
    r = dict(recipe)
    background = _check_choice(r.pop("background", "pdf"), "background", BACKGROUND_METHODS)
    method = _check_choice(r.pop("method", "medi"), "method", INVERSION_METHODS)
    lam = check_lambda(r.pop("lambda_", "auto"))
    bg_opts = dict(r.pop("background_options", None) or {})
    csf_opts = dict(r.pop("csf_options", None) or {})
    fill_rim = _check_choice(r.pop("fill_rim", None) or "none", "fill_rim", RIM_METHODS)
    for k in _SHARED_OPTIONS:
        if k in r:
            raise ValueError(f"recipe {name!r}: {k} is shared by all recipes; pass it to reconstruct_recipes")
    inv_fun = tkd if method == "tkd" else medi
    allowed = set(inspect.signature(inv_fun).parameters) - {
        "local_field", "mask", "magnitude", "voxel_size", "noise_std", "b0_direction", "lambda_", "delta_te_s",
        "b0_tesla", "csf_mask", "progress", "return_info"}
    unknown = sorted(set(r) - allowed)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for method {method!r}; allowed: {sorted(allowed)}")
    return {"background": background, "method": method, "lambda_": lam, "background_options": bg_opts,
            "csf_options": csf_opts, "fill_rim": fill_rim, "options": r}


def _freeze(options):
    """Hashable form of an options dict (arrays as tuples)."""
    out = []
    for k, v in sorted(options.items()):
        if isinstance(v, np.ndarray) or isinstance(v, (list, tuple)):
            v = tuple(np.ravel(np.asarray(v, dtype=object)).tolist())
        elif not isinstance(v, (str, int, float, bool, type(None))):
            v = ("id", id(v))
        out.append((k, v))
    return tuple(out)


def medi_noise_std(noise_rad, mask):
    """Noise map for MEDI's data weights, or None for uniform weights (noise-free data).

    Non-finite values in the mask become the largest finite one (least reliable); values below
    1e-3 × the median — zero included: :func:`fit_field_complex` reports 0 where the fit is exact
    — are floored there. A median of 0 means noise-free data: uniform weights.

    Parameters
    ----------
    noise_rad : ndarray
        Noise standard deviation of the fitted field (radians per echo spacing), e.g. the
        ``noise_std_rad`` of :func:`fit_field_complex` or of :func:`reconstruct_megre`'s output.
    mask : ndarray of bool
        Brain mask (same shape).

    Returns
    -------
    ndarray of float64 or None
        The floored noise map (1 outside ``mask``), MEDI's ``noise_std``; None for noise-free data.
    """
    n = np.asarray(noise_rad, dtype=np.float64)
    nm = n[mask]
    finite = nm[np.isfinite(nm)]
    if finite.size == 0:
        return None
    med = float(np.median(finite))
    if med <= 0:
        return None
    n = np.where(np.isfinite(n), n, float(finite.max()))
    return np.where(mask, np.maximum(n, med / _MAX_RELATIVE_WEIGHT), 1.0)
