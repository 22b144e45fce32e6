// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * `xpuctl export json`: one versioned document of the inventory, the slices, the capacity and a
 * fit, valid against docs/export.schema.json (checked with python3-jsonschema by
 * validate-export.py) on the HGX H100 and mixed nodes, holding what the API answers; and the
 * schema rejects broken documents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "shared/macro.h"
#include "testutil.h"

/* validate-export.py on @path: its exit status (77: no python3-jsonschema: skips the test). */
static int validate(const char *path)
{
	const char *tests = test_env("XPU_TESTS_DIR");
	_cleanup_free_ char *cmd = NULL;
	int status;

	assert_true(asprintf(&cmd,
			     "/usr/bin/python3 %s/integration/validate-export.py "
			     "%s/../docs/export.schema.json %s",
			     tests, tests, path) >= 0);
	status = system(cmd);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip();
	return WEXITSTATUS(status);
}

static char *write_doc(const char *root, const char *name, const json_t *doc)
{
	char *path;

	assert_true(asprintf(&path, "%s/%s.json", root, name) >= 0);
	assert_int_equal(json_dump_file(doc, path, JSON_INDENT(2)), 0);
	return path;
}

/* Exports @x's node with @args (NULL-terminated after "export json"), validates it, returns it. */
static json_t *export_valid(const struct test_xpud *x, const char *const *extra)
{
	const char *args[8] = { "export", "json" };
	_cleanup_free_ char *out = NULL, *path = NULL;
	json_t *doc;

	for (size_t i = 0; extra && extra[i]; i++)
		args[2 + i] = extra[i];
	assert_int_equal(test_xpuctl(x->socket, args, &out), 0);
	doc = json_loads(out, 0, NULL);
	assert_non_null(doc);
	path = write_doc(x->root, "export", doc);
	assert_int_equal(validate(path), 0);
	return doc;
}

/* The document holds what the API answers: devices, slices, capacity, and the fit of @shape. */
static void check_content(const struct test_xpud *x, json_t *doc, const char *shape)
{
	json_t *devices = test_get(x, "devices", NULL), *slices = test_get(x, "slices", NULL);
	json_t *capacity = test_get(x, "capacity", NULL), *fit = NULL;

	assert_int_equal(json_integer_value(json_object_get(doc, "schema_version")), 1);
	/* the same devices (their readings, such as temperatures, move on between two reads) */
	assert_int_equal(json_array_size(json_object_get(doc, "devices")),
			 json_array_size(json_object_get(devices, "devices")));
	for (size_t i = 0; i < json_array_size(json_object_get(devices, "devices")); i++)
		assert_string_equal(
			test_jstr(json_array_get(json_object_get(doc, "devices"), i), "id"),
			test_jstr(json_array_get(json_object_get(devices, "devices"), i), "id"));
	assert_true(json_equal(json_object_get(doc, "slices"), json_object_get(slices, "slices")));
	assert_true(json_equal(json_object_get(doc, "capacity"),
			       json_object_get(capacity, "resources")));
	assert_int_equal(test_request_body(x, "POST", "/v1/fit", shape, &fit), 200);
	assert_true(json_equal(json_object_get(json_object_get(doc, "fit"), "slices"),
			       json_object_get(fit, "slices")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "fit"), "fits")),
			 json_integer_value(json_object_get(fit, "fits")));
	json_decref(devices);
	json_decref(slices);
	json_decref(capacity);
	json_decref(fit);
}

static void test_hgx(void **state)
{
	struct test_xpud *x = test_xpud_start_nvml(test_fixture_new("hgx-h100"), NULL, NULL);
	json_t *doc = export_valid(x, NULL), *shaped;

	assert_int_equal(json_array_size(json_object_get(doc, "devices")), 8);
	check_content(x, doc, "{}");
	shaped = export_valid(x, (const char *[]){ "--memory", "20GiB", NULL });
	check_content(x, shaped, "{\"memory_bytes\": 21474836480}");
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(json_object_get(shaped, "fit"), "shape"),
				 "memory_bytes")),
			 21474836480LL);
	json_decref(shaped);
	/* five GPUs fit once, never on one NUMA node of four */
	shaped = export_valid(x, (const char *[]){ "--resource", "nvidia.com/gpu", "--count", "5",
						   "--numa-local", NULL });
	check_content(x, shaped,
		      "{\"resource\": \"nvidia.com/gpu\", \"count\": 5, \"numa_local\": true}");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(shaped, "fit"), "fits")),
			 0);
	json_decref(shaped);
	json_decref(doc);
	test_xpud_free(x);
}

/* Broken copies of a valid document, each rejected by the schema. */
static void test_mixed_and_broken(void **state)
{
	struct test_xpud *x = test_xpud_start(test_fixture_new("mixed"), NULL);
	json_t *doc = export_valid(x, NULL);
	static const char *const breaks[] = {
		"no-version", "version-2", "kind", "slices", "fits", "device-field",
	};

	check_content(x, doc, "{}");
	for (size_t i = 0; i < ELEMENTSOF(breaks); i++) {
		json_t *bad = json_deep_copy(doc);
		_cleanup_free_ char *path = NULL;
		const char *b = breaks[i];

		if (strcmp(b, "no-version") == 0)
			json_object_del(bad, "schema_version");
		else if (strcmp(b, "version-2") == 0)
			json_object_set_new(bad, "schema_version", json_integer(2));
		else if (strcmp(b, "kind") == 0)
			json_object_set_new(json_array_get(json_object_get(bad, "devices"), 0),
					    "kind", json_string("tpu"));
		else if (strcmp(b, "slices") == 0)
			json_object_set_new(bad, "slices", json_object());
		else if (strcmp(b, "fits") == 0)
			json_object_set_new(json_object_get(bad, "fit"), "fits", json_string("1"));
		else
			json_object_del(json_array_get(json_object_get(bad, "slices"), 0),
					"device_nodes");
		path = write_doc(x->root, b, bad);
		print_message("broken: %s\n", b);
		assert_int_equal(validate(path), 1);
		json_decref(bad);
	}
	json_decref(doc);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hgx),
		cmocka_unit_test(test_mixed_and_broken),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
