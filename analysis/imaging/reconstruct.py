"""Reconstruct χ for every multi-echo GRE series of a BIDS dataset and write QSM derivatives.

The library behind ``python -m analysis qsm``: each series found by
:func:`analysis.imaging.bids.find_megre` is read (:func:`~analysis.imaging.bids.load_megre`),
reconstructed with :func:`analysis.imaging.qsm.pipeline.reconstruct_megre` using a named recipe
(:mod:`analysis.imaging.qsm.recipes`) and written as BIDS derivatives
``OUT_DIR/sub-<L>/anat/sub-<L>_Chimap.nii.gz`` (ppm), ``…_desc-brain_mask.nii.gz`` and a JSON
sidecar (method, parameters, software versions). B0 is taken along the scanner z axis and
expressed in voxel axes from each image's affine
(:func:`analysis.imaging.qsm.kernels.b0_direction_from_affine`): right for data in scanner
space, as converted from DICOM; images resampled to a template space lose that information.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from analysis.imaging.bids import find_brain_mask, find_megre, load_megre, write_qsm_derivatives
from analysis.imaging.qsm.pipeline import reconstruct_megre
from analysis.imaging.qsm.recipes import METHOD_NAMES, resolve_recipe

logger = logging.getLogger(__name__)

__all__ = ["reconstruct_dataset"]

_REQUIRED_KEYS = ("chi_ppm", "mask")


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


def reconstruct_dataset(bids_dir, out_dir, *, participant_label=None, recipe="whole-brain", method=None, lambda_=None,
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
        Named defaults (:data:`~analysis.imaging.qsm.recipes.RECIPES`; see
        :func:`~analysis.imaging.qsm.recipes.resolve_recipe`): the toolbox's whole-brain
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
    settings = resolve_recipe(recipe, method=method, lambda_=lambda_, **options)
    method, lambda_ = settings.pop("method"), settings.pop("lambda_")
    options = settings
    logger.info("recipe %s: method %s, lambda %g, %s", recipe, method, lambda_,
                ", ".join(f"{k} {v}" for k, v in options.items() if not isinstance(v, (dict, np.ndarray))))
    bids_dir, out_dir = Path(bids_dir), Path(out_dir)
    if out_dir.resolve() == bids_dir.resolve():
        raise ValueError(f"OUT_DIR must differ from BIDS_DIR ({bids_dir}); e.g. {bids_dir / 'derivatives' / 'qsm'}")
    series_list = find_megre(bids_dir, participant_label)
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
            res = reconstruct_megre(data.magnitude, data.phase, data.echo_times_s, voxel_size_mm=data.voxel_size_mm,
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
                                          method=METHOD_NAMES[method], parameters=params,
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
