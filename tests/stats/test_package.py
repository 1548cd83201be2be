"""Tests of the analysis.stats package itself: cheap import, curated re-exports, public names only.

Modules of the subpackage may use each other's public names and the private helper module
``analysis.stats._validation``, never another module's ``_private`` names; they import each other at
the top (there is no import cycle to break).
"""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import analysis.stats as st

STATS_DIR = Path(st.__file__).parent
MODULES = sorted(p.stem for p in STATS_DIR.glob("*.py") if p.stem != "__init__")
PUBLIC_MODULES = [m for m in MODULES if not m.startswith("_")]


def test_import_is_load_light():
    code = ("import sys, analysis.stats as s; "
            "heavy = [m for m in ('statsmodels', 'scipy', 'matplotlib', 'pandas') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=STATS_DIR.parents[1])
    assert out.stdout.strip() == ""


def test_reexports_are_the_modules_objects():
    assert st.__all__ == sorted(st.__all__) and len(st.__all__) == len(set(st.__all__))
    # a name equal to a submodule's would be replaced by the submodule once that is imported
    assert not set(st.__all__) & set(MODULES)
    for name in st.__all__:
        obj = getattr(st, name)
        owner = importlib.import_module(f"analysis.stats.{st._EXPORTS[name]}")
        assert obj is getattr(owner, name), name
        assert name in owner.__all__, name
    assert "table1" in dir(st) and "huber_table" in dir(st)
    with pytest.raises(AttributeError, match="no_such_name"):
        st.no_such_name  # noqa: B018
    from analysis.stats import diagnostics, models  # submodules still import as usual
    assert models.table1 is st.table1 and diagnostics.model_specs is st.model_specs


@pytest.mark.parametrize("module", MODULES)
def test_every_module_defines_all(module):
    mod = importlib.import_module(f"analysis.stats.{module}")
    assert isinstance(mod.__all__, list) and mod.__all__
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, missing
    assert not [n for n in mod.__all__ if n.startswith("_")]


def _imports(module):
    tree = ast.parse((STATS_DIR / f"{module}.py").read_text(encoding="utf-8"))
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, id(node) in top


@pytest.mark.parametrize("module", MODULES)
def test_no_private_names_across_modules(module):
    bad = []
    for node, _ in _imports(module):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("analysis."):
            private_module = node.module.rsplit(".", 1)[-1].startswith("_") and node.module.startswith("analysis.stats")
            bad += [f"from {node.module} import {a.name}" for a in node.names
                    if a.name.startswith("_") and not private_module]
    assert not bad, f"{module}.py uses private names of other modules: {bad}"


@pytest.mark.parametrize("module", MODULES)
def test_package_imports_at_module_top(module):
    inner = [f"line {node.lineno}" for node, at_top in _imports(module) if not at_top
             and any(n.startswith("analysis") for n in
                     ([node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]))]
    assert not inner, f"{module}.py imports analysis modules inside functions: {inner}"
