"""Run the compendium's notebooks headless, in order, with papermill.

Parameters come from one YAML file (``params.yml`` at the top of the compendium; copy it and edit
the copy to run on your own data)::

    common:            # passed to every notebook that declares the parameter
      cohort_csv: data/cohort.csv
      seed: 20180301
    notebooks:         # per-notebook overrides, keyed by the notebook's stem
      11-power:
        r_values: [0.2, 0.28, 0.35]

Only parameters that a notebook declares in its ``parameters`` cell are injected into it, so one
file can serve every notebook; a per-notebook key that the notebook does not declare is an error
(it is almost always a typo). Notebooks run with the compendium root as working directory, so
relative paths in the YAML are relative to the root. Executed copies go to
``results/notebooks/`` (git-ignored).
"""

from __future__ import annotations

import difflib
import time
from pathlib import Path

import papermill as pm
import yaml
from papermill.exceptions import PapermillExecutionError

from analysis.io import ROOT

__all__ = ["NOTEBOOK_DIR", "EXECUTED_DIR", "load_params", "check_common", "list_notebooks", "notebook_parameters",
           "run_notebooks"]

NOTEBOOK_DIR = ROOT / "notebooks"
EXECUTED_DIR = ROOT / "results" / "notebooks"


def load_params(path):
    """Read a parameters YAML file and return ``(common, per_notebook)`` dictionaries."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"parameters file {path} does not exist")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        raise ValueError(f"{path}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read it ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with 'common' and 'notebooks' keys")
    unknown = set(data) - {"common", "notebooks"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {sorted(unknown)}; use 'common' and 'notebooks'")
    common = data.get("common") or {}
    per_nb = data.get("notebooks") or {}
    for key, value in (("common", common), ("notebooks", per_nb)):
        if not isinstance(value, dict):
            raise ValueError(f"{path}: '{key}' must be a mapping, got {type(value).__name__}")
    return common, per_nb


def check_common(common, notebooks, *, source="params"):
    """Refuse ``common`` keys that no notebook declares (almost always a typo).

    A typo such as ``cohort_cvs:`` for ``cohort_csv:`` would otherwise be ignored silently and
    the notebooks would run on the default — the *simulated* cohort — instead of the user's.
    """
    declared = set()
    for nb in notebooks:
        declared |= set(pm.inspect_notebook(str(nb)))
    unknown = sorted(set(common) - declared)
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, sorted(declared), n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"{source}: common parameter(s) {', '.join(hints)} are declared by no notebook; "
                         f"known: {sorted(declared)}")


def list_notebooks(notebook_dir=NOTEBOOK_DIR):
    """Return the notebooks ``NN-name.ipynb`` of ``notebook_dir`` in run order."""
    return sorted(p for p in Path(notebook_dir).glob("[0-9][0-9]-*.ipynb"))


def notebook_parameters(notebook, common, per_nb):
    """Parameters to inject into ``notebook``: declared common ones plus its own overrides."""
    declared = set(pm.inspect_notebook(str(notebook)))
    own = dict(per_nb.get(Path(notebook).stem) or {})
    undeclared = set(own) - declared
    if undeclared:
        hints = []
        for k in sorted(undeclared):
            close = difflib.get_close_matches(k, sorted(declared), n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(
            f"parameters {', '.join(hints)} given for {Path(notebook).name} are not declared in its "
            f"'parameters' cell (declared: {sorted(declared)})"
        )
    params = {k: v for k, v in common.items() if k in declared}
    params.update(own)
    return params


def run_notebooks(params_file=ROOT / "params.yml", *, only=None, output_dir=EXECUTED_DIR,
                  notebook_dir=NOTEBOOK_DIR, kernel_name="python3", log=print):
    """Execute every notebook (or those whose stem starts with one of ``only``) in order.

    Returns a list of ``(notebook_name, seconds)``. A notebook that fails stops the run with a
    ``ValueError`` naming the notebook, the cell's error and the executed copy (kept, with the
    full traceback, for inspection). Unknown parameters (in ``common`` or per notebook) are
    refused before anything runs.
    """
    common, per_nb = load_params(params_file)
    check_common(common, list_notebooks(notebook_dir), source=str(params_file))
    unknown = set(per_nb) - {p.stem for p in list_notebooks(notebook_dir)}
    if unknown:
        raise ValueError(f"{params_file}: no notebook named {sorted(unknown)} in {notebook_dir}")
    notebooks = list_notebooks(notebook_dir)
    if only:
        notebooks = [nb for nb in notebooks if any(nb.stem.startswith(str(o)) for o in only)]
        if not notebooks:
            raise ValueError(f"no notebook matches {only}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    timings = []
    for nb in notebooks:
        params = notebook_parameters(nb, common, per_nb)
        log(f"[run] {nb.name}  {params}")
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(output_dir / nb.name), parameters=params,
                                cwd=str(ROOT), kernel_name=kernel_name, progress_bar=False)
        except PapermillExecutionError as exc:
            raise ValueError(f"{nb.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue} "
                             f"(the executed notebook with the full traceback: {output_dir / nb.name})") from None
        dt = time.perf_counter() - t0
        log(f"[done] {nb.name} in {dt:.1f} s")
        timings.append((nb.name, dt))
    return timings
