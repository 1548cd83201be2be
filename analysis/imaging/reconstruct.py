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
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from analysis.imaging.bids import clean_label, find_brain_mask, find_mask, find_megre, load_megre
from analysis.imaging.derivatives import check_derivative_folder, clean_staging, write_qsm_derivatives
from analysis.imaging.qsm.pipeline import reconstruct_megre
from analysis.imaging.qsm.recipes import METHOD_NAMES, resolve_recipe

logger = logging.getLogger(__name__)

__all__ = ["polarity_check", "reconstruct_dataset"]

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


def polarity_check(chi_ppm, mask, *, ratio=1.25):
    """Does the χ map look sign-flipped? A check of the phase polarity convention.

    In the brain the largest susceptibility excursions are paramagnetic: veins (deoxyhaemoglobin)
    and iron-rich deep grey matter are far more positive than any tissue is negative, so the
    upper tail of χ (99.5th percentile above the median) is longer than the lower one (0.5th
    percentile below the median). A map whose lower tail is ``ratio`` times longer than its upper
    tail was most likely reconstructed from phase of the opposite sign convention (every χ
    flips sign); reconstruct it again with the opposite ``phase_sign`` (``--phase-sign``).

    On the simulated head phantom (3 mm, TKD) the tails are 133 ppb (positive) and 94 ppb
    (negative); with the phase negated, 94 and 133 ppb, which is flagged.

    Parameters
    ----------
    chi_ppm : ndarray, shape (X, Y, Z)
        χ map (ppm).
    mask : ndarray of bool, shape (X, Y, Z)
        Where χ is valid.
    ratio : float
        How much longer the negative tail must be to flag the map.

    Returns
    -------
    dict
        ``upper_tail_ppm``, ``lower_tail_ppm`` (both ≥ 0), ``suspect`` (bool) and ``message``
        (empty unless suspect).
    """
    v = np.asarray(chi_ppm, dtype=np.float64)[np.asarray(mask, bool)]
    v = v[np.isfinite(v)]
    if v.size < 100:
        return {"upper_tail_ppm": np.nan, "lower_tail_ppm": np.nan, "suspect": False, "message": ""}
    med = float(np.median(v))
    up, low = float(np.percentile(v, 99.5) - med), float(med - np.percentile(v, 0.5))
    suspect = bool(low > ratio * up)
    msg = ""
    if suspect:
        msg = (f"the negative tail of chi (0.5th percentile {low * 1000:.0f} ppb below the median) is longer than "
               f"the positive one ({up * 1000:.0f} ppb): veins and deep grey matter look diamagnetic, so the phase "
               "polarity is probably reversed; reconstruct with the opposite --phase-sign (phase_sign)")
    return {"upper_tail_ppm": up, "lower_tail_ppm": low, "suspect": suspect, "message": msg}


