// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/inventory.h"
#include "core/state.h"

/* A device's health state machine, kept across rescans by id. */
struct tracked {
	char *id;
	struct health_tracker t;
	struct health_transition pending; /* made by a rescan, reported by its diff */
	bool has_pending;
};

/* A device that left while unhealthy or on probation, remembered for a while by id. */
struct departed {
	char *id;
	struct health_tracker t;
	uint64_t gone_usec;
};

struct inventory {
	struct tracked *tracked;
	size_t n_tracked;
	struct departed departed[INVENTORY_DEPARTED_MAX]; /* oldest first */
	size_t n_departed;
	const struct health_policy *health_policy; /* borrowed; NULL: the default */
	struct device_list devices; /* sorted by id */
	struct plan plan;
	const struct policy *policy; /* borrowed; NULL: every device whole */
	struct state *state;	     /* borrowed; NULL: nothing applied or allocated */
	const struct plan_attempts *attempts; /* borrowed; NULL: none */
	uint64_t generation;
	uint64_t seq;
	inventory_cb_t cb;
	void *userdata;
};

static const char *const event_table[_INVENTORY_EVENT_MAX] = {
	[INVENTORY_DEVICE_ADDED] = "device-added",
	[INVENTORY_DEVICE_REMOVED] = "device-removed",
	[INVENTORY_DEVICE_CHANGED] = "device-changed",
	[INVENTORY_HEALTH_CHANGED] = "health-changed",
};

const char *inventory_event_type_to_string(enum inventory_event_type t)
{
	return t < _INVENTORY_EVENT_MAX ? event_table[t] : NULL;
}

int inventory_new(struct inventory **ret)
{
	struct inventory *inv = calloc(1, sizeof(*inv));

	if (!inv)
		return -ENOMEM;
	*ret = inv;
	return 0;
}

struct inventory *inventory_free(struct inventory *inv)
{
	if (!inv)
		return NULL;
	device_list_clear(&inv->devices);
	plan_done(&inv->plan);
	for (size_t i = 0; i < inv->n_tracked; i++)
		free(inv->tracked[i].id);
	free(inv->tracked);
	for (size_t i = 0; i < inv->n_departed; i++)
		free(inv->departed[i].id);
	free(inv);
	return NULL;
}

void inventory_set_listener(struct inventory *inv, inventory_cb_t cb, void *userdata)
{
	inv->cb = cb;
	inv->userdata = userdata;
}

static void emit_transition(struct inventory *inv, enum inventory_event_type type,
			    const struct xpu_device *d, const struct xpu_health *previous,
			    const struct health_transition *tr, uint64_t now)
{
	struct inventory_event ev = {
		.seq = ++inv->seq,
		.type = type,
		.time_usec = now,
		.device = d,
		.previous = previous,
		.transition = tr,
		.health = inventory_health(inv, d->id),
	};

	if (inv->cb)
		inv->cb(&ev, inv->userdata);
}

static void emit(struct inventory *inv, enum inventory_event_type type,
		 const struct xpu_device *d, const struct xpu_health *previous, uint64_t now)
{
	emit_transition(inv, type, d, previous, NULL, now);
}

static const struct health_policy *health_policy(const struct inventory *inv)
{
	static const struct health_policy def = HEALTH_POLICY_DEFAULT;

	return inv->health_policy ?: &def;
}

static struct tracked *tracked_find(const struct inventory *inv, const char *id)
{
	for (size_t i = 0; i < inv->n_tracked; i++)
		if (streq(inv->tracked[i].id, id))
			return &inv->tracked[i];
	return NULL;
}

/* What front ends see of @t: served or not, and why not. 0 or -ENOMEM. */
static int health_from_tracker(const struct health_tracker *t, struct xpu_health *ret)
{
	char *reason = NULL;

	if (health_phase_served(t->phase) == XPU_HEALTH_HEALTHY) {
		*ret = (struct xpu_health){ .state = XPU_HEALTH_HEALTHY };
		return 0;
	}
	if (t->phase == HEALTH_PHASE_PROBATION ? asprintf(&reason, "on probation: %s", t->reason) < 0
					       : !(reason = strdup(t->reason)))
		return -ENOMEM;
	*ret = (struct xpu_health){ .state = XPU_HEALTH_UNHEALTHY, .reason = reason };
	return 0;
}

