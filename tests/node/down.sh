#!/usr/bin/env bash
# Stops the node of up.sh and undoes every change it made to this machine:
# processes (by recorded PID), containers and their shims (only those of our
# containerd socket), mounts, network namespaces, cgroups, links, iptables
# chains and rules, sysctls (back to the baseline up.sh recorded), host
# directories the components created, and $RUN itself. Safe to run at any
# time: twice, after a partial start, after a crash or a killed test.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/env.sh"
T0=$(date +%s.%N)
mark() { awk -v a="$T0" -v b="$(date +%s.%N)" -v m="$*" 'BEGIN { printf "[%5.1fs] %s\n", b - a, m }'; }
[ "$(id -u)" -eq 0 ] || { echo "down.sh: needs root" >&2; exit 1; }
ours() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null | grep -F -- "$2" >/dev/null; }
# Running, not a zombie: our daemons' parent is gone, and whoever inherits
# them may reap them late.
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

stop() {  # stop NAME... : TERM the recorded PIDs together, KILL after 3 s
  # (nothing needs a graceful stop: every bit of state goes with $RUN)
  local n f pid names=() pids=()
  for n in "$@"; do
    f=$RUN/pids/$n.pid
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    # A recorded PID is ours only while its command line names $RUN (PIDs
    # are reused after a crash).
    if ours "$pid" "$RUN" && kill "$pid" 2>/dev/null; then names+=("$n"); pids+=("$pid"); fi
    rm -f "$f"
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  local i running
  for _ in $(seq 15); do
    running=""
    for pid in "${pids[@]}"; do alive "$pid" && running=1; done
    [ -n "$running" ] || break
    sleep 0.2
  done
  for i in "${!pids[@]}"; do
    alive "${pids[$i]}" || continue
    kill -9 "${pids[$i]}" && echo "killed ${names[$i]}: still running 3 s after SIGTERM"
  done
  mark "stopped ${names[*]}"
}

# 0. A start still in progress (up.sh in another shell) would go on.
if [ -f "$RUN/up.pid" ] && ours "$(cat "$RUN/up.pid")" up.sh; then
  kill -9 "$(cat "$RUN/up.pid")" && echo "stopped up.sh (pid $(cat "$RUN/up.pid"))"
fi
if [ -d "$RUN" ]; then
  # 1. Every component but containerd, together (the kubelet must not
  # restart what we remove); then the containers, through containerd. No
  # graceful pod deletion: kubelet 1.20 takes ~30 s to finalize a pod, and
  # nothing a pod leaves outlives its network namespace and $RUN.
  stop dns-feeder dnsmasq kube-proxy kubelet kube-scheduler kube-controller-manager \
    kube-apiserver etcd
  if [ -f "$RUN/pids/containerd.pid" ] && ctr version >/dev/null 2>&1; then
    tasks=$(ctr tasks ls -q 2>/dev/null)
    for t in $tasks; do ctr tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
    for t in $tasks; do ctr tasks delete -f "$t" >/dev/null 2>&1; done
    for c in $(ctr containers ls -q 2>/dev/null); do ctr containers rm "$c" >/dev/null 2>&1; done
    mark "containers removed"
  fi
  stop containerd
