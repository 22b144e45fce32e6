/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A device source's rules: what the core asks of a vendor instead of knowing it. Each backend
 * that has rules of its own (backends/nvidia-rules.c, backends/amd-rules.c, ...) defines one
 * static struct device_rules and names it in its ops (backend.h); the registry points every
 * device the backend reports at it (xpu_device.rules). A device without rules is offered whole,
 * as replicas and as memory shares that nothing enforces, and has no hardware partitions.
 *
 * Everything here is static data or pure functions over plain structs: the planner (plan.c),
 * the grant builder (grant.c) and the allocator (allocator.c) call them on the loop, without
 * locks.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xpu_device;
struct xpu_slice;

/*
 * How the values of one environment variable from several slices of a grant become one, owned by
 * whoever defines the variable. Values name devices as the workload numbers them inside the
 * grant: 0, 1, ... in the order each device first appears among the grant's slices.
 */
enum env_merge {
	/* The default: the distinct values, comma-joined in grant order ("GPU-a,GPU-b"). */
	ENV_MERGE_LIST,
	/* "<i>=<n>M" per slice (i: the slice's device as numbered in its own environment, 0): the
	 * amounts of each device summed, "0=20480M,1=40960M" in device order. */
	ENV_MERGE_DEVICE_SUM,
	/* A percentage per slice: the percentages of each device summed, and the smallest sum
	 * kept, at most 100 (a per-process setting that must hold on every device of the grant). */
	ENV_MERGE_DEVICE_PERCENT,
	/* "<i>" or "<i>.<sub>" per slice (i: the slice's device, 0, as in DEVICE_SUM; sub: a part
	 * of it, a tile): the device renumbered to its place in the grant, the distinct values
	 * comma-joined in grant order ("0.1,1.0"). */
	ENV_MERGE_DEVICE_PART,
};

struct env_rule {
	const char *name;
	enum env_merge merge;
};

/*
 * How directly two devices are linked, best to worst: the allocator's scoring (allocator.c,
 * docs/allocation.md) compares these numbers.
 */
enum link_level {
	LINK_SAME_DEVICE = 0,
	LINK_FABRIC = 1, /* a direct device-to-device fabric (NVLink, XGMI, ...) */
	LINK_SWITCH = 2, /* a PCIe switch in common */
	LINK_ROOT = 3,	 /* the same root complex (host bridge) */
	LINK_NUMA = 4,	 /* the same NUMA node, different root complexes */
	LINK_SYSTEM = 5, /* across sockets, or nothing known */
	_LINK_UNKNOWN = 6,
};

/*
 * A hardware partitioning scheme (a vendor's way to cut a device into isolated instances, or to
 * switch it into a partition mode), as the policy, the API, the messages and the state file
 * spell it. An offer of kind OFFER_PARTITIONS names its scheme; a device supports the scheme of
 * its rules only.
 */
struct partition_scheme {
	const char *name;	/* the policy's key, the offer's kind in the state file and the API */
	const char *enable_key; /* the policy's key allowing the mode to be switched on; or NULL */
	const char *label;	/* the scheme in messages: "<label> is disabled on this <noun>" */
	const char *noun;	/* what it partitions, in messages */
	const char *only_for;	/* why a device of other rules cannot: "MIG applies to ... only" */
	/* Why a device of the scheme's rules that cannot be partitioned is not (NULL: it is
	 * treated as having partition mode disabled). */
	const char *not_capable;
	/* The state file's keys for the layout and the enable flag (as first written). */
	const char *state_layout_key;
	const char *state_enable_key;
	/*
	 * The layout's form: NULL for a list of profiles ("[3g.40gb, 3g.40gb]", or "all-<profile>"
	 * for as many as the device holds), each checked by profile_valid; else one mode, written
	 * as a scalar, among these (NULL-terminated), the first the undivided one. A device in a
	 * mode reports its partitions with the mode as their profile (none in the first mode);
	 * the backend's apply_offer switches the mode.
	 */
	const char *const *modes;
	bool (*profile_valid)(const char *profile);
	/* For messages: how a profile is spelled ("<n>g.<m>gb, ..."), one profile, one list. */
	const char *profile_form;
	const char *example_profile;
	const char *example_list;
};

/* The schemes the policy, the API and the state file know: set once by the program from its
 * backends' (NULL-terminated; borrowed); none until then. */
void partition_schemes_set(const struct partition_scheme *const *schemes);
const struct partition_scheme *const *partition_schemes(void);
/* The scheme named @name, or NULL. */
const struct partition_scheme *partition_scheme_find(const char *name);
/* The scheme whose enable key is @key, or NULL. */
const struct partition_scheme *partition_scheme_by_enable_key(const char *key);

struct device_rules {
	/* The hardware partitioning of the source's devices, or NULL: none. */
	const struct partition_scheme *scheme;
	/* The variables this source defines whose values merge otherwise than ENV_MERGE_LIST;
	 * terminated by an entry with a NULL name. NULL: none. */
	const struct env_rule *env;
	/* The least memory share the source can enforce, and why (for the reason a smaller one
	 * is refused); 0: OFFER_MIN_SHARE_BYTES. */
	uint64_t min_share_bytes;
	const char *min_share_why;
	/*
	 * What a memory share of @d needs in its container edits for the limits it claims
	 * (memory, compute fraction) to be enforced: added to @s (env, device nodes). @s has its
	 * size and fraction set. 0 or -ENOMEM. NULL: nothing enforces them. (Replicas are
	 * time-shared, with nothing to enforce.)
	 */
	int (*share_edits)(const struct xpu_device *d, struct xpu_slice *s);
	/*
	 * The node labels of the source's devices on this node (@devs: those of @n devices of
	 * the node that these rules govern, in inventory order), appended to @labels as
	 * "key=value". 0 or -ENOMEM. NULL: none.
	 */
	int (*node_labels)(const struct xpu_device *const *devs, size_t n, char ***labels);
	/*
	 * The link from @a (a device these rules govern) to @b as @a's properties report it,
	 * typically a property "<prefix><peer>" that names @b (device_peer_property()), or
	 * _LINK_UNKNOWN when they say nothing of @b. The allocator asks both devices of a pair
	 * and takes the better answer; where neither knows, it reads the PCI tree and the NUMA
	 * nodes itself. Called for every pair of candidate devices: one pass over @a's
	 * properties. NULL: the source reports no links.
	 */
	enum link_level (*link_level)(const struct xpu_device *a, const struct xpu_device *b);
	/* The name of the fabric that LINK_FABRIC means for these devices, in messages
	 * ("with all devices <fabric>-connected"); NULL: none. */
	const char *fabric;
};

/* The merge rule @rules gives variable @name (ENV_MERGE_LIST when it names none). */
enum env_merge device_rules_env_merge(const struct device_rules *rules, const char *name);
