// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A vendor library that segfaults, aborts, hangs, leaks 1 GiB, exits or prints garbage - in its
 * init, in a query, in a MIG apply (the fake NVML's run-time fault file, tests/fakes/README.md).
 * NVML runs in xpud's helper process only, so each is the helper's end, never xpud's: xpud keeps
 * serving its API and every other device, the GPUs keep their last good records through one
 * failed run and then say why ("nvml helper: crashed (SIGSEGV)"), and once the library behaves
 * again the next run (after its back-off) makes them healthy by themselves. Also: the helper
 * program missing, and one that answers garbage.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/macro.h"
#include "testutil.h"

/* hgx-h100: eight H100s, the last one with MIG enabled */
#define GPU "0000:18:00.0"
#define N_GPUS 8
#define MIG_GPU "0000:db:00.0"
#define WAIT_MS 30000

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Sets (or with NULL removes) the fake NVML's fault: "<where> <what>". */
static void set_fault(const char *root, const char *fault)
{
	char path[4096], tmp[4200];

	snprintf(path, sizeof(path), "%s/run/fake-nvml.json.fault", root);
	if (!fault) {
		assert_true(unlink(path) == 0 || errno == ENOENT);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	write_file(tmp, fault);
	assert_int_equal(rename(tmp, path), 0);
}

static char *config(const char *root, const char *extra)
{
	char *path;
	char text[1024];

	assert_true(asprintf(&path, "%s/xpud.yaml", root) > 0);
	snprintf(text, sizeof(text),
		 "health-interval: 200ms\nhealth-suspect-after: 1\nhealth-probation: 1s\n"
		 "nvidia: {helper-failures: 2, helper-timeout: 3s}\n%s",
		 extra ?: "");
	write_file(path, text);
	return path;
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* GET /v1/devices/@id: its backend, health state and reason, into the buffers. */
static void device_health(const struct test_xpud *x, const char *id, char backend[static 16],
			  char state[static 16], char reason[static 256])
{
	char path[128];
	json_t *doc = NULL, *h;

	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	assert_int_equal(test_request(x, "GET", path, &doc), 200);
	h = json_object_get(doc, "health");
	snprintf(backend, 16, "%s", jstr(doc, "backend") ?: "");
	snprintf(state, 16, "%s", jstr(h, "state") ?: "");
	snprintf(reason, 256, "%s", jstr(h, "reason") ?: "");
	json_decref(doc);
}

/* Waits until GPU @id is @want ("healthy", or unhealthy with @reason in its reason). */
static void wait_gpu(const struct test_xpud *x, const char *id, const char *want,
		     const char *reason)
{
	long long end = test_now_ms() + WAIT_MS;
	char backend[16], state[16], why[256];

	for (;;) {
		device_health(x, id, backend, state, why);
		if (streq(state, want) && (!reason || strstr(why, reason)))
			break;
		if (test_now_ms() > end)
			fail_msg("%s never %s (%s); last: %s, %s, '%s'", id, want, reason ?: "-",
				 backend, state, why);
		usleep(100 * 1000);
	}
	/* through every failure the GPU stays NVIDIA's record, not sysfs's */
	assert_string_equal(backend, "nvidia");
}

/* xpud serves: its API answers, every GPU is listed, and @nvidia of them as NVML's records. */
static void assert_serving(const struct test_xpud *x, size_t nvidia)
{
	json_t *doc = NULL, *d;
	size_t i, n = 0;

	assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
	assert_int_equal(test_request(x, "GET", "/v1/devices", &doc), 200);
	assert_int_equal(json_array_size(json_object_get(doc, "devices")), N_GPUS);
	json_array_foreach(json_object_get(doc, "devices"), i, d)
		n += streq(jstr(d, "backend") ?: "", "nvidia");
	json_decref(doc);
	assert_int_equal(n, nvidia);
}

struct crash_case {
	const char *fault;  /* what the library does, and where */
	const char *reason; /* what the GPU says once the runs failed */
};

/*
 * In the library's init and in its queries: every way a library can end its process. The GPU
 * is still healthy right after the first failed run (its last good record stands), unhealthy for
 * the reason after helper-failures (2), healthy again once the fault is gone.
 */
static void test_library_crashes(void **state)
{
	static const struct crash_case cases[] = {
		{ "init segv", "nvml helper: crashed (SIGSEGV)" },
		{ "init abort", "nvml helper: crashed (SIGABRT)" },
		{ "init exit", "nvml helper: exited with status 3" },
		{ "init hang", "nvml helper: timed out after 3s" },
		{ "query segv", "nvml helper: crashed (SIGSEGV)" },
		{ "query abort", "nvml helper: crashed (SIGABRT)" },
		{ "query exit", "nvml helper: exited with status 3" },
		{ "query hang", "nvml helper: timed out after 3s" },
	};
	char *root = test_fixture_new("hgx-h100");
	_cleanup_free_ char *conf = config(root, NULL);
	struct test_xpud *x;

	/* a segfault the helper's own sanitizer would turn into an abort stays a segfault */
	setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:handle_segv=0", 1);
	x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
	wait_gpu(x, GPU, "healthy", NULL);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		json_t *doc = NULL, *b;
		size_t j;
		bool degraded = false;

		print_message("%s\n", cases[i].fault);
		set_fault(x->root, cases[i].fault);
		wait_gpu(x, GPU, "unhealthy", cases[i].reason);
		assert_serving(x, N_GPUS);
		/* the backend says why too */
		assert_int_equal(test_request(x, "GET", "/v1/backends", &doc), 200);
		json_array_foreach(json_object_get(doc, "backends"), j, b)
			if (streq(jstr(b, "name") ?: "", "nvidia"))
				degraded = strstr(jstr(b, "reason") ?: "", cases[i].reason) != NULL;
		json_decref(doc);
		assert_true(degraded);
		set_fault(x->root, NULL);
		wait_gpu(x, GPU, "healthy", NULL);
	}
	assert_true(test_xpud_log_contains(x, "The NVML helper answers again"));
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
	setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1", 1);
}

/*
 * One failed run is not a fault of the GPU: with helper-failures 2, a library that crashes once
 * leaves the GPU healthy throughout (the fault file's count: the first matching call only).
 */
static void test_one_crash_tolerated(void **state)
{
	char *root = test_fixture_new("hgx-h100");
	_cleanup_free_ char *conf = config(root, NULL);
	struct test_xpud *x;
	long long end;

	setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:handle_segv=0", 1);
	x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
	wait_gpu(x, GPU, "healthy", NULL);
	set_fault(x->root, "init abort 1");
	/* each run is a process of its own, whose first init aborts while the file is there: take
	 * it away once one run failed (the back-off gives the next run a second) */
	end = test_now_ms() + WAIT_MS;
	while (!test_xpud_log_contains(x, "nvml helper: crashed (SIGABRT) (1 in a row)")) {
		char backend[16], st[16], why[256];

		device_health(x, GPU, backend, st, why);
		assert_string_equal(st, "healthy");
		if (test_now_ms() > end)
			fail_msg("no run of the helper failed");
		usleep(20 * 1000);
	}
	set_fault(x->root, NULL);
	end = test_now_ms() + 3000;
	while (test_now_ms() < end) {
		char backend[16], st[16], why[256];

		device_health(x, GPU, backend, st, why);
		assert_string_equal(st, "healthy");
		usleep(100 * 1000);
	}
	assert_false(test_xpud_log_contains(x, "(2 in a row)"));
	assert_true(test_xpud_log_contains(x, "The NVML helper answers again"));
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
	setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1", 1);
}

/* xpud's resident memory in KiB. */
static long rss_kib(const struct test_xpud *x)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)x->pid);
	f = fopen(path, "re");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/*
 * A library that leaks 1 GiB in each query, or prints 64 KiB of garbage (protocol lines among
 * it) on standard output: neither is xpud's. Its memory does not grow, its answers stay right:
 * the helper's answer goes to xpud through a descriptor the library does not write to. (With
 * an address-space limit the leak fails in the helper instead; sanitizer builds have none.)
 */
