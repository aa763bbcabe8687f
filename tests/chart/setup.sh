#!/usr/bin/env bash
# Installs real Helm for the chart tests: helm-python-sdk from PyPI (Helm v4
# compiled into a shared library, driven from Python; no helm binary) in a
# virtualenv under ~/.cache/ferry/helm-venv. tests/chart/helm.py is the CLI
# over it. Idempotent, safe to run concurrently, silent when already done.
set -euo pipefail

# The version helm.py was written against (it reads options of the
# library's C ABI that the Python layer does not expose).
SDK_VERSION=0.2.2
CACHE=${FERRY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry}
VENV=$CACHE/helm-venv
STAMP=$VENV/.ferry-helm-$SDK_VERSION

log() { printf 'tests/chart/setup.sh: %s\n' "$*" >&2; }

# Fast path: nothing to do, say nothing.
[ -f "$STAMP" ] && [ -x "$VENV/bin/python" ] && exit 0

mkdir -p "$CACHE"
exec 9>"$CACHE/helm-venv.lock"
flock 9
[ -f "$STAMP" ] && [ -x "$VENV/bin/python" ] && exit 0

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || { log "needs $PYTHON (3.10 or newer)"; exit 1; }
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
  # Debian's own python3 keeps venv and ensurepip in python3-venv.
  SUDO=
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  log "installing python3-venv"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi

log "installing helm-python-sdk $SDK_VERSION into $VENV"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "helm-python-sdk==$SDK_VERSION"
# The wheel carries the library; loading it proves it fits this machine.
"$VENV/bin/python" -c 'import helm_python as h; print("helm", h.helm_sdk_version())' >&2
touch "$STAMP"
