// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DRM backend's Intel part (agent/backends/drm-intel.c, intel-rules.c) through the real
 * xpud, on the Intel nodes: four Data Center GPU Max 1550 on xe (two tiles of 64 GiB each), and
 * Max GPUs on i915 with an integrated GPU. Each GPU field by field; a grant as Intel's plugin
 * makes it; the tiles offered as slices selected by ZE_AFFINITY_MASK, and back to whole GPUs; a
 * driver's nonsense survived.
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
#define TILES_POLICY "partitions:\n  - match: {vendor: intel}\n    intel-tiles: tiles\n"
#define WHOLE_POLICY "partitions:\n  - match: {vendor: intel}\n    intel-tiles: whole\n"

static const char *const max[] = { "0000:29:00.0", "0000:3a:00.0", "0000:9a:00.0",
				   "0000:ca:00.0" };

static json_int_t num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static char *config_path(const char *root)
{
	char *conf;

	assert_true(asprintf(&conf, "%s/xpud.yaml", root) > 0);
	return conf;
}

static struct test_xpud *start_root(char *root, const char *config)
{
	char *conf = config_path(root);
	const char *args[] = { "--config", conf, NULL };
	struct test_xpud *x;
	char text[1024];

	snprintf(text, sizeof(text), "health-interval: 100ms\n%s", config ?: "");
	write_text(conf, text);
	x = test_xpud_start(root, args);
	free(conf);
	return x;
}

static struct test_xpud *start(const char *node, const char *config)
{
	return start_root(test_fixture_new(node), config);
}

static void set_policy(struct test_xpud *x, const char *policy)
{
	char *conf = config_path(x->root);
	char text[1024];

	snprintf(text, sizeof(text), "health-interval: 100ms\n%s", policy);
	write_text(conf, text);
	free(conf);
	assert_int_equal(test_request_body(x, "POST", "/v1/reload", NULL, NULL), 200);
}

/* The slice @id of GET /v1/slices (a new reference); fails the test without it. */
static json_t *get_slice(const struct test_xpud *x, const char *id)
{
	json_t *doc = test_get(x, "slices", NULL), *s, *found = NULL;
	size_t i;

	json_array_foreach(json_object_get(doc, "slices"), i, s)
		if (strcmp(test_jstr(s, "id"), id) == 0)
			found = json_incref(s);
	json_decref(doc);
	if (!found)
		fail_msg("no slice %s", id);
	return found;
}

static size_t count_slices(const struct test_xpud *x, const char *device)
{
	char **ids = test_device_slices(x, device, NULL);
	size_t n = 0;

	while (ids && ids[n])
		free(ids[n++]);
	free(ids);
	return n;
}

