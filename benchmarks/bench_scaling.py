"""Time, peak memory and accuracy of the dipole inversions against grid size (cubic grids).

What it measures
----------------
For each cubic grid n³ (default n = 64, 96, 128, 160, 192, 256) and each solver

* ``admm`` — :func:`analysis.imaging.qsm.medi` with its default solver (MEDI by ADMM),
  ``lambda_="auto"``;
* ``gncg`` — the same call with ``solver="gncg"`` (the toolbox's Gauss–Newton + CG scheme,
  the reference implementation);
* ``tkd`` — :func:`analysis.imaging.qsm.tkd` (truncated k-space division, threshold 0.19),

the script reports

* ``seconds`` — wall-clock seconds of the one solver call (inputs already in memory);
* ``grid`` — the FFT grid the solver works on. The solvers crop the field to the bounding box
  of the mask and zero-pad it to a 5-smooth length (MEDI: 4 voxels a side, ``info["grid_shape"]``;
  TKD: 16 voxels a side, recomputed here with :func:`analysis.imaging.qsm.kernels.fast_shape`
  exactly as :func:`tkd` does), so this grid is *not* n³;
* ``fft_pair_s`` — seconds of one float32 :func:`scipy.fft.rfftn` + :func:`scipy.fft.irfftn`
  pair **on that solver grid** (not on n³), with ``workers`` equal to the solvers'
  (:data:`analysis.imaging.qsm.kernels.FFT_WORKERS`): median of 5 pairs after one warm-up
  pair, timed in the same process right after the solve;
* ``ratio`` — ``seconds / fft_pair_s``: the solve's cost in FFT pairs, which is far less
  sensitive than seconds to the machine and to other jobs sharing it;
* ``iterations`` — ADMM iterations; Gauss–Newton steps / total CG steps; ``-`` for TKD;
* ``peak_mib`` — peak resident memory of the solve, in MiB: the high-water mark ``VmHWM`` of
  ``/proc/self/status`` of the fresh child process that ran it, reset (``/proc/self/clear_refs``)
  just before the call, so it is the largest resident set *during* the solve: the Python
  interpreter, NumPy/SciPy and the package (~100 MiB), the inputs (field, mask, magnitude, true
  χ; ~13 bytes a voxel of n³) and the solver's own arrays. ``solve_mib`` is that peak minus the
  resident set just before the call, i.e. the solver's own high-water mark. (Not
  ``resource.getrusage(...).ru_maxrss``: on Linux it carries the parent's peak over fork and
  exec, so a child's value would be that of the benchmark driver; where ``clear_refs`` cannot be
  written the peak is the child's whole-life ``VmHWM``, loading the inputs included.) Both are
  read before the FFT-pair timing;
* ``nrmse_pct`` — :func:`analysis.imaging.metrics.nrmse` of the map against the true χ over the
  brain mask (%, no de-meaning or CSF referencing).

Test object
-----------
All numbers come from a **simulated phantom**, not from data:
:func:`analysis.imaging.qsm._synthetic.ellipsoid_brain` on an n³ grid of 1 mm isotropic voxels
(the brain fills ~80 % of the field of view whatever n is), its field simulated with
:func:`analysis.imaging.qsm.forward_field`, set to 0 outside the brain mask, plus Gaussian
noise of standard deviation 0.0005 ppm inside the mask (``numpy.random.default_rng(0)``).
The inputs are built once per grid size in this process, written to a temporary ``.npz`` and
loaded by one fresh child process per solve (``subprocess`` running this script with
``--one``), so that each peak-memory figure belongs to one solve only.

Usage
-----
::

    python benchmarks/bench_scaling.py [--sizes 64 96 128 160 192 256]
                                       [--solvers admm gncg tkd]
                                       [--skip-gncg-above 192]
                                       [--out-csv results/benchmarks/solver_scaling.csv]
                                       [--out-fig figures/benchmarks/solver_scaling.png]

GN-CG is skipped on grids larger than ``--skip-gncg-above`` (default 192: at 256³ it takes
many minutes on 2 cores). The table is printed, written as CSV and plotted (left: seconds
against the number of voxels of the solver grid, log–log; right: the ratio to one FFT pair).

Units: seconds (wall clock), MiB (2²⁰ bytes), NRMSE in %, χ in ppm, voxels 1 mm.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.fft as sfft

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from analysis.imaging.metrics import nrmse  # noqa: E402
from analysis.imaging.qsm import forward_field, medi, tkd  # noqa: E402
from analysis.imaging.qsm._synthetic import ellipsoid_brain  # noqa: E402
from analysis.imaging.qsm.kernels import FFT_WORKERS, fast_shape, mask_bounding_box  # noqa: E402

VOXEL_SIZE = (1.0, 1.0, 1.0)
NOISE_PPM = 0.0005
SEED = 0
TKD_PAD = 16  # tkd()'s default margin, used to recompute its FFT grid
FFT_REPEATS = 5
SOLVERS = ("admm", "gncg", "tkd")
LABELS = {"admm": "ADMM", "gncg": "GN-CG", "tkd": "TKD"}
STYLES = {"admm": "o-", "gncg": "s-", "tkd": "^-"}
COLUMNS = ["size", "solver", "grid", "grid_voxels", "seconds", "fft_pair_s", "ratio", "iterations",
           "peak_mib", "solve_mib", "nrmse_pct", "lambda", "lambda_normalised"]
DEFAULT_CSV = os.path.join(ROOT, "results", "benchmarks", "solver_scaling.csv")
DEFAULT_FIG = os.path.join(ROOT, "figures", "benchmarks", "solver_scaling.png")


# ---------------------------------------------------------------------------------------------
# inputs and measurements

def build_inputs(n):
    """Ellipsoid phantom on n³ voxels: masked noisy field (ppm), mask, magnitude, true χ (ppm)."""
    ph = ellipsoid_brain((n, n, n))
    mask = ph["mask"]
    field = forward_field(ph["chi"], voxel_size=VOXEL_SIZE)
    noise = np.random.default_rng(SEED).standard_normal(field.shape, dtype=np.float32)
    field = np.where(mask, field + np.float32(NOISE_PPM) * noise, 0.0).astype(np.float32)
    return {"field": field, "mask": mask, "magnitude": ph["magnitude"], "chi": ph["chi"]}


def _status_mib(key):
    """A memory line of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise KeyError(key)


