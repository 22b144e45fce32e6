// SPDX-License-Identifier: GPL-2.0-or-later
/* The CDI spec builder: one spec per kind, one device per slice, names as grants give them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/plan.h"
#include "kube/cdi.h"
#include "shared/strv.h"

static struct xpu_device *dev(const char *id, enum xpu_kind kind, const char *node, const char *env)
{
	struct xpu_device *d = device_new();

	assert_non_null(d);
	d->id = strdup(id);
	d->kind = kind;
	d->vendor = strdup("nvidia");
	d->resource = strdup(kind == XPU_KIND_GPU ? "nvidia.com/gpu" : "xpu.dev/thing");
	if (node)
		assert_int_equal(strv_extend(&d->device_nodes, node), 0);
	if (env)
		assert_int_equal(strv_extend(&d->env, env), 0);
	return d;
}

static void add_mig(struct xpu_device *d, const char *uuid)
{
	struct xpu_slice *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->id = strdup(uuid);
	s->device_id = strdup(d->id);
	s->profile = strdup("1g.10gb");
	s->resource = strdup("nvidia.com/mig-1g.10gb");
	assert_int_equal(strv_extend(&s->device_nodes, "/dev/nvidia0"), 0);
	assert_int_equal(strv_extend(&s->device_nodes, "/dev/nvidia-caps/nvidia-cap12"), 0);
	assert_int_equal(strv_env_set(&s->env, "NVIDIA_VISIBLE_DEVICES", uuid), 0);
	assert_int_equal(device_add_partition(d, s), 0);
	d->partitioned = true;
}

struct fixture {
	struct device_list devs;
	struct slice_list slices;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct xpu_device *mig = dev("0000:2a:00.0", XPU_KIND_GPU, "/dev/nvidia1", NULL);

	assert_non_null(f);
	assert_int_equal(
	    device_list_push(&f->devs, dev("0000:18:00.0", XPU_KIND_GPU, "/dev/nvidia0",
					   "NVIDIA_VISIBLE_DEVICES=GPU-a")),
	    0);
	add_mig(mig, "MIG-1111");
	add_mig(mig, "MIG-2222");
	assert_int_equal(device_list_push(&f->devs, mig), 0);
	assert_int_equal(device_list_push(&f->devs, dev("0000:3b:00.0", XPU_KIND_ACCEL,
							"/dev/accel/accel0", NULL)),
			 0);
	/* nothing a runtime could inject: CDI refuses a device without edits */
	assert_int_equal(
	    device_list_push(&f->devs, dev("0000:4c:00.0", XPU_KIND_ACCEL, NULL, NULL)), 0);
	device_list_sort(&f->devs);
	assert_int_equal(plan_slices(&f->devs, &f->slices), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	slice_list_clear(&f->slices);
	device_list_clear(&f->devs);
	free(f);
	return 0;
}

static const struct xpu_slice *slice(struct fixture *f, const char *id)
{
	for (size_t i = 0; i < f->slices.n; i++)
		if (streq(f->slices.items[i]->id, id))
			return f->slices.items[i];
	fail_msg("no slice %s", id);
	return NULL;
}

static void test_names(void **state)
{
	struct fixture *f = *state;
	const struct xpu_slice *s = slice(f, "0000:18:00.0");
	char *n = slice_cdi_name(s, device_list_find(&f->devs, s->device_id));

	assert_string_equal(n, "xpu.dev/gpu=0000-18-00.0");
	free(n);
	struct xpu_slice replica = {.id = (char *)"0000:3b:00.0/replica-1"};
	n = slice_cdi_name(&replica, device_list_find(&f->devs, "0000:3b:00.0"));
	assert_string_equal(n, "xpu.dev/accel=0000-3b-00.0-replica-1");
	free(n);
	assert_string_equal(cdi_spec_file_name(XPU_KIND_GPU), "xpu.dev-gpu.json");
	assert_string_equal(cdi_spec_file_name(XPU_KIND_FPGA), "xpu.dev-fpga.json");
	assert_null(cdi_spec_file_name(_XPU_KIND_MAX));
}

