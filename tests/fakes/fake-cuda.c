// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A stand-in for libcuda.so.1: the CUDA driver API functions that xpud resolves
 * (runtimes/nvidia-cuda.h), answered from the same JSON node description as the fake NVML (named
 * by $XPU_FAKE_NVML, format in tests/fakes/README.md), so that both fakes describe one node.
 *
 * It behaves like the driver's library where the backend can tell: nothing answers before cuInit,
 * whose first result is final for the life of the process (the driver does not retry a failed
 * init); cuInit takes its time (200 ms by default, as on an H100) while other threads' calls answer
 * CUDA_ERROR_NOT_INITIALIZED; devices are ordinals in PCI bus order; a GPU that the description
 * marks lost (an NVML "errors" entry for "*") or not for CUDA ("cuda": false) does not enumerate.
 *
 * Only the CUDA symbols are exported (the target is built with hidden visibility; the header's
 * declarations are made default here). A malformed description makes cuInit fail with
 * CUDA_ERROR_UNKNOWN and one line on stderr naming the key.
 *
 * The NVML fake's run-time fault file, "<description>.fault" (fake-fault.c), applies here too:
 * cuInit is an "init" call, the device functions "query" calls.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/macro.h"
#include "shared/parse.h"

#include "fake-fault.h"
#include "fake-json.h"
#include "fake-node-keys.h"

#pragma GCC visibility push(default)
#include "runtimes/nvidia-cuda.h"
#pragma GCC visibility pop

#define FAKE_MAX_GPUS 64 /* as the fake NVML */
#define FAKE_MAX_INIT_MS 600000
#define FAKE_DEFAULT_INIT_MS 200
#define FAKE_DEFAULT_CUDA_VERSION 13000
#define FAKE_NAME_MAX 256 /* what the driver fills at most; the backend passes 256 */

/* The driver's codes that a description may name beside those of nvidia-cuda.h (from cuda.h). */
#define CUDA_ERROR_OUT_OF_MEMORY 2
#define CUDA_ERROR_DEINITIALIZED 4
#define CUDA_ERROR_STUB_LIBRARY 34
#define CUDA_ERROR_DEVICE_UNAVAILABLE 46
#define CUDA_ERROR_DEVICE_NOT_LICENSED 102
#define CUDA_ERROR_OPERATING_SYSTEM 304
#define CUDA_ERROR_NOT_PERMITTED 800
#define CUDA_ERROR_NOT_SUPPORTED 801
#define CUDA_ERROR_SYSTEM_NOT_READY 802
#define CUDA_ERROR_SYSTEM_DRIVER_MISMATCH 803
#define CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE 804

/* "cuda_init_error": CUDA_ERROR_<name>. */
static const struct fake_error {
	CUresult code;
	const char *name;
} fake_errors[] = {
	{ CUDA_ERROR_INVALID_VALUE, "INVALID_VALUE" },
	{ CUDA_ERROR_OUT_OF_MEMORY, "OUT_OF_MEMORY" },
	{ CUDA_ERROR_NOT_INITIALIZED, "NOT_INITIALIZED" },
	{ CUDA_ERROR_DEINITIALIZED, "DEINITIALIZED" },
	{ CUDA_ERROR_STUB_LIBRARY, "STUB_LIBRARY" },
	{ CUDA_ERROR_DEVICE_UNAVAILABLE, "DEVICE_UNAVAILABLE" },
	{ CUDA_ERROR_NO_DEVICE, "NO_DEVICE" },
	{ CUDA_ERROR_INVALID_DEVICE, "INVALID_DEVICE" },
	{ CUDA_ERROR_DEVICE_NOT_LICENSED, "DEVICE_NOT_LICENSED" },
	{ CUDA_ERROR_OPERATING_SYSTEM, "OPERATING_SYSTEM" },
	{ CUDA_ERROR_NOT_PERMITTED, "NOT_PERMITTED" },
	{ CUDA_ERROR_NOT_SUPPORTED, "NOT_SUPPORTED" },
	{ CUDA_ERROR_SYSTEM_NOT_READY, "SYSTEM_NOT_READY" },
	{ CUDA_ERROR_SYSTEM_DRIVER_MISMATCH, "SYSTEM_DRIVER_MISMATCH" },
	{ CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE, "COMPAT_NOT_SUPPORTED_ON_DEVICE" },
	{ CUDA_ERROR_UNKNOWN, "UNKNOWN" },
};

