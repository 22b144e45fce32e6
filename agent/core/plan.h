/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The slice planner: turns devices into schedulable slices, and slices into capacity per
 * resource name. A device is offered whole, or as the partitions its backend reports (MIG
 * instances); replicas and memory shares plug in here. Pure functions over plain structs.
 */
#pragma once

#include <stddef.h>

#include "core/device.h"
#include "core/policy.h"

struct slice_list {
	struct xpu_slice **items;
	size_t n;
};

void slice_list_clear(struct slice_list *l);

/*
 * The slices of every device, in device order: its partitions where the backend reported any
 * (MIG instances), the whole device otherwise. Returns 0 or -ENOMEM. (plan_build() with no
 * policy and no state.)
 */
int plan_slices(const struct device_list *devices, struct slice_list *ret);

struct policy;
struct state;
struct ledger;

/* What one device is offered as now, and what the policy asks for that is not applied yet. */
struct device_plan {
	char *device_id;
	struct offer applied;  /* the offer the device's slices follow */
	bool has_pending;
	struct offer pending;  /* valid when has_pending */
	char *pending_reason;  /* why it is not applied: "2 slices allocated", ...; or NULL */
	/* The pending offer is only waiting to be carried out on the hardware (a MIG layout on an
	 * idle GPU): the daemon asks the device's backend to apply it. */
	bool apply_needed;
	/* Slices allocated under the applied offer that keep the pending one from applying. */
	unsigned busy;
};

/*
 * Whether @d can be offered as @o: 1 when it is so now or once its backend applies @o (a MIG
 * layout), 0 with the reason in *ret_reason (malloc'd) when not (a profile the GPU does not
 * have, shares larger than its memory, a MIG layout on a GPU with MIG disabled and no
 * mig-enable), -ENOMEM.
 */
int plan_offer_check(const struct xpu_device *d, const struct offer *o, char **ret_reason);
/*
 * Whether offering @d as @o instead of @current (what its slices follow now) changes nothing:
 * 1 when both are in effect as the device is (nothing to make, nothing pending) and give the
 * same slices, 0 when not, -ENOMEM.
 */
int plan_offer_unchanged(const struct xpu_device *d, const struct offer *current,
			 const struct offer *o);

struct plan {
	struct slice_list slices;
	struct device_plan *devices; /* one per device, in device order */
	size_t n_devices;
};

void plan_done(struct plan *p);
/* The plan of device @id in @p (borrowed), or NULL. */
const struct device_plan *plan_find_device(const struct plan *p, const char *id);

/*
 * Plans every device's slices from the offer it is wanted as (plan_wanted_offer(); no policy:
 * whole), unless the device
 * has allocated slices (in @st's ledger) under a different offer applied before (in @st): that
 * offer stays in effect, the policy's is pending, and no allocated slice is withdrawn. Slice
 * ids are stable for a given device and offer: "<device>" for a whole device, its MIG UUID for
 * a MIG instance, "<device>/replica-<i>" and "<device>/share-<i>" for replicas and shares.
 * The free slices of a device that is cordoned or being repartitioned (in @st) are planned but
 * unhealthy, with plan_withdrawn_reason() as their reason: no front end offers them.
 * @st NULL: nothing applied, nothing allocated. Pure: the caller records the result with
 * plan_commit(). 0 or -ENOMEM.
 */
int plan_build(const struct device_list *devs, const struct policy *pol, const struct state *st,
	       struct plan *ret);

/*
 * What a device is to be offered as: the target of a repartition the policy started, else the
 * operator's layout (xpuctl repartition) in @st, else what @pol asks. Borrowed.
 */
const struct offer *plan_wanted_offer(const struct policy *pol, const struct state *st,
				      const struct xpu_device *d);
/* Why the free slices of device @device_id are withdrawn ("cordoned: REASON", "repartitioning
 * to ..."), malloc'd; NULL when they are not, or on OOM. */
char *plan_withdrawn_reason(const struct state *st, const char *device_id);

/* Records each device's applied offer of @p in @st (forgetting devices @p does not have).
 * Returns 1 when @st changed (it needs saving), 0 when not, -ENOMEM. */
int plan_commit(const struct plan *p, struct state *st);

/*
 * Attempts to apply a device's pending offer that left it pending (an NVML error, a layout
 * the hardware refused). The daemon records each with the device's fingerprint as it was after
 * the attempt; while the device still has that fingerprint and the offer is the same, the
 * planner shows the attempt's reason and does not ask for the offer to be applied again, so a
 * failing apply is never retried in a loop. A reload (a new policy) clears them.
 */
struct plan_attempt {
	char *device_id;
	struct offer offer;
	char *fingerprint;
	char *reason;
};

struct plan_attempts {
	struct plan_attempt *items;
	size_t n;
};

void plan_attempts_clear(struct plan_attempts *a);
/* Records an attempt on @d of @o (replacing an earlier one of @d). 0 or -ENOMEM. */
int plan_attempts_record(struct plan_attempts *a, const struct xpu_device *d,
			 const struct offer *o, const char *reason);
/* What applying an offer can change on @d: its MIG modes and its partitions' ids, as one
 * string (caller frees), or NULL on OOM. */
char *plan_device_fingerprint(const struct xpu_device *d);
/*
 * For each device plan of @p that needs its pending offer applied and has an attempt in @a for
 * that offer on the device as it still is (@devs): shows the attempt's reason as the pending
 * reason and clears apply_needed. @a may be NULL. 0 or -ENOMEM.
 */
int plan_note_attempts(struct plan *p, const struct device_list *devs,
		       const struct plan_attempts *a);

struct capacity_numa {
	int node; /* -1: unknown */
	unsigned total, healthy, allocated, free;
};

struct capacity {
	char *resource;
	unsigned total;
	unsigned healthy;
	unsigned allocated;
	unsigned free; /* healthy and not allocated */
	struct capacity_numa *numa; /* per NUMA node of the slices' devices, by node */
	size_t n_numa;
};

struct capacity_list {
	struct capacity *items;
	size_t n;
};

/*
 * Counts slices per resource name, sorted by name, and per NUMA node within each; a slice is
 * healthy when its device is, allocated when @ledger (may be NULL) holds it. 0 or -ENOMEM.
 */
int plan_capacity(const struct device_list *devices, const struct slice_list *slices,
		  const struct ledger *ledger, struct capacity_list *ret);
void capacity_list_clear(struct capacity_list *l);
