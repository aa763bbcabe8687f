#!/usr/bin/env bash
# User-space instructions per request of ferry-proxy builds, counted by
# valgrind (cachegrind, no cache simulation): unlike CPU time, the count
# does not move with the load other processes put on the machine. Each
# binary serves the benchmark's job (ferry.yaml) twice under cachegrind:
# once for a warm-up only and once for the warm-up plus REQUESTS requests
# (hey, 16 connections); the difference divided by REQUESTS is the cost of
# one request, start-up and config loading cancelled out. Kernel time is
# not counted: see cpu.sh for that. See README.md.
#
#   bench/gateway/instructions.sh BINARY [BINARY...]
#
# Environment: REQUESTS (4000), WARMUP (200), ECHO (ferry-echo binary).
# Benchmarks stop their servers at once: no drain period after SIGTERM.
export FERRY_DRAIN=0s FERRY_ECHO_DRAIN=0s
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: $0 BINARY [BINARY...]" >&2; exit 2; }
REQUESTS=${REQUESTS:-4000}
WARMUP=${WARMUP:-200}
ECHO=${ECHO:-${CARGO_TARGET_DIR:-target}/release/ferry-echo}
[ -x "$ECHO" ] || { echo "build ferry-echo first (cargo build --release -p ferry-demo), or set ECHO" >&2; exit 2; }
command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
B1=$(free_port); B2=$(free_port)
"$ECHO" --name v1 --listen "127.0.0.1:$B1" >/dev/null & pids+=($!)
"$ECHO" --name v2 --listen "127.0.0.1:$B2" >/dev/null & pids+=($!)

# Instructions executed by BINARY serving WARMUP + $2 requests.
count() {
  local bin=$1 n=$2 dir port
  dir=$(mktemp -d -p "$work"); port=$(free_port)
  sed -e "s/@FERRY@/$port/g" -e "s/@B1@/$B1/g" -e "s/@B2@/$B2/g" \
    bench/gateway/ferry.yaml > "$dir/bench.yaml"
  FERRY_LOG=warn FERRY_DRAIN=0s valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$dir/cg.out" \
    "$bin" --mode gateway --config "$dir" --bind 127.0.0.1 --admin "127.0.0.1:$(free_port)" \
    >"$dir/log" 2>&1 &
  local proxy=$!
  for _ in $(seq 300); do
    curl -s -o /dev/null -H 'Host: bench.example.com' "http://127.0.0.1:$port/api/x" && break
    sleep 0.1
  done
  local url="http://127.0.0.1:$port/api/x" ok
  hey -n "$WARMUP" -c 16 -host bench.example.com "$url" >/dev/null
  ok=0
  if [ "$n" -gt 0 ]; then
    ok=$(hey -n "$n" -c 16 -host bench.example.com "$url" | awk '/\[200\]/ {print $2}')
    # A few requests may time out under valgrind; only answers count.
    [ "${ok:-0}" -gt $((n * 9 / 10)) ] || { echo "$bin answered $ok of $n requests with 200" >&2; exit 1; }
  fi
  kill -INT "$proxy"; wait "$proxy" || true
  echo "$(awk '/^summary/ {print $2}' "$dir/cg.out") $ok"
}

echo "| binary | instructions per request |"
echo "|---|---|"
for bin in "$@"; do
  read -r base _ < <(count "$bin" 0)
  read -r loaded ok < <(count "$bin" "$REQUESTS")
  echo "| $bin | $(( (loaded - base) / ok )) |"
done
