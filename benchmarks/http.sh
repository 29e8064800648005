#!/usr/bin/env bash
# HTTP throughput on 127.0.0.1: a term page and its JSON twin, served by
#   - SQLite, one uvicorn worker (and the same page saved to disk as a static file: the ceiling)
#   - SQLite, one worker, response cache off (what rendering costs per request)
#   - SQLite, two workers
#   - PostgreSQL 15 (a throwaway cluster), two workers        [skipped if PostgreSQL is missing]
# Prints req/s and p99 for each. Usage: bash benchmarks/http.sh [seconds-per-url]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
slug=${BENCH_SLUG:-residual-connection}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }

work=$(mktemp -d)
pids=()
pgdir=""
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$pgdir" ] && scripts/pg-cluster.sh stop "$pgdir"
  rm -rf "$work" static/.bench
}
trap cleanup EXIT
export GLOSSARY_DEMO_WARMUP=false

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

serve() { # database-url workers response-cache -> sets $port once the server answers
  port=$(free_port)
  GLOSSARY_DATABASE_URL="$1" GLOSSARY_RESPONSE_CACHE="$3" GLOSSARY_BUILD_ON_START=false \
    .venv/bin/uvicorn app.main:app --host 127.0.0.1 --port "$port" --workers "$2" \
    --no-access-log --log-level warning >>"$work/servers.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
}

measure() { # key label url
  local out rps p99 errors
  wrk -t1 -c16 -d1s "$3" >/dev/null 2>&1   # warm-up
  out=$(wrk -t1 -c16 -d"${duration}s" --latency "$3")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
  printf '%-52s %10s req/s   p99 %8s  %s\n' "$2" "$rps" "$p99" "$errors"
  echo "$rps" >"$work/$1.rps"
}

sqlite_url="sqlite:///$work/bench.db"
GLOSSARY_DATABASE_URL=$sqlite_url .venv/bin/glossary load >/dev/null

echo "wrk -t1 -c16 -d${duration}s per URL, $(nproc) cores, $(date -u +%F)"
serve "$sqlite_url" 1 true
mkdir -p static/.bench
curl -fs "http://127.0.0.1:$port/terms/$slug" -o static/.bench/term.html
measure ceiling "static file (same HTML), SQLite 1 worker" "http://127.0.0.1:$port/static/.bench/term.html"
measure page "/terms/$slug, SQLite 1 worker" "http://127.0.0.1:$port/terms/$slug"
measure api "/api/terms/$slug, SQLite 1 worker" "http://127.0.0.1:$port/api/terms/$slug"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

serve "$sqlite_url" 1 false
measure page_nc "/terms/$slug, SQLite 1 worker, cache off" "http://127.0.0.1:$port/terms/$slug"
measure api_nc "/api/terms/$slug, SQLite 1 worker, cache off" "http://127.0.0.1:$port/api/terms/$slug"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

serve "$sqlite_url" 2 true
measure page2 "/terms/$slug, SQLite 2 workers" "http://127.0.0.1:$port/terms/$slug"
measure api2 "/api/terms/$slug, SQLite 2 workers" "http://127.0.0.1:$port/api/terms/$slug"
measure search2 "/api/search?q=skip+conection, SQLite 2 workers" "http://127.0.0.1:$port/api/search?q=skip+conection"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

if [ -x /usr/lib/postgresql/15/bin/initdb ]; then
  pgdir=$(mktemp -d /tmp/glossary-bench-pg.XXXXXX)
  pg_url=$(scripts/pg-cluster.sh start "$pgdir")
  GLOSSARY_DATABASE_URL=$pg_url .venv/bin/glossary load >/dev/null
  serve "$pg_url" 2 true
  measure pg_page "/terms/$slug, PostgreSQL 2 workers" "http://127.0.0.1:$port/terms/$slug"
  measure pg_api "/api/terms/$slug, PostgreSQL 2 workers" "http://127.0.0.1:$port/api/terms/$slug"
  measure pg_search "/api/search?q=skip+conection, PostgreSQL 2 workers" "http://127.0.0.1:$port/api/search?q=skip+conection"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
  serve "$pg_url" 2 false
  measure pg_page_nc "/terms/$slug, PostgreSQL 2 workers, cache off" "http://127.0.0.1:$port/terms/$slug"
else
  echo "PostgreSQL 15 not installed: its rows are skipped"
fi

ratio() { awk -v a="$(cat "$work/$1.rps")" -v b="$(cat "$work/$2.rps")" 'BEGIN { printf "%.2f", a / b }'; }
echo "term page / static ceiling = $(ratio page ceiling) (target >= 0.50)"
echo "term page without response cache / static ceiling = $(ratio page_nc ceiling)"
