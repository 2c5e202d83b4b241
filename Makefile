# The usual tasks. `make web` and `make console` are the README's two commands.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: web console test test-fast lint bench install services clean lock

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The web chat on the embedded defaults (SQLite + memory); prints its address.
web: $(STAMP)
	$(BIN)/bangdaiban web

console: $(STAMP)
	$(BIN)/bangdaiban console

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/deptry .
	$(BIN)/lint-imports

# The whole suite, both backends, browsers and race trials included, on every core
# (pytest-xdist: each worker has its own PostgreSQL database; Redis keys are per test).
# Two workers per core: many tests wait on a subprocess, a browser or a timer (2 cores:
# 3m56s with four workers, 5m40s with two). PYTEST_WORKERS=1 runs it in one process.
PYTEST_WORKERS ?= $(shell echo $$(( 2 * $$(nproc) )))
test: $(STAMP) services lint
	$(BIN)/pytest -q -n $(PYTEST_WORKERS)

# The inner loop: no lint, the embedded backend only (SQLite + memory; tests that need
# PostgreSQL or Redis by name still run), no processes, browsers or race trials (the `slow`
# marker), stop at the first failure. Not a substitute for `make test`.
test-fast: $(STAMP)
	TEST_BACKENDS=embedded $(BIN)/pytest -q -x -n $(PYTEST_WORKERS) -m "not slow" $(ARGS)

# PostgreSQL and Redis on 127.0.0.1, started if they are down (no-op where they run).
services:
	@scripts/ensure-services

bench: $(STAMP) services
	$(BIN)/python bench/application_bench.py
	$(BIN)/python bench/faq_bench.py

# requirements.lock: every runtime dependency pinned with hashes, for the Docker image.
lock: $(STAMP)
	$(BIN)/pip-compile --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
		--no-emit-find-links --quiet --output-file requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache var bangdaiban.db
