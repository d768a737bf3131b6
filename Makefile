# Two entry points for a fresh clone:  make demo  (set up, train on the built-in data, sample)
#                                      make test  (set up, run the tests)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch is installed first, pinned. Which build pip picks depends on the platform and the index:
# PyPI gives Linux x86-64 a CUDA build (several GB), macOS and Windows CPU builds; these project
# machines hold a CPU build of 2.13.0 on local disk. Choose with TORCH_INDEX, e.g.
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu     (CPU only, small)
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cu128   (CUDA 12.8)
# or another version with TORCH=torch==X.Y.Z.
TORCH  ?= torch==2.13.0
TORCH_INDEX ?=
# The suite runs on this many pytest-xdist workers (tests/conftest.py orders and groups the work for them);
# `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 2

.PHONY: setup demo test clean

$(BIN)/ganforge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e ".[dev,privacy,federated,he]"
	@touch $@

setup: $(BIN)/ganforge

demo: setup
	$(BIN)/ganforge train --out runs/demo --max-time 3m --sample-every 200
	$(BIN)/ganforge sample runs/demo --n 64 --out runs/demo/grid.png
	@echo "sample grid: runs/demo/grid.png   (progress over training: runs/demo/samples/)"

test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

clean:
	rm -rf $(VENV) runs
