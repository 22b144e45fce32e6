// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdio.h>
#include <string.h>

#include "core/health.h"
#include "shared/macro.h"

static const char *const phase_table[_HEALTH_PHASE_MAX] = {
	[HEALTH_PHASE_HEALTHY] = "healthy",
	[HEALTH_PHASE_SUSPECT] = "suspect",
	[HEALTH_PHASE_UNHEALTHY] = "unhealthy",
	[HEALTH_PHASE_PROBATION] = "probation",
};

static const char *const signal_table[_HEALTH_SIGNAL_MAX] = {
	[HEALTH_SIGNAL_PROBE_FAILED] = "probe-failed",
	[HEALTH_SIGNAL_PROBE_OK] = "probe-ok",
	[HEALTH_SIGNAL_EVENT] = "event",
	[HEALTH_SIGNAL_RESET] = "reset",
	[HEALTH_SIGNAL_DISCOVERED] = "discovered",
};

const char *health_phase_to_string(enum health_phase p)
{
	return p < _HEALTH_PHASE_MAX ? phase_table[p] : NULL;
}

const char *health_signal_to_string(enum health_signal s)
{
	return s < _HEALTH_SIGNAL_MAX ? signal_table[s] : NULL;
}

enum xpu_health_state health_phase_served(enum health_phase p)
{
	return p == HEALTH_PHASE_HEALTHY || p == HEALTH_PHASE_SUSPECT ? XPU_HEALTH_HEALTHY
								      : XPU_HEALTH_UNHEALTHY;
}

void health_tracker_init(struct health_tracker *t, uint64_t now_usec)
{
	*t = (struct health_tracker){ .phase = HEALTH_PHASE_HEALTHY,
				      .signal = HEALTH_SIGNAL_PROBE_OK,
				      .since_usec = now_usec };
}

static void set_reason(struct health_tracker *t, const char *reason)
{
	snprintf(t->reason, sizeof(t->reason), "%s", reason ?: "no reason given");
}

static bool move(struct health_tracker *t, enum health_phase to, enum health_signal signal,
		 uint64_t now_usec, struct health_transition *ret)
{
	enum health_phase from = t->phase;

	if (from == to)
		return false;
	t->phase = to;
	t->signal = signal;
	t->since_usec = now_usec;
	t->until_usec = 0;
	if (to == HEALTH_PHASE_HEALTHY) {
		t->reason[0] = '\0';
		t->failures = 0;
	}
	if (ret)
		*ret = (struct health_transition){ .from = from, .to = to, .signal = signal,
						   .reason = t->reason, .time_usec = now_usec };
	return true;
}

/* Moves to suspect or probation (or stays there): it ends a probation period from @now. */
static bool move_until(struct health_tracker *t, const struct health_policy *p,
		       enum health_phase to, enum health_signal signal, uint64_t now,
		       struct health_transition *ret)
{
	bool moved = move(t, to, signal, now, ret);

	t->until_usec = now + p->probation_usec;
	return moved;
}

static bool on_probe_failed(struct health_tracker *t, const struct health_policy *p,
			    const char *reason, uint64_t now, struct health_transition *ret)
{
	unsigned after = p->suspect_after ?: 1;

	t->failures++;
	set_reason(t, reason); /* unhealthy already: the latest word on why */
	switch (t->phase) {
	case HEALTH_PHASE_HEALTHY:
	case HEALTH_PHASE_SUSPECT:
		/* Failures add up until the device has answered for a whole probation period. */
		if (t->failures >= after)
			return move(t, HEALTH_PHASE_UNHEALTHY, HEALTH_SIGNAL_PROBE_FAILED, now, ret);
		return move_until(t, p, HEALTH_PHASE_SUSPECT, HEALTH_SIGNAL_PROBE_FAILED, now, ret);
	case HEALTH_PHASE_PROBATION:
		/*
		 * Hysteresis without an event per flap: one failure starts the period over, a run
		 * of them in a row (two at least, whatever suspect_after says) is a relapse.
		 */
		if (t->failures >= MAX(after, 2U))
			return move(t, HEALTH_PHASE_UNHEALTHY, HEALTH_SIGNAL_PROBE_FAILED, now, ret);
		t->until_usec = now + p->probation_usec;
		return false;
	default:
		return false;
	}
}

static bool on_probe_ok(struct health_tracker *t, const struct health_policy *p, uint64_t now,
			struct health_transition *ret)
{
	switch (t->phase) {
	case HEALTH_PHASE_SUSPECT:
		/* Never withdrawn: forgiven once the period is over; until then failures count. */
		if (now < t->until_usec)
			return false;
		return move(t, HEALTH_PHASE_HEALTHY, HEALTH_SIGNAL_PROBE_OK, now, ret);
	case HEALTH_PHASE_UNHEALTHY:
		t->failures = 0;
		/* No probation configured: healthy at once. */
		if (!p->probation_usec)
			return move(t, HEALTH_PHASE_HEALTHY, HEALTH_SIGNAL_PROBE_OK, now, ret);
		return move_until(t, p, HEALTH_PHASE_PROBATION, HEALTH_SIGNAL_PROBE_OK, now, ret);
	case HEALTH_PHASE_PROBATION:
		t->failures = 0;
		if (now < t->until_usec)
			return false;
		return move(t, HEALTH_PHASE_HEALTHY, HEALTH_SIGNAL_PROBE_OK, now, ret);
	default:
		return false;
	}
}

bool health_tracker_signal(struct health_tracker *t, const struct health_policy *policy,
			   enum health_signal signal, enum health_severity severity,
			   const char *reason, uint64_t now_usec,
			   struct health_transition *ret_transition)
{
	switch (signal) {
	case HEALTH_SIGNAL_PROBE_FAILED:
		return on_probe_failed(t, policy, reason, now_usec, ret_transition);
	case HEALTH_SIGNAL_PROBE_OK:
		return on_probe_ok(t, policy, now_usec, ret_transition);
	case HEALTH_SIGNAL_EVENT:
		if (severity == HEALTH_SEVERITY_FATAL) {
			set_reason(t, reason);
			return move(t, HEALTH_PHASE_UNHEALTHY, signal, now_usec, ret_transition);
		}
		if (t->phase != HEALTH_PHASE_HEALTHY && t->phase != HEALTH_PHASE_SUSPECT)
			return false;
		/* a warning while suspect keeps it suspect for longer */
		set_reason(t, reason);
		return move_until(t, policy, HEALTH_PHASE_SUSPECT, signal, now_usec,
				  ret_transition);
	case HEALTH_SIGNAL_RESET:
		if (t->phase != HEALTH_PHASE_UNHEALTHY)
			return false;
		t->failures = 0;
		return move_until(t, policy, HEALTH_PHASE_PROBATION, signal, now_usec,
				  ret_transition);
	case HEALTH_SIGNAL_DISCOVERED:
		set_reason(t, reason);
		return move(t, HEALTH_PHASE_UNHEALTHY, signal, now_usec, ret_transition);
	default:
		return false;
	}
}
