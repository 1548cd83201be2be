"""``python -m analysis run``: execute the notebooks in order with papermill (what ``make all`` calls).

Thin over :func:`analysis.reproduce.run_notebooks`.
"""

from __future__ import annotations

from analysis.io import ROOT
from analysis.reproduce import run_notebooks

__all__ = ["add_parser"]


def _cmd_run(args):
    timings = run_notebooks(args.params, only=args.only or None)
    total = sum(t for _, t in timings)
    print(f"ran {len(timings)} notebook(s) in {total:.0f} s")


def add_parser(subparsers):
    """Register ``run`` on an argparse ``subparsers`` object."""
    p = subparsers.add_parser("run", help="execute the notebooks headless with papermill")
    p.add_argument("--params", default=str(ROOT / "params.yml"), help="parameters YAML (default: params.yml)")
    p.add_argument("--only", nargs="*", help="run only notebooks whose name starts with these prefixes")
    p.set_defaults(func=_cmd_run)
    return subparsers
