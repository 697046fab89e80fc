/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Overlay forwarding state: where every endpoint is, and what every attached veth belongs to.
 * Written by the agent's reconciler, read by the programs. Mirrored in Rust by
 * meshd_ebpf::endpoint; tests/layout.rs checks sizes, offsets and enumerators.
 *
 * Addresses are in network byte order, as they appear in packets.
 */
#ifndef MESHD_ABI_ENDPOINT_H
#define MESHD_ABI_ENDPOINT_H

#include <linux/types.h>

/* Map sizes (max_entries). */
enum md_endpoint_limits {
	MD_ENDPOINTS_MAX = 262144, /* md_endpoints_v2: every endpoint the node knows, cluster-wide */
	MD_IFACES_MAX = 4096,      /* md_ifaces_v2: attached veths on this node */
};

enum md_endpoint_flags {
	MD_EP_LOCAL = 1, /* the endpoint is on this node: deliver to ifindex */
};

enum md_iface_flags {
	MD_IFACE_INTERNAL = 1, /* the veth's network is --internal: nothing leaves the overlay */
};

/* Value of md_endpoints_v2, keyed by the endpoint's IPv4 address (__u32, network order). Overlay
 * subnets never overlap, so the address alone identifies the endpoint cluster-wide. */
struct md_endpoint {
	__u32 vni;     /* the endpoint's network */
	__u32 node_ip; /* underlay address of the node hosting it (remote endpoints) */
	__u32 ifindex; /* host side of its veth (local endpoints) */
	__u8 mac[6];   /* its eth0 MAC (local endpoints) */
	__u8 flags;    /* enum md_endpoint_flags */
	__u8 pad;      /* always 0 */
};

/* Value of md_ifaces_v2, keyed by the ifindex (__u32) of the host side of an attached veth. */
struct md_iface {
	__u32 vni;    /* the network this veth is attached to */
	__u32 ip;     /* the endpoint's own address */
	__u32 subnet; /* the network's address */
	__u32 mask;   /* the network's netmask */
	__u8 mac[6];  /* this host-side veth's MAC: the answer to every ARP request from the container */
	__u8 flags;   /* enum md_iface_flags */
	__u8 pad;     /* always 0 */
	__u32 gateway; /* the network's gateway: the source of a task's flow balanced back to itself */
};

#endif /* MESHD_ABI_ENDPOINT_H */
