// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The NVIDIA backend: NVML, loaded with dlopen at run time, describes every NVIDIA GPU better
 * than sysfs can (UUID, memory, compute capability, MIG, topology). Its records win the merge
 * over the generic PCI backend's for the same PCI function (priority 10).
 *
 * NVML calls can block (a GPU falling off the bus, a driver in trouble). None runs on the event
 * loop without a bound: each GPU is queried by its own short-lived thread, joined with a
 * deadline; a GPU whose thread misses it is reported unhealthy ("NVML did not answer") and is
 * not queried again until that thread has returned. Only plain data (struct xpu_device) leaves
 * the threads. NVML types never leave the backend's files (nvidia-internal.h).
 *
 * This file: the ops, loading NVML and closing it, the enumeration and the probe of one GPU
 * built from the queries (nvidia-query.c), and what events (nvidia-events.c) said of each GPU
 * until it is reset or gone. The CUDA probe is in nvidia-cuda.c, MIG layouts and resets in
 * nvidia-apply.c.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/nvidia.h"
#include "backends/nvidia-config.h"
#include "backends/nvidia-internal.h"
#include "shared/dlopen-util.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/strv.h"

#define NVML_LIBRARY "libnvidia-ml.so.1"

/* Records the PCI address NVML index @i answered with (see index_addr). */
static void set_index_addr(struct nvidia *nv, unsigned i, const char addr[static 13])
{
	pthread_mutex_lock(&nv->map_lock);
	memcpy(nv->index_addr[i], addr, 13);
	pthread_mutex_unlock(&nv->map_lock);
}

static const char *topology_name(int level, unsigned shared_nvlinks)
{
	static char nv[16];

	if (shared_nvlinks > 0) {
		snprintf(nv, sizeof(nv), "NV%u", shared_nvlinks);
		return nv;
	}
	switch (level) {
	case NVML_TOPOLOGY_INTERNAL:
		return "X";
	case NVML_TOPOLOGY_SINGLE:
		return "PIX";
	case NVML_TOPOLOGY_MULTIPLE:
		return "PXB";
	case NVML_TOPOLOGY_HOSTBRIDGE:
		return "PHB";
	case NVML_TOPOLOGY_NODE:
		return "NODE";
	case NVML_TOPOLOGY_SYSTEM:
		return "SYS";
	default:
		return NULL;
	}
}

/*
 * NVLink between two GPUs: links that end at the other GPU, or, on NVSwitch systems where every
 * link ends at a switch, the links both have into the same fabric (what nvidia-smi shows as
 * NV18 on an HGX board).
 */
static unsigned shared_nvlinks(const struct gpu_query *a, const struct gpu_query *b,
			       struct gpu_query **all, size_t n)
{
	unsigned direct = 0, a_switch = 0, b_switch = 0;

	STRV_FOREACH(r, a->nvlink_remotes) {
		bool is_gpu = false;

		if (streq(*r, b->dev->id)) {
			direct++;
			continue;
		}
		for (size_t k = 0; k < n; k++)
			is_gpu |= all[k]->dev && streq(all[k]->dev->id, *r);
		a_switch += !is_gpu;
	}
	if (direct)
		return direct;
	STRV_FOREACH(r, b->nvlink_remotes)
		if (strv_contains(a->nvlink_remotes, *r))
			b_switch++;
	return a_switch && b_switch ? MIN(a_switch, (unsigned)strv_length(b->nvlink_remotes)) : 0;
}

static const char *sticky_find(const struct nvidia *nv, const char *addr, const char *slice)
{
	for (size_t i = 0; i < nv->n_sticky; i++)
		if (streq(nv->sticky[i].addr, addr) && streq_ptr(nv->sticky[i].slice, slice))
			return nv->sticky[i].reason;
	return NULL;
}

/* Why the whole GPU @addr is unhealthy by an event, or NULL. */
const char *nvidia_sticky_reason(const struct nvidia *nv, const char *addr)
{
	return sticky_find(nv, addr, NULL);
}

/* What the event that made the whole GPU @addr unhealthy asked for. */
enum health_action nvidia_sticky_action(const struct nvidia *nv, const char *addr)
{
	for (size_t i = 0; i < nv->n_sticky; i++)
		if (streq(nv->sticky[i].addr, addr) && !nv->sticky[i].slice)
			return nv->sticky[i].action;
	return HEALTH_ACTION_IGNORE;
}

