// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The NVIDIA backend driven directly through its ops on the HGX fixture and the fake NVML,
 * without a loop (each op runs the helper to its end): what the helper's answers make of the
 * GPUs, that NVML never enters this process, and what a failing helper leaves standing.
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
	host_free(c->host);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->root);
	assert_int_equal(system(cmd), 0);
	free(c->root);
	free(c);
	return 0;
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

/* Whether this process maps a file whose path contains @needle. */
static bool maps_contain(const char *needle)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4096];
	bool found = false;

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

/*
 * The backend runs NVML in its helper process only: xpud's own process never maps the library,
 * whatever it asks (probe, enumeration, refreshes).
 */
static void test_nvml_never_loaded(void **state)
{
	struct ctx *c = *state;
	_cleanup_free_ char *lib = NULL;

	for (size_t i = 0; i < c->list.n; i++) {
		assert_int_equal(c->b.ops->refresh(&c->b, c->list.items[i]), 0);
		assert_string_equal(xpu_health_state_to_string(c->list.items[i]->health.state),
				    "healthy");
	}
	assert_int_equal(asprintf(&lib, "%s/libnvidia-ml.so.1", test_env("XPU_FAKE_NVML_DIR")) > 0,
			 1);
	assert_null(dlopen(lib, RTLD_NOW | RTLD_NOLOAD));
	assert_false(maps_contain("libnvidia-ml"));
	assert_false(maps_contain("libcuda"));
}

/* A device NVML does not list (unplugged since): -ENODEV, so that the caller rescans. */
static void test_refresh_unknown_device(void **state)
{
	struct ctx *c = *state;
	_cleanup_(device_freep) struct xpu_device *d = device_new();

	assert_non_null(d);
	d->id = strdup("0000:ee:00.0");
	assert_int_equal(c->b.ops->refresh(&c->b, d), -ENODEV);
}

/*
 * A helper that fails (here: it cannot start its query threads, so it exits without an answer)
 * leaves the last good answer standing: the GPU stays healthy through helper-failures - 1 such
 * runs, then says why; the next run that works makes it healthy again.
 */
static void test_refresh_helper_fails(void **state)
{
	struct ctx *c = *state;
	struct xpu_device *d = c->list.items[3];

	setenv("XPU_FAULT_FAIL_AT", "nvidia-query-thread", 1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(c->b.ops->refresh(&c->b, d), 0);
		assert_string_equal(xpu_health_state_to_string(d->health.state), "healthy");
		assert_null(d->health.reason);
	}
	assert_int_equal(c->b.ops->refresh(&c->b, d), 0);
	assert_string_equal(xpu_health_state_to_string(d->health.state), "unhealthy");
	assert_string_equal(d->health.reason, "nvml helper: exited with status 1");
	assert_string_equal(c->b.reason, "degraded: nvml helper: exited with status 1");
	unsetenv("XPU_FAULT_FAIL_AT");
	assert_int_equal(c->b.ops->refresh(&c->b, d), 0);
	assert_string_equal(xpu_health_state_to_string(d->health.state), "healthy");
	assert_null(c->b.reason);
}

/* The same during a rescan: the GPUs stay as NVML last described them, none is dropped. */
static void test_rescan_helper_fails(void **state)
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
		cmocka_unit_test_setup_teardown(test_nvml_never_loaded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_unknown_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_helper_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rescan_helper_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_and_profiles, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
