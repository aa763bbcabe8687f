#!/usr/bin/env bash
# Makes the runtime root filesystems of Ferry's images from Debian
# packages, with apt-get and dpkg-deb only (no chroot, no maintainer
# scripts, no root needed):
#
#   OUT/base/      glibc, libgcc, netbase, the CA bundle, os-release,
#                  passwd/group, /tmp: every image's first layer
#   OUT/iptables/  iptables (nft backend) and its libraries, minus what is
#                  in base/: the proxy image's second layer
#   OUT/packages.txt  "layer package version", one per line
#   OUT/epoch      the newest packaged file's time: no file is newer
#
# The mirror is the one the machine's apt uses (its debian.sources or
# sources.list), or FERRY_DEBIAN_MIRROR / FERRY_DEBIAN_SECURITY_MIRROR.
# Used by images/build.sh and by the Containerfiles' rootfs stage, so both
# produce the same files.
#
# Usage: images/rootfs.sh OUT_DIR
set -euo pipefail

SUITE=${FERRY_DEBIAN_SUITE:-bookworm}
BASE_PACKAGES=(libc6 libgcc-s1 netbase)
PROXY_PACKAGES=(iptables)
KEYRING=${FERRY_DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}

die() { echo "rootfs.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: rootfs.sh OUT_DIR"
out=$1
for tool in apt-get dpkg-deb dpkg tar; do
  command -v "$tool" >/dev/null || die "$tool is missing (run this on Debian, or in the Containerfile's rootfs stage)"
done
[ -r "$KEYRING" ] || die "no Debian archive keyring at $KEYRING (apt-get install debian-archive-keyring)"

# --- the mirror ---------------------------------------------------------------
# First URI of a stanza (deb822) or line (one-line format) whose suites are
# not -security, and the same for -security.
mirror_uri() { # $1: "main" or "security"
  local want=$1 file
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -r "$file" ] || continue
    awk -v want="$want" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && uri != "") {
          sec = (suites ~ /-security/)
          if ((want == "security") == sec) { print uri; found = 1; exit }
        }
        types = ""; uri = ""; suites = ""
      }
      /^[ \t]*$/ { flush(); next }
      /^Types:/  { types = $0; sub(/^Types:[ \t]*/, "", types) }
      /^URIs:/   { uri = $2 }
      /^Suites:/ { suites = $0 }
      END { if (!found) flush() }
    ' "$file"
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$file" ] || continue
    awk -v want="$want" '
      $1 == "deb" {
        i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        sec = ($(i + 1) ~ /-security/)
        if ((want == "security") == sec) { print $i; exit }
      }
    ' "$file"
  done
}
main_uri=${FERRY_DEBIAN_MIRROR:-$(mirror_uri main | head -n1)}
security_uri=${FERRY_DEBIAN_SECURITY_MIRROR:-$(mirror_uri security | head -n1)}
[ -n "$main_uri" ] || die "no Debian mirror in the apt configuration; set FERRY_DEBIAN_MIRROR"

# --- a private apt: its own lists, cache and (empty) dpkg status -------------
arch=$(dpkg --print-architecture)
work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/apt/{lists/partial,archives/partial,etc/sources.list.d,etc/preferences.d} "$work/debs"
: >"$work/apt/status"
{
  echo "deb [signed-by=$KEYRING] $main_uri $SUITE main"
  echo "deb [signed-by=$KEYRING] $main_uri $SUITE-updates main"
  [ -z "$security_uri" ] || echo "deb [signed-by=$KEYRING] $security_uri $SUITE-security main"
} >"$work/apt/etc/sources.list"
apt_opts=(
  -o "Dir::State=$work/apt" -o "Dir::State::Lists=$work/apt/lists"
  -o "Dir::State::status=$work/apt/status" -o "Dir::Cache=$work/apt"
  -o "Dir::Cache::Archives=$work/apt/archives"
  -o "Dir::Etc::SourceList=$work/apt/etc/sources.list"
  -o "Dir::Etc::SourceParts=$work/apt/etc/sources.list.d"
  -o "Dir::Etc::PreferencesParts=$work/apt/etc/preferences.d"
  -o "Dir::Etc::Preferences=$work/apt/etc/preferences"
  -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch"
  -o "APT::Install-Recommends=false" -o "APT::Install-Suggests=false"
  -o "Debug::NoLocking=true" -o "Acquire::Languages=none"
)
[ "$(id -u)" != 0 ] || apt_opts+=(-o "APT::Sandbox::User=root")
apt() { apt-get -q "${apt_opts[@]}" "$@"; }

apt update >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; die "apt-get update failed for $main_uri $SUITE (set FERRY_DEBIAN_MIRROR to a Debian mirror)"; }

