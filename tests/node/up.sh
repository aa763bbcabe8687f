#!/usr/bin/env bash
# Starts a real one-node Kubernetes 1.20.2 cluster on this machine
# (tests/node/README.md): etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, containerd + runc, kubelet, kube-proxy (iptables) and a
# cluster DNS (dnsmasq fed from the Services), every one bound to NODE_IP on
# a bridge that only this machine reaches. Returns when the node is Ready,
# its DNS answers, pods can be created in `default` and the images are
# imported; the admin kubeconfig is $RUN/pki/admin.kubeconfig.
#
# Every process runs in its own session with its log in $RUN/log and its PID
# in $RUN/pids; down.sh stops them by PID and undoes every host change, also
# after a failed or partial start. One node per machine: up.sh takes the lock
# $FERRY_NODE_LOCK for the node's life (a caller that already holds it sets
# FERRY_NODE_LOCKED=1, as ferry-harness does). Needs root and build.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/env.sh"
. "$HERE/pki.sh"
. "$HERE/config.sh"
T0=$(date +%s.%N)
mark() { awk -v a="$T0" -v b="$(date +%s.%N)" -v m="$*" 'BEGIN { printf "[%5.1fs] %s\n", b - a, m }'; }
die() { echo "up.sh: $*" >&2; exit 1; }
wait_for() {  # wait_for SECONDS WHAT CMD... : every 0.2 s until CMD succeeds
  local deadline=$(( $(date +%s) + $1 )) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "up.sh: timed out waiting for $what" >&2; return 1; }
    sleep 0.2
  done
}
start() {  # start NAME CMD... : in its own session, log + pid file, no lock fd
  local name=$1; shift
  setsid "$@" </dev/null >"$RUN/log/$name.log" 2>&1 9>&- &
  echo $! >"$RUN/pids/$name.pid"
}

[ "$(id -u)" -eq 0 ] || die "needs root"
for f in "$NODE_BIN/.complete" "$KUBE_BIN/kube-apiserver" "$KUBE_BIN/kube-controller-manager" \
         "$ETCD" "$NODE_IMAGES/pause.tar" /usr/sbin/dnsmasq; do
  [ -e "$f" ] || die "$f is missing: run tests/node/build.sh first"
done
[ ! -e "$RUN" ] || die "$RUN exists: a node runs or was not taken down (tests/node/down.sh)"
if [ "${FERRY_NODE_LOCKED:-}" != 1 ]; then
  exec 9>"$FERRY_NODE_LOCK"
  flock -n 9 || die "another node holds $FERRY_NODE_LOCK (one node per machine)"
fi
! ip link show "$NODE_BR" >/dev/null 2>&1 ||
  die "link $NODE_BR exists: another node runs or was not taken down (tests/node/down.sh)"
mkdir -p "$RUN"/{log,pids,net.d,cni-ipam,kubelet,containerd,dns}
echo $$ >"$RUN/up.pid"   # down.sh stops a start in progress first
trap 'echo "up.sh failed (line $LINENO); logs in $RUN/log; down.sh undoes a partial start" >&2' ERR
if [ "${FERRY_NODE_LOCKED:-}" != 1 ]; then
  # The lock outlives this script: a sleeper holds it until down.sh.
  setsid bash -c 'exec -a "$0" sleep infinity' "ferry-node-lock:$RUN" </dev/null >/dev/null 2>&1 &
  echo $! >"$RUN/pids/lock.pid"
  exec 9>&-
fi

# ------------------------------------------------------------- host baseline
# What we are about to change, for down.sh (restore) and verify-clean.sh.
{ for s in $SYSCTLS; do v=$(sysctl -n "$s" 2>/dev/null) && echo "sysctl $s=$v"; done
  nft list tables 2>/dev/null | sed 's/^/nft /'
  for p in $HOST_PATHS; do [ ! -e "$p" ] || echo "path $p"; done
} >"$BASELINE"

