"""Command line of the compendium: ``python -m analysis <command> ...`` (one module per command).

Commands
--------
run      execute the notebooks in order with papermill (what ``make all`` calls)
cohort   regenerate the synthetic cohort CSV from its fixed seed
qsm      reconstruct susceptibility maps from a BIDS dataset (see ``python -m analysis qsm -h``)
phantom  simulate the head phantom's multi-echo GRE as a BIDS dataset
measure  FreeSurfer stats + thalamic susceptibility + lesion volume per subject -> cohort CSV
compare  a run's tables against a reference set, with stated tolerances (``make compare``)

Each command module is thin over the library (``analysis.imaging``, ``analysis.cohort``,
``analysis.simulation``, ``analysis.reproduce``); the library never imports this package.
Expected errors (bad input) are printed as one line, ``error: …``, with exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from analysis import __version__
from analysis.cli import cohort, compare, measure, phantom, qsm, run

__all__ = ["build_parser", "main"]

_COMMANDS = (run, cohort, qsm, phantom, measure, compare)
_DESCRIPTION = """\
Thalamic QSM in relapsing-remitting MS: a reproducible research compendium.
The bundled cohort and head phantoms are SIMULATED; point the commands at your own data.

commands:
  run      execute the notebooks in order with papermill (what 'make all' calls)
  cohort   regenerate the synthetic cohort CSV from its fixed seed
  qsm      reconstruct susceptibility maps from a BIDS dataset
  phantom  simulate the head phantom's multi-echo GRE as a BIDS dataset
  measure  FreeSurfer stats + thalamic susceptibility + lesion volume per subject -> cohort CSV
  compare  a run's tables against a reference set, with stated tolerances ('make compare')

'python -m analysis COMMAND -h' describes each command."""


def build_parser():
    """The argparse parser of ``python -m analysis`` with every subcommand."""
    parser = argparse.ArgumentParser(prog="python -m analysis", description=_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in _COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv=None):
    """Run one command; return the exit status (0, or 2 after a one-line error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ValueError as exc:  # bad input: one clear line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that cannot be read or written (permissions, disk full, …)
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
