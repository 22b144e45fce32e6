// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The allocator on the real fixture nodes (the HGX through the NVIDIA backend on the fake NVML,
 * with its NVLink topology and one MIG-split GPU; the MI300X and the mixed node through the PCI
 * backend) and on hand-built device lists for exact topology cases. Every expected answer is
 * written out; docs/allocation.md explains why each one is right.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backends/backend.h"
#include "backends/registry.h"
#include "backends/vendor-rules.h"
#include "core/alloc.h"
#include "core/plan.h"
#include "shared/host.h"
#include "shared/strv.h"
#include "sim/fixture.h"
#include "testutil.h"

#define GiB (1024ULL * 1024 * 1024)

/* The HGX fixture: whole GPUs on NUMA 0 and 1, and db:00.0 split into seven MIG 1g.10gb. */
#define MIG_0 "MIG-1aa1c434-8394-57cf-b8d9-1f0cb5a77ae1"
#define MIG_1 "MIG-1eb1ccb5-06ad-5f86-bfff-4d993d674e8a"
#define MIG_2 "MIG-3440bc12-4856-5b74-8f84-355422914a1e"
/* What the fake NVML reports for a 1g.10gb instance: 9.75 GiB, less than 10 GiB. */
#define MIG_1G_BYTES 10468982784ULL

struct node {
	char *root;
	struct xpu_host *host;
	struct registry *reg;
	struct device_list devs;
	struct slice_list slices;
	struct ledger ledger;
	unsigned n_held;
};

static void node_plan(struct node *n)
{
	slice_list_clear(&n->slices);
	assert_int_equal(plan_slices(&n->devs, &n->slices), 0);
}

/* A fixture node as the registry sees it; the HGX with the NVIDIA backend on the fake NVML. */
static struct node *node_open(const char *name)
{
	const struct xpu_backend_ops *ops[] = { &pci_backend_ops, &nvidia_backend_ops };
	struct node *n = calloc(1, sizeof(*n));
	bool nvml = streq(name, "hgx-h100");

	assert_non_null(n);
	n->root = test_fixture_new(name);
	if (nvml) {
		_cleanup_free_ char *json = NULL, *lib = NULL;

		assert_true(asprintf(&json, "%s/run/fake-nvml.json", n->root) > 0);
		assert_true(asprintf(&lib, "%s/libnvidia-ml.so.1",
				     test_env("XPU_FAKE_NVML_DIR")) > 0);
		setenv("XPU_FAKE_NVML", json, 1);
		setenv("XPU_NVML_LIBRARY", lib, 1);
		unsetenv("XPU_CUDA_LIBRARY");
	}
	assert_int_equal(host_open(n->root, &n->host), 0);
	assert_int_equal(registry_new(n->host, NULL, ops, nvml ? 2 : 1, &n->reg), 0);
	assert_int_equal(registry_enumerate(n->reg, &n->devs), 0);
	node_plan(n);
	return n;
}

/* A node of hand-built devices (no fixture tree). */
static struct node *node_new(void)
{
	struct node *n = calloc(1, sizeof(*n));

	assert_non_null(n);
	return n;
}

/* Each fixture is built and enumerated once; every test gets its own copy of the devices. */
static const char *const fixture_names[] = { "hgx-h100", "mi300x", "mixed" };
static struct node *fixtures[ELEMENTSOF(fixture_names)];

static struct node *node_fixture(const char *name)
{
	struct node *n = node_new();

	for (size_t i = 0; i < ELEMENTSOF(fixture_names); i++) {
		if (!streq(fixture_names[i], name))
			continue;
		for (size_t j = 0; j < fixtures[i]->devs.n; j++) {
			struct xpu_device *d;

			assert_int_equal(device_dup(fixtures[i]->devs.items[j], &d), 0);
			assert_int_equal(device_list_push(&n->devs, d), 0);
		}
		node_plan(n);
		return n;
	}
	fail_msg("no fixture %s", name);
	return NULL;
}

static void node_free(struct node *n)
{
	ledger_clear(&n->ledger);
	slice_list_clear(&n->slices);
	device_list_clear(&n->devs);
	registry_free(n->reg);
	host_free(n->host);
	if (n->root) {
		assert_int_equal(fixture_destroy(n->root), 0);
		free(n->root);
	}
	free(n);
}

static struct xpu_device *dev(struct node *n, const char *id)
{
	struct xpu_device *d = device_list_find(&n->devs, id);

	if (!d)
		fail_msg("no device %s", id);
	return d;
}

/* Allocates the slices @l (taken over) to a new allocation, as a daemon would record it. */
static void hold_strv(struct node *n, char **l)
{
	struct allocation *a = calloc(1, sizeof(*a));

	assert_non_null(a);
	assert_true(asprintf(&a->id, "a-%016u", ++n->n_held) > 0);
	a->slices = l;
	assert_int_equal(ledger_add(&n->ledger, a), 0);
}

/* The same for slice ids given as arguments, NULL-terminated. */
static void hold(struct node *n, ...)
{
	const char *s;
	char **l = NULL;
	va_list ap;

	va_start(ap, n);
	while ((s = va_arg(ap, const char *)))
		assert_int_equal(strv_extend(&l, s), 0);
	va_end(ap);
	hold_strv(n, l);
}

static char *join(char **l)
{
	char *s = strv_join(l, " ");

	assert_non_null(s);
	return s;
}

/* alloc_choose() must succeed with exactly the slices given (space-separated, in order). */
static void expect(struct node *n, struct alloc_request req, const char *want)
{
	_cleanup_free_ char *err = NULL, *got = NULL;
	char **l = NULL;
	int r;

	r = alloc_choose(&n->devs, &n->slices, &n->ledger, &req, &l, &err);
	if (r < 0)
		fail_msg("expected '%s', got %s: %s", want, strerror(-r), err ?: "(no reason)");
	got = join(l);
	strv_free(l);
	if (!streq(got, want))
		fail_msg("expected '%s', got '%s'", want, got);
}

