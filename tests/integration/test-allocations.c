// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Allocations through the real xpud on the HGX fixture: grant and release, every bad request,
 * owners that exit (process, systemd unit), the race for the last slice, restarts, a corrupt
 * state file, and a crash at every step of a grant and a release.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/fileio.h"
#include "shared/macro.h"
#include "testutil.h"

#define GPU "nvidia.com/gpu"
#define HGX_WHOLE_GPUS 7 /* the eighth has MIG enabled */

/* On the fake NVML: GPU 7 has MIG enabled and is offered as its seven instances. */
static struct test_xpud *start_on(char *root)
{
	return test_xpud_start_nvml(root, NULL, NULL);
}

static struct test_xpud *start(void)
{
	return start_on(test_fixture_new("hgx-h100"));
}

static struct test_xpud *restart(struct test_xpud *x)
{
	char *root = test_xpud_take_root(x);

	test_xpud_free(x);
	return start_on(root);
}

/* POSTs a grant; returns the status and the allocation id (malloc'd) on 201. */
static int alloc(struct test_xpud *x, const char *body, char **ret_id)
{
	json_t *doc = NULL;
	int status = test_request_body(x, "POST", "/v1/allocations", body, &doc);

	if (ret_id)
		*ret_id = status == 201 ? strdup(json_string_value(json_object_get(doc, "id")))
					: NULL;
	json_decref(doc);
	return status;
}

static int release(struct test_xpud *x, const char *id)
{
	char path[256];

	snprintf(path, sizeof(path), "/v1/allocations/%s", id);
	return test_request_body(x, "DELETE", path, NULL, NULL);
}

static json_int_t capacity_of(struct test_xpud *x, const char *resource, const char *field)
{
	json_t *doc = NULL, *r;
	json_int_t v = -1;
	size_t i;

	assert_int_equal(test_request(x, "GET", "/v1/capacity", &doc), 200);
	json_array_foreach(json_object_get(doc, "resources"), i, r)
		if (json_is_string(json_object_get(r, "name")) &&
		    strcmp(json_string_value(json_object_get(r, "name")), resource) == 0)
			v = json_integer_value(json_object_get(r, field));
	json_decref(doc);
	return v;
}

/* A grant carries what a workload needs; capacity, slices and the list reflect it. */
static void test_grant_and_release(void **state)
{
	struct test_xpud *x = start();
	json_t *doc = NULL, *slices;
	const char *id;
	char path[256];

	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"" GPU "\", \"count\": 2}", &doc),
			 201);
	id = json_string_value(json_object_get(doc, "id"));
	assert_non_null(id);
	assert_int_equal(strlen(id), 18);
	slices = json_object_get(doc, "slices");
	assert_int_equal(json_array_size(slices), 2);
	/* the env names both GPUs by UUID; both GPUs' nodes and the shared ones are listed */
	const char *cvd = json_string_value(
		json_object_get(json_object_get(doc, "env"), "CUDA_VISIBLE_DEVICES"));
	assert_non_null(cvd);
	assert_non_null(strchr(cvd, ','));
	assert_int_equal(strncmp(cvd, "GPU-", 4), 0);
	assert_true(json_array_size(json_object_get(doc, "device_nodes")) >= 3);
	assert_int_equal(json_array_size(json_object_get(doc, "cdi_devices")), 2);
	assert_true(json_is_integer(json_object_get(doc, "numa_node")));
	assert_int_equal(capacity_of(x, GPU, "allocated"), 2);
	assert_int_equal(capacity_of(x, GPU, "free"), HGX_WHOLE_GPUS - 2);
	assert_int_equal(test_n_allocations(x), 1);

	snprintf(path, sizeof(path), "/v1/allocations/%s", id);
	json_t *one = NULL;
	assert_int_equal(test_request(x, "GET", path, &one), 200);
	assert_string_equal(json_string_value(json_object_get(one, "id")), id);
	json_decref(one);

	/* xpuctl sees the same */
	char *out = NULL;
	assert_int_equal(test_xpuctl(x->socket, (const char *[]){ "allocations", NULL }, &out), 0);
	assert_non_null(strstr(out, id));
	free(out);

	assert_int_equal(release(x, id), 200);
	assert_int_equal(release(x, id), 404); /* double release */
	assert_int_equal(capacity_of(x, GPU, "allocated"), 0);
	assert_int_equal(capacity_of(x, GPU, "free"), HGX_WHOLE_GPUS);
	json_decref(doc);
	test_xpud_free(x);
}

