// SPDX-License-Identifier: GPL-2.0-or-later
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "clock.h"
#include "helper-run.h"
#include "macro.h"

#define USEC_PER_MSEC 1000ULL
#define USEC_PER_SEC 1000000ULL
#define DEADLINE_ACCURACY_USEC USEC_PER_MSEC /* sd-event's default (250 ms) is too coarse */
#define SYNC_REAP_WAIT_MSEC 1000 /* helper_run_sync(): waiting for a killed helper */
#define OUTPUT_FIRST_ALLOC 4096
#define FALLBACK_FD_MAX (1U << 20) /* the kernel's default fs.nr_open */
/* Without pidfds (before Linux 5.3; valgrind, which does not know the call): how often an exit is
 * looked for once the helper's output has ended. */
#define REAP_POLL_USEC (10 * USEC_PER_MSEC)

struct helper_run {
	struct helper_limits limits;
	pid_t pid;
	int pidfd, out_fd;
	int err_fd;	     /* the read end of the pipe the child reports execve()'s error on */
	uint64_t start_usec; /* CLOCK_MONOTONIC */
	size_t output_cap;
	bool eof, reaped, clock_stopped;
	struct helper_result result; /* filled in as the run goes */

	/* helper_run_start() only */
	sd_event *event;
	sd_event_source *out_source, *exit_source, *timer, *reap_timer;
	helper_done_t done;
	void *userdata;
	bool reported;
};

/* What the child does between fork() and execve(), all worked out before the fork: the child of a
 * multi-threaded process may only make async-signal-safe calls (no malloc, no locks). */
struct child_plan {
	char *const *argv;
	char *const *envp;
	pid_t parent;
	int out_fd, err_fd; /* the pipes' write ends, both above standard error */
	unsigned fd_max;    /* for closing one by one where close_range() is refused */
	bool set_as, set_cpu;
	struct rlimit as, cpu;
};

void helper_result_done(struct helper_result *r)
{
	if (!r)
		return;
	r->output = mfree(r->output);
	r->output_len = 0;
}

bool helper_address_limit_usable(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
	__has_feature(memory_sanitizer)
	return false;
#else
	return true;
#endif
#else
	return true;
#endif
}

static void format_duration(char *buf, size_t size, uint64_t usec)
{
	if (usec >= USEC_PER_SEC && usec % USEC_PER_SEC == 0)
		snprintf(buf, size, "%llus", (unsigned long long)(usec / USEC_PER_SEC));
	else
		snprintf(buf, size, "%llums",
			 (unsigned long long)((usec + USEC_PER_MSEC - 1) / USEC_PER_MSEC));
}

static void format_size(char *buf, size_t size, size_t bytes)
{
	if (bytes > 0 && bytes % (1024 * 1024) == 0)
		snprintf(buf, size, "%zu MiB", bytes / (1024 * 1024));
	else if (bytes > 0 && bytes % 1024 == 0)
		snprintf(buf, size, "%zu KiB", bytes / 1024);
	else
		snprintf(buf, size, "%zu byte%s", bytes, bytes == 1 ? "" : "s");
}

char *helper_result_describe(const struct helper_result *r, const char *what, bool *ret_oom)
{
	char detail[64];
	char *s = NULL;
	int n;

	if (ret_oom)
		*ret_oom = false;
	if (r->error < 0) {
		errno = -r->error;
		n = asprintf(&s, "%s: cannot be started: %m", what);
	} else if (r->timed_out) {
		format_duration(detail, sizeof(detail), r->timeout_usec);
		n = asprintf(&s, "%s: timed out after %s", what, detail);
	} else if (r->output_overflow) {
		format_size(detail, sizeof(detail), r->output_max);
		n = asprintf(&s, "%s: printed more than %s", what, detail);
	} else if (WIFSIGNALED(r->status)) {
		const char *name = sigabbrev_np(WTERMSIG(r->status));

		if (name)
			n = asprintf(&s, "%s: crashed (SIG%s)", what, name);
		else
			n = asprintf(&s, "%s: crashed (signal %d)", what, WTERMSIG(r->status));
	} else if (WIFEXITED(r->status) && WEXITSTATUS(r->status) != 0) {
		n = asprintf(&s, "%s: exited with status %d", what, WEXITSTATUS(r->status));
	} else {
		return NULL;
	}
	if (n < 0) {
		if (ret_oom)
			*ret_oom = true;
		return NULL;
	}
	return s;
}

/* The child's side, from fork() to execve(): async-signal-safe calls only. */

