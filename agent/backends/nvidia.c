// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The NVIDIA backend: NVML describes every NVIDIA GPU better than sysfs can (UUID, memory,
 * compute capability, MIG, topology). Its records win the merge over the generic PCI backend's
 * for the same PCI function (priority 10).
 *
 * xpud never loads NVML: the helper process does ("xpud-helper nvml LIBRARY enumerate",
 * agent/runtimes/), one run per request, with a deadline, its own resource limits and an output
 * limit (shared/helper-run.h), and answers in the helper protocol (core/helper-proto.h). On the
 * loop a run never blocks: the enumeration and the health probes answer from the last good
 * answer, and start a run that replaces it when it is done (then the backend asks for a rescan
 * if anything changed). A run that fails (the helper crashed, timed out, printed nonsense) leaves
 * the last good answer standing; after helper-failures failures in a row, or once the last good
 * answer is older than helper-max-age, the GPUs are unhealthy with the reason ("nvml helper:
 * crashed (SIGSEGV)"), and runs go on with a back-off until one works. NVML's own error (the
 * driver went away) counts at once. Threads off the loop (applies and resets) run the helper
 * blocking (nvidia-apply.c). XIDs come from the kernel log (nvidia-kmsg-events.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/nvidia-config.h"
#include "backends/nvidia-internal.h"
#include "backends/nvidia.h"
#include "shared/clock.h"
#include "shared/log.h"
#include "shared/strv.h"

#define USEC_PER_SEC 1000000ULL
#define NVML_LIBRARY "libnvidia-ml.so.1"
#define HELPER_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define HELPER_FAILURES 3
#define HELPER_MAX_AGE_USEC (5 * 60 * USEC_PER_SEC)
#define HELPER_MEMORY (2ULL << 30)
#define HELPER_BACKOFF_MAX_USEC (5 * 60 * USEC_PER_SEC)

/* "xpud-helper [--root DIR] nvml LIBRARY @args...". NULL on OOM. */
static char **helper_argv(const struct nvidia *nv, char *const *args)
{
	_cleanup_strv_free_ char **argv = NULL;

	if (strv_extend(&argv, nv->helper) < 0 ||
	    (!nv->host->is_real &&
	     (strv_extend(&argv, "--root") < 0 || strv_extend(&argv, nv->host->root) < 0)) ||
	    strv_extend(&argv, "nvml") < 0 || strv_extend(&argv, nv->nvml_path) < 0)
		return NULL;
	for (size_t i = 0; args && args[i]; i++)
		if (strv_extend(&argv, args[i]) < 0)
			return NULL;
	return TAKE_PTR(argv);
}

/* What a finished run answered, or why it gave nothing usable. */
static int finish_run(struct helper_result *res, struct helper_reply *ret, char **ret_error)
{
	_cleanup_free_ char *why = NULL;
	int r;

	if (res->error || res->timed_out || res->output_overflow || !WIFEXITED(res->status) ||
	    WEXITSTATUS(res->status) != 0) {
		*ret_error = helper_result_describe(res, "nvml helper", NULL);
		if (!*ret_error)
			return -ENOMEM;
		return res->error ?: -EIO;
	}
	r = helper_reply_parse(res->output ?: "", res->output_len, ret, &why);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		if (asprintf(ret_error, "nvml helper: bad answer: %s", why ?: "unreadable") < 0)
			return -ENOMEM;
		return -EBADMSG;
	}
	return 0;
}

int nvidia_helper_sync(struct nvidia *nv, char *const *args, uint64_t timeout_usec,
		       struct helper_reply *ret, char **ret_error)
{
	_cleanup_strv_free_ char **argv = helper_argv(nv, args);
	struct helper_limits limits = nv->limits;
	struct helper_result res = {};
	int r;

	if (!argv)
		return -ENOMEM;
	if (timeout_usec)
		limits.timeout_usec = timeout_usec;
	r = helper_run_sync(argv, environ, &limits, &res);
	if (r < 0)
		return r;
	r = finish_run(&res, ret, ret_error);
	helper_result_done(&res);
	return r;
}

int nvidia_news(struct nvidia *nv)
{
	if (nv->news_fd >= 0 && eventfd_write(nv->news_fd, 1) < 0)
		return -errno;
	return 0;
}

