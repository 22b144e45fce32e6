/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A call that may block in the kernel or in a vendor library (a device reset waits for the
 * device to come back, up to a minute), made with a bound: the work runs on a short-lived thread
 * of its own and the caller waits for it until a deadline. A thread that misses the deadline is
 * left to finish on its own; only the data handed to it is touched after that, never the
 * caller's state.
 */
#pragma once

#include <stdint.h>

/*
 * Runs @fn(@data) on a new thread and waits at most @timeout_usec for it. @data belongs to this
 * call: @destroy(@data) (may be NULL) runs once @fn has returned, on the caller's side when it
 * returned in time, else on the thread's. Returns what @fn returned; -ETIMEDOUT when it did not
 * return in time; -EAGAIN when no thread could be started (@fn did not run, @data is destroyed);
 * -ENOMEM. Does not log.
 */
int bounded_call(int (*fn)(void *data), void *data, void (*destroy)(void *data),
		 uint64_t timeout_usec);
