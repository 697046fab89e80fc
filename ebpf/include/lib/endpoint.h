/* SPDX-License-Identifier: Apache-2.0 */
/* The overlay forwarding maps (types in abi/endpoint.h). All pinned by name under the node's
 * bpffs directory, shared by every program of the node, and kept across agent restarts. */
#ifndef MESHD_LIB_ENDPOINT_H
#define MESHD_LIB_ENDPOINT_H

#include "common.h"
#include "../abi/endpoint.h"

/* Every endpoint of every network the node knows, local and remote: sized for 100,000 tasks
 * and more; not preallocated, so a small cluster pays only for what it has. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MD_ENDPOINTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct md_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_endpoints_v2 SEC(".maps");

/* Every attached veth of this node, by the ifindex of its host side. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MD_IFACES_MAX);
	__type(key, __u32);
	__type(value, struct md_iface);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_ifaces_v2 SEC(".maps");

md_inline struct md_endpoint *lookup_endpoint(__u32 ip)
{
	return bpf_map_lookup_elem(&md_endpoints_v2, &ip);
}

md_inline struct md_iface *lookup_iface(__u32 ifindex)
{
	return bpf_map_lookup_elem(&md_ifaces_v2, &ifindex);
}

#endif /* MESHD_LIB_ENDPOINT_H */
