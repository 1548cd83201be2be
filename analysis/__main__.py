"""Command line of the compendium: ``python -m analysis <command> ...``.

Commands
--------
run      execute the notebooks in order with papermill (what ``make all`` calls)
cohort   regenerate the synthetic cohort CSV from its fixed seed
qsm      reconstruct susceptibility maps from a BIDS dataset (see ``python -m analysis qsm -h``)
phantom  simulate the head phantom's multi-echo GRE as a BIDS dataset
measure  FreeSurfer stats + thalamic susceptibility + lesion volume per subject -> cohort CSV
"""

from __future__ import annotations

import argparse
import sys

from analysis.io import ROOT


def _cmd_run(args):
    from analysis.cli.run import run_notebooks

    timings = run_notebooks(args.params, only=args.only or None)
    total = sum(t for _, t in timings)
    print(f"ran {len(timings)} notebook(s) in {total:.0f} s")


def _cmd_cohort(args):
    from analysis.cohort.dictionary import write_synthetic_cohort

    path = write_synthetic_cohort(args.output, seed=args.seed)
    print(f"wrote {path}")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="execute the notebooks headless with papermill")
    p.add_argument("--params", default=str(ROOT / "params.yml"), help="parameters YAML (default: params.yml)")
    p.add_argument("--only", nargs="*", help="run only notebooks whose name starts with these prefixes")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("cohort", help="regenerate the synthetic cohort CSV")
    p.add_argument("--output", default=str(ROOT / "data" / "cohort.csv"))
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the compendium's)")
    p.set_defaults(func=_cmd_cohort)

    import importlib.util

    if importlib.util.find_spec("analysis.cli.qsm") is not None:  # QSM command line, with its code
        from analysis.cli.qsm import add_parser as _add_qsm

        _add_qsm(sub)
    from analysis.cohort.measure import add_parser as _add_measure

    _add_measure(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ValueError as exc:  # bad input: one clear line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
