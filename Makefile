# Spotcast: two commands on a fresh clone.
#   make run    set up the environment, then the daily job on the bundled data (backfill, train, forecast)
#   make test   set up the environment, then lint and the whole test suite
#   make notebook  JupyterLab on top (the `notebook` extra), opening notebooks/explore.ipynb
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test bench clean-lake serve notebook

setup: $(STAMP)

# torch first and pinned: a looser requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: setup
	$(VENV)/bin/spotcast daily

test: setup
	$(VENV)/bin/ruff check .
	PREFECT_HOME=$$(mktemp -d) DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false \
		$(PY) -m pytest -p no:cacheprovider

bench: setup
	$(PY) bench/bench_lake.py
	$(PY) bench/bench_train.py

serve: setup
	$(VENV)/bin/spotcast serve

# JupyterLab (the `notebook` extra) on top of the set-up, then the exploration notebook.
notebook: setup $(VENV)/.notebook
	$(VENV)/bin/jupyter lab notebooks/explore.ipynb

$(VENV)/.notebook: pyproject.toml
	$(PY) -m pip install --quiet -e '.[notebook]'
	touch $@

clean-lake:
	rm -rf data/lake data/models
