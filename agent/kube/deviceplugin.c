// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The kubelet device plugin; see deviceplugin.h and docs/kubernetes.md.
 *
 * Each resource has its own gRPC server on "<dir>/xpud-<resource with '/' as '_'>.sock" and its
 * own registration state: registered, registering (a Register call in flight), or waiting
 * for its retry timer (backoff 100 ms doubling to 30 s while kubelet is absent or refuses). When
 * kubelet restarts it removes every socket in the directory and creates kubelet.sock again;
 * inotify tells us both, and we re-create our socket and register at once.
 *
 * ListAndWatch messages are rebuilt from the inventory in a post source after anything
 * changed (an inventory event, a new plan, an allocation) and sent only when they differ from
 * the last one sent, so an update reaches kubelet in the same loop iteration as its cause.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <sys/pidfd.h>
#include <spawn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/grant.h"
#include "kube/deviceplugin-v1beta1.pb-c.h"
#include "kube/checkpoint.h"
#include "kube/deviceplugin.h"
#include "kube/grpc.h"
#include "shared/clock.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/spawn.h"
#include "shared/strv.h"

#define DP_API_VERSION "v1beta1"
#define DP_REGISTER_TIMEOUT_USEC (5U * 1000000U)
/* kubelet.sock exists a moment before kubelet listens on it: the first retry comes soon */
#define DP_BACKOFF_MIN_USEC (100000ULL)
#define DP_BACKOFF_MAX_USEC (30ULL * 1000000ULL)
/* What a kubelet-managed grant is owned by until the checkpoint names the pod. */
#define DP_OWNER_KUBELET "kubelet"

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

static const struct grpc_method dp_methods[];
static const size_t dp_n_methods;

/* --- Small helpers --------------------------------------------------------------------------- */

