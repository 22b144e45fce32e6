// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The unit properties for a grant (services/enforce-unit.c): their names, the D-Bus
 * signatures systemd expects, and values, from a grant as the core builds it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "services/enforce-unit.h"
#include "shared/macro.h"
#include "shared/strv.h"

static const struct unit_prop *find(const struct unit_props *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (streq(p->items[i].name, name))
			return &p->items[i];
	return NULL;
}

static void assert_prop(const struct unit_props *p, const char *name, const char *signature)
{
	const struct unit_prop *u = find(p, name);

	if (!u)
		fail_msg("no property %s", name);
	assert_string_equal(unit_prop_signature(u->kind), signature);
}

static void test_properties(void **state)
{
	char *nodes[] = { "/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm", NULL };
	struct grant_env env[] = { { "CUDA_VISIBLE_DEVICES", "GPU-1" },
				   { "NVIDIA_VISIBLE_DEVICES", "GPU-1" } };
	struct grant g = { .device_nodes = nodes, .env = env, .n_env = 2, .numa_node = 1,
			   .cpu_list = "8-11,16" };
	struct enforce_limits l = { .memory_max = 1 << 30, .cpu_quota = 250, .numa_cpus = true };
	const struct unit_prop *u;
	struct unit_props p;

	assert_int_equal(unit_props_build("a-0123456789abcdef", &g, 4242, &l, &p), 0);
	assert_string_equal(p.unit, "xpu-a-0123456789abcdef.scope");
	assert_prop(&p, "Description", "s");
	assert_prop(&p, "Slice", "s");
	assert_string_equal(find(&p, "Slice")->s, "xpu.slice");
	assert_prop(&p, "DevicePolicy", "s");
	assert_string_equal(find(&p, "DevicePolicy")->s, "closed");

	/* exactly the granted nodes, read and write */
	assert_prop(&p, "DeviceAllow", "a(ss)");
	u = find(&p, "DeviceAllow");
	assert_int_equal(strv_length(u->strv), 6);
	assert_string_equal(u->strv[0], "/dev/nvidia1");
	assert_string_equal(u->strv[1], "rw");
	assert_string_equal(u->strv[4], "/dev/nvidia-uvm");

	/* CPUs 8-11 and 16: bytes 0x00 0x0f 0x01; memory node 1 */
	assert_prop(&p, "AllowedCPUs", "ay");
	u = find(&p, "AllowedCPUs");
	assert_int_equal(u->n_bytes, 3);
	assert_memory_equal(u->bytes, ((uint8_t[]){ 0x00, 0x0f, 0x01 }), 3);
	assert_prop(&p, "AllowedMemoryNodes", "ay");
	u = find(&p, "AllowedMemoryNodes");
	assert_int_equal(u->n_bytes, 1);
	assert_int_equal(u->bytes[0], 0x02);

	assert_prop(&p, "MemoryMax", "t");
	assert_int_equal(find(&p, "MemoryMax")->t, 1 << 30);
	assert_prop(&p, "CPUQuotaPerSecUSec", "t"); /* CPUQuota=250% */
	assert_int_equal(find(&p, "CPUQuotaPerSecUSec")->t, 2500000);
	/* a scope takes no Environment= (systemd refuses it): the command gets it from xpuctl */
	assert_null(find(&p, "Environment"));
	assert_prop(&p, "PIDs", "au");
	assert_int_equal(find(&p, "PIDs")->pid, 4242);
	unit_props_done(&p);

	/* no limits asked: none set */
	l = (struct enforce_limits){};
	g.n_env = 0;
	assert_int_equal(unit_props_build("a-1", &g, 1, &l, &p), 0);
	assert_null(find(&p, "AllowedCPUs"));
	assert_null(find(&p, "MemoryMax"));
	assert_null(find(&p, "CPUQuotaPerSecUSec"));
	assert_null(find(&p, "Environment"));
	assert_non_null(find(&p, "DeviceAllow"));
	unit_props_done(&p);

	/* CPUs of a grant that spans NUMA nodes cannot be asked for */
	l.numa_cpus = true;
	g.numa_node = -1;
	assert_int_equal(unit_props_build("a-1", &g, 1, &l, &p), -EINVAL);
}

