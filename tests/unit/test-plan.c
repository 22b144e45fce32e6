// SPDX-License-Identifier: GPL-2.0-or-later
/* The slice planner: each offer kind, stable ids, MPS limits, applied vs pending, capacity. */
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
#include "core/alloc.h"
#include "core/config.h"
#include "core/plan.h"
#include "core/state.h"
#include "shared/strv.h"

#define GiB (1ULL << 30)

static struct xpu_device *gpu(const char *id, const char *vendor, uint64_t memory, int numa)
{
	struct xpu_device *d = device_new();
	char env[64];

	assert_non_null(d);
	d->id = strdup(id);
	d->vendor = strdup(vendor);
	d->model = strdup(streq(vendor, "nvidia") ? "NVIDIA A100 80GB PCIe" : "AMD Instinct MI300X");
	d->resource = strdup(streq(vendor, "nvidia") ? "nvidia.com/gpu" : "amd.com/gpu");
	d->memory_bytes = memory;
	d->numa_node = numa;
	d->rules = vendor_rules(vendor); /* as the registry does */
	d->has_pci = true;
	snprintf(d->pci.address, sizeof(d->pci.address), "%s", id);
	snprintf(env, sizeof(env), "NVIDIA_VISIBLE_DEVICES=GPU-%s", id);
	assert_int_equal(strv_extend(&d->device_nodes, "/dev/nvidia0"), 0);
	assert_int_equal(strv_extend(&d->env, env), 0);
	return d;
}

/* A MIG instance as the NVIDIA backend reports it; marks the GPU MIG-enabled. */
static void add_mig(struct xpu_device *d, const char *uuid, const char *profile)
{
	struct xpu_slice *s = calloc(1, sizeof(*s));
	char res[64];

	snprintf(res, sizeof(res), "nvidia.com/mig-%s", profile);
	s->id = strdup(uuid);
	s->device_id = strdup(d->id);
	s->profile = strdup(profile);
	s->resource = strdup(res);
	s->memory_bytes = 10 * GiB;
	s->compute_fraction = 1 / 7.0;
	strv_extend(&s->device_nodes, "/dev/nvidia-caps/nvidia-cap30");
	strv_env_set(&s->env, "CUDA_VISIBLE_DEVICES", uuid);
	assert_int_equal(device_add_partition(d, s), 0);
	d->partitioned = true;
	d->partition_capable = true;
}

/* The GPU instance profiles of an H100 80GB, as the NVIDIA backend types them, all free. */
static void add_profiles(struct xpu_device *d)
{
	static const struct {
		const char *name;
		unsigned total, slices, gib;
	} h100[] = {{"1g.10gb", 7, 1, 10},
		    {"1g.10gb+me", 1, 1, 10},
		    {"2g.20gb", 3, 2, 20},
		    {"3g.40gb", 2, 3, 40},
		    {"7g.80gb", 1, 7, 80}};

	d->partition_capable = true;
	for (size_t i = 0; i < ELEMENTSOF(h100); i++) {
		struct xpu_partition_profile p = {
		    .name = (char *)h100[i].name,
		    .free = h100[i].total,
		    .total = h100[i].total,
		    .memory_bytes = h100[i].gib * GiB,
		    .compute_fraction = h100[i].slices / 7.0,
		};
		assert_int_equal(device_add_profile(d, &p), 0);
	}
}

static void add_seven_1g(struct xpu_device *d)
{
	char uuid[64];

	for (int i = 0; i < 7; i++) {
		snprintf(uuid, sizeof(uuid), "MIG-%s-%d", d->id, i);
		add_mig(d, uuid, "1g.10gb");
	}
	add_profiles(d);
}

/* The policy of a config file's "partitions:". */
static void policy(const char *yaml, struct config *c)
{
	char *err = NULL;

	config_init(c);
	if (config_parse(yaml, strlen(yaml), c, &err) < 0)
		fail_msg("policy does not parse: %s", err);
}

static void allocate(struct ledger *l, const char *id, const char *slice)
{
	struct allocation *a = calloc(1, sizeof(*a));

	a->id = strdup(id);
	a->resource = strdup("nvidia.com/gpu");
	assert_int_equal(strv_extend(&a->slices, slice), 0);
	assert_int_equal(ledger_add(l, a), 0);
}

static const struct xpu_slice *find_slice(const struct plan *p, const char *id)
{
	for (size_t i = 0; i < p->slices.n; i++)
		if (streq(p->slices.items[i]->id, id))
			return p->slices.items[i];
	fail_msg("no slice '%s'", id);
	return NULL;
}

