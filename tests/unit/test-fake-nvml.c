// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The fake NVML library (tests/fakes/): the contract the NVIDIA backend relies on when it runs
 * against it, loaded the way the backend loads the real one (dlopen by path, dlsym by versioned
 * name), and the fixture hook that hands it the node descriptions' "nvml" blocks.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtimes/nvidia-nvml.h"
#include "shared/fileio.h"
#include "shared/macro.h"
#include "shared/parse.h"
#include "sim/fixture.h"
#include "testutil.h"

/* The library's functions, typed by the prototypes the backend uses. */
#define NVML_FN(f) __typeof__(f) *f
struct nvml {
	void *dl;
	char *desc; /* the description XPU_FAKE_NVML names, removed by nvml_close() */
	char *events_dir; /* holds the FIFO XPU_FAKE_NVML_EVENTS names, removed by nvml_close() */
	int events_fd;	  /* its write end */
	NVML_FN(nvmlInit_v2);
	NVML_FN(nvmlShutdown);
	NVML_FN(nvmlErrorString);
	NVML_FN(nvmlSystemGetDriverVersion);
	NVML_FN(nvmlSystemGetCudaDriverVersion_v2);
	NVML_FN(nvmlDeviceGetCount_v2);
	NVML_FN(nvmlDeviceGetHandleByIndex_v2);
	NVML_FN(nvmlDeviceGetUUID);
	NVML_FN(nvmlDeviceGetName);
	NVML_FN(nvmlDeviceGetPciInfo_v3);
	NVML_FN(nvmlDeviceGetMemoryInfo);
	NVML_FN(nvmlDeviceGetCudaComputeCapability);
	NVML_FN(nvmlDeviceGetSerial);
	NVML_FN(nvmlDeviceGetMinorNumber);
	NVML_FN(nvmlDeviceGetNumaNodeId);
	NVML_FN(nvmlDeviceGetPowerUsage);
	NVML_FN(nvmlDeviceGetTemperature);
	NVML_FN(nvmlDeviceGetMigMode);
	NVML_FN(nvmlDeviceGetGpuInstanceProfileInfo);
	NVML_FN(nvmlDeviceGetGpuInstanceRemainingCapacity);
	NVML_FN(nvmlDeviceGetTopologyCommonAncestor);
	NVML_FN(nvmlDeviceGetNvLinkState);
	NVML_FN(nvmlDeviceGetNvLinkRemotePciInfo_v2);
	NVML_FN(nvmlDeviceGetMaxMigDeviceCount);
	NVML_FN(nvmlDeviceGetMigDeviceHandleByIndex);
	NVML_FN(nvmlDeviceGetGpuInstanceId);
	NVML_FN(nvmlDeviceGetComputeInstanceId);
	NVML_FN(nvmlDeviceGetAttributes_v2);
	NVML_FN(nvmlEventSetCreate);
	NVML_FN(nvmlDeviceGetSupportedEventTypes);
	NVML_FN(nvmlDeviceRegisterEvents);
	NVML_FN(nvmlEventSetWait_v2);
	NVML_FN(nvmlEventSetFree);
	NVML_FN(nvmlDeviceGetComputeRunningProcesses_v3);
	NVML_FN(nvmlDeviceGetGraphicsRunningProcesses_v3);
	NVML_FN(nvmlDeviceSetMigMode);
	NVML_FN(nvmlDeviceGetGpuInstances);
	NVML_FN(nvmlDeviceCreateGpuInstance);
	NVML_FN(nvmlGpuInstanceDestroy);
	NVML_FN(nvmlGpuInstanceGetComputeInstanceProfileInfo);
	NVML_FN(nvmlGpuInstanceGetComputeInstances);
	NVML_FN(nvmlGpuInstanceCreateComputeInstance);
	NVML_FN(nvmlComputeInstanceDestroy);
};

/* The functions an old driver's library lacks; the backend must do without them. */
static const char *const newer_symbols[] = {
	"nvmlDeviceGetNumaNodeId",
	"nvmlDeviceGetGpuInstanceProfileInfo",
	"nvmlDeviceGetGpuInstanceRemainingCapacity",
	"nvmlDeviceGetMigMode",
	"nvmlDeviceGetMaxMigDeviceCount",
	"nvmlDeviceGetMigDeviceHandleByIndex",
	"nvmlDeviceGetGpuInstanceId",
	"nvmlDeviceGetComputeInstanceId",
	"nvmlDeviceGetAttributes_v2",
	"nvmlEventSetCreate",
	"nvmlDeviceGetSupportedEventTypes",
	"nvmlDeviceRegisterEvents",
	"nvmlEventSetWait_v2",
	"nvmlEventSetFree",
	"nvmlDeviceGetComputeRunningProcesses_v3",
	"nvmlDeviceGetGraphicsRunningProcesses_v3",
	"nvmlDeviceSetMigMode",
	"nvmlDeviceGetGpuInstances",
	"nvmlDeviceCreateGpuInstance",
	"nvmlGpuInstanceDestroy",
	"nvmlGpuInstanceGetComputeInstanceProfileInfo",
	"nvmlGpuInstanceGetComputeInstances",
	"nvmlGpuInstanceCreateComputeInstance",
	"nvmlComputeInstanceDestroy",
};

#define RESOLVE(n, f)                                                                              \
	do {                                                                                       \
		(n)->f = (__typeof__((n)->f))dlsym((n)->dl, #f);                                   \
		if (!(n)->f)                                                                       \
			fail_msg("the library lacks %s", #f);                                      \
	} while (0)

/*
 * Loads "$XPU_FAKE_NVML_DIR/libnvidia-ml.so.1" (with @old, "old/libnvidia-ml.so.1") and resolves
 * every symbol the backend resolves; with @old, the newer ones stay NULL.
 */
static struct nvml *nvml_open(bool old)
{
	struct nvml *n = calloc(1, sizeof(*n));
	char path[4096];

	assert_non_null(n);
	n->events_fd = -EBADF;
	snprintf(path, sizeof(path), "%s/%slibnvidia-ml.so.1", test_env("XPU_FAKE_NVML_DIR"),
		 old ? "old/" : "");
	n->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!n->dl)
		fail_msg("dlopen %s: %s", path, dlerror());
	RESOLVE(n, nvmlInit_v2);
	RESOLVE(n, nvmlShutdown);
	RESOLVE(n, nvmlErrorString);
	RESOLVE(n, nvmlSystemGetDriverVersion);
	RESOLVE(n, nvmlSystemGetCudaDriverVersion_v2);
	RESOLVE(n, nvmlDeviceGetCount_v2);
	RESOLVE(n, nvmlDeviceGetHandleByIndex_v2);
	RESOLVE(n, nvmlDeviceGetUUID);
	RESOLVE(n, nvmlDeviceGetName);
	RESOLVE(n, nvmlDeviceGetPciInfo_v3);
	RESOLVE(n, nvmlDeviceGetMemoryInfo);
	RESOLVE(n, nvmlDeviceGetCudaComputeCapability);
	RESOLVE(n, nvmlDeviceGetSerial);
	RESOLVE(n, nvmlDeviceGetMinorNumber);
	RESOLVE(n, nvmlDeviceGetPowerUsage);
	RESOLVE(n, nvmlDeviceGetTemperature);
	RESOLVE(n, nvmlDeviceGetTopologyCommonAncestor);
	RESOLVE(n, nvmlDeviceGetNvLinkState);
	RESOLVE(n, nvmlDeviceGetNvLinkRemotePciInfo_v2);
	if (!old) {
		RESOLVE(n, nvmlDeviceGetNumaNodeId);
		RESOLVE(n, nvmlDeviceGetMigMode);
		RESOLVE(n, nvmlDeviceGetGpuInstanceProfileInfo);
		RESOLVE(n, nvmlDeviceGetGpuInstanceRemainingCapacity);
		RESOLVE(n, nvmlDeviceGetMaxMigDeviceCount);
		RESOLVE(n, nvmlDeviceGetMigDeviceHandleByIndex);
		RESOLVE(n, nvmlDeviceGetGpuInstanceId);
		RESOLVE(n, nvmlDeviceGetComputeInstanceId);
		RESOLVE(n, nvmlDeviceGetAttributes_v2);
		RESOLVE(n, nvmlEventSetCreate);
		RESOLVE(n, nvmlDeviceGetSupportedEventTypes);
		RESOLVE(n, nvmlDeviceRegisterEvents);
		RESOLVE(n, nvmlEventSetWait_v2);
		RESOLVE(n, nvmlEventSetFree);
		RESOLVE(n, nvmlDeviceGetComputeRunningProcesses_v3);
		RESOLVE(n, nvmlDeviceGetGraphicsRunningProcesses_v3);
		RESOLVE(n, nvmlDeviceSetMigMode);
		RESOLVE(n, nvmlDeviceGetGpuInstances);
		RESOLVE(n, nvmlDeviceCreateGpuInstance);
		RESOLVE(n, nvmlGpuInstanceDestroy);
		RESOLVE(n, nvmlGpuInstanceGetComputeInstanceProfileInfo);
		RESOLVE(n, nvmlGpuInstanceGetComputeInstances);
		RESOLVE(n, nvmlGpuInstanceCreateComputeInstance);
		RESOLVE(n, nvmlComputeInstanceDestroy);
	}
	return n;
}

/* Removes what the library keeps beside the description @desc: its MIG state. */
static void remove_state(const char *desc)
{
	static const char *const suffixes[] = { ".mig-state", ".mig-state.lock", ".mig-state.new" };
	char path[4096 + 32];

	for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
		snprintf(path, sizeof(path), "%s%s", desc, suffixes[i]);
		assert_true(unlink(path) == 0 || errno == ENOENT);
	}
}

static void nvml_close(struct nvml *n)
{
	if (!n)
		return;
	/* Whatever a test left initialised: the next one starts from a clean library. */
	while (n->nvmlShutdown() == NVML_SUCCESS)
		;
	assert_int_equal(dlclose(n->dl), 0);
	if (n->desc) {
		test_fake_nvml_driver_error(n->desc, NULL);
		test_fake_fault(n->desc, NULL);
		remove_state(n->desc);
		unlink(n->desc);
	}
	free(n->desc);
	unsetenv("XPU_FAKE_NVML");
	safe_close(n->events_fd);
	if (n->events_dir) {
		_cleanup_free_ char *fifo = NULL;

		assert_true(asprintf(&fifo, "%s/events", n->events_dir) > 0);
		unlink(fifo);
		rmdir(n->events_dir);
	}
	free(n->events_dir);
	unsetenv("XPU_FAKE_NVML_EVENTS");
	free(n);
}

static int setup_current(void **state)
{
	*state = nvml_open(false);
	return 0;
}

static int setup_old(void **state)
{
	*state = nvml_open(true);
	return 0;
}

/* Runs even when a test fails, so that one failure does not cascade into the next tests. */
static int teardown(void **state)
{
	nvml_close(*state);
	return 0;
}

/* Writes @json to a new temporary file (replacing the last one) and points XPU_FAKE_NVML at it. */
static void describe(struct nvml *n, const char *json)
{
	const char *tmp = getenv("TMPDIR");
	int fd;

	if (n->desc) {
		remove_state(n->desc);
		unlink(n->desc);
	}
	free(n->desc);
	assert_true(asprintf(&n->desc, "%s/xpu-fake-nvml-XXXXXX", isempty(tmp) ? "/tmp" : tmp) > 0);
	fd = mkstemp(n->desc);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
	assert_int_equal(close(fd), 0);
	assert_int_equal(setenv("XPU_FAKE_NVML", n->desc, 1), 0);
}

/* An H100 80GB HBM3 description with MIG mode @mig (a JSON value) and @extra keys. */
#define H100_MIG(bus, minor, mig, extra)                                                           \
	"{ \"bus_id\": \"" bus "\", \"minor\": " #minor ", \"uuid\": \"GPU-" #minor "\", "         \
	"\"name\": \"NVIDIA H100 80GB HBM3\", \"pci_device_id\": \"0x233010de\", "                 \
	"\"pci_subsystem_id\": \"0x16c110de\", \"memory_bytes\": 85520809984, "                    \
	"\"compute_capability\": \"9.0\", \"serial\": \"1652524100332\", \"power_mw\": 71090, "    \
	"\"temperature_c\": 36, \"mig\": " mig ", \"mig_profiles\": \"h100-80gb\" " extra " }"
#define H100(bus, minor, extra)                                                                    \
	H100_MIG(bus, minor, "{\"current\": false, \"pending\": false}", extra)

/* Four GPUs: two behind one switch on node 0, one on node 0, one on node 1. */
static const char node4[] =
	"{ \"driver_version\": \"580.159.04\", \"cuda_version\": 13000, \"gpus\": ["
	H100("0000:18:00.0", 0, ", \"topology\": {\"numa\": 0, \"switch\": \"sw0\"}, "
				"\"nvlinks\": [\"0000:06:00.0\", null, \"0000:9a:00.0\"]")
	", " H100("0000:2a:00.0", 1, ", \"topology\": {\"numa\": 0, \"switch\": \"sw0\"}, "
				   "\"numa_node\": 0")
	", " H100("0000:3a:00.0", 2, ", \"topology\": {\"numa\": 0}")
	", " H100("0000:9a:00.0", 3, ", \"topology\": {\"numa\": 1}, \"nvlinks\": []")
	"] }";

/*
 * GPU 0 is lost, GPU 1 lacks two answers, GPU 2's handle cannot be had, GPU 3 is lost but for
 * one function that fails differently.
 */
static const char errors_node[] =
	"{ \"gpus\": ["
	H100("0000:01:00.0", 0, ", \"errors\": {\"*\": \"GPU_IS_LOST\"}") ", "
	H100("0000:02:00.0", 1, ", \"errors\": {\"nvmlDeviceGetMemoryInfo\": \"NOT_SUPPORTED\", "
				"\"nvmlDeviceGetCudaComputeCapability\": \"UNKNOWN\"}") ", "
	H100("0000:03:00.0", 2, ", \"errors\": {\"nvmlDeviceGetHandleByIndex_v2\": "
				"\"GPU_IS_LOST\"}") ", "
	H100("0000:04:00.0", 3, ", \"errors\": {\"*\": \"GPU_IS_LOST\", "
				"\"nvmlDeviceGetUUID\": \"NO_PERMISSION\"}")
	"] }";

/* MIG off; on, full of 1g.10gb; on, two 1g.10gb + two 1g.20gb; unsupported; an A100 turning on. */
static const char mig_node[] =
	"{ \"gpus\": ["
	H100("0000:01:00.0", 0, "") ", "
	H100_MIG("0000:02:00.0", 1, "{\"current\": true, \"pending\": true}",
		 ", \"mig_instances\": [19, 19, 19, 19, 19, 19, 19]") ", "
	H100_MIG("0000:03:00.0", 2, "{\"current\": true, \"pending\": false}",
		 ", \"mig_instances\": [19, 19, 15, 15]") ", "
	H100_MIG("0000:04:00.0", 3, "null", "") ", "
	"{ \"bus_id\": \"0000:05:00.0\", \"minor\": 4, \"uuid\": \"GPU-4\", "
	"\"name\": \"NVIDIA A100-SXM4-40GB\", \"pci_device_id\": \"0x20b010de\", "
	"\"mig\": {\"current\": false, \"pending\": true}, \"mig_profiles\": \"a100-40gb\" }"
	"] }";

/* GPU 1's name takes 1.5 s to come. */
static const char hang_node[] =
	"{ \"gpus\": ["
	H100("0000:01:00.0", 0, "") ", "
	H100("0000:02:00.0", 1, ", \"hang_ms\": {\"nvmlDeviceGetName\": 1500}")
	"] }";

static nvmlDevice_t handle(const struct nvml *n, unsigned index)
{
	nvmlDevice_t dev = NULL;

	assert_int_equal(n->nvmlDeviceGetHandleByIndex_v2(index, &dev), NVML_SUCCESS);
	assert_non_null(dev);
	return dev;
}