/* Packs @m, sends it and finishes the call OK; INTERNAL if memory runs out. */
static void reply(struct grpc_call *c, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	_cleanup_free_ uint8_t *buf = malloc(n ?: 1);

	if (!buf) {
		(void)grpc_call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	protobuf_c_message_pack(m, buf);
	if (grpc_call_send(c, buf, n) < 0)
		return; /* cancelled: the reader is gone or far behind */
	(void)grpc_call_finish(c, GRPC_STATUS_OK, NULL);
}

static const struct xpu_slice *find_slice(const struct deviceplugin *p, const char *resource,
					  const char *id)
{
	const struct slice_list *l = inventory_slices(p->inventory);

	for (size_t i = 0; i < l->n; i++)
		if (streq(l->items[i]->id, id) && streq(l->items[i]->resource, resource))
			return l->items[i];
	return NULL;
}

static bool slice_healthy(const struct deviceplugin *p, const struct xpu_slice *s)
{
	const struct xpu_device *d = device_list_find(inventory_devices(p->inventory),
						      s->device_id);

	/* the slice's own health too: an XID in one MIG instance takes only that one out */
	return slice_usable(s, d);
}

/* --- ListAndWatch ---------------------------------------------------------------------------- */

/* The ListAndWatch message of @r now, packed. 0 or -ENOMEM. */
static int build_list(struct dp_resource *r, uint8_t **ret, size_t *ret_len)
{
	const struct slice_list *l = inventory_slices(r->plugin->inventory);
	const struct device_list *devs = inventory_devices(r->plugin->inventory);
	V1beta1__ListAndWatchResponse msg = V1BETA1__LIST_AND_WATCH_RESPONSE__INIT;
	_cleanup_free_ V1beta1__Device *items = calloc(l->n ?: 1, sizeof(*items));
	_cleanup_free_ V1beta1__Device **ptrs = calloc(l->n ?: 1, sizeof(*ptrs));
	_cleanup_free_ V1beta1__TopologyInfo *topo = calloc(l->n ?: 1, sizeof(*topo));
	_cleanup_free_ V1beta1__NUMANode *nodes = calloc(l->n ?: 1, sizeof(*nodes));
	_cleanup_free_ V1beta1__NUMANode **node_ptrs = calloc(l->n ?: 1, sizeof(*node_ptrs));
	uint8_t *buf;
	size_t n = 0, len;

	if (!items || !ptrs || !topo || !nodes || !node_ptrs)
		return -ENOMEM;
	for (size_t i = 0; i < l->n; i++) {
		const struct xpu_slice *s = l->items[i];
		const struct xpu_device *d;

		if (!streq(s->resource, r->name))
			continue;
		d = device_list_find(devs, s->device_id);
		v1beta1__device__init(&items[n]);
		items[n].id = s->id;
		/* the slice's own health too: a MIG instance's fault, a cordon */
		items[n].health = slice_usable(s, d) ? "Healthy" : "Unhealthy";
		if (d && d->numa_node >= 0) {
			v1beta1__topology_info__init(&topo[n]);
			v1beta1__numanode__init(&nodes[n]);
			nodes[n].id = d->numa_node;
			node_ptrs[n] = &nodes[n];
			topo[n].n_nodes = 1;
			topo[n].nodes = &node_ptrs[n];
			items[n].topology = &topo[n];
		}
		ptrs[n] = &items[n];
		n++;
	}
	msg.n_devices = n;
	msg.devices = ptrs;
	len = v1beta1__list_and_watch_response__get_packed_size(&msg);
	buf = malloc(len ?: 1);
	if (!buf)
		return -ENOMEM;
	v1beta1__list_and_watch_response__pack(&msg, buf);
	*ret = buf;
	*ret_len = len;
	return 0;
}

static void stream_remove(struct dp_resource *r, struct grpc_call *c)
{
	for (size_t i = 0; i < r->n_streams; i++)
		if (r->streams[i] == c) {
			r->streams[i] = r->streams[--r->n_streams];
			return;
		}
}

static void on_stream_closed(struct grpc_call *c, void *userdata)
{
	struct dp_resource *r = userdata;

	stream_remove(r, c);
	log_debug("Device plugin %s: a ListAndWatch stream ended (%zu left).", r->name,
		  r->n_streams);
}

/* Sends the current list to every stream of @r if it changed since the last one sent. */
static void update_streams(struct dp_resource *r)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;

	if (build_list(r, &buf, &len) < 0)
		return (void)log_oom();
	if (r->have_last && len == r->last_len && memcmp(buf, r->last, len) == 0)
		return;
	free(r->last);
	r->last = TAKE_PTR(buf);
	r->last_len = len;
	r->have_last = true;
	/* a send that fails cancels its stream, which removes it: walk from the end */
	for (size_t i = r->n_streams; i > 0; i--)
		if (i - 1 < r->n_streams)
			(void)grpc_call_send(r->streams[i - 1], r->last, r->last_len);
	if (r->n_streams)
		log_debug("Device plugin %s: sent an updated list to %zu stream%s.", r->name,
			  r->n_streams, r->n_streams == 1 ? "" : "s");
}

static void list_and_watch(struct grpc_call *c, const uint8_t *msg, size_t len, void *userdata)
{
	struct dp_resource *r = userdata;
	V1beta1__Empty *req = v1beta1__empty__unpack(NULL, len, msg);
	struct grpc_call **n;
	_cleanup_free_ uint8_t *buf = NULL;
	size_t blen;

	if (!req)
		return (void)grpc_call_finish(c, GRPC_STATUS_INVALID_ARGUMENT,
					      "malformed Empty message");
	v1beta1__empty__free_unpacked(req, NULL);
	n = realloc(r->streams, (r->n_streams + 1) * sizeof(*n));
	if (!n || build_list(r, &buf, &blen) < 0) {
		if (n)
			r->streams = n;
		return (void)grpc_call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	}
	r->streams = n;
	if (grpc_call_send(c, buf, blen) < 0)
		return;
	r->streams[r->n_streams++] = c;
	grpc_call_set_on_close(c, on_stream_closed, r);
	log_debug("Device plugin %s: ListAndWatch stream opened (%zu).", r->name, r->n_streams);
}

/* --- Unary methods --------------------------------------------------------------------------- */

static void get_options(struct grpc_call *c, const uint8_t *msg, size_t len, void *userdata)
{
	struct dp_resource *r = userdata;
	V1beta1__DevicePluginOptions o = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
	V1beta1__Empty *req = v1beta1__empty__unpack(NULL, len, msg);

	if (!req)
		return (void)grpc_call_finish(c, GRPC_STATUS_INVALID_ARGUMENT,
					      "malformed Empty message");
	v1beta1__empty__free_unpacked(req, NULL);
	o.pre_start_required = r->plugin->pre_start_required;
	o.get_preferred_allocation_available = true;
	reply(c, &o.base);
}

