#!/usr/bin/env bash
# Prepares a real one-node cluster (tests/node/README.md), once per machine:
#   * Debian packages: containerd, runc, CNI plugins, iptables, conntrack,
#     dnsmasq-base (cluster DNS), busybox-static, python3;
#   * etcd, kube-apiserver and kube-controller-manager via tests/cluster/kube.sh;
#   * kubelet, kube-proxy, kube-scheduler and kubectl 1.20.2, built from
#     Debian's `kubernetes` source package with Go 1.15 like kube.sh does,
#     cached in $NODE_BIN with the stamp .complete;
#   * the images the node itself needs, as docker-archive tarballs in
#     $NODE_IMAGES: the sandbox (`pause`, static, from the same source) and
#     a toolbox for tests (busybox-static + the host's iptables).
# Idempotent, safe after an interruption, silent when everything is there.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/env.sh"
BUILD=$FERRY_CACHE_DIR/build/node-$KUBE_VERSION
GO=/usr/lib/go-1.15/bin
PACKAGES=(containerd runc containernetworking-plugins iptables conntrack dnsmasq-base
  busybox-static python3 openssl gcc libc6-dev binutils iproute2 util-linux)
PAUSE_REF=localhost/ferry-node/pause:3.2
TOOLBOX_REF=localhost/ferry-node/toolbox:1

log() { printf 'node/build.sh: %s\n' "$*" >&2; }
installed() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep 'install ok installed' >/dev/null || return 1
  done
}
complete() {
  [ -f "$NODE_BIN/.complete" ] && [ -s "$NODE_IMAGES/pause.tar" ] &&
    [ -s "$NODE_IMAGES/toolbox.tar" ] && installed "${PACKAGES[@]}"
}

"$HERE/../cluster/kube.sh"   # etcd, Go 1.15, apt sources, apiserver; quiet when cached
complete && exit 0
[ "$(id -u)" -eq 0 ] || { log "run as root (it installs packages; the node needs root anyway)"; exit 1; }
mkdir -p "$FERRY_CACHE_DIR"
exec 9>"$FERRY_CACHE_DIR/node-build.lock"
flock 9   # another run may be filling the same cache
complete && exit 0

# --- packages -----------------------------------------------------------------
if ! installed "${PACKAGES[@]}"; then
  log "installing ${PACKAGES[*]}"
  apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${PACKAGES[@]}" >/dev/null
  }
  apt_install || { apt-get update -qq >/dev/null && apt_install; }
fi

# --- the kubernetes source tarball (kube.sh's if it still has one) -----------
source_tarball() {
  local t
  for t in "$FERRY_CACHE_DIR/build/kube-$KUBE_VERSION" "$BUILD"; do
    t=$(ls "$t"/kubernetes_*really"$KUBE_VERSION".orig.tar.* 2>/dev/null | head -n1 || true)
    if [ -n "$t" ] && tar tzf "$t" >/dev/null 2>&1; then echo "$t"; return; fi
  done
  mkdir -p "$BUILD" && rm -rf "$BUILD/download" && mkdir "$BUILD/download"
  (cd "$BUILD/download" && apt-get source -qq --download-only kubernetes >/dev/null)
  t=$(ls "$BUILD"/download/kubernetes_*really"$KUBE_VERSION".orig.tar.* 2>/dev/null | head -n1 || true)
  [ -n "$t" ] || { log "Debian's kubernetes source package is not $KUBE_VERSION"; exit 1; }
  mv "$t" "$BUILD/" && rm -rf "$BUILD/download"
  echo "$BUILD/$(basename "$t")"
}

