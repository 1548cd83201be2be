"""Throughput of the imaging cohort (subjects per minute) with 1 and 2 joblib workers.

Usage::

    python benchmarks/bench_imaging_cohort.py [--n-subjects 4] [--resolution 2.0] [--workers 1 2]
                                              [--cohort data/cohort.csv] [--snr 100] [--solver admm gncg]
                                              [--realism realistic simple]

Each worker count runs the same ``--n-subjects`` subjects from scratch (a fresh temporary work
folder, so nothing is reused) with :func:`analysis.simulation.imaging_cohort.run_imaging_cohort`, and prints
wall time, subjects per minute, the median per-subject time (phantom, reconstruction,
measurement) and the agreement of the measured relative susceptibility with the cohort value.
The cohort is ``--cohort`` if that file exists, else a small random one
(:func:`analysis.simulation.imaging_cohort.example_cohort`); the subjects are simulated head phantoms.

Wall time includes starting the worker processes and, once per process, loading the atlas
(about 5 s); with few subjects that start-up weighs on the rate, so compare worker counts at
the same ``--n-subjects``. Run on an otherwise idle machine for meaningful numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-subjects", type=int, default=4)
    ap.add_argument("--resolution", type=float, default=2.0)
    ap.add_argument("--snr", type=float, default=100.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cohort", default="data/cohort.csv")
    ap.add_argument("--seed", type=int, default=20180301)
    ap.add_argument("--solver", nargs="+", default=["admm"], choices=["admm", "gncg"],
                    help="MEDI solver(s) to compare (default admm; 'admm gncg' gives before/after)")
    ap.add_argument("--realism", nargs="+", default=["realistic"], choices=["realistic", "simple"],
                    help="head phantom(s) to compare (default realistic)")
    args = ap.parse_args(argv)

    from analysis.cohort.dictionary import load_cohort
    from analysis.simulation.imaging_cohort import ImagingSettings, example_cohort

    if Path(args.cohort).is_file():
        cohort, source = load_cohort(args.cohort), args.cohort
    else:
        cohort, source = example_cohort(max(args.n_subjects, 8), seed=1), "example_cohort (random)"
    print(f"imaging cohort benchmark: {args.n_subjects} SIMULATED subjects from {source}, "
          f"{args.resolution:g} mm, SNR {args.snr:g}; {os.cpu_count()} CPU cores, {platform.node()}")
    for realism in args.realism:
        for solver in args.solver:
            settings = ImagingSettings(resolution_mm=args.resolution, snr=args.snr, seed=args.seed, solver=solver,
                                       realism=realism)
            _run(cohort, settings, args, label=f"{realism} phantom, solver {solver}")


def _run(cohort, settings, args, *, label):
    from analysis.simulation.imaging_cohort import run_imaging_cohort
    from analysis.stats.agreement import bland_altman, icc

    for n_jobs in args.workers:
        with tempfile.TemporaryDirectory(prefix="bench-imaging-") as work:
            t0 = time.perf_counter()
            run = run_imaging_cohort(cohort, work_dir=work, settings=settings, n_subjects=args.n_subjects,
                                     n_jobs=n_jobs, progress=False)
            wall = time.perf_counter() - t0
        ok = run.ok
        med = ok[["seconds_phantom", "seconds_reconstruction", "seconds_measurement", "seconds_total"]].median()
        line = (f"{label}, n_jobs={n_jobs}: {len(ok)}/{len(run.results)} subjects in {wall:.1f} s = "
                f"{60.0 * len(run.results) / wall:.2f} subjects/min; per subject (median) "
                f"{med['seconds_total']:.1f} s = phantom {med['seconds_phantom']:.1f} + reconstruction "
                f"{med['seconds_reconstruction']:.1f} + measurement {med['seconds_measurement']:.1f} s")
        if len(ok) >= 3:
            x = ok["measured_thalamic_relative_susceptibility_ppb"].to_numpy(float)
            y = ok["target_thalamic_relative_susceptibility_ppb"].to_numpy(float)
            ba, r = bland_altman(x, y), icc(np.column_stack([x, y]), kind="A,1")
            t = ok["true_map_thalamic_relative_susceptibility_ppb"].to_numpy(float)
            line += (f"; χ bias {ba['bias']:+.2f} ppb, LoA {ba['loa_low']:+.2f} to {ba['loa_high']:+.2f}, "
                     f"ICC(A,1) {r['icc']:.3f}; of the bias, reconstruction {np.mean(x - t):+.2f}, "
                     f"measurement {np.mean(t - y):+.2f} ppb")
        print(line, flush=True)


if __name__ == "__main__":
    main()