static void child_close_fds(const struct child_plan *p)
{
	/* All above standard error but the error pipe, which execve() closes (O_CLOEXEC). */
	if ((p->err_fd == 3 || close_range(3, p->err_fd - 1, 0) == 0) &&
	    close_range(p->err_fd + 1, ~0U, 0) == 0)
		return;
	/* no close_range() (before Linux 5.9, or refused by a seccomp filter) */
	for (unsigned fd = 3; fd < p->fd_max; fd++)
		if (fd != (unsigned)p->err_fd)
			(void)close(fd);
}

_Noreturn static void child_exec(const struct child_plan *p)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	int fd, e;

	/* SIGKILL when the thread that forked dies (the loop's thread, or the one in
	 * helper_run_sync(): a thread that exits takes its helpers with it) */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		goto fail;
	if (getppid() != p->parent)
		_exit(127); /* it died before that: nobody to tell */

	/* The parent blocked every signal around fork(): reset the dispositions (a handler
	 * would not survive execve(), but an ignored signal would) before unblocking. KILL,
	 * STOP and the C library's own signals are refused; nothing to do about those. */
	for (int sig = 1; sig < _NSIG; sig++)
		(void)sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		goto fail;

	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto fail;
	if (fd == STDIN_FILENO ? fcntl(fd, F_SETFD, 0) < 0 : dup2(fd, STDIN_FILENO) < 0)
		goto fail;
	if (dup2(p->out_fd, STDOUT_FILENO) < 0)
		goto fail;
	child_close_fds(p);

	if (p->set_as && setrlimit(RLIMIT_AS, &p->as) < 0)
		goto fail;
	if (p->set_cpu && setrlimit(RLIMIT_CPU, &p->cpu) < 0)
		goto fail;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		goto fail;
	execve(p->argv[0], p->argv, p->envp);
fail:
	e = errno;
	/* the parent reads it as the run's error; nothing to do when it cannot */
	(void)!write(p->err_fd, &e, sizeof(e));
	_exit(127);
}

/* The parent's side. */

/* A pipe whose read end does not block and whose write end (the child's) is above standard
 * error, so that dup2() onto standard output cannot close it when xpud's 0-2 were closed. */
