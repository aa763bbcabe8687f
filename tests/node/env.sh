# shellcheck disable=SC2034  # sourced: the variables are used by the scripts
# Settings shared by the real-node scripts (tests/node/README.md). Sourced,
# never run. The FERRY_* variables override the defaults.

# Versions and the cache (the same layout as tests/cluster/kube.sh).
KUBE_VERSION=1.20.2
FERRY_CACHE_DIR=${FERRY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry}
NODE_CACHE=$FERRY_CACHE_DIR/node-$KUBE_VERSION
NODE_BIN=$NODE_CACHE/bin                   # kubelet kube-proxy kube-scheduler kubectl
NODE_IMAGES=$NODE_CACHE/images             # pause.tar toolbox.tar
KUBE_BIN=${FERRY_KUBE_BIN_DIR:-$FERRY_CACHE_DIR/kube-$KUBE_VERSION/bin}   # kube.sh's
ETCD=${FERRY_ETCD:-/usr/bin/etcd}

# Where a running node keeps everything: run/ is created by up.sh and
# removed by down.sh; host-baseline (the sysctls before up.sh) stays.
FERRY_NODE_DIR=${FERRY_NODE_DIR:-/tmp/ferry-node}
RUN=$FERRY_NODE_DIR/run
BASELINE=$FERRY_NODE_DIR/host-baseline
# Ferry's own images (docker-archive tarballs): every *.tar is imported.
FERRY_NODE_IMAGES=${FERRY_NODE_IMAGES:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/images}
# One node at a time on a machine: its names (bridges, CIDRs, iptables
# chains, /run/containerd) are host-wide. Whoever holds this lock owns them.
FERRY_NODE_LOCK=${FERRY_NODE_LOCK:-/tmp/ferry-node.lock}

# Addresses and names. The ranges must not clash with the machine's own.
NODE_NAME=${FERRY_NODE_NAME:-ferry-node}
NODE_BR=ferry-node0                        # bridge without ports, holds NODE_IP
NODE_IP=${FERRY_NODE_IP:-10.10.0.1}        # every component binds here
CNI_BR=ferry-cni0                          # pod bridge (CNI bridge plugin)
POD_CIDR=${FERRY_NODE_POD_CIDR:-10.244.0.0/24}
SVC_CIDR=${FERRY_NODE_SVC_CIDR:-10.96.0.0/16}
SVC_IP_API=${FERRY_NODE_SVC_IP_API:-10.96.0.1}   # first of SVC_CIDR: `kubernetes`
CLUSTER_DOMAIN=cluster.local
CONTAIN_CHAIN=FERRY-NODE-CONTAIN           # mangle/FORWARD: pods reach nothing off the node
API_PORT=6443
ETCD_PORT=2379
ETCD_PEER_PORT=2380

KUBECONFIG=$RUN/pki/admin.kubeconfig
CONTAINERD_SOCK=$RUN/containerd/containerd.sock
# Host paths the kubelet, containerd and CNI use whatever they are told;
# up.sh records which existed before, down.sh removes the others.
HOST_PATHS="/var/lib/kubelet /var/lib/cni /etc/cni /run/containerd /run/netns
  /var/log/pods /var/log/containers /usr/libexec/kubernetes"
# Sysctls the node changes (up.sh: ip_forward, bridge-nf-call-iptables;
# kubelet: kernel.*, vm.*; kube-proxy: route_localnet); restored by down.sh.
SYSCTLS="net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables
  net.ipv4.conf.all.route_localnet kernel.panic kernel.panic_on_oops
  vm.overcommit_memory vm.panic_on_oom kernel.keys.root_maxkeys kernel.keys.root_maxbytes"

# Our own kubectl (1.20, matches the server), admin, discovery cache in RUN
# (not ~/.kube/cache).
kubectl() { "$NODE_BIN/kubectl" --kubeconfig "$KUBECONFIG" --cache-dir "$RUN/kube-cache" "$@"; }
ctr() { /usr/bin/ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
