#!/usr/bin/env bash
# Installs the system packages and builds the cached binaries the tests use.
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x tests/cluster/kube.sh ]; then
  tests/cluster/kube.sh
fi
