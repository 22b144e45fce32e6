// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The helper protocol (core/helper-proto.h): a device survives the trip through JSON with every
 * field a backend fills in, every device the NVIDIA backend makes on the fixture nodes included;
 * a whole reply with every message parses into the right struct; and each way a reply can be
 * wrong is refused with the line and the field, the caller's struct left alone.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backends/backend.h"
#include "core/config.h"
#include "core/helper-proto.h"
#include "shared/host.h"
#include "shared/macro.h"
#include "shared/strv.h"
#include "sim/fixture.h"
#include "testutil.h"

/* device_equal(), and what it leaves out: the health actions, the device's and its slices'. */
static void assert_device_same(const struct xpu_device *a, const struct xpu_device *b)
{
	assert_true(device_equal(a, b));
	assert_int_equal(a->health.action, b->health.action);
	assert_int_equal(a->n_partitions, b->n_partitions);
	for (size_t i = 0; i < a->n_partitions; i++)
		assert_int_equal(a->partitions[i]->health.action, b->partitions[i]->health.action);
}

/* @d as a helper prints it and as xpud reads it back: one reply with its device and an end. */
static struct xpu_device *through_reply(const struct xpu_device *d)
{
	_cleanup_free_ char *buf = NULL, *error = NULL;
	struct helper_reply r = {};
	struct xpu_device *back;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(helper_emit(f, helper_msg_device(d)), 0);
	assert_int_equal(helper_emit(f, helper_msg_end()), 0);
	assert_int_equal(fclose(f), 0);
	if (helper_reply_parse(buf, len, &r, &error) != 0)
		fail_msg("%s\n%s", error, buf);
	assert_int_equal(r.devices.n, 1);
	back = TAKE_PTR(r.devices.items[0]);
	r.devices.n = 0;
	helper_reply_done(&r);
	return back;
}

static void assert_round_trip(const struct xpu_device *d)
{
	_cleanup_(device_freep) struct xpu_device *back = NULL, *direct = NULL;
	_cleanup_free_ char *error = NULL;
	json_t *j = device_to_json(d);

	assert_non_null(j);
	if (device_from_json(j, &direct, &error) != 0)
		fail_msg("%s: %s", d->id, error);
	json_decref(j);
	assert_device_same(d, direct);
	back = through_reply(d);
	assert_device_same(d, back);
}

static struct xpu_slice *mig_slice(const char *id, const char *profile, uint64_t memory,
				   double compute, unsigned gi)
{
	struct xpu_slice *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->id = strdup(id);
	s->device_id = strdup("0000:18:00.0");
	s->profile = strdup(profile);
	assert_true(asprintf(&s->resource, "nvidia.com/mig-%s", profile) > 0);
	s->memory_bytes = memory;
	s->compute_fraction = compute;
	assert_int_equal(strv_env_set(&s->env, "NVIDIA_VISIBLE_DEVICES", id), 0);
	assert_int_equal(strv_env_set(&s->env, "CUDA_VISIBLE_DEVICES", id), 0);
	assert_int_equal(strv_extendf(&s->device_nodes, "/dev/nvidia-caps/nvidia-cap%u", 30 + gi),
			 0);
	assert_int_equal(strv_extend(&s->device_nodes, "/dev/nvidia-caps/nvidia-cap31"), 0);
	return s;
}

/* An H100 in MIG mode with two instances, one of them hit by a fault that needs a reset. */
static struct xpu_device *rich_device(void)
{
	static const struct xpu_partition_profile profiles[] = {
	    {"1g.10gb", 5, 7, 9984ULL << 20, 1 / 7.0},
	    {"2g.20gb", 2, 3, 20096ULL << 20, 2 / 7.0},
	    {"3g.40gb", 1, 2, 40320ULL << 20, 3 / 7.0},
	    {"7g.80gb", 0, 1, 80896ULL << 20, 1.0},
	};
	struct xpu_device *d = device_new();
	struct xpu_slice *s;

