// SPDX-License-Identifier: GPL-2.0
/*
 * Programs on the host side of a container's veth pair.
 *
 * from_container runs at tc ingress of the host-side veth: everything the container sends.
 * to_container runs at tc egress of the host-side veth: everything delivered to the container
 * through the node's stack.
 *
 * For now both count the packet and let it continue; ARP answers, service load balancing and the
 * overlay redirect grow here, each one a new verdict reason.
 */
#include "lib/common.h"
#include "lib/verdict.h"

SEC("classifier")
int veth_from_container(struct __sk_buff *skb)
{
	count_verdict(skb, MD_DIR_FROM_CONTAINER, MD_REASON_PASS_STACK);
	return TC_ACT_OK;
}

SEC("classifier")
int veth_to_container(struct __sk_buff *skb)
{
	count_verdict(skb, MD_DIR_TO_CONTAINER, MD_REASON_PASS_STACK);
	return TC_ACT_OK;
}

/* GPL: helpers such as bpf_redirect_peer and bpf_skb_set_tunnel_key are GPL-only. */
char _license[] SEC("license") = "GPL";
