// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The per-GPU NVML queries, in the helper. Each GPU is asked by its own short-lived thread,
 * joined with a deadline (nvml_run_queries()): phase 1 asks everything NVML knows of the GPU
 * (its MIG mode, profiles and devices, its NVLinks), phase 2 the topology level to every peer.
 * A thread that misses its deadline is left behind (its GPU is reported as not answering) and
 * dies with the helper. Only plain data leaves the threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtimes/nvml.h"
#include "shared/fault.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/strv.h"

/* Drops a reference to @q: the thread's or the backend's; the last one frees it. */
void nvml_query_unref(struct gpu_query *q)
{
	if (!q || atomic_fetch_sub(&q->refs, 1) != 1)
		return;
	device_free(q->dev);
	strv_free(q->nvlink_remotes);
	free(q);
}

static int describe_mig(const struct nvml *api, nvmlDevice_t h, struct xpu_device *d)
{
	_cleanup_free_ char *list = NULL;
	unsigned cur, pend, slices = 0;

	if (!api->mig_mode || api->mig_mode(h, &cur, &pend) != NVML_SUCCESS)
		return 0; /* no MIG on this GPU or driver */
	d->partition_capable = true;
	d->partition_pending = pend == NVML_DEVICE_MIG_ENABLE;
	if (device_set_property(d, "mig_mode", cur == NVML_DEVICE_MIG_ENABLE ? "enabled"
									     : "disabled") < 0 ||
	    device_set_property(d, "mig_mode_pending",
				pend == NVML_DEVICE_MIG_ENABLE ? "enabled" : "disabled") < 0)
		return -ENOMEM;
	if (!api->gi_profile)
		return 0;
	/* Supported profiles and how many of each still fit, even with MIG disabled. */
	for (unsigned i = 0; i < NVML_GPU_INSTANCE_PROFILE_COUNT; i++) {
		nvmlGpuInstanceProfileInfo_t info = {};
		unsigned remaining = 0;
		char name[48], *s;

		if (api->gi_profile(h, i, &info) != NVML_SUCCESS || info.sliceCount == 0)
			continue;
		if (!api->gi_remaining || api->gi_remaining(h, info.id, &remaining) != NVML_SUCCESS)
			remaining = info.instanceCount;
		nvidia_mig_profile_name(&info, i, name, sizeof(name));
		if (asprintf(&s, "%s%s%s=%u/%u", list ?: "", list ? "," : "", name, remaining,
			     info.instanceCount) < 0)
			return -ENOMEM;
		free(list);
		list = s;
		if (device_add_profile(d, &(struct xpu_partition_profile){
					      .name = name,
					      .free = remaining,
					      .total = info.instanceCount,
					      .memory_bytes = info.memorySizeMB << 20,
					      /* slices of the GPU's, until the whole is known */
					      .compute_fraction = info.sliceCount,
					  }) < 0)
			return -ENOMEM;
		slices = MAX(slices, info.sliceCount);
	}
	/* A profile's compute: its slices of those of the largest profile (the whole GPU). */
	for (size_t i = 0; i < d->n_profiles; i++)
		d->profiles[i].compute_fraction /= slices;
	if (list && device_set_property(d, "mig_profiles", list) < 0)
		return -ENOMEM;
	return 0;
}

/* "DeviceFileMinor: 30" in a MIG capability's access file -> "/dev/nvidia-caps/nvidia-cap30". */
static int mig_cap_node(const struct xpu_host *host, const char *access, char **ret)
{
	_cleanup_free_ char *minor = NULL;
	unsigned n;
	int r;

	if (host->proc_fd < 0)
		return -ENOENT;
	r = read_colon_key_at(host->proc_fd, access, "DeviceFileMinor", &minor);
	if (r < 0)
		return r;
	if (safe_atou(minor, &n) < 0)
		return -EBADMSG;
	return asprintf(ret, "/dev/nvidia-caps/nvidia-cap%u", n) < 0 ? -ENOMEM : 0;
}

/*
 * Every MIG device (GPU instance + compute instance) of a GPU with MIG enabled becomes a
 * partition: its MIG UUID, profile, memory, share of the GPU and the capability device nodes
 * a container needs besides the GPU's own.
 */
static int describe_mig_devices(struct gpu_query *q, nvmlDevice_t h, unsigned gpu_minor,
				struct xpu_device *d)
{
	const struct nvml *api = q->api;
	unsigned count = 0;

