"""Command line for the imaging half: ``python -m analysis qsm …`` and ``python -m analysis phantom …``.

``qsm BIDS_DIR OUT_DIR [--participant-label L ...] [--recipe whole-brain|plain] [--method …] [--lambda …]``
    Reconstruct every MEGRE series of a BIDS dataset (:func:`analysis.imaging.bids.find_megre`) with
    :func:`analysis.imaging.qsm.pipeline.reconstruct_megre` and write BIDS derivatives
    ``OUT_DIR/sub-<L>/anat/sub-<L>_Chimap.nii.gz`` (ppm), ``…_desc-brain_mask.nii.gz`` and a
    JSON sidecar (method, parameters, software versions). B0 is taken along the scanner z axis
    and expressed in voxel axes from each image's affine
    (:func:`analysis.imaging.qsm.kernels.b0_direction_from_affine`): right for data in scanner space,
    as converted from DICOM; images resampled to a template space lose that information.
    The default recipe is the MEDI toolbox's whole-brain one (:data:`RECIPES`): PDF, MEDI+0
    (CSF mask from R2*), SMV 5 mm, MERIT, λ 1000; ``--recipe plain`` is PDF + MEDI alone. Any
    option given explicitly (``--method``, ``--background``, ``--lambda``, ``--smv-radius``,
    ``--[no-]merit``) overrides the recipe's value.

``phantom OUT_BIDS_DIR [--subject 01] [--resolution 2] [--snr 100] …``
    Simulate the numerical head phantom's acquisition and write it as a BIDS dataset with its
    truth in ``OUT_BIDS_DIR/derivatives/truth`` (:func:`analysis.simulation.acquisition.simulate_bids_subject`).

Both commands raise ``ValueError`` on bad input; ``analysis.__main__`` prints it as one line
(``error: …``) and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

__all__ = ["RECIPES", "add_parser", "resolve_recipe", "run_phantom", "run_qsm"]

_REQUIRED_KEYS = ("chi_ppm", "mask")
_METHOD_NAMES = {"medi": "MEDI", "medi0": "MEDI+0", "tkd": "TKD"}

#: Named sets of :func:`analysis.imaging.qsm.pipeline.reconstruct_megre` keywords for ``--recipe``.
#: ``whole-brain`` is the toolbox's ``MEDI_full_process`` (= ``WHOLE_BRAIN_RECIPE``): on the
#: 2 mm phantom (notebook 01) it is the most accurate of the recipes compared there; ``plain``
#: is PDF + MEDI with the toolbox's ``MEDI_L1`` defaults, which leaves errors at the brain edge.
RECIPES = {
    "whole-brain": {"background": "pdf", "method": "medi0", "lambda_": 1000.0, "smv_radius_mm": 5.0,
                    "merit": True},
    "plain": {"background": "pdf", "method": "medi", "lambda_": 1000.0},
}
#: Options only MEDI understands: a recipe's values are dropped when the method is TKD.
_MEDI_ONLY = ("smv_radius_mm", "merit", "lambda_csf", "percentage", "max_iter", "cg_max_iter", "cg_tol", "tol")


def resolve_recipe(recipe="whole-brain", **explicit):
    """The reconstruction keywords of a named recipe with explicit choices laid over it.

    Parameters
    ----------
    recipe : {"whole-brain", "plain"}
        Name in :data:`RECIPES`.
    **explicit
        ``method``, ``lambda_``, ``background`` or any other keyword of
        :func:`analysis.imaging.qsm.pipeline.reconstruct_megre`; ``None`` means "the recipe's".

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
    if settings["method"] not in _METHOD_NAMES:
        raise ValueError(f"method must be one of {sorted(_METHOD_NAMES)}, got {settings['method']!r}")
    lam = settings["lambda_"]
    if not np.isfinite(lam) or lam <= 0:
        raise ValueError(f"lambda must be positive, got {lam!r}")
    settings["lambda_"] = float(lam)
    if settings.get("smv_radius_mm") == 0:        # "0 = none": switches a recipe's SMV off
        settings.pop("smv_radius_mm")
    if settings["method"] == "tkd":
        for key in _MEDI_ONLY:
            if key in base and key not in given:
                settings.pop(key)
    return settings


