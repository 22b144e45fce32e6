// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The NVIDIA backend's ops that change a GPU: applying a MIG layout and resetting the GPU's PCI
 * function. Both run on a thread off the loop (services/offloop.c), and each asks NVML through
 * the helper, blocking that thread until the helper answers or its deadline passes. After a
 * change, the thread asks the helper for the new inventory too, so that the rescan that follows
 * already sees what the change made.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/nvidia-internal.h"
#include "backends/pci.h"
#include "backends/vendor-rules.h"
#include "shared/log.h"
#include "shared/strv.h"


/* The inventory after a change, for the loop's next enumeration. */
static void refresh_after_change(struct nvidia *nv)
{
	static char *const args[] = { (char *)"enumerate", NULL };
	struct helper_reply reply = {};
	_cleanup_free_ char *error = NULL;

	if (helper_backend_sync(&nv->hb, args, 0, &reply, &error) < 0) {
		log_debug("No inventory after the change (%s); the next run has it.",
			  error ?: "out of memory");
		return;
	}
	nvidia_offer_fresh(nv, &reply);
	(void)helper_backend_news(&nv->hb);
}

int nvidia_apply_offer(struct xpu_backend *b, const struct xpu_device *d, const struct offer *o,
		       char **ret_error)
{
	struct nvidia *nv = b->userdata;
	_cleanup_strv_free_ char **args = NULL;
	struct helper_reply reply = {};
	char *error = NULL;
	int r;

	if (o->kind != OFFER_PARTITIONS || o->scheme != &nvidia_mig_scheme)
		return -EOPNOTSUPP;
	if (strv_extend(&args, "apply") < 0 || strv_extend(&args, d->id) < 0 ||
	    (o->enable && strv_extend(&args, "--enable") < 0))
		return -ENOMEM;
	STRV_FOREACH(p, o->layout)
		if (strv_extend(&args, *p) < 0)
			return -ENOMEM;
	/* creating seven instances takes a few seconds on an H100: twice a query's time */
	r = helper_backend_sync(&nv->hb, args, 2 * nv->hb.limits.timeout_usec, &reply, &error);
	if (r < 0) {
		*ret_error = error;
		refresh_after_change(nv);
		return r == -ENOMEM ? r : -EIO;
	}
	if (reply.has_error) {
		*ret_error = TAKE_PTR(reply.error);
		r = reply.error_errno;
	} else if (!reply.has_result) {
		*ret_error = strdup("nvml helper: no result in its answer");
		r = -EIO;
	} else {
		r = reply.result_errno;
		if (r < 0) {
			log_debug("Applying a MIG layout to %s failed: %s", d->id,
				  reply.result_error ?: "no reason");
			*ret_error = TAKE_PTR(reply.result_error);
		}
	}
	helper_reply_done(&reply);
	if (r != -EOPNOTSUPP)
		refresh_after_change(nv);
	return r;
}

/* How many processes NVML lists on the GPU: > 0, 0, or -errno when it cannot tell. */
static int processes_on(struct nvidia *nv, const struct xpu_device *d)
{
	char addr[13], *args[] = { (char *)"processes", addr, NULL };
	struct helper_reply reply = {};
	_cleanup_free_ char *error = NULL;
	int r;

	memcpy(addr, d->pci.address, sizeof(addr));
	r = helper_backend_sync(&nv->hb, args, 0, &reply, &error);
	if (r < 0) {
		log_debug("Cannot ask NVML for the processes on %s: %s", d->id,
			  error ?: "out of memory");
		return r;
	}
	if (!reply.has_result || reply.has_error)
		r = reply.has_error ? reply.error_errno : -EIO;
	else
		r = reply.result_errno ?: (int)MIN(reply.result_value, 65536LL);
	helper_reply_done(&reply);
	return r;
}

/*
 * NVML has no public whole-GPU reset to rely on: the GPU's PCI function is reset through sysfs,
 * like any other PCI function, but only when NVML lists no process on it. A GPU NVML cannot ask
 * (fallen off the bus, a library without the process lists, a helper that fails) goes by xpud's
 * allocations alone. A reset clears what the kernel log said about the GPU: its probes and the
 * rescan after the reset say how it is now.
 */
int nvidia_reset(struct xpu_backend *b, const struct xpu_device *d, char **ret_reason)
{
	struct nvidia *nv = b->userdata;
	int r;

	if (!d->has_pci) {
		if (asprintf(ret_reason, "%s is not a PCI function", d->id) < 0)
			return -ENOMEM;
		return -EOPNOTSUPP;
	}
	r = processes_on(nv, d);
	if (r == -ENOMEM)
		return r;
	if (r > 0) {
		if (asprintf(ret_reason, "NVML lists %d process%s using GPU %s", r,
			     r == 1 ? "" : "es", d->id) < 0)
			return -ENOMEM;
		return -EBUSY;
	}
	if (r < 0)
		log_debug_errno(r, "Cannot tell whether processes use GPU %s (%m); going by xpud's "
				   "allocations.",
				d->id);
	r = pci_reset_function(nv->host, d->pci.address, ret_reason);
	if (r < 0)
		return r;
	refresh_after_change(nv);
	/* what the log said of it is over; the loop forgets it at its next look (only now: the
	 * reset is reported first, then the probes that answer) */
	pthread_mutex_lock(&nv->lock);
	if (nv->n_reset < ELEMENTSOF(nv->reset_addr))
		snprintf(nv->reset_addr[nv->n_reset++], 13, "%s", d->id);
	pthread_mutex_unlock(&nv->lock);
	return 0;
}