# Package closures, from apt's own resolution against an empty system.
closure() {
  apt install -s "$@" >"$work/resolve.out" 2>&1 || { cat "$work/resolve.out" >&2; die "cannot resolve $*"; }
  awk '$1 == "Inst" { print $2 }' "$work/resolve.out" | sort -u
}
mapfile -t base < <(closure "${BASE_PACKAGES[@]}")
mapfile -t proxy < <(closure "${BASE_PACKAGES[@]}" "${PROXY_PACKAGES[@]}")
mapfile -t extra < <(comm -13 <(printf '%s\n' "${base[@]}") <(printf '%s\n' "${proxy[@]}"))
[ ${#base[@]} -gt 0 ] && [ ${#extra[@]} -gt 0 ] || die "package resolution came back empty"

# Download the closure, plus two packages taken apart below: the CA
# certificates (without their openssl/perl dependencies: only the bundle is
# needed) and base-files (only os-release).
(cd "$work/debs" && apt download "${proxy[@]}" ca-certificates base-files >"$work/download.log" 2>&1) \
  || { cat "$work/download.log" >&2; die "downloading packages failed"; }
deb_of() { local f; f=$(ls "$work/debs/${1}"_*.deb 2>/dev/null | head -n1); [ -n "$f" ] || die "no .deb for $1"; echo "$f"; }

# --- extract ----------------------------------------------------------------
rm -rf "$out" && mkdir -p "$out"
merged_usr() { # Debian's merged /usr: /bin, /sbin, /lib, /lib64 are links into /usr
  mkdir -p "$1"/usr/{bin,sbin,lib,lib64}
  for d in bin sbin lib lib64; do ln -s "usr/$d" "$1/$d"; done
}
extract() { # $1: tree, $2: package
  local deb; deb=$(deb_of "$2")
  dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink --no-same-owner -C "$1"
  mkdir -p "$1/var/lib/dpkg/status.d"
  dpkg-deb -f "$deb" >"$1/var/lib/dpkg/status.d/$2"
  printf '%s %s %s\n' "$(basename "$1")" "$2" "$(dpkg-deb -f "$deb" Version)" >>"$out/packages.txt"
}
merged_usr "$out/base"
merged_usr "$out/iptables"
for p in "${base[@]}"; do extract "$out/base" "$p"; done
for p in "${extra[@]}"; do extract "$out/iptables" "$p"; done

# Files made below get no newer timestamp than the newest packaged file,
# so the same packages give the same trees (and layer digests).
stamp=$(find "$out/base" "$out/iptables" -type f ! -path '*/status.d/*' -printf '%T@\n' | sort -n | tail -n1)
stamp=${stamp%.*}

# The CA bundle as update-ca-certificates would write it (every Mozilla
# certificate, the package's default selection).
ca=$work/ca && mkdir -p "$ca" "$out/base/etc/ssl/certs"
dpkg-deb --fsys-tarfile "$(deb_of ca-certificates)" | tar -x -C "$ca" ./usr/share/ca-certificates/mozilla
find "$ca/usr/share/ca-certificates/mozilla" -name '*.crt' | LC_ALL=C sort | xargs cat >"$out/base/etc/ssl/certs/ca-certificates.crt"
printf 'base ca-certificates %s (bundle only)\n' "$(dpkg-deb -f "$(deb_of ca-certificates)" Version)" >>"$out/packages.txt"
dpkg-deb --fsys-tarfile "$(deb_of base-files)" | tar -x --keep-directory-symlink --no-same-owner -C "$out/base" \
  ./usr/lib/os-release ./etc/os-release ./etc/debian_version
printf 'base base-files %s (os-release only)\n' "$(dpkg-deb -f "$(deb_of base-files)" Version)" >>"$out/packages.txt"

# --- trim: documentation, manuals, translations, iconv modules -------------
for tree in "$out/base" "$out/iptables"; do
  find "$tree/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
  find "$tree/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$tree"/usr/share/{man,info,lintian,locale,bug} "$tree"/usr/lib/*/gconv
done

# --- what packages would have done in their maintainer scripts --------------
# iptables: the alternatives point at the nft backend (Debian's default).
for cmd in iptables ip6tables; do
  for suffix in "" -restore -save; do
    target=$cmd-nft$suffix
    [ -e "$out/iptables/usr/sbin/$target" ] || die "iptables has no /usr/sbin/$target"
    ln -sf "$target" "$out/iptables/usr/sbin/$cmd$suffix"
  done
done

# Users: the proxy runs as 2102 (its traffic is exempt from interception, so
# no other image may use that UID); control and echo as 65532.
b=$out/base
cat >"$b/etc/passwd" <<'USERS'
root:x:0:0:root:/root:/usr/sbin/nologin
ferry-proxy:x:2102:2102:ferry-proxy:/nonexistent:/usr/sbin/nologin
nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
USERS
cat >"$b/etc/group" <<'GROUPS'
root:x:0:
ferry-proxy:x:2102:
nonroot:x:65532:
nogroup:x:65534:
GROUPS
cat >"$b/etc/nsswitch.conf" <<'NSS'
passwd: files
group: files
shadow: files
hosts: files dns
networks: files
protocols: files
services: files
NSS
mkdir -p "$b/tmp" "$b/root" "$b/run" "$b/var/tmp" "$b/usr/local/bin"
chmod 1777 "$b/tmp" "$b/var/tmp"
chmod 0700 "$b/root"

find "$out" -newermt "@$stamp" -exec touch -h -d "@$stamp" {} +
echo "$stamp" >"$out/epoch"
