// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A stand-in for libnvidia-ml.so.1: the NVML functions that xpud resolves (runtimes/nvidia-nvml.h),
 * answered from a JSON node description named by $XPU_FAKE_NVML (format in tests/fakes/README.md),
 * so that the real NVIDIA backend runs in CI without a GPU or a driver.
 *
 * It behaves like the driver's library where the backend can tell: reference-counted init, every
 * call before it UNINITIALIZED, handles checked on every call, string getters that honour the
 * caller's length. On top of that a description can inject, per GPU, an error for one function or
 * for all of them, and a delay before a function answers.
 *
 * Built twice: as is, and with FAKE_NVML_OLD, an old driver's library that lacks the functions
 * added after it (NUMA node id, MIG, events), which the backend must treat as missing features.
 *
 * A GPU with MIG enabled has MIG device handles, one per GPU instance of the description (each
 * with one compute instance): pointers into the GPU's record, distinct from every GPU handle,
 * which the getters that the driver answers for a MIG device also take.
 *
 * A driver keeps a GPU's MIG mode and instances in the kernel, and xpud asks NVML from a new
 * process for each request: the MIG changes, and the counts of the calls that "fail_call" names,
 * live in the file "<description>.mig-state", which every process reads (see "what outlives a
 * process" below, and "MIG state" in the README).
 *
 * Events come from a FIFO named by $XPU_FAKE_NVML_EVENTS, one line per event, written by the test:
 * see "Events" at the end of this file and in the README.
 *
 * The file "<description>.fault" makes calls crash, abort, hang, leak, exit or write garbage to
 * stdout at run time (fake-fault.c): each call passes its kind, init, query, apply (MIG
 * management) or processes, to call_enter(), the first thing it does.
 *
 * Only the NVML symbols are exported (the target is built with hidden visibility; the header's
 * declarations are made default here). A malformed description makes nvmlInit_v2 fail with
 * NVML_ERROR_UNKNOWN and one line on stderr naming the key: a fake that quietly ignored a typo
 * would make tests that cannot fail.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shared/macro.h"
#include "shared/parse.h"

#include "fake-fault.h"
#include "fake-json.h"
#include "fake-node-keys.h"

#pragma GCC visibility push(default)
#include "runtimes/nvidia-nvml.h"
#pragma GCC visibility pop

#define FAKE_MAX_GPUS 64
#define FAKE_MIG_SLICES 7 /* GPU slices of an A100/H100; also the most MIG devices a GPU has */
#define FAKE_MAX_GI_ID 14 /* GPU instance ids are 0..14, compute instance ids 0..7 */
#define FAKE_MAX_CI_ID 7
#define FAKE_MAX_HANG_MS 600000
#define FAKE_SWITCH_MAX 64

/* 0x22a3 is the NVSwitch of HGX H100 boards: what an NvLink leads to when it is not a GPU. */
#define FAKE_NVSWITCH_PCI_DEVICE_ID 0x22a310deu

/* ---- return codes ---------------------------------------------------------------------------- */

static const struct fake_error {
	nvmlReturn_t code;
	const char *name; /* NVML_ERROR_<name>, as descriptions spell it */
	const char *text; /* nvmlErrorString() */
} fake_errors[] = {
	{ NVML_SUCCESS, "SUCCESS", "Success" },
	{ NVML_ERROR_UNINITIALIZED, "UNINITIALIZED", "Uninitialized" },
	{ NVML_ERROR_INVALID_ARGUMENT, "INVALID_ARGUMENT", "Invalid Argument" },
	{ NVML_ERROR_NOT_SUPPORTED, "NOT_SUPPORTED", "Not Supported" },
	{ NVML_ERROR_NO_PERMISSION, "NO_PERMISSION", "Insufficient Permissions" },
	{ NVML_ERROR_ALREADY_INITIALIZED, "ALREADY_INITIALIZED", "Already Initialized" },
	{ NVML_ERROR_NOT_FOUND, "NOT_FOUND", "Not Found" },
	{ NVML_ERROR_INSUFFICIENT_SIZE, "INSUFFICIENT_SIZE", "Insufficient Size" },
	{ NVML_ERROR_DRIVER_NOT_LOADED, "DRIVER_NOT_LOADED", "Driver Not Loaded" },
	{ NVML_ERROR_TIMEOUT, "TIMEOUT", "Timeout" },
	{ NVML_ERROR_LIBRARY_NOT_FOUND, "LIBRARY_NOT_FOUND", "NVML Shared Library Not Found" },
	{ NVML_ERROR_FUNCTION_NOT_FOUND, "FUNCTION_NOT_FOUND", "Function Not Found" },
	{ NVML_ERROR_GPU_IS_LOST, "GPU_IS_LOST", "GPU is lost" },
	{ NVML_ERROR_RESET_REQUIRED, "RESET_REQUIRED", "GPU requires reset" },
	{ NVML_ERROR_LIB_RM_VERSION_MISMATCH, "LIB_RM_VERSION_MISMATCH",
	  "RM has detected an NVML/RM version mismatch" },
	{ NVML_ERROR_IN_USE, "IN_USE", "In use by another client" },
	{ NVML_ERROR_MEMORY, "MEMORY", "Insufficient Memory" },
	{ NVML_ERROR_NO_DATA, "NO_DATA", "No data" },
	{ NVML_ERROR_INSUFFICIENT_RESOURCES, "INSUFFICIENT_RESOURCES", "Insufficient resources" },
	{ NVML_ERROR_UNKNOWN, "UNKNOWN", "Unknown Error" },
};

static const struct fake_error *fake_error_by_name(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(fake_errors); i++)
		if (streq(fake_errors[i].name, name))
			return &fake_errors[i];
	return NULL;
}

/* ---- the per-device functions, by symbol name (for "errors" and "hang_ms") ------------------- */

enum fake_fn {
	FN_HANDLE_BY_INDEX, /* not covered by "*": it takes an index, not a handle */
	FN_UUID,
	FN_NAME,
	FN_PCI_INFO,
	FN_MEMORY_INFO,
	FN_COMPUTE_CAPABILITY,
	FN_SERIAL,
	FN_MINOR,
	FN_NUMA_NODE,
	FN_POWER,
	FN_TEMPERATURE,
	FN_UTILIZATION,
	FN_ECC_TOTAL,
	FN_MIG_MODE,
	FN_GI_PROFILE_INFO,
	FN_GI_REMAINING,
	FN_TOPOLOGY,
	FN_NVLINK_STATE,
	FN_NVLINK_REMOTE_PCI,
	FN_MAX_MIG_COUNT,
	FN_MIG_HANDLE_BY_INDEX,
	FN_GI_ID,
	FN_CI_ID,
	FN_ATTRIBUTES,
	FN_SUPPORTED_EVENTS,
	FN_REGISTER_EVENTS,
	FN_COMPUTE_PROCESSES,
	FN_GRAPHICS_PROCESSES,
	FN_SET_MIG_MODE, /* the MIG management functions, to the end: fn_fault_where() */
	FN_GET_GPU_INSTANCES,
	FN_CREATE_GPU_INSTANCE,
	FN_GPU_INSTANCE_DESTROY,
	FN_CI_PROFILE_INFO,
	FN_GET_COMPUTE_INSTANCES,
	FN_CREATE_COMPUTE_INSTANCE,
	FN_COMPUTE_INSTANCE_DESTROY,
	_FN_MAX,
};

static const char *const fn_names[_FN_MAX] = {
	[FN_HANDLE_BY_INDEX] = "nvmlDeviceGetHandleByIndex_v2",
	[FN_UUID] = "nvmlDeviceGetUUID",
	[FN_NAME] = "nvmlDeviceGetName",
	[FN_PCI_INFO] = "nvmlDeviceGetPciInfo_v3",
	[FN_MEMORY_INFO] = "nvmlDeviceGetMemoryInfo",
	[FN_COMPUTE_CAPABILITY] = "nvmlDeviceGetCudaComputeCapability",
	[FN_SERIAL] = "nvmlDeviceGetSerial",
	[FN_MINOR] = "nvmlDeviceGetMinorNumber",
	[FN_NUMA_NODE] = "nvmlDeviceGetNumaNodeId",
	[FN_POWER] = "nvmlDeviceGetPowerUsage",
	[FN_TEMPERATURE] = "nvmlDeviceGetTemperature",
	[FN_UTILIZATION] = "nvmlDeviceGetUtilizationRates",
	[FN_ECC_TOTAL] = "nvmlDeviceGetTotalEccErrors",
	[FN_MIG_MODE] = "nvmlDeviceGetMigMode",
	[FN_GI_PROFILE_INFO] = "nvmlDeviceGetGpuInstanceProfileInfo",
	[FN_GI_REMAINING] = "nvmlDeviceGetGpuInstanceRemainingCapacity",
	[FN_TOPOLOGY] = "nvmlDeviceGetTopologyCommonAncestor",
	[FN_NVLINK_STATE] = "nvmlDeviceGetNvLinkState",
	[FN_NVLINK_REMOTE_PCI] = "nvmlDeviceGetNvLinkRemotePciInfo_v2",
	[FN_MAX_MIG_COUNT] = "nvmlDeviceGetMaxMigDeviceCount",
	[FN_MIG_HANDLE_BY_INDEX] = "nvmlDeviceGetMigDeviceHandleByIndex",
	[FN_GI_ID] = "nvmlDeviceGetGpuInstanceId",
	[FN_CI_ID] = "nvmlDeviceGetComputeInstanceId",
	[FN_ATTRIBUTES] = "nvmlDeviceGetAttributes_v2",
	[FN_SUPPORTED_EVENTS] = "nvmlDeviceGetSupportedEventTypes",
	[FN_REGISTER_EVENTS] = "nvmlDeviceRegisterEvents",
	[FN_COMPUTE_PROCESSES] = "nvmlDeviceGetComputeRunningProcesses_v3",
	[FN_GRAPHICS_PROCESSES] = "nvmlDeviceGetGraphicsRunningProcesses_v3",
	/* these take a GPU or compute instance handle: the errors of its GPU apply */
	[FN_SET_MIG_MODE] = "nvmlDeviceSetMigMode",
	[FN_GET_GPU_INSTANCES] = "nvmlDeviceGetGpuInstances",
	[FN_CREATE_GPU_INSTANCE] = "nvmlDeviceCreateGpuInstance",
	[FN_GPU_INSTANCE_DESTROY] = "nvmlGpuInstanceDestroy",
	[FN_CI_PROFILE_INFO] = "nvmlGpuInstanceGetComputeInstanceProfileInfo",
	[FN_GET_COMPUTE_INSTANCES] = "nvmlGpuInstanceGetComputeInstances",
	[FN_CREATE_COMPUTE_INSTANCE] = "nvmlGpuInstanceCreateComputeInstance",
	[FN_COMPUTE_INSTANCE_DESTROY] = "nvmlComputeInstanceDestroy",
};

/*
 * The kind of call a function is for the run-time fault (fake-fault.h): the MIG management
 * functions "apply", the process lists "processes", every other per-device function "query".
 */
static enum fake_fault_where fn_fault_where(enum fake_fn fn)
{
	if (fn == FN_COMPUTE_PROCESSES || fn == FN_GRAPHICS_PROCESSES)
		return FAKE_FAULT_PROCESSES;
	if (fn >= FN_SET_MIG_MODE)
		return FAKE_FAULT_APPLY;
	return FAKE_FAULT_QUERY;
}

/* ---- GPU instance profiles, as the driver reports them (nvidia-smi mig -lgip) --------------- */

struct fake_gi_profile {
	unsigned index;	  /* NVML_GPU_INSTANCE_PROFILE_* */
	const char *name; /* as in a MIG device's name: "1g.10gb" */
	nvmlGpuInstanceProfileInfo_t info;
};

#define GI(idx, pname, pid, slices, count, sms, ce, dec, jpeg, ofa, mb)                            \
	{                                                                                          \
		.index = (idx), .name = (pname), .info = {                                         \
			.id = (pid),                                                               \
			.sliceCount = (slices),                                                    \
			.instanceCount = (count),                                                  \
			.multiprocessorCount = (sms),                                              \
			.copyEngineCount = (ce),                                                   \
			.decoderCount = (dec),                                                     \
			.jpegCount = (jpeg),                                                       \
			.ofaCount = (ofa),                                                         \
			.memorySizeMB = (mb),                                                      \
		}                                                                                  \
	}

/* From a real H100 80GB HBM3 (driver 580.159.04). */
static const struct fake_gi_profile profiles_h100_80gb[] = {
	GI(NVML_GPU_INSTANCE_PROFILE_1_SLICE, "1g.10gb", 19, 1, 7, 16, 1, 1, 1, 0, 9984),
	GI(NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1, "1g.10gb+me", 20, 1, 1, 16, 1, 1, 1, 1, 9984),
	GI(NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2, "1g.20gb", 15, 1, 4, 26, 1, 1, 1, 0, 20096),
	GI(NVML_GPU_INSTANCE_PROFILE_2_SLICE, "2g.20gb", 14, 2, 3, 32, 2, 2, 2, 0, 20096),
	GI(NVML_GPU_INSTANCE_PROFILE_3_SLICE, "3g.40gb", 9, 3, 2, 60, 3, 3, 3, 0, 40448),
	GI(NVML_GPU_INSTANCE_PROFILE_4_SLICE, "4g.40gb", 5, 4, 1, 64, 4, 4, 4, 0, 40448),
	GI(NVML_GPU_INSTANCE_PROFILE_7_SLICE, "7g.80gb", 0, 7, 1, 132, 8, 7, 7, 1, 81152),
	{},
};

/* A100-SXM4-40GB; engine counts per NVIDIA's MIG user guide. */
static const struct fake_gi_profile profiles_a100_40gb[] = {
	GI(NVML_GPU_INSTANCE_PROFILE_1_SLICE, "1g.5gb", 19, 1, 7, 14, 1, 0, 0, 0, 4864),
	GI(NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1, "1g.5gb+me", 20, 1, 1, 14, 1, 1, 1, 1, 4864),
	GI(NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2, "1g.10gb", 15, 1, 4, 14, 1, 1, 0, 0, 9856),
	GI(NVML_GPU_INSTANCE_PROFILE_2_SLICE, "2g.10gb", 14, 2, 3, 28, 2, 1, 0, 0, 9856),
	GI(NVML_GPU_INSTANCE_PROFILE_3_SLICE, "3g.20gb", 9, 3, 2, 42, 3, 2, 0, 0, 19968),
	GI(NVML_GPU_INSTANCE_PROFILE_4_SLICE, "4g.20gb", 5, 4, 1, 56, 4, 2, 0, 0, 19968),
	GI(NVML_GPU_INSTANCE_PROFILE_7_SLICE, "7g.40gb", 0, 7, 1, 98, 7, 5, 1, 1, 40192),
	{},
};

