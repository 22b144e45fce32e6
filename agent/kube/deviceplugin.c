// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The kubelet device plugin; see deviceplugin.h and docs/kubernetes.md, and
 * deviceplugin-internal.h for how its files divide it. This one holds the plugin together: its
 * resources, its watches, and the post source that brings them up to date.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "kube/deviceplugin-internal.h"
#include "shared/log.h"

static int on_post(sd_event_source *s, void *userdata)
{
	struct deviceplugin *p = userdata;
	uint64_t g = inventory_generation(p->inventory);

	if (!p->dirty && g == p->generation)
		return 0;
	p->dirty = false;
	p->generation = g;
	dp_sync_resources(p);
	for (size_t i = 0; i < p->n_resources; i++)
		dp_update_streams(p->resources[i]);
	return 0;
}

int deviceplugin_new(sd_event *e, const struct deviceplugin_options *o, struct inventory *inv,
		     struct allocations *allocs, struct deviceplugin **ret)
{
	_cleanup_(deviceplugin_freep) struct deviceplugin *p = NULL;
	struct stat st;
	int k;

	if (stat(o->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_info("No kubelet device plugin directory %s: the device plugin is off, every "
			 "resource is local.",
			 o->dir);
		return -ENOENT;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return log_oom();
	p->event = sd_event_ref(e);
	p->inventory = inv;
	p->allocations = allocs;
	p->pre_start_required = o->pre_start_required || o->pre_start_hook;
	if (o->pre_start_hook && !(p->pre_start_hook = strdup(o->pre_start_hook)))
		return log_oom();
	p->dir = strdup(o->dir);
	if (!p->dir || asprintf(&p->kubelet_socket, "%s/%s", o->dir,
				DEVICEPLUGIN_KUBELET_SOCKET) < 0)
		return log_oom();
	/* the directory first: a kubelet starting meanwhile is not missed */
	k = sd_event_add_inotify(e, &p->inotify, p->dir,
				 IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM |
					 IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF |
					 IN_ONLYDIR,
				 dp_on_dir_event, p);
	if (k < 0)
		return log_error_errno(k, "Failed to watch %s: %m", p->dir);
	k = sd_event_add_post(e, &p->post, on_post, p);
	if (k < 0)
		return log_error_errno(k, "Failed to set up the device plugin: %m");
	(void)sd_event_source_set_description(p->inotify, "kubelet-dir");
	(void)sd_event_source_set_description(p->post, "deviceplugin-update");
	k = sd_event_add_defer(e, &p->reconcile, dp_on_reconcile, p);
	if (k < 0)
		return log_error_errno(k, "Failed to set up the checkpoint reconciliation: %m");
	(void)sd_event_source_set_description(p->reconcile, "kubelet-checkpoint");
	p->generation = inventory_generation(inv);
	dp_sync_resources(p);
	/* at start: what kubelet still holds must not be handed out again */
	dp_reconcile(p);
	(void)sd_event_source_set_enabled(p->reconcile, SD_EVENT_OFF);
	*ret = TAKE_PTR(p);
	return 0;
}

struct deviceplugin *deviceplugin_free(struct deviceplugin *p)
{
	if (!p)
		return NULL;
	for (size_t i = 0; i < p->n_resources; i++)
		dp_resource_free(p->resources[i]);
	free(p->resources);
	dp_hooks_abandon(p);
	free(p->pre_start_hook);
	sd_event_source_disable_unref(p->inotify);
	sd_event_source_disable_unref(p->post);
	sd_event_source_disable_unref(p->reconcile);
	sd_event_unref(p->event);
	free(p->dir);
	free(p->kubelet_socket);
	free(p);
	return NULL;
}

void deviceplugin_changed(struct deviceplugin *p)
{
	if (p)
		p->dirty = true;
}

bool deviceplugin_serves(const struct deviceplugin *p, const char *resource)
{
	return p && resource && dp_resource_find(p, resource);
}