def reset_peak_rss():
    """Reset this process's ``VmHWM`` to its current resident set (Linux ≥ 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def fft_pair_seconds(shape, workers=FFT_WORKERS, repeats=FFT_REPEATS):
    """Median wall seconds of one float32 rfftn + irfftn pair on ``shape`` (after a warm-up)."""
    x = np.random.default_rng(1).standard_normal(shape, dtype=np.float32)

    def pair():
        sfft.irfftn(sfft.rfftn(x, workers=workers), s=shape, workers=workers, overwrite_x=True)

    pair()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        pair()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def tkd_grid(mask, pad=TKD_PAD):
    """The FFT grid :func:`tkd` uses: the mask's bounding box plus ``pad``, 5-smooth."""
    box = mask_bounding_box(mask)
    return fast_shape(tuple(s.stop - s.start for s in box), pad=pad)


def iterations_text(info):
    if "n_iter" in info:
        return str(info["n_iter"])
    if "n_gn" in info:
        return f"{info['n_gn']} GN / {sum(info['n_cg'])} CG"
    return "-"


def solve(solver, inp):
    """Run one solver; return (χ, seconds, info dict with at least ``grid_shape``)."""
    field, mask, mag = inp["field"], inp["mask"], inp["magnitude"]
    t = time.perf_counter()
    if solver == "tkd":
        chi = tkd(field, mask, voxel_size=VOXEL_SIZE)
        info = {"grid_shape": tkd_grid(mask)}
    else:
        chi, info = medi(field, mask, mag, voxel_size=VOXEL_SIZE, lambda_="auto", return_info=True, solver=solver)
    return chi, time.perf_counter() - t, info


def measure_one(solver, npz_path):
    """Child-process body: load the inputs, solve once, time the FFT pair; return a result row."""
    with np.load(npz_path) as z:
        inp = {k: z[k] for k in z.files}
    reset_peak_rss()
    base_mib = _status_mib("VmRSS")
    chi, seconds, info = solve(solver, inp)
    peak_mib = _status_mib("VmHWM")
    grid = tuple(int(g) for g in info["grid_shape"])
    pair = fft_pair_seconds(grid)
    return {
        "size": int(inp["field"].shape[0]), "solver": solver, "grid": "x".join(map(str, grid)),
        "grid_voxels": int(np.prod(grid)), "seconds": seconds, "fft_pair_s": pair, "ratio": seconds / pair,
        "iterations": iterations_text(info), "peak_mib": peak_mib, "solve_mib": peak_mib - base_mib,
        "nrmse_pct": nrmse(chi, inp["chi"], mask=inp["mask"]),
        "lambda": info.get("lambda", ""), "lambda_normalised": info.get("lambda_normalised", ""),
    }