def _reconstruct_series(series, out_dir, *, recipe, method, lambda_, options, b0_tesla, min_echoes, brain_mask_dir,
                        save_fields, phase_sign, progress, csf_mask_dir=None):
    """Load, reconstruct and write one series; returns its result dict (raises ValueError on bad input)."""
    t0 = time.perf_counter()
    data = load_megre(series, min_echoes=min_echoes, b0_tesla=b0_tesla, phase_sign=phase_sign)
    for note in data.notes:
        logger.info("%s: %s", series.label, note)
    kw = dict(options)
    if brain_mask_dir is not None:
        kw["mask"] = find_brain_mask(brain_mask_dir, series, data)
    if csf_mask_dir is not None:
        kw["csf_mask"] = find_mask(csf_mask_dir, series, data, desc="csf")
    res = reconstruct_megre(data.magnitude, data.phase, data.echo_times_s, voxel_size_mm=data.voxel_size_mm,
                            b0_tesla=data.b0_tesla, b0_direction=data.b0_direction, method=method,
                            lambda_=lambda_, progress=progress, **kw)
    missing = [k for k in _REQUIRED_KEYS if k not in res]
    if missing:
        raise ValueError(f"reconstruct_megre returned no {missing} for {series.label}")
    notes = list(data.notes)
    recon_params = res.get("parameters") if isinstance(res.get("parameters"), dict) else {}
    if str(recon_params.get("csf_mask") or "").startswith("none found"):
        notes.append(f"MEDI+0 found no CSF: csf_mask {recon_params['csf_mask']} (no CSF regularisation, no zero "
                     "reference); give a reference mask with --csf-mask-dir (csf_mask_dir)")
    if recon_params.get("rim"):
        notes.append("chi in the rim of the mask: " + str(recon_params["rim"]))
    polarity = polarity_check(res["chi_ppm"], res["mask"])
    if polarity["suspect"]:
        logger.warning("%s: %s", series.label, polarity["message"])
        notes.append("WARNING: " + polarity["message"])
    params = {"recipe": recipe, "method": method, "lambda": recon_params.get("lambda", lambda_),
              "lambda_method": recon_params.get("lambda_method"),
              "lambda_normalised": recon_params.get("lambda_normalised"),
              "solver": recon_params.get("solver"), "b0_tesla": data.b0_tesla,
              "b0_direction_voxel_axes": list(data.b0_direction), "b0_direction_source": "affine (scanner z)",
              "echo_times_s": [float(t) for t in data.echo_times_s], "voxel_size_mm": list(data.voxel_size_mm),
              "phase_sign": int(phase_sign),
              "brain_mask": "given (" + str(brain_mask_dir) + ")" if brain_mask_dir is not None else "computed",
              "csf_mask": ("given (" + str(csf_mask_dir) + ")" if csf_mask_dir is not None
                           else recon_params.get("csf_mask")),
              "polarity_check": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in polarity.items()
                                 if k != "message"},
              **_jsonable(options)}
    if isinstance(res.get("parameters"), dict):
        params["reconstruction"] = _jsonable(res["parameters"])
    fields = {}
    if save_fields:
        for key, desc in (("total_field_ppm", "total"), ("local_field_ppm", "local")):
            if res.get(key) is not None:
                fields[desc] = res[key]
    magnitude = res.get("magnitude")
    if magnitude is None:
        magnitude = np.sqrt((np.asarray(data.magnitude, np.float64) ** 2).sum(-1))
    # the inversion that ran: MEDI+0 falls back to MEDI where it finds no CSF
    method_name = METHOD_NAMES[method]
    if method != "tkd" and str(recon_params.get("csf_mask") or "").startswith("none found"):
        method_name = METHOD_NAMES["medi"]
    files = write_qsm_derivatives(out_dir, series, res["chi_ppm"], res["mask"], data.affine,
                                  method=method_name, parameters=params, notes=notes,
                                  magnitude=magnitude, fields_ppm=fields,
                                  fieldmap_magnitude=data.magnitude[..., 0] if fields else None,
                                  b0_tesla=data.b0_tesla)
    return {"series": series.label, "files": files, "seconds": time.perf_counter() - t0,
            "polarity_suspect": polarity["suspect"]}


