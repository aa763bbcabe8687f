#!/usr/bin/env bash
# Runs a standalone demo: `demos/run.sh traefik-whoami` (no argument lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p ferry-proxy -p ferry-demo
exec target/debug/ferry-demo "$@"