static void test_whole(void **state)
{
	struct device_list devs = {};
	struct slice_list sl;
	struct config c;
	struct plan p;
	const struct xpu_slice *s;

	device_list_push(&devs, gpu("0000:18:00.0", "nvidia", 80 * GiB, 0));
	device_list_push(&devs, gpu("0000:2a:00.0", "nvidia", 80 * GiB, 0));
	add_seven_1g(devs.items[1]);

	/* no policy: whole devices, a MIG GPU as its instances */
	assert_int_equal(plan_build(&devs, NULL, NULL, &p), 0);
	assert_int_equal(p.slices.n, 8);
	s = p.slices.items[0];
	assert_string_equal(s->id, "0000:18:00.0");
	assert_string_equal(s->device_id, "0000:18:00.0");
	assert_string_equal(s->resource, "nvidia.com/gpu");
	assert_false(s->shared);
	assert_true(s->compute_fraction == 1.0);
	assert_true(s->memory_bytes == 80 * GiB);
	assert_string_equal(strv_env_get(s->env, "NVIDIA_VISIBLE_DEVICES"), "GPU-0000:18:00.0");
	s = find_slice(&p, "MIG-0000:2a:00.0-3");
	assert_string_equal(s->device_id, "0000:2a:00.0");
	assert_string_equal(s->resource, "nvidia.com/mig-1g.10gb");
	/* a MIG instance needs its GPU's node and its own capability node */
	assert_int_equal(strv_length(s->device_nodes), 2);
	assert_true(strv_contains(s->device_nodes, "/dev/nvidia0"));
	assert_true(strv_contains(s->device_nodes, "/dev/nvidia-caps/nvidia-cap30"));
	assert_int_equal(p.n_devices, 2);
	assert_int_equal(p.devices[0].applied.kind, OFFER_WHOLE);
	assert_false(p.devices[0].has_pending);
	assert_null(p.devices[0].pending_reason);

	/* plan_slices() is the same plan */
	assert_int_equal(plan_slices(&devs, &sl), 0);
	assert_int_equal(sl.n, p.slices.n);
	for (size_t i = 0; i < sl.n; i++)
		assert_true(slice_equal(sl.items[i], p.slices.items[i]));
	slice_list_clear(&sl);
	plan_done(&p);

	/* a resource override renames the rule's slices */
	policy("partitions:\n  - match: {pci: \"18:00.0\"}\n    whole: true\n"
	       "    resource: example.com/big-gpu\n",
	       &c);
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);
	assert_string_equal(p.slices.items[0]->resource, "example.com/big-gpu");
	assert_string_equal(p.slices.items[1]->resource, "nvidia.com/mig-1g.10gb");
	plan_done(&p);
	config_done(&c);
	device_list_clear(&devs);
}

static void test_replicas(void **state)
{
	struct device_list devs = {};
	struct config c;
	struct plan p, again;
	const struct xpu_slice *s;
	char id[64];

	device_list_push(&devs, gpu("0000:18:00.0", "nvidia", 80 * GiB, 0));
	device_list_push(&devs, gpu("0000:c1:00.0", "amd", 192 * GiB, 1));
	policy("partitions:\n  - match: {vendor: nvidia}\n    replicas: 4\n"
	       "  - match: all\n    replicas: 2\n    resource: amd.com/gpu-timeshared\n",
	       &c);
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);
	assert_int_equal(p.slices.n, 6);
	for (int i = 0; i < 4; i++) {
		snprintf(id, sizeof(id), "0000:18:00.0/replica-%d", i);
		s = p.slices.items[i];
		assert_string_equal(s->id, id);
		assert_string_equal(s->device_id, "0000:18:00.0");
		assert_string_equal(s->resource, "nvidia.com/gpu.shared");
		assert_true(s->shared);
		assert_true(s->compute_fraction == 0.25);
		/* memory is shared, not divided */
		assert_true(s->memory_bytes == 80 * GiB);
		assert_string_equal(s->device_nodes[0], "/dev/nvidia0");
		assert_string_equal(strv_env_get(s->env, "NVIDIA_VISIBLE_DEVICES"),
				    "GPU-0000:18:00.0");
		/* replicas are not memory shares: no MPS limits */
		assert_null(strv_env_get(s->env, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"));
	}
	s = find_slice(&p, "0000:c1:00.0/replica-1");
	assert_string_equal(s->resource, "amd.com/gpu-timeshared");
	assert_true(s->compute_fraction == 0.5);
	assert_int_equal(p.devices[0].applied.kind, OFFER_REPLICAS);
	assert_int_equal(p.devices[0].applied.count, 4);
	assert_false(p.devices[0].has_pending);

	/* the same inputs give the same slices: ids are stable */
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &again), 0);
	assert_int_equal(again.slices.n, p.slices.n);
	for (size_t i = 0; i < p.slices.n; i++)
		assert_true(slice_equal(again.slices.items[i], p.slices.items[i]));
	plan_done(&again);
	plan_done(&p);
	config_done(&c);
	device_list_clear(&devs);
}

