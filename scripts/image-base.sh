#!/usr/bin/env bash
# The base images the Dockerfile and docker-compose.yml name, made here when no registry
# serves them: debootstrap of Debian bookworm imported as debian:bookworm-slim, then
# python:3.11-slim (Debian's Python 3.11) and postgres:15 (Debian's postgresql-15) on it.
# Elsewhere the registry's images are pulled and nothing here runs. Idempotent: an image
# that exists is kept.
#   scripts/image-base.sh python|postgres
set -euo pipefail
# shellcheck source=scripts/image-env.sh
source "$(dirname "$0")/image-env.sh"
image_podman_env

want=${1:?python|postgres}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN=docker.io/library/debian:bookworm-slim

# A registry image when one answers within a short wait; we never wait long for one.
pulled() { timeout "${IMAGE_PULL_TIMEOUT_S:-20}" podman pull -q "$1" >/dev/null 2>&1; }

debian_base() {
  podman image exists "$DEBIAN" && return
  pulled "$DEBIAN" && return
  [ "$(id -u)" = 0 ] || image_die "debootstrap needs root to build $DEBIAN (or pull it from a registry)"
  command -v debootstrap >/dev/null || image_die "debootstrap is missing: apt-get install debootstrap"
  local root
  root=$(mktemp -d /tmp/glossary-rootfs.XXXXXX)
  image_log "debootstrap bookworm from $mirror (a few minutes, once)"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
    { tail -20 "$root.log" >&2; image_die "debootstrap failed (log above)"; }
  rm -f "$root.log"
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s-security bookworm-security main\n' \
    "$mirror" "$mirror" "$mirror" >"$root/etc/apt/sources.list"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/*
  tar -C "$root" --numeric-owner -c . | podman import -q \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$DEBIAN" >/dev/null
  rm -rf "$root"
  image_log "imported $DEBIAN"
}

# Built from docker/base/ or docker/postgres/ when the registry's image cannot be had.
derived() {
  local name=$1 file=$2
  podman image exists "$name" && return
  pulled "$name" && return
  debian_base
  image_can_run "$DEBIAN"
  image_log "building $name from Debian's packages ($file)"
  image_build -q -t "$name" -f "$IMAGE_ROOT/$file" "$IMAGE_ROOT/$(dirname "$file")" >/dev/null
}

case "$want" in
python) derived docker.io/library/python:3.11-slim docker/base/python.Containerfile ;;
postgres) derived docker.io/library/postgres:15 docker/postgres/Containerfile ;;
*) image_die "usage: $0 python|postgres" ;;
esac