/* Marks @d unhealthy for the event its GPU had, if any. 0 or -ENOMEM. */
static int sticky_apply(const struct nvidia *nv, struct xpu_device *d)
{
	const char *why = nvidia_sticky_reason(nv, d->id);

	return why ? device_set_fault(d, nvidia_sticky_action(nv, d->id), "%s", why) : 0;
}

/* Records that @addr (or its MIG device @slice, when not NULL) needs @action (a reset or more);
 * the first reason stands. */
int nvidia_sticky_add(struct nvidia *nv, const char *addr, const char *slice, const char *reason,
		      enum health_action action)
{
	struct nvidia_sticky *st;

	if (sticky_find(nv, addr, slice) || nv->n_sticky >= ELEMENTSOF(nv->sticky))
		return 0;
	st = &nv->sticky[nv->n_sticky];
	*st = (struct nvidia_sticky){ .action = action };
	memcpy(st->addr, addr, 13);
	if (!(st->reason = strdup(reason)) || (slice && !(st->slice = strdup(slice)))) {
		free(st->reason);
		return -ENOMEM;
	}
	nv->n_sticky++;
	return 0;
}

static bool mig_present(const struct nvidia *nv, const char *addr, const char *uuid)
{
	for (size_t i = 0; i < nv->n_migs; i++)
		if (streq(nv->migs[i].addr, addr) && streq(nv->migs[i].ref.uuid, uuid))
			return true;
	return false;
}

/* Drops the sticky state of GPUs NVML no longer lists (reset, or gone) and of MIG devices
 * that no longer exist (destroyed, or their GPU reset). */
static void sticky_prune(struct nvidia *nv, char (*present)[13], size_t n_present)
{
	size_t k = 0;

	for (size_t i = 0; i < nv->n_sticky; i++) {
		struct nvidia_sticky *st = &nv->sticky[i];
		bool keep = false;

		for (size_t j = 0; j < n_present; j++)
			keep |= streq(present[j], st->addr);
		if (keep && st->slice)
			keep = mig_present(nv, st->addr, st->slice);
		if (keep) {
			nv->sticky[k++] = *st;
			continue;
		}
		if (st->slice)
			log_device_full_errno(LOG_NOTICE, 0, st->addr, st->addr,
					      "MIG device %s of GPU %s is gone; its event state (%s) "
					      "is cleared.",
					      st->slice, st->addr, st->reason);
		else
			log_device_full_errno(LOG_NOTICE, 0, st->addr, st->addr,
					      "GPU %s left NVML's list; its event state (%s) is "
					      "cleared.",
					      st->addr, st->reason);
		free(st->reason);
		free(st->slice);
	}
	nv->n_sticky = k;
}

/* Forgets what events said about GPU @addr and its MIG devices: it has been reset. */
static void sticky_forget(struct nvidia *nv, const char *addr)
{
	size_t k = 0;

	for (size_t i = 0; i < nv->n_sticky; i++) {
		if (!streq(nv->sticky[i].addr, addr)) {
			nv->sticky[k++] = nv->sticky[i];
			continue;
		}
		free(nv->sticky[i].reason);
		free(nv->sticky[i].slice);
	}
	nv->n_sticky = k;
}

/* Forgets the sticky state of the GPUs reset since the last look (main thread). */
static void sticky_take_resets(struct nvidia *nv)
{
	char addr[NVML_MAX_GPUS][13];
	size_t n;

	pthread_mutex_lock(&nv->map_lock);
	n = nv->n_reset;
	memcpy(addr, nv->reset_addr, n * sizeof(addr[0]));
	nv->n_reset = 0;
	pthread_mutex_unlock(&nv->map_lock);
	for (size_t i = 0; i < n; i++)
		sticky_forget(nv, addr[i]);
}