/* Each Max 1550 as Intel's tools and plugin describe it, and its grant. */
static void test_max_xe(void **state)
{
	struct test_xpud *x = start("intel-max", NULL);
	json_t *doc = test_get(x, "devices", NULL), *d, *g = NULL;
	size_t i;

	(void)state;
	assert_int_equal(json_array_size(json_object_get(doc, "devices")), 4);
	json_array_foreach(json_object_get(doc, "devices"), i, d) {
		char card[48], render[48];

		assert_string_equal(test_jstr(d, "id"), max[i]);
		assert_string_equal(test_jstr(d, "backend"), "drm");
		assert_string_equal(test_jstr(d, "kind"), "gpu");
		assert_string_equal(test_jstr(d, "vendor"), "intel");
		assert_string_equal(test_jstr(d, "model"), "Intel Data Center GPU Max 1550");
		assert_string_equal(test_jstr(d, "driver"), "xe");
		assert_string_equal(test_jstr(d, "resource"), "gpu.intel.com/xe");
		assert_int_equal(num(d, "memory_bytes"), 128 * GiB);
		assert_int_equal(num(d, "numa_node"), i < 2 ? 0 : 1);
		assert_string_equal(test_jprop(d, "tiles"), "2");
		assert_string_equal(test_jprop(d, "tile0_memory_bytes"), "68719476736");
		assert_string_equal(test_jprop(d, "tile1_memory_bytes"), "68719476736");
		snprintf(card, sizeof(card), "/dev/dri/card%zu", i);
		snprintf(render, sizeof(render), "/dev/dri/renderD%zu", 128 + i);
		assert_true(test_has_node(d, card));
		assert_true(test_has_node(d, render));
		assert_int_equal(json_array_size(json_object_get(d, "device_nodes")), 2);
		assert_string_equal(test_jstr(json_object_get(d, "health"), "state"), "healthy");
		/* whole by default: one slice, no tiles */
		assert_int_equal(count_slices(x, max[i]), 1);
	}
	json_decref(doc);
	assert_int_equal(test_capacity(x, "gpu.intel.com/xe", "total"), 4);

	/* a grant as Intel's plugin makes it: the GPU's card and render node, no environment */
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"slices\": [\"0000:3a:00.0\"]}", &g),
			 201);
	assert_true(test_has_node(g, "/dev/dri/card1"));
	assert_true(test_has_node(g, "/dev/dri/renderD129"));
	assert_int_equal(json_array_size(json_object_get(g, "device_nodes")), 2);
	assert_null(test_jstr(json_object_get(g, "env"), "ZE_AFFINITY_MASK"));
	json_decref(g);
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"gpu.intel.com/xe\", \"count\": 2}", &g),
			 201);
	assert_int_equal(json_array_size(json_object_get(g, "device_nodes")), 4);
	json_decref(g);
	assert_int_equal(test_capacity(x, "gpu.intel.com/xe", "free"), 1);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* The policy's "intel-tiles: tiles": each tile a slice that Level Zero sees alone; then whole
 * GPUs again. */
static void test_tiles_offer(void **state)
{
	struct test_xpud *x = start("intel-max", TILES_POLICY);
	json_t *doc, *s, *g = NULL, *env;
	char path[256];
	size_t i;

	(void)state;
	for (i = 0; i < 4; i++)
		test_wait_settled(x, max[i], "intel-tiles=tiles");
	doc = test_get(x, "slices", NULL);
	assert_int_equal(json_array_size(json_object_get(doc, "slices")), 8);
	json_array_foreach(json_object_get(doc, "slices"), i, s) {
		size_t gpu = i / 2, k = i % 2;
		char id[64], card[48], render[48], mask[16];

		snprintf(id, sizeof(id), "%s/tile-%zu", max[gpu], k);
		assert_string_equal(test_jstr(s, "id"), id);
		assert_string_equal(test_jstr(s, "device_id"), max[gpu]);
		assert_string_equal(test_jstr(s, "resource"), "gpu.intel.com/xe");
		assert_int_equal(num(s, "memory_bytes"), 64 * GiB);
		assert_true(json_real_value(json_object_get(s, "compute_fraction")) == 0.5);
		snprintf(card, sizeof(card), "/dev/dri/card%zu", gpu);
		snprintf(render, sizeof(render), "/dev/dri/renderD%zu", 128 + gpu);
		assert_true(test_has_node(s, card));
		assert_true(test_has_node(s, render));
		assert_int_equal(json_array_size(json_object_get(s, "device_nodes")), 2);
		snprintf(mask, sizeof(mask), "0.%zu", k);
		assert_string_equal(test_jstr(json_object_get(s, "env"), "ZE_AFFINITY_MASK"), mask);
		assert_string_equal(test_jstr(json_object_get(s, "env"), "ZE_FLAT_DEVICE_HIERARCHY"),
				    "COMPOSITE");
	}
	json_decref(doc);
	assert_int_equal(test_capacity(x, "gpu.intel.com/xe", "total"), 8);

	/* one tile: the GPU's nodes, that tile selected */
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"slices\": [\"0000:9a:00.0/tile-1\"]}", &g),
			 201);
	env = json_object_get(g, "env");
	assert_string_equal(test_jstr(env, "ZE_AFFINITY_MASK"), "0.1");
	assert_string_equal(test_jstr(env, "ZE_FLAT_DEVICE_HIERARCHY"), "COMPOSITE");
	assert_true(test_has_node(g, "/dev/dri/card2"));
	assert_true(test_has_node(g, "/dev/dri/renderD130"));
	json_decref(g);
	/* both tiles of one GPU */
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"slices\": [\"0000:29:00.0/tile-0\", "
					   "\"0000:29:00.0/tile-1\"]}",
					   &g),
			 201);
	assert_string_equal(test_jstr(json_object_get(g, "env"), "ZE_AFFINITY_MASK"), "0.0,0.1");
	assert_int_equal(json_array_size(json_object_get(g, "device_nodes")), 2);
	json_decref(g);
	/* a tile of each of two GPUs: each GPU numbered as the grant orders them */
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"slices\": [\"0000:9a:00.0/tile-0\", "
					   "\"0000:ca:00.0/tile-1\"]}",
					   &g),
			 201);
	assert_string_equal(test_jstr(json_object_get(g, "env"), "ZE_AFFINITY_MASK"), "0.0,1.1");
	assert_int_equal(json_array_size(json_object_get(g, "device_nodes")), 4);
	snprintf(path, sizeof(path), "/v1/allocations/%s", test_jstr(g, "id"));
	assert_int_equal(test_request(x, "DELETE", path, NULL), 200);
	json_decref(g);

	/* back to whole GPUs: those without allocations at once */
	set_policy(x, WHOLE_POLICY);
	test_wait_settled(x, max[1], "intel-tiles=whole");
	test_wait_settled(x, max[3], "intel-tiles=whole");
	assert_int_equal(count_slices(x, max[1]), 1);
	s = get_slice(x, max[3]);
	assert_int_equal(num(s, "memory_bytes"), 128 * GiB);
	assert_null(test_jstr(json_object_get(s, "env"), "ZE_AFFINITY_MASK"));
	json_decref(s);
	/* the others keep their tiles while they are allocated */
	assert_int_equal(count_slices(x, max[0]), 2);
	assert_int_equal(count_slices(x, max[2]), 2);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* i915: tiles from gt/gt<K>, local memory from the card's lmem_total_bytes; an integrated GPU
 * with neither. */
