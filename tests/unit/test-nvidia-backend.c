// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The NVIDIA backend driven directly through its ops on the HGX fixture and the fake NVML: what
 * a health refresh asks of the driver. On a real H100 one GPU's full query costs milliseconds
 * (the MIG profile calls alone ~0.7 ms each, docs/performance.md), so a refresh of one GPU must
 * query that GPU, not every GPU NVML lists before it.
 */
#include <dlfcn.h>
#include <errno.h>
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
#include "core/device.h"
#include "shared/host.h"
#include "shared/macro.h"
#include "shared/strv.h"
#include "testutil.h"

#define HGX_GPUS 8

struct ctx {
	char *root;
	struct xpu_host *host;
	struct xpu_backend b;
	struct device_list list;
	unsigned (*handle_calls)(unsigned index);
	void *fake; /* our own reference to the library the backend loaded */
};

static int setup(void **state)
{
	_cleanup_free_ char *json = NULL, *lib = NULL;
	struct ctx *c = calloc(1, sizeof(*c));
	char *reason = NULL;

	assert_non_null(c);
	c->root = test_fixture_new("hgx-h100");
	assert_int_equal(asprintf(&json, "%s/run/fake-nvml.json", c->root) > 0, 1);
	assert_int_equal(asprintf(&lib, "%s/libnvidia-ml.so.1", test_env("XPU_FAKE_NVML_DIR")) > 0,
			 1);
	setenv("XPU_FAKE_NVML", json, 1);
	setenv("XPU_NVML_LIBRARY", lib, 1);
	unsetenv("XPU_CUDA_LIBRARY");
	unsetenv("XPU_FAULT_FAIL_AT"); /* a failed test may have left it */
	assert_int_equal(host_open(c->root, &c->host), 0);
	c->b.ops = &nvidia_backend_ops;
	c->b.host = c->host;
	if (c->b.ops->probe(&c->b, &reason) < 0)
		fail_msg("nvidia backend unavailable on the fake: %s", reason);
	c->fake = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
	assert_non_null(c->fake);
	c->handle_calls = (unsigned (*)(unsigned))dlsym(c->fake, "fake_nvml_handle_calls");
	assert_non_null(c->handle_calls);
	assert_int_equal(c->b.ops->enumerate(&c->b, &c->list), 0);
	assert_int_equal(c->list.n, HGX_GPUS);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	char cmd[4096];

	device_list_clear(&c->list);
	c->b.ops->close(&c->b);
	dlclose(c->fake);
	host_free(c->host);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->root);
	assert_int_equal(system(cmd), 0);
	free(c->root);
	free(c);
	return 0;
}

static unsigned total_calls(const struct ctx *c, unsigned *per)
{
	unsigned sum = 0;

	for (unsigned i = 0; i < HGX_GPUS; i++)
		sum += per[i] = c->handle_calls(i);
	return sum;
}

/*
 * What the core asks of NVIDIA instead of knowing it (core/rules.h): the MIG profiles as typed
 * data from NVML's GPU instance profiles, the scheme that spells them, what enforces a memory
 * share, the labels. The same numbers nvidia-smi shows for an H100 80GB (the fake's table).
 */
