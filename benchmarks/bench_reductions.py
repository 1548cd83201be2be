"""Cost of the deterministic reductions (analysis.imaging.qsm.reductions) against BLAS and one FFT pair.

Usage::

    python benchmarks/bench_reductions.py [--sizes 128,256] [--repeat 7] [--workers N]

For float32 arrays of n³ elements: ``np.dot`` (BLAS ``sdot``: its partial sums depend on the kernel and
thread count), :func:`~analysis.imaging.qsm.reductions.inner` (the same bits everywhere) and one
float32 ``rfftn`` + ``irfftn`` pair on the same grid (``scipy.fft``, ``--workers`` threads), each the
best of ``--repeat`` runs; ratios are to the FFT pair. A conjugate-gradient step (PDF, MEDI's
Gauss–Newton) does one FFT pair or more and two inner products; an ADMM iteration two FFT pairs and
two sums of squares. Prints a Markdown table (results: ``docs/benchmarks.md``).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.fft as sfft

from analysis.imaging.qsm.reductions import inner


def _best(f, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,256", help="comma-separated n (arrays of n³ float32)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="FFT threads")
    args = ap.parse_args(argv)
    print("| grid | np.dot (ms) | inner (ms) | FFT pair (ms) | np.dot / FFT pair | inner / FFT pair |")
    print("|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        rng = np.random.default_rng(0)
        a, b = (rng.standard_normal((n, n, n)).astype(np.float32) for _ in range(2))
        t_dot = _best(lambda a=a, b=b: float(np.dot(a.ravel(), b.ravel())), args.repeat)
        t_inner = _best(lambda a=a, b=b: inner(a, b), args.repeat)
        t_fft = _best(lambda a=a: sfft.irfftn(sfft.rfftn(a, workers=args.workers), s=a.shape, workers=args.workers),
                      max(3, args.repeat // 2))
        print(f"| {n}³ | {1e3 * t_dot:.1f} | {1e3 * t_inner:.1f} | {1e3 * t_fft:.1f} | {t_dot / t_fft:.3f} | "
              f"{t_inner / t_fft:.3f} |")


if __name__ == "__main__":
    main()
