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
 * the threads. NVML types never leave this file.
 */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/nvidia.h"
#include "backends/nvidia-config.h"
#include "backends/nvidia-cuda.h"
#include "backends/nvidia-mig.h"
#include "backends/nvidia-nvml.h"
#include "backends/nvidia-xid.h"
#include "backends/pci.h"
#include "shared/bounded.h"
#include "shared/dlopen-util.h"
#include "shared/fault.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/strv.h"

#define NVML_LIBRARY "libnvidia-ml.so.1"
#define NVML_QUERY_TIMEOUT_USEC (2 * 1000000ULL)
/* Creating seven instances takes a few seconds on an H100; a driver stuck longer is reported. */
#define NVML_APPLY_TIMEOUT_SEC 60
#define NVML_MAX_GPUS 64
#define NVML_MAX_MIG 16 /* MIG devices per GPU we track (A100/H100 have at most 7) */

/* The functions we resolve; the optional ones may be NULL (older drivers). */
struct nvml {
	void *dl;
	nvmlReturn_t (*init)(void);
	nvmlReturn_t (*shutdown)(void);
	const char *(*error_string)(nvmlReturn_t);
	nvmlReturn_t (*driver_version)(char *, unsigned int);
	nvmlReturn_t (*cuda_version)(int *);
	nvmlReturn_t (*count)(unsigned int *);
	nvmlReturn_t (*handle)(unsigned int, nvmlDevice_t *);
	nvmlReturn_t (*uuid)(nvmlDevice_t, char *, unsigned int);
	nvmlReturn_t (*name)(nvmlDevice_t, char *, unsigned int);
	nvmlReturn_t (*pci)(nvmlDevice_t, nvmlPciInfo_t *);
	nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t *);
	nvmlReturn_t (*compute_capability)(nvmlDevice_t, int *, int *);
	nvmlReturn_t (*serial)(nvmlDevice_t, char *, unsigned int);
	nvmlReturn_t (*minor)(nvmlDevice_t, unsigned int *);
	nvmlReturn_t (*numa)(nvmlDevice_t, unsigned int *);
	nvmlReturn_t (*power)(nvmlDevice_t, unsigned int *);
	nvmlReturn_t (*temperature)(nvmlDevice_t, nvmlTemperatureSensors_t, unsigned int *);
	nvmlReturn_t (*mig_mode)(nvmlDevice_t, unsigned int *, unsigned int *);
	nvmlReturn_t (*gi_profile)(nvmlDevice_t, unsigned int, nvmlGpuInstanceProfileInfo_t *);
	nvmlReturn_t (*gi_remaining)(nvmlDevice_t, unsigned int, unsigned int *);
	nvmlReturn_t (*topology)(nvmlDevice_t, nvmlDevice_t, nvmlGpuTopologyLevel_t *);
	nvmlReturn_t (*nvlink_state)(nvmlDevice_t, unsigned int, nvmlEnableState_t *);
	nvmlReturn_t (*nvlink_remote)(nvmlDevice_t, unsigned int, nvmlPciInfo_t *);
	nvmlReturn_t (*mig_count)(nvmlDevice_t, unsigned int *);
	nvmlReturn_t (*mig_handle)(nvmlDevice_t, unsigned int, nvmlDevice_t *);
	nvmlReturn_t (*gi_id)(nvmlDevice_t, unsigned int *);
	nvmlReturn_t (*ci_id)(nvmlDevice_t, unsigned int *);
	nvmlReturn_t (*attributes)(nvmlDevice_t, nvmlDeviceAttributes_t *);
	nvmlReturn_t (*event_set_create)(nvmlEventSet_t *);
	nvmlReturn_t (*event_types)(nvmlDevice_t, unsigned long long *);
	nvmlReturn_t (*event_register)(nvmlDevice_t, unsigned long long, nvmlEventSet_t);
	nvmlReturn_t (*event_wait)(nvmlEventSet_t, nvmlEventData_t *, unsigned int);
	nvmlReturn_t (*event_set_free)(nvmlEventSet_t);
	nvmlReturn_t (*compute_processes)(nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *);
	nvmlReturn_t (*graphics_processes)(nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *);
	struct nvml_mig_api mig; /* creating and destroying MIG instances (nvidia-mig.c) */
};

