#!/usr/bin/env bash
# Removes what an interrupted test or demo run could not clean up itself (a test killed by
# SIGKILL runs no destructor): namespaces named mt<hex>-*, the processes in them, the pins of
# test nodes and the tests' temporary directories. Touches nothing that is not a test's.
set -uo pipefail

for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^mt[0-9a-f]+-' || true); do
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  [ -n "$pids" ] && kill -9 $pids 2>/dev/null
  ip netns del "$ns" 2>/dev/null
done

tmp=${TMPDIR:-/tmp}/meshd-tests
if [ -d "$tmp" ]; then
  # Test nodes pin under /sys/fs/bpf/meshd/<node id>; their IDs are in their state dirs.
  for node_file in "$tmp"/*/*/state/node.json; do
    [ -f "$node_file" ] || continue
    id=$(sed -n 's/.*"id": *"\([0-9a-f]\{32\}\)".*/\1/p' "$node_file")
    [ -n "$id" ] && rm -rf "/sys/fs/bpf/meshd/$id"
  done
  rm -rf "$tmp"
fi
rm -rf /sys/fs/bpf/meshd-tests /sys/fs/bpf/meshd-demo
rm -rf /etc/netns/mt[0-9a-f]*-* 2>/dev/null
exit 0
