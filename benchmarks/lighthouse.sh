#!/usr/bin/env bash
# Lighthouse 12.2.3 (pinned in benchmarks/lighthouse/package.json) with Debian Chromium against
# its own uvicorn on 127.0.0.1: the home page, an entry and a search page. Prints the four
# category scores per page (targets: accessibility, best practices, SEO 100; performance >= 95)
# and exits 1 when a target is missed. Lighthouse's defaults: mobile, simulated slow 4G and a
# 4x slower CPU. A benchmark, not part of `make test`. Usage: bash benchmarks/lighthouse.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
lh_dir=benchmarks/lighthouse
export CHROME_PATH=${CHROME_PATH:-/usr/bin/chromium}
[ -x "$CHROME_PATH" ] || { echo "Chromium missing: apt-get install chromium" >&2; exit 1; }
if [ ! -x "$lh_dir/node_modules/.bin/lighthouse" ]; then
  (cd "$lh_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
lighthouse=$root/$lh_dir/node_modules/.bin/lighthouse

work=$(mktemp -d)
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export GLOSSARY_DATABASE_URL="sqlite:///$work/lighthouse.db"
.venv/bin/glossary load >/dev/null
.venv/bin/uvicorn app.main:app --host 127.0.0.1 --port "$port" --no-access-log --log-level warning &
server=$!
cleanup() {
  local status=$?
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.2; done
# Let the demo warm-up fill its cache, as on a server that has been up for a while.
for _ in $(seq 100); do
  curl -fs "$base/healthz" | grep -q '"torch_ready":true' && break; sleep 0.3
done
sleep 2

flags="--headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
flags+=" --disable-background-networking --disable-component-update --disable-sync"
pages=("/" "/terms/residual-connection" "/search?q=normalization")
echo "Lighthouse $("$lighthouse" --version), $("$CHROME_PATH" --version 2>/dev/null | head -1)," \
  "$(nproc) cores, $(date -u +%F); default mobile preset (simulated throttling)"
printf '%-30s %11s %13s %14s %5s\n' page performance accessibility best-practices seo
status=0
for path in "${pages[@]}"; do
  report="$work/report.json"
  # Chromium 156 now and then loses the trace's navigation start (NO_NAVSTART): retry twice.
  for attempt in 1 2 3; do
    rm -f "$report"
    "$lighthouse" "$base$path" --quiet --output=json --output-path="$report" \
      --only-categories=performance,accessibility,best-practices,seo \
      --chrome-flags="$flags" --max-wait-for-load=30000 >/dev/null 2>"$work/lh.log" && break
    echo "  ($path: attempt $attempt failed: $(grep -o 'Runtime error.*' "$work/lh.log" | head -1))" >&2
    [ "$attempt" = 3 ] && { tail -20 "$work/lh.log" >&2; exit 1; }
  done
  cp "$report" "$work/$(echo "$path" | tr '/?=' '___').json"
  line=$(node -e '
    const r = require(process.argv[1]);
    const s = (k) => Math.round(r.categories[k].score * 100);
    const scores = [s("performance"), s("accessibility"), s("best-practices"), s("seo")];
    const ok = scores[0] >= 95 && scores.slice(1).every((x) => x === 100);
    const failed = Object.values(r.audits)
      .filter((a) => a.score !== null && a.score < 1 && a.scoreDisplayMode !== "informative"
        && a.scoreDisplayMode !== "manual" && a.scoreDisplayMode !== "notApplicable")
      .map((a) => a.id);
    console.log(`${ok ? "ok" : "MISS"}\t${scores.join("\t")}\t${failed.join(",")}`);
  ' "$report")
  IFS=$'\t' read -r verdict perf a11y bp seo failed <<<"$line"
  printf '%-30s %11s %13s %14s %5s  %s\n' "$path" "$perf" "$a11y" "$bp" "$seo" "$verdict"
  if [ "$verdict" != ok ]; then status=1; echo "  audits below 1: $failed"; fi
done
if [ -n "${LIGHTHOUSE_KEEP:-}" ]; then mkdir -p "$LIGHTHOUSE_KEEP"; cp "$work"/_*.json "$LIGHTHOUSE_KEEP"/; fi
exit $status
