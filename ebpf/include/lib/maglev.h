/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Services and their Maglev tables (types and table layout in abi/lb.h): which backend a flow's
 * hash lands on. The agent computes each table; the programs only index it. Used by the service
 * VIPs, the routing mesh and the socket programs alike.
 */
#ifndef MESHD_LIB_MAGLEV_H
#define MESHD_LIB_MAGLEV_H

#include "common.h"
#include "../abi/lb.h"

/* Every VIP of every service in vip mode. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MD_SERVICES_MAX);
	__type(key, __u32);
	__type(value, struct md_service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_services_v1 SEC(".maps");

/* One service's Maglev table (the template of md_maglev_v3's values). BPF_F_INNER_MAP lets each
 * table have its own size M; BPF_F_MMAPABLE lets the agent write a table with plain stores into
 * its memory, not one copy from user space per slot (10,000 tables of 1,000 slots took a second
 * of batched updates); the agent creates them with the same flags. */
struct md_maglev_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MD_MAGLEV_TEMPLATE_MAX);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
};

/* Every vip service's Maglev table, by service id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, MD_MAGLEV_MAX);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct md_maglev_table); /* last: a flexible array member */
} md_maglev_v3 SEC(".maps");

/* The backend in slot `hash % M` of service `svc`'s Maglev table, or NULL (no table, no backend).
 * M is read from the table itself, so it always matches the table's length. */
md_inline __u32 *maglev_backend(const struct md_service *svc, __u32 hash)
{
	__u32 size_at = MD_MAGLEV_SIZE, slot;
	__u32 *size;
	void *table;

	table = bpf_map_lookup_elem(&md_maglev_v3, &svc->id);
	if (!table)
		return NULL;
	size = bpf_map_lookup_elem(table, &size_at);
	if (!size || *size == 0)
		return NULL;
	slot = MD_MAGLEV_SLOTS + hash % *size;
	return bpf_map_lookup_elem(table, &slot);
}

#endif /* MESHD_LIB_MAGLEV_H */
