// SPDX-License-Identifier: GPL-2.0
/*
 * Load balancing at the socket, before the first packet, as Cilium's socket LB does: a socket's
 * destination is pointed at a backend once, at connect() (or at each sendmsg() of an
 * unconnected UDP socket), so the flow's packets carry the backend's address from the start and
 * none of them is translated. Two kinds of socket are balanced:
 *   - the node's own clients (`curl localhost:PORT`, or the node's own address) to a published
 *     port: their packets never cross the underlay interface, where the routing mesh works;
 *   - the node's containers to a VIP of one of their networks (abi/sock.h): the veth program's
 *     per-packet translation (lib/lb.h) is then left for what the socket hooks cannot see (a
 *     namespace not known yet, more networks than MD_SOCK_CLIENT_NETS, raw sockets).
 * The programs are attached to the root of the cgroup v2 hierarchy, so they run for every
 * process of the machine: each one acts only in the network namespaces of the node that loaded
 * it (md_config_v4.netns_cookie, md_sock_clients_v1), and remembers what it translated in that
 * namespace's own table (md_sock_rnat_v3): no namespace can push another's entries out.
 *
 *   connect4    TCP connect() / UDP connect() to a published port or a VIP -> to a backend's
 *               address (and a published port's target port); Maglev slot chosen by the socket:
 *               one socket, one backend
 *   sendmsg4    the same for each datagram of the node's unconnected UDP sockets (a
 *               container's are left to the veth program: see to_backend)
 *   recvmsg4    a datagram from that backend shows the address the socket asked for as source
 *   getpeername4  a connected socket shows the address it asked for as its peer
 *   sock_release  a closed socket's translation is freed (its MD_SOCK_LAST entry finds it)
 * Remote backends are reached through the overlay (a container's) or the overlay route the
 * agent adds on the VXLAN device (the node's); the replies to the node's own sockets come back
 * to the node's own address (vxlan.bpf.c, to_outside).
 */
#include <linux/in.h>
#include "lib/common.h"
#include "lib/node.h"
#include "lib/maglev.h"
#include "lib/mesh.h"
#include "lib/events.h"
#include "abi/sock.h"

/* One namespace's socket table (the template of md_sock_rnat_v3's values; the agent creates each
 * table with exactly these parameters, so every table fits). Sizes rather than types: clang
 * emits only a forward declaration for a struct reached through an inner-map template. LRU:
 * closed sockets age out, and a full table evicts only its own namespace's entries. */
struct md_sock_table {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MD_SOCK_RNAT_PER_NETNS);
	__uint(key_size, sizeof(struct md_sock_key));
	__uint(value_size, sizeof(struct md_sock_nat));
};

/* Every socket translated and the address it asked for, in its network namespace's own table
 * (abi/mesh.h), by the namespace's cookie: the node's own namespace and each attached one. The
 * agent creates a namespace's table with its md_sock_clients_v1 entry and drops it when the
 * namespace leaves; a namespace without a table is not balanced at the socket (the veth
 * program balances its packets). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, MD_SOCK_TABLES_MAX);
	__type(key, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct md_sock_table); /* last: a flexible array member */
} md_sock_rnat_v3 SEC(".maps");

/* This node's containers, by their network namespace's cookie: the networks each is attached
 * to (abi/sock.h). Written by the agent when it attaches a namespace (and left empty with
 * --socket-lb off). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MD_SOCK_CLIENTS_MAX);
	__type(key, __u64);
	__type(value, struct md_sock_client);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_sock_clients_v1 SEC(".maps");

/* Socket programs: 1 lets the call go on (with whatever the program rewrote). */
#define SOCK_CONTINUE 1

/* The Maglev hash of a socket: a multiplicative hash of its cookie spreads sockets over the table. */
md_inline __u32 sock_hash(__u64 cookie)
{
	return (__u32)((cookie * 0x9e3779b97f4a7c15ULL) >> 32);
}

/* The socket table of the namespace with cookie `netns`, or NULL. */
md_inline void *sock_table(__u64 netns)
{
	return bpf_map_lookup_elem(&md_sock_rnat_v3, &netns);
}

/* Points the socket at `backend:port` and remembers in its namespace's `table` what it asked
 * for (`asked:asked_port`), which recvmsg4 and getpeername4 show it instead; the socket's
 * MD_SOCK_LAST entry lets sock_release free it. If the translation cannot be remembered, the
 * socket is left alone (the veth program balances its packets): the application would
 * otherwise see the backend as its peer. Returns 1 if the socket was translated, else 0. */
