"""The compendium's version, read from the installed distribution's metadata.

The import name is ``analysis``; the distribution (``pyproject.toml`` ``[project] name``) is
:data:`DIST_NAME`. Use :data:`analysis.__version__` (not ``importlib.metadata.version("analysis")``,
which names no distribution of this project). A source tree that was never installed
(``pip install -e .``) falls back to the version written in ``pyproject.toml``.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["DIST_NAME", "get_version"]

#: Distribution name of the compendium on an index / in ``pip list`` (import name: ``analysis``).
DIST_NAME = "thalamic-qsm-compendium"

_PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _source_version(pyproject=_PYPROJECT):
    """``version = "..."`` of the ``[project]`` table of ``pyproject.toml``; ``"0+unknown"`` without it."""
    try:
        text = Path(pyproject).read_text(encoding="utf-8")
    except OSError:
        return "0+unknown"
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, flags=re.M | re.S)
    m = project and re.search(r'^version\s*=\s*"([^"]+)"', project.group(1), flags=re.M)
    return m.group(1) if m else "0+unknown"


def get_version():
    """Version of the installed distribution, else of the source tree's ``pyproject.toml``."""
    try:
        return version(DIST_NAME)
    except PackageNotFoundError:
        return _source_version()
