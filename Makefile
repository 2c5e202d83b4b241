# The usual tasks. `make web` and `make console` are the README's two commands.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: web console test lint bench install services clean lock

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

test: $(STAMP) services lint
	$(BIN)/pytest -q

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
