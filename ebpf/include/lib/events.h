/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Monitor events (types in abi/events.h): drop() and conntrack's new flows report single packets
 * to the agent through the ring buffer md_events_v1, behind a per-CPU token bucket so a flood
 * costs the agent a bounded number of events per second, however many packets it drops. With the
 * type off (md_event_config.mask), an event costs one array lookup.
 */
#ifndef MESHD_LIB_EVENTS_H
#define MESHD_LIB_EVENTS_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <stddef.h>
#include <bpf/bpf_endian.h>
#include "common.h"
#include "../abi/events.h"

/* The events themselves. Shared by every program (pinned by name); read by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, MD_EVENTS_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_events_v1 SEC(".maps");

/* Which types are on and the rate limit; written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MD_EVENT_CONFIG_MAX);
	__type(key, __u32);
	__type(value, struct md_event_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_event_config_v1 SEC(".maps");

/* A token bucket per CPU and type: no CPU waits for another, and each one's budget is its own. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MD_EVENT_BUCKETS_MAX);
	__type(key, __u32);
	__type(value, struct md_event_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_event_bucket_v1 SEC(".maps");

/*
 * The bucket of `type` if an event of that type may go out now (its credit taken), else NULL:
 * the type is off, or over the rate (counted in `suppressed`).
 */
md_inline struct md_event_bucket *event_admit(enum md_event_type type)
{
	__u32 zero = 0, slot = type - 1;
	struct md_event_config *config = bpf_map_lookup_elem(&md_event_config_v1, &zero);
	struct md_event_bucket *bucket;
	__u64 now, credit;

	if (!config || !(config->mask & type))
		return NULL;
	bucket = bpf_map_lookup_elem(&md_event_bucket_v1, &slot);
	if (!bucket)
		return NULL;
	/* Per-CPU slot: no other CPU writes it, plain arithmetic is safe. */
	now = bpf_ktime_get_ns();
	credit = bucket->credit_ns + (now - bucket->last_ns);
	if (credit > config->burst_ns)
		credit = config->burst_ns;
	bucket->last_ns = now;
	if (credit < config->interval_ns) {
		bucket->credit_ns = credit;
		bucket->suppressed += 1;
		return NULL;
	}
	bucket->credit_ns = credit - config->interval_ns;
	return bucket;
}

/* A zeroed event of `type` about a packet of `len` bytes on `ifindex` in the ring buffer, or
 * NULL (counted in `lost`) when it is full. */
md_inline struct md_event *event_reserve(struct md_event_bucket *bucket, __u32 ifindex, __u32 len,
					 enum md_event_type type)
{
	struct md_event *event = bpf_ringbuf_reserve(&md_events_v1, sizeof(*event), 0);

	if (!event) {
		bucket->lost += 1;
		return NULL;
	}
	__builtin_memset(event, 0, sizeof(*event));
	event->time_ns = bpf_ktime_get_ns();
	event->ifindex = ifindex;
	event->len = len;
	event->type = type;
	bucket->emitted += 1;
	return event;
}

/* Addresses, protocol and ports of an IPv4 packet into `event`, read with bpf_skb_load_bytes so
 * that no packet pointer (invalidated or not by the caller's rewrites) is needed. Anything that
 * does not parse stays zero. */
md_inline void event_fill_ipv4(const struct __sk_buff *skb, struct md_event *event)
{
	struct iphdr ip;
	__u16 ports[2];
	__u16 proto;

	if (bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_proto), &proto, sizeof(proto)) < 0 ||
	    proto != bpf_htons(ETH_P_IP))
		return;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return;
	event->saddr = ip.saddr;
	event->daddr = ip.daddr;
	event->proto = ip.protocol;
	if (ip.protocol != IPPROTO_TCP && ip.protocol != IPPROTO_UDP)
		return;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + ip.ihl * 4, ports, sizeof(ports)) < 0)
		return;
	event->sport = ports[0];
	event->dport = ports[1];
}

