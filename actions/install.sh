#!/usr/bin/env bash
# Install tufrepo from this checkout of its source (a composite action's own commit on
# GitHub, the component's pinned commit on GitLab) into the current Python:
#   1. every dependency from the lock files, each file checked against its sha256
#      (requirements/runtime.txt, and build.txt: the build backend), wheels only;
#   2. tufrepo itself from this source, without dependencies and without a package index.
# Nothing comes from a package index version that may not exist, or may have changed.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pip=(python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --require-hashes --only-binary ':all:' \
  -r "$src/requirements/runtime.txt" -r "$src/requirements/build.txt"
"${pip[@]}" --no-deps --no-build-isolation --no-index "$src"
tufrepo --version
