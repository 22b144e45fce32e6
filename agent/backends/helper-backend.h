/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A backend whose devices a vendor runtime describes through the helper process (NVML, XRT):
 * the runs of "xpud-helper [--root DIR] RUNTIME LIBRARY enumerate" and what the backend keeps of
 * them, the same for each such backend (nvidia.c, xrt.c).
 *
 * The probe waits for one run, so that the first inventory has the devices. On the loop nothing
 * waits: the enumeration and the health probes answer from the last good answer and start a run
 * (at most one at a time; another asked for meanwhile follows it) whose answer replaces it; when
 * the devices differ, the watch fd (an eventfd) becomes readable and dispatch asks for a rescan.
 * A run that fails (crashed, timed out, printed nonsense) leaves the last good answer standing
 * and the backend "degraded: WHY"; after helper-failures in a row, or once the last good answer
 * is older than helper-max-age, or at once when the runtime itself answers with an error, the
 * devices are unhealthy with the reason until a run works. Runs go on with a doubling back-off
 * (1 s up to 5 min). What differs between backends is in struct helper_backend_ops: the names in
 * messages, and what the backend keeps of an answer besides its devices.
 *
 * Loop only, except helper_backend_sync() and helper_backend_news(), which threads off the loop
 * may call once the probe is done. Nothing here logs above debug except what the loop's own
 * callbacks must say (a failed run, an answer again), which goes to the journal.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "backends/backend.h"
#include "backends/helper-config.h"
#include "core/device.h"
#include "core/helper-proto.h"
#include "shared/helper-run.h"

struct helper_backend_ops {
	const char *runtime; /* the helper's word for the runtime: "nvml", "xrt" */
	const char *what;    /* a run, in reasons: "nvml helper" ("nvml helper: crashed (...)") */
	const char *name;    /* the runtime in messages: "NVML" ("The NVML helper answers ...") */
	const char *devices_word; /* "GPUs", "cards" */
	const char *kept;    /* a failure with an answer: "the GPUs keep NVML's last answer" */
	const char *none;    /* ... and without one: "no answer from NVML yet" */
	/* The runtime's own error is asked again at once, without back-off (cheap to ask). */
	bool definite_at_once;
	/* At the probe, any error of the runtime makes the backend unavailable, not only one that
	 * says the runtime is not there ("unavailable"). */
	bool probe_error_unavailable;

	/* Optional. A good answer, before its devices (sorted next) replace the last ones: what
	 * the backend keeps of it besides, and its devices as the backend names them. 0 or
	 * -ENOMEM (then nothing is replaced). */
	int (*take)(struct xpu_backend *b, struct helper_reply *r);
	/* Optional. After the devices were replaced (b->reason was cleared): the rest of @r. 0 or
	 * -ENOMEM. */
	int (*taken)(struct xpu_backend *b, const struct helper_reply *r);
	/* Optional. A copy of an answer's device for the enumeration: what the backend adds to
	 * it. 0 or -ENOMEM. */
	int (*complete)(struct xpu_backend *b, struct xpu_device *d);
};

struct helper_backend {
	const struct helper_backend_ops *ops;
	struct xpu_backend *backend; /* borrowed: its reason, config and userdata */
	const struct xpu_host *host; /* borrowed */
	sd_event *event;	     /* the loop, once watched; NULL: runs block */
	char *helper;		     /* the helper program */
	char *library;		     /* the runtime's library the helper loads */
	struct helper_limits limits;
	unsigned max_failures;
	uint64_t max_age_usec;

	/* The last good answer's devices, sorted, in the backend's list (which @hb fills and
	 * clears). */
	struct device_list *devices;
	bool have_answer;
	bool probe_answer;    /* the probe's, not used by an enumeration yet */
	uint64_t answer_usec; /* CLOCK_MONOTONIC */
	/* Runs that failed since (a crash, a timeout, a bad answer, the runtime's own error). */
	unsigned failures;
	char *failure; /* why the last one failed */
	bool failing;  /* the devices say why: enough failures, the answer too old, or definite */

	/* The run on the loop, and what it has for the loop's next dispatch. */
	struct helper_run *run;
	uint64_t run_usec;	/* when the last one started */
	uint64_t next_run_usec; /* back-off: not before */
	bool run_again;		/* asked for while one was running */
	bool own_rescan;	/* the next enumeration is the one this backend asked for */
	sd_event_source *retry;
	int news_fd; /* eventfd, the watch fd: readable when there is news */
	bool rescan_pending;
	struct backend_update *updates;
	size_t n_updates;
};

/* Sets @hb up for @b with the runtime's @library (copied) and @s, the answers' devices to be kept
 * in @devices (empty; the backend's, borrowed); then runs the helper to its end and takes its
 * answer, as helper_backend_take() or a failure that is tried again. 0; or
 * -errno with why the backend is unavailable in *ret_reason (malloc'd): no helper to run
 * (-ENOENT, -EACCES, -ENOEXEC: "nvml helper: cannot be started: ... (PATH)"), the runtime's own
 * error (see probe_error_unavailable; its errno), -ENOMEM (*ret_reason untouched). On failure
 * @hb must still be given to helper_backend_done(). Does not log above debug. */
int helper_backend_probe(struct helper_backend *hb, const struct helper_backend_ops *ops,
			 struct xpu_backend *b, struct device_list *devices, const char *library,
			 const struct helper_backend_settings *s, char **ret_reason);

/* Frees what @hb holds and stops its run. */
void helper_backend_done(struct helper_backend *hb);

/* Runs the helper's @args ("enumerate", "apply ...") to the end, blocking (threads off the loop,
 * start-up), with @timeout_usec or the configured deadline (0). 0 with the parsed answer in *ret;
 * or -errno with the reason in *ret_error ("nvml helper: crashed (SIGSEGV)", "nvml helper: bad
 * answer: line 2: ..."), or -ENOMEM. Does not log. */
int helper_backend_sync(const struct helper_backend *hb, char *const *args, uint64_t timeout_usec,
			struct helper_reply *ret, char **ret_error);

/* A good answer replaces the last one (its devices taken from @r); a rescan is asked for when
 * they differ. 0 or -ENOMEM. */
int helper_backend_take(struct helper_backend *hb, struct helper_reply *r);

/* Makes the watch fd readable: dispatch hands over what is pending. 0 or -errno. Thread-safe. */
int helper_backend_news(struct helper_backend *hb);

/* The enumeration: a run (blocking without a loop, unless the probe's answer is still unused;
 * on the loop started, unless this is the rescan the backend asked for), then copies of the last
 * answer's devices, completed by ops->complete, unhealthy while failing. 0 or -errno. */
int helper_backend_enumerate(struct helper_backend *hb, struct device_list *list);

/* A health probe's part: a run (blocking without a loop; on the loop at most one per half
 * health-interval), and @d's health cleared. 0 or -errno. */
int helper_backend_refresh(struct helper_backend *hb, struct xpu_device *d);

/* @d's health as the last answer has it: unhealthy while failing, its fault, or -ENODEV when the
 * answer no longer lists it. */
int helper_backend_health(const struct helper_backend *hb, struct xpu_device *d);

/* The watch op: the news fd (created once) after the loop is known, or -errno. */
int helper_backend_watch(struct helper_backend *hb);

/* The dispatch op: the health updates and the rescan pending since the last. */
void helper_backend_dispatch(struct helper_backend *hb, struct backend_update **ret_updates,
			     size_t *ret_n, bool *ret_rescan);
