/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test hooks: compiled only into the test build of the objects (-DMD_TEST, made by this crate's
 * build script next to the real ones, into OUT_DIR/test/), never into what the agent loads.
 *
 * The packet tests (tests/packets) run each program on one crafted packet with
 * BPF_PROG_TEST_RUN. A test run gives a program no tunnel metadata, a route lookup in the test's
 * own namespace, and no way to see where a redirect would have sent the packet. So in a test
 * build four helpers go through these hooks (macros below, after libbpf declared the helpers):
 *   bpf_redirect, bpf_redirect_peer  the target and the kind are recorded in md_t_redirect, then
 *                                    the real helper runs (the verdict is the kernel's);
 *   bpf_skb_set_tunnel_key           the key is recorded in md_t_set_key, then the real helper runs;
 *   bpf_skb_get_tunnel_key           returns md_t_tunnel's key when the test set one, else the
 *                                    real helper (which finds none: that is a row too);
 *   bpf_fib_lookup                   returns md_t_fib's answer when the test set one, else the
 *                                    real helper.
 * The maps are not pinned: every load of a test object has its own.
 */
#ifndef MESHD_LIB_TEST_HOOKS_H
#define MESHD_LIB_TEST_HOOKS_H

#ifdef MD_TEST

/* Mirrored by tests/packets/fixture.rs (TestRedirect, TestSetKey, TestTunnel, TestFib). */
struct md_test_redirect {
	__u32 ifindex;
	__u32 flags;
	__u32 peer;  /* 1: bpf_redirect_peer, 0: bpf_redirect */
	__u32 calls; /* how many redirects the run asked for */
};

struct md_test_set_key {
	__u32 remote_ipv4; /* as in struct bpf_tunnel_key: host order */
	__u32 local_ipv4;
	__u32 tunnel_id;
	__u32 calls;
};

struct md_test_tunnel {
	__u32 set; /* 0: no key (the real helper answers) */
	__u32 remote_ipv4; /* host order, as bpf_skb_get_tunnel_key gives it */
	__u32 tunnel_id;
	__u32 pad;
};

struct md_test_fib {
	__u32 set; /* 0: the real route lookup */
	__s32 ret; /* BPF_FIB_LKUP_RET_... */
	__u32 ifindex;
	__u8 dmac[6];
	__u8 smac[6];
};

#define MD_TEST_MAP(name, vtype)                  \
	struct {                                  \
		__uint(type, BPF_MAP_TYPE_ARRAY); \
		__uint(max_entries, 1);           \
		__type(key, __u32);               \
		__type(value, vtype);             \
	} name SEC(".maps")

MD_TEST_MAP(md_t_redirect, struct md_test_redirect);
MD_TEST_MAP(md_t_set_key, struct md_test_set_key);
MD_TEST_MAP(md_t_tunnel, struct md_test_tunnel);
MD_TEST_MAP(md_t_fib, struct md_test_fib);

static __always_inline long md_test_redirect(__u32 ifindex, __u64 flags, __u32 peer)
{
	__u32 zero = 0;
	struct md_test_redirect *r = bpf_map_lookup_elem(&md_t_redirect, &zero);

	if (r) {
		r->ifindex = ifindex;
		r->flags = (__u32)flags;
		r->peer = peer;
		r->calls += 1;
	}
	return peer ? bpf_redirect_peer(ifindex, flags) : bpf_redirect(ifindex, flags);
}

static __always_inline long md_test_set_tunnel_key(struct __sk_buff *skb, struct bpf_tunnel_key *key,
						   __u32 size, __u64 flags)
{
	__u32 zero = 0;
	struct md_test_set_key *r = bpf_map_lookup_elem(&md_t_set_key, &zero);

	if (r) {
		r->remote_ipv4 = key->remote_ipv4;
		r->local_ipv4 = key->local_ipv4;
		r->tunnel_id = key->tunnel_id;
		r->calls += 1;
	}
	return bpf_skb_set_tunnel_key(skb, key, size, flags);
}

static __always_inline long md_test_get_tunnel_key(struct __sk_buff *skb, struct bpf_tunnel_key *key,
						   __u32 size, __u64 flags)
{
	__u32 zero = 0;
	struct md_test_tunnel *t = bpf_map_lookup_elem(&md_t_tunnel, &zero);

	if (t && t->set) {
		key->remote_ipv4 = t->remote_ipv4;
		key->tunnel_id = t->tunnel_id;
		return 0;
	}
	return bpf_skb_get_tunnel_key(skb, key, size, flags);
}

static __always_inline long md_test_fib_lookup(struct __sk_buff *skb, struct bpf_fib_lookup *params, int plen,
					       __u32 flags)
{
	__u32 zero = 0;
	struct md_test_fib *t = bpf_map_lookup_elem(&md_t_fib, &zero);

	if (t && t->set) {
		params->ifindex = t->ifindex;
		__builtin_memcpy(params->dmac, t->dmac, 6);
		__builtin_memcpy(params->smac, t->smac, 6);
		return t->ret;
	}
	return bpf_fib_lookup(skb, params, plen, flags);
}

#define bpf_redirect(ifindex, flags) md_test_redirect((ifindex), (flags), 0)
#define bpf_redirect_peer(ifindex, flags) md_test_redirect((ifindex), (flags), 1)
#define bpf_skb_set_tunnel_key(skb, key, size, flags) md_test_set_tunnel_key((skb), (key), (size), (flags))
#define bpf_skb_get_tunnel_key(skb, key, size, flags) md_test_get_tunnel_key((skb), (key), (size), (flags))
#define bpf_fib_lookup(skb, params, plen, flags) md_test_fib_lookup((skb), (params), (plen), (flags))

#endif /* MD_TEST */

#endif /* MESHD_LIB_TEST_HOOKS_H */
