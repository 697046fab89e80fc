// SPDX-License-Identifier: GPL-2.0
/*
 * The program on the node's collect-metadata VXLAN device (tc ingress): packets that arrived
 * through the tunnel from another node.
 *
 * The outer source must be a current member of the cluster (md_nodes_v1), and an inner source that
 * is an endpoint must be a remote endpoint of that very node on the tunnel's VNI: a node speaks
 * for its own containers only. The tunnel's VNI must be the network of the destination endpoint,
 * and that endpoint must be on this node; then the packet goes straight into the container (redirect_peer) with its MACs set
 * as if it came from the container's gateway. A packet to an address outside the overlay is a
 * reply of the routing mesh (lib/mesh.h) or for the node itself. Everything else is dropped and
 * counted.
 *
 * vxlan_to_tunnel (tc egress of the same device) gives packets that the node's own stack routes
 * into the overlay (the node's clients of a published port) the tunnel key of their endpoint.
 */
#include <linux/if_packet.h>
#include "lib/common.h"
#include "lib/eth.h"
#include "lib/endpoint.h"
#include "lib/mesh.h"
#include "lib/node.h"
#include "lib/deliver.h"
#include "lib/verdict.h"

#define DIR MD_DIR_FROM_TUNNEL

/* A packet out of the tunnel to an address outside the overlay: a remote backend's reply to a
 * published flow that entered here (back to the client), or to the node's own client. */
md_inline int to_outside(struct __sk_buff *skb, struct iphdr *ip)
{
	int verdict;

	/* To the node's own address: its own clients' replies, never a published flow's (an
	 * outside client cannot use the node's address, see outside_source). */
	if (ip->daddr != node_ip()) {
		if (mesh_reply(skb, ip, DIR, &verdict))
			return verdict;
		return drop(skb, DIR, MD_REASON_DROP_NO_ENDPOINT);
	}
	/* The inner frame is addressed to the other node's veth MAC: make the stack take it. */
	if (bpf_skb_change_type(skb, PACKET_HOST) < 0)
		return drop(skb, DIR, MD_REASON_DROP_MALFORMED);
	count_verdict(skb, DIR, MD_REASON_TO_NODE);
	return TC_ACT_OK;
}

SEC("classifier")
int vxlan_ingress(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	struct md_endpoint *ep, *src;
	struct md_iface *iface;
	struct ethhdr *eth;
	struct iphdr *ip;
	__u32 outer;

	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0)
		return drop(skb, DIR, MD_REASON_DROP_NO_TUNNEL_KEY);
	outer = bpf_htonl(key.remote_ipv4);
	if (!cluster_node(outer))
		return drop(skb, DIR, MD_REASON_DROP_NOT_A_NODE);
	eth = parse_eth(skb);
	if (!eth)
		return drop(skb, DIR, MD_REASON_DROP_MALFORMED);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return drop(skb, DIR, MD_REASON_DROP_UNSUPPORTED_L3);
	ip = parse_ipv4(skb, eth);
	if (!ip)
		return drop(skb, DIR, MD_REASON_DROP_MALFORMED);
	/* An endpoint's address as the source: only its own node sends it, on its own network. */
	src = lookup_endpoint(ip->saddr);
	if (src && ((src->flags & MD_EP_LOCAL) || src->node_ip != outer || src->vni != key.tunnel_id))
		return drop(skb, DIR, MD_REASON_DROP_TUNNEL_SPOOFED);

	ep = lookup_endpoint(ip->daddr);
	if (!ep)
		return to_outside(skb, ip);
	if (!(ep->flags & MD_EP_LOCAL))
		return drop(skb, DIR, MD_REASON_DROP_NO_ENDPOINT);
	if (ep->vni != key.tunnel_id)
		return drop(skb, DIR, MD_REASON_DROP_VNI_MISMATCH);
	iface = lookup_iface(ep->ifindex);
	if (!iface)
		return drop(skb, DIR, MD_REASON_DROP_NO_ENDPOINT);

	/* A client from outside the overlay (a published port on another node, or that node's own
	 * client): remember where the replies go back to. */
	if (!src)
		mesh_learn_return(skb, ip, &key);

	/* A remote backend's reply to a flow balanced on this node: the source becomes the VIP. */
	return deliver_local(skb, eth, ip, iface->mac, ep, DIR, MD_REASON_DELIVER_TUNNEL);
}

SEC("classifier")
int vxlan_to_tunnel(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	struct md_endpoint *ep;
	struct ethhdr *eth;
	struct iphdr *ip;
	__u32 local;
	int ret;

	/* Redirected here by the other programs, with the key already set. */
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) == 0)
		return TC_ACT_OK;
	/* Only the node's own packets: something the node forwards (from the underlay, say) must
	 * not get into the overlay through its routes. */
	if (skb->ingress_ifindex != 0)
		return drop(skb, MD_DIR_TO_TUNNEL, MD_REASON_DROP_SPOOFED);
	eth = parse_eth(skb);
	if (!eth)
		return drop(skb, MD_DIR_TO_TUNNEL, MD_REASON_DROP_MALFORMED);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return drop(skb, MD_DIR_TO_TUNNEL, MD_REASON_DROP_UNSUPPORTED_L3);
	ip = parse_ipv4(skb, eth);
	if (!ip)
		return drop(skb, MD_DIR_TO_TUNNEL, MD_REASON_DROP_MALFORMED);
	local = node_ip();
	if (ip->saddr != local)
		return drop(skb, MD_DIR_TO_TUNNEL, MD_REASON_DROP_SPOOFED);
	ep = lookup_endpoint(ip->daddr);
	if (!ep || (ep->flags & MD_EP_LOCAL))
		return drop(skb, MD_DIR_TO_TUNNEL, MD_REASON_DROP_NO_ENDPOINT);
	ret = tunnel_set_key(skb, ep->node_ip, ep->vni, local);
	if (ret < 0)
		return drop(skb, MD_DIR_TO_TUNNEL, -ret);
	count_verdict(skb, MD_DIR_TO_TUNNEL, MD_REASON_FROM_NODE);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