static void test_library_leaks_and_prints(void **state)
{
	static const char *const faults[] = { "query leak", "init leak", "query garbage",
					      "init garbage" };
	char *root = test_fixture_new("hgx-h100");
	_cleanup_free_ char *conf = config(root, NULL);
	struct test_xpud *x;
	long before, after;

	/* freed memory is reused at once, as without the sanitizer, so that RSS means something */
	setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:quarantine_size_mb=0", 1);
	x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
	wait_gpu(x, GPU, "healthy", NULL);
	before = rss_kib(x);
	for (size_t i = 0; i < ELEMENTSOF(faults); i++) {
		long long end = test_now_ms() + 2000;

		print_message("%s\n", faults[i]);
		set_fault(x->root, faults[i]);
		while (test_now_ms() < end) {
			char backend[16], st[16], why[256];

			device_health(x, GPU, backend, st, why);
			/* healthy, or (a limit made the leak fail) unhealthy naming memory */
			if (!streq(st, "healthy") && !strstr(why, "emory"))
				fail_msg("%s: the GPU became %s: %s", faults[i], st, why);
			assert_string_equal(backend, "nvidia");
			usleep(100 * 1000);
		}
		assert_serving(x, N_GPUS);
		set_fault(x->root, NULL);
		wait_gpu(x, GPU, "healthy", NULL);
	}
	after = rss_kib(x);
	print_message("xpud RSS %ld KiB -> %ld KiB\n", before, after);
	assert_true(after - before < 64 * 1024);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
	setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1", 1);
}

