# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# PostgreSQL used by the second pass of the suite (skipped when unreachable, unless VILTBRIDGE_REQUIRE_SERVICES=1).
TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test

# axe-core, which the browser tests inject to check accessibility: the npm version pinned (with its checksum) in
# tests/web/axe/package-lock.json, installed with `npm ci` into build/npm.
AXE_CORE := build/npm/node_modules/axe-core/axe.min.js

.PHONY: run test lint typecheck unit bench clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/viltbridge serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

$(AXE_CORE): tests/web/axe/package.json tests/web/axe/package-lock.json
	mkdir -p build/npm
	cp tests/web/axe/package.json tests/web/axe/package-lock.json build/npm/
	npm ci --prefix build/npm --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# The whole suite on SQLite, then again on PostgreSQL.
test: lint $(AXE_CORE)
	$(BIN)/pytest -q -p no:cacheprovider
	VILTBRIDGE_TEST_DATABASE=postgresql VILTBRIDGE_TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) \
		$(BIN)/pytest -q -p no:cacheprovider -m "not pure and not scale_out"

# The README's console screenshots (docs/screenshots/): the page tour's own, shrunk to a third by pngquant (Debian
# package; without it they are copied as they are).
README_SCREENSHOTS := connections-1366 sessions-1366 session-part-1366 my-sessions-390 my-calendar-390
screenshots: $(VENV)/.test-installed $(AXE_CORE)
	VILTBRIDGE_ARTIFACTS=build/screenshots $(BIN)/pytest -q -p no:cacheprovider tests/web/test_console_pages_browser.py
	mkdir -p docs/screenshots
	for shot in $(README_SCREENSHOTS); do \
		if command -v pngquant >/dev/null; then \
			pngquant --force --strip --quality=50-80 --output docs/screenshots/$$shot.png build/screenshots/$$shot.png; \
		else cp build/screenshots/$$shot.png docs/screenshots/; fi; \
	done

# Every benchmark in one run: bench/results/*.json and bench/results/SUMMARY.md (see bench/README.md).
bench: $(VENV)/.test-installed
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
