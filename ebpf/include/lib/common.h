/* SPDX-License-Identifier: Apache-2.0 */
/* What every meshd eBPF program includes first: kernel UAPI types and libbpf's helper macros. */
#ifndef MESHD_LIB_COMMON_H
#define MESHD_LIB_COMMON_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

/* Every helper is inlined: the verifier then sees one straight-line program per entry point. */
#define md_inline static __always_inline

/* Nothing unless built with -DMD_TEST (the packet tests' objects): see test_hooks.h. */
#include "test_hooks.h"

#endif /* MESHD_LIB_COMMON_H */
