/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TCP and UDP over IPv4 without options: the ports and flags a balancer needs (struct l4,
 * parse_l4), where the fields it rewrites sit in the frame, and the rewrites themselves, with
 * the checksums fixed up incrementally (rewrite_addr, rewrite_port). Shared by the service VIPs
 * and the routing mesh.
 *
 * Like every helper that can fail, the rewrites return 0 or a negative -MD_REASON_... (here
 * always MD_REASON_DROP_REWRITE) that the caller counts as is: drop(skb, dir, -ret).
 */
#ifndef MESHD_LIB_L4_H
#define MESHD_LIB_L4_H

#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <stddef.h>
#include <bpf/bpf_endian.h>
#include "common.h"
#include "eth.h"
#include "../abi/verdict.h"

/* Offsets from the start of the frame (Ethernet, then IPv4 without options). */
#define IP_CSUM_OFF (sizeof(struct ethhdr) + offsetof(struct iphdr, check))
#define IP_SRC_OFF (sizeof(struct ethhdr) + offsetof(struct iphdr, saddr))
#define IP_DST_OFF (sizeof(struct ethhdr) + offsetof(struct iphdr, daddr))
/* TCP and UDP both start with the source and destination ports. */
#define L4_SPORT_OFF (sizeof(struct ethhdr) + sizeof(struct iphdr))
#define L4_DPORT_OFF (L4_SPORT_OFF + sizeof(__u16))
/* Bits of iphdr.frag_off (host order): more fragments follow; the fragment's offset. */
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/*
 * What a helper that rewrites only the packets that are its business (lb_to_vip,
 * lb_from_backend) did with one; when it fails it returns a negative -MD_REASON_... instead.
 * The two are kept apart for the verifier as much as for the reader: after a rewrite every
 * packet pointer is stale, and only the PKT_UNTOUCHED path may go on using the old ones.
 */
enum pkt_rewrite {
	PKT_UNTOUCHED = 0, /* not its business: the packet and its pointers are as they were */
	PKT_REWRITTEN = 1, /* rewritten: re-parse before touching the packet again */
	PKT_ICMP_REWRITTEN = 2, /* an ICMP error about the flow, translated: re-parse as well */
};

/* The L4 ports, TCP flags and checksum offset of a TCP or UDP packet without IP options. */
struct l4 {
	__u16 sport;    /* network order, like dport */
	__u16 dport;
	__u32 csum_off; /* offset of the TCP or UDP checksum from the start of the frame */
	__u8 proto;     /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 syn;       /* a TCP SYN without ACK: a new connection */
	__u8 fin;
	__u8 rst;
};

/*
 * Fills `out` and returns 1 for a TCP or UDP packet; returns 0 for anything else (another
 * protocol, IP options, a later fragment, a header cut short). Not a failure: a packet this
 * cannot parse is no balanced flow's, and callers let it go on untouched.
 */
md_inline int parse_l4(struct __sk_buff *skb, struct iphdr *ip, struct l4 *out)
{
	void *end = (void *)(long)skb->data_end;
	__u32 l4_off = sizeof(struct ethhdr) + sizeof(struct iphdr);

	/* Options would move the L4 header; a later fragment has none. */
	if (ip->ihl != 5 || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		return 0;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);

		if ((void *)(tcp + 1) > end)
			return 0;
		out->sport = tcp->source;
		out->dport = tcp->dest;
		out->csum_off = l4_off + offsetof(struct tcphdr, check);
		out->syn = tcp->syn && !tcp->ack;
		out->fin = tcp->fin;
		out->rst = tcp->rst;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);

		if ((void *)(udp + 1) > end)
			return 0;
		out->sport = udp->source;
		out->dport = udp->dest;
		out->csum_off = l4_off + offsetof(struct udphdr, check);
	} else {
		return 0;
	}
	out->proto = ip->protocol;
	return 1;
}

/*
 * Rewrites the IPv4 address at `addr_off` from `old` to `new`, fixing the IP and L4 checksums
 * (the L4 checksum covers the address through the pseudo-header; a zero UDP checksum stays
 * zero). Packet pointers are invalid afterwards. Returns 0, or -MD_REASON_DROP_REWRITE when a
 * checksum update or the store fails (the packet may then be half rewritten: drop it).
 */
md_inline int rewrite_addr(struct __sk_buff *skb, const struct l4 *l4, __u32 addr_off, __u32 old, __u32 new)
{
	__u64 flags = BPF_F_PSEUDO_HDR | sizeof(new);

	if (l4->proto == IPPROTO_UDP)
		flags |= BPF_F_MARK_MANGLED_0;
	if (bpf_l4_csum_replace(skb, l4->csum_off, old, new, flags) < 0 ||
	    bpf_l3_csum_replace(skb, IP_CSUM_OFF, old, new, sizeof(new)) < 0 ||
	    bpf_skb_store_bytes(skb, addr_off, &new, sizeof(new), 0) < 0)
		return -MD_REASON_DROP_REWRITE;
	return 0;
}

/*
 * Rewrites the TCP or UDP port at `port_off` from `old` to `new`, fixing the L4 checksum (ports
 * are not in the pseudo-header). Packet pointers are invalid afterwards. Returns 0 (also when
 * the port stays), or -MD_REASON_DROP_REWRITE as rewrite_addr() does.
 */
md_inline int rewrite_port(struct __sk_buff *skb, const struct l4 *l4, __u32 port_off, __u16 old, __u16 new)
{
	__u64 flags = sizeof(new);

	if (old == new)
		return 0;
	if (l4->proto == IPPROTO_UDP)
		flags |= BPF_F_MARK_MANGLED_0;
	if (bpf_l4_csum_replace(skb, l4->csum_off, old, new, flags) < 0 ||
	    bpf_skb_store_bytes(skb, port_off, &new, sizeof(new), 0) < 0)
		return -MD_REASON_DROP_REWRITE;
	return 0;
}

#endif /* MESHD_LIB_L4_H */
