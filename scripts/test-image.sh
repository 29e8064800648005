#!/usr/bin/env bash
# `make test-image`: builds the production image with podman, serves it, and checks it as a
# client would (scripts/image-check.py: /healthz, a term page, the JSON API, a search, a demo
# run to its result); then the compose set-up (the app, its demo workers and PostgreSQL)
# started with podman-compose and checked the same way. Containers listen on 127.0.0.1 only,
# on ports the kernel picks, and are removed on exit however it ends.
#   IMAGE_TEST_COMPOSE=0 scripts/test-image.sh     (the single image only)
set -euo pipefail
# shellcheck source=scripts/image-env.sh
source "$(dirname "$0")/image-env.sh"
cd "$IMAGE_ROOT"
image_podman_env
python=${PYTHON:-python3}
run_id=glossary-image-test-$$
compose_file=
# podman-compose from PyPI at a known version, in a venv of its own (Debian's 1.0.3 adds its
# own network to services whose network_mode is host, which podman refuses).
compose_version=1.6.0
compose_bin=$IMAGE_CACHE/compose-venv/bin/podman-compose
compose() { "$compose_bin" -p "$run_id" -f docker-compose.yml -f "$compose_file" "$@"; }
cleanup() {
  podman rm -f -t 2 "$run_id" >/dev/null 2>&1 || true
  if [ -n "$compose_file" ]; then
    compose down -v -t 2 >/dev/null 2>&1 || true
    rm -f "$compose_file"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
fail() {
  echo "--- logs of $1" >&2
  podman logs --tail 60 "$1" >&2 || true
  image_die "FAILED: $2"
}
terms=$(find data/terms -name '*.toml' | wc -l)

"$IMAGE_ROOT/scripts/image-build.sh" "$IMAGE_NAME"

# --- the image alone: SQLite inside, nothing mounted ------------------------------------
port=$(free_port)
# No periodic health timer (it needs systemd): `podman healthcheck run` runs it once below.
# No warm-up runs: the machine is shared, and the check asks for a run of its own.
SECONDS=0
podman run -d --name "$run_id" --pull=never --health-interval=disable \
  -e GLOSSARY_HOST=127.0.0.1 -e GLOSSARY_PORT="$port" -e GLOSSARY_DEMO_WARMUP=false \
  "$IMAGE_NAME" >/dev/null 2>"$IMAGE_CACHE/run.log" ||
  { cat "$IMAGE_CACHE/run.log" >&2; image_die "podman run failed"; }
"$python" scripts/image-check.py "http://127.0.0.1:$port" --terms "$terms" ||
  fail "$run_id" "the image does not serve as it should"
echo "image: started and checked in $SECONDS s"

podman healthcheck run "$run_id" >/dev/null || fail "$run_id" "the Dockerfile's HEALTHCHECK fails"
echo "ok  the Dockerfile's HEALTHCHECK passes"
# Every process of the container, the server's and the demo workers', as the image's user.
users=$(podman top "$run_id" user | tail -n +2 | sort -u | tr '\n' ' ')
[ "$users" = "glossary " ] || fail "$run_id" "processes run as: $users"
uid=$(podman exec "$run_id" sh -c 'awk "/^Uid:/ {print \$2}" /proc/1/status')
[ "$uid" != 0 ] || fail "$run_id" "the server runs as root"
echo "ok  every process runs as glossary (uid $uid), none as root"
mounts=$(podman inspect --format '{{len .Mounts}}' "$run_id")
[ "$mounts" = 0 ] || fail "$run_id" "$mounts volume(s) mounted: the content must be in the image"
podman exec "$run_id" test -s /srv/glossary/db/glossary.db -a ! -w /srv/glossary/data ||
  fail "$run_id" "the database is not baked in, or data/ is writable"
# The entry script reloads the database and the language model is trained into cache/.
podman exec "$run_id" test -w /srv/glossary/db -a -w /srv/glossary/cache ||
  fail "$run_id" "db/ or cache/ is not writable by the image's user"
echo "ok  content baked in: nothing mounted, the database in the image, data/ read-only"
if podman logs "$run_id" 2>&1 | grep -q Traceback; then fail "$run_id" "a traceback in the logs"; fi
podman rm -f -t 10 "$run_id" >/dev/null 2>&1

[ "${IMAGE_TEST_COMPOSE:-1}" = 1 ] || exit 0

# --- docker-compose.yml with PostgreSQL -----------------------------------------------
if ! "$compose_bin" --version 2>/dev/null | grep -q "podman-compose version $compose_version"; then
  rm -rf "$IMAGE_CACHE/compose-venv"
  "$python" -m venv "$IMAGE_CACHE/compose-venv"
  "$IMAGE_CACHE/compose-venv/bin/pip" install --quiet "podman-compose==$compose_version" 2>&1 |
    grep -v 'is ignored: it is neither' >&2 || true
  "$compose_bin" --version >/dev/null || image_die "cannot install podman-compose $compose_version"
fi
"$IMAGE_ROOT/scripts/image-base.sh" postgres
# The compose file as written, with what this machine needs on top: host networking (so the
# services meet on 127.0.0.1 under their names, on free ports) and no health timers.
port=$(free_port)
pg_port=$(free_port)
db_url="postgresql+psycopg://glossary:glossary@db:$pg_port/glossary"
compose_file=$(mktemp /tmp/glossary-compose.XXXXXX.yml)
cat >"$compose_file" <<YAML
services:
  db:
    network_mode: host
    environment: {PGPORT: "$pg_port"}
    command: ["postgres-entrypoint", "-c", "listen_addresses=127.0.0.1"]
  app:
    network_mode: host
    extra_hosts: ["db:127.0.0.1"]
    environment: {GLOSSARY_DATABASE_URL: "$db_url", GLOSSARY_HOST: 127.0.0.1, GLOSSARY_PORT: "$port", GLOSSARY_DEMO_WARMUP: "false"}
  worker:
    network_mode: host
    extra_hosts: ["db:127.0.0.1"]
    environment: {GLOSSARY_DATABASE_URL: "$db_url"}
YAML
SECONDS=0
compose up -d >"$IMAGE_CACHE/compose.log" 2>&1 ||
  { tail -30 "$IMAGE_CACHE/compose.log" >&2; image_die "podman-compose up failed"; }
running=$(podman ps --filter "label=io.podman.compose.project=$run_id" --format '{{.Names}}' | wc -l)
[ "$running" = 3 ] ||
  { tail -30 "$IMAGE_CACHE/compose.log" >&2; image_die "$running of 3 compose services run"; }
"$python" scripts/image-check.py "http://127.0.0.1:$port" --terms "$terms" ||
  { for s in db app worker; do podman logs --tail 30 "${run_id}_${s}_1" >&2 || true; done
    image_die "FAILED: the compose set-up does not serve as it should"; }
echo "compose: started and checked in $SECONDS s"
echo "image: every check passed"