fi
# Shims that outlived containerd (after a crash): only those serving *our*
# socket; first their children (a container's init: its death ends its PID
# namespace), then the shim.
for p in $(grep -laF -- "$CONTAINERD_SOCK" /proc/[0-9]*/cmdline 2>/dev/null); do
  pid=${p#/proc/}; pid=${pid%/cmdline}
  ours "$pid" "-address $CONTAINERD_SOCK" || continue
  for c in $(cat "/proc/$pid"/task/*/children 2>/dev/null); do kill -9 "$c" 2>/dev/null; done
  kill -9 "$pid" 2>/dev/null && echo "killed shim $pid"
done
# 2. Mounts under $RUN (rootfs, shm, kubelet volumes, the kubelet's root
# bind mount), deepest first, and containerd's network namespaces.
findmnt -rn -o TARGET | grep "^$FERRY_NODE_DIR/" | sort -r | while read -r m; do
  umount -l "$m" 2>/dev/null && echo "unmounted $m"
done
# containerd bind-mounts /run/netns onto itself (shared propagation); the
# pods' nsfs mounts can sit under that bind mount, where `umount` calls them
# "not mounted" and `rm` finds them busy. Lift the bind mounts first.
if compgen -G '/run/netns/cni-*' >/dev/null; then
  while mountpoint -q /run/netns && umount /run/netns 2>/dev/null; do :; done
fi
for n in /run/netns/cni-*; do
  [ -e "$n" ] || continue
  while umount "$n" 2>/dev/null; do :; done
  rm -f "$n" && echo "removed netns $n"
done

mark "mounts and network namespaces"

# 3. Pod cgroups (cgroupfs driver: kubepods/ in each v1 hierarchy).
for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
  [ -d "$h/kubepods" ] || continue
  find "$h/kubepods" -depth -type d -exec rmdir {} + 2>/dev/null
  [ ! -d "$h/kubepods" ] || echo "down.sh: cgroup left: $h/kubepods" >&2
done

# 4. Links, then iptables: the rules that jump to our chains (KUBE- of
# kubelet and kube-proxy, CNI-, ours), then the chains; nf_tables tables
# that did not exist before up.sh and are now empty.
# Pod ends of veth pairs whose network namespace something still holds.
for l in $(ip -o link show master "$CNI_BR" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
  ip link del "$l" 2>/dev/null && echo "removed link $l"
done
ip link del "$CNI_BR" 2>/dev/null && echo "removed link $CNI_BR"
ip link del "$NODE_BR" 2>/dev/null && echo "removed link $NODE_BR"
# One iptables-restore per family: delete the jumps, flush, delete chains.
for v in "" 6; do
  rules=$(ip${v}tables-save 2>/dev/null) || continue
  echo "$rules" | awk -v re="^(KUBE-|CNI-|$CONTAIN_CHAIN)" '
    /^\*/ { table = $0; nd = 0; nc = 0; next }
    /^:/ { c = substr($1, 2); if (c ~ re) chains[++nc] = c; next }
    /^-A / && $2 !~ re {
      for (i = 3; i < NF; i++)
        if (($i == "-j" || $i == "-g") && $(i + 1) ~ re) { sub(/^-A /, "-D "); dels[++nd] = $0; break }
      next
    }
    /^COMMIT/ && nd + nc > 0 {
      print table
      for (i = 1; i <= nd; i++) print dels[i]
      for (i = 1; i <= nc; i++) print "-F " chains[i]
      for (i = 1; i <= nc; i++) print "-X " chains[i]
      print "COMMIT"
    }' | ip${v}tables-restore --noflush
done
if command -v nft >/dev/null; then
  for fam in ip ip6; do
    for t in filter nat mangle raw; do
      ! grep -qx "nft table $fam $t" "$BASELINE" 2>/dev/null || continue
      nft list table "$fam" "$t" >/dev/null 2>&1 || continue
      # only when no chain holds a rule any more
      if ! nft list table "$fam" "$t" | grep -vE '^\s*(table|chain|type|policy|\}|$)' >/dev/null; then
        nft delete table "$fam" "$t"
      fi
    done
  done
fi

mark "links, cgroups and iptables"

# 5. Sysctls back to the baseline.
if [ -f "$BASELINE" ]; then
  sed -n 's/^sysctl //p' "$BASELINE" | while IFS='=' read -r k v; do
    [ "$(sysctl -n "$k" 2>/dev/null)" = "$v" ] || sysctl -qw "$k=$v"
  done
fi

# 6. Host directories made by the components (kubelet 1.20 hard-wires
# /var/lib/kubelet/device-plugins and /var/log/pods; containerd's shims
# /run/containerd; containerd bind-mounts /run/netns onto itself; go-cni
# caches in /var/lib/cni), unless they existed before up.sh.
for p in $HOST_PATHS; do
  [ -e "$p" ] || continue
  grep -qx "path $p" "$BASELINE" 2>/dev/null && continue
  if [ "$p" = /run/netns ]; then
    # shared with `ip netns` (other tests): only when empty
    [ -z "$(ls -A /run/netns)" ] || continue
    while mountpoint -q /run/netns && umount /run/netns 2>/dev/null; do :; done
    rmdir /run/netns 2>/dev/null || continue
  else
    rm -rf "$p"
  fi
  echo "removed $p"
done
if [ -d "$RUN" ]; then
  stop lock   # up.sh's lock holder, when up.sh took the lock itself
  rm -rf "$RUN"
  mark "down"
fi
