/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The routing mesh: published ports on the node's own addresses, and the two tables that carry a
 * published flow's replies back the way it came. Mirrored by meshd_ebpf::mesh; tests/layout.rs
 * checks the layout. Addresses and ports are in network byte order.
 *
 * A published flow keeps the client's address all the way to the backend (no SNAT). So the
 * replies must find their own way back:
 *   - the ingress node (where the client's packet arrived) remembers, per (backend, client) flow,
 *     which of its addresses and ports the client used: md_mesh_rnat_v2;
 *   - the backend's node, when the flow came through the tunnel, remembers which node it came
 *     from, and sends the replies back there through the tunnel: md_mesh_return_v2.
 * Both are keyed by the reply as it leaves the backend (struct md_rnat_key of abi/lb.h). An entry
 * idle for longer than the node's flow timeout (md_node_config.ct_idle_ns) is no longer used:
 * a stale way back never carries a new flow's replies.
 */
#ifndef MESHD_ABI_MESH_H
#define MESHD_ABI_MESH_H

#include <linux/types.h>

/* Map sizes (max_entries). */
enum md_mesh_limits {
	MD_FRONTENDS_MAX = 16384,    /* md_frontends_v2: published ports on this node's addresses */
	MD_MESH_RNAT_MAX = 131072,   /* md_mesh_rnat_v2: flows that entered here (LRU, idle timeout) */
	MD_MESH_RETURN_MAX = 131072, /* md_mesh_return_v2: flows brought in by other nodes (LRU, idle timeout) */
	MD_SOCK_TABLES_MAX = 4097,   /* md_sock_rnat_v3: a socket table per namespace (MD_SOCK_CLIENTS_MAX, and the node's own) */
	MD_SOCK_RNAT_PER_NETNS = 8192, /* one namespace's socket table (LRU): two entries per socket */
};

/* Key of md_frontends_v2: a published port on one of this node's addresses. A port published
 * with address= has entries only for the node addresses it names (127.0.0.1: the node's own
 * clients only); the others have none, and their packets go on to the stack untouched. */
struct md_frontend_key {
	__u32 addr;  /* a local address of the node (also 127.0.0.1 for the node's own clients) */
	__u16 port;  /* the published port */
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;    /* always 0 */
};

enum md_frontend_flags {
	/* mode=host: only this node's own tasks serve the port (`table` holds only them), never a
	 * task behind the tunnel. The agent writes the entry only while a local task is healthy. */
	MD_FRONTEND_LOCAL = 1,
};

/* Value of md_frontends_v2: the service behind the port, and the Maglev table to pick from. */
struct md_frontend {
	__u32 vip;          /* the service's VIP: its key in md_services_v1 (the service exists) */
	__u16 target_port;  /* the port the backends listen on */
	__u16 flags;        /* enum md_frontend_flags */
	__u32 table;        /* key in md_maglev_v3: the service's id (ingress), or the id of its
			     * table of this node's tasks (MD_FRONTEND_LOCAL) */
};

/* Value of md_mesh_rnat_v2 (on the ingress node): what the client sent to, and the way back. */
struct md_mesh_nat {
	__u32 addr;        /* the node address the client used: the replies' source */
	__u32 ifindex;     /* the interface the client's packets arrived on: where replies leave */
	__u16 port;        /* the published port: the replies' source port */
	__u8 peer_mac[6];  /* the L2 hop the client's packets came from (the client or its router) */
	__u8 local_mac[6]; /* the MAC they were sent to (this node's interface) */
	__u16 pad;         /* always 0 */
	__u64 last_seen;   /* bpf_ktime_get_ns() of the client's last packet (refreshed at most once a second) */
};

/* Value of md_mesh_return_v2 (on the backend's node): where the flow came in. */
struct md_mesh_return {
	__u32 node_ip;   /* underlay address of the ingress node */
	__u32 vni;       /* the backend's network: the tunnel key back */
	__u64 last_seen; /* as md_mesh_nat's */
};

/*
 * The sockets the socket programs translated (sock.bpf.c: the node's own to a published port, a
 * container's to a VIP), in one LRU table per network namespace: md_sock_rnat_v3, a hash of maps
 * keyed by the namespace's cookie. One table per namespace, as the containers' flow tables are
 * one per endpoint (abi/lb.h): a namespace that translates many sockets (or one socket
 * connect()ed to every port of a VIP) pushes only its own entries out, never another's. A
 * socket has two kinds of entry in its namespace's table:
 */
enum md_sock_entry {
	MD_SOCK_TRANSLATION = 0, /* (cookie, backend) -> what the socket asked for: the replies' source */
	MD_SOCK_LAST = 1,        /* (cookie, no backend) -> its last backend: what sock_release frees */
};

/* Key of a socket table: a socket, and the backend it was sent to (replies come from there). */
struct md_sock_key {
	__u64 cookie;       /* bpf_get_socket_cookie() */
	__u32 backend_ip;   /* MD_SOCK_LAST: 0 */
	__u16 backend_port; /* MD_SOCK_LAST: 0 */
	__u16 kind;         /* enum md_sock_entry */
};

/* Value of a socket table. MD_SOCK_TRANSLATION: the address the socket asked for, shown as the
 * replies' source. MD_SOCK_LAST: the backend of the socket's last translation. */
struct md_sock_nat {
	__u32 addr;
	__u16 port;
	__u16 pad; /* always 0 */
};

#endif /* MESHD_ABI_MESH_H */