#define NVML_EVENTS_WANTED                                                                         \
	(nvmlEventTypeXidCriticalError | nvmlEventTypeDoubleBitEccError | nvmlEventMigConfigChange)
#define NVML_EVENT_WAIT_MS 500

/* One record from the event thread to the loop, through a pipe (smaller than PIPE_BUF). */
struct nvidia_event {
	char addr[13];		 /* "" when the device could not be matched */
	nvmlReturn_t error;	 /* the wait failed (degraded), or 0 */
	bool recovered;		 /* the wait works again after a failure */
	bool cuda_done;		 /* the CUDA thread has finished (its facts are in cuda[]) */
	unsigned long long type; /* nvmlEventType* */
	unsigned long long data; /* the XID */
	unsigned gi, ci;
};

/* A GPU an event said needs a reset: unhealthy until it leaves NVML's list (reset or removed)
 * or xpud restarts. An event that names one MIG instance (its GPU and compute instance ids)
 * makes only that instance's slice unhealthy, until the instance is gone (destroyed, or its
 * GPU reset). */
struct nvidia_sticky {
	char addr[13];
	char *slice; /* the MIG device's UUID, or NULL: the whole GPU */
	char *reason;
	enum health_action action; /* what the event asked for: a reset or a reboot */
};

/* What one GPU's query thread found. Shared by the thread and the backend, reference-counted,
 * so a thread that outlives its deadline can finish and free it on its own. */
struct gpu_query {
	atomic_int refs;
	atomic_bool done;
	const struct nvml *api;
	const struct xpu_host *host;
	atomic_int *outstanding; /* the backend's count of running threads */
	unsigned index;
	bool topology_phase;
	/* phase 1 */
	char addr[13];		/* the PCI address, once NVML said it */
	atomic_bool addr_known;
	nvmlReturn_t error;	/* why NVML could not say it */
	struct xpu_device *dev; /* NULL when NVML could not tell which PCI function it is */
	char **nvlink_remotes;	/* canonical addresses, one per active link */
	/* which GPU/compute instance each MIG UUID is: events name instances by their ids */
	struct mig_ref {
		unsigned gi, ci;
		char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
	} migs[NVML_MAX_MIG];
	unsigned n_migs;
	/* phase 2 */
	unsigned n_peers;
	unsigned peer_index[NVML_MAX_GPUS];
	int peer_level[NVML_MAX_GPUS];
};

/* What the CUDA driver API adds for one GPU, by PCI address. */
struct cuda_fact {
	char addr[13];
	int ordinal;
	int multiprocessors;
	int max_threads_per_sm;
	int l2_bytes;
	int clock_khz;
};

struct nvidia {
	struct nvml api;
	const struct xpu_host *host;
	char driver_version[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];
	int cuda_version;
	/* Threads that missed a deadline, by GPU index: not queried again until they return. */
	struct gpu_query *stuck[NVML_MAX_GPUS];
	atomic_int outstanding; /* threads still running, stuck or not */

	/* Events: a set, a thread blocked in nvmlEventSetWait_v2, a pipe to the loop. */
	nvmlEventSet_t set;
	bool have_set;
	pthread_t event_thread;
	bool event_thread_started;
	atomic_bool stop;
	int pipe[2];
	pthread_mutex_t map_lock; /* guards registered[] and index_addr[] across threads */
	struct {
		nvmlDevice_t handle;
		char addr[13];
	} registered[NVML_MAX_GPUS];
	size_t n_registered;
	struct nvidia_sticky sticky[NVML_MAX_GPUS * 2];
	size_t n_sticky;
	/* GPUs reset since the main thread last looked (a reset runs off the loop): their sticky
	 * state is forgotten by the main thread, under map_lock */
	char reset_addr[NVML_MAX_GPUS][13];
	size_t n_reset;
	/* the MIG devices of the last enumeration, for events that name a GPU/compute instance */
	struct nvidia_mig {
		char addr[13];
		struct mig_ref ref;
	} *migs;
	size_t n_migs;
	/* The PCI address each NVML index answered with last: a refresh asks that index first
	 * instead of querying every GPU until one matches. Written by the main thread under
	 * map_lock, read there freely and elsewhere (an apply's thread) under map_lock. */
	char index_addr[NVML_MAX_GPUS][13];

