"""Compare dipole-inversion solvers: MEDI by ADMM (medi_admm), MEDI by Gauss–Newton CG (medi), TKD.

Usage::

    python benchmarks/bench_solvers.py [--quick] [--resolutions 2,1] [--lambda auto|1000]
                                       [--admm-lambdas 100,300] [--gncg-converged] [--medi0]
                                       [--noise 0.005] [--seed 0] [--workers N] [--repeat 1]

The head phantom (:func:`analysis.simulation.phantom.make_head_phantom`, local sources only, its
field simulated with the dipole kernel plus Gaussian noise inside the brain, exactly as
``benchmarks/bench_medi.py`` builds it) at each resolution. Per solver: wall seconds; the FFT-pair
ratio — seconds divided by one float32 ``rfftn`` + ``irfftn`` pair (``scipy.fft``, the same
workers) on that solver's padded grid, timed right before and after each run of the solver
(best of 3 each; the faster of the two is used), median over ``--repeat`` runs — in wall and in
CPU time (CPU time is less sensitive to other jobs on a shared machine); seconds are the best
run; iterations (ADMM iterations; Gauss–Newton steps / total CG steps); peak memory of the
call (tracemalloc: NumPy buffers allocated by the solver, inputs excluded); NRMSE on the mask
as ``bench_medi.py`` reports it (raw); and, on CSF-referenced maps
(:func:`analysis.imaging.metrics.qsm_accuracy_table`, lateral ventricles = 0), NRMSE, HFEN and the
thalamus error (ppb); and MEDI's objective (:func:`medi_objective`) at the returned map
(``E(map)``: χ = 0 outside the mask), at the solution over the mask's bounding box
(``E(unm.)``: ``info["chi_unmasked"]``, χ free outside the mask as the solvers have it, only the
4-voxel padding set to 0) and, for ADMM, on its own grid (``E(grid)``, the value it minimised).

``--gncg-converged`` adds medi() run to convergence (10 Gauss–Newton steps, CG tolerance 1e-3,
up to 300 CG steps): the same objective as ADMM minimises, reached the slow way; medi()'s
default stops after 2–6 steps, well above the minimum, and that early stop regularises.
``--admm-lambdas`` adds ADMM rows at other λ. ``--medi0`` adds MEDI+0 (CSF = lateral
ventricles) for both MEDI solvers.

Time against grid size (64³ … 256³), with peak memory per solve: ``benchmarks/bench_scaling.py``.

``--quick``: 2 mm only.

Measured (``--repeat 3``; 2 cores shared with other jobs, load 5–7, so seconds vary by up to 2x
between runs; the FFT-pair ratios are steadier), head phantom, noise 0.005 ppm, λ 1000:

====  ==========  =======  =========  ==================  ========  ======  =========  ========
res   solver      seconds  FFT pairs  iterations          peak MiB  NRMSE%  HFEN%ref   thal ppb
====  ==========  =======  =========  ==================  ========  ======  =========  ========
2 mm  ADMM           0.80        152  36                        48    65.2       36.1     +0.57
2 mm  GN-CG          3.87        784  5 GN / 225 CG             54    55.8       32.2     −0.86
2 mm  GN conv.      26.4        2835  10 GN / 963 CG            54    63.1       35.1     +0.36
2 mm  TKD            0.02          2  –                         29    75.5       41.1     −6.50
1 mm  ADMM           8.07        184  45                       301    44.2       27.3     +0.54
1 mm  GN-CG         31.0         511  2 GN / 103 CG            348    15.1       11.4     −3.67
1 mm  GN conv.     441          4874  10 GN / 1345 CG          348    41.7       26.4     −0.00
1 mm  TKD            0.22          2  –                        154    79.9       43.3     −6.90
====  ==========  =======  =========  ==================  ========  ======  =========  ========

ADMM ends at or below the objective of Gauss–Newton run to convergence and its maps match it;
medi()'s default stops 3 % (2 mm) to 34 % (1 mm) above the minimum, which at λ 1000 on this
phantom regularises: its NRMSE is lower, its thalamus error larger. ADMM at λ 100: NRMSE 13.8 %
(2 mm) and 5.6 % (1 mm), thalamus +0.2 and −0.0 ppb. GN-CG's seconds include ~35–50 FFT-pair
times of :func:`gradient_mask`'s selection (measured before it selected among positive values only,
~40x faster).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np
import scipy.fft as sfft

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def fft_pair_seconds(shape, workers, repeats=7):
    """Best wall and CPU seconds of one float32 rfftn + irfftn pair on ``shape``."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        sfft.irfftn(sfft.rfftn(x, workers=workers), s=shape, workers=workers, overwrite_x=True)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def padded_grid(mask, pad):
    from analysis.imaging.qsm.kernels import fast_shape, mask_bounding_box

    box = mask_bounding_box(mask)
    return fast_shape(tuple(s.stop - s.start for s in box), pad=pad)


def timed(fun, *args, **kwargs):
    """Run ``fun``; return (result, wall s, cpu s, peak MiB of the call's allocations)."""
    tracemalloc.start()
    t, c = time.perf_counter(), time.process_time()
    out = fun(*args, **kwargs)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, wall, cpu, peak


