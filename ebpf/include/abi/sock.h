/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Socket-level load balancing for the node's containers (sock.bpf.c): a container's connect()
 * (or sendmsg()) to a VIP of one of its networks is pointed at a backend before the first
 * packet, so its packets carry the backend's address from the start and no packet of the flow
 * is translated. Mirrored by meshd_ebpf::sock; tests/layout.rs checks the layout.
 *
 * The programs run for every socket of the machine (cgroup v2 root); a container is recognised
 * by its network namespace's cookie, which the agent reads when it attaches the namespace.
 */
#ifndef MESHD_ABI_SOCK_H
#define MESHD_ABI_SOCK_H

#include <linux/types.h>

enum md_sock_limits {
	MD_SOCK_CLIENTS_MAX = 4096, /* md_sock_clients_v1: attached namespaces (as MD_IFACES_MAX) */
	MD_SOCK_CLIENT_NETS = 4,    /* networks per namespace balanced at the socket; others by tc */
};

/* One network a namespace is attached to: its VIPs come from this subnet. */
struct md_sock_net {
	__u32 subnet;  /* network order */
	__u32 mask;    /* network order */
	__u32 addr;    /* the namespace's address on it (network order): a flow event's client */
	__u32 ifindex; /* the host side of its veth there: a flow event's interface */
};

/* Value of md_sock_clients_v1 (key: the namespace's cookie, bpf_get_netns_cookie()). */
struct md_sock_client {
	__u32 count; /* nets[0..count) are used, count <= MD_SOCK_CLIENT_NETS */
	__u32 pad;   /* always 0 */
	struct md_sock_net nets[MD_SOCK_CLIENT_NETS];
};

#endif /* MESHD_ABI_SOCK_H */
