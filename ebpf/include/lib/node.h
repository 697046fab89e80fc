/* SPDX-License-Identifier: Apache-2.0 */
/* The node-wide settings map (type in abi/node.h) and its accessors. Pinned by name under the
 * node's bpffs directory, shared by every program of the node, and kept across agent restarts. */
#ifndef MESHD_LIB_NODE_H
#define MESHD_LIB_NODE_H

#include <bpf/bpf_endian.h>
#include "common.h"
#include "../abi/node.h"

/* Node-wide settings (one entry, key 0). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MD_CONFIG_MAX);
	__type(key, __u32);
	__type(value, struct md_node_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_config_v4 SEC(".maps");

/* The cluster's nodes by underlay address (abi/node.h): who may send us tunnel packets. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MD_NODES_MAX);
	__type(key, __u32);
	__type(value, struct md_node);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_nodes_v1 SEC(".maps");

/* Whether `addr` (network order) is the underlay address of a current member of the cluster. */
md_inline int cluster_node(__u32 addr)
{
	struct md_node *node = bpf_map_lookup_elem(&md_nodes_v1, &addr);

	return node && (node->flags & MD_NODE_MEMBER);
}

/* The settings: zeroed until the agent writes them. An array's entry always exists; the NULL
 * check is for the verifier. */
md_inline struct md_node_config *node_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&md_config_v4, &zero);
}

/* The node's underlay address (network order); 0 until the agent set it. */
md_inline __u32 node_ip(void)
{
	struct md_node_config *config = node_config();

	return config ? config->node_ip : 0;
}

/* The VXLAN port (network order): the cluster's --data-path-port as the agent wrote it, the
 * IANA port before that (nothing is attached before the agent writes the settings, so this
 * is only ever read by a test that leaves them out). */
md_inline __u16 vxlan_port(void)
{
	struct md_node_config *config = node_config();

	return config && config->vxlan_port ? config->vxlan_port : bpf_htons(4789);
}

#endif /* MESHD_LIB_NODE_H */