	assert_non_null(d);
	d->id = strdup("0000:18:00.0");
	d->kind = XPU_KIND_GPU;
	d->vendor = strdup("nvidia");
	d->model = strdup("NVIDIA H100 80GB HBM3");
	d->has_pci = true;
	d->pci = (struct xpu_pci_info){
	    .address = "0000:18:00.0",
	    .vendor_id = 0x10de,
	    .device_id = 0x2330,
	    .subsystem_vendor_id = 0x10de,
	    .subsystem_device_id = 0x16c1,
	    .class_code = 0x030200,
	    .revision = 0xa1,
	    .link_speed_mts = 32000,
	    .link_width = 16,
	    .max_link_speed_mts = 32000,
	    .max_link_width = 16,
	};
	d->driver = strdup("nvidia");
	d->numa_node = 0;
	d->cpu_list = strdup("0-55,112-167");
	d->memory_bytes = 85520809984ULL;
	d->uuid = strdup("GPU-8a7c3b9e-4f2d-4c1a-9e6b-1d2c3b4a5f60");
	assert_int_equal(strv_extend(&d->device_nodes, "/dev/nvidia0"), 0);
	assert_int_equal(strv_extend(&d->device_nodes, "/dev/nvidiactl"), 0);
	assert_int_equal(
	    device_set_fault(d, HEALTH_ACTION_RESET_DEVICE, "XID 79: GPU has fallen off the bus"),
	    0);
	d->resource = strdup("nvidia.com/gpu");
	assert_int_equal(strv_env_set(&d->env, "NVIDIA_VISIBLE_DEVICES", d->uuid), 0);
	assert_int_equal(strv_env_set(&d->env, "EMPTY_IS_A_VALUE", ""), 0);
	assert_int_equal(device_set_property(d, "mig_mode", "enabled"), 0);
	assert_int_equal(device_set_property(d, "driver_version", "580.95.05"), 0);
	assert_int_equal(device_set_property(d, "topology.0000:2a:00.0", "NV18"), 0);
	assert_int_equal(device_set_property(d, "empty", ""), 0);
	assert_int_equal(device_set_property(d, "compute_capability", "9.0"), 0);
	assert_int_equal(
	    device_add_partition(d, mig_slice("MIG-1aa1c434-8394-57cf-b8d9-1f0cb5a77ae1", "1g.10gb",
					      10468982784ULL, 1 / 7.0, 1)),
	    0);
	s = mig_slice("MIG-d9a93c1a-6dad-5865-8f4b-697555cd626d", "3g.40gb", 42144366592ULL,
		      3 / 7.0, 2);
	s->shared = true;
	s->health = (struct xpu_health){.state = XPU_HEALTH_UNHEALTHY,
					.reason = strdup("XID 94: contained ECC error"),
					.action = HEALTH_ACTION_RESTART_APP};
	assert_int_equal(device_add_partition(d, s), 0);
	d->partitioned = true;
	d->partition_capable = true;
	d->partition_pending = true;
	for (size_t i = 0; i < ELEMENTSOF(profiles); i++)
		assert_int_equal(device_add_profile(d, &profiles[i]), 0);
	return d;
}

static void test_round_trip_rich(void **state)
{
	_cleanup_(device_freep) struct xpu_device *d = rich_device(), *back = NULL;
	_cleanup_free_ char *text = NULL;
	json_t *j;

	assert_round_trip(d);
	back = through_reply(d);
	/* what device_equal() would also see, spelled out once */
	assert_int_equal(back->health.action, HEALTH_ACTION_RESET_DEVICE);
	assert_string_equal(back->health.reason, "XID 79: GPU has fallen off the bus");
	assert_int_equal(back->partitions[1]->health.action, HEALTH_ACTION_RESTART_APP);
	assert_true(back->partitions[1]->shared);
	assert_true(back->partitions[0]->compute_fraction == 1 / 7.0);
	assert_string_equal(back->pci.address, "0000:18:00.0");
	assert_int_equal(back->pci.revision, 0xa1);
	assert_int_equal(back->pci.class_code, 0x030200);
	assert_string_equal(strv_env_get(back->env, "EMPTY_IS_A_VALUE"), "");
	assert_string_equal(device_get_property(back, "empty"), "");
	assert_string_equal(back->properties[4], "topology.0000:2a:00.0"); /* the order kept */
	assert_int_equal(back->n_profiles, 4);
	assert_true(back->profiles[2].memory_bytes == 40320ULL << 20);
	assert_true(back->partition_pending && back->partitioned && back->partition_capable);

	/* the wire form: properties an object, the PCI function an object */
	j = device_to_json(d);
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	assert_non_null(strstr(text, "\"properties\":{\"mig_mode\":\"enabled\""));
	assert_non_null(strstr(text, "\"health\":{\"state\":\"unhealthy\",\"reason\":\"XID 79: "
				     "GPU has fallen off the bus\",\"action\":3}"));
}

static void test_round_trip_minimal(void **state)
{
	_cleanup_(device_freep) struct xpu_device *d = device_new(), *back = NULL;

	assert_non_null(d);
	d->id = strdup("accel0");
	d->kind = XPU_KIND_ACCEL;
	assert_round_trip(d);
	back = through_reply(d);
	assert_false(back->has_pci);
	assert_int_equal(back->numa_node, -1);
	assert_null(back->vendor);
	assert_null(back->properties);
	assert_null(back->env);
	assert_int_equal(back->n_partitions, 0);
	assert_int_equal(back->health.state, XPU_HEALTH_HEALTHY);
	assert_null(back->health.reason);

	/* the smallest record a helper may send: absent members are the defaults */
	{
		_cleanup_(device_freep) struct xpu_device *m = NULL;
		json_t *j = json_pack("{s:s, s:s}", "id", "accel0", "kind", "accel");

		assert_int_equal(device_from_json(j, &m, NULL), 0);
		json_decref(j);
		assert_device_same(d, m);
	}
}

