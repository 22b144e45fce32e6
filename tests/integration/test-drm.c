// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DRM backend's amdgpu part (agent/backends/drm.c, drm-amdgpu.c) through the real xpud, on
 * the AMD nodes: an MI300X node in SPX and in CPX/NPS4 (8 partitions per GPU), an MI210 pair
 * over XGMI. Each GPU as AMD's tools describe it, field by field; partitions as slices with
 * their own nodes; grants naming the GPU to ROCm; a mode change seen live, one requested that
 * waits for the GPU's allocations to end; RAS and wedged health; a driver's nonsense survived.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/macro.h"
#include "testutil.h"

#define GiB (1ULL << 30)
#define GPU0 "0000:0c:00.0"
#define GPU0_PATH "/devices/pci0000:09/0000:09:01.0/0000:0a:00.0/0000:0b:00.0/" GPU0

static const char *const mi300x[] = { "0000:0c:00.0", "0000:22:00.0", "0000:38:00.0",
				      "0000:5c:00.0", "0000:9f:00.0", "0000:af:00.0",
				      "0000:bf:00.0", "0000:df:00.0" };

static char *read_text(const char *root, const char *path)
{
	char full[4096], buf[256];
	size_t n;
	FILE *f;

	snprintf(full, sizeof(full), "%s/%s", root, path);
	f = fopen(full, "re");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strdup(buf);
}

static struct test_xpud *start(const char *node, const char *config)
{
	char *root = test_fixture_new(node), conf[4096];
	const char *args[] = { "--config", conf, NULL };
	FILE *f;

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	f = fopen(conf, "we");
	assert_non_null(f);
	fputs("health-interval: 100ms\nhealth-probation: 1s\n", f);
	fputs(config ?: "", f);
	assert_int_equal(fclose(f), 0);
	return test_xpud_start(root, args);
}

/* Each MI300X as AMD's tools describe it, and its grant. */
static void test_mi300x_spx(void **state)
{
	struct test_xpud *x = start("mi300x", NULL);
	json_t *doc = test_get(x, "devices", NULL), *d, *g = NULL;
	size_t i;

	(void)state;
	assert_int_equal(json_array_size(json_object_get(doc, "devices")), 8);
	json_array_foreach(json_object_get(doc, "devices"), i, d) {
		char card[48], render[48], uuid[48], peer[48];

		assert_string_equal(test_jstr(d, "id"), mi300x[i]);
		assert_string_equal(test_jstr(d, "backend"), "drm");
		assert_string_equal(test_jstr(d, "kind"), "gpu");
		assert_string_equal(test_jstr(d, "vendor"), "amd");
		assert_string_equal(test_jstr(d, "model"), "AMD Instinct MI300X");
		assert_string_equal(test_jstr(d, "driver"), "amdgpu");
		assert_string_equal(test_jstr(d, "resource"), "amd.com/gpu");
		assert_int_equal(json_integer_value(json_object_get(d, "memory_bytes")),
				 206158430208LL);
		assert_int_equal(json_integer_value(json_object_get(d, "numa_node")), i < 4 ? 0 : 1);
		snprintf(uuid, sizeof(uuid), "GPU-%016llx", 0x4a8e5f0c2d1e3b00ULL + i);
		assert_string_equal(test_jstr(d, "uuid"), uuid);
		snprintf(card, sizeof(card), "/dev/dri/card%zu", i + 1);
		snprintf(render, sizeof(render), "/dev/dri/renderD%zu", 128 + i);
		assert_true(test_has_node(d, card));
		assert_true(test_has_node(d, render));
		assert_true(test_has_node(d, "/dev/kfd"));
		assert_int_equal(json_array_size(json_object_get(d, "device_nodes")), 3);
		assert_string_equal(test_jprop(d, "gfx_target"), "gfx942");
		assert_string_equal(test_jprop(d, "compute_units"), "304");
		assert_string_equal(test_jprop(d, "amd_compute_partition"), "spx");
		assert_string_equal(test_jprop(d, "amd_memory_partition"), "nps1");
		assert_string_equal(test_jprop(d, "xgmi_hive_id"), "6642645737446195207");
		/* every other GPU of the hive is an XGMI peer, and only those */
		for (size_t j = 0; j < 8; j++) {
			snprintf(peer, sizeof(peer), "xgmi.%s", mi300x[j]);
			if (j == i)
				assert_null(test_jprop(d, peer));
			else
				assert_string_equal(test_jprop(d, peer), "1");
		}
		assert_string_equal(test_jstr(json_object_get(d, "health"), "state"), "healthy");
	}
	json_decref(doc);

	/* a grant: the GPU named to ROCm by its UUID, its nodes and /dev/kfd; the pair chosen
	 * XGMI-connected */
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"amd.com/gpu\", \"count\": 2, "
					   "\"connected\": true}",
					   &g),
			 201);
	assert_non_null(strstr(test_jstr(json_object_get(g, "env"), "ROCR_VISIBLE_DEVICES"),
			       "GPU-4a8e5f0c2d1e3b0"));
	assert_non_null(strchr(test_jstr(json_object_get(g, "env"), "ROCR_VISIBLE_DEVICES"), ','));
	assert_true(test_has_node(g, "/dev/kfd"));
	json_decref(g);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* CPX/NPS4: 8 partitions per GPU, each a slice with its own nodes and ROCm index. */