#undef GI

static const struct {
	const char *name;
	const struct fake_gi_profile *table; /* ends with sliceCount 0 */
} profile_tables[] = {
	{ "h100-80gb", profiles_h100_80gb },
	{ "a100-40gb", profiles_a100_40gb },
};

static const struct fake_gi_profile *gi_by_id(const struct fake_gi_profile *t, unsigned id)
{
	for (; t && t->info.sliceCount; t++)
		if (t->info.id == id)
			return t;
	return NULL;
}

/* ---- state ----------------------------------------------------------------------------------- */

struct fake_pci_addr {
	unsigned domain, bus, device, function;
};

/*
 * A GPU instance with its one compute instance: what a MIG device handle points to. A GPU
 * instance created through nvmlDeviceCreateGpuInstance has no compute instance (and is no MIG
 * device) until nvmlGpuInstanceCreateComputeInstance.
 */
struct fake_mig_device {
	const struct fake_gi_profile *prof;
	unsigned gi, ci;
	bool has_ci;
	char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE]; /* "MIG-..." */
};

struct fake_gpu {
	struct fake_pci_addr pci;
	unsigned pci_device_id, pci_subsystem_id;
	char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
	char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
	char serial[NVML_DEVICE_SERIAL_BUFFER_SIZE]; /* "": NOT_SUPPORTED */
	unsigned minor;
	bool has_memory, has_cc, has_power, has_temperature, has_utilization, has_ecc;
	unsigned long long memory_bytes, memory_used_bytes;
	int cc_major, cc_minor;
	int numa_node; /* -1: NOT_SUPPORTED */
	unsigned power_mw, temperature_c;
	unsigned utilization_gpu, utilization_memory; /* percent */
	unsigned long long ecc_corrected, ecc_uncorrected; /* volatile counts */

	bool has_mig, mig_current, mig_pending;
	const struct fake_gi_profile *profiles; /* NULL: none */
	/* The existing GPU instances; &instances[i] is a MIG device handle while mig_current. */
	struct fake_mig_device instances[FAKE_MIG_SLICES];
	unsigned n_instances;
	/* GPU and compute instance handles point here, by GPU instance id (one compute instance
	 * per GPU instance); a handle is valid while that GPU instance (and compute instance)
	 * exists. */
	char gi_handles[FAKE_MAX_GI_ID + 1], ci_handles[FAKE_MAX_GI_ID + 1];
	unsigned n_created; /* GPU instances ever created (state file): their UUIDs' numbers */

	int topo_numa; /* -1: unknown */
	char topo_switch[FAKE_SWITCH_MAX]; /* "": none */

	bool has_nvlinks;
	bool nvlink_active[NVML_NVLINK_MAX_LINKS];
	struct fake_pci_addr nvlink_remote[NVML_NVLINK_MAX_LINKS];

	bool no_events; /* "events": false: nvmlDeviceGetSupportedEventTypes is NOT_SUPPORTED */
	unsigned processes; /* compute processes with a context on the GPU (pids 1000, 1001, ...) */

	nvmlReturn_t error_all;
	nvmlReturn_t error[_FN_MAX];
	unsigned hang_all_ms;
	unsigned hang_ms[_FN_MAX];
	/* "fail_call": the fail_call_n'th call of a function (from 1) on the node, whichever
	 * process makes it, fails with its error, once: counted in the state file */
	unsigned fail_call_n[_FN_MAX];
	nvmlReturn_t fail_call_error[_FN_MAX];

	unsigned handle_calls; /* nvmlDeviceGetHandleByIndex_v2 for this index: fake_nvml_handle_calls */
};

struct fake_node {
	char driver_version[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];
	int cuda_version;
	nvmlReturn_t init_error;
	long long init_hang_ms; /* nvmlInit_v2 sleeps this long before answering */
	unsigned n_gpus;
	struct fake_gpu gpus[FAKE_MAX_GPUS];
};

/*
 * Everything below is guarded by fake_lock. Handles point into node.gpus[], which stays where it
 * is for the life of the process, so a stale handle is caught by the bounds check, never a crash.
 */
static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned init_count;
static unsigned generation; /* bumped by every first init, so a sleeper can tell it missed one */
static struct fake_node node;

/* ---- parsing the description ----------------------------------------------------------------- */

static int parse_pci_addr(const char *s, struct fake_pci_addr *ret)
{
	char canonical[13];
	int r;

	r = parse_pci_address(s, canonical);
	if (r < 0)
		return r;
	if (sscanf(canonical, "%x:%x:%x.%x", &ret->domain, &ret->bus, &ret->device,
		   &ret->function) != 4)
		return -EINVAL;
	return 0;
}

static bool pci_addr_equal(const struct fake_pci_addr *a, const struct fake_pci_addr *b)
{
	return a->domain == b->domain && a->bus == b->bus && a->device == b->device &&
	       a->function == b->function;
}

static int fn_by_name(const char *name)
{
	for (int i = 0; i < _FN_MAX; i++)
		if (streq(fn_names[i], name))
			return i;
	return -ENOENT;
}

/* {"nvmlDeviceGetName": "NOT_SUPPORTED", "*": "GPU_IS_LOST"} */
static int parse_errors(struct fake_json_parser *p, json_t *obj, struct fake_gpu *gpu)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		const struct fake_error *e;
		int fn = 0;

		if (!streq(key, "*")) {
			fn = fn_by_name(key);
			if (fn < 0)
				return fake_json_fail(p, "errors.%s: not a per-device NVML "
						      "function", key);
		}
		if (!json_is_string(v))
			return fake_json_fail(p, "errors.%s: expected string", key);
		e = fake_error_by_name(json_string_value(v));
		if (!e || e->code == NVML_SUCCESS)
			return fake_json_fail(p, "errors.%s: \"%s\" is not an NVML error name", key,
					      json_string_value(v));
		if (streq(key, "*"))
			gpu->error_all = e->code;
		else
			gpu->error[fn] = e->code;
	}
	return 0;
}

/* {"nvmlDeviceGetName": 3000, "*": 100} */
static int parse_hangs(struct fake_json_parser *p, json_t *obj, struct fake_gpu *gpu)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		json_int_t ms = json_integer_value(v);
		int fn = 0;

		if (!streq(key, "*")) {
			fn = fn_by_name(key);
			if (fn < 0)
				return fake_json_fail(p, "hang_ms.%s: not a per-device NVML "
						      "function", key);
		}
		if (!json_is_integer(v) || ms < 0 || ms > FAKE_MAX_HANG_MS)
			return fake_json_fail(p, "hang_ms.%s: expected milliseconds, 0..%d", key,
					      FAKE_MAX_HANG_MS);
		if (streq(key, "*"))
			gpu->hang_all_ms = (unsigned)ms;
		else
			gpu->hang_ms[fn] = (unsigned)ms;
	}
	return 0;
}

/* {"nvmlDeviceCreateGpuInstance": [2, "INSUFFICIENT_RESOURCES"]}: the second call fails. */
static int parse_fail_calls(struct fake_json_parser *p, json_t *obj, struct fake_gpu *gpu)
{
	const char *key;
	json_t *v;

	json_object_foreach (obj, key, v) {
		json_t *n = json_array_get(v, 0), *name = json_array_get(v, 1);
		const struct fake_error *e = fake_error_by_name(json_string_value(name) ?: "");
		int fn = fn_by_name(key);

		if (fn < 0)
			return fake_json_fail(p, "fail_call.%s: not a per-device NVML function",
					      key);
		if (json_array_size(v) != 2 || !json_is_integer(n) || json_integer_value(n) < 1 ||
		    json_integer_value(n) > 1000000 || !e || e->code == NVML_SUCCESS)
			return fake_json_fail(p,
					      "fail_call.%s: expected [call number from 1, NVML "
					      "error name]",
					      key);
		gpu->fail_call_n[fn] = (unsigned)json_integer_value(n);
		gpu->fail_call_error[fn] = e->code;
	}
	return 0;
}

