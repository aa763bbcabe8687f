#!/usr/bin/env bash
# Runs probe.py against a gateway: for each ferry-proxy binary given, a
# gateway with an HTTP and an HTTPS listener routing legit.test to a
# ferry-echo backend, probed with the hostile client's attacks. See
# README.md.
#
#   bench/hardening/run.sh BINARY [BINARY...]
#
# Environment: WAIT (seconds an idle connection is watched, 20), and any
# FERRY_* limit to try (FERRY_HEADER_READ_TIMEOUT, FERRY_BODY_TIMEOUT...).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: $0 BINARY [BINARY...]" >&2; exit 2; }
WAIT=${WAIT:-20}
ECHO=${ECHO:-${CARGO_TARGET_DIR:-target}/release/ferry-echo}
[ -x "$ECHO" ] || { echo "build ferry-echo first (cargo build --release -p ferry-demo), or set ECHO" >&2; exit 2; }
export FERRY_DRAIN=0s FERRY_ECHO_DRAIN=0s

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
indent() { sed 's/^/    /'; }

BACKEND=$(free_port)
"$ECHO" --name v1 --listen "127.0.0.1:$BACKEND" >/dev/null & pids+=($!)
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=legit.test \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

for bin in "$@"; do
  HTTP=$(free_port); HTTPS=$(free_port)
  mkdir -p "$work/config"
  cat > "$work/config/gateway.yaml" <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ferry}
spec: {controllerName: ferry.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: probe, namespace: probe}
spec:
  gatewayClassName: ferry
  listeners:
    - {name: http, port: $HTTP, protocol: HTTP}
    - name: https
      port: $HTTPS
      protocol: HTTPS
      tls: {mode: Terminate, certificateRefs: [{name: probe-tls}]}
---
apiVersion: v1
kind: Secret
metadata: {name: probe-tls, namespace: probe}
type: kubernetes.io/tls
stringData:
  tls.crt: |
$(indent < "$work/cert.pem")
  tls.key: |
$(indent < "$work/key.pem")
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: legit, namespace: probe}
spec:
  parentRefs: [{name: probe}]
  hostnames: [legit.test]
  rules:
    - backendRefs: [{name: v1, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: v1, namespace: probe}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: v1, namespace: probe, labels: {kubernetes.io/service-name: v1}}
addressType: IPv4
ports: [{name: http, port: $BACKEND}]
endpoints: [{addresses: [127.0.0.1]}]
YAML
  FERRY_LOG=warn "$bin" --mode gateway --config "$work/config" --bind 127.0.0.1 \
    --admin "127.0.0.1:$(free_port)" >"$work/proxy.log" 2>&1 & proxy=$!; pids+=($proxy)
  for _ in $(seq 100); do
    curl -s -o /dev/null -H 'Host: legit.test' "http://127.0.0.1:$HTTP/" && break
    sleep 0.1
  done
  echo "== $bin"
  python3 bench/hardening/probe.py "127.0.0.1:$HTTP" --https "127.0.0.1:$HTTPS" --wait "$WAIT"
  kill "$proxy"
  rm -rf "$work/config"
done
