// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The generic PCI backend: which functions are accelerators, the vendor conventions it applies,
 * and what it makes of the fixture trees, bad sysfs input included.
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

#include "backends/pci.h"
#include "backends/registry.h"
#include "shared/log.h"
#include "shared/strv.h"
#include "sim/fixture.h"
#include "testutil.h"

static void test_classify(void **state)
{
	static const struct {
		struct pci_ident id;
		int kind;
		const char *what;
	} cases[] = {
		{ { 0x10de, 0x2330, 0x030200 }, XPU_KIND_GPU, "H100 (3D controller)" },
		{ { 0x10de, 0x22a3, 0x068000 }, -ENODEV, "NVSwitch" },
		{ { 0x10de, 0x22bc, 0x040300 }, -ENODEV, "GPU HD-audio function" },
		{ { 0x10de, 0x1ad8, 0x0c0330 }, -ENODEV, "GPU USB controller" },
		{ { 0x1002, 0x74a1, 0x120000 }, XPU_KIND_GPU, "MI300X (processing accelerator)" },
		{ { 0x1002, 0x740c, 0x038000 }, XPU_KIND_GPU, "MI250X (display other)" },
		{ { 0x1a03, 0x2000, 0x030000 }, -ENODEV, "ASPEED BMC VGA" },
		{ { 0x8086, 0xa780, 0x030000 }, -ENODEV, "Intel iGPU without a render node" },
		{ { 0x8086, 0xa780, 0x030000, true }, XPU_KIND_GPU, "Intel iGPU with a render node" },
		{ { 0x8086, 0x7d1d, 0x120000 }, XPU_KIND_ACCEL, "Intel NPU" },
		{ { 0x8086, 0x1592, 0x020000 }, -ENODEV, "Intel NIC" },
		{ { 0x1da3, 0x1020, 0x120000 }, XPU_KIND_ACCEL, "Gaudi2" },
		{ { 0x1ac1, 0x089a, 0x088000 }, XPU_KIND_ACCEL, "Coral (system peripheral class)" },
		{ { 0x10ee, 0x5004, 0x120000 }, XPU_KIND_FPGA, "Alveo management function" },
		{ { 0x10ee, 0x903f, 0x058000 }, XPU_KIND_FPGA, "Xilinx card with odd class" },
		{ { 0x10ee, 0x0b03, 0x020000 }, -ENODEV, "Xilinx NIC function" },
		{ { 0x1172, 0x0000, 0x120000 }, XPU_KIND_FPGA, "Altera" },
		{ { 0x1d0f, 0x7164, 0x088000 }, XPU_KIND_ACCEL, "Inferentia2" },
		{ { 0x1d0f, 0xec20, 0x020000 }, -ENODEV, "AWS ENA NIC" },
		{ { 0x1d0f, 0x8061, 0x010802 }, -ENODEV, "AWS EBS NVMe" },
		{ { 0x1234, 0x11e8, 0x00ff00 }, -ENODEV, "QEMU edu without a driver" },
		{ { 0x1234, 0x5678, 0x120000 }, XPU_KIND_ACCEL, "unknown processing accelerator" },
		{ { 0x1234, 0x5678, 0x030000, true }, XPU_KIND_GPU, "unknown GPU with a render node" },
		{ { 0x1234, 0x5678, 0x0b4000, false, true }, XPU_KIND_ACCEL, "unknown with accel node" },
		{ { 0x144d, 0xa80a, 0x010802 }, -ENODEV, "NVMe" },
		{ { 0x15b3, 0x1021, 0x020700 }, -ENODEV, "ConnectX-7" },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		if (pci_classify(&cases[i].id) != cases[i].kind)
			fail_msg("%s: classified %d, expected %d", cases[i].what,
				 pci_classify(&cases[i].id), cases[i].kind);
}

static void test_resources(void **state)
{
	static const struct {
		struct pci_ident id;
		const char *vendor, *driver, *model, *resource;
	} cases[] = {
		{ { 0x10de, 0x2330, 0x030200 }, "nvidia", "nvidia", "H100", "nvidia.com/gpu" },
		{ { 0x1002, 0x74a1, 0x120000 }, "amd", "amdgpu", "MI300X", "amd.com/gpu" },
		{ { 0x8086, 0x56c0, 0x038000, true }, "intel", "i915", "Flex", "gpu.intel.com/i915" },
		{ { 0x8086, 0xe20b, 0x030000, true }, "intel", "xe", "B580", "gpu.intel.com/xe" },
		{ { 0x1da3, 0x1020, 0x120000 }, "habana", "habanalabs", "Gaudi2", "habana.ai/gaudi" },
		{ { 0x1d0f, 0x7164, 0x088000 }, "aws", "neuron", "Inferentia2", "aws.amazon.com/neuron" },
		{ { 0x10ee, 0x5004, 0x120000 }, "xilinx", "xclmgmt", "U250", "xilinx.com/fpga" },
		{ { 0x1ac1, 0x089a, 0x088000 }, "google", "apex", "Google Coral Edge TPU",
		  "xpu.dev/google-coral-edge-tpu" },
		{ { 0x8086, 0x7d1d, 0x120000 }, "intel", "intel_vpu", "Intel NPU (Meteor Lake)",
		  "xpu.dev/intel-npu-meteor-lake" },
		{ { 0x1e52, 0x401e, 0x120000 }, "tenstorrent", "tenstorrent", "Tenstorrent Wormhole",
		  "xpu.dev/tenstorrent-wormhole" },
		{ { 0x1234, 0x5678, 0x120000 }, "0x1234", NULL, "0x1234 device 0x5678",
		  "xpu.dev/0x1234-device-0x5678" },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *r = pci_default_resource(&cases[i].id, cases[i].vendor,
							      cases[i].driver, cases[i].model);

		assert_non_null(r);
		if (strcmp(r, cases[i].resource) != 0)
			fail_msg("%s: resource %s, expected %s", cases[i].model, r,
				 cases[i].resource);
	}
	assert_string_equal(pci_vendor_name(0x10de), "nvidia");
	assert_null(pci_vendor_name(0x1234));
	assert_string_equal(pci_model_name(0x10de, 0x27b8), "NVIDIA L4");
	assert_null(pci_model_name(0x10de, 0x0001));
}

struct tree {
	char *dir;
	struct xpu_host *host;
	struct registry *reg;
	struct device_list devices;
};

static void tree_scan(struct tree *t)
{
	const struct xpu_backend_ops *ops[] = { &pci_backend_ops };

	device_list_clear(&t->devices);
	if (!t->host)
		assert_int_equal(host_open(t->dir, &t->host), 0);
	if (!t->reg)
		assert_int_equal(registry_new(t->host, NULL, ops, 1, &t->reg), 0);
	assert_int_equal(registry_enumerate(t->reg, &t->devices), 0);
}

static void tree_open(struct tree *t, const char *node)
{
	*t = (struct tree){ .dir = test_fixture_new(node) };
	tree_scan(t);
}

static void tree_close(struct tree *t)
{
	device_list_clear(&t->devices);
	registry_free(t->reg);
	host_free(t->host);
	fixture_destroy(t->dir);
	free(t->dir);
}

static struct xpu_device *get(struct tree *t, const char *id)
{
	struct xpu_device *d = device_list_find(&t->devices, id);

	if (!d)
		fail_msg("device %s not found", id);
	return d;
}

/* Writes @len bytes to <fn>/<attr> of the PCI function @addr. */
static void write_attr(struct tree *t, const char *addr, const char *attr, const void *data,
		       size_t len)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/%s", t->dir, addr, attr);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void test_faults_node(void **state)
{
	struct tree t;
	struct xpu_device *d;

	tree_open(&t, "faults");
	/* missing vendor, empty class and garbage class: not classifiable, skipped */
	assert_null(device_list_find(&t.devices, "0000:03:00.0"));
	assert_null(device_list_find(&t.devices, "0000:04:00.0"));
	assert_null(device_list_find(&t.devices, "0000:06:00.0"));
	assert_int_equal(t.devices.n, 5);

	d = get(&t, "0000:01:00.0");
	assert_int_equal(d->health.state, XPU_HEALTH_HEALTHY);
	assert_int_equal(d->numa_node, 0);
	assert_int_equal(d->pci.link_speed_mts, 32000);

	d = get(&t, "0000:02:00.0"); /* numa_node "banana": unknown, device still served */
	assert_int_equal(d->numa_node, -1);
	assert_int_equal(d->health.state, XPU_HEALTH_HEALTHY);

	d = get(&t, "0000:05:00.0"); /* link speed "Unknown", width 0 */
	assert_int_equal(d->pci.link_speed_mts, 0);
	assert_int_equal(d->pci.link_width, 0);

	d = get(&t, "0000:07:00.0"); /* cpu list "5-2" */
	assert_null(d->cpu_list);

	d = get(&t, "0000:08:00.0"); /* oversized product_name: not read for nvidia */
	assert_string_equal(d->model, "NVIDIA H100 80GB HBM3");

	/* an oversized numa_node (more than one page) is rejected, not truncated */
	{
		char big[5000];

		memset(big, '1', sizeof(big));
		write_attr(&t, "0000:01:00.0", "numa_node", big, sizeof(big));
		tree_scan(&t);
		assert_int_equal(get(&t, "0000:01:00.0")->numa_node, -1);
	}

	/* a function that vanishes between readdir() and open: a dangling bus link */
	{
		char link[4096];

		snprintf(link, sizeof(link), "%s/sys/bus/pci/devices/0000:0f:00.0", t.dir);
		assert_int_equal(symlink("../../../devices/pci0000:0f/0000:0f:00.0", link), 0);
		tree_scan(&t);
		assert_int_equal(t.devices.n, 5);
	}
	tree_close(&t);
}

static void test_health_refresh(void **state)
{
	static const unsigned char ones[64] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	static const unsigned char alive[64] = { 0xde, 0x10, 0x30, 0x23 };
	struct tree t;
	struct xpu_device *d;
	char path[4096];

	tree_open(&t, "real-h100-vm");
	d = get(&t, "0000:00:06.0");
	assert_int_equal(d->health.state, XPU_HEALTH_HEALTHY);

	/* config space reading all ones: the GPU fell off the bus */
	write_attr(&t, "0000:00:06.0", "config", ones, sizeof(ones));
	assert_int_equal(registry_refresh(t.reg, d), 0);
	assert_int_equal(d->health.state, XPU_HEALTH_UNHEALTHY);
	assert_non_null(strstr(d->health.reason, "not responding on the PCIe bus"));

	/* it comes back */
	write_attr(&t, "0000:00:06.0", "config", alive, sizeof(alive));
	assert_int_equal(registry_refresh(t.reg, d), 0);
	assert_int_equal(d->health.state, XPU_HEALTH_HEALTHY);
	assert_null(d->health.reason);

	/* fatal AER errors */
	write_attr(&t, "0000:00:06.0", "aer_dev_fatal",
		   "Undefined 0\nDLP 0\nTOTAL_ERR_FATAL 3\n", 36);
	assert_int_equal(registry_refresh(t.reg, d), 0);
	assert_string_equal(d->health.reason, "3 fatal PCIe AER errors");
	write_attr(&t, "0000:00:06.0", "aer_dev_fatal", "TOTAL_ERR_FATAL 0\n", 18);

	/* a device node disappears */
	snprintf(path, sizeof(path), "%s/dev/nvidiactl", t.dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(registry_refresh(t.reg, d), 0);
	assert_string_equal(d->health.reason, "device node /dev/nvidiactl is missing");

	/* the driver is unbound: the record is stale, a rescan must follow */
	snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/0000:00:06.0/driver", t.dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(registry_refresh(t.reg, d), -ESTALE);

	/* and the function is removed */
	assert_int_equal(fixture_remove_pci(t.dir, "0000:00:06.0"), 0);
	assert_int_equal(registry_refresh(t.reg, d), -ENODEV);
	tree_close(&t);
}

static void test_mixed_node(void **state)
{
	struct tree t;
	struct xpu_device *d;

	tree_open(&t, "mixed");
	d = get(&t, "0000:3b:00.0"); /* the Alveo: two functions, one device */
	assert_null(device_list_find(&t.devices, "0000:3b:00.1"));
	assert_int_equal(d->kind, XPU_KIND_FPGA);
	assert_string_equal(device_get_property(d, "pci_functions"), "0000:3b:00.0,0000:3b:00.1");
	assert_true(strv_contains(d->device_nodes, "/dev/dri/renderD128"));
	assert_int_equal(d->health.state, XPU_HEALTH_HEALTHY);

	d = get(&t, "0000:5e:00.0");
	assert_string_equal(d->vendor, "google");
	assert_string_equal(d->device_nodes[0], "/dev/apex_0");

	assert_null(device_list_find(&t.devices, "0000:02:00.0")); /* BMC VGA */
	tree_close(&t);
}

/*
 * An accel class device whose "device" link reads "../.." (the class directory sits below its
 * PCI parent, so the link names it as well as "../../../0000:4d:00.0" does): the device is the
 * PCI function the bus walk found, not a "platform accelerator" with the id "..".
 */
static void test_accel_link_to_parent(void **state)
{
	struct tree t;
	char link[4096];

	t = (struct tree){ .dir = test_fixture_new("mixed") };
	snprintf(link, sizeof(link), "%s/sys/class/accel/accel0/device", t.dir);
	assert_int_equal(unlink(link), 0);
	assert_int_equal(symlink("../..", link), 0);
	tree_scan(&t);
	assert_null(device_list_find(&t.devices, ".."));
	for (size_t i = 0; i < t.devices.n; i++)
		assert_null(strstr(t.devices.items[i]->model ?: "", "Platform accelerator"));
	assert_non_null(get(&t, "0000:4d:00.0"));
	tree_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_resources),
		cmocka_unit_test(test_faults_node),
		cmocka_unit_test(test_health_refresh),
		cmocka_unit_test(test_mixed_node),
		cmocka_unit_test(test_accel_link_to_parent),
	};

	log_set_max_level(LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
