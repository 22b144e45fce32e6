// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * helper-run.c: a helper started on the loop (helper_run_start()) and blocking
 * (helper_run_sync()) gives its whole output, its exit status or signal, is killed at its
 * deadline or past its output limit, cannot be started without the caller hearing why, runs
 * under its limits with nothing of the parent's but standard error, and is described in the
 * words a device's health shows. The same again where pidfd_open() does not exist (Linux before
 * 5.3; valgrind does not know the call): a seccomp filter makes it ENOSYS for the second group.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/clock.h"
#include "shared/helper-run.h"
#include "shared/macro.h"

#define SEC 1000000ULL
#define MSEC 1000ULL

struct outcome {
	bool called;
	unsigned calls;
	struct helper_result r;
	uint64_t elapsed_usec; /* from the start until the result came */
};

static const struct helper_limits default_limits = {
	.timeout_usec = 30 * SEC,
	.output_max = 4 * 1024 * 1024,
};

static void on_done(struct helper_run *run, struct helper_result *r, void *userdata)
{
	struct outcome *o = userdata;

	o->calls++;
	o->called = true;
	o->r = *r; /* taken */
}

static void run_loop_until(sd_event *e, const bool *flag)
{
	uint64_t deadline = now_usec(CLOCK_MONOTONIC) + 60 * SEC;

	while (!*flag) {
		assert_true(now_usec(CLOCK_MONOTONIC) < deadline);
		assert_true(sd_event_run(e, 100 * MSEC) >= 0);
	}
}

/* Runs the loop for @usec more: a second done call, or a leak of the run, shows. */
static void run_loop_for(sd_event *e, uint64_t usec)
{
	uint64_t end = now_usec(CLOCK_MONOTONIC) + usec;

	while (now_usec(CLOCK_MONOTONIC) < end)
		assert_true(sd_event_run(e, 20 * MSEC) >= 0);
}

