/* SPDX-License-Identifier: Apache-2.0 */
/* Sending a packet to another node through the collect-metadata VXLAN device. */
#ifndef MESHD_LIB_TUNNEL_H
#define MESHD_LIB_TUNNEL_H

#include <bpf/bpf_endian.h>
#include "common.h"
#include "node.h"
#include "../abi/verdict.h"

/* Sets the tunnel key: the VXLAN device will encapsulate the packet for node `node_ip` (network
 * byte order) with VNI `vni`. Returns 0, or -MD_REASON_DROP_NO_VXLAN when the key cannot be set
 * (the packet cannot enter the tunnel). */
md_inline int tunnel_set_key(struct __sk_buff *skb, __u32 node_ip, __u32 vni)
{
	struct bpf_tunnel_key key = {};

	key.remote_ipv4 = bpf_ntohl(node_ip);
	key.tunnel_id = vni;
	key.tunnel_ttl = 64;
	/* The inner packet carries its own checksums; a zero UDP checksum saves computing one. */
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0)
		return -MD_REASON_DROP_NO_VXLAN;
	return 0;
}

/* Sets the tunnel key and redirects the packet into the node's VXLAN device. Returns the redirect
 * verdict, or -MD_REASON_DROP_NO_VXLAN when there is no VXLAN device (yet) or the key cannot be
 * set: the caller drops and counts that. */
md_inline int tunnel_redirect(struct __sk_buff *skb, __u32 node_ip, __u32 vni)
{
	__u32 vxlan = vxlan_ifindex();
	int ret;

	if (!vxlan)
		return -MD_REASON_DROP_NO_VXLAN;
	ret = tunnel_set_key(skb, node_ip, vni);
	if (ret < 0)
		return ret;
	return bpf_redirect(vxlan, 0);
}

#endif /* MESHD_LIB_TUNNEL_H */