static void test_memory_shares(void **state)
{
	struct device_list devs = {};
	struct config c;
	struct plan p;
	const struct xpu_slice *s;

	device_list_push(&devs, gpu("0000:18:00.0", "nvidia", 80 * GiB, 0));
	device_list_push(&devs, gpu("0000:2a:00.0", "nvidia", 80 * GiB, 0));
	device_list_push(&devs, gpu("0000:3a:00.0", "nvidia", 80 * GiB, 0));
	device_list_push(&devs, gpu("0000:c1:00.0", "amd", 192 * GiB, 1));
	policy("partitions:\n"
	       "  - match: {pci: \"18:00.0\"}\n"
	       "    memory-shares: {count: 4, size: 10GiB, compute: 0.25}\n"
	       "  - match: {pci: \"2a:00.0\"}\n"
	       "    memory-shares: {count: 3}\n"
	       "  - match: {pci: \"3a:00.0\"}\n"
	       "    memory-shares: {count: 8, size: 20GiB}\n"
	       "  - match: {vendor: amd}\n"
	       "    memory-shares: {count: 2, compute: 0.001}\n",
	       &c);
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);

	s = find_slice(&p, "0000:18:00.0/share-3");
	assert_true(s->shared);
	assert_true(s->memory_bytes == 10 * GiB);
	assert_true(s->compute_fraction == 0.25);
	assert_string_equal(s->resource, "nvidia.com/gpu.shared");
	assert_string_equal(strv_env_get(s->env, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), "25");
	assert_string_equal(strv_env_get(s->env, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"), "0=10240M");
	/* the device's own environment still names the GPU */
	assert_string_equal(strv_env_get(s->env, "NVIDIA_VISIBLE_DEVICES"), "GPU-0000:18:00.0");

	/* defaults: the memory and compute divided by the count */
	s = find_slice(&p, "0000:2a:00.0/share-0");
	assert_true(s->memory_bytes == 80 * GiB / 3);
	assert_float_equal(s->compute_fraction, 1 / 3.0, 1e-12);
	assert_string_equal(strv_env_get(s->env, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), "33");
	assert_string_equal(strv_env_get(s->env, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"), "0=27306M");

	/* 8 x 20GiB do not fit in 80GiB: the GPU stays whole, the shares are pending */
	s = find_slice(&p, "0000:3a:00.0");
	assert_false(s->shared);
	assert_int_equal(p.devices[2].applied.kind, OFFER_WHOLE);
	assert_true(p.devices[2].has_pending);
	assert_int_equal(p.devices[2].pending.kind, OFFER_MEMORY_SHARES);
	assert_string_equal(p.devices[2].pending_reason,
			    "8 memory shares of 20GiB do not fit in the device's 80GiB");

	/* not NVIDIA: no MPS; a tiny compute share is still at least 1% (but only for MPS) */
	s = find_slice(&p, "0000:c1:00.0/share-1");
	assert_true(s->memory_bytes == 96 * GiB);
	assert_null(strv_env_get(s->env, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"));
	assert_string_equal(s->resource, "amd.com/gpu.shared");
	assert_int_equal(p.slices.n, 4 + 3 + 1 + 2);
	plan_done(&p);
	config_done(&c);

	policy("partitions:\n  - match: all\n    memory-shares: {count: 2, compute: 0.004}\n", &c);
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);
	s = find_slice(&p, "0000:18:00.0/share-0");
	assert_string_equal(strv_env_get(s->env, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), "1");
	plan_done(&p);
	config_done(&c);
	device_list_clear(&devs);
}

/* A share under 1MiB would be CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=0M: the device stays whole. */
static void test_memory_shares_under_1mib(void **state)
{
	struct device_list devs = {};
	struct config c;
	struct plan p;
	const struct xpu_slice *s;

	device_list_push(&devs, gpu("0000:18:00.0", "nvidia", 2 << 20, 0));
	policy("partitions:\n  - match: all\n    memory-shares: {count: 4}\n", &c);
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);
	assert_int_equal(p.slices.n, 1);
	s = find_slice(&p, "0000:18:00.0");
	assert_false(s->shared);
	assert_null(strv_env_get(s->env, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"));
	assert_true(p.devices[0].has_pending);
	assert_int_equal(p.devices[0].pending.kind, OFFER_MEMORY_SHARES);
	assert_string_equal(p.devices[0].pending_reason,
			    "memory shares of 524288B are under 1MiB, the least CUDA's MPS can "
			    "limit");
	plan_done(&p);
	config_done(&c);
	device_list_clear(&devs);
}

static void test_shared_needs_mig_disabled(void **state)
{
	struct device_list devs = {};
	struct config c;
	struct plan p;

	device_list_push(&devs, gpu("0000:18:00.0", "nvidia", 80 * GiB, 0));
	add_seven_1g(devs.items[0]);
	policy("partitions:\n  - match: all\n    replicas: 4\n", &c);
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);
	/* offered as its MIG instances, the replicas pending */
	assert_int_equal(p.slices.n, 7);
	assert_string_equal(p.slices.items[0]->resource, "nvidia.com/mig-1g.10gb");
	assert_int_equal(p.devices[0].applied.kind, OFFER_WHOLE);
	assert_true(p.devices[0].has_pending);
	assert_int_equal(p.devices[0].pending.kind, OFFER_REPLICAS);
	assert_string_equal(p.devices[0].pending_reason, "MIG is enabled: replicas need MIG disabled");
	plan_done(&p);
	config_done(&c);
	device_list_clear(&devs);
}

static void test_mig(void **state)
{
	struct device_list devs = {};
	struct config c;
	struct plan p;

	device_list_push(&devs, gpu("0000:18:00.0", "nvidia", 80 * GiB, 0));
	device_list_push(&devs, gpu("0000:2a:00.0", "nvidia", 80 * GiB, 0));
	device_list_push(&devs, gpu("0000:3a:00.0", "nvidia", 80 * GiB, 0));
	device_list_push(&devs, gpu("0000:c1:00.0", "amd", 192 * GiB, 1));
	add_seven_1g(devs.items[0]);
	add_seven_1g(devs.items[1]);
	devs.items[2]->partition_capable = true;
	policy("partitions:\n"
	       "  - match: {pci: \"18:00.0\"}\n    mig: all-1g.10gb\n"
	       "  - match: {pci: \"2a:00.0\"}\n    mig: [3g.40gb, 2g.20gb, 2g.20gb]\n"
	       "    resource: example.com/mig\n"
	       "  - match: all\n    mig: all-7g.80gb\n    mig-enable: true\n",
	       &c);
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);

	/* the declared layout is what exists: applied, nothing pending */
	assert_int_equal(p.devices[0].applied.kind, OFFER_PARTITIONS);
	assert_ptr_equal(p.devices[0].applied.scheme, &nvidia_mig_scheme);
	assert_false(p.devices[0].has_pending);
	assert_string_equal(find_slice(&p, "MIG-0000:18:00.0-6")->resource,
			    "nvidia.com/mig-1g.10gb");

	/* another layout exists: its instances are offered, the declared one is pending */
	assert_int_equal(p.devices[1].applied.kind, OFFER_PARTITIONS);
	assert_ptr_equal(p.devices[1].applied.scheme, &nvidia_mig_scheme);
	assert_true(p.devices[1].has_pending);
	assert_string_equal(p.devices[1].pending_reason,
			    "declared MIG layout not applied yet: declared 2g.20gb*2,3g.40gb, "
			    "present 1g.10gb*7");
	assert_string_equal(find_slice(&p, "MIG-0000:2a:00.0-0")->resource, "example.com/mig");

	/* MIG disabled: whole, pending */
	assert_string_equal(find_slice(&p, "0000:3a:00.0")->resource, "nvidia.com/gpu");
	assert_int_equal(p.devices[2].applied.kind, OFFER_WHOLE);
	assert_true(p.devices[2].has_pending);
	assert_int_equal(p.devices[2].pending.kind, OFFER_PARTITIONS);
	assert_ptr_equal(p.devices[2].pending.scheme, &nvidia_mig_scheme);
	assert_true(p.devices[2].pending.enable);
	assert_string_equal(p.devices[2].pending_reason,
			    "declared MIG layout not applied yet: MIG is disabled on this GPU");

	/* not an NVIDIA GPU */
	assert_string_equal(find_slice(&p, "0000:c1:00.0")->resource, "amd.com/gpu");
	assert_true(p.devices[3].has_pending);
	assert_string_equal(p.devices[3].pending_reason, "MIG applies to NVIDIA GPUs only");
	assert_int_equal(p.slices.n, 7 + 7 + 1 + 1);
	/* what the daemon asks the backend to carry out: a differing layout, and MIG disabled
	 * with mig-enable; never a layout in place or an AMD GPU */
	assert_false(p.devices[0].apply_needed);
	assert_true(p.devices[1].apply_needed);
	assert_true(p.devices[2].apply_needed);
	assert_false(p.devices[3].apply_needed);
	plan_done(&p);
	config_done(&c);

	/* a profile the GPU does not list */
	policy("partitions:\n  - match: all\n    mig: all-4g.40gb\n", &c);
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);
	assert_string_equal(p.devices[0].pending_reason,
			    "declared MIG layout not applied yet: the GPU does not list profile "
			    "4g.40gb");
	plan_done(&p);
	config_done(&c);
	device_list_clear(&devs);
}

/* A layout the GPU cannot hold is refused before anything is touched: more instances of a
 * profile than it has, more memory or compute than it has; never asked to be applied. */
static void test_mig_layout_impossible(void **state)
{
	static const struct {
		const char *layout, *reason;
	} cases[] = {
	    {"[3g.40gb, 3g.40gb, 3g.40gb]",
	     "declared layout cannot be made: 3 instances of 3g.40gb, the device holds 2 at "
	     "most"},
	    {"[3g.40gb, 2g.20gb, 2g.20gb, 1g.10gb]",
	     "declared layout cannot be made: its instances need 90GiB of memory, the device "
	     "has 80GiB"},
	    {"[2g.20gb, 2g.20gb, 2g.20gb, 1g.10gb, 1g.10gb]",
	     "declared layout cannot be made: its instances need 114% of the device's "
	     "compute"},
	    /* what it holds exactly, and the "all-" form, are fine */
	    {"[3g.40gb, 2g.20gb, 2g.20gb]", NULL},
	    {"all-3g.40gb", NULL},
	};
	struct device_list devs = {};
	char yaml[256], *reason = NULL;
	struct config c;

	device_list_push(&devs, gpu("0000:18:00.0", "nvidia", 80 * GiB, 0));
	add_seven_1g(devs.items[0]);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct plan p;

		snprintf(yaml, sizeof(yaml), "partitions:\n  - match: all\n    mig: %s\n",
			 cases[i].layout);
		policy(yaml, &c);
		assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);
		if (cases[i].reason) {
			assert_string_equal(p.devices[0].pending_reason, cases[i].reason);
			assert_false(p.devices[0].apply_needed);
			assert_int_equal(
			    plan_offer_check(devs.items[0], &c.policy.rules[0].offer, &reason), 0);
			assert_string_equal(reason, cases[i].reason);
			reason = mfree(reason);
		} else {
			assert_int_equal(
			    plan_offer_check(devs.items[0], &c.policy.rules[0].offer, &reason), 1);
		}
		plan_done(&p);
		config_done(&c);
	}
	device_list_clear(&devs);
}

