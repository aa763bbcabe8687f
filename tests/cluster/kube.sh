#!/usr/bin/env bash
# Prepares the real-apiserver test harness (tests/README.md):
#   * etcd from Debian bookworm's `etcd-server`;
#   * kube-apiserver and kube-controller-manager built once from Debian's
#     `kubernetes` source package with Go 1.15 (bullseye's golang-1.15-go),
#     cached under ~/.cache/ferry/kube-$KUBE_VERSION/bin.
# Idempotent, safe to rerun (also after an interrupted run) and silent when
# everything is already there. The package mirror is read from the machine's
# own apt configuration; no registry host is written into the repository.
set -euo pipefail

KUBE_VERSION=1.20.2
CACHE=${FERRY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry}
BIN=$CACHE/kube-$KUBE_VERSION/bin
STAMP=$BIN/.complete
BUILD=$CACHE/build/kube-$KUBE_VERSION
GO=/usr/lib/go-1.15/bin
SOURCES=/etc/apt/sources.list.d/ferry-kube.sources
PREFS=/etc/apt/preferences.d/ferry-kube
PACKAGES=(etcd-server golang-1.15-go rsync make)

log() { printf 'kube.sh: %s\n' "$*" >&2; }

installed() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || return 1
  done
}

# Fast path: nothing to do, say nothing.
if [ -f "$STAMP" ] && installed etcd-server; then
  exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { log "need root or sudo to install packages"; exit 1; }
  SUDO=sudo
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/kube.lock"
flock 9 # another run may be preparing the same cache
if [ -f "$STAMP" ] && installed etcd-server; then
  exit 0
fi

# --- apt sources: bookworm deb-src (kubernetes) and bullseye (Go 1.15) -------
configure_apt() {
  local uri changed=0
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  [ -n "$uri" ] || { log "no URIs: line in /etc/apt/sources.list.d/debian.sources"; exit 1; }
  local want
  want=$(cat <<EOF
Types: deb-src
URIs: $uri
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $uri
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
)
  if [ ! -f "$SOURCES" ] || [ "$(cat "$SOURCES")" != "$want" ]; then
    printf '%s\n' "$want" | $SUDO tee "$SOURCES" >/dev/null
    changed=1
  fi
  # bullseye only supplies what we ask for by name (golang-1.15-*): a low
  # priority keeps it from upgrading or replacing any bookworm package.
  local prefs
  prefs=$(printf 'Package: *\nPin: release n=bullseye\nPin-Priority: 100\n')
  if [ ! -f "$PREFS" ] || [ "$(cat "$PREFS")" != "$prefs" ]; then
    printf '%s\n' "$prefs" | $SUDO tee "$PREFS" >/dev/null
    changed=1
  fi
  if [ "$changed" = 1 ] || ! apt-cache show golang-1.15-go >/dev/null 2>&1 \
    || ! apt-cache showsrc kubernetes 2>/dev/null | grep -q "really$KUBE_VERSION"; then
    log "apt-get update"
    $SUDO apt-get update -qq >/dev/null
  fi
}

if ! installed "${PACKAGES[@]}"; then
  configure_apt
  log "installing ${PACKAGES[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${PACKAGES[@]}" >/dev/null
fi
[ -f "$STAMP" ] && exit 0

# --- build kube-apiserver and kube-controller-manager ------------------------
configure_apt
log "building kube-apiserver and kube-controller-manager $KUBE_VERSION (once; 6-8 min on 2 cores)"
mkdir -p "$BUILD"
cd "$BUILD"
orig=$(ls kubernetes_*really"$KUBE_VERSION".orig.tar.* 2>/dev/null | head -n1 || true)
if [ -z "$orig" ] || ! tar tf "$orig" >/dev/null 2>&1; then
  rm -rf download && mkdir download
  (cd download && apt-get source -qq --download-only "kubernetes" >/dev/null)
  orig=$(cd download && ls kubernetes_*really"$KUBE_VERSION".orig.tar.* | head -n1)
  [ -n "$orig" ] || { log "the kubernetes source package is not version $KUBE_VERSION"; exit 1; }
  mv "download/$orig" . && rm -rf download
fi

# A fresh tree each time: a half-built one from an interrupted run is not
# trusted. Go's build cache (kept until success) makes a rebuild quick.
rm -rf src && mkdir src
tar xf "$orig" -C src
tree=$(find src -mindepth 1 -maxdepth 1 -type d | head -n1)
cd "$tree"
mkdir -p .go/src/k8s.io
ln -sfn ../../.. .go/src/k8s.io/kubernetes
if ! PATH=$GO:$PATH GOPATH=$PWD/.go GOCACHE=$BUILD/gocache \
  CGO_ENABLED=0 make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" \
  >"$BUILD/build.log" 2>&1; then
  tail -n 40 "$BUILD/build.log" >&2
  log "build failed; full log in $BUILD/build.log"
  exit 1
fi

out=_output/local/bin/linux/$(PATH=$GO:$PATH go env GOARCH)
mkdir -p "$BIN"
for b in kube-apiserver kube-controller-manager; do
  install -m 0755 "$out/$b" "$BIN/$b.tmp"
  mv -f "$BIN/$b.tmp" "$BIN/$b"
done
"$BIN/kube-apiserver" --version >&2
touch "$STAMP"
cd "$CACHE" && rm -rf "$BUILD"
log "cached in $BIN"
