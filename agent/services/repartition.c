// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/registry.h"
#include "core/inventory.h"
#include "services/allocations.h"
#include "services/offloop.h"
#include "services/repartition.h"
#include "shared/clock.h"
#include "shared/fault.h"
#include "shared/log.h"
#include "shared/strv.h"

/* One layout being made by a device's backend, on a thread of its own. */
struct apply_job {
	struct repartitioner *rp;
	struct xpu_device *device; /* a copy: the inventory may change meanwhile */
	struct offer offer;
	bool rollback;
	char *fingerprint; /* the device before: did the failed apply change anything? */
	char *error;
	struct offloop *run;
};

/* A repartition the policy started and that timed out: not started again for that offer until
 * the policy changes, so that a device in use is not withdrawn over and over. */
struct given_up {
	char *device_id;
	struct offer offer;
};

struct repartitioner {
	sd_event *event;
	struct registry *registry;
	struct inventory *inventory;
	struct allocations *allocs;
	struct plan_attempts *attempts;
	const struct policy *policy;
	struct repartition_hooks hooks;
	uint64_t timeout_usec;
	struct apply_job *job; /* one apply at a time */
	sd_event_source *deadline; /* the earliest deadline of a draining repartition */
	struct given_up *given_up;
	size_t n_given_up;
	bool resumed; /* the state's repartitions were looked at once after the start */
	/* A repartition being started: whether it ended at once, and why it failed. */
	const char *starting;
	bool started_ended;
	char *started_failure;
};

static struct state *state(const struct repartitioner *rp)
{
	return allocations_state(rp->allocs);
}

static void news(struct repartitioner *rp, const char *device_id, const char *what,
		 const struct offer *layout, const char *reason)
{
	_cleanup_free_ char *text = layout ? offer_to_string(layout) : NULL;
	struct repartition_news n = {
		.device_id = device_id, .what = what, .layout = text, .reason = reason,
	};

	if (rp->hooks.news)
		rp->hooks.news(&n, rp->hooks.userdata);
}

/* Saves the state; a failure is logged (memory holds the truth until the next save). */
static void save(struct repartitioner *rp)
{
	(void)allocations_save(rp->allocs);
}

/* The plan changed by our hand (a cordon, a phase): plan again so that front ends follow. */
static void replan(struct repartitioner *rp)
{
	int r = inventory_replan(rp->inventory);

	if (r < 0)
		log_warning_errno(r, "Failed to plan slices again: %m");
	if (r > 0)
		save(rp);
}

static const struct device_plan *plan_of(const struct repartitioner *rp, const char *id)
{
	return plan_find_device(inventory_plan(rp->inventory), id);
}

/* How many slices of device @id are allocated. */
static unsigned allocated_slices(const struct repartitioner *rp, const char *id)
{
	const struct slice_list *l = inventory_slices(rp->inventory);
	unsigned n = 0;

	for (size_t i = 0; i < l->n; i++)
		n += streq_ptr(l->items[i]->device_id, id) &&
		     ledger_find_slice(&state(rp)->ledger, l->items[i]->id);
	return n;
}

/* Whether @o is what device @id is offered as now, with nothing pending. */
static bool in_effect(const struct repartitioner *rp, const char *id, const struct offer *o)
{
	const struct device_plan *dp = plan_of(rp, id);

	return dp && !dp->has_pending && offer_equal(&dp->applied, o);
}