/*
 * A MIG apply whose library crashes or hangs: the layout is not made, the plan says why, xpud
 * goes on serving the other GPUs.
 */
static void test_apply_crashes(void **state)
{
	static const struct crash_case cases[] = {
		{ "apply segv", "nvml helper: crashed (SIGSEGV)" },
		{ "apply hang", "nvml helper: timed out after" },
		{ "apply abort", "nvml helper: crashed (SIGABRT)" },
	};

	setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:handle_segv=0", 1);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		char *root = test_fixture_new("hgx-h100");
		_cleanup_free_ char *conf = NULL;
		struct test_xpud *x;
		long long end = test_now_ms() + WAIT_MS;
		char seen[512] = "";

		print_message("%s\n", cases[i].fault);
		conf = config(root, "partitions:\n  - match: {pci: \"" MIG_GPU "\"}\n"
				    "    mig: [3g.40gb, 3g.40gb]\n");
		set_fault(root, cases[i].fault);
		x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
		for (;;) {
			json_t *p = test_plan_entry(x, MIG_GPU);
			const char *why = jstr(p, "reason");
			bool ok = why && strstr(why, cases[i].reason);

			snprintf(seen, sizeof(seen), "%s", why ?: "-");
			json_decref(p);
			if (ok)
				break;
			if (test_now_ms() > end)
				fail_msg("%s: the plan never said '%s'; last: %s", cases[i].fault,
					 cases[i].reason, seen);
			usleep(100 * 1000);
		}
		assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
		wait_gpu(x, "0000:18:00.0", "healthy", NULL);
		assert_int_equal(test_xpud_stop(x), 0);
		test_xpud_free(x);
	}
	setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1", 1);
}

/*
 * A MIG apply whose library leaks 1 GiB or prints garbage on its standard output: neither is
 * xpud's; the layout is made as declared.
 */
static void test_apply_leaks_and_prints(void **state)
{
	/* one leak: a library leaking at every call runs into the helper's CPU limit first */
	static const char *const faults[] = { "apply leak 1", "apply garbage" };

	setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:quarantine_size_mb=0", 1);
	for (size_t i = 0; i < ELEMENTSOF(faults); i++) {
		char *root = test_fixture_new("hgx-h100");
		_cleanup_free_ char *conf = NULL;
		struct test_xpud *x;
		long before;

		print_message("%s\n", faults[i]);
		conf = config(root, "partitions:\n  - match: {pci: \"" MIG_GPU "\"}\n"
				    "    mig: [3g.40gb, 3g.40gb]\n");
		set_fault(root, faults[i]);
		x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
		before = rss_kib(x);
		test_wait_settled(x, MIG_GPU, "mig=3g.40gb,3g.40gb");
		assert_true(rss_kib(x) - before < 64 * 1024);
		assert_serving(x, N_GPUS);
		assert_int_equal(test_xpud_stop(x), 0);
		test_xpud_free(x);
	}
	setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1", 1);
}

