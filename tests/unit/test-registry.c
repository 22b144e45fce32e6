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

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/registry.h"
#include "backends/vendor-rules.h"
#include "core/plan.h"
#include "shared/fileio.h"
#include "shared/host.h"
#include "shared/strv.h"
#include "sim/fixture.h"

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
	/* neither backend has rules of its own: the device gets its vendor's */
	assert_ptr_equal(d->rules, &nvidia_device_rules);

	/* health is the worse of the two */
	d = device_list_find(l, "0000:2a:00.0");
	assert_non_null(d);
	assert_string_equal(d->backend, "rich");
	assert_int_equal(d->health.state, XPU_HEALTH_UNHEALTHY);
	assert_string_equal(d->health.reason, "no kernel driver bound");

	d = device_list_find(l, "npu0");
	assert_non_null(d);
	assert_null(d->rules); /* no vendor: the defaults */
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

/* A partition on @d (MIG-like): @id with the nodes @nodes (NULL-terminated). */
static void add_part(struct xpu_device *d, const char *id, const char *const *nodes)
{
	struct xpu_slice *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->id = id ? strdup(id) : NULL;
	s->device_id = strdup(d->id);
	s->resource = strdup("example.com/part");
	for (; nodes && *nodes; nodes++)
		assert_int_equal(strv_extend(&s->device_nodes, *nodes), 0);
	assert_int_equal(device_add_partition(d, s), 0);
	d->partitioned = true;
	d->partition_capable = true;
}

static void add_prof(struct xpu_device *d, const char *name, unsigned free, unsigned total)
{
	struct xpu_partition_profile p = {.name = (char *)name, .free = free, .total = total};

	assert_int_equal(device_add_profile(d, &p), 0);
}

static const struct device_rules sloppy_rules = {.min_share_bytes = 1};

/* A backend whose word on partitions does not always hold together. */
static int sloppy_enumerate(struct xpu_backend *b, struct device_list *l)
{
	static const char *const one[] = {"/dev/part0", NULL}, *const twice[] = {"/dev/part0",
										 "/dev/part0",
										 NULL};
	struct xpu_device *d;

	d = mk("0000:01:00.0"); /* well formed */
	add_prof(d, "1p", 1, 2);
	add_part(d, "p-1", one);
	device_list_push(l, d);
	d = mk("0000:02:00.0"); /* a profile without a name */
	add_prof(d, "", 1, 1);
	add_part(d, "p-2", one);
	device_list_push(l, d);
	d = mk("0000:03:00.0"); /* no instances */
	add_prof(d, "1p", 0, 0);
	device_list_push(l, d);
	d = mk("0000:04:00.0"); /* a profile twice */
	add_prof(d, "1p", 1, 1);
	add_prof(d, "1p", 1, 1);
	device_list_push(l, d);
	d = mk("0000:05:00.0"); /* a device node twice */
	add_part(d, "p-5", twice);
	device_list_push(l, d);
	d = mk("0000:06:00.0"); /* a partition twice */
	add_part(d, "p-6", one);
	add_part(d, "p-6", one);
	device_list_push(l, d);
	d = mk("0000:07:00.0"); /* a partition without an id */
	add_part(d, NULL, one);
	device_list_push(l, d);
	return 0;
}

static const struct xpu_backend_ops sloppy_ops = {
    .name = "sloppy",
    .priority = 10,
    .rules = &sloppy_rules,
    .probe = probe_ok,
    .enumerate = sloppy_enumerate,
};

/* Malformed partitions or profiles from a backend: that device is offered whole, the others
 * as they are; every device carries its backend's rules. */
