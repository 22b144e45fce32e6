// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>

#include "api/budget.h"
#include "shared/macro.h"

static void refill(struct budget_bucket *k, uint64_t burst, uint64_t rate, uint64_t now)
{
	uint64_t dt, gain;

	if (!k->used) {
		k->level_usec = (int64_t)burst;
		k->stamp_usec = now;
		k->used = true;
		return;
	}
	if (now <= k->stamp_usec)
		return;
	/* an hour refills any bucket: keeps dt * rate far from overflowing */
	dt = MIN(now - k->stamp_usec, 3600ULL * 1000000ULL);
	gain = dt * rate / 1000000ULL;
	if (gain == 0)
		return; /* keep the stamp: the time since counts at the next call */
	k->level_usec = MIN(k->level_usec + (int64_t)gain, (int64_t)burst);
	k->stamp_usec = now;
}

/* @uid's bucket, brought up to date; NULL when all BUDGET_USERS are busy with others. */
static struct budget_bucket *user_bucket(struct budget *b, uid_t uid, uint64_t now)
{
	struct budget_bucket *free_slot = NULL;

	for (size_t i = 0; i < BUDGET_USERS; i++) {
		struct budget_bucket *k = &b->users[i];

		if (k->used && k->uid == uid) {
			refill(k, BUDGET_USER_BURST_USEC, BUDGET_USER_RATE_USEC, now);
			return k;
		}
		if (!free_slot && k->used)
			refill(k, BUDGET_USER_BURST_USEC, BUDGET_USER_RATE_USEC, now);
		/* a full bucket remembers nothing: another user may have it */
		if (!free_slot && (!k->used || k->level_usec >= (int64_t)BUDGET_USER_BURST_USEC))
			free_slot = k;
	}
	if (!free_slot)
		return NULL;
	*free_slot = (struct budget_bucket){ .uid = uid };
	refill(free_slot, BUDGET_USER_BURST_USEC, BUDGET_USER_RATE_USEC, now);
	return free_slot;
}

static unsigned retry_sec(const struct budget_bucket *k, uint64_t rate)
{
	uint64_t owed = (uint64_t)(-k->level_usec) + 1;

	/* @rate is per second */
	return (unsigned)MAX((owed + rate - 1) / rate, 1);
}

int budget_check(struct budget *b, uid_t uid, uint64_t now_usec, unsigned *ret_retry_sec,
		 bool *ret_shared)
{
	struct budget_bucket *k = user_bucket(b, uid, now_usec);

	refill(&b->all, BUDGET_ALL_BURST_USEC, BUDGET_ALL_RATE_USEC, now_usec);
	if (k && k->level_usec < 0) {
		*ret_retry_sec = retry_sec(k, BUDGET_USER_RATE_USEC);
		*ret_shared = false;
		return -EAGAIN;
	}
	if (b->all.level_usec < 0) {
		*ret_retry_sec = retry_sec(&b->all, BUDGET_ALL_RATE_USEC);
		*ret_shared = true;
		return -EAGAIN;
	}
	return 0;
}

void budget_charge(struct budget *b, uid_t uid, uint64_t cost_usec, uint64_t now_usec)
{
	struct budget_bucket *k = user_bucket(b, uid, now_usec);
	int64_t cost = (int64_t)MIN(MAX(cost_usec, BUDGET_MIN_CHARGE_USEC), (uint64_t)INT32_MAX);

	refill(&b->all, BUDGET_ALL_BURST_USEC, BUDGET_ALL_RATE_USEC, now_usec);
	if (k)
		k->level_usec -= cost;
	b->all.level_usec -= cost;
}
