// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The device plugin's DevicePlugin service (see deviceplugin-internal.h): its methods' table,
 * GetDevicePluginOptions and ListAndWatch.
 *
 * ListAndWatch messages are rebuilt from the inventory in a post source after anything
 * changed (an inventory event, a new plan, an allocation) and sent only when they differ from
 * the last one sent, so an update reaches kubelet in the same loop iteration as its cause.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kube/deviceplugin-internal.h"
#include "shared/log.h"

/* --- Small helpers --------------------------------------------------------------------------- */

/* Packs @m, sends it and finishes the call OK; INTERNAL if memory runs out. */
void dp_reply(struct grpc_call *c, const ProtobufCMessage *m)
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

const struct xpu_slice *dp_find_slice(const struct deviceplugin *p, const char *resource,
				      const char *id)
{
	const struct slice_list *l = inventory_slices(p->inventory);

	for (size_t i = 0; i < l->n; i++)
		if (streq(l->items[i]->id, id) && streq(l->items[i]->resource, resource))
			return l->items[i];
	return NULL;
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
	dp_reply(c, &o.base);
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
void dp_update_streams(struct dp_resource *r)
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

/* --- The service ------------------------------------------------------------------------------ */

const struct grpc_method dp_methods[] = {
	{ "/v1beta1.DevicePlugin/GetDevicePluginOptions", get_options },
	{ "/v1beta1.DevicePlugin/ListAndWatch", list_and_watch },
	{ "/v1beta1.DevicePlugin/GetPreferredAllocation", dp_get_preferred },
	{ "/v1beta1.DevicePlugin/Allocate", dp_allocate },
	{ "/v1beta1.DevicePlugin/PreStartContainer", dp_pre_start },
};
const size_t dp_n_methods = ELEMENTSOF(dp_methods);
