/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Balancing at a container's veth: a client's packet to a VIP of its own network (or to a
 * published port of its own node: hairpin) gets a backend (flow_pin() of lib/conntrack.h on the
 * container's flow table, lib/flows.h: the flow's tracked backend, or a Maglev pick), the way
 * back is remembered there (lib/rnat.h), and the destination is rewritten to the backend
 * (lib/l4.h). A VIP keeps the port; a published port becomes the service's target port. Types
 * in abi/lb.h.
 *
 * Nothing is tracked for what cannot be delivered: a VIP of another network is dropped before
 * any state, and so is a flow without a backend or a TCP packet that starts nothing.
 *
 * A task balanced onto itself (it asked its own service, and it is the backend picked) would get
 * its own packet back with its own address as the source, which its stack drops as a martian,
 * and its answer would go over its loopback, past the reverse NAT. So such a flow's source
 * becomes the network's gateway (Cilium rewrites to a loopback address for the same reason):
 * the answer goes back out of the task's veth, where lb_to_self_reply() (lib/rnat.h) turns it
 * back. The socket LB never gets here for connected sockets: it picks before any packet.
 */
#ifndef MESHD_LIB_LB_H
#define MESHD_LIB_LB_H

#include "common.h"
#include "conntrack.h"
#include "endpoint.h"
#include "eth.h"
#include "events.h"
#include "flows.h"
#include "l4.h"
#include "maglev.h"
#include "mesh.h"
#include "rnat.h"
#include "../abi/lb.h"

/*
 * Balances the flow `fwd` (TO_SERVICE, filled by the caller) of the container behind `iface` to
 * service `svc`, sent to `to:to_port`, onto a backend listening on `port`; rewrites the
 * destination, and the source too when the backend is the client itself (see above). Returns
 * PKT_REWRITTEN or a negative -MD_REASON_....
 */
md_inline int lb_balance(struct __sk_buff *skb, struct l4 *l4, const struct md_iface *iface,
			 const struct md_service *svc, const struct md_flow_key *fwd, __u32 to, __u16 to_port,
			 __u16 port)
{
	__u32 client = iface->ip;
	struct md_flow_key rk = {};
	struct flow_backend backend = {};
	void *table = flow_table(client);
	int ret;

	if (!table)
		return -MD_REASON_DROP_NO_FLOW_TABLE;
	ret = flow_pin(skb, table, FLOW_TABLE_ENDPOINT, fwd, svc, l4, port, &backend);
	if (ret < 0)
		return ret;
	if (ret == FLOW_PINNED)
		event_flow_from_packet(skb, backend.addr);
	flow_reply_key(&rk, backend.addr, backend.port, l4->sport, l4->proto);
	ret = flow_remember_reply(table, &rk, l4, to, to_port);
	if (ret < 0)
		return ret;
	ret = rewrite_addr(skb, l4, IP_DST_OFF, to, backend.addr);
	if (ret == 0)
		ret = rewrite_port(skb, l4, L4_DPORT_OFF, to_port, backend.port);
	if (ret == 0 && backend.addr == client && iface->gateway)
		ret = rewrite_addr(skb, l4, IP_SRC_OFF, client, iface->gateway);
	if (ret < 0)
		return ret;
	return PKT_REWRITTEN;
}

/*
 * If the packet goes to a service VIP, balances it (see lb_balance). Returns PKT_REWRITTEN
 * (re-parse the packet), PKT_UNTOUCHED (not a TCP or UDP packet to a VIP), or the negative
 * reason of the step that failed: -MD_REASON_DROP_NETWORK_MISMATCH (a VIP of another network),
 * -MD_REASON_DROP_NO_FLOW_TABLE, -MD_REASON_DROP_NO_BACKEND, -MD_REASON_DROP_NO_FLOW,
 * -MD_REASON_DROP_CT_FULL, -MD_REASON_DROP_REWRITE.
 */
md_inline int lb_to_vip(struct __sk_buff *skb, struct iphdr *ip, const struct md_iface *iface)
{
	struct md_service *svc = bpf_map_lookup_elem(&md_services_v1, &ip->daddr);
	struct md_flow_key fwd = {};
	struct l4 l4 = {};

	if (!svc)
		return PKT_UNTOUCHED;
	/* VIPs come from their network's subnet: one outside the client's is another network's. */
	if (!in_subnet(ip->daddr, iface->subnet, iface->mask))
		return -MD_REASON_DROP_NETWORK_MISMATCH;
	if (!parse_l4(skb, ip, &l4))
		return PKT_UNTOUCHED;
	fwd.addr = ip->daddr;
	fwd.svc = svc->id;
	fwd.port = l4.dport;
	fwd.client_port = l4.sport;
	fwd.proto = l4.proto;
	fwd.dir = MD_FLOW_TO_SERVICE;
	return lb_balance(skb, &l4, iface, svc, &fwd, ip->daddr, l4.dport, l4.dport);
}

/*
 * Hairpin: a container's packet to a published port of its own node (md_frontends_v2), for a
 * service on the container's own network, is balanced here like a VIP flow, the port becoming
 * the target port. (A service on another network would need the node's address as the source
 * to keep the networks apart; that packet goes on to the node's stack, which refuses it.)
 * Returns as lb_to_vip().
 */
md_inline int lb_to_frontend(struct __sk_buff *skb, struct iphdr *ip, const struct md_iface *iface)
{
	struct md_frontend_key fk = {};
	struct md_flow_key fwd = {};
	struct md_frontend *fe;
	struct md_service *svc;
	struct md_service from;
	struct l4 l4 = {};

	/* Published ports are on the node's addresses, never in the overlay: the overlay's own
	 * traffic pays nothing for this. */
	if (in_subnet(ip->daddr, iface->subnet, iface->mask))
		return PKT_UNTOUCHED;
	if (!parse_l4(skb, ip, &l4))
		return PKT_UNTOUCHED;
	fk.addr = ip->daddr;
	fk.port = l4.dport;
	fk.proto = l4.proto;
	fe = bpf_map_lookup_elem(&md_frontends_v2, &fk);
	if (!fe || !in_subnet(fe->vip, iface->subnet, iface->mask))
		return PKT_UNTOUCHED;
	svc = bpf_map_lookup_elem(&md_services_v1, &fe->vip);
	if (!svc)
		return -MD_REASON_DROP_NO_BACKEND;
	/* The frontend's table: the service's own, or in host mode this node's tasks. */
	from = frontend_service(svc, fe);
	fwd.addr = ip->daddr;
	fwd.svc = from.id;
	fwd.port = l4.dport;
	fwd.client_port = l4.sport;
	fwd.proto = l4.proto;
	fwd.dir = MD_FLOW_TO_SERVICE;
	return lb_balance(skb, &l4, iface, &from, &fwd, ip->daddr, l4.dport, fe->target_port);
}

#endif /* MESHD_LIB_LB_H */
