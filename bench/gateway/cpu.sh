#!/usr/bin/env bash
# CPU per request of ferry-proxy builds, A/B: each binary given serves the
# benchmark's job (ferry.yaml) on its own port, pinned to core 0; rounds
# drive each in turn with the same load from core 1 and read the proxy's
# CPU time (utime + stime from /proc/PID/stat) before and after. CPU per request does not depend on how busy the rest of the
# machine is, unlike req/s. Medians of the rounds. See README.md.
#
#   bench/gateway/cpu.sh BINARY [BINARY...]
#
# Environment: ROUNDS (5), SECS (5, closed loop), REQUESTS (20000, at
# RATE req/s), RATE (4000), CONNS (16, closed loop).
# Benchmarks stop their servers at once: no drain period after SIGTERM.
export FERRY_DRAIN=0s FERRY_ECHO_DRAIN=0s
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: $0 BINARY [BINARY...]" >&2; exit 2; }
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
REQUESTS=${REQUESTS:-20000}
RATE=${RATE:-4000}
CONNS=${CONNS:-16}
ECHO=${ECHO:-${CARGO_TARGET_DIR:-target}/release/ferry-echo}
[ -x "$ECHO" ] || { echo "build ferry-echo first (cargo build --release -p ferry-demo), or set ECHO" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.1
  done
  return 1
}
# User + system time of a process, threads that exited included, in ns.
# (Not the threads' schedstat: tokio moves its worker between threads.)
TICK_NS=$((1000000000 / $(getconf CLK_TCK)))
cpu_ns() { awk -v t="$TICK_NS" '{sub(/.*\) /, ""); printf "%.0f\n", ($12 + $13) * t}' /proc/"$1"/stat; }
usr_ns() { awk -v t="$TICK_NS" '{sub(/.*\) /, ""); printf "%.0f\n", $12 * t}' /proc/"$1"/stat; }

B1=$(free_port); B2=$(free_port)
taskset -c 1 "$ECHO" --name v1 --listen "127.0.0.1:$B1" >/dev/null & pids+=($!)
taskset -c 1 "$ECHO" --name v2 --listen "127.0.0.1:$B2" >/dev/null & pids+=($!)
wait_port "$B1"; wait_port "$B2"

declare -a port proc
for i in $(seq 0 $(($# - 1))); do
  bin=${*:$((i + 1)):1}
  port[i]=$(free_port)
  mkdir -p "$work/$i"
  sed -e "s/@FERRY@/${port[i]}/g" -e "s/@B1@/$B1/g" -e "s/@B2@/$B2/g" \
    bench/gateway/ferry.yaml > "$work/$i/bench.yaml"
  FERRY_LOG=warn taskset -c 0 "$bin" --mode gateway --config "$work/$i" --bind 127.0.0.1 \
    --admin "127.0.0.1:$(free_port)" >"$work/$i.log" 2>&1 & proc[i]=$!; pids+=($!)
  wait_port "${port[i]}"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: bench.example.com' "http://127.0.0.1:${port[i]}/api/x")
  [ "$code" = 200 ] || { echo "$bin does not route ($code)"; cat "$work/$i.log"; exit 1; }
done

results="$work/results.tsv"
for round in $(seq "$ROUNDS"); do
  for i in "${!port[@]}"; do
    url="http://127.0.0.1:${port[i]}/api/x"
    kill -0 "${proc[i]}" 2>/dev/null || { echo "binary $i exited:"; cat "$work/$i.log"; exit 1; }
    before=$(cpu_ns "${proc[i]}"); ubefore=$(usr_ns "${proc[i]}")
    n=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -H 'Host: bench.example.com' "$url" \
      | awk '/requests in/ {print $1}')
    mid=$(cpu_ns "${proc[i]}"); umid=$(usr_ns "${proc[i]}")
    ok=$(taskset -c 1 hey -n "$REQUESTS" -c 20 -q $((RATE / 20)) -host bench.example.com "$url" \
      | awk '/\[200\]/ {print $2}')
    after=$(cpu_ns "${proc[i]}"); uafter=$(usr_ns "${proc[i]}")
    kill -0 "${proc[i]}" 2>/dev/null || { echo "binary $i exited:"; cat "$work/$i.log"; exit 1; }
    [ "${ok:-0}" -gt 0 ] || { echo "no 200 answers from binary $i at a fixed rate" >&2; exit 1; }
    closed=$(( (mid - before) / n ))
    rated=$(( (after - mid) / ok ))
    uclosed=$(( (umid - ubefore) / n ))
    urated=$(( (uafter - umid) / ok ))
    echo -e "$i\t$closed\t$rated\t$n\t$uclosed\t$urated" >> "$results"
    echo "round $round binary $i: ${closed} (user ${uclosed}) ns/req closed loop ($n req)," \
      "${rated} (user ${urated}) ns/req at $RATE req/s" >&2
  done
done

echo
echo "| binary | CPU µs/req (user), closed loop ($CONNS conns) | CPU µs/req (user) at $RATE req/s | req/s closed loop |"
echo "|---|---|---|---|"
for i in "${!port[@]}"; do
  awk -F'\t' -v i="$i" -v secs="$SECS" '$1 == i {c[++n] = $2; r[n] = $3; q[n] = $4; uc[n] = $5; ur[n] = $6}
    function median(a, n,   j, k, t) {
      for (j = 1; j <= n; j++) for (k = j + 1; k <= n; k++) if (a[k] < a[j]) {t = a[j]; a[j] = a[k]; a[k] = t}
      return a[int((n + 1) / 2)]
    }
    END {printf "| %s | %.1f (%.1f) | %.1f (%.1f) | %d |\n", i, median(c, n) / 1000, median(uc, n) / 1000,
      median(r, n) / 1000, median(ur, n) / 1000, median(q, n) / secs}' \
    "$results" | sed "s#^| $i |#| ${*:$((i + 1)):1} |#"
done
