# Two entry points for a fresh clone:  make demo  (set up, train on the built-in data, sample)
#                                      make test  (set up, run the tests)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch: an unpinned torch would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: setup demo test clean

$(BIN)/ganforge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

setup: $(BIN)/ganforge

demo: setup
	$(BIN)/ganforge train --out runs/demo --max-time 3m --sample-every 200
	$(BIN)/ganforge sample runs/demo --n 64 --out runs/demo/grid.png
	@echo "sample grid: runs/demo/grid.png   (progress over training: runs/demo/samples/)"

test: setup
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs
