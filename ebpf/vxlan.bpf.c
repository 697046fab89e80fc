// SPDX-License-Identifier: GPL-2.0
/*
 * The program on the node's collect-metadata VXLAN device (tc ingress): packets that arrived
 * through the tunnel from another node.
 *
 * The tunnel's VNI must be the network of the destination endpoint, and that endpoint must be on
 * this node; then the packet goes straight into the container (redirect_peer) with its MACs set
 * as if it came from the container's gateway. Everything else is dropped and counted.
 */
#include "lib/common.h"
#include "lib/eth.h"
#include "lib/endpoint.h"
#include "lib/lb.h"
#include "lib/verdict.h"

#define DIR MD_DIR_FROM_TUNNEL

SEC("classifier")
int vxlan_ingress(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	struct md_endpoint *ep;
	struct md_iface *iface;
	struct ethhdr *eth;
	struct iphdr *ip;
	__u32 ifindex;

	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0)
		return drop(skb, DIR, MD_REASON_DROP_NO_TUNNEL_KEY);
	eth = parse_eth(skb);
	if (!eth)
		return drop(skb, DIR, MD_REASON_DROP_MALFORMED);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return drop(skb, DIR, MD_REASON_DROP_UNSUPPORTED_L3);
	ip = parse_ipv4(skb, eth);
	if (!ip)
		return drop(skb, DIR, MD_REASON_DROP_MALFORMED);

	ep = lookup_endpoint(ip->daddr);
	if (!ep || !(ep->flags & MD_EP_LOCAL))
		return drop(skb, DIR, MD_REASON_DROP_NO_ENDPOINT);
	if (ep->vni != key.tunnel_id)
		return drop(skb, DIR, MD_REASON_DROP_VNI_MISMATCH);
	ifindex = ep->ifindex;
	iface = lookup_iface(ifindex);
	if (!iface)
		return drop(skb, DIR, MD_REASON_DROP_NO_ENDPOINT);

	/* A remote backend's reply to a flow balanced on this node: the source becomes the VIP. */
	switch (lb_from_backend(skb, ip)) {
	case 0:
		break;
	case 1:
		count_verdict(skb, DIR, MD_REASON_LB_RNAT);
		/* The rewrite invalidated the packet pointers. */
		eth = parse_eth(skb);
		if (!eth)
			return drop(skb, DIR, MD_REASON_DROP_MALFORMED);
		break;
	default:
		return drop(skb, DIR, MD_REASON_DROP_MALFORMED);
	}
	set_macs(eth, iface->mac, ep->mac);
	count_verdict(skb, DIR, MD_REASON_DELIVER_TUNNEL);
	return bpf_redirect_peer(ifindex, 0);
}

char _license[] SEC("license") = "GPL";
