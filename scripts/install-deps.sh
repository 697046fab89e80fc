#!/usr/bin/env bash
# Installs what meshd's build, tests and demo need on a Debian machine (run as root).
# Idempotent: packages already present are not reinstalled.
set -euo pipefail

packages=(
  # eBPF build: clang with the BPF target, llvm tools, libbpf's headers, bpftool to inspect.
  clang-19 llvm-19 libbpf-dev bpftool
  # Host C compiler for the map-layout test; kernel UAPI headers.
  gcc libc6-dev linux-libc-dev
  # Namespaces, links and the real clients the tests drive.
  iproute2 util-linux iputils-ping curl dnsutils iperf3 nftables tcpdump procps
  # Encrypted overlay networks: wg configures the WireGuard engine (kernel or userspace);
  # wireguard-go is the engine where the kernel has no WireGuard module.
  wireguard-tools wireguard-go
  # Packet crafting and floods run as an unprivileged user inside container namespaces.
  python3
  # Real servers and load generators for the tests and benchmarks.
  nginx-light wrk dnsmasq-base dnsperf unbound
  # A second DNS client for the fast path's edge cases (tests/tests/dns_fast.rs).
  knot-dnsutils
  # Container runtimes the integration tests drive through meshd-cni and the Docker driver
  # (each test starts its own daemons with private roots), their image (busybox-static), and
  # systemd-analyze for checking meshd's unit.
  docker.io podman containerd runc containernetworking-plugins busybox-static systemd
  # Observability tests: promtool checks /metrics; headless Chromium loads the web view.
  prometheus chromium
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (apt-get, network namespaces, bpffs)" >&2
  exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Packages with daemons (nginx, unbound, prometheus) must not start them: a policy-rc.d that
  # says "no" for the length of the install (Debian's own mechanism), unless one exists already.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$own_policy" -eq 1 ]; then rm -f "$policy"; fi
  # The nginx, unbound, docker.io, containerd and podman packages start host-wide daemons
  # (should one have started anyway): the tests and benchmarks run their own, privately, in
  # namespaces (promtool is used as a checker only; no Prometheus server runs).
  for daemon in nginx unbound prometheus docker containerd podman; do
    if printf '%s\n' "${missing[@]}" | grep -q "^$daemon"; then
      for unit in "$daemon.service" "$daemon.socket"; do
        systemctl disable --now "$unit" >/dev/null 2>&1 || true
      done
      service "$daemon" stop >/dev/null 2>&1 || true
    fi
  done
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo not found: install a Rust toolchain (rustup, Rust 1.85 or newer) first" >&2
  exit 1
fi

# meshd mounts bpffs itself when it is missing; mounting here too lets bpftool see pins at once.
if ! mount | grep -q ' on /sys/fs/bpf type bpf'; then
  mount -t bpf bpf /sys/fs/bpf
fi