/* Every device the NVIDIA backend makes from the fake NVML on the fixture nodes. */
static void test_round_trip_nvidia(void **state)
{
	static const char *const nodes[] = {"hgx-h100", "real-h100-vm", "nvidia-faults"};
	_cleanup_free_ char *lib = NULL;
	size_t partitioned = 0, unhealthy = 0;

	assert_true(asprintf(&lib, "%s/libnvidia-ml.so.1", test_env("XPU_FAKE_NVML_DIR")) > 0);
	setenv("XPU_NVML_LIBRARY", lib, 1);
	unsetenv("XPU_CUDA_LIBRARY");
	for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
		_cleanup_free_ char *root = test_fixture_new(nodes[i]), *json = NULL;
		_cleanup_free_ char *reason = NULL;
		struct xpu_backend b = {.ops = &nvidia_backend_ops};
		struct device_list list = {};
		struct xpu_host *host;

		assert_true(asprintf(&json, "%s/run/fake-nvml.json", root) > 0);
		setenv("XPU_FAKE_NVML", json, 1);
		assert_int_equal(host_open(root, &host), 0);
		b.host = host;
		if (b.ops->probe(&b, &reason) < 0)
			fail_msg("%s: nvidia backend unavailable on the fake: %s", nodes[i],
				 reason);
		assert_int_equal(b.ops->enumerate(&b, &list), 0);
		assert_true(list.n > 0);
		for (size_t k = 0; k < list.n; k++) {
			assert_round_trip(list.items[k]);
			partitioned += list.items[k]->n_partitions > 0;
			unhealthy += list.items[k]->health.state == XPU_HEALTH_UNHEALTHY;
		}
		device_list_clear(&list);
		b.ops->close(&b);
		host_free(host);
		assert_int_equal(fixture_destroy(root), 0);
	}
	/* the nodes did hold MIG instances and GPUs in trouble */
	assert_true(partitioned > 0);
	assert_true(unhealthy > 0);
	unsetenv("XPU_FAKE_NVML");
}

/* A full reply: every message type, as the helper prints it. */
static void test_full_reply(void **state)
{
	_cleanup_(device_freep) struct xpu_device *rich = rich_device(), *small = device_new();
	char *hello_facts[] = {"driver_version", "580.95.05", "nvml_version", "12.580.95.05", NULL};
	char *dev_facts[] = {"cuda_ordinal", "0", NULL};
	_cleanup_free_ char *buf = NULL, *error = NULL;
	struct helper_reply r = {};
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_non_null(small);
	small->id = strdup("0000:2a:00.0");
	assert_int_equal(helper_emit(f, helper_msg_hello("nvml", hello_facts)), 0);
	assert_int_equal(helper_emit(f, helper_msg_device(rich)), 0);
	assert_int_equal(helper_emit(f, helper_msg_device(small)), 0);
	assert_int_equal(helper_emit(f, helper_msg_failure(3, "0000:3b:00.0", "NVML: GPU is lost")),
			 0);
	assert_int_equal(helper_emit(f, helper_msg_failure(5, NULL, "NVML: Unknown Error")), 0);
	assert_int_equal(
	    helper_emit(f, helper_msg_slice_ref("0000:18:00.0", rich->partitions[1]->id, 2, 0)), 0);
	assert_int_equal(helper_emit(f, helper_msg_facts("0000:18:00.0", dev_facts)), 0);
	assert_int_equal(helper_emit(f, helper_msg_result(-ENOENT, "no such instance", 7)), 0);
	assert_int_equal(helper_emit(f, helper_msg_error(-ENOENT, true,
							 "libnvidia-ml.so.1: cannot open shared "
							 "object file")),
			 0);
	assert_int_equal(helper_emit(f, helper_msg_end()), 0);
	assert_int_equal(fclose(f), 0);

	/* one line each, "v" first */
	assert_int_equal(strncmp(buf, "{\"v\":1,\"type\":\"hello\",\"helper\":\"nvml\",", 38), 0);
	assert_non_null(strstr(buf, "\n{\"v\":1,\"type\":\"failure\",\"index\":5,\"id\":null,"));
	assert_int_equal(strcmp(buf + len - 21, "{\"v\":1,\"type\":\"end\"}\n"), 0);

	if (helper_reply_parse(buf, len, &r, &error) != 0)
		fail_msg("%s", error);
	assert_null(error);
	assert_string_equal(r.helper, "nvml");
	assert_true(strv_equal(r.facts, hello_facts));
	assert_int_equal(r.devices.n, 2);
	assert_device_same(r.devices.items[0], rich);
	assert_device_same(r.devices.items[1], small);
	assert_int_equal(r.n_failures, 2);
	assert_int_equal(r.failures[0].index, 3);
	assert_string_equal(r.failures[0].id, "0000:3b:00.0");
	assert_string_equal(r.failures[0].error, "NVML: GPU is lost");
	assert_int_equal(r.failures[1].index, 5);
	assert_null(r.failures[1].id);
	assert_int_equal(r.n_slice_refs, 1);
	assert_string_equal(r.slice_refs[0].id, "0000:18:00.0");
	assert_string_equal(r.slice_refs[0].slice, "MIG-d9a93c1a-6dad-5865-8f4b-697555cd626d");
	assert_int_equal(r.slice_refs[0].coords[0], 2);
	assert_int_equal(r.slice_refs[0].coords[1], 0);
	assert_int_equal(r.n_device_facts, 1);
	assert_string_equal(r.device_facts[0].id, "0000:18:00.0");
	assert_true(strv_equal(r.device_facts[0].facts, dev_facts));
	assert_true(r.has_result);
	assert_int_equal(r.result_errno, -ENOENT);
	assert_string_equal(r.result_error, "no such instance");
	assert_true(r.result_value == 7);
	assert_true(r.has_error);
	assert_int_equal(r.error_errno, -ENOENT);
	assert_true(r.error_unavailable);
	assert_string_equal(r.error, "libnvidia-ml.so.1: cannot open shared object file");
	helper_reply_done(&r);
	helper_reply_done(&r); /* done twice is harmless */

	/* the least a reply is: its end; the rest are absent */
	assert_int_equal(helper_reply_parse("{\"v\":1,\"type\":\"end\"}", 20, &r, NULL), 0);
	assert_null(r.helper);
	assert_int_equal(r.devices.n, 0);
	assert_false(r.has_result);
	assert_false(r.has_error);
	helper_reply_done(&r);
	/* a result's extremes */
	{
		const char *s = "{\"v\":1,\"type\":\"result\",\"errno\":0,\"error\":null,\"value\":"
				"-9223372036854775808}\n{\"v\":1,\"type\":\"end\"}\n";

		assert_int_equal(helper_reply_parse(s, strlen(s), &r, NULL), 0);
		assert_true(r.result_value == LLONG_MIN);
		assert_int_equal(r.result_errno, 0);
		assert_null(r.result_error);
		helper_reply_done(&r);
	}
}