/* Without mig-enable a disabled GPU is never touched; a pending enable waits for a reset; an
 * attempt that failed is shown, and not asked for again until the device changes. */
static void test_mig_apply_needed(void **state)
{
	struct plan_attempts attempts = {};
	struct device_list devs = {};
	struct config c;
	struct plan p;

	device_list_push(&devs, gpu("0000:18:00.0", "nvidia", 80 * GiB, 0));
	device_list_push(&devs, gpu("0000:2a:00.0", "nvidia", 80 * GiB, 0));
	device_list_push(&devs, gpu("0000:3a:00.0", "nvidia", 80 * GiB, 0));
	devs.items[0]->partition_capable = true;
	devs.items[1]->partition_capable = true;
	devs.items[1]->partition_pending = true;
	add_seven_1g(devs.items[2]);
	policy("partitions:\n  - match: {pci: \"18:00.0\"}\n    mig: [3g.40gb]\n"
	       "  - match: all\n    mig: [3g.40gb]\n    mig-enable: true\n",
	       &c);
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);
	assert_false(p.devices[0].apply_needed);
	assert_string_equal(p.devices[0].pending_reason,
			    "declared MIG layout not applied yet: MIG is disabled on this GPU "
			    "(mig-enable: true lets xpud enable it)");
	assert_false(p.devices[1].apply_needed);
	assert_string_equal(p.devices[1].pending_reason,
			    "MIG mode enabled, takes effect after a GPU reset");
	assert_true(p.devices[2].apply_needed);

	/* a failed attempt on the device as it is: shown, not asked for again */
	assert_int_equal(plan_attempts_record(&attempts, devs.items[2], &p.devices[2].pending,
					      "applying it failed: boom"),
			 0);
	assert_int_equal(plan_note_attempts(&p, &devs, &attempts), 0);
	assert_false(p.devices[2].apply_needed);
	assert_string_equal(p.devices[2].pending_reason, "applying it failed: boom");
	plan_done(&p);

	/* the device changed (an instance went away): worth another try */
	slice_free(devs.items[2]->partitions[--devs.items[2]->n_partitions]);
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);
	assert_int_equal(plan_note_attempts(&p, &devs, &attempts), 0);
	assert_true(p.devices[2].apply_needed);
	plan_done(&p);
	config_done(&c);

	/* another offer for the same device: the attempt does not apply to it */
	policy("partitions:\n  - match: all\n    mig: [4g.40gb]\n", &c);
	assert_int_equal(plan_attempts_record(&attempts, devs.items[2], &c.policy.rules[0].offer,
					      "x"),
			 0);
	assert_int_equal(attempts.n, 1);
	config_done(&c);
	policy("partitions:\n  - match: all\n    mig: [3g.40gb]\n", &c);
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);
	assert_int_equal(plan_note_attempts(&p, &devs, &attempts), 0);
	assert_true(p.devices[2].apply_needed);
	plan_done(&p);
	config_done(&c);
	plan_attempts_clear(&attempts);
	device_list_clear(&devs);
}

