// SPDX-License-Identifier: GPL-2.0-or-later
/* Node labels: names after gpu-feature-discovery, valid label values, the expiry line. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backends/vendor-rules.h"
#include "kube/nfd.h"
#include "shared/strv.h"

static void check_value(const char *in, const char *want)
{
	char *v = (char *)0x1;

	assert_int_equal(nfd_label_value(in, &v), 0);
	if (!want)
		assert_null(v);
	else
		assert_string_equal(v, want);
	free(v);
}

static void test_label_value(void **state)
{
	char long_in[200], long_want[64];

	check_value("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3");
	check_value("true", "true");
	check_value("AMD Instinct MI300X (rev c1)", "AMD-Instinct-MI300X--rev-c1");
	check_value("  -x- ", "x");
	check_value("a/b:c", "a-b-c");
	check_value("1g.10gb", "1g.10gb");
	check_value("", NULL);
	check_value("()", NULL);
	check_value("_-._", NULL);
	/* at most 63 characters, and an alphanumeric at the end after cutting */
	memset(long_in, 'a', sizeof(long_in));
	long_in[62] = '-';
	long_in[sizeof(long_in) - 1] = '\0';
	memset(long_want, 'a', 62);
	long_want[62] = '\0';
	check_value(long_in, long_want);
}

static struct xpu_device *dev(const char *id, enum xpu_kind kind, const char *vendor,
			      const char *model, int numa)
{
	struct xpu_device *d = device_new();

	assert_non_null(d);
	d->id = strdup(id);
	d->kind = kind;
	d->vendor = strdup(vendor);
	d->model = strdup(model);
	d->numa_node = numa;
	d->rules = vendor_rules(vendor); /* as the registry does */
	return d;
}

static void test_labels(void **state)
{
	struct device_list l = {};
	struct xpu_device *d;
	char **labels = NULL;
	char *joined;

	for (int i = 0; i < 4; i++) {
		char id[16];

		snprintf(id, sizeof(id), "0000:%02x:00.0", 0x18 + i);
		d = dev(id, XPU_KIND_GPU, "nvidia", "NVIDIA H100 80GB HBM3", i / 2);
		d->memory_bytes = 81559ULL << 20;
		d->backend = "nvidia";
		assert_int_equal(device_set_property(d, "compute_capability", "9.0"), 0);
		d->partition_capable = true; /* MIG disabled, but a GPU that can do it */
		assert_int_equal(device_list_push(&l, d), 0);
	}
	assert_int_equal(device_list_push(&l, dev("0000:a0:00.0", XPU_KIND_GPU, "amd",
						  "AMD Instinct MI300X", 1)),
			 0);
	assert_int_equal(device_list_push(&l, dev("0000:b0:00.0", XPU_KIND_ACCEL, "Tenstorrent",
						  "Wormhole", -1)),
			 0);
	device_list_sort(&l);

	assert_int_equal(nfd_labels(&l, &labels), 0);
	joined = strv_join(labels, "\n");
	assert_string_equal(joined, "amd.com/gpu.present=true\n"
				    "nvidia.com/gpu.compute.major=9\n"
				    "nvidia.com/gpu.compute.minor=0\n"
				    "nvidia.com/gpu.count=4\n"
				    "nvidia.com/gpu.memory=81559\n"
				    "nvidia.com/gpu.present=true\n"
				    "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3\n"
				    "nvidia.com/mig.capable=true\n"
				    "xpu.dev/accel.count=1\n"
				    "xpu.dev/amd.present=true\n"
				    "xpu.dev/gpu.count=5\n"
				    "xpu.dev/numa-nodes=2\n"
				    "xpu.dev/nvidia.present=true\n"
				    "xpu.dev/tenstorrent.present=true");
	free(joined);
	strv_free(labels);
	device_list_clear(&l);

	/* NVML without MIG: not capable; no NVML (generic PCI record): unknown, no label */
	d = dev("0000:18:00.0", XPU_KIND_GPU, "nvidia", "NVIDIA T4", 0);
	d->backend = "nvidia";
	assert_int_equal(device_list_push(&l, d), 0);
	assert_int_equal(nfd_labels(&l, &labels), 0);
	assert_true(strv_contains(labels, "nvidia.com/mig.capable=false"));
	assert_false(strv_contains(labels, "nvidia.com/gpu.memory=0"));
	strv_free(labels);
	l.items[0]->backend = "pci";
	assert_int_equal(nfd_labels(&l, &labels), 0);
	STRV_FOREACH(s, labels)
		assert_null(strstr(*s, "mig.capable"));
	strv_free(labels);
	device_list_clear(&l);

	/* nothing on the node: no labels at all */
	assert_int_equal(nfd_labels(&l, &labels), 0);
	assert_int_equal(strv_length(labels), 0);
	strv_free(labels);
}

static void test_document(void **state)
{
	char *labels[] = {(char *)"a.b/c=1", (char *)"x.y/z=true", NULL};
	char *doc = NULL, when[32];

	/* 2024-05-01T10:20:30Z is 1714558830 */
	assert_int_equal(nfd_format_time(1714558830ULL * 1000000ULL + 999999, when, sizeof(when)),
			 0);
	assert_string_equal(when, "2024-05-01T10:20:30Z");
	assert_int_equal(nfd_document(labels, 1714558830ULL * 1000000ULL, &doc), 0);
	assert_string_equal(doc, "# +expiry-time=2024-05-01T10:20:30Z\na.b/c=1\nx.y/z=true\n");
	free(doc);
	assert_int_equal(nfd_document((char *[]){NULL}, 0, &doc), 0);
	assert_string_equal(doc, "# +expiry-time=1970-01-01T00:00:00Z\n");
	free(doc);
	/* the refresh comes well before the expiry, and is not a busy timer */
	assert_true(NFD_REFRESH_USEC * 2 < NFD_EXPIRY_USEC);
	assert_true(NFD_REFRESH_USEC >= 60ULL * 1000000ULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_label_value),
	    cmocka_unit_test(test_labels),
	    cmocka_unit_test(test_document),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