/* The MIG devices the queries found, kept for the events (main thread). */
static int remember_migs(struct nvidia *nv, struct gpu_query **ok, size_t n_ok)
{
	struct nvidia_mig *m = NULL;
	size_t n = 0, total = 0;

	for (size_t i = 0; i < n_ok; i++)
		total += ok[i]->n_migs;
	if (total && !(m = calloc(total, sizeof(*m))))
		return -ENOMEM;
	for (size_t i = 0; i < n_ok; i++)
		for (unsigned j = 0; j < ok[i]->n_migs; j++) {
			memcpy(m[n].addr, ok[i]->addr, 13);
			m[n++].ref = ok[i]->migs[j];
		}
	free(nv->migs);
	nv->migs = m;
	nv->n_migs = n;
	return 0;
}

/* The MIG device that GPU instance @gi / compute instance @ci of @addr is, or NULL. */
const char *nvidia_mig_uuid_of(const struct nvidia *nv, const char *addr, unsigned gi,
			       unsigned ci)
{
	for (size_t i = 0; i < nv->n_migs; i++)
		if (streq(nv->migs[i].addr, addr) && nv->migs[i].ref.gi == gi &&
		    nv->migs[i].ref.ci == ci)
			return nv->migs[i].ref.uuid;
	return NULL;
}

/* A MIG device an event made unhealthy carries that in its slice. */
static int mark_mig_slices(const struct nvidia *nv, struct xpu_device *d)
{
	for (size_t i = 0; i < d->n_partitions; i++) {
		struct xpu_slice *p = d->partitions[i];
		const char *why = sticky_find(nv, d->id, p->id);

		if (!why || p->health.state == XPU_HEALTH_UNHEALTHY)
			continue;
		p->health.state = XPU_HEALTH_UNHEALTHY;
		p->health.reason = strdup(why);
		if (!p->health.reason)
			return -ENOMEM;
	}
	return 0;
}

/* A minimal record that makes a known PCI function unhealthy for a reason of NVML's. */
static int unhealthy_record(const char *addr, const char *reason, struct device_list *list)
{
	struct xpu_device *d = device_new();

	if (!d)
		return -ENOMEM;
	if (!(d->id = strdup(addr)) || !(d->vendor = strdup("nvidia")) ||
	    device_set_unhealthy(d, "%s", reason) < 0) {
		device_free(d);
		return -ENOMEM;
	}
	d->kind = XPU_KIND_GPU;
	d->has_pci = true;
	memcpy(d->pci.address, addr, 13);
	return device_list_push(list, d);
}

/* A GPU whose query thread missed its deadline: what is known, and why it is unhealthy. */
static int stuck_record(const struct gpu_query *q, struct device_list *list)
{
	char reason[64];

	if (!atomic_load(&q->addr_known))
		return 0;
	snprintf(reason, sizeof(reason), "NVML did not answer within %llu ms",
		 NVML_QUERY_TIMEOUT_USEC / 1000);
	return unhealthy_record(q->addr, reason, list);
}

/*
 * The PCI address of NVML's GPU @index when NVML itself cannot say (a GPU that is lost answers
 * nothing): NVML numbers GPUs in PCI order, as the driver lists them in
 * /proc/driver/nvidia/gpus/. Returns 0 or -ENOENT.
 */
static int index_to_address(const struct xpu_host *host, unsigned index, char ret[static 13])
{
	_cleanup_(closedirp) DIR *d = NULL;
	_cleanup_strv_free_ char **addrs = NULL;
	struct dirent *de;

	if (host->proc_fd < 0 || opendir_at(host->proc_fd, "driver/nvidia/gpus", &d) < 0)
		return -ENOENT;
	while ((de = readdir(d))) {
		char canon[13];

		if (parse_pci_address(de->d_name, canon) >= 0 && strv_extend(&addrs, canon) < 0)
			return -ENOMEM;
	}
	strv_sort(addrs);
	if (!addrs || index >= strv_length(addrs))
		return -ENOENT;
	memcpy(ret, addrs[index], 13);
	return 0;
}

