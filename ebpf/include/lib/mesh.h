/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The routing mesh (types in abi/mesh.h): a client's packet to a published port on any node goes
 * to a backend anywhere in the cluster with its source address untouched, and the backend's
 * replies go back through the node the client used, which puts the published address back.
 *
 *   ingress node                                  backend's node
 *   underlay -> mesh_to_backend: pick, DNAT,      vxlan ingress -> mesh_learn_return: remember
 *     remember the published address (rnat)         the ingress node for the flow, deliver
 *     -> local backend, or tunnel to its node   <- backend's veth -> mesh_return: tunnel the reply
 *   mesh_reply: source back to the published        back to the ingress node
 *     address, back to the client's L2 hop
 */
#ifndef MESHD_LIB_MESH_H
#define MESHD_LIB_MESH_H

#include <linux/if_packet.h>
#include "common.h"
#include "conntrack.h"
#include "endpoint.h"
#include "eth.h"
#include "icmp.h"
#include "l4.h"
#include "maglev.h"
#include "node.h"
#include "tunnel.h"
#include "verdict.h"
#include "../abi/mesh.h"

/*
 * The helpers below return whether they took the packet (1, with the TC verdict in *verdict) or
 * not (0: not a published flow's, carry on, packet untouched). A sentinel verdict value would not
 * do: the verifier cannot tell a helper's verdict from it, and would assume the packet pointers
 * (invalidated by the rewrite) were still in use on the "carry on" path. A drop is a verdict
 * like any other: a lower helper that fails returns -MD_REASON_..., and it is counted under
 * that reason with took(verdict, drop(skb, dir, -ret)).
 */

/* Published ports on this node's addresses. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MD_FRONTENDS_MAX);
	__type(key, struct md_frontend_key);
	__type(value, struct md_frontend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_frontends_v2 SEC(".maps");

/* On the ingress node: the published address of each flow, by its reply. LRU: the flows of
 * clients long gone age out; an entry idle past the flow timeout is not used. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MD_MESH_RNAT_MAX);
	__type(key, struct md_rnat_key);
	__type(value, struct md_mesh_nat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_mesh_rnat_v2 SEC(".maps");

/* On the backend's node: the ingress node of each flow that came through the tunnel. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MD_MESH_RETURN_MAX);
	__type(key, struct md_rnat_key);
	__type(value, struct md_mesh_return);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} md_mesh_return_v2 SEC(".maps");

/* The reply direction of a flow: as the backend at `backend:port` sends to the client at
 * `client:client_port`. `rk` starts zeroed (its padding is part of the hashed key). */
md_inline void reply_key(struct md_rnat_key *rk, __u32 backend, __u16 port, __u32 client,
			 __u16 client_port, __u8 proto)
{
	rk->backend_ip = backend;
	rk->port = port;
	rk->client_ip = client;
	rk->client_port = client_port;
	rk->proto = proto;
}

/* Whether a reply table's entry, last refreshed at `last_seen`, is past the node's flow
 * timeout (then it is not used: a stale way back must not carry a new flow's replies). */
md_inline int mesh_expired(__u64 last_seen, __u64 now)
{
	struct md_node_config *config = node_config();

	return config && config->ct_idle_ns && now - last_seen > config->ct_idle_ns;
}

/* Whether `addr` (network order) may be the source of a client from outside: not this node,
 * not loopback (127/8), "this network" (0/8) or multicast/reserved (224/3), not an overlay
 * endpoint and not a VIP. */
md_inline int outside_source(__u32 addr)
{
	__u32 host = bpf_ntohl(addr);

	if ((host >> 24) == 127 || (host >> 24) == 0 || (host >> 29) == 7)
		return 0;
	if (addr == node_ip())
		return 0;
	if (lookup_endpoint(addr) || bpf_map_lookup_elem(&md_services_v1, &addr))
		return 0;
	return 1;
}

/* The reply key of a packet from a backend: its own tuple for TCP and UDP (a reply), or the
 * tuple of the packet an ICMP error is about (*icmp set, `err` filled). Returns 0 for anything
 * else. */