	if (!api->mig_count || !api->mig_handle || !api->attributes ||
	    api->mig_count(h, &count) != NVML_SUCCESS)
		return 0;
	for (unsigned i = 0; i < MIN(count, 64u); i++) {
		_cleanup_(slice_freep) struct xpu_slice *s = NULL;
		_cleanup_free_ char *path = NULL, *node = NULL;
		nvmlDeviceAttributes_t attr = {};
		char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE], profile[32];
		unsigned gi = 0, ci = 0;
		nvmlDevice_t mig;
		nvmlMemory_t mem;
		int r;

		if (api->mig_handle(h, i, &mig) != NVML_SUCCESS)
			continue; /* no instance at this index */
		if (api->uuid(mig, uuid, sizeof(uuid)) != NVML_SUCCESS ||
		    strncmp(uuid, "MIG-", 4) != 0 || !string_is_printable(uuid) ||
		    api->attributes(mig, &attr) != NVML_SUCCESS || attr.gpuInstanceSliceCount == 0)
			continue;
		if (api->gi_id)
			(void)api->gi_id(mig, &gi);
		if (api->ci_id)
			(void)api->ci_id(mig, &ci);
		snprintf(profile, sizeof(profile), "%ug.%llugb", attr.gpuInstanceSliceCount,
			 (attr.memorySizeMB + 1023) / 1024);

		s = calloc(1, sizeof(*s));
		if (!s || !(s->id = strdup(uuid)) || !(s->device_id = strdup(d->id)) ||
		    !(s->profile = strdup(profile)) ||
		    asprintf(&s->resource, "nvidia.com/mig-%s", profile) < 0 ||
		    strv_env_set(&s->env, "NVIDIA_VISIBLE_DEVICES", uuid) < 0 ||
		    strv_env_set(&s->env, "CUDA_VISIBLE_DEVICES", uuid) < 0)
			return -ENOMEM;
		s->memory_bytes = api->memory(mig, &mem) == NVML_SUCCESS
					  ? mem.total
					  : attr.memorySizeMB * 1024ULL * 1024ULL;
		/* H100 and A100 have seven compute slices */
		s->compute_fraction = MIN(attr.computeInstanceSliceCount, 7u) / 7.0;

		/* The capabilities of the GPU instance and of the compute instance. */
		if (asprintf(&path, "driver/nvidia/capabilities/gpu%u/mig/gi%u/access", gpu_minor,
			     gi) < 0)
			return -ENOMEM;
		r = mig_cap_node(q->host, path, &node);
		if (r == -ENOMEM || (r >= 0 && strv_consume(&s->device_nodes, TAKE_PTR(node)) < 0))
			return -ENOMEM;
		free(path);
		if (asprintf(&path, "driver/nvidia/capabilities/gpu%u/mig/gi%u/ci%u/access",
			     gpu_minor, gi, ci) < 0)
			return -ENOMEM;
		r = mig_cap_node(q->host, path, &node);
		if (r == -ENOMEM || (r >= 0 && strv_consume(&s->device_nodes, TAKE_PTR(node)) < 0))
			return -ENOMEM;
		r = device_add_partition(d, TAKE_PTR(s));
		if (r < 0)
			return r;
		if (q->n_migs < NVML_MAX_MIG) {
			q->migs[q->n_migs] = (struct mig_ref){ .gi = gi, .ci = ci };
			memcpy(q->migs[q->n_migs++].uuid, uuid, sizeof(uuid));
		}
	}
	return 0;
}

static int describe_nvlinks(const struct nvml *api, nvmlDevice_t h, struct gpu_query *q,
			    struct xpu_device *d)
{
	if (!api->nvlink_state || !api->nvlink_remote)
		return 0;
	for (unsigned link = 0; link < NVML_NVLINK_MAX_LINKS; link++) {
		nvmlEnableState_t active = NVML_FEATURE_DISABLED;
		nvmlPciInfo_t remote = {};
		char addr[13];

		if (api->nvlink_state(h, link, &active) != NVML_SUCCESS)
			break; /* no NVLink, or past the GPU's last link */
		if (active != NVML_FEATURE_ENABLED)
			continue;
		if (api->nvlink_remote(h, link, &remote) != NVML_SUCCESS ||
		    nvml_bus_id(&remote, addr) < 0)
			continue;
		if (strv_extend(&q->nvlink_remotes, addr) < 0)
			return -ENOMEM;
	}
	if (q->nvlink_remotes && set_prop_u(d, "nvlink_active_links",
					    strv_length(q->nvlink_remotes)) < 0)
		return -ENOMEM;
	return 0;
}

