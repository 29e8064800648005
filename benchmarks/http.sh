#!/usr/bin/env bash
# HTTP throughput of one uvicorn worker on 127.0.0.1: a term page, its JSON twin, and the
# same page's HTML saved to disk and served as a static file by the same server (the
# ceiling). Prints req/s and p99 latency for each. Usage: bash benchmarks/http.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
slug=${BENCH_SLUG:-residual-connection}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }

work=$(mktemp -d)
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export GLOSSARY_DATABASE_URL="sqlite:///$work/bench.db" GLOSSARY_DEMO_WARMUP=false
.venv/bin/glossary load >/dev/null
.venv/bin/uvicorn app.main:app --host 127.0.0.1 --port "$port" --workers 1 \
  --no-access-log --log-level warning &
server=$!
# The same app with the in-memory response cache off: what rendering costs per request.
port_nc=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
GLOSSARY_RESPONSE_CACHE=false GLOSSARY_BUILD_ON_START=false \
  .venv/bin/uvicorn app.main:app --host 127.0.0.1 --port "$port_nc" --workers 1 \
  --no-access-log --log-level warning &
server_nc=$!
ceiling_dir=static/.bench
trap 'kill $server $server_nc 2>/dev/null; rm -rf "$work" "$ceiling_dir"' EXIT
for p in "$port" "$port_nc"; do
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$p/healthz" >/dev/null && break; sleep 0.2; done
done
mkdir -p "$ceiling_dir"
curl -fs "http://127.0.0.1:$port/terms/$slug" -o "$ceiling_dir/term.html"

measure() { # key label url
  local out rps p99 errors
  wrk -t1 -c16 -d1s "$3" >/dev/null 2>&1   # warm-up
  out=$(wrk -t1 -c16 -d"${duration}s" --latency "$3")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
  printf '%-34s %10s req/s   p99 %8s  %s\n' "$2" "$rps" "$p99" "$errors"
  echo "$rps" >"$work/$1.rps"
}
echo "wrk -t1 -c16 -d${duration}s, one uvicorn worker, $(nproc) cores, $(date -u +%F)"
measure ceiling "static file (same HTML, ceiling)" "http://127.0.0.1:$port/static/.bench/term.html"
measure page "/terms/$slug" "http://127.0.0.1:$port/terms/$slug"
measure api "/api/terms/$slug" "http://127.0.0.1:$port/api/terms/$slug"
measure page_nc "/terms/$slug (response cache off)" "http://127.0.0.1:$port_nc/terms/$slug"
measure api_nc "/api/terms/$slug (response cache off)" "http://127.0.0.1:$port_nc/api/terms/$slug"
awk -v page="$(cat "$work/page.rps")" -v ceiling="$(cat "$work/ceiling.rps")" \
  'BEGIN { printf "term page / static ceiling = %.2f (target >= 0.50)\n", page / ceiling }'
awk -v page="$(cat "$work/page_nc.rps")" -v ceiling="$(cat "$work/ceiling.rps")" \
  'BEGIN { printf "term page without response cache / static ceiling = %.2f\n", page / ceiling }'
