// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A vendor library that hangs on one GPU: every NVML call for it takes 3 s (the fake NVML's
 * hang_ms). xpud starts, answers its API and grants the GPUs; the slow GPU is served from
 * sysfs (its NVML queries past their deadline), the others with NVML's facts. (Errors, an init that
 * hangs, a missing or old library: test-nvidia.)
 *
 * A vendor library that vanishes at run time: the driver unloaded, or upgraded under a running
 * xpud so that the loaded NVML no longer matches the kernel module, and every NVML call fails
 * until it is back. xpud answers, keeps its grants, offers none of the GPUs meanwhile (unhealthy,
 * naming NVML's error), and offers them all again by itself once NVML answers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
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

#define SLOW_GPU "0000:2a:00.0"

static void test_one_gpu_hangs(void **state)
{
	char *root = test_fixture_new("hgx-h100");
	struct test_xpud *x;
	json_t *doc = NULL;
	int granted = 0;

	test_fake_nvml_set(root, SLOW_GPU, "hang_ms", json_pack("{s:i}", "*", 3000));
	x = test_xpud_start_nvml(root, NULL, NULL);
	assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
	assert_int_equal(test_request(x, "GET", "/v1/devices", &doc), 200);
	json_decref(doc);
	/* the slow GPU is still listed, from sysfs; the others carry NVML's facts */
	assert_int_equal(test_request(x, "GET", "/v1/devices/" SLOW_GPU, &doc), 200);
	assert_string_equal(json_string_value(json_object_get(doc, "backend")), "pci");
	json_decref(doc);
	assert_int_equal(test_request(x, "GET", "/v1/devices/0000:18:00.0", &doc), 200);
	assert_string_equal(json_string_value(json_object_get(doc, "backend")), "nvidia");
	json_decref(doc);
	/* the whole GPUs are granted, one by one */
	for (int i = 0; i < 6; i++) {
		int st = test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"nvidia.com/gpu\"}", &doc);

		if (st == 201) {
			json_t *s = json_array_get(json_object_get(doc, "slices"), 0);
			const char *id = json_is_string(s)
					     ? json_string_value(s)
					     : json_string_value(json_object_get(s, "id"));

			granted++;
			print_message("granted %s\n", id);
		}
		json_decref(doc);
		doc = NULL;
	}
	assert_true(granted >= 6);
	assert_int_equal(test_request(x, "GET", "/v1/health", NULL), 200);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

#define N_GPUS 8
/* Bounds for what the health probes see: far above their 200 ms interval and 1 s probation,
 * for a loaded 2-core machine and sanitizers. */
#define HEALTH_WAIT_MS 30000

/* GET /v1/health until @pred holds (HEALTH_WAIT_MS at most); the last answer (a new reference). */
static json_t *wait_health(const struct test_xpud *x, bool (*pred)(json_t *, const char *),
			   const char *arg)
{
	long long end = test_now_ms() + HEALTH_WAIT_MS;
	json_t *doc = NULL;

	for (;;) {
		json_decref(doc);
		doc = NULL;
		assert_int_equal(test_request(x, "GET", "/v1/health", &doc), 200);
		if (pred(doc, arg) || test_now_ms() > end)
			return doc;
		usleep(100 * 1000);
	}
}

/* Every GPU unhealthy, each for a reason that names NVML's error @arg. */
static bool all_unhealthy_for(json_t *doc, const char *arg)
{
	json_t *u, *e;
	size_t i;

	u = json_object_get(doc, "unhealthy");
	if (json_array_size(u) != N_GPUS)
		return false;
	json_array_foreach(u, i, e)
		if (!strstr(json_string_value(json_object_get(e, "reason")) ?: "", arg))
			return false;
	return true;
}

static bool all_healthy(json_t *doc, const char *arg)
{
	json_t *d = json_object_get(doc, "devices");

	return json_integer_value(json_object_get(d, "healthy")) == N_GPUS &&
	       json_integer_value(json_object_get(d, "total")) == N_GPUS &&
	       json_array_size(json_object_get(doc, "unhealthy")) == 0;
}

/* POST /v1/allocations of one whole GPU: the status, and the allocation's id in @ret_id. */
static int grant_gpu(const struct test_xpud *x, char **ret_id)
{
	json_t *doc = NULL;
	int st;

	st = test_request_body(x, "POST", "/v1/allocations", "{\"resource\": \"nvidia.com/gpu\"}",
			       &doc);
	if (st == 201 && ret_id)
		*ret_id = strdup(json_string_value(json_object_get(doc, "id")));
	json_decref(doc);
	return st;
}

/* Whether GET /v1/allocations lists @id. */
static bool allocation_listed(const struct test_xpud *x, const char *id)
{
	char path[256];

	snprintf(path, sizeof(path), "/v1/allocations/%s", id);
	return test_request(x, "GET", path, NULL) == 200;
}

static void test_driver_vanishes(void **state)
{
	/* NVML's own words for the two errors (nvmlErrorString) */
	static const struct {
		const char *name, *text;
	} faults[] = {
		{ "DRIVER_NOT_LOADED", "Driver Not Loaded" },
		{ "LIB_RM_VERSION_MISMATCH", "NVML/RM version mismatch" },
	};
	char *root = test_fixture_new("hgx-h100"), conf[4096], desc[4096];
	const char *args[] = { "--config", conf, NULL };
	char *kept = NULL, *id = NULL;
	struct test_xpud *x;
	json_t *doc;
	FILE *f;

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	snprintf(desc, sizeof(desc), "%s/run/fake-nvml.json", root);
	assert_non_null(f = fopen(conf, "we"));
	fputs("health-interval: 200ms\nhealth-suspect-after: 2\nhealth-probation: 1s\n", f);
	assert_int_equal(fclose(f), 0);
	x = test_xpud_start_nvml(root, args, NULL);
	doc = wait_health(x, all_healthy, NULL);
	assert_true(all_healthy(doc, NULL));
	json_decref(doc);
	assert_int_equal(grant_gpu(x, &kept), 201);

	for (size_t i = 0; i < ELEMENTSOF(faults); i++) {
		json_t *devices = NULL, *d;
		size_t j;

		test_fake_nvml_driver_error(desc, faults[i].name);
		doc = wait_health(x, all_unhealthy_for, faults[i].text);
		if (!all_unhealthy_for(doc, faults[i].text))
			fail_msg("with NVML failing (%s), not every GPU unhealthy for it: %s",
				 faults[i].name, json_dumps(doc, JSON_COMPACT));
		json_decref(doc);
		/* xpud answers; the GPUs are still listed, NVIDIA's; none is granted; the grant
		 * made before is kept, also through a rescan that NVML cannot answer */
		assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
		assert_int_equal(test_request_body(x, "POST", "/v1/rescan", NULL, NULL), 200);
		assert_int_equal(test_request(x, "GET", "/v1/devices", &devices), 200);
		assert_int_equal(json_array_size(json_object_get(devices, "devices")), N_GPUS);
		json_array_foreach(json_object_get(devices, "devices"), j, d)
			assert_string_equal(json_string_value(json_object_get(d, "backend")),
					    "nvidia");
		json_decref(devices);
		assert_int_equal(grant_gpu(x, NULL) / 100, 4);
		assert_true(allocation_listed(x, kept));

		/* NVML works again: every GPU is healthy by itself, and granted again */
		test_fake_nvml_driver_error(desc, NULL);
		doc = wait_health(x, all_healthy, NULL);
		if (!all_healthy(doc, NULL))
			fail_msg("NVML answers again (after %s), but the GPUs stay unhealthy: %s",
				 faults[i].name, json_dumps(doc, JSON_COMPACT));
		json_decref(doc);
		assert_true(allocation_listed(x, kept));
		assert_int_equal(grant_gpu(x, &id), 201);
		assert_true(allocation_listed(x, id));
		free(id);
		id = NULL;
	}
	free(kept);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_gpu_hangs),
	    cmocka_unit_test(test_driver_vanishes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
