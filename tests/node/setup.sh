#!/usr/bin/env bash
# One-time preparation of the real node (tests/node/README.md), for
# tests/setup.sh: packages, kubelet, kube-proxy, kube-scheduler and kubectl
# 1.20.2, the node's own images. Idempotent and silent when cached. The node
# runs as root only (its tests skip otherwise), so without root: nothing to do.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "tests/node/setup.sh: not root: the real node is not prepared (its tests skip)" >&2
  exit 0
fi
exec "$(dirname "$0")/build.sh"
