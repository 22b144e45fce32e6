// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A vendor library that hangs on one GPU: every NVML call for it takes 3 s (the fake NVML's
 * hang_ms). xpud starts, answers its API and grants the GPUs; the slow GPU is served from
 * sysfs (its NVML queries past their deadline), the others with NVML's facts. (Errors, an init that
 * hangs, a missing or old library: test-nvidia.)
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_gpu_hangs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