static void test_malformed_partitions_offered_whole(void **state)
{
	const struct xpu_backend_ops *ops[] = {&sloppy_ops};
	struct xpu_host host = {.root = (char *)"/"};
	struct registry *r = NULL;
	struct device_list l = {};
	struct slice_list slices = {};

	assert_int_equal(registry_new(&host, NULL, ops, 1, &r), 0);
	assert_int_equal(registry_enumerate(r, &l), 0);
	assert_int_equal(l.n, 7);
	for (size_t i = 0; i < l.n; i++) {
		const struct xpu_device *d = l.items[i];
		bool good = streq(d->id, "0000:01:00.0");

		assert_ptr_equal(d->rules, &sloppy_rules);
		assert_int_equal(d->n_partitions, good ? 1 : 0);
		assert_int_equal(d->n_profiles, good ? 1 : 0);
		assert_int_equal(d->partitioned, good);
	}
	assert_int_equal(plan_slices(&l, &slices), 0);
	assert_int_equal(slices.n, 7);
	assert_string_equal(slices.items[0]->id, "p-1");
	for (size_t i = 1; i < slices.n; i++)
		assert_string_equal(slices.items[i]->id, l.items[i]->id);
	slice_list_clear(&slices);
	device_list_clear(&l);
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

/* A fault's action survives the merge: the generic backend's fault on the rich record. */
static void test_merge_keeps_fault_action(void **state)
{
	struct xpu_device *generic = mk("0000:18:00.0"), *rich = mk("0000:18:00.0");

	assert_int_equal(device_set_fault(generic, HEALTH_ACTION_RESET_DEVICE, "%s",
					  "not responding on the PCIe bus"),
			 0);
	assert_int_equal(device_merge(rich, generic), 0);
	assert_int_equal(rich->health.state, XPU_HEALTH_UNHEALTHY);
	assert_int_equal(rich->health.action, HEALTH_ACTION_RESET_DEVICE);
	/* the first fault stands, with its action */
	assert_int_equal(device_set_fault(rich, HEALTH_ACTION_REBOOT_NODE, "later"), 0);
	assert_int_equal(rich->health.action, HEALTH_ACTION_RESET_DEVICE);
	assert_string_equal(rich->health.reason, "not responding on the PCIe bus");
	device_free(generic);
	device_free(rich);
}

static void touch(const char *root, const char *path)
{
	char p[4096];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", root, path);
	assert_int_equal(mkdir_parents(p, 0755), 0);
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
}

/*
 * Resets go to the device's own backend: the generic PCI one writes "1" to the function's
 * sysfs reset file, and says why not when the kernel offers none; xpu_pci's is an ioctl on the
 * device node; a backend without a reset op says so.
 */
static void test_reset(void **state)
{
	const struct xpu_backend_ops *ops[] = { &pci_backend_ops, &generic_ops };
	char root[4096];
	struct xpu_host *host = NULL;
	struct registry *r = NULL;
	struct xpu_device *d = mk("0000:01:00.0");
	char *why = NULL, *text = NULL;
	struct xpu_backend kmod = { .ops = &kmod_backend_ops };

	snprintf(root, sizeof(root), "%s/xpu-test-reset-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	assert_non_null(mkdtemp(root));
	touch(root, "sys/bus/pci/devices/0000:01:00.0/reset");
	touch(root, "dev/xpu/0");
	assert_int_equal(host_open(root, &host), 0);
	assert_int_equal(registry_new(host, NULL, ops, 2, &r), 0);

	d->backend = "pci";
	assert_int_equal(registry_reset(r, d, &why), 0);
	assert_null(why);
	assert_int_equal(read_attr_at(host->sys_fd, "bus/pci/devices/0000:01:00.0/reset", 0, &text),
			 0);
	assert_string_equal(text, "1");
	free(text);

	/* no reset method: the kernel has no file for it */
	assert_int_equal(unlinkat(host->sys_fd, "bus/pci/devices/0000:01:00.0/reset", 0), 0);
	assert_int_equal(registry_reset(r, d, &why), -EOPNOTSUPP);
	assert_non_null(strstr(why, "no reset method for PCI function 0000:01:00.0"));
	free(why);
	why = NULL;
	strcpy(d->pci.address, "0000:02:00.0");
	assert_int_equal(registry_reset(r, d, &why), -ENODEV);
	assert_non_null(strstr(why, "not in sysfs"));
	free(why);
	why = NULL;

	/* a backend that cannot reset, and one that is not there */
	d->backend = "generic";
	assert_int_equal(registry_reset(r, d, &why), -EOPNOTSUPP);
	assert_string_equal(why, "backend generic cannot reset devices");
	free(why);
	why = NULL;
	d->backend = "gone";
	assert_int_equal(registry_reset(r, d, &why), -ENODEV);
	free(why);
	why = NULL;

	/* xpu_pci: a node that is not its character device answers ENOTTY: no reset */
	kmod.host = host;
	assert_int_equal(kmod_backend_ops.reset(&kmod, d, &why), -EOPNOTSUPP);
	assert_non_null(strstr(why, "xpu_pci gave 0000:01:00.0 no device node"));
	free(why);
	why = NULL;
	assert_int_equal(strv_extend(&d->device_nodes, "/dev/xpu/0"), 0);
	assert_int_equal(kmod_backend_ops.reset(&kmod, d, &why), -EOPNOTSUPP);
	assert_non_null(strstr(why, "xpu_pci has no way to reset"));
	free(why);
	why = NULL;
	free(d->device_nodes[0]);
	d->device_nodes[0] = strdup("/dev/xpu/7");
	assert_int_equal(kmod_backend_ops.reset(&kmod, d, &why), -ENODEV);
	assert_non_null(strstr(why, "/dev/xpu/7"));
	free(why);

	device_free(d);
	registry_free(r);
	host_free(host);
	assert_int_equal(fixture_destroy(root), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge_rule_either_order),
		cmocka_unit_test(test_unavailable_backend_reported),
		cmocka_unit_test(test_failing_backend_keeps_last_records),
		cmocka_unit_test(test_malformed_partitions_offered_whole),
		cmocka_unit_test(test_merge_keeps_fault_action),
		cmocka_unit_test(test_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