/* FNV-1a, 64 bits: a stable hash of a name in the description. */
static uint64_t fnv1a(const char *s)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/* splitmix64's step: spreads FNV's nearly equal hashes of nearly equal names over all bits. */
static uint64_t splitmix64(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

/*
 * The UUID of the MIG device at @position of a GPU whose UUID is @gpu_uuid, when the description
 * gives none: hi = splitmix64(FNV-1a("<gpu_uuid>/mig/<position>")), lo = splitmix64(hi), shaped
 * as an RFC 4122 version 5 UUID like the driver's ("MIG-xxxxxxxx-xxxx-5xxx-[89ab]xxx-...").
 */
static void mig_default_uuid(const char *gpu_uuid, size_t position, char *buf, size_t size)
{
	char text[NVML_DEVICE_UUID_V2_BUFFER_SIZE + 32];
	uint64_t hi, lo;

	snprintf(text, sizeof(text), "%s/mig/%zu", gpu_uuid, position);
	hi = splitmix64(fnv1a(text));
	lo = splitmix64(hi);
	hi = (hi & ~UINT64_C(0xf000)) | UINT64_C(0x5000); /* version 5 */
	lo = (lo & ~(UINT64_C(3) << 62)) | UINT64_C(1) << 63; /* the RFC 4122 variant */
	snprintf(buf, size, "MIG-%08x-%04x-%04x-%04x-%012llx", (unsigned)(hi >> 32),
		 (unsigned)(hi >> 16) & 0xffff, (unsigned)hi & 0xffff, (unsigned)(lo >> 48),
		 (unsigned long long)(lo & UINT64_C(0xffffffffffff)));
}

/*
 * One entry of "mig_instances": a profile id, or {"profile", "gi", "ci", "uuid"} with the same
 * defaults as a bare id (gi = position + 1, ci = 0, a UUID derived from the GPU's).
 */
static int parse_mig_instance(struct fake_json_parser *p, json_t *e, size_t position,
			      struct fake_gpu *gpu, struct fake_mig_device *ret)
{
	static const char *const keys[] = { "profile", "gi", "ci", "uuid", NULL };
	long long profile = -1, gi = (long long)position + 1, ci = 0;
	char name[48];
	size_t w;
	int r = 0;

	mig_default_uuid(gpu->uuid, position, ret->uuid, sizeof(ret->uuid));
	if (json_is_integer(e)) {
		profile = json_integer_value(e);
	} else if (json_is_object(e)) {
		snprintf(name, sizeof(name), "mig_instances[%zu]", position);
		w = fake_json_where_push(p, name);
		r = fake_json_check_keys(p, e, keys);
		if (r >= 0)
			r = fake_json_get_integer(p, e, "profile", true, 0, UINT32_MAX, &profile,
						  NULL);
		if (r >= 0)
			r = fake_json_get_integer(p, e, "gi", false, 0, FAKE_MAX_GI_ID, &gi, NULL);
		if (r >= 0)
			r = fake_json_get_integer(p, e, "ci", false, 0, FAKE_MAX_CI_ID, &ci, NULL);
		if (r >= 0)
			r = fake_json_get_string(p, e, "uuid", false, sizeof(ret->uuid), ret->uuid);
		if (r >= 0 && strncmp(ret->uuid, "MIG-", 4) != 0)
			r = fake_json_fail(p, "uuid: \"%s\" does not start with \"MIG-\"",
					   ret->uuid);
		fake_json_where_pop(p, w);
		if (r < 0)
			return r;
	} else {
		return fake_json_fail(p, "mig_instances[%zu]: expected a profile id or an object",
				      position);
	}
	ret->prof = profile >= 0 ? gi_by_id(gpu->profiles, (unsigned)profile) : NULL;
	if (!ret->prof)
		return fake_json_fail(p, "mig_instances[%zu]: %lld is not a profile id of "
				      "mig_profiles", position, profile);
	ret->gi = (unsigned)gi;
	ret->ci = (unsigned)ci;
	return 0;
}

static int parse_mig(struct fake_json_parser *p, json_t *g, struct fake_gpu *gpu)
{
	static const char *const keys[] = { "current", "pending", NULL };
	char table[32] = "";
	unsigned used_slices = 0;
	json_t *mig = NULL, *list = NULL, *e;
	size_t i;
	int r;

	r = fake_json_get_typed(p, g, "mig", JSON_OBJECT, "object", false, &mig);
	if (r >= 0 && mig) {
		size_t w = fake_json_where_push(p, "mig");

		gpu->has_mig = true;
		r = fake_json_check_keys(p, mig, keys);
		if (r >= 0)
			r = fake_json_get_bool(p, mig, "current", &gpu->mig_current);
		if (r >= 0)
			r = fake_json_get_bool(p, mig, "pending", &gpu->mig_pending);
		fake_json_where_pop(p, w);
	}
	if (r >= 0)
		r = fake_json_get_string(p, g, "mig_profiles", false, sizeof(table), table);
	if (r < 0)
		return r;
	if (table[0]) {
		for (i = 0; i < ELEMENTSOF(profile_tables); i++)
			if (streq(profile_tables[i].name, table))
				gpu->profiles = profile_tables[i].table;
		if (!gpu->profiles)
			return fake_json_fail(p, "mig_profiles: unknown table \"%s\"", table);
	}

	r = fake_json_get_typed(p, g, "mig_instances", JSON_ARRAY, "array", false, &list);
	if (r < 0 || !list)
		return r;
	if (!gpu->profiles)
		return fake_json_fail(p, "mig_instances: needs mig_profiles");
	json_array_foreach(list, i, e) {
		struct fake_mig_device d = {};
		unsigned same = 0;

		r = parse_mig_instance(p, e, i, gpu, &d);
		if (r < 0)
			return r;
		for (unsigned k = 0; k < gpu->n_instances; k++) {
			same += gpu->instances[k].prof == d.prof;
			if (gpu->instances[k].gi == d.gi)
				return fake_json_fail(p, "mig_instances[%zu]: GPU instance id "
						      "%u is taken by mig_instances[%u]", i,
						      d.gi, k);
			if (streq(gpu->instances[k].uuid, d.uuid))
				return fake_json_fail(p, "mig_instances[%zu]: UUID %s is taken "
						      "by mig_instances[%u]", i, d.uuid, k);
		}
		used_slices += d.prof->info.sliceCount;
		d.has_ci = true;
		if (same >= d.prof->info.instanceCount || used_slices > FAKE_MIG_SLICES)
			return fake_json_fail(p, "mig_instances[%zu]: profile %u does not fit", i,
					      d.prof->info.id);
		gpu->instances[gpu->n_instances++] = d;
	}
	return 0;
}

static int parse_topology(struct fake_json_parser *p, json_t *g, struct fake_gpu *gpu)
{
	static const char *const keys[] = { "numa", "switch", NULL };
	long long numa = -1;
	json_t *t = NULL;
	size_t w;
	int r;

	gpu->topo_numa = -1;
	r = fake_json_get_typed(p, g, "topology", JSON_OBJECT, "object", false, &t);
	if (r < 0 || !t)
		return r;
	w = fake_json_where_push(p, "topology");
	r = fake_json_check_keys(p, t, keys);
	if (r >= 0)
		r = fake_json_get_integer(p, t, "numa", false, 0, 1023, &numa, NULL);
	if (r >= 0)
		r = fake_json_get_string(p, t, "switch", false, sizeof(gpu->topo_switch),
					 gpu->topo_switch);
	fake_json_where_pop(p, w);
	gpu->topo_numa = (int)numa;
	return r;
}

static int parse_nvlinks(struct fake_json_parser *p, json_t *g, struct fake_gpu *gpu)
{
	json_t *links = NULL, *e;
	size_t i;
	int r;

	r = fake_json_get_typed(p, g, "nvlinks", JSON_ARRAY, "array", false, &links);
	if (r < 0 || !links)
		return r;
	gpu->has_nvlinks = true;
	if (json_array_size(links) > NVML_NVLINK_MAX_LINKS)
		return fake_json_fail(p, "nvlinks: more than %d links", NVML_NVLINK_MAX_LINKS);
	json_array_foreach(links, i, e) {
		if (json_is_null(e))
			continue;
		if (!json_is_string(e) ||
		    parse_pci_addr(json_string_value(e), &gpu->nvlink_remote[i]) < 0)
			return fake_json_fail(p, "nvlinks[%zu]: expected a PCI address or null", i);
		gpu->nvlink_active[i] = true;
	}
	return 0;
}

static int parse_gpu(struct fake_json_parser *p, json_t *g, struct fake_gpu *gpu)
{
	/* The CUDA keys are fake-cuda.c's to validate. */
	static const char *const keys[] = { FAKE_GPU_NVML_KEYS, FAKE_GPU_CUDA_KEYS, NULL };
	char bus_id[32] = "";
	long long v = 0;
	json_t *obj = NULL;
	int r;

	if (!json_is_object(g))
		return fake_json_fail(p, "expected object");
	r = fake_json_check_keys(p, g, keys);
	if (r >= 0)
		r = fake_json_get_string(p, g, "bus_id", true, sizeof(bus_id), bus_id);
	if (r >= 0 && parse_pci_addr(bus_id, &gpu->pci) < 0)
		r = fake_json_fail(p, "bus_id: \"%s\" is not a PCI address", bus_id);
	if (r >= 0)
		r = fake_json_get_hex32(p, g, "pci_device_id", true, &gpu->pci_device_id);
	if (r >= 0)
		r = fake_json_get_hex32(p, g, "pci_subsystem_id", false, &gpu->pci_subsystem_id);
	if (r >= 0)
		r = fake_json_get_string(p, g, "uuid", true, sizeof(gpu->uuid), gpu->uuid);
	if (r >= 0)
		r = fake_json_get_string(p, g, "name", true, sizeof(gpu->name), gpu->name);
	if (r >= 0)
		r = fake_json_get_string(p, g, "serial", false, sizeof(gpu->serial), gpu->serial);
	if (r >= 0)
		r = fake_json_get_integer(p, g, "minor", true, 0, 254, &v, NULL);
	gpu->minor = (unsigned)v;
	if (r >= 0)
		r = fake_json_get_integer(p, g, "memory_bytes", false, 1, INT64_MAX, &v,
					  &gpu->has_memory);
	gpu->memory_bytes = gpu->has_memory ? (unsigned long long)v : 0;
	v = 0;
	if (r >= 0)
		r = fake_json_get_integer(p, g, "memory_used_bytes", false, 0, INT64_MAX, &v, NULL);
	gpu->memory_used_bytes = (unsigned long long)v;
	if (r >= 0 && gpu->memory_used_bytes > gpu->memory_bytes)
		r = fake_json_fail(p, "memory_used_bytes: more than memory_bytes");
	if (r >= 0)
		r = fake_json_get_compute_capability(p, g, "compute_capability", &gpu->cc_major,
						     &gpu->cc_minor, &gpu->has_cc);
	v = -1;
	if (r >= 0)
		r = fake_json_get_integer(p, g, "numa_node", false, 0, 1023, &v, NULL);
	gpu->numa_node = (int)v;
	if (r >= 0)
		r = fake_json_get_integer(p, g, "power_mw", false, 0, UINT32_MAX, &v,
					  &gpu->has_power);
	gpu->power_mw = gpu->has_power ? (unsigned)v : 0;
	if (r >= 0)
		r = fake_json_get_integer(p, g, "temperature_c", false, 0, 200, &v,
					  &gpu->has_temperature);
	gpu->temperature_c = gpu->has_temperature ? (unsigned)v : 0;
	if (r >= 0)
		r = fake_json_get_integer(p, g, "utilization_gpu", false, 0, 100, &v,
					  &gpu->has_utilization);
	gpu->utilization_gpu = gpu->has_utilization ? (unsigned)v : 0;
	v = 0;
	if (r >= 0)
		r = fake_json_get_integer(p, g, "utilization_memory", false, 0, 100, &v, NULL);
	gpu->utilization_memory = (unsigned)v;
	if (r >= 0)
		r = fake_json_get_integer(p, g, "ecc_corrected", false, 0, INT64_MAX, &v,
					  &gpu->has_ecc);
	gpu->ecc_corrected = gpu->has_ecc ? (unsigned long long)v : 0;
	v = 0;
	if (r >= 0)
		r = fake_json_get_integer(p, g, "ecc_uncorrected", false, 0, INT64_MAX, &v, NULL);
	gpu->ecc_uncorrected = (unsigned long long)v;
	if (r >= 0)
		r = parse_mig(p, g, gpu);
	if (r >= 0)
		r = parse_topology(p, g, gpu);
	if (r >= 0)
		r = parse_nvlinks(p, g, gpu);
	if (r >= 0)
		r = fake_json_get_typed(p, g, "events", JSON_TRUE, "boolean", false, &obj);
	gpu->no_events = obj && !json_is_true(obj);
	v = 0;
	if (r >= 0)
		r = fake_json_get_integer(p, g, "processes", false, 0, 64, &v, NULL);
	gpu->processes = (unsigned)v;
	if (r >= 0)
		r = fake_json_get_typed(p, g, "errors", JSON_OBJECT, "object", false, &obj);
	if (r >= 0 && obj)
		r = parse_errors(p, obj, gpu);
	if (r >= 0)
		r = fake_json_get_typed(p, g, "hang_ms", JSON_OBJECT, "object", false, &obj);
	if (r >= 0 && obj)
		r = parse_hangs(p, obj, gpu);
	if (r >= 0)
		r = fake_json_get_typed(p, g, "fail_call", JSON_OBJECT, "object", false, &obj);
	if (r >= 0 && obj)
		r = parse_fail_calls(p, obj, gpu);
	return r;
}

static int parse_node(struct fake_json_parser *p, json_t *doc, struct fake_node *n)
{
	static const char *const keys[] = { FAKE_NODE_NVML_KEYS, FAKE_NODE_CUDA_KEYS, NULL };
	char init_error[32] = "";
	long long cuda = 13000;
	json_t *gpus = NULL, *g;
	size_t i;
	int r;

	if (!json_is_object(doc))
		return fake_json_fail(p, "expected a JSON object");
	strcpy(n->driver_version, "580.159.04");
	r = fake_json_check_keys(p, doc, keys);
	if (r >= 0)
		r = fake_json_get_string(p, doc, "driver_version", false, sizeof(n->driver_version),
					 n->driver_version);
	if (r >= 0)
		r = fake_json_get_integer(p, doc, "cuda_version", false, 1000, 1000000, &cuda,
					  NULL);
	n->cuda_version = (int)cuda;
	if (r >= 0)
		r = fake_json_get_string(p, doc, "init_error", false, sizeof(init_error),
					 init_error);
	if (r >= 0)
		r = fake_json_get_integer(p, doc, "init_hang_ms", false, 0, 3600000,
					  &n->init_hang_ms, NULL);
	if (r >= 0 && init_error[0]) {
		const struct fake_error *e = fake_error_by_name(init_error);

		if (!e || e->code == NVML_SUCCESS)
			return fake_json_fail(p, "init_error: \"%s\" is not an NVML error name",
					      init_error);
		n->init_error = e->code;
	}
	if (r >= 0)
		r = fake_json_get_typed(p, doc, "gpus", JSON_ARRAY, "array", false, &gpus);
	if (r < 0)
		return r;
	if (json_array_size(gpus) > FAKE_MAX_GPUS)
		return fake_json_fail(p, "gpus: more than %d", FAKE_MAX_GPUS);
	json_array_foreach(gpus, i, g) {
		snprintf(p->where, sizeof(p->where), "gpus[%zu]", i);
		r = parse_gpu(p, g, &n->gpus[i]);
		if (r < 0)
			return r;
		for (size_t k = 0; k < i; k++)
			if (pci_addr_equal(&n->gpus[k].pci, &n->gpus[i].pci))
				return fake_json_fail(p, "bus_id: the same as gpus[%zu]", k);
		n->n_gpus++;
	}
	p->where[0] = '\0';
	return 0;
}

/*
 * ---- what outlives a process: "<description>.mig-state" --------------------------------------
 *
 * A driver keeps a GPU's MIG mode and instances in the kernel, where every process sees what
 * another one made; xpud makes each NVML request in a process of its own. The fake keeps them in
 * a JSON file beside the description (the README's "MIG state"), an entry per GPU by bus id:
 *
 *   {"gpus": {"0000:db:00.0": {"created": 9,
 *      "mig": {"base": {...}, "current": true, "pending": true,
 *              "instances": [{"profile": 9, "gi": 1, "ci": 0, "uuid": "MIG-..."}, ...]},
 *      "calls": {"base": {...}, "counts": {"nvmlDeviceCreateGpuInstance": 2}}}}}
 *
 * "mig" is written by each MIG management call that changes something, and read by the first
 * nvmlInit_v2 of a process over the description's "mig" and "mig_instances"; a call that changes
 * something first reads it again, as another process may have changed the GPU meanwhile.
 * "calls" counts the calls of the functions that "fail_call" names, at each of them, so that "the
 * second call" is the node's, whichever process makes it. "created" numbers the UUIDs of created
 * GPU instances and only grows. "mig" and "calls" each record the description's JSON they derive
 * from (their base: "mig", "mig_instances" and "mig_profiles"; "fail_call"); when the description
 * says something else now, a test changed the node on purpose: the description wins and the part
 * is dropped. Every read-modify-write holds an exclusive flock() of "<description>.mig-state.lock"
 * (not of the state file, which rename() replaces), the read at init a shared one (none while
 * there is no lock file: no process has written anything); the file is written to "<file>.new"
 * and renamed over it, so that no reader sees half of it.
 */

#define STATE_SUFFIX ".mig-state"

/* What a GPU's MIG state is made of: what the state file keeps of it. */
struct fake_mig_state {
	bool current, pending;
	unsigned n_instances;
	struct fake_mig_device instances[FAKE_MIG_SLICES];
};

/*
 * Set by the first init, by GPU index: the description's JSON that the state file's parts are
 * checked against ({"mig": {"mig", "mig_instances", "mig_profiles"}, "calls": "fail_call"}), and
 * the description's own MIG state, which a GPU has when the file has none for it.
 */
static json_t *state_bases;
static struct fake_mig_state desc_mig[FAKE_MAX_GPUS];

static void mig_state_get(const struct fake_gpu *gpu, struct fake_mig_state *ret)
{
	*ret = (struct fake_mig_state){ .current = gpu->mig_current,
					.pending = gpu->mig_pending,
					.n_instances = gpu->n_instances };
	memcpy(ret->instances, gpu->instances, sizeof(ret->instances));
}

static void mig_state_set(struct fake_gpu *gpu, const struct fake_mig_state *s)
{
	gpu->mig_current = s->current;
	gpu->mig_pending = s->pending;
	gpu->n_instances = s->n_instances;
	memcpy(gpu->instances, s->instances, sizeof(gpu->instances));
}

/* The bases of each GPU of the description @doc (see state_bases); NULL when out of memory. */
static json_t *state_bases_new(json_t *doc)
{
	_cleanup_(json_decrefp) json_t *bases = json_array();
	json_t *g;
	size_t i;

	if (!bases)
		return NULL;
	json_array_foreach(json_object_get(doc, "gpus"), i, g) {
		json_t *b = json_pack("{s:{s:O?, s:O?, s:O?}, s:O?}", "mig", "mig",
				      json_object_get(g, "mig"), "mig_instances",
				      json_object_get(g, "mig_instances"), "mig_profiles",
				      json_object_get(g, "mig_profiles"), "calls",
				      json_object_get(g, "fail_call"));

		if (!b || json_array_append_new(bases, b) < 0)
			return NULL;
	}
	return TAKE_PTR(bases);
}

static bool state_path(const char *suffix, char buf[static PATH_MAX])
{
	const char *desc = secure_getenv("XPU_FAKE_NVML");

	return !isempty(desc) && snprintf(buf, PATH_MAX, "%s%s%s", desc, STATE_SUFFIX, suffix) <
					 PATH_MAX;
}

/* One line on stderr about the state file @path; returns @r (a negative errno). */
static int state_fail(const char *path, int r, const char *what)
{
	fprintf(stderr, "fake-nvml: %s: %s: %s\n", path, what, strerror(-r));
	return r;
}

/*
 * The state file's lock, taken with flock(@how): an fd to close, or a negative errno with a line
 * on stderr; -ENOENT, without a line, when there is no lock file and @how has no LOCK_EX (no
 * process has written the state yet). A new open file description each time, as a lock is the
 * description's: one that a forked child shares would not keep the child out.
 */
static int state_lock(int how)
{
	char path[PATH_MAX];
	int fd, r;

	if (!state_path(".lock", path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CLOEXEC | (how & LOCK_EX ? O_CREAT : 0), 0644);
	if (fd < 0 && errno == ENOENT && !(how & LOCK_EX))
		return -ENOENT;
	if (fd < 0)
		return state_fail(path, -errno, "cannot open the lock");
	while (flock(fd, how) < 0)
		if (errno != EINTR) {
			r = -errno;
			close(fd);
			return state_fail(path, r, "cannot lock");
		}
	return fd;
}

/*
 * The state file (call with its lock held): its document, {"gpus": {}} when there is none yet,
 * or NULL with a line on stderr when it cannot be read or is not such a document.
 */
static json_t *state_read(void)
{
	char path[PATH_MAX];
	json_error_t err;
	json_t *doc;

	if (!state_path("", path))
		return NULL;
	doc = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
	if (!doc && err.line < 0 && access(path, F_OK) < 0 && errno == ENOENT)
		return json_pack("{s:{}}", "gpus");
	if (!doc) {
		fprintf(stderr, "fake-nvml: %s: %s\n", path, err.text);
		return NULL;
	}
	if (!json_is_object(json_object_get(doc, "gpus"))) {
		fprintf(stderr, "fake-nvml: %s: gpus: expected object\n", path);
		json_decref(doc);
		return NULL;
	}
	return doc;
}

/* Replaces the state file with @doc (call with its lock held): 0, or -errno with a line. */
static int state_write(json_t *doc)
{
	char path[PATH_MAX], temp[PATH_MAX + 4];
	_cleanup_close_ int fd = -EBADF;

	if (!state_path("", path))
		return -ENAMETOOLONG;
	snprintf(temp, sizeof(temp), "%s.new", path);
	fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return state_fail(temp, -errno, "cannot create");
	if (json_dumpfd(doc, fd, JSON_INDENT(1) | JSON_SORT_KEYS) < 0)
		return state_fail(temp, -EIO, "cannot write");
	if (close(TAKE_FD(fd)) < 0)
		return state_fail(temp, -errno, "cannot write");
	if (rename(temp, path) < 0)
		return state_fail(path, -errno, "cannot replace");
	return 0;
}

/* A GPU's key in the state file: its bus id, "0000:db:00.0". */
static void state_key(const struct fake_gpu *gpu, char buf[static 16])
{
	snprintf(buf, 16, "%04x:%02x:%02x.%x", gpu->pci.domain & 0xffff, gpu->pci.bus & 0xff,
		 gpu->pci.device & 0x1f, gpu->pci.function & 0x7);
}

/* The entry of @gpu in the state file's @doc, a new empty one with @create, else NULL. */
static json_t *state_entry(json_t *doc, const struct fake_gpu *gpu, bool create)
{
	json_t *gpus = json_object_get(doc, "gpus"), *e;
	char key[16];

	state_key(gpu, key);
	e = json_object_get(gpus, key);
	if (e || !create)
		return e;
	e = json_object();
	if (!e || json_object_set_new(gpus, key, e) < 0)
		return NULL;
	return e;
}

/* How many GPU instances @entry says were ever created on its GPU, in *ret (0 without it). */
static int state_created(struct fake_json_parser *p, json_t *entry, unsigned *ret)
{
	long long created = 0;
	int r;

	if (!json_is_object(entry))
		return entry ? fake_json_fail(p, "expected object") : 0;
	r = fake_json_get_integer(p, entry, "created", false, 0, UINT32_MAX / 2, &created, NULL);
	*ret = (unsigned)created;
	return r;
}

/* The MIG part @mig of a GPU with @profiles in *ret; -EINVAL with a line on stderr. */
static int mig_state_from_json(struct fake_json_parser *p, json_t *mig,
			       const struct fake_gi_profile *profiles, struct fake_mig_state *ret)
{
	static const char *const keys[] = { "base", "current", "pending", "instances", NULL };
	static const char *const instance_keys[] = { "profile", "gi", "ci", "uuid", NULL };
	size_t w = fake_json_where_push(p, "mig");
	json_t *list = NULL;
	int r;

	*ret = (struct fake_mig_state){};
	r = json_is_object(mig) ? fake_json_check_keys(p, mig, keys) :
				  fake_json_fail(p, "expected object");
	if (r >= 0)
		r = fake_json_get_bool(p, mig, "current", &ret->current);
	if (r >= 0)
		r = fake_json_get_bool(p, mig, "pending", &ret->pending);
	if (r >= 0)
		r = fake_json_get_typed(p, mig, "instances", JSON_ARRAY, "array", true, &list);
	if (r >= 0 && json_array_size(list) > FAKE_MIG_SLICES)
		r = fake_json_fail(p, "instances: more than %d", FAKE_MIG_SLICES);
	for (size_t i = 0; r >= 0 && i < json_array_size(list); i++) {
		struct fake_mig_device *d = &ret->instances[i];
		json_t *e = json_array_get(list, i);
		long long profile = 0, gi = 0, ci = 0;
		char name[32];
		size_t w2;

		snprintf(name, sizeof(name), "instances[%zu]", i);
		w2 = fake_json_where_push(p, name);
		r = json_is_object(e) ? fake_json_check_keys(p, e, instance_keys) :
					fake_json_fail(p, "expected object");
		if (r >= 0)
			r = fake_json_get_integer(p, e, "profile", true, 0, UINT32_MAX, &profile,
						  NULL);
		if (r >= 0)
			r = fake_json_get_integer(p, e, "gi", true, 0, FAKE_MAX_GI_ID, &gi, NULL);
		if (r >= 0)
			r = fake_json_get_integer(p, e, "ci", false, 0, FAKE_MAX_CI_ID, &ci,
						  &d->has_ci);
		if (r >= 0)
			r = fake_json_get_string(p, e, "uuid", true, sizeof(d->uuid), d->uuid);
		if (r >= 0 && strncmp(d->uuid, "MIG-", 4) != 0)
			r = fake_json_fail(p, "uuid: \"%s\" does not start with \"MIG-\"", d->uuid);
		d->prof = gi_by_id(profiles, (unsigned)profile);
		if (r >= 0 && !d->prof)
			r = fake_json_fail(p, "profile: %lld is not a profile id of mig_profiles",
					   profile);
		d->gi = (unsigned)gi;
		d->ci = (unsigned)ci;
		for (size_t k = 0; r >= 0 && k < i; k++)
			if (ret->instances[k].gi == d->gi)
				r = fake_json_fail(p, "gi: %u is instances[%zu]'s too", d->gi, k);
		fake_json_where_pop(p, w2);
		if (r < 0)
			break;
		ret->n_instances++;
	}
	fake_json_where_pop(p, w);
	return r;
}

/*
 * The state file over the description just read into @n, whose bases are @bases, at the first
 * init: a GPU's MIG part with the description's base replaces its MIG mode and instances, and a
 * part whose base is not the description's is dropped (under an exclusive lock). Also keeps the
 * description's MIG state in desc_mig. NVML_SUCCESS, or NVML_ERROR_UNKNOWN with a line on stderr.
 */
static nvmlReturn_t state_load(struct fake_node *n, json_t *bases)
{
	char path[PATH_MAX];

	if (!state_path("", path))
		return NVML_ERROR_UNKNOWN;
	for (unsigned i = 0; i < n->n_gpus; i++)
		mig_state_get(&n->gpus[i], &desc_mig[i]);
	for (int how = LOCK_SH;; how = LOCK_EX) {
		struct fake_json_parser p = { .fake = "fake-nvml", .file = path };
		_cleanup_(json_decrefp) json_t *doc = NULL;
		_cleanup_close_ int lock = state_lock(how);
		bool stale = false;

		if (lock == -ENOENT)
			return NVML_SUCCESS; /* no state yet: the description as it is */
		doc = lock >= 0 ? state_read() : NULL;
		if (!doc)
			return NVML_ERROR_UNKNOWN;
		for (unsigned i = 0; i < n->n_gpus; i++) {
			struct fake_gpu *gpu = &n->gpus[i];
			json_t *base = json_array_get(bases, i), *e = state_entry(doc, gpu, false);
			json_t *mig = json_object_get(e, "mig");
			json_t *calls = json_object_get(e, "calls");
			struct fake_mig_state s = desc_mig[i];
			char key[16];

			state_key(gpu, key);
			snprintf(p.where, sizeof(p.where), "gpus.%s", key);
			if (state_created(&p, e, &gpu->n_created) < 0)
				return NVML_ERROR_UNKNOWN;
			if (mig && json_equal(json_object_get(mig, "base"),
					      json_object_get(base, "mig"))) {
				if (mig_state_from_json(&p, mig, gpu->profiles, &s) < 0)
					return NVML_ERROR_UNKNOWN;
			} else if (mig) {
				stale = true;
				if (how == LOCK_EX)
					json_object_del(e, "mig");
			}
			mig_state_set(gpu, &s);
			if (calls && !json_equal(json_object_get(calls, "base"),
						 json_object_get(base, "calls"))) {
				stale = true;
				if (how == LOCK_EX)
					json_object_del(e, "calls");
			}
		}
		if (!stale)
			return NVML_SUCCESS;
		if (how == LOCK_EX)
			return state_write(doc) < 0 ? NVML_ERROR_UNKNOWN : NVML_SUCCESS;
	}
}

/*
 * Counts a call of @fn on @gpu, a function that its "fail_call" names, in the state file: the
 * number of this call on the node (from 1), or 0 with a line on stderr when the file fails.
 */
static unsigned state_count_call(struct fake_gpu *gpu, enum fake_fn fn)
{
	json_t *base = json_object_get(json_array_get(state_bases, gpu - node.gpus), "calls");
	_cleanup_(json_decrefp) json_t *doc = NULL;
	_cleanup_close_ int lock = state_lock(LOCK_EX);
	json_t *e, *calls, *counts;
	json_int_t count;

	doc = lock >= 0 ? state_read() : NULL;
	e = doc ? state_entry(doc, gpu, true) : NULL;
	if (!e)
		return 0;
	calls = json_object_get(e, "calls");
	if (!json_equal(json_object_get(calls, "base"), base)) {
		/* none yet, or counted for another "fail_call": from 1 again */
		calls = json_pack("{s:O, s:{}}", "base", base, "counts");
		if (!calls || json_object_set_new(e, "calls", calls) < 0)
			return 0;
	}
	counts = json_object_get(calls, "counts");
	count = json_integer_value(json_object_get(counts, fn_names[fn])) + 1;
	if (!json_is_object(counts) || count < 1 || count > UINT_MAX ||
	    json_object_set_new(counts, fn_names[fn], json_integer(count)) < 0 ||
	    state_write(doc) < 0)
		return 0;
	return (unsigned)count;
}

/*
 * Loads $XPU_FAKE_NVML into @n, and its GPUs' bases for the state file into *ret_bases (see
 * state_bases above): an NVML return code (the caller holds fake_lock).
 */
static nvmlReturn_t load_node(struct fake_node *n, json_t **ret_bases)
{
	_cleanup_(json_decrefp) json_t *doc = NULL;
	struct fake_json_parser p = { .fake = "fake-nvml" };
	int r;

	r = fake_json_load(&p, &doc);
	if (r == -ENOENT)
		return NVML_ERROR_DRIVER_NOT_LOADED; /* no description: no driver */
	if (r < 0)
		return NVML_ERROR_UNKNOWN;
	memset(n, 0, sizeof(*n));
	if (parse_node(&p, doc, n) < 0)
		return NVML_ERROR_UNKNOWN;
	*ret_bases = state_bases_new(doc);
	return *ret_bases ? NVML_SUCCESS : NVML_ERROR_MEMORY;
}

/* ---- the library ----------------------------------------------------------------------------- */

/*
 * The driver going away under a running process (unloaded, or upgraded so that the kernel module
 * no longer matches this library): while the file "<description>.driver-error" exists, every
 * call but nvmlErrorString and nvmlShutdown answers the NVML error it names, and the session, its
 * handles and its event sets stay as they were. Read on every call, without fake_lock.
 */
static nvmlReturn_t driver_error(void)
{
	const char *desc = secure_getenv("XPU_FAKE_NVML");
	const struct fake_error *e;
	_cleanup_close_ int fd = -EBADF;
	char path[PATH_MAX], name[64];
	ssize_t n;

	if (isempty(desc) || snprintf(path, sizeof(path), "%s.driver-error", desc) >= PATH_MAX)
		return NVML_SUCCESS;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NVML_SUCCESS;
	n = read(fd, name, sizeof(name) - 1);
	while (n > 0 && strchr(" \t\n", name[n - 1]))
		n--;
	name[MAX(n, 0)] = '\0';
	e = fake_error_by_name(name);
	if (!e || e->code == NVML_SUCCESS) {
		fprintf(stderr, "fake-nvml: %s: '%s' is not an NVML error name\n", path, name);
		return NVML_ERROR_UNKNOWN;
	}
	return e->code;
}

/*
 * The start of every call but nvmlErrorString and nvmlShutdown, before any lock: the run-time
 * fault for a call of kind @where (fake-fault.h: it may not return), then the driver's error.
 */
static nvmlReturn_t call_enter(enum fake_fault_where where)
{
	switch (fake_fault("fake-nvml", where)) {
	case 0:
		return driver_error();
	case -ENOMEM:
		return NVML_ERROR_MEMORY;
	default:
		return NVML_ERROR_UNKNOWN;
	}
}

static void events_end_session(void);

static void sleep_ms(unsigned ms);

nvmlReturn_t nvmlInit_v2(void)
{
	_cleanup_free_ struct fake_node *n = NULL;
	_cleanup_(json_decrefp) json_t *bases = NULL;
	long long hang = 0;
	nvmlReturn_t r = call_enter(FAKE_FAULT_INIT);

	if (r != NVML_SUCCESS)
		return r;
	pthread_mutex_lock(&fake_lock);
	if (init_count > 0) {
		init_count++;
		pthread_mutex_unlock(&fake_lock);
		return NVML_SUCCESS;
	}
	n = calloc(1, sizeof(*n));
	r = n ? load_node(n, &bases) : NVML_ERROR_MEMORY;
	if (r == NVML_SUCCESS)
		r = n->init_error;
	/* what other processes made of the MIG GPUs, as a driver keeps it */
	if (r == NVML_SUCCESS)
		r = state_load(n, bases);
	if (r == NVML_SUCCESS) {
		node = *n;
		json_decref(state_bases);
		state_bases = TAKE_PTR(bases);
		init_count = 1;
		generation++;
	}
	if (n)
		hang = n->init_hang_ms;
	pthread_mutex_unlock(&fake_lock);
	/* a driver that takes its time (or hangs): the answer comes after the sleep */
	if (hang > 0)
		sleep_ms((unsigned)hang);
	return r;
}

nvmlReturn_t nvmlShutdown(void)
{
	nvmlReturn_t r = NVML_SUCCESS;

	pthread_mutex_lock(&fake_lock);
	if (init_count == 0) {
		r = NVML_ERROR_UNINITIALIZED;
	} else if (--init_count == 0) {
		node.n_gpus = 0;
		json_decref(state_bases);
		state_bases = NULL;
		events_end_session();
	}
	pthread_mutex_unlock(&fake_lock);
	return r;
}

const char *nvmlErrorString(nvmlReturn_t result)
{
	for (size_t i = 0; i < ELEMENTSOF(fake_errors); i++)
		if (fake_errors[i].code == result)
			return fake_errors[i].text;
	return "Unknown Error";
}

static nvmlReturn_t copy_string(char *buf, unsigned length, const char *s)
{
	size_t n = strlen(s);

	if (!buf)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (length < n + 1)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	memcpy(buf, s, n + 1);
	return NVML_SUCCESS;
}

/* Takes fake_lock if the library is initialised and the driver answers (after the fault for a
 * call of kind @where): NVML_SUCCESS with the lock held, or an error without it. */
static nvmlReturn_t library_enter(enum fake_fault_where where)
{
	nvmlReturn_t r = call_enter(where);

	if (r != NVML_SUCCESS)
		return r;
	pthread_mutex_lock(&fake_lock);
	if (init_count > 0)
		return NVML_SUCCESS;
	pthread_mutex_unlock(&fake_lock);
	return NVML_ERROR_UNINITIALIZED;
}

static nvmlReturn_t leave(nvmlReturn_t r)
{
	pthread_mutex_unlock(&fake_lock);
	return r;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
	nvmlReturn_t r = library_enter(FAKE_FAULT_NONE);

	if (r != NVML_SUCCESS)
		return r;
	return leave(copy_string(version, length, node.driver_version));
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion)
{
	nvmlReturn_t r = library_enter(FAKE_FAULT_NONE);

	if (r != NVML_SUCCESS)
		return r;
	if (!cudaDriverVersion)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	*cudaDriverVersion = node.cuda_version;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount)
{
	nvmlReturn_t r = library_enter(FAKE_FAULT_QUERY);

	if (r != NVML_SUCCESS)
		return r;
	if (!deviceCount)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	*deviceCount = node.n_gpus;
	return leave(NVML_SUCCESS);
}

/* ---- devices --------------------------------------------------------------------------------- */

static struct fake_gpu *gpu_from_handle(nvmlDevice_t device)
{
	for (unsigned i = 0; i < node.n_gpus; i++)
		if ((void *)device == (void *)&node.gpus[i])
			return &node.gpus[i];
	return NULL;
}

/* A MIG device handle: an existing instance of a GPU whose MIG mode is enabled now. */
static struct fake_mig_device *mig_from_handle(nvmlDevice_t device, struct fake_gpu **ret_gpu)
{
	for (unsigned i = 0; i < node.n_gpus; i++) {
		struct fake_gpu *gpu = &node.gpus[i];

		for (unsigned k = 0; gpu->mig_current && k < gpu->n_instances; k++)
			if ((void *)device == (void *)&gpu->instances[k] && gpu->instances[k].has_ci) {
				*ret_gpu = gpu;
				return &gpu->instances[k];
			}
	}
	return NULL;
}

static void sleep_ms(unsigned ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
		;
}

/*
 * Sleeps for an injected hang of @fn on @gpu without the lock, so that calls for other GPUs (or
 * a shutdown) go on meanwhile, as with the driver. Called and returns with fake_lock held;
 * NVML_ERROR_UNINITIALIZED if the library was shut down in between.
 */
static nvmlReturn_t gpu_hang(struct fake_gpu *gpu, enum fake_fn fn)
{
	unsigned ms = gpu->hang_ms[fn], gen = generation;

	if (ms == 0 && fn != FN_HANDLE_BY_INDEX)
		ms = gpu->hang_all_ms;
	if (ms == 0)
		return NVML_SUCCESS;
	pthread_mutex_unlock(&fake_lock);
	sleep_ms(ms);
	pthread_mutex_lock(&fake_lock);
	return init_count > 0 && generation == gen ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
}

static nvmlReturn_t gpu_error(struct fake_gpu *gpu, enum fake_fn fn)
{
	if (gpu->fail_call_n[fn]) {
		unsigned call = state_count_call(gpu, fn);

		if (call == 0)
			return NVML_ERROR_UNKNOWN;
		if (call == gpu->fail_call_n[fn])
			return gpu->fail_call_error[fn];
	}
	if (gpu->error[fn] != NVML_SUCCESS || fn == FN_HANDLE_BY_INDEX)
		return gpu->error[fn];
	return gpu->error_all;
}

/*
 * The entry of every call that takes a handle: the library is initialised, the handle is one of
 * ours (a GPU's, or a MIG device's: *ret_mig set, else NULL), an injected hang has passed and no
 * error is injected; a MIG device shares its GPU's hangs and errors. Returns NVML_SUCCESS with
 * fake_lock held and *ret_gpu set, or an error with the lock released.
 */
static nvmlReturn_t handle_enter(nvmlDevice_t device, enum fake_fn fn, struct fake_gpu **ret_gpu,
				 struct fake_mig_device **ret_mig)
{
	struct fake_mig_device *mig = NULL;
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = library_enter(fn_fault_where(fn));
	if (r != NVML_SUCCESS)
		return r;
	gpu = gpu_from_handle(device);
	if (!gpu)
		mig = mig_from_handle(device, &gpu);
	if (!gpu)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	r = gpu_hang(gpu, fn);
	if (r != NVML_SUCCESS)
		return leave(r);
	r = gpu_error(gpu, fn);
	if (r != NVML_SUCCESS)
		return leave(r);
	*ret_gpu = gpu;
	*ret_mig = mig;
	return NVML_SUCCESS;
}

/*
 * handle_enter() for the calls that only a whole GPU answers: NVML_ERROR_NOT_SUPPORTED for a MIG
 * device, as the driver answers most queries of one (its power, its PCI link, its NvLinks).
 */
static nvmlReturn_t device_enter(nvmlDevice_t device, enum fake_fn fn, struct fake_gpu **ret_gpu)
{
	struct fake_mig_device *mig;
	nvmlReturn_t r;

	r = handle_enter(device, fn, ret_gpu, &mig);
	if (r == NVML_SUCCESS && mig)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	return r;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = library_enter(FAKE_FAULT_QUERY);
	if (r != NVML_SUCCESS)
		return r;
	if (index >= node.n_gpus || !device)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	gpu = &node.gpus[index];
	gpu->handle_calls++;
	r = gpu_hang(gpu, FN_HANDLE_BY_INDEX);
	if (r == NVML_SUCCESS)
		r = gpu_error(gpu, FN_HANDLE_BY_INDEX);
	if (r == NVML_SUCCESS)
		*device = (nvmlDevice_t)(void *)gpu;
	return leave(r);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
	struct fake_mig_device *mig;
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = handle_enter(device, FN_UUID, &gpu, &mig);
	if (r != NVML_SUCCESS)
		return r;
	return leave(copy_string(uuid, length, mig ? mig->uuid : gpu->uuid));
}

/* A MIG device is named after its GPU and profile: "NVIDIA H100 80GB HBM3 MIG 1g.10gb". */
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
	char mig_name[NVML_DEVICE_NAME_V2_BUFFER_SIZE + 32];
	struct fake_mig_device *mig;
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = handle_enter(device, FN_NAME, &gpu, &mig);
	if (r != NVML_SUCCESS)
		return r;
	if (!mig)
		return leave(copy_string(name, length, gpu->name));
	snprintf(mig_name, sizeof(mig_name), "%s MIG %s", gpu->name, mig->prof->name);
	return leave(copy_string(name, length, mig_name));
}

/* The driver's spellings: "00000000:18:00.0" and the legacy "0000:18:00.0", upper-case hex. */
static void fill_pci_info(nvmlPciInfo_t *pci, const struct fake_pci_addr *a, unsigned device_id,
			  unsigned subsystem_id)
{
	memset(pci, 0, sizeof(*pci));
	snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04X:%02X:%02X.%X", a->domain,
		 a->bus, a->device, a->function);
	snprintf(pci->busId, sizeof(pci->busId), "%08X:%02X:%02X.%X", a->domain, a->bus,
		 a->device, a->function);
	pci->domain = a->domain;
	pci->bus = a->bus;
	pci->device = a->device;
	pci->pciDeviceId = device_id;
	pci->pciSubSystemId = subsystem_id;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_PCI_INFO, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!pci)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	fill_pci_info(pci, &gpu->pci, gpu->pci_device_id, gpu->pci_subsystem_id);
	return leave(NVML_SUCCESS);
}