/*
 * Checks that every id of @ids names a healthy slice of @r that only kubelet may hold.
 * 0, or a gRPC status with the reason in @why.
 */
static int check_ids(struct dp_resource *r, char **ids, size_t n, char *why, size_t whylen)
{
	const struct ledger *l = allocations_ledger(r->plugin->allocations);

	if (n == 0) {
		snprintf(why, whylen, "no device ids given");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	for (size_t i = 0; i < n; i++) {
		const struct xpu_slice *s = find_slice(r->plugin, r->name, ids[i]);
		const struct allocation *a;

		if (!s) {
			snprintf(why, whylen, "unknown %s device id '%s'", r->name, ids[i]);
			return GRPC_STATUS_NOT_FOUND;
		}
		if (!slice_healthy(r->plugin, s)) {
			snprintf(why, whylen, "device '%s' is unhealthy", ids[i]);
			return GRPC_STATUS_FAILED_PRECONDITION;
		}
		a = ledger_find_slice(l, ids[i]);
		if (a && a->owner.kind != OWNER_POD) {
			snprintf(why, whylen, "device '%s' is allocated locally (%s)", ids[i], a->id);
			return GRPC_STATUS_FAILED_PRECONDITION;
		}
		for (size_t j = 0; j < i; j++)
			if (streq(ids[i], ids[j])) {
				snprintf(why, whylen, "device '%s' is named twice", ids[i]);
				return GRPC_STATUS_INVALID_ARGUMENT;
			}
	}
	return 0;
}

/* Records the ids kubelet assigned that no allocation holds yet. 0 or a gRPC status. */
static int record_grant(struct dp_resource *r, char **ids, size_t n, char *why, size_t whylen)
{
	const struct ledger *l = allocations_ledger(r->plugin->allocations);
	_cleanup_strv_free_ char **fresh = NULL;
	_cleanup_free_ char *err = NULL;
	struct alloc_request req = {};
	struct alloc_owner owner = { .kind = OWNER_POD, .value = (char *)DP_OWNER_KUBELET };
	const struct allocation *a;
	int k;

	for (size_t i = 0; i < n; i++)
		if (!ledger_find_slice(l, ids[i]) && strv_extend(&fresh, ids[i]) < 0)
			return GRPC_STATUS_RESOURCE_EXHAUSTED;
	if (!fresh)
		return 0; /* kubelet reuses them (an init container's devices): idempotent */
	req.resource = r->name;
	req.slices = fresh;
	req.count = (unsigned)strv_length(fresh);
	k = allocations_grant_reserved(r->plugin->allocations, &req, &owner, &a, &err);
	if (k < 0) {
		snprintf(why, whylen, "cannot record the grant: %s", err ?: strerror(-k));
		return k == -EIO ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_FAILED_PRECONDITION;
	}
	return 0;
}

/* A string copied into @m's ownership list: freed with the message parts in free_parts(). */
struct parts {
	void **p;
	size_t n;
};

static void *part(struct parts *ps, void *p)
{
	void **n;

	if (!p)
		return NULL;
	n = realloc(ps->p, (ps->n + 1) * sizeof(*n));
	if (!n) {
		free(p);
		return NULL;
	}
	ps->p = n;
	ps->p[ps->n++] = p;
	return p;
}

static void free_parts(struct parts *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		free(ps->p[i]);
	free(ps->p);
}

/* One container's answer: what the slices @ids give a workload (the grant the local API shows),
 * in kubelet's terms. */
static int container_response(struct dp_resource *r, char **ids, struct parts *ps,
			      V1beta1__ContainerAllocateResponse *ret)
{
	_cleanup_(grant_done) struct grant g = { .numa_node = -1 };
	size_t i;
	int k;

	k = grant_build(ids, inventory_devices(r->plugin->inventory),
			inventory_slices(r->plugin->inventory), &g);
	if (k < 0)
		return k;
	ret->n_envs = g.n_env;
	ret->envs = part(ps, calloc(ret->n_envs + 1, sizeof(*ret->envs)));
	ret->n_devices = strv_length(g.device_nodes);
	ret->devices = part(ps, calloc(ret->n_devices + 1, sizeof(*ret->devices)));
	ret->n_cdi_devices = strv_length(g.cdi_devices);
	ret->cdi_devices = part(ps, calloc(ret->n_cdi_devices + 1, sizeof(*ret->cdi_devices)));
	if (!ret->envs || !ret->devices || !ret->cdi_devices)
		return -ENOMEM;
	for (i = 0; i < g.n_env; i++) {
		V1beta1__ContainerAllocateResponse__EnvsEntry *e = part(ps, calloc(1, sizeof(*e)));

		if (!e)
			return -ENOMEM;
		v1beta1__container_allocate_response__envs_entry__init(e);
		e->key = part(ps, strdup(g.env[i].name));
		e->value = part(ps, strdup(g.env[i].value ?: ""));
		if (!e->key || !e->value)
			return -ENOMEM;
		ret->envs[i] = e;
	}
	for (i = 0; i < ret->n_devices; i++) {
		V1beta1__DeviceSpec *d = part(ps, calloc(1, sizeof(*d)));

		if (!d)
			return -ENOMEM;
		v1beta1__device_spec__init(d);
		d->host_path = part(ps, strdup(g.device_nodes[i]));
		d->container_path = d->host_path;
		d->permissions = (char *)"rw";
		if (!d->host_path)
			return -ENOMEM;
		ret->devices[i] = d;
	}
	for (i = 0; i < ret->n_cdi_devices; i++) {
		V1beta1__CDIDevice *d = part(ps, calloc(1, sizeof(*d)));

		if (!d)
			return -ENOMEM;
		v1beta1__cdidevice__init(d);
		d->name = part(ps, strdup(g.cdi_devices[i]));
		if (!d->name)
			return -ENOMEM;
		ret->cdi_devices[i] = d;
	}
	return 0;
}

static void allocate(struct grpc_call *c, const uint8_t *msg, size_t len, void *userdata)
{
	struct dp_resource *r = userdata;
	V1beta1__AllocateRequest *req = v1beta1__allocate_request__unpack(NULL, len, msg);
	V1beta1__AllocateResponse resp = V1BETA1__ALLOCATE_RESPONSE__INIT;
	_cleanup_free_ V1beta1__ContainerAllocateResponse *conts = NULL;
	_cleanup_free_ V1beta1__ContainerAllocateResponse **ptrs = NULL;
	struct parts ps = {};
	char why[256];
	int st = 0;

	if (!req)
		return (void)grpc_call_finish(c, GRPC_STATUS_INVALID_ARGUMENT,
					      "malformed AllocateRequest");
	if (req->n_container_requests == 0) {
		st = GRPC_STATUS_INVALID_ARGUMENT;
		snprintf(why, sizeof(why), "no container requests");
		goto fail;
	}
	/* all or nothing: every container's ids are checked before any is recorded */
	for (size_t i = 0; i < req->n_container_requests && !st; i++)
		st = check_ids(r, req->container_requests[i]->devices_ids,
			       req->container_requests[i]->n_devices_ids, why, sizeof(why));
	for (size_t i = 0; i < req->n_container_requests && !st; i++)
		st = record_grant(r, req->container_requests[i]->devices_ids,
				  req->container_requests[i]->n_devices_ids, why, sizeof(why));
	if (st)
		goto fail;

	conts = calloc(req->n_container_requests, sizeof(*conts));
	ptrs = calloc(req->n_container_requests, sizeof(*ptrs));
	if (!conts || !ptrs)
		goto oom;
	for (size_t i = 0; i < req->n_container_requests; i++) {
		V1beta1__ContainerAllocateRequest *cr = req->container_requests[i];
		_cleanup_strv_free_ char **ids = NULL;

		v1beta1__container_allocate_response__init(&conts[i]);
		for (size_t j = 0; j < cr->n_devices_ids; j++)
			if (strv_extend(&ids, cr->devices_ids[j]) < 0)
				goto oom;
		if (container_response(r, ids, &ps, &conts[i]) < 0)
			goto oom;
		ptrs[i] = &conts[i];
	}
	resp.n_container_responses = req->n_container_requests;
	resp.container_responses = ptrs;
	reply(c, &resp.base);
	log_info("Device plugin %s: allocated %zu container request%s.", r->name,
		 req->n_container_requests, req->n_container_requests == 1 ? "" : "s");
	free_parts(&ps);
	v1beta1__allocate_request__free_unpacked(req, NULL);
	return;
oom:
	st = GRPC_STATUS_RESOURCE_EXHAUSTED;
	snprintf(why, sizeof(why), "out of memory");
fail:
	log_warning("Device plugin %s: refused an Allocate call: %s", r->name, why);
	(void)grpc_call_finish(c, st, why);
	free_parts(&ps);
	v1beta1__allocate_request__free_unpacked(req, NULL);
	/* an unhealthy or vanished id: make sure kubelet has the current list */
	r->plugin->dirty = true;
}

/* The NUMA node all of @ids' devices are on, or -1 (none given, unknown or mixed). */
static int must_numa(struct dp_resource *r, char **ids)
{
	const struct device_list *devs = inventory_devices(r->plugin->inventory);
	int numa = -1;

	STRV_FOREACH(id, ids) {
		const struct xpu_slice *s = find_slice(r->plugin, r->name, *id);
		const struct xpu_device *d = s ? device_list_find(devs, s->device_id) : NULL;

		if (!d || d->numa_node < 0 || (numa >= 0 && d->numa_node != numa))
			return -1;
		numa = d->numa_node;
	}
	return numa;
}

/* Adds the resource's slices on other NUMA nodes than @numa to @hidden. */
static int hide_other_numa(struct dp_resource *r, int numa, char ***hidden)
{
	const struct slice_list *l = inventory_slices(r->plugin->inventory);
	const struct device_list *devs = inventory_devices(r->plugin->inventory);

	for (size_t i = 0; i < l->n; i++) {
		const struct xpu_device *d = device_list_find(devs, l->items[i]->device_id);

		if (streq(l->items[i]->resource, r->name) && (!d || d->numa_node != numa) &&
		    strv_extend_unique(hidden, l->items[i]->id) < 0)
			return -ENOMEM;
	}
	return 0;
}

/*
 * The allocator's choice among @available: the slices of the resource that kubelet does not
 * offer look allocated to it, the must-include ones are granted first and the rest is chosen
 * by the usual scoring, on the must-include devices' NUMA node when that suffices.
 */
static int prefer(struct dp_resource *r, const V1beta1__ContainerPreferredAllocationRequest *cr,
		  char ***ret, char *why, size_t whylen)
{
	const struct slice_list *l = inventory_slices(r->plugin->inventory);
	_cleanup_strv_free_ char **hidden = NULL, **chosen = NULL;
	_cleanup_free_ char *err = NULL;
	struct allocation mask = { .id = (char *)"mask", .resource = r->name };
	struct allocation *items[1] = { &mask };
	struct ledger ledger = { .items = items, .n = 1 };
	struct alloc_request req = { .resource = r->name };
	size_t size = cr->allocation_size > 0 ? (size_t)cr->allocation_size : 0;
	int k;

	if (size == 0 || size < cr->n_must_include_deviceids || size > cr->n_available_deviceids) {
		snprintf(why, whylen, "allocation size %d does not fit %zu available, %zu required",
			 cr->allocation_size, cr->n_available_deviceids,
			 cr->n_must_include_deviceids);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	for (size_t i = 0; i < cr->n_must_include_deviceids; i++)
		if (strv_extend_unique(&chosen, cr->must_include_deviceids[i]) < 0)
			return GRPC_STATUS_RESOURCE_EXHAUSTED;
	for (size_t i = 0; i < l->n; i++) {
		const struct xpu_slice *s = l->items[i];
		bool offered = false;

		if (!streq(s->resource, r->name))
			continue;
		for (size_t j = 0; j < cr->n_available_deviceids && !offered; j++)
			offered = streq(cr->available_deviceids[j], s->id);
		if ((!offered || strv_contains(chosen, s->id)) && strv_extend(&hidden, s->id) < 0)
			return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	if (strv_length(chosen) < size) {
		_cleanup_strv_free_ char **more = NULL, **near = NULL;
		int numa = must_numa(r, chosen);

		req.count = (unsigned)(size - strv_length(chosen));
		/* first around the must-include devices' NUMA node, then anywhere offered */
		k = -ENOSPC;
		if (numa >= 0) {
			if (strv_copy(hidden, &near) < 0 || hide_other_numa(r, numa, &near) < 0)
				return GRPC_STATUS_RESOURCE_EXHAUSTED;
			mask.slices = near ?: (char *[]){ NULL };
			k = alloc_choose(inventory_devices(r->plugin->inventory), l, &ledger, &req,
					 &more, &err);
		}
		if (k == -ENOSPC) {
			err = mfree(err);
			mask.slices = hidden ?: (char *[]){ NULL };
			k = alloc_choose(inventory_devices(r->plugin->inventory), l, &ledger, &req,
					 &more, &err);
		}
		if (k < 0) {
			snprintf(why, whylen, "%s", err ?: strerror(-k));
			return k == -ENOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED
					    : GRPC_STATUS_FAILED_PRECONDITION;
		}
		STRV_FOREACH(id, more)
			if (strv_extend(&chosen, *id) < 0)
				return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	*ret = TAKE_PTR(chosen);
	return 0;
}

static void get_preferred(struct grpc_call *c, const uint8_t *msg, size_t len, void *userdata)
{
	struct dp_resource *r = userdata;
	V1beta1__PreferredAllocationRequest *req =
		v1beta1__preferred_allocation_request__unpack(NULL, len, msg);
	V1beta1__PreferredAllocationResponse resp = V1BETA1__PREFERRED_ALLOCATION_RESPONSE__INIT;
	_cleanup_free_ V1beta1__ContainerPreferredAllocationResponse *conts = NULL;
	_cleanup_free_ V1beta1__ContainerPreferredAllocationResponse **ptrs = NULL;
	char ***chosen = NULL;
	size_t n;
	char why[256];
	int st = 0;

	if (!req)
		return (void)grpc_call_finish(c, GRPC_STATUS_INVALID_ARGUMENT,
					      "malformed PreferredAllocationRequest");
	n = req->n_container_requests;
	conts = calloc(n ?: 1, sizeof(*conts));
	ptrs = calloc(n ?: 1, sizeof(*ptrs));
	chosen = calloc(n ?: 1, sizeof(*chosen));
	if (!conts || !ptrs || !chosen) {
		st = GRPC_STATUS_RESOURCE_EXHAUSTED;
		snprintf(why, sizeof(why), "out of memory");
	}
	for (size_t i = 0; i < n && !st; i++) {
		st = prefer(r, req->container_requests[i], &chosen[i], why, sizeof(why));
		if (st)
			break;
		v1beta1__container_preferred_allocation_response__init(&conts[i]);
		conts[i].n_deviceids = strv_length(chosen[i]);
		conts[i].deviceids = chosen[i];
		ptrs[i] = &conts[i];
	}
	if (st) {
		(void)grpc_call_finish(c, st, why);
	} else {
		resp.n_container_responses = n;
		resp.container_responses = ptrs;
		reply(c, &resp.base);
	}
	for (size_t i = 0; chosen && i < n; i++)
		strv_free(chosen[i]);
	free(chosen);
	v1beta1__preferred_allocation_request__free_unpacked(req, NULL);
}

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
			reply(h->call, &resp.base);
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

static void pre_start(struct grpc_call *c, const uint8_t *msg, size_t len, void *userdata)
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
		if (!find_slice(r->plugin, r->name, req->devices_ids[i])) {
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
		reply(c, &resp.base);
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

static const struct grpc_method dp_methods[] = {
	{ "/v1beta1.DevicePlugin/GetDevicePluginOptions", get_options },
	{ "/v1beta1.DevicePlugin/ListAndWatch", list_and_watch },
	{ "/v1beta1.DevicePlugin/GetPreferredAllocation", get_preferred },
	{ "/v1beta1.DevicePlugin/Allocate", allocate },
	{ "/v1beta1.DevicePlugin/PreStartContainer", pre_start },
};
static const size_t dp_n_methods = ELEMENTSOF(dp_methods);

/* --- Sockets and registration ---------------------------------------------------------------- */

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

static struct dp_resource *resource_free(struct dp_resource *r)
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
		resource_free(r);
		return -ENOMEM;
	}
	for (char *c = r->endpoint; *c; c++)
		if (*c == '/')
			*c = '_';
	if (asprintf(&r->socket_path, "%s/%s", p->dir, r->endpoint) < 0) {
		r->socket_path = NULL;
		resource_free(r);
		return -ENOMEM;
	}
	n = realloc(p->resources, (p->n_resources + 1) * sizeof(*n));
	if (!n) {
		resource_free(r);
		return -ENOMEM;
	}
	p->resources = n;
	k = serve(r);
	if (k < 0) {
		resource_free(r);
		return k;
	}
	p->resources[p->n_resources++] = r;
	log_info("Device plugin %s: serving on %s.", r->name, r->socket_path);
	register_now(r);
	return 0;
}

static struct dp_resource *resource_find(const struct deviceplugin *p, const char *name)
{
	for (size_t i = 0; i < p->n_resources; i++)
		if (streq(p->resources[i]->name, name))
			return p->resources[i];
	return NULL;
}

/* A resource the plan advertises for the first time gets its socket; none is withdrawn (its
 * list just empties), so kubelet never sees a plugin vanish while pods hold its devices. */
static void sync_resources(struct deviceplugin *p)
{
	const struct slice_list *l = inventory_slices(p->inventory);

	for (size_t i = 0; i < l->n; i++) {
		const char *name = l->items[i]->resource;
		int k;

		if (!name || resource_find(p, name))
			continue;
		k = resource_add(p, name);
		if (k < 0)
			log_warning_errno(k, "Device plugin %s: not served, ignoring: %m", name);
	}
}

static int on_post(sd_event_source *s, void *userdata)
{
	struct deviceplugin *p = userdata;
	uint64_t g = inventory_generation(p->inventory);

	if (!p->dirty && g == p->generation)
		return 0;
	p->dirty = false;
	p->generation = g;
	sync_resources(p);
	for (size_t i = 0; i < p->n_resources; i++)
		update_streams(p->resources[i]);
	return 0;
}

/* ---- kubelet's checkpoint ---------------------------------------------------------------- */

#define CHECKPOINT_FILE "kubelet_internal_checkpoint"
/* A grant kubelet has not written to its checkpoint yet is not withdrawn before this. */
#define UNCHECKPOINTED_GRACE_USEC (60 * 1000000ULL)

/* The entry of @entries that holds slice @id of @resource, or NULL. */
static const struct kubelet_entry *entry_holding(const struct kubelet_entry *e, size_t n,
						 const char *resource, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (streq(e[i].resource, resource) && strv_contains(e[i].ids, id))
			return &e[i];
	return NULL;
}

/*
 * Brings the ledger in line with who kubelet says holds what of the resources served here:
 * ids kubelet holds that no allocation does are recorded (after a restart of xpud, or a lost
 * state file), grants made through Allocate get their pod and container as owner, and pod
 * allocations kubelet no longer holds are released (a grant not yet in the checkpoint only after
 * a grace period: kubelet writes the checkpoint right after Allocate returns).
 */
static void reconcile(struct deviceplugin *p)
{
	_cleanup_free_ char *path = NULL, *text = NULL, *err = NULL;
	_cleanup_strv_free_ char **release = NULL;
	struct kubelet_entry *e = NULL;
	const struct ledger *l = allocations_ledger(p->allocations);
	size_t n = 0;
	int k;

	if (asprintf(&path, "%s/%s", p->dir, CHECKPOINT_FILE) < 0)
		return (void)log_oom();
	k = read_attr_at(AT_FDCWD, path, 64 << 20, &text);
	if (k == -ENOENT)
		text = strdup("{}"); /* kubelet has not allocated anything yet */
	else if (k < 0)
		return (void)log_warning_errno(k, "Cannot read kubelet's checkpoint %s: %m", path);
	if (!text)
		return (void)log_oom();
	k = kubelet_checkpoint_parse(text, strlen(text), &e, &n, &err);
	if (k < 0)
		return (void)log_warning("Ignoring kubelet's checkpoint %s: %s", path,
					 err ?: strerror(-k));

	/* what kubelet holds: recorded, and owned by its pod and container */
	for (size_t i = 0; i < n; i++) {
		struct dp_resource *r = resource_find(p, e[i].resource);
		_cleanup_strv_free_ char **fresh = NULL;
		_cleanup_free_ char *who = NULL;
		struct alloc_owner owner = { .kind = OWNER_POD };

		if (!r || asprintf(&who, "%s/%s", e[i].pod_uid, e[i].container) < 0)
			continue;
		owner.value = who;
		STRV_FOREACH(id, e[i].ids) {
			const struct allocation *a = ledger_find_slice(l, *id);

			if (!a) {
				if (find_slice(p, r->name, *id) && strv_extend(&fresh, *id) < 0)
					goto oom;
			} else if (a->owner.kind == OWNER_POD &&
				   streq_ptr(a->owner.value, DP_OWNER_KUBELET)) {
				bool all_here = true;

				STRV_FOREACH(sid, a->slices)
					all_here = all_here && strv_contains(e[i].ids, *sid);
				if (all_here)
					(void)allocations_set_owner(p->allocations, a->id, &owner);
			}
		}
		if (fresh) {
			struct alloc_request req = { .resource = r->name, .slices = fresh,
						     .count = (unsigned)strv_length(fresh) };
			const struct allocation *a;
			_cleanup_free_ char *why = NULL;

			k = allocations_grant_reserved(p->allocations, &req, &owner, &a, &why);
			if (k < 0)
				log_warning("kubelet holds %s of %s for %s, which cannot be recorded: %s",
					    fresh[0], r->name, who, why ?: strerror(-k));
			else
				log_info("kubelet holds %zu slice%s of %s for %s: recorded as %s.",
					 strv_length(fresh), strv_length(fresh) == 1 ? "" : "s", r->name,
					 who, a->id);
		}
	}

	/* what it no longer holds: released */
	for (size_t i = 0; i < l->n; i++) {
		const struct allocation *a = l->items[i];
		bool held = false;

		if (a->owner.kind != OWNER_POD || !resource_find(p, a->resource))
			continue;
		STRV_FOREACH(id, a->slices)
			held = held || entry_holding(e, n, a->resource, *id);
		if (held || (streq_ptr(a->owner.value, DP_OWNER_KUBELET) &&
			     a->created_usec + UNCHECKPOINTED_GRACE_USEC > now_usec(CLOCK_REALTIME)))
			continue;
		if (strv_extend(&release, a->id) < 0)
			goto oom;
	}
	STRV_FOREACH(id, release) {
		log_info("Allocation %s: kubelet no longer holds it (its pod is gone), releasing.",
			 *id);
		(void)allocations_release(p->allocations, *id, NULL);
	}
	kubelet_entries_free(e, n);
	return;
oom:
	kubelet_entries_free(e, n);
	(void)log_oom();
}

static int on_reconcile(sd_event_source *s, void *userdata)
{
	(void)sd_event_source_set_enabled(s, SD_EVENT_OFF);
	reconcile(userdata);
	return 0;
}

/* Coalesced: kubelet writes the checkpoint in several steps. */
static void schedule_reconcile(struct deviceplugin *p)
{
	if (p->reconcile)
		(void)sd_event_source_set_enabled(p->reconcile, SD_EVENT_ONESHOT);
}

static int on_dir_event(sd_event_source *s, const struct inotify_event *ev, void *userdata)
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
	if (streq(ev->name, CHECKPOINT_FILE)) {
		schedule_reconcile(p);
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
				 on_dir_event, p);
	if (k < 0)
		return log_error_errno(k, "Failed to watch %s: %m", p->dir);
	k = sd_event_add_post(e, &p->post, on_post, p);
	if (k < 0)
		return log_error_errno(k, "Failed to set up the device plugin: %m");
	(void)sd_event_source_set_description(p->inotify, "kubelet-dir");
	(void)sd_event_source_set_description(p->post, "deviceplugin-update");
	k = sd_event_add_defer(e, &p->reconcile, on_reconcile, p);
	if (k < 0)
		return log_error_errno(k, "Failed to set up the checkpoint reconciliation: %m");
	(void)sd_event_source_set_description(p->reconcile, "kubelet-checkpoint");
	p->generation = inventory_generation(inv);
	sync_resources(p);
	/* at start: what kubelet still holds must not be handed out again */
	reconcile(p);
	(void)sd_event_source_set_enabled(p->reconcile, SD_EVENT_OFF);
	*ret = TAKE_PTR(p);
	return 0;
}

struct deviceplugin *deviceplugin_free(struct deviceplugin *p)
{
	if (!p)
		return NULL;
	for (size_t i = 0; i < p->n_resources; i++)
		resource_free(p->resources[i]);
	free(p->resources);
	while (p->hooks) {
		/* stopping: a hook still running is killed, not waited for */
		spawn_abandon(p->hooks->spawn);
		hook_run_free(p->hooks);
	}
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
	return p && resource && resource_find(p, resource);
}
