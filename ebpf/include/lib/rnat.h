/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The load balancer's reverse NAT, for the flows a container of this node balanced (to a VIP, or
 * hairpin to a published port of its node): the source to put back on a backend's replies is
 * remembered in the client's flow table when the flow is balanced (flow_remember_reply, called by
 * lib/lb.h), put back on each reply and ICMP error (lb_from_backend), and given up when a direct
 * flow reuses the ports (lb_direct_flow). A task's answer to its own flow balanced onto itself
 * comes back addressed to its gateway and is turned back here too (lb_to_self_reply). The
 * routing mesh's own reverse NAT (published flows from outside) is lib/mesh.h's mesh_reply.
 */
#ifndef MESHD_LIB_RNAT_H
#define MESHD_LIB_RNAT_H

#include <linux/in.h>
#include "common.h"
#include "conntrack.h"
#include "flows.h"
#include "icmp.h"
#include "l4.h"
#include "../abi/lb.h"
#include "../abi/verdict.h"

/* The address of a reply entry a direct flow took over (lb_direct_flow): translate nothing. */
#define MD_REPLY_DIRECT 0

/* Remembers `addr:port` as the source to put back on the replies `rk` names. Writes only when
 * missing or changed (an LRU update per packet would cost more than the lookup); a missing entry
 * is written again by any packet of the flow (the LRU may evict it mid-flow). An entry a direct
 * flow took over is taken back only by a packet that starts a flow (a SYN, UDP): the last ACK
 * of a VIP flow closing late would otherwise take it back from the direct flow that reused the
 * port, and hijack that flow's replies. Returns 0, or -MD_REASON_DROP_CT_FULL (fail closed: the
 * replies would come from the backend's address). */
md_inline int flow_remember_reply(void *table, const struct md_flow_key *rk, const struct l4 *l4,
				  __u32 addr, __u16 port)
{
	struct md_flow rv = {};
	struct md_flow *known;

	known = bpf_map_lookup_elem(table, rk);
	if (known && known->addr == addr && known->port == port)
		return 0;
	if (known && known->addr == MD_REPLY_DIRECT && !ct_may_start(l4))
		return 0;
	rv.addr = addr;
	rv.port = port;
	if (bpf_map_update_elem(table, rk, &rv, BPF_ANY) < 0)
		return -MD_REASON_DROP_CT_FULL;
	return 0;
}

/*
 * A client's packet straight to an address that is not a VIP (a task, say, found through
 * tasks.NAME). If the reply tuple of this new flow still has a translation from an earlier flow
 * through a VIP with the same ports (an ephemeral port reused), the replies would get the VIP as
 * their source and the client would reset the connection: mark the tuple direct (a mark rather
 * than a delete, so that the late packets of the closing VIP flow do not write the translation
 * back; see flow_remember_reply). Done for a TCP SYN and for every UDP packet (one lookup);
 * other TCP packets cannot start a flow. If the table is full the mark is not written and the
 * old translation stays: the direct flow fails as it would have without this.
 */
md_inline void lb_direct_flow(struct __sk_buff *skb, struct iphdr *ip)
{
	struct md_flow_key rk = {};
	struct md_flow direct = {};
	struct md_flow *known;
	struct l4 l4 = {};
	void *table;

	if (!parse_l4(skb, ip, &l4))
		return;
	if (!ct_may_start(&l4))
		return;
	table = flow_table(ip->saddr);
	if (!table)
		return;
	flow_reply_key(&rk, ip->daddr, l4.dport, l4.sport, l4.proto);
	known = bpf_map_lookup_elem(table, &rk);
	if (known && known->addr != MD_REPLY_DIRECT) {
		direct.addr = MD_REPLY_DIRECT;
		bpf_map_update_elem(table, &rk, &direct, BPF_EXIST);
	}
}

/* An ICMP error about a flow a client of this node balanced (lib/icmp.h): translated back like
 * a reply. Returns PKT_ICMP_REWRITTEN, PKT_UNTOUCHED or -MD_REASON_DROP_REWRITE. */
