// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The device plugin's Allocate, which records kubelet's grant with the allocation service and
 * answers what the slices give a container, and GetPreferredAllocation, which asks the
 * allocator (see deviceplugin-internal.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/grant.h"
#include "kube/deviceplugin-internal.h"
#include "shared/log.h"
#include "shared/strv.h"

static bool slice_healthy(const struct deviceplugin *p, const struct xpu_slice *s)
{
	const struct xpu_device *d = device_list_find(inventory_devices(p->inventory),
						      s->device_id);

	/* the slice's own health too: an XID in one MIG instance takes only that one out */
	return slice_usable(s, d);
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
		const struct xpu_slice *s = dp_find_slice(r->plugin, r->name, ids[i]);
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

void dp_allocate(struct grpc_call *c, const uint8_t *msg, size_t len, void *userdata)
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
	dp_reply(c, &resp.base);
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
		const struct xpu_slice *s = dp_find_slice(r->plugin, r->name, *id);
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

void dp_get_preferred(struct grpc_call *c, const uint8_t *msg, size_t len, void *userdata)
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
		dp_reply(c, &resp.base);
	}
	for (size_t i = 0; chosen && i < n; i++)
		strv_free(chosen[i]);
	free(chosen);
	v1beta1__preferred_allocation_request__free_unpacked(req, NULL);
}
