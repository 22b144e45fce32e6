// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The fixture builder: the embedded node descriptions build into trees with the structure the
 * kernel gives a real host (links resolve, attributes read back with our own sysfs parsers),
 * hot-unplug removes exactly one function, and bad descriptions are refused with a message that
 * names the key, before anything is written.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/fileio.h"
#include "shared/macro.h"
#include "shared/parse.h"
#include "sim/fixture.h"

struct tree {
	char *dir;
	int fd;
};

static void tree_open(struct tree *t, const char *node)
{
	const struct sim_node *n = sim_node_find(node);
	_cleanup_free_ char *error = NULL;
	int r;

	assert_non_null(n);
	r = fixture_build_temp(n->json, &t->dir, &error);
	if (r < 0)
		fail_msg("building %s: %s", node, error ?: strerror(-r));
	t->fd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(t->fd >= 0);
}

static void tree_close(struct tree *t)
{
	t->fd = safe_close(t->fd);
	assert_int_equal(fixture_destroy(t->dir), 0);
	assert_int_equal(access(t->dir, F_OK), -1);
	free(t->dir);
	t->dir = NULL;
}

/* Reads a file of the tree, trailing whitespace stripped; fails the test if it cannot. */
static char *attr(const struct tree *t, const char *fmt, ...) _printf_(2, 3);
static char *attr(const struct tree *t, const char *fmt, ...)
{
	_cleanup_free_ char *path = NULL;
	char *value = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	assert_true(vasprintf(&path, fmt, ap) >= 0);
	va_end(ap);
	r = read_attr_at(t->fd, path, 8192, &value);
	if (r < 0)
		fail_msg("reading %s: %s", path, strerror(-r));
	return value;
}