md_inline int sock_translate(struct bpf_sock_addr *ctx, void *table, __u64 cookie, __u32 backend,
			      __u16 port, __u32 asked, __u16 asked_port)
{
	struct md_sock_key sk = {};
	struct md_sock_key last = {};
	struct md_sock_nat nat = {};
	struct md_sock_nat to = {};

	sk.cookie = cookie;
	sk.backend_ip = backend;
	sk.backend_port = port;
	sk.kind = MD_SOCK_TRANSLATION;
	nat.addr = asked;
	nat.port = asked_port;
	if (bpf_map_update_elem(table, &sk, &nat, BPF_ANY) < 0)
		return 0;
	last.cookie = cookie;
	last.kind = MD_SOCK_LAST;
	to.addr = backend;
	to.port = port;
	bpf_map_update_elem(table, &last, &to, BPF_ANY);
	ctx->user_ip4 = backend;
	ctx->user_port = port;
	return 1;
}

/* The published port the socket asks for (one of this node's addresses and a port), or NULL. */
md_inline struct md_frontend *asked_frontend(const struct bpf_sock_addr *ctx, __u8 proto)
{
	struct md_frontend_key fk = {};

	fk.addr = ctx->user_ip4;
	fk.port = (__u16)ctx->user_port;
	fk.proto = proto;
	return bpf_map_lookup_elem(&md_frontends_v2, &fk);
}

/* The backend the published port `fe` gives the socket `cookie`, from the frontend's table (the
 * service's own, or in host mode this node's tasks), or NULL (no such service, or no backend:
 * the address is then left alone and the connection refused as it would be). */
md_inline __u32 *frontend_backend(const struct md_frontend *fe, __u64 cookie)
{
	struct md_service *svc = bpf_map_lookup_elem(&md_services_v1, &fe->vip);
	struct md_service from;

	if (!svc)
		return NULL;
	from = frontend_service(svc, fe);
	return maglev_backend(&from, sock_hash(cookie));
}

/* The node's own socket to a published port of this node: to a backend and the target port. */
md_inline void published_to_backend(struct bpf_sock_addr *ctx, void *table, __u8 proto)
{
	struct md_frontend *fe = asked_frontend(ctx, proto);
	__u32 addr = ctx->user_ip4;
	__u16 port = (__u16)ctx->user_port;
	__u32 *backend;
	__u64 cookie;

	if (!fe)
		return;
	cookie = bpf_get_socket_cookie(ctx);
	backend = frontend_backend(fe, cookie);
	if (!backend)
		return;
	sock_translate(ctx, table, cookie, *backend, fe->target_port, addr, port);
}

/* The client's network `vip` is in (a VIP comes from its network's subnet), or NULL. */
md_inline const struct md_sock_net *sock_client_net(const struct md_sock_client *client, __u32 vip)
{
	int i;

	for (i = 0; i < MD_SOCK_CLIENT_NETS; i++) {
		if (i >= client->count)
			break;
		if (in_subnet(vip, client->nets[i].subnet, client->nets[i].mask))
			return &client->nets[i];
	}
	return NULL;
}

/* A container's socket to a VIP of one of its networks: to a backend, same port, reported as a
 * new flow (meshctl monitor). A VIP of another network is left alone: the veth program drops
 * its packets (drop-network-mismatch), counted and shown where every isolation drop is. No
 * backend: left alone too, and dropped there (drop-no-backend). Returns 0 when the address is no
 * VIP at all, else 1. */
md_inline int vip_to_backend(struct bpf_sock_addr *ctx, void *table, const struct md_sock_client *client,
			      __u8 proto)
{
	const struct md_sock_net *net;
	struct md_service *svc;
	__u32 vip = ctx->user_ip4;
	__u16 port = (__u16)ctx->user_port;
	__u32 *backend;
	__u64 cookie;

	svc = bpf_map_lookup_elem(&md_services_v1, &vip);
	if (!svc)
		return 0;
	net = sock_client_net(client, vip);
	if (!net)
		return 1;
	cookie = bpf_get_socket_cookie(ctx);
	backend = maglev_backend(svc, sock_hash(cookie));
	if (!backend)
		return 1;
	if (sock_translate(ctx, table, cookie, *backend, port, vip, port))
		event_flow_from_socket(net->ifindex, net->addr, vip, port, proto, *backend);
	return 1;
}

/* Hairpin at the socket: a container's socket to a published port of this node, for a service on
 * one of the container's networks, goes to a backend and the target port, as the veth program's
 * lb_to_frontend() does per packet. At the socket it also works when the backend is the
 * container itself (the kernel then delivers over its loopback), where a packet from the
 * container to itself through its veth would be refused as a martian by its own stack. */