/* The helper program missing, or not executable: the NVIDIA backend is unavailable and says
 * why; the GPUs are still listed, from sysfs. */
static void test_helper_missing(void **state)
{
	static const char *const why[] = { "No such file or directory", "Permission denied" };
	_cleanup_free_ char *saved = strdup(test_env("XPU_HELPER"));

	for (size_t i = 0; i < ELEMENTSOF(why); i++) {
		char *root = test_fixture_new("hgx-h100");
		_cleanup_free_ char *conf = config(root, NULL);
		char path[4096], want[4300], backend[16], st[16], reason[256];
		struct test_xpud *x;
		json_t *doc = NULL, *b;
		bool said = false;
		size_t j;

		if (i == 0) {
			snprintf(path, sizeof(path), "%s/run/no-such-helper", root);
		} else {
			snprintf(path, sizeof(path), "%s/run/xpud-helper", root);
			write_file(path, "#!/bin/sh\nexit 0\n"); /* mode 0644 */
		}
		snprintf(want, sizeof(want), "nvml helper: cannot be started: %s (%s)", why[i], path);
		setenv("XPU_HELPER", path, 1);
		x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
		setenv("XPU_HELPER", saved, 1);
		assert_int_equal(test_request(x, "GET", "/v1/backends", &doc), 200);
		json_array_foreach(json_object_get(doc, "backends"), j, b)
			if (streq(jstr(b, "name") ?: "", "nvidia")) {
				assert_false(json_is_true(json_object_get(b, "available")));
				said = streq(jstr(b, "reason") ?: "", want);
				if (!said)
					print_message("reason: %s\n", jstr(b, "reason") ?: "-");
			}
		json_decref(doc);
		assert_true(said);
		device_health(x, GPU, backend, st, reason);
		assert_string_equal(backend, "pci");
		assert_serving(x, 0);
		assert_int_equal(test_xpud_stop(x), 0);
		test_xpud_free(x);
	}
}

/* A helper that answers garbage (here: a script in its place): a bad answer, named as such. */
static void test_helper_answers_garbage(void **state)
{
	char *root = test_fixture_new("hgx-h100");
	_cleanup_free_ char *conf = config(root, NULL);
	_cleanup_free_ char *saved = strdup(test_env("XPU_HELPER"));
	char script[4096];
	struct test_xpud *x;
	json_t *doc = NULL, *b;
	bool said = false;
	size_t j;

	snprintf(script, sizeof(script), "%s/run/garbage-helper", root);
	write_file(script, "#!/bin/sh\nprintf '{\"v\":1,\"type\":\"hello\",\"helper\":\"nvml\","
			   "\"facts\":{}}\\n"
			   "{\"v\":2,\"type\":\"end\"}\\n'\n");
	assert_int_equal(chmod(script, 0755), 0);
	setenv("XPU_HELPER", script, 1);
	x = test_xpud_start_nvml(root, (const char *[]){ "--config", conf, NULL }, NULL);
	setenv("XPU_HELPER", saved, 1);
	assert_int_equal(test_request(x, "GET", "/v1/backends", &doc), 200);
	json_array_foreach(json_object_get(doc, "backends"), j, b)
		if (streq(jstr(b, "name") ?: "", "nvidia"))
			said = strstr(jstr(b, "reason") ?: "", "nvml helper: bad answer: line 2") !=
			       NULL;
	json_decref(doc);
	assert_true(said);
	assert_serving(x, 0);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_library_crashes),
		cmocka_unit_test(test_one_crash_tolerated),
		cmocka_unit_test(test_library_leaks_and_prints),
		cmocka_unit_test(test_apply_crashes),
		cmocka_unit_test(test_apply_leaks_and_prints),
		cmocka_unit_test(test_helper_missing),
		cmocka_unit_test(test_helper_answers_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
