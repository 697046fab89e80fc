/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Monitor events: the ABI of what the programs tell the agent about single packets (drops, new
 * balanced flows) through the ring buffer md_events_v1, and of the in-kernel rate limit in front
 * of it. Mirrored by meshd_ebpf::events in Rust; tests/layout.rs checks sizes, offsets and enums.
 *
 * This header holds only types: it compiles for the host as well as for -target bpf.
 */
#ifndef MESHD_ABI_EVENTS_H
#define MESHD_ABI_EVENTS_H

#include <linux/types.h>

/* Map sizes (max_entries). */
enum md_events_limits {
	MD_EVENTS_RING_BYTES = 262144, /* md_events_v1: ring buffer bytes (a power of two): ~6,500 events */
	MD_EVENT_CONFIG_MAX = 1,       /* md_event_config_v1: an array of one, key 0 */
	MD_EVENT_BUCKETS_MAX = 2,      /* md_event_bucket_v1: one token bucket per event type (type - 1) */
};

/* What an event is about. Also the bit of md_event_config.mask that turns the type on. */
enum md_event_type {
	MD_EVENT_DROP = 1, /* a packet dropped by drop() (lib/verdict.h) */
	MD_EVENT_FLOW = 2, /* a new balanced flow: conntrack picked a backend (lib/conntrack.h) */
};

/* md_event.dir of a flow event: the conntrack helper does not know which program called it; the
 * agent knows the interface. */
enum md_event_dir {
	MD_EVENT_DIR_UNKNOWN = 255,
};

/* md_event.reason of a flow event: where the flow was balanced. */
enum md_event_flow_origin {
	MD_EVENT_FLOW_PACKET = 0, /* its first packet, by a tc program (conntrack, a flow table) */
	MD_EVENT_FLOW_SOCKET = 1, /* a container's connect(), by sock.bpf.c: no client port yet */
};

/*
 * One event, written by the program into the ring buffer. Addresses and ports in network order;
 * a packet that is not IPv4 has zero addresses, one that is not TCP or UDP zero ports.
 */
struct md_event {
	__u64 time_ns;   /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 ifindex;   /* interface the program runs on, in the node's namespace (a socket's flow:
	                  * the host side of the container's veth on the VIP's network) */
	__u32 len;       /* skb->len (0 for a socket's flow) */
	__u32 saddr;     /* IPv4 source */
	__u32 daddr;     /* IPv4 destination (a flow: the VIP, or the node address of a published port) */
	__u32 backend;   /* a flow: the backend conntrack chose; a drop: 0 */
	__u16 sport;     /* TCP/UDP source port */
	__u16 dport;     /* TCP/UDP destination port */
	__u16 reason;    /* enum md_reason of a drop; enum md_event_flow_origin of a flow */
	__u8 dir;        /* enum md_dir, or MD_EVENT_DIR_UNKNOWN */
	__u8 proto;      /* IP protocol number, 0 if not IPv4 */
	__u8 type;       /* enum md_event_type */
	__u8 pad[3];     /* always 0 */
};

/*
 * Written by the agent, read by every program. mask: which md_event_type bits are on (0: the
 * programs emit nothing and pay one array lookup per drop or new flow). The rate limit is a token
 * bucket per CPU and type, counted in nanoseconds of credit: an event costs interval_ns, credit
 * grows with time up to burst_ns.
 */
struct md_event_config {
	__u32 mask;
	__u32 pad;           /* always 0 */
	__u64 interval_ns;   /* credit one event costs: 1e9 / (events per second per CPU) */
	__u64 burst_ns;      /* most credit a CPU can save up: burst = burst_ns / interval_ns events */
};

/* Token bucket and its counters, one per CPU and event type (index type - 1). */
struct md_event_bucket {
	__u64 last_ns;    /* bpf_ktime_get_ns() of the last refill */
	__u64 credit_ns;  /* saved credit */
	__u64 emitted;    /* events written into the ring buffer */
	__u64 suppressed; /* events not sent: over the rate */
	__u64 lost;       /* events not sent: the ring buffer was full (the agent is behind) */
};

#endif /* MESHD_ABI_EVENTS_H */