/* ---- state ----------------------------------------------------------------------------------- */

struct fake_gpu {
	unsigned domain, bus, device, function;
	char name[FAKE_NAME_MAX];
	char uuid[16];
	bool has_memory, has_cc;
	size_t memory_bytes;
	int cc_major, cc_minor;
	int multiprocessors, clock_khz, l2_bytes, max_threads_per_sm;
};

struct fake_node {
	int cuda_version;
	unsigned init_ms;
	CUresult init_error; /* CUDA_SUCCESS: none */
	unsigned n_gpus;     /* the GPUs CUDA sees, in PCI bus order: gpus[ordinal] */
	struct fake_gpu gpus[FAKE_MAX_GPUS];
};

/*
 * init_lock serialises cuInit: a second caller waits for the first one's answer, as with the
 * driver. fake_lock guards the rest, and is never held across the init delay, so that other
 * threads' calls answer CUDA_ERROR_NOT_INITIALIZED meanwhile. node is written once, by the cuInit
 * that succeeds, and never changes after.
 */
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static bool init_done;
static CUresult init_result;
static struct fake_node node;

/* ---- parsing the description ----------------------------------------------------------------- */

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "GPU-5632c4e7-030b-c56d-91cb-e22ba6918354" -> its 16 bytes, in the order they are written. */
static int parse_gpu_uuid(const char *s, char ret[static 16])
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	char bytes[16];
	size_t n = 0;

	if (strncmp(s, "GPU-", 4) != 0 || strlen(s + 4) != strlen(shape))
		return -EINVAL;
	s += 4;
	for (size_t i = 0; shape[i]; i++) {
		int hi, lo;

		if (shape[i] == '-') {
			if (s[i] != '-')
				return -EINVAL;
			continue;
		}
		hi = hex_digit(s[i]);
		lo = hex_digit(s[++i]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		bytes[n++] = (char)(hi << 4 | lo);
	}
	memcpy(ret, bytes, sizeof(bytes));
	return 0;
}

/*
 * What the driver reports for a GPU of compute capability @major.@minor (H100 SXM, A100 SXM,
 * anything else), unless the description says otherwise.
 */
static void gpu_defaults(struct fake_gpu *gpu)
{
	if (gpu->has_cc && gpu->cc_major == 9 && gpu->cc_minor == 0) {
		gpu->multiprocessors = 132;
		gpu->clock_khz = 1980000;
		gpu->l2_bytes = 50 << 20;
	} else if (gpu->has_cc && gpu->cc_major == 8 && gpu->cc_minor == 0) {
		gpu->multiprocessors = 108;
		gpu->clock_khz = 1410000;
		gpu->l2_bytes = 40 << 20;
	} else {
		gpu->multiprocessors = 80;
		gpu->clock_khz = 1500000;
		gpu->l2_bytes = 6 << 20;
	}
	gpu->max_threads_per_sm = 2048;
}

/*
 * One entry of "gpus": the keys the CUDA fake reads. *ret_visible says whether CUDA enumerates it:
 * not with "cuda": false, nor with an error for every NVML function ("errors": {"*": ...}), the
 * description's way of saying that the GPU fell off the bus.
 */