static int fail_msg(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
static int fail_msg(char **ret_error, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (ret_error && vasprintf(ret_error, fmt, ap) < 0)
		*ret_error = NULL;
	va_end(ap);
	return r;
}

/*
 * The layout @d has now, as an offer that a rollback can make again: its partitions' profiles
 * when it has any (its mode, for a scheme of modes), else what it is offered as (@applied).
 * 0 or -ENOMEM.
 */
static int current_layout(const struct xpu_device *d, const struct offer *applied,
			  struct offer *ret)
{
	struct offer o = { .kind = OFFER_PARTITIONS };

	if (!d->rules || !d->rules->scheme || (d->n_partitions == 0 && !d->rules->scheme->modes))
		return offer_copy(applied, ret);
	o.scheme = d->rules->scheme;
	if (applied->resource && !(o.resource = strdup(applied->resource)))
		return -ENOMEM;
	if (o.scheme->modes) {
		/* a mode: the partitions' (all the same), or the undivided one */
		if (strv_extend(&o.layout, d->n_partitions ? d->partitions[0]->profile ?: "?"
							   : o.scheme->modes[0]) < 0) {
			offer_done(&o);
			return -ENOMEM;
		}
		*ret = o;
		return 0;
	}
	for (size_t i = 0; i < d->n_partitions; i++)
		if (strv_extend(&o.layout, d->partitions[i]->profile ?: "?") < 0) {
			offer_done(&o);
			return -ENOMEM;
		}
	*ret = o;
	return 0;
}

/* ---- cordons ----------------------------------------------------------------------------- */

int repartitioner_cordon(struct repartitioner *rp, const char *key, const char *reason,
			 char **ret_error)
{
	const struct xpu_device *d = inventory_find(rp->inventory, key);
	const struct device_cordon *old;
	_cleanup_free_ char *old_reason = NULL;
	uint64_t old_since = 0;
	int r;

	if (!d)
		return fail_msg(ret_error, -ENOENT, "no device '%s'", key);
	if (!reason || !*reason)
		reason = "no reason given";
	old = state_cordon(state(rp), d->id);
	if (old) {
		old_since = old->since_usec;
		if (!(old_reason = strdup(old->reason)))
			return -ENOMEM;
	}
	r = state_set_cordon(state(rp), d->id, reason, now_usec(CLOCK_REALTIME));
	if (r < 0)
		return r;
	r = allocations_save(rp->allocs);
	if (r < 0) {
		/* what is on disk decides: memory follows it */
		if (old_reason)
			(void)state_set_cordon(state(rp), d->id, old_reason, old_since);
		else
			(void)state_unset_cordon(state(rp), d->id);
		return fail_msg(ret_error, -EIO, "the state could not be saved; nothing changed");
	}
	log_device_full_errno(LOG_NOTICE, 0, d->id, d->has_pci ? d->pci.address : NULL,
			      "Device %s cordoned: %s (%u slice%s in use keep running).", d->id,
			      reason, allocated_slices(rp, d->id),
			      allocated_slices(rp, d->id) == 1 ? "" : "s");
	news(rp, d->id, "cordoned", NULL, reason);
	replan(rp);
	return 0;
}

int repartitioner_uncordon(struct repartitioner *rp, const char *key, char **ret_error)
{
	const struct xpu_device *d = inventory_find(rp->inventory, key);
	const struct device_cordon *c;
	_cleanup_free_ char *reason = NULL;
	uint64_t since;
	int r;

	if (!d)
		return fail_msg(ret_error, -ENOENT, "no device '%s'", key);
	c = state_cordon(state(rp), d->id);
	if (!c)
		return 0;
	since = c->since_usec;
	if (!(reason = strdup(c->reason)))
		return -ENOMEM;
	(void)state_unset_cordon(state(rp), d->id);
	r = allocations_save(rp->allocs);
	if (r < 0) {
		(void)state_set_cordon(state(rp), d->id, reason, since);
		return fail_msg(ret_error, -EIO, "the state could not be saved; nothing changed");
	}
	log_device_full_errno(LOG_NOTICE, 0, d->id, d->has_pci ? d->pci.address : NULL,
			      "Device %s uncordoned (was: %s).", d->id, reason);
	news(rp, d->id, "uncordoned", NULL, NULL);
	replan(rp);
	return 1;
}

/* A cordon xpud itself sets: a layout it could neither make nor undo. */
static void cordon_broken(struct repartitioner *rp, const char *id, const char *reason)
{
	if (state_set_cordon(state(rp), id, reason, now_usec(CLOCK_REALTIME)) < 0)
		return (void)log_oom();
	log_device_full_errno(LOG_ERR, 0, id, NULL,
			      "Device %s is cordoned: %s. Uncordon it (xpuctl uncordon) once its "
			      "layout is repaired.",
			      id, reason);
	news(rp, id, "cordoned", NULL, reason);
}

/* ---- the end of a repartition --------------------------------------------------------------- */

static void given_up_clear(struct repartitioner *rp);

static bool given_up(const struct repartitioner *rp, const char *id, const struct offer *o)
{
	for (size_t i = 0; i < rp->n_given_up; i++)
		if (streq(rp->given_up[i].device_id, id) && offer_equal(&rp->given_up[i].offer, o))
			return true;
	return false;
}

static void give_up(struct repartitioner *rp, const char *id, const struct offer *o)
{
	struct given_up *m = realloc(rp->given_up, (rp->n_given_up + 1) * sizeof(*m));

	if (!m)
		return (void)log_oom();
	rp->given_up = m;
	m[rp->n_given_up] = (struct given_up){ .device_id = strdup(id) };
	if (!m[rp->n_given_up].device_id || offer_copy(o, &m[rp->n_given_up].offer) < 0) {
		free(m[rp->n_given_up].device_id);
		return (void)log_oom();
	}
	rp->n_given_up++;
}

/* An operator's repartition that does not happen: the layout before is the operator's again. */
static void restore_layout(struct repartitioner *rp, const struct repartition *rec)
{
	if (rec->by_policy)
		return;
	if (rec->has_previous_layout) {
		if (state_set_layout(state(rp), rec->device_id, &rec->previous_layout) < 0)
			log_oom();
	} else
		state_unset_layout(state(rp), rec->device_id);
}

/* Ends @rec (which is freed), saves, re-plans and tells. @reason NULL: it succeeded. */
static void finish(struct repartitioner *rp, struct repartition *rec, const char *reason)
{
	_cleanup_free_ char *id = strdup(rec->device_id), *what = NULL;
	struct offer target;

	if (!id || offer_copy(&rec->target, &target) < 0)
		return (void)log_oom();
	if (reason)
		restore_layout(rp, rec);
	if (rp->starting && streq(rp->starting, id)) {
		rp->started_ended = true;
		if (reason && !(rp->started_failure = strdup(reason)))
			log_oom();
	}
	state_remove_repartition(state(rp), id);
	save(rp);
	what = offer_to_string(&target);
	if (reason)
		log_device_full_errno(LOG_WARNING, 0, id, NULL,
				      "Device %s: repartition to %s failed: %s.", id, what ?: "?",
				      reason);
	else
		log_device_full_errno(LOG_NOTICE, 0, id, NULL, "Device %s repartitioned to %s.",
				      id, what ?: "?");
	news(rp, id, reason ? "failed" : "done", &target, reason);
	offer_done(&target);
	replan(rp);
}

/* ---- applying, off the loop --------------------------------------------------------------- */

static void job_free(struct apply_job *j)
{
	if (!j)
		return;
	device_free(j->device);
	offer_done(&j->offer);
	free(j->fingerprint);
	free(j->error);
	free(j);
}

/* On the job's thread: only the job's own data. */
static int job_work(void *data)
{
	struct apply_job *j = data;

	return registry_apply_offer(j->rp->registry, j->device, &j->offer, &j->error);
}

static void job_done(struct repartitioner *rp, struct apply_job *j, int result);

static void on_job_done(int result, void *data)
{
	struct apply_job *j = data;
	struct repartitioner *rp = j->rp;

	rp->job = NULL;
	job_done(rp, j, result);
	job_free(j);
	repartitioner_step(rp); /* the next one, if any */
}

/* Starts making @o on device @id. 0 or -errno (logged by the caller). */
static int job_start(struct repartitioner *rp, const char *id, const struct offer *o,
		     bool rollback)
{
	const struct xpu_device *d = inventory_find(rp->inventory, id);
	struct apply_job *j;
	_cleanup_free_ char *what = offer_to_string(o);
	int r;

	if (!d)
		return -ENODEV;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->rp = rp;
	j->rollback = rollback;
	if (device_dup(d, &j->device) < 0 || offer_copy(o, &j->offer) < 0 ||
	    !(j->fingerprint = plan_device_fingerprint(d))) {
		job_free(j);
		return -ENOMEM;
	}
	log_device_full_errno(LOG_INFO, 0, id, d->has_pci ? d->pci.address : NULL,
			      "Device %s: %s %s.", id, rollback ? "rolling back to" : "applying",
			      what ?: "its layout");
	r = offloop_start(rp->event, "repartition-apply", job_work, on_job_done, j, &j->run);
	if (r < 0) {
		job_free(j);
		return r;
	}
	rp->job = j;
	return 0;
}

static bool job_running_for(const struct repartitioner *rp, const char *id)
{
	return rp->job && streq(rp->job->device->id, id);
}

/* Moves @rec to @phase, persistently. */
static void set_phase(struct repartitioner *rp, struct repartition *rec,
		      enum repartition_phase phase)
{
	rec->phase = phase;
	save(rp);
	replan(rp); /* the withdrawn slices' reason names the phase */
}

/* Makes @rec's target (or, rolling back, its previous layout) on the hardware. */
static void apply_phase(struct repartitioner *rp, struct repartition *rec, bool resumed)
{
	bool rollback = rec->phase == REPARTITION_ROLLING_BACK;
	_cleanup_free_ char *id = strdup(rec->device_id);
	int r;

	if (!id)
		return (void)log_oom();
	if (resumed)
		news(rp, id, "resumed", rollback ? &rec->previous : &rec->target,
		     rollback ? "rolling back again after a restart" : "applying again after a "
								      "restart");
	else
		news(rp, id, rollback ? "rolling-back" : "applying",
		     rollback ? &rec->previous : &rec->target, rec->error);
	fault_point(rollback ? "repartition-rolling-back" : "repartition-applying");
	r = job_start(rp, id, rollback ? &rec->previous : &rec->target, rollback);
	if (r < 0) {
		char reason[256];

		snprintf(reason, sizeof(reason), "the layout could not be applied: %s",
			 strerror(-r));
		if (rollback)
			cordon_broken(rp, id, reason);
		finish(rp, rec, reason);
	}
}

/* Notes a layout that did not come out, so that the policy does not ask for it in a loop. */
static void note_attempt(struct repartitioner *rp, const char *id, const struct offer *o,
			 const char *reason)
{
	const struct xpu_device *d = inventory_find(rp->inventory, id);

	if (d && plan_attempts_record(rp->attempts, d, o, reason) < 0)
		log_oom();
}

static void job_done(struct repartitioner *rp, struct apply_job *j, int result)
{
	const char *id = j->device->id;
	struct repartition *rec;
	_cleanup_free_ char *reason = NULL, *fp = NULL;
	const struct device_plan *dp;
	const struct xpu_device *d;
	int r;

	r = rp->hooks.rescan ? rp->hooks.rescan(rp->hooks.userdata) : 0;
	if (r < 0)
		log_warning_errno(r, "Failed to rescan after applying a layout: %m");
	rec = state_repartition(state(rp), id);
	if (!rec)
		return; /* cannot happen: nothing else ends it */

	dp = plan_of(rp, id);
	if (result < 0)
		r = asprintf(&reason, "%s", j->error ?: strerror(-result));
	else if (!j->rollback && !in_effect(rp, id, &j->offer))
		r = asprintf(&reason, "the device does not show it after it was applied%s%s",
			     dp && dp->pending_reason ? ": " : "",
			     dp && dp->pending_reason ? dp->pending_reason : "");
	else
		r = 0;
	if (r < 0)
		return (void)log_oom();

	if (j->rollback) {
		_cleanup_free_ char *why = NULL;

		if (!reason) {
			/* back as it was; the failed target is noted against the device as is */
			if (asprintf(&why, "%s; rolled back", rec->error ?: "applying it failed") < 0)
				return (void)log_oom();
			note_attempt(rp, id, &rec->target, why);
			finish(rp, rec, why);
			return;
		}
		if (asprintf(&why, "repartition failed (%s) and rolling back failed (%s)",
			     rec->error ?: "?", reason) < 0)
			return (void)log_oom();
		cordon_broken(rp, id, why);
		note_attempt(rp, id, &rec->target, why);
		finish(rp, rec, why);
		return;
	}
	if (!reason) {
		finish(rp, rec, NULL);
		return;
	}
	if (result >= 0) {
		/* made, but not in effect yet (MIG mode waits for a GPU reset): the device is
		 * offered as it is, which is whole; nothing to undo */
		note_attempt(rp, id, &rec->target, reason);
		finish(rp, rec, reason);
		return;
	}

	d = inventory_find(rp->inventory, id);
	fp = d ? plan_device_fingerprint(d) : NULL;
	if (d && !fp)
		return (void)log_oom();
	if (!d || streq_ptr(fp, j->fingerprint) || !rec->has_previous) {
		/* nothing was made (or nothing to go back to): the device is as it was */
		if (d && !streq_ptr(fp, j->fingerprint)) {
			_cleanup_free_ char *why = NULL;

			if (asprintf(&why, "repartition failed half-way (%s), nothing to roll back "
					   "to",
				     reason) < 0)
				return (void)log_oom();
			cordon_broken(rp, id, why);
		}
		note_attempt(rp, id, &rec->target, reason);
		finish(rp, rec, reason);
		return;
	}
	/* half-made: make the layout before again, still withdrawn */
	free(rec->error);
	rec->error = TAKE_PTR(reason);
	restore_layout(rp, rec);
	set_phase(rp, rec, REPARTITION_ROLLING_BACK);
	rec = state_repartition(state(rp), id);
	if (rec)
		apply_phase(rp, rec, false);
}

/* ---- the steps ------------------------------------------------------------------------------ */

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
	repartitioner_step(userdata);
	return 0;
}

