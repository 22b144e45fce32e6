// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The grant a workload gets (core/grant.c): device nodes once each, list variables joined,
 * per-device limits summed by the rule of the backend that defines them, CDI names, one NUMA node.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backends/vendor-rules.h"
#include "core/grant.h"
#include "core/plan.h"
#include "core/rules.h"
#include "shared/strv.h"

static struct xpu_device *dev(const char *id, const struct device_rules *rules, int numa)
{
	struct xpu_device *d = device_new();

	assert_non_null(d);
	d->id = strdup(id);
	d->kind = XPU_KIND_GPU;
	d->numa_node = numa;
	d->cpu_list = strdup(numa == 0 ? "0-15" : "16-31");
	d->rules = rules;
	return d;
}

/* A slice of @device with one node and the variables @env ("K=V", NULL-terminated). */
static void slice(struct slice_list *l, const char *id, const char *device, const char *node,
		  const char *const *env)
{
	struct xpu_slice *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->id = strdup(id);
	s->device_id = strdup(device);
	assert_int_equal(strv_extend(&s->device_nodes, "/dev/ctl"), 0);
	assert_int_equal(strv_extend(&s->device_nodes, node), 0);
	for (; env && *env; env++)
		assert_int_equal(strv_extend(&s->env, *env), 0);
	l->items = realloc(l->items, (l->n + 1) * sizeof(*l->items));
	assert_non_null(l->items);
	l->items[l->n++] = s;
}

struct node {
	struct device_list devs;
	struct slice_list slices;
};

/* Two GPUs of NVIDIA's rules, each cut into memory shares as the planner makes them. */
static void node_shares(struct node *n, const struct device_rules *rules)
{
	device_list_push(&n->devs, dev("0000:18:00.0", rules, 0));
	device_list_push(&n->devs, dev("0000:2a:00.0", rules, 1));
	slice(&n->slices, "0000:18:00.0/share-0", "0000:18:00.0", "/dev/gpu0",
	      (const char *const[]){"CUDA_VISIBLE_DEVICES=GPU-a",
				    "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25",
				    "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=20480M", NULL});
	slice(&n->slices, "0000:18:00.0/share-1", "0000:18:00.0", "/dev/gpu0",
	      (const char *const[]){"CUDA_VISIBLE_DEVICES=GPU-a",
				    "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25",
				    "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=20480M", NULL});
	slice(&n->slices, "0000:2a:00.0/share-0", "0000:2a:00.0", "/dev/gpu1",
	      (const char *const[]){"CUDA_VISIBLE_DEVICES=GPU-b",
				    "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=30",
				    "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=38912M", NULL});
}

static void node_done(struct node *n)
{
	device_list_clear(&n->devs);
	slice_list_clear(&n->slices);
}

