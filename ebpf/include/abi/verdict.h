/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Verdict counters: the ABI shared by every meshd eBPF program and the agent.
 *
 * Every decision a program takes about a packet (pass it to the stack, redirect it, drop it) is
 * counted once, per interface, direction and reason, in the per-CPU map md_verdict_v1. The agent
 * (meshd_ebpf::verdict in Rust) mirrors these types; tests/layout.rs compiles this header with the
 * host compiler and checks that sizes, offsets and enum values still agree.
 *
 * This header holds only types: it compiles for the host as well as for -target bpf.
 */
#ifndef MESHD_ABI_VERDICT_H
#define MESHD_ABI_VERDICT_H

#include <linux/types.h>

/*
 * Why a packet got its verdict. The numbers are ABI: never renumber, only append. Codes below 128
 * let the packet go on (to the stack or to another interface); codes from 128 on are drops.
 */
enum md_reason {
	/* 0 is never counted: a zeroed key is a bug, not a reason. */
	MD_REASON_PASS_STACK = 1,     /* handed to the kernel stack unchanged */
	MD_REASON_FORWARD_LOCAL = 2,  /* redirected to an endpoint on this node */
	MD_REASON_FORWARD_TUNNEL = 3, /* sent to the endpoint's node through the VXLAN device */
	MD_REASON_ARP_REPLY = 4,      /* an ARP request answered by the program */
	MD_REASON_DELIVER_TUNNEL = 5, /* received from the tunnel, delivered to a local endpoint */
	MD_REASON_LB_DNAT = 6,        /* to a service VIP: destination rewritten to a backend */
	MD_REASON_LB_RNAT = 7,        /* a backend's reply: source rewritten back to the VIP */
	MD_REASON_MESH_DNAT = 8,      /* to a published port: destination rewritten to a backend */
	MD_REASON_MESH_REPLY = 9,     /* a published flow's reply: source set back, sent to the client */
	MD_REASON_MESH_RETURN = 10,   /* a published flow's reply: tunnelled back to its ingress node */
	MD_REASON_TO_NODE = 11,       /* from the tunnel to the node's own stack (its own clients) */
	MD_REASON_FROM_NODE = 12,     /* from the node's stack into the tunnel, to a remote endpoint */
	MD_REASON_HAIRPIN = 13,       /* a container to a published port of its own node: balanced at its veth */
	MD_REASON_ICMP_RNAT = 14,     /* an ICMP error about a balanced flow, translated back for the client */

	MD_REASON_DROP_MALFORMED = 128,        /* too short to parse */
	MD_REASON_DROP_UNSUPPORTED_L3 = 129,   /* neither IPv4 nor ARP (IPv6 is not supported yet) */
	MD_REASON_DROP_NO_ENDPOINT = 130,      /* to an address of the network with no endpoint */
	MD_REASON_DROP_NETWORK_MISMATCH = 131, /* to an endpoint of another network: isolation */
	MD_REASON_DROP_VNI_MISMATCH = 132,     /* tunnel VNI is not the destination's network */
	MD_REASON_DROP_NO_TUNNEL_KEY = 133,    /* no tunnel metadata on the VXLAN device */
	MD_REASON_DROP_NO_VXLAN = 134,         /* remote endpoint, but no VXLAN device configured */
	MD_REASON_DROP_ARP = 135,              /* ARP that is not a request we answer */
	MD_REASON_DROP_NO_BACKEND = 136,       /* to a service VIP or published port with no healthy backend */
	MD_REASON_DROP_CT_FULL = 137,          /* a flow could not be tracked (its replies would be lost) */
	MD_REASON_DROP_SPOOFED = 138,          /* a source address the sender may not use */
	MD_REASON_DROP_REWRITE = 139,          /* a header rewrite or checksum update failed */
	MD_REASON_DROP_NOT_A_NODE = 140,       /* a tunnel packet whose outer source is no cluster node */
	MD_REASON_DROP_TUNNEL_SPOOFED = 141,   /* out of the tunnel with an inner source that is an
	                                        * endpoint of another node or network, or ours */
	MD_REASON_DROP_TO_NODE = 142,          /* a container opening a connection to the node itself
	                                        * (counted by meshd's nftables table, not a program) */
	MD_REASON_DROP_TUNNEL_PORT = 143,      /* a container sending to the VXLAN data path port anywhere */
	MD_REASON_DROP_NO_FLOW = 144,          /* a TCP packet other than a SYN, of a balanced flow that
	                                        * is not tracked: it creates no state */
	MD_REASON_DROP_NO_FLOW_TABLE = 145,    /* a container without a flow table (not attached yet) */
	MD_REASON_DROP_INTERNAL = 146,         /* a container of an --internal network sending outside
	                                        * the overlay */
	MD_REASON_DROP_NO_TUNNEL = 147,        /* a packet of an encrypted network to a node with no
	                                        * WireGuard tunnel up (or no engine): never in clear */
	MD_REASON_DROP_CLEAR_ENCRYPTED = 148,  /* VXLAN of an encrypted network arriving in clear on
	                                        * the underlay (it only ever comes through WireGuard) */
};

/* Which way the packet was going, seen from the container. */
enum md_dir {
	MD_DIR_FROM_CONTAINER = 0, /* tc ingress on the host side of a container veth */
	MD_DIR_TO_CONTAINER = 1,   /* tc egress on the host side of a container veth */
	MD_DIR_FROM_TUNNEL = 2,    /* tc ingress on the node's VXLAN device */
	MD_DIR_FROM_UNDERLAY = 3,  /* tc ingress on the node's underlay interface (published ports) */
	MD_DIR_TO_TUNNEL = 4,      /* tc egress on the node's VXLAN device (the node's own packets) */
};

/* Map sizes (max_entries). */
enum md_verdict_limits {
	MD_VERDICT_MAX = 16384, /* md_verdict_v1: (interface, reason, direction) keys; LRU beyond */
};

/* Key of md_verdict_v1. Explicit padding: the whole key is hashed, so no byte may be left undefined. */
struct md_verdict_key {
	__u32 ifindex; /* interface the program is attached to, in the node's namespace */
	__u16 reason;  /* enum md_reason */
	__u8 dir;      /* enum md_dir */
	__u8 pad;      /* always 0 */
};

/* Value of md_verdict_v1, one per CPU; the agent sums them. */
struct md_verdict_val {
	__u64 packets;
	__u64 bytes; /* skb->len: layer 2 frame length without FCS */
};

#endif /* MESHD_ABI_VERDICT_H */
