// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The accelerator backend (agent/backends/accel.c) through the real xpud, on one node of each
 * family: every device listed once as the family describes it, a grant of its resource naming
 * the device in the vendor's variable, health from the driver's status attribute, and the nodes
 * in `xpud --simulate list`.
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

struct family_node {
	const char *node;
	size_t n;
	const char *vendor;
	const char *model;
	const char *resource;
	const char *node_prefix; /* the device node of index N: <prefix>N */
	const char *env;      /* the variable naming the index in a grant; NULL: none */
};

static const struct family_node nodes[] = {
	{ "gaudi2", 8, "habana", "Habana Gaudi2", "habana.ai/gaudi", "/dev/accel/accel",
	  "HABANA_VISIBLE_DEVICES" },
	{ "coral-dual", 2, "google", "Google Coral Edge TPU", "xpu.dev/google-coral-edge-tpu",
	  "/dev/apex_", NULL },
	{ "inf2", 6, "aws", "AWS Inferentia2", "aws.amazon.com/neuron", "/dev/neuron",
	  "AWS_NEURON_VISIBLE_DEVICES" },
	{ "wormhole", 1, "tenstorrent", "Tenstorrent Wormhole", "xpu.dev/tenstorrent-wormhole",
	  "/dev/tenstorrent/", "TT_VISIBLE_DEVICES" },
};

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static json_t *devices_of(const struct test_xpud *x)
{
	json_t *doc = NULL;

	assert_int_equal(test_request(x, "GET", "/v1/devices", &doc), 200);
	return doc;
}

static json_t *device(const struct test_xpud *x, const char *id)
{
	char path[128];
	json_t *doc = NULL;

	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	assert_int_equal(test_request(x, "GET", path, &doc), 200);
	return doc;
}

/* Every device once, as its family describes it, at the index its node names. */
static void check_node(const struct test_xpud *x, const struct family_node *f)
{
	json_t *doc = devices_of(x), *list = json_object_get(doc, "devices"), *d;
	bool seen[16] = {};
	size_t i;

	if (json_array_size(list) != f->n)
		fail_msg("%s: %zu devices, expected %zu: %s", f->node, json_array_size(list), f->n,
			 json_dumps(doc, JSON_COMPACT));
	json_array_foreach(list, i, d) {
		const char *idx = str(json_object_get(d, "properties"), "accel_index");
		char node[64];
		int n;

		if (!idx)
			fail_msg("%s: %s has no accel_index", f->node, str(d, "id"));
		n = atoi(idx);
		assert_true(n >= 0 && n < 16 && !seen[n]);
		seen[n] = true;
		assert_string_equal(str(d, "kind"), "accel");
		assert_string_equal(str(d, "backend"), "accel");
		assert_string_equal(str(d, "vendor"), f->vendor);
		assert_string_equal(str(d, "model"), f->model);
		assert_string_equal(str(d, "resource"), f->resource);
		snprintf(node, sizeof(node), "%s%d", f->node_prefix, n);
		assert_int_equal(json_array_size(json_object_get(d, "device_nodes")), 1);
		assert_string_equal(json_string_value(json_array_get(
					    json_object_get(d, "device_nodes"), 0)),
				    node);
		assert_string_equal(str(json_object_get(d, "health"), "state"), "healthy");
		/* the generic PCI backend's view fills what the family leaves: NUMA, link */
		assert_true(json_is_integer(json_object_get(d, "numa_node")));
		assert_non_null(json_object_get(json_object_get(d, "pci"), "link"));
	}
	json_decref(doc);
}

/* A grant of one device names it by its index in the family's variable. */
static void check_grant(const struct test_xpud *x, const struct family_node *f)
{
	char body[256], node[64];
	json_t *doc = NULL, *nodes_;
	const char *value;
	int n;

	snprintf(body, sizeof(body), "{\"resource\": \"%s\", \"count\": 1}", f->resource);
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations", body, &doc), 201);
	nodes_ = json_object_get(doc, "device_nodes");
	assert_int_equal(json_array_size(nodes_), 1);
	value = f->env ? str(json_object_get(doc, "env"), f->env) : NULL;
	if (!f->env) {
		json_decref(doc);
		return;
	}
	if (!value)
		fail_msg("%s: grant without %s", f->node, f->env);
	n = atoi(value);
	snprintf(node, sizeof(node), "%s%d", f->node_prefix, n);
	assert_string_equal(json_string_value(json_array_get(nodes_, 0)), node);
	json_decref(doc);
}