static void test_amd_partition(void **state)
{
	struct device_list devs = {};
	struct config c;
	struct plan p;

	device_list_push(&devs, gpu("0000:c1:00.0", "amd", 192 * GiB, 1));
	policy("partitions:\n  - match: {vendor: amd}\n    amd-partition: cpx\n", &c);
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);
	assert_int_equal(p.slices.n, 1);
	assert_string_equal(p.slices.items[0]->id, "0000:c1:00.0");
	assert_int_equal(p.devices[0].applied.kind, OFFER_WHOLE);
	assert_true(p.devices[0].has_pending);
	assert_string_equal(p.devices[0].pending.layout[0], "cpx");
	assert_string_equal(p.devices[0].pending_reason, "this GPU has no compute partition modes");
	assert_false(p.devices[0].apply_needed);
	plan_done(&p);
	config_done(&c);
	device_list_clear(&devs);
}

/* An AMD GPU in @mode: the modes it lists, and its partitions (none in SPX). */
static struct xpu_device *amd_gpu(const char *id, const char *mode, unsigned n)
{
	static const char *const modes[] = { "spx", "dpx", "qpx", "cpx" };
	static const unsigned counts[] = { 1, 2, 4, 8 };
	struct xpu_device *d = gpu(id, "amd", 192 * GiB, 0);

	d->partition_capable = true;
	for (size_t i = 0; i < ELEMENTSOF(modes); i++) {
		struct xpu_partition_profile pr = { .name = (char *)modes[i], .total = counts[i],
						    .free = counts[i] };

		assert_int_equal(device_add_profile(d, &pr), 0);
	}
	for (unsigned i = 0; i < n; i++) {
		struct xpu_slice *s = calloc(1, sizeof(*s));

		assert_non_null(s);
		assert_true(asprintf(&s->id, "%s/%s-%u", id, mode, i) > 0);
		s->device_id = strdup(id);
		s->profile = strdup(mode);
		s->resource = strdup("amd.com/gpu");
		s->compute_fraction = 1.0 / n;
		assert_int_equal(device_add_partition(d, s), 0);
	}
	d->partitioned = n > 0;
	return d;
}