void nvidia_offer_fresh(struct nvidia *nv, struct helper_reply *r)
{
	struct helper_reply *copy = malloc(sizeof(*copy));

	if (!copy) {
		helper_reply_done(r);
		return; /* the next run says the same */
	}
	*copy = *r;
	*r = (struct helper_reply){};
	pthread_mutex_lock(&nv->lock);
	if (nv->fresh) {
		helper_reply_done(nv->fresh);
		free(nv->fresh);
	}
	nv->fresh = copy;
	pthread_mutex_unlock(&nv->lock);
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

/* The GPUs are unhealthy for the last failure, from now until a run works. */
static int start_failing(struct nvidia *nv)
{
	if (nv->failing)
		return 0;
	nv->failing = true;
	for (size_t i = 0; i < nv->gpus.n; i++)
		if (nvidia_update_push(&nv->updates, &nv->n_updates, nv->gpus.items[i]->id,
				       nv->failure, HEALTH_ACTION_IGNORE) < 0)
			return -ENOMEM;
	return nvidia_news(nv);
}

/* A good answer replaces the last one. 0 or -ENOMEM. */
static int take_answer(struct xpu_backend *b, struct helper_reply *r)
{
	struct nvidia *nv = b->userdata;
	struct nvidia_mig *migs = NULL;
	bool changed;

	if (r->n_slice_refs && !(migs = calloc(r->n_slice_refs, sizeof(*migs))))
		return -ENOMEM;
	for (size_t i = 0; i < r->n_slice_refs; i++) {
		const struct helper_slice_ref *s = &r->slice_refs[i];

		snprintf(migs[i].addr, sizeof(migs[i].addr), "%s", s->id);
		migs[i].gi = s->coords[0];
		migs[i].ci = s->coords[1];
		migs[i].uuid = TAKE_PTR(r->slice_refs[i].slice);
	}
	for (size_t i = 0; i < nv->n_migs; i++)
		free(nv->migs[i].uuid);
	free(nv->migs);
	nv->migs = migs;
	nv->n_migs = r->n_slice_refs;
	for (size_t i = 0; i < r->n_failures; i++)
		log_warning("NVML GPU %d could not be matched to a PCI function (%s), ignoring.",
			    r->failures[i].index, r->failures[i].error);

	device_list_sort(&r->devices);
	changed = !nv->have_answer || nv->failing || !lists_equal(&nv->gpus, &r->devices);
	device_list_clear(&nv->gpus);
	nv->gpus = r->devices;
	r->devices = (struct device_list){};
	nv->have_answer = true;
	nv->answer_usec = now_usec(CLOCK_MONOTONIC);
	if (nv->failures || nv->failing)
		log_notice("The NVML helper answers again (%u GPUs).", (unsigned)nv->gpus.n);
	nv->failures = 0;
	nv->failing = false;
	nv->failure = mfree(nv->failure);
	b->reason = mfree(b->reason);
	nv->next_run_usec = 0;
	nvidia_sticky_prune(nv);
	if (changed) {
		nv->rescan_pending = true;
		return nvidia_news(nv);
	}
	return 0;
}

/* A run gave nothing usable: @why. NVML's own word (@definite: the driver is gone) counts at
 * once; a helper that crashed or hung only after helper-failures in a row, or when the last good
 * answer is too old. 0 or -ENOMEM. */
static int note_failure(struct xpu_backend *b, char *why, bool definite)
{
	struct nvidia *nv = b->userdata;
	uint64_t now = now_usec(CLOCK_MONOTONIC), backoff;

	nv->failures++;
	free(nv->failure);
	nv->failure = why;
	free(b->reason);
	if (asprintf(&b->reason, "degraded: %s", why) < 0)
		b->reason = NULL;
	/* a helper that crashed or hung is given time; NVML's answer is cheap to ask again */
	backoff = definite ? 0
			   : MIN(USEC_PER_SEC << MIN(nv->failures - 1, 16u), HELPER_BACKOFF_MAX_USEC);
	nv->next_run_usec = now + backoff;
	if (nv->failures == 1 || nv->failures == nv->max_failures)
		log_warning("%s (%u in a row); %s, next try in %llu s.", why, nv->failures,
			    nv->have_answer ? "the GPUs keep NVML's last answer"
					    : "no answer from NVML yet",
			    (unsigned long long)(backoff / USEC_PER_SEC));
	else
		log_debug("%s (%u in a row).", why, nv->failures);
	if (definite || nv->failures >= nv->max_failures ||
	    (nv->have_answer && now - nv->answer_usec > nv->max_age_usec))
		return start_failing(nv);
	return 0;
}

/* What one answer means: a new inventory, or a failure. 0 or -ENOMEM. */
static int handle_answer(struct xpu_backend *b, int r, struct helper_reply *reply, char *error)
{
	if (r == -ENOMEM) {
		free(error);
		return r;
	}
	if (r < 0)
		return note_failure(b, error ?: strdup("nvml helper: failed"), false);
	free(error);
	if (reply->has_error) {
		char *why = NULL;

		if (asprintf(&why, "%s", reply->error) < 0)
			return -ENOMEM;
		return note_failure(b, why, true);
	}
	return take_answer(b, reply);
}

static void arm_retry(struct xpu_backend *b);

static void on_run_done(struct helper_run *run, struct helper_result *res, void *userdata)
{
	struct xpu_backend *b = userdata;
	struct nvidia *nv = b->userdata;
	struct helper_reply reply = {};
	char *error = NULL;
	int r;

	nv->run = NULL;
	/* what a health cycle costs, for `journalctl` at debug level (docs/performance.md) */
	log_debug("NVML helper run: %llu.%03llu ms wall, %llu.%03llu ms CPU.",
		  (unsigned long long)(res->wall_usec / 1000),
		  (unsigned long long)(res->wall_usec % 1000),
		  (unsigned long long)(res->cpu_usec / 1000),
		  (unsigned long long)(res->cpu_usec % 1000));
	r = finish_run(res, &reply, &error);
	helper_result_done(res);
	r = handle_answer(b, r, &reply, error);
	helper_reply_done(&reply);
	if (r < 0)
		log_warning_errno(r, "Cannot take the NVML helper's answer: %m");
	if (nv->run_again || nv->failures)
		arm_retry(b);
}

/* Starts a run on the loop, unless one runs (then again after it) or the back-off holds. */
static void start_run(struct xpu_backend *b)
{
	static char *const args[] = { (char *)"enumerate", NULL };
	struct nvidia *nv = b->userdata;
	_cleanup_strv_free_ char **argv = NULL;
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	int r;

	if (nv->run) {
		nv->run_again = true;
		return;
	}
	if (now < nv->next_run_usec) {
		arm_retry(b);
		return;
	}
	nv->run_again = false;
	argv = helper_argv(nv, args);
	if (!argv) {
		log_oom();
		return;
	}
	r = helper_run_start(nv->event, argv, environ, &nv->limits,
			     on_run_done, b, &nv->run);
	if (r < 0) {
		log_warning_errno(r, "Cannot start the NVML helper: %m");
		nv->run = NULL;
		return;
	}
	nv->run_usec = now;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct xpu_backend *b = userdata;
	struct nvidia *nv = b->userdata;

	nv->retry = sd_event_source_disable_unref(nv->retry);
	start_run(b);
	return 0;
}

/* A run once the back-off allows it (no later than that, also when nothing asks). */
static void arm_retry(struct xpu_backend *b)
{
	struct nvidia *nv = b->userdata;
	uint64_t when = MAX(nv->next_run_usec, now_usec(CLOCK_MONOTONIC));

	if (!nv->event || nv->retry)
		return;
	if (sd_event_add_time(nv->event, &nv->retry, CLOCK_MONOTONIC, when, 0, on_retry, b) < 0)
		log_warning("Cannot schedule the next NVML helper run; it waits for a probe.");
}

/* An answer a thread got after changing a GPU, if any: it is newer than the last. */
static int take_fresh(struct xpu_backend *b)
{
	struct nvidia *nv = b->userdata;
	struct helper_reply *fresh;
	int r;

	pthread_mutex_lock(&nv->lock);
	fresh = TAKE_PTR(nv->fresh);
	pthread_mutex_unlock(&nv->lock);
	if (!fresh)
		return 0;
	r = fresh->has_error ? 0 : take_answer(b, fresh);
	nv->rescan_pending = false; /* this enumeration is the rescan */
	helper_reply_done(fresh);
	free(fresh);
	return r;
}

/* Without a loop (start-up, tools, tests): a run now, to the end. */
static int run_blocking(struct xpu_backend *b)
{
	static char *const args[] = { (char *)"enumerate", NULL };
	struct nvidia *nv = b->userdata;
	struct helper_reply reply = {};
	char *error = NULL;
	int r;

	r = nvidia_helper_sync(nv, args, 0, &reply, &error);
	r = handle_answer(b, r, &reply, error);
	helper_reply_done(&reply);
	return r;
}

static int nvidia_enumerate(struct xpu_backend *b, struct device_list *list)
{
	struct nvidia *nv = b->userdata;
	int r;

	nvidia_sticky_take_resets(nv);
	r = take_fresh(b);
	if (r < 0)
		return r;
	if (!nv->event) {
		/* the probe's answer serves the first enumeration */
		r = nv->probe_answer ? 0 : run_blocking(b);
		nv->probe_answer = false;
		if (r < 0)
			return r;
	} else if (nv->own_rescan) {
		nv->own_rescan = false;
	} else {
		start_run(b);
	}
	for (size_t i = 0; i < nv->gpus.n; i++) {
		struct xpu_device *d;

		r = device_dup(nv->gpus.items[i], &d);
		if (r < 0)
			return r;
		if (nvidia_add_cuda_facts(nv, d) < 0 || nvidia_sticky_apply(nv, d) < 0 ||
		    (nv->failing && device_set_unhealthy(d, "%s", nv->failure) < 0)) {
			device_free(d);
			return -ENOMEM;
		}
		r = device_list_push(list, d);
		if (r < 0)
			return r;
	}
	return 0;
}

static int nvidia_refresh(struct xpu_backend *b, struct xpu_device *d)
{
	struct nvidia *nv = b->userdata;
	const struct xpu_device *g;
	uint64_t interval = b->config ? b->config->health_interval_usec : 0;
	int r;

	/* (a reset's end is taken by the enumeration the reset asks for, not here: its probes come
	 * after the reset was reported) */
	r = take_fresh(b);
	if (r < 0)
		return r;
	if (!nv->event) {
		r = run_blocking(b);
		if (r < 0)
			return r;
	} else if (!nv->run && now_usec(CLOCK_MONOTONIC) - nv->run_usec >= interval / 2) {
		start_run(b);
	}
	free(d->health.reason);
	d->health = (struct xpu_health){};
	if (nvidia_sticky_reason(nv, d->id))
		/* the log said it needs a reset; an answer from NVML does not undo that */
		return nvidia_sticky_apply(nv, d);
	if (nv->failing)
		return device_set_unhealthy(d, "%s", nv->failure);
	g = device_list_find(&nv->gpus, d->id);
	if (!g)
		return nv->have_answer ? -ENODEV : 0;
	if (g->health.state == XPU_HEALTH_UNHEALTHY)
		return device_set_fault(d, g->health.action, "%s", g->health.reason ?: "unhealthy");
	return 0;
}

static int nvidia_watch(struct xpu_backend *b)
{
	struct nvidia *nv = b->userdata;

	if (nv->news_fd < 0) {
		nv->news_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (nv->news_fd < 0)
			return -errno;
	}
	nv->event = b->event;
	if (!nv->event)
		return -EOPNOTSUPP;
	if (!nv->have_answer)
		arm_retry(b); /* the first run failed: try again */
	nvidia_cuda_start(nv);
	return nv->news_fd;
}

static int nvidia_dispatch(struct xpu_backend *b, struct backend_update **ret_updates,
			   size_t *ret_n, bool *ret_rescan)
{
	struct nvidia *nv = b->userdata;
	eventfd_t v;

	(void)eventfd_read(nv->news_fd, &v);
	*ret_updates = TAKE_PTR(nv->updates);
	*ret_n = nv->n_updates;
	nv->n_updates = 0;
	*ret_rescan = nv->rescan_pending;
	if (nv->rescan_pending)
		nv->own_rescan = true;
	nv->rescan_pending = false;
	return 0;
}

static int nvidia_probe(struct xpu_backend *b, char **ret_reason)
{
	const struct nvidia_config *cfg = nvidia_config_get(b->config);
	_cleanup_free_ struct nvidia *nv = NULL;
	struct helper_reply reply = {};
	static char *const args[] = { (char *)"enumerate", NULL };
	char *error = NULL;
	const char *path;
	int r;

	/* Configuration, then the environment (tests), then the loader's search path. A fake
	 * host root never gets the real host's NVML: its GPUs would not be the root's. */
	if (cfg->nvml_library)
		path = cfg->nvml_library;
	else if (secure_getenv("XPU_NVML_LIBRARY"))
		path = secure_getenv("XPU_NVML_LIBRARY");
	else if (b->host->is_real)
		path = NVML_LIBRARY;
	else
		return (*ret_reason = strdup("a simulated host root uses no NVML unless "
					     "XPU_NVML_LIBRARY names one")) ? -ENOENT : -ENOMEM;

	nv = calloc(1, sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	nv->host = b->host;
	nv->config = b->config;
	nv->news_fd = -EBADF;
	nv->max_failures = cfg->helper_failures ?: HELPER_FAILURES;
	nv->max_age_usec = cfg->helper_max_age_usec ?: HELPER_MAX_AGE_USEC;
	nv->limits = (struct helper_limits){
		.timeout_usec = cfg->helper_timeout_usec ?: HELPER_TIMEOUT_USEC,
		.output_max = HELPER_OUTPUT_MAX,
	};
	nv->limits.cpu_seconds = (unsigned)(nv->limits.timeout_usec / USEC_PER_SEC) + 1;
	if (helper_address_limit_usable())
		nv->limits.address_space = cfg->helper_memory ?: HELPER_MEMORY;
	pthread_mutex_init(&nv->lock, NULL);
	if (helper_program_path(&nv->helper) < 0 || !(nv->nvml_path = strdup(path)))
		goto oom;
	/* The CUDA driver API, like NVML: configuration, environment, the host's own. */
	if (cfg->cuda_library)
		nv->cuda_path = strdup(cfg->cuda_library);
	else if (secure_getenv("XPU_CUDA_LIBRARY"))
		nv->cuda_path = strdup(secure_getenv("XPU_CUDA_LIBRARY"));
	else if (b->host->is_real)
		nv->cuda_path = strdup("libcuda.so.1");

	b->userdata = nv;
	r = nvidia_helper_sync(nv, args, 0, &reply, &error);
	if (r == -ENOENT || r == -EACCES || r == -ENOEXEC) {
		/* no helper to run: nothing of NVML can be known */
		if (asprintf(ret_reason, "%s (%s)", error, nv->helper) < 0)
			*ret_reason = NULL;
		free(error);
		goto fail;
	}
	if (r >= 0 && reply.has_error) {
		/* NVML answered that it cannot work here: no library, no driver, stuck init */
		*ret_reason = TAKE_PTR(reply.error);
		r = reply.error_errno;
		helper_reply_done(&reply);
		goto fail;
	}
	/* An answer, or a helper that failed this once: it is tried again with a back-off. */
	r = handle_answer(b, r, &reply, error);
	helper_reply_done(&reply);
	if (r < 0)
		goto fail;
	nv->rescan_pending = false; /* this answer is the first inventory's */
	log_info("NVML answers through %s: driver %s, %zu GPUs.", nv->helper,
		 nv->gpus.n ? device_get_property(nv->gpus.items[0], "driver_version") ?: "unknown"
			    : "unknown",
		 nv->gpus.n);
	nv->probe_answer = true;
	TAKE_PTR(nv);
	return 0;
oom:
	r = -ENOMEM;
fail:
	b->userdata = NULL;
	free(nv->helper);
	free(nv->nvml_path);
	free(nv->cuda_path);
	device_list_clear(&nv->gpus);
	free(nv->failure);
	pthread_mutex_destroy(&nv->lock);
	return r;
}

static void nvidia_close(struct xpu_backend *b)
{
	struct nvidia *nv = b->userdata;

	if (!nv)
		return;
	if (nv->run)
		helper_run_abandon(nv->run);
	if (nv->cuda_run)
		helper_run_abandon(nv->cuda_run);
	sd_event_source_disable_unref(nv->retry);
	safe_close(nv->news_fd);
	backend_updates_free(nv->updates, nv->n_updates);
	device_list_clear(&nv->gpus);
	for (size_t i = 0; i < nv->n_migs; i++)
		free(nv->migs[i].uuid);
	free(nv->migs);
	nvidia_sticky_clear(nv);
	if (nv->fresh) {
		helper_reply_done(nv->fresh);
		free(nv->fresh);
	}
	helper_reply_done(&nv->cuda);
	pthread_mutex_destroy(&nv->lock);
	free(nv->failure);
	free(nv->helper);
	free(nv->nvml_path);
	free(nv->cuda_path);
	free(nv);
	b->userdata = NULL;
}

const struct xpu_backend_ops nvidia_backend_ops = {
	.name = "nvidia",
	.priority = 10,
	.rules = &nvidia_device_rules,
	.probe = nvidia_probe,
	.enumerate = nvidia_enumerate,
	.refresh = nvidia_refresh,
	.watch = nvidia_watch,
	.dispatch = nvidia_dispatch,
	.kmsg_what = "XIDs", .kmsg = nvidia_kmsg,
	.apply_offer = nvidia_apply_offer,
	.reset = nvidia_reset,
	.close = nvidia_close,
};
