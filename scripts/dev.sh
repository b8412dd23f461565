#!/usr/bin/env bash
# Set up everything tufrepo needs on a fresh Debian machine, then run one job:
#   bash scripts/dev.sh demo    - install, then run `tufrepo demo`
#   bash scripts/dev.sh test    - install, then lint (ruff), type-check (mypy --strict), pytest
# System packages come from apt (run as root, or with sudo available); Python packages go
# into .venv in the checkout; the tuf-js test client into tests/tufjs/node_modules.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

apt_packages=(git softhsm2 opensc swtpm swtpm-tools tpm2-tools libtss2-dev pkg-config nodejs npm shellcheck chromium)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node may come from elsewhere (a newer Node than Debian's): only install npm/nodejs when absent
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=(); for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

py=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$py" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[test,tpm,kms]"
export PATH="$here/.venv/bin:$PATH"

job=${1:-test}
shift || true
case "$job" in
  demo)
    exec tufrepo demo "$@"
    ;;
  test)
    if [ -f tests/tufjs/package.json ]; then
      (cd tests/tufjs && npm ci --no-audit --no-fund --silent)
    fi
    ruff check tufrepo tests benchmarks
    ruff format --check tufrepo tests benchmarks
    mypy
    exec pytest "$@"
    ;;
  *)
    echo "usage: scripts/dev.sh demo|test [args...]" >&2
    exit 2
    ;;
esac
