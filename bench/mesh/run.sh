#!/usr/bin/env bash
# Mesh latency benchmark: at a fixed 2,000 requests per second, p50 and p99
# of the direct path (client and server pods outside the mesh) against the
# mesh path (client app -> outbound sidecar -> mTLS HTTP/2 -> inbound
# sidecar -> server app), in network namespaces on one bridge, with a real
# apiserver and ferry-control (the e2e world of control/tests/mesh/), and
# against two HAProxy relays (HTTP, no TLS) in the sidecars' places: the
# floor a pair of proxies pays on this machine.
# Alternating rounds; medians reported; then each sidecar's RSS.
#
#   bench/mesh/run.sh [ROUNDS] [SECONDS]     (root: network namespaces)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
SECS=${2:-10}

for tool in hey haproxy; do
  command -v $tool >/dev/null || apt-get install -y -qq $tool >/dev/null
done
tests/setup.sh
# The release build of the proxies, ferry-control and the e2e world.
cargo build --quiet --release -p ferry-proxy -p ferry-control
FERRY_MESH_BENCH=$SECS FERRY_MESH_BENCH_ROUNDS=$ROUNDS \
  cargo test --quiet --release -p ferry-control --test mesh -- --exact mesh_bench --nocapture