/* A MIG device has its profile's memory, all of it free. */
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
	struct fake_mig_device *mig;
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = handle_enter(device, FN_MEMORY_INFO, &gpu, &mig);
	if (r != NVML_SUCCESS)
		return r;
	if (!memory)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (mig) {
		memory->total = mig->prof->info.memorySizeMB << 20;
		memory->used = 0;
		memory->free = memory->total;
		return leave(NVML_SUCCESS);
	}
	if (!gpu->has_memory)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	memory->total = gpu->memory_bytes;
	memory->used = gpu->memory_used_bytes;
	memory->free = gpu->memory_bytes - gpu->memory_used_bytes;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor)
{
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_COMPUTE_CAPABILITY, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!major || !minor)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (!gpu->has_cc)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	*major = gpu->cc_major;
	*minor = gpu->cc_minor;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t device, char *serial, unsigned int length)
{
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_SERIAL, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!gpu->serial[0])
		return leave(NVML_ERROR_NOT_SUPPORTED);
	return leave(copy_string(serial, length, gpu->serial));
}

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minorNumber)
{
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_MINOR, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!minorNumber)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	*minorNumber = gpu->minor;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power)
{
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_POWER, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!power)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (!gpu->has_power)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	*power = gpu->power_mw;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensorType,
				      unsigned int *temp)
{
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_TEMPERATURE, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!temp || sensorType != NVML_TEMPERATURE_GPU)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (!gpu->has_temperature)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	*temp = gpu->temperature_c;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)
{
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_UTILIZATION, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!utilization)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (!gpu->has_utilization)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	*utilization = (nvmlUtilization_t){ .gpu = gpu->utilization_gpu,
					    .memory = gpu->utilization_memory };
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, nvmlMemoryErrorType_t errorType,
					 nvmlEccCounterType_t counterType,
					 unsigned long long *eccCounts)
{
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_ECC_TOTAL, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!eccCounts ||
	    (errorType != NVML_MEMORY_ERROR_TYPE_CORRECTED &&
	     errorType != NVML_MEMORY_ERROR_TYPE_UNCORRECTED) ||
	    (counterType != NVML_VOLATILE_ECC && counterType != NVML_AGGREGATE_ECC))
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (!gpu->has_ecc)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	/* the fake's GPUs have known no driver but this one: both counts are the same */
	*eccCounts = errorType == NVML_MEMORY_ERROR_TYPE_CORRECTED ? gpu->ecc_corrected
								   : gpu->ecc_uncorrected;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetTopologyCommonAncestor(nvmlDevice_t device1, nvmlDevice_t device2,
						 nvmlGpuTopologyLevel_t *pathInfo)
{
	struct fake_gpu *a, *b;
	nvmlReturn_t r;

	r = device_enter(device1, FN_TOPOLOGY, &a);
	if (r != NVML_SUCCESS)
		return r;
	if (!pathInfo)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	b = gpu_from_handle(device2);
	if (!b)
		return leave(mig_from_handle(device2, &b) ? NVML_ERROR_NOT_SUPPORTED :
							    NVML_ERROR_INVALID_ARGUMENT);
	r = gpu_error(b, FN_TOPOLOGY);
	if (r != NVML_SUCCESS)
		return leave(r);
	if (a == b)
		*pathInfo = NVML_TOPOLOGY_INTERNAL;
	else if (a->topo_switch[0] && streq(a->topo_switch, b->topo_switch))
		*pathInfo = NVML_TOPOLOGY_MULTIPLE;
	else if (a->topo_numa >= 0 && a->topo_numa == b->topo_numa)
		*pathInfo = NVML_TOPOLOGY_NODE;
	else
		*pathInfo = NVML_TOPOLOGY_SYSTEM;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned int link,
				      nvmlEnableState_t *isActive)
{
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_NVLINK_STATE, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!isActive || link >= NVML_NVLINK_MAX_LINKS)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (!gpu->has_nvlinks)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	*isActive = gpu->nvlink_active[link] ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(nvmlDevice_t device, unsigned int link,
						 nvmlPciInfo_t *pci)
{
	unsigned device_id = FAKE_NVSWITCH_PCI_DEVICE_ID, subsystem_id = 0;
	const struct fake_pci_addr *remote;
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_NVLINK_REMOTE_PCI, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!pci || link >= NVML_NVLINK_MAX_LINKS)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (!gpu->has_nvlinks || !gpu->nvlink_active[link])
		return leave(NVML_ERROR_NOT_SUPPORTED);
	remote = &gpu->nvlink_remote[link];
	for (unsigned i = 0; i < node.n_gpus; i++)
		if (pci_addr_equal(&node.gpus[i].pci, remote)) {
			device_id = node.gpus[i].pci_device_id;
			subsystem_id = node.gpus[i].pci_subsystem_id;
		}
	fill_pci_info(pci, remote, device_id, subsystem_id);
	return leave(NVML_SUCCESS);
}

