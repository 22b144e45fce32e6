/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the NVIDIA backend's files share: nvidia.c (the ops, probe and close, enumerate and
 * refresh, the faults events leave on a GPU), nvidia-query.c (the per-GPU NVML queries on their
 * threads), nvidia-events.c (the event thread and what its events mean), nvidia-kmsg-events.c
 * (what the kernel log's XID lines mean), nvidia-cuda.c (the CUDA probe) and nvidia-apply.c (MIG
 * layouts and resets, off the loop). Private to the NVIDIA backend: NVML types do not leave
 * these files.
 */
#pragma once

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "backends/backend.h"
#include "backends/nvidia-mig.h"
#include "backends/nvidia-nvml.h"
#include "shared/parse.h"

#define NVML_QUERY_TIMEOUT_USEC (2 * 1000000ULL)
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

/* The last XID line of the kernel log that was handled (nvidia-kmsg-events.c): the same one
 * again soon after is a repeat (an XID storm), counted and not handled again. */
struct nvidia_kmsg_last {
	bool valid;
	char addr[13];
	unsigned xid;
	bool has_gi, has_ci;
	unsigned gi, ci;
	uint64_t usec;	  /* the kernel's timestamp of its last repeat */
	unsigned repeats; /* not yet logged */
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

	/* The kernel log (main thread): repeats, and when an unreadable line was last warned of. */
	struct nvidia_kmsg_last kmsg_last;
	uint64_t kmsg_bad_usec;
};

static inline const char *nvml_error(const struct nvml *api, nvmlReturn_t r)
{
	const char *s = api->error_string ? api->error_string(r) : NULL;

	return s ?: "unknown NVML error";
}

static inline int nvml_to_errno(nvmlReturn_t r)
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

/* "00000000:18:00.0" (NVML's eight-digit domain) -> "0000:18:00.0". */
static inline int nvml_bus_id(const nvmlPciInfo_t *pci, char ret[static 13])
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

static inline int set_prop_u(struct xpu_device *d, const char *key, unsigned long long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", v);
	return device_set_property(d, key, buf);
}

/* The functions the files share, each described where it is defined. */

/* nvidia.c: what events said of the GPUs and their MIG devices (main thread). */
const char *nvidia_sticky_reason(const struct nvidia *nv, const char *addr);
enum health_action nvidia_sticky_action(const struct nvidia *nv, const char *addr);
int nvidia_sticky_add(struct nvidia *nv, const char *addr, const char *slice, const char *reason,
		      enum health_action action);
const char *nvidia_mig_uuid_of(const struct nvidia *nv, const char *addr, unsigned gi,
			       unsigned ci);

/* nvidia-query.c: the per-GPU queries. */
void nvidia_query_unref(struct gpu_query *q);
int nvidia_run_queries(struct nvidia *nv, struct gpu_query **qs, size_t n);
void nvidia_reap_stuck(struct nvidia *nv);

/* nvidia-events.c: the event thread, its pipe to the loop, and the ops that read it. */
void nvidia_register_events(struct nvidia *nv, unsigned index, const char *addr);
void nvidia_event_send(struct nvidia *nv, const struct nvidia_event *ev);
int nvidia_watch(struct xpu_backend *b);
int nvidia_dispatch(struct xpu_backend *b, struct backend_update **ret_updates, size_t *ret_n,
		    bool *ret_rescan);

/* nvidia-kmsg-events.c: the kernel log's XID lines, the backend's kmsg op. */
int nvidia_kmsg(struct xpu_backend *b, const struct kmsg_record *rec,
		struct backend_update **ret_updates, size_t *ret_n, bool *ret_rescan);

/* nvidia-cuda.c: the CUDA probe's thread and what it found. */
void *nvidia_cuda_thread(void *userdata);
int nvidia_add_cuda_facts(const struct nvidia *nv, struct xpu_device *d);

/* nvidia-apply.c: the ops that change a GPU. */
int nvidia_apply_offer(struct xpu_backend *b, const struct xpu_device *d, const struct offer *o,
		       char **ret_error);
int nvidia_reset(struct xpu_backend *b, const struct xpu_device *d, char **ret_reason);