/* alloc_choose() must fail with @error and a one-line reason containing @needle. */
static void expect_error(struct node *n, struct alloc_request req, int error, const char *needle)
{
	_cleanup_free_ char *err = NULL;
	char **l = NULL;
	int r;

	r = alloc_choose(&n->devs, &n->slices, &n->ledger, &req, &l, &err);
	if (r >= 0) {
		_cleanup_free_ char *got = join(l);

		strv_free(l);
		fail_msg("expected %s, got '%s'", strerror(-error), got);
	}
	assert_null(l);
	if (r != error)
		fail_msg("expected %s, got %s: %s", strerror(-error), strerror(-r), err ?: "");
	assert_non_null(err);
	assert_null(strchr(err, '\n'));
	if (!strstr(err, needle))
		fail_msg("reason '%s' does not mention '%s'", err, needle);
}

#define REQ(res, n, ...) \
	((struct alloc_request){ .resource = (char *)(res), .count = (n), __VA_ARGS__ })
#define SLICES(...) ((char *[]){ __VA_ARGS__, NULL })

/* --- HGX H100: NVLink everywhere, two NUMA nodes, one MIG-split GPU --------------------------- */

static void test_hgx_numa(void **state)
{
	struct node *n = node_fixture("hgx-h100");

	/* All pairs are NV18: NUMA decides, then slice order. */
	expect(n, REQ("nvidia.com/gpu", 2, .numa_local = true), "0000:18:00.0 0000:2a:00.0");
	expect(n, REQ("nvidia.com/gpu", 4, .connected = true),
	       "0000:18:00.0 0000:2a:00.0 0000:3a:00.0 0000:5d:00.0");
	/* Five do not fit on one node: four of NUMA 0, the first of NUMA 1. */
	expect(n, REQ("nvidia.com/gpu", 5),
	       "0000:18:00.0 0000:2a:00.0 0000:3a:00.0 0000:5d:00.0 0000:9a:00.0");
	expect_error(n, REQ("nvidia.com/gpu", 5, .numa_local = true), -ENOSPC, "one NUMA node");

	/* With three of NUMA 0 taken, two GPUs come from NUMA 1, not 5d:00.0 and one of NUMA 1. */
	hold(n, "0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", NULL);
	expect(n, REQ("nvidia.com/gpu", 2), "0000:9a:00.0 0000:ab:00.0");
	expect(n, REQ("nvidia.com/gpu", 1), "0000:5d:00.0");
	node_free(n);
}

static void test_hgx_mig(void **state)
{
	struct node *n = node_fixture("hgx-h100");

	expect(n, REQ("nvidia.com/mig-1g.10gb", 1), MIG_0);
	hold(n, MIG_0, NULL);
	expect(n, REQ("nvidia.com/mig-1g.10gb", 2), MIG_1 " " MIG_2);
	expect_error(n, REQ("nvidia.com/mig-1g.10gb", 7), -ENOSPC, "only 6 of 7");
	/* The split GPU offers no whole GPU: seven whole ones exist. */
	expect_error(n, REQ("nvidia.com/gpu", 8), -ENOSPC, "only 7 exist");
	node_free(n);
}

static void test_hgx_errors(void **state)
{
	struct node *n = node_fixture("hgx-h100");

	expect_error(n, REQ("nvidia.com/gpu", 0), -EINVAL, "at least 1");
	expect_error(n, REQ("amd.com/gpu", 1), -ENOENT, "amd.com/gpu");
	expect_error(n, REQ(NULL, 1), -EINVAL, "resource");
	expect_error(n, REQ("nvidia.com/gpu", 1, .device = (char *)"ee:00.0"), -ENOENT,
		     "ee:00.0");
	expect_error(n, REQ("nvidia.com/mig-1g.10gb", 1, .device = (char *)"18:00.0"), -EINVAL,
		     "0000:18:00.0 offers no nvidia.com/mig-1g.10gb");
	hold(n, "0000:18:00.0", "0000:9a:00.0", NULL);
	expect_error(n, REQ("nvidia.com/gpu", 6), -ENOSPC, "only 5 of 7");
	node_free(n);
}

static void test_hgx_explicit(void **state)
{
	struct node *n = node_fixture("hgx-h100");

	/* Explicit slices come back as given. */
	expect(n, REQ(NULL, 0, .slices = SLICES("0000:ab:00.0", "0000:9a:00.0")),
	       "0000:ab:00.0 0000:9a:00.0");
	expect(n, REQ("nvidia.com/gpu", 2, .slices = SLICES("0000:ab:00.0", "0000:9a:00.0"),
		      .numa_local = true, .connected = true),
	       "0000:ab:00.0 0000:9a:00.0");
	expect_error(n, REQ(NULL, 0, .slices = SLICES("0000:ab:00.0", "0000:ee:00.0")), -ENOENT,
		     "0000:ee:00.0");
	expect_error(n, REQ(NULL, 3, .slices = SLICES("0000:ab:00.0")), -EINVAL, "Count 3");
	expect_error(n, REQ(NULL, 0, .slices = SLICES("0000:ab:00.0", "0000:ab:00.0")), -EINVAL,
		     "twice");
	expect_error(n, REQ(NULL, 0, .slices = SLICES("0000:18:00.0", "0000:9a:00.0"),
			    .numa_local = true),
		     -EINVAL, "NUMA");
	expect_error(n, REQ(NULL, 0, .slices = SLICES("0000:18:00.0"),
			    .device = (char *)"2a:00.0"),
		     -EINVAL, "conflicting with device 0000:2a:00.0");
	expect_error(n, REQ("nvidia.com/gpu", 0, .slices = SLICES(MIG_0)), -EINVAL,
		     "nvidia.com/mig-1g.10gb");
	expect_error(n, REQ(NULL, 0, .slices = SLICES("0000:18:00.0", MIG_0)), -EINVAL,
		     "conflicting");

	hold(n, "0000:ab:00.0", NULL);
	expect_error(n, REQ(NULL, 0, .slices = SLICES("0000:9a:00.0", "0000:ab:00.0")), -EBUSY,
		     "0000:ab:00.0");
	assert_int_equal(device_set_unhealthy(dev(n, "0000:ba:00.0"), "XID 79"), 0);
	expect_error(n, REQ(NULL, 0, .slices = SLICES("0000:ba:00.0")), -ENOSPC, "XID 79");
	node_free(n);
}