static json_t *device_named(json_t *spec, const char *name)
{
	size_t i;
	json_t *d;

	json_array_foreach (json_object_get(spec, "devices"), i, d)
		if (streq(json_string_value(json_object_get(d, "name")), name))
			return d;
	return NULL;
}

static void test_gpu_spec(void **state)
{
	struct fixture *f = *state;
	json_t *spec = NULL, *d, *edits, *nodes;
	bool found;

	assert_int_equal(cdi_build_spec(XPU_KIND_GPU, NULL, &f->devs, &f->slices, &spec), 0);
	assert_non_null(spec);
	/* names that start with a digit (PCI addresses) are a 0.5.0 feature */
	assert_string_equal(json_string_value(json_object_get(spec, "cdiVersion")), "0.5.0");
	assert_string_equal(json_string_value(json_object_get(spec, "kind")), "xpu.dev/gpu");
	/* the whole GPU and the two MIG instances; the MIG-enabled GPU is not offered whole */
	assert_int_equal(json_array_size(json_object_get(spec, "devices")), 3);
	assert_null(device_named(spec, "0000-2a-00.0"));

	d = device_named(spec, "0000-18-00.0");
	assert_non_null(d);
	edits = json_object_get(d, "containerEdits");
	nodes = json_object_get(edits, "deviceNodes");
	assert_int_equal(json_array_size(nodes), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(nodes, 0), "path")),
			    "/dev/nvidia0");
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(nodes, 0), "permissions")), "rw");
	assert_string_equal(json_string_value(json_array_get(json_object_get(edits, "env"), 0)),
			    "NVIDIA_VISIBLE_DEVICES=GPU-a");
	assert_null(json_object_get(edits, "hooks"));
	assert_null(json_object_get(edits, "mounts"));

	d = device_named(spec, "MIG-2222");
	assert_non_null(d);
	edits = json_object_get(d, "containerEdits");
	nodes = json_object_get(edits, "deviceNodes");
	found = false;
	for (size_t i = 0; i < json_array_size(nodes); i++)
		found |= streq(json_string_value(json_object_get(json_array_get(nodes, i), "path")),
			       "/dev/nvidia-caps/nvidia-cap12");
	assert_true(found);
	assert_string_equal(json_string_value(json_array_get(json_object_get(edits, "env"), 0)),
			    "NVIDIA_VISIBLE_DEVICES=MIG-2222");
	json_decref(spec);
}

static void test_other_kinds(void **state)
{
	struct fixture *f = *state;
	json_t *spec = NULL;

	assert_int_equal(cdi_build_spec(XPU_KIND_ACCEL, NULL, &f->devs, &f->slices, &spec), 0);
	assert_string_equal(json_string_value(json_object_get(spec, "kind")), "xpu.dev/accel");
	/* the accelerator without nodes or environment is left out; no env key without env */
	assert_int_equal(json_array_size(json_object_get(spec, "devices")), 1);
	assert_null(json_object_get(
	    json_object_get(device_named(spec, "0000-3b-00.0"), "containerEdits"), "env"));
	assert_string_equal(json_string_value(json_object_get(spec, "cdiVersion")), "0.5.0");
	json_decref(spec);

	/* no FPGA: no spec (the file is removed) */
	spec = (json_t *)0x1;
	assert_int_equal(cdi_build_spec(XPU_KIND_FPGA, NULL, &f->devs, &f->slices, &spec), 0);
	assert_null(spec);
}

/*
 * cdi_minimum_version(), rule by rule, as the CDI project's MinimumRequiredVersion has them: a
 * runtime that knows fewer versions refuses the whole file, so one rule too many locks it out.
 */