/* A copy of @n bytes of @s in a buffer of exactly @n bytes: ASan sees any read past it. */
static char *exact(const char *s, size_t n)
{
	char *p = malloc(n ?: 1);

	assert_non_null(p);
	memcpy(p, s, n);
	return p;
}

/* @reply (@len bytes) is refused with @message, and the caller's struct is left as it was. */
static void assert_refused_len(const char *reply, size_t len, const char *message)
{
	_cleanup_free_ char *buf = exact(reply, len), *error = NULL;
	struct helper_reply r, before;
	int k;

	memset(&r, 0x5a, sizeof(r));
	before = r;
	k = helper_reply_parse(buf, len, &r, &error);
	if (k != -EBADMSG)
		fail_msg("expected -EBADMSG, got %d for: %.200s", k, reply);
	assert_non_null(error);
	if (!streq(error, message))
		fail_msg("expected \"%s\", got \"%s\"", message, error);
	assert_memory_equal(&r, &before, sizeof(r));
}

static void assert_refused(const char *reply, const char *message)
{
	assert_refused_len(reply, strlen(reply), message);
}

#define END "{\"v\":1,\"type\":\"end\"}\n"
#define DEV(fields)                                                                                \
	"{\"v\":1,\"type\":\"device\",\"device\":{\"id\":\"d0\",\"kind\":\"gpu\"" fields "}}\n"

static void test_refused_framing(void **state)
{
	assert_refused("", "empty reply");
	assert_refused("{\"v\":1,\"type\":\"hello\",\"helper\":\"nvml\",\"facts\":{}}\n" DEV(""),
		       "truncated: no \"end\" after line 2");
	/* the end line itself cut short */
	assert_refused(DEV("") "{\"v\":1,\"type\":\"en",
		       "line 2: not a JSON object: premature end of input near '\"en'");
	assert_refused(DEV("") "{\"v\":1,\"type\":\"end\"",
		       "line 2: not a JSON object: '}' expected near end of file");
	assert_refused(END END, "line 2: text after \"end\"");
	assert_refused(END "\n", "line 2: text after \"end\"");
	assert_refused(END DEV(""), "line 2: text after \"end\"");
	assert_refused("[1,2]\n" END, "line 1: not a JSON object");
	assert_refused("\"end\"\n" END, "line 1: not a JSON object: '[' or '{' expected near "
					"'\"end\"'");
	assert_refused("\n" END, "line 1: not a JSON object: '[' or '{' expected near end of file");
	assert_refused(END "garbage", "line 2: text after \"end\"");
	assert_refused_len("{\"v\":1,\"type\":\"end\"\0}\n", 22, "line 1: contains a NUL byte");
	assert_refused_len(DEV("") "\0" END, strlen(DEV("")) + 1 + strlen(END),
			   "line 2: contains a NUL byte");
	assert_refused("{\"v\":1,\"type\":\"end\",\"type\":\"end\"}\n",
		       "line 1: not a JSON object: duplicate object key near '\"type\"'");
}

/* A line of exactly @n bytes (newline not counted): @msg padded with blanks. */
static char *padded(const char *msg, size_t n)
{
	char *s = malloc(n + 2);

	assert_non_null(s);
	memset(s, ' ', n);
	memcpy(s, msg, strlen(msg));
	s[n] = '\n';
	s[n + 1] = '\0';
	return s;
}

