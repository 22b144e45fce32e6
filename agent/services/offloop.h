/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Work that may block for long (a MIG layout made through NVML, a device reset waiting for the
 * device to come back) run off the event loop: on a thread of its own, its completion delivered
 * back to the loop through an eventfd, so that the loop keeps serving everything else meanwhile.
 * The work function gets only the data handed to it: it must not touch the daemon's state.
 */
#pragma once

#include <systemd/sd-event.h>

struct offloop;

typedef int (*offloop_work_t)(void *data);		 /* on the thread */
typedef void (*offloop_done_t)(int result, void *data); /* on the loop, once */

/*
 * Runs @work(@data) on a new thread; when it returns, @done(its result, @data) runs from @e's
 * loop and the job frees itself (the caller forgets its pointer in @done). @description names the
 * event source. 0 or -errno (nothing started, @done not called).
 */
int offloop_start(sd_event *e, const char *description, offloop_work_t work, offloop_done_t done,
		  void *data, struct offloop **ret);

/* Waits for the thread of a job still running and frees it; @done is not called. NULL-safe. */
void offloop_cancel(struct offloop *j);
