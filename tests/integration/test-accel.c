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
#include "sim/fixture.h"
#include "testutil.h"

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static const char *prop(json_t *d, const char *key)
{
	return str(json_object_get(d, "properties"), key);
}

/* Asserts property @key of @d is @want (NULL: absent), naming the device when not. */
static void assert_prop(json_t *d, const char *key, const char *want)
{
	const char *have = prop(d, key);

	if (!streq_ptr(have, want))
		fail_msg("%s: property %s is %s, expected %s", str(d, "id"), key, have ?: "(none)",
			 want ?: "(none)");
}

/* Gaudi: the control node after the accel node, and the driver's attributes of the function. */
static void check_gaudi(json_t *d, int n)
{
	char want[64];

	snprintf(want, sizeof(want), "/dev/accel/accel_controlD%d", 64 + n);
	assert_int_equal(json_array_size(json_object_get(d, "device_nodes")), 2);
	assert_string_equal(json_string_value(json_array_get(json_object_get(d, "device_nodes"), 1)),
			    want);
	assert_prop(d, "device_type", "GAUDI2");
	snprintf(want, sizeof(want), "%d", n);
	assert_prop(d, "module_id", want);
	assert_prop(d, "accel_family", "gaudi");
}

/* Coral: the gasket temperatures in degrees Celsius (the second TPU runs warmer). */
static void check_coral(json_t *d, int n)
{
	assert_prop(d, "temperature_c", n == 0 ? "41.8" : "52.3");
	assert_prop(d, "trip_points_c", "85.0,90.0,95.0");
	assert_prop(d, "shutdown_temperature_c", "110.0");
	assert_prop(d, "accel_family", "coral");
}

/* Neuron: 2 NeuronCores a device, numbered across the devices. */
static void check_neuron(json_t *d, int n)
{
	char want[32];

	assert_prop(d, "cores", "2");
	snprintf(want, sizeof(want), "%d-%d", 2 * n, 2 * n + 1);
	assert_prop(d, "core_ids", want);
	assert_int_equal(json_array_size(json_object_get(d, "partitions")), 0);
}

static void check_tenstorrent(json_t *d, int n)
{
	(void)n;
	assert_prop(d, "accel_family", "tenstorrent");
	assert_prop(d, "cores", NULL);
	assert_prop(d, "temperature_c", NULL);
}

struct family_node {
	const char *node;
	size_t n;
	const char *vendor;
	const char *model;
	const char *resource;
	const char *node_prefix; /* the device node of index N: <prefix>N */
	const char *env;      /* the variable naming the index in a grant; NULL: none */
	void (*check)(json_t *d, int n); /* the family's own fields of the device of index n */
};

static const struct family_node nodes[] = {
	{ "gaudi2", 8, "habana", "Habana Gaudi2", "habana.ai/gaudi", "/dev/accel/accel",
	  "HABANA_VISIBLE_DEVICES", check_gaudi },
	{ "coral-dual", 2, "google", "Google Coral Edge TPU", "xpu.dev/google-coral-edge-tpu",
	  "/dev/apex_", NULL, check_coral },
	{ "inf2", 6, "aws", "AWS Inferentia2", "aws.amazon.com/neuron", "/dev/neuron",
	  "AWS_NEURON_VISIBLE_DEVICES", check_neuron },
	{ "wormhole", 1, "tenstorrent", "Tenstorrent Wormhole", "xpu.dev/tenstorrent-wormhole",
	  "/dev/tenstorrent/", "TT_VISIBLE_DEVICES", check_tenstorrent },
};

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
		assert_int_equal(json_array_size(json_object_get(d, "device_nodes")),
				 f->check == check_gaudi ? 2 : 1);
		assert_string_equal(json_string_value(json_array_get(
					    json_object_get(d, "device_nodes"), 0)),
				    node);
		assert_string_equal(str(json_object_get(d, "health"), "state"), "healthy");
		/* the generic PCI backend's view fills what the family leaves: NUMA, link */
		assert_true(json_is_integer(json_object_get(d, "numa_node")));
		assert_non_null(json_object_get(json_object_get(d, "pci"), "link"));
		f->check(d, n);
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
	assert_int_equal(json_array_size(nodes_), f->check == check_gaudi ? 2 : 1);
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