/* "mig_instances" the fake refuses: each would make the MIG devices ambiguous or impossible. */
static const char *const bad_mig_instances[] = {
	"[{\"gi\": 1}]",					/* no profile */
	"[{\"profile\": 99}]",					/* not in the table */
	"[{\"profile\": 19, \"gi\": 15}]",			/* GPU instance ids are 0..14 */
	"[{\"profile\": 19, \"ci\": 8}]",			/* compute instance ids 0..7 */
	"[{\"profile\": 19, \"uuid\": \"GPU-1\"}]",		/* not a MIG UUID */
	"[{\"profile\": 19, \"colour\": 1}]",			/* unknown key */
	"[19, {\"profile\": 19, \"gi\": 1}]",			/* gi 1 twice */
	/* one UUID twice; a profile id as a string */
	"[{\"profile\": 19, \"uuid\": \"MIG-a\"}, {\"profile\": 19, \"uuid\": \"MIG-a\"}]",
	"[\"19\"]",
};

/* ---- init ------------------------------------------------------------------------------------ */

static void test_init(void **state)
{
	struct nvml *n = *state;
	unsigned count = 0;

	/* No description: no driver. Nothing answers before a successful init. */
	unsetenv("XPU_FAKE_NVML");
	assert_int_equal(n->nvmlInit_v2(), NVML_ERROR_DRIVER_NOT_LOADED);
	assert_int_equal(n->nvmlDeviceGetCount_v2(&count), NVML_ERROR_UNINITIALIZED);
	assert_int_equal(n->nvmlShutdown(), NVML_ERROR_UNINITIALIZED);
	setenv("XPU_FAKE_NVML", "/nonexistent/fake-nvml.json", 1);
	assert_int_equal(n->nvmlInit_v2(), NVML_ERROR_DRIVER_NOT_LOADED);

	describe(n, "{ \"init_error\": \"LIB_RM_VERSION_MISMATCH\", \"gpus\": [] }");
	assert_int_equal(n->nvmlInit_v2(), NVML_ERROR_LIB_RM_VERSION_MISMATCH);
	assert_int_equal(n->nvmlDeviceGetCount_v2(&count), NVML_ERROR_UNINITIALIZED);

	/* A broken description fails loudly rather than being half-used. */
	describe(n, "{ \"gpus\": [ { \"bus_id\": \"0000:18:00.0\" ");
	assert_int_equal(n->nvmlInit_v2(), NVML_ERROR_UNKNOWN);
	describe(n, "{ \"gpus\": [], \"gpu_count\": 3 }");
	assert_int_equal(n->nvmlInit_v2(), NVML_ERROR_UNKNOWN);
	describe(n, "{ \"gpus\": [" H100("0000:18:00.0", 0, ", \"errors\": {\"nvmlDeviceGetNmae\": "
							"\"GPU_IS_LOST\"}") "] }");
	assert_int_equal(n->nvmlInit_v2(), NVML_ERROR_UNKNOWN);
	describe(n, "{ \"gpus\": [" H100("0000:18:00.0", 0, ", \"mig_instances\": [0, 19]") "] }");
	assert_int_equal(n->nvmlInit_v2(), NVML_ERROR_UNKNOWN);
	for (size_t i = 0; i < ELEMENTSOF(bad_mig_instances); i++) {
		_cleanup_free_ char *json = NULL;

		assert_true(asprintf(&json, "{ \"gpus\": [" H100("0000:18:00.0", 0,
								  ", \"mig_instances\": %s")
					    "] }", bad_mig_instances[i]) > 0);
		describe(n, json);
		if (n->nvmlInit_v2() != NVML_ERROR_UNKNOWN)
			fail_msg("mig_instances %s was accepted", bad_mig_instances[i]);
	}

	/* Reference-counted like the driver's: the last shutdown ends the session. */
	describe(n, node4);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	assert_int_equal(n->nvmlShutdown(), NVML_SUCCESS);
	assert_int_equal(n->nvmlDeviceGetCount_v2(&count), NVML_SUCCESS);
	assert_int_equal(count, 4);
	assert_int_equal(n->nvmlShutdown(), NVML_SUCCESS);
	assert_int_equal(n->nvmlDeviceGetCount_v2(&count), NVML_ERROR_UNINITIALIZED);
	assert_int_equal(n->nvmlShutdown(), NVML_ERROR_UNINITIALIZED);

	assert_string_equal(n->nvmlErrorString(NVML_ERROR_GPU_IS_LOST), "GPU is lost");
	assert_string_equal(n->nvmlErrorString(NVML_SUCCESS), "Success");
	assert_string_equal(n->nvmlErrorString(12345), "Unknown Error");
}

/* ---- devices --------------------------------------------------------------------------------- */

