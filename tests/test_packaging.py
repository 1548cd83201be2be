"""Packaging of the compendium: licence, citation metadata, distribution name, version, HTML report.

* ``LICENSE`` is the MIT licence that ``pyproject.toml`` declares; ``CITATION.cff`` (CFF 1.2.0)
  cites the compendium and the AJNR 2018 paper and says the cohort is simulated.
* The distribution has a name of its own (the import name stays ``analysis``), needs a setuptools
  that understands ``license = "MIT"`` (>= 77), and ``find`` sees every subpackage.
* ``analysis.__version__`` is the installed distribution's version, and ``python -m analysis
  --version`` prints it.
* :func:`analysis.html.render_html` turns executed notebooks into HTML pages with an index.
"""

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

import analysis
from analysis import _version
from analysis.html import main as html_main
from analysis.html import notebook_title, render_html

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (the pinned environment)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


# -- licence and citation ----------------------------------------------------------------------


def test_license_is_mit_with_the_compendiums_copyright(pyproject):
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 The thalamic QSM compendium authors" in text
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in text
    assert pyproject["project"]["license"] == "MIT"
    assert pyproject["project"]["license-files"] == ["LICENSE"]


def test_citation_cff_cites_the_compendium_and_the_paper(pyproject):
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    for key in ("cff-version", "message", "title", "authors", "version", "license", "type", "references"):
        assert key in cff, f"CITATION.cff lacks {key!r}"
    assert cff["cff-version"] == "1.2.0"
    assert cff["type"] == "software" and cff["license"] == "MIT"
    assert str(cff["version"]) == pyproject["project"]["version"]
    assert cff["authors"] and all("name" in a or "family-names" in a for a in cff["authors"])
    message = cff["message"].lower()
    assert "cite" in message and "simulated" in message

    (paper,) = [r for r in cff["references"] if r.get("type") == "article"]
    assert paper["title"] == ("Quantitative Susceptibility Mapping of the Thalamus: Relationships with "
                              "Thalamic Volume, Total Gray Matter Volume, and T2 Lesion Burden")
    assert paper["journal"] == "AJNR American Journal of Neuroradiology"
    assert (paper["year"], paper["volume"], paper["issue"], paper["start"], paper["end"]) == (2018, 39, 3, 467, 472)
    assert paper["authors"], "CFF 1.2.0 requires authors for every reference"
    # types that the CFF 1.2.0 schema demands (integers, not strings)
    assert all(isinstance(paper[k], int) for k in ("year", "volume", "start", "end"))


# -- distribution ------------------------------------------------------------------------------


def test_distribution_has_a_name_of_its_own(pyproject):
    name = pyproject["project"]["name"]
    assert name != "analysis"
    assert name == _version.DIST_NAME == analysis.DIST_NAME


