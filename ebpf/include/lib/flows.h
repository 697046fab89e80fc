/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The flow tables of the node's containers (types and the reason for one table per endpoint in
 * abi/lb.h): what a container's balanced flows are pinned to (flow_pin(), lib/conntrack.h, the
 * policy md_ct_v3 follows too), and what its replies get back as their source (lib/rnat.h).
 */
#ifndef MESHD_LIB_FLOWS_H
#define MESHD_LIB_FLOWS_H

#include "common.h"
#include "../abi/lb.h"

/* One endpoint's flow table (the template of md_flows_v1's values; the agent creates each table
 * with exactly these parameters, so every table fits). Sizes rather than types: clang emits only
 * a forward declaration for a struct reached through an inner-map template, which the loader
 * cannot size. */
struct md_flow_table {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MD_FLOWS_PER_ENDPOINT);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(key_size, sizeof(struct md_flow_key));
	__uint(value_size, sizeof(struct md_flow));
};

/* Every local endpoint's flow table, by the endpoint's address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, MD_FLOW_TABLES_MAX);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct md_flow_table); /* last: a flexible array member */
} md_flows_v1 SEC(".maps");

/* The flow table of local endpoint `addr` (network order), or NULL. */
md_inline void *flow_table(__u32 addr)
{
	return bpf_map_lookup_elem(&md_flows_v1, &addr);
}

/* The reply key of a flow: as the backend at `backend:port` answers the client's `client_port`. */
md_inline void flow_reply_key(struct md_flow_key *rk, __u32 backend, __u16 port, __u16 client_port, __u8 proto)
{
	rk->addr = backend;
	rk->port = port;
	rk->client_port = client_port;
	rk->proto = proto;
	rk->dir = MD_FLOW_REPLY;
}

#endif /* MESHD_LIB_FLOWS_H */
