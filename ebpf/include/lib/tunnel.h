/* SPDX-License-Identifier: Apache-2.0 */
/* Sending a packet to another node through the collect-metadata VXLAN device, and recognising
 * packets to the VXLAN port. */
#ifndef MESHD_LIB_TUNNEL_H
#define MESHD_LIB_TUNNEL_H

#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "common.h"
#include "encrypt.h"
#include "l4.h"
#include "node.h"
#include "../abi/verdict.h"

/* Whether the packet is UDP to the VXLAN port (the cluster's data path port, `vxlan_port()`: the
 * node's VXLAN device listens on it, and no container may send to it, see veth.bpf.c) (an IPv4 header with options too). A later fragment
 * has no port to check: the first one decides (dropped, the datagram never reassembles). A UDP
 * header cut short counts as one to the port: the callers then check or drop it. */
md_inline int to_vxlan_port(struct __sk_buff *skb, struct iphdr *ip)
{
	struct udphdr *udp;
	__u32 ihl = ip->ihl;

	if (ip->protocol != IPPROTO_UDP || (ip->frag_off & bpf_htons(IP_OFFSET)))
		return 0;
	/* Options move the UDP header; they do not hide it. */
	if (ihl < 5 || ihl > 15)
		return 1;
	udp = (void *)ip + ihl * 4;
	if ((void *)(udp + 1) > (void *)(long)skb->data_end)
		return 1;
	return udp->dest == vxlan_port();
}

/* Sets the tunnel key: the VXLAN device will encapsulate the packet for node `node_ip` (network
 * byte order) with VNI `vni`, from this node's advertise address `local_ip` (network order; 0:
 * the kernel's choice), which is the address every other node accepts tunnel packets from
 * (md_nodes_v1), whichever interface or address the route would pick. A packet of an encrypted
 * network is marked for the WireGuard route first (lib/encrypt.h). Returns 0, or
 * -MD_REASON_DROP_NO_TUNNEL (encrypted, and no tunnel to that node), or
 * -MD_REASON_DROP_NO_VXLAN when the key cannot be set (the packet cannot enter the tunnel). */
md_inline int tunnel_set_key(struct __sk_buff *skb, __u32 node_ip, __u32 vni, __u32 local_ip)
{
	struct bpf_tunnel_key key = {};
	int ret = encrypt_prepare(skb, node_ip, vni, local_ip);

	if (ret < 0)
		return ret;

	key.remote_ipv4 = bpf_ntohl(node_ip);
	key.local_ipv4 = bpf_ntohl(local_ip);
	key.tunnel_id = vni;
	key.tunnel_ttl = 64;
	/* The inner packet carries its own checksums; a zero UDP checksum saves computing one. */
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0)
		return -MD_REASON_DROP_NO_VXLAN;
	return 0;
}

/* Sets the tunnel key and redirects the packet into the node's VXLAN device. Returns the redirect
 * verdict, or -MD_REASON_DROP_NO_VXLAN when there is no VXLAN device (yet) or the key cannot be
 * set, or -MD_REASON_DROP_NO_TUNNEL (tunnel_set_key): the caller drops and counts that. */
md_inline int tunnel_redirect(struct __sk_buff *skb, __u32 node_ip, __u32 vni)
{
	struct md_node_config *config = node_config();
	int ret;

	if (!config || !config->vxlan_ifindex)
		return -MD_REASON_DROP_NO_VXLAN;
	ret = tunnel_set_key(skb, node_ip, vni, config->node_ip);
	if (ret < 0)
		return ret;
	return bpf_redirect(config->vxlan_ifindex, 0);
}

#endif /* MESHD_LIB_TUNNEL_H */
