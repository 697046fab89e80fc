/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reverse translation of replies to balanced flows (types in abi/lb.h). A flow is known here by
 * its reply as it leaves the backend (struct md_rnat_key, filled by reply_key()); the routing
 * mesh keys its own reply tables the same way. lb_from_backend() puts the VIP back as a reply's
 * source; lb_direct_flow() forgets a stale translation that would hijack a direct flow.
 */
#ifndef MESHD_LIB_RNAT_H
#define MESHD_LIB_RNAT_H

#include <linux/in.h>
#include "common.h"
#include "eth.h"
#include "l4.h"
#include "../abi/lb.h"
#include "../abi/verdict.h"

/* Reverse translation of replies: the VIP of each balanced flow, by its reply. LRU: the flows
 * of clients long gone age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MD_RNAT_MAX);
	__type(key, struct md_rnat_key);
	__type(value, struct md_rnat_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_rnat_v1 SEC(".maps");

/* The reply direction of a flow: as the backend at `backend:port` sends to the client at
 * `client:client_port`. `rk` starts zeroed (its padding is part of the hashed key). */
md_inline void reply_key(struct md_rnat_key *rk, __u32 backend, __u16 port, __u32 client,
			 __u16 client_port, __u8 proto)
{
	rk->backend_ip = backend;
	rk->port = port;
	rk->client_ip = client;
	rk->client_port = client_port;
	rk->proto = proto;
}

/* Remembers `vip` as the source to put back on the replies `rk` names. Writes only when missing
 * or changed: an LRU update on every packet of a flow would cost more than the lookup (it showed
 * on new-connection-per-request loads). Returns 0, or -MD_REASON_DROP_CT_FULL when the entry
 * cannot be written (fail closed: the replies would come from the backend's address). */
md_inline int rnat_remember(const struct md_rnat_key *rk, __u32 vip)
{
	struct md_rnat_val rv = {};
	struct md_rnat_val *known;

	rv.vip = vip;
	known = bpf_map_lookup_elem(&md_rnat_v1, rk);
	if ((!known || known->vip != vip) && bpf_map_update_elem(&md_rnat_v1, rk, &rv, BPF_ANY) < 0)
		return -MD_REASON_DROP_CT_FULL;
	return 0;
}

/*
 * A client's packet straight to an address that is not a VIP (a task, say, found through
 * tasks.NAME). If the reply tuple of this new flow still has a reverse translation from an
 * earlier flow through a VIP with the same ports (an ephemeral port reused), the replies would
 * get the VIP as their source and the client would reset the connection: forget it. Done for
 * a TCP SYN and for every UDP packet (one lookup); other TCP packets cannot start a flow.
 */
md_inline void lb_direct_flow(struct __sk_buff *skb, struct iphdr *ip)
{
	struct md_rnat_key rk = {};
	struct l4 l4 = {};

	if (!parse_l4(skb, ip, &l4))
		return;
	if (l4.proto == IPPROTO_TCP && !l4.syn)
		return;
	reply_key(&rk, ip->daddr, l4.dport, ip->saddr, l4.sport, l4.proto);
	if (bpf_map_lookup_elem(&md_rnat_v1, &rk))
		bpf_map_delete_elem(&md_rnat_v1, &rk);
}

/*
 * If the packet is a backend's reply to a flow that was balanced on this node, rewrites its
 * source back to the VIP. Returns PKT_REWRITTEN if it did (re-parse the packet), PKT_UNTOUCHED
 * if the packet is no such reply, or -MD_REASON_DROP_REWRITE.
 */
md_inline int lb_from_backend(struct __sk_buff *skb, struct iphdr *ip)
{
	struct md_rnat_key rk = {};
	struct md_rnat_val *rv;
	struct l4 l4 = {};
	int ret;

	if (!parse_l4(skb, ip, &l4))
		return PKT_UNTOUCHED;
	reply_key(&rk, ip->saddr, l4.sport, ip->daddr, l4.dport, l4.proto);
	rv = bpf_map_lookup_elem(&md_rnat_v1, &rk);
	if (!rv)
		return PKT_UNTOUCHED;
	ret = rewrite_addr(skb, &l4, IP_SRC_OFF, rk.backend_ip, rv->vip);
	if (ret < 0)
		return ret;
	return PKT_REWRITTEN;
}

#endif /* MESHD_LIB_RNAT_H */