md_inline int mesh_reply_key(struct __sk_buff *skb, struct iphdr *ip, struct l4 *l4, struct icmp_error *err,
			     struct md_rnat_key *rk, int *icmp)
{
	if (parse_l4(skb, ip, l4)) {
		reply_key(rk, ip->saddr, l4->sport, ip->daddr, l4->dport, l4->proto);
		return 1;
	}
	if (icmp_error_parse(skb, ip, err)) {
		reply_key(rk, err->backend, err->port, err->client, err->client_port, err->proto);
		*icmp = 1;
		return 1;
	}
	return 0;
}

/* The service a published port picks its backend with: `svc` (its md_services_v1 entry) with
 * the frontend's Maglev table, which is the service's own in ingress mode and the table of this
 * node's tasks in host mode (MD_FRONTEND_LOCAL). The rest of `svc` is kept as it is. */
md_inline struct md_service frontend_service(const struct md_service *svc, const struct md_frontend *fe)
{
	struct md_service from = *svc;

	from.id = fe->table;
	return from;
}

/* Records the verdict of a packet a helper took. */
md_inline int took(int *verdict, int value)
{
	*verdict = value;
	return 1;
}

/*
 * A packet from outside to one of this node's addresses: if it goes to a published port, picks
 * a backend (tracked flow or Maglev), rewrites the destination address and port to it, and
 * delivers it to the backend's veth here or through the tunnel to its node. The client's
 * address stays.
 */
