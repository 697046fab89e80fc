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
 * remembering how to translate the replies back.
 */
md_inline enum lb_result lb_to_vip(struct __sk_buff *skb, struct iphdr *ip)
{
	struct md_service *svc = bpf_map_lookup_elem(&md_services_v1, &ip->daddr);
	struct md_ct_key ct = {};
	struct md_rnat_key rk = {};
	struct l4 l4 = {};
	enum lb_result picked;
	__u32 vip, client, backend = 0;

	if (!svc)
		return LB_NOT_A_VIP;
	if (parse_l4(skb, ip, &l4) < 0)
		return LB_NOT_A_VIP;
	vip = ip->daddr;
	client = ip->saddr;
	ct.client_ip = client;
	ct.vip = vip;
	ct.client_port = l4.sport;
	ct.port = l4.dport;
	ct.proto = l4.proto;
	picked = ct_pick_backend(skb, svc, &ct, &l4, &backend);
	if (picked != LB_DONE)
		return picked;

	reply_key(&rk, backend, l4.dport, client, l4.sport, l4.proto);
	if (rnat_remember(&rk, vip) < 0)
		return LB_ERROR;
	if (rewrite_addr(skb, &l4, IP_DST_OFF, vip, backend) < 0)
		return LB_ERROR;
	return LB_DONE;
}

#endif /* MESHD_LIB_LB_H */