static int make_pipe(int *ret_read, int *ret_write)
{
	_cleanup_close_ int r_fd = -EBADF, w_fd = -EBADF;
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	r_fd = fds[0];
	w_fd = fds[1];
	if (w_fd <= STDERR_FILENO) {
		int moved = fcntl(w_fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);

		if (moved < 0)
			return -errno;
		safe_close(w_fd);
		w_fd = moved;
	}
	if (fcntl(r_fd, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	*ret_read = TAKE_FD(r_fd);
	*ret_write = TAKE_FD(w_fd);
	return 0;
}

/* A limit no higher than the hard limit xpud has: lowering needs no privilege. */
static bool plan_limit(int resource, uint64_t soft, uint64_t hard, struct rlimit *ret)
{
	struct rlimit now;

	if (soft == 0)
		return false;
	if (getrlimit(resource, &now) < 0)
		now.rlim_max = RLIM_INFINITY;
	ret->rlim_cur = MIN(soft, now.rlim_max);
	ret->rlim_max = MIN(hard, now.rlim_max);
	return true;
}

static void plan_init(struct child_plan *p, const struct helper_limits *l)
{
	struct rlimit nofile;

	p->set_as = plan_limit(RLIMIT_AS, l->address_space, l->address_space, &p->as);
	p->set_cpu = plan_limit(RLIMIT_CPU, l->cpu_seconds, (uint64_t)l->cpu_seconds + 1, &p->cpu);
	p->fd_max = FALLBACK_FD_MAX;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_max < FALLBACK_FD_MAX)
		p->fd_max = nofile.rlim_max;
}

static void run_init(struct helper_run *run, const struct helper_limits *limits)
{
	*run = (struct helper_run){
		.limits = *limits,
		.pidfd = -EBADF,
		.out_fd = -EBADF,
		.err_fd = -EBADF,
		.start_usec = now_usec(CLOCK_MONOTONIC),
	};
}

static int run_spawn(struct helper_run *run, char *const *argv, char *const *envp)
{
	_cleanup_close_ int out_r = -EBADF, out_w = -EBADF, err_r = -EBADF, err_w = -EBADF;
	struct child_plan plan = { .argv = argv, .envp = envp, .parent = getpid() };
	sigset_t all, saved;
	int r;

	r = make_pipe(&out_r, &out_w);
	if (r >= 0)
		r = make_pipe(&err_r, &err_w);
	if (r < 0)
		return r;
	plan.out_fd = out_w;
	plan.err_fd = err_w;
	plan_init(&plan, &run->limits);

	/* no handler of xpud's may run in the child before it reset them */
	sigfillset(&all);
	r = -pthread_sigmask(SIG_SETMASK, &all, &saved);
	if (r < 0)
		return r;
	run->pid = fork();
	if (run->pid == 0)
		child_exec(&plan);
	r = run->pid < 0 ? -errno : 0;
	(void)pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (r < 0)
		return r;

	run->pidfd = pidfd_open(run->pid, 0);
	if (run->pidfd < 0 && errno == ENOSYS) {
		/* no pidfds here: the exit is looked for with waitpid() once the output ended */
		run->pidfd = -EBADF;
	} else if (run->pidfd < 0) {
		r = -errno;
		/* not waited for (it may be in execve() on a stuck file system): a zombie until
		 * xpud exits */
		(void)kill(run->pid, SIGKILL);
		return r;
	}
	run->out_fd = TAKE_FD(out_r);
	run->err_fd = TAKE_FD(err_r);
	return 0;
}

static void run_stop_clock(struct helper_run *run)
{
	if (run->clock_stopped)
		return;
	run->clock_stopped = true;
	run->result.wall_usec = now_usec(CLOCK_MONOTONIC) - run->start_usec;
}

/* Reads what is there: 1 at the end of the output, 0 when more may come, -EFBIG past
 * output_max, -ENOMEM. */
static int run_read_output(struct helper_run *run)
{
	struct helper_result *res = &run->result;

	for (;;) {
		ssize_t n;

		if (res->output_len == run->limits.output_max) {
			char byte;

			n = read(run->out_fd, &byte, 1);
			if (n > 0)
				return -EFBIG;
		} else {
			if (run->output_cap - res->output_len < 2) {
				size_t cap = MAX(run->output_cap * 2, (size_t)OUTPUT_FIRST_ALLOC);
				char *p;

				cap = MIN(cap, run->limits.output_max) + 1; /* the NUL */
				p = realloc(res->output, cap);
				if (!p)
					return -ENOMEM;
				res->output = p;
				run->output_cap = cap;
			}
			n = read(run->out_fd, res->output + res->output_len,
				 run->output_cap - 1 - res->output_len);
			if (n > 0) {
				res->output_len += n;
				res->output[res->output_len] = '\0';
				continue;
			}
		}
		if (n == 0)
			return 1;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return 0;
		return 1; /* a pipe has no other read error: taken as its end */
	}
}

/* Reaps the helper if it exited; true once it was. Does not wait. */
static bool run_reap(struct helper_run *run)
{
	struct rusage ru;
	int status = 0;
	pid_t pid;

	if (run->reaped)
		return true;
	pid = wait4(run->pid, &status, WNOHANG, &ru);
	if (pid == 0 || (pid < 0 && errno != ECHILD))
		return false;
	run_stop_clock(run);
	run->reaped = true;
	/* ECHILD: reaped by someone else (SIGCHLD ignored), its status and times are lost */
	if (pid == run->pid) {
		run->result.status = status;
		run->result.cpu_usec =
			(uint64_t)ru.ru_utime.tv_sec * USEC_PER_SEC + ru.ru_utime.tv_usec +
			(uint64_t)ru.ru_stime.tv_sec * USEC_PER_SEC + ru.ru_stime.tv_usec;
	}
	return true;
}

/* SIGKILL, unless it was reaped (an unreaped child's pid cannot be taken by another process). */
static void run_kill(struct helper_run *run)
{
	if (run->reaped || run->pid <= 0)
		return;
	if (run->pidfd >= 0)
		(void)pidfd_send_signal(run->pidfd, SIGKILL, NULL, 0);
	else
		(void)kill(run->pid, SIGKILL);
}

/* Kills the helper for @reason: -ETIME (its deadline), -EFBIG (too much output), or an error of
 * ours (-ENOMEM). It is reaped whenever it dies. */
static void run_give_up(struct helper_run *run, int reason)
{
	if (reason == -ETIME)
		run->result.timed_out = true;
	else if (reason == -EFBIG)
		run->result.output_overflow = true;
	else
		run->result.error = reason;
	run_stop_clock(run);
	run_kill(run);
}

/* Moves the outcome to @ret. An exec error is in the error pipe before the child exits, so it is
 * there whenever the run ended with its exit; at a deadline it may not be known yet (an execve()
 * that did not return by then is a timeout). */
static void run_take_result(struct helper_run *run, struct helper_result *ret)
{
	int e = 0;

	if (read(run->err_fd, &e, sizeof(e)) == (ssize_t)sizeof(e) && e > 0)
		run->result.error = -e;
	run_stop_clock(run);
	*ret = run->result;
	run->result.output = NULL;
	run->result.output_len = 0;
	run->output_cap = 0;
	ret->timeout_usec = run->limits.timeout_usec;
	ret->output_max = run->limits.output_max;
	if (ret->error < 0) {
		helper_result_done(ret);
		ret->status = 0;
		ret->timed_out = ret->output_overflow = false;
		ret->cpu_usec = 0;
	} else if (ret->timed_out || ret->output_overflow) {
		ret->status = 0; /* killed by us: whether it was reaped yet says nothing */
	}
}

/* Closes what the run holds; kills the helper unless it was reaped (it is then not waited for). */
static void run_release(struct helper_run *run)
{
	run_kill(run);
	run->out_source = sd_event_source_disable_unref(run->out_source);
	run->exit_source = sd_event_source_disable_unref(run->exit_source);
	run->timer = sd_event_source_disable_unref(run->timer);
	run->reap_timer = sd_event_source_disable_unref(run->reap_timer);
	run->pidfd = safe_close(run->pidfd);
	run->out_fd = safe_close(run->out_fd);
	run->err_fd = safe_close(run->err_fd);
	helper_result_done(&run->result);
}

static struct helper_run *run_free(struct helper_run *run)
{
	if (run) {
		run_release(run);
		free(run);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct helper_run *, run_free);

/* On the loop. */

static int run_watch_exit(struct helper_run *run);

static void run_report(struct helper_run *run)
{
	struct helper_result res;

	run->reported = true;
	run_take_result(run, &res);
	/* what comes after is not read: a killed helper dies of SIGKILL, not of a full pipe */
	run->out_source = sd_event_source_disable_unref(run->out_source);
	run->timer = sd_event_source_disable_unref(run->timer);
	run->out_fd = safe_close(run->out_fd);
	if (run->done)
		run->done(run, &res, run->userdata);
	else
		helper_result_done(&res);
	/* a helper killed but not dead yet is reaped by on_pidfd() (or the reap timer), which then
	 * frees the run; a process stuck in the kernel keeps it until it dies */
	if (run->reaped)
		run_free(run);
	else if (run_watch_exit(run) < 0)
		run_free(run); /* not waited for: a zombie until xpud exits */
}

static void run_exited(struct helper_run *run);

/* Without a pidfd: looks for the exit every REAP_POLL_USEC. */
static int on_reap_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct helper_run *run = userdata;

	if (run_reap(run)) {
		(void)sd_event_source_set_enabled(src, SD_EVENT_OFF);
		run_exited(run);
		return 0;
	}
	(void)sd_event_source_set_time(src, usec + REAP_POLL_USEC);
	(void)sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
	return 0;
}

/* Without a pidfd: starts looking for the exit (once the output ended, or the helper was
 * killed). 0 or -errno of sd-event. */
static int run_watch_exit(struct helper_run *run)
{
	if (run->pidfd >= 0 || run->reaped || run->reap_timer)
		return 0;
	return sd_event_add_time(run->event, &run->reap_timer, CLOCK_MONOTONIC,
				 now_usec(CLOCK_MONOTONIC), 0, on_reap_timer, run);
}

static void run_pipe_ready(struct helper_run *run)
{
	int r = run_read_output(run);

	if (r == 0)
		return;
	if (r > 0) {
		run->eof = true;
		(void)sd_event_source_set_enabled(run->out_source, SD_EVENT_OFF);
		if (run->reaped) {
			run_report(run);
			return;
		}
		if (run_watch_exit(run) < 0) {
			run_give_up(run, -ENOMEM);
			run_report(run);
		}
		return;
	}
	run_give_up(run, r);
	run_report(run);
}

static int on_output(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	run_pipe_ready(userdata);
	return 0;
}

/* The helper was reaped. */
static void run_exited(struct helper_run *run)
{
	if (run->reported)
		run_free(run);
	else if (run->eof)
		run_report(run);
	else
		run_pipe_ready(run); /* what it printed before it exited may still be in the pipe */
}

static int on_pidfd(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct helper_run *run = userdata;

	if (!run_reap(run))
		return 0;
	(void)sd_event_source_set_enabled(src, SD_EVENT_OFF);
	run_exited(run);
	return 0;
}

static int on_deadline(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct helper_run *run = userdata;

	run_give_up(run, -ETIME);
	run_report(run);
	return 0;
}

int helper_run_start(sd_event *e, char *const *argv, char *const *envp,
		     const struct helper_limits *limits, helper_done_t done, void *userdata,
		     struct helper_run **ret)
{
	_cleanup_(run_freep) struct helper_run *run = malloc(sizeof(*run));
	int r;

	if (!run)
		return -ENOMEM;
	run_init(run, limits);
	run->event = e;
	run->done = done;
	run->userdata = userdata;
	r = run_spawn(run, argv, envp);
	if (r < 0)
		return r;
	/* an exec error is reported from these too: the child writes it, then exits */
	r = sd_event_add_io(e, &run->out_source, run->out_fd, EPOLLIN, on_output, run);
	if (r < 0)
		return r;
	if (run->pidfd >= 0) {
		r = sd_event_add_io(e, &run->exit_source, run->pidfd, EPOLLIN, on_pidfd, run);
		if (r < 0)
			return r;
	}
	if (limits->timeout_usec) {
		r = sd_event_add_time(e, &run->timer, CLOCK_MONOTONIC,
				      run->start_usec + limits->timeout_usec,
				      DEADLINE_ACCURACY_USEC, on_deadline, run);
		if (r < 0)
			return r;
	}
	if (ret)
		*ret = run;
	TAKE_PTR(run);
	return 0;
}

void helper_run_abandon(struct helper_run *run)
{
	run_free(run);
}

/* Blocking. */

static int sync_poll_timeout(const struct helper_run *run)
{
	uint64_t now, deadline;

	if (!run->limits.timeout_usec)
		return -1;
	now = now_usec(CLOCK_MONOTONIC);
	deadline = run->start_usec + run->limits.timeout_usec;
	if (now >= deadline)
		return 0;
	return (int)MIN((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC, (uint64_t)INT_MAX);
}

int helper_run_sync(char *const *argv, char *const *envp, const struct helper_limits *limits,
		    struct helper_result *ret)
{
	_cleanup_(run_release) struct helper_run run;
	int r = 0;

	run_init(&run, limits);
	r = run_spawn(&run, argv, envp);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		run.result.error = r;
		run_take_result(&run, ret);
		return 0;
	}

	while (!(run.eof && run.reaped)) {
		struct pollfd fds[] = {
			{ .fd = run.eof ? -1 : run.out_fd, .events = POLLIN },
			{ .fd = run.reaped ? -1 : run.pidfd, .events = POLLIN },
		};
		int timeout = sync_poll_timeout(&run);

		if (timeout == 0) {
			r = -ETIME;
			break;
		}
		if (run.eof && run.pidfd < 0) {
			/* no pidfd: the exit is looked for every REAP_POLL_USEC */
			if (!run_reap(&run))
				(void)poll(NULL, 0, (int)MIN((uint64_t)timeout,
							   REAP_POLL_USEC / USEC_PER_MSEC));
			continue;
		}
		if (poll(fds, ELEMENTSOF(fds), timeout) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (fds[0].revents) {
			r = run_read_output(&run);
			if (r < 0)
				break;
			run.eof = r > 0;
		}
		if (fds[1].revents)
			(void)run_reap(&run);
	}
	if (r < 0) {
		struct pollfd fd = { .fd = run.pidfd, .events = POLLIN };

		run_give_up(&run, r);
		/* Killed: reaped if it dies within a second. One stuck in the kernel (D state) is
		 * left rather than blocking this thread on it: it becomes a zombie nobody reaps
		 * until xpud exits. */
		if (!run.reaped && run.pidfd >= 0 && poll(&fd, 1, SYNC_REAP_WAIT_MSEC) > 0)
			(void)run_reap(&run);
		for (int i = 0; !run.reaped && run.pidfd < 0 && i < SYNC_REAP_WAIT_MSEC / 10; i++)
			if (!run_reap(&run))
				(void)poll(NULL, 0, 10);
		if (r != -ETIME && r != -EFBIG)
			return r; /* -ENOMEM, or poll() failed */
	}
	run_take_result(&run, ret);
	return 0;
}

int helper_program_path(char **ret)
{
	_cleanup_free_ char *self = NULL;
	const char *env = secure_getenv("XPU_HELPER");
	char *slash;

	if (env)
		return (*ret = strdup(env)) ? 0 : -ENOMEM;
	self = realpath("/proc/self/exe", NULL);
	if (self && (slash = strrchr(self, '/'))) {
		*slash = '\0';
		if (asprintf(ret, "%s/xpud-helper", self) < 0)
			return -ENOMEM;
		if (access(*ret, X_OK) == 0)
			return 0;
		*ret = mfree(*ret);
	}
	return (*ret = strdup(XPU_LIBEXECDIR "/xpud-helper")) ? 0 : -ENOMEM;
}