static void test_devices(void **state)
{
	struct nvml *n = *state;
	char buf[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
	unsigned count = 0, u = 0;
	nvmlDevice_t dev = NULL, g3, bogus = (nvmlDevice_t)(void *)&count;
	nvmlPciInfo_t pci;
	nvmlMemory_t mem;
	int major = -1, minor = -1, cuda = 0;

	describe(n, node4);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	assert_int_equal(n->nvmlSystemGetDriverVersion(buf, sizeof(buf)), NVML_SUCCESS);
	assert_string_equal(buf, "580.159.04");
	assert_int_equal(n->nvmlSystemGetDriverVersion(buf, 10), NVML_ERROR_INSUFFICIENT_SIZE);
	assert_int_equal(n->nvmlSystemGetDriverVersion(buf, 11), NVML_SUCCESS);
	assert_int_equal(n->nvmlSystemGetCudaDriverVersion_v2(&cuda), NVML_SUCCESS);
	assert_int_equal(cuda, 13000);

	assert_int_equal(n->nvmlDeviceGetCount_v2(&count), NVML_SUCCESS);
	assert_int_equal(count, 4);
	assert_int_equal(n->nvmlDeviceGetHandleByIndex_v2(4, &dev), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceGetHandleByIndex_v2(0, NULL), NVML_ERROR_INVALID_ARGUMENT);
	/* Handles are checked on every call. */
	assert_int_equal(n->nvmlDeviceGetName(bogus, buf, sizeof(buf)),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceGetName(NULL, buf, sizeof(buf)), NVML_ERROR_INVALID_ARGUMENT);
	assert_ptr_not_equal(handle(n, 0), handle(n, 1));
	assert_ptr_equal(handle(n, 2), handle(n, 2));

	dev = handle(n, 0);
	assert_int_equal(n->nvmlDeviceGetPciInfo_v3(dev, &pci), NVML_SUCCESS);
	assert_string_equal(pci.busId, "00000000:18:00.0");
	assert_string_equal(pci.busIdLegacy, "0000:18:00.0");
	assert_int_equal(pci.domain, 0);
	assert_int_equal(pci.bus, 0x18);
	assert_int_equal(pci.device, 0);
	assert_int_equal(pci.pciDeviceId, 0x233010de);
	assert_int_equal(pci.pciSubSystemId, 0x16c110de);
	/* Upper-case hex, like the driver. */
	assert_int_equal(n->nvmlDeviceGetPciInfo_v3(handle(n, 3), &pci), NVML_SUCCESS);
	assert_string_equal(pci.busId, "00000000:9A:00.0");
	assert_int_equal(pci.bus, 0x9a);

	assert_int_equal(n->nvmlDeviceGetUUID(dev, buf, sizeof(buf)), NVML_SUCCESS);
	assert_string_equal(buf, "GPU-0");
	assert_int_equal(n->nvmlDeviceGetUUID(dev, buf, 5), NVML_ERROR_INSUFFICIENT_SIZE);
	assert_int_equal(n->nvmlDeviceGetUUID(dev, buf, 6), NVML_SUCCESS);
	assert_int_equal(n->nvmlDeviceGetName(dev, buf, sizeof(buf)), NVML_SUCCESS);
	assert_string_equal(buf, "NVIDIA H100 80GB HBM3");
	assert_int_equal(n->nvmlDeviceGetName(dev, buf, strlen("NVIDIA H100 80GB HBM3")),
			 NVML_ERROR_INSUFFICIENT_SIZE);
	assert_int_equal(n->nvmlDeviceGetSerial(dev, buf, sizeof(buf)), NVML_SUCCESS);
	assert_string_equal(buf, "1652524100332");
	assert_int_equal(n->nvmlDeviceGetSerial(dev, buf, 13), NVML_ERROR_INSUFFICIENT_SIZE);

	assert_int_equal(n->nvmlDeviceGetMemoryInfo(dev, &mem), NVML_SUCCESS);
	assert_true(mem.total == 85520809984ULL);
	assert_true(mem.free + mem.used == mem.total);
	assert_int_equal(n->nvmlDeviceGetCudaComputeCapability(dev, &major, &minor), NVML_SUCCESS);
	assert_int_equal(major, 9);
	assert_int_equal(minor, 0);
	assert_int_equal(n->nvmlDeviceGetMinorNumber(handle(n, 3), &u), NVML_SUCCESS);
	assert_int_equal(u, 3);
	assert_int_equal(n->nvmlDeviceGetPowerUsage(dev, &u), NVML_SUCCESS);
	assert_int_equal(u, 71090);
	assert_int_equal(n->nvmlDeviceGetTemperature(dev, NVML_TEMPERATURE_GPU, &u), NVML_SUCCESS);
	assert_int_equal(u, 36);
	assert_int_equal(n->nvmlDeviceGetTemperature(dev, 7, &u), NVML_ERROR_INVALID_ARGUMENT);

	/* numa_node absent (as on the H100s seen so far): NOT_SUPPORTED; given: the node. */
	assert_int_equal(n->nvmlDeviceGetNumaNodeId(dev, &u), NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(n->nvmlDeviceGetNumaNodeId(handle(n, 1), &u), NVML_SUCCESS);
	assert_int_equal(u, 0);

	/* After the last shutdown, nothing answers. */
	g3 = handle(n, 3);
	assert_int_equal(n->nvmlShutdown(), NVML_SUCCESS);
	assert_int_equal(n->nvmlDeviceGetName(dev, buf, sizeof(buf)), NVML_ERROR_UNINITIALIZED);
	describe(n, "{ \"gpus\": [" H100("0000:18:00.0", 0, "") "] }");
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	/* A new session reads the description again; handles beyond the new count are refused. */
	assert_int_equal(n->nvmlDeviceGetCount_v2(&count), NVML_SUCCESS);
	assert_int_equal(count, 1);
	assert_int_equal(n->nvmlDeviceGetName(handle(n, 0), buf, sizeof(buf)), NVML_SUCCESS);
	assert_int_equal(n->nvmlDeviceGetName(g3, buf, sizeof(buf)), NVML_ERROR_INVALID_ARGUMENT);
}

/* ---- injected errors ------------------------------------------------------------------------- */

static void test_errors(void **state)
{
	struct nvml *n = *state;
	unsigned u, cur, pend;
	nvmlDevice_t lost, partial, dev = NULL;
	nvmlGpuTopologyLevel_t level;
	nvmlPciInfo_t pci;
	nvmlMemory_t mem;
	char buf[96];
	int major, minor;

	describe(n, errors_node);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	/* "*" covers every call that takes the handle, not the handle lookup itself. */
	lost = handle(n, 0);
	assert_int_equal(n->nvmlDeviceGetUUID(lost, buf, sizeof(buf)), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(n->nvmlDeviceGetName(lost, buf, sizeof(buf)), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(n->nvmlDeviceGetPciInfo_v3(lost, &pci), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(n->nvmlDeviceGetMinorNumber(lost, &u), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(n->nvmlDeviceGetMigMode(lost, &cur, &pend), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(n->nvmlDeviceGetNvLinkState(lost, 0, (nvmlEnableState_t *)&u),
			 NVML_ERROR_GPU_IS_LOST);
	/* Either end of a topology query being lost fails it. */
	assert_int_equal(n->nvmlDeviceGetTopologyCommonAncestor(lost, handle(n, 1), &level),
			 NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(n->nvmlDeviceGetTopologyCommonAncestor(handle(n, 1), lost, &level),
			 NVML_ERROR_GPU_IS_LOST);

	/* Per function: only that function fails. */
	partial = handle(n, 1);
	assert_int_equal(n->nvmlDeviceGetMemoryInfo(partial, &mem), NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(n->nvmlDeviceGetCudaComputeCapability(partial, &major, &minor),
			 NVML_ERROR_UNKNOWN);
	assert_int_equal(n->nvmlDeviceGetName(partial, buf, sizeof(buf)), NVML_SUCCESS);
	assert_int_equal(n->nvmlDeviceGetPowerUsage(partial, &u), NVML_SUCCESS);

	/* Named explicitly, the handle lookup fails too. */
	assert_int_equal(n->nvmlDeviceGetHandleByIndex_v2(2, &dev), NVML_ERROR_GPU_IS_LOST);
	assert_null(dev);

	/* A named function wins over "*". */
	assert_int_equal(n->nvmlDeviceGetUUID(handle(n, 3), buf, sizeof(buf)),
			 NVML_ERROR_NO_PERMISSION);
	assert_int_equal(n->nvmlDeviceGetName(handle(n, 3), buf, sizeof(buf)),
			 NVML_ERROR_GPU_IS_LOST);
}

/*
 * The driver unloaded or upgraded under a running process: every call but nvmlErrorString and
 * nvmlShutdown answers the error, init included, and once it is cleared the same session, its
 * handles and its event sets answer again.
 */
static void test_driver_error(void **state)
{
	static const char *const names[] = { "DRIVER_NOT_LOADED", "LIB_RM_VERSION_MISMATCH" };
	struct nvml *n = *state;
	nvmlEventSet_t set = NULL, set2 = NULL;
	nvmlDevice_t dev, dev2 = NULL;
	nvmlEventData_t ev;
	unsigned count = 0;
	char buf[96];

	describe(n, node4);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	dev = handle(n, 1);
	assert_int_equal(n->nvmlEventSetCreate(&set), NVML_SUCCESS);
	assert_int_equal(n->nvmlDeviceRegisterEvents(dev, nvmlEventTypeXidCriticalError, set),
			 NVML_SUCCESS);
	for (size_t i = 0; i < ELEMENTSOF(names); i++) {
		nvmlReturn_t want = i == 0 ? NVML_ERROR_DRIVER_NOT_LOADED
					   : NVML_ERROR_LIB_RM_VERSION_MISMATCH;

		test_fake_nvml_driver_error(n->desc, names[i]);
		assert_int_equal(n->nvmlInit_v2(), want);
		assert_int_equal(n->nvmlDeviceGetCount_v2(&count), want);
		assert_int_equal(n->nvmlSystemGetDriverVersion(buf, sizeof(buf)), want);
		assert_int_equal(n->nvmlDeviceGetHandleByIndex_v2(1, &dev2), want);
		assert_null(dev2);
		assert_int_equal(n->nvmlDeviceGetUUID(dev, buf, sizeof(buf)), want);
		assert_int_equal(n->nvmlDeviceGetName(dev, buf, sizeof(buf)), want);
		assert_int_equal(n->nvmlEventSetCreate(&set2), want);
		assert_null(set2);
		assert_int_equal(n->nvmlEventSetWait_v2(set, &ev, 0), want);
		assert_int_equal(n->nvmlEventSetFree(set), want);
		assert_non_null(
			strstr(n->nvmlErrorString(want), i == 0 ? "Not Loaded" : "mismatch"));
	}

	/* Cleared: the same session answers, with the handles and the set it had. */
	test_fake_nvml_driver_error(n->desc, NULL);
	assert_int_equal(n->nvmlDeviceGetCount_v2(&count), NVML_SUCCESS);
	assert_int_equal(count, 4);
	assert_ptr_equal(handle(n, 1), dev);
	assert_int_equal(n->nvmlDeviceGetUUID(dev, buf, sizeof(buf)), NVML_SUCCESS);
	assert_string_equal(buf, "GPU-1");
	assert_int_equal(n->nvmlEventSetWait_v2(set, &ev, 0), NVML_ERROR_TIMEOUT);
	assert_int_equal(n->nvmlEventSetFree(set), NVML_SUCCESS);

	/* Not an NVML error name: every call fails with UNKNOWN (and a line on stderr). */
	test_fake_nvml_driver_error(n->desc, "DRIVER_GONE");
	assert_int_equal(n->nvmlDeviceGetCount_v2(&count), NVML_ERROR_UNKNOWN);
	test_fake_nvml_driver_error(n->desc, "SUCCESS");
	assert_int_equal(n->nvmlDeviceGetCount_v2(&count), NVML_ERROR_UNKNOWN);

	/* The failed inits took no reference, and nvmlShutdown works meanwhile: one ends it all. */
	assert_int_equal(n->nvmlShutdown(), NVML_SUCCESS);
	test_fake_nvml_driver_error(n->desc, NULL);
	assert_int_equal(n->nvmlDeviceGetCount_v2(&count), NVML_ERROR_UNINITIALIZED);
	assert_int_equal(n->nvmlShutdown(), NVML_ERROR_UNINITIALIZED);
}

/* ---- topology and NvLink --------------------------------------------------------------------- */

static void test_topology(void **state)
{
	struct nvml *n = *state;
	nvmlGpuTopologyLevel_t level = -1;
	nvmlDevice_t g0, g1, g2, g3;

	describe(n, node4);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	g0 = handle(n, 0);
	g1 = handle(n, 1);
	g2 = handle(n, 2);
	g3 = handle(n, 3);
	assert_int_equal(n->nvmlDeviceGetTopologyCommonAncestor(g0, g0, &level), NVML_SUCCESS);
	assert_int_equal(level, NVML_TOPOLOGY_INTERNAL);
	assert_int_equal(n->nvmlDeviceGetTopologyCommonAncestor(g0, g1, &level), NVML_SUCCESS);
	assert_int_equal(level, NVML_TOPOLOGY_MULTIPLE);
	assert_int_equal(n->nvmlDeviceGetTopologyCommonAncestor(g1, g0, &level), NVML_SUCCESS);
	assert_int_equal(level, NVML_TOPOLOGY_MULTIPLE);
	assert_int_equal(n->nvmlDeviceGetTopologyCommonAncestor(g0, g2, &level), NVML_SUCCESS);
	assert_int_equal(level, NVML_TOPOLOGY_NODE);
	assert_int_equal(n->nvmlDeviceGetTopologyCommonAncestor(g2, g3, &level), NVML_SUCCESS);
	assert_int_equal(level, NVML_TOPOLOGY_SYSTEM);
	assert_int_equal(n->nvmlDeviceGetTopologyCommonAncestor(g0, NULL, &level),
			 NVML_ERROR_INVALID_ARGUMENT);

	/* GPUs whose place is not described share nothing. */
	assert_int_equal(n->nvmlShutdown(), NVML_SUCCESS);
	describe(n, mig_node);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	assert_int_equal(n->nvmlDeviceGetTopologyCommonAncestor(handle(n, 0), handle(n, 1), &level),
			 NVML_SUCCESS);
	assert_int_equal(level, NVML_TOPOLOGY_SYSTEM);
}

static void test_nvlink(void **state)
{
	struct nvml *n = *state;
	nvmlEnableState_t active = -1;
	nvmlPciInfo_t pci;
	nvmlDevice_t g0;

	describe(n, node4);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	g0 = handle(n, 0);
	/* Link 0 leads to an NVSwitch, link 2 to GPU 3, link 1 (null) and the rest are down. */
	assert_int_equal(n->nvmlDeviceGetNvLinkState(g0, 0, &active), NVML_SUCCESS);
	assert_int_equal(active, NVML_FEATURE_ENABLED);
	assert_int_equal(n->nvmlDeviceGetNvLinkRemotePciInfo_v2(g0, 0, &pci), NVML_SUCCESS);
	assert_string_equal(pci.busId, "00000000:06:00.0");
	assert_string_equal(pci.busIdLegacy, "0000:06:00.0");
	assert_int_equal(pci.bus, 6);
	assert_int_equal(pci.pciDeviceId, 0x22a310de);

	assert_int_equal(n->nvmlDeviceGetNvLinkState(g0, 2, &active), NVML_SUCCESS);
	assert_int_equal(active, NVML_FEATURE_ENABLED);
	assert_int_equal(n->nvmlDeviceGetNvLinkRemotePciInfo_v2(g0, 2, &pci), NVML_SUCCESS);
	assert_string_equal(pci.busId, "00000000:9A:00.0");
	assert_int_equal(pci.pciDeviceId, 0x233010de);

	assert_int_equal(n->nvmlDeviceGetNvLinkState(g0, 1, &active), NVML_SUCCESS);
	assert_int_equal(active, NVML_FEATURE_DISABLED);
	assert_int_equal(n->nvmlDeviceGetNvLinkRemotePciInfo_v2(g0, 1, &pci),
			 NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(n->nvmlDeviceGetNvLinkState(g0, 17, &active), NVML_SUCCESS);
	assert_int_equal(active, NVML_FEATURE_DISABLED);
	assert_int_equal(n->nvmlDeviceGetNvLinkState(g0, 18, &active), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceGetNvLinkRemotePciInfo_v2(g0, 18, &pci),
			 NVML_ERROR_INVALID_ARGUMENT);

	/* "nvlinks": [] is a GPU whose links are all down; no "nvlinks", a GPU without NvLink. */
	assert_int_equal(n->nvmlDeviceGetNvLinkState(handle(n, 3), 0, &active), NVML_SUCCESS);
	assert_int_equal(active, NVML_FEATURE_DISABLED);
	assert_int_equal(n->nvmlDeviceGetNvLinkState(handle(n, 1), 0, &active),
			 NVML_ERROR_NOT_SUPPORTED);
}

/* ---- MIG ------------------------------------------------------------------------------------- */

static unsigned remaining(const struct nvml *n, nvmlDevice_t dev, unsigned profile_id)
{
	unsigned count = 12345;

	assert_int_equal(n->nvmlDeviceGetGpuInstanceRemainingCapacity(dev, profile_id, &count),
			 NVML_SUCCESS);
	return count;
}

static nvmlReturn_t profile_info(const struct nvml *n, nvmlDevice_t dev, unsigned index,
				 nvmlGpuInstanceProfileInfo_t *info)
{
	return n->nvmlDeviceGetGpuInstanceProfileInfo(dev, index, info);
}

static void test_mig(void **state)
{
	struct nvml *n = *state;
	nvmlGpuInstanceProfileInfo_t info;
	unsigned cur = 9, pend = 9;
	nvmlDevice_t g0, g1, g2, g3, g4;

	describe(n, mig_node);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	g0 = handle(n, 0);
	g1 = handle(n, 1);
	g2 = handle(n, 2);
	g3 = handle(n, 3);
	g4 = handle(n, 4);

	assert_int_equal(n->nvmlDeviceGetMigMode(g0, &cur, &pend), NVML_SUCCESS);
	assert_int_equal(cur, NVML_DEVICE_MIG_DISABLE);
	assert_int_equal(pend, NVML_DEVICE_MIG_DISABLE);
	assert_int_equal(n->nvmlDeviceGetMigMode(g2, &cur, &pend), NVML_SUCCESS);
	assert_int_equal(cur, NVML_DEVICE_MIG_ENABLE);
	assert_int_equal(pend, NVML_DEVICE_MIG_DISABLE);
	assert_int_equal(n->nvmlDeviceGetMigMode(g4, &cur, &pend), NVML_SUCCESS);
	assert_int_equal(cur, NVML_DEVICE_MIG_DISABLE);
	assert_int_equal(pend, NVML_DEVICE_MIG_ENABLE);
	assert_int_equal(n->nvmlDeviceGetMigMode(g3, &cur, &pend), NVML_ERROR_NOT_SUPPORTED);

	/* The profiles are there with MIG disabled, as the driver shows them. */
	memset(&info, 0xff, sizeof(info));
	assert_int_equal(profile_info(n, g0, NVML_GPU_INSTANCE_PROFILE_1_SLICE, &info),
			 NVML_SUCCESS);
	assert_int_equal(info.id, 19);
	assert_int_equal(info.sliceCount, 1);
	assert_int_equal(info.instanceCount, 7);
	assert_int_equal(info.multiprocessorCount, 16);
	assert_true(info.memorySizeMB == 9984);
	assert_int_equal(info.isP2pSupported, 0);
	assert_int_equal(profile_info(n, g0, NVML_GPU_INSTANCE_PROFILE_7_SLICE, &info),
			 NVML_SUCCESS);
	assert_int_equal(info.id, 0);
	assert_int_equal(info.sliceCount, 7);
	assert_true(info.memorySizeMB == 81152);
	assert_int_equal(profile_info(n, g0, NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2, &info),
			 NVML_SUCCESS);
	assert_int_equal(info.id, 15);
	assert_int_equal(info.instanceCount, 4);
	assert_int_equal(profile_info(n, g0, NVML_GPU_INSTANCE_PROFILE_8_SLICE, &info),
			 NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(profile_info(n, g0, NVML_GPU_INSTANCE_PROFILE_COUNT, &info),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(profile_info(n, g3, NVML_GPU_INSTANCE_PROFILE_1_SLICE, &info),
			 NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(profile_info(n, g4, NVML_GPU_INSTANCE_PROFILE_7_SLICE, &info),
			 NVML_SUCCESS);
	assert_int_equal(info.id, 0);
	assert_int_equal(info.multiprocessorCount, 98);
	assert_true(info.memorySizeMB == 40192);

	/* Remaining capacity by profile id. An empty GPU has room for everything. */
	assert_int_equal(remaining(n, g0, 19), 7);
	assert_int_equal(remaining(n, g0, 0), 1);
	assert_int_equal(remaining(n, g0, 9), 2);
	/* Seven 1g.10gb: full. */
	assert_int_equal(remaining(n, g1, 19), 0);
	assert_int_equal(remaining(n, g1, 20), 0);
	assert_int_equal(remaining(n, g1, 0), 0);
	/* Two 1g.10gb and two 1g.20gb: three slices left, two more 1g.20gb at most. */
	assert_int_equal(remaining(n, g2, 19), 3);
	assert_int_equal(remaining(n, g2, 15), 2);
	assert_int_equal(remaining(n, g2, 14), 1);
	assert_int_equal(remaining(n, g2, 9), 1);
	assert_int_equal(remaining(n, g2, 5), 0);
	assert_int_equal(remaining(n, g2, 0), 0);
	assert_int_equal(n->nvmlDeviceGetGpuInstanceRemainingCapacity(g0, 99, &cur),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceGetGpuInstanceRemainingCapacity(g3, 19, &cur),
			 NVML_ERROR_NOT_SUPPORTED);
}

/* ---- MIG devices ----------------------------------------------------------------------------- */

static nvmlDevice_t mig_handle(const struct nvml *n, nvmlDevice_t gpu, unsigned index)
{
	nvmlDevice_t mig = NULL;

	assert_int_equal(n->nvmlDeviceGetMigDeviceHandleByIndex(gpu, index, &mig), NVML_SUCCESS);
	assert_non_null(mig);
	return mig;
}

static unsigned instance_id(const struct nvml *n, nvmlDevice_t mig, bool compute)
{
	unsigned id = 12345;

	assert_int_equal(compute ? n->nvmlDeviceGetComputeInstanceId(mig, &id) :
				   n->nvmlDeviceGetGpuInstanceId(mig, &id),
			 NVML_SUCCESS);
	return id;
}

/* "MIG-" and an RFC 4122 version 5 UUID in lower-case hex, as the driver spells them. */
static void assert_mig_uuid(const char *s)
{
	static const char shape[] = "MIG-xxxxxxxx-xxxx-5xxx-vxxx-xxxxxxxxxxxx";

	assert_int_equal(strlen(s), strlen(shape));
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == 'x')
			assert_non_null(strchr("0123456789abcdef", s[i]));
		else if (shape[i] == 'v')
			assert_non_null(strchr("89ab", s[i]));
		else
			assert_int_equal(s[i], shape[i]);
	}
}

/* A GPU's MIG devices: one per GPU instance while MIG is on, answering what a MIG device does. */
static void test_mig_devices(void **state)
{
	struct nvml *n = *state;
	char buf[NVML_DEVICE_NAME_V2_BUFFER_SIZE], uuids[7][NVML_DEVICE_UUID_V2_BUFFER_SIZE];
	nvmlDevice_t g0, g1, g2, g3, migs[7], m, bogus = (nvmlDevice_t)(void *)&buf;
	nvmlDeviceAttributes_t attr;
	nvmlGpuTopologyLevel_t level;
	nvmlPciInfo_t pci;
	nvmlMemory_t mem;
	unsigned count, u, cur, pend;

	describe(n, mig_node);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	g0 = handle(n, 0);
	g1 = handle(n, 1);
	g2 = handle(n, 2);
	g3 = handle(n, 3);

	/* Every MIG-capable GPU can have 7, whatever its mode; a GPU without MIG none. */
	count = 0;
	assert_int_equal(n->nvmlDeviceGetMaxMigDeviceCount(g0, &count), NVML_SUCCESS);
	assert_int_equal(count, 7);
	count = 0;
	assert_int_equal(n->nvmlDeviceGetMaxMigDeviceCount(g1, &count), NVML_SUCCESS);
	assert_int_equal(count, 7);
	assert_int_equal(n->nvmlDeviceGetMaxMigDeviceCount(g3, &count), NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(n->nvmlDeviceGetMaxMigDeviceCount(g0, NULL), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceGetMaxMigDeviceCount(bogus, &count),
			 NVML_ERROR_INVALID_ARGUMENT);

	/* Seven 1g.10gb: seven distinct handles, none of them a GPU's, the same on every call. */
	for (unsigned i = 0; i < 7; i++) {
		migs[i] = mig_handle(n, g1, i);
		assert_ptr_equal(mig_handle(n, g1, i), migs[i]);
		for (unsigned g = 0; g < 5; g++)
			assert_ptr_not_equal(migs[i], handle(n, g));
		for (unsigned k = 0; k < i; k++)
			assert_ptr_not_equal(migs[i], migs[k]);

		/* Bare profile ids: GPU instance position + 1, compute instance 0. */
		assert_int_equal(instance_id(n, migs[i], false), i + 1);
		assert_int_equal(instance_id(n, migs[i], true), 0);

		assert_int_equal(n->nvmlDeviceGetUUID(migs[i], uuids[i], sizeof(uuids[i])),
				 NVML_SUCCESS);
		assert_mig_uuid(uuids[i]);
		for (unsigned k = 0; k < i; k++)
			assert_string_not_equal(uuids[i], uuids[k]);
		assert_int_equal(n->nvmlDeviceGetUUID(migs[i], buf, 40),
				 NVML_ERROR_INSUFFICIENT_SIZE);

		assert_int_equal(n->nvmlDeviceGetName(migs[i], buf, sizeof(buf)), NVML_SUCCESS);
		assert_string_equal(buf, "NVIDIA H100 80GB HBM3 MIG 1g.10gb");
		assert_int_equal(n->nvmlDeviceGetMemoryInfo(migs[i], &mem), NVML_SUCCESS);
		assert_true(mem.total == 9984ULL << 20);
		assert_true(mem.free + mem.used == mem.total);
	}
	/* The UUIDs come from the GPU's UUID and the position alone. */
	assert_string_equal(uuids[0], "MIG-d821dd13-dfc8-5805-9666-d10f6af472af");
	assert_string_equal(uuids[1], "MIG-7fe4456d-d658-5a22-a369-c7d14470a385");

	memset(&attr, 0xff, sizeof(attr));
	assert_int_equal(n->nvmlDeviceGetAttributes_v2(migs[3], &attr), NVML_SUCCESS);
	assert_int_equal(attr.multiprocessorCount, 16);
	assert_int_equal(attr.gpuInstanceSliceCount, 1);
	assert_int_equal(attr.computeInstanceSliceCount, 1);
	assert_true(attr.memorySizeMB == 9984);
	assert_int_equal(attr.sharedCopyEngineCount, 1);
	assert_int_equal(attr.sharedDecoderCount, 1);
	assert_int_equal(attr.sharedEncoderCount, 0);
	assert_int_equal(attr.sharedJpegCount, 1);
	assert_int_equal(attr.sharedOfaCount, 0);
	/* A GPU's handle answers for the whole GPU, MIG on or off; without MIG, not at all. */
	memset(&attr, 0xff, sizeof(attr));
	assert_int_equal(n->nvmlDeviceGetAttributes_v2(g0, &attr), NVML_SUCCESS);
	assert_int_equal(attr.multiprocessorCount, 132);
	assert_int_equal(attr.gpuInstanceSliceCount, 7);
	assert_int_equal(attr.computeInstanceSliceCount, 7);
	assert_true(attr.memorySizeMB == 81152);
	assert_int_equal(attr.sharedCopyEngineCount, 8);
	assert_int_equal(attr.sharedDecoderCount, 7);
	assert_int_equal(attr.sharedJpegCount, 7);
	assert_int_equal(attr.sharedOfaCount, 1);
	assert_int_equal(n->nvmlDeviceGetAttributes_v2(g1, &attr), NVML_SUCCESS);
	assert_int_equal(attr.gpuInstanceSliceCount, 7);
	assert_int_equal(n->nvmlDeviceGetAttributes_v2(g3, &attr), NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(n->nvmlDeviceGetAttributes_v2(migs[0], NULL), NVML_ERROR_INVALID_ARGUMENT);

	/* Instance ids are a MIG device's only. */
	assert_int_equal(n->nvmlDeviceGetGpuInstanceId(g1, &u), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceGetComputeInstanceId(g1, &u), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceGetGpuInstanceId(migs[0], NULL), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceGetGpuInstanceId(bogus, &u), NVML_ERROR_INVALID_ARGUMENT);

	/* A MIG device has no MIG devices, and no answer to what only a whole GPU knows. */
	assert_int_equal(n->nvmlDeviceGetMaxMigDeviceCount(migs[0], &count),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceGetMigDeviceHandleByIndex(migs[0], 0, &m),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceGetPciInfo_v3(migs[0], &pci), NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(n->nvmlDeviceGetMinorNumber(migs[0], &u), NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(n->nvmlDeviceGetMigMode(migs[0], &cur, &pend), NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(n->nvmlDeviceGetTopologyCommonAncestor(migs[0], g1, &level),
			 NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(n->nvmlDeviceGetTopologyCommonAncestor(g1, migs[0], &level),
			 NVML_ERROR_NOT_SUPPORTED);

	/* Indexes: past the devices NOT_FOUND, past the maximum an invalid argument. */
	assert_int_equal(n->nvmlDeviceGetMigDeviceHandleByIndex(g1, 7, &m),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceGetMigDeviceHandleByIndex(g1, 0, NULL),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceGetMigDeviceHandleByIndex(g2, 4, &m), NVML_ERROR_NOT_FOUND);
	assert_int_equal(n->nvmlDeviceGetMigDeviceHandleByIndex(g2, 6, &m), NVML_ERROR_NOT_FOUND);
	assert_int_equal(n->nvmlDeviceGetMigDeviceHandleByIndex(g0, 0, &m), NVML_ERROR_NOT_FOUND);
	assert_int_equal(n->nvmlDeviceGetMigDeviceHandleByIndex(g3, 0, &m),
			 NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(n->nvmlDeviceGetMigDeviceHandleByIndex(bogus, 0, &m),
			 NVML_ERROR_INVALID_ARGUMENT);

	/* Two 1g.10gb and two 1g.20gb: the profile decides name, memory and SMs. */
	m = mig_handle(n, g2, 2);
	assert_int_equal(instance_id(n, m, false), 3);
	assert_int_equal(n->nvmlDeviceGetName(m, buf, sizeof(buf)), NVML_SUCCESS);
	assert_string_equal(buf, "NVIDIA H100 80GB HBM3 MIG 1g.20gb");
	assert_int_equal(n->nvmlDeviceGetMemoryInfo(m, &mem), NVML_SUCCESS);
	assert_true(mem.total == 20096ULL << 20);
	assert_int_equal(n->nvmlDeviceGetAttributes_v2(m, &attr), NVML_SUCCESS);
	assert_int_equal(attr.multiprocessorCount, 26);
	assert_int_equal(attr.gpuInstanceSliceCount, 1);
	assert_true(attr.memorySizeMB == 20096);

	/* MIG handles die with their session; a new one without those instances refuses them. */
	assert_int_equal(n->nvmlShutdown(), NVML_SUCCESS);
	assert_int_equal(n->nvmlDeviceGetUUID(migs[0], buf, sizeof(buf)), NVML_ERROR_UNINITIALIZED);
	describe(n, "{ \"gpus\": [" H100("0000:01:00.0", 0, "") ", "
		    H100_MIG("0000:02:00.0", 1, "{\"current\": false, \"pending\": false}",
			     ", \"mig_instances\": [19]") "] }");
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	assert_int_equal(n->nvmlDeviceGetUUID(migs[0], buf, sizeof(buf)),
			 NVML_ERROR_INVALID_ARGUMENT);
	/* Instances with MIG disabled (pending a reboot) are no devices yet. */
	assert_int_equal(n->nvmlDeviceGetMigDeviceHandleByIndex(handle(n, 1), 0, &m),
			 NVML_ERROR_NOT_FOUND);
	assert_int_equal(remaining(n, handle(n, 1), 19), 6);
}

/* Instances described as objects: given ids and UUIDs, the defaults for the rest. */
static const char mig_objects_node[] =
	"{ \"gpus\": ["
	H100_MIG("0000:02:00.0", 1, "{\"current\": true, \"pending\": true}",
		 ", \"mig_instances\": [ "
		 "{\"profile\": 9, \"gi\": 2, \"ci\": 0, "
		 "\"uuid\": \"MIG-11111111-2222-5333-8444-555555555555\"}, "
		 "{\"profile\": 14, \"gi\": 5, \"ci\": 1}, 19, {\"profile\": 19, \"gi\": 0} ]")
	"] }";

static void test_mig_objects(void **state)
{
	struct nvml *n = *state;
	char buf[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
	nvmlDeviceAttributes_t attr;
	nvmlDevice_t g, m;

	describe(n, mig_objects_node);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	g = handle(n, 0);

	m = mig_handle(n, g, 0);
	assert_int_equal(instance_id(n, m, false), 2);
	assert_int_equal(instance_id(n, m, true), 0);
	assert_int_equal(n->nvmlDeviceGetUUID(m, buf, sizeof(buf)), NVML_SUCCESS);
	assert_string_equal(buf, "MIG-11111111-2222-5333-8444-555555555555");
	assert_int_equal(n->nvmlDeviceGetName(m, buf, sizeof(buf)), NVML_SUCCESS);
	assert_string_equal(buf, "NVIDIA H100 80GB HBM3 MIG 3g.40gb");
	assert_int_equal(n->nvmlDeviceGetAttributes_v2(m, &attr), NVML_SUCCESS);
	assert_int_equal(attr.multiprocessorCount, 60);
	assert_int_equal(attr.gpuInstanceSliceCount, 3);
	assert_int_equal(attr.computeInstanceSliceCount, 3);
	assert_int_equal(attr.sharedCopyEngineCount, 3);
	assert_true(attr.memorySizeMB == 40448);

	/* Position 1 of a GPU "GPU-1": the same UUID as mig_node's second 1g.10gb. */
	m = mig_handle(n, g, 1);
	assert_int_equal(instance_id(n, m, false), 5);
	assert_int_equal(instance_id(n, m, true), 1);
	assert_int_equal(n->nvmlDeviceGetUUID(m, buf, sizeof(buf)), NVML_SUCCESS);
	assert_string_equal(buf, "MIG-7fe4456d-d658-5a22-a369-c7d14470a385");
	assert_int_equal(n->nvmlDeviceGetName(m, buf, sizeof(buf)), NVML_SUCCESS);
	assert_string_equal(buf, "NVIDIA H100 80GB HBM3 MIG 2g.20gb");

	m = mig_handle(n, g, 2);
	assert_int_equal(instance_id(n, m, false), 3);
	assert_int_equal(instance_id(n, m, true), 0);
	m = mig_handle(n, g, 3);
	assert_int_equal(instance_id(n, m, false), 0);
	assert_int_equal(n->nvmlDeviceGetMigDeviceHandleByIndex(g, 4, &m), NVML_ERROR_NOT_FOUND);
	/* 3 + 2 + 1 + 1 slices taken. */
	assert_int_equal(remaining(n, g, 19), 0);
}

/* The parent GPU's injected errors and hangs are its MIG devices' too. */
static void test_mig_errors(void **state)
{
	struct nvml *n = *state;
	char buf[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
	nvmlDevice_t g0, g1, m;
	nvmlMemory_t mem;
	long long start;
	unsigned u;

	describe(n, "{ \"gpus\": ["
		    H100_MIG("0000:01:00.0", 0, "{\"current\": true, \"pending\": true}",
			     ", \"mig_instances\": [19, 19], \"errors\": {"
			     "\"nvmlDeviceGetMemoryInfo\": \"UNKNOWN\", "
			     "\"nvmlDeviceGetGpuInstanceId\": \"NO_PERMISSION\"}, "
			     "\"hang_ms\": {\"nvmlDeviceGetName\": 200}") ", "
		    H100_MIG("0000:02:00.0", 1, "{\"current\": true, \"pending\": true}",
			     ", \"mig_instances\": [19], \"errors\": {"
			     "\"nvmlDeviceGetMigDeviceHandleByIndex\": \"GPU_IS_LOST\"}") "] }");
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	g0 = handle(n, 0);
	g1 = handle(n, 1);
	m = mig_handle(n, g0, 1);
	assert_int_equal(n->nvmlDeviceGetMemoryInfo(m, &mem), NVML_ERROR_UNKNOWN);
	assert_int_equal(n->nvmlDeviceGetMemoryInfo(g0, &mem), NVML_ERROR_UNKNOWN);
	assert_int_equal(n->nvmlDeviceGetGpuInstanceId(m, &u), NVML_ERROR_NO_PERMISSION);
	assert_int_equal(instance_id(n, m, true), 0);
	assert_int_equal(n->nvmlDeviceGetUUID(m, buf, sizeof(buf)), NVML_SUCCESS);
	start = test_now_ms();
	assert_int_equal(n->nvmlDeviceGetName(m, buf, sizeof(buf)), NVML_SUCCESS);
	assert_true(test_now_ms() - start >= 200);
	assert_int_equal(n->nvmlDeviceGetMigDeviceHandleByIndex(g1, 0, &m), NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(n->nvmlDeviceGetMaxMigDeviceCount(g1, &u), NVML_SUCCESS);
	assert_int_equal(n->nvmlShutdown(), NVML_SUCCESS);

	/* "*": a GPU that fell off the bus takes its MIG devices with it. */
	describe(n, "{ \"gpus\": ["
		    H100_MIG("0000:01:00.0", 0, "{\"current\": true, \"pending\": true}",
			     ", \"mig_instances\": [19], \"errors\": {\"*\": \"GPU_IS_LOST\"}, "
			     "\"hang_ms\": {\"nvmlDeviceGetMigDeviceHandleByIndex\": 200}") "] }");
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	start = test_now_ms();
	assert_int_equal(n->nvmlDeviceGetMigDeviceHandleByIndex(handle(n, 0), 0, &m),
			 NVML_ERROR_GPU_IS_LOST);
	assert_true(test_now_ms() - start >= 200);
	assert_int_equal(n->nvmlDeviceGetMaxMigDeviceCount(handle(n, 0), &u),
			 NVML_ERROR_GPU_IS_LOST);
}

/* ---- MIG state across processes -------------------------------------------------------------- */

/* GPU 0 has MIG disabled; GPU 1 MIG enabled with @instances, and @extra keys. */
#define STATE_NODE(instances, extra)                                                               \
	"{ \"gpus\": [" H100("0000:01:00.0", 0, "") ", "                                           \
	H100_MIG("0000:02:00.0", 1, "{\"current\": true, \"pending\": true}",                      \
		 ", \"mig_instances\": " instances extra) "] }"
#define SEVEN_1G "[19, 19, 19, 19, 19, 19, 19]"
/* The same with GPU 0's "mig" @mig and GPU 1's seven 1g.10gb. */
#define STATE_NODE_GPU0(mig)                                                                       \
	"{ \"gpus\": [" H100_MIG("0000:01:00.0", 0, mig, "") ", "                                \
	H100_MIG("0000:02:00.0", 1, "{\"current\": true, \"pending\": true}",                      \
		 ", \"mig_instances\": " SEVEN_1G) "] }"

/* Rewrites the description in place (by rename: no process reads half of it), keeping its path
 * and so its state file, as a test does to a running node's (test_fake_nvml_set()). */
static void redescribe(const struct nvml *n, const char *json)
{
	_cleanup_free_ char *temp = NULL;
	int fd;

	assert_true(asprintf(&temp, "%s.new", n->desc) > 0);
	fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
	assert_int_equal(close(fd), 0);
	assert_int_equal(rename(temp, n->desc), 0);
}

static void append(char *buf, size_t size, const char *fmt, ...) _printf_(3, 4);
static void append(char *buf, size_t size, const char *fmt, ...)
{
	size_t len = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + len, size - len, fmt, ap);
	va_end(ap);
}

/*
 * What this process sees of GPU @index's MIG state, NVML initialised, as one line: its modes
 * ("mode=<current>/<pending>", 1 enabled), its MIG devices ("dev=<gi>/<ci>/<profile>/<uuid>"),
 * how many GPU instances of each profile id it has ("gi<id>=<n>", MIG enabled), the room left
 * for a 1g.10gb ("free19=<n>"). No cmocka: children call it. NVML_SUCCESS or the first error.
 */
static nvmlReturn_t mig_seen(const struct nvml *n, unsigned index, char *buf, size_t size)
{
	static const unsigned ids[] = { 19, 20, 15, 14, 9, 5, 0 };
	unsigned cur = 0, pend = 0, count = 0;
	nvmlDevice_t gpu, m;
	nvmlReturn_t r;

	buf[0] = '\0';
	r = n->nvmlDeviceGetHandleByIndex_v2(index, &gpu);
	if (r == NVML_SUCCESS)
		r = n->nvmlDeviceGetMigMode(gpu, &cur, &pend);
	if (r != NVML_SUCCESS)
		return r;
	append(buf, size, "mode=%u/%u", cur, pend);
	for (unsigned i = 0; n->nvmlDeviceGetMigDeviceHandleByIndex(gpu, i, &m) == NVML_SUCCESS;
	     i++) {
		char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE], uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
		unsigned gi = 0, ci = 0;

		r = n->nvmlDeviceGetGpuInstanceId(m, &gi)
			?: n->nvmlDeviceGetComputeInstanceId(m, &ci)
			?: n->nvmlDeviceGetName(m, name, sizeof(name))
			?: n->nvmlDeviceGetUUID(m, uuid, sizeof(uuid));
		if (r != NVML_SUCCESS)
			return r;
		append(buf, size, " dev=%u/%u/%s/%s", gi, ci, strrchr(name, ' ') + 1, uuid);
	}
	for (size_t i = 0; cur == NVML_DEVICE_MIG_ENABLE && i < ELEMENTSOF(ids); i++) {
		nvmlGpuInstance_t gis[7];

		count = ELEMENTSOF(gis);
		r = n->nvmlDeviceGetGpuInstances(gpu, ids[i], gis, &count);
		if (r != NVML_SUCCESS)
			return r;
		if (count)
			append(buf, size, " gi%u=%u", ids[i], count);
	}
	r = n->nvmlDeviceGetGpuInstanceRemainingCapacity(gpu, 19, &count);
	if (r == NVML_SUCCESS)
		append(buf, size, " free19=%u", count);
	return r;
}

/* Both GPUs' mig_seen() lines to @fd, or "error <code>"; then the session ends. */
static void report_seen(const struct nvml *n, nvmlReturn_t r, int fd)
{
	char a[1024], b[1024];

	if (r == NVML_SUCCESS)
		r = mig_seen(n, 0, a, sizeof(a)) ?: mig_seen(n, 1, b, sizeof(b));
	if (r == NVML_SUCCESS)
		dprintf(fd, "%s\n%s\n", a, b);
	else
		dprintf(fd, "error %d\n", r);
	n->nvmlShutdown();
}

/* In a child: what its first init finds. */
static void child_seen(void *userdata, int fd)
{
	const struct nvml *n = userdata;

	report_seen(n, n->nvmlInit_v2(), fd);
}

/*
 * In a child: GPU 1's seven 1g.10gb become two 3g.40gb and a 1g.10gb GPU instance without a
 * compute instance; GPU 0's MIG mode is enabled, pending a reset. Then what it sees.
 */
static void child_repartition(void *userdata, int fd)
{
	const struct nvml *n = userdata;
	nvmlReturn_t status = NVML_SUCCESS, r;
	nvmlGpuInstance_t gis[7], gi;
	unsigned count = ELEMENTSOF(gis);
	nvmlComputeInstance_t ci;
	nvmlDevice_t g0, g1;

	r = n->nvmlInit_v2() ?: n->nvmlDeviceGetHandleByIndex_v2(0, &g0)
		?: n->nvmlDeviceGetHandleByIndex_v2(1, &g1)
		?: n->nvmlDeviceGetGpuInstances(g1, 19, gis, &count);
	for (unsigned k = 0; r == NVML_SUCCESS && k < count; k++) {
		unsigned one = 1;

		r = n->nvmlGpuInstanceGetComputeInstances(gis[k],
							  NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE,
							  &ci, &one)
			?: n->nvmlComputeInstanceDestroy(ci) ?: n->nvmlGpuInstanceDestroy(gis[k]);
	}
	for (unsigned k = 0; r == NVML_SUCCESS && k < 2; k++)
		r = n->nvmlDeviceCreateGpuInstance(g1, 9, &gi)
			?: n->nvmlGpuInstanceCreateComputeInstance(
				gi, NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE, &ci);
	if (r == NVML_SUCCESS)
		r = n->nvmlDeviceCreateGpuInstance(g1, 19, &gi)
			?: n->nvmlDeviceSetMigMode(g0, NVML_DEVICE_MIG_ENABLE, &status);
	if (r == NVML_SUCCESS && status != NVML_ERROR_RESET_REQUIRED)
		r = NVML_ERROR_UNKNOWN;
	report_seen(n, r, fd);
}

/* What @fn reports in a child that ends well (malloc'd). */
static char *child_report(struct nvml *n, void (*fn)(void *userdata, int fd))
{
	struct test_child child;
	char *report;

	test_child_run(fn, n, 20000, &child);
	if (!WIFEXITED(child.status) || WEXITSTATUS(child.status) != 0 || !child.result ||
	    strncmp(child.result, "error", 5) == 0)
		fail_msg("the child ended with status 0x%x: %s%s", (unsigned)child.status,
			 child.result ?: "", child.err ?: "");
	report = TAKE_PTR(child.result);
	test_child_free(&child);
	return report;
}

/* The state file's entry of GPU @bus (a new reference), or NULL without one. */
static json_t *state_entry(const struct nvml *n, const char *bus)
{
	_cleanup_free_ char *path = NULL;
	json_t *doc, *e;

	assert_true(asprintf(&path, "%s.mig-state", n->desc) > 0);
	doc = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(doc);
	e = json_incref(json_object_get(json_object_get(doc, "gpus"), bus));
	json_decref(doc);
	return e;
}

#define GPU1_REPARTITIONED                                                                         \
	"mode=1/1 dev=1/0/3g.40gb/MIG-b8380826-8786-5644-a0f7-2ab55c1001f3 "                       \
	"dev=2/0/3g.40gb/MIG-41af3a03-9d60-5dab-9410-b2d7a5880604 gi19=1 gi9=2 free19=0\n"

/*
 * The MIG changes of one process are what the next one finds, as a driver keeps them: the
 * instances made and destroyed, with their ids and UUIDs, one without a compute instance, and
 * a MIG mode pending a reset.
 */
static void test_mig_state_across_processes(void **state)
{
	struct nvml *n = *state;
	_cleanup_free_ char *made = NULL, *seen = NULL;
	char a[1024], b[1024];
	json_t *e, *list, *last;

	describe(n, STATE_NODE(SEVEN_1G, ""));
	made = child_report(n, child_repartition);
	assert_string_equal(made, "mode=0/1 free19=7\n" GPU1_REPARTITIONED);

	/* another process finds exactly that at its first init, and so does this one */
	seen = child_report(n, child_seen);
	assert_string_equal(seen, made);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	assert_int_equal(mig_seen(n, 0, a, sizeof(a)), NVML_SUCCESS);
	assert_int_equal(mig_seen(n, 1, b, sizeof(b)), NVML_SUCCESS);
	free(seen);
	assert_true(asprintf(&seen, "%s\n%s\n", a, b) > 0);
	assert_string_equal(seen, made);
	assert_int_equal(n->nvmlShutdown(), NVML_SUCCESS);

	/* the state file: three GPU instances created, one of them without a compute instance */
	e = state_entry(n, "0000:02:00.0");
	assert_int_equal(json_integer_value(json_object_get(e, "created")), 3);
	list = json_object_get(json_object_get(e, "mig"), "instances");
	assert_int_equal(json_array_size(list), 3);
	last = json_array_get(list, 2);
	assert_true(json_is_null(json_object_get(last, "ci")));
	assert_int_equal(json_integer_value(json_object_get(last, "profile")), 19);
	json_decref(e);
	e = state_entry(n, "0000:01:00.0");
	assert_true(json_is_true(json_object_get(json_object_get(e, "mig"), "pending")));
	json_decref(e);
}

/*
 * A test that changes a GPU's "mig" or "mig_instances" in the description changes the node on
 * purpose: the state of that GPU is dropped, the other GPU's kept; another change keeps both.
 */
static void test_mig_state_description_wins(void **state)
{
	struct nvml *n = *state;
	_cleanup_free_ char *made = NULL, *seen = NULL;
	json_t *e;

	describe(n, STATE_NODE(SEVEN_1G, ""));
	made = child_report(n, child_repartition);

	/* not a MIG key: nothing is dropped */
	redescribe(n, STATE_NODE(SEVEN_1G, ", \"numa_node\": 0, \"processes\": 1"));
	seen = child_report(n, child_seen);
	assert_string_equal(seen, made);
	free(seen);

	/* GPU 1's instances: the description's, by position; GPU 0's pending mode stays */
	redescribe(n, STATE_NODE("[15, 15]", ""));
	seen = child_report(n, child_seen);
	assert_string_equal(seen,
			    "mode=0/1 free19=7\n"
			    "mode=1/1 dev=1/0/1g.20gb/MIG-d821dd13-dfc8-5805-9666-d10f6af472af "
			    "dev=2/0/1g.20gb/MIG-7fe4456d-d658-5a22-a369-c7d14470a385 "
			    "gi15=2 free19=5\n");
	free(seen);
	e = state_entry(n, "0000:02:00.0");
	assert_null(json_object_get(e, "mig"));
	assert_int_equal(json_integer_value(json_object_get(e, "created")), 3);
	json_decref(e);

	/* dropped for good: the first description again is its own seven 1g.10gb */
	redescribe(n, STATE_NODE(SEVEN_1G, ""));
	seen = child_report(n, child_seen);
	assert_non_null(strstr(seen, "\nmode=1/1 dev=1/0/1g.10gb/MIG-d821dd13-dfc8-5805-9666-"));
	assert_non_null(strstr(seen, " gi19=7 free19=0\n"));
	free(seen);

	/* GPU 0's pending mode: kept while its "mig" says the same (in any order), dropped for
	 * good once it says something else */
	redescribe(n, STATE_NODE_GPU0("{\"pending\": false, \"current\": false}"));
	seen = child_report(n, child_seen);
	assert_non_null(strstr(seen, "mode=0/1 free19=7\n"));
	free(seen);
	redescribe(n, STATE_NODE_GPU0("{\"current\": false, \"pending\": true}"));
	seen = child_report(n, child_seen);
	assert_non_null(strstr(seen, "mode=0/1 free19=7\n"));
	free(seen);
	redescribe(n, STATE_NODE(SEVEN_1G, ""));
	seen = child_report(n, child_seen);
	assert_non_null(strstr(seen, "mode=0/0 free19=7\n"));
}

/* In a child: one nvmlDeviceCreateGpuInstance (1g.10gb) and one nvmlDeviceGetName on GPU 0,
 * "<the one's answer> <the other's>". */
static void child_calls(void *userdata, int fd)
{
	const struct nvml *n = userdata;
	char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
	nvmlGpuInstance_t gi;
	nvmlDevice_t g;
	nvmlReturn_t r;

	r = n->nvmlInit_v2() ?: n->nvmlDeviceGetHandleByIndex_v2(0, &g);
	if (r == NVML_SUCCESS)
		dprintf(fd, "%d %d", n->nvmlDeviceCreateGpuInstance(g, 19, &gi),
			n->nvmlDeviceGetName(g, name, sizeof(name)));
	else
		dprintf(fd, "error %d", r);
	n->nvmlShutdown();
}

static void expect_calls(struct nvml *n, nvmlReturn_t create, nvmlReturn_t name)
{
	_cleanup_free_ char *got = child_report(n, child_calls);
	char want[32];

	snprintf(want, sizeof(want), "%d %d", create, name);
	assert_string_equal(got, want);
}

#define FAIL_CALLS_NODE(fail_call)                                                                 \
	"{ \"gpus\": [" H100_MIG("0000:01:00.0", 0, "{\"current\": true, \"pending\": true}",      \
				 ", \"fail_call\": " fail_call) "] }"

/* "fail_call" counts the node's calls, whichever process makes them; a new one counts anew. */
static void test_fail_call_across_processes(void **state)
{
	struct nvml *n = *state;

	describe(n, FAIL_CALLS_NODE("{\"nvmlDeviceCreateGpuInstance\": [2, "
				    "\"INSUFFICIENT_RESOURCES\"], "
				    "\"nvmlDeviceGetName\": [3, \"GPU_IS_LOST\"]}"));
	expect_calls(n, NVML_SUCCESS, NVML_SUCCESS);
	expect_calls(n, NVML_ERROR_INSUFFICIENT_RESOURCES, NVML_SUCCESS);
	expect_calls(n, NVML_SUCCESS, NVML_ERROR_GPU_IS_LOST);
	expect_calls(n, NVML_SUCCESS, NVML_SUCCESS);

	/* another "fail_call": counted from 1 again, and the name no longer */
	redescribe(n, FAIL_CALLS_NODE("{\"nvmlDeviceCreateGpuInstance\": [1, \"UNKNOWN\"]}"));
	expect_calls(n, NVML_ERROR_UNKNOWN, NVML_SUCCESS);
	expect_calls(n, NVML_SUCCESS, NVML_SUCCESS);
}

#define RACE_ROUNDS 40

/*
 * One of two processes that make and destroy 1g.10gb instances on GPU 0 at the same time,
 * keeping every fourth: "<error> <GPU instances created> <destroyed>".
 */
static void race_one(const struct nvml *n, int fd)
{
	unsigned created = 0, destroyed = 0;
	nvmlComputeInstance_t ci;
	nvmlGpuInstance_t gi;
	nvmlDevice_t g;
	nvmlReturn_t r;

	r = n->nvmlInit_v2() ?: n->nvmlDeviceGetHandleByIndex_v2(0, &g);
	for (int i = 0; r == NVML_SUCCESS && i < RACE_ROUNDS; i++) {
		r = n->nvmlDeviceCreateGpuInstance(g, 19, &gi);
		if (r == NVML_ERROR_INSUFFICIENT_RESOURCES) {
			r = NVML_SUCCESS; /* full: the other process keeps the rest */
			continue;
		}
		if (r == NVML_SUCCESS)
			created++;
		if (r == NVML_SUCCESS)
			r = n->nvmlGpuInstanceCreateComputeInstance(
				gi, NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE, &ci);
		if (r == NVML_SUCCESS && i % 4 != 3)
			r = n->nvmlComputeInstanceDestroy(ci) ?: n->nvmlGpuInstanceDestroy(gi);
		if (r == NVML_SUCCESS && i % 4 != 3)
			destroyed++;
	}
	dprintf(fd, "%d %u %u\n", r, created, destroyed);
	n->nvmlShutdown();
}

/* In a child: itself and a child of its own race (race_one()). */
static void child_race(void *userdata, int fd)
{
	const struct nvml *n = userdata;
	pid_t pid = fork();

	if (pid == 0) {
		race_one(n, fd);
		_exit(0);
	}
	race_one(n, fd);
	if (pid < 0)
		dprintf(fd, "error fork\n");
	else
		(void)waitpid(pid, NULL, 0);
}

/* Two processes making and destroying instances at once: none of it is lost. */
static void test_mig_state_race(void **state)
{
	struct nvml *n = *state;
	_cleanup_free_ char *report = NULL;
	unsigned created[2], destroyed[2], kept;
	char line[1024], *uuids[7] = {};
	int err[2];
	json_t *e;

	describe(n, "{ \"gpus\": [" H100_MIG("0000:01:00.0", 0,
					    "{\"current\": true, \"pending\": true}", "") "] }");
	report = child_report(n, child_race);
	assert_int_equal(sscanf(report, "%d %u %u\n%d %u %u", &err[0], &created[0], &destroyed[0],
				&err[1], &created[1], &destroyed[1]),
			 6);
	assert_int_equal(err[0], NVML_SUCCESS);
	assert_int_equal(err[1], NVML_SUCCESS);
	kept = created[0] + created[1] - destroyed[0] - destroyed[1];
	assert_true(kept <= 7);

	/* every instance kept is there, once, with its own GPU instance id and UUID */
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	assert_int_equal(remaining(n, handle(n, 0), 19), 7 - kept);
	for (unsigned i = 0; i < kept; i++) {
		nvmlDevice_t m = mig_handle(n, handle(n, 0), i);

		uuids[i] = calloc(1, NVML_DEVICE_UUID_V2_BUFFER_SIZE);
		assert_int_equal(n->nvmlDeviceGetUUID(m, uuids[i], NVML_DEVICE_UUID_V2_BUFFER_SIZE),
				 NVML_SUCCESS);
		for (unsigned k = 0; k < i; k++) {
			assert_string_not_equal(uuids[k], uuids[i]);
			assert_int_not_equal(instance_id(n, mig_handle(n, handle(n, 0), k), false),
					     instance_id(n, m, false));
		}
	}
	assert_int_equal(mig_seen(n, 0, line, sizeof(line)), NVML_SUCCESS);
	assert_int_equal(n->nvmlDeviceGetMigDeviceHandleByIndex(handle(n, 0), kept,
								(nvmlDevice_t[]){ NULL }),
			 kept < 7 ? NVML_ERROR_NOT_FOUND : NVML_ERROR_INVALID_ARGUMENT);
	for (unsigned i = 0; i < kept; i++)
		free(uuids[i]);
	/* and the file counted every GPU instance made */
	e = state_entry(n, "0000:01:00.0");
	assert_int_equal(json_integer_value(json_object_get(e, "created")),
			 created[0] + created[1]);
	json_decref(e);
}

/* ---- hangs ----------------------------------------------------------------------------------- */

struct hang_call {
	const struct nvml *n;
	nvmlDevice_t dev;
	nvmlReturn_t r;
	atomic_bool done;
};

static void *hang_thread(void *p)
{
	struct hang_call *c = p;
	char buf[96];

	c->r = c->n->nvmlDeviceGetName(c->dev, buf, sizeof(buf));
	atomic_store(&c->done, true);
	return NULL;
}

static void test_hang(void **state)
{
	struct nvml *n = *state;
	struct hang_call c = { .n = n };
	struct timespec settle = { .tv_nsec = 50 * 1000000L };
	pthread_t t;
	char buf[96];
	long long start;

	describe(n, hang_node);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	c.dev = handle(n, 1);

	/* The hang delays that call, never a lower bound broken: it answers after it. */
	start = test_now_ms();
	assert_int_equal(n->nvmlDeviceGetName(c.dev, buf, sizeof(buf)), NVML_SUCCESS);
	assert_true(test_now_ms() - start >= 1500);
	assert_string_equal(buf, "NVIDIA H100 80GB HBM3");

	/* A hanging call holds up nobody else: another GPU answers while it sleeps. */
	assert_int_equal(pthread_create(&t, NULL, hang_thread, &c), 0);
	nanosleep(&settle, NULL);
	assert_int_equal(n->nvmlDeviceGetName(handle(n, 0), buf, sizeof(buf)), NVML_SUCCESS);
	assert_false(atomic_load(&c.done));

	/* A shutdown while it sleeps leaves it answering UNINITIALIZED. */
	assert_int_equal(n->nvmlShutdown(), NVML_SUCCESS);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(c.r, NVML_ERROR_UNINITIALIZED);
}

/* ---- the old driver -------------------------------------------------------------------------- */

static void test_old_driver(void **state)
{
	struct nvml *n = *state, *current;
	unsigned count = 0;

	for (size_t i = 0; i < ELEMENTSOF(newer_symbols); i++) {
		dlerror();
		if (dlsym(n->dl, newer_symbols[i]))
			fail_msg("the old library exports %s", newer_symbols[i]);
	}
	/* The rest works as in the current one. */
	describe(n, node4);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	assert_int_equal(n->nvmlDeviceGetCount_v2(&count), NVML_SUCCESS);
	assert_int_equal(count, 4);
	assert_int_equal(n->nvmlDeviceGetMinorNumber(handle(n, 2), &count), NVML_SUCCESS);
	assert_int_equal(count, 2);

	/* Only NVML's symbols leave either library: no helpers, no jansson re-exports. */
	assert_null(dlsym(n->dl, "parse_pci_address"));
	current = nvml_open(false);
	assert_null(dlsym(current->dl, "parse_pci_address"));
	assert_null(dlsym(current->dl, "load_node"));
	assert_null(dlsym(current->dl, "fake_fault"));
	assert_null(dlsym(n->dl, "fake_fault"));
	for (size_t i = 0; i < ELEMENTSOF(newer_symbols); i++)
		assert_non_null(dlsym(current->dl, newer_symbols[i]));
	nvml_close(current);
}

/* ---- the fixture hook and the embedded nodes ------------------------------------------------- */

/* The value of "<Key>:<blanks><value>" in a /proc/driver/nvidia/gpus/.../information text. */
static char *information_field(const char *info, const char *key)
{
	const char *p = strstr(info, key), *end;

	assert_non_null(p);
	p += strlen(key);
	p += strspn(p, ": \t");
	end = strchr(p, '\n');
	assert_non_null(end);
	return strndup(p, (size_t)(end - p));
}

/* Every embedded node with an "nvml" block describes the GPUs its tree holds. */
static void test_embedded_nodes(void **state)
{
	static const struct {
		const char *node;
		unsigned gpus;
	} nodes[] = { { "hgx-h100", 8 }, { "real-h100-vm", 1 }, { "nvidia-faults", 4 } };
	struct nvml *n = *state;

	for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
		const struct sim_node *sn = sim_node_find(nodes[i].node);
		_cleanup_free_ char *dir = NULL, *error = NULL, *desc = NULL;
		_cleanup_close_ int root = -EBADF;
		unsigned count = 0, lost = 0;

		assert_non_null(sn);
		if (fixture_build_temp(sn->json, &dir, &error) < 0)
			fail_msg("%s: %s", nodes[i].node, error);
		root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_true(root >= 0);
		assert_true(asprintf(&desc, "%s/run/fake-nvml.json", dir) > 0);
		setenv("XPU_FAKE_NVML", desc, 1);
		assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
		assert_int_equal(n->nvmlDeviceGetCount_v2(&count), NVML_SUCCESS);
		assert_int_equal(count, nodes[i].gpus);

		for (unsigned g = 0; g < count; g++) {
			_cleanup_free_ char *info = NULL, *uuid = NULL, *minor = NULL;
			_cleanup_free_ char *infopath = NULL;
			nvmlDevice_t dev = handle(n, g);
			char nvml_uuid[96], addr[16];
			nvmlPciInfo_t pci;
			unsigned m, tree_minor;
			nvmlReturn_t r;

			r = n->nvmlDeviceGetPciInfo_v3(dev, &pci);
			if (r == NVML_ERROR_GPU_IS_LOST) {
				lost++;
				continue;
			}
			assert_int_equal(r, NVML_SUCCESS);
			/* The tree's spelling of the address is the lower-case legacy one. */
			snprintf(addr, sizeof(addr), "%04x:%02x:%02x.0", pci.domain, pci.bus,
				 pci.device);
			assert_int_equal(strcasecmp(addr, pci.busIdLegacy), 0);
			assert_true(asprintf(&infopath, "proc/driver/nvidia/gpus/%s/information",
					     addr) > 0);
			if (read_attr_at(root, infopath, 8192, &info) < 0)
				fail_msg("%s: GPU %s is not in the tree", nodes[i].node, addr);
			uuid = information_field(info, "GPU UUID");
			minor = information_field(info, "Device Minor");
			assert_int_equal(n->nvmlDeviceGetUUID(dev, nvml_uuid, sizeof(nvml_uuid)),
					 NVML_SUCCESS);
			assert_string_equal(nvml_uuid, uuid);
			assert_int_equal(n->nvmlDeviceGetMinorNumber(dev, &m), NVML_SUCCESS);
			assert_int_equal(safe_atou(minor, &tree_minor), 0);
			assert_int_equal(m, tree_minor);

			/* Every NvLink leads to a PCI function of the tree. */
			for (unsigned l = 0; l < NVML_NVLINK_MAX_LINKS; l++) {
				nvmlEnableState_t active;
				char link[64];

				if (n->nvmlDeviceGetNvLinkState(dev, l, &active) != NVML_SUCCESS ||
				    active != NVML_FEATURE_ENABLED)
					continue;
				r = n->nvmlDeviceGetNvLinkRemotePciInfo_v2(dev, l, &pci);
				assert_int_equal(r, NVML_SUCCESS);
				snprintf(link, sizeof(link), "sys/bus/pci/devices/%04x:%02x:%02x.0",
					 pci.domain, pci.bus, pci.device);
				assert_int_equal(faccessat(root, link, F_OK, 0), 0);
			}
		}
		assert_int_equal(lost, streq(nodes[i].node, "nvidia-faults") ? 1 : 0);
		assert_int_equal(n->nvmlShutdown(), NVML_SUCCESS);
		unsetenv("XPU_FAKE_NVML");
		assert_int_equal(fixture_destroy(dir), 0);
	}
}

/*
 * hgx-h100's GPU 7 runs MIG, full of 1g.10gb instances; the others have it off, all NVLinks up.
 * The MIG devices' ids and UUIDs are what the integration tests find in xpud's inventory.
 */
static void test_hgx_h100_nvml(void **state)
{
	static const char *const gpu7_migs[] = {
		"MIG-1aa1c434-8394-57cf-b8d9-1f0cb5a77ae1",
		"MIG-d9a93c1a-6dad-5865-8f4b-697555cd626d",
		"MIG-ef5e2fba-a327-522a-8c4a-a60473ff73be",
		"MIG-3440bc12-4856-5b74-8f84-355422914a1e",
		"MIG-497a41af-16a9-5dab-a859-c3448c8fbfb8",
		"MIG-416f9ede-56b7-5d1c-b417-e9d87e3034d9",
		"MIG-1eb1ccb5-06ad-5f86-bfff-4d993d674e8a",
	};
	const struct sim_node *sn = sim_node_find("hgx-h100");
	_cleanup_free_ char *dir = NULL, *error = NULL, *desc = NULL;
	struct nvml *n = *state;
	nvmlGpuTopologyLevel_t level;
	unsigned cur, pend, switches[4] = {};
	nvmlDevice_t gpu7, m;

	assert_int_equal(fixture_build_temp(sn->json, &dir, &error), 0);
	assert_true(asprintf(&desc, "%s/run/fake-nvml.json", dir) > 0);
	setenv("XPU_FAKE_NVML", desc, 1);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	for (unsigned g = 0; g < 8; g++) {
		nvmlDevice_t dev = handle(n, g);
		nvmlPciInfo_t pci;

		assert_int_equal(n->nvmlDeviceGetMigMode(dev, &cur, &pend), NVML_SUCCESS);
		assert_int_equal(cur, g == 7 ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE);
		assert_int_equal(pend, cur);
		assert_int_equal(remaining(n, dev, 19), g == 7 ? 0 : 7);
		for (unsigned l = 0; l < NVML_NVLINK_MAX_LINKS; l++) {
			assert_int_equal(n->nvmlDeviceGetNvLinkRemotePciInfo_v2(dev, l, &pci),
					 NVML_SUCCESS);
			assert_int_equal(pci.pciDeviceId, 0x22a310de);
			assert_true(pci.bus >= 6 && pci.bus <= 9);
			switches[pci.bus - 6]++;
		}
	}
	/* 18 links a GPU, spread over the 4 NVSwitches: 5 + 4 + 4 + 5. */
	assert_int_equal(switches[0], 8 * 5);
	assert_int_equal(switches[1], 8 * 4);
	assert_int_equal(switches[2], 8 * 4);
	assert_int_equal(switches[3], 8 * 5);
	assert_int_equal(n->nvmlDeviceGetTopologyCommonAncestor(handle(n, 0), handle(n, 3), &level),
			 NVML_SUCCESS);
	assert_int_equal(level, NVML_TOPOLOGY_NODE);
	assert_int_equal(n->nvmlDeviceGetTopologyCommonAncestor(handle(n, 3), handle(n, 4), &level),
			 NVML_SUCCESS);
	assert_int_equal(level, NVML_TOPOLOGY_SYSTEM);

	gpu7 = handle(n, 7);
	for (unsigned i = 0; i < ELEMENTSOF(gpu7_migs); i++) {
		char buf[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
		nvmlMemory_t mem;

		m = mig_handle(n, gpu7, i);
		assert_int_equal(instance_id(n, m, false), i + 1);
		assert_int_equal(instance_id(n, m, true), 0);
		assert_int_equal(n->nvmlDeviceGetUUID(m, buf, sizeof(buf)), NVML_SUCCESS);
		assert_string_equal(buf, gpu7_migs[i]);
		assert_int_equal(n->nvmlDeviceGetName(m, buf, sizeof(buf)), NVML_SUCCESS);
		assert_string_equal(buf, "NVIDIA H100 80GB HBM3 MIG 1g.10gb");
		assert_int_equal(n->nvmlDeviceGetMemoryInfo(m, &mem), NVML_SUCCESS);
		assert_true(mem.total == 9984ULL << 20);
	}
	assert_int_equal(n->nvmlDeviceGetMigDeviceHandleByIndex(handle(n, 0), 0, &m),
			 NVML_ERROR_NOT_FOUND);
	unsetenv("XPU_FAKE_NVML");
	assert_int_equal(fixture_destroy(dir), 0);
}

/* "nvml" is written compactly to run/fake-nvml.json, replaced by a later build, kept otherwise. */
static void test_fixture_hook(void **state)
{
	_cleanup_free_ char *dir = NULL, *error = NULL, *text = NULL;
	_cleanup_close_ int root = -EBADF;
	struct stat st;
	int r;

	r = fixture_build_temp("{ \"nvml\": { \"gpus\": [], \"cuda_version\": 12040 } }", &dir,
			       &error);
	assert_int_equal(r, 0);
	root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(root >= 0);
	assert_int_equal(read_attr_at(root, "run/fake-nvml.json", 4096, &text), 0);
	assert_string_equal(text, "{\"gpus\":[],\"cuda_version\":12040}");
	text = mfree(text);

	r = fixture_build("{ \"nvml\": { \"init_error\": \"DRIVER_NOT_LOADED\" } }", dir, &error);
	assert_int_equal(r, 0);
	assert_int_equal(read_attr_at(root, "run/fake-nvml.json", 4096, &text), 0);
	assert_string_equal(text, "{\"init_error\":\"DRIVER_NOT_LOADED\"}");
	text = mfree(text);
	/* No temporary file is left behind. */
	assert_int_equal(fstatat(root, "run/.fake-nvml.json.tmp", &st, 0), -1);

	/* A description without "nvml" (a hot-plug) leaves the library's description alone. */
	assert_int_equal(fixture_build("{ \"dev\": [\"nvidia0\"] }", dir, &error), 0);
	assert_int_equal(read_attr_at(root, "run/fake-nvml.json", 4096, &text), 0);
	assert_string_equal(text, "{\"init_error\":\"DRIVER_NOT_LOADED\"}");
	text = mfree(text);

	/* It must be an object; its contents are the fake's to judge. */
	assert_int_equal(fixture_build("{ \"nvml\": [] }", dir, &error), -EINVAL);
	assert_string_equal(error, "nvml: expected object");
	assert_int_equal(fixture_destroy(dir), 0);
}

/* ---- events ---------------------------------------------------------------------------------- */

#define EVENT_TYPES_ALL                                                                            \
	(nvmlEventTypeSingleBitEccError | nvmlEventTypeDoubleBitEccError | nvmlEventTypePState |   \
	 nvmlEventTypeXidCriticalError | nvmlEventMigConfigChange)
#define EVENT_TYPES_USED                                                                           \
	(nvmlEventTypeXidCriticalError | nvmlEventTypeDoubleBitEccError | nvmlEventMigConfigChange)
#define NO_INSTANCE 0xFFFFFFFFu

/* A new FIFO in a new temporary directory, named by XPU_FAKE_NVML_EVENTS. */
static void events_fifo(struct nvml *n)
{
	const char *tmp = getenv("TMPDIR");
	_cleanup_free_ char *fifo = NULL;

	assert_null(n->events_dir);
	assert_true(asprintf(&n->events_dir, "%s/xpu-fake-nvml-events-XXXXXX",
			     isempty(tmp) ? "/tmp" : tmp) > 0);
	assert_non_null(mkdtemp(n->events_dir));
	assert_true(asprintf(&fifo, "%s/events", n->events_dir) > 0);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(setenv("XPU_FAKE_NVML_EVENTS", fifo, 1), 0);
}

/* The write end: a non-blocking open succeeds only if the library already holds the read end. */
static void events_connect(struct nvml *n)
{
	n->events_fd = open(getenv("XPU_FAKE_NVML_EVENTS"), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (n->events_fd < 0)
		fail_msg("open the FIFO's write end: %s", strerror(errno));
}

static void feed(const struct nvml *n, const char *text)
{
	assert_int_equal(write(n->events_fd, text, strlen(text)), (ssize_t)strlen(text));
}

static nvmlReturn_t wait_event(const struct nvml *n, nvmlEventSet_t set, unsigned timeout_ms,
			       nvmlEventData_t *data)
{
	memset(data, 0xa5, sizeof(*data));
	return n->nvmlEventSetWait_v2(set, data, timeout_ms);
}

/* The next wait delivers this event (and soon: the line is already in the FIFO). */
static void expect_event(const struct nvml *n, nvmlEventSet_t set, nvmlDevice_t dev,
			 unsigned long long type, unsigned long long data, unsigned gi,
			 unsigned ci)
{
	nvmlEventData_t ev;

	assert_int_equal(wait_event(n, set, 2000, &ev), NVML_SUCCESS);
	assert_ptr_equal(ev.device, dev);
	assert_true(ev.eventType == type);
	assert_true(ev.eventData == data);
	assert_int_equal(ev.gpuInstanceId, gi);
	assert_int_equal(ev.computeInstanceId, ci);
}

static void expect_timeout(const struct nvml *n, nvmlEventSet_t set, unsigned timeout_ms)
{
	nvmlEventData_t ev;
	long long start = test_now_ms();

	assert_int_equal(wait_event(n, set, timeout_ms, &ev), NVML_ERROR_TIMEOUT);
	assert_true(test_now_ms() - start >= timeout_ms);
}

/*
 * hgx-h100 with every GPU registered for XIDs, double-bit ECC errors and MIG changes, but GPU 5
 * not at all and GPU 6 for XIDs only; events written to the FIFO as the tests of the backend will.
 */
static void test_events(void **state)
{
	const struct sim_node *sn = sim_node_find("hgx-h100");
	_cleanup_free_ char *dir = NULL, *error = NULL, *desc = NULL, *longline = NULL;
	struct nvml *n = *state;
	nvmlEventSet_t set = NULL, bogus_set = (nvmlEventSet_t)(void *)&set;
	nvmlDevice_t g[8], bogus = (nvmlDevice_t)(void *)&set;
	unsigned long long types;
	nvmlEventData_t ev;

	assert_int_equal(n->nvmlEventSetCreate(&set), NVML_ERROR_UNINITIALIZED);
	assert_int_equal(fixture_build_temp(sn->json, &dir, &error), 0);
	assert_true(asprintf(&desc, "%s/run/fake-nvml.json", dir) > 0);
	setenv("XPU_FAKE_NVML", desc, 1);
	events_fifo(n);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	assert_int_equal(n->nvmlEventSetCreate(NULL), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlEventSetCreate(&set), NVML_SUCCESS);
	assert_non_null(set);
	events_connect(n);

	for (unsigned i = 0; i < 8; i++) {
		g[i] = handle(n, i);
		types = 0;
		assert_int_equal(n->nvmlDeviceGetSupportedEventTypes(g[i], &types), NVML_SUCCESS);
		assert_true(types == EVENT_TYPES_ALL);
		if (i == 5)
			continue;
		assert_int_equal(n->nvmlDeviceRegisterEvents(g[i], i == 6 ?
						nvmlEventTypeXidCriticalError : EVENT_TYPES_USED,
						set),
				 NVML_SUCCESS);
	}
	/* Registering again adds to what is registered. */
	assert_int_equal(n->nvmlDeviceRegisterEvents(g[0], nvmlEventTypePState, set), NVML_SUCCESS);

	/* Refused registrations change nothing: one unsupported type fails them all. */
	assert_int_equal(n->nvmlDeviceRegisterEvents(g[5], nvmlEventTypeClock, set),
			 NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(n->nvmlDeviceRegisterEvents(g[5], nvmlEventTypeXidCriticalError |
							   nvmlEventTypeClock, set),
			 NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(n->nvmlDeviceRegisterEvents(g[5], 0, set), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceRegisterEvents(g[5], nvmlEventTypeXidCriticalError,
						       bogus_set),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceRegisterEvents(g[5], nvmlEventTypeXidCriticalError, NULL),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceRegisterEvents(bogus, nvmlEventTypeXidCriticalError, set),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceGetSupportedEventTypes(bogus, &types),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceGetSupportedEventTypes(g[0], NULL),
			 NVML_ERROR_INVALID_ARGUMENT);
	/* Events are a whole GPU's: a MIG device registers none. */
	assert_int_equal(n->nvmlDeviceRegisterEvents(mig_handle(n, g[7], 0),
						       nvmlEventTypeXidCriticalError, set),
			 NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(n->nvmlEventSetWait_v2(set, NULL, 0), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlEventSetWait_v2(bogus_set, &ev, 0), NVML_ERROR_INVALID_ARGUMENT);

	/* Nothing pending: the wait takes its whole timeout. */
	expect_timeout(n, set, 100);
	assert_int_equal(wait_event(n, set, 0, &ev), NVML_ERROR_TIMEOUT);

	/* Each on the GPU the bus id names; an XID with instance ids (GPU 7 runs MIG). */
	feed(n, "xid 0000:3a:00.0 79\n");
	expect_event(n, set, g[2], nvmlEventTypeXidCriticalError, 79, NO_INSTANCE, NO_INSTANCE);
	feed(n, "xid 0000:db:00.0 31 3 0\n");
	expect_event(n, set, g[7], nvmlEventTypeXidCriticalError, 31, 3, 0);
	/* Bus ids in any spelling the descriptions accept; several lines in one write. */
	feed(n, "dbe 18:00.0\nmig 0000:DB:00.0\n");
	expect_event(n, set, g[0], nvmlEventTypeDoubleBitEccError, 0, NO_INSTANCE, NO_INSTANCE);
	expect_event(n, set, g[7], nvmlEventMigConfigChange, 0, NO_INSTANCE, NO_INSTANCE);

	/* What the set has not registered is dropped: the next wait gets the next event. */
	feed(n, "xid 0000:ab:00.0 79\ndbe 0000:ba:00.0\nmig 0000:ba:00.0\nxid 0000:2a:00.0 48\n");
	expect_event(n, set, g[1], nvmlEventTypeXidCriticalError, 48, NO_INSTANCE, NO_INSTANCE);
	feed(n, "xid 0000:ab:00.0 79\n");
	expect_timeout(n, set, 50);

	/* Half a line is no event; comments and blank lines are none either. */
	feed(n, "xid 0000:18:0");
	expect_timeout(n, set, 100);
	feed(n, "0.0 94\n# a comment\n\n  \nxid 0000:2a:00.0 ");
	expect_event(n, set, g[0], nvmlEventTypeXidCriticalError, 94, NO_INSTANCE, NO_INSTANCE);
	expect_timeout(n, set, 50);
	feed(n, "95\n");
	expect_event(n, set, g[1], nvmlEventTypeXidCriticalError, 95, NO_INSTANCE, NO_INSTANCE);

	/* "fail": the wait itself fails, once per line, and the events after it still come. */
	feed(n, "fail UNKNOWN\nfail GPU_IS_LOST\nxid 0000:18:00.0 13\n");
	assert_int_equal(wait_event(n, set, 2000, &ev), NVML_ERROR_UNKNOWN);
	assert_int_equal(wait_event(n, set, 2000, &ev), NVML_ERROR_GPU_IS_LOST);
	expect_event(n, set, g[0], nvmlEventTypeXidCriticalError, 13, NO_INSTANCE, NO_INSTANCE);

	/* "storm": one event per wait, none of which waits, then what followed it. */
	feed(n, "storm 0000:2a:00.0 79 1000\nxid 0000:18:00.0 43\n");
	for (unsigned i = 0; i < 1000; i++) {
		assert_int_equal(wait_event(n, set, 0, &ev), NVML_SUCCESS);
		assert_ptr_equal(ev.device, g[1]);
		assert_true(ev.eventType == nvmlEventTypeXidCriticalError);
		assert_true(ev.eventData == 79);
		assert_int_equal(ev.gpuInstanceId, NO_INSTANCE);
	}
	assert_int_equal(wait_event(n, set, 0, &ev), NVML_SUCCESS);
	assert_ptr_equal(ev.device, g[0]);
	assert_true(ev.eventData == 43);
	assert_int_equal(wait_event(n, set, 0, &ev), NVML_ERROR_TIMEOUT);
	/* A storm on an unregistered GPU is dropped whole; one with instance ids keeps them. */
	feed(n, "storm 0000:ab:00.0 79 5\nstorm 0000:db:00.0 119 2 1 0\n");
	expect_event(n, set, g[7], nvmlEventTypeXidCriticalError, 119, 1, 0);
	expect_event(n, set, g[7], nvmlEventTypeXidCriticalError, 119, 1, 0);
	assert_int_equal(wait_event(n, set, 0, &ev), NVML_ERROR_TIMEOUT);

	/* A line the fake cannot read fails the wait loudly rather than being skipped. */
	feed(n, "xid 0000:18:00.0 banana\nxid 0000:99:00.0 79\nbeep 0000:18:00.0\n"
		"fail NOT_AN_ERROR\nstorm 0000:18:00.0 79 0\nxid 0000:18:00.0 79 3\n");
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(wait_event(n, set, 2000, &ev), NVML_ERROR_UNKNOWN);
	longline = malloc(1001);
	assert_non_null(longline);
	memset(longline, 'x', 999);
	strcpy(longline + 999, "\n");
	feed(n, longline);
	feed(n, "mig 0000:db:00.0\n");
	assert_int_equal(wait_event(n, set, 2000, &ev), NVML_ERROR_UNKNOWN);
	expect_event(n, set, g[7], nvmlEventMigConfigChange, 0, NO_INSTANCE, NO_INSTANCE);

	assert_int_equal(n->nvmlEventSetFree(set), NVML_SUCCESS);
	assert_int_equal(n->nvmlEventSetFree(set), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlEventSetWait_v2(set, &ev, 0), NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlDeviceRegisterEvents(g[0], nvmlEventTypeXidCriticalError, set),
			 NVML_ERROR_INVALID_ARGUMENT);
	assert_int_equal(n->nvmlShutdown(), NVML_SUCCESS);
	unsetenv("XPU_FAKE_NVML");
	assert_int_equal(fixture_destroy(dir), 0);
}

/* "events": false, injected errors, and waits without a FIFO or with a bad one. */
static void test_events_unsupported(void **state)
{
	struct nvml *n = *state;
	unsigned long long types;
	nvmlEventSet_t set;
	nvmlEventData_t ev;

	describe(n, "{ \"gpus\": [" H100("0000:01:00.0", 0, ", \"events\": \"no\"") "] }");
	assert_int_equal(n->nvmlInit_v2(), NVML_ERROR_UNKNOWN);
	describe(n, "{ \"gpus\": ["
		    H100("0000:01:00.0", 0, ", \"events\": false") ", "
		    H100("0000:02:00.0", 1, ", \"errors\": {"
			 "\"nvmlDeviceGetSupportedEventTypes\": \"GPU_IS_LOST\", "
			 "\"nvmlDeviceRegisterEvents\": \"NO_PERMISSION\"}") ", "
		    H100("0000:03:00.0", 2, ", \"errors\": {\"*\": \"GPU_IS_LOST\"}") ", "
		    H100("0000:04:00.0", 3, ", \"events\": true") "] }");
	unsetenv("XPU_FAKE_NVML_EVENTS");
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	assert_int_equal(n->nvmlEventSetCreate(&set), NVML_SUCCESS);

	assert_int_equal(n->nvmlDeviceGetSupportedEventTypes(handle(n, 0), &types),
			 NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(n->nvmlDeviceRegisterEvents(handle(n, 0), nvmlEventTypeXidCriticalError,
						       set),
			 NVML_ERROR_NOT_SUPPORTED);
	assert_int_equal(n->nvmlDeviceGetSupportedEventTypes(handle(n, 1), &types),
			 NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(n->nvmlDeviceRegisterEvents(handle(n, 1), nvmlEventTypeXidCriticalError,
						       set),
			 NVML_ERROR_NO_PERMISSION);
	assert_int_equal(n->nvmlDeviceGetSupportedEventTypes(handle(n, 2), &types),
			 NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(n->nvmlDeviceRegisterEvents(handle(n, 2), nvmlEventTypeXidCriticalError,
						       set),
			 NVML_ERROR_GPU_IS_LOST);
	assert_int_equal(n->nvmlDeviceGetSupportedEventTypes(handle(n, 3), &types), NVML_SUCCESS);
	assert_true(types == EVENT_TYPES_ALL);
	assert_int_equal(n->nvmlDeviceRegisterEvents(handle(n, 3), EVENT_TYPES_USED, set),
			 NVML_SUCCESS);

	/* Without XPU_FAKE_NVML_EVENTS a wait sleeps its timeout: no events ever. */
	expect_timeout(n, set, 200);
	/* Naming something that is not a FIFO is the test's mistake, and the wait says so. */
	setenv("XPU_FAKE_NVML_EVENTS", n->desc, 1);
	assert_int_equal(wait_event(n, set, 100, &ev), NVML_ERROR_UNKNOWN);
	setenv("XPU_FAKE_NVML_EVENTS", "/nonexistent/fifo", 1);
	assert_int_equal(wait_event(n, set, 100, &ev), NVML_ERROR_UNKNOWN);
	unsetenv("XPU_FAKE_NVML_EVENTS");
	/* A set left to the last shutdown dies with the session. */
	assert_int_equal(n->nvmlShutdown(), NVML_SUCCESS);
	assert_int_equal(n->nvmlEventSetFree(set), NVML_ERROR_UNINITIALIZED);
}

struct event_wait {
	const struct nvml *n;
	nvmlEventSet_t set;
	unsigned timeout_ms;
	nvmlEventData_t data;
	nvmlReturn_t r;
	long long took_ms;
	atomic_bool done;
};

static void *event_wait_thread(void *p)
{
	struct event_wait *w = p;
	long long start = test_now_ms();

	w->r = w->n->nvmlEventSetWait_v2(w->set, &w->data, w->timeout_ms);
	w->took_ms = test_now_ms() - start;
	atomic_store(&w->done, true);
	return NULL;
}

static void event_wait_start(struct event_wait *w, pthread_t *t)
{
	struct timespec settle = { .tv_nsec = 50 * 1000000L };

	assert_int_equal(pthread_create(t, NULL, event_wait_thread, w), 0);
	nanosleep(&settle, NULL);
}

/* The wait runs on a thread of its own while others call the library, as in the backend. */
static void test_events_threads(void **state)
{
	struct nvml *n = *state;
	struct event_wait w = { .n = n, .timeout_ms = 5000 };
	char buf[96];
	unsigned count;
	nvmlEventSet_t set;
	nvmlEventData_t ev;
	long long start;
	pthread_t t;

	describe(n, "{ \"gpus\": [" H100("0000:01:00.0", 0, "") ", " H100("0000:02:00.0", 1, "")
		    "] }");
	events_fifo(n);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	assert_int_equal(n->nvmlEventSetCreate(&w.set), NVML_SUCCESS);
	events_connect(n);
	assert_int_equal(n->nvmlDeviceRegisterEvents(handle(n, 1), nvmlEventTypeXidCriticalError,
						       w.set),
			 NVML_SUCCESS);

	/* A waiting thread holds up no other call, and a line wakes it at once. */
	event_wait_start(&w, &t);
	start = test_now_ms();
	assert_int_equal(n->nvmlDeviceGetName(handle(n, 0), buf, sizeof(buf)), NVML_SUCCESS);
	assert_int_equal(n->nvmlDeviceGetCount_v2(&count), NVML_SUCCESS);
	assert_int_equal(n->nvmlEventSetCreate(&set), NVML_SUCCESS);
	assert_int_equal(n->nvmlEventSetFree(set), NVML_SUCCESS);
	assert_true(test_now_ms() - start < 1000);
	assert_false(atomic_load(&w.done));
	feed(n, "xid 0000:02:00.0 ");
	feed(n, "63\n");
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w.r, NVML_SUCCESS);
	assert_true(w.took_ms < 4000);
	assert_ptr_equal(w.data.device, handle(n, 1));
	assert_true(w.data.eventData == 63);

	/* A set freed during a wait outlives it: the wait fails at its timeout, nothing crashes. */
	w.timeout_ms = 300;
	event_wait_start(&w, &t);
	assert_int_equal(n->nvmlEventSetFree(w.set), NVML_SUCCESS);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w.r, NVML_ERROR_INVALID_ARGUMENT);

	/* The last shutdown during a wait: UNINITIALIZED; the set is gone in the next session. */
	assert_int_equal(n->nvmlEventSetCreate(&w.set), NVML_SUCCESS);
	event_wait_start(&w, &t);
	assert_int_equal(n->nvmlShutdown(), NVML_SUCCESS);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w.r, NVML_ERROR_UNINITIALIZED);
	assert_int_equal(n->nvmlEventSetWait_v2(w.set, &ev, 0), NVML_ERROR_UNINITIALIZED);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	assert_int_equal(n->nvmlEventSetWait_v2(w.set, &ev, 0), NVML_ERROR_INVALID_ARGUMENT);

	/* The new session opens the FIFO again (the test's write end kept it alive). */
	assert_int_equal(n->nvmlEventSetCreate(&set), NVML_SUCCESS);
	assert_int_equal(n->nvmlDeviceRegisterEvents(handle(n, 0), nvmlEventTypeXidCriticalError,
						       set),
			 NVML_SUCCESS);
	feed(n, "xid 0000:01:00.0 48\n");
	expect_event(n, set, handle(n, 0), nvmlEventTypeXidCriticalError, 48, NO_INSTANCE,
		     NO_INSTANCE);
	assert_int_equal(n->nvmlEventSetFree(set), NVML_SUCCESS);
}

/* ---- run-time faults: "<description>.fault" -------------------------------------------------- */

/*
 * The calls the fault tests make, in an order in which each succeeds without a fault: the MIG
 * calls create a GPU instance and a compute instance in it and destroy them again.
 */
enum fault_call {
	CALL_INIT,
	CALL_DRIVER_VERSION,
	CALL_COUNT,
	CALL_HANDLE,
	CALL_NAME,
	CALL_TOPOLOGY,
	CALL_GI_PROFILE,
	CALL_MIG_HANDLE,
	CALL_EVENT_TYPES,
	CALL_EVENT_SET,
	CALL_SET_MIG_MODE,
	CALL_GPU_INSTANCES,
	CALL_CREATE_GI,
	CALL_CI_PROFILE,
	CALL_CREATE_CI,
	CALL_COMPUTE_INSTANCES,
	CALL_DESTROY_CI,
	CALL_DESTROY_GI,
	CALL_COMPUTE_PROCESSES,
	CALL_GRAPHICS_PROCESSES,
	CALL_SHUTDOWN,
	CALL_NEXT_FAULT, /* not NVML: replaces the fault line with fault_run.next_line */
	_CALL_MAX,
};

static const struct test_fault_call fault_calls[_CALL_MAX] = {
	[CALL_INIT] = { "nvmlInit_v2", "init" },
	[CALL_DRIVER_VERSION] = { "nvmlSystemGetDriverVersion", NULL },
	[CALL_COUNT] = { "nvmlDeviceGetCount_v2", "query" },
	[CALL_HANDLE] = { "nvmlDeviceGetHandleByIndex_v2", "query" },
	[CALL_NAME] = { "nvmlDeviceGetName", "query" },
	[CALL_TOPOLOGY] = { "nvmlDeviceGetTopologyCommonAncestor", "query" },
	[CALL_GI_PROFILE] = { "nvmlDeviceGetGpuInstanceProfileInfo", "query" },
	[CALL_MIG_HANDLE] = { "nvmlDeviceGetMigDeviceHandleByIndex", "query" },
	[CALL_EVENT_TYPES] = { "nvmlDeviceGetSupportedEventTypes", "query" },
	[CALL_EVENT_SET] = { "nvmlEventSetCreate", NULL },
	[CALL_SET_MIG_MODE] = { "nvmlDeviceSetMigMode", "apply" },
	[CALL_GPU_INSTANCES] = { "nvmlDeviceGetGpuInstances", "apply" },
	[CALL_CREATE_GI] = { "nvmlDeviceCreateGpuInstance", "apply" },
	[CALL_CI_PROFILE] = { "nvmlGpuInstanceGetComputeInstanceProfileInfo", "apply" },
	[CALL_CREATE_CI] = { "nvmlGpuInstanceCreateComputeInstance", "apply" },
	[CALL_COMPUTE_INSTANCES] = { "nvmlGpuInstanceGetComputeInstances", "apply" },
	[CALL_DESTROY_CI] = { "nvmlComputeInstanceDestroy", "apply" },
	[CALL_DESTROY_GI] = { "nvmlGpuInstanceDestroy", "apply" },
	[CALL_COMPUTE_PROCESSES] = { "nvmlDeviceGetComputeRunningProcesses_v3", "processes" },
	[CALL_GRAPHICS_PROCESSES] = { "nvmlDeviceGetGraphicsRunningProcesses_v3", "processes" },
	[CALL_SHUTDOWN] = { "nvmlShutdown", NULL },
	[CALL_NEXT_FAULT] = { "(the next fault line)", NULL },
};

#define FAULT_GARBAGE_BYTES (64 * 1024)

/* A GPU with MIG enabled and one 1g.10gb instance, running two processes. */
static const char fault_node[] = "{ \"gpus\": ["
	H100_MIG("0000:01:00.0", 0, "{\"current\": true, \"pending\": true}",
		 ", \"mig_instances\": [19], \"processes\": 2") "] }";

/* What the children start from: fault_node initialised and its handles, taken by the parent. */
struct fault_run {
	struct nvml *n;
	nvmlDevice_t dev;
	nvmlGpuInstance_t gi;	  /* the description's instance */
	nvmlGpuInstance_t new_gi; /* the child's, from CALL_CREATE_GI */
	nvmlComputeInstance_t new_ci;
	const char *next_line;
};

static void fault_setup(struct nvml *n, struct fault_run *f)
{
	nvmlGpuInstance_t gis[7];
	unsigned count = ELEMENTSOF(gis);

	*f = (struct fault_run){ .n = n };
	describe(n, fault_node);
	assert_int_equal(n->nvmlInit_v2(), NVML_SUCCESS);
	f->dev = handle(n, 0);
	assert_int_equal(n->nvmlDeviceGetGpuInstances(f->dev, 19, gis, &count), NVML_SUCCESS);
	assert_int_equal(count, 1);
	f->gi = gis[0];
}

/* Runs in the child: no cmocka. */
static int fault_call(void *userdata, int which)
{
	struct fault_run *f = userdata;
	const struct nvml *n = f->n;
	nvmlGpuInstance_t gis[7];
	nvmlComputeInstanceProfileInfo_t ci_info;
	nvmlGpuInstanceProfileInfo_t gi_info;
	nvmlComputeInstance_t cis[1];
	nvmlProcessInfo_t procs[4];
	nvmlGpuTopologyLevel_t level;
	unsigned long long types;
	char buf[96], path[4096];
	nvmlEventSet_t set;
	nvmlReturn_t status;
	nvmlDevice_t dev;
	unsigned u = 4;

	switch ((enum fault_call)which) {
	case CALL_INIT:
		return n->nvmlInit_v2();
	case CALL_DRIVER_VERSION:
		return n->nvmlSystemGetDriverVersion(buf, sizeof(buf));
	case CALL_COUNT:
		return n->nvmlDeviceGetCount_v2(&u);
	case CALL_HANDLE:
		return n->nvmlDeviceGetHandleByIndex_v2(0, &dev);
	case CALL_NAME:
		return n->nvmlDeviceGetName(f->dev, buf, sizeof(buf));
	case CALL_TOPOLOGY:
		return n->nvmlDeviceGetTopologyCommonAncestor(f->dev, f->dev, &level);
	case CALL_GI_PROFILE:
		return n->nvmlDeviceGetGpuInstanceProfileInfo(
			f->dev, NVML_GPU_INSTANCE_PROFILE_1_SLICE, &gi_info);
	case CALL_MIG_HANDLE:
		return n->nvmlDeviceGetMigDeviceHandleByIndex(f->dev, 0, &dev);
	case CALL_EVENT_TYPES:
		return n->nvmlDeviceGetSupportedEventTypes(f->dev, &types);
	case CALL_EVENT_SET:
		return n->nvmlEventSetCreate(&set);
	case CALL_SET_MIG_MODE:
		return n->nvmlDeviceSetMigMode(f->dev, NVML_DEVICE_MIG_ENABLE, &status);
	case CALL_GPU_INSTANCES:
		u = ELEMENTSOF(gis);
		return n->nvmlDeviceGetGpuInstances(f->dev, 19, gis, &u);
	case CALL_CREATE_GI:
		return n->nvmlDeviceCreateGpuInstance(f->dev, 19, &f->new_gi);
	case CALL_CI_PROFILE:
		return n->nvmlGpuInstanceGetComputeInstanceProfileInfo(
			f->gi, NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE,
			NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED, &ci_info);
	case CALL_CREATE_CI:
		return n->nvmlGpuInstanceCreateComputeInstance(
			f->new_gi, NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE, &f->new_ci);
	case CALL_COMPUTE_INSTANCES:
		u = ELEMENTSOF(cis);
		return n->nvmlGpuInstanceGetComputeInstances(
			f->gi, NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE, cis, &u);
	case CALL_DESTROY_CI:
		return n->nvmlComputeInstanceDestroy(f->new_ci);
	case CALL_DESTROY_GI:
		return n->nvmlGpuInstanceDestroy(f->new_gi);
	case CALL_COMPUTE_PROCESSES:
		return n->nvmlDeviceGetComputeRunningProcesses_v3(f->dev, &u, procs);
	case CALL_GRAPHICS_PROCESSES:
		return n->nvmlDeviceGetGraphicsRunningProcesses_v3(f->dev, &u, procs);
	case CALL_SHUTDOWN:
		return n->nvmlShutdown();
	case CALL_NEXT_FAULT: {
		_cleanup_close_ int fd = -EBADF;
		char temp[4096 + 8];

		snprintf(path, sizeof(path), "%s.fault", n->desc);
		snprintf(temp, sizeof(temp), "%s.new", path);
		fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, f->next_line, strlen(f->next_line)) < 0 ||
		    rename(temp, path) < 0)
			return NVML_ERROR_UNKNOWN;
		return NVML_SUCCESS;
	}
	case _CALL_MAX:
		break;
	}
	return NVML_ERROR_UNKNOWN;
}

/* Runs @calls in a child under the fault @line; the number of calls that returned. */
static size_t fault_child(struct fault_run *f, const char *line, const int *calls, size_t n_calls,
			  struct test_child *ret, const struct test_call_record **ret_records)
{
	test_fake_fault(f->n->desc, line);
	return test_child_run_calls(fault_call, f, calls, n_calls, 20000, ret, ret_records);
}

/*
 * Which calls each <where> names: "init" nvmlInit_v2, "query" the device count, handles and
 * per-device queries, "apply" the MIG management, "processes" the process lists, none the rest.
 */
static void test_fault_kinds(void **state)
{
	struct nvml *n = *state;
	struct fault_run f;

	fault_setup(n, &f);
	test_fake_fault_kinds(n->desc, fault_call, &f, fault_calls, CALL_NEXT_FAULT);
	/* The parent made none of those calls: it was never touched. */
	assert_int_equal(n->nvmlDeviceGetCount_v2(&(unsigned){ 0 }), NVML_SUCCESS);
}

/* Every fault at every kind of call: the process that made the call ends (or goes on) as told. */
static void test_fault_fates(void **state)
{
	static const int at[] = { CALL_INIT, CALL_NAME, CALL_SET_MIG_MODE, CALL_COMPUTE_PROCESSES };
	struct nvml *n = *state;
	struct fault_run f;

	fault_setup(n, &f);
	test_fake_fault_fates(n->desc, fault_call, &f, fault_calls, at, ELEMENTSOF(at));
	assert_int_equal(n->nvmlDeviceGetCount_v2(&(unsigned){ 0 }), NVML_SUCCESS);
}

/* A count: the first calls of a process fault, the later ones answer. */
static void test_fault_count(void **state)
{
	static const int three[] = { CALL_NAME, CALL_HANDLE, CALL_NAME };
	static const int again[] = { CALL_NAME, CALL_NAME, CALL_NEXT_FAULT,
				     CALL_NAME, CALL_NAME, CALL_NAME };
	static const int leaks[] = { CALL_NAME, CALL_NAME };
	struct nvml *n = *state;
	const struct test_call_record *recs;
	struct test_child child;
	struct fault_run f;

	fault_setup(n, &f);
	/* Each process counts its own: the second child faults as the first did. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(fault_child(&f, "query garbage 2", three, 3, &child, &recs), 3);
		assert_int_equal(child.out_len, 2 * FAULT_GARBAGE_BYTES);
		for (size_t k = 0; k < 3; k++)
			assert_int_equal(recs[k].ret, NVML_SUCCESS);
		test_child_free(&child);
	}

	/* Surrounding blanks do not matter; another line starts the count again: 1 + 2 faults. */
	f.next_line = "query garbage 2";
	assert_int_equal(fault_child(&f, "\t query  garbage\t1 \n", again, ELEMENTSOF(again),
				     &child, &recs),
			 ELEMENTSOF(again));
	assert_int_equal(child.out_len, 3 * FAULT_GARBAGE_BYTES);
	test_child_free(&child);

	/* The leak of the first call stays; the second adds nothing. */
	assert_int_equal(fault_child(&f, "query leak 1", leaks, 2, &child, &recs), 2);
	assert_true(recs[0].rss_grew_kib > 900 * 1024);
	assert_true(recs[1].rss_grew_kib < 100 * 1024);
	test_child_free(&child);

	/* Without a count every call faults. */
	assert_int_equal(fault_child(&f, "query garbage", three, 3, &child, &recs), 3);
	assert_int_equal(child.out_len, 3 * FAULT_GARBAGE_BYTES);
	test_child_free(&child);
}

/* A line that does not parse fails every call, with one line on stderr each, and hurts nothing. */
static void test_fault_malformed(void **state)
{
	static const struct {
		const char *line;
		const char *says;
	} bad[] = {
		{ "", "expected one line '<where> <what> [<count>]'" },
		{ "query", "expected one line" },
		{ "query segv 1 2", "expected one line" },
		{ "query segv\napply abort", "expected one line" },
		{ "device segv", "'device' is not a place (init, query, apply, processes)" },
		{ "QUERY segv", "'QUERY' is not a place" },
		{ "query crash",
		  "'crash' is not a fault (segv, abort, hang, leak, garbage, exit)" },
		{ "query segv 0", "'0' is not a count of calls" },
		{ "query segv -1", "'-1' is not a count of calls" },
		{ "query segv x", "'x' is not a count of calls" },
		{ "query garbage 1                                                        ",
		  "longer than 63 bytes" },
	};
	static const int calls[] = { CALL_INIT, CALL_DRIVER_VERSION, CALL_COUNT, CALL_NAME,
				     CALL_EVENT_SET, CALL_SET_MIG_MODE, CALL_COMPUTE_PROCESSES,
				     CALL_SHUTDOWN };
	struct nvml *n = *state;
	const struct test_call_record *recs;
	struct test_child child;
	struct fault_run f;
	char prefix[4096 + 32];

	fault_setup(n, &f);
	snprintf(prefix, sizeof(prefix), "fake-nvml: %s.fault: ", n->desc);
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		size_t done = fault_child(&f, bad[i].line, calls, ELEMENTSOF(calls), &child, &recs);

		assert_int_equal(done, ELEMENTSOF(calls));
		/* all but nvmlShutdown, which answers as ever */
		for (size_t k = 0; k + 1 < ELEMENTSOF(calls); k++)
			if (recs[k].ret != NVML_ERROR_UNKNOWN)
				fail_msg("%s: %s for '%s'", fault_calls[recs[k].call].name,
					 n->nvmlErrorString(recs[k].ret), bad[i].line);
		assert_int_equal(recs[ELEMENTSOF(calls) - 1].ret, NVML_SUCCESS);
		test_assert_lines(child.err, ELEMENTSOF(calls) - 1, prefix, bad[i].says);
		assert_int_equal(child.out_len, 0);
		test_child_free(&child);
	}
	test_fake_fault(n->desc, NULL);
	assert_int_equal(n->nvmlDeviceGetCount_v2(&(unsigned){ 0 }), NVML_SUCCESS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_devices, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_driver_error, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_topology, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_nvlink, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_mig, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_mig_devices, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_mig_objects, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_mig_errors, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_mig_state_across_processes, setup_current,
						teardown),
		cmocka_unit_test_setup_teardown(test_mig_state_description_wins, setup_current,
						teardown),
		cmocka_unit_test_setup_teardown(test_fail_call_across_processes, setup_current,
						teardown),
		cmocka_unit_test_setup_teardown(test_mig_state_race, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_hang, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_old_driver, setup_old, teardown),
		cmocka_unit_test_setup_teardown(test_embedded_nodes, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_hgx_h100_nvml, setup_current, teardown),
		cmocka_unit_test(test_fixture_hook),
		cmocka_unit_test_setup_teardown(test_events, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_events_unsupported, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_events_threads, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_fault_kinds, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_fault_fates, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_fault_count, setup_current, teardown),
		cmocka_unit_test_setup_teardown(test_fault_malformed, setup_current, teardown),
	};

	test_env("XPU_FAKE_NVML_DIR");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