def reconstruct_dataset(bids_dir, out_dir, *, participant_label=None, session_label=None, recipe="whole-brain",
                        method=None, lambda_=None, b0_tesla=None, min_echoes=2, brain_mask_dir=None, csf_mask_dir=None,
                        save_fields=True, phase_sign=1, n_procs=1, progress=True, **options):
    """Reconstruct χ maps for every MEGRE series of a BIDS dataset and write derivatives.

    A series that fails (unreadable or truncated file, missing metadata, …) is reported with a
    one-line reason naming the file and the others are still reconstructed; the function then
    raises one ``ValueError`` summarising the failures.

    Parameters
    ----------
    bids_dir, out_dir : str or Path
        Input BIDS dataset and output derivative dataset (e.g. ``bids_dir/derivatives/qsm``).
        ``out_dir`` must be new, empty, or a QSM derivative folder written by this compendium
        (:func:`analysis.imaging.bids.check_derivative_folder`): another pipeline's folder, or
        one with unrelated files, is refused; input files are never overwritten.
    participant_label : str or list of str, optional
        Only these participants (with or without ``sub-``).
    session_label : str or list of str, optional
        Only these sessions (with or without ``ses-``).
    recipe : {"whole-brain", "medi-full-process", "plain"}
        Named defaults (:data:`~analysis.imaging.qsm.recipes.RECIPES`; see
        :func:`~analysis.imaging.qsm.recipes.resolve_recipe`): the toolbox's whole-brain
        recipe (PDF, MEDI+0, SMV 5 mm, MERIT, λ 1000) with χ on the whole mask (the default),
        the toolbox's recipe itself (χ on the mask eroded by 5 mm) or PDF + plain MEDI.
    method : {"medi", "medi0", "tkd"}, optional
        Dipole inversion (MEDI, MEDI+0 with CSF regularisation and zero reference, TKD);
        default: the recipe's.
    lambda_ : float or "auto", optional
        MEDI regularisation weight (data term, field in radians); ``"auto"`` chooses it per
        series from its local field (see :func:`analysis.imaging.qsm.medi`); default: the
        recipe's (``"auto"``; 1000, the toolbox's, for ``medi-full-process``). The sidecar
        records the λ used and how it was chosen.
    b0_tesla : float, optional
        Field strength for data whose sidecars lack ``MagneticFieldStrength``.
    min_echoes : int
        Fewest echoes accepted per series.
    brain_mask_dir : str or Path, optional
        Derivative dataset with a ``…_desc-brain_mask.nii.gz`` per series on the MEGRE grid
        (e.g. from skull stripping, or the phantom's ``derivatives/truth``); default: the
        pipeline computes its own mask from the magnitude.
    csf_mask_dir : str or Path, optional
        Derivative dataset with a ``…_desc-csf_mask.nii[.gz]`` per series on the MEGRE grid: the
        CSF (reference) region of MEDI+0 (regularised to be uniform, and χ's zero). Default:
        MEDI+0 finds CSF from R2* < 5 s⁻¹ and, where there is none (e.g. a phantom in water),
        falls back to MEDI with a warning and a sidecar note.
    save_fields : bool
        Also write the total and local fields (Hz) as ``fmap/…_desc-{total,local}_fieldmap``.
    phase_sign : {1, -1}
        Polarity of the phase (see :func:`analysis.imaging.bids.load_megre`); each χ map is
        checked with :func:`polarity_check` and a suspect one is flagged (warning and sidecar
        note).
    n_procs : int
        Series reconstructed in parallel (processes); 1 = one after the other.
    progress : bool
        Progress bars (series, and the reconstruction's steps and iterations).
    **options
        Passed on to ``reconstruct_megre`` over the recipe's values (``background``,
        ``smv_radius_mm``, ``merit``, ``unwrap``, …; ``None`` keeps the recipe's).

    Returns
    -------
    list of dict
        Per series: ``series`` (label), ``files`` (written paths), ``seconds``,
        ``polarity_suspect``.

    Raises
    ------
    ValueError
        On bad input (naming the file); if series fail, after trying them all, with one line
        per failed series.
    """
    settings = resolve_recipe(recipe, method=method, lambda_=lambda_, **options)
    method, lambda_ = settings.pop("method"), settings.pop("lambda_")
    options = settings
    if int(n_procs) < 1:
        raise ValueError(f"n_procs must be a positive integer, got {n_procs!r}")
    logger.info("recipe %s: method %s, lambda %s, %s", recipe, method, lambda_,
                ", ".join(f"{k} {v}" for k, v in options.items() if not isinstance(v, (dict, np.ndarray))))
    bids_dir, out_dir = Path(bids_dir), Path(out_dir)
    check_derivative_folder(out_dir, bids_dir=bids_dir)
    series_list = find_megre(bids_dir, participant_label)
    if session_label is not None:
        wanted = {clean_label(str(s).removeprefix("ses-"), "session label")
                  for s in ([session_label] if isinstance(session_label, str) else session_label)}
        series_list = [s for s in series_list if s.session in wanted]
        if not series_list:
            raise ValueError(f"no MEGRE series for session(s) {sorted(wanted)} in {bids_dir}")
    clean_staging(out_dir)
    kw = dict(out_dir=out_dir, recipe=recipe, method=method, lambda_=lambda_, options=options, b0_tesla=b0_tesla,
              min_echoes=min_echoes, brain_mask_dir=brain_mask_dir, csf_mask_dir=csf_mask_dir, save_fields=save_fields,
              phase_sign=phase_sign)

    def one(series, show):
        try:
            return _reconstruct_series(series, progress=show, **kw), None
        except ValueError as exc:
            msg = str(exc)
        except (OSError, EOFError, MemoryError) as exc:   # I/O trouble with one series must not stop the batch
            msg = f"{type(exc).__name__}: {exc}"
        return None, msg if series.label in msg or "sub-" in msg else f"{series.label}: {msg}"

    if int(n_procs) > 1 and len(series_list) > 1:
        outcomes = Parallel(n_jobs=int(n_procs))(delayed(one)(s, False) for s in series_list)
    else:
        outcomes = [one(s, progress) for s in tqdm(series_list, desc="QSM series", unit="series",
                                                    disable=not progress or len(series_list) < 2)]
    results, failures = [], []
    for series, (res, err) in zip(series_list, outcomes):
        if err is None:
            results.append(res)
        else:
            logger.error("%s failed: %s", series.label, err)
            failures.append(err)
    if failures:
        if len(series_list) == 1:
            raise ValueError(failures[0])
        raise ValueError(f"{len(failures)} of {len(series_list)} series failed ({len(results)} written to {out_dir}): "
                         + "; ".join(failures))
    return results
