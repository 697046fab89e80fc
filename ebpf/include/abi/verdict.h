/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Verdict counters: the ABI shared by every meshd eBPF program and the agent.
 *
 * Every decision a program takes about a packet (pass it to the stack, redirect it, drop it) is
 * counted once, per interface, direction and reason, in the per-CPU map md_verdict_v1. The agent
 * (meshd_ebpf::verdict in Rust) mirrors these types; tests/layout.rs compiles this header with the
 * host compiler and checks that sizes, offsets and enum values still agree.
 *
 * This header holds only types: it compiles for the host as well as for -target bpf.
 */
#ifndef MESHD_ABI_VERDICT_H
#define MESHD_ABI_VERDICT_H

#include <linux/types.h>

/*
 * Why a packet got its verdict. The numbers are ABI: never renumber, only append. Codes below 128
 * let the packet go on (to the stack or to another interface); codes from 128 on are drops.
 */
enum md_reason {
	/* 0 is never counted: a zeroed key is a bug, not a reason. */
	MD_REASON_PASS_STACK = 1, /* handed to the kernel stack unchanged */
};

/* Which way the packet was going, seen from the container. */
enum md_dir {
	MD_DIR_FROM_CONTAINER = 0, /* tc ingress on the host side of a container veth */
	MD_DIR_TO_CONTAINER = 1,   /* tc egress on the host side of a container veth */
};

/* Key of md_verdict_v1. Explicit padding: the whole key is hashed, so no byte may be left undefined. */
struct md_verdict_key {
	__u32 ifindex; /* interface the program is attached to, in the node's namespace */
	__u16 reason;  /* enum md_reason */
	__u8 dir;      /* enum md_dir */
	__u8 pad;      /* always 0 */
};

/* Value of md_verdict_v1, one per CPU; the agent sums them. */
struct md_verdict_val {
	__u64 packets;
	__u64 bytes; /* skb->len: layer 2 frame length without FCS */
};

#endif /* MESHD_ABI_VERDICT_H */