static int parse_gpu(struct fake_json_parser *p, json_t *g, struct fake_gpu *gpu, bool *ret_visible)
{
	static const char *const keys[] = { FAKE_GPU_NVML_KEYS, FAKE_GPU_CUDA_KEYS, NULL };
	char bus_id[32] = "", canonical[13], uuid[64] = "";
	long long memory = -1, v;
	json_t *cuda = NULL, *errors = NULL, *all = NULL;
	int r;

	if (!json_is_object(g))
		return fake_json_fail(p, "expected object");
	r = fake_json_check_keys(p, g, keys);
	if (r >= 0)
		r = fake_json_get_string(p, g, "bus_id", true, sizeof(bus_id), bus_id);
	if (r >= 0 && (parse_pci_address(bus_id, canonical) < 0 ||
		       sscanf(canonical, "%x:%x:%x.%x", &gpu->domain, &gpu->bus, &gpu->device,
			      &gpu->function) != 4))
		r = fake_json_fail(p, "bus_id: \"%s\" is not a PCI address", bus_id);
	if (r >= 0)
		r = fake_json_get_string(p, g, "uuid", true, sizeof(uuid), uuid);
	if (r >= 0 && parse_gpu_uuid(uuid, gpu->uuid) < 0)
		r = fake_json_fail(p, "uuid: \"%s\" is not \"GPU-\" and 32 hex digits in "
				   "8-4-4-4-12 groups", uuid);
	if (r >= 0)
		r = fake_json_get_string(p, g, "name", true, sizeof(gpu->name), gpu->name);
	if (r >= 0)
		r = fake_json_get_integer(p, g, "memory_bytes", false, 1, INT64_MAX, &memory, NULL);
	gpu->has_memory = memory > 0;
	gpu->memory_bytes = gpu->has_memory ? (size_t)memory : 0;
	if (r >= 0)
		r = fake_json_get_compute_capability(p, g, "compute_capability", &gpu->cc_major,
						     &gpu->cc_minor, &gpu->has_cc);
	if (r < 0)
		return r;

	gpu_defaults(gpu);
	v = gpu->multiprocessors;
	r = fake_json_get_integer(p, g, "multiprocessors", false, 1, INT_MAX, &v, NULL);
	gpu->multiprocessors = (int)v;
	v = gpu->clock_khz;
	if (r >= 0)
		r = fake_json_get_integer(p, g, "clock_khz", false, 1, INT_MAX, &v, NULL);
	gpu->clock_khz = (int)v;
	v = gpu->l2_bytes;
	if (r >= 0)
		r = fake_json_get_integer(p, g, "l2_bytes", false, 1, INT_MAX, &v, NULL);
	gpu->l2_bytes = (int)v;
	v = gpu->max_threads_per_sm;
	if (r >= 0)
		r = fake_json_get_integer(p, g, "max_threads_per_sm", false, 1, INT_MAX, &v, NULL);
	gpu->max_threads_per_sm = (int)v;

	if (r >= 0)
		r = fake_json_get_typed(p, g, "cuda", JSON_TRUE, "boolean", false, &cuda);
	/* The error names are the NVML fake's to check. */
	if (r >= 0)
		r = fake_json_get_typed(p, g, "errors", JSON_OBJECT, "object", false, &errors);
	if (r >= 0 && errors) {
		all = json_object_get(errors, "*");
		if (all && !json_is_string(all))
			r = fake_json_fail(p, "errors.*: expected string");
	}
	*ret_visible = !(cuda && json_is_false(cuda)) && !all;
	return r;
}

static int pci_order(const void *a, const void *b)
{
	const struct fake_gpu *x = a, *y = b;

	if (x->domain != y->domain)
		return x->domain < y->domain ? -1 : 1;
	if (x->bus != y->bus)
		return x->bus < y->bus ? -1 : 1;
	if (x->device != y->device)
		return x->device < y->device ? -1 : 1;
	if (x->function != y->function)
		return x->function < y->function ? -1 : 1;
	return 0;
}

