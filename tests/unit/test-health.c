// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The health state machine over an injected clock: every transition, the signal and reason it
 * records, and the hysteresis that keeps a flapping device off the front ends without an event
 * per flap.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/health.h"

#define S(x) ((uint64_t)(x) * 1000000ULL)

static const struct health_policy policy = { .suspect_after = 3, .probation_usec = S(60) };

static struct health_tracker t;
static struct health_transition tr;
static unsigned transitions;

/* Feeds a signal; returns the phase after it and counts transitions. */
static enum health_phase feed(enum health_signal sig, enum health_severity sev, const char *why,
			      uint64_t now)
{
	if (health_tracker_signal(&t, &policy, sig, sev, why, now, &tr)) {
		transitions++;
		assert_int_equal(tr.to, t.phase);
		assert_int_not_equal(tr.from, tr.to);
		assert_int_equal(tr.signal, sig);
		assert_true(tr.time_usec == now);
	}
	return t.phase;
}

#define FAIL(now) feed(HEALTH_SIGNAL_PROBE_FAILED, 0, "no driver bound", now)
#define OK(now) feed(HEALTH_SIGNAL_PROBE_OK, 0, NULL, now)

static int setup(void **state)
{
	health_tracker_init(&t, 0);
	transitions = 0;
	return 0;
}

static void test_probes_to_unhealthy_and_back(void **state)
{
	assert_int_equal(FAIL(S(1)), HEALTH_PHASE_SUSPECT);
	assert_int_equal(tr.from, HEALTH_PHASE_HEALTHY);
	assert_string_equal(tr.reason, "no driver bound");
	/* suspect is still served */
	assert_int_equal(health_phase_served(t.phase), XPU_HEALTH_HEALTHY);
	assert_int_equal(FAIL(S(2)), HEALTH_PHASE_SUSPECT);
	assert_int_equal(FAIL(S(3)), HEALTH_PHASE_UNHEALTHY);
	assert_int_equal(tr.from, HEALTH_PHASE_SUSPECT);
	assert_int_equal(health_phase_served(t.phase), XPU_HEALTH_UNHEALTHY);
	/* more failures: no more transitions */
	assert_int_equal(FAIL(S(4)), HEALTH_PHASE_UNHEALTHY);
	assert_int_equal(transitions, 2);

	/* recovery: probation first, not served, for the whole period */
	assert_int_equal(OK(S(10)), HEALTH_PHASE_PROBATION);
	assert_int_equal(tr.signal, HEALTH_SIGNAL_PROBE_OK);
	assert_string_equal(t.reason, "no driver bound");
	assert_int_equal(health_phase_served(t.phase), XPU_HEALTH_UNHEALTHY);
	assert_true(t.since_usec == S(10));
	assert_true(t.until_usec == S(70));
	assert_int_equal(OK(S(40)), HEALTH_PHASE_PROBATION);
	assert_int_equal(OK(S(69)), HEALTH_PHASE_PROBATION);
	assert_int_equal(transitions, 3);
	assert_int_equal(OK(S(70)), HEALTH_PHASE_HEALTHY);
	assert_int_equal(tr.from, HEALTH_PHASE_PROBATION);
	assert_string_equal(t.reason, "");
	assert_int_equal(transitions, 4);
}

static void test_suspect_forgiven_after_probation(void **state)
{
	assert_int_equal(FAIL(S(1)), HEALTH_PHASE_SUSPECT);
	assert_true(t.until_usec == S(61));
	/* answering again is not enough: the failure counts until a clean period is over */
	assert_int_equal(OK(S(2)), HEALTH_PHASE_SUSPECT);
	assert_int_equal(health_phase_served(t.phase), XPU_HEALTH_HEALTHY);
	assert_int_equal(FAIL(S(3)), HEALTH_PHASE_SUSPECT);
	assert_true(t.until_usec == S(63));
	assert_int_equal(OK(S(62)), HEALTH_PHASE_SUSPECT);
	assert_int_equal(transitions, 1);
	assert_int_equal(OK(S(63)), HEALTH_PHASE_HEALTHY);
	assert_int_equal(tr.from, HEALTH_PHASE_SUSPECT);
	assert_int_equal(tr.signal, HEALTH_SIGNAL_PROBE_OK);
	assert_true(t.until_usec == 0);
	/* forgiven: the count starts over, two failures are suspect again, not unhealthy */
	assert_int_equal(FAIL(S(64)), HEALTH_PHASE_SUSPECT);
	assert_int_equal(FAIL(S(65)), HEALTH_PHASE_SUSPECT);
	assert_int_equal(transitions, 3);
}