/*
 * Not NVML: how often the caller asked for the handle of GPU @index, so that a test can tell
 * how many GPUs a refresh queried (obtained with dlsym from the same dlopen'd library).
 */
__attribute__((visibility("default"))) unsigned fake_nvml_handle_calls(unsigned index);
unsigned fake_nvml_handle_calls(unsigned index)
{
	unsigned n;

	pthread_mutex_lock(&fake_lock);
	n = index < node.n_gpus ? node.gpus[index].handle_calls : 0;
	pthread_mutex_unlock(&fake_lock);
	return n;
}

/* ---- added in later drivers: absent from the "old" variant ----------------------------------- */

#ifndef FAKE_NVML_OLD

nvmlReturn_t nvmlDeviceGetNumaNodeId(nvmlDevice_t device, unsigned int *nodeId)
{
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_NUMA_NODE, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!nodeId)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (gpu->numa_node < 0)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	*nodeId = (unsigned)gpu->numa_node;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode,
				  unsigned int *pendingMode)
{
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_MIG_MODE, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!currentMode || !pendingMode)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (!gpu->has_mig)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	*currentMode = gpu->mig_current ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
	*pendingMode = gpu->mig_pending ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
	return leave(NVML_SUCCESS);
}

static const struct fake_gi_profile *gi_by_index(const struct fake_gi_profile *t, unsigned index)
{
	for (; t && t->info.sliceCount; t++)
		if (t->index == index)
			return t;
	return NULL;
}