/* Every bad request gets a clear error and changes nothing. */
static void test_bad_requests(void **state)
{
	struct test_xpud *x = start();
	_cleanup_free_ char *id = NULL;
	json_t *doc = NULL;

	assert_int_equal(alloc(x, "{\"resource\": \"nvidia.com/nope\", \"count\": 1}", NULL), 404);
	assert_int_equal(alloc(x, "{\"resource\": \"" GPU "\", \"count\": 0}", NULL), 400);
	assert_int_equal(alloc(x, "{\"resource\": \"" GPU "\", \"count\": 8}", NULL), 409);
	assert_int_equal(alloc(x, "{\"resource\": \"" GPU "\", \"cuont\": 1}", NULL), 400);
	assert_int_equal(alloc(x, "{\"resource\": \"" GPU "\", \"count\": -1}", NULL), 400);
	assert_int_equal(alloc(x, "{\"resource\": 3}", NULL), 400);
	assert_int_equal(alloc(x, "{\"count\": 1}", NULL), 400);
	assert_int_equal(alloc(x, "[1, 2]", NULL), 400);
	assert_int_equal(alloc(x, "{\"slices\": [\"0000:18:00.0\"], \"count\": 2}", NULL), 400);
	assert_int_equal(alloc(x, "{\"slices\": [\"0000:99:00.0\"]}", NULL), 404);
	assert_int_equal(alloc(x, "{\"resource\": \"" GPU "\", \"owner\": {\"pid\": 0}}", NULL),
			 400);
	assert_int_equal(alloc(x, "{\"resource\": \"" GPU "\", \"owner\": {\"uid\": 1}}", NULL),
			 400);
	assert_int_equal(
		alloc(x, "{\"resource\": \"" GPU "\", \"owner\": {\"cgroup\": \"../etc\"}}", NULL),
		400);
	/* constraints that contradict the explicit slices: NUMA 0 and 1, another device */
	assert_int_equal(alloc(x, "{\"slices\": [\"0000:18:00.0\", \"0000:9a:00.0\"], "
				  "\"numa_local\": true}",
			       NULL),
			 400);
	assert_int_equal(alloc(x, "{\"slices\": [\"0000:18:00.0\"], \"device\": \"2a:00.0\"}",
			       NULL),
			 400);
	/* five GPUs on one NUMA node: each node has four at most */
	assert_int_equal(alloc(x, "{\"resource\": \"" GPU "\", \"count\": 5, \"numa_local\": true}",
			       NULL),
			 409);
	/* an explicit slice that is taken */
	assert_int_equal(alloc(x, "{\"slices\": [\"0000:18:00.0\"]}", &id), 201);
	assert_int_equal(alloc(x, "{\"slices\": [\"0000:18:00.0\"]}", NULL), 409);
	/* a body that is not JSON */
	assert_int_equal(test_request_body(x, "POST", "/v1/fit", "{}", &doc), 200);
	json_decref(doc);
	char *raw = test_raw_exchange(x->socket,
				      "POST /v1/allocations HTTP/1.1\r\nHost: x\r\n"
				      "Content-Length: 5\r\n\r\n{nope",
				      strlen("POST /v1/allocations HTTP/1.1\r\nHost: x\r\n"
					     "Content-Length: 5\r\n\r\n{nope"),
				      2000);
	assert_non_null(strstr(raw, "400"));
	assert_non_null(strstr(raw, "not JSON"));
	free(raw);
	/* wrong methods */
	assert_int_equal(test_request_body(x, "DELETE", "/v1/allocations", NULL, NULL), 405);
	assert_int_equal(test_request_body(x, "PUT", "/v1/allocations/a-0", NULL, NULL), 405);
	/* only the one good grant exists */
	assert_int_equal(test_n_allocations(x), 1);
	assert_int_equal(capacity_of(x, GPU, "allocated"), 1);
	test_xpud_free(x);
}

static pid_t spawn_sleeper(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/bin/sleep", "sleep", "60", (char *)NULL);
		_exit(127);
	}
	return pid;
}

