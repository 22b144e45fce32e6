// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The systemd path end to end: the real xpud on a host tree where systemd runs
 * (run/systemd/system), talking to the fake systemd manager on a private dbus-daemon
 * ($XPU_SYSTEMD_BUS). `xpuctl run` exits with its command's status, the command gets the grant's
 * environment, the scope's properties are the grant's, the allocation is released when the
 * command ends and no unit is left; the same through the API for an existing process
 * ("enforce": true), its read-back; and the faults, each a clear error with no allocation and no
 * unit left: systemd refusing a property, a unit name collision, a failed job, an owner that
 * exits before systemd takes it, systemd not on the bus.
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
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/macro.h"
#include "systemd-bus.h"
#include "testutil.h"

#define RES "xpu.dev/google-coral-edge-tpu"

static struct {
	struct test_systemd *bus;
	struct test_xpud *x;
} env;

static int setup(void **state)
{
	char *root, path[4200];

	(void)state;
	env.bus = test_systemd_start();
	assert_int_equal(setenv("XPU_SYSTEMD_BUS", env.bus->address, 1), 0);
	root = test_fixture_new("coral-dual");
	snprintf(path, sizeof(path), "%s/run/systemd", root);
	(void)mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/run/systemd/system", root);
	assert_int_equal(mkdir(path, 0755), 0);
	env.x = test_xpud_start(root, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	test_xpud_free(env.x);
	test_systemd_free(env.bus);
	return 0;
}

static void sleep_ms(long ms)
{
	nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000}, NULL);
}

/* Waits (5 s at most) until xpud holds no allocation, and asserts it. */
static void assert_released(void)
{
	long long until = test_now_ms() + 5000;

	while (test_n_allocations(env.x) && test_now_ms() < until)
		sleep_ms(20);
	assert_int_equal(test_n_allocations(env.x), 0);
}

static void assert_no_units(void)
{
	_cleanup_free_ char *units = test_systemd_wait_no_units(env.bus);

	assert_string_equal(units, "");
}

/* The last StartTransientUnit call's properties (a new reference to the call). */
static json_t *last_start(void)
{
	json_t *calls = test_systemd_calls(env.bus, "StartTransientUnit");
	json_t *call = json_incref(json_array_get(calls, json_array_size(calls) - 1));

	json_decref(calls);
	assert_non_null(call);
	return call;
}

static json_t *prop(json_t *call, const char *name, const char *signature)
{
	json_t *p = json_object_get(json_object_get(call, "properties"), name);

	if (!p)
		fail_msg("no property %s in the call", name);
	assert_string_equal(json_string_value(json_object_get(p, "signature")), signature);
	return json_object_get(p, "value");
}

static void test_version(void **state)
{
	json_t *v = test_get(env.x, "version", NULL);

	(void)state;
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(v, "enforcement"), "mode")),
	    "systemd");
	json_decref(v);
	assert_true(test_xpud_log_contains(env.x, "Enforcement: systemd"));
}

/* xpuctl run: the command's exit status, its environment, the unit, the release. */
static void test_run(void **state)
{
	_cleanup_free_ char *out = NULL, *unit = NULL;
	json_t *call, *allow;
	char id[64] = "";

	(void)state;
	test_systemd_fault(env.bus, NULL);
	assert_int_equal(
	    test_xpuctl(env.x->socket,
			(const char *[]){"run", "--resource", RES "=1", "--", "sh", "-c",
					 "echo \"$XPU_ALLOCATION\"; exit 3", NULL},
			&out),
	    3);
	assert_int_equal(sscanf(out, "%63s", id), 1);
	assert_true(strncmp(id, "a-", 2) == 0);
	call = last_start();
	assert_true(asprintf(&unit, "xpu-%s.scope", id) > 0);
	assert_string_equal(json_string_value(json_object_get(call, "unit")), unit);
	assert_string_equal(json_string_value(prop(call, "DevicePolicy", "s")), "closed");
	assert_string_equal(json_string_value(prop(call, "Slice", "s")), "xpu.slice");
	allow = prop(call, "DeviceAllow", "a(ss)");
	assert_int_equal(json_array_size(allow), 1);
	assert_string_equal(json_string_value(json_array_get(json_array_get(allow, 0), 0)),
			    "/dev/apex_0");
	assert_string_equal(json_string_value(json_array_get(json_array_get(allow, 0), 1)), "rw");
	assert_int_equal(json_array_size(prop(call, "PIDs", "au")), 1);
	assert_null(json_object_get(json_object_get(call, "properties"), "MemoryMax"));
	json_decref(call);
	/* released by xpuctl as the command ended, not later when xpud saw its owner go */
	assert_int_equal(test_n_allocations(env.x), 0);
	free(unit);
	assert_true(asprintf(&unit, "Allocation %s released.", id) > 0);
	assert_true(test_xpud_log_contains(env.x, unit));
	free(unit);
	assert_true(asprintf(&unit, "Allocation %s: owner pid", id) > 0); /* "... is gone" */
	assert_false(test_xpud_log_contains(env.x, unit));
	assert_no_units();
}

