// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The device plugin's sockets and its registration with kubelet (see deviceplugin-internal.h).
 *
 * Each resource has its own gRPC server on "<dir>/xpud-<resource with '/' as '_'>.sock" and its
 * own registration state: registered, registering (a Register call in flight), or waiting
 * for its retry timer (backoff 100 ms doubling to 30 s while kubelet is absent or refuses). When
 * kubelet restarts it removes every socket in the directory and creates kubelet.sock again;
 * inotify tells us both, and we re-create our socket and register at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "kube/deviceplugin-internal.h"
#include "shared/log.h"

#define DP_API_VERSION "v1beta1"
#define DP_REGISTER_TIMEOUT_USEC (5U * 1000000U)
/* kubelet.sock exists a moment before kubelet listens on it: the first retry comes soon */
#define DP_BACKOFF_MIN_USEC (100000ULL)
#define DP_BACKOFF_MAX_USEC (30ULL * 1000000ULL)

static void register_now(struct dp_resource *r);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	register_now(userdata);
	return 0;
}

static void schedule_retry(struct dp_resource *r)
{
	r->backoff_usec = r->backoff_usec ? MIN(r->backoff_usec * 2, DP_BACKOFF_MAX_USEC)
					  : DP_BACKOFF_MIN_USEC;
	r->retry = sd_event_source_disable_unref(r->retry);
	if (sd_event_add_time_relative(r->plugin->event, &r->retry, CLOCK_MONOTONIC,
				       r->backoff_usec, 100000, on_retry, r) < 0)
		log_warning("Device plugin %s: cannot schedule registering again; it waits for "
			    "kubelet to restart.",
			    r->name);
}

static void on_registered(int status, const char *message, const uint8_t *reply_msg, size_t len,
			  void *userdata)
{
	struct dp_resource *r = userdata;

	r->registering = NULL;
	if (status == GRPC_STATUS_OK) {
		r->registered = true;
		r->backoff_usec = 0;
		log_info("Device plugin %s: registered with kubelet (%s).", r->name, r->endpoint);
		return;
	}
	log_warning("Device plugin %s: kubelet refused the registration: %s (%s); trying again.",
		    r->name, message ?: "no reason given", grpc_status_to_string(status));
	schedule_retry(r);
}

static void register_now(struct dp_resource *r)
{
	struct deviceplugin *p = r->plugin;
	V1beta1__RegisterRequest req = V1BETA1__REGISTER_REQUEST__INIT;
	V1beta1__DevicePluginOptions o = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	int k;

	r->retry = sd_event_source_disable_unref(r->retry);
	r->registering = grpc_client_call_cancel(r->registering);
	r->registered = false;
	o.pre_start_required = p->pre_start_required;
	o.get_preferred_allocation_available = true;
	req.version = (char *)DP_API_VERSION;
	req.endpoint = r->endpoint;
	req.resource_name = r->name;
	req.options = &o;
	len = v1beta1__register_request__get_packed_size(&req);
	buf = malloc(len ?: 1);
	if (!buf)
		return (void)log_oom();
	v1beta1__register_request__pack(&req, buf);
	k = grpc_client_call_new(p->event, p->kubelet_socket, "/v1beta1.Registration/Register", buf,
				 len, DP_REGISTER_TIMEOUT_USEC, on_registered, r,
				 &r->registering);
	if (k < 0) {
		log_full_errno(r->backoff_usec ? LOG_DEBUG : LOG_INFO, k,
			       "Device plugin %s: kubelet is not answering on %s (%m); registering "
			       "when it is.",
			       r->name, p->kubelet_socket);
		schedule_retry(r);
	}
}

static int listen_on(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -EBADF;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return -errno;
	if (chmod(path, 0600) < 0 || listen(fd, 64) < 0)
		return -errno;
	return TAKE_FD(fd);
}

/* (Re)creates @r's socket and server: open streams end, kubelet connects again. */
static int serve(struct dp_resource *r)
{
	int fd, k;

	r->server = grpc_server_free(r->server);
	fd = listen_on(r->socket_path);
	if (fd < 0)
		return log_error_errno(fd, "Device plugin %s: cannot listen on %s: %m", r->name,
				       r->socket_path);
	k = grpc_server_new(r->plugin->event, fd, NULL, dp_methods, dp_n_methods, r, &r->server);
	if (k < 0)
		return log_error_errno(k, "Device plugin %s: cannot serve on %s: %m", r->name,
				       r->socket_path);
	return 0;
}

