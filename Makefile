# mlflowlet: `make demo` and `make test` work on a fresh machine (they install what they need).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench mutate clean docs-screens

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
	@# local Spark runs where a JVM does (pyspark is large, so it is not in the dev extra)
	if command -v java >/dev/null; then $(BIN)/python -m pip install -q 'pyspark>=3.4'; fi
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check mlflowlet tests benchmarks examples
	$(BIN)/ruff format --check mlflowlet
	$(BIN)/mypy mlflowlet
	$(BIN)/lint-imports --no-cache

docs-screens: install
	bash scripts/test-deps.sh
	$(BIN)/python scripts/docs_screens.py

bench: install
	$(BIN)/python benchmarks/run.py

# Mutation score of the core modules (about 30 min; not part of make test):
#   make mutate MODULES="naming graph"   (or MODULES="hyper:expand_iterations,_expand_*")
mutate: install
	$(BIN)/python -m pip install -q 'mutmut>=3.8,<4'
	$(BIN)/python scripts/mutate.py $(MODULES)

clean:
	rm -rf $(VENV) .mutate build *.egg-info .pytest_cache examples/mlflowlet.db* examples/artifacts