/* Arms the timer for the earliest deadline of a draining repartition. */
static void arm_deadline(struct repartitioner *rp)
{
	uint64_t next = UINT64_MAX;
	int r;

	for (size_t i = 0; i < state(rp)->n_repartitions; i++) {
		const struct repartition *rec = &state(rp)->repartitions[i];

		if (rec->phase == REPARTITION_DRAINING && rec->deadline_usec)
			next = MIN(next, rec->deadline_usec);
	}
	if (next == UINT64_MAX) {
		(void)sd_event_source_set_enabled(rp->deadline, SD_EVENT_OFF);
		return;
	}
	if (!rp->deadline) {
		r = sd_event_add_time(rp->event, &rp->deadline, CLOCK_REALTIME, next, 100000,
				      on_deadline, rp);
		if (r < 0)
			return (void)log_warning_errno(r, "Failed to arm the repartition timer: %m");
		(void)sd_event_source_set_description(rp->deadline, "repartition-deadline");
	} else
		(void)sd_event_source_set_time(rp->deadline, next);
	(void)sd_event_source_set_enabled(rp->deadline, SD_EVENT_ONESHOT);
}

/* One repartition: what its phase and the device allow now. */
static void step_one(struct repartitioner *rp, struct repartition *rec, bool resumed)
{
	const struct device_plan *dp = plan_of(rp, rec->device_id);
	_cleanup_free_ char *id = NULL;
	unsigned busy;

	if (job_running_for(rp, rec->device_id))
		return;
	switch (rec->phase) {
	case REPARTITION_DRAINING:
		if (resumed)
			news(rp, rec->device_id, "resumed", &rec->target,
			     "still waiting for its slices to be released");
		busy = allocated_slices(rp, rec->device_id);
		if (busy > 0 || !dp) {
			char reason[128];

			if (!rec->deadline_usec || now_usec(CLOCK_REALTIME) < rec->deadline_usec)
				return; /* a release, a rescan or the deadline moves it on */
			if (dp)
				snprintf(reason, sizeof(reason),
					 "timed out waiting for %u slice%s to be released", busy,
					 busy == 1 ? "" : "s");
			else
				snprintf(reason, sizeof(reason),
					 "timed out waiting for the device to come back");
			if (rec->by_policy)
				give_up(rp, rec->device_id, &rec->target);
			finish(rp, rec, reason);
			return;
		}
		if (in_effect(rp, rec->device_id, &rec->target)) {
			finish(rp, rec, NULL);
			return;
		}
		if (!dp->apply_needed) {
			/* the planner says it cannot be made (or failed before on the device as is) */
			_cleanup_free_ char *reason = strdup(dp->pending_reason ?: "not possible");

			if (!reason)
				return (void)log_oom();
			finish(rp, rec, reason);
			return;
		}
		if (rp->job)
			return; /* one apply at a time: this one waits its turn */
		id = strdup(rec->device_id);
		if (!id)
			return (void)log_oom();
		set_phase(rp, rec, REPARTITION_APPLYING); /* replans: @dp is gone */
		rec = state_repartition(state(rp), id);
		if (rec)
			apply_phase(rp, rec, false);
		return;
	case REPARTITION_APPLYING:
	case REPARTITION_ROLLING_BACK:
		/* only after a restart: the apply in flight then was lost */
		if (rp->job)
			return;
		if (!dp)
			return; /* waits for the device to come back */
		apply_phase(rp, rec, resumed);
		return;
	default:
		return;
	}
}

