// SPDX-License-Identifier: GPL-2.0
/*
 * Published ports for the node's own clients (`curl localhost:PORT`, or the node's own address):
 * their packets never cross the underlay interface, so the translation happens at the socket,
 * before the first packet, as Cilium's socket LB does. The programs are attached to the root of
 * the cgroup v2 hierarchy, so they run for every process of the machine: each one acts only in
 * the network namespace of the node that loaded it (md_config_v3.netns_cookie).
 *
 *   connect4    TCP connect() / UDP connect() to a published port -> to a backend's address and
 *               target port (Maglev slot chosen by the socket: one socket, one backend)
 *   sendmsg4    the same for each datagram of an unconnected UDP socket
 *   recvmsg4    a datagram from that backend shows the published address as its source
 *   getpeername4  a connected socket shows the published address as its peer
 *   sock_release  a closed socket's translation is freed (md_sock_index_v1 finds it)
 * Remote backends are reached through the overlay route the agent adds on the VXLAN device; the
 * replies come back to the node's own address (vxlan.bpf.c, to_outside).
 */
#include <linux/in.h>
#include "lib/common.h"
#include "lib/node.h"
#include "lib/maglev.h"
#include "lib/mesh.h"

/* Every socket translated, and the address it asked for. LRU: closed sockets age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MD_SOCK_RNAT_MAX);
	__type(key, struct md_sock_key);
	__type(value, struct md_sock_nat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_sock_rnat_v1 SEC(".maps");

/* The last translation written for each socket, by its cookie: what sock_release frees. (A UDP
 * socket sending to several published ports has older ones too; those age out of the LRU.) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MD_SOCK_RNAT_MAX);
	__type(key, __u64);
	__type(value, struct md_sock_key);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_sock_index_v1 SEC(".maps");

/* Socket programs: 1 lets the call go on (with whatever the program rewrote). */
#define SOCK_CONTINUE 1

md_inline int in_node_netns(struct bpf_sock_addr *ctx)
{
	struct md_node_config *config = node_config();

	return config && config->netns_cookie && config->netns_cookie == bpf_get_netns_cookie(ctx);
}

/* If the socket's destination is a published port of this node, points it at a backend. */
md_inline void to_backend(struct bpf_sock_addr *ctx, __u8 proto)
{
	struct md_frontend_key fk = {};
	struct md_frontend *fe;
	struct md_service *svc;
	struct md_sock_key sk = {};
	struct md_sock_nat nat = {};
	__u32 *backend;
	__u64 cookie;

	fk.addr = ctx->user_ip4;
	fk.port = (__u16)ctx->user_port;
	fk.proto = proto;
	fe = bpf_map_lookup_elem(&md_frontends_v1, &fk);
	if (!fe)
		return;
	svc = bpf_map_lookup_elem(&md_services_v1, &fe->vip);
	if (!svc)
		return;
	cookie = bpf_get_socket_cookie(ctx);
	/* A multiplicative hash of the cookie spreads sockets over the table. */
	backend = maglev_backend(svc, (__u32)((cookie * 0x9e3779b97f4a7c15ULL) >> 32));
	/* No backend: leave the address alone; the connection is refused as it would be anyway. */
	if (!backend)
		return;
	sk.cookie = cookie;
	sk.backend_ip = *backend;
	sk.backend_port = fe->target_port;
	nat.addr = fk.addr;
	nat.port = fk.port;
	bpf_map_update_elem(&md_sock_rnat_v1, &sk, &nat, BPF_ANY);
	bpf_map_update_elem(&md_sock_index_v1, &cookie, &sk, BPF_ANY);
	ctx->user_ip4 = *backend;
	ctx->user_port = fe->target_port;
}

/* The reverse: a backend's address as seen by the socket becomes the published one. */
md_inline void from_backend(struct bpf_sock_addr *ctx)
{
	struct md_sock_key sk = {};
	struct md_sock_nat *nat;

	sk.cookie = bpf_get_socket_cookie(ctx);
	sk.backend_ip = ctx->user_ip4;
	sk.backend_port = (__u16)ctx->user_port;
	nat = bpf_map_lookup_elem(&md_sock_rnat_v1, &sk);
	if (!nat)
		return;
	ctx->user_ip4 = nat->addr;
	ctx->user_port = nat->port;
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	if (in_node_netns(ctx) && (ctx->protocol == IPPROTO_TCP || ctx->protocol == IPPROTO_UDP))
		to_backend(ctx, ctx->protocol);
	return SOCK_CONTINUE;
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	if (in_node_netns(ctx))
		to_backend(ctx, IPPROTO_UDP);
	return SOCK_CONTINUE;
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	if (in_node_netns(ctx))
		from_backend(ctx);
	return SOCK_CONTINUE;
}

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	if (in_node_netns(ctx))
		from_backend(ctx);
	return SOCK_CONTINUE;
}

/* Any socket of the machine closing (cgroup root): if this node translated it, free its entry. One
 * lookup per socket close; the entry would otherwise stay until the LRU pushed it out. */
SEC("cgroup/sock_release")
int sock_release(struct bpf_sock *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct md_sock_key *known = bpf_map_lookup_elem(&md_sock_index_v1, &cookie);
	struct md_sock_key sk;

	if (known) {
		sk = *known;
		bpf_map_delete_elem(&md_sock_rnat_v1, &sk);
		bpf_map_delete_elem(&md_sock_index_v1, &cookie);
	}
	return SOCK_CONTINUE;
}

char _license[] SEC("license") = "GPL";
