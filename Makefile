# The two commands of the README. Both create/update .venv themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
# No GPU here: DeepSpeed on its CPU accelerator (gloo).
ifeq ($(shell command -v nvidia-smi 2>/dev/null),)
export DS_ACCELERATOR := cpu
endif
export DS_BUILD_OPS := 0
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: demo test venv lint

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Re-install whenever the project's metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(BIN)/elf-vla demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# With a GPU: the CPU suite (fp32 exactness) with CUDA hidden, then the `gpu` tests (bf16, NCCL) on it.
test: venv lint
ifeq ($(shell command -v nvidia-smi 2>/dev/null),)
	$(BIN)/python -m pytest -q
else
	CUDA_VISIBLE_DEVICES= $(BIN)/python -m pytest -q -m "not gpu"
	$(BIN)/python -m pytest -q -m gpu
endif
