// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Declared MIG layouts applied through the fake NVML on the HGX fixture (GPU 0000:db:00.0 has
 * MIG enabled with seven 1g.10gb instances): the GPU's slices become the declared instances,
 * with their UUIDs and capability nodes; an equal layout is left alone; a GPU with slices in
 * use waits for their release; MIG mode is enabled only when the policy says so; an NVML error
 * leaves the offer pending with the error, once, not in a loop.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "shared/strv.h"
#include "testutil.h"

#define MIG_GPU "0000:db:00.0"
#define APPLYING "Device " MIG_GPU ": applying"

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* Writes @policy (the rules under "partitions:") to <root>/xpud.yaml and returns its path. */
static char *write_policy(const char *root, const char *policy)
{
	char *conf, *text;

	assert_true(asprintf(&conf, "%s/xpud.yaml", root) > 0);
	assert_true(asprintf(&text, "%s%s", *policy ? "partitions:\n" : "log-level: debug\n",
			     policy) > 0);
	write_file(conf, text);
	free(text);
	return conf;
}

static void reload(struct test_xpud *x)
{
	assert_int_equal(test_request_body(x, "POST", "/v1/reload", NULL, NULL), 200);
}

static json_t *plan_of(struct test_xpud *x, const char *device)
{
	return test_plan_entry(x, device);
}

/* Waits (10 s at most) until the plan of @device has @field containing @needle. */
static void wait_plan(struct test_xpud *x, const char *device, const char *field,
		      const char *needle)
{
	long long deadline = test_now_ms() + 10000;

	for (;;) {
		json_t *p = plan_of(x, device);
		const char *v = jstr(p, field);
		bool ok = v && strstr(v, needle);
		char seen[512];

		snprintf(seen, sizeof(seen), "%s: applied %s, pending %s, reason %s", device,
			 jstr(p, "applied") ?: "-", jstr(p, "pending") ?: "-",
			 jstr(p, "reason") ?: "-");
		json_decref(p);
		if (ok)
			return;
		if (test_now_ms() > deadline)
			fail_msg("plan %s never had '%s' in %s; last seen %s", device, needle, field,
				 seen);
		usleep(20 * 1000);
	}
}

static json_int_t capacity_total(struct test_xpud *x, const char *resource)
{
	json_int_t v = test_capacity(x, resource, "total");

	return v < 0 ? 0 : v; /* not listed: none */
}

/* A few rescans, each of which would retry an apply that is not recorded. */
static void rescan_a_few_times(struct test_xpud *x)
{
	for (int i = 0; i < 3; i++) {
		assert_int_equal(test_request_body(x, "POST", "/v1/rescan", NULL, NULL), 200);
		usleep(50 * 1000);
	}
}

static void assert_mig_slice_nodes(struct test_xpud *x, const char *id)
{
	json_t *doc = NULL, *s, *n;
	size_t i, j, caps = 0;

	assert_int_equal(test_request(x, "GET", "/v1/slices", &doc), 200);
	json_array_foreach(json_object_get(doc, "slices"), i, s) {
		if (strcmp(jstr(s, "id"), id) != 0)
			continue;
		assert_string_equal(jstr(json_object_get(s, "env"), "NVIDIA_VISIBLE_DEVICES"), id);
		json_array_foreach(json_object_get(s, "device_nodes"), j, n) {
			const char *node = json_string_value(n);
			char path[4096];

			if (strncmp(node, "/dev/nvidia-caps/", 17) != 0)
				continue;
			/* a node that exists in the tree: the fake wrote its capability */
			snprintf(path, sizeof(path), "%s%s", x->root, node);
			assert_int_equal(access(path, F_OK), 0);
			caps++;
		}
	}
	json_decref(doc);
	assert_int_equal(caps, 2); /* the GPU instance's and the compute instance's */
}

