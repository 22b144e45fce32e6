// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The NVIDIA backend against the fake NVML (tests/fakes/): one device per GPU with NVML's facts
 * merged over sysfs's, MIG modes and profiles, NVLink topology; a GPU that is lost, one that
 * cannot answer some calls and one that hangs stay on their own GPU; an old library without
 * the MIG symbols, or no library at all, never stops the PCI view.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/fileio.h"
#include "shared/macro.h"
#include "testutil.h"

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static json_t *device(const struct test_xpud *x, const char *id)
{
	char path[128];
	json_t *doc = NULL;

	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	assert_int_equal(test_request(x, "GET", path, &doc), 200);
	return doc;
}

static const char *prop(json_t *dev, const char *key)
{
	return str(json_object_get(dev, "properties"), key);
}

static json_t *backend(const struct test_xpud *x, const char *name, json_t **ret_doc)
{
	json_t *doc = NULL, *b;
	size_t i;

	assert_int_equal(test_request(x, "GET", "/v1/backends", &doc), 200);
	*ret_doc = doc;
	json_array_foreach(json_object_get(doc, "backends"), i, b)
		if (strcmp(str(b, "name"), name) == 0)
			return b;
	fail_msg("no backend %s", name);
	return NULL;
}

static void test_hgx_inventory(void **state)
{
	struct test_xpud *x = test_xpud_start_nvml(test_fixture_new("hgx-h100"), NULL, NULL);
	json_t *doc = NULL, *d, *b;
	size_t i;

	b = backend(x, "nvidia", &doc);
	assert_true(json_is_true(json_object_get(b, "available")));
	json_decref(doc);

	/* one device per GPU, not two: NVML's record merged over sysfs's */
	assert_int_equal(test_request(x, "GET", "/v1/devices", &doc), 200);
	assert_int_equal(json_array_size(json_object_get(doc, "devices")), 8);
	json_array_foreach(json_object_get(doc, "devices"), i, d) {
		assert_string_equal(str(d, "backend"), "nvidia");
		assert_true(json_integer_value(json_object_get(d, "memory_bytes")) == 85520809984LL);
		assert_string_equal(prop(d, "compute_capability"), "9.0");
		/* NVML has no NUMA node for these GPUs: sysfs's stands */
		assert_int_equal(json_integer_value(json_object_get(d, "numa_node")), i < 4 ? 0 : 1);
		/* class and revision come from sysfs, device nodes too */
		assert_string_equal(str(json_object_get(d, "pci"), "class"), "0x030200");
		assert_string_equal(json_string_value(json_array_get(
					    json_object_get(d, "device_nodes"), 1)),
				    "/dev/nvidiactl");
	}
	json_decref(doc);

	d = device(x, "0000:18:00.0");
	assert_string_equal(prop(d, "mig_mode"), "disabled");
	assert_string_equal(prop(d, "multiprocessor_count"), "132");
	/* profiles are listed even with MIG off, all free */
	assert_non_null(strstr(prop(d, "mig_profiles"), "1g.10gb=7/7"));
	assert_non_null(strstr(prop(d, "mig_profiles"), "7g.80gb=1/1"));
	assert_non_null(strstr(prop(d, "mig_profiles"), "1g.10gb+me=1/1"));
	/* every pair on the NVSwitch fabric */
	assert_string_equal(prop(d, "topology.0000:db:00.0"), "NV18");
	assert_string_equal(prop(d, "nvlink_active_links"), "18");
	assert_string_equal(prop(d, "driver_version"), "580.159.04");
	assert_string_equal(prop(d, "cuda_version"), "13.0");
	/* the whole-GPU slice names the GPU by NVML's UUID */
	assert_string_equal(str(json_object_get(d, "pci"), "address"), "0000:18:00.0");
	json_decref(d);

	/* the MIG GPU, with seven 1g.10gb instances: nothing more fits */
	d = device(x, "0000:db:00.0");
	assert_string_equal(prop(d, "mig_mode"), "enabled");
	assert_non_null(strstr(prop(d, "mig_profiles"), "1g.10gb=0/7"));
	json_decref(d);

	/* its instances are its slices: seven 1g.10gb, and no whole-GPU slice for it */
	assert_int_equal(test_request(x, "GET", "/v1/capacity", &doc), 200);
	json_array_foreach(json_object_get(doc, "resources"), i, d) {
		if (strcmp(str(d, "resource"), "nvidia.com/gpu") == 0)
			assert_int_equal(json_integer_value(json_object_get(d, "total")), 7);
		else if (strcmp(str(d, "resource"), "nvidia.com/mig-1g.10gb") == 0)
			assert_int_equal(json_integer_value(json_object_get(d, "allocatable")), 7);
		else
			fail_msg("unexpected resource %s", str(d, "resource"));
	}
	json_decref(doc);
	assert_int_equal(test_request(x, "GET", "/v1/slices", &doc), 200);
	{
		json_t *sl = json_object_get(doc, "slices"), *last, *nodes;

		assert_int_equal(json_array_size(sl), 14);
		last = json_array_get(sl, 13);
		assert_string_equal(str(last, "id"), "MIG-1eb1ccb5-06ad-5f86-bfff-4d993d674e8a");
		assert_string_equal(str(last, "device_id"), "0000:db:00.0");
		assert_string_equal(str(last, "profile"), "1g.10gb");
		assert_true(json_integer_value(json_object_get(last, "memory_bytes")) ==
			    9984LL * 1024 * 1024);
		assert_string_equal(str(json_object_get(last, "env"), "NVIDIA_VISIBLE_DEVICES"),
				    "MIG-1eb1ccb5-06ad-5f86-bfff-4d993d674e8a");
		/* the GPU's nodes, then the GPU and compute instance capabilities */
		nodes = json_object_get(last, "device_nodes");
		assert_string_equal(json_string_value(json_array_get(nodes, 0)), "/dev/nvidia7");
		assert_string_equal(json_string_value(json_array_get(nodes, 4)),
				    "/dev/nvidia-caps/nvidia-cap1011");
		assert_string_equal(json_string_value(json_array_get(nodes, 5)),
				    "/dev/nvidia-caps/nvidia-cap1012");
	}
	json_decref(doc);

	/* the CUDA driver API, initialised after READY, adds its facts by a later rescan */
	{
		char dbg[256];
		long long deadline = test_now_ms() + 10000;
		_cleanup_free_ char *log = NULL;
		const char *ready, *cuda;

		for (;;) {
			d = device(x, "0000:db:00.0");
			if (prop(d, "cuda_ordinal"))
				break;
			json_decref(d);
			if (test_now_ms() > deadline)
				fail_msg("no CUDA facts after 10 s");
			usleep(50 * 1000);
		}
		assert_string_equal(prop(d, "cuda_ordinal"), "7");
		assert_string_equal(prop(d, "max_threads_per_multiprocessor"), "2048");
		json_decref(d);
		assert_int_equal(read_attr_at(AT_FDCWD, x->log, 1 << 20, &log), 0);
		ready = strstr(log, "ready:");
		cuda = strstr(log, "cuInit took");
		snprintf(dbg, sizeof(dbg), "ready at %td, cuInit at %td", ready ? ready - log : -1,
			 cuda ? cuda - log : -1);
		if (!ready || !cuda || cuda < ready)
			fail_msg("READY must come before cuInit ends: %s", dbg);
	}

	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_faults_stay_on_their_gpu(void **state)
{
	struct test_xpud *x = test_xpud_start_nvml(test_fixture_new("nvidia-faults"), NULL, NULL);
	json_t *doc = NULL, *r, *d;
	int healthy = 0, lost = 0, hung = 0, quiet = 0;
	size_t i;

	assert_int_equal(test_request(x, "GET", "/v1/devices", &doc), 200);
	assert_int_equal(json_array_size(json_object_get(doc, "devices")), 4);
	json_array_foreach(json_object_get(doc, "devices"), i, d) {
		json_t *h = json_object_get(d, "health");
		const char *reason = str(h, "reason");

		if (reason && strstr(reason, "GPU is lost"))
			lost++;
		else if (reason && strstr(reason, "did not answer"))
			hung++;
		else if (strcmp(str(h, "state"), "healthy") == 0 &&
			 json_is_null(json_object_get(d, "memory_bytes")))
			quiet++; /* NOT_SUPPORTED answers: unknown, not unhealthy */
		else if (strcmp(str(h, "state"), "healthy") == 0)
			healthy++;
	}
	json_decref(doc);
	assert_int_equal(healthy, 1);
	assert_int_equal(lost, 1);
	assert_int_equal(hung, 1);
	assert_int_equal(quiet, 1);

	/* the healthy ones stay allocatable */
	assert_int_equal(test_request(x, "GET", "/v1/capacity", &doc), 200);
	r = json_array_get(json_object_get(doc, "resources"), 0);
	assert_string_equal(str(r, "resource"), "nvidia.com/gpu");
	assert_int_equal(json_integer_value(json_object_get(r, "total")), 4);
	assert_int_equal(json_integer_value(json_object_get(r, "allocatable")), 2);
	json_decref(doc);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/*
 * One of eight GPUs answers every NVML call with GPU_IS_LOST: it alone is unhealthy; the other
 * seven are listed healthy, counted in capacity and granted together.
 */
static void test_one_lost_gpu_of_eight(void **state)
{
	char *root = test_fixture_new("hgx-h100"), desc[4096];
	struct test_xpud *x;
	json_t *doc, *gpus, *g, *d, *r;
	int healthy = 0, lost = 0;
	size_t i;

	/* MIG off on the eighth GPU: eight whole GPUs; the second is lost */
	snprintf(desc, sizeof(desc), "%s/run/fake-nvml.json", root);
	doc = json_load_file(desc, 0, NULL);
	assert_non_null(doc);
	gpus = json_object_get(doc, "gpus");
	assert_int_equal(json_array_size(gpus), 8);
	g = json_array_get(gpus, 7);
	assert_int_equal(json_object_set_new(g, "mig", json_pack("{s:b, s:b}", "current", 0,
								  "pending", 0)),
			 0);
	assert_int_equal(json_object_del(g, "mig_instances"), 0);
	assert_int_equal(json_object_set_new(json_array_get(gpus, 1), "errors",
					     json_pack("{s:s}", "*", "GPU_IS_LOST")),
			 0);
	assert_int_equal(json_dump_file(doc, desc, JSON_COMPACT), 0);
	json_decref(doc);

	x = test_xpud_start_nvml(root, NULL, NULL);
	assert_int_equal(test_request(x, "GET", "/v1/devices", &doc), 200);
	assert_int_equal(json_array_size(json_object_get(doc, "devices")), 8);
	json_array_foreach(json_object_get(doc, "devices"), i, d) {
		json_t *h = json_object_get(d, "health");

		if (strcmp(str(h, "state"), "healthy") == 0) {
			healthy++;
		} else {
			assert_string_equal(str(d, "id"), "0000:2a:00.0");
			assert_non_null(strstr(str(h, "reason"), "GPU is lost"));
			lost++;
		}
	}
	json_decref(doc);
	assert_int_equal(healthy, 7);
	assert_int_equal(lost, 1);

	assert_int_equal(test_request(x, "GET", "/v1/capacity", &doc), 200);
	r = json_array_get(json_object_get(doc, "resources"), 0);
	assert_string_equal(str(r, "resource"), "nvidia.com/gpu");
	assert_int_equal(json_integer_value(json_object_get(r, "total")), 8);
	assert_int_equal(json_integer_value(json_object_get(r, "healthy")), 7);
	assert_int_equal(json_integer_value(json_object_get(r, "allocatable")), 7);
	json_decref(doc);

	/* all seven at once, and none of them the lost one */
	doc = NULL;
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"nvidia.com/gpu\", \"count\": 7}", &doc),
			 201);
	{
		char *text = json_dumps(doc, JSON_COMPACT);

		assert_non_null(text);
		assert_null(strstr(text, "0000:2a:00.0"));
		free(text);
	}
	json_decref(doc);
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"nvidia.com/gpu\", \"count\": 1}", NULL),
			 409);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_old_library(void **state)
{
	char lib[4096];
	struct test_xpud *x;
	json_t *d;

	snprintf(lib, sizeof(lib), "%s/old/libnvidia-ml.so.1", test_env("XPU_FAKE_NVML_DIR"));
	x = test_xpud_start_nvml(test_fixture_new("hgx-h100"), NULL, lib);
	/* without the MIG symbols: no MIG facts, everything else */
	d = device(x, "0000:18:00.0");
	assert_string_equal(str(d, "backend"), "nvidia");
	assert_null(prop(d, "mig_mode"));
	assert_null(prop(d, "mig_profiles"));
	assert_true(json_integer_value(json_object_get(d, "memory_bytes")) == 85520809984LL);
	json_decref(d);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_missing_library(void **state)
{
	struct test_xpud *x = test_xpud_start_nvml(test_fixture_new("hgx-h100"), NULL,
						   "/nonexistent/libnvidia-ml.so.1");
	json_t *doc = NULL, *b, *d;

	b = backend(x, "nvidia", &doc);
	assert_false(json_is_true(json_object_get(b, "available")));
	assert_non_null(strstr(str(b, "reason"), "libnvidia-ml.so.1"));
	json_decref(doc);
	/* the GPUs are still there, from sysfs */
	d = device(x, "0000:18:00.0");
	assert_string_equal(str(d, "backend"), "pci");
	json_decref(d);
	assert_true(test_xpud_log_contains(x, "Backend nvidia unavailable"));
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_init_hangs(void **state)
{
	char *root = test_fixture_new("real-h100-vm"), desc[4096];
	struct test_xpud *x;
	json_t *doc, *b, *d;

	/* a driver whose nvmlInit_v2 does not come back for 12 s */
	snprintf(desc, sizeof(desc), "%s/run/fake-nvml.json", root);
	doc = json_load_file(desc, 0, NULL);
	assert_non_null(doc);
	assert_int_equal(json_object_set_new(doc, "init_hang_ms", json_integer(12000)), 0);
	assert_int_equal(json_dump_file(doc, desc, JSON_COMPACT), 0);
	json_decref(doc);

	/* xpud gives up after its 10 s bound (had it waited the driver's 12, NVML would be up) */
	x = test_xpud_start_nvml(root, NULL, NULL);
	b = backend(x, "nvidia", &doc);
	assert_false(json_is_true(json_object_get(b, "available")));
	assert_string_equal(str(b, "reason"), "nvmlInit_v2 did not return within 10 s");
	json_decref(doc);
	/* and the GPU is served from sysfs */
	d = device(x, "0000:00:06.0");
	assert_string_equal(str(d, "backend"), "pci");
	json_decref(d);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static const char *health_of(const struct test_xpud *x, const char *id, char *buf, size_t size)
{
	json_t *d = device(x, id), *h = json_object_get(d, "health");

	snprintf(buf, size, "%s %s", str(h, "state"), str(h, "reason") ?: "");
	json_decref(d);
	return buf;
}

/* How many repeats of an XID of GPU @addr the log counted, once it is @want (10 s at most). */
static unsigned wait_repeats(const struct test_xpud *x, const char *addr, unsigned want)
{
	char needle[128], line[1024];
	unsigned total = 0;

	snprintf(needle, sizeof(needle), "The last XID of GPU %s in the kernel log repeated ", addr);
	for (int i = 0; i < 200 && total != want; i++) {
		FILE *f = fopen(x->log, "re");

		total = 0;
		while (f && fgets(line, sizeof(line), f)) {
			const char *p = strstr(line, needle);

			total += p ? (unsigned)strtoul(p + strlen(needle), NULL, 10) : 0;
		}
		if (f)
			fclose(f);
		if (total != want)
			usleep(50 * 1000);
	}
	return total;
}

static void test_xid_events(void **state)
{
	char *root = test_fixture_new("hgx-h100"), conf[4096], buf[512];
	const char *args[] = { "--config", conf, NULL };
	struct test_stream *s;
	struct test_xpud *x;
	json_t *doc = NULL;
	long long ms;

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	{
		/* probe often: a probe that answers must not undo what an event said */
		FILE *f = fopen(conf, "we");

		assert_non_null(f);
		fputs("health-interval: 100ms\nnvidia-xid-actions: 43:reset-gpu\n", f);
		fclose(f);
	}
	x = test_xpud_start_nvml(root, args, NULL);
	s = test_stream_open(x->socket);
	assert_true(test_stream_wait(s, (const char *const[]){ "\"subscribed\"", NULL }, 10000) >= 0);

	/* XIDs come from the kernel log: an application's error leaves the GPU healthy */
	test_kmsg_inject(x->root, "xid 0000:18:00.0 13\n");
	/* a GPU that fell off the bus is unhealthy, with the XID and what it needs */
	test_kmsg_inject(x->root, "xid 0000:2a:00.0 79\n");
	ms = test_stream_wait(s, (const char *const[]){ "\"health-changed\"",
						     "\"device_id\":\"0000:2a:00.0\"",
						     "XID 79 (GPU has fallen off the bus): reset-gpu",
						     NULL },
			 10000);
	assert_true(ms >= 0);
	print_message("XID 79 to health-changed: %lld ms\n", ms);
	assert_string_equal(health_of(x, "0000:18:00.0", buf, sizeof(buf)), "healthy ");
	assert_true(test_xpud_log_contains(x, "XID 13 (graphics engine exception): app-error"));

	/* the old spelling of nvidia: {xid-actions: } works, with a warning naming the new one */
	assert_true(test_xpud_log_contains(x, "xpud.yaml:line 2: 'nvidia-xid-actions' is deprecated; "
					      "write it as nvidia: {xid-actions: ...}"));
	/* the configuration's override: XID 43 now needs a reset */
	test_kmsg_inject(x->root, "xid 0000:3a:00.0 43\n");
	assert_true(test_stream_wait(s, (const char *const[]){ "\"device_id\":\"0000:3a:00.0\"",
							   "XID 43", NULL },
				10000) >= 0);

	/* a storm of application errors: handled once, counted, no health change */
	test_kmsg_inject(x->root, "storm 0000:5d:00.0 31 500\n");
	assert_int_equal(wait_repeats(x, "0000:5d:00.0", 499), 499);
	assert_int_equal(test_xpud_log_count(x, "GPU 0000:5d:00.0: XID 31"), 1);
	/* a double-bit ECC error: the driver reports it as XID 48 */
	test_kmsg_inject(x->root, "xid 0000:9a:00.0 48\n");
	assert_true(test_stream_wait(s, (const char *const[]){ "\"device_id\":\"0000:9a:00.0\"",
							   "XID 48", NULL },
				10000) >= 0);
	assert_string_equal(health_of(x, "0000:5d:00.0", buf, sizeof(buf)), "healthy ");

	/* probes every 100 ms answer fine, and still the GPU stays unhealthy */
	usleep(500 * 1000);
	assert_non_null(strstr(health_of(x, "0000:2a:00.0", buf, sizeof(buf)), "XID 79"));

	/* capacity: 7 whole GPUs on this node (one is MIG), 3 made unhealthy by events */
	assert_int_equal(test_request(x, "GET", "/v1/capacity", &doc), 200);
	{
		json_t *r;
		size_t i;

		json_array_foreach(json_object_get(doc, "resources"), i, r)
			if (strcmp(str(r, "resource"), "nvidia.com/gpu") == 0)
				assert_int_equal(json_integer_value(json_object_get(r,
										  "allocatable")),
						 4);
	}
	json_decref(doc);
	test_stream_close(s);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/*
 * An XID that names a MIG instance (its GPU and compute instance ids) makes that instance's
 * slice unhealthy, not the GPU nor its six other instances: capacity and allocation follow.
 */
static void test_xid_in_mig_instance(void **state)
{
	char *root = test_fixture_new("hgx-h100"), buf[512];
	struct test_stream *s;
	struct test_xpud *x;
	json_t *doc = NULL, *sl, *r;
	size_t i, unhealthy = 0, mig = 0;
	const char *bad_id = NULL;

	/* no NVML event FIFO: the kernel log alone says it */
	x = test_xpud_start_nvml(root, NULL, NULL);
	s = test_stream_open(x->socket);
	assert_true(test_stream_wait(s, (const char *const[]){ "\"subscribed\"", NULL }, 10000) >= 0);

	/* the third instance of the MIG GPU: GPU instance 3, compute instance 0 */
	test_kmsg_inject(x->root, "xid 0000:db:00.0 95 3 0\n");
	assert_true(test_stream_wait(s, (const char *const[]){ "\"device-changed\"",
							   "\"device_id\":\"0000:db:00.0\"", NULL },
				10000) >= 0);
	assert_string_equal(health_of(x, "0000:db:00.0", buf, sizeof(buf)), "healthy ");
	assert_true(test_xpud_log_contains(x, "MIG device MIG-"));

	assert_int_equal(test_request(x, "GET", "/v1/slices", &doc), 200);
	json_array_foreach(json_object_get(doc, "slices"), i, sl) {
		if (strcmp(str(sl, "device_id"), "0000:db:00.0") != 0)
			continue;
		mig++;
		if (strcmp(str(sl, "health"), "unhealthy") == 0) {
			unhealthy++;
			bad_id = str(sl, "id");
			assert_non_null(strstr(str(sl, "health_reason"), "XID 95"));
			assert_non_null(strstr(str(sl, "health_reason"), "GPU instance 3"));
		}
	}
	assert_int_equal(mig, 7);
	assert_int_equal(unhealthy, 1);
	assert_int_equal(strncmp(bad_id, "MIG-", 4), 0);

	json_t *cap = NULL;
	assert_int_equal(test_request(x, "GET", "/v1/capacity", &cap), 200);
	json_array_foreach(json_object_get(cap, "resources"), i, r)
		if (strcmp(str(r, "name"), "nvidia.com/mig-1g.10gb") == 0) {
			assert_int_equal(json_integer_value(json_object_get(r, "healthy")), 6);
			assert_int_equal(json_integer_value(json_object_get(r, "free")), 6);
		}
	json_decref(cap);
	/* seven instances cannot be granted any more; the bad one by name is refused */
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"nvidia.com/mig-1g.10gb\", \"count\": 7}",
					   NULL),
			 409);
	snprintf(buf, sizeof(buf), "{\"slices\": [\"%s\"]}", bad_id);
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations", buf, NULL), 409);
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"nvidia.com/mig-1g.10gb\", \"count\": 6}",
					   NULL),
			 201);
	json_decref(doc);
	test_stream_close(s);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hgx_inventory),
		cmocka_unit_test(test_faults_stay_on_their_gpu),
		cmocka_unit_test(test_one_lost_gpu_of_eight),
		cmocka_unit_test(test_old_library),
		cmocka_unit_test(test_missing_library),
		cmocka_unit_test(test_xid_events),
		cmocka_unit_test(test_xid_in_mig_instance),
		cmocka_unit_test(test_init_hangs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
