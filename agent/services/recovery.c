// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/offloop.h"
#include "services/recovery.h"
#include "shared/log.h"

/* What is known about one device whose fault asked for a reset. */
struct recovery_entry {
	char *id;
	int action;		    /* the latest fault's */
	unsigned attempts;	    /* since the device was last healthy */
	uint64_t last_attempt_usec; /* CLOCK_MONOTONIC */
	bool unsupported;
	enum recovery_verdict said; /* the last verdict logged, so that each is logged once */
};

/* One reset in flight, off the loop (a reset waits for the device to come back). */
struct reset_job {
	struct recovery *r;
	struct xpu_device *device; /* a copy: the inventory may change meanwhile */
	char *why;
	struct offloop *run;
};

struct recovery {
	struct recovery_context ctx;
	struct reset_job *job;	      /* one reset at a time */
	sd_event *event;
	sd_event_source *run_source;  /* defer: a decision pass */
	sd_event_source *post_source; /* post: whether a pass is due */
	struct recovery_entry *entries;
	size_t n_entries;
	bool dirty;		/* evidence arrived since the last pass */
	uint64_t generation;	/* the inventory generation of the last pass */
};

static const char *const verdict_table[_RECOVERY_VERDICT_MAX] = {
	[RECOVERY_NOTHING] = "nothing",
	[RECOVERY_RESET] = "reset",
	[RECOVERY_WAIT_IDLE] = "wait-idle",
	[RECOVERY_BACKOFF] = "back-off",
	[RECOVERY_GIVEN_UP] = "given-up",
};

const char *recovery_verdict_to_string(enum recovery_verdict v)
{
	return v < _RECOVERY_VERDICT_MAX ? verdict_table[v] : NULL;
}

uint64_t recovery_backoff_usec(unsigned attempts)
{
	uint64_t b = RECOVERY_BACKOFF_USEC;

	for (unsigned i = 1; i < attempts && b < RECOVERY_BACKOFF_MAX_USEC; i++)
		b *= 2;
	return MIN(b, RECOVERY_BACKOFF_MAX_USEC);
}

enum recovery_verdict recovery_decide(const struct recovery_facts *f, uint64_t now_usec)
{
	if (f->phase != HEALTH_PHASE_UNHEALTHY || f->action != HEALTH_ACTION_RESET_DEVICE ||
	    !f->covered)
		return RECOVERY_NOTHING;
	if (f->unsupported)
		return RECOVERY_GIVEN_UP;
	if (f->attempts > 0 &&
	    now_usec - f->last_attempt_usec < recovery_backoff_usec(f->attempts))
		return RECOVERY_BACKOFF;
	return f->busy ? RECOVERY_WAIT_IDLE : RECOVERY_RESET;
}

static struct recovery_entry *entry_find(struct recovery *r, const char *id)
{
	for (size_t i = 0; i < r->n_entries; i++)
		if (streq(r->entries[i].id, id))
			return &r->entries[i];
	return NULL;
}

static void entry_drop(struct recovery *r, size_t i)
{
	free(r->entries[i].id);
	r->entries[i] = r->entries[--r->n_entries];
}

void recovery_note(struct recovery *r, const char *id, const struct xpu_health *h)
{
	struct recovery_entry *e;

	if (!r)
		return;
	e = entry_find(r, id);
	if (!e) {
		struct recovery_entry *m;

		/* only a fault that a reset cures starts a record */
		if (h->state != XPU_HEALTH_UNHEALTHY || h->action != HEALTH_ACTION_RESET_DEVICE)
			return;
		m = realloc(r->entries, (r->n_entries + 1) * sizeof(*m));
		if (!m)
			return (void)log_oom();
		r->entries = m;
		e = &r->entries[r->n_entries];
		*e = (struct recovery_entry){ .id = strdup(id) };
		if (!e->id)
			return (void)log_oom();
		r->n_entries++;
	}
	/* the latest word on what the fault asks for; a good answer leaves it to the phase */
	if (h->state == XPU_HEALTH_UNHEALTHY)
		e->action = h->action;
	r->dirty = true;
}

