# mlflowlet: `make demo` and `make test` work on a fresh machine (they install what they need).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	cd examples && ../$(BIN)/python quickstart.py

test: install
	bash scripts/test-deps.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check mlflowlet tests benchmarks examples
	$(BIN)/ruff format --check mlflowlet
	$(BIN)/mypy mlflowlet

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache examples/mlflowlet.db* examples/artifacts
