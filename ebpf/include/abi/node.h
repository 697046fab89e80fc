/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Node-wide settings: what every program needs to know about the node it runs on. Written by the
 * agent when it starts the overlay, read by the programs. Mirrored in Rust by meshd_ebpf::node;
 * tests/layout.rs checks sizes and offsets.
 *
 * Addresses are in network byte order, as they appear in packets.
 */
#ifndef MESHD_ABI_NODE_H
#define MESHD_ABI_NODE_H

#include <linux/types.h>

/* Map sizes (max_entries). */
enum md_node_limits {
	MD_CONFIG_MAX = 1, /* md_config_v4: one entry, key 0 */
	MD_NODES_MAX = 16384, /* md_nodes_v1: the cluster's nodes, by underlay address */
	MD_NODE_HOPS_MAX = 16384, /* md_node_hops_v1: the L2 hop each node's tunnel packets came through */
};

enum md_node_flags {
	MD_NODE_MEMBER = 1, /* a current member of the cluster: its tunnel packets are accepted */
};

/* Value of md_config_v4 (an array of one, key 0): node-wide settings. */
struct md_node_config {
	__u32 vxlan_ifindex; /* the node's collect-metadata VXLAN device; 0 until it exists */
	__u32 node_ip;       /* the node's underlay (advertise) address */
	__u64 ct_idle_ns;    /* a tracked flow idle for longer is balanced afresh; 0: never */
	__u64 netns_cookie;  /* the node's network namespace: socket programs act only inside it */
	__u16 vxlan_port;    /* the cluster's data path (VXLAN) port, network order; 0 until
			      * written, read as 4789 (meshd --data-path-port) */
	__u16 pad16;         /* always 0 */
	__u32 pad;           /* always 0 */
};

/* Value of md_nodes_v1, keyed by a node's underlay (advertise) address (__u32, network order).
 * Written by the agent's reconciler from the cluster state's node records (every node that has
 * not left, this one included); the tunnel accepts encapsulated packets only from these
 * addresses, and an inner source that is an endpoint only from the node that hosts it. */
struct md_node {
	__u32 flags; /* enum md_node_flags */
	__u32 pad;   /* always 0 */
};

/* Value of md_node_hops_v1, keyed by a node's underlay address: the MAC its tunnel packets last
 * came from, once the kernel's routing confirmed it is the hop a reply to that node takes (the
 * node's own MAC on a shared segment, its router's otherwise). Written by the underlay program
 * only, so that most packets need a lookup and not a route lookup. LRU. */
struct md_node_hop {
	__u8 mac[6];
	__u8 pad[2]; /* always 0 */
};

#endif /* MESHD_ABI_NODE_H */
