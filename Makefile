# medalign: two commands do all set-up on a fresh machine.
#   make quickstart   create .venv if missing, install, run jobs/quickstart.yaml, print the summary
#   make test         same set-up, then the test suite (what CI runs: .ci/run)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medalign-installed
# torch is pinned in the same install step so pip never pulls a multi-GB CUDA build by accident;
# DS_BUILD_OPS=0 installs DeepSpeed without compiling its CUDA ops (they JIT-compile if needed).
PIP_INSTALL := DS_BUILD_OPS=0 $(BIN)/python -m pip install --disable-pip-version-check

.PHONY: install quickstart test test-fast bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) "torch==2.13.0" -e ".[dev]"
	touch $(STAMP)

quickstart: install
	$(BIN)/medalign run jobs/quickstart.yaml

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

bench: install
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf runs .pytest_cache
