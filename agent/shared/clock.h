/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Time in the microseconds every timestamp of xpud is kept in. */
#pragma once

#include <stdint.h>
#include <time.h>

/* Now on @clock (CLOCK_REALTIME for what is shown or saved, CLOCK_MONOTONIC for intervals). */
static inline uint64_t now_usec(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}
