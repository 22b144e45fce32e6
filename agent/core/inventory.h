/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The live inventory: the current merged device list, the slices planned from it, and the
 * change events between one view and the next. Pure logic: callers pass the time and the
 * fresh device list; nothing here does I/O or logs.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "core/device.h"
#include "core/health.h"
#include "core/plan.h"

enum inventory_event_type {
	INVENTORY_DEVICE_ADDED,
	INVENTORY_DEVICE_REMOVED,
	INVENTORY_DEVICE_CHANGED, /* something other than health changed */
	INVENTORY_HEALTH_CHANGED,
	_INVENTORY_EVENT_MAX,
};

struct inventory_event {
	uint64_t seq;
	enum inventory_event_type type;
	uint64_t time_usec; /* CLOCK_REALTIME */
	const struct xpu_device *device; /* borrowed, valid during the callback only */
	const struct xpu_health *previous; /* health-changed: the state before */
	/* health-changed by the state machine: the phases, signal and reason; else NULL */
	const struct health_transition *transition;
	/* the device's state machine (borrowed, as it is after the event); NULL once removed */
	const struct health_tracker *health;
};

const char *inventory_event_type_to_string(enum inventory_event_type t);

typedef void (*inventory_cb_t)(const struct inventory_event *ev, void *userdata);

struct inventory_stats {
	size_t devices, added, removed, changed;
	bool state_changed; /* the applied offers changed: the state needs saving */
};

struct inventory;

/* How long a device that left untrusted is remembered, and how many such devices at most. */
#define INVENTORY_RETURN_USEC (10 * 60 * 1000000ULL)
#define INVENTORY_DEPARTED_MAX 64

/* Returns 0 or -ENOMEM. */
int inventory_new(struct inventory **ret);
struct inventory *inventory_free(struct inventory *inv);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct inventory *, inventory_free);

/* One subscriber (the API's event streams). Replaces any previous one. */
void inventory_set_listener(struct inventory *inv, inventory_cb_t cb, void *userdata);

/*
 * Replaces the device list with @fresh (sorted by id; its contents move into the inventory and
 * @fresh is left empty), re-plans slices, and emits one event per difference, in id order.
 * The first update after inventory_new() emits device-added for every device.
 * Returns 0 with counts in *ret_stats (may be NULL), or -ENOMEM (inventory unchanged).
 */
int inventory_update(struct inventory *inv, struct device_list *fresh, uint64_t now_usec,
		     struct inventory_stats *ret_stats);

/*
 * The health state machine's policy (borrowed; NULL: HEALTH_POLICY_DEFAULT). Every device has a
 * tracker from its first inventory on; a device that a rescan finds broken is unhealthy at once,
 * and one that is unhealthy or on probation stays so across rescans until its probes say. A
 * device that leaves while unhealthy or on probation and is back, well, within
 * INVENTORY_RETURN_USEC was reset meanwhile: it is on probation (HEALTH_SIGNAL_RESET; a
 * health-changed event follows its device-added), not trusted at once like a new device.
 */
void inventory_set_health_policy(struct inventory *inv, const struct health_policy *policy);
/*
 * Feeds one health signal of device @id to its state machine; a transition sets the device's
 * served health and emits one health-changed event carrying it. Returns 1 on a transition, 0
 * when the phase stayed, -ENOENT for an unknown device, -ENOMEM. Does not log.
 */
int inventory_health_signal(struct inventory *inv, const char *id, enum health_signal signal,
			    enum health_severity severity, const char *reason, uint64_t now_usec);
/* The state machine of device @id (borrowed), or NULL. */
const struct health_tracker *inventory_health(const struct inventory *inv, const char *id);

/* Sets one device's health; emits health-changed when it differs. 0, -ENOENT, -ENOMEM. */
int inventory_set_health(struct inventory *inv, const char *id, const struct xpu_health *h,
			 uint64_t now_usec);

const struct device_list *inventory_devices(const struct inventory *inv);
const struct slice_list *inventory_slices(const struct inventory *inv);
/* The slices with what each device is offered as, and what is pending. */
const struct plan *inventory_plan(const struct inventory *inv);

struct policy;
struct state;
/*
 * What the planner plans from: the partition policy and the state (applied offers and the
 * allocation ledger), both borrowed and read at every update and replan; NULL for none. Every
 * update and replan records the applied offers in @state (see plan_commit()).
 */
void inventory_set_planner(struct inventory *inv, const struct policy *policy,
			   struct state *state);
/* Earlier attempts to apply pending offers (borrowed, may be NULL), noted in every plan from
 * then on (plan_note_attempts()). */
void inventory_set_attempts(struct inventory *inv, const struct plan_attempts *attempts);
/*
 * Plans the slices again over the current devices: after a reload changed the policy, or a
 * release made a device idle so that its pending offer applies. Bumps the generation.
 * Returns 1 when the state changed (needs saving), 0 when not, or -ENOMEM (plan unchanged).
 */
int inventory_replan(struct inventory *inv);
/* Bumps the generation: something derived from the inventory (allocations) changed. */
void inventory_touch(struct inventory *inv);
/* How many updates have completed; 0 until the first inventory. */
uint64_t inventory_generation(const struct inventory *inv);
uint64_t inventory_last_seq(const struct inventory *inv);

/*
 * Finds a device by id, by PCI address in any accepted spelling ("18:00.0"), or by UUID.
 * Returns a borrowed pointer or NULL.
 */
const struct xpu_device *inventory_find(const struct inventory *inv, const char *key);