/* An existing unit: no Description/Slice/PIDs, and its own DeviceAllow list emptied first. */
static void test_existing(void **state)
{
	char *nodes[] = { "/dev/accel0", NULL };
	struct grant g = { .device_nodes = nodes, .numa_node = -1 };
	struct enforce_limits l = { .memory_max = 1 << 28 };
	struct unit_props p;

	assert_int_equal(unit_props_build_existing("a-1", "train.service", &g, &l, &p), 0);
	assert_string_equal(p.unit, "train.service");
	assert_null(find(&p, "Description"));
	assert_null(find(&p, "Slice"));
	assert_null(find(&p, "PIDs"));
	assert_string_equal(p.items[0].name, "DevicePolicy");
	assert_string_equal(p.items[1].name, "DeviceAllow");
	assert_null(p.items[1].strv);
	assert_string_equal(p.items[2].name, "DeviceAllow");
	assert_string_equal(p.items[2].strv[0], "/dev/accel0");
	assert_int_equal(find(&p, "MemoryMax")->t, 1 << 28);
	unit_props_done(&p);
}

/* A unit's own properties kept in the state directory: read back as written; bad files refused. */
static void test_json(void **state)
{
	struct unit_props p = {}, q = {};
	struct unit_prop *u;
	json_t *doc;
	char *text;

	p.unit = strdup("train.service");
	unit_props_add(&p, "DevicePolicy", UNIT_PROP_STRING)->s = strdup("strict");
	unit_props_add(&p, "DeviceAllow", UNIT_PROP_PAIRS);
	u = unit_props_add(&p, "DeviceAllow", UNIT_PROP_PAIRS);
	assert_int_equal(strv_extend(&u->strv, "/dev/null"), 0);
	assert_int_equal(strv_extend(&u->strv, "rw"), 0);
	unit_props_add(&p, "MemoryMax", UNIT_PROP_U64)->t = UINT64_MAX;
	u = unit_props_add(&p, "AllowedCPUs", UNIT_PROP_BYTES);
	u->bytes = malloc(2);
	u->bytes[0] = 0xff;
	u->bytes[1] = 0x01;
	u->n_bytes = 2;
	assert_int_equal(unit_props_to_json(&p, &doc), 0);
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	doc = json_loads(text, 0, NULL);
	free(text);
	assert_int_equal(unit_props_from_json(doc, &q), 0);
	json_decref(doc);
	assert_string_equal(q.unit, "train.service");
	assert_int_equal(q.n, 5);
	assert_string_equal(q.items[0].s, "strict");
	assert_null(q.items[1].strv);
	assert_string_equal(q.items[2].strv[1], "rw");
	assert_true(q.items[3].t == UINT64_MAX);
	assert_int_equal(q.items[4].n_bytes, 2);
	assert_int_equal(q.items[4].bytes[1], 0x01);
	/* the names are the literals the systemd path sets */
	assert_ptr_not_equal(q.items[0].name, NULL);
	unit_props_done(&p);
	unit_props_done(&q);

	static const char *const bad[] = {
		"{\"properties\": []}",
		"{\"unit\": \"u.service\", \"properties\": {}}",
		"{\"unit\": \"u.service\", \"properties\": [{\"name\": \"ExecStart\", "
		"\"signature\": \"s\", \"value\": \"/bin/sh\"}]}",
		"{\"unit\": \"u.service\", \"properties\": [{\"name\": \"MemoryMax\", "
		"\"signature\": \"t\", \"value\": 5}]}",
		"{\"unit\": \"u.service\", \"properties\": [{\"name\": \"MemoryMax\", "
		"\"signature\": \"s\", \"value\": \"5\"}]}",
		"{\"unit\": \"u.service\", \"properties\": [{\"name\": \"AllowedCPUs\", "
		"\"signature\": \"ay\", \"value\": [256]}]}",
		"{\"unit\": \"u.service\", \"properties\": [{\"name\": \"DeviceAllow\", "
		"\"signature\": \"a(ss)\", \"value\": [\"/dev/null\"]}]}",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		doc = json_loads(bad[i], 0, NULL);
		assert_non_null(doc);
		if (unit_props_from_json(doc, &q) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
		json_decref(doc);
	}
}

static void test_cpu_mask(void **state)
{
	uint8_t *m = NULL;
	size_t n;

	assert_int_equal(cpu_list_to_mask("0-3,8", &m, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(m, ((uint8_t[]){ 0x0f, 0x01 }), 2);
	m = mfree(m);
	assert_int_equal(cpu_list_to_mask("63", &m, &n), 0);
	assert_int_equal(n, 8);
	assert_int_equal(m[7], 0x80);
	m = mfree(m);
	assert_int_equal(cpu_list_to_mask("", &m, &n), -EINVAL);
	assert_int_equal(cpu_list_to_mask("3-1", &m, &n), -EINVAL);
	assert_int_equal(cpu_list_to_mask("1,x", &m, &n), -EINVAL);
	assert_int_equal(cpu_list_to_mask("70000", &m, &n), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_properties),
		cmocka_unit_test(test_cpu_mask),
		cmocka_unit_test(test_existing),
		cmocka_unit_test(test_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
