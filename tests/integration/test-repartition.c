// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Cordons and repartitions without a node drain, on the HGX fixture with the fake NVML (GPU
 * 0000:db:00.0 has MIG enabled with seven 1g.10gb instances, the other seven are whole):
 * a cordoned GPU's free slices are withdrawn from capacity and allocation while its slices in
 * use keep running, across restarts; a repartition waits for its GPU's slices, makes the new
 * layout off the loop while the other GPUs serve on, and tells /v1/events each step; a timeout
 * changes nothing; bad requests are refused clearly; xpud killed in the middle resumes.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/macro.h"
#include "shared/strv.h"
#include "testutil.h"

#define MIG_GPU "0000:db:00.0"
#define GPU_A "0000:18:00.0"
#define GPU_B "0000:2a:00.0"
#define WHOLE "nvidia.com/gpu"
#define MIG_1G "nvidia.com/mig-1g.10gb"
#define WHOLE_GPUS 7

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static struct test_xpud *start_on(char *root)
{
	return test_xpud_start_nvml(root, (const char *[]){ "--log-level", "debug", NULL }, NULL);
}

/* The driver refuses the second GPU instance xpud creates on the MIG GPU (short of resources),
 * so that a layout it holds is made half-way and rolled back. */
static char *second_instance_fails(char *root)
{
	test_fake_nvml_set(
	    root, MIG_GPU, "fail_call",
	    json_pack("{s:[i,s]}", "nvmlDeviceCreateGpuInstance", 2, "INSUFFICIENT_RESOURCES"));
	return root;
}

static struct test_xpud *restart(struct test_xpud *x)
{
	char *root = test_xpud_take_root(x);

	test_xpud_free(x);
	return start_on(root);
}

/* POSTs @body to @path; returns the status, and the answer in *ret when not NULL. */
static int post(struct test_xpud *x, const char *path, const char *body, json_t **ret)
{
	return test_request_body(x, "POST", path, body, ret);
}

/* Allocates one slice (of @resource, on @device when not NULL); returns the allocation id. */
static char *alloc_one(struct test_xpud *x, const char *resource, const char *device)
{
	_cleanup_free_ char *body = NULL;
	json_t *doc = NULL;
	char *id;

	if (device)
		assert_true(asprintf(&body, "{\"resource\": \"%s\", \"device\": \"%s\"}", resource,
				     device) > 0);
	else
		assert_true(asprintf(&body, "{\"resource\": \"%s\"}", resource) > 0);
	assert_int_equal(post(x, "/v1/allocations", body, &doc), 201);
	id = strdup(jstr(doc, "id"));
	json_decref(doc);
	return id;
}

static void release(struct test_xpud *x, const char *id)
{
	char path[256];

	snprintf(path, sizeof(path), "/v1/allocations/%s", id);
	assert_int_equal(test_request_body(x, "DELETE", path, NULL, NULL), 200);
}

/* The cordon reason of @device in the plan (malloc'd), or NULL. */
static char *cordon_of(struct test_xpud *x, const char *device)
{
	json_t *p = test_plan_entry(x, device), *c = json_object_get(p, "cordon");
	char *reason = json_is_object(c) ? strdup(jstr(c, "reason")) : NULL;

	json_decref(p);
	return reason;
}

/* The phase of @device's repartition (static copy), or NULL when there is none. */
static const char *phase_of(struct test_xpud *x, const char *device)
{
	static char buf[32];
	json_t *p = test_plan_entry(x, device), *rp = json_object_get(p, "repartition");
	const char *r = NULL;

	if (json_is_object(rp)) {
		snprintf(buf, sizeof(buf), "%s", jstr(rp, "phase"));
		r = buf;
	}
	json_decref(p);
	return r;
}

