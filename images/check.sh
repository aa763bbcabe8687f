#!/usr/bin/env bash
# Checks the tarballs of images/build.sh in a throwaway containerd (its own
# root, state and socket under /tmp, stopped and removed at the end):
#
#   * each tarball imports, under its localhost/ferry/... name;
#   * proxy: `ferry-proxy --version` and `iptables-save --version` as the
#     image's user (2102); the gateway mode starts and gets ready
#     (`ferry-proxy await`); `ferry-proxy init` as root with NET_ADMIN
#     installs its nat rules (nft) in the container's own network namespace;
#   * control: `ferry-control --version` as the image's user;
#   * echo: the entrypoint serves, `ferry-echo call` from inside the
#     container gets every answer, and SIGTERM stops it with status 0.
#
# Needs root, containerd, ctr and runc (Debian: apt-get install containerd).
# Usage: images/check.sh OUT_DIR VERSION
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: images/check.sh OUT_DIR VERSION" >&2; exit 2; }
out=$1 version=$2
die() { echo "images/check.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (containerd)"
for tool in containerd ctr runc; do command -v $tool >/dev/null || die "$tool is missing (apt-get install containerd)"; done
for bin in ferry-proxy ferry-control ferry-echo; do [ -s "$out/$bin.tar" ] || die "no $out/$bin.tar"; done

dir=$(mktemp -d /tmp/ferry-images-check.XXXXXX)
ns=ferry-check
# The runc shim keeps its sockets under /run/containerd/s whatever the
# config says; remove what this check adds there, nothing else.
run_existed=false; [ -e /run/containerd ] && run_existed=true
shim_existed=false; [ -e /run/containerd/s ] && shim_existed=true
containerd_pid=
ids=()

cleanup() {
  set +e
  if [ -n "$containerd_pid" ]; then
    for id in "${ids[@]}"; do
      c task kill -s KILL "$id" >/dev/null 2>&1
      for _ in 1 2 3 4 5 6 7 8 9 10; do
        c task delete "$id" >/dev/null 2>&1 && break
        c task ls -q 2>/dev/null | grep -x "$id" >/dev/null || break
        sleep 0.2
      done
      c container delete "$id" >/dev/null 2>&1
    done
    kill "$containerd_pid" 2>/dev/null
    wait "$containerd_pid" 2>/dev/null
  fi
  # Shims left behind (normally none): only those serving this containerd.
  for p in /proc/[0-9]*; do
    tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -- "-address $dir/containerd.sock" >/dev/null && kill -KILL "${p#/proc/}" 2>/dev/null
  done
  awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount "$m"; done
  rm -rf "$dir"
  $shim_existed || rmdir /run/containerd/s 2>/dev/null
  $run_existed || rmdir /run/containerd 2>/dev/null
  return 0
}
trap cleanup EXIT

cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
EOF
containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
containerd_pid=$!

c() { timeout 120 ctr --address "$dir/containerd.sock" -n "$ns" "$@"; }
for _ in $(seq 100); do c version >/dev/null 2>&1 && break; sleep 0.1; done
c version >/dev/null 2>&1 || { cat "$dir/containerd.log" >&2; die "containerd did not start"; }

ok() { echo "images: check: $*" >&2; }
fail() { echo "images/check.sh: FAIL: $*" >&2; exit 1; }
# run ID IMAGE ARGS...: a container in the foreground, output on stdout.
run() {
  local id=$1 image=$2; shift 2
  ids+=("$id")
  c run --rm --cgroup "" --fifo-dir "$dir/fifo" --runc-root "$dir/runc" "$image" "$id" "$@" </dev/null
}
# start ID IMAGE [RUN OPTIONS] -- [ARGS...]: a container in the background;
# $started is the pid of its ctr, which exits with the container's status.
started=
start() {
  local id=$1 image=$2; shift 2
  local opts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  ids+=("$id")
  c run --cgroup "" --fifo-dir "$dir/fifo" --runc-root "$dir/runc" "${opts[@]}" "$image" "$id" "$@" \
    </dev/null >"$dir/$id.out" 2>&1 &
  started=$!
}
exec_in() { # ID USER ARGS...
  local id=$1 user=$2; shift 2
  c task exec --fifo-dir "$dir/fifo" --user "$user" --exec-id "x$RANDOM" "$id" "$@" </dev/null
}
uid_of() { # the UID a container's process runs as (from the image's User)
  c container info "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Spec"]["process"]["user"]["uid"])'
}
wait_running() {
  for _ in $(seq 100); do
    c task ls 2>/dev/null | awk -v id="$1" '$1 == id && $3 == "RUNNING" { found = 1 } END { exit !found }' && return 0
    sleep 0.1
  done
  cat "$dir/$1.out" >&2
  fail "container $1 did not start"
}