void recovery_note_devices(struct recovery *r, const struct device_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		recovery_note(r, l->items[i]->id, &l->items[i]->health);
}

static void reset_job_free(struct reset_job *j)
{
	if (!j)
		return;
	device_free(j->device);
	free(j->why);
	free(j);
}

/* On the job's thread: only the job's own data. */
static int reset_work(void *data)
{
	struct reset_job *j = data;

	return registry_reset(j->r->ctx.registry, j->device, &j->why);
}

/* Back on the loop: the outcome, logged here, once. */
static void reset_done(int k, void *data)
{
	struct reset_job *j = data;
	struct recovery *r = j->r;
	const struct xpu_device *d = j->device;
	const char *pci = d->has_pci ? d->pci.address : NULL;
	struct recovery_entry *e = entry_find(r, d->id);
	uint64_t realtime = 0;

	r->job = NULL;
	if (k < 0) {
		unsigned long long wait_min =
			recovery_backoff_usec(e ? e->attempts : 1) / 60000000ULL;

		if (e)
			e->unsupported = k == -EOPNOTSUPP;
		if (k == -EOPNOTSUPP)
			log_device_full_errno(LOG_WARNING, k, d->id, pci,
					      "Device %s could not be reset: %s. It stays "
					      "unhealthy and is not tried again until it has "
					      "been healthy.",
					      d->id, j->why ?: strerror(-k));
		else
			log_device_full_errno(LOG_WARNING, k, d->id, pci,
					      "Device %s could not be reset: %s. It stays "
					      "unhealthy; the next attempt comes after %llu min "
					      "at the earliest.",
					      d->id, j->why ?: strerror(-k), wait_min);
	} else {
		log_device_full_errno(LOG_NOTICE, 0, d->id, pci,
				      "Device %s was reset; it is on probation until its probes "
				      "answer.",
				      d->id);
		(void)sd_event_now(r->event, CLOCK_REALTIME, &realtime);
		(void)inventory_health_signal(r->ctx.inventory, d->id, HEALTH_SIGNAL_RESET, 0,
					      NULL, realtime);
		if (r->ctx.rescan)
			r->ctx.rescan(r->ctx.userdata);
	}
	reset_job_free(j);
	/* another device may be waiting its turn */
	r->dirty = true;
	(void)sd_event_source_set_enabled(r->run_source, SD_EVENT_ONESHOT);
}

/* Starts one reset, off the loop. */
static void reset_device(struct recovery *r, struct recovery_entry *e, const struct xpu_device *d,
			 uint64_t now)
{
	const char *pci = d->has_pci ? d->pci.address : NULL;
	struct reset_job *j;
	int k;

	log_device_full_errno(LOG_NOTICE, 0, d->id, pci,
			      "Device %s: resetting it (%s); reset-when-idle covers %s devices and "
			      "nothing is allocated on it.",
			      d->id, d->health.reason ?: "unhealthy", xpu_kind_to_string(d->kind));
	e->attempts++;
	e->last_attempt_usec = now;
	j = calloc(1, sizeof(*j));
	if (!j || device_dup(d, &j->device) < 0) {
		free(j);
		return (void)log_oom();
	}
	j->r = r;
	k = offloop_start(r->event, "reset", reset_work, reset_done, j, &j->run);
	if (k < 0) {
		log_device_full_errno(LOG_WARNING, k, d->id, pci,
				      "Device %s could not be reset: %m.", d->id);
		reset_job_free(j);
		return;
	}
	r->job = j;
}

/* Logs a verdict that only waits, when it is new for the device. */
static void say_waiting(struct recovery_entry *e, enum recovery_verdict v,
			const struct xpu_device *d)
{
	const char *pci = d->has_pci ? d->pci.address : NULL;

	if (e->said == v)
		return;
	e->said = v;
	if (v == RECOVERY_WAIT_IDLE)
		log_device_full_errno(LOG_INFO, 0, d->id, pci,
				      "Device %s needs a reset (%s); it is reset when the slices "
				      "allocated on it are released.",
				      d->id, d->health.reason ?: "unhealthy");
}