/* [3g.40gb, 3g.40gb] replaces the seven 1g.10gb; declaring it again changes nothing. */
static void test_apply_and_idempotent(void **state)
{
	char *root = test_fixture_new("hgx-h100");
	_cleanup_free_ char *conf = write_policy(root, "");
	_cleanup_strv_free_ char **before = NULL, **after = NULL, **res = NULL, **again = NULL;
	struct test_xpud *x;

	x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
	before = test_device_slices(x, MIG_GPU, NULL);
	assert_int_equal(strv_length(before), 7);
	assert_int_equal(capacity_total(x, "nvidia.com/mig-1g.10gb"), 7);

	free(write_policy(root, "  - match: {pci: \"" MIG_GPU "\"}\n    mig: [3g.40gb, 3g.40gb]\n"));
	reload(x);
	test_wait_settled(x, MIG_GPU, "mig=3g.40gb,3g.40gb");

	after = test_device_slices(x, MIG_GPU, &res);
	assert_int_equal(strv_length(after), 2);
	STRV_FOREACH(r, res)
		assert_string_equal(*r, "nvidia.com/mig-3g.40gb");
	STRV_FOREACH(id, after) {
		assert_int_equal(strncmp(*id, "MIG-", 4), 0);
		assert_false(strv_contains(before, *id));
		assert_mig_slice_nodes(x, *id);
	}
	assert_int_equal(capacity_total(x, "nvidia.com/mig-3g.40gb"), 2);
	assert_int_equal(capacity_total(x, "nvidia.com/mig-1g.10gb"), 0);
	assert_int_equal(test_xpud_log_count(x, APPLYING), 1);

	/* the same layout again (a reload, rescans): nothing is destroyed or created */
	reload(x);
	rescan_a_few_times(x);
	again = test_device_slices(x, MIG_GPU, NULL);
	assert_true(strv_equal(after, again));
	assert_int_equal(test_xpud_log_count(x, APPLYING), 1);
	test_xpud_free(x);
}

/* With a MIG slice in use a new layout waits for the release; all-1g.10gb then applies. */
static void test_pending_until_released(void **state)
{
	char *root = test_fixture_new("hgx-h100");
	_cleanup_free_ char *conf = write_policy(root, "");
	_cleanup_strv_free_ char **before = NULL, **still = NULL, **after = NULL, **res = NULL;
	_cleanup_free_ char *body = NULL, *path = NULL;
	struct test_xpud *x;
	json_t *doc = NULL;

	x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
	before = test_device_slices(x, MIG_GPU, NULL);
	assert_true(asprintf(&body, "{\"slices\": [\"%s\"]}", before[0]) > 0);
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations", body, &doc), 201);
	assert_true(asprintf(&path, "/v1/allocations/%s", jstr(doc, "id")) > 0);
	json_decref(doc);

	free(write_policy(root, "  - match: {pci: \"" MIG_GPU "\"}\n    mig: [3g.40gb]\n"));
	reload(x);
	wait_plan(x, MIG_GPU, "reason", "1 slice allocated");
	rescan_a_few_times(x);
	still = test_device_slices(x, MIG_GPU, NULL);
	assert_true(strv_equal(before, still));
	/* no new workload lands on it meanwhile: its free slices are withdrawn */
	assert_int_equal(test_capacity(x, "nvidia.com/mig-1g.10gb", "free"), 0);
	assert_int_equal(test_capacity(x, "nvidia.com/mig-1g.10gb", "allocated"), 1);
	assert_int_equal(test_xpud_log_count(x, APPLYING), 0);

	/* another layout waits as well, and applies once the slice is released */
	free(write_policy(root, "  - match: {pci: \"" MIG_GPU "\"}\n    mig: [4g.40gb, 2g.20gb]\n"));
	reload(x);
	wait_plan(x, MIG_GPU, "reason", "1 slice allocated");
	assert_int_equal(test_xpud_log_count(x, APPLYING), 0);
	assert_int_equal(test_request_body(x, "DELETE", path, NULL, NULL), 200);
	test_wait_settled(x, MIG_GPU, "mig=4g.40gb,2g.20gb");
	after = test_device_slices(x, MIG_GPU, &res);
	assert_int_equal(strv_length(after), 2);
	strv_sort(res);
	assert_string_equal(res[0], "nvidia.com/mig-2g.20gb");
	assert_string_equal(res[1], "nvidia.com/mig-4g.40gb");
	assert_int_equal(test_xpud_log_count(x, APPLYING), 1);

	/* and back to all-1g.10gb: seven new instances */
	strv_free(after);
	free(write_policy(root, "  - match: {pci: \"" MIG_GPU "\"}\n    mig: all-1g.10gb\n"));
	reload(x);
	test_wait_settled(x, MIG_GPU, "mig=all-1g.10gb");
	after = test_device_slices(x, MIG_GPU, NULL);
	assert_int_equal(strv_length(after), 7);
	assert_int_equal(capacity_total(x, "nvidia.com/mig-1g.10gb"), 7);
	assert_false(strv_contains(before, after[0]));
	test_xpud_free(x);
}

