// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What the CUDA driver API adds to each GPU: the helper ("xpud-helper cuda LIBRARY") runs cuInit
 * once, after the first inventory (it costs ~200 ms and ~7 MiB, none of it xpud's), and its
 * facts are merged by the rescan this backend asks for when it is done.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/nvidia-internal.h"
#include "shared/log.h"
#include "shared/strv.h"

#define CUDA_TIMEOUT_USEC (30 * 1000000ULL)

/* What the CUDA helper found of @d's GPU, once it is done, as properties NVML did not give. 0
 * or -ENOMEM. */
int nvidia_add_cuda_facts(const struct nvidia *nv, struct xpu_device *d)
{
	if (!nv->cuda_done)
		return 0;
	for (size_t i = 0; i < nv->cuda.n_device_facts; i++) {
		const struct helper_facts *f = &nv->cuda.device_facts[i];

		if (!streq(f->id, d->id))
			continue;
		for (char **kv = f->facts; kv && kv[0] && kv[1]; kv += 2)
			if (!device_get_property(d, kv[0]) && device_set_property(d, kv[0], kv[1]) < 0)
				return -ENOMEM;
	}
	return 0;
}

static void on_cuda_done(struct helper_run *run, struct helper_result *res, void *userdata)
{
	struct nvidia *nv = userdata;
	_cleanup_free_ char *why = NULL;
	const char *init_ms = NULL;
	int r;

	nv->cuda_run = NULL;
	nv->cuda_done = true;
	if (res->error || res->timed_out || res->output_overflow || !WIFEXITED(res->status) ||
	    WEXITSTATUS(res->status) != 0) {
		why = helper_result_describe(res, "cuda helper", NULL);
		log_info("The CUDA driver API adds nothing: %s.", why ?: "out of memory");
		helper_result_done(res);
		return;
	}
	r = helper_reply_parse(res->output ?: "", res->output_len, &nv->cuda, &why);
	helper_result_done(res);
	if (r < 0) {
		log_info("The CUDA driver API adds nothing: cuda helper: bad answer: %s.",
			 why ?: "out of memory");
		return;
	}
	if (nv->cuda.has_error) {
		log_info("The CUDA driver API adds nothing: %s.", nv->cuda.error);
		return;
	}
	for (char **kv = nv->cuda.facts; kv && kv[0] && kv[1]; kv += 2)
		if (streq(kv[0], "init_ms"))
			init_ms = kv[1];
	log_info("CUDA driver API: %zu GPUs (cuInit took %s ms in the helper, after READY).",
		 nv->cuda.n_device_facts, init_ms ?: "?");
	nv->hb.rescan_pending = true; /* merge its facts */
	(void)helper_backend_news(&nv->hb);
}

/* Starts the CUDA helper once, on the loop. */
void nvidia_cuda_start(struct nvidia *nv)
{
	_cleanup_strv_free_ char **argv = NULL;
	struct helper_limits limits = {
		.timeout_usec = CUDA_TIMEOUT_USEC,
		.cpu_seconds = CUDA_TIMEOUT_USEC / 1000000ULL,
		.output_max = HELPER_OUTPUT_MAX,
		/* no address-space limit: CUDA reserves a large virtual range by design */
	};
	int r;

	if (!nv->cuda_path || nv->cuda_run || nv->cuda_done || !nv->hb.event)
		return;
	if (strv_extend(&argv, nv->hb.helper) < 0 || strv_extend(&argv, "cuda") < 0 ||
	    strv_extend(&argv, nv->cuda_path) < 0) {
		log_oom();
		return;
	}
	r = helper_run_start(nv->hb.event, argv, environ, &limits, on_cuda_done, nv, &nv->cuda_run);
	if (r < 0) {
		log_info_errno(r, "Cannot start the CUDA helper, the CUDA driver API adds nothing: %m");
		nv->cuda_run = NULL;
		nv->cuda_done = true;
	}
}