static bool gone(pid_t pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

/* Runs the loop until @pid, a helper that was killed, was reaped by the runner (a zombie still
 * answers kill(pid, 0)). */
static void run_loop_until_reaped(sd_event *e, pid_t pid)
{
	uint64_t deadline = now_usec(CLOCK_MONOTONIC) + 30 * SEC;

	while (!gone(pid)) {
		assert_true(now_usec(CLOCK_MONOTONIC) < deadline);
		assert_true(sd_event_run(e, 20 * MSEC) >= 0);
	}
}

static void run_async_in(sd_event *e, char *const *argv, const struct helper_limits *l,
			 struct outcome *o)
{
	uint64_t start = now_usec(CLOCK_MONOTONIC);
	struct helper_run *run = NULL;

	*o = (struct outcome){};
	assert_int_equal(helper_run_start(e, argv, environ, l, on_done, o, &run), 0);
	assert_non_null(run);
	/* reported from the loop, never from helper_run_start() itself */
	assert_false(o->called);
	run_loop_until(e, &o->called);
	o->elapsed_usec = now_usec(CLOCK_MONOTONIC) - start;
}

/* One run on a loop of its own; the loop runs on a while to show done comes once. */
static void run_async(char *const *argv, const struct helper_limits *l, struct outcome *o)
{
	sd_event *e = NULL;

	assert_int_equal(sd_event_new(&e), 0);
	run_async_in(e, argv, l, o);
	run_loop_for(e, 100 * MSEC);
	assert_int_equal(o->calls, 1);
	sd_event_unref(e);
}

static void run_sync(char *const *argv, const struct helper_limits *l, struct outcome *o)
{
	uint64_t start = now_usec(CLOCK_MONOTONIC);

	*o = (struct outcome){};
	assert_int_equal(helper_run_sync(argv, environ, l, &o->r), 0);
	o->elapsed_usec = now_usec(CLOCK_MONOTONIC) - start;
	o->called = true;
}

typedef void (*runner_t)(char *const *argv, const struct helper_limits *l, struct outcome *o);
static const runner_t runners[] = { run_async, run_sync };

static void assert_describes(const struct helper_result *r, const char *expected)
{
	bool oom = true;
	_cleanup_free_ char *s = helper_result_describe(r, "test helper", &oom);

	assert_false(oom);
	if (!expected) {
		if (s)
			fail_msg("described as a failure: \"%s\"", s);
		return;
	}
	assert_non_null(s);
	assert_string_equal(s, expected);
}

#define SH(script) ((char *[]){ "/bin/sh", "-c", (script), NULL })

/* 1..160000, one number a line, in eight writes with pauses between them: more than the pipe
 * holds, arriving over time. */
static void test_output_complete(void **unused)
{
	char *argv[] = { "/bin/sh", "-c",
			 "i=0; while [ $i -lt 8 ]; do seq $((i * 20000 + 1)) $(((i + 1) * 20000));"
			 " sleep 0.02; i=$((i + 1)); done",
			 NULL };
	size_t cap = 2 * 1024 * 1024, len = 0;
	_cleanup_free_ char *expected = malloc(cap);

	assert_non_null(expected);
	for (int i = 1; i <= 160000; i++)
		len += snprintf(expected + len, cap - len, "%d\n", i);
	assert_true(len > 1000000);

	for (size_t i = 0; i < ELEMENTSOF(runners); i++) {
		struct outcome o;

		runners[i](argv, &default_limits, &o);
		assert_int_equal(o.r.error, 0);
		assert_false(o.r.timed_out);
		assert_false(o.r.output_overflow);
		assert_int_equal(o.r.output_len, len);
		assert_non_null(o.r.output);
		assert_memory_equal(o.r.output, expected, len);
		assert_int_equal(o.r.output[len], '\0');
		assert_true(WIFEXITED(o.r.status));
		assert_int_equal(WEXITSTATUS(o.r.status), 0);
		/* the pauses alone take 160 ms */
		assert_true(o.r.wall_usec >= 150 * MSEC);
		assert_true(o.r.wall_usec <= o.elapsed_usec);
		assert_true(o.r.cpu_usec > 0); /* printing 1 MB costs something */
		assert_describes(&o.r, NULL);
		helper_result_done(&o.r);
		assert_null(o.r.output);
	}
}

/* What it printed just before it exited is not lost to the exit. */
static void test_output_at_exit(void **unused)
{
	for (size_t i = 0; i < ELEMENTSOF(runners); i++) {
		struct outcome o;

		runners[i](SH("printf 'last words'; exit 0"), &default_limits, &o);
		assert_int_equal(o.r.error, 0);
		assert_int_equal(o.r.output_len, strlen("last words"));
		assert_string_equal(o.r.output, "last words");
		helper_result_done(&o.r);
	}
}

/* The helper exits while a process it started still writes: the run ends with the output's end,
 * not with the helper's exit. */
static void test_output_after_exit(void **unused)
{
	for (size_t i = 0; i < ELEMENTSOF(runners); i++) {
		struct outcome o;

		runners[i](SH("(sleep 0.2; echo late) & echo early; exit 0"), &default_limits, &o);
		assert_int_equal(o.r.error, 0);
		assert_false(o.r.timed_out);
		assert_true(WIFEXITED(o.r.status));
		assert_int_equal(WEXITSTATUS(o.r.status), 0);
		assert_string_equal(o.r.output, "early\nlate\n");
		helper_result_done(&o.r);
	}
}

static void test_exit_status(void **unused)
{
	for (size_t i = 0; i < ELEMENTSOF(runners); i++) {
		struct outcome o;

		runners[i](SH("echo some; exit 3"), &default_limits, &o);
		assert_int_equal(o.r.error, 0);
		assert_false(o.r.timed_out);
		assert_true(WIFEXITED(o.r.status));
		assert_int_equal(WEXITSTATUS(o.r.status), 3);
		assert_string_equal(o.r.output, "some\n");
		assert_describes(&o.r, "test helper: exited with status 3");
		helper_result_done(&o.r);
	}
}

static void test_crash(void **unused)
{
	static const struct {
		const char *script, *description;
		int sig;
	} cases[] = {
		{ "ulimit -c 0; kill -SEGV $$", "test helper: crashed (SIGSEGV)", SIGSEGV },
		{ "ulimit -c 0; kill -ABRT $$", "test helper: crashed (SIGABRT)", SIGABRT },
	};

	for (size_t c = 0; c < ELEMENTSOF(cases); c++)
		for (size_t i = 0; i < ELEMENTSOF(runners); i++) {
			struct outcome o;

			runners[i](SH((char *)cases[c].script), &default_limits, &o);
			assert_int_equal(o.r.error, 0);
			assert_false(o.r.timed_out);
			assert_true(WIFSIGNALED(o.r.status));
			assert_int_equal(WTERMSIG(o.r.status), cases[c].sig);
			assert_describes(&o.r, cases[c].description);
			helper_result_done(&o.r);
		}
}

static pid_t pid_in(const struct helper_result *r)
{
	assert_non_null(r->output);
	return (pid_t)atoi(r->output);
}

/* Past its deadline it is killed and the caller told then, not when the helper would end; the
 * killed helper is reaped afterwards (async: from the loop, without a second done call). */
static void test_timeout(void **unused)
{
	const struct helper_limits l = { .timeout_usec = 200 * MSEC, .output_max = 4096 };
	char *argv[] = { "/bin/sh", "-c", "echo $$; exec sleep 30", NULL };
	struct outcome o;
	sd_event *e = NULL;

	assert_int_equal(sd_event_new(&e), 0);
	run_async_in(e, argv, &l, &o);
	assert_true(o.r.timed_out);
	assert_int_equal(o.r.status, 0);
	assert_true(o.elapsed_usec >= 200 * MSEC);
	assert_true(o.elapsed_usec < 10 * SEC);
	assert_true(o.r.wall_usec >= 200 * MSEC);
	assert_describes(&o.r, "test helper: timed out after 200ms");
	run_loop_until_reaped(e, pid_in(&o.r));
	run_loop_for(e, 100 * MSEC);
	assert_int_equal(o.calls, 1);
	helper_result_done(&o.r);
	sd_event_unref(e); /* a run left behind would be reported as a leak */

	run_sync(argv, &l, &o);
	assert_true(o.r.timed_out);
	assert_int_equal(o.r.status, 0);
	assert_true(o.elapsed_usec >= 200 * MSEC);
	assert_true(o.elapsed_usec < 10 * SEC);
	assert_describes(&o.r, "test helper: timed out after 200ms");
	assert_true(gone(pid_in(&o.r)));
	helper_result_done(&o.r);
}

static void test_output_overflow(void **unused)
{
	const struct helper_limits l = { .timeout_usec = 10 * SEC, .output_max = 64 * 1024 };
	char *argv[] = { "/bin/sh", "-c", "echo $$; exec cat /dev/zero", NULL };
	struct outcome o;
	sd_event *e = NULL;

	assert_int_equal(sd_event_new(&e), 0);
	run_async_in(e, argv, &l, &o);
	assert_true(o.r.output_overflow);
	assert_false(o.r.timed_out);
	assert_int_equal(o.r.status, 0);
	assert_int_equal(o.r.output_len, 64 * 1024);
	assert_describes(&o.r, "test helper: printed more than 64 KiB");
	run_loop_until_reaped(e, pid_in(&o.r));
	run_loop_for(e, 100 * MSEC);
	assert_int_equal(o.calls, 1);
	helper_result_done(&o.r);
	sd_event_unref(e);

	run_sync(argv, &l, &o);
	assert_true(o.r.output_overflow);
	assert_false(o.r.timed_out);
	assert_int_equal(o.r.status, 0);
	assert_int_equal(o.r.output_len, 64 * 1024);
	assert_describes(&o.r, "test helper: printed more than 64 KiB");
	assert_true(gone(pid_in(&o.r)));
	helper_result_done(&o.r);
}

/* Exactly output_max bytes are fine. */
static void test_output_at_limit(void **unused)
{
	const struct helper_limits l = { .timeout_usec = 30 * SEC, .output_max = 1000 };

	for (size_t i = 0; i < ELEMENTSOF(runners); i++) {
		struct outcome o;

		runners[i](SH("head -c 1000 /dev/zero"), &l, &o);
		assert_false(o.r.output_overflow);
		assert_int_equal(o.r.output_len, 1000);
		assert_describes(&o.r, NULL);
		helper_result_done(&o.r);
	}
}

static void test_missing(void **unused)
{
	char *argv[] = { "/nonexistent/xpu-test-helper", NULL };

	for (size_t i = 0; i < ELEMENTSOF(runners); i++) {
		struct outcome o;

		runners[i](argv, &default_limits, &o);
		assert_int_equal(o.r.error, -ENOENT);
		assert_null(o.r.output);
		assert_describes(&o.r, "test helper: cannot be started: No such file or directory");
	}
}

static void test_not_executable(void **unused)
{
	char path[] = "/tmp/xpu-test-helper-XXXXXX";
	int fd = mkstemp(path);
	char *argv[] = { path, NULL };

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "#!/bin/sh\necho hello\n", 21), 21);
	assert_int_equal(fchmod(fd, 0644), 0);
	close(fd);
	for (size_t i = 0; i < ELEMENTSOF(runners); i++) {
		struct outcome o;

		runners[i](argv, &default_limits, &o);
		assert_int_equal(o.r.error, -EACCES);
		assert_describes(&o.r, "test helper: cannot be started: Permission denied");
	}
	unlink(path);
}

