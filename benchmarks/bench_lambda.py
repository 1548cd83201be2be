"""Automatic λ for MEDI vs the best λ of a sweep, on head-phantom settings (prints one row each).

Usage::

    python benchmarks/bench_lambda.py [--quick] [--cases NAME ...] [--solver medi|admm]
                                      [--method locality|lcurve|discrepancy] [--threshold 0.2]
                                      [--realism simple|realistic] [--workers N] [--list]

For each setting the benchmark builds the head phantom (:func:`analysis.simulation.phantom.make_head_phantom`),
makes a local field, runs :func:`analysis.imaging.qsm.regularisation.choose_lambda` (NRMSE of every
solve it makes is recorded through its ``callback``), then solves at extra λ around the choice
(normalised λ × 10^±0.25, ±0.5, ±1) so that the best λ of the sweep is known; it prints the
automatic λ (solver convention and normalised), the best swept λ, both NRMSEs
(:func:`analysis.imaging.metrics.nrmse` over the reconstruction mask, %), their ratio, the number of
solves and the seconds of the automatic choice.

Fields:

``exact``
    The phantom's local field (:func:`analysis.simulation.acquisition.phantom_fields`; for the
    realistic phantom computed on its fine grid and averaged, so no "inverse crime") plus white
    Gaussian noise inside the brain of σ = 0.035 ppm / SNR × (4.8 ms / ΔTE) × (3 T / B0): 0.035/SNR
    is the median noise of the field fitted from the simulated 11-echo acquisition of the 2 mm
    phantom at 3 T, ΔTE 4.8 ms (:func:`~analysis.simulation.acquisition.simulate_megre` +
    :func:`~analysis.imaging.qsm.fit.fit_field_complex`: 0.00035 ppm at SNR 100).
``pdf``
    The acquisition simulated at that SNR (with its background field), field fit, Laplacian
    unwrapping and PDF background removal (:func:`analysis.imaging.qsm.pipeline.reconstruct_megre`):
    the local field then carries PDF's residual background — model error, as real data do — and
    the fit's noise map.

In both, the magnitude is the root-sum-of-squares of the simulated noisy echoes at that SNR (a
noise-free magnitude of the piecewise-constant phantom puts MEDI's edge mask exactly on the true
boundaries, and any λ then gives a few % NRMSE: an inverse crime).

Cases (``--cases``; default all but ``pdf``, ``pdf-nomag``, ``noise...``-free extras; ``--quick`` runs
``quick-*`` at 3 mm)::

    snr50, snr100, snr200         exact field, magnitude, no noise map, 2 mm, 3 T, ΔTE 4.8 ms
    nomag                         exact, SNR 100, no magnitude (uniform edge mask), no noise map
    dte2.4, 7T                    exact, SNR 100, ΔTE 2.4 ms / B0 7 T (field ppm, noise scaled)
    noise0.001, 0.003, 0.005      exact + white noise of that standard deviation (ppm), 2 mm: the
                                  field's own noise matters (0.005: bench_medi.py's default)
    3mm                           exact, SNR 100, 3 mm
    pdf                           pdf field, magnitude + fit noise map
    pdf-nomag                     pdf field, no magnitude, no noise map (the real-data situation)
    whole-brain                   pdf field, magnitude, noise map, the pipeline's default MEDI+0 recipe
                                  (CSF mask from R2*, nested SMV passes of smv_radius_mm='auto', a
                                  given λ for every pass; MERIT); NRMSE on the SMV-eroded mask (the
                                  locality rule refuses the SMV option)
    slab                          realistic phantom only: 0.5 × 0.5 × 2 mm, 40 mm slab, exact, SNR 100
    1mm                           exact, SNR 100, 1 mm (about 10 minutes with the realistic phantom)
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

CASES = {
    "snr50": dict(field="exact", snr=50.0),
    "snr100": dict(field="exact", snr=100.0),
    "snr200": dict(field="exact", snr=200.0),
    "nomag": dict(field="exact", snr=100.0, magnitude=False),
    "dte2.4": dict(field="exact", snr=100.0, delta_te_s=2.4e-3),
    "7T": dict(field="exact", snr=100.0, b0_tesla=7.0),
    "noise0.001": dict(field="exact", noise_ppm=0.001),
    "noise0.003": dict(field="exact", noise_ppm=0.003),
    "noise0.005": dict(field="exact", noise_ppm=0.005),
    "3mm": dict(field="exact", snr=100.0, resolution=3.0),
    "pdf": dict(field="pdf", snr=100.0, noise_map=True),
    "pdf-nomag": dict(field="pdf", snr=100.0, magnitude=False),
    "whole-brain": dict(field="pdf", snr=100.0, noise_map=True, csf=True,
                        options=dict(smv_radius_mm="auto", merit=True)),
    "slab": dict(field="exact", snr=100.0, resolution=(0.5, 0.5, 2.0), slab_mm=40.0, realistic_only=True),
    "1mm": dict(field="exact", snr=100.0, resolution=1.0),
    "quick-snr100": dict(field="exact", snr=100.0, resolution=3.0),
    "quick-nomag": dict(field="exact", snr=100.0, resolution=3.0, magnitude=False),
    "quick-pdf-nomag": dict(field="pdf", snr=100.0, resolution=3.0, magnitude=False),
}
DEFAULT = ["snr50", "snr100", "snr200", "nomag", "dte2.4", "7T", "noise0.001", "noise0.003", "noise0.005", "3mm",
           "whole-brain", "slab", "1mm"]
QUICK = ["quick-snr100", "quick-nomag", "quick-pdf-nomag"]
#: Offsets (decades of λ) of the extra solves around the automatic choice.
SWEEP_DECADES = (-1.0, -0.5, -0.25, 0.25, 0.5, 1.0)
#: Field noise (ppm) at SNR 1 for ΔTE 4.8 ms, 3 T (see the module docstring).
NOISE_PPM_AT_SNR1 = 0.035

_PHANTOMS = {}


def _phantom(resolution, realism, slab_mm=None):
    from analysis.simulation.phantom import make_head_phantom

    key = (resolution, realism, slab_mm)
    if key not in _PHANTOMS:
        kw = {}
        if realism == "realistic":
            kw["realism"] = "realistic"
            kw["max_fine_voxels"] = 96_000_000  # 1 mm: the 0.5 mm grid has 77 M voxels
            if slab_mm is not None:
                kw["slab_mm"] = slab_mm
        _PHANTOMS.clear()  # one at a time (memory)
        _PHANTOMS[key] = make_head_phantom(resolution_mm=resolution, seed=0, **kw)
    return _PHANTOMS[key]


def make_case(name, realism="simple"):
    """Return a dict: field, mask, magnitude, noise_std, voxel_size, delta_te_s, b0_tesla, truth, label."""
    c = dict(CASES[name])
    if c.pop("realistic_only", False) and realism != "realistic":
        return None
    res = c.get("resolution", 2.0)
    dte = c.get("delta_te_s", 4.8e-3)
    b0 = c.get("b0_tesla", 3.0)
    ph = _phantom(res, realism, c.get("slab_mm"))
    mask = np.asarray(ph.brain_mask, bool)
    truth = np.where(mask, ph.chi_ppm, 0.0).astype(np.float32)
    vs = tuple(float(v) for v in ph.voxel_size_mm)
    rng = np.random.default_rng(1)
    noise_map = None
    from analysis.simulation.acquisition import simulate_megre, simulation_seed

    snr = c.get("snr", 100.0)
    sim = simulate_megre(ph, snr=snr, seed=simulation_seed(0), b0_tesla=b0)
    # magnitude: root-sum-of-squares of the simulated (noisy) echoes — a noise-free magnitude
    # would put MEDI's edges exactly on the phantom's label boundaries (an "inverse crime")
    mag = np.sqrt((sim.magnitude.astype(np.float32) ** 2).sum(-1))
    if c["field"] == "exact":
        from analysis.simulation.acquisition import phantom_fields

        _, local = phantom_fields(ph)
        sigma = c.get("noise_ppm") or NOISE_PPM_AT_SNR1 / snr * (4.8e-3 / dte) * (3.0 / b0)
        field = np.where(mask, local + sigma * rng.standard_normal(local.shape, dtype=np.float32), 0.0)
        label = f"exact field + {sigma * 1e3:.3g} ppb noise"
    else:
        from analysis.imaging.qsm.fit import rad_per_ppm
        from analysis.imaging.qsm.pipeline import reconstruct_megre

        rec = reconstruct_megre(sim.magnitude, sim.phase, sim.echo_times_s, voxel_size_mm=sim.voxel_size_mm,
                                b0_tesla=b0, b0_direction=sim.b0_direction, mask=mask, method="tkd",
                                background="pdf", progress=False)
        mask = np.asarray(rec["mask"], bool)
        field = np.where(mask, rec["local_field_ppm"], 0.0)
        dte = float(rec["delta_te_s"])
        nr = np.asarray(rec["noise_std_rad"], float) / rad_per_ppm(delta_te_s=dte, b0_tesla=b0)
        med = float(np.median(nr[mask]))
        noise_map = np.where(mask, np.maximum(nr, 1e-3 * med), 1.0) if c.get("noise_map") and med > 0 else None
        label = "PDF local field" + (" + fit noise map" if noise_map is not None else "")
        if c.get("csf"):  # MEDI+0's CSF mask as the pipeline finds it: R2* < 5 1/s (ventricles, sulci, outer CSF)
            from analysis.imaging.qsm import csf_mask_from_r2star, r2star_loglinear

            r2 = r2star_loglinear(sim.magnitude, sim.echo_times_s, mask=mask)
            c["csf_mask"] = csf_mask_from_r2star(r2, mask, voxel_size=vs)
    del sim
    if not c.get("magnitude", True):
        mag = None
    label += ", no magnitude" if mag is None else ""
    options = dict(c.get("options", {}))
    if c.get("csf"):
        options["csf_mask"] = c["csf_mask"]
        label += ", MEDI+0 (R2* CSF mask, nested SMV, MERIT)"
    return dict(field=field.astype(np.float32), mask=mask, magnitude=mag, noise_std=noise_map, voxel_size=vs,
                delta_te_s=dte, b0_tesla=b0, truth=truth, label=label, resolution=res, options=options)


def run_case(name, args):
    from functools import partial

    from analysis.imaging.metrics import nrmse
    from analysis.imaging.qsm import medi
    from analysis.imaging.qsm.regularisation import choose_lambda

    solver = partial(medi, solver="gncg" if args.solver == "medi" else "admm")
    t0 = time.perf_counter()
    case = make_case(name, args.realism)
    if case is None:
        return None
    t_build = time.perf_counter() - t0
    scores = {}

    csf = case["options"].get("csf_mask")

    def score(lam, chi, info):
        m = info.get("mask", case["mask"])
        if csf is not None:  # the sweep's maps are not zero-referenced: reference them as the final one
            chi = np.where(m, chi - chi[csf & m].mean(), 0.0)
        scores[float(lam)] = nrmse(chi, case["truth"], mask=m)

    if args.method == "auto":
        return _run_auto(name, case, solver, score, scores, args, t_build)
    kw = dict(voxel_size=case["voxel_size"], noise_std=case["noise_std"], delta_te_s=case["delta_te_s"],
              b0_tesla=case["b0_tesla"], solver=solver, method=args.method, callback=score, **case["options"])
    if args.threshold is not None:
        kw["threshold"] = args.threshold
    if args.grid:
        from analysis.imaging.qsm.fit import rad_per_ppm

        lo, hi, step = (float(x) for x in args.grid.split(","))
        sig = float(np.std(case["field"][case["mask"]])) * rad_per_ppm(delta_te_s=case["delta_te_s"],
                                                                         b0_tesla=case["b0_tesla"])
        kw["lambdas"] = 10.0 ** np.arange(lo, hi + 1e-9, step) / sig
    if args.workers:
        kw["workers"] = args.workers
    choice = choose_lambda(case["field"], case["mask"], case["magnitude"], **kw)
    auto_nrmse = nrmse(choice.chi, case["truth"], mask=choice.info.get("mask", case["mask"]))
    _sweep_around(choice.lambda_, case, solver, score, args)
    best = min(scores, key=scores.get)
    s = choice.field_scale_rad
    row = dict(case=name, label=case["label"], res=case["resolution"], lam=choice.lambda_,
               lam_norm=choice.lambda_normalised, nrmse=auto_nrmse, best_lam=best, best_norm=best * s,
               best_nrmse=scores[best], ratio=auto_nrmse / scores[best], solves=choice.n_solves,
               seconds=choice.seconds, build=t_build, bracketed=choice.bracketed)
    tab = choice.table.copy()
    tab["nrmse"] = [scores.get(float(v), np.nan) for v in tab["lambda"]]
    if args.save:
        import os

        os.makedirs(args.save, exist_ok=True)
        tab.to_csv(os.path.join(args.save, f"{name}_{args.realism}_{args.solver}_{args.method}.csv"), index=False)
    if args.verbose:
        print(tab.to_string(index=False, float_format="%.4g"))
        extra = sorted(k for k in scores if not np.any(np.isclose(tab["lambda"].to_numpy(), k)))
        print("  extra sweep: " + ", ".join(f"λ {k:.4g} (norm {k * s:.3g}): {scores[k]:.2f} %" for k in extra))
    return row


def _solve(case, solver, lam, args):
    """One solve of ``case`` at ``lam`` (uniform magnitude when the case has none): (χ, info)."""
    mag = case["magnitude"] if case["magnitude"] is not None else case["mask"].astype(np.float32)
    return solver(case["field"], case["mask"], mag, voxel_size=case["voxel_size"], noise_std=case["noise_std"],
                  delta_te_s=case["delta_te_s"], b0_tesla=case["b0_tesla"], lambda_=lam, return_info=True,
                  **case["options"], **({"workers": args.workers} if args.workers else {}))


def _sweep_around(lam0, case, solver, score, args):
    """Solve at ``lam0`` × 10^d for the sweep's offsets d (none with ``--no-sweep``), scoring each."""
    decades = SWEEP_DECADES if args.sweep is None else tuple(float(x) for x in args.sweep.split(","))
    for dec in decades if not args.no_sweep else ():
        lam = lam0 * 10.0 ** dec
        chi, info = _solve(case, solver, lam, args)
        score(lam, chi, info)