md_inline void frontend_to_backend(struct bpf_sock_addr *ctx, void *table, const struct md_sock_client *client,
				   __u8 proto)
{
	struct md_frontend *fe = asked_frontend(ctx, proto);
	__u32 addr = ctx->user_ip4;
	__u16 port = (__u16)ctx->user_port;
	const struct md_sock_net *net;
	__u32 *backend;
	__u64 cookie;

	if (!fe)
		return;
	/* A service of another network stays the node's stack's business (see lb_to_frontend). */
	net = sock_client_net(client, fe->vip);
	if (!net)
		return;
	cookie = bpf_get_socket_cookie(ctx);
	backend = frontend_backend(fe, cookie);
	if (!backend)
		return;
	if (sock_translate(ctx, table, cookie, *backend, fe->target_port, addr, port))
		event_flow_from_socket(net->ifindex, net->addr, fe->vip, fe->target_port, proto, *backend);
}

/* Whether the socket may be balanced for a container: a TCP or UDP connect(). An unconnected
 * UDP socket's datagrams (sendmsg4) are left to the veth program: it tracks the flow and its
 * replies per datagram, where a socket table entry per destination would be kept until the
 * socket closes or its namespace's LRU pushes it out. */
enum sock_call {
	SOCK_CONNECT,
	SOCK_SENDMSG,
};

/* Balances the socket if it is one of this node's: the node's own (published ports) or, at
 * connect(), a container's (VIPs), each through its namespace's socket table. Every other socket
 * of the machine costs two lookups. */
md_inline void to_backend(struct bpf_sock_addr *ctx, __u8 proto, enum sock_call call)
{
	struct md_node_config *config = node_config();
	struct md_sock_client *client;
	__u64 netns = bpf_get_netns_cookie(ctx);
	void *table;

	if (config && config->netns_cookie && config->netns_cookie == netns) {
		table = sock_table(netns);
		if (table)
			published_to_backend(ctx, table, proto);
		return;
	}
	if (call != SOCK_CONNECT)
		return;
	client = bpf_map_lookup_elem(&md_sock_clients_v1, &netns);
	if (!client)
		return;
	table = sock_table(netns);
	if (!table)
		return;
	if (!vip_to_backend(ctx, table, client, proto))
		frontend_to_backend(ctx, table, client, proto);
}

/* The reverse: a backend's address as seen by the socket becomes the one it asked for. Only a
 * socket this node translated has an entry, in its own namespace's table (socket cookies are
 * unique on the machine). */
md_inline void from_backend(struct bpf_sock_addr *ctx)
{
	struct md_sock_key sk = {};
	struct md_sock_nat *nat;
	void *table = sock_table(bpf_get_netns_cookie(ctx));

	if (!table)
		return;
	sk.cookie = bpf_get_socket_cookie(ctx);
	sk.backend_ip = ctx->user_ip4;
	sk.backend_port = (__u16)ctx->user_port;
	sk.kind = MD_SOCK_TRANSLATION;
	nat = bpf_map_lookup_elem(table, &sk);
	if (!nat)
		return;
	ctx->user_ip4 = nat->addr;
	ctx->user_port = nat->port;
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol == IPPROTO_TCP || ctx->protocol == IPPROTO_UDP)
		to_backend(ctx, ctx->protocol, SOCK_CONNECT);
	return SOCK_CONTINUE;
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	to_backend(ctx, IPPROTO_UDP, SOCK_SENDMSG);
	return SOCK_CONTINUE;
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	from_backend(ctx);
	return SOCK_CONTINUE;
}

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	from_backend(ctx);
	return SOCK_CONTINUE;
}

/* Any socket of the machine closing (cgroup root): if this node translated it, free its last
 * translation. One lookup per socket close outside the node's namespaces; the entries would
 * otherwise stay until their namespace's LRU pushed them out. (A UDP socket of the node sending
 * to several published ports has older translations too; those age out.) */
SEC("cgroup/sock_release")
int sock_release(struct bpf_sock *ctx)
{
	void *table = sock_table(bpf_get_netns_cookie(ctx));
	struct md_sock_key last = {};
	struct md_sock_key sk = {};
	struct md_sock_nat *to;

	if (!table)
		return SOCK_CONTINUE;
	last.cookie = bpf_get_socket_cookie(ctx);
	last.kind = MD_SOCK_LAST;
	to = bpf_map_lookup_elem(table, &last);
	if (to) {
		sk.cookie = last.cookie;
		sk.backend_ip = to->addr;
		sk.backend_port = to->port;
		sk.kind = MD_SOCK_TRANSLATION;
		bpf_map_delete_elem(table, &sk);
		bpf_map_delete_elem(table, &last);
	}
	return SOCK_CONTINUE;
}

char _license[] SEC("license") = "GPL";
