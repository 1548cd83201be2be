# Thalamic QSM compendium. Two commands on a fresh machine:
#   make all    set up .venv and run the whole reproduction (notebooks -> figures/, results/tables/,
#               executed notebooks -> results/notebooks/, rendered to HTML in results/html/)
#   make test   set up .venv and run the test suite (the CI entry, .ci/run)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PARAMS ?= params.yml
EXECUTED_DIR := results/notebooks
HTML_DIR := results/html
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: all setup test test-fast lab cohort compare notebooks html benchmark clean distclean help

help:
	@echo "make all        set up, run every notebook headless (PARAMS=$(PARAMS)) and render them to HTML"
	@echo "make html       render the executed notebooks ($(EXECUTED_DIR)/) to $(HTML_DIR)/index.html"
	@echo "make test       set up and run the test suite"
	@echo "make test-fast  unit tests only (skips notebook execution and slow tests)"
	@echo "make lab        open JupyterLab on the notebooks"
	@echo "make cohort     regenerate data/cohort.csv from its fixed seed"
	@echo "make compare    compare results/tables with the committed tables (stated tolerances)"
	@echo "make benchmark  time the QSM reconstruction"
	@echo "make clean      remove executed notebooks, their HTML and caches (keeps .venv)"
	@echo "make distclean  clean and remove .venv"

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# Run everything, render the executed notebooks to HTML, and say where each output went
# (tables and figures: the output_dir / figures_dir of PARAMS' `common` section).
all: notebooks
	@$(RENDER_HTML) >/dev/null
	@$(PY) -c 'import sys, yaml; c = (yaml.safe_load(open(sys.argv[1], encoding="utf-8")) or {}).get("common") or {}; \
	print("\nmake all: outputs"); \
	print("  tables             ", c.get("output_dir", "results/tables") + "/"); \
	print("  figures            ", c.get("figures_dir", "figures") + "/"); \
	print("  executed notebooks ", sys.argv[2] + "/"); \
	print("  HTML               ", sys.argv[3] + "/index.html")' $(PARAMS) $(EXECUTED_DIR) $(HTML_DIR)

notebooks: setup data/cohort.csv
	$(PY) -m analysis run --params $(PARAMS)

# The notebooks as HTML pages with an index (from the executed copies that `make all` writes).
RENDER_HTML = $(PY) -m analysis.html $(EXECUTED_DIR) $(HTML_DIR)

html: setup
	@$(RENDER_HTML)

# The simulated cohort is committed; it is only generated here when missing (`make cohort` forces it).
data/cohort.csv: | $(STAMP)
	$(PY) -m analysis cohort

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

cohort: setup
	$(PY) -m analysis cohort

# results/tables (e.g. after `make all`) against the committed tables of HEAD, with the tolerances of
# analysis/compare.py (statistics ~exact, imaging documented); exits 1 if a table differs or is missing.
compare: setup
	@git rev-parse --git-dir >/dev/null 2>&1 || { echo "make compare: needs a git checkout (the committed tables)"; exit 2; }
	@ref=$$(mktemp -d) && git archive HEAD results/tables | tar -x -C "$$ref" && \
	$(PY) -m analysis compare results/tables "$$ref/results/tables"; rc=$$?; rm -rf "$$ref"; exit $$rc

benchmark: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(EXECUTED_DIR) $(HTML_DIR) results/work .pytest_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
