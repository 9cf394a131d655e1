# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch that lies on this disk; an unpinned torch would pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0

.PHONY: demo test bench lint clean-venv

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch first, pinned, so that installing belamy (torch>=2.3) finds it satisfied.
$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_PIN)
	touch $@

$(VENV)/.belamy: pyproject.toml $(VENV)/.torch
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.belamy
	$(BIN)/belamy train --name demo --overwrite

# Two xdist workers on the 2 cores; then, alone, the tests marked serial (several processes, wall-clock bounds).
test: $(VENV)/.belamy
	$(BIN)/python -m pytest -q -x -n 2 -m "not serial" --durations=15
	$(BIN)/python -m pytest -q -x -m serial --durations=10

bench: $(VENV)/.belamy
	$(BIN)/python benchmarks/train_throughput.py --steps 600

clean-venv:
	rm -rf $(VENV)