static int parse_node(struct fake_json_parser *p, json_t *doc, struct fake_node *n)
{
	static const char *const keys[] = { FAKE_NODE_NVML_KEYS, FAKE_NODE_CUDA_KEYS, NULL };
	long long cuda = FAKE_DEFAULT_CUDA_VERSION, ms = FAKE_DEFAULT_INIT_MS;
	char init_error[48] = "";
	json_t *gpus = NULL, *g;
	size_t i;
	int r;

	if (!json_is_object(doc))
		return fake_json_fail(p, "expected a JSON object");
	r = fake_json_check_keys(p, doc, keys);
	if (r >= 0)
		r = fake_json_get_integer(p, doc, "cuda_version", false, 1000, 1000000, &cuda,
					  NULL);
	n->cuda_version = (int)cuda;
	if (r >= 0)
		r = fake_json_get_integer(p, doc, "cuda_init_ms", false, 0, FAKE_MAX_INIT_MS, &ms,
					  NULL);
	n->init_ms = (unsigned)ms;
	if (r >= 0)
		r = fake_json_get_string(p, doc, "cuda_init_error", false, sizeof(init_error),
					 init_error);
	if (r >= 0 && init_error[0]) {
		for (i = 0; i < ELEMENTSOF(fake_errors); i++)
			if (streq(fake_errors[i].name, init_error))
				n->init_error = fake_errors[i].code;
		if (n->init_error == CUDA_SUCCESS)
			r = fake_json_fail(p, "cuda_init_error: \"%s\" is not a CUDA error name",
					   init_error);
	}
	if (r >= 0)
		r = fake_json_get_typed(p, doc, "gpus", JSON_ARRAY, "array", false, &gpus);
	if (r < 0)
		return r;
	if (json_array_size(gpus) > FAKE_MAX_GPUS)
		return fake_json_fail(p, "gpus: more than %d", FAKE_MAX_GPUS);
	json_array_foreach(gpus, i, g) {
		struct fake_gpu gpu = {};
		bool visible = true;

		snprintf(p->where, sizeof(p->where), "gpus[%zu]", i);
		r = parse_gpu(p, g, &gpu, &visible);
		if (r < 0)
			return r;
		if (visible)
			n->gpus[n->n_gpus++] = gpu;
	}
	p->where[0] = '\0';
	qsort(n->gpus, n->n_gpus, sizeof(n->gpus[0]), pci_order);
	for (i = 1; i < n->n_gpus; i++)
		if (pci_order(&n->gpus[i - 1], &n->gpus[i]) == 0)
			return fake_json_fail(p, "gpus: two GPUs at %04x:%02x:%02x.%x",
					      n->gpus[i].domain, n->gpus[i].bus, n->gpus[i].device,
					      n->gpus[i].function);
	return 0;
}

/*
 * Loads $XPU_FAKE_NVML into @n: CUDA_ERROR_NO_DEVICE without one (a host without the driver, or
 * without GPUs), CUDA_ERROR_UNKNOWN for a malformed one (with a line on stderr).
 */