static void test_families(void **state)
{
	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
		struct test_xpud *x = test_xpud_start(test_fixture_new(nodes[i].node), NULL);

		print_message("%s\n", nodes[i].node);
		check_node(x, &nodes[i]);
		check_grant(x, &nodes[i]);
		assert_int_equal(test_xpud_stop(x), 0);
		test_xpud_free(x);
	}
}

/* Replaces the status attribute of apex_@n at once. */
static void set_apex_status(const char *root, const char *addr, int n, const char *value)
{
	char path[4096], tmp[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/apex/apex_%d/status", root, addr,
		 n);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	f = fopen(tmp, "we");
	assert_non_null(f);
	fprintf(f, "%s\n", value);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
}

/* Waits (10 s at most) for @id's health state to be @state; returns its health. */
static json_t *wait_health(const struct test_xpud *x, const char *id, const char *state)
{
	for (int i = 0; i < 200; i++) {
		json_t *d = device(x, id), *h = json_incref(json_object_get(d, "health"));

		json_decref(d);
		if (strcmp(str(h, "state"), state) == 0)
			return h;
		json_decref(h);
		usleep(50 * 1000);
	}
	fail_msg("%s never became %s", id, state);
	return NULL;
}

/*
 * Coral: the apex status attribute, read at discovery and by the health probes (no rescan): a
 * TPU that goes LAMED becomes unhealthy with the reason, one that comes back ALIVE healthy again
 * after its probation.
 */
static void test_coral_status(void **state)
{
	char *root = test_fixture_new("coral-dual"), conf[4096];
	const char *args[] = { "--config", conf, NULL };
	struct test_xpud *x;
	json_t *h;
	FILE *f;

	(void)state;
	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	f = fopen(conf, "we");
	assert_non_null(f);
	fputs("health-interval: 100ms\nhealth-suspect-after: 3\nhealth-probation: 1s\n", f);
	assert_int_equal(fclose(f), 0);
	/* a TPU whose driver says it is dead is unhealthy from the start, with the reason */
	set_apex_status(root, "0000:04:00.0", 1, "DEAD");
	x = test_xpud_start(root, args);
	h = wait_health(x, "0000:04:00.0", "unhealthy");
	assert_non_null(strstr(str(h, "reason"), "coral status is DEAD"));
	json_decref(h);
	json_decref(wait_health(x, "0000:03:00.0", "healthy"));

	/* it comes back alive; the other one goes lame */
	set_apex_status(x->root, "0000:04:00.0", 1, "ALIVE");
	set_apex_status(x->root, "0000:03:00.0", 0, "LAMED");
	h = wait_health(x, "0000:03:00.0", "unhealthy");
	assert_non_null(strstr(str(h, "reason"), "coral status is LAMED"));
	json_decref(h);
	json_decref(wait_health(x, "0000:04:00.0", "healthy"));
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_gaudi_status(void **state)
{
	struct test_xpud *x = test_xpud_start(test_fixture_new("gaudi2"), NULL);
	char path[4096];
	json_t *h;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/0000:36:00.0/accel/accel2/status",
		 x->root);
	f = fopen(path, "we");
	assert_non_null(f);
	fputs("needs reset\n", f);
	assert_int_equal(fclose(f), 0);
	test_send_uevent(x, "change", "/devices/pci0000:34/0000:34:00.0/0000:35:00.0/0000:36:00.0",
			 "pci");
	h = wait_health(x, "0000:36:00.0", "unhealthy");
	assert_non_null(strstr(str(h, "reason"), "status is needs reset"));
	json_decref(h);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_simulate_list(void **state)
{
	char cmd[4096], out[8192];
	size_t n;
	FILE *p;

	(void)state;
	snprintf(cmd, sizeof(cmd), "%s --simulate list", test_env("XPUD_BIN"));
	p = popen(cmd, "re");
	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	assert_int_equal(pclose(p), 0);
	for (size_t i = 0; i < ELEMENTSOF(nodes); i++)
		if (!strstr(out, nodes[i].node))
			fail_msg("xpud --simulate list lacks %s:\n%s", nodes[i].node, out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_families),
		cmocka_unit_test(test_coral_status),
		cmocka_unit_test(test_gaudi_status),
		cmocka_unit_test(test_simulate_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