static void test_refused_sizes(void **state)
{
	_cleanup_free_ char *line = NULL, *big = NULL, *over = NULL;
	struct helper_reply r = {};
	size_t n;

	/* a line of HELPER_LINE_MAX bytes is read, one more byte is not */
	line = padded("{\"v\":1,\"type\":\"end\"}", HELPER_LINE_MAX);
	assert_int_equal(helper_reply_parse(line, HELPER_LINE_MAX + 1, &r, NULL), 0);
	helper_reply_done(&r);
	free(line);
	line = padded("{\"v\":1,\"type\":\"end\"}", HELPER_LINE_MAX + 1);
	assert_refused_len(line, HELPER_LINE_MAX + 2, "line 1: longer than 262144 bytes");

	/* a reply of HELPER_OUTPUT_MAX bytes is read, one more byte is not */
	n = HELPER_OUTPUT_MAX / HELPER_LINE_MAX;
	big = malloc(HELPER_OUTPUT_MAX + 2);
	assert_non_null(big);
	for (size_t i = 0; i + 1 < n; i++) {
		free(line);
		line = padded("{\"v\":1,\"type\":\"facts\",\"id\":\"d0\",\"facts\":{}}",
			      HELPER_LINE_MAX - 1);
		memcpy(big + i * HELPER_LINE_MAX, line, HELPER_LINE_MAX);
	}
	free(line);
	line = padded("{\"v\":1,\"type\":\"end\"}", HELPER_LINE_MAX); /* the last, without '\n' */
	memcpy(big + (n - 1) * HELPER_LINE_MAX, line, HELPER_LINE_MAX);
	assert_int_equal(helper_reply_parse(big, HELPER_OUTPUT_MAX, &r, NULL), 0);
	assert_int_equal(r.n_device_facts, n - 1);
	helper_reply_done(&r);
	big[HELPER_OUTPUT_MAX] = '\n';
	assert_refused_len(big, HELPER_OUTPUT_MAX + 1, "reply longer than 4194304 bytes");

	/* the helper's side will not print a line xpud would refuse */
	over = malloc(HELPER_LINE_MAX + 1);
	assert_non_null(over);
	memset(over, 'x', HELPER_LINE_MAX);
	over[HELPER_LINE_MAX] = '\0';
	{
		_cleanup_free_ char *out = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&out, &len);

		assert_non_null(f);
		assert_int_equal(helper_emit(f, helper_msg_failure(0, NULL, over)), -E2BIG);
		assert_int_equal(helper_emit(f, NULL), -ENOMEM);
		assert_int_equal(fclose(f), 0);
		assert_int_equal(len, 0);
	}
}

/* @n lines "@pre<index>@post", then @tail. */
static char *repeat(size_t n, const char *pre, const char *post, const char *tail)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	assert_non_null(f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%zu%s", pre, i, post);
	fputs(tail, f);
	assert_int_equal(fclose(f), 0);
	return s;
}

static void test_refused_limits(void **state)
{
	static const char device[] = "{\"v\":1,\"type\":\"device\",\"device\":{\"id\":\"d",
			  device_end[] = "\",\"kind\":\"gpu\"}}\n",
			  failure[] = "{\"v\":1,\"type\":\"failure\",\"index\":",
			  failure_end[] = ",\"id\":null,\"error\":\"e\"}\n";
	_cleanup_free_ char *ok = repeat(HELPER_MAX_DEVICES, device, device_end, END);
	_cleanup_free_ char *many = repeat(HELPER_MAX_DEVICES + 1, device, device_end, END);
	_cleanup_free_ char *failures = repeat(HELPER_MAX_ITEMS + 1, failure, failure_end, END);
	struct helper_reply r = {};

	assert_int_equal(helper_reply_parse(ok, strlen(ok), &r, NULL), 0);
	assert_int_equal(r.devices.n, HELPER_MAX_DEVICES);
	helper_reply_done(&r);
	assert_refused(many, "line 257: more than 256 devices");
	assert_refused(failures, "line 4097: more than 4096 failures");
	assert_refused(DEV("") DEV(""), "line 2: device.id: 'd0' is listed twice");
	/* 1024 facts in one message, not 1025 */
	for (size_t n = 1024; n <= 1025; n++) {
		_cleanup_free_ char *facts = repeat(n - 1, "\"k", "\":\"v\",", "\"last\":\"v\"");
		_cleanup_free_ char *reply = NULL;

		assert_true(asprintf(&reply,
				     "{\"v\":1,\"type\":\"facts\",\"id\":\"d0\",\"facts\":{%s}}\n" END,
				     facts) > 0);
		if (n == 1024) {
			assert_int_equal(helper_reply_parse(reply, strlen(reply), &r, NULL), 0);
			assert_int_equal(strv_length(r.device_facts[0].facts), 2 * 1024);
			helper_reply_done(&r);
		} else {
			assert_refused(reply, "line 1: facts: more than 1024 facts");
		}
	}
	assert_refused("{\"v\":1,\"type\":\"result\",\"errno\":0,\"error\":null,\"value\":0}\n"
		       "{\"v\":1,\"type\":\"result\",\"errno\":0,\"error\":null,\"value\":0}\n" END,
		       "line 2: a second result");
	assert_refused(END "{\"v\":1,\"type\":\"hello\",\"helper\":\"nvml\",\"facts\":{}}\n",
		       "line 2: text after \"end\"");
	assert_refused(
	    DEV("") "{\"v\":1,\"type\":\"hello\",\"helper\":\"nvml\",\"facts\":{}}\n" END,
	    "line 2: hello: not the first line");
}

