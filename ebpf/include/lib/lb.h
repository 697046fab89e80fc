/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Service VIPs: Maglev selection, connection tracking and the address rewrites (with checksum
 * fix-ups) in both directions. Types in abi/lb.h.
 */
#ifndef MESHD_LIB_LB_H
#define MESHD_LIB_LB_H

#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <stddef.h>
#include "common.h"
#include "node.h"
#include "eth.h"
#include "../abi/lb.h"

/* Every VIP of every service in vip mode. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct md_service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_services_v1 SEC(".maps");

/* One service's Maglev table (the template of md_maglev_v2's values). BPF_F_INNER_MAP lets each
 * table have its own size M; the agent creates them with the same flags. */
struct md_maglev_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, __u32);
};

/* Every vip service's Maglev table, by service id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct md_maglev_table); /* last: a flexible array member */
} md_maglev_v2 SEC(".maps");

/* The backend in slot `hash % M` of service `svc`'s Maglev table, or NULL (no table, no backend).
 * M is read from the table itself, so it always matches the table's length. */
md_inline __u32 *maglev_backend(const struct md_service *svc, __u32 hash)
{
	__u32 size_at = MD_MAGLEV_SIZE, slot;
	__u32 *size;
	void *table;

	table = bpf_map_lookup_elem(&md_maglev_v2, &svc->id);
	if (!table)
		return NULL;
	size = bpf_map_lookup_elem(table, &size_at);
	if (!size || *size == 0)
		return NULL;
	slot = MD_MAGLEV_SLOTS + hash % *size;
	return bpf_map_lookup_elem(table, &slot);
}

/* Flows to VIPs, pinned to their backend. LRU: idle flows age out under pressure only. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct md_ct_key);
	__type(value, struct md_ct_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_ct_v2 SEC(".maps");

/* Reverse translation of replies. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct md_rnat_key);
	__type(value, struct md_rnat_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_rnat_v1 SEC(".maps");

#define IP_CSUM_OFF (sizeof(struct ethhdr) + offsetof(struct iphdr, check))
#define IP_SRC_OFF (sizeof(struct ethhdr) + offsetof(struct iphdr, saddr))
#define IP_DST_OFF (sizeof(struct ethhdr) + offsetof(struct iphdr, daddr))
/* TCP and UDP both start with the source and destination ports. */
#define L4_SPORT_OFF (sizeof(struct ethhdr) + sizeof(struct iphdr))
#define L4_DPORT_OFF (L4_SPORT_OFF + sizeof(__u16))
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* The L4 ports, TCP flags and checksum offset of a TCP or UDP packet without IP options. */
struct l4 {
	__u16 sport;
	__u16 dport;
	__u32 csum_off;
	__u8 proto;
	__u8 syn; /* a TCP SYN without ACK: a new connection */
	__u8 fin;
	__u8 rst;
};

/* A FIN'd flow is forgotten this long after its last packet. */
#define CT_FIN_GRACE_NS (10ULL * 1000000000ULL)
/* last_seen is refreshed at most this often (a map write per packet would cost). */
#define CT_REFRESH_NS (1000000000ULL)

/* Fills `out` for TCP and UDP; returns 0, or -1 for anything else (or options, or too short). */
md_inline int parse_l4(struct __sk_buff *skb, struct iphdr *ip, struct l4 *out)
{
	void *end = (void *)(long)skb->data_end;
	__u32 l4_off = sizeof(struct ethhdr) + sizeof(struct iphdr);

	/* Options would move the L4 header; a later fragment has none. */
	if (ip->ihl != 5 || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		return -1;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);

		if ((void *)(tcp + 1) > end)
			return -1;
		out->sport = tcp->source;
		out->dport = tcp->dest;
		out->csum_off = l4_off + offsetof(struct tcphdr, check);
		out->syn = tcp->syn && !tcp->ack;
		out->fin = tcp->fin;
		out->rst = tcp->rst;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);

		if ((void *)(udp + 1) > end)
			return -1;
		out->sport = udp->source;
		out->dport = udp->dest;
		out->csum_off = l4_off + offsetof(struct udphdr, check);
	} else {
		return -1;
	}
	out->proto = ip->protocol;
	return 0;
}

/* Rewrites the IPv4 address at `addr_off` from `old` to `new`, fixing the IP and L4 checksums
 * (the L4 checksum covers the address through the pseudo-header; a zero UDP checksum stays
 * zero). Packet pointers are invalid afterwards. Returns 0 or a negative error. */
md_inline int rewrite_addr(struct __sk_buff *skb, const struct l4 *l4, __u32 addr_off, __u32 old, __u32 new)
{
	__u64 flags = BPF_F_PSEUDO_HDR | sizeof(new);

	if (l4->proto == IPPROTO_UDP)
		flags |= BPF_F_MARK_MANGLED_0;
	if (bpf_l4_csum_replace(skb, l4->csum_off, old, new, flags) < 0)
		return -1;
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old, new, sizeof(new)) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, addr_off, &new, sizeof(new), 0);
}

/* Rewrites the TCP or UDP port at `port_off` from `old` to `new`, fixing the L4 checksum (ports
 * are not in the pseudo-header). Packet pointers are invalid afterwards. */
md_inline int rewrite_port(struct __sk_buff *skb, const struct l4 *l4, __u32 port_off, __u16 old, __u16 new)
{
	__u64 flags = sizeof(new);

	if (old == new)
		return 0;
	if (l4->proto == IPPROTO_UDP)
		flags |= BPF_F_MARK_MANGLED_0;
	if (bpf_l4_csum_replace(skb, l4->csum_off, old, new, flags) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, port_off, &new, sizeof(new), 0);
}