/* Starts the repartitions the policy needs. */
static void step_policy(struct repartitioner *rp)
{
	const struct plan *p = inventory_plan(rp->inventory);

	for (size_t i = 0; i < p->n_devices; i++) {
		const struct device_plan *dp = &p->devices[i];
		const struct xpu_device *d = inventory_find(rp->inventory, dp->device_id);
		struct repartition rec = {};
		_cleanup_free_ char *why = NULL;
		int r;

		if (!d || !dp->has_pending || state_repartition(state(rp), dp->device_id) ||
		    d->health.state != XPU_HEALTH_HEALTHY)
			continue;
		/* an idle device whose layout must be made, or one in use whose offer can be */
		if (!dp->apply_needed) {
			if (!dp->busy || given_up(rp, dp->device_id, &dp->pending))
				continue;
			r = plan_offer_check(d, &dp->pending, &why);
			if (r < 0)
				return (void)log_oom();
			if (r == 0)
				continue; /* waiting for slices to be released would not help */
		}
		rec.by_policy = true;
		rec.phase = REPARTITION_DRAINING;
		rec.started_usec = now_usec(CLOCK_REALTIME);
		if (dp->busy && rp->timeout_usec)
			rec.deadline_usec = rec.started_usec + rp->timeout_usec;
		if (!(rec.device_id = strdup(dp->device_id)) ||
		    offer_copy(&dp->pending, &rec.target) < 0 ||
		    current_layout(d, &dp->applied, &rec.previous) < 0) {
			repartition_done(&rec);
			return (void)log_oom();
		}
		rec.has_previous = true;
		r = state_add_repartition(state(rp), &rec);
		repartition_done(&rec);
		if (r < 0)
			return (void)log_oom();
		{
			const struct repartition *added = state_repartition(state(rp), dp->device_id);
			_cleanup_free_ char *what = offer_to_string(&added->target);

			log_device_full_errno(LOG_INFO, 0, added->device_id,
					      d->has_pci ? d->pci.address : NULL,
					      "Device %s: the policy asks for %s; withdrawing its "
					      "free slices until it is made.",
					      added->device_id, what ?: "a new layout");
			news(rp, added->device_id, "started", &added->target, "policy");
		}
		save(rp);
		replan(rp);
		return; /* the plan changed under us: the next step sees the rest */
	}
}

