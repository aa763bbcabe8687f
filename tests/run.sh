#!/usr/bin/env bash
# The one test command (README.md, "Run the tests"); .ci/run calls it.
# Installs what the tests need, prepares the real-apiserver harness, builds
# the workspace once and runs every test against that one build.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/setup.sh

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo build --workspace --all-targets --locked
cargo test --workspace --locked --no-fail-fast