/* The limits asked on the command line, as systemd gets them. */
static void test_run_limits(void **state)
{
	json_t *call, *v;

	(void)state;
	assert_int_equal(
	    test_xpuctl(env.x->socket,
			(const char *[]){"run", "--resource", RES, "--numa-local", "--memory-max",
					 "1GiB", "--cpu-quota", "50%", "--", "true", NULL},
			NULL),
	    0);
	call = last_start();
	assert_int_equal(json_integer_value(prop(call, "MemoryMax", "t")), 1 << 30);
	assert_int_equal(json_integer_value(prop(call, "CPUQuotaPerSecUSec", "t")), 500000);
	v = prop(call, "AllowedCPUs", "ay"); /* CPUs 0-7 of node 0 */
	assert_int_equal(json_array_size(v), 1);
	assert_int_equal(json_integer_value(json_array_get(v, 0)), 0xff);
	v = prop(call, "AllowedMemoryNodes", "ay");
	assert_int_equal(json_integer_value(json_array_get(v, 0)), 0x01);
	json_decref(call);
	assert_released();
	assert_no_units();

	/* bad limits: a usage error, nothing asked of xpud */
	assert_int_equal(test_xpuctl(env.x->socket,
				     (const char *[]){"run", "--resource", RES, "--cpu-quota",
						      "lots", "--", "true", NULL},
				     NULL),
			 1);
	assert_int_equal(
	    test_xpuctl(env.x->socket, (const char *[]){"run", "--", "true", NULL}, NULL), 1);
}

/* Back to back, each run taking every slice: each finds them free (released as its run ends). */
static void test_run_back_to_back(void **state)
{
	(void)state;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(
		    test_xpuctl(env.x->socket,
				(const char *[]){"run", "--resource", RES "=2", "--", "true", NULL},
				NULL),
		    0);
		assert_int_equal(test_n_allocations(env.x), 0);
	}
	assert_no_units();
}

/* A command killed by a signal: xpuctl ends by the same signal. */
static void test_run_signal(void **state)
{
	(void)state;
	assert_int_equal(test_xpuctl(env.x->socket,
				     (const char *[]){"run", "--resource", RES, "--", "sh", "-c",
						      "kill -TERM $$", NULL},
				     NULL),
			 -1);
	assert_int_equal(test_n_allocations(env.x), 0);
	assert_no_units();
}

/* A command that cannot be run: 127, the grant given back at once. */
static void test_run_not_found(void **state)
{
	(void)state;
	assert_int_equal(test_xpuctl(env.x->socket,
				     (const char *[]){"run", "--resource", RES, "--",
						      "/nonexistent/command", NULL},
				     NULL),
			 127);
	assert_int_equal(test_n_allocations(env.x), 0);
	assert_no_units();
}

static pid_t sleeper(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/bin/sleep", "sleep", "60", (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int grant(pid_t pid, json_t **ret)
{
	char body[256];

	snprintf(body, sizeof(body),
		 "{\"resource\": \"" RES "\", \"owner\": {\"pid\": %d}, \"enforce\": true}",
		 (int)pid);
	return test_request_body(env.x, "POST", "/v1/allocations", body, ret);
}

/* Through the API for an existing process: the unit read back, released when it exits. */
static void test_api(void **state)
{
	_cleanup_free_ char *unit = NULL, *path = NULL;
	pid_t pid = sleeper();
	json_t *doc = NULL, *got = NULL;
	const char *id;

	(void)state;
	assert_int_equal(grant(pid, &doc), 201);
	id = json_string_value(json_object_get(doc, "id"));
	assert_true(asprintf(&unit, "xpu-%s.scope", id) > 0);
	assert_string_equal(json_string_value(json_object_get(doc, "unit")), unit);
	assert_true(asprintf(&path, "/v1/allocations/%s", id) > 0);
	assert_int_equal(test_request(env.x, "GET", path, &got), 200);
	assert_string_equal(json_string_value(json_object_get(got, "unit")), unit);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(got, "enforced"), "devices")),
	    "systemd");
	kill(pid, SIGKILL);
	(void)waitpid(pid, NULL, 0);
	assert_released();
	assert_no_units();
	json_decref(doc);
	json_decref(got);
}