def run_solvers(local, mask, mag, vs, *, lam, workers, gncg_converged=False, admm_lambdas=(), csf=None, label="",
                repeat=1, smv=()):
    """Time every solver on one problem; return a list of row dicts (maps under key 'chi')."""
    from functools import partial

    from analysis.imaging.qsm import medi as medi_any
    from analysis.imaging.qsm import tkd
    from analysis.imaging.qsm.admm import medi_admm
    medi = _gncg()

    grid_medi = padded_grid(mask, 4)
    grid_tkd = padded_grid(mask, 16)
    suffix = "+0" if csf is not None else ""
    jobs = [(f"ADMM{suffix}", medi_admm, dict(lambda_=lam, csf_mask=csf), grid_medi)]
    jobs += [(f"ADMM{suffix} λ{v:g}", medi_admm, dict(lambda_=v, csf_mask=csf), grid_medi) for v in admm_lambdas]
    # the SMV high-pass as the default recipe runs it (medi() with MERIT; "auto": nested passes, one solve each)
    jobs += [(f"ADMM{suffix} SMV {spec}", partial(medi_any, solver="admm"),
              dict(lambda_=lam, csf_mask=csf, smv_radius_mm=spec, merit=True), grid_medi) for spec in smv]
    jobs.append((f"GN-CG{suffix}", medi, dict(lambda_=lam, csf_mask=csf), grid_medi))
    if gncg_converged:
        jobs.append((f"GN-CG{suffix} conv.", medi, dict(lambda_=lam, csf_mask=csf, max_iter=10, tol_norm_ratio=1e-9,
                                                         cg_tol=1e-3, cg_max_iter=300), grid_medi))
    if csf is None:
        jobs.append(("TKD", tkd, {}, grid_tkd))
    rows = []
    for name, fun, kw, grid in jobs:
        n_runs = 1 if name.endswith("conv.") else repeat
        walls, ratios, cpu_ratios, pair_ms = [], [], [], []
        for k in range(n_runs):
            # the pair is timed right before and after each run; a run's ratio uses the faster of
            # the two, and the table shows the median ratio over runs (other jobs on a shared
            # machine change both); memory is that of the first run
            before = fft_pair_seconds(grid, workers, repeats=3)
            if fun is tkd:
                chi, w, c, p = timed(fun, local, mask, voxel_size=vs, workers=workers)
                info = {}
            else:
                (chi, info), w, c, p = timed(fun, local, mask, mag, voxel_size=vs, workers=workers,
                                             return_info=True, **kw)
            after = fft_pair_seconds(grid, workers, repeats=3)
            pw, pc = min(before[0], after[0]), min(before[1], after[1])
            walls.append(w)
            ratios.append(w / pw)
            cpu_ratios.append(c / pc)
            pair_ms.append(1e3 * pw)
            if k == 0:
                peak = p
        wall, ratio, cpu_ratio = min(walls), float(np.median(ratios)), float(np.median(cpu_ratios))
        if "smv_passes" in info:
            iters = f"{len(info['smv_passes'])} passes"
        elif "n_iter" in info:
            iters = f"{info['n_iter']}"
        elif "n_gn" in info:
            iters = f"{info['n_gn']} GN / {sum(info['n_cg'])} CG"
        else:
            iters = "-"
        rows.append({"solver": name, "label": label, "seconds": wall, "pair_ms": float(np.median(pair_ms)),
                     "ratio": ratio, "cpu_ratio": cpu_ratio, "iterations": iters, "peak_mib": peak, "grid": grid,
                     "chi": chi, "lambda": kw.get("lambda_"),
                     "grid_objective": info.get("objective", {}).get("total"), "converged": info.get("converged"),
                     "chi_unmasked": info.get("chi_unmasked")})
        print(f"  {name:18s} {wall:7.2f} s  ({ratio:6.0f} FFT pairs; runs: "
              + ", ".join(f"{w:.2f} s / {r:.0f}" for w, r in zip(walls, ratios)) + ")", flush=True)
    return rows