void repartitioner_step(struct repartitioner *rp)
{
	bool resumed = !rp->resumed;
	_cleanup_strv_free_ char **ids = NULL;

	rp->resumed = true;
	/* ids first: steps end repartitions and move the array */
	for (size_t i = 0; i < state(rp)->n_repartitions; i++)
		if (strv_extend(&ids, state(rp)->repartitions[i].device_id) < 0)
			return (void)log_oom();
	STRV_FOREACH(id, ids) {
		struct repartition *rec = state_repartition(state(rp), *id);

		if (rec)
			step_one(rp, rec, resumed);
	}
	step_policy(rp);
	arm_deadline(rp);
}

/* ---- requests -------------------------------------------------------------------------------- */

/*
 * A repartition to what @d is offered as already: nothing is drained or made. The operator's
 * @layout (NULL: back to the policy) is recorded all the same, so that it wins over a later
 * change of the policy as any other would.
 */
static int keep_layout(struct repartitioner *rp, const struct xpu_device *d,
		       const struct offer *layout, char **ret_device, char **ret_error)
{
	struct state *st = state(rp);
	const struct offer *old = state_layout(st, d->id);
	_cleanup_(offer_done) struct offer before = {};
	_cleanup_free_ char *what = NULL, *id = NULL;
	bool had = old;
	int r;

	if (old && offer_copy(old, &before) < 0)
		return -ENOMEM;
	if (!(id = strdup(d->id)))
		return -ENOMEM;
	if (layout ? (old && offer_equal(old, layout)) : !old)
		goto out;
	if (layout) {
		r = state_set_layout(st, d->id, layout);
		if (r < 0)
			return r;
	} else
		state_unset_layout(st, d->id);
	r = allocations_save(rp->allocs);
	if (r < 0) {
		if (had)
			(void)state_set_layout(st, d->id, &before);
		else
			state_unset_layout(st, d->id);
		return fail_msg(ret_error, -EIO, "the state could not be saved; nothing changed");
	}
	replan(rp);
out:
	what = layout ? offer_to_string(layout) : NULL;
	log_device_full_errno(LOG_INFO, 0, d->id, d->has_pci ? d->pci.address : NULL,
			      "Device %s: already offered as %s; nothing to repartition.", d->id,
			      what ?: "its policy asks");
	if (ret_device)
		*ret_device = TAKE_PTR(id);
	return REPARTITION_UNCHANGED;
}

