// SPDX-License-Identifier: GPL-2.0
/*
 * The program on the node's underlay interface (tc ingress): the routing mesh's front door.
 *
 * A TCP or UDP packet to a published port on one of this node's addresses (md_frontends_v2) goes
 * to a backend of the service anywhere in the cluster, with the client's address kept (see
 * lib/mesh.h). Everything else (gossip, VXLAN, the node's own traffic) is none of this
 * program's business: it goes on to the next program or the stack, uncounted, so the underlay's
 * hot path pays one hash lookup per TCP/UDP packet and nothing more.
 *
 * VXLAN (UDP to the data path port, vxlan_port()) is the exception: it is checked here, before the kernel's VXLAN socket
 * decapsulates it, because only here is the outer frame still there. Its outer source must be a
 * cluster node (md_nodes_v1), and the frame must come from the L2 hop the node would send a
 * reply to that address through (the node's own MAC on a shared segment, its router's
 * otherwise): a host that is not a node and writes a node's address as its source is dropped.
 * VXLAN carries no authentication, so this holds against hosts that cannot also take over the
 * node's address in the neighbour table (ARP spoofing) or sit on the path; see docs/security.md.
 * A VXLAN packet that passes and is for a local container is decapsulated right here and handed
 * to it (the overlay fast path, lib/overlay.h), with vxlan_ingress's checks; the rest goes on to
 * the VXLAN device. VXLAN of an encrypted network (lib/encrypt.h) is dropped here: it comes out
 * of the node's WireGuard interface, never in clear from the wire.
 */
#include "lib/common.h"
#include "lib/encrypt.h"
#include "lib/eth.h"
#include "lib/mesh.h"
#include "lib/node.h"
#include "lib/overlay.h"
#include "lib/tunnel.h"
#include "lib/verdict.h"

#define DIR MD_DIR_FROM_UNDERLAY

/* The L2 hop each node's tunnel packets came through, as last confirmed by a route lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MD_NODE_HOPS_MAX);
	__type(key, __u32);
	__type(value, struct md_node_hop);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_node_hops_v1 SEC(".maps");

/*
 * Whether a VXLAN datagram may go on to the VXLAN socket: from a cluster node, through the L2
 * hop a reply to that node would take. A missing neighbour entry (the kernel has not resolved the
 * node's address lately; gossip keeps it fresh for the nodes this one talks to) lets it go on:
 * failing closed there would cut off a node whose first packet this is. A hop the route lookup
 * confirmed is remembered (md_node_hops_v1), so a packet from the same hop costs one lookup; a
 * different MAC (a router that failed over, or a spoofer) is checked again. Returns 0, or the
 * negative reason to drop it with.
 */
md_inline int vxlan_sender_ok(struct __sk_buff *skb, struct ethhdr *eth, struct iphdr *ip)
{
	struct bpf_fib_lookup fib = {};
	struct md_node_hop hop = {};
	struct md_node_hop *known;
	__u32 sender = ip->saddr;
	int ret;

	if (!cluster_node(sender))
		return -MD_REASON_DROP_NOT_A_NODE;
	known = bpf_map_lookup_elem(&md_node_hops_v1, &sender);
	if (known && __builtin_memcmp(known->mac, eth->h_source, ETH_ALEN) == 0)
		return 0;
	fib.family = AF_INET;
	fib.l4_protocol = IPPROTO_UDP;
	fib.ipv4_src = ip->daddr;
	fib.ipv4_dst = ip->saddr;
	fib.ifindex = skb->ifindex;
	ret = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS)
		return 0;
	if (fib.ifindex != skb->ifindex || __builtin_memcmp(fib.dmac, eth->h_source, ETH_ALEN) != 0)
		return -MD_REASON_DROP_SPOOFED;
	__builtin_memcpy(hop.mac, fib.dmac, ETH_ALEN);
	bpf_map_update_elem(&md_node_hops_v1, &sender, &hop, BPF_ANY);
	return 0;
}

SEC("classifier")
int underlay_ingress(struct __sk_buff *skb)
{
	struct ethhdr *eth = parse_eth(skb);
	struct iphdr *ip;
	int verdict;

	if (!eth || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_UNSPEC;
	ip = parse_ipv4(skb, eth);
	if (!ip)
		return TC_ACT_UNSPEC;
	/* 127.0.0.0/8 is a frontend address for the node's own sockets only; from the wire it is
	 * martian, and the stack drops it. */
	if ((ip->daddr & bpf_htonl(0xff000000)) == bpf_htonl(0x7f000000))
		return TC_ACT_UNSPEC;
	if (to_vxlan_port(skb, ip)) {
		int ret = vxlan_sender_ok(skb, eth, ip);

		if (ret < 0)
			return drop(skb, DIR, -ret);
		/* An encrypted network's VXLAN only ever arrives out of WireGuard, never here. */
		if (vxlan_clear_of_encrypted(skb, ip))
			return drop(skb, DIR, MD_REASON_DROP_CLEAR_ENCRYPTED);
		/* The overlay fast path: straight into a local container (lib/overlay.h). */
		if (overlay_decap(skb, &verdict))
			return verdict;
		return TC_ACT_UNSPEC;
	}
	if (mesh_to_backend(skb, ip, DIR, &verdict))
		return verdict;
	return TC_ACT_UNSPEC;
}

char _license[] SEC("license") = "GPL";
