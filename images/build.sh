#!/usr/bin/env bash
# Builds Ferry's three images offline, with no container engine, as
# docker-archive tarballs (images/README.md):
#
#   <out>/ferry-proxy.tar    localhost/ferry/proxy:<version>
#   <out>/ferry-control.tar  localhost/ferry/control:<version>
#   <out>/ferry-echo.tar     localhost/ferry/echo:<version>
#
# Layers: a base root filesystem made from Debian packages (rootfs.sh;
# cached under ${XDG_CACHE_HOME:-~/.cache}/ferry/images), iptables for the
# proxy, and the release binary. Quiet when everything is up to date.
#
# Usage: images/build.sh [--bin-dir DIR] [--out-dir DIR] [--refresh-base]
#                        [--check | --no-check]
#   --bin-dir DIR    take ferry-proxy, ferry-control and ferry-echo from DIR
#                    instead of running cargo build --release (FERRY_BIN_DIR)
#   --out-dir DIR    where the tarballs go (FERRY_IMAGES_OUT; target/images)
#   --refresh-base   rebuild the cached base (e.g. for Debian security updates)
#   --check          run images/check.sh even when no image changed
#   --no-check       never run it (it runs after a change when containerd is
#                    installed and this runs as root)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
die() { echo "images/build.sh: $*" >&2; exit 1; }
say() { echo "images: $*" >&2; }

bin_dir=${FERRY_BIN_DIR:-}
out_dir=${FERRY_IMAGES_OUT:-$root/target/images}
refresh=false
check=auto
while [ $# -gt 0 ]; do
  case $1 in
    --bin-dir) [ $# -ge 2 ] || die "--bin-dir needs a directory"; bin_dir=$2; shift 2 ;;
    --bin-dir=*) bin_dir=${1#*=}; shift ;;
    --out-dir) [ $# -ge 2 ] || die "--out-dir needs a directory"; out_dir=$2; shift 2 ;;
    --out-dir=*) out_dir=${1#*=}; shift ;;
    --refresh-base) refresh=true; shift ;;
    --check) check=always; shift ;;
    --no-check) check=never; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
command -v python3 >/dev/null || die "python3 is needed (apt-get install python3)"

