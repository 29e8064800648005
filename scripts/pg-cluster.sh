#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests and benchmarks, listening on a Unix socket only.
#   scripts/pg-cluster.sh start DIR   -> prints the SQLAlchemy URL of its `postgres` database
#   scripts/pg-cluster.sh stop DIR
set -euo pipefail
action=${1:?start|stop}
dir=${2:?folder for the cluster}
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$action" in
start)
  [ -x "$bin/initdb" ] || { echo "PostgreSQL 15 is missing: apt-get install postgresql-15" >&2; exit 1; }
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  as_postgres "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1
  as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
    "-k $dir -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null
  echo "postgresql+psycopg://postgres@/postgres?host=$dir"
  ;;
stop)
  as_postgres "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