# --- kubelet, kube-proxy, kube-scheduler, kubectl -----------------------------
if [ ! -f "$NODE_BIN/.complete" ]; then
  log "building kubelet, kube-proxy, kube-scheduler, kubectl $KUBE_VERSION (once; 5-8 min on 2 cores)"
  started=$(date +%s)
  orig=$(source_tarball)
  # A fresh tree each time; Go's build cache (kept until success) makes a
  # rebuild after an interruption quick.
  rm -rf "$BUILD/src" && mkdir -p "$BUILD/src"
  tar xzf "$orig" -C "$BUILD/src"
  tree=$(find "$BUILD/src" -mindepth 1 -maxdepth 1 -type d | head -n1)
  mkdir -p "$tree/.go/src/k8s.io"
  ln -sfn ../../.. "$tree/.go/src/k8s.io/kubernetes"
  if ! (cd "$tree" && PATH=$GO:$PATH GOPATH=$tree/.go GOCACHE=$BUILD/gocache CGO_ENABLED=0 \
      make WHAT="cmd/kubelet cmd/kube-proxy cmd/kube-scheduler cmd/kubectl") \
      >"$BUILD/build.log" 2>&1; then
    tail -n 40 "$BUILD/build.log" >&2
    log "build failed; full log in $BUILD/build.log"
    exit 1
  fi
  mkdir -p "$NODE_BIN"
  for b in kubelet kube-proxy kube-scheduler kubectl; do
    install -m 0755 "$tree/_output/local/bin/linux/amd64/$b" "$NODE_BIN/$b.tmp"
    mv -f "$NODE_BIN/$b.tmp" "$NODE_BIN/$b"
  done
  "$NODE_BIN/kubelet" --version >&2
  touch "$NODE_BIN/.complete"
  rm -rf "$BUILD/src" "$BUILD/gocache" "$BUILD/build.log"
  log "built in $(( $(date +%s) - started )) s, cached in $NODE_BIN"
fi

# --- images -------------------------------------------------------------------
mkdir -p "$NODE_IMAGES"
work=$(mktemp -d "$FERRY_CACHE_DIR/node-image.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The sandbox image: kubernetes' own pause.c, linked statically.
if [ ! -s "$NODE_IMAGES/pause.tar" ]; then
  orig=$(source_tarball)
  tar xzf "$orig" -C "$work" --wildcards '*/build/pause/linux/pause.c'
  mkdir -p "$work/pause"
  gcc -Os -static -DVERSION="3.2-ferry" -o "$work/pause/pause" "$work"/*/build/pause/linux/pause.c
  strip "$work/pause/pause"
  "$HERE/mkimage.py" "$NODE_IMAGES/pause.tar" "$PAUSE_REF" "$work/pause" -- /pause >&2
fi

# The toolbox: busybox-static (sh, httpd, nc, ip, ...; its wget segfaults:
# use nc) and the host's iptables (nf_tables) with the libraries it loads.
if [ ! -s "$NODE_IMAGES/toolbox.tar" ]; then
  r=$work/toolbox
  mkdir -p "$r"/{bin,sbin,usr/sbin,usr/lib,usr/lib64,etc,tmp,www,root}
  # merged /usr, as on the host: libraries land where the loader and
  # iptables (XTABLES_LIBDIR) look for them, whichever path ldd names.
  ln -s usr/lib "$r/lib"
  ln -s usr/lib64 "$r/lib64"
  chmod 1777 "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"
  done
  with_libs() {  # copies files, and the shared libraries they load, into $r
    local f lib
    for f in "$@"; do
      [ -e "$r$f" ] || install -D "$f" "$r$f"
      for lib in $(ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
        [ -e "$r$lib" ] || install -D "$lib" "$r$lib"
      done
    done
  }
  multi=$(readlink -f "$(command -v iptables-nft || echo /usr/sbin/iptables-nft)")
  with_libs "$multi"
  xtlib=$(dirname "$(ldd "$multi" | awk '/libxtables/ {print $3}')")/xtables
  with_libs "$xtlib"/*.so
  for a in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf "$multi" "$r/usr/sbin/$a"
  done
  cp /etc/protocols /etc/services "$r/etc/"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$r/etc/passwd"
  echo 'root:x:0:' >"$r/etc/group"
  echo 'hello from the ferry-node toolbox' >"$r/www/index.html"
  "$HERE/mkimage.py" "$NODE_IMAGES/toolbox.tar" "$TOOLBOX_REF" "$r" -- /bin/sh >&2
fi
rm -rf "$BUILD"
complete || { log "incomplete after the build"; exit 1; }