/* The health reason of slice @id in /v1/slices (malloc'd), or NULL when it is healthy. */
static char *slice_reason(struct test_xpud *x, const char *id)
{
	json_t *doc = NULL, *s;
	char *reason = NULL;
	size_t i;

	assert_int_equal(test_request(x, "GET", "/v1/slices", &doc), 200);
	json_array_foreach(json_object_get(doc, "slices"), i, s)
		if (strcmp(jstr(s, "id"), id) == 0 && jstr(s, "health_reason"))
			reason = strdup(jstr(s, "health_reason"));
	json_decref(doc);
	return reason;
}

static void repartition(struct test_xpud *x, const char *body, int want, json_t **ret)
{
	assert_int_equal(post(x, "/v1/repartition", body, ret), want);
}

/* A cordon withdraws free slices only, keeps what runs, survives a restart, and lifts. */
static void test_cordon(void **state)
{
	struct test_xpud *x = start_on(test_fixture_new("hgx-h100"));
	_cleanup_free_ char *held = NULL, *reason = NULL, *out = NULL;
	struct test_stream *events;
	json_t *doc = NULL;

	events = test_stream_open(x->socket);
	assert_true(test_stream_wait(events, (const char *[]){ "subscribed", NULL }, 5000) >= 0);

	/* unknown device, bad bodies */
	assert_int_equal(post(x, "/v1/cordon", "{\"device\": \"0000:99:00.0\", \"reason\": \"x\"}",
			      &doc),
			 404);
	assert_non_null(strstr(jstr(doc, "message"), "no device '0000:99:00.0'"));
	json_decref(doc);
	doc = NULL;
	assert_int_equal(post(x, "/v1/cordon", "{\"reason\": \"x\"}", NULL), 400);
	assert_int_equal(post(x, "/v1/cordon", "{\"device\": \"" GPU_B "\", \"why\": \"x\"}", NULL),
			 400);

	held = alloc_one(x, WHOLE, GPU_A);
	assert_int_equal(test_capacity(x, WHOLE, "free"), WHOLE_GPUS - 1);

	/* a free GPU: withdrawn from capacity and allocation, with the reason */
	assert_int_equal(post(x, "/v1/cordon",
			      "{\"device\": \"2a:00.0\", \"reason\": \"fan replacement\"}", &doc),
			 200);
	assert_string_equal(jstr(doc, "device"), GPU_B);
	json_decref(doc);
	doc = NULL;
	assert_true(test_stream_wait(events, (const char *[]){ "\"repartition\"", GPU_B,
							      "\"cordoned\"", NULL },
				     5000) >= 0);
	assert_int_equal(test_capacity(x, WHOLE, "free"), WHOLE_GPUS - 2);
	assert_int_equal(test_capacity(x, WHOLE, "total"), WHOLE_GPUS);
	reason = slice_reason(x, GPU_B);
	assert_string_equal(reason, "cordoned: fan replacement");
	assert_int_equal(post(x, "/v1/allocations",
			      "{\"resource\": \"" WHOLE "\", \"device\": \"" GPU_B "\"}", NULL),
			 409);

	/* a GPU in use: its slice keeps running; once released it is withdrawn */
	assert_int_equal(test_xpuctl(x->socket,
				     (const char *[]){ "cordon", GPU_A, "--reason", "ecc", NULL },
				     &out),
			 0);
	assert_non_null(strstr(out, "Device " GPU_A " cordoned: ecc"));
	free(reason);
	reason = slice_reason(x, GPU_A);
	assert_null(reason); /* allocated: served as before */
	assert_int_equal(test_capacity(x, WHOLE, "allocated"), 1);
	release(x, held);
	reason = slice_reason(x, GPU_A);
	assert_string_equal(reason, "cordoned: ecc");
	assert_int_equal(test_capacity(x, WHOLE, "free"), WHOLE_GPUS - 2);

	/* both survive a restart */
	test_stream_close(events);
	x = restart(x);
	free(reason);
	reason = cordon_of(x, GPU_B);
	assert_string_equal(reason, "fan replacement");
	assert_int_equal(test_capacity(x, WHOLE, "free"), WHOLE_GPUS - 2);
	free(out);
	assert_int_equal(test_xpuctl(x->socket, (const char *[]){ "plan", NULL }, &out), 0);
	assert_non_null(strstr(out, "cordoned"));

	/* uncordon: served again; twice is not an error */
	assert_int_equal(post(x, "/v1/uncordon", "{\"device\": \"" GPU_B "\"}", &doc), 200);
	assert_false(json_is_true(json_object_get(doc, "cordoned")));
	json_decref(doc);
	assert_int_equal(post(x, "/v1/uncordon", "{\"device\": \"" GPU_B "\"}", NULL), 200);
	free(out);
	assert_int_equal(test_xpuctl(x->socket, (const char *[]){ "uncordon", GPU_A, NULL }, &out),
			 0);
	assert_int_equal(test_capacity(x, WHOLE, "free"), WHOLE_GPUS);
	free(reason);
	reason = cordon_of(x, GPU_A);
	assert_null(reason);
	free(out);
	assert_int_equal(test_xpuctl(x->socket, (const char *[]){ "uncordon", "0000:99:00.0", NULL },
				     &out),
			 2);
	test_xpud_free(x);
}