static CUresult load_node(struct fake_node *n)
{
	_cleanup_(json_decrefp) json_t *doc = NULL;
	struct fake_json_parser p = { .fake = "fake-cuda" };
	int r;

	r = fake_json_load(&p, &doc);
	if (r == -ENOENT)
		return CUDA_ERROR_NO_DEVICE;
	if (r < 0)
		return CUDA_ERROR_UNKNOWN;
	memset(n, 0, sizeof(*n));
	if (parse_node(&p, doc, n) < 0)
		return CUDA_ERROR_UNKNOWN;
	return CUDA_SUCCESS;
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

/* ---- the library ----------------------------------------------------------------------------- */

/*
 * The start of every call, before any lock: the run-time fault for a call of kind @where
 * (fake-fault.h: it may not return).
 */
static CUresult call_enter(enum fake_fault_where where)
{
	switch (fake_fault("fake-cuda", where)) {
	case 0:
		return CUDA_SUCCESS;
	case -ENOMEM:
		return CUDA_ERROR_OUT_OF_MEMORY;
	default:
		return CUDA_ERROR_UNKNOWN;
	}
}

/*
 * The first call reads the description, sleeps "cuda_init_ms" and answers; every later call (and
 * every concurrent one, once the first is done) gets the same answer at once. A description
 * without any GPU for CUDA fails with CUDA_ERROR_NO_DEVICE, as the driver's cuInit does.
 */
CUresult cuInit(unsigned int Flags)
{
	_cleanup_free_ struct fake_node *n = NULL;
	CUresult r;

	r = call_enter(FAKE_FAULT_INIT);
	if (r != CUDA_SUCCESS)
		return r; /* nothing initialised: the answer is not final */
	if (Flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&init_lock);
	pthread_mutex_lock(&fake_lock);
	r = init_result;
	if (init_done) {
		pthread_mutex_unlock(&fake_lock);
		pthread_mutex_unlock(&init_lock);
		return r;
	}
	pthread_mutex_unlock(&fake_lock);

	n = calloc(1, sizeof(*n));
	r = n ? load_node(n) : CUDA_ERROR_OUT_OF_MEMORY;
	if (r == CUDA_SUCCESS) {
		sleep_ms(n->init_ms);
		r = n->init_error;
	}
	if (r == CUDA_SUCCESS && n->n_gpus == 0)
		r = CUDA_ERROR_NO_DEVICE;

	pthread_mutex_lock(&fake_lock);
	if (r == CUDA_SUCCESS)
		node = *n;
	init_result = r;
	init_done = true;
	pthread_mutex_unlock(&fake_lock);
	pthread_mutex_unlock(&init_lock);
	return r;
}

/*
 * Takes fake_lock if cuInit has succeeded (after the fault for a call of kind @where):
 * CUDA_SUCCESS with the lock held, or not.
 */
static CUresult library_enter(enum fake_fault_where where)
{
	CUresult r = call_enter(where);

	if (r != CUDA_SUCCESS)
		return r;
	pthread_mutex_lock(&fake_lock);
	if (init_done && init_result == CUDA_SUCCESS)
		return CUDA_SUCCESS;
	pthread_mutex_unlock(&fake_lock);
	return CUDA_ERROR_NOT_INITIALIZED;
}

static CUresult leave(CUresult r)
{
	pthread_mutex_unlock(&fake_lock);
	return r;
}

/*
 * The entry of every call that takes a device: the library is initialised, the output pointer is
 * not NULL and the device is an ordinal below the count. CUDA_SUCCESS with fake_lock held and
 * *ret_gpu set, or an error with the lock released.
 */
static CUresult device_enter(const void *out, CUdevice dev, const struct fake_gpu **ret_gpu)
{
	CUresult r = library_enter(FAKE_FAULT_QUERY);

	if (r != CUDA_SUCCESS)
		return r;
	if (!out)
		return leave(CUDA_ERROR_INVALID_VALUE);
	if (dev < 0 || (unsigned)dev >= node.n_gpus)
		return leave(CUDA_ERROR_INVALID_DEVICE);
	*ret_gpu = &node.gpus[dev];
	return CUDA_SUCCESS;
}

/* Like the driver, the version needs no cuInit; it is the description's, or the default. */
CUresult cuDriverGetVersion(int *driverVersion)
{
	_cleanup_free_ struct fake_node *n = NULL;
	CUresult r;

	r = call_enter(FAKE_FAULT_NONE);
	if (r != CUDA_SUCCESS)
		return r;
	if (!driverVersion)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&fake_lock);
	if (init_done && init_result == CUDA_SUCCESS) {
		*driverVersion = node.cuda_version;
		return leave(CUDA_SUCCESS);
	}
	pthread_mutex_unlock(&fake_lock);
	n = calloc(1, sizeof(*n));
	if (!n)
		return CUDA_ERROR_OUT_OF_MEMORY;
	r = load_node(n);
	if (r == CUDA_ERROR_UNKNOWN)
		return r;
	*driverVersion = r == CUDA_SUCCESS ? n->cuda_version : FAKE_DEFAULT_CUDA_VERSION;
	return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int *count)
{
	CUresult r = library_enter(FAKE_FAULT_QUERY);

	if (r != CUDA_SUCCESS)
		return r;
	if (!count)
		return leave(CUDA_ERROR_INVALID_VALUE);
	*count = (int)node.n_gpus;
	return leave(CUDA_SUCCESS);
}

