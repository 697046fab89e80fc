// SPDX-License-Identifier: GPL-2.0
/*
 * Programs on the host side of a container's veth pair.
 *
 * from_container (tc ingress of the host-side veth) sees everything the container sends and
 * decides where it goes:
 *   ARP request          -> answered here with the veth's own MAC (no flooding, no learning)
 *   ARP reply            -> to the node's stack (it asked, to deliver routed replies)
 *   IPv4 to a VIP        -> of its network: destination rewritten to a backend (Maglev, tracked
 *                           in the container's own flow table), then as below; of another
 *                           network: dropped before any state
 *   to a published port of this node (hairpin), for a service of its network: the same, the
 *                           port becoming the target port; a flow balanced onto the container
 *                           itself gets the gateway as its source, and the container's answer to
 *                           the gateway is turned back into the service's answer (lib/lb.h)
 *   IPv4 to an endpoint  -> same network: straight into the target container on this node
 *                           (redirect_peer), or to the target's node: encapsulated here and sent
 *                           out of the underlay (lib/overlay.h), or, when that cannot be done,
 *                           into the VXLAN device with the tunnel key of the target's node and
 *                           network; another network: dropped (isolation)
 *   a published flow's reply -> back to the client from the published address (this node was
 *                           the ingress), or through the tunnel to the ingress node
 *   IPv4 elsewhere       -> outside the network's subnet: up the node's stack (masquerade);
 *                           inside it with no endpoint: dropped; UDP to the VXLAN port (vxlan_port())
 *                           anywhere: dropped (it would be decapsulated by a node as if that
 *                           node sent it). What the stack may take for the node itself is
 *                           decided by meshd's nftables table (replies only).
 *   IPv4 from another source than the container's own address -> dropped (spoofed)
 *   anything else        -> dropped (IPv6 is not supported yet)
 * A veth not in md_ifaces_v2 (not attached by meshd) passes through untouched.
 *
 * to_container (tc egress of the host-side veth) sees what the node's stack delivers to the
 * container (replies to masqueraded traffic) and counts it.
 */
#include "lib/common.h"
#include "lib/eth.h"
#include "lib/endpoint.h"
#include "lib/lb.h"
#include "lib/mesh.h"
#include "lib/deliver.h"
#include "lib/rnat.h"
#include "lib/overlay.h"
#include "lib/tunnel.h"
#include "lib/verdict.h"

#define DIR MD_DIR_FROM_CONTAINER

/* Answers an ARP request from the container for any address but its own, with this veth's MAC,
 * sending the reply back out of the same veth (into the container). */
md_inline int answer_arp(struct __sk_buff *skb, struct ethhdr *eth, const struct md_iface *iface)
{
	struct md_arp *arp = parse_arp(skb, eth);
	__u8 target[4];
	__u32 target_ip;

	if (!arp)
		return drop(skb, DIR, MD_REASON_DROP_MALFORMED);
	if (arp->ptype != bpf_htons(ETH_P_IP) || arp->plen != 4 || arp->hlen != ETH_ALEN)
		return drop(skb, DIR, MD_REASON_DROP_ARP);
	/* The container answering the node's own ARP request (for traffic the node routes back
	 * to it, such as replies to masqueraded connections): that is for the node's stack. */
	if (arp->oper == bpf_htons(MD_ARP_REPLY)) {
		count_verdict(skb, DIR, MD_REASON_PASS_STACK);
		return TC_ACT_OK;
	}
	if (arp->oper != bpf_htons(MD_ARP_REQUEST))
		return drop(skb, DIR, MD_REASON_DROP_ARP);
	__builtin_memcpy(&target_ip, arp->tpa, 4);
	/* Duplicate address detection for its own address: nobody else has it, stay silent. */
	if (target_ip == iface->ip)
		return drop(skb, DIR, MD_REASON_DROP_ARP);

	__builtin_memcpy(target, arp->tpa, 4);
	arp->oper = bpf_htons(MD_ARP_REPLY);
	__builtin_memcpy(arp->tha, arp->sha, ETH_ALEN);
	__builtin_memcpy(arp->tpa, arp->spa, 4);
	__builtin_memcpy(arp->sha, iface->mac, ETH_ALEN);
	__builtin_memcpy(arp->spa, target, 4);
	set_macs(eth, iface->mac, arp->tha);

	count_verdict(skb, DIR, MD_REASON_ARP_REPLY);
	return bpf_redirect(skb->ifindex, 0);
}

/* Whether `ip` goes to port 53 (UDP or TCP) of a link-local address: the node's DNS address
 * for Docker containers (daemon/docker/config.rs) is one, and link-local is never routed past
 * the node. Both headers start with the ports, so the UDP header's layout reads either. */
md_inline int to_link_local_dns(struct __sk_buff *skb, struct iphdr *ip)
{
	struct udphdr *l4;
	__u32 ihl = ip->ihl;

	if ((ip->daddr & bpf_htonl(0xffff0000)) != bpf_htonl(0xa9fe0000))
		return 0;
	if (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP)
		return 0;
	if ((ip->frag_off & bpf_htons(IP_OFFSET)) || ihl < 5 || ihl > 15)
		return 0;
	l4 = (void *)ip + ihl * 4;
	if ((void *)(l4 + 1) > (void *)(long)skb->data_end)
		return 0;
	return l4->dest == bpf_htons(53);
}

