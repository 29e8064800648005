#!/usr/bin/env bash
# Load with and without the live demo busy: wrk against an entry page, the search page and the
# JSON API on one uvicorn worker (127.0.0.1 only), first alone, then while fresh demo runs keep
# the demo gate full (max_running + max_queued clients, a new seed per request: every request
# trains). Then a burst past the gate. Prints req/s, p50, p99 and the status codes of every
# run, and checks: entry-page p99 under demo load <= 2x the unloaded p99; no 5xx except the
# gate's 503 (told apart by its body). Bounded: about 8 x SECONDS + 40 s, and a watchdog stops
# everything at 10 x SECONDS + 180 s. Usage: bash benchmarks/load.sh [SECONDS per run, 6]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-6}
connections=16
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }

work=$(mktemp -d)
free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
base="http://127.0.0.1:$port"
export GLOSSARY_DATABASE_URL="sqlite:///$work/load.db" GLOSSARY_DEMO_DEVICE=cpu
export GLOSSARY_DEMO_MAX_RUNNING=${GLOSSARY_DEMO_MAX_RUNNING:-2}
export GLOSSARY_DEMO_MAX_QUEUED=${GLOSSARY_DEMO_MAX_QUEUED:-4}
gate=$((GLOSSARY_DEMO_MAX_RUNNING + GLOSSARY_DEMO_MAX_QUEUED))
.venv/bin/glossary load >/dev/null

.venv/bin/uvicorn app.main:app --host 127.0.0.1 --port "$port" --workers 1 \
  --no-access-log --log-level warning >"$work/server.log" 2>&1 &
server=$!
( sleep $((duration * 10 + 180)); echo "load.sh: watchdog fired, stopping" >&2
  kill "$server" 2>/dev/null; pkill -P $$ wrk 2>/dev/null ) &
watchdog=$!
trap 'kill "$server" "$watchdog" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT

# Ready: healthy, torch imported, and the warm-up has cached every preset's default run.
presets=0
for _ in $(seq 300); do
  if health=$(curl -fs "$base/healthz" 2>/dev/null); then
    [ "$presets" = 0 ] && presets=$(curl -fs "$base/api/demo/presets" | .venv/bin/python -c 'import json,sys; print(len(json.load(sys.stdin)))')
    cached=$(.venv/bin/python -c 'import json,sys; d=json.load(sys.stdin)["demo"]; print(d["cache_entries"] if d["torch_ready"] else -1)' <<<"$health")
    [ "$cached" -ge "$presets" ] && [ "$presets" -gt 0 ] && break
  fi
  sleep 0.3
done
[ "${cached:-0}" -ge 1 ] || { echo "server not ready:" >&2; cat "$work/server.log" >&2; exit 1; }

# Counts statuses; a 503 is the gate's when its body says the demo is busy.
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
# The same, with a fresh seed per request: a cache miss, so a real training run.
{ cat <<'LUA'
local seed = 0
function request()
  seed = seed + 1
  return wrk.format("GET", "/api/demo?preset=residual-vs-plain&seed=" .. (seed + seed_base))
end
LUA
  cat "$work/count.lua"; } >"$work/demo.lua"
sed -i 's/^function init(args) counts = {} end$/function init(args) counts = {}; seed_base = math.random(1, 100000) * 10000 end/' "$work/demo.lua"

to_ms() { awk '{ v = $1 + 0; if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /ms$/) v += 0; else if ($1 ~ /s$/) v *= 1000; printf "%.2f", v }' <<<"$1"; }

# row PHASE LABEL OUTFILE: print one table row from a wrk --latency output
row() {
  local out rps p50 p99 statuses socket
  out=$(cat "$3")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  statuses=$(awk '/^statuses/ {$1=""; print substr($0, 2)}' <<<"$out")
  socket=$(grep -o 'Socket errors:.*' <<<"$out" || true)
  printf '%-10s %-34s %10s %9s %9s  %s %s\n' "$1" "$2" "$rps" "$p50" "$p99" "$statuses" "$socket"
  echo "$statuses" >>"$work/all-statuses"
}

# measure KEY URL: wrk with $connections connections for $duration s
measure() {
  wrk -t1 -c"$connections" -d"${duration}s" --latency --timeout 10s -s "$work/count.lua" \
    "$base$2" >"$work/$1.out" 2>&1
}

targets=("entry:/terms/residual-connection" "search:/search?q=normalization"
         "api:/api/terms/residual-connection")
for target in "${targets[@]}"; do  # warm the response cache and the connections
  wrk -t1 -c"$connections" -d1s "$base${target#*:}" >/dev/null 2>&1
done

echo "load.sh: wrk -t1 -c$connections -d${duration}s per URL, one uvicorn worker, demo gate" \
  "$GLOSSARY_DEMO_MAX_RUNNING running + $GLOSSARY_DEMO_MAX_QUEUED queued (CPU)," \
  "$(nproc) cores, $(date -u +%F)"
printf '%-10s %-34s %10s %9s %9s  %s\n' phase target req/s p50 p99 statuses
for target in "${targets[@]}"; do
  measure "idle-${target%%:*}" "${target#*:}"
  row unloaded "${target#*:}" "$work/idle-${target%%:*}.out"
done

# Demo load: exactly as many clients as the gate admits, for the three runs and a margin.
demo_seconds=$((3 * (duration + 1) + 3))
wrk -t1 -c"$gate" -d"${demo_seconds}s" --latency --timeout 60s -s "$work/demo.lua" \
  "$base/api/demo" >"$work/demo.out" 2>&1 &
driver=$!
sleep 2  # the gate fills
for target in "${targets[@]}"; do
  measure "busy-${target%%:*}" "${target#*:}"
  row "demo load" "${target#*:}" "$work/busy-${target%%:*}.out"
done
wait "$driver"
row "demo load" "/api/demo, fresh runs, c=$gate" "$work/demo.out"

# Past the gate: twice as many clients as it admits; the extra ones get 503 + Retry-After.
wrk -t1 -c$((2 * gate)) -d3s --latency --timeout 60s -s "$work/demo.lua" \
  "$base/api/demo" >"$work/burst.out" 2>&1
row burst "/api/demo, fresh runs, c=$((2 * gate))" "$work/burst.out"

idle=$(to_ms "$(awk '$1=="99%" {print $2}' "$work/idle-entry.out")")
busy=$(to_ms "$(awk '$1=="99%" {print $2}' "$work/busy-entry.out")")
ratio=$(awk -v a="$busy" -v b="$idle" 'BEGIN { printf "%.2f", a / b }')
bad=$(tr ' ' '\n' <"$work/all-statuses" | awk -F= '$1 ~ /^5/ && $1 != "503gate" {n += $2} END {print n + 0}')
errors=$(grep -c -E 'Traceback|ERROR' "$work/server.log" || true)
verdict() { if [ "$1" = 1 ]; then echo ok; else echo MISSED; fi; }
echo
echo "entry-page p99: ${busy} ms under demo load / ${idle} ms unloaded = ${ratio}x" \
  "(target <= 2): $(verdict "$(awk -v r="$ratio" 'BEGIN {print (r <= 2)}')")"
echo "5xx other than the gate's 503: $bad (target 0): $(verdict "$((bad == 0))")"
echo "errors in the server log: $errors"
[ "$bad" = 0 ] && awk -v r="$ratio" 'BEGIN {exit !(r <= 2)}'
