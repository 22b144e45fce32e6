/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Running a helper program that loads what xpud must not (a vendor runtime: NVML, the CUDA
 * driver API, XRT) and reading what it prints: the one runner every backend uses.
 *
 * The child is forked and, before it executes @argv[0], gets its own limits: an address-space
 * limit (RLIMIT_AS), a CPU-time limit (RLIMIT_CPU), no new privileges (PR_SET_NO_NEW_PRIVS),
 * SIGKILL when xpud dies (PR_SET_PDEATHSIG), default signal dispositions and an empty signal
 * mask, standard input from /dev/null, standard output a pipe to xpud, standard error xpud's
 * (the journal), no other file descriptor. Its output is read as it comes, up to
 * @output_max bytes: a helper that prints more is killed (output_overflow). Past its deadline it
 * is killed with SIGKILL (timed_out); xpud never waits for a process stuck in the kernel, it is
 * reaped whenever it dies.
 *
 * Two ways to drive one run: helper_run_start() on the event loop (the pipe, the pidfd and the
 * deadline are sources of it), and helper_run_sync(), which blocks the calling thread (poll on
 * the pipe and the pidfd) until the run ends, for threads off the loop and for start-up. Neither
 * logs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

struct helper_limits {
	uint64_t timeout_usec;	/* wall clock, from the start; 0: none */
	uint64_t address_space; /* bytes, RLIMIT_AS; 0: none (see helper_address_limit_usable()) */
	unsigned cpu_seconds;	/* RLIMIT_CPU (soft; the hard limit one second more); 0: none */
	size_t output_max;	/* bytes of standard output kept; more kills the helper */
};

struct helper_result {
	int error;	      /* -errno when the helper could not be started (fork, exec:
				 -ENOENT, -EACCES, ...), else 0; the fields below are then unset */
	int status;	      /* as waitpid() gives it; 0 when timed_out or output_overflow */
	bool timed_out;	      /* killed at its deadline */
	bool output_overflow; /* killed for printing more than output_max */
	char *output;	      /* what it printed, NUL-terminated (owned; may be NULL when empty) */
	size_t output_len;
	uint64_t wall_usec;   /* from the start until it exited (or was given up) */
	uint64_t cpu_usec;    /* user + system CPU time of the helper (0 when not reaped) */
	uint64_t timeout_usec; /* the run's limits, copied for helper_result_describe() */
	size_t output_max;
};

void helper_result_done(struct helper_result *r);

/*
 * Whether an address-space limit can be given to a helper built like xpud: false in a build with
 * AddressSanitizer (or another sanitizer that reserves terabytes of address space at start-up),
 * where any instrumented helper would fail under RLIMIT_AS. The runner applies what it is given;
 * callers pass address_space 0 when this is false.
 */
bool helper_address_limit_usable(void);

/*
 * Why a run failed, for a device's health or a backend's status, after @what ("nvml helper"):
 * "nvml helper: crashed (SIGSEGV)", "nvml helper: timed out after 10s", "nvml helper: exited
 * with status 3", "nvml helper: printed more than 4 MiB", "nvml helper: cannot be started: No
 * such file or directory". NULL when the run succeeded (exited with status 0, in time, within
 * its output limit). Malloc'd; -ENOMEM is returned as NULL with *ret_oom set, when not NULL.
 */
char *helper_result_describe(const struct helper_result *r, const char *what, bool *ret_oom);

/*
 * The helper program, xpud-helper: $XPU_HELPER (tests), else next to xpud's own executable when
 * one is there, else where the package installs it (XPU_LIBEXECDIR). 0 with a malloc'd path in
 * *ret, or -ENOMEM. Does not log.
 */
int helper_program_path(char **ret);

struct helper_run;

/* Called once, from the loop, when the run ended (any way: see struct helper_result). @r and
 * what it points to are the callee's to take (helper_result_done() them). @run must not be used
 * after the callback returns. */
typedef void (*helper_done_t)(struct helper_run *run, struct helper_result *r, void *userdata);

/*
 * Starts @argv[0] (a path) with @argv and @envp under @limits on loop @e. 0, with *ret (may be
 * NULL) a borrowed handle valid until @done was called; or -errno when nothing could be set up.
 * A helper that cannot be executed (missing, not executable) is not an error here: @done is
 * called from the loop with result.error set.
 */
int helper_run_start(sd_event *e, char *const *argv, char *const *envp,
		     const struct helper_limits *limits, helper_done_t done, void *userdata,
		     struct helper_run **ret);

/* Kills the helper and frees the run at once; @done is not called (for shutting down). */
void helper_run_abandon(struct helper_run *run);

/* The same run, blocking the calling thread until it ended. 0 with *ret filled in (also when the
 * helper failed: see ret->error and helper_result_describe()), or -errno (-ENOMEM) with *ret
 * untouched. */
int helper_run_sync(char *const *argv, char *const *envp, const struct helper_limits *limits,
		    struct helper_result *ret);
