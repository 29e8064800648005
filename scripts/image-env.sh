# Sourced by the scripts/image-*.sh and scripts/test-image.sh: podman as it runs on our
# machines. What was found trying it here (none of it belongs in the Dockerfile):
# - crun fails on this kernel's hybrid cgroups: runc works;
# - containers reach the network (Debian's mirror, each other) only with --network=host;
# - podman's default rlimits are refused: nofile and nproc are set explicitly.
# A containers.conf of our own carries all three, so podman-compose's containers get them too.
# shellcheck shell=bash

# shellcheck disable=SC2034  # used by the scripts that source this one
IMAGE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC2034
IMAGE_NAME=${GLOSSARY_IMAGE:-localhost/glossary-lab:latest}
IMAGE_CACHE=${GLOSSARY_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/glossary-lab-image}

image_die() { echo "image: $*" >&2; exit 1; }
image_log() { echo "image: $*" >&2; }

image_podman_env() {
  command -v podman >/dev/null ||
    image_die "podman is missing: apt-get install podman runc debootstrap (make podman does it as root)"
  command -v runc >/dev/null || image_die "runc is missing: apt-get install runc (crun fails here)"
  mkdir -p "$IMAGE_CACHE"
  cat >"$IMAGE_CACHE/containers.conf" <<'CONF'
[containers]
netns = "host"
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
CONF
  export CONTAINERS_CONF="$IMAGE_CACHE/containers.conf"
}

# A container that runs `true` proves the runtime, the storage and the rlimits at once.
image_can_run() {
  local out
  out=$(podman run --rm --pull=never "$1" true 2>&1) ||
    image_die "podman cannot run a container here ($1): $out"
}

# Builds with the build context's wheels only, in Docker's format (OCI drops HEALTHCHECK).
image_build() { podman build --pull=never --network=host --format docker "$@"; }