def head_table(rows, chi_true, mask, labels, local, mag, vs, csf=None):
    """Add accuracy and objective columns to the rows; print the table."""
    from analysis.imaging import metrics
    from analysis.imaging.qsm.admm import medi_objective

    tab = metrics.qsm_accuracy_table({r["solver"]: r["chi"] for r in rows}, chi_true, mask=mask, labels=labels)
    for r, (_, t) in zip(rows, tab.iterrows()):
        r["nrmse_raw"] = metrics.nrmse(r["chi"], chi_true, mask=mask)
        r["nrmse_ref"], r["hfen_ref"], r["thal_ppb"] = t["nrmse_pct"], t["hfen_pct"], t["thalamus_error_ppb"]
        lam = r["lambda"] if r["lambda"] is not None else rows[0]["lambda"]
        r["map_objective"] = medi_objective(r["chi"], local, mask, mag, voxel_size=vs, lambda_=lam,
                                            csf_mask=csf)["total"]
        r["unmasked_objective"] = (None if r["chi_unmasked"] is None else
                                   medi_objective(r["chi_unmasked"], local, mask, mag, voxel_size=vs, lambda_=lam,
                                                  csf_mask=csf)["total"])
    head = (f"{'solver':18s} {'seconds':>8s} {'pair ms':>8s} {'FFT pairs':>9s} {'(cpu)':>7s} {'iterations':>16s} "
            f"{'peak MiB':>8s} {'NRMSE%':>7s} {'NRMSE%ref':>9s} {'HFEN%ref':>8s} {'thal ppb':>8s} "
            f"{'E(map)':>10s} {'E(unm.)':>10s} {'E(grid)':>10s}")
    print(head)
    for r in rows:
        grid_obj = f"{r['grid_objective']:10.4g}" if r["grid_objective"] is not None else f"{'-':>10s}"
        unm_obj = f"{r['unmasked_objective']:10.4g}" if r["unmasked_objective"] is not None else f"{'-':>10s}"
        print(f"{r['solver']:18s} {r['seconds']:8.2f} {r['pair_ms']:8.1f} {r['ratio']:9.0f} {r['cpu_ratio']:7.0f} "
              f"{r['iterations']:>16s} {r['peak_mib']:8.0f} {r['nrmse_raw']:7.1f} {r['nrmse_ref']:9.1f} "
              f"{r['hfen_ref']:8.1f} {r['thal_ppb']:8.2f} {r['map_objective']:10.4g} {unm_obj} {grid_obj}")


def bench_head(args):
    from bench_medi import build_object

    from analysis.imaging.qsm import forward_field

    for res in args.resolutions:
        name, chi, mask, mag, labels, names, vs = build_object(args.object, res)
        field = forward_field(chi, voxel_size=vs)
        rng = np.random.default_rng(args.seed)
        local = np.where(mask, field + args.noise * rng.standard_normal(field.shape, dtype=np.float32), 0.0)
        local = local.astype(np.float32)
        del field
        print(f"\n== {name}, {res:g} mm, shape {chi.shape}, {int(mask.sum())} brain voxels, noise {args.noise} ppm, "
              f"λ {args.lambda_}, FFT workers {args.workers} ==", flush=True)
        rows = run_solvers(local, mask, mag, vs, lam=args.lambda_, workers=args.workers,
                           gncg_converged=args.gncg_converged, admm_lambdas=args.admm_lambdas, repeat=args.repeat,
                           smv=args.smv)
        head_table(rows, chi, mask, labels, local, mag, vs)
        if args.medi0:
            from analysis.imaging.labels import LATERAL_VENTRICLES

            csf = np.isin(labels, LATERAL_VENTRICLES) & mask
            print("MEDI+0 (CSF = lateral ventricles):")
            rows0 = run_solvers(local, mask, mag, vs, lam=args.lambda_, workers=args.workers,
                                gncg_converged=args.gncg_converged, admm_lambdas=args.admm_lambdas, csf=csf,
                                repeat=args.repeat, smv=args.smv)
            head_table(rows0, chi, mask, labels, local, mag, vs, csf=csf)


def _gncg():
    """medi() with the Gauss–Newton/CG solver (its default is ADMM)."""
    from functools import partial

    from analysis.imaging.qsm import medi

    return partial(medi, solver="gncg")


def _lambda_arg(text):
    from analysis.imaging.qsm.recipes import check_lambda

    return check_lambda(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 mm only, sizes 64 and 96")
    ap.add_argument("--resolutions", default="2,1", help="head phantom voxel sizes (mm), comma-separated")
    ap.add_argument("--object", default="phantom", choices=["auto", "phantom", "ellipsoids"])
    ap.add_argument("--lambda", dest="lambda_", type=_lambda_arg, default="auto",
                    help="MEDI data weight (rad), both solvers: 'auto' (default: the solvers' automatic choice, "
                         "the same for both) or a number")
    ap.add_argument("--admm-lambdas", default="", help="extra ADMM rows at these λ, comma-separated")
    ap.add_argument("--gncg-converged", action="store_true", help="add medi() run to convergence")
    ap.add_argument("--medi0", action="store_true", help="also MEDI+0 (CSF = lateral ventricles)")
    ap.add_argument("--noise", type=float, default=0.005, help="field noise std (ppm)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None, help="FFT threads (default all cores)")
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs per solver (not the converged GN-CG)")
    ap.add_argument("--smv", default="",
                    help="extra ADMM rows with MEDI's SMV high-pass and MERIT, as the default recipe runs it: radii "
                         "specs separated by ';', e.g. 'auto;5' (for the timing: χ is 0 in the eroded rim, which the "
                         "accuracy columns include)")
    args = ap.parse_args(argv)
    from analysis.imaging.qsm.kernels import FFT_WORKERS

    args.workers = FFT_WORKERS if args.workers is None else args.workers
    args.resolutions = [float(v) for v in args.resolutions.split(",") if v]
    args.admm_lambdas = [float(v) for v in args.admm_lambdas.split(",") if v]
    args.smv = [v if v == "auto" else tuple(float(r) for r in v.split(",")) for v in args.smv.split(";") if v]
    if args.quick:
        args.resolutions = [2.0]
    bench_head(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
