# The README's two commands: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint check load browser bench vendor clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

load: $(STAMP)
	$(BIN)/glossary load

run: load
	$(BIN)/glossary serve

# Chromium for the browser tests: apt when root; otherwise they skip (CI=true makes that fail).
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	else echo "chromium missing: run 'sudo apt-get install chromium' to run the browser tests"; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check app tests benchmarks
	$(BIN)/mypy

check: $(STAMP)
	$(BIN)/glossary check

test: $(STAMP) browser lint check
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/demo.py
	bash benchmarks/http.sh

vendor:
	static/vendor/update.sh

clean:
	rm -rf $(VENV) data/glossary.db data/glossary.db-* test-output .pytest_cache .mypy_cache .ruff_cache
