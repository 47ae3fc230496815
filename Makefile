# aecnn-kit: one-command setup, reproduction and tests.
#   make reproduce   set up .venv, make data if none is configured, run the notebooks headless
#   make tune        the learning-rate grid of every model under PROFILE (writes the profile's file)
#   make study       the cross-dataset study under PROFILE (every method, across and in-domain)
#   make ablation    the ablations of AECNN's attention and loss under PROFILE (notebook 07's runs)
#   make bench       speed, memory and size of every model (figures/PROFILE/bench_models.json)
#   make test        set up .venv, run pytest and nbval (the README's test command)
#   make lab         open JupyterLab with the kit's kernel
# Variables: PROFILE (smoke|cpu|paper), DATA_ROOT (real data folder; empty = synthetic), PYTHON.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= smoke
DATA_ROOT ?= $(AECNN_DATA_ROOT)
STAMP := $(VENV)/.installed

.PHONY: setup kernel reproduce tune study ablation bench test test-fast lint lab data freeze clean

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

kernel: setup
	$(PY) -m ipykernel install --user --name aecnn-kit --display-name "Python (aecnn-kit)"

reproduce: setup
	$(PY) -m aecnn_utils reproduce --profile $(PROFILE) $(if $(DATA_ROOT),--data-root "$(DATA_ROOT)")

tune: setup
	$(PY) -m aecnn_utils tune --profile $(PROFILE) $(if $(DATA_ROOT),--data-root "$(DATA_ROOT)")

study: setup
	$(PY) -m aecnn_utils study --profile $(PROFILE) $(if $(DATA_ROOT),--data-root "$(DATA_ROOT)")

ablation: setup
	$(PY) -m aecnn_utils ablation --profile $(PROFILE) $(if $(DATA_ROOT),--data-root "$(DATA_ROOT)")

bench: setup
	$(PY) benchmarks/bench_models.py --profile $(PROFILE) $(if $(DATA_ROOT),--data-root "$(DATA_ROOT)")

test: setup
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env

test-fast: setup
	$(PY) -m pytest tests -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .

lab: kernel
	$(VENV)/bin/jupyter lab notebooks

data: setup
	$(PY) -m aecnn_utils generate-data

freeze: setup
	{ echo "# Tested pins (Python 3.11, x86_64): what 'make' installs. Regenerate with 'make freeze'."; \
	  echo "# torch/torchvision: the only pair known to work on the kit's CI machine."; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^aecnn'; } > requirements/constraints.txt

clean:
	rm -rf runs/smoke data/synthetic .pytest_cache