/*
 * With a slice in use, a repartition withdraws the GPU's free slices and waits; a second one
 * is refused; the other GPUs serve on; the release lets the new layout be made and offered.
 */
static void test_waits_for_release(void **state)
{
	struct test_xpud *x = start_on(test_fixture_new("hgx-h100"));
	_cleanup_free_ char *held = NULL, *other = NULL, *out = NULL;
	struct test_stream *events;
	json_t *doc = NULL;

	events = test_stream_open(x->socket);
	assert_true(test_stream_wait(events, (const char *[]){ "subscribed", NULL }, 5000) >= 0);
	held = alloc_one(x, MIG_1G, NULL);

	assert_int_equal(test_xpuctl(x->socket,
				     (const char *[]){ "repartition", MIG_GPU, "--layout",
						       "mig: [3g.40gb, 3g.40gb]", NULL },
				     &out),
			 0);
	assert_non_null(strstr(out, "repartitioning to mig=3g.40gb,3g.40gb (draining)"));
	assert_string_equal(phase_of(x, MIG_GPU) ?: "none", "draining");
	assert_int_equal(test_capacity(x, MIG_1G, "free"), 0);
	assert_int_equal(test_capacity(x, MIG_1G, "allocated"), 1);
	assert_int_equal(post(x, "/v1/allocations", "{\"resource\": \"" MIG_1G "\"}", NULL), 409);

	/* one at a time per device */
	repartition(x, "{\"device\": \"" MIG_GPU "\", \"layout\": \"mig: all-1g.10gb\"}", 409, &doc);
	assert_non_null(strstr(jstr(doc, "message"), "being repartitioned already"));
	json_decref(doc);

	/* the other GPUs serve on */
	other = alloc_one(x, WHOLE, NULL);

	release(x, held);
	assert_true(test_stream_wait(events, (const char *[]){ MIG_GPU, "\"applying\"", NULL },
				     10000) >= 0);
	assert_true(test_stream_wait(events, (const char *[]){ MIG_GPU, "\"done\"",
							      "mig=3g.40gb,3g.40gb", NULL },
				     10000) >= 0);
	test_wait_settled(x, MIG_GPU, "mig=3g.40gb,3g.40gb");
	assert_int_equal(test_capacity(x, "nvidia.com/mig-3g.40gb", "free"), 2);
	assert_int_equal(test_capacity(x, MIG_1G, "total"), -1);
	assert_true(test_xpud_log_contains(x, "Device " MIG_GPU " repartitioned to "
						  "mig=3g.40gb,3g.40gb."));

	/* the operator's layout stays across a restart; --policy goes back (whole: the instances
	 * that exist, as the policy does not say) */
	test_stream_close(events);
	x = restart(x);
	test_wait_settled(x, MIG_GPU, "mig=3g.40gb,3g.40gb");
	free(out);
	assert_int_equal(test_xpuctl(x->socket,
				     (const char *[]){ "repartition", MIG_GPU, "--policy", "--wait",
						       NULL },
				     &out),
			 0);
	assert_non_null(strstr(out, "offered as whole"));
	doc = test_plan_entry(x, MIG_GPU);
	assert_true(json_is_null(json_object_get(doc, "layout")));
	json_decref(doc);
	test_xpud_free(x);
}

