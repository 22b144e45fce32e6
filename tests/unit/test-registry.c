// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The registry's merge rule between a generic and a richer backend describing the same PCI
 * function, and its containment of a failing backend. Two fake backends stand in for the
 * generic PCI backend and a vendor one.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backends/registry.h"
#include "shared/strv.h"

static int fail_rich; /* make the rich backend's enumerate fail */

static struct xpu_device *mk(const char *addr)
{
	struct xpu_device *d = device_new();

	assert_non_null(d);
	d->id = strdup(addr);
	d->has_pci = true;
	strcpy(d->pci.address, addr);
	return d;
}

static int probe_ok(struct xpu_backend *b, char **ret_reason)
{
	return 0;
}

static int probe_missing(struct xpu_backend *b, char **ret_reason)
{
	*ret_reason = strdup("libfake.so.1 not found");
	return -ENOENT;
}

static int generic_enumerate(struct xpu_backend *b, struct device_list *l)
{
	struct xpu_device *d = mk("0000:18:00.0");

	d->kind = XPU_KIND_GPU;
	d->vendor = strdup("nvidia");
	d->model = strdup("NVIDIA device 0x2330");
	d->driver = strdup("nvidia");
	d->numa_node = 0;
	d->cpu_list = strdup("0-55");
	d->pci.link_width = 16;
	d->pci.link_speed_mts = 32000;
	d->pci.class_code = 0x030200;
	d->pci.revision = 0xa1;
	strv_extend(&d->device_nodes, "/dev/nvidia0");
	device_set_property(d, "pci_root", "pci0000:15");
	device_set_property(d, "shared_key", "generic");
	device_list_push(l, d);

	d = mk("0000:2a:00.0");
	d->vendor = strdup("nvidia");
	device_set_unhealthy(d, "no kernel driver bound");
	device_list_push(l, d);

	/* A platform device: never merged with anything. */
	d = device_new();
	d->id = strdup("npu0");
	d->kind = XPU_KIND_ACCEL;
	device_list_push(l, d);
	return 0;
}

static int rich_enumerate(struct xpu_backend *b, struct device_list *l)
{
	struct xpu_device *d;

	if (fail_rich)
		return -EIO;
	d = mk("0000:18:00.0");
	d->kind = XPU_KIND_GPU;
	d->model = strdup("NVIDIA H100 80GB HBM3");
	d->uuid = strdup("GPU-1");
	d->memory_bytes = 85899345920ULL;
	device_set_property(d, "shared_key", "rich");
	device_list_push(l, d);

	d = mk("0000:2a:00.0");
	d->model = strdup("NVIDIA H100 80GB HBM3");
	device_list_push(l, d);
	return 0;
}

static const struct xpu_backend_ops generic_ops = {
	.name = "generic", .priority = 0, .probe = probe_ok, .enumerate = generic_enumerate,
};
static const struct xpu_backend_ops rich_ops = {
	.name = "rich", .priority = 10, .probe = probe_ok, .enumerate = rich_enumerate,
};
static const struct xpu_backend_ops missing_ops = {
	.name = "missing", .priority = 20, .probe = probe_missing, .enumerate = rich_enumerate,
};

static void check_merged(struct device_list *l)
{
	struct xpu_device *d;

	assert_int_equal(l->n, 3);
	d = device_list_find(l, "0000:18:00.0");
	assert_non_null(d);
	/* the rich record wins what it knows ... */
	assert_string_equal(d->backend, "rich");
	assert_string_equal(d->model, "NVIDIA H100 80GB HBM3");
	assert_string_equal(d->uuid, "GPU-1");
	assert_true(d->memory_bytes == 85899345920ULL);
	assert_string_equal(device_get_property(d, "shared_key"), "rich");
	/* ... and takes from the generic one what it leaves unknown */
	assert_string_equal(d->vendor, "nvidia");
	assert_string_equal(d->driver, "nvidia");
	assert_int_equal(d->numa_node, 0);
	assert_string_equal(d->cpu_list, "0-55");
	assert_int_equal(d->pci.link_width, 16);
	assert_int_equal(d->pci.class_code, 0x030200);
	assert_int_equal(d->pci.revision, 0xa1);
	assert_string_equal(d->device_nodes[0], "/dev/nvidia0");
	assert_string_equal(device_get_property(d, "pci_root"), "pci0000:15");

	/* health is the worse of the two */
	d = device_list_find(l, "0000:2a:00.0");
	assert_non_null(d);
	assert_string_equal(d->backend, "rich");
	assert_int_equal(d->health.state, XPU_HEALTH_UNHEALTHY);
	assert_string_equal(d->health.reason, "no kernel driver bound");

	assert_non_null(device_list_find(l, "npu0"));
}

static void test_merge_rule_either_order(void **state)
{
	const struct xpu_backend_ops *orders[2][3] = {
		{ &generic_ops, &rich_ops, &missing_ops },
		{ &missing_ops, &rich_ops, &generic_ops },
	};
	struct xpu_host host = { .root = (char *)"/" };

	for (size_t o = 0; o < 2; o++) {
		struct registry *r = NULL;
		struct device_list l = {};

		fail_rich = 0;
		assert_int_equal(registry_new(&host, NULL, orders[o], 3, &r), 0);
		assert_int_equal(registry_enumerate(r, &l), 0);
		check_merged(&l);
		device_list_clear(&l);
		registry_free(r);
	}
}

static void test_unavailable_backend_reported(void **state)
{
	const struct xpu_backend_ops *ops[] = { &generic_ops, &missing_ops };
	struct xpu_host host = { .root = (char *)"/" };
	const struct xpu_backend *b;
	struct registry *r = NULL;

	assert_int_equal(registry_new(&host, NULL, ops, 2, &r), 0);
	b = registry_get(r, 1);
	assert_false(b->available);
	assert_string_equal(b->reason, "libfake.so.1 not found");
	assert_true(registry_get(r, 0)->available);
	registry_free(r);
}

static void test_failing_backend_keeps_last_records(void **state)
{
	const struct xpu_backend_ops *ops[] = { &generic_ops, &rich_ops };
	struct xpu_host host = { .root = (char *)"/" };
	struct registry *r = NULL;
	struct device_list l = {};

	fail_rich = 0;
	assert_int_equal(registry_new(&host, NULL, ops, 2, &r), 0);
	assert_int_equal(registry_enumerate(r, &l), 0);
	device_list_clear(&l);

	fail_rich = 1;
	assert_int_equal(registry_enumerate(r, &l), 0);
	check_merged(&l); /* the rich facts survive a failed enumeration */
	device_list_clear(&l);
	registry_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge_rule_either_order),
		cmocka_unit_test(test_unavailable_backend_reported),
		cmocka_unit_test(test_failing_backend_keeps_last_records),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
