// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * xpuctl run: a command confined to a grant of its own. xpuctl asks xpud for the grant with
 * itself as the owner process and "enforce", so that xpud puts it into a transient scope (or a
 * cgroup) with exactly the grant's devices, then takes on the grant's environment and runs the
 * command as its child, in the scope: the command has xpuctl's stdin, stdout, terminal and
 * process group, xpuctl exits with its status, and releases the grant as soon as it ended (and
 * xpud, watching its owner, does so too if xpuctl is killed).
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/parse.h"
#include "xpu/client.h"
#include "xpuctl/xpuctl.h"

/* The command could not be run (as the shell and env(1) say it). */
#define RUN_EXIT_CANNOT_EXEC 126
#define RUN_EXIT_NOT_FOUND 127

int enforce_body(const struct ctl *ctl, json_t **ret)
{
	_cleanup_json_ json_t *e = json_object();
	uint64_t bytes;

	if (!e)
		return oom();
	if (ctl->memory_max) {
		if (parse_size(ctl->memory_max, &bytes) < 0 || bytes < 4096 || bytes > INT64_MAX)
			return usage_error("--memory-max expects a size such as 4GiB, got '%s'",
					   ctl->memory_max);
		if (json_object_set_new(e, "memory_max", json_integer((json_int_t)bytes)) < 0)
			return oom();
	}
	if (ctl->cpu_quota) {
		char *end;
		unsigned long p;

		errno = 0;
		p = strtoul(ctl->cpu_quota, &end, 10);
		if (end == ctl->cpu_quota || errno || (*end && !streq(end, "%")) || p < 1 ||
		    p > 100000)
			return usage_error(
			    "--cpu-quota expects a percentage of one CPU, 1 to 100000 "
			    "(250%% is two and a half CPUs), got '%s'",
			    ctl->cpu_quota);
		if (json_object_set_new(e, "cpu_quota", json_integer((json_int_t)p)) < 0)
			return oom();
	}
	if (ctl->numa_local && json_object_set_new(e, "cpuset", json_true()) < 0)
		return oom();
	*ret = TAKE_PTR(e);
	return CTL_EXIT_OK;
}

static int run_body(const struct ctl *ctl, json_t **ret)
{
	_cleanup_json_ json_t *body = NULL, *enforce = NULL;
	_cleanup_free_ char *resource = NULL;
	unsigned count;
	int r;

	if (ctl->owner_kind)
		return usage_error(
		    "--owner-* does not apply to 'run': the owner is the command itself");
	if (ctl->memory || ctl->compute || ctl->count || ctl->kind)
		return usage_error(
		    "that option does not apply to 'run'; usage: xpuctl " RUN_USAGE);
	if (!ctl->resource)
		return usage_error("run needs --resource RESOURCE[=COUNT], e.g. nvidia.com/gpu=1; "
				   "usage: xpuctl " RUN_USAGE);
	r = parse_resource_count(ctl->resource, &resource, &count);
	if (r == -ENOMEM)
		return oom();
	if (r < 0 || isempty(resource))
		return usage_error(
		    "--resource expects RESOURCE=COUNT, e.g. nvidia.com/gpu=2, got '%s'",
		    ctl->resource);
	r = enforce_body(ctl, &enforce);
	if (r != CTL_EXIT_OK)
		return r;
	body = json_pack("{s:s, s:I, s:b, s:b, s:{s:I}, s:O}", "resource", resource, "count",
			 (json_int_t)count, "numa_local", ctl->numa_local, "connected",
			 ctl->connected, "owner", "pid", (json_int_t)getpid(), "enforce", enforce);
	if (!body ||
	    (ctl->device && json_object_set_new(body, "device", json_string(ctl->device)) < 0))
		return oom();
	*ret = TAKE_PTR(body);
	return CTL_EXIT_OK;
}

/* The grant's environment (and XPU_ALLOCATION, its id) into this process's, for the command. */
static int take_env(const json_t *doc)
{
	const json_t *env = json_object_get(doc, "env"), *v;
	const char *key;

	if (setenv("XPU_ALLOCATION", json_string_value(json_object_get(doc, "id")), 1) < 0)
		return -errno;
	json_object_foreach ((json_t *)env, key, v) {
		if (!json_is_string(v))
			return -EINVAL;
		if (setenv(key, json_string_value(v), 1) < 0)
			return -errno;
	}
	return 0;
}

/* When the command cannot be started: the grant goes back at once. */
static void release(struct ctl *ctl, const char *id)
{
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_free_ char *seg = path_escape(id), *path = NULL;
	int status;

	if (seg && asprintf(&path, "/v1/allocations/%s", seg) >= 0)
		(void)ctl_request(ctl, "DELETE", path, &status, &doc);
}

static volatile sig_atomic_t child_pid;

/* SIGTERM and SIGHUP for xpuctl are for the command: passed on. */
static void forward(int sig)
{
	if (child_pid > 0)
		kill((pid_t)child_pid, sig);
}

/* Runs @args as a child in this process's scope and waits for it: its wait status. */
static int run_child(char **args, int *ret_status)
{
	struct sigaction fwd = {.sa_handler = forward}, ign = {.sa_handler = SIG_IGN};
	pid_t pid;
	int r;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execvp(args[0], args);
		r = errno;
		fprintf(stderr, "xpuctl: cannot run %s: %s\n", args[0], strerror(r));
		_exit(r == ENOENT ? RUN_EXIT_NOT_FOUND : RUN_EXIT_CANNOT_EXEC);
	}
	child_pid = pid;
	/* the terminal's ^C and ^\ reach the command itself, in the same process group */
	(void)sigaction(SIGINT, &ign, NULL);
	(void)sigaction(SIGQUIT, &ign, NULL);
	(void)sigaction(SIGTERM, &fwd, NULL);
	(void)sigaction(SIGHUP, &fwd, NULL);
	while (waitpid(pid, ret_status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

int verb_run(struct ctl *ctl, char **args)
{
	_cleanup_json_ json_t *body = NULL, *doc = NULL;
	_cleanup_free_ char *id = NULL;
	int r, status = 0;

	r = run_body(ctl, &body);
	if (r != CTL_EXIT_OK)
		return r;
	r = ctl_call_body(ctl, "POST", "/v1/allocations", body, &doc);
	if (r != CTL_EXIT_OK)
		return r;
	if (!json_string_value(json_object_get(doc, "id")))
		return malformed(ctl, "the grant has no id");
	id = strdup(json_string_value(json_object_get(doc, "id")));
	if (!id)
		return oom();
	r = take_env(doc);
	/* the command needs no connection of ours; the release makes a new one */
	ctl->client = xpu_client_free(ctl->client);
	if (r >= 0)
		r = run_child(args, &status);
	/* at once, not when xpud sees this process exit: the next run finds the slices free */
	release(ctl, id);
	if (r == -ENOMEM)
		return oom();
	if (r == -EINVAL)
		return malformed(ctl, "the grant's environment");
	if (r < 0) {
		fprintf(stderr, "xpuctl: cannot run %s: %s\n", args[0], strerror(-r));
		return RUN_EXIT_CANNOT_EXEC;
	}
	if (WIFSIGNALED(status)) {
		/* killed as the command was, for whoever waits for xpuctl */
		(void)signal(WTERMSIG(status), SIG_DFL);
		(void)raise(WTERMSIG(status));
		return 128 + WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}