/*
 * The samples of the metrics (backends/samples.h): the utilisation of the driver's last sample
 * period, and the ECC errors counted since the driver loaded (volatile), over all the GPU's
 * memories. xpud keeps them only while it serves metrics. A GPU without ECC (or with it off)
 * answers NOT_SUPPORTED: no counts.
 */
static void describe_samples(const struct nvml *api, nvmlDevice_t h, struct xpu_device *d)
{
	unsigned long long ce, ue;
	nvmlUtilization_t util;

	if (api->utilization && api->utilization(h, &util) == NVML_SUCCESS && util.gpu <= 100 &&
	    util.memory <= 100) {
		(void)set_prop_u(d, "utilization_percent", util.gpu);
		(void)set_prop_u(d, "memory_utilization_percent", util.memory);
	}
	if (api->ecc_total &&
	    api->ecc_total(h, NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_VOLATILE_ECC, &ce) ==
		NVML_SUCCESS &&
	    api->ecc_total(h, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC, &ue) ==
		NVML_SUCCESS) {
		(void)set_prop_u(d, "ras_errors.memory.correctable", ce);
		(void)set_prop_u(d, "ras_errors.memory.uncorrectable", ue);
	}
}

/* Phase 1: everything NVML knows of one GPU. Runs on its own thread. */
static void query_gpu(struct gpu_query *q)
{
	_cleanup_(device_freep) struct xpu_device *d = NULL;
	const struct nvml *api = q->api;
	char buf[NVML_DEVICE_UUID_V2_BUFFER_SIZE], addr[13];
	nvmlPciInfo_t pci = {};
	nvmlMemory_t mem = {};
	nvmlDevice_t h;
	nvmlReturn_t r;
	unsigned u;
	int major, minor;

	r = api->handle(q->index, &h);
	if (r == NVML_SUCCESS)
		r = api->pci(h, &pci);
	if (r != NVML_SUCCESS || nvml_bus_id(&pci, addr) < 0) {
		q->error = r != NVML_SUCCESS ? r : NVML_ERROR_UNKNOWN;
		return;
	}
	memcpy(q->addr, addr, sizeof(addr));
	atomic_store(&q->addr_known, true);
	d = device_new();
	if (!d || !(d->id = strdup(addr)) || !(d->vendor = strdup("nvidia")) ||
	    !(d->resource = strdup("nvidia.com/gpu")))
		return;
	d->kind = XPU_KIND_GPU;
	d->has_pci = true;
	memcpy(d->pci.address, addr, sizeof(addr));
	d->pci.vendor_id = (uint16_t)(pci.pciDeviceId & 0xffff);
	d->pci.device_id = (uint16_t)(pci.pciDeviceId >> 16);
	d->pci.subsystem_vendor_id = (uint16_t)(pci.pciSubSystemId & 0xffff);
	d->pci.subsystem_device_id = (uint16_t)(pci.pciSubSystemId >> 16);

	/* The GPU answered where it is; anything it cannot say now makes it unhealthy. */
	r = api->uuid(h, buf, sizeof(buf));
	if (r == NVML_SUCCESS && strncmp(buf, "GPU-", 4) == 0 && string_is_printable(buf)) {
		if (!(d->uuid = strdup(buf)) ||
		    strv_env_set(&d->env, "NVIDIA_VISIBLE_DEVICES", buf) < 0 ||
		    strv_env_set(&d->env, "CUDA_VISIBLE_DEVICES", buf) < 0)
			return;
	} else if (r != NVML_SUCCESS) {
		(void)device_set_unhealthy(d, "NVML: %s (nvmlDeviceGetUUID)", nvml_error(api, r));
	}
	r = api->name(h, buf, sizeof(buf));
	if (r == NVML_SUCCESS && string_is_printable(buf))
		d->model = strdup(buf);
	else if (r != NVML_SUCCESS && r != NVML_ERROR_NOT_SUPPORTED)
		(void)device_set_unhealthy(d, "NVML: %s (nvmlDeviceGetName)", nvml_error(api, r));
	r = api->memory(h, &mem);
	if (r == NVML_SUCCESS)
		d->memory_bytes = mem.total;
	else if (r != NVML_ERROR_NOT_SUPPORTED)
		(void)device_set_unhealthy(d, "NVML: %s (nvmlDeviceGetMemoryInfo)",
					   nvml_error(api, r));

	/* Optional facts: a GPU or driver that cannot tell is not unhealthy for it. */
	if (api->compute_capability && api->compute_capability(h, &major, &minor) == NVML_SUCCESS &&
	    major > 0 && major < 100 && minor >= 0 && minor < 100) {
		snprintf(buf, sizeof(buf), "%d.%d", major, minor);
		(void)device_set_property(d, "compute_capability", buf);
	}
	if (api->attributes) {
		nvmlDeviceAttributes_t attr = {};

		/* Not every GPU answers this for itself (only MIG-capable ones do). */
		if (api->attributes(h, &attr) == NVML_SUCCESS && attr.multiprocessorCount > 0)
			(void)set_prop_u(d, "multiprocessor_count", attr.multiprocessorCount);
	}
	if (api->serial && api->serial(h, buf, sizeof(buf)) == NVML_SUCCESS &&
	    string_is_printable(buf))
		(void)device_set_property(d, "serial", buf);
	if (api->minor && api->minor(h, &u) == NVML_SUCCESS)
		(void)set_prop_u(d, "minor", u);
	if (api->numa && api->numa(h, &u) == NVML_SUCCESS && u < 4096)
		d->numa_node = (int)u; /* else the merge takes sysfs's */
	if (api->power && api->power(h, &u) == NVML_SUCCESS) {
		snprintf(buf, sizeof(buf), "%u.%02u", u / 1000, (u % 1000) / 10);
		(void)device_set_property(d, "power_watts", buf);
	}
	if (api->temperature && api->temperature(h, NVML_TEMPERATURE_GPU, &u) == NVML_SUCCESS)
		(void)set_prop_u(d, "temperature_celsius", u);
	describe_samples(api, h, d);
	if (describe_mig(api, h, d) < 0 || describe_nvlinks(api, h, q, d) < 0)
		return;
	if (streq_ptr(device_get_property(d, "mig_mode"), "enabled")) {
		/* No CUDA work runs on a MIG-enabled GPU outside its instances. */
		d->partitioned = true;
		if (api->minor && api->minor(h, &u) == NVML_SUCCESS &&
		    describe_mig_devices(q, h, u, d) < 0)
			return;
	}
	q->dev = TAKE_PTR(d);
}