/* Sends the packet to a remote endpoint's node: encapsulated here and straight out of the
 * underlay interface (the fast path, lib/overlay.h), else through the VXLAN device. */
md_inline int to_tunnel(struct __sk_buff *skb, const struct md_endpoint *ep)
{
	int ret;

	if (overlay_encap(skb, ep, &ret)) {
		if (ret != TC_ACT_SHOT)
			count_verdict(skb, DIR, MD_REASON_FORWARD_TUNNEL);
		return ret;
	}
	ret = tunnel_redirect(skb, ep->node_ip, ep->vni);
	if (ret < 0)
		return drop(skb, DIR, -ret);
	count_verdict(skb, DIR, MD_REASON_FORWARD_TUNNEL);
	return ret;
}

SEC("classifier")
int veth_from_container(struct __sk_buff *skb)
{
	struct md_iface *iface = lookup_iface(skb->ifindex);
	struct ethhdr *eth;
	struct iphdr *ip;
	struct md_endpoint *ep;
	int ret;

	if (!iface) {
		count_verdict(skb, DIR, MD_REASON_PASS_STACK);
		return TC_ACT_OK;
	}
	eth = parse_eth(skb);
	if (!eth)
		return drop(skb, DIR, MD_REASON_DROP_MALFORMED);
	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return answer_arp(skb, eth, iface);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return drop(skb, DIR, MD_REASON_DROP_UNSUPPORTED_L3);
	ip = parse_ipv4(skb, eth);
	if (!ip)
		return drop(skb, DIR, MD_REASON_DROP_MALFORMED);
	/* A container speaks with its own address only: another source could pose as a client of
	 * a published port, or as a backend of another network. */
	if (ip->saddr != iface->ip)
		return drop(skb, DIR, MD_REASON_DROP_SPOOFED);

	ret = lb_to_vip(skb, ip, iface);
	if (ret < 0)
		return drop(skb, DIR, -ret);
	if (ret == PKT_REWRITTEN) {
		count_verdict(skb, DIR, MD_REASON_LB_DNAT);
	} else {
		ret = lb_to_frontend(skb, ip, iface);
		if (ret < 0)
			return drop(skb, DIR, -ret);
		if (ret == PKT_REWRITTEN)
			count_verdict(skb, DIR, MD_REASON_HAIRPIN);
	}
	if (ret == PKT_UNTOUCHED) {
		/* Its answer to its own flow balanced back onto itself. */
		ret = lb_to_self_reply(skb, ip, iface);
		if (ret < 0)
			return drop(skb, DIR, -ret);
		if (ret == PKT_REWRITTEN)
			count_verdict(skb, DIR, MD_REASON_LB_RNAT);
	}
	if (ret == PKT_UNTOUCHED) {
		lb_direct_flow(skb, ip);
	} else {
		/* The rewrite invalidated the packet pointers. */
		eth = parse_eth(skb);
		if (!eth)
			return drop(skb, DIR, MD_REASON_DROP_MALFORMED);
		ip = parse_ipv4(skb, eth);
		if (!ip)
			return drop(skb, DIR, MD_REASON_DROP_MALFORMED);
	}

	ep = lookup_endpoint(ip->daddr);
	if (!ep) {
		/* A backend's reply to a client of a published port (or of the node itself). */
		int verdict;

		if (mesh_reply(skb, ip, DIR, &verdict) || mesh_return(skb, ip, iface->vni, DIR, &verdict))
			return verdict;
		if (in_subnet(ip->daddr, iface->subnet, iface->mask))
			return drop(skb, DIR, MD_REASON_DROP_NO_ENDPOINT);
		if (to_vxlan_port(skb, ip))
			return drop(skb, DIR, MD_REASON_DROP_TUNNEL_PORT);
		/* An --internal network has no way off the overlay, but the node's DNS address
		 * (link-local, never routed past the node) stays reachable on port 53. */
		if ((iface->flags & MD_IFACE_INTERNAL) && !to_link_local_dns(skb, ip))
			return drop(skb, DIR, MD_REASON_DROP_INTERNAL);
		/* Outside the overlay: the node routes (and masquerades) it. */
		count_verdict(skb, DIR, MD_REASON_PASS_STACK);
		return TC_ACT_OK;
	}
	if (ep->vni != iface->vni)
		return drop(skb, DIR, MD_REASON_DROP_NETWORK_MISMATCH);
	if (!(ep->flags & MD_EP_LOCAL))
		return to_tunnel(skb, ep);

	/* A local backend answering a local client of its VIP: the source becomes the VIP again. */
	return deliver_local(skb, eth, ip, iface->mac, ep, DIR, MD_REASON_FORWARD_LOCAL);
}

SEC("classifier")
int veth_to_container(struct __sk_buff *skb)
{
	count_verdict(skb, MD_DIR_TO_CONTAINER, MD_REASON_PASS_STACK);
	return TC_ACT_OK;
}

/* GPL: helpers such as bpf_redirect_peer and bpf_skb_set_tunnel_key are GPL-only. */
char _license[] SEC("license") = "GPL";
