// SPDX-License-Identifier: GPL-2.0-or-later
/* When xpud resets a faulty device by itself (reset-when-idle): the decision and its back-off. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "services/recovery.h"

#define MIN_USEC (60 * 1000000ULL)

/* An unhealthy device whose fault asks for a reset, covered, idle, never tried. */
static struct recovery_facts wants_reset(void)
{
	return (struct recovery_facts){ .phase = HEALTH_PHASE_UNHEALTHY,
					.action = HEALTH_ACTION_RESET_DEVICE,
					.covered = true };
}

static void test_decide(void **state)
{
	const uint64_t now = 1000 * MIN_USEC;
	struct recovery_facts f = wants_reset();

	assert_int_equal(recovery_decide(&f, now), RECOVERY_RESET);

	/* only an unhealthy device: not one on probation (just reset), suspect or healthy */
	for (int p = 0; p < _HEALTH_PHASE_MAX; p++) {
		f = wants_reset();
		f.phase = (enum health_phase)p;
		assert_int_equal(recovery_decide(&f, now),
				 p == HEALTH_PHASE_UNHEALTHY ? RECOVERY_RESET : RECOVERY_NOTHING);
	}
	/* only a fault that a reset cures: not an application's error, not one that needs a
	 * reboot, not one whose remedy nobody knows */
	for (int a = 0; a < _HEALTH_ACTION_MAX; a++) {
		f = wants_reset();
		f.action = a;
		assert_int_equal(recovery_decide(&f, now), a == HEALTH_ACTION_RESET_DEVICE
								   ? RECOVERY_RESET
								   : RECOVERY_NOTHING);
	}
	/* reset-when-idle off for its kind: nothing, allocated or not */
	f = wants_reset();
	f.covered = false;
	assert_int_equal(recovery_decide(&f, now), RECOVERY_NOTHING);
	f.busy = true;
	assert_int_equal(recovery_decide(&f, now), RECOVERY_NOTHING);

	/* allocated: waits for the release */
	f = wants_reset();
	f.busy = true;
	assert_int_equal(recovery_decide(&f, now), RECOVERY_WAIT_IDLE);

	/* the backend cannot: given up until it has been healthy, whatever the time */
	f = wants_reset();
	f.attempts = 1;
	f.last_attempt_usec = now - 100 * RECOVERY_BACKOFF_MAX_USEC;
	f.unsupported = true;
	assert_int_equal(recovery_decide(&f, now), RECOVERY_GIVEN_UP);
}

/* After an attempt, no second one until the back-off has passed: never a reset loop. */
static void test_backoff(void **state)
{
	const uint64_t t0 = 1000 * MIN_USEC;
	struct recovery_facts f = wants_reset();

	f.attempts = 1;
	f.last_attempt_usec = t0;
	assert_int_equal(recovery_decide(&f, t0), RECOVERY_BACKOFF);
	assert_int_equal(recovery_decide(&f, t0 + RECOVERY_BACKOFF_USEC - 1), RECOVERY_BACKOFF);
	assert_int_equal(recovery_decide(&f, t0 + RECOVERY_BACKOFF_USEC), RECOVERY_RESET);
	/* busy after the back-off: waits for the release, as before the first attempt */
	f.busy = true;
	assert_int_equal(recovery_decide(&f, t0 + RECOVERY_BACKOFF_USEC), RECOVERY_WAIT_IDLE);
	f.busy = false;

	/* the second attempt waits twice as long, and so on, up to the cap */
	f.attempts = 2;
	assert_int_equal(recovery_decide(&f, t0 + RECOVERY_BACKOFF_USEC), RECOVERY_BACKOFF);
	assert_int_equal(recovery_decide(&f, t0 + 2 * RECOVERY_BACKOFF_USEC), RECOVERY_RESET);

	assert_true(recovery_backoff_usec(1) == 10 * MIN_USEC);
	assert_true(recovery_backoff_usec(2) == 20 * MIN_USEC);
	assert_true(recovery_backoff_usec(3) == 40 * MIN_USEC);
	assert_true(recovery_backoff_usec(9) == RECOVERY_BACKOFF_MAX_USEC);
	assert_true(recovery_backoff_usec(1000) == RECOVERY_BACKOFF_MAX_USEC);
	for (unsigned a = 1; a < 40; a++)
		assert_true(recovery_backoff_usec(a + 1) >= recovery_backoff_usec(a));
}

static void test_strings(void **state)
{
	for (int v = 0; v < _RECOVERY_VERDICT_MAX; v++)
		assert_non_null(recovery_verdict_to_string((enum recovery_verdict)v));
	assert_null(recovery_verdict_to_string(_RECOVERY_VERDICT_MAX));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
