// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The NVIDIA backend: NVML describes every NVIDIA GPU better than sysfs can (UUID, memory,
 * compute capability, MIG, topology). Its records win the merge over the generic PCI backend's
 * for the same PCI function (priority 10).
 *
 * xpud never loads NVML: the helper process does ("xpud-helper nvml LIBRARY enumerate",
 * agent/runtimes/), one run per request, with a deadline, its own resource limits and an output
 * limit (shared/helper-run.h), and answers in the helper protocol (core/helper-proto.h). The runs
 * on the loop, the last good answer and what a failed run means are helper-backend.c's, as for
 * every backend with a helper: a run that fails leaves the last good answer standing; after
 * helper-failures failures in a row, or once the last good answer is older than helper-max-age,
 * the GPUs are unhealthy with the reason ("nvml helper: crashed (SIGSEGV)"), and runs go on with
 * a back-off until one works. NVML's own error (the driver went away) counts at once and is
 * asked again without back-off. Here: what NVML's answer holds besides the GPUs (the MIG
 * devices), and what the GPUs get besides it (CUDA's facts, the kernel log's XIDs). Threads off
 * the loop (applies and resets) run the helper blocking (nvidia-apply.c). XIDs come from the
 * kernel log (nvidia-kmsg-events.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/nvidia-config.h"
#include "backends/nvidia-internal.h"
#include "backends/nvidia.h"
#include "backends/samples.h"
#include "shared/clock.h"
#include "shared/log.h"

#define NVML_LIBRARY "libnvidia-ml.so.1"

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

/*
 * The helper answers the GPUs' samples (utilisation, ECC counts) at every run; they change all
 * the time, and a changed answer is a rescan. They are kept only while xpud serves metrics, and
 * taken at most once per metrics interval: in between, the GPUs keep the last ones taken.
 */
static int take_samples(struct xpu_backend *b, struct helper_reply *r)
{
	struct nvidia *nv = b->userdata;
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	bool wanted = samples_wanted(b->config);

	if (wanted && samples_due(b->config, nv->sampled_usec, now)) {
		nv->sampled_usec = now;
		return 0;
	}
	for (size_t i = 0; i < r->devices.n; i++) {
		struct xpu_device *d = r->devices.items[i];

		if (samples_copy(d, wanted ? device_list_find(&nv->gpus, d->id) : NULL) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* What an answer says besides the GPUs: the MIG devices' instance ids. 0 or -ENOMEM. */
static int take_migs(struct xpu_backend *b, struct helper_reply *r)
{
	struct nvidia *nv = b->userdata;
	struct nvidia_mig *migs = NULL;

	if (take_samples(b, r) < 0)
		return -ENOMEM;

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
	return 0;
}

/* What the kernel log said of GPUs that left the answer is over. */
static int taken(struct xpu_backend *b, const struct helper_reply *r)
{
	nvidia_sticky_prune(b->userdata);
	return 0;
}

/* What an enumeration's copy of a GPU gets besides NVML's record. 0 or -ENOMEM. */
static int complete(struct xpu_backend *b, struct xpu_device *d)
{
	struct nvidia *nv = b->userdata;

	return nvidia_add_cuda_facts(nv, d) < 0 || nvidia_sticky_apply(nv, d) < 0 ? -ENOMEM : 0;
}

static const struct helper_backend_ops nvml_helper_ops = {
	.runtime = "nvml",
	.what = "nvml helper",
	.name = "NVML",
	.devices_word = "GPUs",
	.kept = "the GPUs keep NVML's last answer",
	.none = "no answer from NVML yet",
	/* NVML's own error (the driver went away) is cheap to ask again */
	.definite_at_once = true,
	/* NVML that cannot work at start-up (no library, no driver, a stuck init) is absent */
	.probe_error_unavailable = true,
	.take = take_migs,
	.taken = taken,
	.complete = complete,
};

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
	r = fresh->has_error ? 0 : helper_backend_take(&nv->hb, fresh);
	nv->hb.rescan_pending = false; /* this enumeration is the rescan */
	helper_reply_done(fresh);
	free(fresh);
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
	return helper_backend_enumerate(&nv->hb, list);
}

static int nvidia_refresh(struct xpu_backend *b, struct xpu_device *d)
{
	struct nvidia *nv = b->userdata;
	int r;

	/* (a reset's end is taken by the enumeration the reset asks for, not here: its probes come
	 * after the reset was reported) */
	r = take_fresh(b);
	if (r < 0)
		return r;
	r = helper_backend_refresh(&nv->hb, d);
	if (r < 0)
		return r;
	if (nvidia_sticky_reason(nv, d->id))
		/* the log said it needs a reset; an answer from NVML does not undo that */
		return nvidia_sticky_apply(nv, d);
	return helper_backend_health(&nv->hb, d);
}

static int nvidia_watch(struct xpu_backend *b)
{
	struct nvidia *nv = b->userdata;
	int fd = helper_backend_watch(&nv->hb);

	if (fd >= 0)
		nvidia_cuda_start(nv);
	return fd;
}

static int nvidia_dispatch(struct xpu_backend *b, struct backend_update **ret_updates,
			   size_t *ret_n, bool *ret_rescan)
{
	struct nvidia *nv = b->userdata;

	helper_backend_dispatch(&nv->hb, ret_updates, ret_n, ret_rescan);
	return 0;
}

static void nvidia_close(struct xpu_backend *b)
{
	struct nvidia *nv = b->userdata;

	if (!nv)
		return;
	helper_backend_done(&nv->hb);
	if (nv->cuda_run)
		helper_run_abandon(nv->cuda_run);
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
	free(nv->cuda_path);
	free(nv);
	b->userdata = NULL;
}

static int nvidia_probe(struct xpu_backend *b, char **ret_reason)
{
	const struct nvidia_config *cfg = nvidia_config_get(b->config);
	const struct helper_backend_settings settings = {
		.failures = cfg->helper_failures,
		.max_age_usec = cfg->helper_max_age_usec,
		.timeout_usec = cfg->helper_timeout_usec,
		.memory = cfg->helper_memory,
	};
	struct nvidia *nv;
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
	pthread_mutex_init(&nv->lock, NULL);
	b->userdata = nv;
	/* The CUDA driver API, like NVML: configuration, environment, the host's own. */
	if (cfg->cuda_library)
		nv->cuda_path = strdup(cfg->cuda_library);
	else if (secure_getenv("XPU_CUDA_LIBRARY"))
		nv->cuda_path = strdup(secure_getenv("XPU_CUDA_LIBRARY"));
	else if (b->host->is_real)
		nv->cuda_path = strdup("libcuda.so.1");

	r = helper_backend_probe(&nv->hb, &nvml_helper_ops, b, &nv->gpus, path, &settings,
				 ret_reason);
	if (r < 0) {
		nvidia_close(b);
		return r;
	}
	log_info("NVML answers through %s: driver %s, %zu GPUs.", nv->hb.helper,
		 nv->gpus.n ? device_get_property(nv->gpus.items[0], "driver_version") ?: "unknown"
			    : "unknown",
		 nv->gpus.n);
	return 0;
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