/* A timeout: nothing changes, the operator's earlier layout stays, and it is reported. */
static void test_timeout(void **state)
{
	struct test_xpud *x = start_on(test_fixture_new("hgx-h100"));
	_cleanup_free_ char *held = NULL, *out = NULL;
	struct test_stream *events;
	json_t *doc = NULL;

	events = test_stream_open(x->socket);
	assert_true(test_stream_wait(events, (const char *[]){ "subscribed", NULL }, 5000) >= 0);
	held = alloc_one(x, MIG_1G, NULL);
	repartition(x,
		    "{\"device\": \"" MIG_GPU "\", \"layout\": \"mig: [7g.80gb]\", \"timeout\": "
		    "\"300ms\"}",
		    202, &doc);
	assert_string_equal(jstr(json_object_get(doc, "repartition"), "phase"), "draining");
	json_decref(doc);
	assert_true(test_stream_wait(events, (const char *[]){ MIG_GPU, "\"failed\"",
							      "timed out waiting for 1 slice", NULL },
				     10000) >= 0);
	assert_null(phase_of(x, MIG_GPU));
	doc = test_plan_entry(x, MIG_GPU);
	assert_true(json_is_null(json_object_get(doc, "layout")));
	json_decref(doc);
	assert_int_equal(test_capacity(x, MIG_1G, "free"), 6);

	/* xpuctl --wait follows the events to the end and says it failed */
	assert_int_equal(test_xpuctl(x->socket,
				     (const char *[]){ "repartition", MIG_GPU, "--layout",
						       "mig: [7g.80gb]", "--timeout", "300ms",
						       "--wait", NULL },
				     &out),
			 2);
	assert_non_null(strstr(out, "repartition to mig=7g.80gb failed: timed out waiting for 1 "
				    "slice to be released"));

	/* ... and so does its JSON output, with the same exit status */
	free(out);
	assert_int_equal(test_xpuctl(x->socket,
				     (const char *[]){ "-o", "json", "repartition", MIG_GPU, "--layout",
						       "mig: [7g.80gb]", "--timeout", "300ms",
						       "--wait", NULL },
				     &out),
			 2);
	assert_non_null(strstr(out, "\"failure\": \"timed out waiting for 1 slice"));

	/* a timeout of 0 waits as long as it takes */
	repartition(x, "{\"device\": \"" MIG_GPU "\", \"layout\": \"mig: [7g.80gb]\", "
		       "\"timeout\": \"0\"}",
		    202, &doc);
	assert_true(json_is_null(json_object_get(json_object_get(doc, "repartition"),
						 "deadline_usec")));
	json_decref(doc);
	test_stream_close(events);
	test_xpud_free(x);
}

