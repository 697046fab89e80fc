#!/usr/bin/env bash
# Removes what an interrupted test or demo run could not clean up itself (a test killed by
# SIGKILL runs no destructor): namespaces named mt<pid>x<n>-*, the processes in them, the pins of
# test nodes and the tests' temporary directories. Only leftovers of runs whose process is gone:
# several runs (other worktrees, a demo) may share the machine. Touches nothing that is not a
# test's.
set -uo pipefail

# The pid (hex) of the run that made a name like mt1a2bx3-tag, or nothing.
owner_pid() {
  local hex
  hex=$(printf '%s' "$1" | sed -n 's/^mt\([0-9a-f]\+\)x[0-9a-f]\+-.*/\1/p')
  [ -n "$hex" ] && printf '%d' "0x$hex"
}

# True if the run that made the name $1 is gone (or the name is of an older, unparseable form).
is_leftover() {
  local pid
  pid=$(owner_pid "$1")
  [ -z "$pid" ] || [ ! -d "/proc/$pid" ]
}

for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^mt[0-9a-f]+' || true); do
  is_leftover "$ns" || continue
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  [ -n "$pids" ] && kill -9 $pids 2>/dev/null
  ip netns del "$ns" 2>/dev/null
  rm -rf "/etc/netns/$ns" 2>/dev/null
done

tmp=${TMPDIR:-/tmp}/meshd-tests
if [ -d "$tmp" ]; then
  for run in "$tmp"/*; do
    [ -d "$run" ] || continue
    is_leftover "$(basename "$run")" || continue
    # Test nodes pin under /sys/fs/bpf/meshd/<node id>; their IDs are in their state dirs.
    for node_file in "$run"/*/state/node.json; do
      [ -f "$node_file" ] || continue
      id=$(sed -n 's/.*"id": *"\([0-9a-f]\{32\}\)".*/\1/p' "$node_file")
      [ -n "$id" ] && rm -rf "/sys/fs/bpf/meshd/$id"
    done
    # Container runtimes the run started (dockerd, containerd, shims, conmon) name its
    # private directories; their mounts (layers, namespace files) are below it.
    for proc in /proc/[0-9]*; do
      if tr '\0' ' ' < "$proc/cmdline" 2>/dev/null | grep -qF "$run/"; then
        kill -9 "${proc#/proc/}" 2>/dev/null
      fi
    done
    awk -v dir="$run/" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r mnt; do
      umount -l "$mnt" 2>/dev/null
    done
    rm -rf "$run"
  done
fi
# The runtime tests' global leftovers, named after their run: Docker plugin sockets and
# libcni's cached results.
for file in /run/docker/plugins/mt*.sock /var/lib/cni/results/mt*; do
  [ -e "$file" ] || continue
  is_leftover "$(basename "$file")" && rm -f "$file"
done
# Cgroup directories a test made for `--cgroup-root` (empty ones only: rmdir refuses others).
cgroup2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
if [ -n "$cgroup2" ]; then
  for dir in "$cgroup2"/mt*-*; do
    [ -d "$dir" ] || continue
    is_leftover "$(basename "$dir")" && rmdir "$dir" 2>/dev/null
  done
fi
for pins in /sys/fs/bpf/meshd-tests/* /sys/fs/bpf/meshd-demo; do
  [ -e "$pins" ] || continue
  is_leftover "$(basename "$pins")" && rm -rf "$pins"
done
exit 0