def _run_auto(name, case, solver, score, scores, args, t_build):
    """The solvers' own ``lambda_="auto"``: one solve, then the sweep around it."""
    t0 = time.perf_counter()
    chi, info = _solve(case, solver, "auto", args)
    seconds = time.perf_counter() - t0
    lam, s = float(info["lambda"]), float(info["lambda_field_scale_rad"])
    score(lam, chi, info)
    auto_nrmse = scores[lam]
    _sweep_around(lam, case, solver, score, args)
    best = min(scores, key=scores.get)
    if args.verbose:
        print("  sweep: " + ", ".join(f"λ_norm {k * s:.3g}: {v:.2f} %" for k, v in sorted(scores.items())))
    return dict(case=name, label=case["label"], res=case["resolution"], lam=lam, lam_norm=lam * s, nrmse=auto_nrmse,
                best_lam=best, best_norm=best * s, best_nrmse=scores[best], ratio=auto_nrmse / scores[best], solves=1,
                seconds=seconds, build=t_build, bracketed=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 mm cases only (a few minutes)")
    ap.add_argument("--cases", nargs="+", choices=sorted(CASES), help="cases to run (default: all but 1mm)")
    ap.add_argument("--solver", default="admm", choices=["medi", "admm"],
                    help="admm (the default solver of medi) or medi (Gauss-Newton/CG)")
    ap.add_argument("--method", default="auto", choices=["auto", "locality", "lcurve", "discrepancy"],
                    help="auto: the solvers' lambda_='auto' (default); else choose_lambda's rule")
    ap.add_argument("--threshold", type=float, default=None, help="locality threshold (default 0.2)")
    ap.add_argument("--realism", default="realistic", choices=["simple", "realistic"])
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--no-sweep", action="store_true", help="skip the extra solves (no best λ beyond the choice's)")
    ap.add_argument("--sweep", default=None,
                    help="comma-separated offsets (decades) of the extra solves (default -1,-0.5,-0.25,0.25,0.5,1)")
    ap.add_argument("--verbose", action="store_true", help="print each choice's sweep table with NRMSEs")
    ap.add_argument("--grid", default=None,
                    help="lo,hi,step: solve on the grid 10^lo … 10^hi (normalised λ) instead of the adaptive search")
    ap.add_argument("--save", default=None, help="folder for one CSV per case: the sweep table with NRMSEs")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args(argv)
    if args.list:
        for k, v in CASES.items():
            print(f"{k:16s} {v}")
        return 0
    names = args.cases or (QUICK if args.quick else DEFAULT)
    print(f"solver {args.solver}, rule {args.method}, phantom {args.realism}; NRMSE over the reconstruction mask (%)")
    head = (f"{'case':15s} {'res':>5s} {'auto λ':>9s} {'λ_norm':>7s} {'NRMSE':>6s} {'best λ':>9s} {'λ_norm':>7s} "
            f"{'NRMSE':>6s} {'ratio':>6s} {'solves':>6s} {'sec':>6s}  field")
    print(head)
    rows = []
    for name in names:
        row = run_case(name, args)
        if row is None:
            print(f"{name:15s} (needs --realism realistic)")
            continue
        rows.append(row)
        res = row["res"] if np.isscalar(row["res"]) else "x".join(f"{r:g}" for r in row["res"])
        flag = "" if row["bracketed"] else " (not bracketed)"
        print(f"{name:15s} {res!s:>5} {row['lam']:9.4g} {row['lam_norm']:7.3g} {row['nrmse']:6.2f} "
              f"{row['best_lam']:9.4g} {row['best_norm']:7.3g} {row['best_nrmse']:6.2f} {row['ratio']:6.3f} "
              f"{row['solves']:6d} {row['seconds']:6.1f}  {row['label']}{flag}", flush=True)
    if rows:
        worst = max(rows, key=lambda r: r["ratio"])
        print(f"RESULT worst_ratio={worst['ratio']:.3f} ({worst['case']}) within_10pct="
              f"{sum(r['ratio'] <= 1.10 for r in rows)}/{len(rows)} "
              f"mean_solves={np.mean([r['solves'] for r in rows]):.1f} "
              f"mean_seconds={np.mean([r['seconds'] for r in rows]):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