def test_build_backend_understands_an_spdx_license_string(pyproject):
    """``license = "MIT"`` (PEP 639) is rejected by setuptools < 77."""
    (req,) = [r for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    m = re.fullmatch(r"setuptools\s*>=\s*(\d+)(?:\.\d+)*", req)
    assert m, f"build-system requires {req!r}: expected setuptools>=N"
    assert int(m.group(1)) >= 77


def test_setuptools_find_sees_every_subpackage(pyproject):
    """``packages.find`` ignores folders without ``__init__.py``: every folder of modules needs one."""
    assert pyproject["tool"]["setuptools"]["packages"]["find"]["include"] == ["analysis", "analysis.*"]
    pkg = ROOT / "analysis"
    folders = {p.parent for p in pkg.rglob("*.py") if "__pycache__" not in p.parts}
    missing = sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").is_file())
    assert not missing, f"module folders without __init__.py (not packaged): {missing}"


def test_package_data_ships_the_yaml_files(pyproject):
    patterns = pyproject["tool"]["setuptools"]["package-data"]["analysis"]
    assert "data/*.yaml" in patterns
    shipped = {p.name for pattern in patterns for p in (ROOT / "analysis").glob(pattern)}
    assert "published.yaml" in shipped


def test_version_comes_from_the_installed_distribution(pyproject):
    try:
        installed = metadata.version(_version.DIST_NAME)
    except metadata.PackageNotFoundError:  # pragma: no cover
        pytest.fail(f"{_version.DIST_NAME} is not installed: run `make setup` (pip install --no-deps -e .)")
    assert analysis.__version__ == installed == pyproject["project"]["version"]


def test_source_tree_version_fallback(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[build-system]\nrequires = ["x"]\n\n[project]\nname = "x"\nversion = "1.2.3"\n\n'
                         '[tool.x]\nversion = "9"\n', encoding="utf-8")
    assert _version._source_version(pyproject) == "1.2.3"
    assert _version._source_version(tmp_path / "missing.toml") == "0+unknown"
    assert _version._source_version(ROOT / "pyproject.toml") == analysis.__version__


def test_cli_prints_the_version(tmp_path):
    out = subprocess.run([sys.executable, "-m", "analysis", "--version"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"python -m analysis {analysis.__version__}"


# -- HTML rendering of the executed notebooks --------------------------------------------------


def _executed_notebook(path, title):
    nb = new_notebook(cells=[
        new_markdown_cell(f"Some text first.\n\n# {title}\n\n## A section"),
        new_code_cell("6 * 7", execution_count=1,
                      outputs=[new_output("execute_result", data={"text/plain": "42"}, execution_count=1)]),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_notebook_title_is_the_first_heading():
    nb = new_notebook(cells=[new_code_cell("# a comment, not a heading"),
                             new_markdown_cell("intro\n\n## The *lesion* `model` ##\n# later")])
    assert notebook_title(nb) == "The lesion model"
    assert notebook_title(new_notebook(cells=[new_markdown_cell("no heading")]), default="x") == "x"


def test_render_html_writes_pages_and_an_index(tmp_path):
    executed = tmp_path / "notebooks"
    executed.mkdir()
    _executed_notebook(executed / "01-first.ipynb", "First notebook: r = 0.28 & more")
    _executed_notebook(executed / "10-second.ipynb", "Second notebook")

    index = render_html(executed, tmp_path / "html")

    assert index == tmp_path / "html" / "index.html"
    page = (tmp_path / "html" / "01-first.html").read_text(encoding="utf-8")
    assert "<html" in page and "42" in page
    assert (tmp_path / "html" / "10-second.html").is_file()
    text = index.read_text(encoding="utf-8")
    assert '<a href="01-first.html">First notebook: r = 0.28 &amp; more</a>' in text
    assert '<a href="10-second.html">Second notebook</a>' in text
    assert text.index("01-first.html") < text.index("10-second.html")


def test_render_html_without_notebooks_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ValueError, match="no executed notebooks.*make all"):
        render_html(tmp_path, tmp_path / "html")
    assert html_main([str(tmp_path), str(tmp_path / "html")]) == 2
    assert capsys.readouterr().err.startswith("error: no executed notebooks")


# -- Makefile, .gitignore, docs ----------------------------------------------------------------


def test_makefile_renders_html_and_keeps_the_ci_entry():
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^html: setup$", text, flags=re.M)
    assert re.search(r"^test: setup\n\t\$\(PY\) -m pytest -q$", text, flags=re.M)
    all_recipe = re.search(r"^all: notebooks\n((?:\t.*\n)+)", text, flags=re.M).group(1)
    assert "$(RENDER_HTML)" in all_recipe
    assert "-m analysis run" not in all_recipe  # the notebooks run once, through `notebooks`
    gitignore = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "results/html/" in gitignore


def test_architecture_page_names_every_subpackage():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    subpackages = sorted(p.parent.name for p in (ROOT / "analysis").glob("*/__init__.py"))
    assert {"cli", "cohort", "imaging", "simulation", "stats"} <= set(subpackages)
    missing = [name for name in subpackages if f"analysis.{name}" not in text]
    assert not missing, f"docs/architecture.md does not describe: {missing}"
    assert "docs/architecture.md" in (ROOT / "README.md").read_text(encoding="utf-8")