static void test_refused_messages(void **state)
{
	/* the version */
	assert_refused("{\"v\":2,\"type\":\"end\"}\n", "line 1: v: version 2, expected 1");
	assert_refused("{\"type\":\"end\"}\n", "line 1: v: missing");
	assert_refused("{\"v\":\"1\",\"type\":\"end\"}\n", "line 1: v: not an integer");
	assert_refused("{\"v\":1.0,\"type\":\"end\"}\n", "line 1: v: not an integer");
	/* the type */
	assert_refused("{\"v\":1,\"type\":\"bogus\"}\n" END, "line 1: type: unknown type 'bogus'");
	assert_refused("{\"v\":1}\n" END, "line 1: type: missing");
	assert_refused("{\"v\":1,\"type\":7}\n" END, "line 1: type: not a string");
	/* unknown fields, at any depth */
	assert_refused("{\"v\":1,\"type\":\"end\",\"extra\":1}\n", "line 1: extra: unknown field");
	assert_refused(DEV(",\"pci\":{\"address\":\"0000:18:00.0\",\"colour\":1}") END,
		       "line 1: device.pci.colour: unknown field");
	assert_refused(DEV(",\"backend\":\"nvidia\"") END, "line 1: device.backend: unknown field");
	/* fields missing, null or of the wrong type */
	assert_refused("{\"v\":1,\"type\":\"failure\",\"index\":3,\"id\":null}\n" END,
		       "line 1: error: missing");
	assert_refused("{\"v\":1,\"type\":\"failure\",\"index\":3,\"error\":\"x\"}\n" END,
		       "line 1: id: missing");
	assert_refused(
	    "{\"v\":1,\"type\":\"failure\",\"index\":\"3\",\"id\":null,\"error\":\"x\"}\n" END,
	    "line 1: index: not an integer");
	assert_refused(
	    "{\"v\":1,\"type\":\"failure\",\"index\":-2,\"id\":null,\"error\":\"x\"}\n" END,
	    "line 1: index: -2 is outside -1..2147483647");
	assert_refused(
	    "{\"v\":1,\"type\":\"failure\",\"index\":0,\"id\":null,\"error\":null}\n" END,
	    "line 1: error: is null");
	assert_refused("{\"v\":1,\"type\":\"device\"}\n" END, "line 1: device: missing");
	assert_refused("{\"v\":1,\"type\":\"device\",\"device\":[]}\n" END,
		       "line 1: device: not an object");
	assert_refused("{\"v\":1,\"type\":\"device\",\"device\":{\"kind\":\"gpu\"}}\n" END,
		       "line 1: device.id: missing");
	assert_refused("{\"v\":1,\"type\":\"hello\",\"helper\":\"nvml\",\"facts\":{\"a\":1}}\n" END,
		       "line 1: facts.a: not a string");
	assert_refused("{\"v\":1,\"type\":\"hello\",\"helper\":\"nvml\"}\n" END,
		       "line 1: facts: missing");
	assert_refused("{\"v\":1,\"type\":\"facts\",\"id\":\"d0\",\"facts\":[]}\n" END,
		       "line 1: facts: not an object");
	assert_refused(
	    "{\"v\":1,\"type\":\"slice-ref\",\"id\":\"d0\",\"slice\":\"s\",\"coords\":[1]}\n" END,
	    "line 1: coords: not a list of two numbers");
	assert_refused("{\"v\":1,\"type\":\"slice-ref\",\"id\":\"d0\",\"slice\":\"s\",\"coords\":["
		       "1,-1]}\n" END,
		       "line 1: coords[1]: -1 is outside 0..4294967295");
	assert_refused("{\"v\":1,\"type\":\"result\",\"errno\":1,\"error\":null,\"value\":0}\n" END,
		       "line 1: errno: 1 is outside -4095..0");
	assert_refused(
	    "{\"v\":1,\"type\":\"result\",\"errno\":-4096,\"error\":null,\"value\":0}\n" END,
	    "line 1: errno: -4096 is outside -4095..0");
	assert_refused("{\"v\":1,\"type\":\"result\",\"errno\":0,\"error\":null}\n" END,
		       "line 1: value: missing");
	assert_refused(
	    "{\"v\":1,\"type\":\"error\",\"errno\":0,\"unavailable\":false,\"error\":\"x\"}\n" END,
	    "line 1: errno: 0 is outside -4095..-1");
	assert_refused(
	    "{\"v\":1,\"type\":\"error\",\"errno\":-2,\"unavailable\":1,\"error\":\"x\"}\n" END,
	    "line 1: unavailable: not true or false");
}