int repartitioner_start(struct repartitioner *rp, const char *key, const struct offer *layout,
			uint64_t timeout_usec, char **ret_device, char **ret_error)
{
	const struct xpu_device *d = inventory_find(rp->inventory, key);
	const struct device_plan *dp;
	const struct offer *target, *old_layout;
	struct repartition rec = {};
	_cleanup_free_ char *why = NULL, *what = NULL, *id = NULL, *failure = NULL;
	struct state *st = state(rp);
	int r;

	if (!d)
		return fail_msg(ret_error, -ENOENT, "no device '%s'", key);
	if (state_repartition(st, d->id))
		return fail_msg(ret_error, -EBUSY,
				"device %s is being repartitioned already; wait for it to finish",
				d->id);
	dp = plan_of(rp, d->id);
	old_layout = state_layout(st, d->id);
	/* NULL: back to what the policy asks */
	target = layout ?: policy_offer_for(rp->policy, d);
	r = plan_offer_check(d, target, &why);
	if (r < 0)
		return r;
	if (r == 0)
		return fail_msg(ret_error, -EINVAL, "device %s cannot be laid out as %s: %s",
				d->id, (what = offer_to_string(target)) ?: "requested", why);

	if (dp) {
		r = plan_offer_unchanged(d, &dp->applied, target);
		if (r < 0)
			return r;
		if (r > 0)
			return keep_layout(rp, d, layout ? target : NULL, ret_device, ret_error);
	}

	rec.phase = REPARTITION_DRAINING;
	rec.started_usec = now_usec(CLOCK_REALTIME);
	if (timeout_usec == REPARTITION_TIMEOUT_DEFAULT)
		timeout_usec = rp->timeout_usec;
	if (timeout_usec)
		rec.deadline_usec = rec.started_usec + timeout_usec;
	if (!(rec.device_id = strdup(d->id)) || offer_copy(target, &rec.target) < 0 ||
	    (dp && current_layout(d, &dp->applied, &rec.previous) < 0) ||
	    (old_layout && offer_copy(old_layout, &rec.previous_layout) < 0)) {
		repartition_done(&rec);
		return -ENOMEM;
	}
	rec.has_previous = dp;
	rec.has_previous_layout = old_layout;
	if (layout)
		r = state_set_layout(st, d->id, target);
	else {
		/* @target points into the policy: it stays valid */
		state_unset_layout(st, d->id);
		r = 0;
	}
	if (r >= 0)
		r = state_add_repartition(st, &rec);
	repartition_done(&rec);
	if (r < 0)
		return r;
	r = allocations_save(rp->allocs);
	if (r < 0) {
		struct repartition *added = state_repartition(st, d->id);

		restore_layout(rp, added);
		state_remove_repartition(st, d->id);
		return fail_msg(ret_error, -EIO, "the state could not be saved; nothing changed");
	}
	what = offer_to_string(target);
	log_device_full_errno(LOG_NOTICE, 0, d->id, d->has_pci ? d->pci.address : NULL,
			      "Device %s: repartitioning to %s; %u slice%s in use, its free "
			      "slices withdrawn.",
			      d->id, what ?: "?", allocated_slices(rp, d->id),
			      allocated_slices(rp, d->id) == 1 ? "" : "s");
	news(rp, d->id, "started", target, NULL);
	if (!(id = strdup(d->id)))
		return -ENOMEM;
	/* an idle device, a layout of the plan alone, or one the planner refuses now (it failed
	 * on the device as it is): over before this returns, and the caller hears how */
	rp->starting = id;
	rp->started_ended = false;
	replan(rp);
	repartitioner_step(rp);
	rp->starting = NULL;
	failure = TAKE_PTR(rp->started_failure);
	if (rp->started_ended && failure)
		return fail_msg(ret_error, -ECANCELED, "repartition of %s to %s failed: %s", id,
				what ?: "the layout", failure);
	if (ret_device)
		*ret_device = TAKE_PTR(id);
	return rp->started_ended ? REPARTITION_DONE : REPARTITION_STARTED;
}