/* Answered whatever the MIG mode, as the driver does (nvidia-smi mig -lgip with MIG disabled). */
nvmlReturn_t nvmlDeviceGetGpuInstanceProfileInfo(nvmlDevice_t device, unsigned int profile,
						 nvmlGpuInstanceProfileInfo_t *info)
{
	const struct fake_gi_profile *prof;
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_GI_PROFILE_INFO, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!info || profile >= NVML_GPU_INSTANCE_PROFILE_COUNT)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	prof = gpu->has_mig ? gi_by_index(gpu->profiles, profile) : NULL;
	if (!prof)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	*info = prof->info;
	return leave(NVML_SUCCESS);
}

/* How many more GPU instances of @prof fit beside the existing ones (see below). */
static unsigned gi_remaining(const struct fake_gpu *gpu, const struct fake_gi_profile *prof)
{
	unsigned same = 0, used_slices = 0, by_count, by_slices;

	for (unsigned i = 0; i < gpu->n_instances; i++) {
		same += gpu->instances[i].prof == prof;
		used_slices += gpu->instances[i].prof->info.sliceCount;
	}
	by_count = prof->info.instanceCount > same ? prof->info.instanceCount - same : 0;
	by_slices = used_slices < FAKE_MIG_SLICES ?
			    (FAKE_MIG_SLICES - used_slices) / prof->info.sliceCount :
			    0;
	return MIN(by_count, by_slices);
}

/*
 * How many more instances of @profileId fit next to those of "mig_instances": no more than the
 * profile allows beside its own kind, and no more than the free slices hold. A simplification of
 * the driver's placement rules that is exact for the layouts the fixtures use.
 */
nvmlReturn_t nvmlDeviceGetGpuInstanceRemainingCapacity(nvmlDevice_t device,
						       unsigned int profileId, unsigned int *count)
{
	const struct fake_gi_profile *prof;
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_GI_REMAINING, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!count)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (!gpu->has_mig || !gpu->profiles)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	prof = gi_by_id(gpu->profiles, profileId);
	if (!prof)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	*count = gi_remaining(gpu, prof);
	return leave(NVML_SUCCESS);
}

/* As the driver: the most MIG devices a MIG-capable GPU can have, whatever its mode. */
nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count)
{
	struct fake_mig_device *mig;
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = handle_enter(device, FN_MAX_MIG_COUNT, &gpu, &mig);
	if (r != NVML_SUCCESS)
		return r;
	if (mig || !count)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (!gpu->has_mig)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	*count = FAKE_MIG_SLICES;
	return leave(NVML_SUCCESS);
}

/*
 * MIG device @index of a GPU: the @index-th entry of "mig_instances" while MIG is enabled.
 * NVML_ERROR_NOT_FOUND for an index below the maximum that has no device (every index with MIG
 * disabled), NVML_ERROR_INVALID_ARGUMENT for one at or above it.
 */
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index,
						 nvmlDevice_t *migDevice)
{
	struct fake_mig_device *mig;
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = handle_enter(device, FN_MIG_HANDLE_BY_INDEX, &gpu, &mig);
	if (r != NVML_SUCCESS)
		return r;
	if (mig || !migDevice || index >= FAKE_MIG_SLICES)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (!gpu->has_mig)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	/* the index-th GPU instance that has its compute instance: a MIG device */
	for (unsigned k = 0; gpu->mig_current && k < gpu->n_instances; k++)
		if (gpu->instances[k].has_ci && index-- == 0) {
			*migDevice = (nvmlDevice_t)(void *)&gpu->instances[k];
			return leave(NVML_SUCCESS);
		}
	return leave(NVML_ERROR_NOT_FOUND);
}

/* Only a MIG device has GPU and compute instance ids; a GPU's handle is an invalid argument. */
static nvmlReturn_t mig_instance_id(nvmlDevice_t device, enum fake_fn fn, unsigned int *id)
{
	struct fake_mig_device *mig;
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = handle_enter(device, fn, &gpu, &mig);
	if (r != NVML_SUCCESS)
		return r;
	if (!mig || !id)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	*id = fn == FN_GI_ID ? mig->gi : mig->ci;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int *id)
{
	return mig_instance_id(device, FN_GI_ID, id);
}

nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned int *id)
{
	return mig_instance_id(device, FN_CI_ID, id);
}

/*
 * A MIG device's share of its GPU: its profile's SMs, engines, slices and memory (its compute
 * instance spans the whole GPU instance). A GPU's handle answers for the whole GPU, the 7-slice
 * profile; without profiles, NVML_ERROR_NOT_SUPPORTED.
 */
nvmlReturn_t nvmlDeviceGetAttributes_v2(nvmlDevice_t device, nvmlDeviceAttributes_t *attributes)
{
	const struct fake_gi_profile *prof = NULL;
	struct fake_mig_device *mig;
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = handle_enter(device, FN_ATTRIBUTES, &gpu, &mig);
	if (r != NVML_SUCCESS)
		return r;
	if (!attributes)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (mig)
		prof = mig->prof;
	else if (gpu->has_mig)
		prof = gi_by_index(gpu->profiles, NVML_GPU_INSTANCE_PROFILE_7_SLICE);
	if (!prof)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	*attributes = (nvmlDeviceAttributes_t){
		.multiprocessorCount = prof->info.multiprocessorCount,
		.sharedCopyEngineCount = prof->info.copyEngineCount,
		.sharedDecoderCount = prof->info.decoderCount,
		.sharedEncoderCount = prof->info.encoderCount,
		.sharedJpegCount = prof->info.jpegCount,
		.sharedOfaCount = prof->info.ofaCount,
		.gpuInstanceSliceCount = prof->info.sliceCount,
		.computeInstanceSliceCount = prof->info.sliceCount,
		.memorySizeMB = prof->info.memorySizeMB,
	};
	return leave(NVML_SUCCESS);
}

/*
 * The processes on a GPU: "processes" compute ones (pids from 1000), no graphics ones. The
 * driver's contract: with fewer entries than processes, NVML_ERROR_INSUFFICIENT_SIZE and the
 * number in *infoCount.
 */
static nvmlReturn_t running_processes(nvmlDevice_t device, enum fake_fn fn, unsigned int *infoCount,
				      nvmlProcessInfo_t *infos)
{
	struct fake_gpu *gpu;
	nvmlReturn_t r;
	unsigned n;

	r = device_enter(device, fn, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!infoCount || (*infoCount && !infos))
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	n = fn == FN_COMPUTE_PROCESSES ? gpu->processes : 0;
	if (*infoCount < n) {
		*infoCount = n;
		return leave(NVML_ERROR_INSUFFICIENT_SIZE);
	}
	for (unsigned i = 0; i < n; i++)
		infos[i] = (nvmlProcessInfo_t){ .pid = 1000 + i,
						.gpuInstanceId = 0xFFFFFFFFu,
						.computeInstanceId = 0xFFFFFFFFu };
	*infoCount = n;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
						     nvmlProcessInfo_t *infos)
{
	return running_processes(device, FN_COMPUTE_PROCESSES, infoCount, infos);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device,
						      unsigned int *infoCount,
						      nvmlProcessInfo_t *infos)
{
	return running_processes(device, FN_GRAPHICS_PROCESSES, infoCount, infos);
}

/*
 * ---- MIG management: creating and destroying GPU and compute instances ---------------------
 *
 * The driver's placement rules, simplified but honest: a GPU has FAKE_MIG_SLICES slices, a GPU
 * instance uses its profile's sliceCount of them and at most instanceCount of one profile exist;
 * a GPU instance that does not fit is NVML_ERROR_INSUFFICIENT_RESOURCES. A new GPU instance
 * gets the lowest free id from 1, and the UUID of position 100 + the number of GPU instances
 * ever created on that GPU since the state file began (mig_default_uuid()): deterministic, and
 * never one of the description's. Only compute instances spanning their whole GPU instance can
 * be created (one per GPU instance, id 0); smaller compute instance profiles are listed but
 * NOT_SUPPORTED.
 *
 * Each call that changes a GPU's MIG mode or instances does so between mig_begin() and
 * mig_end(): under the state file's lock, on the GPU's state as the file has it now, which it
 * writes back (see "what outlives a process").
 *
 * With $XPU_FAKE_NVML_ROOT naming the fixture tree, the capability files the driver shows for
 * an instance (proc/driver/nvidia/capabilities/gpu<minor>/mig/gi<G>[/ci<C>]/access) and their
 * dev/nvidia-caps/nvidia-cap<N> nodes are written when it is created, with the fixture
 * builder's minor numbers (agent/sim/fixture.c, mig_cap_minor()), and the proc files removed
 * when it is destroyed (the /dev nodes stay, as nvidia-modprobe's do).
 */

#define FAKE_CAP_CI_IDS 8 /* the fixture builder's numbering: 15 GPU instance ids x (1 + 8) */

static int fake_cap_minor(unsigned gpu_minor, unsigned gi, int ci)
{
	return 3 + (int)((gpu_minor * (FAKE_MAX_GI_ID + 1) + gi) * (1 + FAKE_CAP_CI_IDS)) + 1 + ci;
}

/* mkdir -p of the directories in @path below @root (the last component is a file). */
static void cap_mkdirs(char *path, size_t root_len)
{
	for (char *p = path + root_len + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		(void)mkdir(path, 0755);
		*p = '/';
	}
}

static void cap_write(const char *file, const char *text)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return;
	(void)!write(fd, text, strlen(text));
	close(fd);
}

/* The capability of GPU instance @gi (@ci < 0) or of its compute instance @ci, if asked for. */
static void cap_create(const struct fake_gpu *gpu, unsigned gi, int ci)
{
	const char *root = secure_getenv("XPU_FAKE_NVML_ROOT");
	char path[PATH_MAX], text[128];
	int minor = fake_cap_minor(gpu->minor, gi, ci);
	int n;

	if (isempty(root))
		return;
	n = ci < 0 ? snprintf(path, sizeof(path),
			      "%s/proc/driver/nvidia/capabilities/gpu%u/mig/gi%u/access", root,
			      gpu->minor, gi)
		   : snprintf(path, sizeof(path),
			      "%s/proc/driver/nvidia/capabilities/gpu%u/mig/gi%u/ci%d/access", root,
			      gpu->minor, gi, ci);
	if (n < 0 || (size_t)n >= sizeof(path))
		return;
	cap_mkdirs(path, strlen(root));
	snprintf(text, sizeof(text),
		 "DeviceFileMinor: %d\nDeviceFileMode: 292\nDeviceFileModify: 1\n", minor);
	cap_write(path, text);
	n = snprintf(path, sizeof(path), "%s/dev/nvidia-caps/nvidia-cap%d", root, minor);
	if (n < 0 || (size_t)n >= sizeof(path))
		return;
	cap_mkdirs(path, strlen(root));
	cap_write(path, "");
}

/* Removes the proc files of GPU instance @gi (@ci < 0: with its compute instance's), or of
 * its compute instance @ci only. */
static void cap_remove(const struct fake_gpu *gpu, unsigned gi, int ci)
{
	const char *root = secure_getenv("XPU_FAKE_NVML_ROOT");
	char dir[PATH_MAX], path[PATH_MAX + 32];

	if (isempty(root))
		return;
	snprintf(dir, sizeof(dir), "%s/proc/driver/nvidia/capabilities/gpu%u/mig/gi%u", root,
		 gpu->minor, gi);
	for (int c = 0; c < FAKE_CAP_CI_IDS; c++) {
		if (ci >= 0 && c != ci)
			continue;
		snprintf(path, sizeof(path), "%s/ci%d/access", dir, c);
		(void)unlink(path);
		snprintf(path, sizeof(path), "%s/ci%d", dir, c);
		(void)rmdir(path);
	}
	if (ci >= 0)
		return;
	snprintf(path, sizeof(path), "%s/access", dir);
	(void)unlink(path);
	(void)rmdir(dir);
}

/* The GPU instance a handle names (its compute instance's, with @want_ci). */
static struct fake_mig_device *instance_from_handle(const void *h, bool want_ci,
						    struct fake_gpu **ret_gpu)
{
	for (unsigned i = 0; i < node.n_gpus; i++) {
		struct fake_gpu *gpu = &node.gpus[i];

		for (unsigned k = 0; gpu->mig_current && k < gpu->n_instances; k++) {
			struct fake_mig_device *m = &gpu->instances[k];
			const char *slot = want_ci ? &gpu->ci_handles[m->gi] : &gpu->gi_handles[m->gi];

			if (h == (const void *)slot && (!want_ci || m->has_ci)) {
				*ret_gpu = gpu;
				return m;
			}
		}
	}
	return NULL;
}

/* handle_enter() for a GPU or compute instance handle: its GPU's hangs and errors apply. */
static nvmlReturn_t instance_enter(const void *h, bool want_ci, enum fake_fn fn,
				   struct fake_gpu **ret_gpu, struct fake_mig_device **ret_inst)
{
	struct fake_mig_device *m;
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = library_enter(fn_fault_where(fn));
	if (r != NVML_SUCCESS)
		return r;
	m = instance_from_handle(h, want_ci, &gpu);
	if (!m)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	r = gpu_hang(gpu, fn);
	if (r != NVML_SUCCESS)
		return leave(r);
	/* the hang let other calls run: the instance may be gone */
	m = instance_from_handle(h, want_ci, &gpu);
	if (!m)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	r = gpu_error(gpu, fn);
	if (r != NVML_SUCCESS)
		return leave(r);
	*ret_gpu = gpu;
	*ret_inst = m;
	return NVML_SUCCESS;
}

/* A change of a GPU's MIG state in the making: the state file's lock and document. */
struct mig_change {
	int lock;
	json_t *doc;
};

/*
 * The start of a call that changes @gpu's MIG mode or instances, with fake_lock held: takes the
 * state file's lock and brings the GPU's MIG state up to the file's (the description's when the
 * file has none for it, or one derived from another description), as another process may have
 * changed it since this one read it; pointers into the GPU's instances must be looked up again.
 * NVML_SUCCESS, or NVML_ERROR_UNKNOWN with a line on stderr. mig_end() must follow a success.
 */
