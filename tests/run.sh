#!/usr/bin/env bash
# The one test command (README.md, "Run the tests"); .ci/run calls it.
# Installs what the tests need, prepares the real-apiserver and real-node
# harnesses and real Helm, builds the workspace once, makes Ferry's images
# from that build and runs every test against it.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/setup.sh

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo build --workspace --all-targets --locked
# Ferry's images for the real-node tests, from the binaries just built (a
# second, release build of the workspace would double the build time on 2
# cores; images/build.sh alone builds release images for users).
images/build.sh --bin-dir target/debug
cargo test --workspace --locked --no-fail-fast
