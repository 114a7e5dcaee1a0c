# `make demo` and `make test` work on a fresh machine: they create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= var/demo
PG_TEST_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test

.PHONY: demo test test-sqlite test-postgres lint bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Balie needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

NODE_STAMP := node_modules/.installed-stamp

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --silent
	touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

## Run Balie on SQLite in $(DEMO_DIR) with sample appointments; prints the links to open.
demo: $(STAMP) $(NODE_STAMP)
	BALIE_ENVIRONMENT=dev BALIE_DATA_DIR=$(DEMO_DIR) $(BIN)/balie demo

## The whole suite on SQLite, then again on PostgreSQL if BALIE_TEST_DATABASE_URL is set.
## Browser tests need Debian's chromium (apt-get install chromium); .ci/run installs it.
test: $(STAMP) $(NODE_STAMP)
	env -u BALIE_TEST_DATABASE_URL $(BIN)/pytest
	@if [ -n "$$BALIE_TEST_DATABASE_URL" ]; then \
		echo "== again on PostgreSQL"; $(BIN)/pytest; fi

test-sqlite: $(STAMP) $(NODE_STAMP)
	env -u BALIE_TEST_DATABASE_URL $(BIN)/pytest

test-postgres: $(STAMP) $(NODE_STAMP)
	BALIE_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy server dossier identity retention

bench: $(STAMP)
	$(BIN)/python tests/bench/bench_dossier_store.py
	$(BIN)/python tests/bench/bench_audit.py
	$(BIN)/python tests/bench/bench_call_setup.py
	$(BIN)/python tests/bench/bench_signaling.py
	$(BIN)/python tests/bench/bench_upload.py

clean:
	rm -rf $(VENV) var node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis
