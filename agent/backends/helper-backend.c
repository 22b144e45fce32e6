// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The runs of a helper backend's helper and the last good answer (helper-backend.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/helper-backend.h"
#include "shared/clock.h"
#include "shared/log.h"
#include "shared/strv.h"

#define USEC_PER_SEC 1000000ULL
#define DEFAULT_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define DEFAULT_FAILURES 3
#define DEFAULT_MAX_AGE_USEC (5 * 60 * USEC_PER_SEC)
#define DEFAULT_MEMORY (2ULL << 30)
#define BACKOFF_MAX_USEC (5 * 60 * USEC_PER_SEC)

static char *const enumerate_args[] = { (char *)"enumerate", NULL };

/* "xpud-helper [--root DIR] RUNTIME LIBRARY @args...". NULL on OOM. */
static char **helper_argv(const struct helper_backend *hb, char *const *args)
{
	_cleanup_strv_free_ char **argv = NULL;

	if (strv_extend(&argv, hb->helper) < 0 ||
	    (!hb->host->is_real &&
	     (strv_extend(&argv, "--root") < 0 || strv_extend(&argv, hb->host->root) < 0)) ||
	    strv_extend(&argv, hb->ops->runtime) < 0 || strv_extend(&argv, hb->library) < 0)
		return NULL;
	for (size_t i = 0; args && args[i]; i++)
		if (strv_extend(&argv, args[i]) < 0)
			return NULL;
	return TAKE_PTR(argv);
}

/* What a finished run answered, or why it gave nothing usable. */
static int finish_run(const struct helper_backend *hb, struct helper_result *res,
		      struct helper_reply *ret, char **ret_error)
{
	_cleanup_free_ char *why = NULL;
	int r;

	if (res->error || res->timed_out || res->output_overflow || !WIFEXITED(res->status) ||
	    WEXITSTATUS(res->status) != 0) {
		*ret_error = helper_result_describe(res, hb->ops->what, NULL);
		if (!*ret_error)
			return -ENOMEM;
		return res->error ?: -EIO;
	}
	r = helper_reply_parse(res->output ?: "", res->output_len, ret, &why);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		if (asprintf(ret_error, "%s: bad answer: %s", hb->ops->what, why ?: "unreadable") < 0)
			return -ENOMEM;
		return -EBADMSG;
	}
	return 0;
}

int helper_backend_sync(const struct helper_backend *hb, char *const *args, uint64_t timeout_usec,
			struct helper_reply *ret, char **ret_error)
{
	_cleanup_strv_free_ char **argv = helper_argv(hb, args);
	struct helper_limits limits = hb->limits;
	struct helper_result res = {};
	int r;

	if (!argv)
		return -ENOMEM;
	if (timeout_usec)
		limits.timeout_usec = timeout_usec;
	r = helper_run_sync(argv, environ, &limits, &res);
	if (r < 0)
		return r;
	r = finish_run(hb, &res, ret, ret_error);
	helper_result_done(&res);
	return r;
}

int helper_backend_news(struct helper_backend *hb)
{
	if (hb->news_fd >= 0 && eventfd_write(hb->news_fd, 1) < 0)
		return -errno;
	return 0;
}

static bool lists_equal(const struct device_list *a, const struct device_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!device_equal(a->items[i], b->items[i]) ||
		    a->items[i]->health.action != b->items[i]->health.action)
			return false;
	return true;
}

int helper_backend_take(struct helper_backend *hb, struct helper_reply *r)
{
	struct xpu_backend *b = hb->backend;
	bool changed;
	int k;

	k = hb->ops->take ? hb->ops->take(b, r) : 0;
	if (k < 0)
		return k;
	device_list_sort(&r->devices);
	changed = !hb->have_answer || hb->failing || !lists_equal(hb->devices, &r->devices);
	device_list_clear(hb->devices);
	*hb->devices = r->devices;
	r->devices = (struct device_list){};
	hb->have_answer = true;
	hb->answer_usec = now_usec(CLOCK_MONOTONIC);
	if (hb->failures)
		log_notice("The %s helper answers again (%zu %s).", hb->ops->name, hb->devices->n,
			   hb->ops->devices_word);
	hb->failures = 0;
	hb->failing = false;
	hb->failure = mfree(hb->failure);
	hb->next_run_usec = 0;
	b->reason = mfree(b->reason);
	k = hb->ops->taken ? hb->ops->taken(b, r) : 0;
	if (k < 0)
		return k;
	if (!changed)
		return 0;
	hb->rescan_pending = true;
	return helper_backend_news(hb);
}

/* The devices are unhealthy for the last failure, from now until a run works. */
static int start_failing(struct helper_backend *hb)
{
	if (hb->failing)
		return 0;
	hb->failing = true;
	for (size_t i = 0; i < hb->devices->n; i++) {
		struct backend_update *m = reallocarray(hb->updates, hb->n_updates + 1, sizeof(*m));

		if (!m)
			return -ENOMEM;
		hb->updates = m;
		m[hb->n_updates] = (struct backend_update){
			.id = strdup(hb->devices->items[i]->id),
			.health = { .state = XPU_HEALTH_UNHEALTHY, .reason = strdup(hb->failure) },
		};
		if (!m[hb->n_updates].id || !m[hb->n_updates].health.reason) {
			free(m[hb->n_updates].id);
			free(m[hb->n_updates].health.reason);
			return -ENOMEM;
		}
		hb->n_updates++;
	}
	return helper_backend_news(hb);
}

/* A run gave nothing usable: @why (taken). The runtime's own word (@definite: the driver or the
 * library is gone) counts at once; a helper that crashed or hung only after helper-failures in
 * a row, or when the last good answer is too old. 0 or -ENOMEM. */
static int note_failure(struct helper_backend *hb, char *why, bool definite)
{
	struct xpu_backend *b = hb->backend;
	uint64_t now = now_usec(CLOCK_MONOTONIC), backoff;

	hb->failures++;
	free(hb->failure);
	hb->failure = why;
	free(b->reason);
	if (asprintf(&b->reason, "degraded: %s", why) < 0)
		b->reason = NULL;
	/* a helper that crashed or hung is given time */
	backoff = definite && hb->ops->definite_at_once
			  ? 0
			  : MIN(USEC_PER_SEC << MIN(hb->failures - 1, 16u), BACKOFF_MAX_USEC);
	hb->next_run_usec = now + backoff;
	if (hb->failures == 1 || hb->failures == hb->max_failures)
		log_warning("%s (%u in a row); %s, next try in %llu s.", why, hb->failures,
			    hb->have_answer ? hb->ops->kept : hb->ops->none,
			    (unsigned long long)(backoff / USEC_PER_SEC));
	else
		log_debug("%s (%u in a row).", why, hb->failures);
	if (definite || hb->failures >= hb->max_failures ||
	    (hb->have_answer && now - hb->answer_usec > hb->max_age_usec))
		return start_failing(hb);
	return 0;
}

/* What one answer means: a new inventory, or a failure. 0 or -ENOMEM. */
static int handle_answer(struct helper_backend *hb, int r, struct helper_reply *reply,
			 char *error)
{
	char *why;

	if (r == -ENOMEM) {
		free(error);
		return r;
	}
	if (r < 0) {
		if (!error && asprintf(&error, "%s: failed", hb->ops->what) < 0)
			return -ENOMEM;
		return note_failure(hb, error, false);
	}
	free(error);
	if (!reply->has_error)
		return helper_backend_take(hb, reply);
	why = strdup(reply->error);
	return why ? note_failure(hb, why, true) : -ENOMEM;
}

static void arm_retry(struct helper_backend *hb);

static void on_run_done(struct helper_run *run, struct helper_result *res, void *userdata)
{
	struct helper_backend *hb = userdata;
	struct helper_reply reply = {};
	char *error = NULL;
	int r;

	hb->run = NULL;
	/* what a health cycle costs, for `journalctl` at debug level (docs/performance.md) */
	log_debug("%s helper run: %llu.%03llu ms wall, %llu.%03llu ms CPU.", hb->ops->name,
		  (unsigned long long)(res->wall_usec / 1000),
		  (unsigned long long)(res->wall_usec % 1000),
		  (unsigned long long)(res->cpu_usec / 1000),
		  (unsigned long long)(res->cpu_usec % 1000));
	r = finish_run(hb, res, &reply, &error);
	helper_result_done(res);
	r = handle_answer(hb, r, &reply, error);
	helper_reply_done(&reply);
	if (r < 0)
		log_warning_errno(r, "Cannot take the %s helper's answer: %m", hb->ops->name);
	if (hb->run_again || hb->failures)
		arm_retry(hb);
}

/* Starts a run on the loop, unless one runs (then again after it) or the back-off holds. */
static void start_run(struct helper_backend *hb)
{
	_cleanup_strv_free_ char **argv = NULL;
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	int r;

	if (hb->run) {
		hb->run_again = true;
		return;
	}
	if (now < hb->next_run_usec) {
		arm_retry(hb);
		return;
	}
	hb->run_again = false;
	argv = helper_argv(hb, enumerate_args);
	if (!argv) {
		log_oom();
		return;
	}
	r = helper_run_start(hb->event, argv, environ, &hb->limits, on_run_done, hb, &hb->run);
	if (r < 0) {
		log_warning_errno(r, "Cannot start the %s helper: %m", hb->ops->name);
		hb->run = NULL;
		return;
	}
	hb->run_usec = now;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct helper_backend *hb = userdata;

	hb->retry = sd_event_source_disable_unref(hb->retry);
	start_run(hb);
	return 0;
}

/* A run once the back-off allows it (no later than that, also when nothing asks). */
static void arm_retry(struct helper_backend *hb)
{
	uint64_t when = MAX(hb->next_run_usec, now_usec(CLOCK_MONOTONIC));

	if (!hb->event || hb->retry)
		return;
	if (sd_event_add_time(hb->event, &hb->retry, CLOCK_MONOTONIC, when, 0, on_retry, hb) < 0)
		log_warning("Cannot schedule the next %s helper run; it waits for a probe.",
			    hb->ops->name);
}

/* Without a loop (start-up, tools, tests): a run now, to the end. */
static int run_blocking(struct helper_backend *hb)
{
	struct helper_reply reply = {};
	char *error = NULL;
	int r;

	r = helper_backend_sync(hb, enumerate_args, 0, &reply, &error);
	r = handle_answer(hb, r, &reply, error);
	helper_reply_done(&reply);
	return r;
}

int helper_backend_enumerate(struct helper_backend *hb, struct device_list *list)
{
	struct xpu_backend *b = hb->backend;
	int r;

	if (!hb->event) {
		/* the probe's answer serves the first enumeration */
		r = hb->probe_answer ? 0 : run_blocking(hb);
		hb->probe_answer = false;
		if (r < 0)
			return r;
	} else if (hb->own_rescan) {
		hb->own_rescan = false;
	} else {
		start_run(hb);
	}
	for (size_t i = 0; i < hb->devices->n; i++) {
		struct xpu_device *d;

		r = device_dup(hb->devices->items[i], &d);
		if (r < 0)
			return r;
		if ((hb->ops->complete && hb->ops->complete(b, d) < 0) ||
		    (hb->failing && device_set_unhealthy(d, "%s", hb->failure) < 0)) {
			device_free(d);
			return -ENOMEM;
		}
		r = device_list_push(list, d);
		if (r < 0)
			return r;
	}
	return 0;
}

int helper_backend_refresh(struct helper_backend *hb, struct xpu_device *d)
{
	const struct config *config = hb->backend->config;
	uint64_t interval = config ? config->health_interval_usec : 0;
	int r;

	if (!hb->event) {
		r = run_blocking(hb);
		if (r < 0)
			return r;
	} else if (!hb->run && now_usec(CLOCK_MONOTONIC) - hb->run_usec >= interval / 2) {
		start_run(hb);
	}
	free(d->health.reason);
	d->health = (struct xpu_health){};
	return 0;
}

int helper_backend_health(const struct helper_backend *hb, struct xpu_device *d)
{
	const struct xpu_device *g;

	if (hb->failing)
		return device_set_unhealthy(d, "%s", hb->failure);
	g = device_list_find(hb->devices, d->id);
	if (!g)
		return hb->have_answer ? -ENODEV : 0;
	if (g->health.state == XPU_HEALTH_UNHEALTHY)
		return device_set_fault(d, g->health.action, "%s", g->health.reason ?: "unhealthy");
	return 0;
}

int helper_backend_watch(struct helper_backend *hb)
{
	if (hb->news_fd < 0) {
		hb->news_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (hb->news_fd < 0)
			return -errno;
	}
	hb->event = hb->backend->event;
	if (!hb->event)
		return -EOPNOTSUPP;
	if (!hb->have_answer)
		arm_retry(hb); /* the first run failed: try again */
	return hb->news_fd;
}

void helper_backend_dispatch(struct helper_backend *hb, struct backend_update **ret_updates,
			     size_t *ret_n, bool *ret_rescan)
{
	eventfd_t v;

	(void)eventfd_read(hb->news_fd, &v);
	*ret_updates = TAKE_PTR(hb->updates);
	*ret_n = hb->n_updates;
	hb->n_updates = 0;
	*ret_rescan = hb->rescan_pending;
	if (hb->rescan_pending)
		hb->own_rescan = true; /* until the enumeration it asked for */
	hb->rescan_pending = false;
}

int helper_backend_probe(struct helper_backend *hb, const struct helper_backend_ops *ops,
			 struct xpu_backend *b, struct device_list *devices, const char *library,
			 const struct helper_backend_settings *s, char **ret_reason)
{
	struct helper_reply reply = {};
	char *error = NULL;
	int r;

	*hb = (struct helper_backend){
		.ops = ops,
		.backend = b,
		.devices = devices,
		.host = b->host,
		.news_fd = -EBADF,
		.max_failures = s->failures ?: DEFAULT_FAILURES,
		.max_age_usec = s->max_age_usec ?: DEFAULT_MAX_AGE_USEC,
		.limits = {
			.timeout_usec = s->timeout_usec ?: DEFAULT_TIMEOUT_USEC,
			.output_max = HELPER_OUTPUT_MAX,
		},
	};
	hb->limits.cpu_seconds = (unsigned)(hb->limits.timeout_usec / USEC_PER_SEC) + 1;
	if (helper_address_limit_usable())
		hb->limits.address_space = s->memory ?: DEFAULT_MEMORY;
	if (helper_program_path(&hb->helper) < 0 || !(hb->library = strdup(library)))
		return -ENOMEM;

	r = helper_backend_sync(hb, enumerate_args, 0, &reply, &error);
	if (r == -ENOENT || r == -EACCES || r == -ENOEXEC) {
		/* no helper to run: nothing of the runtime can be known */
		if (asprintf(ret_reason, "%s (%s)", error, hb->helper) < 0)
			*ret_reason = NULL;
		free(error);
		return r;
	}
	if (r >= 0 && reply.has_error && (ops->probe_error_unavailable || reply.error_unavailable)) {
		/* the runtime answered that it cannot work here: no library, no driver, no
		 * emulation config */
		*ret_reason = TAKE_PTR(reply.error);
		r = reply.error_errno;
		helper_reply_done(&reply);
		return r;
	}
	/* an answer, or a helper that failed this once: it is tried again with a back-off */
	r = handle_answer(hb, r, &reply, error);
	helper_reply_done(&reply);
	if (r < 0)
		return r;
	hb->rescan_pending = false; /* the first inventory is this answer's */
	hb->probe_answer = true;
	return 0;
}

void helper_backend_done(struct helper_backend *hb)
{
	if (hb->run)
		helper_run_abandon(hb->run);
	hb->run = NULL;
	hb->retry = sd_event_source_disable_unref(hb->retry);
	hb->news_fd = safe_close(hb->news_fd);
	backend_updates_free(hb->updates, hb->n_updates);
	hb->updates = NULL;
	hb->n_updates = 0;
	if (hb->devices)
		device_list_clear(hb->devices);
	hb->failure = mfree(hb->failure);
	hb->helper = mfree(hb->helper);
	hb->library = mfree(hb->library);
}