/* A whole file of the tree, byte for byte. */
static char *raw(const struct tree *t, const char *path)
{
	_cleanup_close_ int fd = openat(t->fd, path, O_RDONLY | O_CLOEXEC);
	char buf[16384];
	ssize_t n;

	if (fd < 0)
		fail_msg("opening %s: %s", path, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	assert_true(n >= 0 && (size_t)n < sizeof(buf) - 1);
	buf[n] = '\0';
	return strdup(buf);
}

static void assert_attr(const struct tree *t, const char *path, const char *expected)
{
	_cleanup_free_ char *v = attr(t, "%s", path);

	assert_string_equal(v, expected);
}

static bool exists(const struct tree *t, const char *path)
{
	return faccessat(t->fd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Where a path of the tree really leads, relative to the tree ("sys/devices/..."). */
static char *resolve(const struct tree *t, const char *path)
{
	_cleanup_free_ char *full = NULL, *real = NULL, *root = NULL;
	size_t n;

	assert_true(asprintf(&full, "%s/%s", t->dir, path) >= 0);
	real = realpath(full, NULL);
	if (!real)
		fail_msg("%s does not resolve: %s", path, strerror(errno));
	root = realpath(t->dir, NULL);
	assert_non_null(root);
	n = strlen(root);
	if (strncmp(real, root, n) != 0 || real[n] != '/')
		fail_msg("%s resolves outside the tree: %s", path, real);
	return strdup(real + n + 1);
}

static char *link_text(const struct tree *t, const char *path)
{
	char buf[PATH_MAX];
	ssize_t n = readlinkat(t->fd, path, buf, sizeof(buf) - 1);

	if (n < 0)
		fail_msg("%s is not a symlink: %s", path, strerror(errno));
	buf[n] = '\0';
	return strdup(buf);
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && streq(s + a - b, suffix);
}

/* The PCI functions of the tree with this vendor and device id. */
static size_t count_pci(const struct tree *t, uint32_t vendor, uint32_t device, char ***ret)
{
	_cleanup_close_ int fd = openat(t->fd, "sys/bus/pci/devices", O_RDONLY | O_DIRECTORY);
	char **list = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *d;

	assert_true(fd >= 0);
	d = fdopendir(TAKE_FD(fd));
	assert_non_null(d);
	while ((de = readdir(d))) {
		_cleanup_free_ char *vp = NULL, *dp = NULL;
		uint32_t v, dv;

		if (de->d_name[0] == '.')
			continue;
		assert_true(asprintf(&vp, "sys/bus/pci/devices/%s/vendor", de->d_name) >= 0);
		assert_true(asprintf(&dp, "sys/bus/pci/devices/%s/device", de->d_name) >= 0);
		if (read_attr_hex_at(t->fd, vp, 0xffff, &v) < 0 ||
		    read_attr_hex_at(t->fd, dp, 0xffff, &dv) < 0 || v != vendor || dv != device)
			continue;
		if (ret) {
			list = reallocarray(list, n + 2, sizeof(char *));
			assert_non_null(list);
			list[n] = strdup(de->d_name);
			list[n + 1] = NULL;
		}
		n++;
	}
	closedir(d);
	if (ret)
		*ret = list;
	return n;
}

static void free_list(char **l)
{
	for (char **p = l; p && *p; p++)
		free(*p);
	free(l);
}

static int info_minor(const struct tree *t, const char *address)
{
	_cleanup_free_ char *info = attr(t, "proc/driver/nvidia/gpus/%s/information", address);
	const char *p = strstr(info, "Device Minor: \t ");
	char buf[16];
	size_t n;
	int minor;

	assert_non_null(p);
	p += strlen("Device Minor: \t ");
	n = strcspn(p, "\n");
	assert_true(n > 0 && n < sizeof(buf));
	memcpy(buf, p, n);
	buf[n] = '\0';
	assert_int_equal(safe_atoi(buf, &minor), 0);
	return minor;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- the embedded nodes ---------------------------------------------------------------------- */

static void test_embedded_nodes(void **state)
{
	static const char *const expected[] = { "faults", "hgx-h100", "mi300x", "mixed",
						"nvidia-faults", "real-h100-vm" };

	for (size_t i = 0; i < ELEMENTSOF(expected); i++)
		assert_non_null(sim_node_find(expected[i]));
	assert_null(sim_node_find("no-such-node"));
	assert_null(sim_node_find(NULL));

	for (size_t i = 0; i < sim_nodes_n; i++) {
		struct tree t = { .fd = -EBADF };

		_cleanup_free_ char *name = NULL;

		if (i > 0)
			assert_true(strcmp(sim_nodes[i - 1].name, sim_nodes[i].name) < 0);
		/* The file name and the "name" inside agree; every node has a summary. */
		assert_true(asprintf(&name, "\"name\": \"%s\"", sim_nodes[i].name) >= 0);
		assert_non_null(strstr(sim_nodes[i].json, name));
		assert_non_null(strstr(sim_nodes[i].json, "\"summary\": \""));
		tree_open(&t, sim_nodes[i].name);
		/* Every tree is a whole fake host. */
		assert_true(exists(&t, "sys/bus/pci/devices"));
		assert_true(exists(&t, "dev"));
		assert_true(exists(&t, "proc"));
		assert_true(exists(&t, "run"));
		tree_close(&t);
	}
}

/* The "access" file of a MIG capability, and its device node. */
static void assert_mig_cap(const struct tree *t, const char *dir, int minor)
{
	_cleanup_free_ char *text = NULL, *expected = NULL, *node = NULL, *path = NULL;

	assert_true(asprintf(&path, "%s/access", dir) >= 0);
	text = raw(t, path);
	assert_true(asprintf(&expected, "DeviceFileMinor: %d\nDeviceFileMode: 292\n"
				       "DeviceFileModify: 1\n", minor) >= 0);
	assert_string_equal(text, expected);
	assert_true(asprintf(&node, "dev/nvidia-caps/nvidia-cap%d", minor) >= 0);
	assert_true(exists(t, node));
}

/* The GPU instances in /proc/driver/nvidia/capabilities/gpu<minor>/mig/ ("gi..."), sorted. */
static char *mig_instances(const struct tree *t, int minor)
{
	_cleanup_free_ char *path = NULL;
	char *list = strdup("");
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;

	assert_true(asprintf(&path, "proc/driver/nvidia/capabilities/gpu%d/mig", minor) >= 0);
	assert_int_equal(opendir_at(t->fd, path, &d), 0);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		names = reallocarray(names, n + 1, sizeof(char *));
		assert_non_null(names);
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < n; i++) {
		char *l = NULL;

		assert_true(asprintf(&l, "%s%s%s", list, i ? " " : "", names[i]) >= 0);
		free(list);
		free(names[i]);
		list = l;
	}
	free(names);
	return list;
}

/*
 * GPU 7 (minor 7) runs MIG with seven 1g.10gb instances: GPU instances 1..7, each with compute
 * instance 0, whose capabilities have the minors 3 + (7 * 15 + gi) * 9 and one more.
 */
static void check_hgx_h100_mig(const struct tree *t)
{
	static const int gi_minors[] = { 957, 966, 975, 984, 993, 1002, 1011 };
	_cleanup_free_ char *list = NULL;

	for (int gi = 1; gi <= 7; gi++) {
		_cleanup_free_ char *dir = NULL, *ci = NULL;

		assert_true(asprintf(&dir, "proc/driver/nvidia/capabilities/gpu7/mig/gi%d",
				     gi) >= 0);
		assert_true(asprintf(&ci, "%s/ci0", dir) >= 0);
		assert_mig_cap(t, dir, gi_minors[gi - 1]);
		assert_mig_cap(t, ci, gi_minors[gi - 1] + 1);
	}
	list = mig_instances(t, 7);
	assert_string_equal(list, "gi1 gi2 gi3 gi4 gi5 gi6 gi7");
	for (int minor = 0; minor < 7; minor++) {
		_cleanup_free_ char *none = mig_instances(t, minor);

		assert_string_equal(none, "");
	}
	{
		_cleanup_free_ char *config = NULL, *monitor = NULL;

		config = raw(t, "proc/driver/nvidia/capabilities/mig/config");
		monitor = raw(t, "proc/driver/nvidia/capabilities/mig/monitor");

		assert_string_equal(config, "DeviceFileMinor: 1\nDeviceFileMode: 256\n"
					    "DeviceFileModify: 1\n");
		assert_string_equal(monitor, "DeviceFileMinor: 2\nDeviceFileMode: 292\n"
					     "DeviceFileModify: 1\n");
	}
	assert_true(exists(t, "dev/nvidia-caps/nvidia-cap2"));
}

static void test_hgx_h100(void **state)
{
	struct tree t = { .fd = -EBADF };
	unsigned minors_seen = 0;
	char **gpus = NULL;
	size_t n;

	tree_open(&t, "hgx-h100");
	n = count_pci(&t, 0x10de, 0x2330, &gpus);
	assert_int_equal(n, 8);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *drv = NULL, *numa = NULL, *cpus = NULL, *dev = NULL;
		_cleanup_free_ char *uevent_path = NULL, *slot = NULL, *cls = NULL;
		int minor, node;

		assert_true(asprintf(&dev, "sys/bus/pci/devices/%s/driver", gpus[i]) >= 0);
		drv = resolve(&t, dev);
		assert_string_equal(drv, "sys/bus/pci/drivers/nvidia");

		numa = attr(&t, "sys/bus/pci/devices/%s/numa_node", gpus[i]);
		assert_int_equal(safe_atoi(numa, &node), 0);
		cpus = attr(&t, "sys/bus/pci/devices/%s/local_cpulist", gpus[i]);
		assert_string_equal(cpus, node == 0 ? "0-55,112-167" : "56-111,168-223");
		cls = attr(&t, "sys/bus/pci/devices/%s/class", gpus[i]);
		assert_string_equal(cls, "0x030200");

		assert_true(asprintf(&uevent_path, "sys/bus/pci/devices/%s/uevent", gpus[i]) >= 0);
		assert_int_equal(read_uevent_key_at(t.fd, uevent_path, "PCI_SLOT_NAME", &slot), 0);
		assert_string_equal(slot, gpus[i]);

		minor = info_minor(&t, gpus[i]);
		assert_true(minor >= 0 && minor < 8);
		assert_false(minors_seen & (1u << minor));
		minors_seen |= 1u << minor;
		free(dev);
		assert_true(asprintf(&dev, "dev/nvidia%d", minor) >= 0);
		assert_true(exists(&t, dev));
	}
	assert_int_equal(minors_seen, 0xff);
	free_list(gpus);

	/* GPU 0 sits behind its PCIe switch, and the chain is made of real bridge functions. */
	{
		_cleanup_free_ char *p = resolve(&t, "sys/bus/pci/devices/0000:18:00.0");
		_cleanup_free_ char *port = resolve(&t, "sys/bus/pci/devices/0000:17:00.0/driver");

		assert_string_equal(p, "sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/"
				       "0000:17:00.0/0000:18:00.0");
		assert_attr(&t, "sys/bus/pci/devices/0000:17:00.0/class", "0x060400");
		assert_string_equal(port, "sys/bus/pci/drivers/pcieport");
	}

	/* Non-accelerators: NVSwitches, the BMC's VGA with a primary node only, NIC, NVMe. */
	assert_int_equal(count_pci(&t, 0x10de, 0x22a3, NULL), 4);
	assert_attr(&t, "sys/bus/pci/devices/0000:06:00.0/class", "0x068000");
	assert_int_equal(count_pci(&t, 0x15b3, 0x1021, NULL), 1);
	assert_int_equal(count_pci(&t, 0x144d, 0xa80a, NULL), 1);
	{
		_cleanup_free_ char *card = resolve(&t, "sys/class/drm/card0/device");

		assert_true(has_suffix(card, "/0000:02:00.0"));
		assert_attr(&t, "sys/class/drm/card0/device/vendor", "0x1a03");
		assert_attr(&t, "sys/class/drm/card0/dev", "226:0");
		assert_false(exists(&t, "sys/class/drm/renderD128"));
		assert_true(exists(&t, "dev/dri/card0"));
	}

	assert_attr(&t, "sys/devices/system/node/online", "0-1");
	assert_attr(&t, "sys/devices/system/node/node1/cpulist", "56-111,168-223");
	assert_attr(&t, "sys/devices/system/cpu/online", "0-223");
	assert_true(exists(&t, "dev/nvidiactl"));
	assert_true(exists(&t, "dev/nvidia-caps/nvidia-cap1"));
	{
		_cleanup_free_ char *version = attr(&t, "proc/driver/nvidia/version");

		assert_non_null(strstr(version, "x86_64  580.159.04  Release Build"));
	}
	check_hgx_h100_mig(&t);
	tree_close(&t);
}

/* The transcription of the real capture reproduces its files byte for byte. */
static void test_real_h100_vm(void **state)
{
	static const char proc_devices[] =
		"Character devices:\n"
		"  1 mem\n  4 /dev/vc/0\n  4 tty\n  4 ttyS\n  5 /dev/tty\n  5 /dev/console\n"
		"  5 /dev/ptmx\n  7 vcs\n 10 misc\n 13 input\n128 ptm\n136 pts\n195 nvidia\n"
		"195 nvidiactl\n203 cpu/cpuid\n231 infiniband_mad\n231 infiniband_verbs\n"
		"238 nvidia-uvm\n239 nvidia-nvswitch\n240 nvidia-nvlink\n241 nvidia-caps\n"
		"242 nvidia-caps-imex-channels\n243 hidraw\n244 infiniband_verbs\n"
		"245 infiniband_mad\n246 macvtap\n247 mei\n248 bsg\n249 watchdog\n250 ptp\n"
		"251 pps\n252 dax\n253 dimmctl\n254 ndctl\n"
		"\n"
		"Block devices:\n"
		"  7 loop\n253 zram\n254 virtblk\n259 blkext\n";
	static const char information[] =
		"Model: \t\t NVIDIA H100 80GB HBM3\n"
		"IRQ:   \t\t 41\n"
		"GPU UUID: \t GPU-bd0b65c0-84e9-5fae-cb03-2fffa2470588\n"
		"Video BIOS: \t 96.00.da.00.0c\n"
		"Bus Type: \t PCIe\n"
		"DMA Size: \t 52 bits\n"
		"DMA Mask: \t 0xfffffffffffff\n"
		"Bus Location: \t 0000:00:06.0\n"
		"Device Minor: \t 0\n"
		"GPU Firmware: \t 580.159.04\n"
		"GPU Excluded:\t No\n";
	static const char uevent[] =
		"DRIVER=nvidia\n"
		"PCI_CLASS=30200\n"
		"PCI_ID=10DE:2330\n"
		"PCI_SUBSYS_ID=10DE:16C1\n"
		"PCI_SLOT_NAME=0000:00:06.0\n"
		"MODALIAS=pci:v000010DEd00002330sv000010DEsd000016C1bc03sc02i00\n";
	struct tree t = { .fd = -EBADF };
	_cleanup_free_ char *devices = NULL, *info = NULL, *bus = NULL, *drv = NULL, *sub = NULL;
	_cleanup_free_ char *back = NULL, *ue = NULL, *version = NULL;

	tree_open(&t, "real-h100-vm");
	devices = raw(&t, "proc/devices");
	assert_string_equal(devices, proc_devices);
	info = raw(&t, "proc/driver/nvidia/gpus/0000:00:06.0/information");
	assert_string_equal(info, information);
	ue = raw(&t, "sys/bus/pci/devices/0000:00:06.0/uevent");
	assert_string_equal(ue, uevent);
	/* raw_files replaced the generated version file with the captured one. */
	version = raw(&t, "proc/driver/nvidia/version");
	assert_string_equal(version, "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  "
				     "580.159.04  Release Build  (nixbld@)  \n"
				     "GCC version:  gcc version 15.3.0 (GCC) \n");

	/* The link texts are the kernel's. */
	bus = link_text(&t, "sys/bus/pci/devices/0000:00:06.0");
	assert_string_equal(bus, "../../../devices/pci0000:00/0000:00:06.0");
	drv = link_text(&t, "sys/devices/pci0000:00/0000:00:06.0/driver");
	assert_string_equal(drv, "../../../bus/pci/drivers/nvidia");
	sub = link_text(&t, "sys/devices/pci0000:00/0000:00:06.0/subsystem");
	assert_string_equal(sub, "../../../bus/pci");
	back = link_text(&t, "sys/bus/pci/drivers/nvidia/0000:00:06.0");
	assert_string_equal(back, "../../../../devices/pci0000:00/0000:00:06.0");

	assert_attr(&t, "sys/bus/pci/devices/0000:00:06.0/modalias",
		    "pci:v000010DEd00002330sv000010DEsd000016C1bc03sc02i00");
	assert_attr(&t, "sys/bus/pci/devices/0000:00:04.0/class", "0xffff00");
	assert_attr(&t, "sys/bus/pci/devices/0000:00:00.0/enable", "0");
	assert_false(exists(&t, "sys/bus/pci/devices/0000:00:00.0/driver"));
	assert_attr(&t, "sys/bus/pci/devices/0000:00:06.0/numa_node", "-1");
	assert_attr(&t, "sys/bus/pci/devices/0000:00:06.0/current_link_speed", "32.0 GT/s PCIe");
	assert_attr(&t, "sys/bus/pci/devices/0000:00:06.0/max_link_width", "16");
	assert_int_equal(count_pci(&t, 0x1af4, 0x1042, NULL), 2);
	assert_true(exists(&t, "dev/nvidia0"));
	assert_true(exists(&t, "dev/nvidia-caps/nvidia-cap2"));
	tree_close(&t);
}

static void test_mixed(void **state)
{
	struct tree t = { .fd = -EBADF };
	_cleanup_free_ char *accel = NULL, *apex = NULL, *render = NULL, *npu = NULL;
	_cleanup_free_ char *uevent = NULL;

	tree_open(&t, "mixed");
	/* Habana through the DRM accel class, the Coral through its own gasket class. */
	accel = resolve(&t, "sys/class/accel/accel0/device");
	assert_true(has_suffix(accel, "/0000:4d:00.0"));
	assert_attr(&t, "sys/class/accel/accel0/device/vendor", "0x1da3");
	assert_attr(&t, "sys/class/accel/accel0/dev", "261:0");
	assert_true(exists(&t, "dev/accel/accel0"));
	npu = resolve(&t, "sys/class/accel/accel1/device/driver");
	assert_string_equal(npu, "sys/bus/pci/drivers/intel_vpu");
	apex = resolve(&t, "sys/class/apex/apex_0/subsystem");
	assert_string_equal(apex, "sys/class/apex");
	assert_attr(&t, "sys/class/apex/apex_0/device/class", "0x088000");
	assert_true(exists(&t, "dev/apex_0"));

	/* The Flex 170's render node, found the way libdrm finds it: by major:minor. */
	render = resolve(&t, "sys/dev/char/226:129/device");
	assert_true(has_suffix(render, "/0000:8a:00.0"));
	assert_attr(&t, "sys/dev/char/226:129/device/device", "0x56c0");
	assert_attr(&t, "sys/class/drm/renderD128/device/device", "0x5005");
	assert_int_equal(read_uevent_key_at(t.fd, "sys/class/drm/renderD129/uevent", "DEVNAME",
					    &uevent),
			 0);
	assert_string_equal(uevent, "dri/renderD129");

	/* The L4 has no driver: no link, no DRIVER= line, nothing in /proc/driver/nvidia. */
	assert_int_equal(count_pci(&t, 0x10de, 0x27b8, NULL), 1);
	assert_false(exists(&t, "sys/bus/pci/devices/0000:6f:00.0/driver"));
	free(uevent);
	uevent = NULL;
	assert_int_equal(read_uevent_key_at(t.fd, "sys/bus/pci/devices/0000:6f:00.0/uevent",
					    "DRIVER", &uevent),
			 -ENXIO);
	assert_false(exists(&t, "proc/driver/nvidia"));
	assert_int_equal(count_pci(&t, 0x1172, 0x0000, NULL), 1);
	assert_attr(&t, "sys/bus/pci/devices/0000:3b:00.1/driver/0000:3b:00.1/vendor", "0x10ee");
	tree_close(&t);
}

static void test_mi300x(void **state)
{
	struct tree t = { .fd = -EBADF };

	tree_open(&t, "mi300x");
	assert_int_equal(count_pci(&t, 0x1002, 0x74a1, NULL), 8);
	for (int i = 0; i < 8; i++) {
		_cleanup_free_ char *path = NULL, *name = NULL, *cls = NULL, *vram = NULL;

		assert_true(asprintf(&path, "sys/class/drm/renderD%d/device", 128 + i) >= 0);
		name = attr(&t, "%s/product_name", path);
		assert_string_equal(name, "AMD Instinct MI300X");
		cls = attr(&t, "%s/class", path);
		assert_string_equal(cls, "0x120000");
		vram = attr(&t, "sys/class/drm/card%d/device/mem_info_vram_total", i + 1);
		assert_string_equal(vram, "206158430208");
	}
	assert_attr(&t, "sys/class/drm/card0/device/vendor", "0x1a03");
	assert_attr(&t, "sys/class/drm/renderD135/device/numa_node", "1");
	assert_true(exists(&t, "dev/kfd"));
	tree_close(&t);
}

/* Each broken GPU of faults.json breaks exactly the parser it is meant for. */
static void test_faults(void **state)
{
	struct tree t = { .fd = -EBADF };
	_cleanup_free_ char *speed = NULL, *cpus = NULL, *big = NULL;
	unsigned mts, count;
	uint32_t v;
	int i;

	tree_open(&t, "faults");
	assert_int_equal(read_attr_int_at(t.fd, "sys/bus/pci/devices/0000:01:00.0/numa_node", &i),
			 0);
	assert_int_equal(read_attr_hex_at(t.fd, "sys/bus/pci/devices/0000:01:00.0/class",
					  0xffffff, &v),
			 0);
	assert_int_equal(v, 0x030200);
	assert_int_equal(read_attr_int_at(t.fd, "sys/bus/pci/devices/0000:02:00.0/numa_node", &i),
			 -EINVAL);
	assert_int_equal(read_attr_hex_at(t.fd, "sys/bus/pci/devices/0000:03:00.0/class",
					  0xffffff, &v),
			 -ENODATA);
	assert_int_equal(read_attr_hex_at(t.fd, "sys/bus/pci/devices/0000:04:00.0/vendor", 0xffff,
					  &v),
			 -ENOENT);
	speed = attr(&t, "sys/bus/pci/devices/0000:05:00.0/current_link_speed");
	assert_int_equal(parse_pcie_link_speed(speed, &mts), -ENODATA);
	assert_attr(&t, "sys/bus/pci/devices/0000:05:00.0/current_link_width", "0");
	assert_attr(&t, "sys/bus/pci/devices/0000:05:00.0/max_link_width", "16");
	assert_int_equal(read_attr_hex_at(t.fd, "sys/bus/pci/devices/0000:06:00.0/class",
					  0xffffff, &v),
			 -EINVAL);
	cpus = attr(&t, "sys/bus/pci/devices/0000:07:00.0/local_cpulist");
	assert_int_equal(parse_cpu_list(cpus, &count), -EINVAL);
	assert_int_equal(read_attr_at(t.fd, "sys/bus/pci/devices/0000:08:00.0/uevent", 0,
				      &big),
			 -EFBIG);
	tree_close(&t);
}

/* ---- hot-unplug, hot-plug, moving ------------------------------------------------------------ */

static void test_remove_pci(void **state)
{
	struct tree t = { .fd = -EBADF };

	tree_open(&t, "hgx-h100");
	assert_int_equal(fixture_remove_pci(t.dir, "0000:18:00.0"), 0);
	assert_false(exists(&t, "sys/bus/pci/devices/0000:18:00.0"));
	assert_false(exists(&t, "sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:00.0/"
				"0000:18:00.0"));
	assert_false(exists(&t, "sys/bus/pci/drivers/nvidia/0000:18:00.0"));
	assert_false(exists(&t, "proc/driver/nvidia/gpus/0000:18:00.0"));
	assert_true(exists(&t, "sys/bus/pci/devices/0000:17:00.0")); /* the port stays */
	assert_int_equal(count_pci(&t, 0x10de, 0x2330, NULL), 7);
	assert_int_equal(fixture_remove_pci(t.dir, "0000:18:00.0"), -ENOENT);
	assert_int_equal(fixture_remove_pci(t.dir, "not-an-address"), -EINVAL);

	/* A class device goes with its function: class link, dev_t link, device node. */
	assert_int_equal(fixture_remove_pci(t.dir, "02:00.0"), 0);
	assert_false(exists(&t, "sys/class/drm/card0"));
	assert_false(exists(&t, "sys/dev/char/226:0"));
	assert_false(exists(&t, "dev/dri/card0"));
	assert_true(exists(&t, "sys/bus/pci/devices/0000:01:00.0"));

	/* Removing a switch removes everything below it. */
	assert_true(exists(&t, "sys/class/infiniband/mlx5_0"));
	assert_int_equal(fixture_remove_pci(t.dir, "0000:16:00.0"), 0);
	assert_false(exists(&t, "sys/bus/pci/devices/0000:16:00.0"));
	assert_false(exists(&t, "sys/bus/pci/devices/0000:17:01.0"));
	assert_false(exists(&t, "sys/bus/pci/devices/0000:19:00.0"));
	assert_false(exists(&t, "sys/bus/pci/drivers/mlx5_core/0000:19:00.0"));
	assert_false(exists(&t, "sys/class/infiniband/mlx5_0"));
	assert_true(exists(&t, "sys/bus/pci/devices/0000:15:01.0"));
	assert_int_equal(count_pci(&t, 0x10de, 0x2330, NULL), 7);
	tree_close(&t);
}

static const char plug_one[] =
	"{ \"pci\": [ { \"address\": \"0000:41:00.0\", \"vendor\": \"0x10de\","
	"  \"device\": \"0x2330\", \"class\": \"0x030200\", \"driver\": \"nvidia\","
	"  \"nvidia\": { \"minor\": 0, \"model\": \"NVIDIA H100 80GB HBM3\","
	"               \"uuid\": \"GPU-00000000-0000-0000-0000-000000000001\","
	"               \"vbios\": \"96.00.74.00.1c\" } } ] }";
static const char plug_two[] =
	"{ \"pci\": [ { \"address\": \"0000:42:00.0\", \"vendor\": \"0x1ac1\","
	"  \"device\": \"0x089a\", \"class\": \"0x088000\", \"driver\": \"apex\","
	"  \"parents\": [\"0000:40:01.0\"],"
	"  \"class_devices\": [ { \"class\": \"apex\", \"name\": \"apex_0\","
	"                       \"devname\": \"apex_0\", \"major\": 120, \"minor\": 0 } ] } ] }";
static const char rebind_one[] =
	"{ \"pci\": [ { \"address\": \"0000:41:00.0\", \"vendor\": \"0x10de\","
	"  \"device\": \"0x2330\", \"class\": \"0x030200\", \"driver\": \"vfio-pci\" } ] }";

/* What "defaults" and "templates" hold lands in each function, never at the top of the tree. */
static const char defaults_only[] =
	"{ \"defaults\": { \"vendor\": \"0x10de\", \"attrs\": { \"a\": \"1\" },"
	"                \"raw_files\": { \"r\": \"x\" } },"
	"  \"templates\": { \"gpu\": { \"device\": \"0x2330\", \"class\": \"0x030200\","
	"                             \"raw_files\": { \"s\": \"y\" } } },"
	"  \"pci\": [ { \"template\": \"gpu\", \"address\": \"0000:18:00.0\","
	"            \"attrs\": { \"b\": \"2\" } } ] }";

static void test_defaults(void **state)
{
	_cleanup_free_ char *error = NULL;
	struct tree t = { .fd = -EBADF };

	if (fixture_build_temp(defaults_only, &t.dir, &error) < 0)
		fail_msg("%s", error);
	t.fd = open(t.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(t.fd >= 0);
	assert_attr(&t, "sys/bus/pci/devices/0000:18:00.0/device", "0x2330");
	assert_attr(&t, "sys/bus/pci/devices/0000:18:00.0/a", "1");
	assert_attr(&t, "sys/bus/pci/devices/0000:18:00.0/b", "2");
	assert_attr(&t, "sys/bus/pci/devices/0000:18:00.0/r", "x");
	assert_attr(&t, "sys/bus/pci/devices/0000:18:00.0/s", "y");
	assert_false(exists(&t, "r"));
	assert_false(exists(&t, "s"));
	assert_false(exists(&t, "a"));
	tree_close(&t);
}

static void test_merge(void **state)
{
	_cleanup_free_ char *error = NULL, *drv = NULL, *uevent = NULL;
	struct tree t = { .fd = -EBADF };

	assert_int_equal(fixture_build_temp(plug_one, &t.dir, &error), 0);
	t.fd = open(t.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(t.fd >= 0);
	assert_false(exists(&t, "sys/devices/system/node/online")); /* none described */
	assert_false(exists(&t, "sys/bus/pci/devices/0000:41:00.0/local_cpulist"));
	assert_false(exists(&t, "proc/devices"));

	/* A second description adds to the tree. */
	assert_int_equal(fixture_build(plug_two, t.dir, &error), 0);
	assert_true(exists(&t, "sys/bus/pci/devices/0000:41:00.0"));
	assert_true(exists(&t, "sys/bus/pci/devices/0000:42:00.0"));
	assert_true(exists(&t, "dev/apex_0"));
	assert_true(exists(&t, "dev/nvidia0"));

	/* A third rebinds the GPU to another driver. */
	assert_int_equal(fixture_build(rebind_one, t.dir, &error), 0);
	drv = resolve(&t, "sys/bus/pci/devices/0000:41:00.0/driver");
	assert_string_equal(drv, "sys/bus/pci/drivers/vfio-pci");
	assert_false(exists(&t, "sys/bus/pci/drivers/nvidia/0000:41:00.0"));
	assert_true(exists(&t, "sys/bus/pci/drivers/vfio-pci/0000:41:00.0"));
	assert_int_equal(read_uevent_key_at(t.fd, "sys/bus/pci/devices/0000:41:00.0/uevent",
					    "DRIVER", &uevent),
			 0);
	assert_string_equal(uevent, "vfio-pci");
	tree_close(&t);
}

/* An "nvml" block alone re-lays the MIG instances of a GPU already in the tree. */
static const char mig_relayout[] =
	"{ \"nvml\": { \"gpus\": [ { \"bus_id\": \"0000:DB:00.0\", "
	"  \"mig\": { \"current\": true, \"pending\": true }, \"mig_profiles\": \"h100-80gb\", "
	"  \"mig_instances\": [ { \"profile\": 9, \"gi\": 2, \"ci\": 0 }, "
	"                       { \"profile\": 14, \"gi\": 5, \"ci\": 3 }, 19 ] } ] } }";
static const char mig_off[] =
	"{ \"nvml\": { \"gpus\": [ { \"bus_id\": \"db:00.0\", "
	"  \"mig\": { \"current\": false, \"pending\": false }, \"mig_instances\": [19] } ] } }";

static const char mig_no_driver[] =
	"{ \"pci\": [ { \"address\": \"0000:18:00.0\", \"vendor\": \"0x10de\", "
	"  \"device\": \"0x2330\", \"class\": \"0x030200\", \"driver\": \"nvidia\", "
	"  \"nvidia\": { \"minor\": 3, \"model\": \"H100\", \"uuid\": \"GPU-1\" } } ], "
	"  \"nvml\": { \"gpus\": [ { \"bus_id\": \"0000:18:00.0\", "
	"  \"mig\": { \"current\": true, \"pending\": true }, \"mig_instances\": [0] } ] } }";

static void test_mig_relayout(void **state)
{
	_cleanup_free_ char *error = NULL, *list = NULL;
	struct tree t = { .fd = -EBADF };
	int base = 3 + 7 * 15 * 9;

	tree_open(&t, "hgx-h100");
	if (fixture_build(mig_relayout, t.dir, &error) < 0)
		fail_msg("%s", error);
	list = mig_instances(&t, 7);
	assert_string_equal(list, "gi2 gi3 gi5");
	assert_mig_cap(&t, "proc/driver/nvidia/capabilities/gpu7/mig/gi2", base + 2 * 9);
	assert_mig_cap(&t, "proc/driver/nvidia/capabilities/gpu7/mig/gi2/ci0", base + 2 * 9 + 1);
	assert_mig_cap(&t, "proc/driver/nvidia/capabilities/gpu7/mig/gi5", base + 5 * 9);
	assert_mig_cap(&t, "proc/driver/nvidia/capabilities/gpu7/mig/gi5/ci3", base + 5 * 9 + 4);
	assert_false(exists(&t, "proc/driver/nvidia/capabilities/gpu7/mig/gi5/ci0"));
	/* A bare profile id at position 2 is GPU instance 3. */
	assert_mig_cap(&t, "proc/driver/nvidia/capabilities/gpu7/mig/gi3/ci0", base + 3 * 9 + 1);

	/* MIG turned off: no GPU instances; the device nodes stay, as on a real host. */
	list = mfree(list);
	assert_int_equal(fixture_build(mig_off, t.dir, &error), 0);
	list = mig_instances(&t, 7);
	assert_string_equal(list, "");
	assert_true(exists(&t, "dev/nvidia-caps/nvidia-cap957"));
	tree_close(&t);

	/* Without "nvidia_driver", the MIG instances bring mig/config and mig/monitor along. */
	if (fixture_build_temp(mig_no_driver, &t.dir, &error) < 0)
		fail_msg("%s", error);
	t.fd = open(t.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(t.fd >= 0);
	assert_mig_cap(&t, "proc/driver/nvidia/capabilities/gpu3/mig/gi1", 3 + (3 * 15 + 1) * 9);
	assert_attr(&t, "proc/driver/nvidia/capabilities/mig/config",
		    "DeviceFileMinor: 1\nDeviceFileMode: 256\nDeviceFileModify: 1");
	assert_attr(&t, "proc/driver/nvidia/capabilities/mig/monitor",
		    "DeviceFileMinor: 2\nDeviceFileMode: 292\nDeviceFileModify: 1");
	assert_true(exists(&t, "dev/nvidia-caps/nvidia-cap1"));
	assert_true(exists(&t, "dev/nvidia-caps/nvidia-cap2"));
	tree_close(&t);
}

static int symlinks_checked;
static int check_symlink(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	char buf[PATH_MAX];
	ssize_t n;

	if (type != FTW_SL)
		return 0;
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n <= 0 || buf[0] == '/')
		return 1;
	symlinks_checked++;
	return 0;
}

/* Every link is relative, so a tree still works after it was moved. */
static void test_move(void **state)
{
	struct tree t = { .fd = -EBADF };
	_cleanup_free_ char *moved = NULL, *old = NULL, *p = NULL;

	tree_open(&t, "mixed");
	symlinks_checked = 0;
	assert_int_equal(nftw(t.dir, check_symlink, 16, FTW_PHYS), 0);
	assert_true(symlinks_checked > 50);

	assert_true(asprintf(&moved, "%s-moved", t.dir) >= 0);
	assert_int_equal(rename(t.dir, moved), 0);
	old = t.dir;
	t.dir = TAKE_PTR(moved);
	p = resolve(&t, "sys/class/drm/renderD129/device/driver");
	assert_string_equal(p, "sys/bus/pci/drivers/i915");
	tree_close(&t);
}

static char *temp_template(void)
{
	const char *tmp = getenv("TMPDIR");
	char *p = NULL;

	assert_true(asprintf(&p, "%s/xpu-test-fixture-XXXXXX", isempty(tmp) ? "/tmp" : tmp) >= 0);
	return p;
}

/* ---- bad descriptions ------------------------------------------------------------------------ */

#define GPU "\"address\": \"0000:18:00.0\", \"vendor\": \"0x10de\", \"device\": \"0x2330\", " \
	    "\"class\": \"0x030200\""
#define NVIDIA "\"nvidia\": { \"minor\": 0, \"model\": \"H100\", \"uuid\": \"GPU-1\" }"
/* The GPU at 0000:18:00.0 in an "nvml" block, MIG on, with these instances. */
#define MIG_GPU(instances)                                                                         \
	"{ \"bus_id\": \"0000:18:00.0\", \"mig\": { \"current\": true, \"pending\": true }, " \
	"\"mig_instances\": " instances " }"

static void test_invalid(void **state)
{
	static const struct {
		const char *json, *message;
	} cases[] = {
		{ "{", "malformed JSON" },
		{ "{ \"pci\": [], \"pci\": [] }", "malformed JSON" },
		{ "[]", "expected a JSON object" },
		{ "{ \"bogus\": 1 }", "bogus: unknown key" },
		{ "{ \"summary\": \"two\\nlines\" }", "summary" },
		{ "{ \"pci\": {} }", "pci: expected array" },
		{ "{ \"pci\": [ 1 ] }", "pci[0]: expected object" },
		{ "{ \"pci\": [ { " GPU ", \"numa_node\": \"0\" } ] }",
		  "pci[0].numa_node: expected integer (device 0000:18:00.0)" },
		{ "{ \"pci\": [ { " GPU ", \"colour\": \"red\" } ] }",
		  "pci[0].colour: unknown key" },
		{ "{ \"pci\": [ { \"address\": \"0000:zz:00.0\" } ] }", "pci[0].address" },
		{ "{ \"pci\": [ { \"address\": \"0000:18:00.0\", \"device\": \"0x2330\" } ] }",
		  "pci[0].vendor: missing" },
		{ "{ \"pci\": [ { \"address\": \"0000:18:00.0\", \"vendor\": \"0x10000\" } ] }",
		  "pci[0].vendor: \"0x10000\" is larger than 0xffff" },
		{ "{ \"pci\": [ { \"address\": \"0000:18:00.0\", \"vendor\": \"0x10de\", "
		  "\"device\": \"0x2330\", \"class\": 3 } ] }",
		  "pci[0].class: expected string" },
		{ "{ \"pci\": [ { " GPU " }, { " GPU " } ] }", "pci[1].address: 0000:18:00.0 is "
							       "described twice" },
		{ "{ \"pci\": [ { " GPU ", \"parents\": [\"0000:17:00\"] } ] }",
		  "pci[0].parents[0]" },
		{ "{ \"pci\": [ { " GPU ", \"local_cpulist\": \"5-2\" } ] }",
		  "pci[0].local_cpulist" },
		{ "{ \"pci\": [ { " GPU ", \"link\": { \"width\": 64 } } ] }",
		  "pci[0].link.width: 64 is out of range" },
		{ "{ \"pci\": [ { " GPU ", \"link\": { \"speed\": \"fast\" } } ] }",
		  "pci[0].link.speed" },
		{ "{ \"pci\": [ { " GPU ", \"driver\": \"../x\" } ] }", "pci[0].driver" },
		{ "{ \"pci\": [ { " GPU ", \"attrs\": { \"x\": 1 } } ] }",
		  "pci[0].attrs.x: expected string or null" },
		{ "{ \"pci\": [ { " GPU ", \"attrs\": { \"a/b\": \"1\" } } ] }",
		  "pci[0].attrs.a/b: not a file name" },
		{ "{ \"pci\": [ { " GPU ", \"raw_files\": { \"../../etc/passwd\": \"x\" } } ] }",
		  "pci[0].raw_files.../../etc/passwd: not a relative path" },
		{ "{ \"pci\": [ { " GPU ", \"nvidia\": { \"model\": \"x\", \"uuid\": \"y\", "
		  "\"vbios\": \"z\" } } ] }",
		  "pci[0].nvidia.minor: missing" },
		{ "{ \"pci\": [ { " GPU ", \"class_devices\": [ { \"class\": \"..\", "
		  "\"name\": \"x\" } ] } ] }",
		  "pci[0].class_devices[0].class" },
		{ "{ \"pci\": [ { " GPU ", \"class_devices\": [ { \"class\": \"drm\", "
		  "\"name\": \"card0\", \"major\": 226 } ] } ] }",
		  "pci[0].class_devices[0]: \"major\" and \"minor\" go together" },
		{ "{ \"pci\": [ { " GPU ", \"template\": \"nope\" } ] }", "pci[0].template" },
		{ "{ \"defaults\": { \"address\": \"0000:18:00.0\" } }", "defaults.address" },
		{ "{ \"defaults\": { \"numa_node\": 1.5 } }",
		  "defaults.numa_node: expected integer" },
		{ "{ \"templates\": { \"t\": { \"revision\": \"0x100\" } } }",
		  "templates.t.revision" },
		{ "{ \"numa_nodes\": [ { \"node\": 0, \"cpus\": \"5-2\" } ] }",
		  "numa_nodes[0].cpus" },
		{ "{ \"numa_nodes\": [ { \"node\": 0 } ] }", "numa_nodes[0].cpus: missing" },
		{ "{ \"char_majors\": { \"nvidia\": \"195\" } }", "char_majors.nvidia" },
		{ "{ \"char_majors\": { \"nvidia\": 5000 } }", "char_majors.nvidia" },
		{ "{ \"nvidia_driver\": { \"version\": 580 } }", "nvidia_driver.version" },
		{ "{ \"dev\": [ \"../escape\" ] }", "dev[0]" },
		{ "{ \"raw_files\": { \"/etc/passwd\": \"x\" } }", "raw_files./etc/passwd" },
		{ "{ \"nvml\": { \"gpus\": {} } }", "nvml.gpus: expected array" },
		{ "{ \"nvml\": { \"gpus\": [ 1 ] } }", "nvml.gpus[0]: expected object" },
		{ "{ \"nvml\": { \"gpus\": [ { \"mig\": null } ] } }",
		  "nvml.gpus[0].bus_id: missing" },
		{ "{ \"nvml\": { \"gpus\": [ { \"bus_id\": \"18:00\", \"mig\": {} } ] } }",
		  "nvml.gpus[0].bus_id: \"18:00\" is not a PCI address" },
		{ "{ \"nvml\": { \"gpus\": [ { \"bus_id\": \"18:00.0\", \"mig\": {} } ] } }",
		  "nvml.gpus[0].mig.current: expected boolean" },
		{ "{ \"nvml\": { \"gpus\": [ " MIG_GPU("[19]") " ] } }",
		  "nvml.gpus[0].bus_id: 0000:18:00.0 is no GPU of the tree" },
		{ "{ \"pci\": [ { " GPU ", " NVIDIA " } ], \"nvml\": { \"gpus\": [ "
		  MIG_GPU("[19, {\"profile\": 19, \"gi\": 1}]") " ] } }",
		  "nvml.gpus[0].mig_instances[1]: GPU instance id 1 is used twice" },
		{ "{ \"pci\": [ { " GPU ", " NVIDIA " } ], \"nvml\": { \"gpus\": [ "
		  MIG_GPU("[{\"profile\": 19, \"gi\": 15}]") " ] } }",
		  "nvml.gpus[0].mig_instances[0].gi: 15 is out of range 0..14" },
		{ "{ \"pci\": [ { " GPU ", " NVIDIA " } ], \"nvml\": { \"gpus\": [ "
		  MIG_GPU("[{\"profile\": 19, \"ci\": 8}]") " ] } }",
		  "nvml.gpus[0].mig_instances[0].ci: 8 is out of range 0..7" },
		{ "{ \"pci\": [ { " GPU ", " NVIDIA " } ], \"nvml\": { \"gpus\": [ "
		  MIG_GPU("[\"19\"]") " ] } }",
		  "nvml.gpus[0].mig_instances[0]: expected a profile id or an object" },
	};
	static const char untouched[] = "untouched";
	_cleanup_free_ char *dir = temp_template();

	assert_non_null(mkdtemp(dir));

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *error = NULL;
		char *tdir = (char *)untouched;
		DIR *d;
		struct dirent *de;
		int r;

		r = fixture_build(cases[i].json, dir, &error);
		if (r != -EINVAL || !error || !strstr(error, cases[i].message))
			fail_msg("case %zu (%s): got %d \"%s\", expected -EINVAL \"%s\"", i,
				 cases[i].json, r, error ?: "(null)", cases[i].message);

		/* Refused before anything was written. */
		d = opendir(dir);
		assert_non_null(d);
		while ((de = readdir(d)))
			if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
				fail_msg("case %zu left %s behind", i, de->d_name);
		closedir(d);

		/* The temp variant fails the same way and leaves *ret_dir alone. */
		free(error);
		error = NULL;
		assert_int_equal(fixture_build_temp(cases[i].json, &tdir, &error), -EINVAL);
		assert_ptr_equal(tdir, untouched);
		assert_non_null(error);
	}

	/* No message wanted: still refused. */
	assert_int_equal(fixture_build("{ \"bogus\": 1 }", dir, NULL), -EINVAL);
	assert_int_equal(fixture_build("{}", "/nonexistent/xpu-fixture", NULL), -ENOENT);
	assert_int_equal(fixture_destroy(dir), 0);
}

static void test_destroy(void **state)
{
	_cleanup_free_ char *file = NULL;
	int fd;

	file = temp_template();
	fd = mkstemp(file);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(fixture_destroy(file), -ENOTDIR);
	assert_int_equal(access(file, F_OK), 0);
	assert_int_equal(unlink(file), 0);
	assert_int_equal(fixture_destroy(file), -ENOENT);
	assert_int_equal(fixture_destroy("/"), -EPERM);
	assert_int_equal(fixture_destroy(""), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_embedded_nodes), cmocka_unit_test(test_hgx_h100),
		cmocka_unit_test(test_real_h100_vm),   cmocka_unit_test(test_mixed),
		cmocka_unit_test(test_mi300x),	       cmocka_unit_test(test_faults),
		cmocka_unit_test(test_remove_pci),     cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_merge),	       cmocka_unit_test(test_mig_relayout),
		cmocka_unit_test(test_move),	       cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_destroy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