static int nvidia_enumerate(struct xpu_backend *b, struct device_list *list)
{
	struct nvidia *nv = b->userdata;
	struct gpu_query *qs[NVML_MAX_GPUS] = {}, *ok[NVML_MAX_GPUS];
	struct gpu_query *tq[NVML_MAX_GPUS] = {};
	unsigned count = 0;
	size_t n = 0, n_ok = 0;
	nvmlReturn_t r;
	int k = 0;

	nvidia_reap_stuck(nv);
	r = nv->api.count(&count);
	if (r != NVML_SUCCESS) {
		log_debug("nvmlDeviceGetCount_v2: %s", nvml_error(&nv->api, r));
		return nvml_to_errno(r);
	}
	count = MIN(count, NVML_MAX_GPUS);
	for (unsigned i = 0; i < count; i++) {
		if (nv->stuck[i]) {
			log_debug("NVML GPU %u has not answered a previous query yet, skipping.", i);
			k = stuck_record(nv->stuck[i], list);
			if (k < 0)
				goto out;
			continue;
		}
		qs[n] = calloc(1, sizeof(struct gpu_query));
		if (!qs[n]) {
			k = -ENOMEM;
			goto out;
		}
		atomic_init(&qs[n]->refs, 1);
		qs[n]->api = &nv->api;
		qs[n]->index = i;
		n++;
	}
	k = nvidia_run_queries(nv, qs, n);
	if (k < 0) {
		/* xpud's own trouble, not the GPUs': the last inventory stands (registry.c) */
		log_warning_errno(k, "Cannot start the threads that query NVML: %m");
		goto out;
	}
	k = 0;

	for (size_t i = 0; i < n; i++) {
		if (atomic_load(&qs[i]->addr_known))
			set_index_addr(nv, qs[i]->index, qs[i]->addr);
		if (atomic_load(&qs[i]->done) && qs[i]->dev) {
			ok[n_ok++] = qs[i];
		} else if (!atomic_load(&qs[i]->done)) {
			log_warning("NVML did not answer for GPU %u within %llu ms; it is not asked "
				    "again until it does, ignoring.",
				    qs[i]->index, NVML_QUERY_TIMEOUT_USEC / 1000);
			k = stuck_record(qs[i], list);
			if (k < 0)
				goto out;
		} else {
			char addr[13], reason[128];

			snprintf(reason, sizeof(reason), "NVML: %s",
				 nvml_error(&nv->api, qs[i]->error));
			if (index_to_address(b->host, qs[i]->index, addr) < 0) {
				log_warning("NVML GPU %u (%s) could not be matched to a PCI "
					    "function, ignoring.",
					    qs[i]->index, reason);
				continue;
			}
			log_warning("NVML GPU %u at %s: %s.", qs[i]->index, addr, reason);
			k = unhealthy_record(addr, reason, list);
			if (k < 0)
				goto out;
		}
	}

	/* Phase 2: topology among the GPUs that answered. */
	for (size_t i = 0; i < n_ok; i++) {
		tq[i] = calloc(1, sizeof(struct gpu_query));
		if (!tq[i]) {
			k = -ENOMEM;
			goto out;
		}
		atomic_init(&tq[i]->refs, 1);
		tq[i]->api = &nv->api;
		tq[i]->index = ok[i]->index;
		tq[i]->topology_phase = true;
		for (size_t j = 0; j < n_ok; j++)
			if (j != i)
				tq[i]->peer_index[tq[i]->n_peers++] = ok[j]->index;
	}
	k = nvidia_run_queries(nv, tq, n_ok);
	if (k < 0) {
		log_warning_errno(k, "Cannot start the threads that query NVML's topology: %m");
		goto out;
	}
	k = 0;
	for (size_t i = 0; i < n_ok; i++) {
		struct xpu_device *d = ok[i]->dev;
		size_t p = 0;

		for (size_t j = 0; j < n_ok; j++) {
			const char *name;
			char key[64];

			if (j == i)
				continue;
			name = topology_name(atomic_load(&tq[i]->done) ? tq[i]->peer_level[p] : -1,
					     shared_nvlinks(ok[i], ok[j], ok, n_ok));
			p++;
			if (!name)
				continue;
			snprintf(key, sizeof(key), "topology.%s", ok[j]->dev->id);
			if (device_set_property(d, key, name) < 0) {
				k = -ENOMEM;
				goto out;
			}
		}
		if (device_set_property(d, "driver_version", nv->driver_version) < 0) {
			k = -ENOMEM;
			goto out;
		}
		if (nv->cuda_version > 0) {
			char v[16];

			snprintf(v, sizeof(v), "%d.%d", nv->cuda_version / 1000,
				 (nv->cuda_version % 1000) / 10);
			(void)device_set_property(d, "cuda_version", v);
		}
	}
	/* Only now: the topology pass above reads every GPU's record. */
	sticky_take_resets(nv);
	for (size_t i = 0; i < n_ok; i++) {
		nvidia_register_events(nv, ok[i]->index, ok[i]->dev->id);
		if (nvidia_add_cuda_facts(nv, ok[i]->dev) < 0) {
			k = -ENOMEM;
			goto out;
		}
		if (sticky_apply(nv, ok[i]->dev) < 0 || mark_mig_slices(nv, ok[i]->dev) < 0) {
			k = -ENOMEM;
			goto out;
		}
		k = device_list_push(list, TAKE_PTR(ok[i]->dev));
		if (k < 0)
			goto out;
	}
	{
		char present[NVML_MAX_GPUS][13];
		size_t n_present = 0;

		for (size_t i = 0; i < list->n && n_present < NVML_MAX_GPUS; i++)
			if (list->items[i]->has_pci)
				memcpy(present[n_present++], list->items[i]->id, 13);
		if (remember_migs(nv, ok, n_ok) < 0) {
			k = -ENOMEM;
			goto out;
		}
		sticky_prune(nv, present, n_present);
	}
out:
	for (size_t i = 0; i < NVML_MAX_GPUS; i++) {
		nvidia_query_unref(qs[i]);
		nvidia_query_unref(tq[i]);
	}
	return k;
}