/* Released while its process runs: the scope keeps only the pseudo-devices. */
static void test_release_revokes(void **state)
{
	_cleanup_free_ char *unit = NULL, *path = NULL;
	pid_t pid = sleeper();
	json_t *doc = NULL, *got = NULL, *calls, *call, *allow;

	(void)state;
	assert_int_equal(grant(pid, &doc), 201);
	assert_true(asprintf(&unit, "xpu-%s.scope", json_string_value(json_object_get(doc, "id"))) >
		    0);
	assert_true(asprintf(&path, "/v1/allocations/%s",
			     json_string_value(json_object_get(doc, "id"))) > 0);
	assert_int_equal(test_request(env.x, "DELETE", path, &got), 200);
	calls = test_systemd_calls(env.bus, "SetUnitProperties");
	call = json_array_get(calls, json_array_size(calls) - 1);
	assert_string_equal(json_string_value(json_object_get(call, "unit")) ?: "(none)", unit);
	allow = json_object_get(json_object_get(json_object_get(call, "properties"), "DeviceAllow"),
				"value");
	assert_non_null(allow);
	assert_int_equal(json_array_size(allow), 0);
	assert_null(json_object_get(json_object_get(call, "properties"), "DevicePolicy"));
	assert_true(test_xpud_log_contains(env.x, "its devices are revoked"));
	json_decref(calls);
	kill(pid, SIGKILL);
	(void)waitpid(pid, NULL, 0);
	assert_no_units();
	json_decref(doc);
	json_decref(got);
}

/* An error answer: its code, and a message that says @needle. */
static void assert_error(json_t *doc, const char *code, const char *needle)
{
	const char *message = json_string_value(json_object_get(doc, "message"));

	assert_string_equal(json_string_value(json_object_get(doc, "error")) ?: "(none)", code);
	if (!message || !strstr(message, needle))
		fail_msg("'%s' does not say '%s'", message ?: "(none)", needle);
}

/* ---- an existing unit as the owner --------------------------------------------------------- */

#define OWNER_UNIT "work.service"
/* The unit's own settings, given back at the release. */
#define OWN_PROPS                                                                                  \
	"{\"DevicePolicy\": {\"signature\": \"s\", \"value\": \"strict\"},"                       \
	" \"DeviceAllow\": {\"signature\": \"a(ss)\", \"value\": [[\"/dev/null\", \"rw\"],"       \
	" [\"char-pts\", \"rw\"]]},"                                                               \
	" \"MemoryMax\": {\"signature\": \"t\", \"value\": 1073741824}}"

static void set_unit_running(bool running)
{
	test_write_in_place(env.x->root, "sys/fs/cgroup/system.slice/" OWNER_UNIT "/cgroup.events",
			    running ? "populated 1\nfrozen 0\n" : "populated 0\nfrozen 0\n");
}

/* The fake's existing units: OWNER_UNIT with OWN_PROPS. */
static void existing_reset(void)
{
	char path[4200];
	json_t *doc = json_pack("{s:o}", OWNER_UNIT, json_loads(OWN_PROPS, 0, NULL));

	snprintf(path, sizeof(path), "%s.existing", env.bus->record);
	assert_int_equal(json_dump_file(doc, path, 0), 0);
	json_decref(doc);
}

/* OWNER_UNIT's property @name as the fake systemd holds it now. */
static json_t *unit_prop(const char *name)
{
	char path[4200];
	json_t *doc, *v;

	snprintf(path, sizeof(path), "%s.existing", env.bus->record);
	doc = json_load_file(path, 0, NULL);
	assert_non_null(doc);
	v = json_incref(
	    json_object_get(json_object_get(json_object_get(doc, OWNER_UNIT), name), "value"));
	json_decref(doc);
	return v;
}

static void assert_own_props(void)
{
	json_t *own = json_loads(OWN_PROPS, 0, NULL);
	const char *names[] = { "DevicePolicy", "DeviceAllow", "MemoryMax" };

	for (size_t i = 0; i < ELEMENTSOF(names); i++) {
		json_t *got = unit_prop(names[i]);

		if (!json_equal(got, json_object_get(json_object_get(own, names[i]), "value")))
			fail_msg("%s of %s is not its own again", names[i], OWNER_UNIT);
		json_decref(got);
	}
	json_decref(own);
}

static int grant_unit(const char *enforce, json_t **ret)
{
	char body[512];

	snprintf(body, sizeof(body),
		 "{\"resource\": \"" RES "\", \"owner\": {\"unit\": \"" OWNER_UNIT "\"}, "
		 "\"enforce\": %s}",
		 enforce);
	return test_request_body(env.x, "POST", "/v1/allocations", body, ret);
}