/* What cannot be done is refused with the reason, and nothing changes. */
static void test_refused(void **state)
{
	struct test_xpud *x = start_on(test_fixture_new("hgx-h100"));
	_cleanup_strv_free_ char **before = NULL, **after = NULL;
	json_t *doc = NULL;

	repartition(x, "{\"device\": \"0000:99:00.0\", \"layout\": \"whole: true\"}", 404, NULL);
	/* MIG disabled on this GPU, and no mig-enable */
	repartition(x, "{\"device\": \"" GPU_A "\", \"layout\": \"mig: [3g.40gb]\"}", 400, &doc);
	assert_non_null(strstr(jstr(doc, "message"), "MIG is disabled on this GPU"));
	json_decref(doc);
	/* a profile the GPU does not have */
	repartition(x, "{\"device\": \"" MIG_GPU "\", \"layout\": \"mig: all-5g.60gb\"}", 400, &doc);
	assert_non_null(strstr(jstr(doc, "message"), "does not list profile 5g.60gb"));
	json_decref(doc);
	/* ... in the list form too */
	repartition(x, "{\"device\": \"" MIG_GPU "\", \"layout\": \"mig: [5g.60gb]\"}", 400, &doc);
	assert_non_null(strstr(jstr(doc, "message"), "does not list profile 5g.60gb"));
	json_decref(doc);
	repartition(x, "{\"device\": \"" GPU_A "\", \"layout\": \"mig: [1g.10gb, 5g.60gb]\", "
		       "\"mig-enable\": true}",
		    400, NULL);
	/* more instances than the GPU holds, more memory than it has: refused before its MIG
	 * instances are touched (the same slices, under the same UUIDs, after) */
	before = test_device_slices(x, MIG_GPU, NULL);
	assert_int_equal(strv_length(before), 7);
	repartition(
	    x, "{\"device\": \"" MIG_GPU "\", \"layout\": \"mig: [3g.40gb, 3g.40gb, 3g.40gb]\"}",
	    400, &doc);
	assert_non_null(strstr(jstr(doc, "message"), "3 instances of 3g.40gb, the device holds 2"));
	json_decref(doc);
	repartition(x,
		    "{\"device\": \"" MIG_GPU "\", \"layout\": \"mig: [3g.40gb, 2g.20gb, 2g.20gb, "
		    "1g.10gb]\"}",
		    400, &doc);
	assert_non_null(
	    strstr(jstr(doc, "message"), "need 90624MiB of memory, the device has 81559MiB"));
	json_decref(doc);
	assert_null(phase_of(x, MIG_GPU));
	after = test_device_slices(x, MIG_GPU, NULL);
	assert_true(strv_equal(before, after));
	/* not a layout */
	repartition(x, "{\"device\": \"" MIG_GPU "\", \"layout\": \"mig: [3g.40gb\"}", 400, &doc);
	assert_non_null(strstr(jstr(doc, "message"), "layout: line "));
	json_decref(doc);
	repartition(x, "{\"device\": \"" MIG_GPU "\", \"layout\": \"match: all\"}", 400, &doc);
	assert_non_null(strstr(jstr(doc, "message"), "'match'"));
	json_decref(doc);
	repartition(x, "{\"device\": \"" MIG_GPU "\"}", 400, NULL);
	repartition(x, "{\"device\": \"" MIG_GPU "\", \"layout\": \"whole: true\", \"policy\": true}",
		    400, NULL);
	repartition(x, "{\"device\": \"" MIG_GPU "\", \"layout\": \"whole: true\", \"timeout\": 5}",
		    400, NULL);
	assert_int_equal(test_xpuctl(x->socket, (const char *[]){ "repartition", GPU_A, NULL }, NULL),
			 1);
	assert_int_equal(test_capacity(x, MIG_1G, "free"), 7);
	assert_null(phase_of(x, MIG_GPU));

	/* a layout made in the plan only (replicas) is done at once */
	repartition(x, "{\"device\": \"" GPU_A "\", \"layout\": \"replicas: 4\"}", 202, &doc);
	json_decref(doc);
	test_wait_settled(x, GPU_A, "replicas=4");
	assert_int_equal(test_capacity(x, WHOLE ".shared", "free"), 4);
	assert_int_equal(test_capacity(x, WHOLE, "total"), WHOLE_GPUS - 1);
	test_xpud_free(x);
}

/*
 * A layout that failed on the device as it is fails again at once: the answer says so (409),
 * not "accepted", and xpuctl, --wait and its JSON output report the failure.
 */