/* Phase 2: the PCIe/NUMA topology level from this GPU to each peer. */
static void query_topology(struct gpu_query *q)
{
	const struct nvml *api = q->api;
	nvmlDevice_t h, peer;

	if (!api->topology || api->handle(q->index, &h) != NVML_SUCCESS)
		return;
	for (unsigned i = 0; i < q->n_peers; i++) {
		nvmlGpuTopologyLevel_t level;

		q->peer_level[i] = -1;
		if (api->handle(q->peer_index[i], &peer) == NVML_SUCCESS &&
		    api->topology(h, peer, &level) == NVML_SUCCESS)
			q->peer_level[i] = level;
	}
}

static void *query_thread(void *userdata)
{
	struct gpu_query *q = userdata;

	if (q->topology_phase)
		query_topology(q);
	else
		query_gpu(q);
	atomic_store(&q->done, true);
	atomic_fetch_sub(q->outstanding, 1);
	nvml_query_unref(q);
	return NULL;
}

/*
 * Runs @n queries on their own threads and waits for all of them until one deadline. Queries
 * that miss it are left to finish on their own (the helper exits without them). Returns how many
 * finished, or the error of a thread that could not be started (-EAGAIN: too many threads),
 * after the others were waited for: NVML was not asked, so nothing is known of that GPU.
 */
int nvml_run_queries(struct nvml_session *s, struct gpu_query **qs, size_t n)
{
	pthread_t threads[NVML_MAX_GPUS] = {}; /* read only where started[] says */
	bool started[NVML_MAX_GPUS] = {};
	pthread_attr_t attr;
	struct timespec deadline;
	int finished = 0, error = 0;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (size_t i = 0; i < n; i++) {
		int k;

		qs[i]->outstanding = &s->outstanding;
		qs[i]->host = s->host;
		atomic_fetch_add(&qs[i]->refs, 1); /* the thread's */
		atomic_fetch_add(&s->outstanding, 1);
		k = fault_error("nvidia-query-thread") ?:
			-pthread_create(&threads[i], &attr, query_thread, qs[i]);
		if (k < 0) {
			atomic_fetch_sub(&s->outstanding, 1);
			atomic_fetch_sub(&qs[i]->refs, 1);
			error = error ?: k;
			continue;
		}
		started[i] = true;
	}
	pthread_attr_destroy(&attr);

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += NVML_QUERY_TIMEOUT_USEC / 1000000;
	for (size_t i = 0; i < n; i++) {
		if (!started[i])
			continue;
		if (pthread_timedjoin_np(threads[i], NULL, &deadline) == 0)
			finished++;
		else
			pthread_detach(threads[i]);
	}
	return error ?: finished;
}
