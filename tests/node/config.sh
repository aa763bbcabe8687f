# Configuration files of the node's components (sourced by up.sh). Every
# path they name is under $RUN unless a comment says why not.

write_cni() {
  # One bridge, host-local IPAM, no masquerade: nothing is to leave the
  # machine. hairpinMode lets a pod reach itself through its Service.
  cat >"$RUN/net.d/10-ferry-node.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "ferry-node",
  "plugins": [
    {"type": "bridge", "bridge": "$CNI_BR", "isGateway": true, "ipMasq": false,
     "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$RUN/cni-ipam",
              "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}}
  ]
}
CNI
}

write_containerd() {
  local c=$RUN/containerd
  cat >"$c/config.toml" <<TOML
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$c/containerd.sock"
[ttrpc]
  address = "$c/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"   # default /opt/containerd
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/ferry-node/pause:3.2"
  # Root may lack CAP_SYS_RESOURCE (it does on our CI VMs): then a negative
  # oom_score_adj cannot be written, and kubelet asks -998 for every sandbox,
  # which kills runc init ("can't get final child's PID from pipe: EOF").
  # Clamp containers' OOM scores to containerd's own instead.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "$c/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/net.d"
TOML
}

write_kubelet() {
  local k=$RUN/kubelet
  # Pods with dnsPolicy Default get this file: the cluster's DNS as well,
  # so no lookup leaves the machine.
  printf 'nameserver %s\n' "$NODE_IP" >"$RUN/resolv.conf"
  cat >"$k/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: $NODE_IP
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$RUN/pki/ca.crt"}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failSwapOn: false
clusterDNS: ["$NODE_IP"]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: "$RUN/resolv.conf"
podCIDR: "$POD_CIDR"
maxPods: 60
# The machine is shared: keep eviction and image GC from reacting to its disk.
evictionHard: {"memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
# Node status every 2 s instead of 10 s: Ready ~8 s sooner, and cheap (the
# kubelet only patches on change; heartbeats go to its Lease).
nodeStatusUpdateFrequency: 2s
volumePluginDir: "$k/volume-plugins"   # default under /usr/libexec
YAML
}

write_kube_proxy() {
  cat >"$RUN/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$RUN/pki/kube-proxy.kubeconfig"}
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: $NODE_IP:10256
metricsBindAddress: $NODE_IP:10249
nodePortAddresses: ["$NODE_IP/32"]
# Zeros leave the host's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
}