static nvmlReturn_t mig_begin(struct fake_gpu *gpu, struct mig_change *c)
{
	unsigned i = (unsigned)(gpu - node.gpus), created = 0;
	json_t *base = json_object_get(json_array_get(state_bases, i), "mig"), *e, *mig;
	struct fake_json_parser p = { .fake = "fake-nvml" };
	struct fake_mig_state s = desc_mig[i];
	char path[PATH_MAX], key[16];

	*c = (struct mig_change){ .lock = state_lock(LOCK_EX) };
	if (c->lock < 0 || !state_path("", path))
		return NVML_ERROR_UNKNOWN;
	p.file = path;
	state_key(gpu, key);
	snprintf(p.where, sizeof(p.where), "gpus.%s", key);
	c->doc = state_read();
	e = c->doc ? state_entry(c->doc, gpu, false) : NULL;
	mig = json_object_get(e, "mig");
	if (!c->doc || state_created(&p, e, &created) < 0 ||
	    (json_equal(json_object_get(mig, "base"), base) &&
	     mig_state_from_json(&p, mig, gpu->profiles, &s) < 0)) {
		json_decref(c->doc);
		c->lock = safe_close(c->lock);
		return NVML_ERROR_UNKNOWN;
	}
	mig_state_set(gpu, &s);
	gpu->n_created = MAX(gpu->n_created, created);
	return NVML_SUCCESS;
}

/* The state file's "mig" part of @gpu, derived from the description's @base; NULL on ENOMEM. */
static json_t *mig_state_to_json(const struct fake_gpu *gpu, json_t *base)
{
	_cleanup_(json_decrefp) json_t *list = json_array();

	for (unsigned k = 0; k < gpu->n_instances; k++) {
		const struct fake_mig_device *m = &gpu->instances[k];
		json_t *ci = m->has_ci ? json_integer(m->ci) : json_null();

		json_t *o = json_pack("{s:I, s:I, s:o, s:s}", "profile",
				      (json_int_t)m->prof->info.id, "gi", (json_int_t)m->gi, "ci",
				      ci, "uuid", m->uuid);

		if (!list || json_array_append_new(list, o) < 0)
			return NULL;
	}
	return json_pack("{s:O, s:b, s:b, s:O}", "base", base, "current", gpu->mig_current,
			 "pending", gpu->mig_pending, "instances", list);
}

/*
 * The end of a change begun by mig_begin(): with @changed, the GPU's MIG state (with the
 * description's JSON it derives from) is written to the state file. Releases the lock. Returns
 * NVML_SUCCESS, or NVML_ERROR_UNKNOWN with a line on stderr when the file could not be written.
 */
static nvmlReturn_t mig_end(struct fake_gpu *gpu, struct mig_change *c, bool changed)
{
	json_t *base = json_object_get(json_array_get(state_bases, gpu - node.gpus), "mig");
	json_t *e = changed ? state_entry(c->doc, gpu, true) : NULL;
	nvmlReturn_t r = NVML_SUCCESS;

	if (changed && (!e || json_object_set_new(e, "mig", mig_state_to_json(gpu, base)) < 0 ||
			json_object_set_new(e, "created", json_integer(gpu->n_created)) < 0 ||
			state_write(c->doc) < 0)) {
		fprintf(stderr, "fake-nvml: the MIG change of %s is lost\n", gpu->uuid);
		r = NVML_ERROR_UNKNOWN;
	}
	json_decref(c->doc);
	c->lock = safe_close(c->lock);
	return r;
}

/* Ends a change begun by mig_begin() without writing: @r, with fake_lock released. */
static nvmlReturn_t mig_abandon(struct fake_gpu *gpu, struct mig_change *c, nvmlReturn_t r)
{
	(void)mig_end(gpu, c, false);
	return leave(r);
}

/*
 * instance_enter() for a call that changes the instance: then mig_begin(), and the instance
 * looked up again in the state the file has (NVML_ERROR_INVALID_ARGUMENT when another process
 * destroyed it). NVML_SUCCESS with fake_lock held and the change begun, or an error with neither.
 */
static nvmlReturn_t instance_change_enter(const void *h, bool want_ci, enum fake_fn fn,
					  struct fake_gpu **ret_gpu,
					  struct fake_mig_device **ret_inst, struct mig_change *c)
{
	nvmlReturn_t r;

	r = instance_enter(h, want_ci, fn, ret_gpu, ret_inst);
	if (r != NVML_SUCCESS)
		return r;
	r = mig_begin(*ret_gpu, c);
	if (r != NVML_SUCCESS)
		return leave(r);
	*ret_inst = instance_from_handle(h, want_ci, ret_gpu);
	if (!*ret_inst)
		return mig_abandon(*ret_gpu, c, NVML_ERROR_INVALID_ARGUMENT);
	return NVML_SUCCESS;
}

/* The mode becomes pending; it is current only after a GPU reset, which the fake never does. */
nvmlReturn_t nvmlDeviceSetMigMode(nvmlDevice_t device, unsigned int mode,
				  nvmlReturn_t *activationStatus)
{
	bool pending = mode == NVML_DEVICE_MIG_ENABLE, changed;
	struct mig_change c;
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_SET_MIG_MODE, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!activationStatus ||
	    (mode != NVML_DEVICE_MIG_ENABLE && mode != NVML_DEVICE_MIG_DISABLE))
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (!gpu->has_mig || !gpu->profiles)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	r = mig_begin(gpu, &c);
	if (r != NVML_SUCCESS)
		return leave(r);
	changed = gpu->mig_pending != pending;
	gpu->mig_pending = pending;
	r = mig_end(gpu, &c, changed);
	if (r == NVML_SUCCESS)
		*activationStatus = pending == gpu->mig_current ? NVML_SUCCESS
								: NVML_ERROR_RESET_REQUIRED;
	return leave(r);
}