/* Result of lb_to_vip(). */
enum lb_result {
	LB_NOT_A_VIP = 0, /* nothing done */
	LB_DONE = 1,      /* destination rewritten to a backend; re-parse the packet */
	LB_NO_BACKEND = 2,
	LB_ERROR = 3,
};

/* Whether a tracked flow still holds: not idle past the node's timeout, not long after a FIN,
 * and not a new connection reusing the tuple (a SYN is always balanced afresh; for an unchanged
 * set of backends Maglev picks the same one anyway). */
md_inline int ct_live(const struct md_ct_val *ct, const struct l4 *l4, __u64 now)
{
	struct md_node_config *config = node_config();
	__u64 idle = now - ct->last_seen;

	if (l4->syn)
		return 0;
	if ((ct->flags & MD_CT_FIN) && idle > CT_FIN_GRACE_NS)
		return 0;
	if (config && config->ct_idle_ns && idle > config->ct_idle_ns)
		return 0;
	return 1;
}

/*
 * The backend of a flow to service `svc`: the tracked one while the flow lives, else the Maglev
 * slot of the flow hash, tracked from now on. A client RST forgets the flow; a FIN lets it expire
 * soon. The same code serves VIPs and published ports (whose `ct->vip` is the node address).
 */
md_inline enum lb_result lb_pick(struct __sk_buff *skb, const struct md_service *svc,
				 const struct md_ct_key *ct, const struct l4 *l4, __u32 *backend)
{
	struct md_ct_val *tracked;
	struct md_ct_val pinned = {};
	__u32 *chosen;
	__u64 now = bpf_ktime_get_ns();

	tracked = bpf_map_lookup_elem(&md_ct_v2, ct);
	if (tracked && ct_live(tracked, l4, now)) {
		*backend = tracked->backend_ip;
		if (l4->rst) {
			bpf_map_delete_elem(&md_ct_v2, ct);
		} else {
			if (l4->fin)
				tracked->flags |= MD_CT_FIN;
			if (now - tracked->last_seen > CT_REFRESH_NS || l4->fin)
				tracked->last_seen = now;
		}
		return LB_DONE;
	}
	chosen = maglev_backend(svc, bpf_get_hash_recalc(skb));
	if (!chosen)
		return LB_NO_BACKEND;
	pinned.backend_ip = *chosen;
	pinned.last_seen = now;
	/* Fail closed: a flow that cannot be tracked would lose its replies. */
	if (bpf_map_update_elem(&md_ct_v2, ct, &pinned, BPF_ANY) < 0)
		return LB_ERROR;
	*backend = pinned.backend_ip;
	return LB_DONE;
}

/*
 * If the packet goes to a service VIP, picks its backend and rewrites the destination to it,
 * remembering how to translate the replies back.
 */
md_inline enum lb_result lb_to_vip(struct __sk_buff *skb, struct iphdr *ip)
{
	struct md_service *svc = bpf_map_lookup_elem(&md_services_v1, &ip->daddr);
	struct md_ct_key ct = {};
	struct md_rnat_key rk = {};
	struct md_rnat_val rv = {};
	struct md_rnat_val *known;
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
	picked = lb_pick(skb, svc, &ct, &l4, &backend);
	if (picked != LB_DONE)
		return picked;

	rk.backend_ip = backend;
	rk.client_ip = client;
	rk.port = l4.dport;
	rk.client_port = l4.sport;
	rk.proto = l4.proto;
	rv.vip = vip;
	/* Write only when missing or changed: an LRU update on every packet of a flow would cost
	 * more than the lookup (it showed on new-connection-per-request loads). */
	known = bpf_map_lookup_elem(&md_rnat_v1, &rk);
	if ((!known || known->vip != vip) && bpf_map_update_elem(&md_rnat_v1, &rk, &rv, BPF_ANY) < 0)
		return LB_ERROR;
	if (rewrite_addr(skb, &l4, IP_DST_OFF, vip, backend) < 0)
		return LB_ERROR;
	return LB_DONE;
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

	if (parse_l4(skb, ip, &l4) < 0)
		return;
	if (l4.proto == IPPROTO_TCP && !l4.syn)
		return;
	rk.backend_ip = ip->daddr;
	rk.client_ip = ip->saddr;
	rk.port = l4.dport;
	rk.client_port = l4.sport;
	rk.proto = l4.proto;
	if (bpf_map_lookup_elem(&md_rnat_v1, &rk))
		bpf_map_delete_elem(&md_rnat_v1, &rk);
}

/*
 * If the packet is a backend's reply to a flow that was balanced on this node, rewrites its
 * source back to the VIP. Returns 1 if it did (re-parse the packet), 0 if not, -1 on error.
 */
md_inline int lb_from_backend(struct __sk_buff *skb, struct iphdr *ip)
{
	struct md_rnat_key rk = {};
	struct md_rnat_val *rv;
	struct l4 l4 = {};

	if (parse_l4(skb, ip, &l4) < 0)
		return 0;
	rk.backend_ip = ip->saddr;
	rk.client_ip = ip->daddr;
	rk.port = l4.sport;
	rk.client_port = l4.dport;
	rk.proto = l4.proto;
	rv = bpf_map_lookup_elem(&md_rnat_v1, &rk);
	if (!rv)
		return 0;
	if (rewrite_addr(skb, &l4, IP_SRC_OFF, rk.backend_ip, rv->vip) < 0)
		return -1;
	return 1;
}

#endif /* MESHD_LIB_LB_H */
