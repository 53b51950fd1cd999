# dsbench: `make install` then `make test` on a fresh machine; `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
# Official archives (MNIST IDX .gz, CIFAR binary .tar.gz), one folder per dataset; TFDS
# prepares offline from them too. On this project's machines they are in ../shared/data.
# (.data: where a GPU machine set up from carried files has them, docs/bench.md.)
DSBENCH_DATA ?= $(abspath $(or $(if $(wildcard ../shared/data/mnist),../shared/data),$(if $(wildcard .data/mnist),.data),data))
export DSBENCH_DATA
ARGS   ?=
HOST   ?= 127.0.0.1
PORT   ?= 5000
# The tracking store: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here (the suite's own
# default, dsbench.config.default_store_uri, asked only by the targets that need it).
STORE = $(shell $(PY) -c 'from dsbench.config import default_store_uri; print(default_store_uri())')

.PHONY: help install test test-fast lint format data run run-sweep reproduce-allconv analyze bench bench-strategies bench-sweep gpu-check bench-analysis ui server screenshots describe docs clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's|$$(DSBENCH_DATA)|$(DSBENCH_DATA)|' | \
	  awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# System packages come from Debian: python3-venv, chromium + its driver for the UI test, and
# PostgreSQL for the tracking-server test (a database behind `make server`).
APT_PACKAGES := $(if $(shell python3 -c 'import ensurepip' 2>/dev/null && echo y),,python3-venv) \
                $(if $(shell command -v chromium),,chromium) \
                $(if $(shell command -v chromedriver),,chromium-driver) \
                $(if $(wildcard /usr/lib/postgresql/*/bin/initdb),,postgresql)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

install:  ## install system packages (Debian), .venv with the pinned dependencies (PyTorch: CPU build) and dsbench
	$(if $(strip $(APT_PACKAGES)),$(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(strip $(APT_PACKAGES)))
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q $$(grep '^pip==' requirements.lock)
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -r requirements-torch.lock  # PyTorch's CPU build
	$(PY) -m pip install -q --no-deps -e .

# The tests that train nothing run on every core (pytest-xdist); those that train run one at
# a time, so each session-scoped training happens once and sweeps have the machine.
test: lint  ## lint, then the whole test suite, what CI runs (~25 min on 2 cores)
	$(PY) -m pytest -m "not slow" -n auto
	$(PY) -m pytest -m slow

test-fast: lint  ## lint, then every test that trains nothing, on every core (the edit-test loop, ≤ 3 min)
	$(PY) -m pytest -m "not slow" -n auto

lint:  ## ruff lint + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

DATASETS ?=
comma := ,
space := $(subst ,, )
data:  ## download the official archives, md5-checked, to $(DSBENCH_DATA)/<name> (DATASETS="mnist ...", default all)
	$(PY) -m dsbench data $(if $(DATASETS),datasets=$(subst $(space),$(comma),$(strip $(DATASETS))))

run:  ## one training run (defaults: MNIST, convnet, max pool, flatten head); ARGS="key=value ..."
	$(PY) -m dsbench train $(ARGS)

run-sweep:  ## every downsample × head × 3 seeds on MNIST as one MLflow sweep; ARGS to override
	$(PY) -m dsbench train -m experiments=mnist_downsampling $(ARGS)

# PRESET=small (minutes on a CPU) | fashion (Fashion-MNIST, runs here) | empty: the full protocol
PRESET ?=
reproduce-allconv:  ## Springenberg 2015's 12 models × 4 lr (PRESET=small|fashion; ARGS; dry_run=true)
	$(PY) -m dsbench train -m experiments=springenberg2015$(if $(PRESET),_$(PRESET)) $(ARGS)

analyze:  ## tables, plots and dashboard of a study into results/<experiment>/ (ARGS="experiments=<study> ...")
	$(PY) -m dsbench analyze $(ARGS)

screenshots:  ## screenshots of the MLflow UI (runs, a run, the sweep dashboard) in headless Chromium (devtools/mlflow_ui.py); ARGS="--experiment ..."
	$(PY) -m devtools.mlflow_ui $(ARGS)

describe:  ## shapes, params and FLOPs of a model without training; ARGS="downsample=conv ..."
	$(PY) -m dsbench describe $(ARGS)

bench:  ## training speed: suite vs tracking off vs bare keras fit vs a PyTorch loop → results/bench/<device>-<backend>.md; ARGS=
	$(PY) -m dsbench bench $(ARGS)

bench-strategies:  ## what each downsampling costs in time: every strategy × head side by side → results/bench/strategies-<device>-<backend>.md; ARGS=
	$(PY) -m dsbench.tools.strategy_speed $(ARGS)

bench-sweep:  ## a sweep laid out for the cores vs one job at a time, side by side → results/bench/sweep-<machine>.md; ARGS=
	$(PY) -m dsbench.tools.sweep_speed $(ARGS)

# A GPU machine with JAX and PyTorch but no .venv runs the suite from wheels carried in .whl/
# (docs/bench.md): .whl/env.sh installs them and puts src/ on the system Python's path.
RUN_PY = $(if $(wildcard $(PY)),$(PY),source .whl/env.sh && python3)
DEVICE ?= gpu
gpu-check:  ## the GPU path in minutes: JAX fast path vs the PyTorch bf16 loop, a 2-job sweep + analysis → results/bench/<gpu>-jax.md (DEVICE=cpu: tiny, on the CPU)
	$(RUN_PY) -m dsbench.tools.gpu_check device=$(DEVICE) $(ARGS)

bench-analysis:  ## analysis at scale: make analyze on 1k/3k/10k generated runs (sqlite, server, PostgreSQL; devtools/analysis_scale.py) → results/bench/analysis-scale.md
	$(PY) -m devtools.analysis_scale $(ARGS)

docs:  ## regenerate the generated tables: README's strategies (code) and result (results/), docs/models.md's backbones, docs/protocol.md's capacity classes; tests check them
	$(PY) -m dsbench.tools.docs

ui:  ## MLflow UI on a study's runs, grouped by strategy (ARGS="experiments=<study>"; HOST=, PORT=)
	$(PY) -m dsbench ui host=$(HOST) port=$(PORT) $(ARGS)

# The server's own store: this sqlite file, or a database, e.g. postgresql://user@host/mlflow.
SERVER_STORE ?= $(STORE)
ARTIFACTS    ?= mlartifacts
WORKERS      ?= 2
server:  ## MLflow tracking server (and UI) on 127.0.0.1:5000 for sweeps on many machines (SERVER_STORE=postgresql://...)
	@echo "MLflow server: point jobs at tracking.uri=http://$(HOST):$(PORT)  (store: $(SERVER_STORE), artifacts: $(ARTIFACTS))"
	$(VENV)/bin/mlflow server --backend-store-uri $(SERVER_STORE) --artifacts-destination $(ARTIFACTS) \
	  --host $(HOST) --port $(PORT) --workers $(WORKERS)

clean:  ## remove Hydra outputs and caches (keeps mlflow.db and results/)
	rm -rf outputs multirun .pytest_cache .ruff_cache