	/* CUDA: cuInit costs ~200 ms and ~7 MiB resident (H100, driver 580), so it runs in a
	 * short-lived child process, started by a thread after the first inventory; its facts are
	 * merged by the rescan it asks for when it is done. */
	char *cuda_path; /* NULL: not used */
	pthread_t cuda_thread;
	bool cuda_thread_started;
	atomic_bool cuda_finished;
	char *cuda_error;   /* why it gave nothing, set by the thread before cuda_finished */
	long cuda_init_ms;
	struct cuda_fact cuda[NVML_MAX_GPUS];
	size_t n_cuda;
};

static const char *nvml_error(const struct nvml *api, nvmlReturn_t r)
{
	const char *s = api->error_string ? api->error_string(r) : NULL;

	return s ?: "unknown NVML error";
}

static int nvml_to_errno(nvmlReturn_t r)
{
	switch (r) {
	case NVML_SUCCESS:
		return 0;
	case NVML_ERROR_NOT_SUPPORTED:
	case NVML_ERROR_FUNCTION_NOT_FOUND:
		return -EOPNOTSUPP;
	case NVML_ERROR_NO_PERMISSION:
		return -EACCES;
	case NVML_ERROR_INVALID_ARGUMENT:
		return -EINVAL;
	case NVML_ERROR_NOT_FOUND:
		return -ENOENT;
	case NVML_ERROR_TIMEOUT:
		return -ETIMEDOUT;
	case NVML_ERROR_GPU_IS_LOST:
		return -ENODEV;
	case NVML_ERROR_DRIVER_NOT_LOADED:
	case NVML_ERROR_LIBRARY_NOT_FOUND:
		return -ENOENT;
	case NVML_ERROR_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static void query_unref(struct gpu_query *q)
{
	if (!q || atomic_fetch_sub(&q->refs, 1) != 1)
		return;
	device_free(q->dev);
	strv_free(q->nvlink_remotes);
	free(q);
}

/* "00000000:18:00.0" (NVML's eight-digit domain) -> "0000:18:00.0". */
static int nvml_bus_id(const nvmlPciInfo_t *pci, char ret[static 13])
{
	char buf[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
	const char *s = buf;
	size_t n;

	memcpy(buf, pci->busId, sizeof(buf));
	buf[sizeof(buf) - 1] = '\0';
	n = strlen(buf);
	if (n == 16 && strncmp(buf, "0000", 4) == 0)
		s = buf + 4; /* domains above 0xffff do not exist on Linux */
	return parse_pci_address(s, ret);
}

static int set_prop_u(struct xpu_device *d, const char *key, unsigned long long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", v);
	return device_set_property(d, key, buf);
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
	query_unref(q);
	return NULL;
}

/* Records the PCI address NVML index @i answered with (see index_addr). */
static void set_index_addr(struct nvidia *nv, unsigned i, const char addr[static 13])
{
	pthread_mutex_lock(&nv->map_lock);
	memcpy(nv->index_addr[i], addr, 13);
	pthread_mutex_unlock(&nv->map_lock);
}

/*
 * Runs @n queries on their own threads and waits for all of them until one deadline. Queries
 * that miss it are left to finish on their own and recorded as stuck. Returns how many
 * finished, or the error of a thread that could not be started (-EAGAIN: too many threads),
 * after the others were waited for: NVML was not asked, so nothing is known of that GPU.
 */
static int run_queries(struct nvidia *nv, struct gpu_query **qs, size_t n)
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

		qs[i]->outstanding = &nv->outstanding;
		qs[i]->host = nv->host;
		atomic_fetch_add(&qs[i]->refs, 1); /* the thread's */
		atomic_fetch_add(&nv->outstanding, 1);
		k = fault_error("nvidia-query-thread") ?:
			-pthread_create(&threads[i], &attr, query_thread, qs[i]);
		if (k < 0) {
			log_debug_errno(k, "Cannot start a thread to query NVML GPU %u: %m",
					qs[i]->index);
			atomic_fetch_sub(&nv->outstanding, 1);
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
		if (pthread_timedjoin_np(threads[i], NULL, &deadline) == 0) {
			finished++;
			continue;
		}
		pthread_detach(threads[i]);
		if (!qs[i]->topology_phase && qs[i]->index < NVML_MAX_GPUS &&
		    !nv->stuck[qs[i]->index]) {
			atomic_fetch_add(&qs[i]->refs, 1);
			nv->stuck[qs[i]->index] = qs[i];
		}
	}
	return error ?: finished;
}

/* Forgets stuck queries whose threads have returned: those GPUs are asked again. */
static void reap_stuck(struct nvidia *nv)
{
	for (size_t i = 0; i < NVML_MAX_GPUS; i++)
		if (nv->stuck[i] && atomic_load(&nv->stuck[i]->done)) {
			query_unref(nv->stuck[i]);
			nv->stuck[i] = NULL;
		}
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

static const struct cuda_fact *cuda_fact(const struct nvidia *nv, const char *addr)
{
	if (!atomic_load(&nv->cuda_finished))
		return NULL;
	for (size_t i = 0; i < nv->n_cuda; i++)
		if (streq(nv->cuda[i].addr, addr))
			return &nv->cuda[i];
	return NULL;
}

static int add_cuda_facts(const struct nvidia *nv, struct xpu_device *d)
{
	const struct cuda_fact *f = cuda_fact(nv, d->id);

	if (!f)
		return 0;
	if (set_prop_u(d, "cuda_ordinal", (unsigned)f->ordinal) < 0 ||
	    (f->multiprocessors > 0 && !device_get_property(d, "multiprocessor_count") &&
	     set_prop_u(d, "multiprocessor_count", (unsigned)f->multiprocessors) < 0) ||
	    (f->max_threads_per_sm > 0 &&
	     set_prop_u(d, "max_threads_per_multiprocessor", (unsigned)f->max_threads_per_sm) <
		     0) ||
	    (f->l2_bytes > 0 && set_prop_u(d, "l2_cache_bytes", (unsigned)f->l2_bytes) < 0) ||
	    (f->clock_khz > 0 && set_prop_u(d, "max_clock_mhz", (unsigned)f->clock_khz / 1000) < 0))
		return -ENOMEM;
	return 0;
}

static const char *sticky_find(const struct nvidia *nv, const char *addr, const char *slice)
{
	for (size_t i = 0; i < nv->n_sticky; i++)
		if (streq(nv->sticky[i].addr, addr) && streq_ptr(nv->sticky[i].slice, slice))
			return nv->sticky[i].reason;
	return NULL;
}

/* Why the whole GPU @addr is unhealthy by an event, or NULL. */
static const char *sticky_reason(const struct nvidia *nv, const char *addr)
{
	return sticky_find(nv, addr, NULL);
}

/* What the event that made the whole GPU @addr unhealthy asked for. */
static enum health_action sticky_action(const struct nvidia *nv, const char *addr)
{
	for (size_t i = 0; i < nv->n_sticky; i++)
		if (streq(nv->sticky[i].addr, addr) && !nv->sticky[i].slice)
			return nv->sticky[i].action;
	return HEALTH_ACTION_IGNORE;
}

/* Marks @d unhealthy for the event its GPU had, if any. 0 or -ENOMEM. */
static int sticky_apply(const struct nvidia *nv, struct xpu_device *d)
{
	const char *why = sticky_reason(nv, d->id);

	return why ? device_set_fault(d, sticky_action(nv, d->id), "%s", why) : 0;
}

/* Records that @addr (or its MIG device @slice, when not NULL) needs @action (a reset or more);
 * the first reason stands. */
static int sticky_add(struct nvidia *nv, const char *addr, const char *slice, const char *reason,
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
static const char *mig_uuid_of(const struct nvidia *nv, const char *addr, unsigned gi,
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

/* Registers a GPU that answered for the events we act on (once per handle). */
static void register_events(struct nvidia *nv, unsigned index, const char *addr)
{
	unsigned long long supported = 0;
	nvmlDevice_t h;
	nvmlReturn_t r;

	if (!nv->have_set || nv->api.handle(index, &h) != NVML_SUCCESS)
		return;
	pthread_mutex_lock(&nv->map_lock);
	for (size_t i = 0; i < nv->n_registered; i++)
		if (nv->registered[i].handle == h) {
			memcpy(nv->registered[i].addr, addr, 13);
			pthread_mutex_unlock(&nv->map_lock);
			return;
		}
	pthread_mutex_unlock(&nv->map_lock);
	if (nv->api.event_types(h, &supported) != NVML_SUCCESS)
		return; /* a GPU without events: probed only */
	r = nv->api.event_register(h, supported & NVML_EVENTS_WANTED, nv->set);
	if (r != NVML_SUCCESS) {
		log_device_full_errno(LOG_WARNING, nvml_to_errno(r), addr, addr,
				      "Cannot register NVML events of %s (%s), it is probed only.",
				      addr, nvml_error(&nv->api, r));
		return;
	}
	pthread_mutex_lock(&nv->map_lock);
	if (nv->n_registered < NVML_MAX_GPUS) {
		nv->registered[nv->n_registered].handle = h;
		memcpy(nv->registered[nv->n_registered++].addr, addr, 13);
	}
	pthread_mutex_unlock(&nv->map_lock);
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

	reap_stuck(nv);
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
	k = run_queries(nv, qs, n);
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
	k = run_queries(nv, tq, n_ok);
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
		register_events(nv, ok[i]->index, ok[i]->dev->id);
		if (add_cuda_facts(nv, ok[i]->dev) < 0) {
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
		query_unref(qs[i]);
		query_unref(tq[i]);
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

	reap_stuck(nv);
	sticky_take_resets(nv);
	if (sticky_reason(nv, d->id)) {
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
		r = run_queries(nv, &q, 1);
		if (r < 0) {
			/* NVML was not asked: not a sign of the GPU's health, nor of its absence */
			query_unref(q);
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
		query_unref(q);
	}
	return k;
}

static void event_send(struct nvidia *nv, const struct nvidia_event *ev)
{
	/* A full pipe drops the event: the loop is far behind and a rescan or probe follows. */
	(void)!write(nv->pipe[1], ev, sizeof(*ev));
}

/* Blocks in nvmlEventSetWait_v2, so the loop never does; hands each event over the pipe. */
static void *event_thread(void *userdata)
{
	struct nvidia *nv = userdata;
	bool failing = false;

	while (!atomic_load(&nv->stop)) {
		struct nvidia_event ev = {};
		nvmlEventData_t data = {};
		nvmlReturn_t r;

		r = nv->api.event_wait(nv->set, &data, NVML_EVENT_WAIT_MS);
		if (r == NVML_ERROR_TIMEOUT || r == NVML_SUCCESS) {
			if (failing) {
				failing = false;
				ev.recovered = true;
				event_send(nv, &ev);
				ev.recovered = false;
			}
			if (r == NVML_ERROR_TIMEOUT)
				continue;
		} else {
			if (!failing) {
				failing = true;
				ev.error = r;
				event_send(nv, &ev);
			}
			/* no busy loop while the driver is in trouble */
			struct timespec ts = { 1, 0 };

			nanosleep(&ts, NULL);
			continue;
		}
		pthread_mutex_lock(&nv->map_lock);
		for (size_t i = 0; i < nv->n_registered; i++)
			if (nv->registered[i].handle == data.device)
				memcpy(ev.addr, nv->registered[i].addr, 13);
		pthread_mutex_unlock(&nv->map_lock);
		ev.type = data.eventType;
		ev.data = data.eventData;
		ev.gi = data.gpuInstanceId;
		ev.ci = data.computeInstanceId;
		event_send(nv, &ev);
	}
	return NULL;
}

/*
 * The CUDA probe, run as "xpud --cuda-probe LIBRARY" in a short-lived child: loading libcuda and
 * cuInit keep ~7 MiB resident (H100, driver 580; docs/performance.md) and threads of their own,
 * which a daemon that aims at a few MiB must not carry. Prints "init_ms N" or "error TEXT", then one "gpu ADDR ORDINAL SMS THREADS L2 CLOCK"
 * line per device. Returns the exit status.
 */
int nvidia_cuda_probe_main(const char *library, FILE *out)
{
	struct {
		CUresult (*init)(unsigned int);
		CUresult (*count)(int *);
		CUresult (*get)(CUdevice *, int);
		CUresult (*bus_id)(char *, int, CUdevice);
		CUresult (*attribute)(int *, CUdevice_attribute, CUdevice);
	} cu;
	const struct dlsym_spec syms[] = {
		{ (void **)&cu.init, "cuInit" },
		{ (void **)&cu.count, "cuDeviceGetCount" },
		{ (void **)&cu.get, "cuDeviceGet" },
		{ (void **)&cu.bus_id, "cuDeviceGetPCIBusId" },
		{ (void **)&cu.attribute, "cuDeviceGetAttribute" },
	};
	static const CUdevice_attribute attrs[] = {
		CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
		CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR,
		CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE,
		CU_DEVICE_ATTRIBUTE_CLOCK_RATE,
	};
	_cleanup_free_ char *reason = NULL;
	struct timespec t0, t1;
	void *dl = NULL;
	int count = 0;
	CUresult r;

	if (dlopen_many(library, syms, ELEMENTSOF(syms), &dl, &reason) < 0) {
		fprintf(out, "error %s\n", reason ?: library);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = cu.init(0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (r != CUDA_SUCCESS || cu.count(&count) != CUDA_SUCCESS) {
		fprintf(out, "error cuInit failed (CUDA error %d)\n", r);
		return 1;
	}
	fprintf(out, "init_ms %ld\n",
		(long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
	for (int i = 0; i < count; i++) {
		int v[ELEMENTSOF(attrs)];
		char bus[32], addr[13];
		CUdevice dev;

		if (cu.get(&dev, i) != CUDA_SUCCESS ||
		    cu.bus_id(bus, (int)sizeof(bus), dev) != CUDA_SUCCESS ||
		    parse_pci_address(bus, addr) < 0)
			continue;
		for (size_t k = 0; k < ELEMENTSOF(attrs); k++)
			if (cu.attribute(&v[k], attrs[k], dev) != CUDA_SUCCESS || v[k] < 0)
				v[k] = 0;
		fprintf(out, "gpu %s %d %d %d %d %d\n", addr, i, v[0], v[1], v[2], v[3]);
	}
	return fflush(out) == 0 ? 0 : 1;
}

/* Parses the probe's answer into nv->cuda[] (or nv->cuda_error). */
static void cuda_parse(struct nvidia *nv, char *text)
{
	char *line, *save = NULL;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct cuda_fact f = {};
		char addr[16];

		if (strncmp(line, "error ", 6) == 0 && !nv->cuda_error) {
			nv->cuda_error = strdup(line + 6);
		} else if (sscanf(line, "init_ms %ld", &nv->cuda_init_ms) == 1) {
			continue;
		} else if (nv->n_cuda < NVML_MAX_GPUS &&
			   sscanf(line, "gpu %15s %d %d %d %d %d", addr, &f.ordinal,
				  &f.multiprocessors, &f.max_threads_per_sm, &f.l2_bytes,
				  &f.clock_khz) == 6 &&
			   parse_pci_address(addr, f.addr) >= 0) {
			nv->cuda[nv->n_cuda++] = f;
		}
	}
	if (!nv->cuda_error && nv->cuda_init_ms == 0 && nv->n_cuda == 0)
		nv->cuda_error = strdup("the CUDA probe gave no answer");
}

/* Runs the probe in a child and reads its answer (30 s at most). Own thread. */
static void *cuda_thread(void *userdata)
{
	struct nvidia *nv = userdata;
	struct nvidia_event done = { .cuda_done = true };
	char *argv[] = { (char *)"xpud", (char *)"--cuda-probe", nv->cuda_path, NULL };
	posix_spawn_file_actions_t fa;
	char buf[16384];
	size_t len = 0;
	int fds[2], status;
	pid_t pid = -1;
	long long deadline;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		nv->cuda_error = strdup("cannot create a pipe for the CUDA probe");
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	if (posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		nv->cuda_error = strdup("cannot start the CUDA probe");
		goto out;
	}
	deadline = 30000;
	while (len < sizeof(buf) - 1 && deadline > 0) {
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		ssize_t k;

		if (poll(&p, 1, 100) == 0) {
			deadline -= 100;
			continue;
		}
		k = read(fds[0], buf + len, sizeof(buf) - 1 - len);
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	close(fds[0]);
	if (deadline <= 0)
		kill(pid, SIGKILL);
	(void)waitpid(pid, &status, 0);
	buf[len] = '\0';
	cuda_parse(nv, buf);
out:
	atomic_store(&nv->cuda_finished, true);
	event_send(nv, &done);
	return NULL;
}

static int nvidia_watch(struct xpu_backend *b)
{
	struct nvidia *nv = b->userdata;

	if (nv->pipe[0] < 0)
		return -EOPNOTSUPP;
	/* After the first inventory, so READY never waits for cuInit. */
	if (nv->cuda_path && !nv->cuda_thread_started &&
	    pthread_create(&nv->cuda_thread, NULL, cuda_thread, nv) == 0)
		nv->cuda_thread_started = true;
	if (nv->have_set && !nv->event_thread_started &&
	    pthread_create(&nv->event_thread, NULL, event_thread, nv) == 0)
		nv->event_thread_started = true;
	return nv->event_thread_started || nv->cuda_thread_started ? nv->pipe[0] : -EOPNOTSUPP;
}

static int update_push(struct backend_update **u, size_t *n, const char *addr, const char *reason,
		       enum health_action action)
{
	struct backend_update *m = realloc(*u, (*n + 1) * sizeof(*m));

	if (!m)
		return -ENOMEM;
	*u = m;
	m[*n] = (struct backend_update){ .id = strdup(addr),
					 .health = { XPU_HEALTH_UNHEALTHY, strdup(reason),
						     action } };
	if (!m[*n].id || !m[*n].health.reason) {
		free(m[*n].id);
		free(m[*n].health.reason);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

/* What one event means: log it, and make its GPU unhealthy when it needs a reset or more. */
static int handle_event(struct xpu_backend *b, const struct nvidia_event *ev,
			struct backend_update **u, size_t *n, bool *rescan)
{
	struct nvidia *nv = b->userdata;
	char reason[192], scope[64] = "";
	enum health_action a;
	const char *what;

	if (ev->error) {
		free(b->reason);
		b->reason = NULL;
		if (asprintf(&b->reason, "degraded: waiting for NVML events failed: %s",
			     nvml_error(&nv->api, ev->error)) < 0)
			b->reason = NULL;
		log_warning("Waiting for NVML events failed (%s): GPU health events are not seen "
			    "until it works again; the GPUs are still probed.",
			    nvml_error(&nv->api, ev->error));
		return 0;
	}
	if (ev->recovered) {
		b->reason = mfree(b->reason);
		log_notice("NVML events are delivered again.");
		return 0;
	}
	if (ev->cuda_done) {
		if (nv->cuda_error)
			log_info("The CUDA driver API adds nothing: %s.", nv->cuda_error);
		else
			log_info("CUDA driver API: %zu GPUs (cuInit took %ld ms in a helper "
				 "process, after READY).",
				 nv->n_cuda, nv->cuda_init_ms);
		*rescan = true; /* merge its facts */
		return 0;
	}
	if (ev->type & nvmlEventMigConfigChange) {
		*rescan = true; /* instances came or went: re-read them */
		return 0;
	}
	if (!ev->addr[0])
		return 0; /* a GPU we never registered */
	if (ev->gi != 0xFFFFFFFFu && ev->type & nvmlEventTypeXidCriticalError)
		snprintf(scope, sizeof(scope), " in GPU instance %u, compute instance %u", ev->gi,
			 ev->ci);
	if (ev->type & nvmlEventTypeDoubleBitEccError) {
		a = HEALTH_ACTION_RESET_DEVICE;
		snprintf(reason, sizeof(reason), "double-bit ECC error: %s",
			 health_action_to_string(a));
	} else if (ev->type & nvmlEventTypeXidCriticalError) {
		a = nvidia_xid_action((unsigned)ev->data, b->config, &what);
		snprintf(reason, sizeof(reason), "XID %llu (%s)%s: %s", ev->data, what, scope,
			 health_action_to_string(a));
	} else {
		return 0;
	}
	if (a < HEALTH_ACTION_RESET_DEVICE) {
		log_device_full_errno(LOG_INFO, 0, ev->addr, ev->addr,
				      "GPU %s: %s; the GPU stays healthy.", ev->addr, reason);
		return 0;
	}
	if (ev->gi != 0xFFFFFFFFu && (ev->type & nvmlEventTypeXidCriticalError)) {
		const char *mig = mig_uuid_of(nv, ev->addr, ev->gi, ev->ci);

		if (mig) {
			/* one instance's fault: its slice, not the GPU and its other instances */
			log_device_full_errno(LOG_WARNING, 0, ev->addr, ev->addr,
					      "GPU %s, MIG device %s: %s.", ev->addr, mig, reason);
			if (sticky_add(nv, ev->addr, mig, reason, a) < 0)
				return -ENOMEM;
			*rescan = true;
			return 0;
		}
	}
	log_device_full_errno(LOG_WARNING, 0, ev->addr, ev->addr, "GPU %s: %s.", ev->addr,
			      reason);
	if (sticky_add(nv, ev->addr, NULL, reason, a) < 0)
		return -ENOMEM;
	return update_push(u, n, ev->addr, sticky_reason(nv, ev->addr),
			   sticky_action(nv, ev->addr));
}

static bool event_equal(const struct nvidia_event *a, const struct nvidia_event *b)
{
	return streq(a->addr, b->addr) && a->error == b->error && a->recovered == b->recovered &&
	       a->type == b->type && a->data == b->data && a->gi == b->gi && a->ci == b->ci;
}

static int nvidia_dispatch(struct xpu_backend *b, struct backend_update **ret_updates,
			   size_t *ret_n, bool *ret_rescan)
{
	struct nvidia *nv = b->userdata;
	struct backend_update *u = NULL;
	struct nvidia_event ev, prev = {};
	bool rescan = false;
	size_t n = 0;
	int r = 0;
	unsigned repeats = 0;

	/* Bounded: a storm is drained a pipe-full at a time, the loop gets its turn between.
	 * Repeats of one event (an XID storm) are counted, not handled and logged one by one. */
	for (int i = 0; i < 1024; i++) {
		ssize_t k = read(nv->pipe[0], &ev, sizeof(ev));

		if (k != (ssize_t)sizeof(ev))
			break;
		if (i > 0 && event_equal(&ev, &prev)) {
			repeats++;
			continue;
		}
		if (repeats)
			log_device_full_errno(LOG_INFO, 0, prev.addr, prev.addr,
					      "The last event of GPU %s repeated %u times.",
					      prev.addr, repeats);
		repeats = 0;
		prev = ev;
		r = handle_event(b, &ev, &u, &n, &rescan);
		if (r < 0)
			break;
	}
	if (repeats)
		log_device_full_errno(LOG_INFO, 0, prev.addr, prev.addr,
				      "The last event of GPU %s repeated %u times.", prev.addr,
				      repeats);
	if (r < 0) {
		backend_updates_free(u, n);
		return r;
	}
	*ret_updates = u;
	*ret_n = n;
	*ret_rescan = rescan;
	return 0;
}

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
static int nvidia_apply_offer(struct xpu_backend *b, const struct xpu_device *d,
			      const struct offer *o, char **ret_error)
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
static int nvidia_reset(struct xpu_backend *b, const struct xpu_device *d, char **ret_reason)
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
	reap_stuck(nv);
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
		query_unref(nv->stuck[i]);
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
	.apply_offer = nvidia_apply_offer,
	.reset = nvidia_reset,
	.close = nvidia_close,
};