md_inline int lb_icmp_from_backend(struct __sk_buff *skb, struct iphdr *ip)
{
	struct md_flow_key rk = {};
	struct icmp_error err = {};
	struct md_flow *rv;
	__u32 outer_src = ip->saddr;
	void *table;
	int ret;

	if (!icmp_error_parse(skb, ip, &err))
		return PKT_UNTOUCHED;
	table = flow_table(err.client);
	if (!table)
		return PKT_UNTOUCHED;
	flow_reply_key(&rk, err.backend, err.port, err.client_port, err.proto);
	rv = bpf_map_lookup_elem(table, &rk);
	if (!rv || rv->addr == MD_REPLY_DIRECT)
		return PKT_UNTOUCHED;
	ret = icmp_error_translate(skb, outer_src, &err, rv->addr, rv->port);
	if (ret < 0)
		return ret;
	return PKT_ICMP_REWRITTEN;
}

/*
 * If the packet is a backend's reply to a flow a client of this node balanced, rewrites its
 * source back to what the client sent to (the VIP; the node address and published port of a
 * hairpin flow); an ICMP error about such a flow is translated the same way. Returns
 * PKT_REWRITTEN or PKT_ICMP_REWRITTEN if it did (re-parse the packet), PKT_UNTOUCHED if the
 * packet is neither, or -MD_REASON_DROP_REWRITE.
 */
md_inline int lb_from_backend(struct __sk_buff *skb, struct iphdr *ip)
{
	struct md_flow_key rk = {};
	struct md_flow *rv;
	struct l4 l4 = {};
	__u32 backend = ip->saddr, addr;
	__u16 port;
	void *table;
	int ret;

	if (ip->protocol == IPPROTO_ICMP)
		return lb_icmp_from_backend(skb, ip);
	if (!parse_l4(skb, ip, &l4))
		return PKT_UNTOUCHED;
	table = flow_table(ip->daddr);
	if (!table)
		return PKT_UNTOUCHED;
	flow_reply_key(&rk, backend, l4.sport, l4.dport, l4.proto);
	rv = bpf_map_lookup_elem(table, &rk);
	if (!rv || rv->addr == MD_REPLY_DIRECT)
		return PKT_UNTOUCHED;
	addr = rv->addr;
	port = rv->port;
	ret = rewrite_addr(skb, &l4, IP_SRC_OFF, backend, addr);
	if (ret == 0)
		ret = rewrite_port(skb, &l4, L4_SPORT_OFF, l4.sport, port);
	if (ret < 0)
		return ret;
	return PKT_REWRITTEN;
}

/*
 * A task's answer to a flow it balanced onto itself (lib/lb.h gave that flow the gateway as its
 * source): from the task's own address to its gateway. The reply entry lb_balance() remembered
 * names what the task asked for; the source becomes that again and the destination the task, so
 * the packet goes back into it as the answer of its own service. Anything else to the gateway
 * is left alone (and dropped later: no endpoint has that address). Returns PKT_REWRITTEN,
 * PKT_UNTOUCHED or -MD_REASON_DROP_REWRITE.
 */
md_inline int lb_to_self_reply(struct __sk_buff *skb, struct iphdr *ip, const struct md_iface *iface)
{
	struct md_flow_key rk = {};
	struct md_flow *rv;
	struct l4 l4 = {};
	__u32 addr;
	__u16 port;
	void *table;
	int ret;

	if (!iface->gateway || ip->daddr != iface->gateway)
		return PKT_UNTOUCHED;
	if (!parse_l4(skb, ip, &l4))
		return PKT_UNTOUCHED;
	table = flow_table(iface->ip);
	if (!table)
		return PKT_UNTOUCHED;
	flow_reply_key(&rk, iface->ip, l4.sport, l4.dport, l4.proto);
	rv = bpf_map_lookup_elem(table, &rk);
	if (!rv || rv->addr == MD_REPLY_DIRECT)
		return PKT_UNTOUCHED;
	addr = rv->addr;
	port = rv->port;
	ret = rewrite_addr(skb, &l4, IP_SRC_OFF, iface->ip, addr);
	if (ret == 0)
		ret = rewrite_port(skb, &l4, L4_SPORT_OFF, l4.sport, port);
	if (ret == 0)
		ret = rewrite_addr(skb, &l4, IP_DST_OFF, iface->gateway, iface->ip);
	if (ret < 0)
		return ret;
	return PKT_REWRITTEN;
}

#endif /* MESHD_LIB_RNAT_H */