static void test_i915(void **state)
{
	struct test_xpud *x = start("intel-max-i915", TILES_POLICY);
	json_t *d, *s;

	(void)state;
	d = test_get(x, "devices", "0000:29:00.0");
	assert_string_equal(test_jstr(d, "backend"), "drm");
	assert_string_equal(test_jstr(d, "model"), "Intel Data Center GPU Max 1550");
	assert_string_equal(test_jstr(d, "driver"), "i915");
	assert_string_equal(test_jstr(d, "resource"), "gpu.intel.com/i915");
	assert_int_equal(num(d, "memory_bytes"), 128 * GiB);
	assert_string_equal(test_jprop(d, "tiles"), "2");
	assert_string_equal(test_jprop(d, "tile1_memory_bytes"), "68719476736");
	assert_true(test_has_node(d, "/dev/dri/card1"));
	assert_true(test_has_node(d, "/dev/dri/renderD129"));
	json_decref(d);
	test_wait_settled(x, "0000:29:00.0", "intel-tiles=tiles");
	s = get_slice(x, "0000:3a:00.0/tile-1");
	assert_string_equal(test_jstr(json_object_get(s, "env"), "ZE_AFFINITY_MASK"), "0.1");
	assert_string_equal(test_jstr(s, "resource"), "gpu.intel.com/i915");
	assert_int_equal(num(s, "memory_bytes"), 64 * GiB);
	json_decref(s);

	d = test_get(x, "devices", "0000:4b:00.0");
	assert_string_equal(test_jstr(d, "model"), "Intel Data Center GPU Max 1100");
	assert_int_equal(num(d, "memory_bytes"), 48 * GiB);
	assert_string_equal(test_jprop(d, "tiles"), "1");
	json_decref(d);
	/* one tile: offered whole, the policy's tiles pending with the reason */
	assert_int_equal(count_slices(x, "0000:4b:00.0"), 1);
	d = test_plan_entry(x, "0000:4b:00.0");
	assert_string_equal(test_jstr(d, "reason"), "this GPU does not show several tiles");
	json_decref(d);

	d = test_get(x, "devices", "0000:00:02.0");
	assert_string_equal(test_jstr(d, "resource"), "gpu.intel.com/i915");
	assert_true(json_is_null(json_object_get(d, "memory_bytes")) ||
		    num(d, "memory_bytes") == 0);
	assert_string_equal(test_jprop(d, "tiles"), "1");
	assert_true(test_has_node(d, "/dev/dri/card0"));
	assert_true(test_has_node(d, "/dev/dri/renderD128"));
	json_decref(d);
	assert_int_equal(test_capacity(x, "gpu.intel.com/i915", "total"), 6);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* A tile's VRAM file with garbage, a tile directory missing: a warning naming the device and
 * the file, the rest of the record, the GPU offered whole. */
static void test_nonsense(void **state)
{
	char *root = test_fixture_new("intel-max"), path[4096], cmd[4200];
	struct test_xpud *x;
	json_t *d;

	(void)state;
	snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/tile1/physical_vram_size_bytes",
		 root, max[1]);
	write_text(path, "64 GiB\n");
	snprintf(cmd, sizeof(cmd), "rm -r '%s/sys/bus/pci/devices/%s/tile1/'", root, max[2]);
	assert_int_equal(system(cmd), 0);
	x = start_root(root, TILES_POLICY);
	test_wait_settled(x, max[0], "intel-tiles=tiles");

	d = test_get(x, "devices", max[1]);
	assert_string_equal(test_jstr(d, "model"), "Intel Data Center GPU Max 1550");
	assert_string_equal(test_jprop(d, "tiles"), "2");
	assert_string_equal(test_jprop(d, "tile0_memory_bytes"), "68719476736");
	assert_null(test_jprop(d, "tile1_memory_bytes"));
	/* a tile's memory unknown: so is the GPU's */
	assert_true(json_is_null(json_object_get(d, "memory_bytes")) ||
		    num(d, "memory_bytes") == 0);
	json_decref(d);
	assert_true(test_xpud_log_contains(x, "0000:3a:00.0: cannot read "
					      "tile1/physical_vram_size_bytes"));
	/* still offered by tile: the tile with unknown memory too */
	assert_int_equal(count_slices(x, max[1]), 2);

	d = test_get(x, "devices", max[2]);
	assert_string_equal(test_jprop(d, "tiles"), "2");
	assert_string_equal(test_jprop(d, "tile0_memory_bytes"), "68719476736");
	assert_true(json_is_null(json_object_get(d, "memory_bytes")) ||
		    num(d, "memory_bytes") == 0);
	assert_string_equal(test_jstr(json_object_get(d, "health"), "state"), "healthy");
	json_decref(d);
	assert_true(test_xpud_log_contains(x, "0000:9a:00.0: Intel Data Center GPU Max 1550 has 2 "
					      "tiles, sysfs shows no tile1"));
	/* a tile sysfs does not show is no slice: the GPU whole */
	assert_int_equal(count_slices(x, max[2]), 1);
	d = test_plan_entry(x, max[2]);
	assert_string_equal(test_jstr(d, "reason"), "this GPU does not show several tiles");
	json_decref(d);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_simulate_list(void **state)
{
	char cmd[4096], out[16384];
	size_t n;
	FILE *p;

	(void)state;
	snprintf(cmd, sizeof(cmd), "%s --simulate list", test_env("XPUD_BIN"));
	p = popen(cmd, "re");
	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	assert_int_equal(pclose(p), 0);
	assert_non_null(strstr(out, "intel-max "));
	assert_non_null(strstr(out, "intel-max-i915"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_max_xe),	 cmocka_unit_test(test_tiles_offer),
		cmocka_unit_test(test_i915),	 cmocka_unit_test(test_nonsense),
		cmocka_unit_test(test_simulate_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
