/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connection tracking (types in abi/lb.h): a flow keeps the backend it was first given for as
 * long as it lives, so a change of the backend set moves only new flows. The rules of a flow's
 * life (ct_alive) serve both tables: md_ct_v3 here, for the routing mesh's outside clients
 * (keyed by the node address they used and the service), and the containers' own flow tables
 * (lib/flows.h). State is created only for a flow that can live: a TCP flow only by its SYN, and
 * only once a backend was found.
 */
#ifndef MESHD_LIB_CONNTRACK_H
#define MESHD_LIB_CONNTRACK_H

#include <linux/in.h>
#include "common.h"
#include "events.h"
#include "l4.h"
#include "maglev.h"
#include "node.h"
#include "../abi/lb.h"
#include "../abi/verdict.h"

/* Published ports' flows from outside clients, pinned to their backend. LRU: idle flows age out
 * under pressure only; a class of their own, so floods from the underlay (spoofed sources
 * included) never evict the flows of the node's containers. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MD_CT_MAX);
	__type(key, struct md_ct_key);
	__type(value, struct md_ct_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_ct_v3 SEC(".maps");

/* A FIN'd flow is forgotten this long after its last packet. */
#define CT_FIN_GRACE_NS (10ULL * 1000000000ULL)
/* last_seen is refreshed at most this often (a map write per packet would cost). */
#define CT_REFRESH_NS (1000000000ULL)

/* Whether a tracked flow (its flags and last packet) still holds: not idle past the node's
 * timeout, not long after a FIN, and not a new connection reusing the tuple (a SYN is always
 * balanced afresh; for an unchanged set of backends Maglev picks the same one anyway). */
md_inline int ct_alive(__u32 flags, __u64 last_seen, const struct l4 *l4, __u64 now)
{
	struct md_node_config *config = node_config();
	__u64 idle = now - last_seen;

	if (l4->syn)
		return 0;
	if ((flags & MD_CT_FIN) && idle > CT_FIN_GRACE_NS)
		return 0;
	if (config && config->ct_idle_ns && idle > config->ct_idle_ns)
		return 0;
	return 1;
}

/* Whether a packet without a tracked flow may start one: any UDP packet, and a TCP SYN. A TCP
 * packet of a flow never seen (or long forgotten) creates nothing: an ACK flood costs no state. */
md_inline int ct_may_start(const struct l4 *l4)
{
	return l4->proto != IPPROTO_TCP || l4->syn;
}

/*
 * The backend of an outside client's flow to service `svc`, into *backend: the tracked one while
 * the flow lives, else the Maglev slot of the flow hash, tracked from now on. A client RST
 * forgets the flow; a FIN lets it expire soon. Returns 0, -MD_REASON_DROP_NO_BACKEND (no Maglev
 * table: no backend), -MD_REASON_DROP_NO_FLOW (a TCP packet other than a SYN of an untracked
 * flow), or -MD_REASON_DROP_CT_FULL (the flow cannot be tracked).
 */
md_inline int ct_pick_backend(struct __sk_buff *skb, const struct md_service *svc,
			      const struct md_ct_key *ct, const struct l4 *l4, __u32 *backend)
{
	struct md_ct_val *tracked;
	struct md_ct_val pinned = {};
	__u32 *chosen;
	__u64 now = bpf_ktime_get_ns();

	tracked = bpf_map_lookup_elem(&md_ct_v3, ct);
	if (tracked && ct_alive(tracked->flags, tracked->last_seen, l4, now)) {
		*backend = tracked->backend_ip;
		if (l4->rst) {
			bpf_map_delete_elem(&md_ct_v3, ct);
		} else {
			if (l4->fin)
				tracked->flags |= MD_CT_FIN;
			if (now - tracked->last_seen > CT_REFRESH_NS || l4->fin)
				tracked->last_seen = now;
		}
		return 0;
	}
	/* An expired flow's own packets may take it up again (an idle connection outliving the
	 * timeout); a flow never tracked must start with a SYN. */
	if (!tracked && !ct_may_start(l4))
		return -MD_REASON_DROP_NO_FLOW;
	chosen = maglev_backend(svc, bpf_get_hash_recalc(skb));
	if (!chosen)
		return -MD_REASON_DROP_NO_BACKEND;
	pinned.backend_ip = *chosen;
	pinned.last_seen = now;
	/* Fail closed: a flow that cannot be tracked would lose its replies. */
	if (bpf_map_update_elem(&md_ct_v3, ct, &pinned, BPF_ANY) < 0)
		return -MD_REASON_DROP_CT_FULL;
	event_flow(skb, ct->client_ip, ct->client_port, ct->vip, ct->port, ct->proto, pinned.backend_ip);
	*backend = pinned.backend_ip;
	return 0;
}

#endif /* MESHD_LIB_CONNTRACK_H */
