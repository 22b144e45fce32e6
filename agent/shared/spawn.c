// SPDX-License-Identifier: GPL-2.0-or-later
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/pidfd.h>
#include <sys/wait.h>

#include "macro.h"
#include "spawn.h"

struct spawn {
	pid_t pid;
	int pidfd;
	sd_event_source *exit_source, *timer;
	spawn_done_t done; /* NULL once abandoned */
	void *userdata;
};

static void spawn_free(struct spawn *s)
{
	sd_event_source_disable_unref(s->exit_source);
	sd_event_source_disable_unref(s->timer);
	safe_close(s->pidfd);
	free(s);
}

static int on_helper_exit(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct spawn *s = userdata;
	int status = 0;

	/* the pidfd is readable once the process exited: this does not wait */
	if (waitpid(s->pid, &status, WNOHANG) != s->pid)
		return 0;
	if (s->done)
		s->done(s, status, false, s->userdata);
	spawn_free(s);
	return 0;
}

static int on_deadline(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct spawn *s = userdata;

	spawn_done_t done = s->done;

	(void)pidfd_send_signal(s->pidfd, SIGKILL, NULL, 0);
	/* told now; the exit, whenever the kernel lets it happen, is reaped by on_helper_exit() */
	s->done = NULL;
	if (done)
		done(s, 0, true, s->userdata);
	return 0;
}

int spawn_start(sd_event *e, char *const *argv, char *const *envp, uint64_t timeout_usec,
		spawn_done_t done, void *userdata, struct spawn **ret)
{
	struct spawn *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->pidfd = -EBADF;
	s->done = done;
	s->userdata = userdata;
	r = posix_spawn(&s->pid, argv[0], NULL, NULL, argv, envp);
	if (r != 0) {
		free(s);
		return -r;
	}
	s->pidfd = pidfd_open(s->pid, 0);
	r = s->pidfd < 0 ? -errno
			 : sd_event_add_io(e, &s->exit_source, s->pidfd, EPOLLIN, on_helper_exit, s);
	if (r >= 0 && timeout_usec)
		r = sd_event_add_time_relative(e, &s->timer, CLOCK_MONOTONIC, timeout_usec, 0,
					       on_deadline, s);
	if (r < 0) {
		/* not waited for: reaped by init once xpud exits */
		(void)kill(s->pid, SIGKILL);
		spawn_free(s);
		return r;
	}
	if (ret)
		*ret = s;
	return 0;
}

pid_t spawn_pid(const struct spawn *s)
{
	return s->pid;
}

void spawn_abandon(struct spawn *s)
{
	if (!s)
		return;
	(void)pidfd_send_signal(s->pidfd, SIGKILL, NULL, 0);
	spawn_free(s);
}