void repartitioner_set_timeout(struct repartitioner *rp, uint64_t usec)
{
	rp->timeout_usec = usec;
}

void repartitioner_policy_changed(struct repartitioner *rp)
{
	bool changed = false;

	/* waiting for a layout the policy no longer asks for: the next step asks again */
	for (size_t i = state(rp)->n_repartitions; i-- > 0;) {
		const struct repartition *rec = &state(rp)->repartitions[i];
		_cleanup_free_ char *id = NULL;

		if (!rec->by_policy || rec->phase != REPARTITION_DRAINING)
			continue;
		id = strdup(rec->device_id);
		if (!id)
			return (void)log_oom();
		news(rp, id, "cancelled", &rec->target, "the policy changed");
		state_remove_repartition(state(rp), id);
		changed = true;
	}
	if (changed)
		save(rp);
	given_up_clear(rp);
}

static void given_up_clear(struct repartitioner *rp)
{
	for (size_t i = 0; i < rp->n_given_up; i++) {
		free(rp->given_up[i].device_id);
		offer_done(&rp->given_up[i].offer);
	}
	rp->given_up = mfree(rp->given_up);
	rp->n_given_up = 0;
}

int repartitioner_new(sd_event *e, struct registry *reg, struct inventory *inv,
		      struct allocations *allocs, const struct policy *policy,
		      struct plan_attempts *attempts, const struct repartition_hooks *hooks,
		      struct repartitioner **ret)
{
	struct repartitioner *rp = calloc(1, sizeof(*rp));

	if (!rp)
		return -ENOMEM;
	rp->event = sd_event_ref(e);
	rp->registry = reg;
	rp->inventory = inv;
	rp->allocs = allocs;
	rp->attempts = attempts;
	rp->policy = policy;
	rp->hooks = *hooks;
	rp->timeout_usec = CONFIG_REPARTITION_TIMEOUT_USEC;
	for (size_t i = 0; i < state(rp)->n_repartitions; i++) {
		const struct repartition *rec = &state(rp)->repartitions[i];
		_cleanup_free_ char *what = offer_to_string(&rec->target);

		/* the event follows at the first step, when there is a stream to hear it */
		log_notice("Device %s: resuming its repartition to %s (%s when xpud stopped).",
			   rec->device_id, what ?: "?", repartition_phase_to_string(rec->phase));
	}
	*ret = rp;
	return 0;
}

struct repartitioner *repartitioner_free(struct repartitioner *rp)
{
	if (!rp)
		return NULL;
	if (rp->job) {
		offloop_cancel(rp->job->run);
		job_free(rp->job);
	}
	sd_event_source_disable_unref(rp->deadline);
	free(rp->started_failure);
	given_up_clear(rp);
	sd_event_unref(rp->event);
	free(rp);
	return NULL;
}
