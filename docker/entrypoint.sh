#!/usr/bin/env bash
# Container entry: wait for the database, load data/ (a no-op when it is already loaded),
# then serve with GLOSSARY_WORKERS processes. Runs outside Docker too (tests/api/test_entrypoint.py).
set -euo pipefail
glossary ping --wait "${GLOSSARY_DB_WAIT_S:-60}"
glossary load
export GLOSSARY_BUILD_ON_START=false  # loaded above, once, not by every worker
exec glossary serve --workers "${GLOSSARY_WORKERS:-2}"