static const char *prop(struct test_xpud *x, const char *id, const char *key, json_t **doc)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	json_decref(*doc);
	*doc = NULL;
	assert_int_equal(test_request(x, "GET", path, doc), 200);
	return jstr(json_object_get(*doc, "properties"), key);
}

/* A GPU with MIG disabled is left alone without mig-enable; with it, its mode is enabled and
 * the offer waits for a GPU reset. */
static void test_mig_disabled(void **state)
{
	char *root = test_fixture_new("hgx-h100");
	_cleanup_free_ char *conf =
		write_policy(root, "  - match: {pci: \"0000:18:00.0\"}\n    mig: [3g.40gb]\n");
	struct test_xpud *x;
	json_t *doc = NULL;

	x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
	wait_plan(x, "0000:18:00.0", "reason", "MIG is disabled on this GPU (mig-enable: true");
	rescan_a_few_times(x);
	assert_string_equal(prop(x, "0000:18:00.0", "mig_mode_pending", &doc), "disabled");
	assert_int_equal(test_xpud_log_count(x, "Device 0000:18:00.0: applying"), 0);

	free(write_policy(root, "  - match: {pci: \"0000:18:00.0\"}\n    mig: [3g.40gb]\n"
				"    mig-enable: true\n"));
	reload(x);
	wait_plan(x, "0000:18:00.0", "reason", "MIG mode enabled, takes effect after a GPU reset");
	assert_string_equal(prop(x, "0000:18:00.0", "mig_mode_pending", &doc), "enabled");
	assert_string_equal(prop(x, "0000:18:00.0", "mig_mode", &doc), "disabled");
	rescan_a_few_times(x);
	assert_int_equal(test_xpud_log_count(x, "Device 0000:18:00.0: applying"), 1);
	/* still offered whole until the reset */
	assert_int_equal(capacity_total(x, "nvidia.com/gpu"), 7);
	json_decref(doc);
	test_xpud_free(x);
}

/* Injects @error for @fn on the MIG GPU in the tree's fake NVML description. */
static void inject_error(const char *root, const char *fn, const char *error)
{
	test_fake_nvml_set(root, MIG_GPU, "errors", json_pack("{s:s}", fn, error));
}

/* The cordon of @device in the plan (its reason), or NULL; caller frees. */
static char *cordon_of(struct test_xpud *x, const char *device)
{
	json_t *p = plan_of(x, device), *c = json_object_get(p, "cordon");
	char *reason = json_is_object(c) ? strdup(jstr(c, "reason")) : NULL;

	json_decref(p);
	return reason;
}

/*
 * An NVML error half-way (the old instances destroyed, the new ones not made) and again while
 * rolling back: the GPU is cordoned with both reasons, never offered half-made; xpud serves on;
 * no retry loop.
 */
