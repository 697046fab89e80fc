/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The overlay fast path (types in abi/overlay.h): VXLAN without the node's VXLAN device on the
 * data path.
 *
 *   sending node                                  receiving node
 *   container veth (tc ingress) -> overlay_encap:  underlay (tc ingress) -> vxlan_sender_ok, then
 *     grow 50 bytes (bpf_skb_adjust_room with       overlay_decap: the same checks vxlan_ingress
 *     the encap flags: GSO keeps working), write    makes, shrink 50 bytes, lb_from_backend,
 *     outer Ethernet/IPv4/UDP/VXLAN, redirect to    MACs, redirect_peer into the container
 *     the underlay interface
 *
 * Both helpers return whether they took the packet (1, with the TC verdict in *verdict) or not
 * (0: the packet is untouched and takes the VXLAN device as before). The fast path takes only
 * what it can do exactly as the device path would: IPv4 underlay, a known next hop, no outer
 * fragments or options, a plain VXLAN header, an inner packet from a remote endpoint of the
 * sending node to a local endpoint of the same network. Everything else (node traffic, the
 * routing mesh's flows from outside the overlay, every packet the device path drops and counts)
 * goes on to the VXLAN device and vxlan_ingress, which decide and count it as before.
 *
 * The VXLAN device stays: its UDP socket on the data path port is what lets the kernel's GRO merge the
 * tunnel packets on the underlay (without it, tc sees only single frames), and it remains the
 * path for everything above and for the node's own traffic (vxlan_to_tunnel).
 */
#ifndef MESHD_LIB_OVERLAY_H
#define MESHD_LIB_OVERLAY_H

#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "common.h"
#include "endpoint.h"
#include "eth.h"
#include "deliver.h"
#include "encrypt.h"
#include "l4.h"
#include "node.h"
#include "tunnel.h"
#include "verdict.h"
#include "../abi/overlay.h"

/* The Debian 6.1 UAPI headers predate it; the kernels the fast path runs on have it (5.18+). */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#endif

#ifndef AF_INET
#define AF_INET 2
#endif

/* A next hop found by a route lookup is used without a new lookup for this long; after that the
 * next packet looks again (a router that failed over, a node that came back with another MAC). */
#define MD_OVERLAY_HOP_RECHECK_NS 1000000000ULL

/* The VXLAN header: flags (I bit: a VNI is present) and the VNI in the upper 24 bits. */
struct md_vxlan {
	__be32 flags;
	__be32 vni;
};

#define MD_VXLAN_FLAGS_VNI bpf_htonl(0x08000000)

/* What the encapsulation puts before the inner frame's IPv4 header. Packed with 2-byte alignment:
 * clang then uses 16-bit loads and stores instead of byte ones. */
struct md_vxlan_frame {
	struct ethhdr eth;
	struct iphdr ip;
	struct udphdr udp;
	struct md_vxlan vx;
	struct ethhdr inner;
} __attribute__((packed, aligned(2)));

/* The bytes the encapsulation adds: outer IPv4, UDP, VXLAN and the inner Ethernet header. */
#define MD_VXLAN_ENCAP_LEN (sizeof(struct md_vxlan_frame) - sizeof(struct ethhdr))

#define MD_ENCAP_FLAGS                                                                            \
	(BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH | \
	 BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN) | BPF_F_ADJ_ROOM_FIXED_GSO)
/* FIXED_GSO on both sides: the container's MTU already leaves room for the 50 bytes, so the
 * segment size must stay what the container's TCP chose (without it, encap shrinks the segments
 * by 50 and decap hands the container segments 50 bytes larger than its MSS). */
#define MD_DECAP_FLAGS (BPF_F_ADJ_ROOM_DECAP_L3_IPV4 | BPF_F_ADJ_ROOM_FIXED_GSO)

/* The fast path's settings (one entry, key 0; zero, the fast path off, until the agent writes). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MD_OVERLAY_MAX);
	__type(key, __u32);
	__type(value, struct md_overlay_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_overlay_v1 SEC(".maps");

/* How to reach each node this one sends to (abi/overlay.h). LRU: nodes long gone age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MD_OVERLAY_HOPS_MAX);
	__type(key, __u32);
	__type(value, struct md_overlay_hop);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_overlay_hops_v1 SEC(".maps");

/* The settings if the fast path is on, else NULL. */
md_inline struct md_overlay_config *overlay_on(void)
{
	__u32 zero = 0;
	struct md_overlay_config *cfg = bpf_map_lookup_elem(&md_overlay_v1, &zero);

	if (!cfg || !(cfg->flags & MD_OVERLAY_FAST_PATH) || !cfg->underlay_ifindex)
		return NULL;
	return cfg;
}

