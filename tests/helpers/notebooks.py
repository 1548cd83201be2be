"""Execute one of the compendium's notebooks with papermill for a test (not a test module).

Usage in a test::

    from tests.helpers.notebooks import execute_notebook

    def test_power_notebook(tmp_path):
        run = execute_notebook("11-power", tmp_path, n_bootstrap=200)
        table = pd.read_csv(run.output_dir / "power.csv")
        ...

Outputs (tables, figures) go to folders under ``tmp_path``, never to the compendium's own
``results/`` or ``figures/``; only parameters that the notebook declares are injected, and
``output_dir`` / ``figures_dir`` are set to those temporary folders when declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


@dataclass
class ExecutedNotebook:
    path: Path                 # executed copy
    output_dir: Path           # tables written by the notebook
    figures_dir: Path          # figures written by the notebook
    notebook: nbformat.NotebookNode

    def stdout(self):
        """Concatenated stream output of every code cell."""
        return "".join(out.get("text", "") for cell in self.notebook.cells if cell.cell_type == "code"
                       for out in cell.get("outputs", []) if out.get("output_type") == "stream")


def notebook_path(stem):
    """Path of ``notebooks/<stem>.ipynb`` (stem like ``"11-power"``)."""
    path = NOTEBOOKS / f"{stem}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def execute_notebook(stem, tmp_path, **parameters):
    """Run ``notebooks/<stem>.ipynb`` headless; return an :class:`ExecutedNotebook`."""
    import papermill as pm

    src = notebook_path(stem)
    declared = set(pm.inspect_notebook(str(src)))
    tmp_path = Path(tmp_path)
    out_dir, fig_dir = tmp_path / "tables", tmp_path / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir.mkdir(parents=True, exist_ok=True)
    params = {}
    if "output_dir" in declared:
        params["output_dir"] = str(out_dir)
    if "figures_dir" in declared:
        params["figures_dir"] = str(fig_dir)
    unknown = set(parameters) - declared
    if unknown:
        raise ValueError(f"{src.name} does not declare {sorted(unknown)} (declared: {sorted(declared)})")
    params.update(parameters)
    executed = tmp_path / src.name
    pm.execute_notebook(str(src), str(executed), parameters=params, cwd=str(ROOT),
                        kernel_name="python3", progress_bar=False)
    return ExecutedNotebook(executed, out_dir, fig_dir, nbformat.read(str(executed), as_version=4))
