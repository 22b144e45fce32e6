/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The per-device health state machine: healthy -> suspect -> unhealthy -> probation -> healthy.
 * Backends report signals (a probe failed or answered, an event of some severity, a reset was
 * observed); the policy decides the phase. Pure: the caller passes the time; no I/O, no logging.
 *
 * A backend that knows a fault outlives good answers (an XID that needs a GPU reset) keeps
 * failing its probes until the reset; the machine itself trusts probes.
 *
 * What front ends see is two-valued: a healthy or suspect device is served (a single failed probe
 * is not worth withdrawing a device over), an unhealthy device or one on probation is not.
 *
 * A flapping device (failing and answering by turns) makes a bounded number of transitions, not
 * two per flap: a failure is forgiven only after the probation period of clean probes, so a
 * suspect device stays suspect until then and its next failures count towards unhealthy; and on
 * probation one failed probe restarts the period instead of ending it. Only a run of failed
 * probes in a row sends a device on probation back to unhealthy.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "xpu/device.h"

enum health_phase {
	HEALTH_PHASE_HEALTHY,
	HEALTH_PHASE_SUSPECT,
	HEALTH_PHASE_UNHEALTHY,
	HEALTH_PHASE_PROBATION,
	_HEALTH_PHASE_MAX,
};

enum health_signal {
	HEALTH_SIGNAL_PROBE_FAILED,
	HEALTH_SIGNAL_PROBE_OK,
	HEALTH_SIGNAL_EVENT,	 /* a backend event; its severity says what it does */
	HEALTH_SIGNAL_RESET,	 /* the device was reset (or left and came back) */
	HEALTH_SIGNAL_DISCOVERED, /* first seen, unhealthy: there is no history to weigh */
	_HEALTH_SIGNAL_MAX,
};

enum health_severity {
	HEALTH_SEVERITY_WARNING, /* makes a healthy device suspect */
	HEALTH_SEVERITY_FATAL,	 /* unhealthy at once, without waiting for failed probes */
};

struct health_policy {
	unsigned suspect_after;	 /* failed probes in a row before unhealthy; >= 1 */
	uint64_t probation_usec; /* clean probes for this long before healthy again */
};

#define HEALTH_POLICY_DEFAULT \
	((struct health_policy){ .suspect_after = 2, .probation_usec = 60000000ULL })

struct health_tracker {
	enum health_phase phase;
	enum health_signal signal; /* what caused the last transition */
	char reason[256];	   /* why the device left healthy; empty when healthy */
	uint64_t since_usec;	   /* when the current phase began */
	/* suspect, probation: when the phase ends if probes keep answering; 0 otherwise */
	uint64_t until_usec;
	unsigned failures; /* failed probes not yet forgiven (on probation: in a row) */
};

struct health_transition {
	enum health_phase from, to;
	enum health_signal signal;
	const char *reason; /* borrowed from the tracker */
	uint64_t time_usec;
};

const char *health_phase_to_string(enum health_phase p);
const char *health_signal_to_string(enum health_signal s);

/* A healthy tracker since @now_usec. */
void health_tracker_init(struct health_tracker *t, uint64_t now_usec);

/*
 * Feeds one signal. @reason (may be NULL) says what went wrong for failures and events.
 * Returns true and fills *ret_transition (may be NULL) when the phase changed; false when not
 * (a repeated failure, a clean probe before probation is over), so that every transition is
 * reported once. Never fails, never logs.
 */
bool health_tracker_signal(struct health_tracker *t, const struct health_policy *policy,
			   enum health_signal signal, enum health_severity severity,
			   const char *reason, uint64_t now_usec,
			   struct health_transition *ret_transition);

/* What front ends see: healthy for healthy and suspect, unhealthy otherwise. */
enum xpu_health_state health_phase_served(enum health_phase p);
