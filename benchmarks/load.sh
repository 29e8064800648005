#!/usr/bin/env bash
# Load with and without the live demo busy: wrk against an entry page, the search page and the
# JSON API on one uvicorn worker (127.0.0.1 only), alone, then while fresh demo runs keep the
# demo gate full (max_running + max_queued clients, a new seed per request: every request
# trains), in alternating rounds. Then a burst past the gate. Prints requests, req/s, p50, p99
# and the status codes, and checks: entry-page p99 under demo load <= 2x the unloaded p99
# (median of the rounds' ratios); no 5xx except the gate's 503 (told apart by its body).
# Bounded: about ROUNDS x (6 x SECONDS + 8) + 40 s; a watchdog stops everything at twice that. Usage: bash benchmarks/load.sh [SECONDS [ROUNDS]]
# (default 4 s per window, 3 rounds: about 2 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-4}
rounds=${2:-3}
connections=16
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }

work=$(mktemp -d)
free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
base="http://127.0.0.1:$port"
export GLOSSARY_DATABASE_URL="sqlite:///$work/load.db" GLOSSARY_DEMO_DEVICE=cpu
.venv/bin/glossary load >/dev/null

.venv/bin/uvicorn app.main:app --host 127.0.0.1 --port "$port" --workers 1 \
  --no-access-log --log-level warning >"$work/server.log" 2>&1 &
server=$!
( sleep $((2 * (rounds * (6 * duration + 8) + 40) + 60)); echo "load.sh: watchdog fired, stopping" >&2
  kill "$server" 2>/dev/null; pkill -P $$ wrk 2>/dev/null ) &
watchdog=$!
cleanup() {
  local status=$?
  pkill -P "$watchdog" 2>/dev/null || true  # its sleep
  kill "$watchdog" "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

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
# The gate as configured (GLOSSARY_DEMO_MAX_RUNNING / _MAX_QUEUED, or their defaults).
read -r running queued < <(.venv/bin/python -c 'import json,sys; d=json.load(sys.stdin)["demo"]; print(d["max_running"], d["max_queued"])' <<<"$health")
gate=$((running + queued))

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

# measure FILE URL: wrk with $connections connections for $duration s
measure() {
  wrk -t1 -c"$connections" -d"${duration}s" --latency --timeout 10s -s "$work/count.lua" \
    "$base$2" >"$work/$1" 2>&1
}

targets=("/terms/residual-connection" "/search?q=normalization" "/api/terms/residual-connection")
for url in "${targets[@]}"; do  # warm the response cache and the connections
  wrk -t1 -c"$connections" -d1s "$base$url" >/dev/null 2>&1
done

# Rounds of (each URL alone, then each URL while the demo keeps the gate full): the two
# windows of a round are a few seconds apart, so a neighbour's burst of CPU on a shared
# machine shows up as one odd round, and the medians over the rounds stay put.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
demo_seconds=$((3 * (duration + 1) + 3))
for round in $(seq "$rounds"); do
  for i in "${!targets[@]}"; do measure "idle-$i-$round.out" "${targets[$i]}"; done
  wrk -t1 -c"$gate" -d"${demo_seconds}s" --latency --timeout 60s -s "$work/demo.lua" \
    "$base/api/demo" >"$work/demo-$round.out" 2>&1 &
  driver=$!
  sleep 2  # the gate fills
  for i in "${!targets[@]}"; do measure "busy-$i-$round.out" "${targets[$i]}"; done
  wait "$driver"
done
# Past the gate: twice as many clients as it admits; the extra ones get 503 + Retry-After.
wrk -t1 -c$((2 * gate)) -d3s --latency --timeout 60s -s "$work/demo.lua" \
  "$base/api/demo" >"$work/burst-1.out" 2>&1
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

errors=$(grep -c -E 'Traceback|ERROR' "$work/server.log" || true)
echo "load.sh: wrk -t1 -c$connections -d${duration}s per URL and window, $rounds rounds" \
  "(medians shown), one uvicorn worker; demo gate $running running + $queued queued" \
  "on the CPU; $(nproc) cores; load average" \
  "$load_before before, $load_after after; $(date -u +%F)"
.venv/bin/python - "$work" "$rounds" "$gate" "$errors" "${targets[@]}" <<'PY'
import re, statistics, sys
from collections import Counter
from pathlib import Path

work, rounds, gate, errors, targets = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5:]
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}

def ms(text):
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()
    return float(number) * UNITS[unit]

def parse(path):
    out = path.read_text()
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    statuses = Counter({k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", out.split("statuses", 1)[1])}) if "statuses" in out else Counter()
    socket = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": ms(latency["50"]), "p99": ms(latency["99"]), "statuses": statuses,
            "socket": socket.group(1) if socket else ""}

def fmt(v):
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.2f} ms"

def row(phase, label, runs):
    statuses = sum((r["statuses"] for r in runs), Counter())
    text = " ".join(f"{k}={v}" for k, v in sorted(statuses.items()))
    socket = "; socket errors: " + ", ".join(r["socket"] for r in runs if r["socket"]) if any(r["socket"] for r in runs) else ""
    print(f"{phase:<10} {label:<36} {statuses.total():>8} {statistics.median(r['rps'] for r in runs):>10.1f}"
          f" {fmt(statistics.median(r['p50'] for r in runs)):>10} {fmt(statistics.median(r['p99'] for r in runs)):>10}  {text}{socket}")
    return statuses

print(f"{'phase':<10} {'target':<36} {'requests':>8} {'req/s':>10} {'p50':>10} {'p99':>10}  statuses")
seen = Counter()
runs = {}
for phase, key in (("unloaded", "idle"), ("demo load", "busy")):
    for i, url in enumerate(targets):
        runs[key, i] = [parse(work / f"{key}-{i}-{r}.out") for r in range(1, rounds + 1)]
        seen += row(phase, url, runs[key, i])
seen += row("demo load", f"/api/demo, a new seed each, c={gate}", [parse(work / f"demo-{r}.out") for r in range(1, rounds + 1)])
seen += row("burst", f"/api/demo, a new seed each, c={2 * int(gate)}", [parse(work / "burst-1.out")])

idle = [r["p99"] for r in runs["idle", 0]]
busy = [r["p99"] for r in runs["busy", 0]]
ratios = [b / a for a, b in zip(idle, busy)]
ratio = statistics.median(ratios)
bad = sum(n for code, n in seen.items() if code.startswith("5") and code != "503gate")
print()
print(f"entry-page p99 per round, unloaded -> demo load: "
      + ", ".join(f"{fmt(a)} -> {fmt(b)} ({b / a:.2f}x)" for a, b in zip(idle, busy)))
print(f"entry-page p99 under demo load / unloaded, median of rounds: {ratio:.2f}x (target <= 2): "
      + ("ok" if ratio <= 2 else "MISSED"))
print(f"5xx other than the gate's 503: {bad} (target 0): " + ("ok" if bad == 0 else "MISSED"))
print(f"errors in the server log: {errors}")
sys.exit(0 if ratio <= 2 and bad == 0 and errors == 0 else 1)
PY