static void test_hgx_unhealthy(void **state)
{
	struct node *n = node_fixture("hgx-h100");

	assert_int_equal(device_set_unhealthy(dev(n, "0000:18:00.0"), "fell off the bus"), 0);
	assert_int_equal(device_set_unhealthy(dev(n, "0000:db:00.0"), "XID 79"), 0);
	expect(n, REQ("nvidia.com/gpu", 1), "0000:2a:00.0");
	expect(n, REQ("nvidia.com/gpu", 3, .numa_local = true),
	       "0000:2a:00.0 0000:3a:00.0 0000:5d:00.0");
	expect_error(n, REQ("nvidia.com/gpu", 7), -ENOSPC, "only 6 of 7");
	expect_error(n, REQ("nvidia.com/mig-1g.10gb", 1), -ENOSPC, "only 0 of 7");
	node_free(n);
}

static void test_hgx_device(void **state)
{
	struct node *n = node_fixture("hgx-h100");

	expect(n, REQ("nvidia.com/gpu", 1, .device = (char *)"ab:00.0"), "0000:ab:00.0");
	expect(n, REQ("nvidia.com/gpu", 1, .device = (char *)"0000:ba:00.0"), "0000:ba:00.0");
	expect(n, REQ("nvidia.com/gpu", 1,
		      .device = (char *)"GPU-40c23112-3073-1943-85b1-9b73f86c26d9"),
	       "0000:9a:00.0");
	hold(n, MIG_0, NULL);
	expect(n, REQ("nvidia.com/mig-1g.10gb", 1, .device = (char *)"db:00.0"), MIG_1);
	expect_error(n, REQ("nvidia.com/gpu", 2, .device = (char *)"9a:00.0"), -ENOSPC,
		     "only 1 exist on device 0000:9a:00.0");
	node_free(n);
}

/* --- MI300X: PCIe only, every GPU under its own root complex ---------------------------------- */

static void test_mi300x(void **state)
{
	struct node *n = node_fixture("mi300x");

	expect(n, REQ("amd.com/gpu", 2), "0000:0c:00.0 0000:22:00.0");
	expect(n, REQ("amd.com/gpu", 1, .connected = true), "0000:0c:00.0");
	expect_error(n, REQ("amd.com/gpu", 2, .connected = true), -ENOSPC, "XGMI-connected");
	expect(n, REQ("amd.com/gpu", 5),
	       "0000:0c:00.0 0000:22:00.0 0000:38:00.0 0000:5c:00.0 0000:9f:00.0");
	hold(n, "0000:0c:00.0", NULL);
	expect(n, REQ("amd.com/gpu", 4, .numa_local = true),
	       "0000:9f:00.0 0000:af:00.0 0000:bf:00.0 0000:df:00.0");
	expect_error(n, REQ("amd.com/gpu", 2, .numa_local = true, .connected = true), -ENOSPC,
		     "one NUMA node with all devices XGMI-connected");
	node_free(n);
}

static void test_mixed(void **state)
{
	struct node *n = node_fixture("mixed");

	/* The L4 has no driver bound: unhealthy, never handed out. */
	expect_error(n, REQ("nvidia.com/gpu", 1), -ENOSPC, "only 0 of 1");
	expect(n, REQ("xilinx.com/fpga", 1), "0000:3b:00.0");
	expect(n, REQ("habana.ai/gaudi", 1, .device = (char *)"4d:00.0"), "0000:4d:00.0");
	node_free(n);
}

/* --- Hand-built topologies -------------------------------------------------------------------- */

static struct xpu_device *mkdev(struct node *n, const char *id, int numa, const char *root,
				const char *bridges)
{
	struct xpu_device *d = device_new();

	assert_non_null(d);
	d->id = strdup(id);
	d->has_pci = true;
	snprintf(d->pci.address, sizeof(d->pci.address), "%s", id);
	d->numa_node = numa;
	d->resource = strdup("xpu.dev/test");
	d->memory_bytes = 64 * GiB;
	assert_non_null(d->id);
	assert_non_null(d->resource);
	if (root)
		assert_int_equal(device_set_property(d, "pci_root", root), 0);
	if (bridges)
		assert_int_equal(device_set_property(d, "pci_bridges", bridges), 0);
	assert_int_equal(device_list_push(&n->devs, d), 0);
	return d;
}

/* Splits @d into @k partitions "<id>/p<i>" of the resource xpu.dev/part. */
static void split(struct xpu_device *d, unsigned k)
{
	for (unsigned i = 0; i < k; i++) {
		struct xpu_slice *s = calloc(1, sizeof(*s));

		assert_non_null(s);
		assert_true(asprintf(&s->id, "%s/p%u", d->id, i) > 0);
		s->resource = strdup("xpu.dev/part");
		s->memory_bytes = 10 * GiB;
		s->compute_fraction = 1.0 / k;
		assert_int_equal(device_add_partition(d, s), 0);
	}
	d->partitioned = true;
}