static void test_intermittent_failures_add_up(void **state)
{
	/* three failures with clean probes between them, but no clean minute: unhealthy */
	assert_int_equal(FAIL(S(1)), HEALTH_PHASE_SUSPECT);
	assert_int_equal(OK(S(11)), HEALTH_PHASE_SUSPECT);
	assert_int_equal(FAIL(S(21)), HEALTH_PHASE_SUSPECT);
	assert_int_equal(OK(S(31)), HEALTH_PHASE_SUSPECT);
	assert_int_equal(FAIL(S(41)), HEALTH_PHASE_UNHEALTHY);
	assert_int_equal(tr.from, HEALTH_PHASE_SUSPECT);
	assert_int_equal(transitions, 2);
}

static void test_flapping_stays_off(void **state)
{
	uint64_t now = 0, last_failure = 0;
	bool withdrawn = false;

	/* fails and recovers every 10 s for ten minutes */
	for (int i = 0; i < 30; i++) {
		last_failure = now += S(10);
		FAIL(now);
		withdrawn = withdrawn || t.phase == HEALTH_PHASE_UNHEALTHY;
		OK(now += S(10));
		/* once withdrawn, never served again while it flaps */
		if (withdrawn)
			assert_int_equal(health_phase_served(t.phase), XPU_HEALTH_UNHEALTHY);
	}
	assert_true(withdrawn);
	/* healthy -> suspect -> unhealthy -> probation, and nothing more for all 60 flips */
	assert_int_equal(transitions, 3);
	assert_int_equal(t.phase, HEALTH_PHASE_PROBATION);
	/* the period runs from the last failure: 59 s after it is not enough */
	assert_true(t.until_usec == last_failure + S(60));
	assert_int_equal(OK(last_failure + S(59)), HEALTH_PHASE_PROBATION);
	assert_int_equal(OK(last_failure + S(60)), HEALTH_PHASE_HEALTHY);
	assert_int_equal(transitions, 4);
}

static void test_relapse_on_probation(void **state)
{
	const struct health_policy strict = { .suspect_after = 1, .probation_usec = S(60) };
	uint64_t now = S(1);

	for (int i = 0; i < 3; i++)
		FAIL(now += S(1));
	assert_int_equal(OK(now += S(1)), HEALTH_PHASE_PROBATION);
	/* failed probes in a row: back to unhealthy at the third, as from healthy */
	assert_int_equal(FAIL(now += S(1)), HEALTH_PHASE_PROBATION);
	assert_int_equal(FAIL(now += S(1)), HEALTH_PHASE_PROBATION);
	assert_int_equal(FAIL(now += S(1)), HEALTH_PHASE_UNHEALTHY);
	assert_int_equal(tr.from, HEALTH_PHASE_PROBATION);
	assert_int_equal(tr.signal, HEALTH_SIGNAL_PROBE_FAILED);
	assert_string_equal(tr.reason, "no driver bound");

	/* with no tolerance configured, one failure on probation still only starts it over */
	health_tracker_init(&t, 0);
	assert_true(health_tracker_signal(&t, &strict, HEALTH_SIGNAL_PROBE_FAILED, 0, "x", S(1),
					  &tr));
	assert_int_equal(t.phase, HEALTH_PHASE_UNHEALTHY);
	assert_true(health_tracker_signal(&t, &strict, HEALTH_SIGNAL_PROBE_OK, 0, NULL, S(2), &tr));
	assert_int_equal(t.phase, HEALTH_PHASE_PROBATION);
	assert_false(health_tracker_signal(&t, &strict, HEALTH_SIGNAL_PROBE_FAILED, 0, "x", S(3),
					   &tr));
	assert_true(t.until_usec == S(63));
	assert_false(health_tracker_signal(&t, &strict, HEALTH_SIGNAL_PROBE_OK, 0, NULL, S(4),
					   &tr));
	assert_true(health_tracker_signal(&t, &strict, HEALTH_SIGNAL_PROBE_FAILED, 0, "x", S(5),
					  &tr) == false);
	assert_true(health_tracker_signal(&t, &strict, HEALTH_SIGNAL_PROBE_FAILED, 0, "x", S(6),
					  &tr));
	assert_int_equal(t.phase, HEALTH_PHASE_UNHEALTHY);
}