static bool wait_allocations(struct test_xpud *x, size_t want, int timeout_ms)
{
	long long deadline = test_now_ms() + timeout_ms;

	while (test_now_ms() < deadline) {
		if (test_n_allocations(x) == want)
			return true;
		usleep(20000);
	}
	return false;
}

/* A process's allocation goes when it exits; a dead PID is refused. */
static void test_owner_pid(void **state)
{
	struct test_xpud *x = start();
	pid_t child = spawn_sleeper(), dead;
	char body[256];

	snprintf(body, sizeof(body), "{\"resource\": \"" GPU "\", \"owner\": {\"pid\": %d}}",
		 (int)child);
	assert_int_equal(alloc(x, body, NULL), 201);
	assert_int_equal(capacity_of(x, GPU, "allocated"), 1);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	assert_true(wait_allocations(x, 0, 5000));
	assert_int_equal(capacity_of(x, GPU, "allocated"), 0);
	assert_true(test_xpud_log_contains(x, "is gone, releasing"));

	/* an owner that is already dead */
	dead = spawn_sleeper();
	kill(dead, SIGKILL);
	waitpid(dead, NULL, 0);
	snprintf(body, sizeof(body), "{\"resource\": \"" GPU "\", \"owner\": {\"pid\": %d}}",
		 (int)dead);
	json_t *doc = NULL;
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations", body, &doc), 400);
	assert_string_equal(json_string_value(json_object_get(doc, "error")), "owner-gone");
	json_decref(doc);
	assert_int_equal(test_n_allocations(x), 0);
	test_xpud_free(x);
}

static void mkdir_p(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* A unit's allocation goes when its cgroup empties (cgroup.events says populated 0). */
static void test_owner_unit(void **state)
{
	struct test_xpud *x = start();
	char dir[4096], events[4200];

	snprintf(dir, sizeof(dir), "%s/sys/fs/cgroup/system.slice/train.service", x->root);
	mkdir_p(dir);
	snprintf(events, sizeof(events), "%s/cgroup.events", dir);
	write_file(events, "populated 1\nfrozen 0\n");
	assert_int_equal(
		alloc(x, "{\"resource\": \"" GPU "\", \"owner\": {\"unit\": \"train.service\"}}",
		      NULL),
		201);
	/* a unit that is not running */
	assert_int_equal(
		alloc(x, "{\"resource\": \"" GPU "\", \"owner\": {\"unit\": \"idle.service\"}}",
		      NULL),
		400);
	assert_int_equal(test_n_allocations(x), 1);
	write_file(events, "populated 0\nfrozen 0\n");
	assert_true(wait_allocations(x, 0, 5000));
	test_xpud_free(x);
}

/* Many clients race for the last free GPU: exactly one wins. */
static void test_race_for_last_slice(void **state)
{
	struct test_xpud *x = start();
	enum { RACERS = 8 };
	pid_t pids[RACERS];
	int wins = 0, losses = 0;

	for (int i = 0; i < HGX_WHOLE_GPUS - 1; i++)
		assert_int_equal(alloc(x, "{\"resource\": \"" GPU "\"}", NULL), 201);
	for (int i = 0; i < RACERS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			int st = test_request_body(x, "POST", "/v1/allocations",
						   "{\"resource\": \"" GPU "\"}", NULL);
			_exit(st == 201 ? 0 : st == 409 ? 1 : 2);
		}
	}
	for (int i = 0; i < RACERS; i++) {
		int status;

		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		wins += WEXITSTATUS(status) == 0;
		losses += WEXITSTATUS(status) == 1;
	}
	assert_int_equal(wins, 1);
	assert_int_equal(losses, RACERS - 1);
	assert_int_equal(test_n_allocations(x), HGX_WHOLE_GPUS);
	assert_int_equal(capacity_of(x, GPU, "free"), 0);
	test_xpud_free(x);
}

