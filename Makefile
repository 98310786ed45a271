# facegen: `make train` (install + main job on the embedded data), `make test` (install + tests), `make bench`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel; on a CUDA machine use e.g. `make install TORCH_SPEC="torch>=2.4"`.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install train test bench gpu-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# The CPU demo: 3 epochs, but training stops after 6 minutes where the CPU is slower (2 cores here: about
# 4.5 min per epoch), so the whole job (data, training, pictures, evaluation) stays under 10 minutes.
train: install
	$(BIN)/python -m facegen.train model=facetunegan trainer.max_time=00:00:06:00

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/run.py

gpu-check: install
	PYTHON=$(BIN)/python bash scripts/gpu_check.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