/* The calls on a GPU's instances: MIG enabled now, and a profile id of its table. */
static nvmlReturn_t mig_profile_enter(nvmlDevice_t device, enum fake_fn fn, unsigned profileId,
				      struct fake_gpu **ret_gpu,
				      const struct fake_gi_profile **ret_prof)
{
	nvmlReturn_t r;

	r = device_enter(device, fn, ret_gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!(*ret_gpu)->has_mig || !(*ret_gpu)->profiles || !(*ret_gpu)->mig_current)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	*ret_prof = gi_by_id((*ret_gpu)->profiles, profileId);
	if (!*ret_prof)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuInstances(nvmlDevice_t device, unsigned int profileId,
				       nvmlGpuInstance_t *gpuInstances, unsigned int *count)
{
	const struct fake_gi_profile *prof;
	struct fake_gpu *gpu;
	unsigned n = 0;
	nvmlReturn_t r;

	r = mig_profile_enter(device, FN_GET_GPU_INSTANCES, profileId, &gpu, &prof);
	if (r != NVML_SUCCESS)
		return r;
	if (!gpuInstances || !count)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	for (unsigned k = 0; k < gpu->n_instances; k++)
		n += gpu->instances[k].prof == prof;
	if (n > *count)
		return leave(NVML_ERROR_INSUFFICIENT_SIZE);
	n = 0;
	for (unsigned k = 0; k < gpu->n_instances; k++)
		if (gpu->instances[k].prof == prof)
			gpuInstances[n++] =
				(nvmlGpuInstance_t)(void *)&gpu->gi_handles[gpu->instances[k].gi];
	*count = n;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceCreateGpuInstance(nvmlDevice_t device, unsigned int profileId,
					 nvmlGpuInstance_t *gpuInstance)
{
	const struct fake_gi_profile *prof;
	struct fake_mig_device *m;
	struct mig_change c;
	struct fake_gpu *gpu;
	unsigned gi = 1;
	nvmlReturn_t r;

	r = mig_profile_enter(device, FN_CREATE_GPU_INSTANCE, profileId, &gpu, &prof);
	if (r != NVML_SUCCESS)
		return r;
	if (!gpuInstance)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	r = mig_begin(gpu, &c);
	if (r != NVML_SUCCESS)
		return leave(r);
	if (gi_remaining(gpu, prof) == 0 || gpu->n_instances >= FAKE_MIG_SLICES)
		return mig_abandon(gpu, &c, NVML_ERROR_INSUFFICIENT_RESOURCES);
	for (unsigned k = 0; k < gpu->n_instances; k++)
		if (gpu->instances[k].gi == gi) {
			gi++;
			k = UINT_MAX; /* from the start: the ids are in no order */
		}
	m = &gpu->instances[gpu->n_instances++];
	*m = (struct fake_mig_device){ .prof = prof, .gi = gi };
	mig_default_uuid(gpu->uuid, 100 + gpu->n_created++, m->uuid, sizeof(m->uuid));
	r = mig_end(gpu, &c, true);
	if (r != NVML_SUCCESS)
		return leave(r);
	cap_create(gpu, gi, -1);
	*gpuInstance = (nvmlGpuInstance_t)(void *)&gpu->gi_handles[gi];
	return leave(NVML_SUCCESS);
}

/* Like the driver: a GPU instance that still has a compute instance is in use. */
nvmlReturn_t nvmlGpuInstanceDestroy(nvmlGpuInstance_t gpuInstance)
{
	struct fake_mig_device *m;
	struct mig_change c;
	struct fake_gpu *gpu;
	nvmlReturn_t r;
	unsigned gi;

	r = instance_change_enter(gpuInstance, false, FN_GPU_INSTANCE_DESTROY, &gpu, &m, &c);
	if (r != NVML_SUCCESS)
		return r;
	if (m->has_ci)
		return mig_abandon(gpu, &c, NVML_ERROR_IN_USE);
	gi = m->gi;
	*m = gpu->instances[--gpu->n_instances];
	r = mig_end(gpu, &c, true);
	if (r == NVML_SUCCESS)
		cap_remove(gpu, gi, -1);
	return leave(r);
}

/* The compute instance profiles of sliceCount 1, 2, 3, 4, 7 by index, as on A100 and H100. */
static const unsigned ci_profile_slices[NVML_COMPUTE_INSTANCE_PROFILE_COUNT] = {
	[NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE] = 1, [NVML_COMPUTE_INSTANCE_PROFILE_2_SLICE] = 2,
	[NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE] = 3, [NVML_COMPUTE_INSTANCE_PROFILE_4_SLICE] = 4,
	[NVML_COMPUTE_INSTANCE_PROFILE_7_SLICE] = 7,
};

nvmlReturn_t nvmlGpuInstanceGetComputeInstanceProfileInfo(nvmlGpuInstance_t gpuInstance,
							  unsigned int profile,
							  unsigned int engProfile,
							  nvmlComputeInstanceProfileInfo_t *info)
{
	const nvmlGpuInstanceProfileInfo_t *gi;
	struct fake_mig_device *m;
	struct fake_gpu *gpu;
	unsigned slices;
	nvmlReturn_t r;

	r = instance_enter(gpuInstance, false, FN_CI_PROFILE_INFO, &gpu, &m);
	if (r != NVML_SUCCESS)
		return r;
	if (!info || profile >= NVML_COMPUTE_INSTANCE_PROFILE_COUNT ||
	    engProfile != NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	gi = &m->prof->info;
	slices = ci_profile_slices[profile];
	if (slices == 0 || slices > gi->sliceCount)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	*info = (nvmlComputeInstanceProfileInfo_t){
		.id = profile,
		.sliceCount = slices,
		.instanceCount = gi->sliceCount / slices,
		.multiprocessorCount = gi->multiprocessorCount * slices / gi->sliceCount,
		.sharedCopyEngineCount = gi->copyEngineCount,
		.sharedDecoderCount = gi->decoderCount,
		.sharedEncoderCount = gi->encoderCount,
		.sharedJpegCount = gi->jpegCount,
		.sharedOfaCount = gi->ofaCount,
	};
	return leave(NVML_SUCCESS);
}

/* The compute instance spanning a GPU instance has the profile id of that many slices. */
static unsigned full_ci_profile(const struct fake_mig_device *m)
{
	for (unsigned i = 0; i < NVML_COMPUTE_INSTANCE_PROFILE_COUNT; i++)
		if (ci_profile_slices[i] == m->prof->info.sliceCount)
			return i;
	return UINT_MAX;
}

nvmlReturn_t nvmlGpuInstanceGetComputeInstances(nvmlGpuInstance_t gpuInstance,
						unsigned int profileId,
						nvmlComputeInstance_t *computeInstances,
						unsigned int *count)
{
	struct fake_mig_device *m;
	struct fake_gpu *gpu;
	nvmlReturn_t r;
	unsigned n;

	r = instance_enter(gpuInstance, false, FN_GET_COMPUTE_INSTANCES, &gpu, &m);
	if (r != NVML_SUCCESS)
		return r;
	if (!computeInstances || !count || profileId >= NVML_COMPUTE_INSTANCE_PROFILE_COUNT)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	n = m->has_ci && profileId == full_ci_profile(m);
	if (n > *count)
		return leave(NVML_ERROR_INSUFFICIENT_SIZE);
	if (n)
		computeInstances[0] = (nvmlComputeInstance_t)(void *)&gpu->ci_handles[m->gi];
	*count = n;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlGpuInstanceCreateComputeInstance(nvmlGpuInstance_t gpuInstance,
						  unsigned int profileId,
						  nvmlComputeInstance_t *computeInstance)
{
	struct fake_mig_device *m;
	struct mig_change c;
	struct fake_gpu *gpu;
	nvmlReturn_t r;
	unsigned gi;

	r = instance_change_enter(gpuInstance, false, FN_CREATE_COMPUTE_INSTANCE, &gpu, &m, &c);
	if (r != NVML_SUCCESS)
		return r;
	if (!computeInstance || profileId >= NVML_COMPUTE_INSTANCE_PROFILE_COUNT ||
	    ci_profile_slices[profileId] == 0)
		return mig_abandon(gpu, &c, NVML_ERROR_INVALID_ARGUMENT);
	if (profileId != full_ci_profile(m)) /* the fake's simplification */
		return mig_abandon(gpu, &c, NVML_ERROR_NOT_SUPPORTED);
	if (m->has_ci)
		return mig_abandon(gpu, &c, NVML_ERROR_INSUFFICIENT_RESOURCES);
	m->has_ci = true;
	m->ci = 0;
	gi = m->gi;
	r = mig_end(gpu, &c, true);
	if (r != NVML_SUCCESS)
		return leave(r);
	cap_create(gpu, gi, 0);
	*computeInstance = (nvmlComputeInstance_t)(void *)&gpu->ci_handles[gi];
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlComputeInstanceDestroy(nvmlComputeInstance_t computeInstance)
{
	struct fake_mig_device *m;
	struct mig_change c;
	struct fake_gpu *gpu;
	unsigned gi, ci;
	nvmlReturn_t r;

	r = instance_change_enter(computeInstance, true, FN_COMPUTE_INSTANCE_DESTROY, &gpu, &m, &c);
	if (r != NVML_SUCCESS)
		return r;
	m->has_ci = false;
	gi = m->gi;
	ci = m->ci;
	r = mig_end(gpu, &c, true);
	if (r == NVML_SUCCESS)
		cap_remove(gpu, gi, (int)ci);
	return leave(r);
}

#endif /* FAKE_NVML_OLD */

/*
 * ---- events: also absent from the "old" variant ---------------------------------------------
 *
 * A set records, per GPU, the event types registered in it. The lines of the FIFO named by
 * $XPU_FAKE_NVML_EVENTS become its events: whichever wait reads a line judges it against its own
 * set and drops an event that the set has not registered for that GPU, as the driver never
 * delivers one. The FIFO is opened O_RDWR, so that neither the open nor a read ever waits for a
 * writer and a writer going away is no end of file, by the first nvmlEventSetCreate or wait of a
 * session that finds the variable set, and closed by the last nvmlShutdown; a line split across
 * writes waits in event_buf for its end.
 *
 * A wait holds fake_lock only while it reads and parses; it polls a duplicate of the FIFO's fd
 * without the lock, so other threads' calls go on, and a shutdown may close the FIFO meanwhile.
 * Sets are reference-counted: the list of live sets holds one reference, each wait in progress
 * another, so nvmlEventSetFree or the last nvmlShutdown during a wait frees the set only when
 * that wait returns (NVML_ERROR_INVALID_ARGUMENT, or NVML_ERROR_UNINITIALIZED after a shutdown;
 * neither wakes the wait before its timeout or a line on the FIFO). Handles are looked up in the
 * list, never dereferenced unchecked.
 */

#ifndef FAKE_NVML_OLD

#define FAKE_EVENT_TYPES                                                                           \
	(nvmlEventTypeSingleBitEccError | nvmlEventTypeDoubleBitEccError | nvmlEventTypePState |   \
	 nvmlEventTypeXidCriticalError | nvmlEventMigConfigChange)
#define FAKE_NO_INSTANCE 0xFFFFFFFFu
#define FAKE_EVENT_LINE_MAX 255
#define FAKE_EVENT_WORDS 6

struct fake_event_set {
	struct fake_event_set *next; /* in event_sets while listed */
	bool listed;
	unsigned refs;
	unsigned long long registered[FAKE_MAX_GPUS]; /* by GPU index */
	nvmlEventData_t storm;			      /* what each of storm_left more waits get */
	unsigned long long storm_left;
};

/* Guarded by fake_lock, like the node. */
static struct fake_event_set *event_sets;
static int event_fd = -EBADF;
static char event_buf[FAKE_EVENT_LINE_MAX + 1];
static size_t event_len;
static bool event_overlong; /* discarding the rest of a line too long for event_buf */

static void event_set_unref(struct fake_event_set *s)
{
	if (--s->refs == 0)
		free(s);
}

static void event_set_unlist(struct fake_event_set *s)
{
	for (struct fake_event_set **p = &event_sets; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			s->listed = false;
			event_set_unref(s);
			return;
		}
}

static struct fake_event_set *event_set_from_handle(nvmlEventSet_t set)
{
	for (struct fake_event_set *s = event_sets; s; s = s->next)
		if ((void *)s == (void *)set)
			return s;
	return NULL;
}

/* The last nvmlShutdown: every set dies with the session (a waiting one once its wait returns). */
static void events_end_session(void)
{
	while (event_sets)
		event_set_unlist(event_sets);
	event_fd = safe_close(event_fd);
	event_len = 0;
	event_overlong = false;
}

/*
 * Opens the FIFO if it is not open: NVML_SUCCESS, NVML_ERROR_NOT_FOUND without
 * $XPU_FAKE_NVML_EVENTS (waits just time out), or NVML_ERROR_UNKNOWN and a line on stderr when it
 * names no FIFO (a regular file would read as an endless end of file).
 */
static nvmlReturn_t event_fifo_open(void)
{
	const char *path;
	struct stat st;
	int fd;

	if (event_fd >= 0)
		return NVML_SUCCESS;
	path = secure_getenv("XPU_FAKE_NVML_EVENTS");
	if (isempty(path))
		return NVML_ERROR_NOT_FOUND;
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
		fprintf(stderr, "fake-nvml: XPU_FAKE_NVML_EVENTS=%s: %s\n", path,
			fd < 0 ? strerror(errno) : "not a FIFO");
		safe_close(fd);
		return NVML_ERROR_UNKNOWN;
	}
	event_fd = fd;
	return NVML_SUCCESS;
}

/* A broken line is the test's mistake: said on stderr, and the wait fails with UNKNOWN. */
static int event_line_bad(const char *line, const char *why, nvmlReturn_t *ret)
{
	fprintf(stderr, "fake-nvml: XPU_FAKE_NVML_EVENTS: \"%s\": %s\n", line, why);
	*ret = NVML_ERROR_UNKNOWN;
	return 1;
}

/*
 * One line of the FIFO, for set @s (format in the README):
 *   xid <bus_id> <xid> [<gi> <ci>]    dbe <bus_id>    mig <bus_id>
 *   storm <bus_id> <xid> <count> [<gi> <ci>]    fail <ERROR_NAME>
 * Returns 1 with *ret (and on success *data) set when the line answers the wait, 0 when it
 * does not (blank, a comment, or an event the set has not registered).
 */
static int event_line(struct fake_event_set *s, const char *line, nvmlEventData_t *data,
		      nvmlReturn_t *ret)
{
	char copy[FAKE_EVENT_LINE_MAX + 1], *w[FAKE_EVENT_WORDS + 1], *save = NULL;
	nvmlEventData_t ev = { .gpuInstanceId = FAKE_NO_INSTANCE,
			       .computeInstanceId = FAKE_NO_INSTANCE };
	struct fake_pci_addr addr;
	struct fake_gpu *gpu = NULL;
	uint64_t count = 1;
	size_t n = 0, ids = 0;

	snprintf(copy, sizeof(copy), "%s", line);
	for (char *t = strtok_r(copy, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
		if (n == FAKE_EVENT_WORDS)
			return event_line_bad(line, "too many words", ret);
		w[n++] = t;
	}
	if (n == 0 || w[0][0] == '#')
		return 0;

	if (streq(w[0], "fail")) {
		const struct fake_error *e = n == 2 ? fake_error_by_name(w[1]) : NULL;

		if (!e || e->code == NVML_SUCCESS)
			return event_line_bad(line, "expected \"fail <NVML error name>\"", ret);
		*ret = e->code;
		return 1;
	}

	if (n < 2)
		return event_line_bad(line, "expected a bus id", ret);
	if (parse_pci_addr(w[1], &addr) < 0)
		return event_line_bad(line, "not a PCI address", ret);
	for (unsigned i = 0; i < node.n_gpus; i++)
		if (pci_addr_equal(&node.gpus[i].pci, &addr))
			gpu = &node.gpus[i];
	if (!gpu)
		return event_line_bad(line, "no GPU of the description has that bus id", ret);
	ev.device = (nvmlDevice_t)(void *)gpu;

	if (streq(w[0], "xid") && (n == 3 || n == 5)) {
		ev.eventType = nvmlEventTypeXidCriticalError;
		ids = n == 5 ? 3 : 0;
	} else if (streq(w[0], "storm") && (n == 4 || n == 6)) {
		ev.eventType = nvmlEventTypeXidCriticalError;
		ids = n == 6 ? 4 : 0;
		if (safe_atou64(w[3], &count) < 0 || count == 0)
			return event_line_bad(line, "expected a count of 1 or more", ret);
	} else if (streq(w[0], "dbe") && n == 2) {
		ev.eventType = nvmlEventTypeDoubleBitEccError;
	} else if (streq(w[0], "mig") && n == 2) {
		ev.eventType = nvmlEventMigConfigChange;
	} else {
		return event_line_bad(line, "not an event line (see tests/fakes/README.md)", ret);
	}
	if (ev.eventType == nvmlEventTypeXidCriticalError) {
		uint64_t xid;

		if (safe_atou64(w[2], &xid) < 0)
			return event_line_bad(line, "expected an XID number", ret);
		ev.eventData = xid;
	}
	if (ids && (safe_atou(w[ids], &ev.gpuInstanceId) < 0 ||
		    safe_atou(w[ids + 1], &ev.computeInstanceId) < 0))
		return event_line_bad(line, "expected GPU and compute instance ids", ret);

	if (!(s->registered[gpu - node.gpus] & ev.eventType))
		return 0;
	s->storm = ev;
	s->storm_left = count - 1;
	*data = ev;
	*ret = NVML_SUCCESS;
	return 1;
}

/*
 * Takes the next complete line out of event_buf into @line; false when there is none yet. A line
 * longer than FAKE_EVENT_LINE_MAX comes out as "" after event_overlong was noticed.
 */
static bool event_line_next(char line[static FAKE_EVENT_LINE_MAX + 1], bool *ret_overlong)
{
	char *nl = memchr(event_buf, '\n', event_len);
	size_t n;

	if (!nl)
		return false;
	n = (size_t)(nl - event_buf);
	memcpy(line, event_buf, n);
	line[n] = '\0';
	memmove(event_buf, nl + 1, event_len - n - 1);
	event_len -= n + 1;
	*ret_overlong = event_overlong;
	event_overlong = false;
	return true;
}

/*
 * What set @s has for a wait now, without waiting: a stormed event, else the next line that
 * answers (reading the FIFO as far as needed). Returns 1 with *ret (and on success *data) set,
 * 0 when nothing is pending. Called with fake_lock held.
 */
static int event_take(struct fake_event_set *s, nvmlEventData_t *data, nvmlReturn_t *ret)
{
	char line[FAKE_EVENT_LINE_MAX + 1];
	nvmlReturn_t r;
	bool overlong;
	ssize_t k;

	for (;;) {
		if (s->storm_left > 0) {
			s->storm_left--;
			*data = s->storm;
			*ret = NVML_SUCCESS;
			return 1;
		}
		if (event_line_next(line, &overlong)) {
			if (overlong)
				return event_line_bad(line, "too long (its end shown)", ret);
			if (event_line(s, line, data, ret))
				return 1;
			continue;
		}

		r = event_fifo_open();
		if (r == NVML_ERROR_NOT_FOUND)
			return 0;
		if (r != NVML_SUCCESS) {
			*ret = r;
			return 1;
		}
		if (event_len == sizeof(event_buf)) {
			/* No end of line in a full buffer: keep only what follows the next one. */
			event_overlong = true;
			event_len = 0;
		}
		k = read(event_fd, event_buf + event_len, sizeof(event_buf) - event_len);
		if (k > 0) {
			event_len += (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return 0;
		/* Not the FIFO's end (we hold a write end): a real failure. */
		*ret = NVML_ERROR_UNKNOWN;
		return 1;
	}
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set)
{
	struct fake_event_set *s;
	nvmlReturn_t r;

	r = library_enter(FAKE_FAULT_NONE);
	if (r != NVML_SUCCESS)
		return r;
	if (!set)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	s = calloc(1, sizeof(*s));
	if (!s)
		return leave(NVML_ERROR_MEMORY);
	s->refs = 1;
	s->listed = true;
	s->next = event_sets;
	event_sets = s;
	/* Now, so that a writer's blocking open of the FIFO returns; failures show in the wait. */
	(void)event_fifo_open();
	*set = (nvmlEventSet_t)(void *)s;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device, unsigned long long *eventTypes)
{
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_SUPPORTED_EVENTS, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	if (!eventTypes)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (gpu->no_events)
		return leave(NVML_ERROR_NOT_SUPPORTED);
	*eventTypes = FAKE_EVENT_TYPES;
	return leave(NVML_SUCCESS);
}

/* Like the driver: NOT_SUPPORTED if any one of @eventTypes is, and nothing registered then. */
nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long eventTypes,
				      nvmlEventSet_t set)
{
	struct fake_event_set *s;
	struct fake_gpu *gpu;
	nvmlReturn_t r;

	r = device_enter(device, FN_REGISTER_EVENTS, &gpu);
	if (r != NVML_SUCCESS)
		return r;
	s = event_set_from_handle(set);
	if (!s || eventTypes == 0)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	if (gpu->no_events || (eventTypes & ~FAKE_EVENT_TYPES))
		return leave(NVML_ERROR_NOT_SUPPORTED);
	s->registered[gpu - node.gpus] |= eventTypes;
	return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms)
{
	long long deadline = now_ns() + (long long)timeoutms * 1000000LL;
	struct fake_event_set *s;
	nvmlReturn_t r;
	unsigned gen;

	r = library_enter(FAKE_FAULT_NONE);
	if (r != NVML_SUCCESS)
		return r;
	s = event_set_from_handle(set);
	if (!s || !data)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	s->refs++;
	gen = generation;
	for (;;) {
		long long left_ms;
		int fd = -EBADF;

		if (event_take(s, data, &r))
			break;
		left_ms = (deadline - now_ns() + 999999) / 1000000; /* rounded up: never early */
		if (left_ms <= 0) {
			r = NVML_ERROR_TIMEOUT;
			break;
		}
		if (event_fd >= 0) {
			fd = fcntl(event_fd, F_DUPFD_CLOEXEC, 3);
			if (fd < 0) {
				r = NVML_ERROR_UNKNOWN;
				break;
			}
		}
		pthread_mutex_unlock(&fake_lock);
		if (fd >= 0) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };

			(void)poll(&pfd, 1, (int)MIN(left_ms, (long long)INT_MAX));
			safe_close(fd);
		} else {
			sleep_ms((unsigned)MIN(left_ms, (long long)UINT_MAX));
		}
		pthread_mutex_lock(&fake_lock);
		if (init_count == 0 || generation != gen) {
			r = NVML_ERROR_UNINITIALIZED;
			break;
		}
		if (!s->listed) {
			r = NVML_ERROR_INVALID_ARGUMENT;
			break;
		}
	}
	event_set_unref(s);
	return leave(r);
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set)
{
	struct fake_event_set *s;
	nvmlReturn_t r;

	r = library_enter(FAKE_FAULT_NONE);
	if (r != NVML_SUCCESS)
		return r;
	s = event_set_from_handle(set);
	if (!s)
		return leave(NVML_ERROR_INVALID_ARGUMENT);
	event_set_unlist(s);
	return leave(NVML_SUCCESS);
}

#else

static void events_end_session(void)
{
}

#endif /* FAKE_NVML_OLD */
