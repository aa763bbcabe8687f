#!/usr/bin/env bash
# One command from a clean clone to Ferry on a real one-node Kubernetes on
# this machine (tests/node/): builds the node's binaries and Ferry's images
# (once; cached), starts the node, installs the chart, labels the demo's
# namespace for injection, deploys the scenario with a Gateway-parent and a
# Service-parent route, and prints `kubectl gateway status` and lines to try.
#
#   demos/cluster.sh [SCENARIO]   # default: istio-helloworld
#   demos/cluster.sh down         # removes everything it started
#
# Needs root (the node changes network settings; tests/node/README.md says
# which, and `down` undoes them). For any other cluster, see README.md, "On a
# real cluster".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. tests/node/env.sh

say() { printf '\n== %s\n' "$*"; }

if [ "${1:-}" = down ]; then
  tests/node/down.sh
  exit 0
fi
SCENARIO=${1:-istio-helloworld}
[ -d "demos/$SCENARIO/cluster" ] || {
  echo "cluster.sh: no cluster form for $SCENARIO; these have one:" >&2
  ls -d demos/*/cluster | cut -d/ -f2 >&2
  exit 2
}
[ "$(id -u)" -eq 0 ] || { echo "cluster.sh: run as root (the node needs it)" >&2; exit 1; }

say "Preparing: the node's binaries, real Helm, Ferry's images (cached after the first run)"
tests/cluster/kube.sh
tests/node/setup.sh
tests/chart/setup.sh
cargo build --quiet --release --locked -p ferry-proxy -p ferry-control -p ferry-demo -p kubectl-gateway
images/build.sh --bin-dir target/release
PATH=$ROOT/target/release:$NODE_BIN:$PATH
export KUBECONFIG

say "Starting the node (tests/node/up.sh)"
tests/node/up.sh
helm() { "${XDG_CACHE_HOME:-$HOME/.cache}/ferry/helm-venv/bin/python" tests/chart/helm.py "$@" --kubeconfig "$KUBECONFIG"; }
kubectl() { "$NODE_BIN/kubectl" "$@"; }

say "Gateway API CRDs (standard channel), then: helm install ferry charts/ferry -n ferry-system --create-namespace"
for crd in charts/ferry/files/gateway-api/standard/gateway.networking.k8s.io_*.yaml; do
  case $crd in *_vap_*) continue ;; esac   # needs Kubernetes 1.30+; the node is 1.20
  kubectl apply --validate=false -f "$crd" >/dev/null
done
t0=$(date +%s)
helm install ferry charts/ferry --namespace ferry-system --create-namespace >/dev/null
kubectl -n ferry-system rollout status deployment/ferry-control --timeout=180s

say "kubectl label namespace ... ferry.dev/inject=enabled, then the scenario"
ferry-demo "$SCENARIO" --cluster --image "localhost/ferry/echo:$(awk -F'"' '/^version/ {print $2; exit}' Cargo.toml)" > "$RUN/demo.yaml"
for ns in $(awk '/^kind: Namespace/ {n=1} n && /^  name:/ {print $2; n=0}' "$RUN/demo.yaml" | sort -u); do
  kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
done
MESH_NAMESPACE=
. "demos/$SCENARIO/cluster/env"
kubectl label namespace "$MESH_NAMESPACE" ferry.dev/inject=enabled --overwrite
kubectl apply -f "$RUN/demo.yaml" -f "demos/$SCENARIO/cluster/mesh.yaml" >/dev/null
for d in $(kubectl get deployments -A -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}' | grep -v '^kube-system/'); do
  kubectl -n "${d%/*}" rollout status "deployment/${d#*/}" --timeout=180s >/dev/null
done
echo "ready $(( $(date +%s) - t0 )) s after helm install"

say "kubectl gateway status -A"
kubectl-gateway status -A
. "demos/$SCENARIO/cluster/try.sh"

cat <<EOF

The cluster stays up. Use it with:
  export KUBECONFIG=$KUBECONFIG PATH=$ROOT/target/release:$NODE_BIN:\$PATH
  kubectl get pods -A; kubectl gateway describe httproute -A
Remove it: demos/cluster.sh down
EOF
