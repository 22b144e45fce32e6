// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The systemd path's D-Bus call (services/enforce-systemd.c) against a fake systemd manager on a
 * private dbus-daemon: the StartTransientUnit message as the manager receives it (the unit's
 * name, the mode, each property's name, D-Bus signature and value), the wait for its job, and
 * the faults: systemd refusing a property, a unit that exists, a job that fails, a process that
 * exits before systemd takes it, no systemd on the bus, no bus at all; each a clear error and no
 * unit left.
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

#include "services/enforce-systemd.h"
#include "shared/host.h"
#include "shared/macro.h"
#include "systemd-bus.h"
#include "testutil.h"

static struct {
	struct test_systemd *bus;
	struct xpu_host *host;
	char *root;
} env;

/* A host root whose proc is the real one (whether the owner exited) and with run/systemd/system. */
static int setup(void **state)
{
	char tmpl[] = "/tmp/xpu-host-XXXXXX", path[4200];

	(void)state;
	env.bus = test_systemd_start();
	assert_non_null(mkdtemp(tmpl));
	env.root = strdup(tmpl);
	snprintf(path, sizeof(path), "%s/sys", env.root);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/proc", env.root);
	assert_int_equal(symlink("/proc", path), 0);
	assert_int_equal(host_open(env.root, &env.host), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[4200];

	(void)state;
	host_free(env.host);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env.root);
	assert_int_equal(system(cmd), 0);
	free(env.root);
	test_systemd_free(env.bus);
	return 0;
}

/* A process the scope can take; it ends when killed. */
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

static void end(pid_t pid)
{
	kill(pid, SIGKILL);
	(void)waitpid(pid, NULL, 0);
}

static void props_for(const char *id, pid_t pid, bool limits, struct unit_props *ret)
{
	char *nodes[] = {"/dev/nvidia1", "/dev/nvidiactl", NULL};
	struct grant g = {.device_nodes = nodes, .numa_node = 1, .cpu_list = "8-11,16"};
	struct enforce_limits l = {.memory_max = 1 << 30, .cpu_quota = 250, .numa_cpus = true};

	assert_int_equal(
	    unit_props_build(id, &g, pid, limits ? &l : &(struct enforce_limits){}, ret), 0);
}

static int start(const char *address, const struct unit_props *p, char **ret_error)
{
	_cleanup_(enforce_systemd_freep) struct enforce_systemd *s = NULL;

	assert_int_equal(enforce_systemd_new(env.host, address, &s), 0);
	return enforce_systemd_start(s, p, ret_error);
}

static json_t *prop(json_t *call, const char *name, const char *signature)
{
	json_t *p = json_object_get(json_object_get(call, "properties"), name);

	if (!p)
		fail_msg("no property %s in the call", name);
	assert_string_equal(json_string_value(json_object_get(p, "signature")), signature);
	return json_object_get(p, "value");
}

static void assert_ints(json_t *array, const int *want, size_t n)
{
	assert_int_equal(json_array_size(array), n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(json_integer_value(json_array_get(array, i)), want[i]);
}

static void test_message(void **state)
{
	_cleanup_(unit_props_done) struct unit_props p = {};
	_cleanup_free_ char *err = NULL, *units = NULL;
	json_t *calls, *call, *v;
	pid_t pid = sleeper();

	(void)state;
	test_systemd_fault(env.bus, NULL);
	props_for("a-0000000000000001", pid, true, &p);
	assert_int_equal(start(env.bus->address, &p, &err), 0);

	calls = test_systemd_calls(env.bus, "StartTransientUnit");
	call = json_array_get(calls, json_array_size(calls) - 1);
	assert_string_equal(json_string_value(json_object_get(call, "unit")),
			    "xpu-a-0000000000000001.scope");
	assert_string_equal(json_string_value(json_object_get(call, "mode")), "fail");
	assert_string_equal(json_string_value(prop(call, "Slice", "s")), "xpu.slice");
	assert_string_equal(json_string_value(prop(call, "DevicePolicy", "s")), "closed");
	assert_non_null(prop(call, "Description", "s"));
	v = prop(call, "DeviceAllow", "a(ss)");
	assert_int_equal(json_array_size(v), 2);
	assert_string_equal(json_string_value(json_array_get(json_array_get(v, 0), 0)),
			    "/dev/nvidia1");
	assert_string_equal(json_string_value(json_array_get(json_array_get(v, 0), 1)), "rw");
	assert_string_equal(json_string_value(json_array_get(json_array_get(v, 1), 0)),
			    "/dev/nvidiactl");
	/* CPUs 8-11 and 16, memory node 1: bitmasks */
	assert_ints(prop(call, "AllowedCPUs", "ay"), (int[]){0x00, 0x0f, 0x01}, 3);
	assert_ints(prop(call, "AllowedMemoryNodes", "ay"), (int[]){0x02}, 1);
	assert_int_equal(json_integer_value(prop(call, "MemoryMax", "t")), 1 << 30);
	assert_int_equal(json_integer_value(prop(call, "CPUQuotaPerSecUSec", "t")), 2500000);
	assert_ints(prop(call, "PIDs", "au"), (int[]){pid}, 1);
	assert_null(json_object_get(json_object_get(call, "properties"), "Environment"));
	json_decref(calls);

	units = test_systemd_units(env.bus);
	assert_string_equal(units, "xpu-a-0000000000000001.scope");
	/* the scope goes with its process */
	end(pid);
	free(units);
	units = test_systemd_wait_no_units(env.bus);
	assert_string_equal(units, "");
}

/* Without limits asked: none of their properties. */
static void test_no_limits(void **state)
{
	_cleanup_(unit_props_done) struct unit_props p = {};
	_cleanup_free_ char *err = NULL, *units = NULL;
	json_t *calls, *props;
	pid_t pid = sleeper();

	(void)state;
	props_for("a-0000000000000002", pid, false, &p);
	assert_int_equal(start(env.bus->address, &p, &err), 0);
	calls = test_systemd_calls(env.bus, "StartTransientUnit");
	props = json_object_get(json_array_get(calls, json_array_size(calls) - 1), "properties");
	assert_null(json_object_get(props, "AllowedCPUs"));
	assert_null(json_object_get(props, "MemoryMax"));
	assert_null(json_object_get(props, "CPUQuotaPerSecUSec"));
	assert_non_null(json_object_get(props, "DeviceAllow"));
	json_decref(calls);
	end(pid);
	units = test_systemd_wait_no_units(env.bus);
	assert_string_equal(units, "");
}

/* A fault: the error, its message, and no unit left. */
static void fault(const char *line, int want, const char *needle)
{
	_cleanup_(unit_props_done) struct unit_props p = {};
	_cleanup_free_ char *err = NULL, *units = NULL;
	pid_t pid = sleeper();

	test_systemd_fault(env.bus, line);
	props_for("a-0000000000000003", pid, true, &p);
	assert_int_equal(start(env.bus->address, &p, &err), want);
	assert_non_null(err);
	if (!strstr(err, needle))
		fail_msg("'%s' does not say '%s'", err, needle);
	test_systemd_fault(env.bus, NULL);
	units = test_systemd_units(env.bus);
	assert_string_equal(units, "");
	end(pid);
}

static void test_refused_property(void **state)
{
	(void)state;
	fault("refuse AllowedCPUs", -EOPNOTSUPP, "AllowedCPUs");
}

static void test_unit_exists(void **state)
{
	(void)state;
	fault("exists", -EBUSY, "xpu-a-0000000000000003.scope");
}

/* The job fails: the unit is stopped and its failed state reset, nothing left. */
static void test_job_failed(void **state)
{
	json_t *stops, *resets;

	(void)state;
	fault("job-failed", -EIO, "failed");
	stops = test_systemd_calls(env.bus, "StopUnit");
	resets = test_systemd_calls(env.bus, "ResetFailedUnit");
	assert_true(json_array_size(stops) >= 1);
	assert_true(json_array_size(resets) >= 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(resets, 0), "unit")),
			    "xpu-a-0000000000000003.scope");
	json_decref(stops);
	json_decref(resets);
}