/* Which NVML index a PCI address had at the last enumeration: NVML orders GPUs by PCI address,
 * and so does this lookup, through the same calls, bounded by the same deadline. */
static int nvidia_refresh(struct xpu_backend *b, struct xpu_device *d)
{
	struct nvidia *nv = b->userdata;
	struct gpu_query *q;
	unsigned count = 0, hint = UINT_MAX;
	int k = -ENODEV, r;

	nvidia_reap_stuck(nv);
	sticky_take_resets(nv);
	if (nvidia_sticky_reason(nv, d->id)) {
		/* an event said it needs a reset; a probe that answers does not undo that */
		free(d->health.reason);
		d->health = (struct xpu_health){};
		return sticky_apply(nv, d);
	}
	for (size_t i = 0; i < NVML_MAX_GPUS; i++)
		if (nv->stuck[i] && atomic_load(&nv->stuck[i]->addr_known) &&
		    streq(nv->stuck[i]->addr, d->id))
			return device_set_unhealthy(d, "NVML did not answer within %llu ms",
						    NVML_QUERY_TIMEOUT_USEC / 1000);
	r = nv->api.count(&count);
	if (r != NVML_SUCCESS)
		/* NVML as a whole fails (the driver unloaded, or upgraded under us): none of its
		 * GPUs is usable, and the reason is NVML's, until it answers again */
		return device_set_unhealthy(d, "NVML: %s (nvmlDeviceGetCount_v2)",
					    nvml_error(&nv->api, r));
	count = MIN(count, NVML_MAX_GPUS);
	/* The index this GPU answered at last time first (one query, not one per GPU before it);
	 * the others only when the order has changed. */
	for (unsigned i = 0; i < count; i++)
		if (streq(nv->index_addr[i], d->id))
			hint = i;
	for (unsigned j = 0; j <= count && k == -ENODEV; j++) {
		unsigned i = j == 0 ? hint : j - 1;

		if (i >= count || (j > 0 && i == hint) || nv->stuck[i])
			continue;
		q = calloc(1, sizeof(*q));
		if (!q)
			return -ENOMEM;
		atomic_init(&q->refs, 1);
		q->api = &nv->api;
		q->index = i;
		r = nvidia_run_queries(nv, &q, 1);
		if (r < 0) {
			/* NVML was not asked: not a sign of the GPU's health, nor of its absence */
			nvidia_query_unref(q);
			return log_warning_errno(r, "Cannot start a thread to probe %s through NVML: %m",
						 d->id);
		}
		if (atomic_load(&q->addr_known))
			set_index_addr(nv, i, q->addr);
		if (!atomic_load(&q->addr_known) && atomic_load(&q->done)) {
			char addr[13];

			/* A GPU that cannot even say where it is: matched by NVML's order. */
			if (index_to_address(b->host, i, addr) >= 0 && streq(addr, d->id))
				k = device_set_unhealthy(d, "NVML: %s",
							 nvml_error(&nv->api, q->error));
		} else if (atomic_load(&q->addr_known) && streq(q->addr, d->id)) {
			if (!atomic_load(&q->done)) {
				k = device_set_unhealthy(d, "NVML did not answer within %llu ms",
							 NVML_QUERY_TIMEOUT_USEC / 1000);
			} else if (q->dev) {
				free(d->health.reason);
				d->health = q->dev->health;
				q->dev->health = (struct xpu_health){};
				k = 0;
			}
		}
		nvidia_query_unref(q);
	}
	return k;
}