static void test_repeated_failure(void **state)
{
	static const char body[] = "{\"device\": \"" MIG_GPU "\", \"layout\": \"mig: [3g.40gb, "
				   "3g.40gb]\"}";
	struct test_xpud *x = start_on(second_instance_fails(test_fixture_new("hgx-h100")));
	_cleanup_free_ char *out = NULL;
	struct test_stream *events;
	json_t *doc = NULL;

	events = test_stream_open(x->socket);
	assert_true(test_stream_wait(events, (const char *[]){ "subscribed", NULL }, 5000) >= 0);
	/* the second 3g.40gb cannot be made: made half-way, then rolled back */
	repartition(x, body, 202, NULL);
	assert_true(test_stream_wait(events, (const char *[]){ MIG_GPU, "\"failed\"", NULL },
				     10000) >= 0);
	test_wait_settled(x, MIG_GPU, "whole");

	repartition(x, body, 409, &doc);
	assert_string_equal(jstr(doc, "error"), "failed");
	assert_non_null(strstr(jstr(doc, "message"), "repartition of " MIG_GPU
						     " to mig=3g.40gb,3g.40gb failed: "));
	json_decref(doc);
	assert_null(phase_of(x, MIG_GPU));
	doc = test_plan_entry(x, MIG_GPU);
	assert_true(json_is_null(json_object_get(doc, "layout")));
	json_decref(doc);
	assert_int_equal(test_capacity(x, MIG_1G, "free"), 7);

	assert_int_equal(test_xpuctl(x->socket,
				     (const char *[]){ "repartition", MIG_GPU, "--layout",
						       "mig: [3g.40gb, 3g.40gb]", NULL },
				     NULL),
			 2);
	assert_int_equal(test_xpuctl(x->socket,
				     (const char *[]){ "-o", "json", "repartition", MIG_GPU,
						       "--layout", "mig: [3g.40gb, 3g.40gb]",
						       "--wait", NULL },
				     &out),
			 2);
	test_stream_close(events);
	test_xpud_free(x);
}

/*
 * A repartition to what the device is offered as already is answered as such (200,
 * "unchanged"): no drain, no withdrawn slice, no repartition in progress.
 */
static void test_unchanged(void **state)
{
	struct test_xpud *x = start_on(test_fixture_new("hgx-h100"));
	_cleanup_free_ char *mig = NULL, *whole = NULL, *out = NULL;
	json_t *doc = NULL;

	mig = alloc_one(x, MIG_1G, NULL);
	whole = alloc_one(x, WHOLE, GPU_A);

	/* the seven 1g.10gb it has, one of them in use */
	repartition(x, "{\"device\": \"" MIG_GPU "\", \"layout\": \"mig: all-1g.10gb\"}", 200,
		    &doc);
	assert_string_equal(jstr(doc, "result"), "unchanged");
	assert_true(json_is_null(json_object_get(doc, "repartition")));
	json_decref(doc);
	assert_null(phase_of(x, MIG_GPU));
	assert_int_equal(test_capacity(x, MIG_1G, "free"), 6);
	/* the operator's layout is kept as asked */
	doc = test_plan_entry(x, MIG_GPU);
	assert_true(json_is_object(json_object_get(doc, "layout")) ||
		    json_is_string(json_object_get(doc, "layout")));
	json_decref(doc);
	/* the same again, and back to the policy, which the instances follow as well */
	repartition(x, "{\"device\": \"" MIG_GPU "\", \"layout\": \"mig: all-1g.10gb\"}", 200,
		    NULL);
	repartition(x, "{\"device\": \"" MIG_GPU "\", \"policy\": true}", 200, NULL);
	doc = test_plan_entry(x, MIG_GPU);
	assert_true(json_is_null(json_object_get(doc, "layout")));
	json_decref(doc);
	assert_int_equal(test_capacity(x, MIG_1G, "free"), 6);

	/* a whole GPU in use, asked to be whole: it keeps serving, nothing is withdrawn */
	repartition(x, "{\"device\": \"" GPU_A "\", \"layout\": \"whole: true\"}", 200, NULL);
	assert_int_equal(test_xpuctl(x->socket,
				     (const char *[]){ "repartition", GPU_B, "--policy", "--wait",
						       NULL },
				     &out),
			 0);
	assert_non_null(strstr(out, "offered as whole"));
	free(out);
	assert_int_equal(test_xpuctl(x->socket,
				     (const char *[]){ "repartition", GPU_A, "--layout",
						       "whole: true", NULL },
				     &out),
			 0);
	assert_non_null(strstr(out, "offered so already, nothing changed"));
	assert_null(phase_of(x, GPU_A));
	assert_null(phase_of(x, GPU_B));
	assert_int_equal(test_capacity(x, WHOLE, "free"), WHOLE_GPUS - 1);
	assert_int_equal(test_capacity(x, WHOLE, "allocated"), 1);
	assert_false(test_xpud_log_contains(x, "withdrawing"));
	assert_false(test_xpud_log_contains(x, "its free slices withdrawn"));
	test_xpud_free(x);
}

