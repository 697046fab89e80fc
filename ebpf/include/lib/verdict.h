/* SPDX-License-Identifier: Apache-2.0 */
/* The verdict counter map and the one helper that updates it (see abi/verdict.h for the types). */
#ifndef MESHD_LIB_VERDICT_H
#define MESHD_LIB_VERDICT_H

#include "common.h"
#include "events.h"
#include "../abi/verdict.h"

/*
 * md_verdict_v1: packets and bytes per (interface, reason, direction), one slot per CPU so the hot
 * path never contends on a shared counter. LRU so that counters of interfaces that are gone age
 * out instead of filling the map. Pinned by name under the node's bpffs directory, so counts
 * survive an agent restart. Bump the _vN suffix when the key or value layout changes.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, MD_VERDICT_MAX);
	__type(key, struct md_verdict_key);
	__type(value, struct md_verdict_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_verdict_v1 SEC(".maps");

/*
 * Counts one packet under (skb->ifindex, reason, dir). Never fails the packet: if the map is full
 * and the insert loses a race, the packet simply goes uncounted.
 */
md_inline void count_verdict(const struct __sk_buff *skb, enum md_dir dir, enum md_reason reason)
{
	struct md_verdict_key key = {
		.ifindex = skb->ifindex,
		.reason = reason,
		.dir = dir,
		.pad = 0,
	};
	struct md_verdict_val *val = bpf_map_lookup_elem(&md_verdict_v1, &key);

	if (val) {
		/* Per-CPU slot: no other CPU writes it, plain adds are safe. */
		val->packets += 1;
		val->bytes += skb->len;
		return;
	}

	struct md_verdict_val first = { .packets = 1, .bytes = skb->len };

	bpf_map_update_elem(&md_verdict_v1, &key, &first, BPF_NOEXIST);
}

/* Counts a drop, reports it to the monitor (lib/events.h: rate-limited per CPU) and
 * returns the verdict that drops the packet. A helper that fails returns its reason negated
 * (-MD_REASON_...); its caller passes it on as is: drop(skb, dir, -ret). */
md_inline int drop(const struct __sk_buff *skb, enum md_dir dir, enum md_reason reason)
{
	count_verdict(skb, dir, reason);
	event_drop(skb, dir, reason);
	return TC_ACT_SHOT;
}

#endif /* MESHD_LIB_VERDICT_H */
