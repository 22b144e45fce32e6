// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The real xpud on each fixture node, queried with the real xpuctl: what an operator sees,
 * field by field, and the same document through the raw API.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "shared/macro.h"
#include "sim/fixture.h"
#include "testutil.h"

struct expect {
	const char *id;
	const char *kind;
	const char *vendor;
	const char *model;
	const char *vendor_id;
	const char *device_id;
	const char *driver; /* NULL: null */
	int numa;	    /* -1: null */
	long long memory;   /* 0: null */
	const char *resource;
	const char *health;
	const char *reason_part; /* substring of the health reason, or NULL */
	const char *nodes[6];
	const char *backend; /* NULL: "pci" */
};

static json_t *devices_via_xpuctl(const struct test_xpud *x)
{
	const char *args[] = { "-o", "json", "devices", NULL };
	json_error_t jerr;
	char *out = NULL;
	json_t *doc;

	assert_int_equal(test_xpuctl(x->socket, args, &out), 0);
	doc = json_loads(out, 0, &jerr);
	if (!doc)
		fail_msg("xpuctl -o json devices printed invalid JSON (%s):\n%s", jerr.text, out);
	free(out);
	return doc;
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static json_t *find_device(json_t *devices, const char *id)
{
	size_t i;
	json_t *d;

	json_array_foreach(devices, i, d)
		if (strcmp(str(d, "id"), id) == 0)
			return d;
	return NULL;
}

static void check_device(json_t *devices, const struct expect *e)
{
	json_t *d = find_device(devices, e->id), *pci, *nodes, *health;

	if (!d)
		fail_msg("device %s missing", e->id);
	assert_string_equal(str(d, "kind"), e->kind);
	assert_string_equal(str(d, "vendor"), e->vendor);
	assert_string_equal(str(d, "model"), e->model);
	assert_string_equal(str(d, "backend"), e->backend ?: "pci");
	assert_string_equal(str(d, "resource"), e->resource);
	pci = json_object_get(d, "pci");
	assert_string_equal(str(pci, "address"), e->id);
	assert_string_equal(str(pci, "vendor_id"), e->vendor_id);
	assert_string_equal(str(pci, "device_id"), e->device_id);
	if (e->driver)
		assert_string_equal(str(d, "driver"), e->driver);
	else
		assert_true(json_is_null(json_object_get(d, "driver")));
	if (e->numa >= 0)
		assert_int_equal(json_integer_value(json_object_get(d, "numa_node")), e->numa);
	else
		assert_true(json_is_null(json_object_get(d, "numa_node")));
	if (e->memory)
		assert_true(json_integer_value(json_object_get(d, "memory_bytes")) == e->memory);
	else
		assert_true(json_is_null(json_object_get(d, "memory_bytes")));
	health = json_object_get(d, "health");
	assert_string_equal(str(health, "state"), e->health);
	if (e->reason_part) {
		const char *reason = str(health, "reason");

		assert_non_null(reason);
		if (!strstr(reason, e->reason_part))
			fail_msg("%s: reason '%s' lacks '%s'", e->id, reason, e->reason_part);
	} else {
		assert_true(json_is_null(json_object_get(health, "reason")));
	}
	nodes = json_object_get(d, "device_nodes");
	for (size_t i = 0; e->nodes[i]; i++) {
		json_t *n = json_array_get(nodes, i);

		if (!n || strcmp(json_string_value(n), e->nodes[i]) != 0)
			fail_msg("%s: device_nodes[%zu] is %s, expected %s", e->id, i,
				 n ? json_string_value(n) : "(none)", e->nodes[i]);
	}
}

static void check_capacity(const struct test_xpud *x, const char *resource, int total,
			   int healthy)
{
	json_t *doc = NULL, *r;
	size_t i;

	assert_int_equal(test_request(x, "GET", "/v1/capacity", &doc), 200);
	json_array_foreach(json_object_get(doc, "resources"), i, r) {
		if (strcmp(str(r, "resource"), resource) != 0)
			continue;
		assert_int_equal(json_integer_value(json_object_get(r, "total")), total);
		assert_int_equal(json_integer_value(json_object_get(r, "healthy")), healthy);
		assert_int_equal(json_integer_value(json_object_get(r, "allocatable")), healthy);
		json_decref(doc);
		return;
	}
	fail_msg("resource %s missing from /v1/capacity", resource);
}

/* Starts xpud on @node, checks the xpuctl document equals the API's, returns both. */
static struct test_xpud *start_and_list(const char *node, json_t **ret_devices, size_t expect_n)
{
	struct test_xpud *x = test_xpud_start(test_fixture_new(node), NULL);
	json_t *via_ctl = devices_via_xpuctl(x), *via_api = NULL;

	assert_int_equal(test_request(x, "GET", "/v1/devices", &via_api), 200);
	assert_true(json_equal(via_ctl, via_api));
	if (json_array_size(json_object_get(via_api, "devices")) != expect_n)
		fail_msg("%s: %zu devices, expected %zu", node,
			 json_array_size(json_object_get(via_api, "devices")), expect_n);
	json_decref(via_ctl);
	*ret_devices = via_api;
	return x;
}

static void test_hgx(void **state)
{
	static const char *const ids[] = { "0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0",
					   "0000:5d:00.0", "0000:9a:00.0", "0000:ab:00.0",
					   "0000:ba:00.0", "0000:db:00.0" };
	json_t *doc, *devices;
	struct test_xpud *x = start_and_list("hgx-h100", &doc, 8);

	devices = json_object_get(doc, "devices");
	for (size_t i = 0; i < 8; i++) {
		char node[32];
		struct expect e = {
			ids[i], "gpu", "nvidia", "NVIDIA H100 80GB HBM3", "0x10de", "0x2330",
			"nvidia", i < 4 ? 0 : 1, 0, "nvidia.com/gpu", "healthy", NULL,
			{ node, "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools" },
		};
		json_t *d;

		snprintf(node, sizeof(node), "/dev/nvidia%zu", i);
		check_device(devices, &e);
		d = find_device(devices, ids[i]);
		assert_string_equal(str(d, "cpu_list"), i < 4 ? "0-55,112-167" : "56-111,168-223");
		assert_true(strncmp(str(d, "uuid"), "GPU-", 4) == 0);
		assert_string_equal(str(json_object_get(json_object_get(d, "pci"), "link"),
					"speed"),
				    "32.0 GT/s");
	}
	check_capacity(x, "nvidia.com/gpu", 8, 8);
	json_decref(doc);

	/* The slice of a GPU names it for the container runtime. */
	assert_int_equal(test_request(x, "GET", "/v1/slices", &doc), 200);
	assert_int_equal(json_array_size(json_object_get(doc, "slices")), 8);
	{
		json_t *s = json_array_get(json_object_get(doc, "slices"), 0);
		const char *vis = str(json_object_get(s, "env"), "NVIDIA_VISIBLE_DEVICES");

		assert_non_null(vis);
		assert_true(strncmp(vis, "GPU-", 4) == 0);
		assert_true(json_real_value(json_object_get(s, "compute_fraction")) == 1.0);
	}
	json_decref(doc);

	assert_int_equal(test_request(x, "GET", "/v1/health", &doc), 200);
	assert_string_equal(str(doc, "status"), "ok");
	json_decref(doc);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_mi300x(void **state)
{
	json_t *doc, *devices, *d;
	struct test_xpud *x = start_and_list("mi300x", &doc, 8);
	size_t i;

	devices = json_object_get(doc, "devices");
	json_array_foreach(devices, i, d) {
		struct expect e = {
			str(d, "id"), "gpu", "amd", "AMD Instinct MI300X", "0x1002", "0x74a1",
			"amdgpu", i < 4 ? 0 : 1, 206158430208LL, "amd.com/gpu", "healthy", NULL, {},
			"drm",
		};
		bool render = false;
		size_t j;
		json_t *n;

		check_device(devices, &e);
		json_array_foreach(json_object_get(d, "device_nodes"), j, n)
			render |= strncmp(json_string_value(n), "/dev/dri/renderD", 16) == 0;
		assert_true(render);
	}
	check_capacity(x, "amd.com/gpu", 8, 8);
	json_decref(doc);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_mixed(void **state)
{
	json_t *doc, *devices, *d;
	struct test_xpud *x = start_and_list("mixed", &doc, 7);
	size_t i;
	int seen_fpga = 0, seen_coral = 0, seen_gaudi = 0, seen_npu = 0, seen_l4 = 0,
	    seen_flex = 0, seen_altera = 0;

	devices = json_object_get(doc, "devices");
	json_array_foreach(devices, i, d) {
		const char *model = str(d, "model");
		json_t *health = json_object_get(d, "health");

		if (strstr(model, "Alveo")) {
			seen_fpga++;
			assert_string_equal(str(d, "kind"), "fpga");
			assert_string_equal(str(d, "resource"), "xilinx.com/fpga");
			/* the management and user functions are one device */
			assert_non_null(
				str(json_object_get(d, "properties"), "pci_functions"));
		} else if (strstr(model, "Coral")) {
			seen_coral++;
			assert_string_equal(str(d, "kind"), "accel");
			assert_string_equal(json_string_value(json_array_get(
						    json_object_get(d, "device_nodes"), 0)),
					    "/dev/apex_0");
		} else if (strstr(model, "Gaudi")) {
			seen_gaudi++;
			assert_string_equal(str(d, "kind"), "accel");
			assert_string_equal(str(d, "resource"), "habana.ai/gaudi");
			assert_string_equal(json_string_value(json_array_get(
						    json_object_get(d, "device_nodes"), 0)),
					    "/dev/accel/accel0");
		} else if (strstr(model, "NPU")) {
			seen_npu++;
			assert_string_equal(str(d, "kind"), "accel");
		} else if (strstr(model, "L4")) {
			seen_l4++;
			assert_string_equal(str(health, "state"), "unhealthy");
			assert_string_equal(str(health, "reason"), "no kernel driver bound");
		} else if (strcmp(str(d, "vendor"), "altera") == 0) {
			/* an FPGA with no driver: listed, unhealthy, not allocatable */
			seen_altera++;
			assert_string_equal(str(d, "kind"), "fpga");
			assert_string_equal(str(d, "resource"), "intel.com/fpga");
			assert_string_equal(str(health, "reason"), "no kernel driver bound");
		} else if (strstr(model, "Flex")) {
			seen_flex++;
			assert_string_equal(str(d, "kind"), "gpu");
			assert_string_equal(str(d, "resource"), "gpu.intel.com/i915");
		}
	}
	assert_int_equal(seen_fpga, 1);
	assert_int_equal(seen_coral, 1);
	assert_int_equal(seen_gaudi, 1);
	assert_int_equal(seen_npu, 1);
	assert_int_equal(seen_l4, 1);
	assert_int_equal(seen_flex, 1);
	assert_int_equal(seen_altera, 1);
	json_decref(doc);

	assert_int_equal(test_request(x, "GET", "/v1/health", &doc), 200);
	assert_string_equal(str(doc, "status"), "degraded");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "devices"),
							    "unhealthy")),
			 2);
	json_decref(doc);
	check_capacity(x, "nvidia.com/gpu", 1, 0);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_real_capture(void **state)
{
	json_t *doc, *d;
	struct test_xpud *x = start_and_list("real-h100-vm", &doc, 1);
	const struct expect e = {
		"0000:00:06.0", "gpu", "nvidia", "NVIDIA H100 80GB HBM3", "0x10de", "0x2330",
		"nvidia", -1, 0, "nvidia.com/gpu", "healthy", NULL,
		{ "/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools" },
	};

	check_device(json_object_get(doc, "devices"), &e);
	d = find_device(json_object_get(doc, "devices"), e.id);
	assert_string_equal(str(d, "uuid"), "GPU-bd0b65c0-84e9-5fae-cb03-2fffa2470588");
	assert_string_equal(str(d, "cpu_list"), "0-15");
	json_decref(doc);

	/* One device by id, by short address and by UUID. */
	assert_int_equal(test_request(x, "GET", "/v1/devices/0000:00:06.0", &doc), 200);
	assert_string_equal(str(doc, "id"), "0000:00:06.0");
	json_decref(doc);
	assert_int_equal(test_request(x, "GET", "/v1/devices/00:06.0", NULL), 200);
	assert_int_equal(
		test_request(x, "GET", "/v1/devices/GPU-bd0b65c0-84e9-5fae-cb03-2fffa2470588", NULL),
		200);
	assert_int_equal(test_request(x, "GET", "/v1/devices/0000:00:07.0", &doc), 404);
	assert_string_equal(str(doc, "error"), "not-found");
	json_decref(doc);

	assert_int_equal(test_request(x, "GET", "/v1/version", &doc), 200);
	assert_string_equal(str(doc, "api"), "v1");
	assert_string_equal(str(json_array_get(json_object_get(doc, "backends"), 0), "name"), "pci");
	json_decref(doc);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* Three GPUs in two PCI domains, two of them at the same bus, device and function. */
#define DOMAINS_GPU(address, minor)                                                                \
	"{\"address\": \"" address "\", \"nvidia\": {\"minor\": " #minor ", \"uuid\": "            \
	"\"GPU-00000000-0000-0000-0000-00000000000" #minor "\"}}"
static const char domains_json[] =
	"{\"name\": \"domains\", \"numa_nodes\": [{\"node\": 0, \"cpus\": \"0-3\"}], "
	"\"nvidia_driver\": {\"version\": \"580.159.04\"}, \"defaults\": {\"vendor\": \"0x10de\", "
	"\"device\": \"0x2330\", \"subsystem_vendor\": \"0x10de\", \"subsystem_device\": "
	"\"0x16c1\", \"class\": \"0x030200\", \"revision\": \"0xa1\", \"driver\": \"nvidia\", "
	"\"numa_node\": 0, \"nvidia\": {\"model\": \"NVIDIA H100 80GB HBM3\"}}, \"pci\": ["
	DOMAINS_GPU("0001:18:00.0", 0) ", " DOMAINS_GPU("0002:18:00.0", 1) ", "
	DOMAINS_GPU("0001:2a:00.0", 2) "]}";

/* GET /v1/devices/{id} with what an operator types: short addresses in any domain, any case. */
static void test_device_lookup(void **state)
{
	static const struct {
		const char *key, *id; /* id NULL: 404 */
	} found[] = {
		{ "0001:18:00.0", "0001:18:00.0" },
		{ "2a:00.0", "0001:2a:00.0" }, /* no 0000:2a:00.0: the one domain that has it */
		{ "2A:00.0", "0001:2a:00.0" },
		{ "0001:2A:00.0", "0001:2a:00.0" },
		{ "GPU-00000000-0000-0000-0000-000000000001", "0002:18:00.0" },
		{ "gpu-00000000-0000-0000-0000-000000000001", NULL }, /* UUIDs keep their case */
		{ "19:00.0", NULL },
		{ "8:00.0", NULL },
	};
	char *root = NULL, *err = NULL, *out = NULL;
	struct test_xpud *x;
	json_t *doc, *candidates;
	char path[128];

	if (fixture_build_temp(domains_json, &root, &err) < 0)
		fail_msg("building the fixture: %s", err ?: "?");
	x = test_xpud_start(root, NULL);

	for (size_t i = 0; i < ELEMENTSOF(found); i++) {
		snprintf(path, sizeof(path), "/v1/devices/%s", found[i].key);
		assert_int_equal(test_request(x, "GET", path, &doc), found[i].id ? 200 : 404);
		if (found[i].id)
			assert_string_equal(str(doc, "id"), found[i].id);
		else
			assert_string_equal(str(doc, "error"), "not-found");
		json_decref(doc);
	}

	/* a short address that two domains have is refused, naming both */
	assert_int_equal(test_request(x, "GET", "/v1/devices/18:00.0", &doc), 400);
	assert_string_equal(str(doc, "error"), "ambiguous");
	assert_string_equal(str(doc, "message"), "'18:00.0' matches 2 devices; give the full "
						  "address: 0001:18:00.0 0002:18:00.0");
	candidates = json_object_get(doc, "candidates");
	assert_int_equal(json_array_size(candidates), 2);
	assert_string_equal(json_string_value(json_array_get(candidates, 0)), "0001:18:00.0");
	assert_string_equal(json_string_value(json_array_get(candidates, 1)), "0002:18:00.0");
	json_decref(doc);

	/* xpuctl: the daemon's answer, with a usage error (1) for the ambiguous address */
	assert_int_equal(test_xpuctl(x->socket, (const char *[]){ "device", "2a:00.0", NULL }, &out),
			 0);
	assert_non_null(strstr(out, "ID:             0001:2a:00.0\n"));
	free(out);
	assert_int_equal(test_xpuctl(x->socket, (const char *[]){ "device", "18:00.0", NULL }, NULL),
			 1);
	assert_int_equal(test_xpuctl(x->socket, (const char *[]){ "device", "19:00.0", NULL }, NULL),
			 2);

	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
	free(err);
}

static void test_faults(void **state)
{
	static const char *const warned[] = {
		"0000:02:00.0/numa_node: Invalid argument",
		"0000:03:00.0/class: No data available",
		"0000:04:00.0/vendor: No such file or directory",
		"0000:06:00.0/class: Invalid argument",
		"0000:07:00.0/local_cpulist: Invalid argument",
		"0000:08:00.0/uevent: File too large",
	};
	json_t *doc, *devices;
	struct test_xpud *x = start_and_list("faults", &doc, 5);

	/* every broken file is named in the log, and the survivors are served */
	for (size_t i = 0; i < ELEMENTSOF(warned); i++)
		if (!test_xpud_log_contains(x, warned[i]))
			fail_msg("no warning '%s' in the log", warned[i]);
	devices = json_object_get(doc, "devices");
	assert_true(json_is_null(json_object_get(find_device(devices, "0000:02:00.0"),
						 "numa_node")));
	assert_true(json_is_null(json_object_get(find_device(devices, "0000:07:00.0"),
						 "cpu_list")));
	assert_true(json_is_null(json_object_get(
		json_object_get(json_object_get(find_device(devices, "0000:05:00.0"), "pci"),
				"link"),
		"speed")));
	/* the uevent that was too large fell back to the single-value files */
	assert_string_equal(str(find_device(devices, "0000:08:00.0"), "model"),
			    "NVIDIA H100 80GB HBM3");
	check_capacity(x, "nvidia.com/gpu", 5, 5);
	json_decref(doc);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hgx),
		cmocka_unit_test(test_mi300x),
		cmocka_unit_test(test_mixed),
		cmocka_unit_test(test_real_capture),
		cmocka_unit_test(test_device_lookup),
		cmocka_unit_test(test_faults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