/* While the layout is made (slowly), the loop serves: other GPUs are granted meanwhile. */
static void test_others_serve_during_apply(void **state)
{
	char *root = test_fixture_new("hgx-h100");
	struct test_xpud *x;
	_cleanup_free_ char *id = NULL;
	json_t *doc = NULL;

	test_fake_nvml_set(root, MIG_GPU, "hang_ms",
			   json_pack("{s:i}", "nvmlDeviceCreateGpuInstance", 1500));
	x = start_on(root);
	repartition(x, "{\"device\": \"" MIG_GPU "\", \"layout\": \"mig: [3g.40gb, 3g.40gb]\"}", 202,
		    &doc);
	json_decref(doc);
	assert_string_equal(phase_of(x, MIG_GPU) ?: "none", "applying");
	id = alloc_one(x, WHOLE, NULL);
	assert_int_equal(test_request(x, "GET", "/v1/capacity", NULL), 200);
	/* still applying: the grant did not wait for it */
	assert_string_equal(phase_of(x, MIG_GPU) ?: "none", "applying");
	/* none of the old instances offered: 0 free, or (once they are destroyed) not listed */
	assert_true(test_capacity(x, MIG_1G, "free") <= 0);
	test_wait_settled(x, MIG_GPU, "mig=3g.40gb,3g.40gb");
	assert_int_equal(test_capacity(x, "nvidia.com/mig-3g.40gb", "free"), 2);
	test_xpud_free(x);
}

/* Killed while the layout is being made, xpud makes it again at the next start, and says so. */
static void test_restart_resumes(void **state)
{
	char *root = test_fixture_new("hgx-h100");
	struct test_xpud *x;
	_cleanup_free_ char *held = NULL;
	int status;

	setenv("XPU_FAULT_KILL_AT", "repartition-applying", 1);
	x = start_on(root);
	unsetenv("XPU_FAULT_KILL_AT");
	assert_true(post(x, "/v1/repartition",
			 "{\"device\": \"" MIG_GPU "\", \"layout\": \"mig: [3g.40gb, 3g.40gb]\"}",
			 NULL) < 0);
	status = test_xpud_wait_exit(x, 5000);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	x = restart(x);
	assert_true(test_xpud_log_contains(x, "Device " MIG_GPU ": resuming its repartition to "
						  "mig=3g.40gb,3g.40gb (applying when xpud stopped)."));
	test_wait_settled(x, MIG_GPU, "mig=3g.40gb,3g.40gb");
	assert_int_equal(test_capacity(x, "nvidia.com/mig-3g.40gb", "free"), 2);

	/* draining when it stops: still draining after the start, done after the release */
	held = alloc_one(x, WHOLE, GPU_A);
	repartition(x, "{\"device\": \"" GPU_A "\", \"layout\": \"replicas: 2\"}", 202, NULL);
	x = restart(x);
	assert_true(test_xpud_log_contains(x, "Device " GPU_A ": resuming its repartition to "
						  "replicas=2 (draining when xpud stopped)."));
	assert_string_equal(phase_of(x, GPU_A) ?: "none", "draining");
	assert_int_equal(test_capacity(x, WHOLE, "allocated"), 1);
	release(x, held);
	test_wait_settled(x, GPU_A, "replicas=2");
	assert_int_equal(test_capacity(x, WHOLE ".shared", "free"), 2);
	test_xpud_free(x);
}