static void test_refused_device_fields(void **state)
{
	static const struct {
		const char *fields, *message;
	} cases[] = {
	    {",\"pci\":{\"address\":\"18:00.0\"}", "device.pci.address: not a PCI address"},
	    {",\"pci\":{\"address\":\"0000:18:00.8\"}", "device.pci.address: not a PCI address"},
	    {",\"pci\":{\"address\":\"0000:1A:00.0\"}", "device.pci.address: not a PCI address"},
	    {",\"pci\":{}", "device.pci.address: missing"},
	    {",\"pci\":{\"address\":\"0000:18:00.0\",\"vendor_id\":65536}",
	     "device.pci.vendor_id: 65536 is outside 0..65535"},
	    {",\"pci\":{\"address\":\"0000:18:00.0\",\"class_code\":16777216}",
	     "device.pci.class_code: 16777216 is outside 0..16777215"},
	    {",\"pci\":{\"address\":\"0000:18:00.0\",\"revision\":256}",
	     "device.pci.revision: 256 is outside 0..255"},
	    {",\"pci\":{\"address\":\"0000:18:00.0\",\"link_width\":-1}",
	     "device.pci.link_width: -1 is outside 0..4294967295"},
	    {",\"memory_bytes\":-1", "device.memory_bytes: -1 is outside 0..9223372036854775807"},
	    {",\"memory_bytes\":1e3", "device.memory_bytes: not an integer"},
	    {",\"numa_node\":-2", "device.numa_node: -2 is outside -1..2147483647"},
	    {",\"numa_node\":null", "device.numa_node: not an integer"},
	    {",\"cpu_list\":\"3-1\"", "device.cpu_list: not a CPU list"},
	    {",\"model\":\"caf\\u00e9\"", "device.model: not printable ASCII"},
	    {",\"model\":\"a\\nb\"", "device.model: not printable ASCII"},
	    {",\"model\":\"\"", "device.model: empty"},
	    {",\"model\":7", "device.model: not a string"},
	    {",\"device_nodes\":[\"/dev/nvidia0\",\"dev/nvidiactl\"]",
	     "device.device_nodes[1]: not an absolute path"},
	    {",\"device_nodes\":\"/dev/nvidia0\"", "device.device_nodes: not a list"},
	    {",\"env\":[\"=x\"]", "device.env[0]: not KEY=VALUE"},
	    {",\"health\":{\"state\":\"sick\"}", "device.health.state: 'sick' is not healthy or "
						 "unhealthy"},
	    {",\"health\":{\"reason\":\"x\"}", "device.health.state: missing"},
	    {",\"health\":{\"state\":\"unhealthy\",\"action\":5}",
	     "device.health.action: 5 is outside 0..4"},
	    {",\"health\":{\"state\":\"unhealthy\",\"action\":-1}",
	     "device.health.action: -1 is outside 0..4"},
	    {",\"properties\":{\"\":\"x\"}", "device.properties: empty key"},
	    {",\"properties\":{\"a\\tb\":\"x\"}",
	     "device.properties.a?b: key not printable ASCII of at most 4096 bytes"},
	    {",\"properties\":[]", "device.properties: not an object"},
	    {",\"partitioned\":\"yes\"", "device.partitioned: not true or false"},
	    {",\"partitions\":[{\"id\":\"p0\"},{\"id\":\"p1\"},{\"id\":\"p2\",\"env\":[\"A=1\","
	     "\"B\"]}]",
	     "device.partitions[2].env[1]: not KEY=VALUE"},
	    {",\"partitions\":[{\"id\":\"p0\",\"compute_fraction\":1.5}]",
	     "device.partitions[0].compute_fraction: 1.5 is outside 0..1"},
	    {",\"partitions\":[{\"id\":\"p0\",\"compute_fraction\":-0.25}]",
	     "device.partitions[0].compute_fraction: -0.25 is outside 0..1"},
	    {",\"partitions\":[{\"device_id\":\"d0\"}]", "device.partitions[0].id: missing"},
	    {",\"partitions\":[{\"id\":\"p0\",\"health\":{\"state\":\"unhealthy\",\"action\":"
	     "99}}]",
	     "device.partitions[0].health.action: 99 is outside 0..4"},
	    {",\"partitions\":[7]", "device.partitions[0]: not an object"},
	    {",\"profiles\":[{\"name\":\"1g.10gb\",\"total\":-7}]",
	     "device.profiles[0].total: -7 is outside 0..4294967295"},
	    {",\"profiles\":[{\"name\":\"1g.10gb\",\"compute_fraction\":\"1\"}]",
	     "device.profiles[0].compute_fraction: not a number"},
	    {",\"profiles\":[{\"free\":1}]", "device.profiles[0].name: missing"},
	};

	assert_refused(DEV(",\"kind\":\"tpu\"") END,
		       "line 1: not a JSON object: duplicate object key near '\"kind\"'");
	assert_refused(
	    "{\"v\":1,\"type\":\"device\",\"device\":{\"id\":\"d0\",\"kind\":\"tpu\"}}\n" END,
	    "line 1: device.kind: 'tpu' is not gpu, accel or fpga");
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *reply = NULL, *message = NULL;

		assert_true(asprintf(&reply,
				     "{\"v\":1,\"type\":\"device\",\"device\":{\"id\":\"d0\","
				     "\"kind\":\"gpu\"%s}}\n" END,
				     cases[i].fields) > 0);
		assert_true(asprintf(&message, "line 1: %s", cases[i].message) > 0);
		assert_refused(reply, message);
	}
}