def _get_reconstructor():
    """The reconstruction entry point (looked up at call time so tests can replace it)."""
    try:
        from analysis.imaging.qsm.pipeline import reconstruct_megre
    except ImportError as exc:
        raise ValueError(f"the QSM reconstruction (analysis.imaging.qsm.pipeline.reconstruct_megre) is not available: {exc}") from None
    return reconstruct_megre


def _jsonable(d):
    out = {}
    for k, v in dict(d).items():
        if isinstance(v, np.ndarray):
            if v.size > 16:
                continue
            v = v.tolist()
        elif isinstance(v, (np.floating, np.integer)):
            v = v.item()
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out


def run_qsm(bids_dir, out_dir, *, participant_label=None, recipe="whole-brain", method=None, lambda_=None,
            b0_tesla=None, min_echoes=2, brain_mask_dir=None, save_fields=True, progress=True, **options):
    """Reconstruct χ maps for every MEGRE series of a BIDS dataset and write derivatives.

    Parameters
    ----------
    bids_dir, out_dir : str or Path
        Input BIDS dataset and output derivative dataset (may be ``bids_dir/derivatives/qsm``;
        input files are never overwritten).
    participant_label : str or list of str, optional
        Only these participants.
    recipe : {"whole-brain", "plain"}
        Named defaults (:data:`RECIPES`; see :func:`resolve_recipe`): the toolbox's whole-brain
        recipe (PDF, MEDI+0, SMV 5 mm, MERIT, λ 1000) or PDF + plain MEDI.
    method : {"medi", "medi0", "tkd"}, optional
        Dipole inversion (MEDI, MEDI+0 with CSF regularisation and zero reference, TKD);
        default: the recipe's.
    lambda_ : float, optional
        MEDI regularisation weight (data term, field in radians); default: the recipe's (1000,
        the toolbox's).
    b0_tesla : float, optional
        Field strength for data whose sidecars lack ``MagneticFieldStrength``.
    min_echoes : int
        Fewest echoes accepted per series.
    brain_mask_dir : str or Path, optional
        Derivative dataset with a ``…_desc-brain_mask.nii.gz`` per series on the MEGRE grid
        (e.g. from skull stripping, or the phantom's ``derivatives/truth``); default: the
        pipeline computes its own mask from the magnitude.
    save_fields : bool
        Also write the total and local fields (ppm) as ``_desc-{total,local}_fieldmap``.
    progress : bool
        Progress bars (series, and the reconstruction's steps and iterations).
    **options
        Passed on to ``reconstruct_megre`` over the recipe's values (``background``,
        ``smv_radius_mm``, ``merit``, ``unwrap``, …; ``None`` keeps the recipe's).

    Returns
    -------
    list of dict
        Per series: ``series`` (label), ``files`` (written paths), ``seconds``.

    Raises
    ------
    ValueError
        On bad input (naming the file); if several series fail, after trying them all.
    """
    from analysis.imaging.bids import find_brain_mask, find_megre, load_megre, write_qsm_derivatives

    settings = resolve_recipe(recipe, method=method, lambda_=lambda_, **options)
    method, lambda_ = settings.pop("method"), settings.pop("lambda_")
    options = settings
    logger.info("recipe %s: method %s, lambda %g, %s", recipe, method, lambda_,
                ", ".join(f"{k} {v}" for k, v in options.items() if not isinstance(v, (dict, np.ndarray))))
    bids_dir, out_dir = Path(bids_dir), Path(out_dir)
    if out_dir.resolve() == bids_dir.resolve():
        raise ValueError(f"OUT_DIR must differ from BIDS_DIR ({bids_dir}); e.g. {bids_dir / 'derivatives' / 'qsm'}")
    series_list = find_megre(bids_dir, participant_label)
    reconstruct = _get_reconstructor()
    results, failures = [], []
    for series in tqdm(series_list, desc="QSM series", unit="series", disable=not progress or len(series_list) < 2):
        t0 = time.perf_counter()
        try:
            data = load_megre(series, min_echoes=min_echoes, b0_tesla=b0_tesla)
            for note in data.notes:
                logger.info(note)
            kw = dict(options)
            if brain_mask_dir is not None:
                kw["mask"] = find_brain_mask(brain_mask_dir, series, data)
            res = reconstruct(data.magnitude, data.phase, data.echo_times_s, voxel_size_mm=data.voxel_size_mm,
                              b0_tesla=data.b0_tesla, b0_direction=data.b0_direction, method=method,
                              lambda_=float(lambda_), progress=progress, **kw)
            missing = [k for k in _REQUIRED_KEYS if k not in res]
            if missing:
                raise ValueError(f"reconstruct_megre returned no {missing} for {series.label}")
            params = {"recipe": recipe, "method": method, "lambda": float(lambda_), "b0_tesla": data.b0_tesla,
                      "b0_direction_voxel_axes": list(data.b0_direction), "b0_direction_source": "affine (scanner z)",
                      "echo_times_s": [float(t) for t in data.echo_times_s], "voxel_size_mm": list(data.voxel_size_mm),
                      "brain_mask": "given (" + str(brain_mask_dir) + ")" if brain_mask_dir is not None else "computed",
                      **_jsonable(options)}
            if isinstance(res.get("parameters"), dict):
                params["reconstruction"] = _jsonable(res["parameters"])
            extra = {}
            if save_fields:
                for key, desc in (("total_field_ppm", "total"), ("local_field_ppm", "local")):
                    if res.get(key) is not None:
                        extra[desc] = (res[key], "ppm")
            files = write_qsm_derivatives(out_dir, series, res["chi_ppm"], res["mask"], data.affine,
                                          method=_METHOD_NAMES[method], parameters=params,
                                          notes=data.notes, extra_maps=extra)
        except ValueError as exc:
            if len(series_list) == 1:
                raise
            logger.error("%s: %s", series.label, exc)
            failures.append(f"{series.label}: {exc}")
            continue
        results.append({"series": series.label, "files": files, "seconds": time.perf_counter() - t0})
    if failures:
        raise ValueError(f"{len(failures)} of {len(series_list)} series failed: " + "; ".join(failures))
    return results


