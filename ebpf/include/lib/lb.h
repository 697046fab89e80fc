/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Service VIPs: a client's packet to a VIP gets a backend (lib/conntrack.h: the flow's tracked
 * backend, or a Maglev pick from lib/maglev.h), the way back is remembered (lib/rnat.h), and
 * the destination address is rewritten to the backend (lib/l4.h). The port is kept. Types in
 * abi/lb.h.
 */
#ifndef MESHD_LIB_LB_H
#define MESHD_LIB_LB_H

#include "common.h"
#include "conntrack.h"
#include "eth.h"
#include "l4.h"
#include "maglev.h"
#include "rnat.h"
#include "../abi/lb.h"

/*
 * If the packet goes to a service VIP, picks its backend and rewrites the destination to it,
 * remembering how to translate the replies back. Returns PKT_REWRITTEN (re-parse the packet),
 * PKT_UNTOUCHED (not a TCP or UDP packet to a VIP), or the negative reason of the step that
 * failed: -MD_REASON_DROP_NO_BACKEND, -MD_REASON_DROP_CT_FULL (conntrack or reverse
 * translation not written), -MD_REASON_DROP_REWRITE.
 */
md_inline int lb_to_vip(struct __sk_buff *skb, struct iphdr *ip)
{
	struct md_service *svc = bpf_map_lookup_elem(&md_services_v1, &ip->daddr);
	struct md_ct_key ct = {};
	struct md_rnat_key rk = {};
	struct l4 l4 = {};
	__u32 vip, client, backend = 0;
	int ret;

	if (!svc)
		return PKT_UNTOUCHED;
	if (!parse_l4(skb, ip, &l4))
		return PKT_UNTOUCHED;
	vip = ip->daddr;
	client = ip->saddr;
	ct.client_ip = client;
	ct.vip = vip;
	ct.client_port = l4.sport;
	ct.port = l4.dport;
	ct.proto = l4.proto;
	ret = ct_pick_backend(skb, svc, &ct, &l4, &backend);
	if (ret < 0)
		return ret;

	reply_key(&rk, backend, l4.dport, client, l4.sport, l4.proto);
	ret = rnat_remember(&rk, vip);
	if (ret < 0)
		return ret;
	ret = rewrite_addr(skb, &l4, IP_DST_OFF, vip, backend);
	if (ret < 0)
		return ret;
	return PKT_REWRITTEN;
}

#endif /* MESHD_LIB_LB_H */
