// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * NVML in the helper process: loading it with a bound on nvmlInit_v2, and the enumeration of
 * every GPU it lists, built from the per-GPU queries (nvml-query.c), written as helper protocol
 * messages (core/helper-proto.h). A GPU NVML cannot describe is written as a minimal record that
 * says why it is unhealthy, when its PCI function can be told.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/helper-proto.h"
#include "runtimes/nvml.h"
#include "shared/dlopen-util.h"
#include "shared/fileio.h"
#include "shared/strv.h"

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

/* A minimal record that makes a known PCI function unhealthy for a reason of NVML's. */
static int emit_unhealthy(FILE *out, const char *addr, const char *reason)
{
	_cleanup_(device_freep) struct xpu_device *d = device_new();

	if (!d)
		return -ENOMEM;
	if (!(d->id = strdup(addr)) || !(d->vendor = strdup("nvidia")) ||
	    device_set_unhealthy(d, "%s", reason) < 0)
		return -ENOMEM;
	d->kind = XPU_KIND_GPU;
	d->has_pci = true;
	memcpy(d->pci.address, addr, 13);
	return helper_emit(out, helper_msg_device(d));
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

static struct gpu_query *query_new(const struct nvml_session *s, unsigned index)
{
	struct gpu_query *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	atomic_init(&q->refs, 1);
	q->api = &s->api;
	q->index = index;
	return q;
}

/* The topology of every GPU that answered to every other, and the facts of the driver. */
static int add_topology(struct nvml_session *s, struct gpu_query **ok, size_t n_ok)
{
	struct gpu_query *tq[NVML_MAX_GPUS] = {};
	int k = 0;

	for (size_t i = 0; i < n_ok; i++) {
		tq[i] = query_new(s, ok[i]->index);
		if (!tq[i]) {
			k = -ENOMEM;
			goto out;
		}
		tq[i]->topology_phase = true;
		for (size_t j = 0; j < n_ok; j++)
			if (j != i)
				tq[i]->peer_index[tq[i]->n_peers++] = ok[j]->index;
	}
	k = nvml_run_queries(s, tq, n_ok);
	if (k < 0)
		goto out;
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
		if (device_set_property(d, "driver_version", s->driver_version) < 0) {
			k = -ENOMEM;
			goto out;
		}
		if (s->cuda_version > 0) {
			char v[16];

			snprintf(v, sizeof(v), "%d.%d", s->cuda_version / 1000,
				 (s->cuda_version % 1000) / 10);
			if (device_set_property(d, "cuda_version", v) < 0) {
				k = -ENOMEM;
				goto out;
			}
		}
	}
out:
	for (size_t i = 0; i < n_ok; i++)
		nvml_query_unref(tq[i]);
	return k;
}

