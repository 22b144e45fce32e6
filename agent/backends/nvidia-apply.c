// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The NVIDIA backend's ops that change a GPU: applying a MIG layout (nvidia-mig.c makes the
 * calls) and resetting the GPU's PCI function. Each asks NVML on a thread of its own with a
 * deadline, since the driver can hang; a thread that misses it keeps NVML loaded until it returns.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/nvidia-internal.h"
#include "backends/pci.h"
#include "backends/vendor-rules.h"
#include "shared/bounded.h"
#include "shared/log.h"

/* Creating seven instances takes a few seconds on an H100; a driver stuck longer is reported. */
#define NVML_APPLY_TIMEOUT_SEC 60

/* One apply, shared by its thread and the caller; the last of the two frees it. */
struct apply_call {
	atomic_int refs;
	atomic_int *outstanding;
	const struct nvml *api;
	char addr[13];
	unsigned hint; /* the NVML index the GPU had at the last enumeration, or UINT_MAX */
	struct offer offer;
	int result;
	char *error;
};

static void apply_call_unref(struct apply_call *c)
{
	if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	offer_done(&c->offer);
	free(c->error);
	free(c);
}

/* The handle of the GPU at @addr: the index it had last time first, then every index. */
static int handle_by_address(const struct nvml *api, const char *addr, unsigned hint,
			     nvmlDevice_t *ret)
{
	unsigned count = 0;

	if (api->count(&count) != NVML_SUCCESS)
		return -EIO;
	count = MIN(count, NVML_MAX_GPUS);
	for (unsigned j = 0; j <= count; j++) {
		unsigned i = j == 0 ? hint : j - 1;
		nvmlPciInfo_t pci = {};
		nvmlDevice_t h;
		char a[13];

		if (i >= count || (j > 0 && i == hint))
			continue;
		if (api->handle(i, &h) == NVML_SUCCESS && api->pci(h, &pci) == NVML_SUCCESS &&
		    nvml_bus_id(&pci, a) >= 0 && streq(a, addr)) {
			*ret = h;
			return 0;
		}
	}
	return -ENODEV;
}

static void *apply_thread(void *userdata)
{
	struct apply_call *c = userdata;
	nvmlDevice_t h;

	c->result = handle_by_address(c->api, c->addr, c->hint, &h);
	if (c->result < 0)
		c->error = strdup("NVML does not list this GPU");
	else
		c->result = nvidia_mig_apply(&c->api->mig, h, &c->offer, &c->error);
	atomic_fetch_sub(c->outstanding, 1);
	apply_call_unref(c);
	return NULL;
}

/*
 * Applies a MIG offer on a thread of its own, waited for with a deadline: creating and
 * destroying instances talks to the driver, which can hang. A thread that misses it keeps NVML
 * loaded (outstanding) and finishes on its own; the next rescan shows what it did.
 */
