// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The fake CUDA driver API (tests/fakes/fake-cuda.c): the contract the NVIDIA backend relies on
 * when it runs against it, loaded the way the backend loads the real one (dlopen by path, dlsym
 * by versioned name), on the same node descriptions as the fake NVML, which must agree with it.
 *
 * cuInit's first answer is final for the life of the library, as with the driver, so every test
 * (and every description inside one) gets a freshly loaded library.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtimes/nvidia-cuda.h"
#include "runtimes/nvidia-nvml.h"
#include "shared/macro.h"
#include "sim/fixture.h"
#include "testutil.h"

#define CUDA_FN(f) __typeof__(f) *f
struct cuda {
	void *dl;
	char *desc; /* the description XPU_FAKE_NVML names, removed by cuda_close() */
	CUDA_FN(cuInit);
	CUDA_FN(cuDriverGetVersion);
	CUDA_FN(cuDeviceGetCount);
	CUDA_FN(cuDeviceGet);
	CUDA_FN(cuDeviceGetName);
	CUDA_FN(cuDeviceGetPCIBusId);
	CUDA_FN(cuDeviceGetAttribute);
	CUDA_FN(cuDeviceTotalMem_v2);
	CUDA_FN(cuDeviceGetUuid_v2);
};

#define RESOLVE(c, f)                                                                              \
	do {                                                                                       \
		(c)->f = (__typeof__((c)->f))dlsym((c)->dl, #f);                                   \
		if (!(c)->f)                                                                       \
			fail_msg("the library lacks %s", #f);                                      \
	} while (0)

/* Loads "$XPU_FAKE_NVML_DIR/libcuda.so.1" afresh: nothing is initialised yet. */
static void cuda_load(struct cuda *c)
{
	char path[4096];
	int count = -1;

	snprintf(path, sizeof(path), "%s/libcuda.so.1", test_env("XPU_FAKE_NVML_DIR"));
	c->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!c->dl)
		fail_msg("dlopen %s: %s", path, dlerror());
	RESOLVE(c, cuInit);
	RESOLVE(c, cuDriverGetVersion);
	RESOLVE(c, cuDeviceGetCount);
	RESOLVE(c, cuDeviceGet);
	RESOLVE(c, cuDeviceGetName);
	RESOLVE(c, cuDeviceGetPCIBusId);
	RESOLVE(c, cuDeviceGetAttribute);
	RESOLVE(c, cuDeviceTotalMem_v2);
	RESOLVE(c, cuDeviceGetUuid_v2);
	/* A library left over from an earlier load would answer from its old state. */
	assert_int_equal(c->cuDeviceGetCount(&count), CUDA_ERROR_NOT_INITIALIZED);
}

static void cuda_unload(struct cuda *c)
{
	assert_int_equal(dlclose(c->dl), 0);
	c->dl = NULL;
}

static void cuda_reload(struct cuda *c)
{
	cuda_unload(c);
	cuda_load(c);
}

static int setup(void **state)
{
	struct cuda *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	unsetenv("XPU_FAKE_NVML");
	cuda_load(c);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct cuda *c = *state;

	if (!c)
		return 0;
	if (c->dl)
		cuda_unload(c);
	if (c->desc) {
		test_fake_fault(c->desc, NULL);
		unlink(c->desc);
	}
	free(c->desc);
	unsetenv("XPU_FAKE_NVML");
	free(c);
	return 0;
}

/* Writes @json to a new temporary file (replacing the last one) and points XPU_FAKE_NVML at it. */
static void describe(struct cuda *c, const char *json)
{
	const char *tmp = getenv("TMPDIR");
	int fd;

	if (c->desc)
		unlink(c->desc);
	free(c->desc);
	assert_true(asprintf(&c->desc, "%s/xpu-fake-cuda-XXXXXX", isempty(tmp) ? "/tmp" : tmp) > 0);
	fd = mkstemp(c->desc);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
	assert_int_equal(close(fd), 0);
	assert_int_equal(setenv("XPU_FAKE_NVML", c->desc, 1), 0);
}

/* A GPU both fakes accept: UUID "GPU-0000000<n>-1111-2222-3333-444444444444", @extra keys. */
#define GPU(bus, n, name, cc, extra)                                                               \
	"{ \"bus_id\": \"" bus "\", \"minor\": " #n ", "                                           \
	"\"uuid\": \"GPU-0000000" #n "-1111-2222-3333-444444444444\", \"name\": \"" name "\", "    \
	"\"pci_device_id\": \"0x233010de\", \"memory_bytes\": 85520809984, "                       \
	"\"compute_capability\": \"" cc "\"" extra " }"
#define H100(bus, n, extra) GPU(bus, n, "NVIDIA H100 80GB HBM3", "9.0", extra)

static int count(const struct cuda *c)
{
	int n = -1;

	assert_int_equal(c->cuDeviceGetCount(&n), CUDA_SUCCESS);
	return n;
}

static CUdevice device(const struct cuda *c, int ordinal)
{
	CUdevice dev = -1;

	assert_int_equal(c->cuDeviceGet(&dev, ordinal), CUDA_SUCCESS);
	return dev;
}

static int attribute(const struct cuda *c, CUdevice dev, CUdevice_attribute attrib)
{
	int v = -1;

	assert_int_equal(c->cuDeviceGetAttribute(&v, attrib, dev), CUDA_SUCCESS);
	return v;
}

/* The six attributes of nvidia-cuda.h. */
static void assert_attributes(const struct cuda *c, CUdevice dev, int major, int minor, int sms,
			      int khz, int l2, int threads)
{
	static const CUdevice_attribute attrs[] = {
		CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
		CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
		CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
		CU_DEVICE_ATTRIBUTE_CLOCK_RATE,
		CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE,
		CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR,
	};
	const int expected[] = { major, minor, sms, khz, l2, threads };

	for (size_t i = 0; i < ELEMENTSOF(attrs); i++)
		assert_int_equal(attribute(c, dev, attrs[i]), expected[i]);
}

static void assert_bus_id(const struct cuda *c, CUdevice dev, const char *expected)
{
	char bus[32];

	assert_int_equal(c->cuDeviceGetPCIBusId(bus, (int)sizeof(bus), dev), CUDA_SUCCESS);
	assert_string_equal(bus, expected);
}

/* ---- before and around cuInit ---------------------------------------------------------------- */

static void test_not_initialized(void **state)
{
	struct cuda *c = *state;
	char buf[64];
	size_t mem;
	CUuuid uuid;
	CUdevice dev;
	int v;

	/* Only the CUDA functions are exported, nothing the fake is built from. */
	assert_null(dlsym(c->dl, "parse_pci_address"));
	assert_null(dlsym(c->dl, "load_node"));
	assert_null(dlsym(c->dl, "fake_fault"));

	describe(c, "{ \"cuda_version\": 12040, \"cuda_init_ms\": 0, \"gpus\": [" H100(
			    "0000:18:00.0", 0, "") "] }");
	assert_int_equal(c->cuDeviceGetCount(&v), CUDA_ERROR_NOT_INITIALIZED);
	assert_int_equal(c->cuDeviceGet(&dev, 0), CUDA_ERROR_NOT_INITIALIZED);
	assert_int_equal(c->cuDeviceGetName(buf, sizeof(buf), 0), CUDA_ERROR_NOT_INITIALIZED);
	assert_int_equal(c->cuDeviceGetPCIBusId(buf, sizeof(buf), 0), CUDA_ERROR_NOT_INITIALIZED);
	assert_int_equal(c->cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 0),
			 CUDA_ERROR_NOT_INITIALIZED);
	assert_int_equal(c->cuDeviceTotalMem_v2(&mem, 0), CUDA_ERROR_NOT_INITIALIZED);
	assert_int_equal(c->cuDeviceGetUuid_v2(&uuid, 0), CUDA_ERROR_NOT_INITIALIZED);

	/* The driver's version needs no init, as with the real library. */
	assert_int_equal(c->cuDriverGetVersion(&v), CUDA_SUCCESS);
	assert_int_equal(v, 12040);
	assert_int_equal(c->cuDriverGetVersion(NULL), CUDA_ERROR_INVALID_VALUE);
	unsetenv("XPU_FAKE_NVML");
	assert_int_equal(c->cuDriverGetVersion(&v), CUDA_SUCCESS);
	assert_int_equal(v, 13000);
	setenv("XPU_FAKE_NVML", c->desc, 1);

	/* Flags must be 0; a refused call initialises nothing. */
	assert_int_equal(c->cuInit(1), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(c->cuDeviceGetCount(&v), CUDA_ERROR_NOT_INITIALIZED);

	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
	assert_int_equal(count(c), 1);
	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
	assert_int_equal(c->cuDriverGetVersion(&v), CUDA_SUCCESS);
	assert_int_equal(v, 12040);
}

/* No description is a host without a driver; the first answer of cuInit is final. */
static void test_no_driver(void **state)
{
	struct cuda *c = *state;
	int n;

	assert_int_equal(c->cuInit(0), CUDA_ERROR_NO_DEVICE);
	assert_int_equal(c->cuDeviceGetCount(&n), CUDA_ERROR_NOT_INITIALIZED);
	describe(c, "{ \"cuda_init_ms\": 0, \"gpus\": [" H100("0000:18:00.0", 0, "") "] }");
	assert_int_equal(c->cuInit(0), CUDA_ERROR_NO_DEVICE);
	assert_int_equal(c->cuDeviceGetCount(&n), CUDA_ERROR_NOT_INITIALIZED);

	cuda_reload(c);
	setenv("XPU_FAKE_NVML", "/nonexistent/fake-nvml.json", 1);
	assert_int_equal(c->cuInit(0), CUDA_ERROR_NO_DEVICE);

	/* A node whose GPUs CUDA cannot see, or none at all, is a host without devices. */
	cuda_reload(c);
	describe(c, "{ \"cuda_init_ms\": 0, \"gpus\": [] }");
	assert_int_equal(c->cuInit(0), CUDA_ERROR_NO_DEVICE);
	cuda_reload(c);
	describe(c, "{ \"cuda_init_ms\": 0, \"gpus\": [" H100("0000:18:00.0", 0,
							      ", \"cuda\": false") "] }");
	assert_int_equal(c->cuInit(0), CUDA_ERROR_NO_DEVICE);
}

/* Descriptions the fake refuses (cuInit: UNKNOWN), each a typo that must not pass quietly. */
static const char *const bad_descriptions[] = {
	"{ \"gpus\": [ ",
	"[]",
	"{ \"cuda_init_msec\": 0, \"gpus\": [] }",
	"{ \"cuda_init_ms\": -1, \"gpus\": [] }",
	"{ \"cuda_init_ms\": 600001, \"gpus\": [] }",
	"{ \"cuda_init_ms\": \"200\", \"gpus\": [] }",
	"{ \"cuda_init_error\": \"NO_SUCH_ERROR\", \"gpus\": [] }",
	"{ \"cuda_init_error\": \"CUDA_ERROR_UNKNOWN\", \"gpus\": [] }",
	"{ \"cuda_version\": \"13.0\", \"gpus\": [] }",
	"{ \"gpus\": [" H100("0000:18:00.0", 0, ", \"multiprocesors\": 132") "] }",
	"{ \"gpus\": [" H100("0000:18:00.0", 0, ", \"multiprocessors\": 0") "] }",
	"{ \"gpus\": [" H100("0000:18:00.0", 0, ", \"clock_khz\": 1.5") "] }",
	"{ \"gpus\": [" H100("0000:18:00.0", 0, ", \"l2_bytes\": 4294967296") "] }",
	"{ \"gpus\": [" H100("0000:18:00.0", 0, ", \"max_threads_per_sm\": null, "
				      "\"cuda\": 0") "] }",
	"{ \"gpus\": [" H100("0000:18:00.0", 0, ", \"errors\": {\"*\": 1}") "] }",
	"{ \"gpus\": [" H100("0000:18:00.0", 0, ", \"errors\": \"GPU_IS_LOST\"") "] }",
	"{ \"gpus\": [" H100("0000:18:00.0", 0, "") ", " H100("18:00.0", 1, "") "] }",
	"{ \"gpus\": [" H100("0000:18:00", 0, "") "] }",
	"{ \"gpus\": [" GPU("0000:18:00.0", 0, "H100", "9", "") "] }",
	"{ \"gpus\": [ { \"bus_id\": \"0000:18:00.0\", \"uuid\": \"GPU-1\", "
	"\"name\": \"H100\" } ] }",
	"{ \"gpus\": [ { \"bus_id\": \"0000:18:00.0\", \"uuid\": "
	"\"GPU-00000000-1111-2222-3333-44444444444g\", \"name\": \"H100\" } ] }",
	"{ \"gpus\": [ { \"bus_id\": \"0000:18:00.0\", \"uuid\": "
	"\"GPU-000000001-111-2222-3333-444444444444\", \"name\": \"H100\" } ] }",
	"{ \"gpus\": [ { \"bus_id\": \"0000:18:00.0\", "
	"\"uuid\": \"GPU-00000000-1111-2222-3333-444444444444\" } ] }",
};

static void test_malformed(void **state)
{
	struct cuda *c = *state;
	int v;

	for (size_t i = 0; i < ELEMENTSOF(bad_descriptions); i++) {
		describe(c, bad_descriptions[i]);
		assert_int_equal(c->cuDriverGetVersion(&v), CUDA_ERROR_UNKNOWN);
		if (c->cuInit(0) != CUDA_ERROR_UNKNOWN)
			fail_msg("accepted: %s", bad_descriptions[i]);
		assert_int_equal(c->cuDeviceGetCount(&v), CUDA_ERROR_NOT_INITIALIZED);
		cuda_reload(c);
	}
	/* The control: the same GPU without the typos. */
	describe(c, "{ \"cuda_init_ms\": 0, \"gpus\": [" H100("0000:18:00.0", 0, "") "] }");
	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
}

static void test_init_error(void **state)
{
	static const struct {
		const char *name;
		CUresult code;
	} errors[] = { { "UNKNOWN", CUDA_ERROR_UNKNOWN },
		       { "NO_DEVICE", CUDA_ERROR_NO_DEVICE },
		       { "SYSTEM_DRIVER_MISMATCH", 803 },
		       { "OPERATING_SYSTEM", 304 } };
	struct cuda *c = *state;
	long long start;
	int v;

	for (size_t i = 0; i < ELEMENTSOF(errors); i++) {
		_cleanup_free_ char *json = NULL;

		assert_true(asprintf(&json, "{ \"cuda_init_error\": \"%s\", \"cuda_init_ms\": 100, "
					    "\"gpus\": [" H100("0000:18:00.0", 0, "") "] }",
				     errors[i].name) > 0);
		describe(c, json);
		start = test_now_ms();
		assert_int_equal(c->cuInit(0), errors[i].code);
		/* A failing init takes its time too. */
		assert_true(test_now_ms() - start >= 100);
		assert_int_equal(c->cuInit(0), errors[i].code);
		assert_int_equal(c->cuDeviceGetCount(&v), CUDA_ERROR_NOT_INITIALIZED);
		assert_int_equal(c->cuDriverGetVersion(&v), CUDA_SUCCESS);
		cuda_reload(c);
	}
}

struct init_call {
	const struct cuda *c;
	CUresult r;
};

static void *init_thread(void *userdata)
{
	struct init_call *call = userdata;

	call->r = call->c->cuInit(0);
	return NULL;
}

static void test_init_delay(void **state)
{
	struct init_call call = { .c = *state };
	struct cuda *c = *state;
	long long start, now;
	pthread_t t;
	CUresult r;
	int v;

	/* 200 ms by default, as on an H100. */
	describe(c, "{ \"gpus\": [" H100("0000:18:00.0", 0, "") "] }");
	start = test_now_ms();
	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
	assert_true(test_now_ms() - start >= 200);
	/* Later calls answer from what the first one found. */
	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
	assert_int_equal(count(c), 1);

	/*
	 * cuInit on another thread: meanwhile the library answers NOT_INITIALIZED, and a second
	 * cuInit waits for the first one's answer. Init cannot end before start + 500 ms, so a
	 * call that returned before then was made before it ended.
	 */
	cuda_reload(c);
	describe(c, "{ \"cuda_init_ms\": 500, \"gpus\": [" H100("0000:18:00.0", 0, "") "] }");
	start = test_now_ms();
	assert_int_equal(pthread_create(&t, NULL, init_thread, &call), 0);
	r = c->cuDeviceGetCount(&v);
	now = test_now_ms();
	if (now - start < 500)
		assert_int_equal(r, CUDA_ERROR_NOT_INITIALIZED);
	else
		print_message("the machine is slow: %lld ms for one call\n", now - start);
	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
	assert_true(test_now_ms() - start >= 500);
	assert_int_equal(count(c), 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(call.r, CUDA_SUCCESS);

	/* No delay at all when asked. */
	cuda_reload(c);
	describe(c, "{ \"cuda_init_ms\": 0, \"gpus\": [" H100("0000:18:00.0", 0, "") "] }");
	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
}

/* ---- devices --------------------------------------------------------------------------------- */

/* The embedded HGX H100 node: eight H100s in PCI order, the one in MIG mode a whole GPU too. */
static void test_hgx_h100(void **state)
{
	static const char *const bus_ids[] = {
		"0000:18:00.0", "0000:2A:00.0", "0000:3A:00.0", "0000:5D:00.0",
		"0000:9A:00.0", "0000:AB:00.0", "0000:BA:00.0", "0000:DB:00.0",
	};
	/* GPU-5632c4e7-030b-c56d-91cb-e22ba6918354 and GPU-9907f33d-22e6-26d6-9d3d-6a7700177cb6 */
	static const unsigned char uuid0[16] = { 0x56, 0x32, 0xc4, 0xe7, 0x03, 0x0b, 0xc5, 0x6d,
						 0x91, 0xcb, 0xe2, 0x2b, 0xa6, 0x91, 0x83, 0x54 };
	static const unsigned char uuid7[16] = { 0x99, 0x07, 0xf3, 0x3d, 0x22, 0xe6, 0x26, 0xd6,
						 0x9d, 0x3d, 0x6a, 0x77, 0x00, 0x17, 0x7c, 0xb6 };
	const struct sim_node *sn = sim_node_find("hgx-h100");
	_cleanup_free_ char *dir = NULL, *error = NULL, *desc = NULL;
	struct cuda *c = *state;
	int version = 0;

	assert_non_null(sn);
	if (fixture_build_temp(sn->json, &dir, &error) < 0)
		fail_msg("hgx-h100: %s", error);
	assert_true(asprintf(&desc, "%s/run/fake-nvml.json", dir) > 0);
	setenv("XPU_FAKE_NVML", desc, 1);
	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
	assert_int_equal(c->cuDriverGetVersion(&version), CUDA_SUCCESS);
	assert_int_equal(version, 13000);
	assert_int_equal(count(c), 8);

	for (int i = 0; i < 8; i++) {
		CUdevice dev = device(c, i);
		char name[256];
		size_t mem = 0;
		CUuuid uuid;

		assert_int_equal(dev, i);
		assert_bus_id(c, dev, bus_ids[i]);
		assert_int_equal(c->cuDeviceGetName(name, sizeof(name), dev), CUDA_SUCCESS);
		assert_string_equal(name, "NVIDIA H100 80GB HBM3");
		assert_int_equal(c->cuDeviceTotalMem_v2(&mem, dev), CUDA_SUCCESS);
		assert_true(mem == 85520809984ULL);
		assert_int_equal(c->cuDeviceGetUuid_v2(&uuid, dev), CUDA_SUCCESS);
		if (i == 0)
			assert_memory_equal(uuid.bytes, uuid0, 16);
		if (i == 7)
			assert_memory_equal(uuid.bytes, uuid7, 16);
		assert_attributes(c, dev, 9, 0, 132, 1980000, 52428800, 2048);
	}
	unsetenv("XPU_FAKE_NVML");
	assert_int_equal(fixture_destroy(dir), 0);
}

/*
 * Listed out of PCI order, across two domains and two functions; one GPU not for CUDA, one lost
 * (every NVML call fails), one with an NVML error for one function only (CUDA sees it); an A100,
 * an L40S and an H100 with its own numbers.
 */
static const char order_node[] =
	"{ \"cuda_version\": 12080, \"cuda_init_ms\": 0, \"gpus\": ["
	H100("0001:05:00.0", 1, "") ", "
	H100("0000:9a:00.1", 2, ", \"errors\": {\"nvmlDeviceGetName\": \"UNKNOWN\"}") ", "
	H100("0000:9a:00.0", 3, ", \"cuda\": false") ", "
	GPU("0000:4e:00.0", 4, "NVIDIA A100-SXM4-40GB", "8.0", ", \"cuda\": true") ", "
	GPU("0000:C1:00.0", 5, "NVIDIA L40S", "8.9", "") ", "
	H100("0000:18:00.0", 6, ", \"errors\": {\"*\": \"GPU_IS_LOST\"}") ", "
	H100("0000:1b:00.0", 7, ", \"multiprocessors\": 114, \"clock_khz\": 1755000, "
				"\"l2_bytes\": 52428800, \"max_threads_per_sm\": 1024")
	"] }";

static void test_order(void **state)
{
	static const struct {
		const char *bus;
		unsigned char uuid_first; /* GPU-0000000<n>-...: the 4th byte */
		int major, minor, sms, khz, l2, threads;
	} expected[] = {
		{ "0000:1B:00.0", 7, 9, 0, 114, 1755000, 52428800, 1024 },
		{ "0000:4E:00.0", 4, 8, 0, 108, 1410000, 41943040, 2048 },
		{ "0000:9A:00.1", 2, 9, 0, 132, 1980000, 52428800, 2048 },
		{ "0000:C1:00.0", 5, 8, 9, 80, 1500000, 6291456, 2048 },
		{ "0001:05:00.0", 1, 9, 0, 132, 1980000, 52428800, 2048 },
	};
	static const unsigned char uuid_rest[12] = { 0x11, 0x11, 0x22, 0x22, 0x33, 0x33,
						     0x44, 0x44, 0x44, 0x44, 0x44, 0x44 };
	struct cuda *c = *state;
	int version = 0;

	describe(c, order_node);
	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
	assert_int_equal(c->cuDriverGetVersion(&version), CUDA_SUCCESS);
	assert_int_equal(version, 12080);
	assert_int_equal(count(c), (int)ELEMENTSOF(expected));
	for (size_t i = 0; i < ELEMENTSOF(expected); i++) {
		CUdevice dev = device(c, (int)i);
		CUuuid uuid;

		assert_bus_id(c, dev, expected[i].bus);
		assert_int_equal(c->cuDeviceGetUuid_v2(&uuid, dev), CUDA_SUCCESS);
		assert_int_equal(uuid.bytes[0] | uuid.bytes[1] | uuid.bytes[2], 0);
		assert_int_equal((unsigned char)uuid.bytes[3], expected[i].uuid_first);
		assert_memory_equal(uuid.bytes + 4, uuid_rest, 12);
		assert_attributes(c, dev, expected[i].major, expected[i].minor, expected[i].sms,
				  expected[i].khz, expected[i].l2, expected[i].threads);
	}
}

static void test_invalid(void **state)
{
	static const int bad[] = { -1, 2, 3, 1000, INT32_MIN };
	struct cuda *c = *state;
	char buf[64];
	size_t mem;
	CUuuid uuid;
	CUdevice dev;
	int v;

	describe(c, "{ \"cuda_init_ms\": 0, \"gpus\": [" H100("0000:18:00.0", 0, "") ", "
		    H100("0000:2a:00.0", 1, "") "] }");
	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
	assert_int_equal(count(c), 2);

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		dev = 42;
		assert_int_equal(c->cuDeviceGet(&dev, bad[i]), CUDA_ERROR_INVALID_DEVICE);
		assert_int_equal(dev, 42); /* written on success only */
		assert_int_equal(c->cuDeviceGetName(buf, sizeof(buf), bad[i]),
				 CUDA_ERROR_INVALID_DEVICE);
		assert_int_equal(c->cuDeviceGetPCIBusId(buf, sizeof(buf), bad[i]),
				 CUDA_ERROR_INVALID_DEVICE);
		assert_int_equal(c->cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_CLOCK_RATE,
							 bad[i]),
				 CUDA_ERROR_INVALID_DEVICE);
		assert_int_equal(c->cuDeviceTotalMem_v2(&mem, bad[i]), CUDA_ERROR_INVALID_DEVICE);
		assert_int_equal(c->cuDeviceGetUuid_v2(&uuid, bad[i]), CUDA_ERROR_INVALID_DEVICE);
	}

	assert_int_equal(c->cuDeviceGetCount(NULL), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(c->cuDeviceGet(NULL, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(c->cuDeviceGetName(NULL, 64, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(c->cuDeviceGetPCIBusId(NULL, 64, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(c->cuDeviceGetAttribute(NULL, CU_DEVICE_ATTRIBUTE_CLOCK_RATE, 0),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(c->cuDeviceTotalMem_v2(NULL, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(c->cuDeviceGetUuid_v2(NULL, 0), CUDA_ERROR_INVALID_VALUE);
	/* Attributes the fake does not model (1: max threads per block) are refused, not 0. */
	assert_int_equal(c->cuDeviceGetAttribute(&v, 1, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(c->cuDeviceGetAttribute(&v, -1, 0), CUDA_ERROR_INVALID_VALUE);

	/* Strings honour len: truncated to len - 1 characters and terminated; len <= 0 refused. */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(c->cuDeviceGetName(buf, 5, 0), CUDA_SUCCESS);
	assert_string_equal(buf, "NVID");
	assert_int_equal(buf[5], 'x');
	assert_int_equal(c->cuDeviceGetName(buf, 0, 0), CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(c->cuDeviceGetName(buf, -1, 0), CUDA_ERROR_INVALID_VALUE);
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(c->cuDeviceGetPCIBusId(buf, 13, 1), CUDA_SUCCESS);
	assert_string_equal(buf, "0000:2A:00.0");
	assert_int_equal(buf[13], 'x');
	assert_int_equal(c->cuDeviceGetPCIBusId(buf, 8, 1), CUDA_SUCCESS);
	assert_string_equal(buf, "0000:2A");
	assert_int_equal(c->cuDeviceGetPCIBusId(buf, 1, 1), CUDA_SUCCESS);
	assert_string_equal(buf, "");
	assert_int_equal(c->cuDeviceGetPCIBusId(buf, 0, 1), CUDA_ERROR_INVALID_VALUE);
}

/* A GPU without memory size or compute capability in the description (nvidia-faults has one). */
static void test_partial_gpu(void **state)
{
	struct cuda *c = *state;
	size_t mem = 7;
	int v = 7;

	describe(c, "{ \"cuda_init_ms\": 0, \"gpus\": [ { \"bus_id\": \"0000:47:00.0\", "
		    "\"minor\": 0, \"pci_device_id\": \"0x20b010de\", \"name\": \"NVIDIA A100\", "
		    "\"uuid\": \"GPU-4d6e8c30-9f51-4a7a-bc2d-3e4f5a6b7c82\" } ] }");
	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
	assert_int_equal(c->cuDeviceTotalMem_v2(&mem, 0), CUDA_ERROR_UNKNOWN);
	assert_int_equal(c->cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
						 0),
			 CUDA_ERROR_UNKNOWN);
	assert_true(mem == 7 && v == 7);
	assert_int_equal(attribute(c, 0, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT), 80);
}

/* ---- the two fakes describe one node --------------------------------------------------------- */

#define NVML_FN(f) __typeof__(f) *f
struct nvml {
	void *dl;
	NVML_FN(nvmlInit_v2);
	NVML_FN(nvmlShutdown);
	NVML_FN(nvmlDeviceGetCount_v2);
	NVML_FN(nvmlDeviceGetHandleByIndex_v2);
	NVML_FN(nvmlDeviceGetUUID);
	NVML_FN(nvmlDeviceGetPciInfo_v3);
	NVML_FN(nvmlDeviceGetMemoryInfo);
};

/* The UUID string NVML prints for CUDA's 16 bytes. */
static void uuid_string(const CUuuid *u, char buf[static 41])
{
	const unsigned char *b = (const unsigned char *)u->bytes;

	snprintf(buf, 41,
		 "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
		 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
}

/*
 * Every GPU CUDA sees is one NVML sees, with the same bus id, UUID and memory; the GPUs CUDA
 * does not see are those the description hides from it. Also: NVML takes the CUDA keys.
 */
static void check_agree(struct cuda *c, const char *desc, unsigned nvml_gpus, int cuda_gpus)
{
	struct nvml n = {};
	char path[4096];
	unsigned total = 0;

	snprintf(path, sizeof(path), "%s/libnvidia-ml.so.1", test_env("XPU_FAKE_NVML_DIR"));
	n.dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!n.dl)
		fail_msg("dlopen %s: %s", path, dlerror());
	RESOLVE(&n, nvmlInit_v2);
	RESOLVE(&n, nvmlShutdown);
	RESOLVE(&n, nvmlDeviceGetCount_v2);
	RESOLVE(&n, nvmlDeviceGetHandleByIndex_v2);
	RESOLVE(&n, nvmlDeviceGetUUID);
	RESOLVE(&n, nvmlDeviceGetPciInfo_v3);
	RESOLVE(&n, nvmlDeviceGetMemoryInfo);

	setenv("XPU_FAKE_NVML", desc, 1);
	assert_int_equal(n.nvmlInit_v2(), NVML_SUCCESS);
	assert_int_equal(n.nvmlDeviceGetCount_v2(&total), NVML_SUCCESS);
	assert_int_equal(total, nvml_gpus);
	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
	assert_int_equal(count(c), cuda_gpus);

	for (int i = 0; i < cuda_gpus; i++) {
		char bus[32], uuid[41];
		bool found = false;
		size_t mem = 0;
		CUuuid u;

		assert_int_equal(c->cuDeviceGetPCIBusId(bus, (int)sizeof(bus), i), CUDA_SUCCESS);
		assert_int_equal(c->cuDeviceGetUuid_v2(&u, i), CUDA_SUCCESS);
		uuid_string(&u, uuid);
		assert_int_equal(c->cuDeviceTotalMem_v2(&mem, i), CUDA_SUCCESS);
		for (unsigned k = 0; k < total; k++) {
			char nvml_uuid[96];
			nvmlDevice_t dev;
			nvmlPciInfo_t pci;
			nvmlMemory_t m;

			assert_int_equal(n.nvmlDeviceGetHandleByIndex_v2(k, &dev), NVML_SUCCESS);
			if (n.nvmlDeviceGetPciInfo_v3(dev, &pci) != NVML_SUCCESS ||
			    strcasecmp(pci.busIdLegacy, bus) != 0)
				continue;
			found = true;
			assert_int_equal(n.nvmlDeviceGetUUID(dev, nvml_uuid, sizeof(nvml_uuid)),
					 NVML_SUCCESS);
			assert_int_equal(strcasecmp(nvml_uuid, uuid), 0);
			assert_int_equal(n.nvmlDeviceGetMemoryInfo(dev, &m), NVML_SUCCESS);
			assert_true(m.total == mem);
		}
		if (!found)
			fail_msg("CUDA device %d (%s) is not one of NVML's", i, bus);
	}
	assert_int_equal(n.nvmlShutdown(), NVML_SUCCESS);
	assert_int_equal(dlclose(n.dl), 0);
}

static void test_agree_hgx(void **state)
{
	const struct sim_node *sn = sim_node_find("hgx-h100");
	_cleanup_free_ char *dir = NULL, *error = NULL, *desc = NULL;

	assert_non_null(sn);
	if (fixture_build_temp(sn->json, &dir, &error) < 0)
		fail_msg("hgx-h100: %s", error);
	assert_true(asprintf(&desc, "%s/run/fake-nvml.json", dir) > 0);
	check_agree(*state, desc, 8, 8);
	unsetenv("XPU_FAKE_NVML");
	assert_int_equal(fixture_destroy(dir), 0);
}

static void test_agree_order(void **state)
{
	struct cuda *c = *state;

	describe(c, order_node);
	check_agree(c, c->desc, 7, 5);
}

/* Every embedded node with an "nvml" block is one the CUDA fake takes. */
static void test_embedded_nodes(void **state)
{
	static const struct {
		const char *node;
		int gpus;
	} nodes[] = { { "hgx-h100", 8 }, { "real-h100-vm", 1 }, { "nvidia-faults", 3 } };
	struct cuda *c = *state;

	for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
		const struct sim_node *sn = sim_node_find(nodes[i].node);
		_cleanup_free_ char *dir = NULL, *error = NULL, *desc = NULL;

		assert_non_null(sn);
		if (fixture_build_temp(sn->json, &dir, &error) < 0)
			fail_msg("%s: %s", nodes[i].node, error);
		assert_true(asprintf(&desc, "%s/run/fake-nvml.json", dir) > 0);
		setenv("XPU_FAKE_NVML", desc, 1);
		assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
		assert_int_equal(count(c), nodes[i].gpus);
		unsetenv("XPU_FAKE_NVML");
		assert_int_equal(fixture_destroy(dir), 0);
		cuda_reload(c);
	}
}

/* ---- run-time faults: "<description>.fault" -------------------------------------------------- */

enum fault_call {
	CALL_INIT,
	CALL_VERSION,
	CALL_COUNT,
	CALL_GET,
	CALL_NAME,
	CALL_BUS_ID,
	CALL_ATTRIBUTE,
	CALL_TOTAL_MEM,
	CALL_UUID,
	CALL_NO_FAULT, /* not CUDA: removes the fault file */
	_CALL_MAX,
};

static const struct test_fault_call fault_calls[_CALL_MAX] = {
	[CALL_INIT] = { "cuInit", "init" },
	[CALL_VERSION] = { "cuDriverGetVersion", NULL },
	[CALL_COUNT] = { "cuDeviceGetCount", "query" },
	[CALL_GET] = { "cuDeviceGet", "query" },
	[CALL_NAME] = { "cuDeviceGetName", "query" },
	[CALL_BUS_ID] = { "cuDeviceGetPCIBusId", "query" },
	[CALL_ATTRIBUTE] = { "cuDeviceGetAttribute", "query" },
	[CALL_TOTAL_MEM] = { "cuDeviceTotalMem_v2", "query" },
	[CALL_UUID] = { "cuDeviceGetUuid_v2", "query" },
	[CALL_NO_FAULT] = { "(removing the fault)", NULL },
};

static const char fault_node[] =
	"{ \"cuda_init_ms\": 0, \"gpus\": [" H100("0000:18:00.0", 0, "") "] }";

/* Runs in the child: no cmocka. */
static int fault_call(void *userdata, int which)
{
	const struct cuda *c = userdata;
	char buf[64], path[4096];
	CUuuid uuid;
	CUdevice dev;
	size_t mem;
	int v;

	switch ((enum fault_call)which) {
	case CALL_INIT:
		return c->cuInit(0);
	case CALL_VERSION:
		return c->cuDriverGetVersion(&v);
	case CALL_COUNT:
		return c->cuDeviceGetCount(&v);
	case CALL_GET:
		return c->cuDeviceGet(&dev, 0);
	case CALL_NAME:
		return c->cuDeviceGetName(buf, sizeof(buf), 0);
	case CALL_BUS_ID:
		return c->cuDeviceGetPCIBusId(buf, sizeof(buf), 0);
	case CALL_ATTRIBUTE:
		return c->cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 0);
	case CALL_TOTAL_MEM:
		return c->cuDeviceTotalMem_v2(&mem, 0);
	case CALL_UUID:
		return c->cuDeviceGetUuid_v2(&uuid, 0);
	case CALL_NO_FAULT:
		snprintf(path, sizeof(path), "%s.fault", c->desc);
		return unlink(path) < 0 ? CUDA_ERROR_UNKNOWN : CUDA_SUCCESS;
	case _CALL_MAX:
		break;
	}
	return CUDA_ERROR_UNKNOWN;
}

/* Runs @calls in a child under the fault @line; the number of calls that returned. */
static size_t fault_child(struct cuda *c, const char *line, const int *calls, size_t n_calls,
			  struct test_child *ret, const struct test_call_record **ret_records)
{
	test_fake_fault(c->desc, line);
	return test_child_run_calls(fault_call, c, calls, n_calls, 20000, ret, ret_records);
}

/*
 * cuInit is "init", the device functions "query", cuDriverGetVersion neither; "apply" and
 * "processes", which name NVML's calls, leave every CUDA call alone.
 */
static void test_fault_kinds(void **state)
{
	struct cuda *c = *state;

	describe(c, fault_node);
	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
	test_fake_fault_kinds(c->desc, fault_call, c, fault_calls, CALL_NO_FAULT);
}

/* Every fault at cuInit and at a device query: the process ends (or goes on) as told. */
static void test_fault_fates(void **state)
{
	static const int at[] = { CALL_INIT, CALL_ATTRIBUTE };
	struct cuda *c = *state;

	describe(c, fault_node);
	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
	test_fake_fault_fates(c->desc, fault_call, c, fault_calls, at, ELEMENTSOF(at));
}

/* A count: the first queries of a process fault, the later ones answer. */
static void test_fault_count(void **state)
{
	static const int calls[] = { CALL_ATTRIBUTE, CALL_NAME, CALL_ATTRIBUTE };
	struct cuda *c = *state;
	const struct test_call_record *recs;
	struct test_child child;

	describe(c, fault_node);
	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
	assert_int_equal(fault_child(c, "query garbage 2", calls, 3, &child, &recs), 3);
	assert_int_equal(child.out_len, 2 * 64 * 1024);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(recs[i].ret, CUDA_SUCCESS);
	test_child_free(&child);
}

/*
 * A line that does not parse fails every call, cuDriverGetVersion included, with one line on
 * stderr each; cuInit initialises nothing then, so that it works once the line is gone.
 */
static void test_fault_malformed(void **state)
{
	static const struct {
		const char *line;
		const char *says;
	} bad[] = {
		{ "query segfault", "'segfault' is not a fault" },
		{ "init abort 1 2", "expected one line" },
		{ "query exit 0", "'0' is not a count of calls" },
	};
	static const int calls[] = { CALL_INIT, CALL_VERSION, CALL_COUNT, CALL_ATTRIBUTE,
				     CALL_NO_FAULT, CALL_INIT, CALL_COUNT };
	struct cuda *c = *state;
	const struct test_call_record *recs;
	struct test_child child;
	char prefix[4096 + 32];

	describe(c, fault_node);
	snprintf(prefix, sizeof(prefix), "fake-cuda: %s.fault: ", c->desc);
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		size_t done = fault_child(c, bad[i].line, calls, ELEMENTSOF(calls), &child, &recs);

		assert_int_equal(done, ELEMENTSOF(calls));
		for (size_t k = 0; k < 4; k++)
			if (recs[k].ret != CUDA_ERROR_UNKNOWN)
				fail_msg("%s: %d for '%s'", fault_calls[recs[k].call].name,
					 recs[k].ret, bad[i].line);
		for (size_t k = 4; k < ELEMENTSOF(calls); k++)
			assert_int_equal(recs[k].ret, CUDA_SUCCESS);
		/* one line per failed call */
		test_assert_lines(child.err, 4, prefix, bad[i].says);
		test_child_free(&child);
	}
	/* The parent made no call: cuInit's first answer is still to come, and a good one. */
	assert_int_equal(c->cuInit(0), CUDA_SUCCESS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_not_initialized, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_driver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_delay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hgx_h100, setup, teardown),
		cmocka_unit_test_setup_teardown(test_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_gpu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agree_hgx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agree_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_embedded_nodes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_kinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_fates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_malformed, setup, teardown),
	};

	test_env("XPU_FAKE_NVML_DIR");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
