/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encrypted overlay networks: the decision every tunnelled packet meets (tunnel_set_key, so no
 * path into the tunnel can forget it). A packet of a plain network goes on as before. A packet
 * of an encrypted network gets the mark that routes its VXLAN datagram into the node's WireGuard
 * interface (the VXLAN device looks its outer route up with skb->mark; the agent's `ip rule`
 * sends that mark to a table whose only routes are that interface and `unreachable`), but only
 * when the peer's tunnel is up and the route into the engine exists right now; otherwise it is
 * dropped as drop-no-tunnel. It never leaves in clear.
 */
#ifndef MESHD_LIB_ENCRYPT_H
#define MESHD_LIB_ENCRYPT_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "common.h"
#include "../abi/encrypt.h"
#include "../abi/verdict.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* The engine's interface, routing table and mark (one entry, key 0). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MD_ENCRYPT_MAX);
	__type(key, __u32);
	__type(value, struct md_encrypt_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_encrypt_v1 SEC(".maps");

/* The encrypted networks, by VNI. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MD_ENCRYPTED_NETS_MAX);
	__type(key, __u32);
	__type(value, struct md_encrypted_net);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_encrypted_nets_v1 SEC(".maps");

/* The peers the engine has a tunnel to, by underlay address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MD_TUNNELS_MAX);
	__type(key, __u32);
	__type(value, struct md_tunnel);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_tunnels_v1 SEC(".maps");

/* Whether network `vni` is encrypted. */
md_inline int vni_encrypted(__u32 vni)
{
	return bpf_map_lookup_elem(&md_encrypted_nets_v1, &vni) != NULL;
}

/* Whether the engine's route exists now: a lookup in the engine's table, out of its interface,
 * must answer that interface. A killed userspace engine takes its interface with it (-ENODEV),
 * a deleted route or a down link leaves only the table's `unreachable`: both fail here, at once,
 * without waiting for the agent to notice. */
md_inline int engine_route_up(struct __sk_buff *skb, const struct md_encrypt_config *config, __u32 node_ip,
			      __u32 local_ip)
{
	struct bpf_fib_lookup fib = {};
	int ret;

	fib.family = AF_INET;
	fib.l4_protocol = IPPROTO_UDP;
	fib.ipv4_src = local_ip;
	fib.ipv4_dst = node_ip;
	fib.ifindex = config->wg_ifindex;
	fib.tbid = config->table;
	ret = bpf_fib_lookup(skb, &fib, sizeof(fib),
			     BPF_FIB_LOOKUP_DIRECT | BPF_FIB_LOOKUP_TBID | BPF_FIB_LOOKUP_OUTPUT |
				     BPF_FIB_LOOKUP_SKIP_NEIGH);
	return ret == BPF_FIB_LKUP_RET_SUCCESS && fib.ifindex == config->wg_ifindex;
}

/* Prepares a packet of network `vni` for node `node_ip` (network order) from `local_ip`:
 * returns 0 when it may go (plain network; or encrypted, with the mark set), or
 * -MD_REASON_DROP_NO_TUNNEL when it is encrypted and there is no tunnel to that node (no engine,
 * the peer not configured yet, the engine's interface or route gone). */
md_inline int encrypt_prepare(struct __sk_buff *skb, __u32 node_ip, __u32 vni, __u32 local_ip)
{
	struct md_encrypt_config *config;
	struct md_tunnel *tunnel;
	__u32 zero = 0;

	if (!vni_encrypted(vni))
		return 0;
	config = bpf_map_lookup_elem(&md_encrypt_v1, &zero);
	if (!config || !config->wg_ifindex || !config->mark)
		return -MD_REASON_DROP_NO_TUNNEL;
	tunnel = bpf_map_lookup_elem(&md_tunnels_v1, &node_ip);
	if (!tunnel || !(tunnel->flags & MD_TUNNEL_READY))
		return -MD_REASON_DROP_NO_TUNNEL;
	if (!engine_route_up(skb, config, node_ip, local_ip))
		return -MD_REASON_DROP_NO_TUNNEL;
	skb->mark = config->mark;
	return 0;
}

/* Whether `ip` (a datagram to the VXLAN port, its UDP header checked by the caller) carries a
 * VXLAN header whose VNI is an encrypted network's. A header cut short is not one (the VXLAN
 * socket drops it). */
md_inline int vxlan_clear_of_encrypted(struct __sk_buff *skb, struct iphdr *ip)
{
	__u32 word, offset = ETH_HLEN + ip->ihl * 4 + sizeof(struct udphdr) + 4;

	if (bpf_skb_load_bytes(skb, offset, &word, sizeof(word)) < 0)
		return 0;
	return vni_encrypted(bpf_ntohl(word) >> 8);
}

#endif /* MESHD_LIB_ENCRYPT_H */
