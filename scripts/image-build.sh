#!/usr/bin/env bash
# `make image`: the production image with podman, from the Dockerfile as Docker builds it
# elsewhere. Fetches the wheels into the build context and makes the base image from Debian's
# packages when no registry serves it (both kept: a rebuild reuses them and podman's layers).
#   scripts/image-build.sh [IMAGE_NAME]     (default localhost/glossary-lab:latest)
set -euo pipefail
# shellcheck source=scripts/image-env.sh
source "$(dirname "$0")/image-env.sh"
IMAGE_NAME=${1:-$IMAGE_NAME}
image_podman_env

start=$(date +%s)
"$IMAGE_ROOT/scripts/image-wheels.sh"
"$IMAGE_ROOT/scripts/image-base.sh" python
image_can_run docker.io/library/python:3.11-slim
old=$(podman image inspect --format '{{.Id}}' "$IMAGE_NAME" 2>/dev/null || true)
image_log "building $IMAGE_NAME"
image_build -t "$IMAGE_NAME" "$IMAGE_ROOT" >"$IMAGE_CACHE/build.log" 2>&1 ||
  { tail -30 "$IMAGE_CACHE/build.log" >&2; image_die "build failed (full log: $IMAGE_CACHE/build.log)"; }
# The previous build of this name, now untagged (its layers stay cached for the next build).
new=$(podman image inspect --format '{{.Id}}' "$IMAGE_NAME")
[ -z "$old" ] || [ "$old" = "$new" ] || podman rmi "$old" >/dev/null 2>&1 || true
size=$(podman image inspect --format '{{.Size}}' "$IMAGE_NAME")
image_log "built $IMAGE_NAME in $(($(date +%s) - start)) s: $((size / 1000000)) MB"