/* A helper that exits with status 127 on its own is not mistaken for one that could not start. */
static void test_status_127(void **unused)
{
	for (size_t i = 0; i < ELEMENTSOF(runners); i++) {
		struct outcome o;

		runners[i](SH("exit 127"), &default_limits, &o);
		assert_int_equal(o.r.error, 0);
		assert_true(WIFEXITED(o.r.status));
		assert_int_equal(WEXITSTATUS(o.r.status), 127);
		helper_result_done(&o.r);
	}
}

/* The limits hold in the helper. */
static void test_limits(void **unused)
{
	const struct helper_limits l = {
		.timeout_usec = 30 * SEC,
		.address_space = 1024ULL * 1024 * 1024,
		.cpu_seconds = 7,
		.output_max = 4096,
	};
	char *argv[] = { "/bin/sh", "-c",
			 "ulimit -v; ulimit -t; ulimit -H -t; grep NoNewPrivs /proc/self/status",
			 NULL };

	for (size_t i = 0; i < ELEMENTSOF(runners); i++) {
		struct outcome o;

		runners[i](argv, &l, &o);
		assert_int_equal(o.r.error, 0);
		assert_non_null(o.r.output);
		assert_string_equal(o.r.output, "1048576\n7\n8\nNoNewPrivs:\t1\n");
		helper_result_done(&o.r);
	}
}