/* Confines the owner unit: exactly the granted node, the limit; returns the grant. */
static json_t *confine_unit(void)
{
	json_t *doc = NULL, *allow, *policy, *memory, *nodes;

	existing_reset();
	set_unit_running(true);
	if (grant_unit("{\"memory_max\": 268435456}", &doc) != 201)
		fail_msg("%s", json_dumps(doc, 0));
	assert_string_equal(json_string_value(json_object_get(doc, "unit")), OWNER_UNIT);
	policy = unit_prop("DevicePolicy");
	allow = unit_prop("DeviceAllow");
	memory = unit_prop("MemoryMax");
	nodes = json_object_get(doc, "device_nodes");
	assert_string_equal(json_string_value(policy), "closed");
	/* the unit's own entries went: only the grant's node */
	assert_int_equal(json_array_size(allow), json_array_size(nodes));
	assert_string_equal(json_string_value(json_array_get(json_array_get(allow, 0), 0)),
			    json_string_value(json_array_get(nodes, 0)));
	assert_int_equal(json_integer_value(memory), 268435456);
	json_decref(policy);
	json_decref(allow);
	json_decref(memory);
	return doc;
}

/* An existing unit confined by SetUnitProperties, and given its own settings back. */
static void test_owner_unit(void **state)
{
	_cleanup_free_ char *path = NULL;
	json_t *doc, *got = NULL, *calls, *call, *seq;

	(void)state;
	doc = confine_unit();
	calls = test_systemd_calls(env.bus, "SetUnitProperties");
	call = json_array_get(calls, json_array_size(calls) - 1);
	assert_string_equal(json_string_value(json_object_get(call, "unit")), OWNER_UNIT);
	assert_true(json_is_true(json_object_get(call, "runtime")));
	/* no Slice=, no PIDs=: the unit has its own; DeviceAllow emptied first */
	assert_null(json_object_get(json_object_get(call, "properties"), "Slice"));
	assert_null(json_object_get(json_object_get(call, "properties"), "PIDs"));
	seq = json_object_get(call, "sequence");
	assert_string_equal(json_string_value(json_array_get(json_array_get(seq, 1), 0)),
			    "DeviceAllow");
	assert_int_equal(json_array_size(json_array_get(json_array_get(seq, 1), 2)), 0);
	json_decref(calls);
	assert_true(asprintf(&path, "/v1/allocations/%s",
			     json_string_value(json_object_get(doc, "id"))) > 0);
	assert_int_equal(test_request(env.x, "GET", path, &got), 200);
	assert_string_equal(json_string_value(json_object_get(got, "unit")), OWNER_UNIT);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(got, "enforced"), "devices")),
	    "systemd");
	json_decref(got);
	assert_int_equal(test_request(env.x, "DELETE", path, &got), 200);
	json_decref(got);
	assert_own_props();
	assert_true(test_xpud_log_contains(env.x, "has its own device policy and limits back"));
	json_decref(doc);
}

/* The unit stops: the allocation goes and the unit gets its settings back, also when xpud was
 * restarted in between (what it had is kept in the state directory). */
static void test_owner_unit_stops_after_restart(void **state)
{
	char *root;
	json_t *doc;

	(void)state;
	doc = confine_unit();
	root = test_xpud_take_root(env.x);
	test_xpud_free(env.x);
	env.x = test_xpud_start(root, NULL);
	assert_int_equal(test_n_allocations(env.x), 1);
	set_unit_running(false);
	assert_released();
	assert_own_props();
	json_decref(doc);
}

/* The same from the command line: xpuctl alloc --owner-unit --enforce, its limits. */
static void test_alloc_enforce(void **state)
{
	_cleanup_free_ char *out = NULL, *release = NULL;
	json_t *memory;
	char id[64] = "";
	const char *line;

	(void)state;
	existing_reset();
	set_unit_running(true);
	assert_int_equal(test_xpuctl(env.x->socket,
				     (const char *[]){ "alloc", RES, "--owner-unit", OWNER_UNIT,
						       "--enforce", "--memory-max", "256M", NULL },
				     &out),
			 0);
	line = strstr(out, "Confined in:");
	assert_non_null(line);
	assert_non_null(strstr(line, OWNER_UNIT));
	assert_int_equal(sscanf(strstr(out, "Allocation:") + strlen("Allocation:"), "%63s", id),
			 1);
	memory = unit_prop("MemoryMax");
	assert_int_equal(json_integer_value(memory), 268435456);
	json_decref(memory);
	assert_int_equal(test_xpuctl(env.x->socket, (const char *[]){ "release", id, NULL },
				     &release),
			 0);
	assert_own_props();
	/* limits without --enforce, --enforce without an owner it can confine: usage errors */
	free(out);
	out = NULL;
	assert_int_equal(test_xpuctl(env.x->socket,
				     (const char *[]){ "alloc", RES, "--memory-max", "1G", NULL },
				     &out),
			 1);
	free(out);
	out = NULL;
	assert_int_equal(test_xpuctl(env.x->socket,
				     (const char *[]){ "alloc", RES, "--enforce", NULL }, &out),
			 1);
	assert_int_equal(test_n_allocations(env.x), 0);
}

