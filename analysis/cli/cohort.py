"""``python -m analysis cohort``: regenerate the synthetic cohort CSV from its fixed seed.

Thin over :func:`analysis.simulation.calibration.write_synthetic_cohort`.
"""

from __future__ import annotations

from analysis.io import ROOT
from analysis.simulation.calibration import write_synthetic_cohort

__all__ = ["add_parser"]


def _cmd_cohort(args):
    path = write_synthetic_cohort(args.output, seed=args.seed)
    print(f"wrote {path}")


def add_parser(subparsers):
    """Register ``cohort`` on an argparse ``subparsers`` object."""
    p = subparsers.add_parser("cohort", help="regenerate the synthetic cohort CSV")
    p.add_argument("--output", default=str(ROOT / "data" / "cohort.csv"))
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the compendium's)")
    p.set_defaults(func=_cmd_cohort)
    return subparsers