/*
 * How to reach node `node` (network order) from `local` on the wire, into *out: the remembered
 * hop while it is fresh, else a route and neighbour lookup (the same one vxlan_sender_ok makes
 * for the other direction). Returns 1, or 0 when the fast path cannot send there: no neighbour
 * entry yet (the VXLAN device's send resolves it), or the route leaves by another interface.
 */
md_inline int overlay_hop(struct __sk_buff *skb, const struct md_overlay_config *cfg, __u32 local,
			  __u32 node, struct md_overlay_hop *out)
{
	struct bpf_fib_lookup fib = {};
	struct md_overlay_hop *known;
	__u64 now = bpf_ktime_get_ns();

	known = bpf_map_lookup_elem(&md_overlay_hops_v1, &node);
	if (known && now - known->checked_ns < MD_OVERLAY_HOP_RECHECK_NS) {
		*out = *known;
		return 1;
	}
	fib.family = AF_INET;
	fib.l4_protocol = IPPROTO_UDP;
	fib.ipv4_src = local;
	fib.ipv4_dst = node;
	fib.ifindex = cfg->underlay_ifindex;
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return 0;
	if (fib.ifindex != cfg->underlay_ifindex)
		return 0;
	__builtin_memcpy(out->dmac, fib.dmac, ETH_ALEN);
	__builtin_memcpy(out->smac, fib.smac, ETH_ALEN);
	out->ifindex = fib.ifindex;
	out->checked_ns = now;
	bpf_map_update_elem(&md_overlay_hops_v1, &node, out, BPF_ANY);
	return 1;
}