md_inline int mesh_to_backend(struct __sk_buff *skb, struct iphdr *ip, enum md_dir dir, int *verdict)
{
	struct md_frontend_key fk = {};
	struct md_frontend *fe;
	struct md_service *svc;
	struct md_service from;
	struct md_endpoint *ep;
	struct md_iface *iface;
	struct md_ct_key ct = {};
	struct md_rnat_key rk = {};
	struct md_mesh_nat nat = {};
	struct md_mesh_nat *known;
	struct ethhdr *eth;
	struct flow_backend pick = {};
	struct l4 l4 = {};
	__u32 backend;
	__u16 target_port, fe_flags;
	int ret;

	if (!parse_l4(skb, ip, &l4))
		return 0;
	fk.addr = ip->daddr;
	fk.port = l4.dport;
	fk.proto = l4.proto;
	fe = bpf_map_lookup_elem(&md_frontends_v2, &fk);
	if (!fe)
		return 0;
	target_port = fe->target_port;
	fe_flags = fe->flags;
	/* A client must be outside: a source that is this node, loopback, "this network",
	 * multicast, an overlay endpoint or a VIP would let the replies (or the request) stand in
	 * for traffic that is not the client's. And only frames addressed to this host: the
	 * replies reuse the request's MACs. */
	if (!outside_source(ip->saddr) || skb->pkt_type != PACKET_HOST)
		return took(verdict, drop(skb, dir, MD_REASON_DROP_SPOOFED));
	svc = bpf_map_lookup_elem(&md_services_v1, &fe->vip);
	if (!svc)
		return took(verdict, drop(skb, dir, MD_REASON_DROP_NO_BACKEND));
	from = frontend_service(svc, fe);

	/* The node address stands in for the VIP in the flow's conntrack key; the table's id
	 * stands for the service (a port switched between ingress and host starts afresh). */
	ct.client_ip = ip->saddr;
	ct.vip = ip->daddr;
	ct.svc = from.id;
	ct.client_port = l4.sport;
	ct.port = l4.dport;
	ct.proto = l4.proto;
	ret = flow_pin(skb, &md_ct_v3, FLOW_TABLE_MESH, &ct, &from, &l4, 0, &pick);
	if (ret < 0)
		return took(verdict, drop(skb, dir, -ret));
	if (ret == FLOW_PINNED)
		event_flow(skb, ct.client_ip, ct.client_port, ct.vip, ct.port, ct.proto, pick.addr);
	backend = pick.addr;
	ep = lookup_endpoint(backend);
	if (!ep)
		return took(verdict, drop(skb, dir, MD_REASON_DROP_NO_ENDPOINT));
	/* mode=host never crosses the tunnel: a table that still names a task gone elsewhere (or a
	 * flow pinned before the port became host-mode) has no backend here. */
	if ((fe_flags & MD_FRONTEND_LOCAL) && !(ep->flags & MD_EP_LOCAL))
		return took(verdict, drop(skb, dir, MD_REASON_DROP_NO_BACKEND));

	/* Remember the published address for the replies; write only when it changes (a map write
	 * per packet would cost more than the lookup). */
	reply_key(&rk, backend, target_port, ct.client_ip, l4.sport, l4.proto);
	nat.addr = ct.vip;
	nat.port = l4.dport;
	nat.ifindex = skb->ifindex;
	eth = parse_eth(skb);
	if (!eth)
		return took(verdict, drop(skb, dir, MD_REASON_DROP_MALFORMED));
	__builtin_memcpy(nat.peer_mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(nat.local_mac, eth->h_dest, ETH_ALEN);
	nat.last_seen = bpf_ktime_get_ns();
	known = bpf_map_lookup_elem(&md_mesh_rnat_v2, &rk);
	if (!known || known->addr != nat.addr || known->port != nat.port || known->ifindex != nat.ifindex ||
	    __builtin_memcmp(known->peer_mac, nat.peer_mac, ETH_ALEN) != 0 ||
	    nat.last_seen - known->last_seen > CT_REFRESH_NS) {
		if (bpf_map_update_elem(&md_mesh_rnat_v2, &rk, &nat, BPF_ANY) < 0)
			return took(verdict, drop(skb, dir, MD_REASON_DROP_CT_FULL));
	}

	ret = rewrite_addr(skb, &l4, IP_DST_OFF, ct.vip, backend);
	if (ret == 0)
		ret = rewrite_port(skb, &l4, L4_DPORT_OFF, l4.dport, target_port);
	if (ret < 0)
		return took(verdict, drop(skb, dir, -ret));
	count_verdict(skb, dir, MD_REASON_MESH_DNAT);

	if (!(ep->flags & MD_EP_LOCAL)) {
		ret = tunnel_redirect(skb, ep->node_ip, ep->vni);
		if (ret < 0)
			return took(verdict, drop(skb, dir, -ret));
		count_verdict(skb, dir, MD_REASON_FORWARD_TUNNEL);
		return took(verdict, ret);
	}
	/* This node is the ingress now: an older flow of the same tuple that came in through
	 * another node must not send these replies there. */
	bpf_map_delete_elem(&md_mesh_return_v2, &rk);
	iface = lookup_iface(ep->ifindex);
	/* The rewrite invalidated the packet pointers. */
	eth = parse_eth(skb);
	if (!iface || !eth)
		return took(verdict, drop(skb, dir, MD_REASON_DROP_NO_ENDPOINT));
	set_macs(eth, iface->mac, ep->mac);
	count_verdict(skb, dir, MD_REASON_FORWARD_LOCAL);
	return took(verdict, bpf_redirect_peer(ep->ifindex, 0));
}

/*
 * A packet from a local backend (or out of the tunnel) to an address outside the overlay: if it
 * is the reply of a flow that entered through a published port of this node, puts the
 * published address and port back as its source and sends it straight back to the L2 hop the
 * client's packets came from, out of the interface they came in on. No route or neighbour
 * lookup per packet: the request's path is the reply's (as for any stateful balancer).
 */
md_inline int mesh_reply(struct __sk_buff *skb, struct iphdr *ip, enum md_dir dir, int *verdict)
{
	struct md_rnat_key rk = {};
	struct icmp_error err = {};
	struct md_mesh_nat *nat;
	struct ethhdr *eth;
	struct l4 l4 = {};
	__u8 peer_mac[ETH_ALEN], local_mac[ETH_ALEN];
	__u32 addr, ifindex, outer_src = ip->saddr;
	__u16 port;
	int ret, icmp = 0;

	if (!mesh_reply_key(skb, ip, &l4, &err, &rk, &icmp))
		return 0;
	nat = bpf_map_lookup_elem(&md_mesh_rnat_v2, &rk);
	if (!nat)
		return 0;
	if (mesh_expired(nat->last_seen, bpf_ktime_get_ns())) {
		bpf_map_delete_elem(&md_mesh_rnat_v2, &rk);
		return 0;
	}
	addr = nat->addr;
	port = nat->port;
	ifindex = nat->ifindex;
	__builtin_memcpy(peer_mac, nat->peer_mac, ETH_ALEN);
	__builtin_memcpy(local_mac, nat->local_mac, ETH_ALEN);
	if (icmp) {
		ret = icmp_error_translate(skb, outer_src, &err, addr, port);
	} else {
		ret = rewrite_addr(skb, &l4, IP_SRC_OFF, rk.backend_ip, addr);
		if (ret == 0)
			ret = rewrite_port(skb, &l4, L4_SPORT_OFF, rk.port, port);
	}
	if (ret < 0)
		return took(verdict, drop(skb, dir, -ret));
	/* The rewrite invalidated the packet pointers. */
	eth = parse_eth(skb);
	if (!eth)
		return took(verdict, drop(skb, dir, MD_REASON_DROP_MALFORMED));
	set_macs(eth, local_mac, peer_mac);
	count_verdict(skb, dir, icmp ? MD_REASON_ICMP_RNAT : MD_REASON_MESH_REPLY);
	return took(verdict, bpf_redirect(ifindex, 0));
}

/*
 * A local backend's reply (from a veth of network `vni`) to a flow that another node brought
 * in through the tunnel: back through the tunnel to that node (which does mesh_reply).
 */
md_inline int mesh_return(struct __sk_buff *skb, struct iphdr *ip, __u32 vni, enum md_dir dir, int *verdict)
{
	struct md_rnat_key rk = {};
	struct icmp_error err = {};
	struct md_mesh_return *back;
	struct l4 l4 = {};
	int ret, icmp = 0;

	if (!mesh_reply_key(skb, ip, &l4, &err, &rk, &icmp))
		return 0;
	back = bpf_map_lookup_elem(&md_mesh_return_v2, &rk);
	/* The tunnel back is the sender's own network, never another one. */
	if (!back || back->vni != vni)
		return 0;
	if (mesh_expired(back->last_seen, bpf_ktime_get_ns())) {
		bpf_map_delete_elem(&md_mesh_return_v2, &rk);
		return 0;
	}
	ret = tunnel_redirect(skb, back->node_ip, back->vni);
	if (ret < 0)
		return took(verdict, drop(skb, dir, -ret));
	count_verdict(skb, dir, MD_REASON_MESH_RETURN);
	return took(verdict, ret);
}

/*
 * A packet out of the tunnel from a source outside the overlay, to a local endpoint: a
 * published flow (or the other node's own client) entering here. Remembers which node it came
 * from so that mesh_return can send the replies back there.
 */
md_inline void mesh_learn_return(struct __sk_buff *skb, struct iphdr *ip, const struct bpf_tunnel_key *key)
{
	struct md_rnat_key rk = {};
	struct md_mesh_return back = {};
	struct md_mesh_return *known;
	struct l4 l4 = {};

	if (!parse_l4(skb, ip, &l4))
		return;
	reply_key(&rk, ip->daddr, l4.dport, ip->saddr, l4.sport, l4.proto);
	back.node_ip = bpf_htonl(key->remote_ipv4);
	back.vni = key->tunnel_id;
	back.last_seen = bpf_ktime_get_ns();
	known = bpf_map_lookup_elem(&md_mesh_return_v2, &rk);
	if (known && known->node_ip == back.node_ip && known->vni == back.vni) {
		if (back.last_seen - known->last_seen > CT_REFRESH_NS)
			known->last_seen = back.last_seen;
		return;
	}
	/* Another node is the ingress now: a reply translation this node kept from an older flow
	 * of the same tuple (when it was the ingress itself) must not win over the way back. */
	bpf_map_delete_elem(&md_mesh_rnat_v2, &rk);
	/* A full LRU evicts; an update can only fail for lack of memory: the replies then go the
	 * node's default way, which is what happens without a mesh. */
	bpf_map_update_elem(&md_mesh_return_v2, &rk, &back, BPF_ANY);
}

#endif /* MESHD_LIB_MESH_H */