static void test_error_not_retried(void **state)
{
	char *root = test_fixture_new("hgx-h100");
	_cleanup_free_ char *conf =
		write_policy(root, "  - match: {pci: \"" MIG_GPU "\"}\n    mig: [3g.40gb, 3g.40gb]\n");
	_cleanup_strv_free_ char **left = NULL;
	_cleanup_free_ char *cordon = NULL;
	struct test_xpud *x;
	json_t *p;

	inject_error(root, "nvmlDeviceCreateGpuInstance", "INSUFFICIENT_RESOURCES");
	x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
	/* the first inventory's plan is carried out, fails, and so does the rollback */
	wait_plan(x, MIG_GPU, "reason",
		  "repartition failed (nvmlDeviceCreateGpuInstance(3g.40gb): Insufficient resources) "
		  "and rolling back failed (nvmlDeviceCreateGpuInstance(1g.10gb): Insufficient "
		  "resources)");
	p = plan_of(x, MIG_GPU);
	assert_string_equal(jstr(p, "pending"), "mig=3g.40gb,3g.40gb");
	assert_true(json_is_null(json_object_get(p, "repartition")));
	json_decref(p);
	cordon = cordon_of(x, MIG_GPU);
	assert_non_null(cordon);
	assert_non_null(strstr(cordon, "rolling back failed"));
	/* what exists after the failure: the old instances were destroyed first */
	left = test_device_slices(x, MIG_GPU, NULL);
	assert_int_equal(strv_length(left), 0);
	rescan_a_few_times(x);
	assert_int_equal(test_xpud_log_count(x, APPLYING), 1);
	assert_int_equal(test_xpud_log_count(x, "Device " MIG_GPU ": rolling back to"), 1);
	assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
	/* the other GPUs serve on */
	assert_int_equal(capacity_total(x, "nvidia.com/gpu"), 7);

	/* a reload is a new policy: one more try, and again only one; the cordon stays */
	reload(x);
	wait_plan(x, MIG_GPU, "reason", "Insufficient resources");
	rescan_a_few_times(x);
	assert_int_equal(test_xpud_log_count(x, APPLYING), 2);
	free(cordon);
	cordon = cordon_of(x, MIG_GPU);
	assert_non_null(cordon);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* A layout that does not fit fails half-way; the seven 1g.10gb are made again and served. */
static void test_rollback(void **state)
{
	char *root = test_fixture_new("hgx-h100");
	_cleanup_free_ char *conf = write_policy(root, "");
	_cleanup_strv_free_ char **before = NULL, **after = NULL, **res = NULL;
	struct test_xpud *x;

	/* the driver refuses the second GPU instance xpud creates (short of resources) */
	test_fake_nvml_set(root, MIG_GPU, "fail_call",
			   json_pack("{s:[i,s]}", "nvmlDeviceCreateGpuInstance", 2,
				     "INSUFFICIENT_RESOURCES"));
	x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
	before = test_device_slices(x, MIG_GPU, NULL);
	assert_int_equal(strv_length(before), 7);
	/* a layout the GPU holds, of which the second instance cannot be made */
	free(write_policy(root, "  - match: {pci: \"" MIG_GPU "\"}\n    mig: [3g.40gb, 3g.40gb]\n"));
	reload(x);
	wait_plan(x, MIG_GPU, "reason", "rolled back");
	assert_null(cordon_of(x, MIG_GPU));
	after = test_device_slices(x, MIG_GPU, &res);
	assert_int_equal(strv_length(after), 7);
	STRV_FOREACH(r, res)
		assert_string_equal(*r, "nvidia.com/mig-1g.10gb");
	assert_false(strv_contains(before, after[0])); /* made again: new instances */
	assert_int_equal(capacity_total(x, "nvidia.com/mig-1g.10gb"), 7);
	rescan_a_few_times(x);
	assert_int_equal(test_xpud_log_count(x, APPLYING), 1);
	assert_int_equal(test_xpud_log_count(x, "Device " MIG_GPU ": rolling back to"), 1);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apply_and_idempotent),
		cmocka_unit_test(test_pending_until_released),
		cmocka_unit_test(test_mig_disabled),
		cmocka_unit_test(test_error_not_retried),
		cmocka_unit_test(test_rollback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