/* Makes @d @vendor's, with that vendor's rules, as the registry does. */
static void set_vendor(struct xpu_device *d, const char *vendor)
{
	assert_int_equal(device_set_string(&d->vendor, vendor), 0);
	d->rules = vendor_rules(d->vendor);
}

/* The topology value nvidia-smi would show between @a and @b, on both (NVIDIA's GPUs). */
static void topo(struct xpu_device *a, struct xpu_device *b, const char *v)
{
	char key[64];

	set_vendor(a, "nvidia");
	set_vendor(b, "nvidia");
	snprintf(key, sizeof(key), "topology.%s", b->id);
	assert_int_equal(device_set_property(a, key, v), 0);
	snprintf(key, sizeof(key), "topology.%s", a->id);
	assert_int_equal(device_set_property(b, key, v), 0);
}

/* Levels from sysfs alone: a shared switch beats a shared root complex beats a NUMA node. */
static void test_sysfs_levels(void **state)
{
	struct node *n = node_new();
	struct xpu_device *d2, *d3;

	mkdev(n, "0000:01:00.0", 0, "pci0000:00", "0000:00:01.0,0000:10:00.0,0000:11:00.0");
	d2 = mkdev(n, "0000:02:00.0", 0, "pci0000:20", "0000:20:01.0,0000:21:00.0,0000:22:00.0");
	d3 = mkdev(n, "0000:03:00.0", 0, "pci0000:00", "0000:00:02.0,0000:30:00.0,0000:31:00.0");
	mkdev(n, "0000:04:00.0", 0, "pci0000:00", "0000:00:01.0,0000:10:00.0,0000:11:01.0");
	node_plan(n);

	expect(n, REQ("xpu.dev/test", 2), "0000:01:00.0 0000:04:00.0"); /* one switch */
	hold(n, "0000:04:00.0", NULL);
	expect(n, REQ("xpu.dev/test", 2), "0000:01:00.0 0000:03:00.0"); /* one root complex */
	hold(n, "0000:01:00.0", NULL);
	expect(n, REQ("xpu.dev/test", 2), "0000:02:00.0 0000:03:00.0"); /* one NUMA node */

	/* A backend's NVLink report beats anything sysfs shows. */
	ledger_clear(&n->ledger);
	expect_error(n, REQ("xpu.dev/test", 2, .connected = true), -ENOSPC,
		     "with all devices fabric-connected"); /* no rules name a fabric */
	topo(d2, d3, "NV4");
	expect(n, REQ("xpu.dev/test", 2), "0000:02:00.0 0000:03:00.0");
	expect(n, REQ("xpu.dev/test", 2, .connected = true), "0000:02:00.0 0000:03:00.0");
	expect_error(n, REQ("xpu.dev/test", 3, .connected = true), -ENOSPC, "NVLink-connected");
	node_free(n);
}

/* The worst pair decides first, then the sum over pairs. */
/* Sets the topology of the four devices @d from the values for ab, ac, ad, bc, bd, cd. */
static void topo4(struct xpu_device *const *d, const char *const *v)
{
	for (size_t i = 0, k = 0; i < 4; i++)
		for (size_t j = i + 1; j < 4; j++)
			topo(d[i], d[j], v[k++]);
}

static void test_worst_then_sum(void **state)
{
	struct node *n = node_new();
	struct xpu_device *d[4];

	for (unsigned i = 0; i < 4; i++) {
		char id[16];

		snprintf(id, sizeof(id), "0000:%02x:00.0", 0xa + i);
		d[i] = mkdev(n, id, 0, NULL, NULL);
	}
	node_plan(n);
	/* abc: 1,3,3 (worst 3, sum 7); abd: 1,4,1 (worst 4, sum 6); acd, bcd: worst 5 */
	topo4(d, (const char *const[]){ "NV2", "PHB", "NODE", "PHB", "NV2", "SYS" });
	expect(n, REQ("xpu.dev/test", 3), "0000:0a:00.0 0000:0b:00.0 0000:0c:00.0");

	/* abc: 4,4,4 (sum 12); bcd: 4,4,1 (sum 9); abd, acd: worst 5 */
	topo4(d, (const char *const[]){ "NODE", "NODE", "SYS", "NODE", "NODE", "NV1" });
	expect(n, REQ("xpu.dev/test", 3), "0000:0b:00.0 0000:0c:00.0 0000:0d:00.0");
	node_free(n);
}

