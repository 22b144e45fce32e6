// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Memory shares under 1MiB would reach workloads as CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=0M: they
 * are refused wherever a share size enters, with a clear 400, and what was offered stays.
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
#include "testutil.h"

#define GPU "nvidia.com/gpu"

static void write_conf(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static const char *message(json_t *doc)
{
	return json_string_value(json_object_get(doc, "message"));
}

static void test_share_under_1mib_refused(void **state)
{
	char *root = test_fixture_new("hgx-h100"), conf[4096];
	struct test_xpud *x;
	json_t *doc = NULL;

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	write_conf(conf, "partitions:\n  - match: {pci: \"18:00.0\"}\n"
			 "    memory-shares: {count: 4, size: 19GiB}\n");
	x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
	assert_int_equal(test_capacity(x, GPU ".shared", "total"), 4);

	/* in the configuration: the reload is refused, the running policy stays */
	write_conf(conf, "partitions:\n  - match: {pci: \"18:00.0\"}\n"
			 "    memory-shares: {count: 4, size: 512KiB}\n");
	assert_int_equal(test_request_body(x, "POST", "/v1/reload", NULL, &doc), 400);
	assert_non_null(strstr(message(doc), "line 3: size: a memory share must be at least 1MiB"));
	json_decref(doc);
	assert_int_equal(test_capacity(x, GPU ".shared", "total"), 4);
	assert_int_equal(test_capacity(x, GPU, "total"), 6);

	/* in a repartition request: refused before anything starts */
	assert_int_equal(test_request_body(x, "POST", "/v1/repartition",
					   "{\"device\": \"0000:2a:00.0\", \"layout\": "
					   "\"memory-shares: {count: 2, size: 1000KiB}\"}",
					   &doc),
			 400);
	assert_non_null(strstr(message(doc), "a memory share must be at least 1MiB"));
	assert_non_null(strstr(message(doc), "'1000KiB'"));
	json_decref(doc);
	doc = test_plan_entry(x, "0000:2a:00.0");
	assert_string_equal(json_string_value(json_object_get(doc, "applied")), "whole");
	assert_true(json_is_null(json_object_get(doc, "repartition")) ||
		    !json_object_get(doc, "repartition"));
	json_decref(doc);
	assert_int_equal(test_capacity(x, GPU, "total"), 6);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_share_under_1mib_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
