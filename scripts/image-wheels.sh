#!/usr/bin/env bash
# Every wheel the image installs, fetched on this host into the build context
# (docker/wheels/), so that the build itself needs no network: what an air-gapped
# machine needs anyway. pip's own cache and the wheels already there make a rerun quick.
# The wheels are for CPython 3.11 on x86-64 Linux: run it with a Python 3.11 (PYTHON=...).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3.11}
dest=$root/docker/wheels
mkdir -p "$dest"

"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null ||
  { echo "image-wheels: $python is not Python 3.11 (the image's); set PYTHON=" >&2; exit 1; }

# The project's pinned dependencies, from pyproject.toml (the one list), plus the build
# backend its editable install needs.
"$python" - "$root/pyproject.toml" >"$dest/requirements.txt.new" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)
build = project["build-system"]["requires"]
print("\n".join([*project["project"]["dependencies"], *build]))
PY
mv "$dest/requirements.txt.new" "$dest/requirements.txt"

log=$(mktemp)
"$python" -m pip download --quiet --only-binary=:all: --dest "$dest" -r "$dest/requirements.txt" \
  2>"$log" || { cat "$log" >&2; rm -f "$log"; echo "image-wheels: pip download failed" >&2; exit 1; }
rm -f "$log"
echo "image-wheels: $(find "$dest" -name '*.whl' | wc -l) wheels, $(du -sh "$dest" | cut -f1) in docker/wheels" >&2