for name in proxy control echo; do
  c images import "$out/ferry-$name.tar" >/dev/null 2>"$dir/import.err" \
    || { cat "$dir/import.err" >&2; fail "import of ferry-$name.tar"; }
  c images ls -q | grep -x "localhost/ferry/$name:$version" >/dev/null || fail "no localhost/ferry/$name:$version after import"
done
ok "the three tarballs import as localhost/ferry/{proxy,control,echo}:$version"

proxy=localhost/ferry/proxy:$version
got=$(run proxy-version "$proxy" /usr/local/bin/ferry-proxy --version) || fail "ferry-proxy --version: $got"
[ "$got" = "ferry-proxy $version" ] || fail "ferry-proxy --version said: $got"
got=$(run proxy-iptables "$proxy" iptables-save --version) || fail "iptables-save --version: $got"
case $got in *nf_tables*) ;; *) fail "iptables-save is not the nft backend: $got" ;; esac
ip6=$(run proxy-ip6tables "$proxy" ip6tables-restore --version) || fail "ip6tables-restore --version: $ip6"
ok "proxy: $(run proxy-id "$proxy" /usr/local/bin/ferry-proxy --version); $got; $ip6"

start proxy-gateway "$proxy" --cap-add CAP_NET_ADMIN -- \
  /usr/local/bin/ferry-proxy --mode gateway --config /tmp --admin 127.0.0.1:4191 --drain 0s
gw_pid=$started
wait_running proxy-gateway
[ "$(uid_of proxy-gateway)" = 2102 ] || fail "the proxy image does not run as 2102 by default"
exec_in proxy-gateway 2102 /usr/local/bin/ferry-proxy await --admin-port 4191 --timeout 20s >/dev/null 2>&1 \
  || { cat "$dir/proxy-gateway.out" >&2; fail "the gateway in the proxy image did not get ready"; }
exec_in proxy-gateway 0 /usr/local/bin/ferry-proxy init --exclude-inbound-ports 4191 >"$dir/init.out" 2>&1 \
  || { cat "$dir/init.out" >&2; fail "ferry-proxy init as root with NET_ADMIN"; }
rules=$(exec_in proxy-gateway 0 iptables-save -t nat 2>&1) || fail "iptables-save -t nat: $rules"
grep -q -- '-j REDIRECT --to-ports 4143' <<<"$rules" && grep -q -- '--uid-owner 2102' <<<"$rules" \
  || { echo "$rules" >&2; fail "ferry-proxy init did not install its rules"; }
c task kill proxy-gateway >/dev/null
wait "$gw_pid" || fail "the gateway did not exit 0 on SIGTERM"
ok "proxy: gateway mode ready as uid 2102; init as root installed $(grep -c '^-A' <<<"$rules") nat rules (nft) in its netns; exit 0 on SIGTERM"

got=$(run control-version "localhost/ferry/control:$version" /usr/local/bin/ferry-control --version) \
  || fail "ferry-control --version: $got"
ok "control: $got"

start echo "localhost/ferry/echo:$version" --env POD_NAME=echo-check --env POD_NAMESPACE=images \
  --env FERRY_ECHO_DRAIN=1s --
echo_pid=$started
wait_running echo
[ "$(uid_of echo)" = 65532 ] || fail "the echo image does not run as 65532 by default"
for _ in $(seq 50); do
  summary=$(exec_in echo 65532 /usr/local/bin/ferry-echo call http://127.0.0.1:8080/ --count 20 --concurrency 2 2>&1) && break
  sleep 0.1
done
case $summary in *'"ok":20,'*'"by_name":{"echo-check":20}'*) ;; *) cat "$dir/echo.out" >&2; fail "ferry-echo call: $summary" ;; esac
c task kill echo >/dev/null
wait "$echo_pid" || { cat "$dir/echo.out" >&2; fail "ferry-echo did not exit 0 on SIGTERM"; }
ok "echo: entrypoint serves as echo-check (uid 65532); call from inside: $summary; exit 0 on SIGTERM"