/* Allocations survive a restart; a process owner that died meanwhile is released at start. */
static void test_restart_keeps_allocations(void **state)
{
	struct test_xpud *x = start();
	_cleanup_free_ char *id = NULL;
	pid_t child = spawn_sleeper();
	char body[256];

	assert_int_equal(alloc(x, "{\"resource\": \"" GPU "\", \"count\": 2}", &id), 201);
	snprintf(body, sizeof(body), "{\"resource\": \"" GPU "\", \"owner\": {\"pid\": %d}}",
		 (int)child);
	assert_int_equal(alloc(x, body, NULL), 201);
	assert_int_equal(test_xpud_stop(x), 0);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	x = restart(x);
	assert_int_equal(test_n_allocations(x), 1);
	assert_int_equal(capacity_of(x, GPU, "allocated"), 2);
	assert_int_equal(release(x, id), 200);
	test_xpud_free(x);
}

/* A damaged state file is kept aside; xpud starts, says so, and recovers what it can. */
static void test_corrupt_state(void **state)
{
	char *root = test_fixture_new("hgx-h100"), dir[4096], file[4200], aside[4200];
	struct test_xpud *x;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/var/lib/xpud", root);
	mkdir_p(dir);
	snprintf(file, sizeof(file), "%s/state.json", dir);
	snprintf(aside, sizeof(aside), "%s/state.json.corrupt", dir);
	write_file(file, "{\"version\": 1, \"allocations\": [{\"id\": \"a-00000000000000");
	x = start_on(root);
	assert_true(test_xpud_log_contains(x, "was damaged"));
	assert_int_equal(stat(aside, &st), 0);
	assert_int_equal(test_n_allocations(x), 0);
	/* and it works: a grant is saved to a clean file */
	assert_int_equal(alloc(x, "{\"resource\": \"" GPU "\"}", NULL), 201);
	x = restart(x);
	assert_int_equal(test_n_allocations(x), 1);
	assert_false(test_xpud_log_contains(x, "was damaged"));
	test_xpud_free(x);
}

/*
 * Killed at each step of a grant or a release, xpud restarts with a state that loads and
 * agrees with what the client was told: a grant answered 201 exists, a release answered 200
 * is gone, and one that was never answered is either (not half of it).
 */
static void crash_at(const char *point, bool during_release, size_t expect_after)
{
	struct test_xpud *x;
	_cleanup_free_ char *id = NULL;
	int status;

	if (during_release) {
		x = start();
		assert_int_equal(alloc(x, "{\"resource\": \"" GPU "\", \"count\": 2}", &id), 201);
		x = restart(x);
		test_xpud_stop(x);
		setenv("XPU_FAULT_KILL_AT", point, 1);
		x = restart(x);
		unsetenv("XPU_FAULT_KILL_AT");
		assert_true(release(x, id) < 0); /* no answer: it died */
	} else {
		setenv("XPU_FAULT_KILL_AT", point, 1);
		x = start();
		unsetenv("XPU_FAULT_KILL_AT");
		assert_true(alloc(x, "{\"resource\": \"" GPU "\", \"count\": 2}", NULL) < 0);
	}
	status = test_xpud_wait_exit(x, 5000);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	x = restart(x);
	assert_int_equal(test_n_allocations(x), expect_after);
	{
		char cmd[4200];

		/* a killed save's temporary file is cleaned up at start */
		snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s/var/lib/xpud' | grep '^\\.state')\"",
			 x->root);
		assert_int_equal(system(cmd), 0);
	}
	assert_int_equal(capacity_of(x, GPU, "allocated"), (json_int_t)expect_after * 2);
	test_xpud_free(x);
}

static void test_crash_during_grant(void **state)
{
	crash_at("grant-before-save", false, 0);
	crash_at("grant-after-save", false, 1); /* saved, not yet answered: it stands */
	crash_at("grant/state-before-rename", false, 0); /* written to a temporary file only */
}

static void test_crash_during_release(void **state)
{
	crash_at("release-before-save", true, 1);
	crash_at("release-after-save", true, 0);
	crash_at("release/state-before-rename", true, 1);
}

