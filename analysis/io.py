"""Small I/O helpers shared by every stage: atomic writes and project paths.

Outputs are written to a temporary file in the destination folder and then renamed, so an
interrupted run never leaves a half-written table or figure behind, and inputs are never
overwritten by accident (see :func:`ensure_not_input`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

__all__ = ["ROOT", "atomic_path", "write_text", "json_default", "write_csv", "savefig", "ensure_not_input",
           "write_table", "progress_bar"]

#: Root of the compendium (the folder holding ``pyproject.toml``).
ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def atomic_path(path, *, suffix=None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Parameters
    ----------
    path : str or Path
        Final destination. Parent folders are created.
    suffix : str, optional
        Suffix of the temporary file (defaults to the suffix of ``path``, so that writers that
        infer the format from the name, like matplotlib or nibabel, keep working).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give outputs the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)


def json_default(o):
    """``default=`` for :func:`json.dumps`: NumPy scalars and arrays, and paths, as plain JSON."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_csv(df, path, **kwargs):
    """Write a DataFrame to CSV atomically (no index unless asked) and return the path."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)
    return Path(path)


def savefig(fig, path, **kwargs):
    """Save a matplotlib figure atomically (``dpi=150``, tight bbox by default)."""
    kwargs.setdefault("dpi", 150)
    kwargs.setdefault("bbox_inches", "tight")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kwargs)
    return Path(path)


def ensure_not_input(out_path, *input_paths):
    """Raise ``ValueError`` if ``out_path`` is one of ``input_paths`` (never overwrite inputs)."""
    out = Path(out_path).resolve()
    for p in input_paths:
        if p is not None and Path(p).resolve() == out:
            raise ValueError(f"refusing to overwrite the input file {p}; choose another output path")


def write_table(df, output_dir, name, *, title, notes=(), floatfmt="g", index=False):
    """Write a results table as ``<name>.csv`` and a readable ``<name>.md`` beside it.

    Parameters
    ----------
    df : pandas.DataFrame
        The table. The CSV keeps full precision; the Markdown rendering uses ``floatfmt``.
    output_dir : str or Path
        Destination folder (created if needed).
    name : str
        File stem, e.g. ``"table1"``.
    title : str
        First-level heading of the Markdown rendering.
    notes : sequence of str
        Paragraphs printed under the title (say there what is simulated).
    floatfmt : str
        Format of floats in the Markdown rendering (tabulate's ``floatfmt``).
    index : bool
        Keep the DataFrame index as a column.

    Returns
    -------
    tuple of Path
        The CSV and Markdown paths.
    """
    if not name or "/" in name or name.endswith((".csv", ".md")):
        raise ValueError(f"table name must be a bare file stem, got {name!r}")
    output_dir = Path(output_dir)
    csv_path = write_csv(df, output_dir / f"{name}.csv", index=index)
    body = df.to_markdown(index=index, floatfmt=floatfmt)
    parts = [f"# {title}", *notes, body]
    md_path = write_text(output_dir / f"{name}.md", "\n\n".join(parts) + "\n")
    return csv_path, md_path


def progress_bar(iterable=None, *, enabled=True, nested=False, **kwargs):
    """A tqdm progress bar that does not flood logs.

    Parameters
    ----------
    iterable : iterable, optional
        What to iterate over (or use ``total=`` and ``update``).
    enabled : bool
        ``False`` switches the bar off (the ``progress=`` option of the library's functions).
    nested : bool
        An inner bar (solver iterations, the steps of one reconstruction): shown only when
        standard error is a terminal, and removed when done, so that logs of headless runs
        (papermill, CI, batch jobs) keep one line per outer step instead of thousands.
    **kwargs
        Passed to :class:`tqdm.auto.tqdm` (``desc``, ``total``, ``unit``, …).
    """
    disable = not enabled
    if nested:
        disable = disable or not _stderr_is_terminal()
        kwargs.setdefault("leave", False)
    return tqdm(iterable, disable=disable, **kwargs)


def _stderr_is_terminal():
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
