"""Tests of analysis.reproduce: the parameters file and the papermill runner.

The end-to-end test executes a tiny two-cell notebook (one cell tagged ``parameters``) in a
temporary folder, so it checks parameter injection without running the compendium's notebooks.
"""

import json
from pathlib import Path

import nbformat
import pytest
import yaml

from analysis import reproduce as pipeline
from analysis.reproduce import list_notebooks, load_params, notebook_parameters, run_notebooks

ROOT = Path(__file__).resolve().parents[1]


def make_notebook(path, params_source='greeting = "default"\nseed = 0\n',
                  body='print(f"greeting={greeting} seed={seed}")\n'):
    """Write a two-cell notebook: a ``parameters`` cell and a cell printing the parameters."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(params_source)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, str(path))
    return Path(path)


def write_yaml(path, data):
    Path(path).write_text(yaml.safe_dump(data), encoding="utf-8")
    return Path(path)


# -- load_params -------------------------------------------------------------------------------


def test_load_params_missing_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_params(tmp_path / "nope.yml")


def test_load_params_unknown_top_level_key(tmp_path):
    path = write_yaml(tmp_path / "p.yml", {"common": {"seed": 1}, "notebook": {}})   # typo: notebook
    with pytest.raises(ValueError, match="unknown top-level") as exc:
        load_params(path)
    assert "'notebook'" in str(exc.value)


def test_load_params_not_a_mapping(tmp_path):
    path = tmp_path / "p.yml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="mapping"):
        load_params(path)


def test_load_params_empty_file_and_empty_sections(tmp_path):
    path = tmp_path / "p.yml"
    path.write_text("", encoding="utf-8")
    assert load_params(path) == ({}, {})
    path.write_text("common:\nnotebooks:\n", encoding="utf-8")
    assert load_params(path) == ({}, {})


def test_load_params_reads_both_sections(tmp_path):
    path = write_yaml(tmp_path / "p.yml", {"common": {"seed": 7, "cohort_csv": "x.csv"},
                                           "notebooks": {"11-power": {"r_values": [0.2, 0.3]}}})
    common, per_nb = load_params(path)
    assert common == {"seed": 7, "cohort_csv": "x.csv"}
    assert per_nb == {"11-power": {"r_values": [0.2, 0.3]}}


def test_the_shipped_params_file():
    common, per_nb = load_params(ROOT / "params.yml")
    assert common["cohort_csv"] == "data/cohort.csv"
    assert common["seed"] == 20180301
    assert {"output_dir", "figures_dir"} <= set(common)
    notebooks = {p.stem for p in list_notebooks()}
    assert set(per_nb) <= notebooks, f"params.yml names notebooks that do not exist: {set(per_nb) - notebooks}"


# -- list_notebooks and notebook_parameters ------------------------------------------------------


def test_list_notebooks_in_run_order(tmp_path):
    for name in ("12-b.ipynb", "01-a.ipynb", "10-c.ipynb", "scratch.ipynb", "1-x.ipynb"):
        make_notebook(tmp_path / name)
    assert [p.name for p in list_notebooks(tmp_path)] == ["01-a.ipynb", "10-c.ipynb", "12-b.ipynb"]


def test_notebook_parameters_injects_only_declared_common_keys(tmp_path):
    nb = make_notebook(tmp_path / "01-tiny.ipynb")
    common = {"greeting": "hello", "cohort_csv": "data/cohort.csv", "figures_dir": "figures"}
    assert notebook_parameters(nb, common, {}) == {"greeting": "hello"}
    # per-notebook values override common ones
    assert notebook_parameters(nb, common, {"01-tiny": {"greeting": "hi", "seed": 3}}) == \
        {"greeting": "hi", "seed": 3}
    # other notebooks' overrides are ignored
    assert notebook_parameters(nb, {}, {"02-other": {"whatever": 1}}) == {}


def test_notebook_parameters_rejects_an_undeclared_key(tmp_path):
    nb = make_notebook(tmp_path / "01-tiny.ipynb")
    with pytest.raises(ValueError, match="not declared") as exc:
        notebook_parameters(nb, {}, {"01-tiny": {"gretting": "typo"}})
    msg = str(exc.value)
    assert "gretting" in msg and "01-tiny.ipynb" in msg
    assert "greeting" in msg and "seed" in msg      # the declared ones are listed


# -- run_notebooks ---------------------------------------------------------------------------------


def _stdout(executed_path):
    nb = nbformat.read(str(executed_path), as_version=4)
    return "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                   for out in cell.get("outputs", []) if out.get("output_type") == "stream")


def test_run_notebooks_executes_with_injected_parameters(tmp_path):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    make_notebook(nbdir / "01-tiny.ipynb")
    make_notebook(nbdir / "02-other.ipynb", params_source="seed = 0\n", body='print(f"other seed={seed}")\n')
    params = write_yaml(tmp_path / "params.yml", {
        "common": {"greeting": "from-common", "seed": 42},
        "notebooks": {"02-other": {"seed": 99}},
    })
    source_before = (nbdir / "01-tiny.ipynb").read_bytes()
    logged = []
    timings = run_notebooks(params, notebook_dir=nbdir, output_dir=tmp_path / "out", log=logged.append)

    assert [name for name, _ in timings] == ["01-tiny.ipynb", "02-other.ipynb"]
    assert all(seconds >= 0 for _, seconds in timings)
    assert "greeting=from-common seed=42" in _stdout(tmp_path / "out" / "01-tiny.ipynb")
    assert "other seed=99" in _stdout(tmp_path / "out" / "02-other.ipynb")
    executed = nbformat.read(str(tmp_path / "out" / "01-tiny.ipynb"), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'greeting = "from-common"' in injected[0].source
    assert "seed" not in injected[0].source.replace("seed = 42", "")  # only declared parameters, once
    assert (nbdir / "01-tiny.ipynb").read_bytes() == source_before     # the source is not touched
    assert any("01-tiny.ipynb" in line for line in logged)


def test_run_notebooks_only_selects_by_prefix(tmp_path):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    make_notebook(nbdir / "01-tiny.ipynb")
    make_notebook(nbdir / "02-other.ipynb", body="raise RuntimeError('must not run')\n")
    params = write_yaml(tmp_path / "params.yml", {"common": {"greeting": "x"}})
    timings = run_notebooks(params, only=["01"], notebook_dir=nbdir, output_dir=tmp_path / "out", log=lambda s: None)
    assert [name for name, _ in timings] == ["01-tiny.ipynb"]
    assert not (tmp_path / "out" / "02-other.ipynb").exists()
    with pytest.raises(ValueError, match="no notebook matches"):
        run_notebooks(params, only=["99"], notebook_dir=nbdir, output_dir=tmp_path / "out", log=lambda s: None)


def test_run_notebooks_rejects_overrides_for_a_missing_notebook(tmp_path):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    make_notebook(nbdir / "01-tiny.ipynb")
    params = write_yaml(tmp_path / "params.yml", {"notebooks": {"01-tiyn": {"seed": 1}}})
    with pytest.raises(ValueError, match="no notebook named") as exc:
        run_notebooks(params, notebook_dir=nbdir, output_dir=tmp_path / "out", log=lambda s: None)
    assert "01-tiyn" in str(exc.value)
    assert not (tmp_path / "out").exists()          # nothing ran, nothing written


def test_a_typo_in_common_is_an_error_not_the_simulated_cohort(tmp_path):
    """`cohort_cvs:` for `cohort_csv:` used to be ignored, so the notebooks ran on the bundled
    simulated cohort instead of the user's file; now nothing runs and the message suggests the fix."""
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    make_notebook(nbdir / "01-tiny.ipynb", params_source='cohort_csv = "data/cohort.csv"\n', body="print(cohort_csv)\n")
    params = write_yaml(tmp_path / "params.yml", {"common": {"cohort_cvs": "mine.csv"}})
    with pytest.raises(ValueError, match=r"'cohort_cvs' \(did you mean 'cohort_csv'\?\)"):
        run_notebooks(params, notebook_dir=nbdir, output_dir=tmp_path / "out", log=lambda s: None)
    assert not (tmp_path / "out" / "01-tiny.ipynb").exists()