/* The IPv4 header checksum of a 20-byte header whose check field is 0. */
md_inline __u16 ipv4_csum(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/*
 * Encapsulates a container's packet for remote endpoint `ep` and sends it out of the underlay
 * interface, as the VXLAN device would have: from the node's advertise address, UDP to vxlan_port() with
 * a source port from the inner flow's hash (one per flow, so the receiver's RSS and the
 * underlay's ECMP spread them), no UDP checksum (as BPF_F_ZERO_CSUM_TX on the device path), DF
 * set, TTL 64. Returns 1 with the redirect in *verdict, or 0 (untouched: take the device).
 */
md_inline int overlay_encap(struct __sk_buff *skb, const struct md_endpoint *ep, int *verdict)
{
	struct md_overlay_config *cfg = overlay_on();
	struct md_node_config *node = node_config();
	struct md_overlay_hop hop = {};
	struct md_vxlan_frame *f;
	struct iphdr ip = {};
	struct ethhdr *eth;
	__u8 inner_src[ETH_ALEN], inner_dst[ETH_ALEN];
	__u32 len = skb->len, local, remote = ep->node_ip, vni = ep->vni, hash, tot;
	__u16 sport;
	void *end;

	if (!cfg || !node || !node->node_ip || skb->protocol != bpf_htons(ETH_P_IP))
		return 0;
	/* An encrypted network's packets must go through WireGuard: the device path routes them
	 * there (lib/encrypt.h), the fast path would put them on the wire. */
	if (vni_encrypted(vni))
		return 0;
	local = node->node_ip;
	/* The outer IPv4 length is 16 bits (a BIG TCP super-packet would not fit). */
	tot = len - ETH_HLEN + MD_VXLAN_ENCAP_LEN;
	if (len < ETH_HLEN || tot > 0xffff)
		return 0;
	/* A single packet too large for the underlay: the device path sends it (or says why not). */
	if (!skb->gso_size && tot > cfg->underlay_mtu)
		return 0;
	if (!overlay_hop(skb, cfg, local, remote, &hop))
		return 0;
	eth = parse_eth(skb);
	if (!eth)
		return 0;
	__builtin_memcpy(inner_src, eth->h_source, ETH_ALEN);
	__builtin_memcpy(inner_dst, eth->h_dest, ETH_ALEN);
	/* The inner flow's hash (the socket's for local TCP), before the headers move. */
	hash = bpf_get_hash_recalc(skb);
	sport = 0xc000 | ((hash ^ (hash >> 16)) & 0x3fff);

	/* Fails (packet untouched) for an skb that is already encapsulated, e.g. one decapsulated
	 * by overlay_decap that the container sends on: the device path takes it. */
	if (bpf_skb_adjust_room(skb, MD_VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC, MD_ENCAP_FLAGS) < 0)
		return 0;
	f = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	if ((void *)(f + 1) > end) {
		*verdict = drop(skb, MD_DIR_FROM_CONTAINER, MD_REASON_DROP_MALFORMED);
		return 1;
	}
	__builtin_memcpy(f->eth.h_dest, hop.dmac, ETH_ALEN);
	__builtin_memcpy(f->eth.h_source, hop.smac, ETH_ALEN);
	f->eth.h_proto = bpf_htons(ETH_P_IP);

	/* Built on the stack: a checksum over the packed frame would read through an unaligned
	 * pointer. */
	ip.version = 4;
	ip.ihl = 5;
	ip.tot_len = bpf_htons(tot);
	ip.frag_off = bpf_htons(0x4000); /* DF */
	ip.ttl = 64;
	ip.protocol = IPPROTO_UDP;
	ip.saddr = local;
	ip.daddr = remote;
	ip.check = ipv4_csum(&ip);
	__builtin_memcpy(&f->ip, &ip, sizeof(ip));

	f->udp.source = bpf_htons(sport);
	f->udp.dest = vxlan_port();
	f->udp.len = bpf_htons(tot - sizeof(struct iphdr));
	f->udp.check = 0;

	f->vx.flags = MD_VXLAN_FLAGS_VNI;
	f->vx.vni = bpf_htonl(vni << 8);

	/* adjust_room zero-filled the inner Ethernet header: the frame as the container sent it. */
	__builtin_memcpy(f->inner.h_dest, inner_dst, ETH_ALEN);
	__builtin_memcpy(f->inner.h_source, inner_src, ETH_ALEN);
	f->inner.h_proto = bpf_htons(ETH_P_IP);

	*verdict = bpf_redirect(hop.ifindex, 0);
	return 1;
}

/*
 * A VXLAN packet on the underlay that vxlan_sender_ok let through (from a cluster node, through
 * the hop a reply to it would take). Takes it when vxlan_ingress would deliver it to a local
 * container, by the same checks: the inner source is a remote endpoint of the sending node on
 * the packet's VNI, the destination a local endpoint of that network. Then decapsulates it,
 * translates a remote backend's reply to a flow balanced here (lb_from_backend, the container's
 * flow table), and redirects it into the container, counted as deliver-tunnel in the
 * from-tunnel direction (on the underlay interface: that is how the fast path shows in the
 * counters). Returns 1 with the verdict in *verdict, or 0 (untouched: the VXLAN device's socket
 * decapsulates it and vxlan_ingress decides).
 */
md_inline int overlay_decap(struct __sk_buff *skb, int *verdict)
{
	struct md_overlay_config *cfg = overlay_on();
	struct md_endpoint *src, *ep;
	struct md_vxlan_frame *f;
	struct md_iface *iface;
	struct ethhdr *eth;
	struct iphdr *inner;
	__u32 outer, vni, local = node_ip();
	void *end;

	if (!cfg || !local)
		return 0;
	f = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	if ((void *)f + sizeof(*f) + sizeof(*inner) > end) {
		/* Headers beyond the linear part (a GRO packet can start that way): pull them in. */
		if (bpf_skb_pull_data(skb, sizeof(*f) + sizeof(*inner)) < 0)
			return 0;
		f = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		if ((void *)f + sizeof(*f) + sizeof(*inner) > end)
			return 0;
	}
	inner = (void *)(f + 1);
	if (f->eth.h_proto != bpf_htons(ETH_P_IP) || f->ip.version != 4 || f->ip.ihl != 5 ||
	    f->ip.protocol != IPPROTO_UDP || (f->ip.frag_off & bpf_htons(IP_MF | IP_OFFSET)) ||
	    f->ip.daddr != local || f->udp.dest != vxlan_port() || f->vx.flags != MD_VXLAN_FLAGS_VNI)
		return 0;
	if (f->inner.h_proto != bpf_htons(ETH_P_IP) || inner->version != 4)
		return 0;
	outer = f->ip.saddr;
	vni = bpf_ntohl(f->vx.vni) >> 8;

	/* vxlan_ingress's checks; anything it would not deliver, it decides and counts itself. */
	src = lookup_endpoint(inner->saddr);
	if (!src || (src->flags & MD_EP_LOCAL) || src->node_ip != outer || src->vni != vni)
		return 0;
	ep = lookup_endpoint(inner->daddr);
	if (!ep || !(ep->flags & MD_EP_LOCAL) || ep->vni != vni)
		return 0;
	iface = lookup_iface(ep->ifindex);
	if (!iface)
		return 0;

	if (bpf_skb_adjust_room(skb, -(int)MD_VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC, MD_DECAP_FLAGS) < 0)
		return 0;
	eth = parse_eth(skb);
	if (!eth) {
		*verdict = drop(skb, MD_DIR_FROM_TUNNEL, MD_REASON_DROP_MALFORMED);
		return 1;
	}
	inner = parse_ipv4(skb, eth);
	if (!inner) {
		*verdict = drop(skb, MD_DIR_FROM_TUNNEL, MD_REASON_DROP_MALFORMED);
		return 1;
	}
	/* A remote backend's reply to a flow balanced on this node: the source becomes the VIP. The
	 * outer Ethernet header is the one kept (its type is IPv4, checked above), addressed as if
	 * from the container's gateway. */
	*verdict = deliver_local(skb, eth, inner, iface->mac, ep, MD_DIR_FROM_TUNNEL, MD_REASON_DELIVER_TUNNEL);
	return 1;
}

#endif /* MESHD_LIB_OVERLAY_H */
