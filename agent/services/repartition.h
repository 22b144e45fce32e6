/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Cordons and partition changes without a node drain, one device at a time.
 *
 * A cordoned device stays in the inventory, but its free slices are withdrawn from every front
 * end (plan_build() plans them unhealthy, "cordoned: REASON"); slices in use keep running.
 *
 * A repartition (xpuctl repartition, or a partition policy that changed for a device in use or
 * whose layout must be made on the hardware) withdraws that device's free slices the same way,
 * waits until the device has no allocated slice (or its deadline passes: then nothing changes),
 * has the device's backend make the new layout on a thread of its own (the loop keeps serving
 * the other devices), rescans, and lets the device's new slices out. A layout that fails
 * half-way is rolled back to the one before; if that fails too, the device stays cordoned with
 * both reasons, so a half-made layout is never offered. Cordons and repartitions live in the
 * state (state.json): a restart in the middle resumes the repartition where it was (draining:
 * waits on; applying or rolling back: makes the layout again, which is idempotent) and says so.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "core/plan.h"
#include "core/state.h"
#include "shared/macro.h"

struct registry;
struct inventory;
struct allocations;

/* repartitioner_start()'s timeout that stands for "the configured one" */
#define REPARTITION_TIMEOUT_DEFAULT UINT64_MAX

/* What the daemon tells the world of a repartition or cordon (an event, a journal entry). */
struct repartition_news {
	const char *device_id;
	/* "cordoned", "uncordoned", "started", "resumed", "applying", "rolling-back", "done",
	 * "failed" */
	const char *what;
	const char *layout; /* the target layout, as text; NULL for cordons */
	const char *reason; /* why it failed, the cordon's reason; or NULL */
};

struct repartition_hooks {
	/* Enumerates again and re-plans (the daemon's rescan). 0 or -errno. */
	int (*rescan)(void *userdata);
	/* Something happened that clients should hear of. */
	void (*news)(const struct repartition_news *n, void *userdata);
	void *userdata;
};

struct repartitioner;

/*
 * @policy: the partition policy (borrowed, read when a repartition goes back to it).
 * @attempts: the daemon's record of failed applies (shared with the planner), where a failed
 * layout is noted so that it is not made again in a loop. Resumes the repartitions the state
 * holds at the first repartitioner_step(). 0 or -errno.
 */
int repartitioner_new(sd_event *e, struct registry *reg, struct inventory *inv,
		      struct allocations *allocs, const struct policy *policy,
		      struct plan_attempts *attempts, const struct repartition_hooks *hooks,
		      struct repartitioner **ret);
/* Joins an apply in flight (bounded by the backend's own deadline). */
struct repartitioner *repartitioner_free(struct repartitioner *rp);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct repartitioner *, repartitioner_free);

/* How long a repartition the policy starts waits for its device's slices (0: forever). */
void repartitioner_set_timeout(struct repartitioner *rp, uint64_t usec);

/*
 * Cordons the device @key names (id, PCI address or UUID) with @reason (NULL or empty: "no
 * reason given"), persistently. Cordoning again replaces the reason. 0; -ENOENT for an unknown
 * device; -EIO when the state could not be saved (nothing changed); -ENOMEM. A one-line reason
 * in *ret_error on failure.
 */
int repartitioner_cordon(struct repartitioner *rp, const char *key, const char *reason,
			 char **ret_error);
/* Lifts the cordon: 1 when there was one, 0 when not; -ENOENT, -EIO, -ENOMEM as above. */
int repartitioner_uncordon(struct repartitioner *rp, const char *key, char **ret_error);

enum {
	REPARTITION_STARTED,   /* in progress: its news follow */
	REPARTITION_DONE,      /* made before repartitioner_start() returned */
	REPARTITION_UNCHANGED, /* the device is offered so already: nothing drained or made */
};

/*
 * Starts repartitioning the device @key names to @layout (NULL: back to what the policy asks),
 * waiting up to @timeout_usec (0: as long as it takes; REPARTITION_TIMEOUT_DEFAULT: the
 * configured repartition-timeout) for its slices to be released. Returns REPARTITION_STARTED,
 * _DONE or _UNCHANGED with the device's id in *ret_device (caller frees); -ENOENT for an
 * unknown device, -EBUSY while a repartition of that device is in progress, -EINVAL for a
 * layout the device cannot have, -ECANCELED for one that failed at once (one that failed on
 * the device as it is before), -EIO when the state could not be saved; a one-line reason in
 * *ret_error.
 */
int repartitioner_start(struct repartitioner *rp, const char *key, const struct offer *layout,
			uint64_t timeout_usec, char **ret_device, char **ret_error);

/*
 * Moves repartitions on after the inventory changed (a new plan, a release, a rescan), and
 * starts those the policy needs: a device whose wanted offer waits on slices in use, or must be
 * made by its backend. Call from the loop after each change.
 */
void repartitioner_step(struct repartitioner *rp);

/* The policy changed: repartitions the policy gave up on (timed out) may start again. */
void repartitioner_policy_changed(struct repartitioner *rp);