static void test_fatal_event_then_reset(void **state)
{
	assert_int_equal(feed(HEALTH_SIGNAL_EVENT, HEALTH_SEVERITY_FATAL,
			      "XID 79 (GPU has fallen off the bus): reset-gpu", S(1)),
			 HEALTH_PHASE_UNHEALTHY);
	assert_int_equal(tr.from, HEALTH_PHASE_HEALTHY);
	assert_int_equal(tr.signal, HEALTH_SIGNAL_EVENT);
	assert_string_equal(tr.reason, "XID 79 (GPU has fallen off the bus): reset-gpu");
	/* the backend's probes keep failing until the reset: no new transitions */
	assert_int_equal(feed(HEALTH_SIGNAL_PROBE_FAILED, 0, "XID 79 (GPU has fallen off the bus)",
			      S(100)),
			 HEALTH_PHASE_UNHEALTHY);
	assert_int_equal(transitions, 1);
	/* a reset puts it on probation; clean probes for the period make it healthy */
	assert_int_equal(feed(HEALTH_SIGNAL_RESET, 0, NULL, S(200)), HEALTH_PHASE_PROBATION);
	assert_int_equal(tr.signal, HEALTH_SIGNAL_RESET);
	assert_int_equal(OK(S(230)), HEALTH_PHASE_PROBATION);
	assert_int_equal(OK(S(260)), HEALTH_PHASE_HEALTHY);
	assert_int_equal(transitions, 3);
}

static void test_events_and_resets_elsewhere(void **state)
{
	/* a warning makes a healthy device suspect, and nothing worse */
	assert_int_equal(feed(HEALTH_SIGNAL_EVENT, HEALTH_SEVERITY_WARNING, "ECC corrected", S(1)),
			 HEALTH_PHASE_SUSPECT);
	assert_int_equal(feed(HEALTH_SIGNAL_EVENT, HEALTH_SEVERITY_WARNING, "again", S(2)),
			 HEALTH_PHASE_SUSPECT);
	/* the second warning moved the end of the suspicion */
	assert_int_equal(OK(S(61)), HEALTH_PHASE_SUSPECT);
	assert_int_equal(OK(S(62)), HEALTH_PHASE_HEALTHY);
	/* a reset of a healthy device changes nothing */
	assert_int_equal(feed(HEALTH_SIGNAL_RESET, 0, NULL, S(64)), HEALTH_PHASE_HEALTHY);
	/* a fatal event during probation: back to unhealthy */
	for (int i = 0; i < 3; i++)
		FAIL(S(65 + i));
	assert_int_equal(OK(S(70)), HEALTH_PHASE_PROBATION);
	assert_int_equal(feed(HEALTH_SIGNAL_EVENT, HEALTH_SEVERITY_FATAL, "XID 48", S(71)),
			 HEALTH_PHASE_UNHEALTHY);
	assert_int_equal(tr.from, HEALTH_PHASE_PROBATION);
	/* a device first seen broken is unhealthy at once, and recovers through probation */
	health_tracker_init(&t, 0);
	assert_int_equal(feed(HEALTH_SIGNAL_DISCOVERED, 0, "GPU is lost", S(1)),
			 HEALTH_PHASE_UNHEALTHY);
	assert_int_equal(OK(S(2)), HEALTH_PHASE_PROBATION);
	assert_int_equal(OK(S(62)), HEALTH_PHASE_HEALTHY);
}

static void test_one_failure_is_enough_when_configured(void **state)
{
	const struct health_policy strict = { .suspect_after = 1, .probation_usec = 0 };

	assert_true(health_tracker_signal(&t, &strict, HEALTH_SIGNAL_PROBE_FAILED, 0, "x", S(1),
					  &tr));
	assert_int_equal(tr.from, HEALTH_PHASE_HEALTHY);
	assert_int_equal(tr.to, HEALTH_PHASE_UNHEALTHY);
	/* no probation period: healthy at the first clean probe */
	assert_true(health_tracker_signal(&t, &strict, HEALTH_SIGNAL_PROBE_OK, 0, NULL, S(2), &tr));
	assert_int_equal(tr.from, HEALTH_PHASE_UNHEALTHY);
	assert_int_equal(tr.to, HEALTH_PHASE_HEALTHY);
	assert_string_equal(health_phase_to_string(HEALTH_PHASE_PROBATION), "probation");
	assert_string_equal(health_signal_to_string(HEALTH_SIGNAL_PROBE_FAILED), "probe-failed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_probes_to_unhealthy_and_back, setup),
		cmocka_unit_test_setup(test_suspect_forgiven_after_probation, setup),
		cmocka_unit_test_setup(test_intermittent_failures_add_up, setup),
		cmocka_unit_test_setup(test_flapping_stays_off, setup),
		cmocka_unit_test_setup(test_relapse_on_probation, setup),
		cmocka_unit_test_setup(test_fatal_event_then_reset, setup),
		cmocka_unit_test_setup(test_events_and_resets_elsewhere, setup),
		cmocka_unit_test_setup(test_one_failure_is_enough_when_configured, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