/* A scheme of modes: the GPU's mode is what its partitions say; another mode is switched to. */
static void test_amd_partition_modes(void **state)
{
	struct device_list devs = {};
	struct config c;
	struct plan p;

	device_list_push(&devs, amd_gpu("0000:0c:00.0", "spx", 0));
	device_list_push(&devs, amd_gpu("0000:22:00.0", "cpx", 8));
	device_list_push(&devs, amd_gpu("0000:38:00.0", "dpx", 2));
	policy("partitions:\n  - match: {pci: \"0000:38:00.0\"}\n    amd-partition: dpx\n"
	       "  - match: {vendor: amd}\n    amd-partition: cpx\n",
	       &c);
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);
	/* SPX: offered whole until switched */
	assert_int_equal(p.devices[0].applied.kind, OFFER_WHOLE);
	assert_true(p.devices[0].has_pending);
	assert_true(p.devices[0].apply_needed);
	assert_string_equal(p.devices[0].pending_reason,
			    "declared AMD compute partitioning layout not applied yet: declared cpx, "
			    "present spx");
	/* CPX as declared: its eight partitions; DPX as declared: two */
	assert_int_equal(p.devices[1].applied.kind, OFFER_PARTITIONS);
	assert_false(p.devices[1].has_pending);
	assert_int_equal(p.devices[2].applied.kind, OFFER_PARTITIONS);
	assert_false(p.devices[2].has_pending);
	assert_int_equal(p.slices.n, 1 + 8 + 2);
	assert_string_equal(p.slices.items[1]->id, "0000:22:00.0/cpx-0");
	assert_string_equal(p.slices.items[9]->id, "0000:38:00.0/dpx-0");
	plan_done(&p);
	config_done(&c);

	/* a mode the GPU does not list is never switched to */
	policy("partitions:\n  - match: {vendor: amd}\n    amd-partition: tpx\n", &c);
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);
	assert_true(p.devices[0].has_pending);
	assert_false(p.devices[0].apply_needed);
	assert_string_equal(p.devices[0].pending_reason,
			    "declared AMD compute partitioning layout not applied yet: the GPU does "
			    "not list profile tpx");
	/* and a CPX GPU stays as it is, its partitions offered */
	assert_int_equal(p.devices[1].applied.kind, OFFER_WHOLE);
	assert_int_equal(p.slices.n, 1 + 8 + 2);
	plan_done(&p);
	config_done(&c);
	device_list_clear(&devs);
}

/* An allocated slice keeps its device's old offer; once released, the new one applies. */
static void test_pending_while_allocated(void **state)
{
	struct device_list devs = {};
	struct state st = {};
	struct config c;
	struct plan p;

	device_list_push(&devs, gpu("0000:18:00.0", "nvidia", 80 * GiB, 0));
	device_list_push(&devs, gpu("0000:2a:00.0", "nvidia", 80 * GiB, 0));

	/* first start: whole devices, recorded */
	assert_int_equal(plan_build(&devs, NULL, &st, &p), 0);
	assert_int_equal(plan_commit(&p, &st), 1);
	assert_int_equal(plan_commit(&p, &st), 0);
	assert_int_equal(state_applied(&st, "0000:18:00.0")->kind, OFFER_WHOLE);
	plan_done(&p);
	allocate(&st.ledger, "a-1", "0000:18:00.0");

	/* the policy now asks for replicas everywhere */
	policy("partitions:\n  - match: all\n    replicas: 4\n", &c);
	assert_int_equal(plan_build(&devs, &c.policy, &st, &p), 0);
	assert_int_equal(p.slices.n, 1 + 4);
	assert_string_equal(p.slices.items[0]->id, "0000:18:00.0");
	assert_false(p.slices.items[0]->shared);
	assert_int_equal(p.devices[0].applied.kind, OFFER_WHOLE);
	assert_true(p.devices[0].has_pending);
	assert_int_equal(p.devices[0].pending.kind, OFFER_REPLICAS);
	assert_string_equal(p.devices[0].pending_reason, "1 slice allocated");
	/* the idle GPU takes the new offer at once */
	assert_string_equal(p.slices.items[1]->id, "0000:2a:00.0/replica-0");
	assert_int_equal(p.devices[1].applied.kind, OFFER_REPLICAS);
	assert_false(p.devices[1].has_pending);
	assert_int_equal(plan_commit(&p, &st), 1);
	assert_int_equal(state_applied(&st, "0000:18:00.0")->kind, OFFER_WHOLE);
	assert_int_equal(state_applied(&st, "0000:2a:00.0")->kind, OFFER_REPLICAS);
	plan_done(&p);

	/* two replicas of the second GPU allocated, and the policy changes again */
	allocate(&st.ledger, "a-2", "0000:2a:00.0/replica-0");
	allocate(&st.ledger, "a-3", "0000:2a:00.0/replica-3");
	config_done(&c);
	policy("partitions:\n  - match: all\n    replicas: 2\n", &c);
	assert_int_equal(plan_build(&devs, &c.policy, &st, &p), 0);
	assert_int_equal(p.devices[1].applied.count, 4);
	assert_int_equal(p.devices[1].pending.count, 2);
	assert_string_equal(p.devices[1].pending_reason, "2 slices allocated");
	assert_string_equal(find_slice(&p, "0000:2a:00.0/replica-3")->device_id, "0000:2a:00.0");
	assert_int_equal(plan_commit(&p, &st), 0);
	plan_done(&p);

	/* released: the new offer applies */
	assert_int_equal(ledger_remove(&st.ledger, "a-1"), 0);
	assert_int_equal(plan_build(&devs, &c.policy, &st, &p), 0);
	assert_string_equal(p.slices.items[0]->id, "0000:18:00.0/replica-0");
	assert_int_equal(p.devices[0].applied.kind, OFFER_REPLICAS);
	assert_false(p.devices[0].has_pending);
	assert_null(p.devices[0].pending_reason);
	assert_int_equal(plan_commit(&p, &st), 1);
	assert_int_equal(state_applied(&st, "0000:18:00.0")->count, 2);
	assert_int_equal(state_applied(&st, "0000:2a:00.0")->count, 4);
	plan_done(&p);

	config_done(&c);
	state_done(&st);
	device_list_clear(&devs);
}