static void departed_drop(struct inventory *inv, size_t i)
{
	free(inv->departed[i].id);
	memmove(&inv->departed[i], &inv->departed[i + 1],
		(inv->n_departed - i - 1) * sizeof(inv->departed[0]));
	inv->n_departed--;
}

/* Forgets departures older than the window; makes room for one more. */
static void departed_prune(struct inventory *inv, uint64_t now)
{
	while (inv->n_departed > 0 &&
	       (inv->n_departed == INVENTORY_DEPARTED_MAX ||
		now - inv->departed[0].gone_usec > INVENTORY_RETURN_USEC))
		departed_drop(inv, 0);
}

/* Remembers the trackers of devices that leave while not trusted (unhealthy, on probation). */
static int departed_note(struct inventory *inv, const struct device_list *fresh, uint64_t now)
{
	departed_prune(inv, now);
	for (size_t i = 0; i < inv->n_tracked; i++) {
		const struct tracked *t = &inv->tracked[i];
		struct departed *g;

		if (device_list_find(fresh, t->id) ||
		    health_phase_served(t->t.phase) == XPU_HEALTH_HEALTHY)
			continue;
		departed_prune(inv, now);
		g = &inv->departed[inv->n_departed];
		*g = (struct departed){ .id = strdup(t->id), .t = t->t, .gone_usec = now };
		if (!g->id)
			return -ENOMEM;
		inv->n_departed++;
	}
	return 0;
}

/*
 * A device that left while unhealthy or on probation and is back within the window, well: it was
 * reset (or re-seated) meanwhile, which is what HEALTH_SIGNAL_RESET stands for. It goes through
 * probation like a device reset in place, instead of being trusted at once like a new one.
 */
static void track_return(struct inventory *inv, struct tracked *n, const struct xpu_device *d,
			 uint64_t now)
{
	for (size_t i = 0; i < inv->n_departed; i++) {
		struct departed *g = &inv->departed[i];

		if (!streq(g->id, d->id))
			continue;
		if (d->health.state == XPU_HEALTH_HEALTHY &&
		    now - g->gone_usec <= INVENTORY_RETURN_USEC) {
			n->t = g->t;
			n->t.phase = HEALTH_PHASE_UNHEALTHY; /* probation starts over */
			n->has_pending = health_tracker_signal(&n->t, health_policy(inv),
							       HEALTH_SIGNAL_RESET, 0, NULL, now,
							       &n->pending);
		}
		departed_drop(inv, i);
		return;
	}
}

/*
 * Brings the trackers in line with a fresh device list: one per device (new ones healthy), none
 * for devices gone; a device found broken is unhealthy at once; a device the machine holds
 * unhealthy or on probation is shown so until its probation is over (a rescan that finds it well
 * counts as one clean probe); one that comes back well after it left untrusted is on probation.
 */
