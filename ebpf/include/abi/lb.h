/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Service load balancing: VIPs, their Maglev tables, and the connection tracking that pins a
 * flow to its backend and translates replies back. Mirrored by meshd_ebpf::lb; tests/layout.rs
 * checks the layout. Addresses and ports are in network byte order.
 *
 * Like Swarm's IPVS service, a VIP balances every TCP and UDP port: the destination address is
 * rewritten, the port kept.
 */
#ifndef MESHD_ABI_LB_H
#define MESHD_ABI_LB_H

#include <linux/types.h>

/* Map sizes (max_entries). */
enum md_lb_limits {
	MD_SERVICES_MAX = 16384,    /* md_services_v1: VIPs */
	MD_MAGLEV_MAX = 16384,      /* md_maglev_v2: Maglev tables, one per VIP with a backend */
	MD_MAGLEV_TEMPLATE_MAX = 1, /* the inner-map template; each table is made with its own size */
	MD_CT_MAX = 262144,         /* md_ct_v2: tracked flows (LRU: the least recently used go) */
	MD_RNAT_MAX = 262144,       /* md_rnat_v1: reverse translations, one per balanced flow (LRU) */
};

/* Value of md_services_v1, keyed by the VIP (__u32). */
struct md_service {
	__u32 id;  /* stable service id: its key in md_maglev_v2 */
	__u32 pad; /* always 0 (a Maglev table carries its own size M: see md_maglev_v2) */
};

/* md_maglev_v2 (hash of maps) maps a service id to that service's Maglev table: an array of
 * M + 2 __u32. Element 0 holds M; element 1 a fingerprint of the table (the agent compares it to
 * skip rewriting an unchanged table after a restart); element 2 + s holds the backend address
 * (network order) of slot s. One array per service, sized for it, so thousands of services with many backends cost only
 * what their tables hold; and since the table carries its own size, a new table (of any size)
 * replaces the old one in a single update: a packet sees one table or the other, never a mix. */

/* Key of md_ct_v2: one client flow to a VIP. */
struct md_ct_key {
	__u32 client_ip;
	__u32 vip;
	__u16 client_port;
	__u16 port;
	__u8 proto;
	__u8 pad[3]; /* always 0 */
};

/* Where a Maglev table's parts are (see md_maglev_v2). */
enum md_maglev_layout {
	MD_MAGLEV_SIZE = 0,        /* element holding M */
	MD_MAGLEV_FINGERPRINT = 1, /* element holding the fingerprint */
	MD_MAGLEV_SLOTS = 2,       /* element of slot 0 */
};

enum md_ct_flags {
	MD_CT_FIN = 1, /* the client sent FIN: the entry expires soon after */
};

/* Value of md_ct_v2: the backend the flow is pinned to, and when it was last used. */
struct md_ct_val {
	__u32 backend_ip;
	__u32 flags;     /* enum md_ct_flags */
	__u64 last_seen; /* bpf_ktime_get_ns() of the last packet (updated at most once a second) */
};

/* Key of md_rnat_v1: a backend's reply to a client, as it leaves the backend. */
struct md_rnat_key {
	__u32 backend_ip;
	__u32 client_ip;
	__u16 port;        /* the service port (the reply's source port) */
	__u16 client_port; /* the reply's destination port */
	__u8 proto;
	__u8 pad[3]; /* always 0 */
};

/* Value of md_rnat_v1: the VIP to put back as the reply's source. */
struct md_rnat_val {
	__u32 vip;
	__u32 pad; /* always 0 */
};

#endif /* MESHD_ABI_LB_H */
