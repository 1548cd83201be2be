"""``python -m analysis cohort``: regenerate the synthetic cohort CSV from its fixed seed.

Thin over :func:`analysis.simulation.calibration.write_synthetic_cohort`.
"""

from __future__ import annotations

import sys

from threadpoolctl import threadpool_info

from analysis.io import ROOT
from analysis.simulation.calibration import write_synthetic_cohort

__all__ = ["add_parser"]


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _cmd_cohort(args):
    log = None if args.quiet else _log
    if log:
        libs = dict.fromkeys(f"{d['internal_api']} {d.get('architecture') or ''}".strip() for d in threadpool_info())
        blas = ", ".join(libs)
        log(f"calibrating the simulated cohort (about 70 s; BLAS: {blas or 'none found'}, run on 1 thread)")
    path = write_synthetic_cohort(args.output, seed=args.seed, log=log)
    print(f"wrote {path}")


def add_parser(subparsers):
    """Register ``cohort`` on an argparse ``subparsers`` object."""
    p = subparsers.add_parser("cohort", help="regenerate the synthetic cohort CSV")
    p.add_argument("--output", default=str(ROOT / "data" / "cohort.csv"))
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the compendium's)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_cohort)
    return subparsers
