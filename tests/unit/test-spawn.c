// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * spawn.c: a helper's exit is reported from the loop; past its deadline it is killed and the
 * caller told at once, also when the helper cannot die yet (stuck in the kernel: here, frozen
 * by the cgroup v1 freezer, which holds even SIGKILL until it thaws) - the loop never waits.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
#include "shared/spawn.h"

#define FREEZER "/sys/fs/cgroup/freezer"

struct result {
	bool called, timed_out;
	int status;
};

static void on_done(struct spawn *s, int status, bool timed_out, void *userdata)
{
	struct result *res = userdata;

	assert_false(res->called);
	res->called = true;
	res->status = status;
	res->timed_out = timed_out;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void run_until(sd_event *e, const bool *flag)
{
	long long deadline = now_ms() + 30000;

	while (!*flag) {
		assert_true(now_ms() < deadline);
		assert_true(sd_event_run(e, 100 * 1000) >= 0);
	}
}

static void test_exit_status(void **unused)
{
	char *argv[] = { "/bin/sh", "-c", "exit 3", NULL };
	struct result res = {};
	sd_event *e = NULL;

	assert_int_equal(sd_event_new(&e), 0);
	assert_int_equal(spawn_start(e, argv, environ, 10 * 1000000ULL, on_done, &res, NULL), 0);
	run_until(e, &res.called);
	assert_false(res.timed_out);
	assert_true(WIFEXITED(res.status));
	assert_int_equal(WEXITSTATUS(res.status), 3);
	sd_event_unref(e);
}

static void write_to(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static char cgroup[256], state_path[300];

static bool frozen(void)
{
	_cleanup_free_ char *s = NULL;

	return read_attr_at(AT_FDCWD, state_path, 0, &s) == 0 && strcmp(s, "FROZEN") == 0;
}

/* Thaws the cgroup after 20 s whatever happens: a loop that waits for the helper resumes. */
static void *thaw_later(void *unused)
{
	sleep(20);
	write_to(state_path, "THAWED");
	return NULL;
}

static void test_deadline_stuck_helper(void **unused)
{
	char *argv[] = { "/bin/sleep", "1000", NULL };
	struct result res = {};
	struct spawn *s = NULL;
	sd_event *e = NULL;
	char procs[300], pid[32];
	pthread_t thread;
	pid_t child;

	snprintf(cgroup, sizeof(cgroup), FREEZER "/xpu-test-spawn-%d", (int)getpid());
	if (geteuid() != 0 || access(FREEZER "/cgroup.procs", W_OK) < 0 || mkdir(cgroup, 0755) < 0)
		skip(); /* no cgroup v1 freezer (pure cgroup v2 hosts) or not root */
	snprintf(state_path, sizeof(state_path), "%s/freezer.state", cgroup);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgroup);

	assert_int_equal(sd_event_new(&e), 0);
	assert_int_equal(spawn_start(e, argv, environ, 300 * 1000, on_done, &res, &s), 0);
	child = spawn_pid(s);
	snprintf(pid, sizeof(pid), "%d", (int)child);
	write_to(procs, pid);
	write_to(state_path, "FROZEN");
	while (!frozen())
		usleep(10 * 1000);
	assert_int_equal(pthread_create(&thread, NULL, thaw_later, NULL), 0);

	/* the deadline passes: the caller hears at once, while the helper cannot die yet */
	run_until(e, &res.called);
	assert_true(res.timed_out);
	if (!frozen())
		fail_msg("the loop waited for the killed helper until it thawed");
	assert_int_equal(kill(child, 0), 0); /* not reaped: it is still there */

	/* it thaws, dies of the SIGKILL, and is reaped from the loop */
	write_to(state_path, "THAWED");
	{
		long long deadline = now_ms() + 30000;

		while (kill(child, 0) == 0) {
			assert_true(now_ms() < deadline);
			assert_true(sd_event_run(e, 100 * 1000) >= 0);
		}
		assert_int_equal(errno, ESRCH);
	}
	pthread_cancel(thread);
	pthread_join(thread, NULL);
	sd_event_unref(e);
}

/* A failed test leaves no frozen cgroup behind. */
static int remove_cgroup(void **unused)
{
	if (cgroup[0] && access(cgroup, F_OK) == 0) {
		write_to(state_path, "THAWED");
		for (int i = 0; i < 100 && rmdir(cgroup) < 0 && errno == EBUSY; i++)
			usleep(10 * 1000);
	}
	cgroup[0] = '\0';
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_status),
		cmocka_unit_test_teardown(test_deadline_stuck_helper, remove_cgroup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