static void test_pid_exits(void **state)
{
	(void)state;
	fault("pid-exits", -ESRCH, "exited");
}

/* The bus is there, systemd is not on it; then no bus at all. */
static void test_unavailable(void **state)
{
	_cleanup_(unit_props_done) struct unit_props p = {};
	_cleanup_free_ char *err = NULL, *none = NULL, *err2 = NULL;
	pid_t pid = sleeper();

	(void)state;
	props_for("a-0000000000000004", pid, false, &p);
	assert_true(asprintf(&none, "unix:path=%s/no-bus", env.root) > 0);
	assert_int_equal(start(none, &p, &err), -ECONNREFUSED);
	assert_non_null(strstr(err, "cannot reach systemd"));
	test_systemd_stop_fake(env.bus);
	assert_int_equal(start(env.bus->address, &p, &err2), -ECONNREFUSED);
	assert_non_null(strstr(err2, "cannot reach systemd"));
	end(pid);
}

/* <root>/run/systemd/system says systemd runs the host. */
static void test_booted(void **state)
{
	char path[4200];

	(void)state;
	assert_false(enforce_systemd_booted(env.host));
	snprintf(path, sizeof(path), "%s/run", env.root);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/run/systemd", env.root);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/run/systemd/system", env.root);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_true(enforce_systemd_booted(env.host));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_message),	     cmocka_unit_test(test_no_limits),
	    cmocka_unit_test(test_refused_property), cmocka_unit_test(test_unit_exists),
	    cmocka_unit_test(test_job_failed),	     cmocka_unit_test(test_pid_exits),
	    cmocka_unit_test(test_booted),	     cmocka_unit_test(test_unavailable),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
