/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connection tracking (types in abi/lb.h): a flow keeps the backend it was first given for as
 * long as it lives, so a change of the backend set moves only new flows. One policy, flow_pin(),
 * serves both tables: md_ct_v3 here, for the routing mesh's outside clients (keyed by the node
 * address they used and the service), and the containers' own flow tables (lib/flows.h). State
 * is created only for a flow that can live: a TCP flow only by its SYN, and only once a backend
 * was found.
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

/* The two tables that pin flows to backends, for flow_pin(): md_ct_v3 (struct md_ct_val) and an
 * endpoint's flow table (struct md_flow, lib/flows.h). flow_pin() is inlined with a constant
 * kind, so every branch on it folds away. */
enum flow_table_kind {
	FLOW_TABLE_MESH,     /* md_ct_v3: no port (the published port's target port is the service's) */
	FLOW_TABLE_ENDPOINT, /* an endpoint's flow table: the backend's port too */
};

/* What flow_pin() did with a packet that may go on. */
enum flow_pin_result {
	FLOW_FOLLOWED = 0, /* the tracked flow's backend */
	FLOW_PINNED = 1,   /* a fresh Maglev pick, tracked from now on: the caller reports the new flow */
};

/* A flow's backend: its address and (FLOW_TABLE_ENDPOINT) port, network order. */
struct flow_backend {
	__u32 addr;
	__u16 port;
};

/*
 * The flow-pinning policy, the one both tables follow: the backend of flow `key` in `table` to
 * service `svc`, into *out. While the flow lives (ct_alive) it keeps its tracked backend; a
 * client RST forgets the flow, a FIN lets it expire soon, and last_seen is refreshed at most
 * once a second. Otherwise the Maglev slot of the flow hash, tracked from now on with `port` as
 * the backend's port (an expired flow's own packets may take it up again: an idle connection
 * outliving the timeout; a flow never tracked must start: ct_may_start). Returns FLOW_FOLLOWED,
 * FLOW_PINNED, -MD_REASON_DROP_NO_FLOW, -MD_REASON_DROP_NO_BACKEND (no Maglev table) or
 * -MD_REASON_DROP_CT_FULL (fail closed: a flow that cannot be tracked would lose its replies).
 */
md_inline int flow_pin(struct __sk_buff *skb, void *table, enum flow_table_kind kind, const void *key,
		       const struct md_service *svc, const struct l4 *l4, __u16 port, struct flow_backend *out)
{
	void *tracked;
	__u32 *chosen;
	__u64 now = bpf_ktime_get_ns();
	int err;

	tracked = bpf_map_lookup_elem(table, key);
	if (tracked) {
		struct md_ct_val *ct = tracked;
		struct md_flow *flow = tracked;
		__u32 flags = kind == FLOW_TABLE_MESH ? ct->flags : flow->flags;
		__u64 *last_seen = kind == FLOW_TABLE_MESH ? &ct->last_seen : &flow->last_seen;

		if (ct_alive(flags, *last_seen, l4, now)) {
			out->addr = kind == FLOW_TABLE_MESH ? ct->backend_ip : flow->addr;
			out->port = kind == FLOW_TABLE_MESH ? 0 : flow->port;
			if (l4->rst) {
				bpf_map_delete_elem(table, key);
				return FLOW_FOLLOWED;
			}
			if (l4->fin) {
				if (kind == FLOW_TABLE_MESH)
					ct->flags |= MD_CT_FIN;
				else
					flow->flags |= MD_CT_FIN;
			}
			if (now - *last_seen > CT_REFRESH_NS || l4->fin)
				*last_seen = now;
			return FLOW_FOLLOWED;
		}
	}
	if (!tracked && !ct_may_start(l4))
		return -MD_REASON_DROP_NO_FLOW;
	chosen = maglev_backend(svc, bpf_get_hash_recalc(skb));
	if (!chosen)
		return -MD_REASON_DROP_NO_BACKEND;
	out->addr = *chosen;
	out->port = port;
	if (kind == FLOW_TABLE_MESH) {
		struct md_ct_val pinned = { .backend_ip = out->addr, .last_seen = now };

		err = bpf_map_update_elem(table, key, &pinned, BPF_ANY);
	} else {
		struct md_flow pinned = { .addr = out->addr, .port = port, .last_seen = now };

		err = bpf_map_update_elem(table, key, &pinned, BPF_ANY);
	}
	if (err < 0)
		return -MD_REASON_DROP_CT_FULL;
	return FLOW_PINNED;
}

#endif /* MESHD_LIB_CONNTRACK_H */