static void test_version_rules(void **state)
{
	static const struct {
		const char *spec, *version;
	} cases[] = {
	    /* nothing newer than 0.3.0: env, device nodes without hostPath, hooks, plain mounts */
	    {"{\"kind\": \"xpu.dev/gpu\", \"devices\": [{\"name\": \"MIG-1\", "
	     "\"containerEdits\": {\"env\": [\"A=1\"], \"deviceNodes\": [{\"path\": \"/dev/x\", "
	     "\"permissions\": \"rw\"}], \"hooks\": [{\"hookName\": \"createContainer\", "
	     "\"path\": \"/bin/true\"}], \"mounts\": [{\"hostPath\": \"/a\", "
	     "\"containerPath\": \"/b\"}]}}]}",
	     "0.3.0"},
	    {"{}", "0.3.0"},
	    /* 0.4.0: a mount's type, in a device or in the spec's own edits */
	    {"{\"devices\": [{\"name\": \"a\", \"containerEdits\": {\"mounts\": "
	     "[{\"hostPath\": \"/a\", \"containerPath\": \"/b\", \"type\": \"bind\"}]}}]}",
	     "0.4.0"},
	    {"{\"containerEdits\": {\"mounts\": [{\"hostPath\": \"/a\", \"containerPath\": "
	     "\"/b\", \"type\": \"tmpfs\"}]}, \"devices\": []}",
	     "0.4.0"},
	    {"{\"containerEdits\": {\"mounts\": [{\"hostPath\": \"/a\", \"type\": \"\"}]}}",
	     "0.3.0"},
	    /* 0.5.0: a name that does not start with a letter, a device node's hostPath */
	    {"{\"devices\": [{\"name\": \"gpu0\"}, {\"name\": \"0000-18-00.0\"}]}", "0.5.0"},
	    {"{\"devices\": [{\"name\": \"7\"}]}", "0.5.0"},
	    {"{\"devices\": [{\"name\": \"Zeta\"}, {\"name\": \"alpha\"}]}", "0.3.0"},
	    {"{\"devices\": [{\"name\": \"a\", \"containerEdits\": {\"deviceNodes\": "
	     "[{\"path\": \"/dev/x\", \"hostPath\": \"/srv/xpu-fixture/dev/x\"}]}}]}",
	     "0.5.0"},
	    {"{\"containerEdits\": {\"deviceNodes\": [{\"path\": \"/dev/x\", "
	     "\"hostPath\": \"/r/dev/x\"}]}}",
	     "0.5.0"},
	    {"{\"containerEdits\": {\"deviceNodes\": [{\"path\": \"/dev/x\", \"hostPath\": "
	     "\"\"}]}}",
	     "0.3.0"},
	    /* 0.6.0: annotations of the spec or of a device, a '.' in the kind's class */
	    {"{\"annotations\": {\"a\": \"b\"}, \"devices\": [{\"name\": \"a\"}]}", "0.6.0"},
	    {"{\"annotations\": {}, \"devices\": [{\"name\": \"a\"}]}", "0.3.0"},
	    {"{\"devices\": [{\"name\": \"a\", \"annotations\": {\"k\": \"v\"}}]}", "0.6.0"},
	    {"{\"kind\": \"xpu.dev/gpu.shared\"}", "0.6.0"},
	    {"{\"kind\": \"xpu.dev/gpu\"}", "0.3.0"}, /* the vendor's '.' always was allowed */
	    {"{\"kind\": \"/gpu.shared\"}", "0.3.0"}, /* no vendor: not a vendor/class */
	    /* 0.7.0: intelRdt, additionalGids, in a device or in the spec */
	    {"{\"devices\": [{\"name\": \"a\", \"containerEdits\": {\"intelRdt\": "
	     "{\"closID\": \"c\"}}}]}",
	     "0.7.0"},
	    {"{\"containerEdits\": {\"intelRdt\": {}}}", "0.7.0"},
	    {"{\"containerEdits\": {\"intelRdt\": null}}", "0.3.0"},
	    {"{\"devices\": [{\"name\": \"a\", \"containerEdits\": {\"additionalGids\": [44]}}]}",
	     "0.7.0"},
	    {"{\"containerEdits\": {\"additionalGids\": [44]}}", "0.7.0"},
	    {"{\"containerEdits\": {\"additionalGids\": []}}", "0.3.0"},
	    /* the highest rule wins, wherever it is */
	    {"{\"kind\": \"v.io/c.d\", \"devices\": [{\"name\": \"0a\", \"containerEdits\": "
	     "{\"mounts\": [{\"type\": \"bind\"}]}}]}",
	     "0.6.0"},
	    {"{\"devices\": [{\"name\": \"a\"}, {\"name\": \"b\", \"containerEdits\": "
	     "{\"additionalGids\": [1]}}, {\"name\": \"1\"}]}",
	     "0.7.0"},
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		json_error_t err;
		json_t *spec = json_loads(cases[i].spec, 0, &err);

		if (!spec)
			fail_msg("case %zu: %s", i, err.text);
		if (!streq(cdi_minimum_version(spec), cases[i].version))
			fail_msg("case %zu (%s): %s, expected %s", i, cases[i].spec,
				 cdi_minimum_version(spec), cases[i].version);
		json_decref(spec);
	}
}