/* None of the parent's signal settings reach the helper (grep itself: a shell would reset some). */
static void test_signals(void **unused)
{
	char *argv[] = { "/bin/grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status", NULL };
	struct sigaction ign = { .sa_handler = SIG_IGN }, saved_act;
	sigset_t block, saved_mask;

	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	assert_int_equal(sigprocmask(SIG_BLOCK, &block, &saved_mask), 0);
	assert_int_equal(sigaction(SIGPIPE, &ign, &saved_act), 0);
	for (size_t i = 0; i < ELEMENTSOF(runners); i++) {
		struct outcome o;

		runners[i](argv, &default_limits, &o);
		assert_int_equal(o.r.error, 0);
		assert_non_null(o.r.output);
		assert_string_equal(o.r.output, "SigBlk:\t0000000000000000\n"
						"SigIgn:\t0000000000000000\n");
		helper_result_done(&o.r);
	}
	assert_int_equal(sigaction(SIGPIPE, &saved_act, NULL), 0);
	assert_int_equal(sigprocmask(SIG_SETMASK, &saved_mask, NULL), 0);
}

/* Standard input is /dev/null (not the parent's, here a pipe), and no descriptor of the parent's
 * but 0-2 reaches the helper: ls shows its own directory descriptor (3) and nothing else. */