/* A CUdevice is its ordinal, as with the driver. */
CUresult cuDeviceGet(CUdevice *device, int ordinal)
{
	const struct fake_gpu *gpu;
	CUresult r;

	r = device_enter(device, ordinal, &gpu);
	if (r != CUDA_SUCCESS)
		return r;
	*device = ordinal;
	return leave(CUDA_SUCCESS);
}

/* The driver's string getters truncate to @len - 1 characters rather than fail. */
static CUresult copy_string(char *buf, int len, const char *s)
{
	if (len <= 0)
		return CUDA_ERROR_INVALID_VALUE;
	snprintf(buf, (size_t)len, "%s", s);
	return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
	const struct fake_gpu *gpu;
	CUresult r;

	r = device_enter(name, dev, &gpu);
	if (r != CUDA_SUCCESS)
		return r;
	return leave(copy_string(name, len, gpu->name));
}

/* "0000:9A:00.0": a 4-digit domain and upper-case hex, as the driver prints it. */
CUresult cuDeviceGetPCIBusId(char *pciBusId, int len, CUdevice dev)
{
	const struct fake_gpu *gpu;
	char s[32];
	CUresult r;

	r = device_enter(pciBusId, dev, &gpu);
	if (r != CUDA_SUCCESS)
		return r;
	snprintf(s, sizeof(s), "%04X:%02X:%02X.%X", gpu->domain, gpu->bus, gpu->device,
		 gpu->function);
	return leave(copy_string(pciBusId, len, s));
}

/* The attributes of nvidia-cuda.h; any other is CUDA_ERROR_INVALID_VALUE. */
CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
{
	const struct fake_gpu *gpu;
	CUresult r;

	r = device_enter(pi, dev, &gpu);
	if (r != CUDA_SUCCESS)
		return r;
	switch (attrib) {
	case CU_DEVICE_ATTRIBUTE_CLOCK_RATE:
		*pi = gpu->clock_khz;
		break;
	case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
		*pi = gpu->multiprocessors;
		break;
	case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE:
		*pi = gpu->l2_bytes;
		break;
	case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR:
		*pi = gpu->max_threads_per_sm;
		break;
	case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
	case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
		/* A real GPU always has one; a description without it is not a full GPU. */
		if (!gpu->has_cc)
			return leave(CUDA_ERROR_UNKNOWN);
		*pi = attrib == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR ? gpu->cc_major
									      : gpu->cc_minor;
		break;
	default:
		return leave(CUDA_ERROR_INVALID_VALUE);
	}
	return leave(CUDA_SUCCESS);
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
	const struct fake_gpu *gpu;
	CUresult r;

	r = device_enter(bytes, dev, &gpu);
	if (r != CUDA_SUCCESS)
		return r;
	if (!gpu->has_memory)
		return leave(CUDA_ERROR_UNKNOWN);
	*bytes = gpu->memory_bytes;
	return leave(CUDA_SUCCESS);
}

CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev)
{
	const struct fake_gpu *gpu;
	CUresult r;

	r = device_enter(uuid, dev, &gpu);
	if (r != CUDA_SUCCESS)
		return r;
	memcpy(uuid->bytes, gpu->uuid, sizeof(uuid->bytes));
	return leave(CUDA_SUCCESS);
}
