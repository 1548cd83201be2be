"""Every notebook is thin and clean: stripped, one ``parameters`` cell, public imports at the top.

Fast (nothing is executed): the notebooks are read as JSON and their code parsed with ``ast``.

* committed without outputs (``execution_count`` null), one code cell tagged ``parameters``,
  the first code cell, and declaring ``output_dir`` and ``figures_dir``;
* every ``import`` in the code cell right after the parameters cell (none later, none nested);
* only public names of ``analysis``: no ``analysis._module``, no ``_name`` imported, and a
  name imported from (or read off) a module with ``__all__`` is in it;
* no references to a tracker in the text — markdown, comments, strings the notebook prints —
  (issue numbers, ``#11``, "stop 9"): the narrative must stand on its own.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import io
import re
import tokenize

import nbformat
import pytest

from tests.helpers.notebooks import NOTEBOOKS

PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
TRACKER = re.compile(r"\bissues?\s*#?\s*\d+|(?<![\w&])#\d+\b|\bstops?\s+\d+\b|\btracker\b|\bticket\b",
                     re.IGNORECASE)


def _code(source):
    """Cell source without IPython magics and shell escapes, for ``ast``."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _comments_and_strings(source):
    """The comments and string literals (f-string text included) of a code cell."""
    toks = tokenize.generate_tokens(io.StringIO(_code(source)).readline)
    comments = [t.string for t in toks if t.type == tokenize.COMMENT]
    strings = [n.value for n in ast.walk(ast.parse(_code(source)))
               if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return comments + strings


def _submodule(module, name):
    return hasattr(module, "__path__") and importlib.util.find_spec(f"{module.__name__}.{name}") is not None


def _public(module, name):
    """Whether ``module.name`` is public: no underscore, and in ``__all__`` when there is one."""
    if name.startswith("_"):
        return False
    if _submodule(module, name):
        return True
    listed = getattr(module, "__all__", None)
    return listed is None or name in listed


@pytest.fixture(scope="module", params=PATHS, ids=[p.stem for p in PATHS])
def notebook(request):
    return request.param, nbformat.read(str(request.param), as_version=4)


def test_there_are_notebooks():
    assert len(PATHS) >= 10


def test_stripped_with_one_parameters_cell_first(notebook):
    import papermill as pm

    path, nb = notebook
    assert nb.nbformat == 4 and nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert not cell.outputs and cell.execution_count is None, cell.source[:60]
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert {"output_dir", "figures_dir"} <= set(pm.inspect_notebook(str(path)))


def test_imports_are_public_and_at_the_top(notebook):
    path, nb = notebook
    code = [c for c in nb.cells if c.cell_type == "code"]
    aliases = {}                                   # name bound in the notebook -> analysis module
    for k, cell in enumerate(code):
        tree = ast.parse(_code(cell.source))
        imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        if k != 1:
            assert not imports, f"{path.name}: import outside the import cell: {cell.source[:80]!r}"
            continue
        assert all(n in tree.body for n in imports), f"{path.name}: a nested import in the import cell"
        for node in imports:
            if isinstance(node, ast.Import):
                for a in node.names:
                    assert not any(part.startswith("_") for part in a.name.split(".")), a.name
                    if a.name.split(".")[0] == "analysis":
                        aliases[a.asname or a.name] = importlib.import_module(a.name)
                continue
            assert node.level == 0 and node.module, f"{path.name}: relative import"
            parts = node.module.split(".")
            assert not any(p.startswith("_") for p in parts), f"{path.name}: private module {node.module}"
            if parts[0] != "analysis":
                continue
            module = importlib.import_module(node.module)
            for a in node.names:
                assert _public(module, a.name), f"{path.name}: {node.module}.{a.name} is not public"
                if _submodule(module, a.name):
                    aliases[a.asname or a.name] = importlib.import_module(f"{node.module}.{a.name}")
    for cell in code:
        body = ast.parse(_code(cell.source)).body
        last = body[-1] if body else None          # a parameter check must not display its value
        if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
            called = last.value.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            assert not name.startswith("check_"), f"{path.name}: a cell ends with {name}(...), which displays its value"
        for node in ast.walk(ast.parse(_code(cell.source))):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases):
                module = aliases[node.value.id]
                assert _public(module, node.attr), f"{path.name}: {module.__name__}.{node.attr} is not public"


def test_no_tracker_references(notebook):
    path, nb = notebook
    for cell in nb.cells:
        texts = [cell.source] if cell.cell_type == "markdown" else _comments_and_strings(cell.source)
        for text in texts:
            m = TRACKER.search(text)
            assert m is None, f"{path.name}: {m.group(0)!r} in {text[max(0, m.start() - 40):m.end() + 40]!r}"
