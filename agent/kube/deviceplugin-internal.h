/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Between the files of the kubelet device plugin (deviceplugin.h is its API); not for other
 * files.
 *
 * deviceplugin.c            the plugin: its resources kept up to date with the inventory
 * deviceplugin-register.c   each resource's socket, its registration with kubelet, and
 *                           kubelet's restarts seen in its directory
 * deviceplugin-service.c    the DevicePlugin service: its methods, ListAndWatch, the options
 * deviceplugin-allocate.c   Allocate and GetPreferredAllocation
 * deviceplugin-prestart.c   PreStartContainer and its hook
 * deviceplugin-reconcile.c  the ledger brought in line with kubelet's checkpoint
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/inotify.h>
#include <systemd/sd-event.h>

#include "kube/deviceplugin-v1beta1.pb-c.h"
#include "kube/deviceplugin.h"
#include "kube/grpc.h"

/* What a kubelet-managed grant is owned by until the checkpoint names the pod. */
#define DP_OWNER_KUBELET "kubelet"

/* kubelet's record of which pod holds which devices, in the plugin directory */
#define DP_CHECKPOINT_FILE "kubelet_internal_checkpoint"

struct deviceplugin;

struct dp_resource {
	struct deviceplugin *plugin;
	char *name;	   /* "nvidia.com/gpu" */
	char *endpoint;	   /* the socket's file name, what Register names */
	char *socket_path; /* dir/endpoint */
	struct grpc_server *server;
	struct grpc_call **streams; /* ListAndWatch calls */
	size_t n_streams;
	uint8_t *last; /* the last ListAndWatch message sent */
	size_t last_len;
	bool have_last;
	struct grpc_client_call *registering;
	sd_event_source *retry;
	uint64_t backoff_usec;
	bool registered;
};

struct deviceplugin {
	sd_event *event;
	char *dir;
	char *kubelet_socket;
	bool pre_start_required;
	char *pre_start_hook;
	struct hook_run *hooks; /* running pre-start hooks */
	struct inventory *inventory;
	struct allocations *allocations;
	struct dp_resource **resources;
	size_t n_resources;
	sd_event_source *inotify;
	sd_event_source *post;
	uint64_t generation; /* of the inventory when the streams were last brought up to date */
	bool dirty;
	sd_event_source *reconcile; /* deferred: kubelet's checkpoint changed */
};

/* deviceplugin-service.c: the methods every resource serves. */
extern const struct grpc_method dp_methods[];
extern const size_t dp_n_methods;
/* Packs @m, sends it and finishes the call OK; INTERNAL if memory runs out. */
void dp_reply(struct grpc_call *c, const ProtobufCMessage *m);
/* The slice @id of @resource, or NULL. */
const struct xpu_slice *dp_find_slice(const struct deviceplugin *p, const char *resource,
				      const char *id);
/* Sends the current list to every stream of @r if it changed since the last one sent. */
void dp_update_streams(struct dp_resource *r);

/* deviceplugin-allocate.c */
void dp_allocate(struct grpc_call *c, const uint8_t *msg, size_t len, void *userdata);
void dp_get_preferred(struct grpc_call *c, const uint8_t *msg, size_t len, void *userdata);

/* deviceplugin-prestart.c */
void dp_pre_start(struct grpc_call *c, const uint8_t *msg, size_t len, void *userdata);
/* Stopping: the hooks still running are killed, not waited for. */
void dp_hooks_abandon(struct deviceplugin *p);

/* deviceplugin-register.c */
struct dp_resource *dp_resource_free(struct dp_resource *r);
struct dp_resource *dp_resource_find(const struct deviceplugin *p, const char *name);
/* Serves the resources the plan advertises for the first time. */
void dp_sync_resources(struct deviceplugin *p);
/* The inotify watch on the plugin directory. */
int dp_on_dir_event(sd_event_source *s, const struct inotify_event *ev, void *userdata);

/* deviceplugin-reconcile.c */
void dp_reconcile(struct deviceplugin *p);
/* The deferred source that runs dp_reconcile() once after dp_schedule_reconcile(). */
int dp_on_reconcile(sd_event_source *s, void *userdata);
void dp_schedule_reconcile(struct deviceplugin *p);