static void test_mi300x_cpx(void **state)
{
	struct test_xpud *x = start("mi300x-cpx", NULL);
	json_t *doc = test_get(x, "slices", NULL), *s, *d;
	size_t i;

	(void)state;
	assert_int_equal(json_array_size(json_object_get(doc, "slices")), 64);
	json_array_foreach(json_object_get(doc, "slices"), i, s) {
		size_t g = i / 8, k = i % 8;
		char id[64], card[48], render[48], idx[32];

		snprintf(id, sizeof(id), "%s/cpx-%zu", mi300x[g], k);
		assert_string_equal(test_jstr(s, "id"), id);
		assert_string_equal(test_jstr(s, "device_id"), mi300x[g]);
		assert_string_equal(test_jstr(s, "resource"), "amd.com/gpu");
		assert_int_equal(json_integer_value(json_object_get(s, "memory_bytes")),
				 206158430208LL / 4);
		assert_true(json_real_value(json_object_get(s, "compute_fraction")) == 0.125);
		snprintf(card, sizeof(card), "/dev/dri/card%zu", 1 + 8 * g + k);
		snprintf(render, sizeof(render), "/dev/dri/renderD%zu", 128 + 8 * g + k);
		assert_true(test_has_node(s, card));
		assert_true(test_has_node(s, render));
		assert_true(test_has_node(s, "/dev/kfd"));
		/* its own nodes only: not partition 0's */
		assert_int_equal(json_array_size(json_object_get(s, "device_nodes")), 3);
		snprintf(idx, sizeof(idx), "%zu", i);
		assert_string_equal(test_jstr(json_object_get(s, "env"), "ROCR_VISIBLE_DEVICES"), idx);
	}
	json_decref(doc);
	d = test_get(x, "devices", GPU0);
	assert_string_equal(test_jprop(d, "amd_compute_partition"), "cpx");
	assert_string_equal(test_jprop(d, "amd_memory_partition"), "nps4");
	assert_string_equal(test_jprop(d, "compute_units"), "304");
	json_decref(d);
	assert_int_equal(test_capacity(x, "amd.com/gpu", "total"), 64);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_mi210_xgmi(void **state)
{
	struct test_xpud *x = start("mi210-xgmi", NULL);
	json_t *a = test_get(x, "devices", "0000:43:00.0");
	json_t *b = test_get(x, "devices", "0000:63:00.0");

	(void)state;
	assert_string_equal(test_jstr(a, "model"), "AMD Instinct MI210");
	assert_int_equal(json_integer_value(json_object_get(a, "memory_bytes")), 64 * GiB);
	assert_string_equal(test_jprop(a, "gfx_target"), "gfx90a");
	assert_string_equal(test_jprop(a, "compute_units"), "104");
	assert_string_equal(test_jprop(a, "xgmi.0000:63:00.0"), "1");
	assert_string_equal(test_jprop(b, "xgmi.0000:43:00.0"), "1");
	/* not partitionable: no mode, offered whole */
	assert_null(test_jprop(a, "amd_compute_partition"));
	assert_string_equal(test_jstr(a, "uuid"), "GPU-7f3c0e1d2b4a5900");
	json_decref(a);
	json_decref(b);
	assert_int_equal(test_capacity(x, "amd.com/gpu", "total"), 2);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* The KFD node of partition @k of GPU0 in the CPX fixture (nodes 2..9). */
static void kfd_path(char *buf, size_t size, unsigned k)
{
	snprintf(buf, size, "sys/class/kfd/kfd/topology/nodes/%u/properties", 2 + k);
}

/* Plays the driver switching GPU0 of the CPX fixture to SPX: the mode file, one KFD node with
 * every XCC (the fixture's GPU0 in SPX), the partitions' nodes gone. */
static void driver_switch_to_spx(const char *root)
{
	char path[128], props[1024], full[4096];

	test_put_file(root, "sys/bus/pci/devices/" GPU0 "/current_compute_partition", "SPX\n");
	snprintf(props, sizeof(props),
		 "cpu_cores_count 0\nsimd_count 1216\nmem_banks_count 1\n"
		 "gfx_target_version 90402\nsimd_per_cu 4\nvendor_id 4098\ndevice_id 29857\n"
		 "location_id 3072\ndomain 0\ndrm_render_minor 128\n"
		 "hive_id 6642645737446195207\nunique_id %llu\nnum_xcc 8\n"
		 "local_mem_size 206158430208\n",
		 0x4a8e5f0c2d1e3b00ULL);
	kfd_path(path, sizeof(path), 0);
	test_put_file(root, path, props);
	for (unsigned k = 1; k < 8; k++) {
		kfd_path(path, sizeof(path), k);
		snprintf(full, sizeof(full), "%s/%s", root, path);
		assert_int_equal(unlink(full), 0);
	}
}

/* Waits (10 s at most) until GPU0 has @n slices. */
static void wait_gpu0_slices(const struct test_xpud *x, size_t n)
{
	for (int i = 0; i < 500; i++) {
		char **ids = test_device_slices(x, GPU0, NULL);
		size_t have = 0;

		while (ids && ids[have])
			have++;
		for (size_t j = 0; j < have; j++)
			free(ids[j]);
		free(ids);
		if (have == n)
			return;
		usleep(20 * 1000);
	}
	fail_msg(GPU0 " never had %zu slices", n);
}

/* A mode changed by someone else, seen through the DRM uevent: the slices follow at once. */
static void test_mode_change_uevent(void **state)
{
	struct test_xpud *x = start("mi300x-cpx", NULL);
	json_t *d;

	(void)state;
	wait_gpu0_slices(x, 8);
	driver_switch_to_spx(x->root);
	test_send_uevent(x, "change", GPU0_PATH "/drm/card1", "drm");
	wait_gpu0_slices(x, 1);
	d = test_get(x, "devices", GPU0);
	assert_string_equal(test_jprop(d, "amd_compute_partition"), "spx");
	json_decref(d);
	assert_int_equal(test_capacity(x, "amd.com/gpu", "total"), 57);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/*
 * A requested mode waits for the GPU's allocations to end, then is written to the driver; the
 * other GPUs' slices are served meanwhile.
 */
static void test_mode_request_waits(void **state)
{
	struct test_xpud *x = start("mi300x-cpx", NULL);
	json_t *g = NULL, *doc = NULL;
	char *mode, path[256];
	const char *id;

	(void)state;
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"slices\": [\"" GPU0 "/cpx-3\"]}", &g),
			 201);
	id = test_jstr(g, "id");
	assert_int_equal(test_request_body(x, "POST", "/v1/repartition",
					   "{\"device\": \"" GPU0 "\", \"layout\": "
					   "\"amd-partition: spx\"}",
					   &doc),
			 202);
	json_decref(doc);
	/* the GPU's free slices are withdrawn; the mode is untouched while one is in use */
	usleep(300 * 1000);
	mode = read_text(x->root, "sys/bus/pci/devices/" GPU0 "/current_compute_partition");
	assert_string_equal(mode, "CPX\n");
	free(mode);
	assert_int_equal(test_capacity(x, "amd.com/gpu", "free"), 56);

	snprintf(path, sizeof(path), "/v1/allocations/%s", id);
	assert_int_equal(test_request(x, "DELETE", path, NULL), 200);
	json_decref(g);
	/* released: xpud writes the mode; the driver (this test) makes it so */
	for (int i = 0; i < 500; i++) {
		mode = read_text(x->root, "sys/bus/pci/devices/" GPU0 "/current_compute_partition");
		if (strcmp(mode, "SPX") == 0 || strcmp(mode, "SPX\n") == 0)
			break;
		free(mode);
		mode = NULL;
		usleep(20 * 1000);
	}
	assert_non_null(mode);
	free(mode);
	driver_switch_to_spx(x->root);
	test_send_uevent(x, "change", GPU0_PATH "/drm/card1", "drm");
	test_wait_settled(x, GPU0, "amd-partition=spx");
	wait_gpu0_slices(x, 1);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/*
 * libdrm_amdgpu (the fake, under its real soname) through the render node: its memory figures
 * and marketing name win over sysfs; a node the driver refuses falls back to sysfs, with a
 * warning naming the device.
 */
static void test_amdgpu_library(void **state)
{
	char *root = test_fixture_new("mi300x"), lib[4096], answers[4096];
	struct test_xpud *x;
	json_t *d;
	FILE *f;

	(void)state;
	snprintf(lib, sizeof(lib), "%s/libdrm_amdgpu.so.1", test_env("XPU_FAKE_NVML_DIR"));
	snprintf(answers, sizeof(answers), "%s/run/fake-amdgpu.json", root);
	f = fopen(answers, "we");
	assert_non_null(f);
	fputs("{\"renderD128\": {\"vram_total\": 206141652992, \"vram_used\": 5368709120, "
	      "\"vis_vram_total\": 206141652992, \"marketing_name\": \"AMD Instinct MI300X "
	      "OAM\"},\n \"renderD129\": {\"fail\": \"init\"}}\n",
	      f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(setenv("XPU_AMDGPU_LIBRARY", lib, 1), 0);
	assert_int_equal(setenv("XPU_FAKE_AMDGPU", answers, 1), 0);
	x = test_xpud_start(root, NULL);
	assert_int_equal(unsetenv("XPU_AMDGPU_LIBRARY"), 0);
	assert_int_equal(unsetenv("XPU_FAKE_AMDGPU"), 0);

	d = test_get(x, "devices", GPU0);
	assert_string_equal(test_jstr(d, "model"), "AMD Instinct MI300X OAM");
	assert_int_equal(json_integer_value(json_object_get(d, "memory_bytes")), 206141652992LL);
	assert_string_equal(test_jprop(d, "vram_used_bytes"), "5368709120");
	json_decref(d);
	d = test_get(x, "devices", "0000:22:00.0");
	assert_string_equal(test_jstr(d, "model"), "AMD Instinct MI300X");
	assert_int_equal(json_integer_value(json_object_get(d, "memory_bytes")), 206158430208LL);
	assert_string_equal(test_jprop(d, "vram_used_bytes"), "4294967296");
	json_decref(d);
	assert_true(test_xpud_log_contains(x, "0000:22:00.0: amdgpu_device_initialize on "
					      "/dev/dri/renderD129 failed"));
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* Uncorrectable RAS errors make the GPU unhealthy, from the health probes; correctable ones
 * do not. */
static void test_ras(void **state)
{
	struct test_xpud *x = start("mi300x", NULL);
	json_t *h;

	(void)state;
	test_put_file(x->root, "sys/bus/pci/devices/0000:22:00.0/ras/gfx_err_count", "ue: 0\nce: 9\n");
	test_put_file(x->root, "sys/bus/pci/devices/" GPU0 "/ras/umc_err_count", "ue: 2\nce: 0\n");
	h = test_wait_health(x, GPU0, "unhealthy");
	assert_string_equal(test_jstr(h, "reason"), "2 uncorrectable errors in the umc block (RAS)");
	json_decref(h);
	json_decref(test_wait_health(x, "0000:22:00.0", "healthy"));
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* A wedged GPU (the DRM uevent's WEDGED=) is unhealthy until its driver is rebound. */
static void test_wedged(void **state)
{
	struct test_xpud *x = start("mi300x", NULL);
	json_t *h;

	(void)state;
	test_send_uevent_with(x, "change", GPU0_PATH "/drm/card1", "drm", "WEDGED=rebind");
	h = test_wait_health(x, GPU0, "unhealthy");
	assert_string_equal(test_jstr(h, "reason"),
			    "the driver reports the device wedged (recovery: rebind)");
	json_decref(h);
	/* another GPU's uevent without WEDGED= changes nothing */
	test_send_uevent(x, "change", "/devices/pci0000:1f/0000:1f:01.0/0000:20:00.0/"
				      "0000:21:00.0/0000:22:00.0/drm/card2",
			 "drm");
	json_decref(test_wait_health(x, "0000:22:00.0", "healthy"));
	assert_true(test_xpud_log_contains(x, "wedged (recovery: rebind)"));
	test_send_uevent(x, "unbind", GPU0_PATH, "pci");
	test_send_uevent(x, "bind", GPU0_PATH, "pci");
	json_decref(test_wait_health(x, GPU0, "healthy"));
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* What a driver says that makes no sense: a warning naming the device and file, the rest of
 * the record, no crash. */
static void test_nonsense(void **state)
{
	char *root = test_fixture_new("mi300x-cpx"), full[4096];
	struct test_xpud *x;
	json_t *d;

	(void)state;
	test_put_file(root, "sys/bus/pci/devices/" GPU0 "/current_compute_partition", "OPX\n");
	test_put_file(root, "sys/bus/pci/devices/0000:22:00.0/mem_info_vram_total", "0\n");
	test_put_file(root, "sys/bus/pci/devices/0000:38:00.0/unique_id", "not hex\n");
	test_put_file(root, "sys/bus/pci/devices/0000:5c:00.0/ras/umc_err_count", "Query currently "
									  "inaccessible\n");
	/* a partition whose render node has no DRM device */
	snprintf(full, sizeof(full), "%s/sys/class/drm/renderD153", root);
	assert_int_equal(unlink(full), 0);
	x = test_xpud_start(root, NULL);
	d = test_get(x, "devices", GPU0);
	assert_string_equal(test_jprop(d, "amd_compute_partition"), "unknown");
	assert_string_equal(test_jstr(d, "model"), "AMD Instinct MI300X");
	json_decref(d);
	wait_gpu0_slices(x, 1);
	assert_true(test_xpud_log_contains(x, "current_compute_partition reads 'OPX'"));
	d = test_get(x, "devices", "0000:22:00.0");
	assert_true(json_is_null(json_object_get(d, "memory_bytes")) ||
		    json_integer_value(json_object_get(d, "memory_bytes")) == 0);
	json_decref(d);
	assert_true(test_xpud_log_contains(x, "0000:22:00.0: the driver reports 0 bytes of VRAM"));
	d = test_get(x, "devices", "0000:38:00.0");
	assert_true(json_is_null(json_object_get(d, "uuid")) || test_jstr(d, "uuid"));
	json_decref(d);
	assert_true(test_xpud_log_contains(x, "0000:38:00.0: unique_id reads 'not hex'"));
	d = test_get(x, "devices", "0000:5c:00.0");
	assert_string_equal(test_jstr(json_object_get(d, "health"), "state"), "healthy");
	json_decref(d);
	assert_true(test_xpud_log_contains(x, "names render node 153, which has no DRM device"));
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_simulate_list(void **state)
{
	static const char *const names[] = { "mi300x", "mi300x-cpx", "mi210-xgmi" };
	char *out = test_simulate_list_output();

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		if (!strstr(out, names[i]))
			fail_msg("xpud --simulate list lacks %s:\n%s", names[i], out);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mi300x_spx),	   cmocka_unit_test(test_mi300x_cpx),
		cmocka_unit_test(test_mi210_xgmi),	   cmocka_unit_test(test_amdgpu_library),
		cmocka_unit_test(test_mode_change_uevent),
		cmocka_unit_test(test_mode_request_waits), cmocka_unit_test(test_ras),
		cmocka_unit_test(test_wedged),		   cmocka_unit_test(test_nonsense),
		cmocka_unit_test(test_simulate_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