static void test_shares_merge_by_rule(void **state)
{
	struct node n = {};
	struct grant g = {};
	char *ids[] = {"0000:18:00.0/share-0", "0000:2a:00.0/share-0", "0000:18:00.0/share-1",
		       NULL};

	node_shares(&n, &nvidia_device_rules);
	assert_int_equal(grant_build(ids, &n.devs, &n.slices, &g), 0);
	/* nodes once each, in grant order */
	assert_int_equal(strv_length(g.device_nodes), 3);
	assert_string_equal(g.device_nodes[0], "/dev/ctl");
	assert_string_equal(g.device_nodes[1], "/dev/gpu0");
	assert_string_equal(g.device_nodes[2], "/dev/gpu1");
	/* a list: each GPU once, in grant order */
	assert_string_equal(grant_env_get(&g, "CUDA_VISIBLE_DEVICES"), "GPU-a,GPU-b");
	/* limits per GPU as CUDA numbers them in the grant: two shares of the first add up */
	assert_string_equal(grant_env_get(&g, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"),
			    "0=40960M,1=38912M");
	/* one percentage for every process: the least any GPU of the grant gives (30 < 50) */
	assert_string_equal(grant_env_get(&g, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), "30");
	assert_int_equal(g.n_env, 3);
	/* one CDI name per slice */
	assert_int_equal(strv_length(g.cdi_devices), 3);
	assert_string_equal(g.cdi_devices[0], "xpu.dev/gpu=0000-18-00.0-share-0");
	/* two NUMA nodes: none named */
	assert_int_equal(g.numa_node, -1);
	assert_null(g.cpu_list);
	grant_done(&g);
	node_done(&n);
}

static void test_one_share(void **state)
{
	struct node n = {};
	struct grant g = {};
	char *ids[] = {"0000:2a:00.0/share-0", NULL};

	node_shares(&n, &nvidia_device_rules);
	assert_int_equal(grant_build(ids, &n.devs, &n.slices, &g), 0);
	assert_string_equal(grant_env_get(&g, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"), "0=38912M");
	assert_string_equal(grant_env_get(&g, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), "30");
	assert_int_equal(g.numa_node, 1);
	assert_string_equal(g.cpu_list, "16-31");
	grant_done(&g);
	node_done(&n);
}

/* The rule belongs to whoever defines the variable: a source without rules gets lists. */
static void test_no_rules_joins_lists(void **state)
{
	struct node n = {};
	struct grant g = {};
	char *ids[] = {"0000:18:00.0/share-0", "0000:2a:00.0/share-0", NULL};

	node_shares(&n, NULL);
	assert_int_equal(grant_build(ids, &n.devs, &n.slices, &g), 0);
	assert_string_equal(grant_env_get(&g, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"),
			    "0=20480M,0=38912M");
	assert_string_equal(grant_env_get(&g, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), "25,30");
	grant_done(&g);
	node_done(&n);
}

/* A slice whose device is gone is counted, gives nothing; a value that does not parse adds
 * nothing to a sum; percentages are capped at 100. */
static void test_missing_and_bad_values(void **state)
{
	static const struct env_rule rules_env[] = {
	    {"LIMIT", ENV_MERGE_DEVICE_SUM}, {"PCT", ENV_MERGE_DEVICE_PERCENT}, {}};
	static const struct device_rules rules = {.env = rules_env};
	struct node n = {};
	struct grant g = {};
	char *ids[] = {"gone", "0000:18:00.0/a", "0000:18:00.0/b", NULL};

	device_list_push(&n.devs, dev("0000:18:00.0", &rules, 0));
	slice(&n.slices, "0000:18:00.0/a", "0000:18:00.0", "/dev/x",
	      (const char *const[]){"LIMIT=0=7G", "PCT=80", NULL});
	slice(&n.slices, "0000:18:00.0/b", "0000:18:00.0", "/dev/x",
	      (const char *const[]){"LIMIT=nonsense", "PCT=70", "NOEQUALS", NULL});
	assert_int_equal(grant_build(ids, &n.devs, &n.slices, &g), 0);
	assert_int_equal(g.n_missing, 1);
	assert_string_equal(grant_env_get(&g, "LIMIT"), "0=7G");
	assert_string_equal(grant_env_get(&g, "PCT"), "100");
	assert_int_equal(g.n_env, 2);
	assert_int_equal(strv_length(g.cdi_devices), 2);
	grant_done(&g);

	/* no amount read at all: the variable is left out, not given empty or as 100 */
	char *only_b[] = { "0000:18:00.0/b", NULL };

	assert_int_equal(grant_build(only_b, &n.devs, &n.slices, &g), 0);
	assert_null(grant_env_get(&g, "LIMIT"));
	assert_string_equal(grant_env_get(&g, "PCT"), "70");
	assert_int_equal(g.n_env, 1);
	grant_done(&g);
	node_done(&n);
}

/* Parts of devices (tiles): each device renumbered to its place in the grant, listed once. */
static void test_device_parts(void **state)
{
	static const struct env_rule rules_env[] = { { "MASK", ENV_MERGE_DEVICE_PART }, {} };
	static const struct device_rules rules = { .env = rules_env };
	struct node n = {};
	struct grant g = {};
	char *ids[] = { "B/tile-1", "A/tile-0", "B/tile-0", "A/tile-0", "A/bad", NULL };

	device_list_push(&n.devs, dev("A", &rules, 0));
	device_list_push(&n.devs, dev("B", &rules, 0));
	slice(&n.slices, "A/tile-0", "A", "/dev/a", (const char *const[]){ "MASK=0.0", NULL });
	slice(&n.slices, "A/bad", "A", "/dev/a", (const char *const[]){ "MASK=x.1", NULL });
	slice(&n.slices, "B/tile-0", "B", "/dev/b", (const char *const[]){ "MASK=0.0", NULL });
	slice(&n.slices, "B/tile-1", "B", "/dev/b", (const char *const[]){ "MASK=0.1", NULL });
	assert_int_equal(grant_build(ids, &n.devs, &n.slices, &g), 0);
	assert_string_equal(grant_env_get(&g, "MASK"), "0.1,1.0,0.0");
	grant_done(&g);
	node_done(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_shares_merge_by_rule),
	    cmocka_unit_test(test_one_share),
	    cmocka_unit_test(test_no_rules_joins_lists),
	    cmocka_unit_test(test_missing_and_bad_values),
	    cmocka_unit_test(test_device_parts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
