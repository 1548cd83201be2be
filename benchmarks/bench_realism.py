"""Simple vs realistic head phantom: QSM accuracy of TKD and MEDI (λ sweep) side by side.

Usage::

    python benchmarks/bench_realism.py [--resolution 2.0] [--snr 100] [--seed 20180301]
                                       [--lambdas 250 500 1000 2000 4000] [--csv OUT.csv]
    python benchmarks/bench_realism.py --quick          # 4 mm, λ 500 1000 2000 (about a minute)

For each phantom — the simple one (:func:`analysis.simulation.phantom.make_head_phantom`, piecewise-constant
χ, field simulated on the acquisition grid with the inversion's own kernel: the "inverse crime") and the
realistic one (``realism="realistic"``: textured χ, iron gradients, thin veins as voxel fractions, field and
complex signal on a 2× finer grid averaged into each voxel) — the script simulates the paper's 11-echo
acquisition (:func:`analysis.simulation.acquisition.simulate_megre`, SNR 100 by default) and reconstructs
it with the compendium's default whole-brain recipe (:data:`analysis.imaging.qsm.WHOLE_BRAIN_RECIPE`: PDF,
MEDI+0 with SMV 5 mm and MERIT, rim filled; mask = the phantom's brain mask) at several λ, and with TKD
after the same PDF (one :func:`analysis.imaging.qsm.reconstruct_recipes` call: fit, unwrapping and PDF are
shared). The recipe's own λ (1000) is the "default MEDI" row.

Metrics (:mod:`analysis.imaging.metrics`), over the phantom's brain mask intersected with every
reconstruction's mask: ``nrmse_pct`` — the compendium's NRMSE, maps referenced to the lateral
ventricles (:func:`~analysis.imaging.metrics.qsm_accuracy_table`); ``core_nrmse_pct`` — the same over the
mask minus its outer 4 mm (the outermost voxels carry most of the error, more so in the realistic phantom,
where their phase mixes brain, CSF and skull); ``rmse_pct`` — the QSM challenge 2.0
RMSE (demeaned); ``hfen_pct``; ``xsim``; ``dgm_slope`` (RC2 slope over caudate, putamen, pallidum,
thalamus L/R); ``thal_err_ppb`` — error of the relative thalamic χ (thalamus − lateral ventricles, truth
labels, veins excluded; the realistic truth is exactly ``thalamus_chi_ppm``:
:func:`analysis.simulation.phantom.thalamic_truth_ppb`).

Times are wall-clock seconds (``time.perf_counter``) with the process CPU seconds beside them; the
machine may be shared, so compare CPU seconds between runs, and read wall seconds as what a user waits.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import pandas as pd
from scipy import ndimage

#: Depth (mm) below the mask surface of the "core" evaluation region.
CORE_DEPTH_MM = 4.0


def _peak_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 ** 2  # Linux: KiB


class _Clock:
    """Wall and CPU seconds of a block."""

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


def run_phantom(realism, *, resolution_mm, snr, seed, lambdas, progress=False, oversample=None):
    """Build, simulate and reconstruct one phantom; return (rows, timings dict)."""
    from analysis.imaging.metrics import challenge_rmse, dgm_slope, qsm_accuracy_table, xsim
    from analysis.imaging.qsm import WHOLE_BRAIN_RECIPE, reconstruct_recipes, resolve_recipe
    from analysis.simulation.acquisition import simulate_megre, simulation_seed
    from analysis.simulation.phantom import make_head_phantom, thalamic_truth_ppb

    times = {}
    kw = {} if realism == "simple" else {"realism": "realistic", "oversample": oversample}
    with _Clock() as c:
        ph = make_head_phantom(resolution_mm=resolution_mm, seed=seed, **kw)
    times["phantom"] = c
    with _Clock() as c:
        sim = simulate_megre(ph, snr=snr, seed=simulation_seed(seed))
    times["simulation"] = c
    recipes = {"TKD": resolve_recipe("whole-brain", method="tkd")}
    for lam in lambdas:
        recipes[f"MEDI λ{lam:g}"] = {**WHOLE_BRAIN_RECIPE, "lambda_": float(lam)}
    with _Clock() as c:
        recs = reconstruct_recipes(sim.magnitude, sim.phase, sim.echo_times_s, recipes=recipes,
                                   voxel_size_mm=ph.voxel_size_mm, b0_tesla=sim.b0_tesla,
                                   b0_direction=sim.b0_direction, mask=ph.brain_mask, progress=progress)
    times["reconstruction"] = c
    mask = np.asarray(ph.brain_mask, bool).copy()
    for r in recs.values():
        mask &= np.asarray(r["mask"], bool)
    truth = np.asarray(ph.chi_ppm, np.float64)
    table = qsm_accuracy_table({k: r["chi_ppm"] for k, r in recs.items()}, truth, mask=mask,
                               labels=ph.labels).set_index("method")
    core = mask & (ndimage.distance_transform_edt(mask, sampling=ph.voxel_size_mm) > CORE_DEPTH_MM)
    core_table = qsm_accuracy_table({k: r["chi_ppm"] for k, r in recs.items()}, truth, mask=core,
                                    labels=ph.labels).set_index("method")
    rows = []
    for name, r in recs.items():
        chi = np.asarray(r["chi_ppm"], np.float64)
        t = table.loc[name]
        rows.append({
            "phantom": realism, "method": "TKD" if name == "TKD" else "MEDI+0",
            "lambda": np.nan if name == "TKD" else float(name.split("λ")[1]),
            "nrmse_pct": t["nrmse_pct"], "core_nrmse_pct": core_table.loc[name, "nrmse_pct"],
            "rmse_pct": challenge_rmse(chi, truth, mask=mask),
            "hfen_pct": t["hfen_pct"], "xsim": xsim(chi, truth, mask=mask),
            "dgm_slope": dgm_slope(chi, truth, ph.labels, mask=mask)["slope"],
            "thal_err_ppb": t["thalamus_error_ppb"],
        })
    info = {"thalamus_truth_ppb": thalamic_truth_ppb(ph)["both"], "n_eval_voxels": int(mask.sum()),
            "shape": ph.shape, "fine_shape": None if ph.fine is None else ph.fine.shape}
    return rows, times, info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=float, default=2.0, help="voxel size (mm), default 2")
    ap.add_argument("--snr", type=float, default=100.0, help="first-echo SNR in the brain (default 100)")
    ap.add_argument("--seed", type=int, default=20180301, help="phantom seed (the acquisition's is derived)")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[250, 500, 1000, 2000, 4000],
                    help="MEDI λ values (default 250 500 1000 2000 4000)")
    ap.add_argument("--oversample", type=int, default=None, help="realistic phantom's oversampling (default 2)")
    ap.add_argument("--quick", action="store_true", help="4 mm, λ 500 1000 2000")
    ap.add_argument("--only", choices=["simple", "realistic"], default=None, help="one phantom only")
    ap.add_argument("--csv", default=None, help="also write the table as CSV")
    ap.add_argument("--progress", action="store_true", help="progress bars of the reconstruction")
    args = ap.parse_args(argv)
    if args.quick:
        args.resolution, args.lambdas = 4.0, [500.0, 1000.0, 2000.0]

    rows, timing = [], []
    for realism in ("simple", "realistic"):
        if args.only and realism != args.only:
            continue
        r, t, info = run_phantom(realism, resolution_mm=args.resolution, snr=args.snr, seed=args.seed,
                                 lambdas=args.lambdas, progress=args.progress, oversample=args.oversample)
        rows += r
        timing.append({"phantom": realism, **{f"{k}_s": round(v.wall, 1) for k, v in t.items()},
                       **{f"{k}_cpu_s": round(v.cpu, 1) for k, v in t.items()},
                       "thalamus_truth_ppb": round(info["thalamus_truth_ppb"], 4),
                       "eval_voxels": info["n_eval_voxels"], "grid": "x".join(map(str, info["shape"])),
                       "fine_grid": "-" if info["fine_shape"] is None else "x".join(map(str, info["fine_shape"]))})
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(f"# QSM accuracy, simple vs realistic phantom: {args.resolution:g} mm, SNR {args.snr:g}, seed {args.seed}")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\n# best λ (MEDI+0): lowest NRMSE; lowest core NRMSE, highest XSIM, smallest |thalamus error|")
    for realism, g in df[df.method == "MEDI+0"].groupby("phantom", sort=False):
        b, bc = g.loc[g.nrmse_pct.idxmin()], g.loc[g.core_nrmse_pct.idxmin()]
        bx, bt = g.loc[g.xsim.idxmax()], g.loc[g.thal_err_ppb.abs().idxmin()]
        print(f"{realism:10s} λ {b['lambda']:g} (NRMSE {b.nrmse_pct:.1f} %, thalamus {b.thal_err_ppb:+.2f} ppb); "
              f"core NRMSE λ {bc['lambda']:g} ({bc.core_nrmse_pct:.1f} %); XSIM λ {bx['lambda']:g} ({bx.xsim:.3f}); "
              f"thalamus λ {bt['lambda']:g} ({bt.thal_err_ppb:+.2f} ppb)")
    print("\n# timings (wall s; CPU s of this process) and grids")
    print(pd.DataFrame(timing).to_string(index=False))
    print(f"\npeak memory {_peak_gb():.2f} GB")
    if args.csv:
        df.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