int nvml_enumerate(struct nvml_session *s, FILE *out)
{
	struct gpu_query *qs[NVML_MAX_GPUS] = {}, *ok[NVML_MAX_GPUS];
	unsigned count = 0;
	size_t n = 0, n_ok = 0;
	nvmlReturn_t r;
	int k = 0;

	r = s->api.count(&count);
	if (r != NVML_SUCCESS) {
		char reason[128];

		snprintf(reason, sizeof(reason), "NVML: %s (nvmlDeviceGetCount_v2)",
			 nvml_error(&s->api, r));
		return helper_emit(out, helper_msg_error(nvml_to_errno(r) ?: -EIO, false, reason));
	}
	count = MIN(count, NVML_MAX_GPUS);
	for (unsigned i = 0; i < count; i++) {
		qs[n] = query_new(s, i);
		if (!qs[n]) {
			k = -ENOMEM;
			goto out;
		}
		n++;
	}
	k = nvml_run_queries(s, qs, n);
	if (k < 0)
		goto out;
	k = 0;
	for (size_t i = 0; i < n && k >= 0; i++) {
		char addr[13], reason[128];

		if (atomic_load(&qs[i]->done) && qs[i]->dev) {
			ok[n_ok++] = qs[i];
			continue;
		}
		if (!atomic_load(&qs[i]->done)) {
			if (!atomic_load(&qs[i]->addr_known))
				continue;
			snprintf(reason, sizeof(reason), "NVML did not answer within %llu ms",
				 NVML_QUERY_TIMEOUT_USEC / 1000);
			k = emit_unhealthy(out, qs[i]->addr, reason);
			continue;
		}
		snprintf(reason, sizeof(reason), "NVML: %s", nvml_error(&s->api, qs[i]->error));
		if (index_to_address(s->host, qs[i]->index, addr) < 0) {
			k = helper_emit(out, helper_msg_failure((int)qs[i]->index, NULL, reason));
			continue;
		}
		k = emit_unhealthy(out, addr, reason);
	}
	if (k >= 0)
		k = add_topology(s, ok, n_ok);
	for (size_t i = 0; i < n_ok && k >= 0; i++) {
		k = helper_emit(out, helper_msg_device(ok[i]->dev));
		for (unsigned j = 0; j < ok[i]->n_migs && k >= 0; j++)
			k = helper_emit(out, helper_msg_slice_ref(ok[i]->addr, ok[i]->migs[j].uuid,
								  ok[i]->migs[j].gi,
								  ok[i]->migs[j].ci));
	}
out:
	for (size_t i = 0; i < NVML_MAX_GPUS; i++)
		nvml_query_unref(qs[i]);
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
static nvmlReturn_t init_bounded(const struct nvml *api)
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

int nvml_open(struct nvml_session *s, const char *library, const struct xpu_host *host,
	      char **ret_reason, bool *ret_unavailable)
{
	char *reason = NULL;
	nvmlReturn_t r;
	int k;

	*s = (struct nvml_session){ .host = host };
	*ret_unavailable = false;
	struct nvml *api = &s->api;
	const struct dlsym_spec syms[] = {
		{ (void **)&api->init, "nvmlInit_v2" },
		{ (void **)&api->shutdown, "nvmlShutdown" },
		{ (void **)&api->error_string, "nvmlErrorString" },
		{ (void **)&api->driver_version, "nvmlSystemGetDriverVersion", true },
		{ (void **)&api->cuda_version, "nvmlSystemGetCudaDriverVersion_v2", true },
		{ (void **)&api->count, "nvmlDeviceGetCount_v2" },
		{ (void **)&api->handle, "nvmlDeviceGetHandleByIndex_v2" },
		{ (void **)&api->uuid, "nvmlDeviceGetUUID" },
		{ (void **)&api->name, "nvmlDeviceGetName" },
		{ (void **)&api->pci, "nvmlDeviceGetPciInfo_v3" },
		{ (void **)&api->memory, "nvmlDeviceGetMemoryInfo" },
		{ (void **)&api->compute_capability, "nvmlDeviceGetCudaComputeCapability", true },
		{ (void **)&api->serial, "nvmlDeviceGetSerial", true },
		{ (void **)&api->minor, "nvmlDeviceGetMinorNumber", true },
		{ (void **)&api->numa, "nvmlDeviceGetNumaNodeId", true },
		{ (void **)&api->power, "nvmlDeviceGetPowerUsage", true },
		{ (void **)&api->temperature, "nvmlDeviceGetTemperature", true },
		{ (void **)&api->utilization, "nvmlDeviceGetUtilizationRates", true },
		{ (void **)&api->ecc_total, "nvmlDeviceGetTotalEccErrors", true },
		{ (void **)&api->mig_mode, "nvmlDeviceGetMigMode", true },
		{ (void **)&api->gi_profile, "nvmlDeviceGetGpuInstanceProfileInfo", true },
		{ (void **)&api->gi_remaining, "nvmlDeviceGetGpuInstanceRemainingCapacity",
		  true },
		{ (void **)&api->topology, "nvmlDeviceGetTopologyCommonAncestor", true },
		{ (void **)&api->nvlink_state, "nvmlDeviceGetNvLinkState", true },
		{ (void **)&api->nvlink_remote, "nvmlDeviceGetNvLinkRemotePciInfo_v2", true },
		{ (void **)&api->mig_count, "nvmlDeviceGetMaxMigDeviceCount", true },
		{ (void **)&api->mig_handle, "nvmlDeviceGetMigDeviceHandleByIndex", true },
		{ (void **)&api->gi_id, "nvmlDeviceGetGpuInstanceId", true },
		{ (void **)&api->ci_id, "nvmlDeviceGetComputeInstanceId", true },
		{ (void **)&api->attributes, "nvmlDeviceGetAttributes_v2", true },
		/* Before a reset: whether processes use the GPU. */
		{ (void **)&api->compute_processes, "nvmlDeviceGetComputeRunningProcesses_v3",
		  true },
		{ (void **)&api->graphics_processes, "nvmlDeviceGetGraphicsRunningProcesses_v3",
		  true },
		/* Applying MIG layouts: any one missing turns that feature off, nothing else. */
		{ (void **)&api->mig.error_string, "nvmlErrorString" },
		{ (void **)&api->mig.mig_mode, "nvmlDeviceGetMigMode", true },
		{ (void **)&api->mig.set_mig_mode, "nvmlDeviceSetMigMode", true },
		{ (void **)&api->mig.gi_profile, "nvmlDeviceGetGpuInstanceProfileInfo", true },
		{ (void **)&api->mig.gpu_instances, "nvmlDeviceGetGpuInstances", true },
		{ (void **)&api->mig.create_gi, "nvmlDeviceCreateGpuInstance", true },
		{ (void **)&api->mig.destroy_gi, "nvmlGpuInstanceDestroy", true },
		{ (void **)&api->mig.ci_profile, "nvmlGpuInstanceGetComputeInstanceProfileInfo",
		  true },
		{ (void **)&api->mig.compute_instances, "nvmlGpuInstanceGetComputeInstances",
		  true },
		{ (void **)&api->mig.create_ci, "nvmlGpuInstanceCreateComputeInstance", true },
		{ (void **)&api->mig.destroy_ci, "nvmlComputeInstanceDestroy", true },
	};


	k = dlopen_many(library, syms, ELEMENTSOF(syms), &api->dl, &reason);
	if (k < 0) {
		*ret_reason = reason;
		*ret_unavailable = true;
		return k;
	}
	r = init_bounded(api);
	if (r == NVML_ERROR_TIMEOUT) {
		*ret_reason = strdup("nvmlInit_v2 did not return within 10 s");
		return -ETIMEDOUT;
	}
	if (r != NVML_SUCCESS) {
		if (asprintf(ret_reason, "nvmlInit_v2 failed: %s", nvml_error(api, r)) < 0)
			*ret_reason = NULL;
		/* no driver: nothing to manage here, as without the library */
		*ret_unavailable = r == NVML_ERROR_DRIVER_NOT_LOADED ||
				   r == NVML_ERROR_LIBRARY_NOT_FOUND;
		return nvml_to_errno(r) ?: -EIO;
	}
	if (!api->driver_version ||
	    api->driver_version(s->driver_version, sizeof(s->driver_version)) != NVML_SUCCESS ||
	    !string_is_printable(s->driver_version))
		strcpy(s->driver_version, "unknown");
	if (!api->cuda_version || api->cuda_version(&s->cuda_version) != NVML_SUCCESS)
		s->cuda_version = 0;
	return 0;
}

/* The helper exits right after: a thread still inside NVML keeps the library (exit ends it). */
void nvml_close(struct nvml_session *s)
{
	if (atomic_load(&s->outstanding) > 0 || !s->api.dl)
		return;
	s->api.shutdown();
	dlclose(s->api.dl);
}