static json_t *plan_of(struct test_xpud *x, const char *device)
{
	json_t *doc = NULL, *d, *found = NULL;
	size_t i;

	assert_int_equal(test_request(x, "GET", "/v1/plan", &doc), 200);
	json_array_foreach(json_object_get(doc, "devices"), i, d)
		if (strcmp(json_string_value(json_object_get(d, "device")), device) == 0)
			found = json_incref(d);
	json_decref(doc);
	assert_non_null(found);
	return found;
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/*
 * A reload that changes how devices are offered applies at once to idle devices; a device
 * with a slice in use keeps its offer, shows the new one as pending, and takes it when the
 * slice is released. A broken file changes nothing.
 */
static void test_reload_pending(void **state)
{
	char *root = test_fixture_new("hgx-h100"), conf[4096];
	_cleanup_free_ char *id = NULL;
	struct test_xpud *x;
	json_t *p, *doc = NULL;

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	write_file(conf, "log-level: debug\n");
	x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
	assert_int_equal(alloc(x, "{\"slices\": [\"0000:18:00.0\"]}", &id), 201);

	write_file(conf, "partitions:\n  - match: {vendor: nvidia}\n    replicas: 2\n");
	assert_int_equal(test_request_body(x, "POST", "/v1/reload", NULL, NULL), 200);
	p = plan_of(x, "0000:18:00.0");
	assert_string_equal(jstr(p, "applied"), "whole");
	assert_string_equal(jstr(p, "pending"), "replicas=2");
	assert_non_null(strstr(jstr(p, "reason"), "allocated"));
	json_decref(p);
	p = plan_of(x, "0000:2a:00.0");
	assert_string_equal(jstr(p, "applied"), "replicas=2");
	assert_true(json_is_null(json_object_get(p, "pending")));
	json_decref(p);
	/* six idle whole GPUs became twelve replicas; the busy one is still a GPU */
	assert_int_equal(capacity_of(x, GPU ".shared", "total"), 12);
	assert_int_equal(capacity_of(x, GPU, "total"), 1);
	assert_int_equal(capacity_of(x, GPU, "allocated"), 1);

	/* a broken file is refused with its line; the running policy stays */
	write_file(conf, "partitions:\n  - match: {vendor: nvidia}\n    replicas: 0\n");
	assert_int_equal(test_request_body(x, "POST", "/v1/reload", NULL, &doc), 400);
	assert_non_null(strstr(jstr(doc, "message"), "line 3"));
	json_decref(doc);
	assert_int_equal(capacity_of(x, GPU ".shared", "total"), 12);

	/* released: the pending offer applies, and survives a restart */
	assert_int_equal(release(x, id), 200);
	p = plan_of(x, "0000:18:00.0");
	assert_string_equal(jstr(p, "applied"), "replicas=2");
	json_decref(p);
	assert_int_equal(capacity_of(x, GPU ".shared", "total"), 14);
	write_file(conf, "partitions:\n  - match: {vendor: nvidia}\n    replicas: 2\n");
	root = test_xpud_take_root(x);
	test_xpud_free(x);
	x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
	assert_int_equal(capacity_of(x, GPU ".shared", "total"), 14);
	test_xpud_free(x);
}

/* Memory shares of a GPU carry the MPS limits; a grant of two shares of one GPU adds them. */
static void test_memory_shares_env(void **state)
{
	char *root = test_fixture_new("hgx-h100"), conf[4096];
	struct test_xpud *x;
	json_t *doc = NULL, *env;

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	write_file(conf, "partitions:\n  - match: {pci: \"18:00.0\"}\n"
			 "    memory-shares: {count: 4, size: 19GiB, compute: 0.25}\n");
	x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
	assert_int_equal(capacity_of(x, GPU ".shared", "total"), 4);
	assert_int_equal(
		test_request_body(x, "POST", "/v1/allocations",
				  "{\"slices\": [\"0000:18:00.0/share-0\", \"0000:18:00.0/share-1\"]}",
				  &doc),
		201);
	env = json_object_get(doc, "env");
	assert_string_equal(jstr(env, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), "50");
	assert_string_equal(jstr(env, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"), "0=38912M");
	assert_int_equal(strncmp(jstr(env, "CUDA_VISIBLE_DEVICES"), "GPU-", 4), 0);
	assert_null(strchr(jstr(env, "CUDA_VISIBLE_DEVICES"), ','));
	json_decref(doc);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grant_and_release),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_owner_pid),
		cmocka_unit_test(test_owner_unit),
		cmocka_unit_test(test_race_for_last_slice),
		cmocka_unit_test(test_restart_keeps_allocations),
		cmocka_unit_test(test_corrupt_state),
		cmocka_unit_test(test_crash_during_grant),
		cmocka_unit_test(test_crash_during_release),
		cmocka_unit_test(test_reload_pending),
		cmocka_unit_test(test_memory_shares_env),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
