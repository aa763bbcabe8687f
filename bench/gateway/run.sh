#!/usr/bin/env bash
# Gateway load benchmark: the same job (Host bench.example.com, PathPrefix
# /api, 90/10 split between two backends) through ferry-proxy, nginx
# (1 worker) and HAProxy (1 thread), and straight to a backend (the
# physical limit). Interleaved rounds; medians reported. See README.md.
#
#   bench/gateway/run.sh [ROUNDS] [SECONDS]
# Benchmarks stop their servers at once: no drain period after SIGTERM.
export FERRY_DRAIN=0s FERRY_ECHO_DRAIN=0s
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
SECS=${2:-10}
RATE=${RATE:-2000}

need=()
for tool in nginx haproxy wrk hey taskset; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get install -y -qq nginx haproxy wrk hey util-linux >/dev/null
fi
cargo build --quiet --release -p ferry-proxy -p ferry-demo

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
B1=$(free_port); B2=$(free_port); FERRY=$(free_port); NGINX=$(free_port); HAPROXY=$(free_port); ADMIN=$(free_port)

# Proxies get core 0; the backends and load generators share core 1.
# (Plain words, not functions: `$!` must be the process itself.)
on_proxy_core="taskset -c 0"
on_load_core="taskset -c 1"

$on_load_core target/release/ferry-echo --name v1 --listen "127.0.0.1:$B1" >/dev/null & pids+=($!)
$on_load_core target/release/ferry-echo --name v2 --listen "127.0.0.1:$B2" >/dev/null & pids+=($!)

mkdir -p "$work/ferry"
sed -e "s/@FERRY@/$FERRY/g" -e "s/@B1@/$B1/g" -e "s/@B2@/$B2/g" bench/gateway/ferry.yaml > "$work/ferry/bench.yaml"
FERRY_LOG=warn $on_proxy_core target/release/ferry-proxy --mode gateway --config "$work/ferry" \
  --bind 127.0.0.1 --admin "127.0.0.1:$ADMIN" >"$work/ferry.log" 2>&1 & pids+=($!)

sed -e "s#@DIR@#$work#g" -e "s/@PORT@/$NGINX/g" -e "s/@B1@/$B1/g" -e "s/@B2@/$B2/g" \
  bench/gateway/nginx.conf > "$work/nginx.conf"
$on_proxy_core nginx -c "$work/nginx.conf" & pids+=($!)

sed -e "s/@PORT@/$HAPROXY/g" -e "s/@B1@/$B1/g" -e "s/@B2@/$B2/g" \
  bench/gateway/haproxy.cfg > "$work/haproxy.cfg"
$on_proxy_core haproxy -f "$work/haproxy.cfg" -db & pids+=($!)

for port in $B1 $B2 $FERRY $NGINX $HAPROXY; do
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
  done
done
# Every target must route correctly before it is measured.
for target in "ferry $FERRY" "nginx $NGINX" "haproxy $HAPROXY"; do
  set -- $target
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: bench.example.com' "http://127.0.0.1:$2/api/x")
  miss=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: other.example.com' "http://127.0.0.1:$2/api/x")
  [ "$code" = 200 ] && [ "$miss" = 404 ] || { echo "$1 does not route as expected ($code, $miss)"; cat "$work/ferry.log"; exit 1; }
done

declare -A url=(
  [direct]="http://127.0.0.1:$B1/api/x"
  [ferry]="http://127.0.0.1:$FERRY/api/x"
  [nginx]="http://127.0.0.1:$NGINX/api/x"
  [haproxy]="http://127.0.0.1:$HAPROXY/api/x"
)
targets=(direct ferry nginx haproxy)
results="$work/results.tsv"
for round in $(seq "$ROUNDS"); do
  for t in "${targets[@]}"; do
    # Saturation: closed loop, 64 connections.
    rps=$($on_load_core wrk -t1 -c64 -d"${SECS}s" -H 'Host: bench.example.com' "${url[$t]}" \
      | awk '/Requests\/sec/ {print $2}')
    # Latency at a fixed rate: 20 workers x RATE/20 req/s each.
    lat=$($on_load_core hey -z "${SECS}s" -c 20 -q $((RATE / 20)) -host bench.example.com "${url[$t]}" \
      | awk '/ 50%/ {p50=$3} / 99%/ {p99=$3} END {print p50*1000, p99*1000}')
    echo -e "$round\t$t\t$rps\t$lat" | tr ' ' '\t' >> "$results"
    echo "round $round $t: $rps req/s, p50/p99 ms at $RATE req/s: $lat" >&2
  done
done
rss=$(ps -o rss= -p "$(pgrep -f "ferry-proxy --mode gateway --config $work/ferry")" | tr -d ' ')
python3 bench/gateway/report.py "$results" "$rss"
