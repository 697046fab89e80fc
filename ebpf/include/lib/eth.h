/* SPDX-License-Identifier: Apache-2.0 */
/* Ethernet, ARP and IPv4 parsing with bounds checks, and MAC rewriting. */
#ifndef MESHD_LIB_ETH_H
#define MESHD_LIB_ETH_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include "common.h"

/* ARP for IPv4 over Ethernet, with the addresses as byte arrays (they are not 4-byte aligned). */
struct md_arp {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 oper;
	__u8 sha[ETH_ALEN];
	__u8 spa[4];
	__u8 tha[ETH_ALEN];
	__u8 tpa[4];
} __attribute__((packed));

#define MD_ARP_REQUEST 1
#define MD_ARP_REPLY 2

/* The Ethernet header, or NULL if the frame is shorter than one. */
md_inline struct ethhdr *parse_eth(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return NULL;
	return eth;
}

/* The IPv4 header after `eth`, or NULL if it does not fit (options are not needed here). */
md_inline struct iphdr *parse_ipv4(struct __sk_buff *skb, struct ethhdr *eth)
{
	void *end = (void *)(long)skb->data_end;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > end)
		return NULL;
	return ip;
}

/* The ARP body after `eth`, or NULL if it does not fit. */
md_inline struct md_arp *parse_arp(struct __sk_buff *skb, struct ethhdr *eth)
{
	void *end = (void *)(long)skb->data_end;
	struct md_arp *arp = (void *)(eth + 1);

	if ((void *)(arp + 1) > end)
		return NULL;
	return arp;
}

md_inline void set_macs(struct ethhdr *eth, const __u8 *src, const __u8 *dst)
{
	__builtin_memcpy(eth->h_source, src, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, dst, ETH_ALEN);
}

/* Whether `ip` (network order) lies in subnet/mask (network order). */
md_inline int in_subnet(__u32 ip, __u32 subnet, __u32 mask)
{
	return (ip & mask) == subnet;
}

#endif /* MESHD_LIB_ETH_H */