static void test_descriptors(void **unused)
{
	int leak = open("/dev/null", O_RDONLY); /* not O_CLOEXEC, on purpose */
	int saved_stdin = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
	int p[2];

	assert_true(leak >= 0);
	assert_true(saved_stdin >= 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(dup2(p[0], STDIN_FILENO), STDIN_FILENO);
	for (size_t i = 0; i < ELEMENTSOF(runners); i++) {
		struct outcome o;

		runners[i](SH("readlink /proc/self/fd/0; ls /proc/self/fd"), &default_limits, &o);
		assert_int_equal(o.r.error, 0);
		assert_non_null(o.r.output);
		assert_string_equal(o.r.output, "/dev/null\n0\n1\n2\n3\n");
		helper_result_done(&o.r);
	}
	assert_int_equal(dup2(saved_stdin, STDIN_FILENO), STDIN_FILENO);
	close(saved_stdin);
	close(p[0]);
	close(p[1]);
	close(leak);
}

/* Abandoned: killed at once, freed, and never reported. */
static void test_abandon(void **unused)
{
	char path[] = "/tmp/xpu-test-helper-pid-XXXXXX";
	int fd = mkstemp(path);
	char script[256];
	struct helper_run *run = NULL;
	struct outcome o = {};
	sd_event *e = NULL;
	siginfo_t info = {};
	char buf[32] = "";
	int pidfd;
	pid_t pid;

	assert_true(fd >= 0);
	snprintf(script, sizeof(script), "echo $$ > %s; exec sleep 30", path);
	assert_int_equal(sd_event_new(&e), 0);
	assert_int_equal(
		helper_run_start(e, SH(script), environ, &default_limits, on_done, &o, &run), 0);
	/* running: it wrote its pid */
	for (uint64_t deadline = now_usec(CLOCK_MONOTONIC) + 30 * SEC;
	     pread(fd, buf, sizeof(buf) - 1, 0) <= 0 || !strchr(buf, '\n');) {
		assert_true(now_usec(CLOCK_MONOTONIC) < deadline);
		assert_true(sd_event_run(e, 20 * MSEC) >= 0);
	}
	pid = (pid_t)atoi(buf);
	assert_true(pid > 0);
	pidfd = pidfd_open(pid, 0);
	assert_true(pidfd >= 0);

	helper_run_abandon(run);
	{
		struct pollfd p = { .fd = pidfd, .events = POLLIN };

		/* killed, not left to sleep its 30 s */
		assert_int_equal(poll(&p, 1, 10 * 1000), 1);
	}
	assert_int_equal(waitid(P_PID, pid, &info, WEXITED | WNOHANG), 0);
	assert_int_equal(info.si_pid, pid);
	assert_int_equal(info.si_code, CLD_KILLED);
	assert_int_equal(info.si_status, SIGKILL);
	run_loop_for(e, 200 * MSEC);
	assert_false(o.called);
	close(pidfd);
	close(fd);
	unlink(path);
	sd_event_unref(e); /* the run's sources are gone: else a leak */
}

/* The helper exits but a process it started keeps standard output open: the deadline still
 * ends the run, for the caller, in time. */
static void test_grandchild_keeps_pipe(void **unused)
{
	const struct helper_limits l = { .timeout_usec = 300 * MSEC, .output_max = 4096 };
	char *argv[] = { "/bin/sh", "-c", "sleep 30 & echo $!; exit 0", NULL };

	for (size_t i = 0; i < ELEMENTSOF(runners); i++) {
		struct outcome o;
		pid_t grandchild;

		runners[i](argv, &l, &o);
		grandchild = pid_in(&o.r);
		assert_true(grandchild > 0);
		(void)kill(grandchild, SIGKILL);
		assert_true(o.r.timed_out);
		assert_true(o.elapsed_usec >= 300 * MSEC);
		assert_true(o.elapsed_usec < 10 * SEC);
		assert_describes(&o.r, "test helper: timed out after 300ms");
		helper_result_done(&o.r);
	}
}

static void test_describe(void **unused)
{
	struct helper_result r = {};

	r.status = W_EXITCODE(0, 0);
	assert_describes(&r, NULL);
	r.status = W_EXITCODE(1, 0);
	assert_describes(&r, "test helper: exited with status 1");
	r.status = SIGKILL; /* as waitpid() gives a death by SIGKILL */
	assert_describes(&r, "test helper: crashed (SIGKILL)");

	r = (struct helper_result){ .timed_out = true, .timeout_usec = 10 * SEC };
	assert_describes(&r, "test helper: timed out after 10s");
	r.timeout_usec = 500 * MSEC;
	assert_describes(&r, "test helper: timed out after 500ms");
	r.timeout_usec = 1500 * MSEC;
	assert_describes(&r, "test helper: timed out after 1500ms");

	r = (struct helper_result){ .output_overflow = true, .output_max = 4 * 1024 * 1024 };
	assert_describes(&r, "test helper: printed more than 4 MiB");
	r.output_max = 1536 * 1024;
	assert_describes(&r, "test helper: printed more than 1536 KiB");
	r.output_max = 1000;
	assert_describes(&r, "test helper: printed more than 1000 bytes");

	/* a failure to start wins over whatever else the fields say */
	r = (struct helper_result){ .error = -EACCES, .timed_out = true };
	assert_describes(&r, "test helper: cannot be started: Permission denied");
	assert_null(helper_result_describe(&(struct helper_result){}, "x", NULL));
}

static void test_address_limit_usable(void **unused)
{
#if defined(__SANITIZE_ADDRESS__)
	assert_false(helper_address_limit_usable());
#else
	assert_true(helper_address_limit_usable());
#endif
}

/* From here on this process has no pidfd_open(): ENOSYS, as before Linux 5.3. */
static int without_pidfds(void **unused)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pidfd_open, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = ELEMENTSOF(filter), .filter = filter };

	assert_int_equal(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	assert_int_equal(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
	assert_true(pidfd_open(getpid(), 0) < 0 && errno == ENOSYS);
	return 0;
}

int main(void)
{
	const struct CMUnitTest without[] = {
		cmocka_unit_test(test_output_complete),
		cmocka_unit_test(test_exit_status),
		cmocka_unit_test(test_crash),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_output_overflow),
		cmocka_unit_test(test_missing),
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_output_complete),
		cmocka_unit_test(test_output_at_exit),
		cmocka_unit_test(test_output_after_exit),
		cmocka_unit_test(test_exit_status),
		cmocka_unit_test(test_crash),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_output_overflow),
		cmocka_unit_test(test_output_at_limit),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_not_executable),
		cmocka_unit_test(test_status_127),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_signals),
		cmocka_unit_test(test_descriptors),
		cmocka_unit_test(test_abandon),
		cmocka_unit_test(test_grandchild_keeps_pipe),
		cmocka_unit_test(test_describe),
		cmocka_unit_test(test_address_limit_usable),
	};

	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	/* last: the filter cannot be taken back */
	return failed + cmocka_run_group_tests_name("without pidfds", without, without_pidfds, NULL);
}
