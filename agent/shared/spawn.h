/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A helper program run from the event loop with a deadline: spawned (posix_spawn), watched
 * through its pidfd and reaped only once the pidfd says it exited, so the loop never waits for
 * it, also not after the deadline's SIGKILL (a process stuck in the kernel, a GPU reset tool in
 * D state, dies only when the kernel lets it). Does not log.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

struct spawn;

/*
 * Called once, from the loop: when the helper exited (@status as waitpid() gives it), or when its
 * deadline passed (@timed_out; it was sent SIGKILL and is reaped whenever it dies). @s must not
 * be used after the callback returns.
 */
typedef void (*spawn_done_t)(struct spawn *s, int status, bool timed_out, void *userdata);

/*
 * Runs @argv[0] (a path) with @argv and @envp, killed with SIGKILL @timeout_usec from now
 * (0: never). The run owns itself until @done was called: *ret (may be NULL) is a borrowed
 * handle for spawn_pid() and spawn_abandon(), valid until then. 0, or -errno of posix_spawn,
 * pidfd_open or sd-event (the helper, if it started, is killed).
 */
int spawn_start(sd_event *e, char *const *argv, char *const *envp, uint64_t timeout_usec,
		spawn_done_t done, void *userdata, struct spawn **ret);

pid_t spawn_pid(const struct spawn *s);

/*
 * Kills the helper and frees @s at once (before @done was called): @done is not called and
 * nobody waits for the exit (the zombie is reaped by init once xpud exits). For shutting down.
 */
void spawn_abandon(struct spawn *s);