/*
 * A cordon or a repartition withdraws the device's free slices (unhealthy, with the reason);
 * what is allocated stays served. The operator's layout wins over the policy; a repartition the
 * policy started carries its own target.
 */
static void test_withdrawn_and_wanted(void **state)
{
	struct device_list devs = {};
	struct repartition rp = {};
	struct state st = {};
	struct config c;
	struct plan p;
	char *why = NULL;

	device_list_push(&devs, gpu("0000:18:00.0", "nvidia", 80 * GiB, 0));
	device_list_push(&devs, gpu("0000:2a:00.0", "nvidia", 80 * GiB, 0));
	policy("partitions:\n  - match: all\n    replicas: 2\n", &c);

	assert_int_equal(state_set_cordon(&st, "0000:18:00.0", "fan", 1), 0);
	assert_int_equal(plan_build(&devs, &c.policy, &st, &p), 0);
	assert_int_equal(p.slices.n, 4);
	assert_int_equal(find_slice(&p, "0000:18:00.0/replica-0")->health.state,
			 XPU_HEALTH_UNHEALTHY);
	assert_string_equal(find_slice(&p, "0000:18:00.0/replica-1")->health.reason,
			    "cordoned: fan");
	assert_int_equal(find_slice(&p, "0000:2a:00.0/replica-0")->health.state,
			 XPU_HEALTH_HEALTHY);
	assert_int_equal(plan_commit(&p, &st), 1);
	plan_done(&p);

	/* an allocated slice of a cordoned device keeps running */
	allocate(&st.ledger, "a-1", "0000:18:00.0/replica-1");
	assert_int_equal(plan_build(&devs, &c.policy, &st, &p), 0);
	assert_int_equal(find_slice(&p, "0000:18:00.0/replica-0")->health.state,
			 XPU_HEALTH_UNHEALTHY);
	assert_int_equal(find_slice(&p, "0000:18:00.0/replica-1")->health.state,
			 XPU_HEALTH_HEALTHY);
	plan_done(&p);

	/* the operator's layout over the policy: pending while a slice is allocated */
	assert_int_equal(state_set_layout(&st, "0000:18:00.0",
					  &(struct offer){ .kind = OFFER_REPLICAS, .count = 4 }),
			 0);
	assert_int_equal(plan_wanted_offer(&c.policy, &st, devs.items[0])->count, 4);
	assert_int_equal(plan_wanted_offer(&c.policy, &st, devs.items[1])->count, 2);
	assert_int_equal(plan_build(&devs, &c.policy, &st, &p), 0);
	assert_int_equal(p.devices[0].applied.count, 2);
	assert_int_equal(p.devices[0].pending.count, 4);
	assert_int_equal(p.devices[0].busy, 1);
	assert_int_equal(p.devices[1].busy, 0);
	plan_done(&p);

	/* a policy's repartition: its target, and "repartitioning" as the reason */
	rp.device_id = strdup("0000:2a:00.0");
	rp.by_policy = true;
	rp.phase = REPARTITION_APPLYING;
	assert_int_equal(offer_copy(&(struct offer){ .kind = OFFER_WHOLE }, &rp.target), 0);
	assert_int_equal(state_add_repartition(&st, &rp), 0);
	assert_int_equal(plan_wanted_offer(&c.policy, &st, devs.items[1])->kind, OFFER_WHOLE);
	assert_int_equal(plan_build(&devs, &c.policy, &st, &p), 0);
	assert_string_equal(find_slice(&p, "0000:2a:00.0")->health.reason,
			    "repartitioning to whole (applying)");
	plan_done(&p);
	why = plan_withdrawn_reason(&st, "0000:99:00.0");
	assert_null(why);

	/* what a device can be laid out as */
	assert_int_equal(plan_offer_check(devs.items[0],
					  &(struct offer){ .kind = OFFER_REPLICAS, .count = 3 },
					  &why),
			 1);
	assert_int_equal(plan_offer_check(devs.items[0],
					  &(struct offer){ .kind = OFFER_PARTITIONS,
							   .scheme = &amd_partition_scheme,
							   .layout = (char *[]){ "cpx", NULL } },
					  &why),
			 0);
	assert_string_equal(why, "AMD partitions apply to AMD GPUs only");
	free(why);

	config_done(&c);
	state_done(&st);
	device_list_clear(&devs);
}

