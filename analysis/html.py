"""HTML rendering of the executed notebooks, with an index page (``make html``).

``make all`` leaves the executed notebooks (papermill output, with every figure and table) in
``results/notebooks/``; :func:`render_html` converts each to a standalone HTML page with nbconvert
and writes ``index.html`` linking them by their titles (the first Markdown heading of each
notebook). The pages embed their figures, so the output folder can be opened or copied on its own.

``python -m analysis.html EXECUTED_DIR OUT_DIR`` does the same from the shell (what ``make html``
runs).
"""

from __future__ import annotations

import argparse
import html as _html
import re
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from analysis.io import write_text

__all__ = ["main", "notebook_title", "render_html"]

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")


def notebook_title(nb, default=""):
    """Text of the first Markdown heading of a notebook (``nbformat`` node), or ``default``.

    Inline Markdown emphasis and code marks are dropped: ``# The *lesion* `model` `` gives
    ``The lesion model``.
    """
    for cell in nb.cells:
        if cell.get("cell_type") != "markdown":
            continue
        for line in cell.get("source", "").splitlines():
            m = _HEADING.match(line)
            if m:
                return re.sub(r"[*_`]+", "", m.group(1)).strip() or default
    return default


def render_html(executed_dir, out_dir):
    """Render every ``*.ipynb`` of ``executed_dir`` to ``out_dir/<stem>.html`` and write an index.

    Returns the path of ``out_dir/index.html``. Raises :class:`ValueError` when ``executed_dir``
    holds no notebook (run ``make all`` first). Pages of notebooks that are gone are left alone;
    the index lists only the notebooks rendered now, in name order.
    """
    executed_dir, out_dir = Path(executed_dir), Path(out_dir)
    notebooks = sorted(executed_dir.glob("*.ipynb"))
    if not notebooks:
        raise ValueError(f"no executed notebooks (*.ipynb) in {executed_dir}; run `make all` first")
    out_dir.mkdir(parents=True, exist_ok=True)

    exporter = HTMLExporter()
    entries = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        title = notebook_title(nb, default=path.stem)
        resources = {"metadata": {"name": title, "path": str(path.parent)}}
        body, _ = exporter.from_notebook_node(nb, resources=resources)
        page = out_dir / f"{path.stem}.html"
        write_text(page, body)
        entries.append((page.name, path.stem, title))

    items = "\n".join(
        f'  <li><a href="{_html.escape(name, quote=True)}">{_html.escape(title, quote=False)}</a>'
        f" <code>{_html.escape(stem, quote=False)}</code></li>"
        for name, stem, title in entries)
    index = out_dir / "index.html"
    write_text(index, f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Thalamic QSM compendium: executed notebooks</title>
<style>body {{ font-family: sans-serif; max-width: 50em; margin: 2em auto; line-height: 1.5; }}
li {{ margin: 0.3em 0; }} code {{ color: #666; }}</style>
</head>
<body>
<h1>Thalamic QSM compendium: executed notebooks</h1>
<p>Rendered from <code>{_html.escape(str(executed_dir))}</code>. The cohort and the head phantoms
are <strong>simulated</strong>; see the README.</p>
<ol>
{items}
</ol>
</body>
</html>
""")
    return index


def main(argv=None):
    """``python -m analysis.html EXECUTED_DIR OUT_DIR``: render, print the index path; 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m analysis.html",
                                     description="Render executed notebooks to HTML with an index page.")
    parser.add_argument("executed_dir", help="folder of executed notebooks (make all: results/notebooks)")
    parser.add_argument("out_dir", help="folder for the HTML pages and index.html")
    args = parser.parse_args(argv)
    try:
        index = render_html(args.executed_dir, args.out_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"HTML: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