/* Replaces the file @rel of the tree @root with @len bytes of @value at once. */
static void put_file(const char *root, const char *rel, const char *value, size_t len)
{
	char path[4096], tmp[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	f = fopen(tmp, "we");
	assert_non_null(f);
	assert_int_equal(fwrite(value, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
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
	h = test_wait_health(x, "0000:04:00.0", "unhealthy");
	assert_non_null(strstr(str(h, "reason"), "coral status is DEAD"));
	json_decref(h);
	json_decref(test_wait_health(x, "0000:03:00.0", "healthy"));

	/* it comes back alive; the other one goes lame */
	set_apex_status(x->root, "0000:04:00.0", 1, "ALIVE");
	set_apex_status(x->root, "0000:03:00.0", 0, "LAMED");
	h = test_wait_health(x, "0000:03:00.0", "unhealthy");
	assert_non_null(strstr(str(h, "reason"), "coral status is LAMED"));
	json_decref(h);
	json_decref(test_wait_health(x, "0000:04:00.0", "healthy"));

	/* a TPU at its hardware shutdown temperature is unhealthy, with both numbers */
	put_file(x->root, "sys/bus/pci/devices/0000:04:00.0/apex/apex_1/temp", "110000\n", 7);
	h = test_wait_health(x, "0000:04:00.0", "unhealthy");
	assert_non_null(strstr(str(h, "reason"), "temperature 110.0 °C is at or over the hardware "
						 "shutdown threshold (110.0 °C)"));
	json_decref(h);
	put_file(x->root, "sys/bus/pci/devices/0000:04:00.0/apex/apex_1/temp", "109900\n", 7);
	json_decref(test_wait_health(x, "0000:04:00.0", "healthy"));
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/*
 * Gaudi: the driver's status attribute sits on the PCI function; a device that needs a reset
 * is unhealthy with the driver's words, one whose status holds no text is unhealthy too, with
 * a warning naming the device and the file, and the rest of its record kept.
 */
/* Writes @text as the configuration of the running xpud @x, and reloads it. */
static void reload_with(struct test_xpud *x, const char *text)
{
	char conf[4096];
	FILE *f;

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", x->root);
	f = fopen(conf, "we");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(test_request_body(x, "POST", "/v1/reload", NULL, NULL), 200);
}

/*
 * Neuron devices core by core (neuron-cores: cores): each core a slice of
 * aws.amazon.com/neuroncore naming its number across the node in NEURON_RT_VISIBLE_CORES, with
 * its device's node; a grant of two cores names both; back to whole devices.
 */
static void test_neuron_cores(void **state)
{
	char *root = test_fixture_new("inf2"), conf[4096], path[256];
	const char *args[] = { "--config", conf, NULL };
	static const char *const addrs[] = { "0000:10:1e.0", "0000:11:1e.0", "0000:12:1e.0",
					     "0000:13:1e.0", "0000:14:1e.0", "0000:15:1e.0" };
	struct test_xpud *x;
	json_t *doc = NULL, *s, *g = NULL;
	size_t i;
	FILE *f;

	(void)state;
	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	f = fopen(conf, "we");
	assert_non_null(f);
	fputs("partitions:\n  - match: {vendor: aws}\n    neuron-cores: cores\n", f);
	assert_int_equal(fclose(f), 0);
	x = test_xpud_start(root, args);
	for (i = 0; i < 6; i++)
		test_wait_settled(x, addrs[i], "neuron-cores=cores");
	assert_int_equal(test_request(x, "GET", "/v1/slices", &doc), 200);
	assert_int_equal(json_array_size(json_object_get(doc, "slices")), 12);
	json_array_foreach(json_object_get(doc, "slices"), i, s) {
		char id[64], node[48], core[32];

		snprintf(id, sizeof(id), "%s/core-%zu", addrs[i / 2], i % 2);
		snprintf(node, sizeof(node), "/dev/neuron%zu", i / 2);
		snprintf(core, sizeof(core), "%zu", i);
		assert_string_equal(str(s, "id"), id);
		assert_string_equal(str(s, "resource"), "aws.amazon.com/neuroncore");
		assert_string_equal(str(json_object_get(s, "env"), "NEURON_RT_VISIBLE_CORES"), core);
		assert_null(str(json_object_get(s, "env"), "AWS_NEURON_VISIBLE_DEVICES"));
		assert_int_equal(json_array_size(json_object_get(s, "device_nodes")), 1);
		assert_string_equal(json_string_value(json_array_get(
					    json_object_get(s, "device_nodes"), 0)),
				    node);
		assert_true(json_real_value(json_object_get(s, "compute_fraction")) == 0.5);
	}
	json_decref(doc);
	assert_int_equal(test_capacity(x, "aws.amazon.com/neuroncore", "total"), 12);

	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"slices\": [\"0000:12:1e.0/core-1\", "
					   "\"0000:13:1e.0/core-0\"]}",
					   &g),
			 201);
	assert_string_equal(str(json_object_get(g, "env"), "NEURON_RT_VISIBLE_CORES"), "5,6");
	snprintf(path, sizeof(path), "/v1/allocations/%s", str(g, "id"));
	json_decref(g);

	/* whole again: the idle devices at once, the two in use once released */
	reload_with(x, "partitions:\n  - match: {vendor: aws}\n    neuron-cores: whole\n");
	for (i = 0; i < 6; i++)
		if (i != 2 && i != 3)
			test_wait_settled(x, addrs[i], "neuron-cores=whole");
	assert_int_equal(test_capacity(x, "aws.amazon.com/neuron", "total"), 4);
	assert_int_equal(test_capacity(x, "aws.amazon.com/neuroncore", "total"), 4);
	assert_int_equal(test_request(x, "DELETE", path, NULL), 200);
	test_wait_settled(x, addrs[2], "neuron-cores=whole");
	test_wait_settled(x, addrs[3], "neuron-cores=whole");
	assert_int_equal(test_capacity(x, "aws.amazon.com/neuron", "total"), 6);
	assert_int_equal(test_capacity(x, "aws.amazon.com/neuroncore", "total"), -1);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_gaudi_status(void **state)
{
	char *root = test_fixture_new("gaudi2");
	struct test_xpud *x;
	json_t *h, *d;

	(void)state;
	put_file(root, "sys/bus/pci/devices/0000:1e:00.0/status", "\x01\x02\xff\n", 4);
	x = test_xpud_start(root, NULL);
	h = test_wait_health(x, "0000:1e:00.0", "unhealthy");
	assert_non_null(strstr(str(h, "reason"), "gaudi: the driver's status cannot be read"));
	json_decref(h);
	assert_true(test_xpud_log_contains(x, "0000:1e:00.0: status of its class device or "
					      "function holds no printable value"));
	d = device(x, "0000:1e:00.0");
	assert_string_equal(str(d, "model"), "Habana Gaudi2");
	assert_string_equal(str(d, "resource"), "habana.ai/gaudi");
	json_decref(d);

	put_file(x->root, "sys/bus/pci/devices/0000:36:00.0/status", "Needs reset\n", 12);
	test_send_uevent(x, "change", "/devices/pci0000:34/0000:34:00.0/0000:35:00.0/0000:36:00.0",
			 "pci");
	h = test_wait_health(x, "0000:36:00.0", "unhealthy");
	assert_non_null(strstr(str(h, "reason"), "gaudi status is Needs reset"));
	json_decref(h);
	json_decref(test_wait_health(x, "0000:1a:00.0", "healthy"));
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* An accel function no family row claims, of a vendor xpud has no name for. */
static const char unknown_accel_json[] = "{\"pci\": [{\"address\": \"0000:5a:00.0\", "
	"\"vendor\": \"0x1f99\", \"device\": \"0x0001\", \"class\": \"0x120000\", "
	"\"driver\": \"someaccel\", \"numa_node\": 0, \"class_devices\": [{\"class\": \"accel\", "
	"\"name\": \"accel7\", \"devname\": \"accel/accel7\", \"major\": 261, \"minor\": 7}]}]}";

/* Makes @root/@rel a directory holding a uevent naming /dev/@devname. */
static void make_class_dir(const char *root, const char *rel, const char *devname)
{
	char cmd[8192], body[128];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/%s' && touch '%s/dev/%s'", root, rel, root,
		 devname);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s/uevent", rel);
	snprintf(body, sizeof(body), "MAJOR=261\nMINOR=9\nDEVNAME=%s\n", devname);
	put_file(root, cmd, body, strlen(body));
}

static void make_link(const char *root, const char *rel, const char *target)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(symlink(target, path), 0);
}

static json_t *find_device(json_t *list, const char *id)
{
	json_t *d;
	size_t i;

	json_array_foreach(list, i, d)
		if (strcmp(str(d, "id"), id) == 0)
			return d;
	fail_msg("no device %s", id);
	return NULL;
}

/*
 * The DRM accel class beyond the family table: the Intel NPU of the mixed node and a driver
 * xpud knows nothing of are reported from their driver and PCI ids with their accel node; a
 * platform NPU, a class device without a parent, and one whose parent went away during the
 * scan are each named in a warning; the first two are reported without PCI information, the
 * last is not, and nothing else breaks.
 */
static void test_accel_class(void **state)
{
	char *root = test_fixture_new("mixed"), *err = NULL;
	struct test_xpud *x;
	json_t *doc, *list, *d;
	size_t n_before;

	(void)state;
	assert_int_equal(fixture_build(unknown_accel_json, root, &err), 0);
	make_class_dir(root, "sys/devices/platform/npu.0/accel/accel9", "accel/accel9");
	make_link(root, "sys/devices/platform/npu.0/accel/accel9/device", "../../../npu.0");
	make_link(root, "sys/devices/platform/npu.0/driver", "../../../bus/platform/drivers/fnpu");
	make_link(root, "sys/class/accel/accel9", "../../devices/platform/npu.0/accel/accel9");
	make_class_dir(root, "sys/devices/virtual/accel/accel10", "accel/accel10");
	make_link(root, "sys/class/accel/accel10", "../../devices/virtual/accel/accel10");
	make_class_dir(root, "sys/class/accel/accel11", "accel/accel11");
	make_link(root, "sys/class/accel/accel11/device", "../../../devices/platform/gone.0");

	x = test_xpud_start(root, NULL);
	doc = devices_of(x);
	list = json_object_get(doc, "devices");
	n_before = json_array_size(list);

	d = find_device(list, "0000:00:0b.0"); /* intel_vpu */
	assert_string_equal(str(d, "backend"), "accel");
	assert_string_equal(str(d, "vendor"), "intel");
	assert_string_equal(str(d, "model"), "Intel NPU (Meteor Lake)");
	assert_string_equal(str(d, "driver"), "intel_vpu");
	assert_prop(d, "accel_family", "accel");
	assert_prop(d, "accel_index", "1");
	assert_int_equal(json_array_size(json_object_get(d, "device_nodes")), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(d, "device_nodes"), 0)),
			    "/dev/accel/accel1");
	assert_true(json_is_object(json_object_get(d, "pci")));

	d = find_device(list, "0000:5a:00.0");
	assert_string_equal(str(d, "backend"), "accel");
	assert_string_equal(str(d, "vendor"), "0x1f99");
	assert_string_equal(str(d, "model"), "0x1f99 accelerator 0x0001");
	assert_string_equal(str(d, "driver"), "someaccel");
	assert_string_equal(json_string_value(json_array_get(json_object_get(d, "device_nodes"), 0)),
			    "/dev/accel/accel7");
	assert_string_equal(str(json_object_get(d, "health"), "state"), "healthy");

	d = find_device(list, "npu.0");
	assert_string_equal(str(d, "kind"), "accel");
	assert_string_equal(str(d, "vendor"), "unknown");
	assert_string_equal(str(d, "model"), "fnpu accelerator npu.0");
	assert_string_equal(str(d, "driver"), "fnpu");
	assert_true(json_is_null(json_object_get(d, "pci")));
	assert_string_equal(json_string_value(json_array_get(json_object_get(d, "device_nodes"), 0)),
			    "/dev/accel/accel9");
	assert_true(test_xpud_log_contains(x, "accel9: its parent npu.0 is not a PCI function"));

	d = find_device(list, "accel10");
	assert_string_equal(str(d, "model"), "Platform accelerator accel10");
	assert_true(json_is_null(json_object_get(d, "pci")));
	assert_true(test_xpud_log_contains(x, "accel10: it has no parent device"));

	assert_true(test_xpud_log_contains(x, "accel11: its device link leads nowhere"));
	for (size_t i = 0; i < json_array_size(list); i++)
		assert_null(strstr(str(json_array_get(list, i), "id"), "gone"));
	json_decref(doc);

	/* a rescan finds the same, once each */
	test_send_uevent(x, "change", "/devices/pci0000:00/0000:00:0b.0", "pci");
	usleep(300 * 1000);
	doc = devices_of(x);
	assert_int_equal(json_array_size(json_object_get(doc, "devices")), n_before);
	json_decref(doc);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_simulate_list(void **state)
{
	char *out = test_simulate_list_output();

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(nodes); i++)
		if (!strstr(out, nodes[i].node))
			fail_msg("xpud --simulate list lacks %s:\n%s", nodes[i].node, out);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_families),
		cmocka_unit_test(test_coral_status),
		cmocka_unit_test(test_neuron_cores),
		cmocka_unit_test(test_gaudi_status),
		cmocka_unit_test(test_accel_class),
		cmocka_unit_test(test_simulate_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