/* Each vendor's rules read their own properties, naming the peer by id or PCI address. */
static void test_rules_link_levels(void **state)
{
	static const struct {
		const char *v;
		enum link_level level;
	} nv[] = {
		{ "X", LINK_SAME_DEVICE }, { "NV18", LINK_FABRIC }, { "NV", _LINK_UNKNOWN },
		{ "PIX", LINK_SWITCH }, { "PXB", LINK_SWITCH }, { "PHB", LINK_ROOT },
		{ "NODE", LINK_NUMA }, { "SYS", LINK_SYSTEM }, { "XGMI", _LINK_UNKNOWN },
	};
	struct node *n = node_new();
	struct xpu_device *a = mkdev(n, "0000:01:00.0", 0, NULL, NULL);
	struct xpu_device *b = mkdev(n, "0000:02:00.0", 0, NULL, NULL);
	const struct device_rules *nvidia = vendor_rules("nvidia"), *amd = vendor_rules("amd");

	assert_int_equal(nvidia->link_level(a, b), _LINK_UNKNOWN);
	for (size_t i = 0; i < ELEMENTSOF(nv); i++) {
		assert_int_equal(device_set_property(a, "topology.0000:02:00.0", nv[i].v), 0);
		assert_int_equal(nvidia->link_level(a, b), nv[i].level);
	}
	assert_int_equal(amd->link_level(a, b), _LINK_UNKNOWN); /* not AMD's property */
	assert_int_equal(device_set_property(a, "xgmi.0000:02:00.0", "0"), 0);
	assert_int_equal(amd->link_level(a, b), _LINK_UNKNOWN);
	assert_int_equal(device_set_property(a, "xgmi.0000:02:00.0", "false"), 0);
	assert_int_equal(amd->link_level(a, b), _LINK_UNKNOWN);
	/* a peer whose id is not its PCI address is named by either */
	assert_int_equal(device_set_string(&b->id, "accel-2"), 0);
	assert_int_equal(device_set_property(a, "xgmi.accel-2", "1"), 0);
	assert_int_equal(amd->link_level(a, b), LINK_FABRIC);
	assert_int_equal(device_set_property(a, "xgmi.accel-2", "0"), 0);
	assert_int_equal(device_set_property(a, "topology.0000:02:00.0", "NV4"), 0);
	assert_int_equal(nvidia->link_level(a, b), LINK_FABRIC);
	assert_string_equal(nvidia->fabric, "NVLink");
	assert_string_equal(amd->fabric, "XGMI");
	node_free(n);
}

/* XGMI as AMD's rules read it, an xgmi.<peer> property on either device, next to an NVIDIA GPU;
 * unknown NUMA is a group of its own, and two devices that both do not know their node are not
 * taken to share one. */
static void test_xgmi_and_unknown_numa(void **state)
{
	struct node *n = node_new();
	struct xpu_device *x1, *x2, *x3;

	x1 = mkdev(n, "0000:01:00.0", -1, "pci0000:00", NULL);
	x2 = mkdev(n, "0000:02:00.0", -1, "pci0000:10", NULL);
	set_vendor(mkdev(n, "0000:03:00.0", 0, "pci0000:20", NULL), "nvidia");
	x3 = mkdev(n, "0000:04:00.0", 0, "pci0000:30", NULL);
	set_vendor(x1, "amd");
	set_vendor(x2, "amd");
	set_vendor(x3, "amd");
	node_plan(n);

	expect_error(n, REQ("xpu.dev/test", 2, .connected = true), -ENOSPC, "NVLink/XGMI");
	/* 03 and 04 share NUMA node 0 (level 4); 01 and 02 only not knowing theirs (level 5). */
	expect(n, REQ("xpu.dev/test", 2, .numa_local = true), "0000:03:00.0 0000:04:00.0");
	hold(n, "0000:04:00.0", NULL);
	expect(n, REQ("xpu.dev/test", 2, .numa_local = true), "0000:01:00.0 0000:02:00.0");
	expect_error(n, REQ("xpu.dev/test", 3, .numa_local = true), -ENOSPC, "one NUMA node");
	ledger_clear(&n->ledger);

	assert_int_equal(device_set_property(x1, "xgmi.0000:02:00.0", "1"), 0);
	expect(n, REQ("xpu.dev/test", 2, .connected = true), "0000:01:00.0 0000:02:00.0");
	assert_int_equal(device_set_property(x3, "xgmi.0000:02:00.0", "1"), 0);
	expect_error(n, REQ("xpu.dev/test", 3, .connected = true), -ENOSPC, "NVLink/XGMI");
	assert_int_equal(device_set_property(x1, "xgmi.0000:04:00.0", "true"), 0);
	expect(n, REQ("xpu.dev/test", 3, .connected = true),
	       "0000:01:00.0 0000:02:00.0 0000:04:00.0");
	expect_error(n, REQ(NULL, 0, .slices = SLICES("0000:01:00.0", "0000:03:00.0"),
			    .connected = true),
		     -EINVAL, "Devices 0000:01:00.0 and 0000:03:00.0 are not NVLink/XGMI-connected");
	expect(n, REQ(NULL, 0, .slices = SLICES("0000:02:00.0", "0000:04:00.0"), .connected = true),
	       "0000:02:00.0 0000:04:00.0");
	node_free(n);
}

/* One step of a scenario: allocate @hold (space-separated slice ids, or NULL), then ask for
 * @count slices of xpu.dev/part and expect @want. */
struct step {
	const char *hold;
	unsigned count;
	const char *want;
};

