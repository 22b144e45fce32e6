// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The budgets of loop time behind POST /v1/fit's 429: a user who spent its share waits as long
 * as Retry-After says, others are not held by it until all of them together spent theirs, and a
 * cheap answer still costs something.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api/budget.h"

#define T0 1000000000ULL /* some time after boot */

static void test_user_spends_its_share(void **state)
{
	static struct budget b;
	unsigned retry = 0;
	bool shared = true;

	b = (struct budget){};
	assert_int_equal(budget_check(&b, 1000, T0, &retry, &shared), 0);
	budget_charge(&b, 1000, BUDGET_USER_BURST_USEC + BUDGET_USER_RATE_USEC / 2, T0);
	assert_int_equal(budget_check(&b, 1000, T0, &retry, &shared), -EAGAIN);
	assert_false(shared);
	assert_int_equal(retry, 1); /* half a second owed, rounded up */
	/* another user is not held by it */
	assert_int_equal(budget_check(&b, 1001, T0, &retry, &shared), 0);
	/* still owed after 0.4 s, paid after the second Retry-After named */
	assert_int_equal(budget_check(&b, 1000, T0 + 400000, &retry, &shared), -EAGAIN);
	assert_int_equal(budget_check(&b, 1000, T0 + 1000000, &retry, &shared), 0);
}

static void test_all_users_together(void **state)
{
	static struct budget b;
	unsigned retry = 0, users = 0;
	bool shared = false;

	b = (struct budget){};
	/* each within its own share, all of them together beyond theirs */
	for (uid_t u = 2000; budget_check(&b, u, T0, &retry, &shared) == 0; u++, users++)
		budget_charge(&b, u, BUDGET_USER_BURST_USEC - 1, T0);
	assert_true(shared);
	assert_int_equal(users, BUDGET_ALL_BURST_USEC / (BUDGET_USER_BURST_USEC - 1) + 1);
	assert_true(retry >= 1);
}

static void test_cheap_answers_cost_too(void **state)
{
	static struct budget b;
	unsigned retry = 0, answered = 0;
	bool shared = false;

	b = (struct budget){};
	while (budget_check(&b, 3000, T0, &retry, &shared) == 0 && answered < 1000) {
		budget_charge(&b, 3000, 0, T0);
		answered++;
	}
	assert_int_equal(answered, BUDGET_USER_BURST_USEC / BUDGET_MIN_CHARGE_USEC + 1);
	assert_false(shared);
}

static void test_more_users_than_buckets(void **state)
{
	static struct budget b;
	unsigned retry = 0;
	bool shared = false;

	b = (struct budget){};
	/* every bucket taken by a user who owes a little: the next is held by the shared one */
	for (uid_t u = 0; u < BUDGET_USERS; u++)
		budget_charge(&b, 4000 + u, BUDGET_USER_BURST_USEC + 1, T0);
	assert_int_equal(budget_check(&b, 4000, T0, &retry, &shared), -EAGAIN);
	assert_int_equal(budget_check(&b, 9999, T0, &retry, &shared), -EAGAIN);
	assert_true(shared);
	/* once they are paid up, buckets are handed out again */
	assert_int_equal(budget_check(&b, 9999, T0 + 3600ULL * 1000000ULL, &retry, &shared), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_user_spends_its_share),
		cmocka_unit_test(test_all_users_together),
		cmocka_unit_test(test_cheap_answers_cost_too),
		cmocka_unit_test(test_more_users_than_buckets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