/* Faults on an existing unit: a clear error, no allocation, the unit as it was. */
static void unit_fault(const char *line, int status, const char *code, const char *needle)
{
	json_t *doc = NULL;

	existing_reset();
	set_unit_running(true);
	test_systemd_fault(env.bus, line);
	assert_int_equal(grant_unit("{\"memory_max\": 268435456}", &doc), status);
	test_systemd_fault(env.bus, NULL);
	assert_error(doc, code, needle);
	assert_int_equal(test_n_allocations(env.x), 0);
	assert_own_props();
	json_decref(doc);
}

static void test_owner_unit_refused(void **state)
{
	(void)state;
	unit_fault("refuse MemoryMax", 501, "unsupported", "MemoryMax");
}

static void test_owner_unit_unknown(void **state)
{
	(void)state;
	unit_fault("no-such-unit", 400, "owner-gone", "no unit " OWNER_UNIT);
}

/* A fault: the answer's status, code and message, and nothing left. */
static void fault(const char *line, int status, const char *code, const char *needle)
{
	pid_t pid = sleeper();
	json_t *doc = NULL;

	test_systemd_fault(env.bus, line);
	assert_int_equal(grant(pid, &doc), status);
	assert_error(doc, code, needle);
	test_systemd_fault(env.bus, NULL);
	assert_int_equal(test_n_allocations(env.x), 0);
	assert_no_units();
	kill(pid, SIGKILL);
	(void)waitpid(pid, NULL, 0);
	json_decref(doc);
}

static void test_refused_property(void **state)
{
	(void)state;
	fault("refuse DevicePolicy", 501, "unsupported", "DevicePolicy");
}

static void test_unit_exists(void **state)
{
	(void)state;
	fault("exists", 409, "busy", "already has a unit");
}

static void test_job_failed(void **state)
{
	(void)state;
	fault("job-failed", 500, "internal", "ended 'failed'");
}

static void test_owner_exits(void **state)
{
	(void)state;
	fault("pid-exits", 400, "owner-gone", "exited");
}

/* xpuctl run under a fault: xpud's error, exit 2, the command never runs. */
static void test_run_fault(void **state)
{
	char marker[4200];

	(void)state;
	snprintf(marker, sizeof(marker), "%s/ran", env.bus->dir);
	test_systemd_fault(env.bus, "refuse AllowedCPUs");
	assert_int_equal(test_xpuctl(env.x->socket,
				     (const char *[]){"run", "--resource", RES, "--numa-local",
						      "--", "touch", marker, NULL},
				     NULL),
			 2);
	test_systemd_fault(env.bus, NULL);
	assert_int_equal(access(marker, F_OK), -1);
	assert_int_equal(test_n_allocations(env.x), 0);
}

/* Last: systemd gone from the bus. */
static void test_unavailable(void **state)
{
	(void)state;
	test_systemd_stop_fake(env.bus);
	fault(NULL, 503, "unavailable", "cannot reach systemd");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_version),
	    cmocka_unit_test(test_run),
	    cmocka_unit_test(test_run_limits),
	    cmocka_unit_test(test_run_not_found),
	    cmocka_unit_test(test_run_back_to_back),
	    cmocka_unit_test(test_run_signal),
	    cmocka_unit_test(test_api),
	    cmocka_unit_test(test_release_revokes),
	    cmocka_unit_test(test_owner_unit),
	    cmocka_unit_test(test_owner_unit_stops_after_restart),
	    cmocka_unit_test(test_owner_unit_refused),
	    cmocka_unit_test(test_alloc_enforce),
	    cmocka_unit_test(test_owner_unit_unknown),
	    cmocka_unit_test(test_refused_property),
	    cmocka_unit_test(test_unit_exists),
	    cmocka_unit_test(test_job_failed),
	    cmocka_unit_test(test_owner_exits),
	    cmocka_unit_test(test_run_fault),
	    cmocka_unit_test(test_unavailable),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