/*
 * The versions xpud writes: the lowest its specs need, never one a runtime of the 0.5.0 era
 * (Debian 12's podman) refuses: 0.3.0 when every name starts with a letter (MIG instances),
 * 0.5.0 for PCI addresses or host paths.
 */
static void test_spec_versions(void **state)
{
	struct device_list migs = {};
	struct slice_list slices = {};
	struct xpu_device *mig = dev("0000:2a:00.0", XPU_KIND_GPU, "/dev/nvidia1", NULL);
	json_t *spec = NULL;

	(void)state;
	add_mig(mig, "MIG-1111");
	assert_int_equal(device_list_push(&migs, mig), 0);
	assert_int_equal(plan_slices(&migs, &slices), 0);
	assert_int_equal(cdi_build_spec(XPU_KIND_GPU, NULL, &migs, &slices, &spec), 0);
	assert_string_equal(json_string_value(json_object_get(spec, "cdiVersion")), "0.3.0");
	assert_string_equal(cdi_minimum_version(spec), "0.3.0");
	json_decref(spec);
	/* "/" is the real host: no hostPath, no newer version */
	assert_int_equal(cdi_build_spec(XPU_KIND_GPU, "/", &migs, &slices, &spec), 0);
	assert_string_equal(json_string_value(json_object_get(spec, "cdiVersion")), "0.3.0");
	json_decref(spec);
	slice_list_clear(&slices);
	device_list_clear(&migs);
}

/*
 * Under a host root that is not "/" (--root, --simulate) the nodes are below the root: the
 * spec names them as "hostPath", the container still sees them at "/dev/...".
 */
static void test_host_paths(void **state)
{
	struct fixture *f = *state;
	json_t *spec = NULL, *nodes, *n;
	size_t i;

	assert_int_equal(
	    cdi_build_spec(XPU_KIND_GPU, "/srv/xpu-fixture", &f->devs, &f->slices, &spec), 0);
	assert_string_equal(json_string_value(json_object_get(spec, "cdiVersion")), "0.5.0");
	nodes = json_object_get(json_object_get(device_named(spec, "MIG-1111"), "containerEdits"),
				"deviceNodes");
	assert_true(json_array_size(nodes) >= 2);
	json_array_foreach (nodes, i, n) {
		const char *path = json_string_value(json_object_get(n, "path"));
		char want[256];

		assert_true(strncmp(path, "/dev/", 5) == 0);
		snprintf(want, sizeof(want), "/srv/xpu-fixture%s", path);
		assert_string_equal(json_string_value(json_object_get(n, "hostPath")), want);
	}
	json_decref(spec);

	/* a real host: none */
	assert_int_equal(cdi_build_spec(XPU_KIND_GPU, NULL, &f->devs, &f->slices, &spec), 0);
	nodes = json_object_get(json_object_get(device_named(spec, "MIG-1111"), "containerEdits"),
				"deviceNodes");
	assert_null(json_object_get(json_array_get(nodes, 0), "hostPath"));
	json_decref(spec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpu_spec, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_kinds, setup, teardown),
	    cmocka_unit_test(test_version_rules),
	    cmocka_unit_test(test_spec_versions),
	    cmocka_unit_test_setup_teardown(test_host_paths, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