def run_child(solver, npz_path):
    """Run :func:`measure_one` in a fresh Python process; return its row."""
    cmd = [sys.executable, os.path.abspath(__file__), "--one", solver, npz_path]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{solver} failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# reporting

def format_row(r):
    return (f"{r['size']:>4}³ {LABELS[r['solver']]:>6s} {r['grid']:>12s} {r['seconds']:9.2f} "
            f"{r['fft_pair_s']:10.4f} {r['ratio']:8.0f} {r['iterations']:>14s} {r['peak_mib']:8.0f} "
            f"{r['solve_mib']:9.0f} {r['nrmse_pct']:7.1f}")


def table_header():
    return (f"{'size':>5s} {'solver':>6s} {'grid':>12s} {'seconds':>9s} {'FFT pair s':>10s} {'ratio':>8s} "
            f"{'iterations':>14s} {'peak MiB':>8s} {'solve MiB':>9s} {'NRMSE%':>7s}")


def write_csv(rows, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in COLUMNS})


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_s, ax_r) = plt.subplots(1, 2, figsize=(10, 4))
    for solver in SOLVERS:
        pts = sorted((r["grid_voxels"], r["seconds"], r["ratio"]) for r in rows if r["solver"] == solver)
        if not pts:
            continue
        vox, sec, ratio = map(np.array, zip(*pts))
        ax_s.loglog(vox, sec, STYLES[solver], label=LABELS[solver])
        ax_r.loglog(vox, ratio, STYLES[solver], label=LABELS[solver])
    ax_s.set_ylabel("seconds (wall clock)")
    ax_r.set_ylabel("seconds / one float32 rfftn + irfftn pair")
    for ax in (ax_s, ax_r):
        ax.set_xlabel("voxels of the solver's FFT grid")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(frameon=False)
    fig.suptitle(f"Dipole-inversion cost vs grid size (simulated ellipsoid phantom, 2 cores, "
                 f"{FFT_WORKERS} FFT workers)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# driver

def wanted(solver, n, skip_gncg_above):
    return not (solver == "gncg" and n > skip_gncg_above)


def run_benchmark(sizes, solvers, skip_gncg_above):
    rows = []
    print(table_header(), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as tmp:
        for n in sizes:
            path = os.path.join(tmp, f"inputs_{n}.npz")
            np.savez(path, **build_inputs(n))
            for solver in solvers:
                if not wanted(solver, n, skip_gncg_above):
                    print(f"{n:>4}³ {LABELS[solver]:>6s} skipped (--skip-gncg-above {skip_gncg_above})", flush=True)
                    continue
                rows.append(run_child(solver, path))
                print(format_row(rows[-1]), flush=True)
            os.remove(path)
    return rows


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128, 160, 192, 256],
                    help="cubic grid sizes n (n³ voxels)")
    ap.add_argument("--solvers", nargs="+", choices=SOLVERS, default=list(SOLVERS))
    ap.add_argument("--skip-gncg-above", type=int, default=192,
                    help="skip GN-CG for n above this (default 192: 256³ takes many minutes on 2 cores)")
    ap.add_argument("--out-csv", default=DEFAULT_CSV)
    ap.add_argument("--out-fig", default=DEFAULT_FIG)
    ap.add_argument("--one", nargs=2, metavar=("SOLVER", "NPZ"), help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args.one[0], args.one[1])))
        return
    print(f"simulated ellipsoid phantom, 1 mm voxels, noise {NOISE_PPM} ppm, FFT workers {FFT_WORKERS}, "
          f"{os.cpu_count()} cores", flush=True)
    rows = run_benchmark(args.sizes, args.solvers, args.skip_gncg_above)
    write_csv(rows, args.out_csv)
    plot(rows, args.out_fig)
    print(f"csv: {args.out_csv}\nfigure: {args.out_fig}")


if __name__ == "__main__":
    main()
