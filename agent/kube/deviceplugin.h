/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The kubelet device plugin (API v1beta1): one gRPC socket per resource the slice plan
 * advertises, in the kubelet's device plugin directory, registered with kubelet.sock there and
 * again whenever kubelet restarts (inotify on the directory). ListAndWatch streams every slice
 * of the resource with its health and NUMA node, again after any change; Allocate records the
 * grant with the allocation service (owner kind "pod") and answers device nodes, environment
 * and CDI names; GetPreferredAllocation asks the allocator. Resources served here are refused
 * to the local API (allocations_set_reserved()). Lives on the daemon's loop; logs what it does.
 */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "core/inventory.h"
#include "services/allocations.h"
#include "shared/macro.h"

#define DEVICEPLUGIN_DEFAULT_DIR "/var/lib/kubelet/device-plugins"
#define DEVICEPLUGIN_KUBELET_SOCKET "kubelet.sock"

struct deviceplugin;

struct deviceplugin_options {
	const char *dir;	 /* the kubelet's device plugin directory */
	bool pre_start_required; /* ask kubelet to call PreStartContainer */
	/*
	 * Run by PreStartContainer (which kubelet then calls: pre_start_required is implied) as
	 * "HOOK RESOURCE ID..." with XPU_RESOURCE and XPU_DEVICE_IDS (comma-separated) in its
	 * environment, to reset or scrub the devices before a container gets them: exit 0 lets the
	 * container start, anything else (or 30 s passing) fails the call. NULL: none.
	 */
	const char *pre_start_hook;
};

/*
 * Serves every resource of @inv's plan (borrowed, like @allocs, both must outlive the plugin)
 * and starts registering. -ENOENT (logged at info) when the directory does not exist: the
 * plugin is off and every resource stays local. Other errors -errno, logged.
 */
int deviceplugin_new(sd_event *e, const struct deviceplugin_options *o, struct inventory *inv,
		     struct allocations *allocs, struct deviceplugin **ret);
/* Ends the streams, removes the sockets. Accepts NULL, returns NULL. */
struct deviceplugin *deviceplugin_free(struct deviceplugin *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct deviceplugin *, deviceplugin_free);

/* Something in the inventory changed (an inventory event): ListAndWatch streams are brought up
 * to date before the loop sleeps again. */
void deviceplugin_changed(struct deviceplugin *p);

/* Whether @resource is served to kubelet. */
bool deviceplugin_serves(const struct deviceplugin *p, const char *resource);