def run_phantom(out_dir, *, subject="01", session=None, resolution_mm=2.0, snr=100.0, seed=0, phase_units="rad",
                write_truth=True, **phantom_kwargs):
    """Write a simulated phantom subject as BIDS (see :func:`analysis.simulation.acquisition.simulate_bids_subject`)."""
    from analysis.simulation.acquisition import simulate_bids_subject

    _, _, files = simulate_bids_subject(out_dir, subject=subject, session=session, resolution_mm=resolution_mm,
                                        snr=snr, seed=seed, phase_units=phase_units, write_truth=write_truth,
                                        **phantom_kwargs)
    return files


def _setup_logging():
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")


def _cmd_qsm(args):
    _setup_logging()
    extra = {"unwrap": args.unwrap, "background": args.background, "smv_radius_mm": args.smv_radius,
             "merit": args.merit}
    res = run_qsm(args.bids_dir, args.out_dir, participant_label=args.participant_label or None,
                  recipe=args.recipe, method=args.method, lambda_=args.lambda_, b0_tesla=args.b0_tesla, min_echoes=args.min_echoes,
                  brain_mask_dir=args.brain_mask_dir, save_fields=not args.no_fields, progress=not args.no_progress, **extra)
    for r in res:
        print(f"{r['series']}: wrote {len(r['files'])} files in {r['seconds']:.1f} s")


def _cmd_phantom(args):
    _setup_logging()
    snr = None if args.snr <= 0 else args.snr
    files = run_phantom(args.out_dir, subject=args.subject, session=args.session, resolution_mm=args.resolution,
                        snr=snr, seed=args.seed, phase_units=args.phase_units, write_truth=not args.no_truth,
                        thalamus_scale=args.thalamus_scale, thalamus_chi_ppm=args.thalamus_chi,
                        lesion_volume_ml=args.lesion_volume, n_lesions=args.n_lesions)
    print(f"wrote {len(files)} files under {args.out_dir}")