/*
 * Killed while rolling back a layout that failed half-way, xpud rolls back again at the next
 * start and says so; the GPU is offered as it was, not cordoned.
 */
static void test_restart_rolls_back(void **state)
{
	char *root = second_instance_fails(test_fixture_new("hgx-h100"));
	struct test_xpud *x;
	json_t *p;
	int status;

	setenv("XPU_FAULT_KILL_AT", "repartition-rolling-back", 1);
	x = start_on(root);
	unsetenv("XPU_FAULT_KILL_AT");
	/* the second 3g.40gb is refused after the seven 1g.10gb were destroyed */
	repartition(x, "{\"device\": \"" MIG_GPU "\", \"layout\": \"mig: [3g.40gb, 3g.40gb]\"}",
		    202, NULL);
	status = test_xpud_wait_exit(x, 10000);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	x = restart(x);
	assert_true(test_xpud_log_contains(x, "Device " MIG_GPU ": resuming its repartition to "
						  "mig=3g.40gb,3g.40gb (rolling-back when xpud "
						  "stopped)."));
	test_wait_settled(x, MIG_GPU, "whole");
	p = test_plan_entry(x, MIG_GPU);
	assert_true(json_is_null(json_object_get(p, "cordon")));
	assert_true(json_is_null(json_object_get(p, "layout")));
	json_decref(p);
	assert_true(test_xpud_log_contains(x, "rolled back"));
	assert_int_equal(test_capacity(x, MIG_1G, "free"), 7);
	test_xpud_free(x);
}

/* Whether the GPU CDI spec of @x's tree mentions @needle. */
static bool cdi_spec_has(struct test_xpud *x, const char *needle)
{
	char path[4096], *text = NULL;
	size_t n = 0;
	FILE *f;
	bool found;

	snprintf(path, sizeof(path), "%s/var/run/cdi/xpu.dev-gpu.json", x->root);
	f = fopen(path, "re");
	if (!f)
		return false;
	found = getdelim(&text, &n, '\0', f) > 0 && strstr(text, needle);
	free(text);
	fclose(f);
	return found;
}

/*
 * The release that lets a repartition end is enough for the files written from the plan (CDI
 * specs) to follow: nothing else (no request, no timer) has to wake xpud after it.
 */
static void test_release_alone_finishes(void **state)
{
	struct test_xpud *x = start_on(test_fixture_new("hgx-h100"));
	_cleanup_free_ char *held = NULL;
	long long deadline;

	held = alloc_one(x, WHOLE, GPU_A);
	repartition(x, "{\"device\": \"" GPU_A "\", \"layout\": \"replicas: 2\"}", 202, NULL);
	assert_false(cdi_spec_has(x, "replica-1"));
	release(x, held);
	/* no API call from here on: only the file is read */
	deadline = test_now_ms() + 5000;
	while (!cdi_spec_has(x, "replica-1") && test_now_ms() < deadline)
		usleep(20 * 1000);
	assert_true(cdi_spec_has(x, "replica-1"));
	test_wait_settled(x, GPU_A, "replicas=2");
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cordon),
		cmocka_unit_test(test_waits_for_release),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_repeated_failure),
		cmocka_unit_test(test_unchanged),
		cmocka_unit_test(test_others_serve_during_apply),
		cmocka_unit_test(test_restart_resumes),
		cmocka_unit_test(test_restart_rolls_back),
		cmocka_unit_test(test_release_alone_finishes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