def test_bad_yaml_is_one_line_naming_the_file(tmp_path):
    bad = tmp_path / "params.yml"
    bad.write_text("common:\n  seed: [1, 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"params.yml: not valid YAML \(line"):
        load_params(bad)


def test_run_notebooks_stops_at_a_failing_notebook(tmp_path):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    make_notebook(nbdir / "01-bad.ipynb", body="raise RuntimeError('boom')\n")
    make_notebook(nbdir / "02-next.ipynb")
    params = write_yaml(tmp_path / "params.yml", {})
    with pytest.raises(ValueError, match=r"01-bad.ipynb failed in cell 2: RuntimeError: boom \(the executed notebook"):
        run_notebooks(params, notebook_dir=nbdir, output_dir=tmp_path / "out", log=lambda s: None)
    assert (tmp_path / "out" / "01-bad.ipynb").is_file()          # kept for inspection
    assert not (tmp_path / "out" / "02-next.ipynb").exists()


# -- the compendium's own notebooks ----------------------------------------------------------------


@pytest.mark.parametrize("nb_path", list_notebooks(), ids=lambda p: p.name)
def test_compendium_notebook_is_clean_and_parameterised(nb_path):
    """Committed without outputs, with one cell tagged ``parameters`` that params.yml can fill."""
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb_path.name}: needs exactly one cell tagged 'parameters'"
    with_output = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count")]
    assert not with_output, f"{nb_path.name}: code cells {with_output} carry outputs; clear them before committing"
    common, per_nb = load_params(ROOT / "params.yml")
    params = notebook_parameters(nb_path, common, per_nb)   # raises on an undeclared override
    assert set(params) <= set(common) | set(per_nb.get(nb_path.stem) or {})


def test_executed_copies_go_to_an_ignored_folder():
    assert pipeline.EXECUTED_DIR == ROOT / "results" / "notebooks"
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "results/notebooks/" in ignored


def test_readme_lists_every_notebook_and_says_what_is_simulated():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [p.stem for p in list_notebooks() if p.stem not in text]
    assert not missing, f"README.md does not mention notebooks {missing} (update its notebook table)"
    first_screen = "\n".join(text.splitlines()[:40])
    assert "simulated" in first_screen.lower() and "cohort" in first_screen and "phantom" in first_screen
    for target in ("make all", "make test"):
        assert target in text
