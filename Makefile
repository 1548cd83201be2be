# Thalamic QSM compendium. Two commands on a fresh machine:
#   make all    set up .venv and run the whole reproduction (notebooks -> figures/, results/tables/)
#   make test   set up .venv and run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PARAMS ?= params.yml
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: all setup test test-fast lab cohort notebooks benchmark clean distclean help

help:
	@echo "make all        set up and run every notebook headless (PARAMS=$(PARAMS))"
	@echo "make test       set up and run the test suite"
	@echo "make test-fast  unit tests only (skips notebook execution and slow tests)"
	@echo "make lab        open JupyterLab on the notebooks"
	@echo "make cohort     regenerate data/cohort.csv from its fixed seed"
	@echo "make benchmark  time the QSM reconstruction"
	@echo "make clean      remove executed notebooks and caches (keeps .venv)"
	@echo "make distclean  clean and remove .venv"

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

all: notebooks

notebooks: setup data/cohort.csv
	$(PY) -m analysis run --params $(PARAMS)

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

benchmark: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf results/notebooks results/work .pytest_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