static bool device_busy(const struct recovery *r, const char *id)
{
	if (!r->ctx.allocations)
		return false;
	return ledger_device_busy(allocations_ledger(r->ctx.allocations),
				  inventory_slices(r->ctx.inventory), id);
}

/* One pass over the devices whose faults asked for a reset. */
static void recovery_run(struct recovery *r)
{
	uint64_t now = 0;

	(void)sd_event_now(r->event, CLOCK_MONOTONIC, &now);
	r->dirty = false;
	for (size_t i = 0; i < r->n_entries; i++) {
		struct recovery_entry *e = &r->entries[i];
		const struct xpu_device *d = inventory_find(r->ctx.inventory, e->id);
		const struct health_tracker *t = inventory_health(r->ctx.inventory, e->id);
		struct recovery_facts f;
		enum recovery_verdict v;

		if (!d || !t || t->phase == HEALTH_PHASE_HEALTHY) {
			/* well again (or gone while idle in its record): the fault is over */
			if (!d && e->attempts > 0 &&
			    now - e->last_attempt_usec < recovery_backoff_usec(e->attempts))
				continue; /* gone for now: its back-off stands if it comes back */
			entry_drop(r, i--);
			continue;
		}
		f = (struct recovery_facts){
			.phase = t->phase,
			.action = e->action,
			.covered = r->ctx.config &&
				   (r->ctx.config->reset_when_idle & CONFIG_KIND_BIT(d->kind)),
			.busy = device_busy(r, e->id),
			.attempts = e->attempts,
			.last_attempt_usec = e->last_attempt_usec,
			.unsupported = e->unsupported,
		};
		v = recovery_decide(&f, now);
		log_debug("Recovery of %s: %s.", e->id, recovery_verdict_to_string(v));
		if (v == RECOVERY_RESET) {
			if (r->job)
				continue; /* one at a time: its end starts another pass */
			e->said = v;
			reset_device(r, e, d, now);
		} else {
			say_waiting(e, v, d);
		}
	}
	r->generation = inventory_generation(r->ctx.inventory);
}

static int on_run(sd_event_source *s, void *userdata)
{
	recovery_run(userdata);
	return 0;
}

/* After every dispatch: new evidence or a new inventory generation (a release) asks for a pass. */
static int on_post(sd_event_source *s, void *userdata)
{
	struct recovery *r = userdata;

	if (r->n_entries > 0 &&
	    (r->dirty || inventory_generation(r->ctx.inventory) != r->generation))
		(void)sd_event_source_set_enabled(r->run_source, SD_EVENT_ONESHOT);
	return 0;
}

int recovery_new(sd_event *e, const struct recovery_context *ctx, struct recovery **ret)
{
	struct recovery *r;
	int k;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->ctx = *ctx;
	r->event = sd_event_ref(e);
	k = sd_event_add_defer(e, &r->run_source, on_run, r);
	if (k >= 0)
		k = sd_event_source_set_enabled(r->run_source, SD_EVENT_OFF);
	if (k >= 0)
		k = sd_event_add_post(e, &r->post_source, on_post, r);
	if (k < 0) {
		recovery_free(r);
		return k;
	}
	(void)sd_event_source_set_description(r->run_source, "reset-when-idle");
	*ret = r;
	return 0;
}

struct recovery *recovery_free(struct recovery *r)
{
	if (!r)
		return NULL;
	if (r->job) {
		offloop_cancel(r->job->run);
		reset_job_free(r->job);
	}
	sd_event_source_disable_unref(r->run_source);
	sd_event_source_disable_unref(r->post_source);
	sd_event_unref(r->event);
	for (size_t i = 0; i < r->n_entries; i++)
		free(r->entries[i].id);
	free(r->entries);
	free(r);
	return NULL;
}