static void test_rules_and_profiles(void **state)
{
	struct ctx *c = *state;
	const struct device_rules *rules = nvidia_backend_ops.rules;
	const struct xpu_partition_profile *p;
	struct xpu_device *mig = NULL, *plain = NULL;
	struct xpu_slice share = { .shared = true, .memory_bytes = 20ULL << 30,
				   .compute_fraction = 0.25 };
	_cleanup_strv_free_ char **labels = NULL;
	const struct xpu_device *devs[HGX_GPUS];

	assert_ptr_equal(rules, &nvidia_device_rules);
	assert_ptr_equal(rules->scheme, &nvidia_mig_scheme);
	for (size_t i = 0; i < c->list.n; i++) {
		devs[i] = c->list.items[i];
		if (streq(c->list.items[i]->id, "0000:db:00.0"))
			mig = c->list.items[i];
		else if (streq(c->list.items[i]->id, "0000:18:00.0"))
			plain = c->list.items[i];
	}
	assert_non_null(mig);
	assert_non_null(plain);

	/* MIG enabled: partitioned, its seven 1g.10gb instances the partitions, none free */
	assert_true(mig->partition_capable && mig->partitioned && mig->partition_pending);
	assert_int_equal(mig->n_partitions, 7);
	p = device_find_profile(mig, "1g.10gb");
	assert_non_null(p);
	assert_int_equal(p->total, 7);
	assert_int_equal(p->free, 0);
	assert_true(p->memory_bytes == 9984ULL << 20);
	assert_true(p->compute_fraction > 1 / 7.0 - 1e-9 && p->compute_fraction < 1 / 7.0 + 1e-9);
	/* MIG disabled: capable, whole, every profile free; the full GPU's is all its compute */
	assert_true(plain->partition_capable && !plain->partitioned && !plain->partition_pending);
	assert_int_equal(plain->n_partitions, 0);
	assert_int_equal(plain->n_profiles, mig->n_profiles);
	p = device_find_profile(plain, "3g.40gb");
	assert_non_null(p);
	assert_int_equal(p->free, 2);
	assert_int_equal(p->total, 2);
	p = device_find_profile(plain, "7g.80gb");
	assert_non_null(p);
	assert_true(p->compute_fraction == 1.0);
	assert_null(device_find_profile(plain, "5g.60gb"));

	/* the scheme spells profiles as nvidia-smi does; "all-" is the layout's, not a profile */
	assert_true(rules->scheme->profile_valid("1g.10gb+me"));
	assert_true(rules->scheme->profile_valid("3g.40gb"));
	assert_false(rules->scheme->profile_valid("all-1g.10gb"));
	assert_false(rules->scheme->profile_valid("0g.10gb"));
	assert_null(rules->scheme->modes);

	/* a quarter share of 20 GiB: MPS limits it to 25 % of the SMs and 20480 MiB */
	assert_int_equal(rules->share_edits(plain, &share), 0);
	assert_string_equal(strv_env_get(share.env, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), "25");
	assert_string_equal(strv_env_get(share.env, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"), "0=20480M");
	strv_free(share.env);
	assert_int_equal(device_rules_env_merge(rules, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"),
			 ENV_MERGE_DEVICE_SUM);
	assert_int_equal(device_rules_env_merge(rules, "CUDA_VISIBLE_DEVICES"), ENV_MERGE_LIST);

	/* gpu-feature-discovery's labels, from the first GPU */
	assert_int_equal(rules->node_labels(devs, c->list.n, &labels), 0);
	assert_true(strv_contains(labels, "nvidia.com/gpu.count=8"));
	assert_true(strv_contains(labels, "nvidia.com/mig.capable=true"));
	assert_true(strv_contains(labels, "nvidia.com/gpu.compute.major=9"));
}

/* Refreshing each GPU once asks NVML for each GPU once: the last GPU does not cost eight. */
static void test_refresh_queries_only_that_gpu(void **state)
{
	struct ctx *c = *state;
	unsigned before[HGX_GPUS], after[HGX_GPUS];

	total_calls(c, before);
	for (size_t i = 0; i < c->list.n; i++) {
		assert_int_equal(c->b.ops->refresh(&c->b, c->list.items[i]), 0);
		assert_string_equal(xpu_health_state_to_string(c->list.items[i]->health.state),
				    "healthy");
	}
	total_calls(c, after);
	for (unsigned i = 0; i < HGX_GPUS; i++)
		assert_int_equal(after[i] - before[i], 1);
}

/* A device NVML does not list (unplugged since): every index is asked, then -ENODEV. */
static void test_refresh_unknown_device(void **state)
{
	struct ctx *c = *state;
	_cleanup_(device_freep) struct xpu_device *d = device_new();
	unsigned before[HGX_GPUS], after[HGX_GPUS];

	assert_non_null(d);
	d->id = strdup("0000:ee:00.0");
	total_calls(c, before);
	assert_int_equal(c->b.ops->refresh(&c->b, d), -ENODEV);
	total_calls(c, after);
	for (unsigned i = 0; i < HGX_GPUS; i++)
		assert_int_equal(after[i] - before[i], 1);
}

/*
 * A query thread that cannot be started (the process is out of threads) asked NVML nothing: the
 * refresh fails with that error, and the GPU's health is left as it was.
 */
static void test_refresh_without_a_thread(void **state)
{
	struct ctx *c = *state;
	struct xpu_device *d = c->list.items[3];

	setenv("XPU_FAULT_FAIL_AT", "nvidia-query-thread", 1);
	assert_int_equal(c->b.ops->refresh(&c->b, d), -EAGAIN);
	unsetenv("XPU_FAULT_FAIL_AT");
	assert_string_equal(xpu_health_state_to_string(d->health.state), "healthy");
	assert_null(d->health.reason);
	assert_int_equal(c->b.ops->refresh(&c->b, d), 0);
}

/* The same during a rescan: the GPUs stay as NVML last described them, none is dropped. */
static void test_rescan_without_threads(void **state)
{
	struct ctx *c = *state;
	struct registry *reg = NULL;
	struct device_list l = {};
	size_t gpus = 0;

	assert_int_equal(registry_new(c->host, NULL, registry_builtin_ops, registry_builtin_n, &reg),
			 0);
	assert_int_equal(registry_enumerate(reg, &l), 0);
	device_list_clear(&l);
	setenv("XPU_FAULT_FAIL_AT", "nvidia-query-thread", 1);
	assert_int_equal(c->b.ops->enumerate(&c->b, &l), -EAGAIN);
	assert_int_equal(l.n, 0);
	assert_int_equal(registry_enumerate(reg, &l), 0);
	unsetenv("XPU_FAULT_FAIL_AT");
	for (size_t i = 0; i < l.n; i++) {
		const struct xpu_device *d = l.items[i];

		if (d->kind != XPU_KIND_GPU)
			continue;
		gpus++;
		assert_string_equal(d->backend, "nvidia");
		assert_non_null(d->uuid);
		assert_string_equal(xpu_health_state_to_string(d->health.state), "healthy");
	}
	assert_int_equal(gpus, HGX_GPUS);
	device_list_clear(&l);
	registry_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refresh_queries_only_that_gpu, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refresh_unknown_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_without_a_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rescan_without_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_and_profiles, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