int nvidia_apply_offer(struct xpu_backend *b, const struct xpu_device *d, const struct offer *o,
		       char **ret_error)
{
	struct nvidia *nv = b->userdata;
	struct apply_call *c;
	struct timespec deadline;
	const char *missing;
	pthread_t t;
	int r;

	if (o->kind != OFFER_PARTITIONS || o->scheme != &nvidia_mig_scheme)
		return -EOPNOTSUPP;
	missing = nvidia_mig_missing(&nv->api.mig);
	if (missing) {
		if (asprintf(ret_error, "the NVML library has no %s: MIG layouts cannot be applied",
			     missing) < 0)
			*ret_error = NULL;
		return -EOPNOTSUPP;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	atomic_init(&c->refs, 2);
	c->outstanding = &nv->outstanding;
	c->api = &nv->api;
	c->hint = UINT_MAX;
	snprintf(c->addr, sizeof(c->addr), "%s", d->id);
	pthread_mutex_lock(&nv->map_lock);
	for (unsigned i = 0; i < NVML_MAX_GPUS; i++)
		if (streq(nv->index_addr[i], c->addr))
			c->hint = i;
	pthread_mutex_unlock(&nv->map_lock);
	if (offer_copy(o, &c->offer) < 0) {
		free(c);
		return -ENOMEM;
	}
	atomic_fetch_add(&nv->outstanding, 1);
	if (pthread_create(&t, NULL, apply_thread, c) != 0) {
		atomic_fetch_sub(&nv->outstanding, 1);
		atomic_store(&c->refs, 1);
		apply_call_unref(c);
		return -EAGAIN;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += NVML_APPLY_TIMEOUT_SEC;
	if (pthread_timedjoin_np(t, NULL, &deadline) != 0) {
		pthread_detach(t);
		apply_call_unref(c);
		if (asprintf(ret_error, "NVML did not finish applying the MIG layout within %d s",
			     NVML_APPLY_TIMEOUT_SEC) < 0)
			*ret_error = NULL;
		return -ETIMEDOUT;
	}
	r = c->result;
	if (r < 0) {
		log_debug("Applying a MIG layout to %s failed: %s", c->addr,
			  c->error ?: "no reason");
		*ret_error = TAKE_PTR(c->error);
	}
	apply_call_unref(c);
	return r;
}

/* Whether processes use a GPU, asked on a thread of its own (NVML can hang). */
struct process_check {
	const struct nvml *api;
	atomic_int *outstanding; /* the backend's: NVML stays loaded while this runs */
	char addr[13];
	unsigned hint;
};

/* How many processes NVML lists on the GPU: compute and graphics contexts. -ENODEV when NVML does
 * not list the GPU, -EOPNOTSUPP when the library has no process lists, NVML's error otherwise. */
static int process_check_run(void *data)
{
	struct process_check *c = data;
	nvmlReturn_t (*const lists[])(nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *) = {
		c->api->compute_processes,
		c->api->graphics_processes,
	};
	nvmlDevice_t h;
	int total = 0, r;

	r = handle_by_address(c->api, c->addr, c->hint, &h);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ELEMENTSOF(lists); i++) {
		unsigned int n = 0;
		nvmlReturn_t k;

		if (!lists[i])
			return -EOPNOTSUPP;
		k = lists[i](h, &n, NULL);
		if (k != NVML_SUCCESS && k != NVML_ERROR_INSUFFICIENT_SIZE)
			return nvml_to_errno(k) ?: -EIO;
		total += k == NVML_SUCCESS ? 0 : (int)MIN(n, 65536u);
	}
	return total;
}

static void process_check_free(void *data)
{
	struct process_check *c = data;

	atomic_fetch_sub(c->outstanding, 1);
	free(c);
}

/*
 * NVML has no public whole-GPU reset to rely on: the GPU's PCI function is reset through sysfs,
 * like any other PCI function, but only
 * when NVML lists no process on it. A GPU NVML cannot ask (fallen off the bus, a library without
 * the process lists) goes by xpud's allocations alone. A reset clears what events said about the
 * GPU: its probes and the rescan after the reset say how it is now.
 */
int nvidia_reset(struct xpu_backend *b, const struct xpu_device *d, char **ret_reason)
{
	struct nvidia *nv = b->userdata;
	struct process_check *c;
	int r;

	if (!d->has_pci) {
		if (asprintf(ret_reason, "%s is not a PCI function", d->id) < 0)
			return -ENOMEM;
		return -EOPNOTSUPP;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->api = &nv->api;
	c->outstanding = &nv->outstanding;
	c->hint = UINT_MAX;
	memcpy(c->addr, d->pci.address, 13);
	pthread_mutex_lock(&nv->map_lock);
	for (unsigned i = 0; i < NVML_MAX_GPUS; i++)
		if (streq(nv->index_addr[i], c->addr))
			c->hint = i;
	pthread_mutex_unlock(&nv->map_lock);
	atomic_fetch_add(&nv->outstanding, 1);
	r = bounded_call(process_check_run, c, process_check_free, NVML_QUERY_TIMEOUT_USEC);
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
	/* what events said of it is over; the main thread forgets it at its next look */
	pthread_mutex_lock(&nv->map_lock);
	if (nv->n_reset < NVML_MAX_GPUS)
		snprintf(nv->reset_addr[nv->n_reset++], 13, "%s", d->id);
	pthread_mutex_unlock(&nv->map_lock);
	return 0;
}