struct init_call {
	nvmlReturn_t (*init)(void);
	nvmlReturn_t result;
	atomic_bool done;
	atomic_int refs;
};

static void *init_thread(void *userdata)
{
	struct init_call *c = userdata;

	c->result = c->init();
	atomic_store(&c->done, true);
	if (atomic_fetch_sub(&c->refs, 1) == 1)
		free(c);
	return NULL;
}

/*
 * nvmlInit_v2 with a bound: it talks to the driver, which can hang (a GPU in trouble, a driver
 * being reloaded), and xpud must still come up and serve what sysfs sees. NVML_ERROR_TIMEOUT
 * when it did not return within 10 s.
 */
static nvmlReturn_t nvml_init_bounded(const struct nvml *api)
{
	struct init_call *c = calloc(1, sizeof(*c));
	struct timespec deadline;
	nvmlReturn_t r;
	pthread_t t;

	if (!c)
		return NVML_ERROR_MEMORY;
	c->init = api->init;
	atomic_init(&c->refs, 2);
	if (pthread_create(&t, NULL, init_thread, c) != 0) {
		free(c);
		return api->init();
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	if (pthread_timedjoin_np(t, NULL, &deadline) != 0) {
		pthread_detach(t);
		if (atomic_fetch_sub(&c->refs, 1) == 1)
			free(c);
		return NVML_ERROR_TIMEOUT;
	}
	r = c->result;
	free(c);
	return r;
}

static int nvidia_probe(struct xpu_backend *b, char **ret_reason)
{
	_cleanup_free_ struct nvidia *nv = NULL;
	const char *path = NULL;
	char *reason = NULL;
	nvmlReturn_t r;
	int k;

	nv = calloc(1, sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	const struct dlsym_spec syms[] = {
		{ (void **)&nv->api.init, "nvmlInit_v2" },
		{ (void **)&nv->api.shutdown, "nvmlShutdown" },
		{ (void **)&nv->api.error_string, "nvmlErrorString" },
		{ (void **)&nv->api.driver_version, "nvmlSystemGetDriverVersion", true },
		{ (void **)&nv->api.cuda_version, "nvmlSystemGetCudaDriverVersion_v2", true },
		{ (void **)&nv->api.count, "nvmlDeviceGetCount_v2" },
		{ (void **)&nv->api.handle, "nvmlDeviceGetHandleByIndex_v2" },
		{ (void **)&nv->api.uuid, "nvmlDeviceGetUUID" },
		{ (void **)&nv->api.name, "nvmlDeviceGetName" },
		{ (void **)&nv->api.pci, "nvmlDeviceGetPciInfo_v3" },
		{ (void **)&nv->api.memory, "nvmlDeviceGetMemoryInfo" },
		{ (void **)&nv->api.compute_capability, "nvmlDeviceGetCudaComputeCapability", true },
		{ (void **)&nv->api.serial, "nvmlDeviceGetSerial", true },
		{ (void **)&nv->api.minor, "nvmlDeviceGetMinorNumber", true },
		{ (void **)&nv->api.numa, "nvmlDeviceGetNumaNodeId", true },
		{ (void **)&nv->api.power, "nvmlDeviceGetPowerUsage", true },
		{ (void **)&nv->api.temperature, "nvmlDeviceGetTemperature", true },
		{ (void **)&nv->api.mig_mode, "nvmlDeviceGetMigMode", true },
		{ (void **)&nv->api.gi_profile, "nvmlDeviceGetGpuInstanceProfileInfo", true },
		{ (void **)&nv->api.gi_remaining, "nvmlDeviceGetGpuInstanceRemainingCapacity",
		  true },
		{ (void **)&nv->api.topology, "nvmlDeviceGetTopologyCommonAncestor", true },
		{ (void **)&nv->api.nvlink_state, "nvmlDeviceGetNvLinkState", true },
		{ (void **)&nv->api.nvlink_remote, "nvmlDeviceGetNvLinkRemotePciInfo_v2", true },
		{ (void **)&nv->api.mig_count, "nvmlDeviceGetMaxMigDeviceCount", true },
		{ (void **)&nv->api.mig_handle, "nvmlDeviceGetMigDeviceHandleByIndex", true },
		{ (void **)&nv->api.gi_id, "nvmlDeviceGetGpuInstanceId", true },
		{ (void **)&nv->api.ci_id, "nvmlDeviceGetComputeInstanceId", true },
		{ (void **)&nv->api.attributes, "nvmlDeviceGetAttributes_v2", true },
		{ (void **)&nv->api.event_set_create, "nvmlEventSetCreate", true },
		{ (void **)&nv->api.event_types, "nvmlDeviceGetSupportedEventTypes", true },
		{ (void **)&nv->api.event_register, "nvmlDeviceRegisterEvents", true },
		{ (void **)&nv->api.event_wait, "nvmlEventSetWait_v2", true },
		{ (void **)&nv->api.event_set_free, "nvmlEventSetFree", true },
		/* Before a reset: whether processes use the GPU. */
		{ (void **)&nv->api.compute_processes, "nvmlDeviceGetComputeRunningProcesses_v3",
		  true },
		{ (void **)&nv->api.graphics_processes, "nvmlDeviceGetGraphicsRunningProcesses_v3",
		  true },
		/* Applying MIG layouts: any one missing turns that feature off, nothing else. */
		{ (void **)&nv->api.mig.error_string, "nvmlErrorString" },
		{ (void **)&nv->api.mig.mig_mode, "nvmlDeviceGetMigMode", true },
		{ (void **)&nv->api.mig.set_mig_mode, "nvmlDeviceSetMigMode", true },
		{ (void **)&nv->api.mig.gi_profile, "nvmlDeviceGetGpuInstanceProfileInfo", true },
		{ (void **)&nv->api.mig.gpu_instances, "nvmlDeviceGetGpuInstances", true },
		{ (void **)&nv->api.mig.create_gi, "nvmlDeviceCreateGpuInstance", true },
		{ (void **)&nv->api.mig.destroy_gi, "nvmlGpuInstanceDestroy", true },
		{ (void **)&nv->api.mig.ci_profile, "nvmlGpuInstanceGetComputeInstanceProfileInfo",
		  true },
		{ (void **)&nv->api.mig.compute_instances, "nvmlGpuInstanceGetComputeInstances",
		  true },
		{ (void **)&nv->api.mig.create_ci, "nvmlGpuInstanceCreateComputeInstance", true },
		{ (void **)&nv->api.mig.destroy_ci, "nvmlComputeInstanceDestroy", true },
	};

	/* Configuration, then the environment (tests), then the loader's search path. A fake
	 * host root never gets the real host's NVML: its GPUs would not be the root's. */
	if (nvidia_config_get(b->config)->nvml_library)
		path = nvidia_config_get(b->config)->nvml_library;
	else if (secure_getenv("XPU_NVML_LIBRARY"))
		path = secure_getenv("XPU_NVML_LIBRARY");
	else if (b->host->is_real)
		path = NVML_LIBRARY;
	else
		return (*ret_reason = strdup("a simulated host root uses no NVML unless "
					     "XPU_NVML_LIBRARY names one")) ? -ENOENT : -ENOMEM;

	k = dlopen_many(path, syms, ELEMENTSOF(syms), &nv->api.dl, &reason);
	if (k < 0) {
		*ret_reason = reason;
		return k;
	}
	r = nvml_init_bounded(&nv->api);
	if (r == NVML_ERROR_TIMEOUT) {
		/* Stuck in the driver: leave the library loaded for the thread still in it. */
		*ret_reason = strdup("nvmlInit_v2 did not return within 10 s");
		return -ETIMEDOUT;
	}
	if (r != NVML_SUCCESS) {
		if (asprintf(ret_reason, "nvmlInit_v2 failed: %s", nvml_error(&nv->api, r)) < 0)
			*ret_reason = NULL;
		dlclose(nv->api.dl);
		return nvml_to_errno(r) ?: -EIO;
	}
	if (!nv->api.driver_version ||
	    nv->api.driver_version(nv->driver_version, sizeof(nv->driver_version)) !=
		    NVML_SUCCESS ||
	    !string_is_printable(nv->driver_version))
		strcpy(nv->driver_version, "unknown");
	if (!nv->api.cuda_version || nv->api.cuda_version(&nv->cuda_version) != NVML_SUCCESS)
		nv->cuda_version = 0;
	nv->host = b->host;
	nv->pipe[0] = nv->pipe[1] = -EBADF;
	pthread_mutex_init(&nv->map_lock, NULL);
	if (pipe2(nv->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		nv->pipe[0] = nv->pipe[1] = -EBADF;
	/* The CUDA driver API, like NVML: configuration, environment, the host's own. */
	if (nvidia_config_get(b->config)->cuda_library)
		nv->cuda_path = strdup(nvidia_config_get(b->config)->cuda_library);
	else if (secure_getenv("XPU_CUDA_LIBRARY"))
		nv->cuda_path = strdup(secure_getenv("XPU_CUDA_LIBRARY"));
	else if (b->host->is_real)
		nv->cuda_path = strdup("libcuda.so.1");
	if (nv->pipe[0] >= 0 && nv->api.event_set_create && nv->api.event_types &&
	    nv->api.event_register && nv->api.event_wait && nv->api.event_set_free) {
		r = nv->api.event_set_create(&nv->set);
		nv->have_set = r == NVML_SUCCESS;
		if (!nv->have_set)
			log_warning("Cannot create an NVML event set (%s); GPUs are probed only.",
				    nvml_error(&nv->api, r));
	}
	log_info("NVML loaded from %s, driver %s.", path, nv->driver_version);
	b->userdata = TAKE_PTR(nv);
	return 0;
}

/* State that threads stuck in NVML still use when xpud stops: kept, and reachable. */
static struct nvidia *nvidia_abandoned __attribute__((used));

static void nvidia_close(struct xpu_backend *b)
{
	struct nvidia *nv = b->userdata;

	if (!nv)
		return;
	if (nv->event_thread_started) {
		struct timespec deadline;

		atomic_store(&nv->stop, true);
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 2; /* the wait returns every NVML_EVENT_WAIT_MS */
		if (pthread_timedjoin_np(nv->event_thread, NULL, &deadline) == 0) {
			nv->event_thread_started = false;
		} else {
			pthread_detach(nv->event_thread);
			atomic_fetch_add(&nv->outstanding, 1); /* keep NVML loaded for it */
		}
	}
	if (nv->cuda_thread_started) {
		struct timespec deadline;

		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 2;
		if (pthread_timedjoin_np(nv->cuda_thread, NULL, &deadline) != 0) {
			pthread_detach(nv->cuda_thread);
			atomic_fetch_add(&nv->outstanding, 1); /* keep our state for it */
		}
	}
	nvidia_reap_stuck(nv);
	/* A thread still inside NVML must not see the library vanish under it: then leave both
	 * loaded (the process is ending anyway). */
	if (atomic_load(&nv->outstanding) > 0) {
		log_warning("%d NVML queries are still running; not unloading NVML.",
			    atomic_load(&nv->outstanding));
		nvidia_abandoned = nv;
		b->userdata = NULL;
		return;
	}
	for (size_t i = 0; i < NVML_MAX_GPUS; i++)
		nvidia_query_unref(nv->stuck[i]);
	for (size_t i = 0; i < nv->n_sticky; i++) {
		free(nv->sticky[i].reason);
		free(nv->sticky[i].slice);
	}
	free(nv->migs);
	if (nv->have_set)
		nv->api.event_set_free(nv->set);
	safe_close(nv->pipe[0]);
	safe_close(nv->pipe[1]);
	pthread_mutex_destroy(&nv->map_lock);
	free(nv->cuda_path);
	free(nv->cuda_error);
	nv->api.shutdown();
	dlclose(nv->api.dl);
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
