#!/usr/bin/env bash
# Installs the system packages and builds the cached binaries the tests use.
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# End-to-end tests (pods as network namespaces, ferry-proxy init's real
# iptables rules, curl inside the pods, tcpdump to see what crosses between
# pods): iproute2, iptables, curl, tcpdump; setpriv
# comes with util-linux.
NETNS_PACKAGES=(iproute2 iptables curl tcpdump util-linux)
missing=()
for pkg in "${NETNS_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  printf 'setup.sh: installing %s\n' "${missing[*]}" >&2
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

tests/cluster/kube.sh     # real etcd + kube-apiserver (cluster tests)
tests/node/setup.sh       # kubelet, kube-proxy, scheduler, containerd (the real node)
tests/chart/setup.sh      # real Helm, as a library (chart tests, the journey)
