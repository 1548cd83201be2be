"""``python -m analysis compare RUN REFERENCE``: a run's tables against a reference set, with tolerances.

Thin over :func:`analysis.compare.compare_tables`; ``make compare`` runs it on ``results/tables``
against the committed tables.
"""

from __future__ import annotations

import sys

from analysis.compare import compare_tables

__all__ = ["add_parser"]

_FAILED = ("DIFFERENT", "missing")


def _cmd_compare(args):
    table = compare_tables(args.run, args.reference)
    counts = table["status"].value_counts()
    for _, r in table.iterrows():
        detail = ""
        if r["status"] in ("within", "DIFFERENT"):
            detail = f"  worst {r['worst']:.2g} of its tolerance: {r['worst_cell']}"
        print(f"{r['status']:>9}  {r['table']}{detail}")
    print("; ".join(f"{counts.get(s, 0)} {s}" for s in ("identical", "within", "DIFFERENT", "missing", "extra")))
    if table["status"].isin(_FAILED).any():
        print("compare: some tables are missing or outside their tolerance", file=sys.stderr)
        sys.exit(1)


def add_parser(subparsers):
    """Register ``compare`` on an argparse ``subparsers`` object."""
    p = subparsers.add_parser("compare", help="compare a run's tables with a reference set (stated tolerances)")
    p.add_argument("run", help="folder of the run's CSV tables (e.g. results/tables)")
    p.add_argument("reference", help="folder of the reference CSV tables (e.g. the committed ones)")
    p.set_defaults(func=_cmd_compare)
    return subparsers
