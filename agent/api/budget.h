/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Per-user budgets of loop time for requests that anyone who can reach the socket may make and
 * that cost real work (POST /v1/fit searches the free slices). Token buckets in microseconds of
 * xpud's time: each user other than root, xpud's own user and the admin group (the caller
 * decides who is exempt) has a bucket, and all of them together share one more, so that root's
 * requests always find most of the loop free however many users ask. Pure: the caller passes
 * the time and what each answer cost.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define BUDGET_USERS 64

/* What one user may spend: a burst, refilled at a rate (per second of wall time). */
#define BUDGET_USER_BURST_USEC 50000ULL /* 50 ms */
#define BUDGET_USER_RATE_USEC 50000ULL	/* 50 ms per second: 5 % of the loop */
#define BUDGET_ALL_BURST_USEC 200000ULL /* all users together */
#define BUDGET_ALL_RATE_USEC 200000ULL	/* 20 % of the loop */
/* The least an answer that was computed costs, however fast it was. */
#define BUDGET_MIN_CHARGE_USEC 500ULL

struct budget_bucket {
	int64_t level_usec;  /* what may still be spent; negative after an expensive answer */
	uint64_t stamp_usec; /* when level_usec was last brought up to date */
	uid_t uid;
	bool used;
};

struct budget {
	struct budget_bucket users[BUDGET_USERS];
	struct budget_bucket all;
};

/*
 * Whether @uid may have work done now (@now_usec: CLOCK_MONOTONIC). 0, or -EAGAIN with the
 * whole seconds until it may in *ret_retry_sec (at least 1) and in *ret_shared whether the
 * budget of all users together is what ran out. Does not log.
 */
int budget_check(struct budget *b, uid_t uid, uint64_t now_usec, unsigned *ret_retry_sec,
		 bool *ret_shared);
/* Charges @cost_usec (at least BUDGET_MIN_CHARGE_USEC) of work done for @uid. Does not log. */
void budget_charge(struct budget *b, uid_t uid, uint64_t cost_usec, uint64_t now_usec);
