# The README's two commands: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-sqlite test-postgres lint check load browser postgres bench bench-load bench-lighthouse vendor clean podman image test-image

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

# PostgreSQL 15 server binaries for the PostgreSQL half of the tests (apt when root).
postgres:
	@if [ -x /usr/lib/postgresql/15/bin/initdb ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null; \
	else echo "PostgreSQL 15 missing: run 'sudo apt-get install postgresql-15'"; exit 1; fi

# Podman for the image, with runc (crun fails on this kernel) and debootstrap (no registry
# serves base images here: scripts/image-base.sh makes them from Debian's packages).
podman:
	@if command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null; \
	else echo "podman missing: run 'sudo apt-get install podman runc debootstrap'"; exit 1; fi

# The production image (wheels fetched here first: the build needs no network).
image: podman | $(BIN)/python
	PYTHON=$(BIN)/python scripts/image-build.sh

# Builds the image, serves it alone and with PostgreSQL (compose), checks both as a client.
test-image: podman | $(BIN)/python
	PYTHON=$(BIN)/python scripts/test-image.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check app tests benchmarks
	$(BIN)/mypy

check: $(STAMP)
	$(BIN)/glossary check

# Every test, on SQLite and then on a throwaway PostgreSQL 15 cluster started and stopped here,
# then the container image.
test: $(STAMP) browser postgres lint check test-sqlite test-postgres test-image

test-sqlite: $(STAMP)
	$(BIN)/pytest

test-postgres: $(STAMP)
	@dir=$$(mktemp -d /tmp/glossary-pg.XXXXXX) && \
	url=$$(scripts/pg-cluster.sh start "$$dir") && \
	echo "PostgreSQL run: $$url" && \
	{ GLOSSARY_TEST_POSTGRES_URL="$$url" $(BIN)/pytest; status=$$?; \
	  scripts/pg-cluster.sh stop "$$dir"; exit $$status; }

bench: $(STAMP)
	$(BIN)/python benchmarks/demo.py
	$(BIN)/python benchmarks/search.py
	bash benchmarks/http.sh

# About 2 minutes each; they print the figures the README quotes.
bench-load: $(STAMP)
	@command -v wrk >/dev/null || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	bash benchmarks/load.sh

bench-lighthouse: $(STAMP)
	bash benchmarks/lighthouse.sh

vendor:
	static/vendor/update.sh

clean:
	rm -rf $(VENV) data/glossary.db data/glossary.db-* test-output .pytest_cache .mypy_cache .ruff_cache