# ------------------------------------------------------------------- network
# The node's "NIC": a bridge without ports holding NODE_IP (kubelet refuses a
# loopback node IP). Every component binds there; nothing listens on eth0.
ip link add "$NODE_BR" type bridge
ip addr add "$NODE_IP/24" dev "$NODE_BR"
ip link set "$NODE_BR" up
# pod -> ClusterIP -> pod on the same bridge is routed after the DNAT.
sysctl -qw net.ipv4.ip_forward=1
[ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || sysctl -qw net.bridge.bridge-nf-call-iptables=1
# Containment: pods reach each other, Services and this machine, nothing
# beyond. In mangle, which runs before filter/FORWARD where kube-proxy
# prepends its ACCEPTs.
iptables -t mangle -N "$CONTAIN_CHAIN"
iptables -t mangle -A "$CONTAIN_CHAIN" -i "$CNI_BR" -o "$CNI_BR" -j RETURN
iptables -t mangle -A "$CONTAIN_CHAIN" -i "$CNI_BR" -j DROP
iptables -t mangle -A "$CONTAIN_CHAIN" -o "$CNI_BR" -j DROP
iptables -t mangle -A FORWARD -j "$CONTAIN_CHAIN"
make_pki
mark "network and PKI"

# ------------------------------------------------------------- control plane
P=$RUN/pki
start etcd "$ETCD" --name ferry-node --data-dir "$RUN/etcd" \
  --listen-client-urls "http://$NODE_IP:$ETCD_PORT" --advertise-client-urls "http://$NODE_IP:$ETCD_PORT" \
  --listen-peer-urls "http://$NODE_IP:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$NODE_IP:$ETCD_PEER_PORT" \
  --initial-cluster "ferry-node=http://$NODE_IP:$ETCD_PEER_PORT" --listen-metrics-urls "" \
  --logger=zap --log-level=warn
# Service account tokens as in ferry-harness's Cluster: audiences of the
# apiserver and `ferry`, and a projected token volume in every pod.
start kube-apiserver "$KUBE_BIN/kube-apiserver" \
  --etcd-servers="http://$NODE_IP:$ETCD_PORT" \
  --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$API_PORT" --insecure-port=0 \
  --cert-dir="$P/apiserver" --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
  --client-ca-file="$P/ca.crt" --kubelet-preferred-address-types=InternalIP \
  --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key" \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc \
  --api-audiences=https://kubernetes.default.svc,ferry \
  --feature-gates=BoundServiceAccountTokenVolume=true \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --service-cluster-ip-range="$SVC_CIDR" --allow-privileged=true --profiling=false

# containerd, the kubelet and kube-proxy do not wait for the apiserver (they
# retry until it answers), which saves seconds. containerd first; the CNI
# config must exist before it starts ("cni plugin not initialized").
write_cni
write_containerd
# /run/netns as iproute2 leaves it (bound onto itself, shared), set up once
# before any pod: left to containerd, two sandboxes made at once can each
# bind it, hiding the first pod's netns under the second bind mount, where
# nothing can remove it (pod deletion then hangs on "device or resource
# busy"). down.sh removes it again when up.sh made it.
ip netns add ferry-node-prepare && ip netns delete ferry-node-prepare
start containerd /usr/bin/containerd --config "$RUN/containerd/config.toml"
wait_for 30 containerd ctr version
ctr images import "$NODE_IMAGES/pause.tar" >/dev/null
mark "containerd, sandbox image"

# ------------------------------------------------------------------- images
# The toolbox and Ferry's images, while the apiserver starts.
import_images() {
  local t
  for t in "$NODE_IMAGES/toolbox.tar" "$FERRY_NODE_IMAGES"/*.tar; do
    [ -f "$t" ] || continue
    ctr images import "$t" >/dev/null || { echo "up.sh: failed to import $t" >&2; return 1; }
  done
}
import_images &
imports=$!
[ -d "$FERRY_NODE_IMAGES" ] || echo "up.sh: no $FERRY_NODE_IMAGES: Ferry's images not imported (images/build.sh)" >&2

# ------------------------------------------------------------------ the node
write_kubelet
start kubelet "$NODE_BIN/kubelet" --config="$RUN/kubelet/config.yaml" \
  --kubeconfig="$P/kubelet.kubeconfig" --root-dir="$RUN/kubelet/root" --cert-dir="$RUN/kubelet/pki" \
  --container-runtime=remote --container-runtime-endpoint="unix://$RUN/containerd/containerd.sock" \
  --pod-infra-container-image=localhost/ferry-node/pause:3.2 \
  --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=2
write_kube_proxy
start kube-proxy "$NODE_BIN/kube-proxy" --config="$RUN/kube-proxy.yaml" --v=2

# ------------------------------------------------- once the apiserver is ready
wait_for 90 "the apiserver" kubectl get --raw /readyz
mark "apiserver ready"
# Unlike the kubelet, these two give up when the apiserver is slow to answer.
start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
  --kubeconfig="$P/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$P/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$P/controller-manager.kubeconfig" \
  --bind-address="$NODE_IP" --secure-port=10257 --port=0 --cert-dir="$P/kcm" --leader-elect=false \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --use-service-account-credentials=true \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
  --service-cluster-ip-range="$SVC_CIDR" --feature-gates=BoundServiceAccountTokenVolume=true \
  --flex-volume-plugin-dir="$RUN/kcm-flex" --profiling=false
start kube-scheduler "$NODE_BIN/kube-scheduler" \
  --kubeconfig="$P/scheduler.kubeconfig" \
  --authentication-kubeconfig="$P/scheduler.kubeconfig" --authorization-kubeconfig="$P/scheduler.kubeconfig" \
  --bind-address="$NODE_IP" --secure-port=10259 --port=0 --cert-dir="$P/scheduler" --leader-elect=false \
  --profiling=false

# ---------------------------------------------------------------------- DNS
# dnsmasq answers the cluster zone from the feeder's hosts file, NXDOMAIN
# for other names in it, REFUSED for the rest: it has no upstream.
kubectl create clusterrolebinding ferry-node:dns --clusterrole=system:kube-dns \
  --user=ferry-node:dns >/dev/null
: >"$RUN/dns/hosts"
start dnsmasq /usr/sbin/dnsmasq --keep-in-foreground --conf-file=/dev/null \
  --listen-address="$NODE_IP" --bind-interfaces --port=53 \
  --no-resolv --no-hosts --no-poll --addn-hosts="$RUN/dns/hosts" \
  --local="/$CLUSTER_DOMAIN/" --domain-needed --bogus-priv --local-ttl=0 \
  --pid-file="$RUN/dns/dnsmasq.pid" --log-facility=-
start dns-feeder python3 "$HERE/dns-feeder.py" "https://$NODE_IP:$API_PORT" \
  "$P/ca.crt" "$P/dns.crt" "$P/dns.key" "$RUN/dns/hosts" "$(cat "$RUN/pids/dnsmasq.pid")" "$CLUSTER_DOMAIN"

resolves() { busybox nslookup "$1" "$NODE_IP" 2>/dev/null | grep "Address.*$2" >/dev/null; }
wait_for 30 "the cluster DNS" resolves "kubernetes.default.svc.$CLUSTER_DOMAIN" "$SVC_IP_API"
mark "DNS answers"
ready() {
  kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -x True >/dev/null
}
wait_for 120 "node $NODE_NAME Ready" ready
mark "node $NODE_NAME Ready"
# Pods are refused until their namespace has this. The controller manager
# makes it too, seconds later; it takes ours as it is.
kubectl -n default create serviceaccount default >/dev/null 2>&1 ||
  kubectl -n default get serviceaccount default >/dev/null
wait "$imports"
mark "images: $(ctr images ls -q | grep -v '^sha256:' | tr '\n' ' ')"
for f in "$RUN"/pids/*.pid; do
  pid=$(cat "$f")
  [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" || die "$(basename "$f" .pid) exited: $(tail -n 5 "$RUN/log/$(basename "$f" .pid).log" 2>/dev/null)"
done
rm -f "$RUN/up.pid"
echo "KUBECONFIG=$KUBECONFIG  kubectl: $NODE_BIN/kubectl"
