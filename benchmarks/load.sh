#!/usr/bin/env bash
# The demo at scale (issue 15), on this machine with the embedded SQLite default: one uvicorn
# web process (127.0.0.1 only) with GLOSSARY_DEMO_WORKERS=1, then a fresh one with 2, each
# measured by benchmarks/load_clients.py (every request an uncached run of one small config):
#  (a) computed runs per second, every worker kept busy by clients with an address each;
#  (b) fairness: one client hammering from six connections vs a visitor asking for a run every
#      few seconds: the visitor's wait until its run starts and until its result, in run
#      lengths (target: starts within 2), and the hammerer's 429s;
#  (c) page p99 (wrk on a term page) while the demo is saturated vs idle (target <= 2x), and
#      no 5xx but the demo's own busy 503 (told apart by its body);
#  (d) the web process's VmRSS at start and after the load, libtorch mapped in it (target 0),
#      and each worker process's VmRSS;
#  (e) time to the stream's first event (`queued`) while every worker is busy (target 200 ms).
# Clients are told apart by X-Forwarded-For: the app trusts it from 127.0.0.1
# (GLOSSARY_TRUSTED_PROXIES) and uvicorn runs with --no-proxy-headers, so the app's own
# proxy handling decides who a client is. Warm-up and the language model are off.
# Bounded: about 3.5 minutes at the defaults; a watchdog stops everything past its limit.
# Usage: bash benchmarks/load.sh [SECONDS [ROUNDS]]  (default 4 s per page window, 3 rounds;
# the throughput window is 3 x SECONDS, the fairness window 8 x SECONDS). Exits 1 when a
# target is missed (the figures are printed all the same). LOAD_KEEP=1 keeps the temporary
# folder (server logs, each phase's JSON); LOAD_RUN=QUERY measures another run than the
# preset's default (a fresh seed is added to each request).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-4}
rounds=${2:-3}
worker_counts=(1 2)
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }

work=$(mktemp -d)
server="" helper="" watchdog=""
# per worker count: start 8 s, throughput 3+3S, fairness 3+8S+6, first event 8,
# pages 1+R(2S+4), idle waits and stop 15
per_server=$((8 + 3 + 3 * seconds + 3 + 8 * seconds + 6 + 8 + 1 + rounds * (2 * seconds + 4) + 15))
limit=${LOAD_LIMIT_S:-$((${#worker_counts[@]} * per_server + 20 + 120))}

stop_server() {  # the web process, then any of its workers that outlived it
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
  fi
  if [ -f "$work/workers.pids" ]; then
    while read -r pid; do
      if grep -qs spawn_main "/proc/$pid/cmdline"; then kill -9 "$pid" 2>/dev/null || true; fi
    done <"$work/workers.pids"
    rm -f "$work/workers.pids"
  fi
}
cleanup() {
  local status=$?
  trap - EXIT TERM INT
  if [ -n "$helper" ]; then kill "$helper" 2>/dev/null || true; wait "$helper" 2>/dev/null || true; fi
  stop_server
  if [ -n "$watchdog" ]; then
    pkill -P "$watchdog" 2>/dev/null || true  # its sleep
    kill "$watchdog" 2>/dev/null || true
  fi
  if [ -n "${LOAD_KEEP:-}" ]; then echo "load.sh: kept $work" >&2; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'echo "load.sh: stopped" >&2; exit 1' TERM INT
( exec 3>&2 2>/dev/null  # no "Terminated" when cleanup ends its sleep
  sleep "$limit"; echo "load.sh: watchdog fired after $limit s, stopping" >&3; kill -TERM $$ ) &
watchdog=$!

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export GLOSSARY_DATABASE_URL="sqlite:///$work/load.db" GLOSSARY_DEMO_DEVICE=cpu \
  GLOSSARY_DEMO_WARMUP=false GLOSSARY_LM_START=false GLOSSARY_TRUSTED_PROXIES=127.0.0.1
.venv/bin/glossary load >/dev/null

# Counts the page's statuses; a 503 is the demo's when its body says the demo is busy.
cat >"$work/count.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body)
  local key = tostring(status)
  if status == 503 then
    key = string.find(body, "demo is busy", 1, true) and "503gate" or "503other"
  end
  counts[key] = (counts[key] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("counts")) do total[code] = (total[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(total) do table.insert(parts, code .. "=" .. n) end
  table.sort(parts)
  io.write("statuses " .. table.concat(parts, " ") .. "\n")
end
LUA

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
results=()
for workers in "${worker_counts[@]}"; do
  port=$(free_port)
  base="http://127.0.0.1:$port"
  GLOSSARY_DEMO_WORKERS=$workers .venv/bin/uvicorn app.main:app --host 127.0.0.1 --port "$port" \
    --workers 1 --no-proxy-headers --no-access-log --log-level warning \
    >"$work/server-$workers.log" 2>&1 &
  server=$!
  ready=0
  for _ in $(seq 300); do  # up to a minute: each worker imports torch and calibrates
    if health=$(curl -fs "$base/healthz" 2>/dev/null) &&
      .venv/bin/python -c 'import json,sys; d=json.load(sys.stdin)["demo"]; sys.exit(d["workers"] != int(sys.argv[1]))' "$workers" <<<"$health"; then
      ready=1
      break
    fi
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
  done
  if [ "$ready" != 1 ]; then
    echo "server with $workers worker(s) not ready:" >&2
    cat "$work/server-$workers.log" >&2
    exit 1
  fi
  .venv/bin/python -c 'import json,sys; [print(w["pid"]) for w in json.load(sys.stdin)["demo"]["detail"] if w.get("pid")]' \
    <<<"$health" >"$work/workers.pids"
  .venv/bin/python benchmarks/load_clients.py measure "$base" "$server" "$workers" \
    "$work/count.lua" "$work/result-$workers.json" --seconds "$seconds" --rounds "$rounds" &
  helper=$!
  wait "$helper"
  helper=""
  stop_server
  results+=("$work/result-$workers.json")
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "load.sh: one uvicorn web process, GLOSSARY_DEMO_WORKERS=${worker_counts[*]} in turn," \
  "embedded SQLite, CPU; $(nproc) cores; load average $load_before before, $load_after after;" \
  "page windows ${seconds}s x $rounds rounds; $(date -u +%F)"
.venv/bin/python benchmarks/load_clients.py report "${results[@]}" --logs "$work"/server-*.log