version=$(awk '/^\[workspace.package\]/ { p = 1; next } /^\[/ { p = 0 }
  p && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' "$root/Cargo.toml")
[ -n "$version" ] || die "no [workspace.package] version in $root/Cargo.toml"
for file in "$here"/*.Containerfile; do
  grep -qx "ARG FERRY_VERSION=$version" "$file" \
    || say "warning: $(basename "$file") does not say ARG FERRY_VERSION=$version (the workspace version)"
done
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
# Timestamps of the binary layers and image configs: the commit's time, so
# a rebuild of the same commit gives the same bytes.
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}

# --- 1. release binaries ------------------------------------------------------
if [ -z "$bin_dir" ]; then
  command -v cargo >/dev/null || die "cargo is not on PATH (or pass --bin-dir with prebuilt binaries)"
  # Quiet unless something compiles; compiler errors still show.
  (cd "$root" && cargo build --quiet --release --locked -p ferry-proxy -p ferry-control -p ferry-demo --bins \
      --message-format=json-render-diagnostics) | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and not msg.get("fresh", True):
        print("images: building release binaries (cargo build --release)...", file=sys.stderr)
        break
for line in sys.stdin:
    pass
' || die "cargo build --release failed"
  bin_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release
fi
for bin in ferry-proxy ferry-control ferry-echo; do
  [ -x "$bin_dir/$bin" ] || die "no executable $bin in $bin_dir (build it: cargo build --release --locked -p ferry-proxy -p ferry-control -p ferry-demo --bins)"
done

# --- 2. the base root filesystem (cached) ------------------------------------
cache=${XDG_CACHE_HOME:-$HOME/.cache}/ferry/images
mkdir -p "$cache" "$out_dir"
key=$(
  {
    cat "$here/rootfs.sh" "$here/archive.py"
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true
    env | grep '^FERRY_DEBIAN_' | sort || true
    dpkg --print-architecture 2>/dev/null || uname -m
  } | sha256sum | cut -c1-16
)
base=$cache/base-$key
exec 9>"$cache/.lock"
flock 9 # one base build at a time; the others wait for it and reuse it
if $refresh || [ ! -f "$base/done" ]; then
  say "making the base root filesystem from Debian packages (cached in $base)..."
  tmp=$(mktemp -d "$cache/.base-$key.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  "$here/rootfs.sh" "$tmp/rootfs"
  stamp=$(cat "$tmp/rootfs/epoch")
  python3 "$here/archive.py" layer "$tmp/base.tar" --dir "$tmp/rootfs/base" --epoch "$stamp"
  python3 "$here/archive.py" layer "$tmp/iptables.tar" --dir "$tmp/rootfs/iptables" --epoch "$stamp"
  touch "$tmp/done"
  rm -rf "$base"
  mv "$tmp" "$base"
  trap - EXIT
fi
flock -u 9

# --- 3. the binaries run on the image's glibc --------------------------------
# With the image's own dynamic loader and libraries, no root or engine needed:
# catches a binary built against a newer glibc than the image's.
libdir=$(cd "$base/rootfs/base/usr/lib" && ls -d ./*-linux-gnu* 2>/dev/null | head -n1)
loader=$(ls "$base/rootfs/base/usr/lib/${libdir#./}"/ld-linux*.so.* 2>/dev/null | head -n1)
[ -n "$loader" ] || die "no dynamic loader in $base/rootfs/base (try --refresh-base)"
libs=$base/rootfs/base/usr/lib/${libdir#./}
glibc=$(awk '$2 == "libc6" { print $3 }' "$base/rootfs/packages.txt")
for bin in ferry-proxy ferry-control ferry-echo; do
  # The loader would fall back to this machine's libraries: check that
  # every library the binary names is in the image.
  if command -v readelf >/dev/null; then
    for lib in $(readelf -d "$bin_dir/$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      [ -e "$libs/$lib" ] || die "$bin needs $lib, which the image does not have (add its package to images/rootfs.sh)"
    done
  fi
  if ! out=$("$loader" --library-path "$libs" "$bin_dir/$bin" --version 2>&1); then
    die "$bin_dir/$bin does not run on the image's libraries (glibc $glibc): $out
  Build the binaries on Debian bookworm (or with the Containerfiles), or pass --bin-dir."
  fi
done
if ! out=$("$loader" --library-path "$libs:$base/rootfs/iptables/usr/lib/${libdir#./}" \
    --argv0 iptables-save "$base/rootfs/iptables/usr/sbin/xtables-nft-multi" --version 2>&1); then
  die "iptables-save does not run from the base (try --refresh-base): $out"
fi

# --- 4. images ----------------------------------------------------------------
work=$(mktemp -d "$out_dir/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
strip=true
command -v objcopy >/dev/null || { strip=false; say "warning: no objcopy (binutils): binaries keep their debug info"; }
path_env=PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin
changed=()
packages() { awk -v layer="$1" '$1 == layer { printf "%s%s", sep, $2; sep = " " }' "$base/rootfs/packages.txt"; }
image() { # name user ports...: image localhost/ferry/<name> of the binary ferry-<name>
  local name=$1 user=$2; shift 2
  local bin=ferry-$name
  local layers=(--layer "$base/base.tar=images/rootfs.sh: Debian $(packages base)")
  [ "$name" != proxy ] || layers+=(--layer "$base/iptables.tar=images/rootfs.sh: Debian $(packages iptables)")
  # Without DWARF (the release profile keeps line tables: 5x the size);
  # the symbols stay, so backtraces still name functions.
  local exe=$bin_dir/$bin
  if $strip; then
    objcopy --strip-debug "$bin_dir/$bin" "$work/$bin" && chmod 0755 "$work/$bin" && exe=$work/$bin
  fi
  python3 "$here/archive.py" layer "$work/$bin.tar" --file "$exe=/usr/local/bin/$bin" --epoch "$epoch"
  layers+=(--layer "$work/$bin.tar=$bin $version ($revision)")
  local ports=() p
  for p in "$@"; do ports+=(--port "$p"); done
  local result
  result=$(python3 "$here/archive.py" image "$out_dir/$bin.tar" --tag "localhost/ferry/$name:$version" \
    "${layers[@]}" --entrypoint "/usr/local/bin/$bin" --user "$user" --env "$path_env" \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt --workdir / "${ports[@]}" \
    --label "org.opencontainers.image.title=$bin" \
    --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.licenses=Apache-2.0" \
    --label "org.opencontainers.image.description=$bin on Debian bookworm libraries (images/README.md)" \
    --epoch "$epoch")
  [ "$result" = unchanged ] || changed+=("$bin")
}
image proxy 2102:2102 4140/tcp 4143/tcp 4191/tcp
image control 65532:65532
image echo 65532:65532 8080/tcp

# --- 5. check and report -------------------------------------------------------
if [ "$check" = always ] || { [ "$check" = auto ] && [ ${#changed[@]} -gt 0 ]; }; then
  if [ "$(id -u)" = 0 ] && command -v containerd >/dev/null && command -v ctr >/dev/null && command -v runc >/dev/null; then
    "$here/check.sh" "$out_dir" "$version"
  elif [ "$check" = always ]; then
    die "--check needs root and containerd, ctr and runc (apt-get install containerd)"
  else
    say "not checked in containerd (needs root and the containerd package)"
  fi
fi
if [ ${#changed[@]} -gt 0 ]; then
  for bin in ferry-proxy ferry-control ferry-echo; do
    printf 'images: %-32s %4s MB  %s\n' "localhost/ferry/${bin#ferry-}:$version" \
      "$(( ($(stat -c %s "$out_dir/$bin.tar") + 500000) / 1000000 ))" "$out_dir/$bin.tar" >&2
  done
  say "import into a node's containerd with: ctr -n k8s.io images import FILE"
fi
