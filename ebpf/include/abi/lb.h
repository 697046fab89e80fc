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
	MD_MAGLEV_MAX = 16384,      /* md_maglev_v3: Maglev tables, one per VIP with a backend */
	MD_MAGLEV_TEMPLATE_MAX = 1, /* the inner-map template; each table is made with its own size */
	MD_CT_MAX = 262144,         /* md_ct_v3: published ports' flows (LRU: the least recently used go) */
	MD_FLOW_TABLES_MAX = 4096,  /* md_flows_v1: one flow table per local endpoint (as MD_IFACES_MAX) */
	MD_FLOWS_PER_ENDPOINT = 8192, /* one endpoint's flow table: its balanced flows, two entries each */
};

/* Value of md_services_v1, keyed by the VIP (__u32). */
struct md_service {
	__u32 id;  /* stable service id: its key in md_maglev_v3 */
	__u32 pad; /* always 0 (a Maglev table carries its own size M: see md_maglev_v3) */
};

/* md_maglev_v3 (hash of maps) maps a service id to that service's Maglev table: an array of
 * M + 2 __u32. Element 0 holds M; element 1 a fingerprint of the table (the agent compares it to
 * skip rewriting an unchanged table after a restart); element 2 + s holds the backend address
 * (network order) of slot s. One array per service, sized for it, so thousands of services with many backends cost only
 * what their tables hold; and since the table carries its own size, a new table (of any size)
 * replaces the old one in a single update: a packet sees one table or the other, never a mix. */

/* Key of md_ct_v3: one outside client's flow to a published port (the routing mesh). */
struct md_ct_key {
	__u32 client_ip;
	__u32 vip;         /* the node address the client used */
	__u32 svc;         /* the service's id: a port that moves to another service starts afresh */
	__u16 client_port;
	__u16 port;        /* the published port */
	__u8 proto;
	__u8 pad[3]; /* always 0 */
};

/* Where a Maglev table's parts are (see md_maglev_v3). */
enum md_maglev_layout {
	MD_MAGLEV_SIZE = 0,        /* element holding M */
	MD_MAGLEV_FINGERPRINT = 1, /* element holding the fingerprint */
	MD_MAGLEV_SLOTS = 2,       /* element of slot 0 */
};

enum md_ct_flags {
	MD_CT_FIN = 1, /* the client sent FIN: the entry expires soon after */
};

/* Value of md_ct_v3: the backend the flow is pinned to, and when it was last used. */
struct md_ct_val {
	__u32 backend_ip;
	__u32 flags;     /* enum md_ct_flags */
	__u64 last_seen; /* bpf_ktime_get_ns() of the last packet (updated at most once a second) */
};

/* A backend's reply to a client, as it leaves the backend: the key of the routing mesh's reply
 * tables (abi/mesh.h), filled by reply_key(). */
struct md_rnat_key {
	__u32 backend_ip;
	__u32 client_ip;
	__u16 port;        /* the service port (the reply's source port) */
	__u16 client_port; /* the reply's destination port */
	__u8 proto;
	__u8 pad[3]; /* always 0 */
};

/*
 * The flows of the containers of this node, one table per endpoint (md_flows_v1, a hash of maps
 * keyed by the endpoint's address; the agent creates each table when the endpoint is attached
 * and drops it at detach). A container's flows to a VIP (and to a published port of its own
 * node) are balanced at its veth and kept in its own table, both ways: the flow to the service
 * (which backend it is pinned to) and the reply (what to put back as the reply's source). Each
 * table is an LRU of its own, so a container that opens flows without end evicts only its own:
 * no endpoint can evict another's live flows, and a container is the tenant that pays for its
 * floods.
 */
enum md_flow_dir {
	MD_FLOW_TO_SERVICE = 0, /* the client's packets: addr/port is what it sent to */
	MD_FLOW_REPLY = 1,      /* the backend's replies: addr/port is the backend */
};

/* Key of an endpoint's flow table (the endpoint, the client, is the table's). */
struct md_flow_key {
	__u32 addr;        /* TO_SERVICE: the VIP, or the node address of a published port; REPLY: the backend */
	__u32 svc;         /* TO_SERVICE: the service's id; REPLY: 0 */
	__u16 port;        /* TO_SERVICE: the port the client sent to; REPLY: the backend's port */
	__u16 client_port;
	__u8 proto;
	__u8 dir;          /* enum md_flow_dir */
	__u8 pad[2];       /* always 0 */
};

/* Value of an endpoint's flow table. */
struct md_flow {
	__u32 addr;        /* TO_SERVICE: the backend; REPLY: the source to put back (VIP or node address),
	                    * or 0: a direct flow took the tuple over (lib/flows.h, lb_direct_flow) */
	__u16 port;        /* TO_SERVICE: the backend's port; REPLY: the source port to put back */
	__u16 flags;       /* TO_SERVICE: enum md_ct_flags */
	__u64 last_seen;   /* TO_SERVICE: bpf_ktime_get_ns() of the last packet (refreshed at most once a second) */
};

#endif /* MESHD_ABI_LB_H */
