/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The last step of every packet handed to a container of this node by a program (veth.bpf.c
 * from a local container, vxlan.bpf.c out of the tunnel, lib/overlay.h's fast path): a
 * backend's reply to a flow its client balanced gets its source back (lib/rnat.h), the MACs are
 * set as if the packet came from the container's gateway, and it goes straight into the
 * container's namespace.
 */
#ifndef MESHD_LIB_DELIVER_H
#define MESHD_LIB_DELIVER_H

#include "common.h"
#include "eth.h"
#include "l4.h"
#include "rnat.h"
#include "verdict.h"
#include "../abi/endpoint.h"

/*
 * Delivers the packet (headers `eth`, `ip`) to local endpoint `ep`, from `gateway_mac` (the host
 * side of its veth): reverse NAT (counted lb-rnat or icmp-rnat), then counted as `reason` in
 * direction `dir` and redirected into the container. Returns the verdict (a drop if the reverse
 * NAT failed).
 */
md_inline int deliver_local(struct __sk_buff *skb, struct ethhdr *eth, struct iphdr *ip,
			    const __u8 *gateway_mac, const struct md_endpoint *ep, enum md_dir dir,
			    enum md_reason reason)
{
	int ret;

	ret = lb_from_backend(skb, ip);
	if (ret < 0)
		return drop(skb, dir, -ret);
	if (ret != PKT_UNTOUCHED) {
		count_verdict(skb, dir, ret == PKT_ICMP_REWRITTEN ? MD_REASON_ICMP_RNAT : MD_REASON_LB_RNAT);
		/* The rewrite invalidated the packet pointers. */
		eth = parse_eth(skb);
		if (!eth)
			return drop(skb, dir, MD_REASON_DROP_MALFORMED);
	}
	set_macs(eth, gateway_mac, ep->mac);
	count_verdict(skb, dir, reason);
	return bpf_redirect_peer(ep->ifindex, 0);
}

#endif /* MESHD_LIB_DELIVER_H */
