// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The device plugin's PreStartContainer (see deviceplugin-internal.h): the configured hook
 * runs, as a process of its own, before kubelet starts the container.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "kube/deviceplugin-internal.h"
#include "shared/log.h"
#include "shared/spawn.h"
#include "shared/strv.h"

/* One PreStartContainer call waiting for its hook. */
struct hook_run {
	struct deviceplugin *plugin;
	struct hook_run *next;
	struct grpc_call *call; /* NULL once the caller went away */
	struct spawn *spawn;	/* the hook process (spawn.c): reaped from its pidfd */
	char *what;		/* "nvidia.com/gpu 0000:18:00.0,..." for the log */
};

#define PRE_START_HOOK_TIMEOUT_USEC (30 * 1000000ULL)

static void hook_run_free(struct hook_run *h)
{
	for (struct hook_run **i = h->plugin ? &h->plugin->hooks : NULL; i && *i; i = &(*i)->next)
		if (*i == h) {
			*i = h->next;
			break;
		}
	free(h->what);
	free(h);
}

static void hook_done(struct hook_run *h, int status, const char *why)
{
	V1beta1__PreStartContainerResponse resp = V1BETA1__PRE_START_CONTAINER_RESPONSE__INIT;

	if (h->call) {
		grpc_call_set_on_close(h->call, NULL, NULL);
		if (status == GRPC_STATUS_OK)
			dp_reply(h->call, &resp.base);
		else
			(void)grpc_call_finish(h->call, status, why);
	}
	hook_run_free(h);
}

/* The hook exited, or its deadline passed (it was killed; reaped whenever it dies). */
static void on_hook_end(struct spawn *s, int st, bool timed_out, void *userdata)
{
	struct hook_run *h = userdata;
	char why[512];

	if (timed_out) {
		snprintf(why, sizeof(why), "the pre-start hook for %s did not finish within %llu s",
			 h->what, PRE_START_HOOK_TIMEOUT_USEC / 1000000ULL);
		log_warning("%s; it was killed.", why);
		hook_done(h, GRPC_STATUS_DEADLINE_EXCEEDED, why);
		return;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		log_info("Pre-start hook for %s succeeded.", h->what);
		hook_done(h, GRPC_STATUS_OK, NULL);
		return;
	}
	snprintf(why, sizeof(why), "the pre-start hook for %s %s %d", h->what,
		 WIFEXITED(st) ? "exited with status" : "was killed by signal",
		 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	log_warning("%s; the container is not started.", why);
	hook_done(h, GRPC_STATUS_FAILED_PRECONDITION, why);
}

/* kubelet gave up on the call: the hook still runs to its end, nobody is told. */
static void on_hook_call_closed(struct grpc_call *c, void *userdata)
{
	struct hook_run *h = userdata;

	h->call = NULL;
}

static int run_hook(struct dp_resource *r, struct grpc_call *c, char **ids, size_t n)
{
	struct deviceplugin *p = r->plugin;
	_cleanup_strv_free_ char **argv = NULL, **envp = NULL;
	_cleanup_free_ char *list = NULL;
	struct hook_run *h;
	extern char **environ;
	int k;

	if (strv_extend(&argv, p->pre_start_hook) < 0 || strv_extend(&argv, r->name) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (strv_extend(&argv, ids[i]) < 0)
			return -ENOMEM;
	list = strv_join(argv + 2, ",");
	if (!list || strv_copy(environ, &envp) < 0 ||
	    strv_env_set(&envp, "XPU_RESOURCE", r->name) < 0 ||
	    strv_env_set(&envp, "XPU_DEVICE_IDS", list) < 0)
		return -ENOMEM;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	if (asprintf(&h->what, "%s %s", r->name, list) < 0) {
		free(h);
		return -ENOMEM;
	}
	k = spawn_start(p->event, argv, envp, PRE_START_HOOK_TIMEOUT_USEC, on_hook_end, h,
			&h->spawn);
	if (k < 0) {
		hook_run_free(h);
		return k;
	}
	h->call = c;
	grpc_call_set_on_close(c, on_hook_call_closed, h);
	h->plugin = p;
	h->next = p->hooks;
	p->hooks = h;
	log_info("Running the pre-start hook for %s.", h->what);
	return 0;
}

void dp_pre_start(struct grpc_call *c, const uint8_t *msg, size_t len, void *userdata)
{
	struct dp_resource *r = userdata;
	V1beta1__PreStartContainerRequest *req =
		v1beta1__pre_start_container_request__unpack(NULL, len, msg);
	V1beta1__PreStartContainerResponse resp = V1BETA1__PRE_START_CONTAINER_RESPONSE__INIT;
	int k;

	if (!req)
		return (void)grpc_call_finish(c, GRPC_STATUS_INVALID_ARGUMENT,
					      "malformed PreStartContainerRequest");
	for (size_t i = 0; i < req->n_devices_ids; i++)
		if (!dp_find_slice(r->plugin, r->name, req->devices_ids[i])) {
			char why[256];

			snprintf(why, sizeof(why), "unknown %s device id '%s'", r->name,
				 req->devices_ids[i]);
			(void)grpc_call_finish(c, GRPC_STATUS_NOT_FOUND, why);
			v1beta1__pre_start_container_request__free_unpacked(req, NULL);
			return;
		}
	if (!r->plugin->pre_start_hook) {
		/* no reset or scrub configured: the devices are ready as they are */
		v1beta1__pre_start_container_request__free_unpacked(req, NULL);
		dp_reply(c, &resp.base);
		return;
	}
	k = run_hook(r, c, req->devices_ids, req->n_devices_ids);
	v1beta1__pre_start_container_request__free_unpacked(req, NULL);
	if (k < 0) {
		char why[256];

		snprintf(why, sizeof(why), "cannot run the pre-start hook: %s", strerror(-k));
		log_warning("%s", why);
		(void)grpc_call_finish(c, GRPC_STATUS_INTERNAL, why);
	}
}

void dp_hooks_abandon(struct deviceplugin *p)
{
	while (p->hooks) {
		/* stopping: a hook still running is killed, not waited for */
		spawn_abandon(p->hooks->spawn);
		hook_run_free(p->hooks);
	}
}