def add_parser(subparsers):
    """Register the ``qsm`` and ``phantom`` subcommands on an argparse ``subparsers`` object."""
    p = subparsers.add_parser("qsm", help="reconstruct susceptibility maps from a BIDS dataset (MEGRE)",
                              description=__doc__.split("\n\n")[1])
    p.add_argument("bids_dir", help="BIDS dataset with sub-*/anat/*_echo-<n>_part-{mag,phase}_MEGRE.nii[.gz]")
    p.add_argument("out_dir", help="output derivative dataset (e.g. BIDS_DIR/derivatives/qsm)")
    p.add_argument("--participant-label", nargs="+", metavar="L", help="only these participants (with or without sub-)")
    p.add_argument("--recipe", choices=tuple(RECIPES), default="whole-brain",
                   help="named defaults: whole-brain = the MEDI toolbox's MEDI_full_process (PDF, MEDI+0 with "
                        "an R2* CSF mask, SMV 5 mm, MERIT, lambda 1000); plain = PDF + MEDI. The options "
                        "below override the recipe's values (default: whole-brain)")
    p.add_argument("--method", choices=tuple(_METHOD_NAMES), default=None,
                   help="dipole inversion: medi, medi0 (MEDI+0, CSF-referenced) or tkd (default: the recipe's)")
    p.add_argument("--unwrap", choices=("laplacian", "path"), default=None, help="phase unwrapping (default: the pipeline's)")
    p.add_argument("--background", choices=("pdf", "vsharp"), default=None,
                   help="background field removal (default: the pipeline's)")
    p.add_argument("--lambda", dest="lambda_", type=float, default=None,
                   help="MEDI regularisation weight on the data term (field in radians; default: the recipe's, 1000)")
    p.add_argument("--smv-radius", type=float, default=None, metavar="MM",
                   help="MEDI: SMV high-pass of field and kernel with this radius (mm), mask eroded by it "
                        "(the toolbox's 'smv'; 0 = none; default: the recipe's, 5 for whole-brain)")
    p.add_argument("--merit", action=argparse.BooleanOptionalAction, default=None,
                   help="MEDI: MERIT reweighting of voxels with large residuals (default: the recipe's)")
    p.add_argument("--b0-tesla", type=float, default=None,
                   help="field strength (T) if the sidecars lack MagneticFieldStrength")
    p.add_argument("--min-echoes", type=int, default=2, help="fewest echoes accepted per series (default 2)")
    p.add_argument("--brain-mask-dir", default=None, metavar="DIR",
                   help="derivative folder with sub-<L>/anat/sub-<L>_desc-brain_mask.nii.gz on the MEGRE grid "
                        "(default: computed from the magnitude by threshold and morphology; it takes in scalp "
                        "below a first-echo SNR of about 20)")
    p.add_argument("--no-fields", action="store_true", help="do not write the total/local field maps")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_qsm)

    p = subparsers.add_parser("phantom", help="simulate the head phantom's MEGRE acquisition as a BIDS dataset")
    p.add_argument("out_dir", help="BIDS dataset to write (created if needed)")
    p.add_argument("--subject", default="01", help="participant label (default 01)")
    p.add_argument("--session", default=None, help="session label (default: none)")
    p.add_argument("--resolution", type=float, default=2.0, help="voxel size in mm (default 2; 1 for the full phantom)")
    p.add_argument("--snr", type=float, default=100.0, help="first-echo SNR in the brain (default 100; 0 = noise-free)")
    p.add_argument("--seed", type=int, default=0, help="random seed (lesions, phase offset, noise)")
    p.add_argument("--thalamus-scale", type=float, default=1.0, help="thalamic volume factor (default 1)")
    p.add_argument("--thalamus-chi", type=float, default=0.04, help="thalamic susceptibility in ppm vs CSF (default 0.04)")
    p.add_argument("--lesion-volume", type=float, default=5.0, help="total T2 lesion volume in mL (default 5)")
    p.add_argument("--n-lesions", type=int, default=6, help="number of lesions (default 6)")
    p.add_argument("--phase-units", choices=("rad", "arbitrary"), default="rad",
                   help="store phase in radians (float) or as 12-bit integers 0..4095 (default rad)")
    p.add_argument("--no-truth", action="store_true", help="do not write derivatives/truth")
    p.set_defaults(func=_cmd_phantom)
    return subparsers