/* The item limits of one device, at the limit and one past it. */
static void test_device_limits(void **state)
{
	static const struct {
		const char *key, *pre, *post, *open, *close, *message;
		size_t limit;
	} lists[] = {
	    {"partitions", "{\"id\":\"p", "\"}", "[", "]", "partitions: more than 256 partitions",
	     256},
	    {"profiles", "{\"name\":\"p", "\"}", "[", "]", "profiles: more than 64 profiles", 64},
	    {"device_nodes", "\"/dev/n", "\"", "[", "]", "device_nodes: more than 64 entries", 64},
	    {"env", "\"K", "=v\"", "[", "]", "env: more than 64 entries", 64},
	    {"properties", "\"k", "\":\"v\"", "{", "}", "properties: more than 1024 properties",
	     1024},
	};

	for (size_t i = 0; i < ELEMENTSOF(lists); i++)
		for (size_t n = lists[i].limit; n <= lists[i].limit + 1; n++) {
			_cleanup_(device_freep) struct xpu_device *d = NULL;
			_cleanup_free_ char *text = NULL, *error = NULL;
			size_t len = 0;
			FILE *f = open_memstream(&text, &len);
			json_t *j;
			int k;

			assert_non_null(f);
			fprintf(f, "{\"id\":\"d0\",\"kind\":\"gpu\",\"%s\":%s", lists[i].key,
				lists[i].open);
			for (size_t m = 0; m < n; m++) {
				fprintf(f, "%s%s%zu%s", m ? "," : "", lists[i].pre, m,
					lists[i].post);
			}
			fprintf(f, "%s}", lists[i].close);
			assert_int_equal(fclose(f), 0);
			j = json_loads(text, 0, NULL);
			assert_non_null(j);
			k = device_from_json(j, &d, &error);
			json_decref(j);
			if (n == lists[i].limit) {
				assert_int_equal(k, 0);
				assert_round_trip(d);
			} else {
				assert_int_equal(k, -EBADMSG);
				assert_string_equal(error, lists[i].message);
				assert_null(d);
			}
		}
}

/* The record on its own: the path starts at the device, and what cannot go out is refused. */
static void test_device_json(void **state)
{
	_cleanup_(device_freep) struct xpu_device *d = NULL, *big = device_new();
	_cleanup_free_ char *error = NULL, *longest = NULL;
	json_t *j;

	j = json_pack("{s:s, s:s, s:{s:s}}", "id", "d0", "kind", "gpu", "pci", "address",
		      "0000:18:00");
	assert_int_equal(device_from_json(j, &d, &error), -EBADMSG);
	assert_string_equal(error, "pci.address: not a PCI address");
	assert_null(d);
	json_decref(j);
	free(TAKE_PTR(error));

	j = json_array();
	assert_int_equal(device_from_json(j, &d, &error), -EBADMSG);
	assert_string_equal(error, "not an object");
	json_decref(j);
	free(TAKE_PTR(error));

	/* a NUL inside a string a caller built (the reader refuses "\u0000" before) */
	j = json_pack("{s:s, s:s, s:s%}", "id", "d0", "kind", "gpu", "model", "a\0b", (size_t)3);
	assert_non_null(j);
	assert_int_equal(device_from_json(j, &d, &error), -EBADMSG);
	assert_string_equal(error, "model: contains a NUL byte");
	json_decref(j);
	free(TAKE_PTR(error));

	/* the longest string is 4096 bytes */
	longest = malloc(4098);
	assert_non_null(longest);
	memset(longest, 'm', 4097);
	longest[4097] = '\0';
	j = json_pack("{s:s, s:s, s:s}", "id", "d0", "kind", "gpu", "model", longest);
	assert_int_equal(device_from_json(j, &d, &error), -EBADMSG);
	assert_string_equal(error, "model: longer than 4096 bytes");
	json_decref(j);
	longest[4096] = '\0';
	j = json_pack("{s:s, s:s, s:s}", "id", "d0", "kind", "gpu", "model", longest);
	assert_int_equal(device_from_json(j, &d, NULL), 0);
	assert_int_equal(strlen(d->model), 4096);
	json_decref(j);

	/* JSON's integers end at 2^63 - 1: a larger memory size cannot be sent */
	assert_non_null(big);
	big->id = strdup("d0");
	big->memory_bytes = (uint64_t)INT64_MAX + 1;
	assert_null(device_to_json(big));
	big->memory_bytes = INT64_MAX;
	assert_round_trip(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_rich),	  cmocka_unit_test(test_round_trip_minimal),
	    cmocka_unit_test(test_round_trip_nvidia),	  cmocka_unit_test(test_full_reply),
	    cmocka_unit_test(test_refused_framing),	  cmocka_unit_test(test_refused_sizes),
	    cmocka_unit_test(test_refused_limits),	  cmocka_unit_test(test_refused_messages),
	    cmocka_unit_test(test_refused_device_fields), cmocka_unit_test(test_device_limits),
	    cmocka_unit_test(test_device_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
