/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The NVML side of the NVIDIA backend, which runs only in the helper process ("xpud-helper
 * nvml", agent/xpud-helper.c), never in xpud: loading NVML (nvml.c), what it says of each GPU
 * (nvml-query.c, on bounded threads), the enumeration built from that (nvml.c), MIG layouts
 * (nvml-mig.c) and the process check before a reset (nvml-apply.c). What leaves these files is
 * plain data, written in the helper protocol (core/helper-proto.h).
 */
#pragma once

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/device.h"
#include "core/policy.h"
#include "runtimes/nvidia-nvml.h"
#include "runtimes/nvml-mig.h"
#include "shared/host.h"
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
	nvmlReturn_t (*utilization)(nvmlDevice_t, nvmlUtilization_t *);
	nvmlReturn_t (*ecc_total)(nvmlDevice_t, nvmlMemoryErrorType_t, nvmlEccCounterType_t,
				  unsigned long long *);
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
	nvmlReturn_t (*compute_processes)(nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *);
	nvmlReturn_t (*graphics_processes)(nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *);
	struct nvml_mig_api mig; /* creating and destroying MIG instances (nvml-mig.c) */
};

/* NVML, loaded and initialized, in the helper. */
struct nvml_session {
	struct nvml api;
	const struct xpu_host *host;
	char driver_version[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];
	int cuda_version;
	atomic_int outstanding; /* query threads still running */
};

/* Which GPU and compute instance a MIG device is: the kernel log names instances by their ids. */
struct mig_ref {
	unsigned gi, ci;
	char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
};

/* What one GPU's query thread found. Shared by the thread and the caller, reference-counted,
 * so a thread that outlives its deadline can finish and free it on its own. */
struct gpu_query {
	atomic_int refs;
	atomic_bool done;
	const struct nvml *api;
	const struct xpu_host *host;
	atomic_int *outstanding; /* the session's count of running threads */
	unsigned index;
	bool topology_phase;
	/* phase 1 */
	char addr[13];		/* the PCI address, once NVML said it */
	atomic_bool addr_known;
	nvmlReturn_t error;	/* why NVML could not say it */
	struct xpu_device *dev; /* NULL when NVML could not tell which PCI function it is */
	char **nvlink_remotes;	/* canonical addresses, one per active link */
	struct mig_ref migs[NVML_MAX_MIG];
	unsigned n_migs;
	/* phase 2 */
	unsigned n_peers;
	unsigned peer_index[NVML_MAX_GPUS];
	int peer_level[NVML_MAX_GPUS];
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

/* nvml.c: loading NVML, and the enumeration the helper prints. */

/*
 * Loads @library and runs nvmlInit_v2. 0; or -errno with a malloc'd reason in *ret_reason and
 * *ret_unavailable set when NVML is not there (no library, no driver: not a fault).
 */
int nvml_open(struct nvml_session *s, const char *library, const struct xpu_host *host,
	      char **ret_reason, bool *ret_unavailable);
void nvml_close(struct nvml_session *s);

/* Every GPU NVML lists, written to @out as device and slice-ref messages. 0 or -errno. */
int nvml_enumerate(struct nvml_session *s, FILE *out);

/* nvml-query.c: the per-GPU queries. */
void nvml_query_unref(struct gpu_query *q);
int nvml_run_queries(struct nvml_session *s, struct gpu_query **qs, size_t n);

/* nvml-apply.c: what changes a GPU, and what a reset asks first. Each writes one result message
 * to @out. 0, or -errno when it could not write. */
int nvml_apply(struct nvml_session *s, const char *addr, const struct offer *o, FILE *out);
int nvml_processes(struct nvml_session *s, const char *addr, FILE *out);

/* cuda.c: the CUDA driver API's facts of each GPU, written as facts messages. Returns the exit
 * status. */
int cuda_probe_main(const char *library, FILE *out);
