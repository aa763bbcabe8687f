#!/usr/bin/env bash
# After down.sh: lists anything of a node still on this machine, and exits 1
# if there is any. Compares with the baseline up.sh recorded (sysctls,
# nf_tables tables, host directories that existed before).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/env.sh"
left=0
report() {  # report WHAT TEXT : prints TEXT under WHAT when it is not empty
  [ -n "$2" ] || return 0
  echo "left: $1"; printf '%s\n' "$2" | sed 's/^/  /'
  left=1
}

procs=$(for p in $(grep -laF -- "$FERRY_NODE_DIR/" /proc/[0-9]*/cmdline 2>/dev/null); do
  pid=${p#/proc/}; pid=${pid%/cmdline}
  cmd=$(tr '\0' ' ' <"$p" 2>/dev/null) && echo "$pid $cmd"
done | grep -v ' verify-clean.sh')
report processes "$procs"
report mounts "$(findmnt -rn -o TARGET | grep -E "^($FERRY_NODE_DIR/|/run/netns/cni-|/run/containerd|/var/lib/kubelet)")"
report "network namespaces" "$(ls -d /run/netns/cni-* 2>/dev/null)"
report links "$(ip -br link show | awk -v a="$NODE_BR" -v b="$CNI_BR" '$1 == a || $1 == b || $1 ~ /^veth/')"
pattern="KUBE-|CNI-|$CONTAIN_CHAIN|$CNI_BR|$NODE_BR|${POD_CIDR%.*}\\.|${SVC_IP_API%.*}\\."
report iptables "$( (iptables-save; ip6tables-save) 2>/dev/null | grep -E -- "$pattern")"
report cgroups "$(ls -d /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods 2>/dev/null)"
report "run directory" "$(ls -d "$RUN" 2>/dev/null)"
if [ -f "$BASELINE" ]; then
  report "nf_tables tables" "$(nft list tables 2>/dev/null | while read -r t; do
    grep -qx "nft $t" "$BASELINE" || echo "$t"; done)"
  report "host paths" "$(for p in $HOST_PATHS; do
    [ -e "$p" ] && ! grep -qx "path $p" "$BASELINE" && echo "$p"; done)"
  report sysctls "$(sed -n 's/^sysctl //p' "$BASELINE" | while IFS='=' read -r k v; do
    now=$(sysctl -n "$k" 2>/dev/null); [ "$now" = "$v" ] || echo "$k=$now (was $v)"; done)"
else
  echo "no baseline ($BASELINE): sysctls, nf_tables tables and host paths not compared"
fi
[ "$left" = 0 ] && echo "clean"
exit "$left"