static void run_steps(struct node *n, const struct step *steps, size_t k)
{
	for (size_t i = 0; i < k; i++) {
		if (steps[i].hold) {
			_cleanup_free_ char *copy = strdup(steps[i].hold);
			char *save = NULL, **l = NULL, *w;

			assert_non_null(copy);
			for (w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
				assert_int_equal(strv_extend(&l, w), 0);
			hold_strv(n, l);
		}
		expect(n, REQ("xpu.dev/part", steps[i].count), steps[i].want);
	}
}

/* Partly used devices first, then best fit; one device over several. */
static void test_fragmentation(void **state)
{
	static const struct step two_devices[] = {
		{ NULL, 1, "0000:01:00.0/p0" },
		{ "0000:02:00.0/p3", 1, "0000:02:00.0/p0" },
		{ NULL, 2, "0000:02:00.0/p0 0000:02:00.0/p1" },
		/* 02 has six left: seven come whole from 01 rather than from two devices. */
		{ NULL, 7, "0000:01:00.0/p0 0000:01:00.0/p1 0000:01:00.0/p2 0000:01:00.0/p3 "
			   "0000:01:00.0/p4 0000:01:00.0/p5 0000:01:00.0/p6" },
		/* Eight need both: the partly used 02 is emptied first. */
		{ NULL, 8, "0000:02:00.0/p0 0000:02:00.0/p1 0000:02:00.0/p2 0000:02:00.0/p4 "
			   "0000:02:00.0/p5 0000:02:00.0/p6 0000:01:00.0/p0 0000:01:00.0/p1" },
		/* Both partly used: 01 with six left, 02 with two. Best fit. */
		{ "0000:02:00.0/p0 0000:02:00.0/p1 0000:02:00.0/p2 0000:02:00.0/p4", 2,
		  "0000:02:00.0/p5 0000:02:00.0/p6" },
		{ "0000:01:00.0/p3", 2, "0000:02:00.0/p5 0000:02:00.0/p6" },
		{ NULL, 1, "0000:02:00.0/p5" },
		{ NULL, 3, "0000:01:00.0/p0 0000:01:00.0/p1 0000:01:00.0/p2" },
		/* Eight: the device with fewer left is emptied first. */
		{ NULL, 8, "0000:02:00.0/p5 0000:02:00.0/p6 0000:01:00.0/p0 0000:01:00.0/p1 "
			   "0000:01:00.0/p2 0000:01:00.0/p4 0000:01:00.0/p5 0000:01:00.0/p6" },
	};
	/* An untouched device is not broken up even where it would fit better: 03 (three
	 * partitions, none used) vs 04 (seven, one used). */
	static const struct step untouched[] = {
		{ "0000:04:00.0/p0", 1, "0000:04:00.0/p1" },
		{ NULL, 3, "0000:04:00.0/p1 0000:04:00.0/p2 0000:04:00.0/p3" },
		/* Eight need both: the partly used 04 gives six, though it has more left. */
		{ NULL, 8, "0000:04:00.0/p1 0000:04:00.0/p2 0000:04:00.0/p3 0000:04:00.0/p4 "
			   "0000:04:00.0/p5 0000:04:00.0/p6 0000:03:00.0/p0 0000:03:00.0/p1" },
	};
	struct node *n = node_new();

	split(mkdev(n, "0000:01:00.0", 0, "pci0000:00", "0000:00:01.0,0000:10:00.0,0000:11:00.0"),
	      7);
	split(mkdev(n, "0000:02:00.0", 0, "pci0000:00", "0000:00:01.0,0000:10:00.0,0000:11:01.0"),
	      7);
	node_plan(n);
	run_steps(n, two_devices, ELEMENTSOF(two_devices));
	node_free(n);

	n = node_new();
	split(mkdev(n, "0000:03:00.0", 0, NULL, NULL), 3);
	split(mkdev(n, "0000:04:00.0", 0, NULL, NULL), 7);
	node_plan(n);
	run_steps(n, untouched, ELEMENTSOF(untouched));
	node_free(n);
}

/* 8 GPUs x 7 partitions, all NVLink, two NUMA nodes: the exhaustive search over devices. */
static void test_mig_split_node(void **state)
{
	struct node *n = node_new();
	struct xpu_device *g[8];
	_cleanup_free_ char *want = NULL;
	char **l = NULL;

	for (unsigned i = 0; i < 8; i++) {
		char id[16];

		snprintf(id, sizeof(id), "0000:%02x:00.0", 0x10 * (i + 1));
		g[i] = mkdev(n, id, i / 4, NULL, NULL);
		split(g[i], 7);
	}
	for (unsigned i = 0; i < 8; i++)
		for (unsigned j = i + 1; j < 8; j++)
			topo(g[i], g[j], "NV18");
	node_plan(n);
	hold(n, "0000:10:00.0/p0", NULL);
	/* 20 slices: three GPUs of NUMA 0, the partly used 10:00.0 among them (20 free exactly),
	 * which is listed first. */
	for (unsigned i = 1; i < 7; i++)
		assert_int_equal(strv_extendf(&l, "0000:10:00.0/p%u", i), 0);
	for (unsigned i = 0; i < 7; i++)
		assert_int_equal(strv_extendf(&l, "0000:20:00.0/p%u", i), 0);
	for (unsigned i = 0; i < 7; i++)
		assert_int_equal(strv_extendf(&l, "0000:30:00.0/p%u", i), 0);
	want = join(l);
	strv_free(l);
	expect(n, REQ("xpu.dev/part", 20), want);
	expect_error(n, REQ("xpu.dev/part", 29, .numa_local = true), -ENOSPC, "one NUMA node");
	node_free(n);
}

/* 64 devices, 8 per root complex, 4 per switch, 32 per NUMA node: the greedy search. */
static struct node *big_node(unsigned parts)
{
	struct node *n = node_new();

	for (unsigned i = 0; i < 64; i++) {
		char id[16], root[16], bridges[64];

		snprintf(id, sizeof(id), "0000:%02x:00.0", i + 1);
		snprintf(root, sizeof(root), "pci%04x:%02x", 0, 0x80 + i / 8);
		snprintf(bridges, sizeof(bridges), "0001:%02x:00.0,0002:%02x:00.0,0003:%02x:00.0",
			 i / 8, i / 4, i);
		if (parts)
			split(mkdev(n, id, i / 32, root, bridges), parts);
		else
			mkdev(n, id, i / 32, root, bridges);
	}
	node_plan(n);
	return n;
}

static void test_scale(void **state)
{
	struct node *n = big_node(0);
	_cleanup_free_ char *err = NULL;
	char **l = NULL;
	unsigned numa0 = 0;

	expect(n, REQ("xpu.dev/test", 4), "0000:01:00.0 0000:02:00.0 0000:03:00.0 0000:04:00.0");
	expect(n, REQ("xpu.dev/test", 8),
	       "0000:01:00.0 0000:02:00.0 0000:03:00.0 0000:04:00.0 0000:05:00.0 0000:06:00.0 "
	       "0000:07:00.0 0000:08:00.0");
	/* With 01 taken, a whole free switch (05-08) beats the rest of 01's switch plus one. */
	hold(n, "0000:01:00.0", NULL);
	expect(n, REQ("xpu.dev/test", 4), "0000:05:00.0 0000:06:00.0 0000:07:00.0 0000:08:00.0");
	expect_error(n, REQ("xpu.dev/test", 33, .numa_local = true), -ENOSPC, "one NUMA node");
	expect(n, REQ("xpu.dev/test", 1, .device = (char *)"40:00.0"), "0000:40:00.0");
	ledger_clear(&n->ledger);

	/* 40 cannot stay on one NUMA node: all 32 of one, 8 of the other. */
	assert_int_equal(alloc_choose(&n->devs, &n->slices, &n->ledger,
				      &REQ("xpu.dev/test", 40), &l, &err),
			 0);
	assert_int_equal(strv_length(l), 40);
	STRV_FOREACH(s, l)
		numa0 += dev(n, *s)->numa_node == 0;
	assert_int_equal(numa0, 32);
	strv_free(l);
	node_free(n);

	/* 64 devices x 7 partitions: 30 slices from one switch and one more device of its root. */
	/* 20 GPUs, all NVLink-connected, NUMA nodes alternating: the greedy search keeps to one
	 * node though every link looks the same. */
	n = node_new();
	for (unsigned i = 0; i < 20; i++) {
		char id[16];

		snprintf(id, sizeof(id), "0000:%02x:00.0", i + 1);
		mkdev(n, id, i % 2, NULL, NULL);
	}
	for (size_t i = 0; i < n->devs.n; i++)
		for (size_t j = i + 1; j < n->devs.n; j++)
			topo(n->devs.items[i], n->devs.items[j], "NV12");
	node_plan(n);
	expect(n, REQ("xpu.dev/test", 4), "0000:01:00.0 0000:03:00.0 0000:05:00.0 0000:07:00.0");
	node_free(n);

	n = big_node(7);
	assert_int_equal(alloc_choose(&n->devs, &n->slices, &n->ledger,
				      &REQ("xpu.dev/part", 30), &l, &err),
			 0);
	assert_int_equal(strv_length(l), 30);
	assert_string_equal(l[0], "0000:01:00.0/p0");
	assert_string_equal(l[27], "0000:04:00.0/p6");
	assert_string_equal(l[29], "0000:05:00.0/p1");
	strv_free(l);
	node_free(n);
}

/* --- alloc_fit ------------------------------------------------------------------------------- */

struct fit_want {
	unsigned fits;
	const char *resource; /* NULL: none */
	const char *slices;   /* space-separated, NULL: none */
};

static void expect_fit(struct node *n, struct fit_request req, struct fit_want w)
{
	_cleanup_free_ char *err = NULL, *got = NULL;
	struct fit_result res = {};
	int r;

	r = alloc_fit(&n->devs, &n->slices, &n->ledger, &req, &res, &err);
	if (r < 0)
		fail_msg("alloc_fit: %s: %s", strerror(-r), err ?: "");
	if (res.fits != w.fits || !streq_ptr(res.resource, w.resource))
		fail_msg("expected %u of %s, got %u of %s", w.fits, w.resource ?: "nothing",
			 res.fits, res.resource ?: "nothing");
	if (w.slices) {
		got = join(res.slices);
		if (!streq(got, w.slices))
			fail_msg("expected slices '%s', got '%s'", w.slices, got);
	} else
		assert_null(res.slices);
	fit_result_done(&res);
}

static void expect_fit_error(struct node *n, struct fit_request req, const char *needle)
{
	_cleanup_free_ char *err = NULL;
	struct fit_result res = {};

	assert_int_equal(alloc_fit(&n->devs, &n->slices, &n->ledger, &req, &res, &err), -EINVAL);
	assert_non_null(err);
	if (!strstr(err, needle))
		fail_msg("reason '%s' does not mention '%s'", err, needle);
	assert_int_equal(res.fits, 0);
	assert_null(res.slices);
}

#define FIT(mem, n, ...) ((struct fit_request){ .memory_bytes = (mem), .count = (n), __VA_ARGS__ })

static void test_fit_hgx(void **state)
{
	struct node *n = node_fixture("hgx-h100");

	/* 9.75 GiB MIG instances are too small for 10 GiB: the seven whole GPUs answer. */
	assert_true(MIG_1G_BYTES < 10 * GiB);
	assert_true(MIG_1G_BYTES > 9 * GiB);
	expect_fit(n, FIT(10 * GiB, 1), (struct fit_want){ 7, "nvidia.com/gpu", "0000:18:00.0" });
	/* 9 GiB fits both seven ways; the MIG instance wastes less. */
	expect_fit(n, FIT(9 * GiB, 1), (struct fit_want){ 7, "nvidia.com/mig-1g.10gb", MIG_0 });
	expect_fit(n, FIT(9 * GiB, 2),
		   (struct fit_want){ 3, "nvidia.com/mig-1g.10gb", MIG_0 " " MIG_1 });
	expect_fit(n, FIT(9 * GiB, 1, .resource = (char *)"nvidia.com/gpu"),
		   (struct fit_want){ 7, "nvidia.com/gpu", "0000:18:00.0" });
	/* Half a GPU of compute: a 1/7 instance does not qualify. */
	expect_fit(n, FIT(9 * GiB, 2, .compute = 0.5),
		   (struct fit_want){ 3, "nvidia.com/gpu", "0000:18:00.0 0000:2a:00.0" });
	expect_fit(n, FIT(0, 1, .compute = 0.1, .kind = (char *)"gpu"),
		   (struct fit_want){ 7, "nvidia.com/mig-1g.10gb", MIG_0 });
	expect_fit(n, FIT(100 * GiB, 1), (struct fit_want){ 0, NULL, NULL });
	expect_fit(n, FIT(0, 8, .resource = (char *)"nvidia.com/gpu"),
		   (struct fit_want){ 0, NULL, NULL });
	expect_fit(n, FIT(0, 1, .kind = (char *)"accel"), (struct fit_want){ 0, NULL, NULL });

	/* What is allocated does not fit again; the first fit keeps NUMA 0 together. */
	hold(n, "0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", NULL);
	hold(n, MIG_0, MIG_1, MIG_2, NULL);
	expect_fit(n, FIT(10 * GiB, 1), (struct fit_want){ 4, "nvidia.com/gpu", "0000:5d:00.0" });
	expect_fit(n, FIT(9 * GiB, 2),
		   (struct fit_want){ 2, "nvidia.com/mig-1g.10gb",
				      "MIG-416f9ede-56b7-5d1c-b417-e9d87e3034d9 "
				      "MIG-497a41af-16a9-5dab-a859-c3448c8fbfb8" });
	expect_fit(n, FIT(10 * GiB, 2), (struct fit_want){ 2, "nvidia.com/gpu",
							   "0000:9a:00.0 0000:ab:00.0" });

	expect_fit_error(n, FIT(0, 0), "at least 1");
	expect_fit_error(n, FIT(0, 1, .compute = 1.5), "outside");
	expect_fit_error(n, FIT(0, 1, .compute = -0.25), "outside");
	expect_fit_error(n, FIT(0, 1, .compute = NAN), "outside");
	expect_fit_error(n, FIT(0, 1, .kind = (char *)"tpu"), "tpu");
	node_free(n);
}

/* With numa-local, fits counts workloads as the allocator would place them, one by one. */
static void test_fit_topology(void **state)
{
	struct node *n = node_fixture("hgx-h100");
	char *gpu = (char *)"nvidia.com/gpu";

	/* four whole GPUs on NUMA 0, three on NUMA 1 (the eighth is MIG) */
	expect_fit(n, FIT(0, 4, .resource = gpu, .numa_local = true),
		   (struct fit_want){ 1, "nvidia.com/gpu",
				      "0000:18:00.0 0000:2a:00.0 0000:3a:00.0 0000:5d:00.0" });
	expect_fit(n, FIT(0, 3, .resource = gpu, .numa_local = true, .connected = true),
		   (struct fit_want){ 2, "nvidia.com/gpu", "0000:18:00.0 0000:2a:00.0 0000:3a:00.0" });
	/* one GPU taken on NUMA 0: six free make one workload of four anywhere, none on one node */
	hold(n, "0000:18:00.0", NULL);
	expect_fit(n, FIT(0, 4, .resource = gpu), (struct fit_want){ 1, "nvidia.com/gpu",
								      "0000:2a:00.0 0000:3a:00.0 "
								      "0000:5d:00.0 0000:9a:00.0" });
	expect_fit(n, FIT(0, 4, .resource = gpu, .numa_local = true),
		   (struct fit_want){ 0, NULL, NULL });
	/* one on NUMA 1 too: five free, two pairs in all, but only one trio on one node */
	hold(n, "0000:9a:00.0", NULL);
	expect_fit(n, FIT(0, 3, .resource = gpu, .numa_local = true),
		   (struct fit_want){ 1, "nvidia.com/gpu", "0000:2a:00.0 0000:3a:00.0 0000:5d:00.0" });
	expect_fit(n, FIT(0, 2, .resource = gpu, .numa_local = true),
		   (struct fit_want){ 2, "nvidia.com/gpu", "0000:2a:00.0 0000:3a:00.0" });
	node_free(n);
}

static void test_fit_mixed(void **state)
{
	struct node *n = node_fixture("mixed");

	/* Three accelerators of one each, sizes unknown: the first name answers. */
	expect_fit(n, FIT(0, 1, .kind = (char *)"accel"),
		   (struct fit_want){ 1, "habana.ai/gaudi", "0000:4d:00.0" });
	/* An unknown size never qualifies when a size is asked. */
	expect_fit(n, FIT(1, 1, .kind = (char *)"accel"), (struct fit_want){ 0, NULL, NULL });
	/* The Altera card is unhealthy: only the Alveo. */
	expect_fit(n, FIT(0, 1, .kind = (char *)"fpga"),
		   (struct fit_want){ 1, "xilinx.com/fpga", "0000:3b:00.0" });
	expect_fit(n, FIT(0, 1, .resource = (char *)"nvidia.com/gpu"),
		   (struct fit_want){ 0, NULL, NULL });
	node_free(n);
}

static int fixtures_open(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(fixture_names); i++)
		fixtures[i] = node_open(fixture_names[i]);
	return 0;
}

static int fixtures_close(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(fixture_names); i++)
		node_free(fixtures[i]);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hgx_numa),
		cmocka_unit_test(test_hgx_mig),
		cmocka_unit_test(test_hgx_errors),
		cmocka_unit_test(test_hgx_explicit),
		cmocka_unit_test(test_hgx_unhealthy),
		cmocka_unit_test(test_hgx_device),
		cmocka_unit_test(test_mi300x),
		cmocka_unit_test(test_mixed),
		cmocka_unit_test(test_sysfs_levels),
		cmocka_unit_test(test_worst_then_sum),
		cmocka_unit_test(test_rules_link_levels),
		cmocka_unit_test(test_xgmi_and_unknown_numa),
		cmocka_unit_test(test_fragmentation),
		cmocka_unit_test(test_mig_split_node),
		cmocka_unit_test(test_scale),
		cmocka_unit_test(test_fit_hgx),
		cmocka_unit_test(test_fit_mixed),
		cmocka_unit_test(test_fit_topology),
	};

	return cmocka_run_group_tests(tests, fixtures_open, fixtures_close);
}
