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
	char *n = cdi_qualified_name(s, device_list_find(&f->devs, s->device_id));

	assert_string_equal(n, "xpu.dev/gpu=0000-18-00.0");
	free(n);
	struct xpu_slice replica = {.id = (char *)"0000:3b:00.0/replica-1"};
	n = cdi_qualified_name(&replica, device_list_find(&f->devs, "0000:3b:00.0"));
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

	assert_int_equal(cdi_build_spec(XPU_KIND_GPU, &f->devs, &f->slices, &spec), 0);
	assert_non_null(spec);
	assert_string_equal(json_string_value(json_object_get(spec, "cdiVersion")), "0.6.0");
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

	assert_int_equal(cdi_build_spec(XPU_KIND_ACCEL, &f->devs, &f->slices, &spec), 0);
	assert_string_equal(json_string_value(json_object_get(spec, "kind")), "xpu.dev/accel");
	/* the accelerator without nodes or environment is left out; no env key without env */
	assert_int_equal(json_array_size(json_object_get(spec, "devices")), 1);
	assert_null(json_object_get(
	    json_object_get(device_named(spec, "0000-3b-00.0"), "containerEdits"), "env"));
	json_decref(spec);

	/* no FPGA: no spec (the file is removed) */
	spec = (json_t *)0x1;
	assert_int_equal(cdi_build_spec(XPU_KIND_FPGA, &f->devs, &f->slices, &spec), 0);
	assert_null(spec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpu_spec, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_kinds, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
