#!/usr/bin/env bash
# A node for one user, typically a test process (ferry-harness's `Node`):
# waits for the node lock, cleans up what a killed earlier run left, brings
# the node up, then holds it (and the lock) until end of file on stdin;
# then takes it down, checks that nothing is left, and releases the lock.
# The user keeps stdin open for as long as it needs the node: when it exits
# or dies in any way (even SIGKILL), the kernel closes the pipe.
#
# Reports one line per step on stdout: `waiting` (another node holds the
# lock), `locked`, `up RC`, then `down RC` and `clean RC` (verify-clean.sh),
# or `kept` when FERRY_NODE_KEEP is set (the node stays until down.sh or the
# next node). The scripts' output goes to $FERRY_NODE_DIR/{up,down,...}.log,
# the components' logs of the last node to $FERRY_NODE_DIR/last/.
# Start it in its own process group, so a Ctrl-C meant for the user does not
# interrupt the teardown.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/env.sh"
trap '' PIPE INT   # the user may be gone when we report
mkdir -p "$FERRY_NODE_DIR"
exec 9>"$FERRY_NODE_LOCK"
flock -n 9 || { echo waiting; flock 9; }
echo locked
"$HERE/down.sh" >"$FERRY_NODE_DIR/down-before.log" 2>&1
FERRY_NODE_LOCKED=1 "$HERE/up.sh" >"$FERRY_NODE_DIR/up.log" 2>&1
echo "up $?"
read -r _
rm -rf "$FERRY_NODE_DIR/last" && cp -r "$RUN/log" "$FERRY_NODE_DIR/last" 2>/dev/null
if [ -n "${FERRY_NODE_KEEP:-}" ]; then echo kept; exit 0; fi
"$HERE/down.sh" >"$FERRY_NODE_DIR/down.log" 2>&1
echo "down $?"
"$HERE/verify-clean.sh" >"$FERRY_NODE_DIR/verify-clean.log" 2>&1
echo "clean $?"
