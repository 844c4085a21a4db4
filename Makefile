# Set-up and common jobs. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
PHYSIODL_DATA ?= $(abspath ../shared/data)
export PHYSIODL_DATA

.PHONY: install demo test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch is installed first and pinned, so nothing else pulls a second (CUDA) build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e '.[dev,tune]' torch==$(TORCH_VERSION)
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/physiodl demo

test: install
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# Benchmarks print JSON figures and ratios measured in one run (never asserted in tests).
bench: install
	@for script in bench/bench_*.py; do \
		echo "== $$script"; OMP_WAIT_POLICY=PASSIVE $(BIN)/python $$script || exit 1; \
	done

clean:
	rm -rf $(VENV) build dist src/*.egg-info
