/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ICMP errors about balanced flows (destination unreachable, among them "fragmentation
 * needed"; time exceeded; parameter problem). Such an error carries the start of the packet that
 * caused it: the client's packet as the backend got it, to the backend's address and port. The
 * client's socket is connected to the VIP (or the published address), so the error must come
 * back translated like a reply, or the client's stack matches it to no socket and path MTU
 * discovery stalls:
 *
 *   outer:    backend (or a router) -> client        becomes  VIP -> client (if from the backend)
 *   embedded: client:port -> backend:target          becomes  client:port -> VIP:port
 *
 * The IPv4 and ICMP checksums are fixed; the embedded TCP or UDP checksum is left as it is (the
 * embedded packet is usually cut short, and no stack checks it).
 */
#ifndef MESHD_LIB_ICMP_H
#define MESHD_LIB_ICMP_H

#include <linux/in.h>
#include <stddef.h>
#include <bpf/bpf_endian.h>
#include "common.h"
#include "eth.h"
#include "l4.h"
#include "../abi/verdict.h"

/* The ICMP header (linux/icmp.h pulls in the C library's socket headers). */
struct md_icmphdr {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__u32 rest; /* unused, or the next-hop MTU of "fragmentation needed" */
};

#define MD_ICMP_DEST_UNREACH 3
#define MD_ICMP_TIME_EXCEEDED 11
#define MD_ICMP_PARAMETERPROB 12

/* Where the parts of an ICMP error sit in the frame (Ethernet, IPv4 without options, ICMP,
 * the embedded IPv4 header without options, its first 8 bytes of TCP or UDP). */
#define ICMP_OFF (sizeof(struct ethhdr) + sizeof(struct iphdr))
#define ICMP_CSUM_OFF (ICMP_OFF + offsetof(struct md_icmphdr, checksum))
#define INNER_IP_OFF (ICMP_OFF + sizeof(struct md_icmphdr))
#define INNER_CSUM_OFF (INNER_IP_OFF + offsetof(struct iphdr, check))
#define INNER_DST_OFF (INNER_IP_OFF + offsetof(struct iphdr, daddr))
#define INNER_DPORT_OFF (INNER_IP_OFF + sizeof(struct iphdr) + sizeof(__u16))

/* The flow an ICMP error is about, read from the packet it carries. */
struct icmp_error {
	__u32 client;      /* the embedded packet's source: the client, the error's destination */
	__u32 backend;     /* the embedded packet's destination */
	__u16 client_port; /* network order, like port */
	__u16 port;
	__u8 proto;        /* IPPROTO_TCP or IPPROTO_UDP */
};

/*
 * Fills `out` and returns 1 if the packet is an ICMP error (IPv4 without options, not a
 * fragment) about a TCP or UDP packet that the error's destination sent; 0 otherwise (not its
 * business: the packet goes on untouched).
 */
md_inline int icmp_error_parse(struct __sk_buff *skb, struct iphdr *ip, struct icmp_error *out)
{
	void *end = (void *)(long)skb->data_end;
	struct md_icmphdr *icmp = (void *)(ip + 1);
	struct iphdr *inner = (void *)(icmp + 1);
	__u16 *ports = (void *)(inner + 1);

	if (ip->protocol != IPPROTO_ICMP || ip->ihl != 5 || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		return 0;
	if ((void *)(ports + 2) > end)
		return 0;
	if (icmp->type != MD_ICMP_DEST_UNREACH && icmp->type != MD_ICMP_TIME_EXCEEDED &&
	    icmp->type != MD_ICMP_PARAMETERPROB)
		return 0;
	if (inner->ihl != 5 || (inner->protocol != IPPROTO_TCP && inner->protocol != IPPROTO_UDP))
		return 0;
	if (inner->saddr != ip->daddr)
		return 0;
	out->client = inner->saddr;
	out->backend = inner->daddr;
	out->client_port = ports[0];
	out->port = ports[1];
	out->proto = inner->protocol;
	return 1;
}

/*
 * Translates the ICMP error `err` (parsed from this packet, whose outer source is `outer_src`)
 * back to what the client sent to: `addr:port` becomes the embedded destination, and the outer
 * source too when the backend itself sent the error (a router's address stays). Packet pointers
 * are invalid afterwards. Returns 0, or -MD_REASON_DROP_REWRITE.
 */
md_inline int icmp_error_translate(struct __sk_buff *skb, __u32 outer_src, const struct icmp_error *err,
				   __u32 addr, __u16 port)
{
	__u16 old_check, new_check;

	/* The embedded IPv4 header: its checksum first, then the address; the ICMP checksum covers
	 * both changes. */
	if (bpf_skb_load_bytes(skb, INNER_CSUM_OFF, &old_check, sizeof(old_check)) < 0 ||
	    bpf_l3_csum_replace(skb, INNER_CSUM_OFF, err->backend, addr, sizeof(addr)) < 0 ||
	    bpf_skb_load_bytes(skb, INNER_CSUM_OFF, &new_check, sizeof(new_check)) < 0 ||
	    bpf_l4_csum_replace(skb, ICMP_CSUM_OFF, old_check, new_check, sizeof(new_check)) < 0 ||
	    bpf_l4_csum_replace(skb, ICMP_CSUM_OFF, err->backend, addr, sizeof(addr)) < 0 ||
	    bpf_skb_store_bytes(skb, INNER_DST_OFF, &addr, sizeof(addr), 0) < 0)
		return -MD_REASON_DROP_REWRITE;
	if (port != err->port &&
	    (bpf_l4_csum_replace(skb, ICMP_CSUM_OFF, err->port, port, sizeof(port)) < 0 ||
	     bpf_skb_store_bytes(skb, INNER_DPORT_OFF, &port, sizeof(port), 0) < 0))
		return -MD_REASON_DROP_REWRITE;
	/* The outer header is not under the ICMP checksum. */
	if (outer_src == err->backend &&
	    (bpf_l3_csum_replace(skb, IP_CSUM_OFF, err->backend, addr, sizeof(addr)) < 0 ||
	     bpf_skb_store_bytes(skb, IP_SRC_OFF, &addr, sizeof(addr), 0) < 0))
		return -MD_REASON_DROP_REWRITE;
	return 0;
}

#endif /* MESHD_LIB_ICMP_H */
