/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The overlay fast path (lib/overlay.h): VXLAN encapsulated and decapsulated by the programs,
 * without the node's VXLAN device on the way. Written by the agent (md_overlay_v1) and by the
 * programs (md_overlay_hops_v1). Mirrored in Rust by meshd_ebpf::overlay; tests/layout.rs checks
 * sizes, offsets and enumerators.
 */
#ifndef MESHD_ABI_OVERLAY_H
#define MESHD_ABI_OVERLAY_H

#include <linux/types.h>

/* Map sizes (max_entries). */
enum md_overlay_limits {
	MD_OVERLAY_MAX = 1,          /* md_overlay_v1: one entry, key 0 */
	MD_OVERLAY_HOPS_MAX = 16384, /* md_overlay_hops_v1: one per node this node sends to (LRU) */
};

enum md_overlay_flags {
	MD_OVERLAY_FAST_PATH = 1, /* encapsulate/decapsulate in the programs (--overlay-fast-path on) */
};

/* Value of md_overlay_v1 (an array of one, key 0). All zero (the fast path off) until the agent
 * writes it: every packet then takes the VXLAN device. */
struct md_overlay_config {
	__u32 flags;            /* enum md_overlay_flags */
	__u32 underlay_ifindex; /* the interface holding the advertise address */
	__u32 underlay_mtu;     /* its MTU: a packet that would not fit takes the VXLAN device */
	__u32 pad;              /* always 0 */
};

/* Value of md_overlay_hops_v1, keyed by a node's underlay address (__u32, network order): how to
 * reach it on the wire, as a route lookup (bpf_fib_lookup) last found it. Written by the programs
 * only; looked up again when older than MD_OVERLAY_HOP_RECHECK_NS (lib/overlay.h). */
struct md_overlay_hop {
	__u8 dmac[6];      /* the next hop's MAC: the node's own on a shared segment, else a router's */
	__u8 smac[6];      /* the underlay interface's MAC */
	__u32 ifindex;     /* the interface the route leaves by */
	__u64 checked_ns;  /* bpf_ktime_get_ns() of the route lookup */
};

#endif /* MESHD_ABI_OVERLAY_H */