/* Reports a dropped packet (called by drop(), lib/verdict.h). */
md_inline void event_drop(const struct __sk_buff *skb, __u8 dir, __u16 reason)
{
	struct md_event_bucket *bucket = event_admit(MD_EVENT_DROP);
	struct md_event *event;

	if (!bucket)
		return;
	event = event_reserve(bucket, skb->ifindex, skb->len, MD_EVENT_DROP);
	if (!event)
		return;
	event->dir = dir;
	event->reason = reason;
	event_fill_ipv4(skb, event);
	bpf_ringbuf_submit(event, 0);
}

/* A flow event: `client:client_port` asked for `addr:port` (`proto`), `backend` was chosen,
 * seen on `ifindex` (a packet of `len` bytes), balanced where `origin` says. */
struct flow_seen {
	__u32 ifindex;
	__u32 len;
	__u32 client;
	__u32 addr;
	__u32 backend;
	__u16 client_port;
	__u16 port;
	__u16 origin; /* enum md_event_flow_origin */
	__u8 proto;
};

md_inline void event_flow_seen(const struct flow_seen *flow)
{
	struct md_event_bucket *bucket = event_admit(MD_EVENT_FLOW);
	struct md_event *event;

	if (!bucket)
		return;
	event = event_reserve(bucket, flow->ifindex, flow->len, MD_EVENT_FLOW);
	if (!event)
		return;
	event->dir = MD_EVENT_DIR_UNKNOWN;
	event->reason = flow->origin;
	event->saddr = flow->client;
	event->sport = flow->client_port;
	event->daddr = flow->addr;
	event->dport = flow->port;
	event->proto = flow->proto;
	event->backend = flow->backend;
	bpf_ringbuf_submit(event, 0);
}

/* Reports a new balanced flow (by mesh_to_backend(), lib/mesh.h, when flow_pin() pinned it): the
 * client, the address and port it asked for, the protocol and the backend chosen. Addresses in
 * network order. For a container's own flows, see event_flow_from_packet() and
 * event_flow_from_socket(). */
md_inline void event_flow(const struct __sk_buff *skb, __u32 client, __u16 client_port, __u32 addr,
			  __u16 port, __u8 proto, __u32 backend)
{
	struct flow_seen flow = {
		.ifindex = skb->ifindex, .len = skb->len, .client = client, .client_port = client_port,
		.addr = addr, .port = port, .proto = proto, .backend = backend,
		.origin = MD_EVENT_FLOW_PACKET,
	};

	event_flow_seen(&flow);
}

/* Reports a new balanced flow from the packet that starts it, before any rewrite (by
 * lb_balance(), lib/lb.h, when flow_pin() pinned a container's flow): client, VIP, ports and
 * protocol as the packet carries them, and the backend chosen. */
md_inline void event_flow_from_packet(const struct __sk_buff *skb, __u32 backend)
{
	struct md_event_bucket *bucket = event_admit(MD_EVENT_FLOW);
	struct md_event *event;

	if (!bucket)
		return;
	event = event_reserve(bucket, skb->ifindex, skb->len, MD_EVENT_FLOW);
	if (!event)
		return;
	event->dir = MD_EVENT_DIR_UNKNOWN;
	event_fill_ipv4(skb, event);
	event->backend = backend;
	bpf_ringbuf_submit(event, 0);
}

/* Reports a container's connection balanced at its connect() (sock.bpf.c): no packet yet, so
 * the interface and client address are the container's on the VIP's network, and the client's
 * port is 0 (the kernel chooses it after the hook). */
md_inline void event_flow_from_socket(__u32 ifindex, __u32 client, __u32 vip, __u16 port, __u8 proto,
				      __u32 backend)
{
	struct flow_seen flow = {
		.ifindex = ifindex, .client = client, .addr = vip, .port = port, .proto = proto,
		.backend = backend, .origin = MD_EVENT_FLOW_SOCKET,
	};

	event_flow_seen(&flow);
}

#endif /* MESHD_LIB_EVENTS_H */