struct dp_resource *dp_resource_free(struct dp_resource *r)
{
	if (!r)
		return NULL;
	grpc_client_call_cancel(r->registering);
	sd_event_source_disable_unref(r->retry);
	r->streams = mfree(r->streams); /* the server's on_close calls find nothing to drop */
	r->n_streams = 0;
	grpc_server_free(r->server);
	if (r->socket_path)
		(void)unlink(r->socket_path);
	free(r->name);
	free(r->endpoint);
	free(r->socket_path);
	free(r->last);
	free(r);
	return NULL;
}

/* FNV-1a, 64 bits: a short, stable stand-in for a resource name in a socket's name. */
static uint64_t name_hash(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		h = (h ^ *c) * 0x100000001b3ULL;
	return h;
}

static int resource_add(struct deviceplugin *p, const char *name)
{
	struct dp_resource *r = calloc(1, sizeof(*r)), **n;
	int k;

	if (!r)
		return -ENOMEM;
	r->plugin = p;
	r->name = strdup(name);
	if (!r->name || asprintf(&r->endpoint, "xpud-%s.sock", name) < 0) {
		r->endpoint = NULL;
		dp_resource_free(r);
		return -ENOMEM;
	}
	for (char *c = r->endpoint; *c; c++)
		if (*c == '/')
			*c = '_';
	if (strlen(p->dir) + 1 + strlen(r->endpoint) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		/* a long resource name (an FPGA shell's) would not fit a socket's path: a name of
		 * its hash instead, the same for the same resource */
		free(r->endpoint);
		if (asprintf(&r->endpoint, "xpud-%016llx.sock",
			     (unsigned long long)name_hash(name)) < 0) {
			r->endpoint = NULL;
			dp_resource_free(r);
			return -ENOMEM;
		}
	}
	if (asprintf(&r->socket_path, "%s/%s", p->dir, r->endpoint) < 0) {
		r->socket_path = NULL;
		dp_resource_free(r);
		return -ENOMEM;
	}
	n = realloc(p->resources, (p->n_resources + 1) * sizeof(*n));
	if (!n) {
		dp_resource_free(r);
		return -ENOMEM;
	}
	p->resources = n;
	k = serve(r);
	if (k < 0) {
		dp_resource_free(r);
		return k;
	}
	p->resources[p->n_resources++] = r;
	log_info("Device plugin %s: serving on %s.", r->name, r->socket_path);
	register_now(r);
	return 0;
}

struct dp_resource *dp_resource_find(const struct deviceplugin *p, const char *name)
{
	for (size_t i = 0; i < p->n_resources; i++)
		if (streq(p->resources[i]->name, name))
			return p->resources[i];
	return NULL;
}

/* A resource the plan advertises for the first time gets its socket; none is withdrawn (its
 * list just empties), so kubelet never sees a plugin vanish while pods hold its devices. */
void dp_sync_resources(struct deviceplugin *p)
{
	const struct slice_list *l = inventory_slices(p->inventory);

	for (size_t i = 0; i < l->n; i++) {
		const char *name = l->items[i]->resource;
		int k;

		if (!name || dp_resource_find(p, name))
			continue;
		k = resource_add(p, name);
		if (k < 0)
			log_warning_errno(k, "Device plugin %s: not served, ignoring: %m", name);
	}
}

int dp_on_dir_event(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
	struct deviceplugin *p = userdata;

	if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
		log_warning("Device plugin directory %s went away; the plugin waits for xpud to "
			    "restart.",
			    p->dir);
		return 0;
	}
	if (ev->len == 0)
		return 0;
	if (streq(ev->name, DP_CHECKPOINT_FILE)) {
		dp_schedule_reconcile(p);
		return 0;
	}
	if ((ev->mask & (IN_CREATE | IN_MOVED_TO)) && streq(ev->name, DEVICEPLUGIN_KUBELET_SOCKET)) {
		log_info("kubelet.sock appeared (kubelet started), registering every resource.");
		for (size_t i = 0; i < p->n_resources; i++) {
			struct dp_resource *r = p->resources[i];

			if (access(r->socket_path, F_OK) < 0)
				(void)serve(r);
			r->backoff_usec = 0;
			register_now(r);
		}
		return 0;
	}
	if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
		for (size_t i = 0; i < p->n_resources; i++) {
			struct dp_resource *r = p->resources[i];

			/* our own re-creation removes it too: only act if it is still gone */
			if (!streq(ev->name, r->endpoint) || access(r->socket_path, F_OK) == 0)
				continue;
			log_info("Device plugin %s: %s was removed (kubelet restarting?), serving "
				 "and registering again.",
				 r->name, r->endpoint);
			if (serve(r) >= 0)
				register_now(r);
		}
	return 0;
}
