/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encrypted overlay networks (`--opt encrypted`): which networks must cross WireGuard, to which
 * peers a tunnel is up, and how the kernel is told to route a VXLAN packet into the node's
 * WireGuard interface. Written by the agent (dataplane/src/encryption/), read by the programs.
 * Mirrored in Rust by meshd_ebpf::encrypt; tests/layout.rs checks sizes, offsets and enumerators.
 *
 * Addresses are in network byte order, as they appear in packets.
 */
#ifndef MESHD_ABI_ENCRYPT_H
#define MESHD_ABI_ENCRYPT_H

#include <linux/types.h>

/* Map sizes (max_entries). */
enum md_encrypt_limits {
	MD_ENCRYPT_MAX = 1,              /* md_encrypt_v1: one entry, key 0 */
	MD_ENCRYPTED_NETS_MAX = 4096,    /* md_encrypted_nets_v1: the encrypted networks, by VNI */
	MD_TUNNELS_MAX = 16384,          /* md_tunnels_v1: one per peer node (as md_nodes_v1) */
};

enum md_tunnel_flags {
	MD_TUNNEL_READY = 1, /* the peer is configured in the node's WireGuard engine */
};

/* Value of md_encrypt_v1 (an array of one, key 0). All zero until the agent has an engine: a
 * packet of an encrypted network then has no way out (fail closed). */
struct md_encrypt_config {
	__u32 wg_ifindex; /* the node's WireGuard interface; 0: no engine */
	__u32 table;      /* the routing table whose default route is that interface */
	__u32 mark;       /* skb->mark that selects the table (the agent's `ip rule fwmark`) */
	__u32 pad;        /* always 0 */
};

/* Value of md_encrypted_nets_v1, keyed by VNI (__u32, host order as in the tunnel key): present
 * means the network is encrypted. */
struct md_encrypted_net {
	__u32 flags; /* always 0 for now */
	__u32 pad;   /* always 0 */
};

/* Value of md_tunnels_v1, keyed by a peer node's underlay address (__u32, network order). */
struct md_tunnel {
	__u32 flags; /* enum md_tunnel_flags */
	__u32 pad;   /* always 0 */
};

#endif /* MESHD_ABI_ENCRYPT_H */