static void test_commit_forgets_gone_devices(void **state)
{
	struct device_list devs = {};
	struct state st = {};
	struct plan p;

	device_list_push(&devs, gpu("0000:18:00.0", "nvidia", 80 * GiB, 0));
	assert_int_equal(state_set_applied(&st, "0000:99:00.0",
					   &(struct offer){ .kind = OFFER_REPLICAS, .count = 2 }),
			 0);
	assert_int_equal(state_set_applied(&st, "0000:18:00.0",
					   &(struct offer){ .kind = OFFER_WHOLE }),
			 0);
	assert_int_equal(plan_build(&devs, NULL, &st, &p), 0);
	assert_int_equal(plan_commit(&p, &st), 1);
	assert_null(state_applied(&st, "0000:99:00.0"));
	assert_non_null(state_applied(&st, "0000:18:00.0"));
	assert_int_equal(st.n_applied, 1);
	plan_done(&p);
	state_done(&st);
	device_list_clear(&devs);
}

static void test_capacity(void **state)
{
	struct device_list devs = {};
	struct capacity_list cap;
	struct ledger ledger = {};
	struct config c;
	struct plan p;
	const struct capacity *k;

	device_list_push(&devs, gpu("0000:18:00.0", "nvidia", 80 * GiB, 1));
	device_list_push(&devs, gpu("0000:2a:00.0", "nvidia", 80 * GiB, 0));
	device_list_push(&devs, gpu("0000:3a:00.0", "nvidia", 80 * GiB, -1));
	device_list_push(&devs, gpu("0000:4a:00.0", "nvidia", 80 * GiB, 0));
	device_list_push(&devs, gpu("0000:c1:00.0", "amd", 192 * GiB, 1));
	device_set_unhealthy(devs.items[3], "fell off the bus");
	policy("partitions:\n  - match: {pci: \"18:00.0\"}\n    replicas: 4\n", &c);
	assert_int_equal(plan_build(&devs, &c.policy, NULL, &p), 0);
	allocate(&ledger, "a-1", "0000:18:00.0/replica-2");
	allocate(&ledger, "a-2", "0000:2a:00.0");
	allocate(&ledger, "a-3", "0000:4a:00.0");

	assert_int_equal(plan_capacity(&devs, &p.slices, &ledger, &cap), 0);
	assert_int_equal(cap.n, 3);
	assert_string_equal(cap.items[0].resource, "amd.com/gpu");
	assert_string_equal(cap.items[1].resource, "nvidia.com/gpu");
	assert_string_equal(cap.items[2].resource, "nvidia.com/gpu.shared");

	k = &cap.items[1]; /* 2a (node 0, allocated), 3a (unknown), 4a (node 0, unhealthy, allocated) */
	assert_int_equal(k->total, 3);
	assert_int_equal(k->healthy, 2);
	assert_int_equal(k->allocated, 2);
	assert_int_equal(k->free, 1);
	assert_int_equal(k->n_numa, 2);
	assert_int_equal(k->numa[0].node, -1);
	assert_int_equal(k->numa[0].total, 1);
	assert_int_equal(k->numa[0].free, 1);
	assert_int_equal(k->numa[1].node, 0);
	assert_int_equal(k->numa[1].total, 2);
	assert_int_equal(k->numa[1].healthy, 1);
	assert_int_equal(k->numa[1].allocated, 2);
	assert_int_equal(k->numa[1].free, 0);

	k = &cap.items[2];
	assert_int_equal(k->total, 4);
	assert_int_equal(k->allocated, 1);
	assert_int_equal(k->free, 3);
	assert_int_equal(k->n_numa, 1);
	assert_int_equal(k->numa[0].node, 1);
	assert_int_equal(k->numa[0].free, 3);
	capacity_list_clear(&cap);

	/* no ledger: nothing allocated */
	assert_int_equal(plan_capacity(&devs, &p.slices, NULL, &cap), 0);
	assert_int_equal(cap.items[1].allocated, 0);
	assert_int_equal(cap.items[1].free, 2);
	capacity_list_clear(&cap);

	ledger_clear(&ledger);
	plan_done(&p);
	config_done(&c);
	device_list_clear(&devs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole),
		cmocka_unit_test(test_replicas),
		cmocka_unit_test(test_memory_shares),
		cmocka_unit_test(test_memory_shares_under_1mib),
		cmocka_unit_test(test_shared_needs_mig_disabled),
		cmocka_unit_test(test_mig),
		cmocka_unit_test(test_amd_partition),
		cmocka_unit_test(test_amd_partition_modes),
		cmocka_unit_test(test_pending_while_allocated),
		cmocka_unit_test(test_withdrawn_and_wanted),
		cmocka_unit_test(test_commit_forgets_gone_devices),
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_mig_apply_needed),
		cmocka_unit_test(test_mig_layout_impossible),
	};

	partition_schemes_set(backend_partition_schemes);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
