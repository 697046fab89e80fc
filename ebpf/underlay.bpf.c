// SPDX-License-Identifier: GPL-2.0
/*
 * The program on the node's underlay interface (tc ingress): the routing mesh's front door.
 *
 * A TCP or UDP packet to a published port on one of this node's addresses (md_frontends_v1) goes
 * to a backend of the service anywhere in the cluster, with the client's address kept (see
 * lib/mesh.h). Everything else (gossip, VXLAN, the node's own traffic) is none of this
 * program's business: it goes on to the next program or the stack, uncounted, so the underlay's
 * hot path pays one hash lookup per TCP/UDP packet and nothing more.
 */
#include "lib/common.h"
#include "lib/eth.h"
#include "lib/mesh.h"

#define DIR MD_DIR_FROM_UNDERLAY

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
	if (mesh_to_backend(skb, ip, DIR, &verdict))
		return verdict;
	return TC_ACT_UNSPEC;
}

char _license[] SEC("license") = "GPL";