static int track_fresh(struct inventory *inv, struct device_list *fresh, uint64_t now)
{
	struct tracked *n = calloc(fresh->n ?: 1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	if (departed_note(inv, fresh, now) < 0) {
		free(n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < fresh->n; i++) {
		struct xpu_device *d = fresh->items[i];
		struct tracked *old = tracked_find(inv, d->id);

		n[i].id = strdup(d->id);
		if (!n[i].id)
			goto oom;
		if (old) {
			n[i].t = old->t;
		} else {
			health_tracker_init(&n[i].t, now);
			track_return(inv, &n[i], d, now);
		}
	}
	for (size_t i = 0; i < fresh->n; i++) {
		struct xpu_device *d = fresh->items[i];
		struct xpu_health h;

		if (d->health.state != XPU_HEALTH_HEALTHY &&
		    health_phase_served(n[i].t.phase) == XPU_HEALTH_HEALTHY)
			n[i].has_pending = health_tracker_signal(&n[i].t, health_policy(inv),
								 HEALTH_SIGNAL_DISCOVERED, 0,
								 d->health.reason, now,
								 &n[i].pending);
		else if (d->health.state == XPU_HEALTH_HEALTHY && !n[i].has_pending &&
			 health_phase_served(n[i].t.phase) != XPU_HEALTH_HEALTHY)
			/* a rescan that finds it well is one clean probe (one just back from a
			 * reset has had its signal) */
			n[i].has_pending = health_tracker_signal(&n[i].t, health_policy(inv),
								 HEALTH_SIGNAL_PROBE_OK, 0, NULL,
								 now, &n[i].pending);
		if (health_phase_served(n[i].t.phase) == XPU_HEALTH_HEALTHY)
			continue;
		if (health_from_tracker(&n[i].t, &h) < 0)
			goto oom;
		free(d->health.reason);
		d->health = h;
	}
	for (size_t i = 0; i < inv->n_tracked; i++)
		free(inv->tracked[i].id);
	free(inv->tracked);
	inv->tracked = n;
	inv->n_tracked = fresh->n;
	return 0;
oom:
	for (size_t i = 0; i < fresh->n; i++)
		free(n[i].id);
	free(n);
	return -ENOMEM;
}

static bool health_equal(const struct xpu_health *a, const struct xpu_health *b)
{
	return a->state == b->state && streq_ptr(a->reason, b->reason);
}

/* Whether anything but health differs. */
static bool differs_beyond_health(const struct xpu_device *a, const struct xpu_device *b)
{
	struct xpu_device ta = *a, tb = *b;

	ta.health = tb.health = (struct xpu_health){};
	/* (a struct copy: the partitions are shared, not duplicated, which equality allows) */
	return !device_equal(&ta, &tb);
}

/* The plan of @devs from the policy and state, with the earlier apply attempts noted. */
static int inventory_plan_build(struct inventory *inv, const struct device_list *devs,
				struct plan *ret)
{
	int r;

	r = plan_build(devs, inv->policy, inv->state, ret);
	if (r < 0)
		return r;
	r = plan_note_attempts(ret, devs, inv->attempts);
	if (r < 0)
		plan_done(ret);
	return r;
}

int inventory_update(struct inventory *inv, struct device_list *fresh, uint64_t now_usec,
		     struct inventory_stats *ret_stats)
{
	struct inventory_stats st = { .devices = fresh->n };
	struct device_list old = inv->devices;
	struct plan plan;
	size_t i = 0, j = 0;
	int r;

	device_list_sort(fresh);
	r = track_fresh(inv, fresh, now_usec);
	if (r < 0)
		return r;
	r = inventory_plan_build(inv, fresh, &plan);
	if (r < 0)
		return r;
	if (inv->state) {
		r = plan_commit(&plan, inv->state);
		if (r < 0) {
			plan_done(&plan);
			return r;
		}
		st.state_changed = r > 0;
	}
	plan_done(&inv->plan);
	inv->plan = plan;
	inv->devices = *fresh;
	*fresh = (struct device_list){};
	inv->generation++;

	/* Both lists are sorted by id: walk them side by side. */
	while (i < old.n || j < inv->devices.n) {
		const struct xpu_device *o = i < old.n ? old.items[i] : NULL;
		const struct xpu_device *n = j < inv->devices.n ? inv->devices.items[j] : NULL;
		int c = i >= old.n ? 1 : j >= inv->devices.n ? -1 : strcmp(o->id, n->id);

		if (c < 0) {
			emit(inv, INVENTORY_DEVICE_REMOVED, o, NULL, now_usec);
			st.removed++;
			i++;
		} else if (c > 0) {
			struct tracked *t = tracked_find(inv, n->id);

			emit(inv, INVENTORY_DEVICE_ADDED, n, NULL, now_usec);
			/* back from a reset: say so, as for a device reset in place */
			if (t && t->has_pending && t->pending.signal == HEALTH_SIGNAL_RESET)
				emit_transition(inv, INVENTORY_HEALTH_CHANGED, n,
						&(struct xpu_health){ .state = XPU_HEALTH_UNHEALTHY,
								      .reason = t->t.reason },
						&t->pending, now_usec);
			st.added++;
			j++;
		} else {
			bool changed = false;

			if (differs_beyond_health(o, n)) {
				emit(inv, INVENTORY_DEVICE_CHANGED, n, NULL, now_usec);
				changed = true;
			}
			if (!health_equal(&o->health, &n->health)) {
				struct tracked *t = tracked_find(inv, n->id);

				emit_transition(inv, INVENTORY_HEALTH_CHANGED, n, &o->health,
						t && t->has_pending ? &t->pending : NULL, now_usec);
				changed = true;
			}
			st.changed += changed;
			i++;
			j++;
		}
	}
	device_list_clear(&old);
	if (ret_stats)
		*ret_stats = st;
	return 0;
}

void inventory_set_health_policy(struct inventory *inv, const struct health_policy *policy)
{
	inv->health_policy = policy;
}

const struct health_tracker *inventory_health(const struct inventory *inv, const char *id)
{
	const struct tracked *t = tracked_find(inv, id);

	return t ? &t->t : NULL;
}

int inventory_health_signal(struct inventory *inv, const char *id, enum health_signal signal,
			    enum health_severity severity, const char *reason, uint64_t now_usec)
{
	struct xpu_device *d = device_list_find(&inv->devices, id);
	struct tracked *t = tracked_find(inv, id);
	struct health_tracker before;
	struct health_transition tr;
	struct xpu_health previous, h;

	if (!d || !t)
		return -ENOENT;
	before = t->t;
	if (!health_tracker_signal(&t->t, health_policy(inv), signal, severity, reason, now_usec,
				   &tr))
		return 0;
	if (health_from_tracker(&t->t, &h) < 0) {
		t->t = before;
		return -ENOMEM;
	}
	previous = d->health;
	d->health = h;
	emit_transition(inv, INVENTORY_HEALTH_CHANGED, d, &previous, &tr, now_usec);
	free(previous.reason);
	return 1;
}

int inventory_set_health(struct inventory *inv, const char *id, const struct xpu_health *h,
			 uint64_t now_usec)
{
	struct xpu_device *d = device_list_find(&inv->devices, id);
	struct xpu_health previous;
	char *reason = NULL;

	if (!d)
		return -ENOENT;
	if (health_equal(&d->health, h))
		return 0;
	if (h->reason && !(reason = strdup(h->reason)))
		return -ENOMEM;
	previous = d->health;
	d->health = (struct xpu_health){ .state = h->state, .reason = reason };
	emit(inv, INVENTORY_HEALTH_CHANGED, d, &previous, now_usec);
	free(previous.reason);
	return 0;
}

const struct device_list *inventory_devices(const struct inventory *inv)
{
	return &inv->devices;
}

const struct slice_list *inventory_slices(const struct inventory *inv)
{
	return &inv->plan.slices;
}

const struct plan *inventory_plan(const struct inventory *inv)
{
	return &inv->plan;
}

void inventory_set_planner(struct inventory *inv, const struct policy *policy,
			   struct state *state)
{
	inv->policy = policy;
	inv->state = state;
}

void inventory_set_attempts(struct inventory *inv, const struct plan_attempts *attempts)
{
	inv->attempts = attempts;
}

int inventory_replan(struct inventory *inv)
{
	struct plan plan;
	int r, changed = 0;

	r = inventory_plan_build(inv, &inv->devices, &plan);
	if (r < 0)
		return r;
	if (inv->state) {
		changed = plan_commit(&plan, inv->state);
		if (changed < 0) {
			plan_done(&plan);
			return changed;
		}
	}
	plan_done(&inv->plan);
	inv->plan = plan;
	inv->generation++;
	return changed;
}

void inventory_touch(struct inventory *inv)
{
	inv->generation++;
}

uint64_t inventory_generation(const struct inventory *inv)
{
	return inv->generation;
}

uint64_t inventory_last_seq(const struct inventory *inv)
{
	return inv->seq;
}

const struct xpu_device *inventory_find(const struct inventory *inv, const char *key)
{
	return device_list_lookup(&inv->devices, key);
}
