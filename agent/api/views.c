// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdio.h>
#include <string.h>

#include "api/views.h"
#include "shared/strv.h"

/* Adds @value to @o under @key, stealing the reference; a NULL value is an OOM. */
static int set_new(json_t *o, const char *key, json_t *value)
{
	return value ? json_object_set_new(o, key, value) : -1;
}

static json_t *string_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *hex_id(unsigned v, int width)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "0x%0*x", width, v);
	return json_string(buf);
}

static json_t *link_speed(unsigned mts)
{
	char buf[32];

	if (!mts)
		return json_null();
	snprintf(buf, sizeof(buf), "%u.%u GT/s", mts / 1000, (mts % 1000) / 100);
	return json_string(buf);
}

static json_t *uint_or_null(uint64_t v)
{
	return v ? json_integer((json_int_t)v) : json_null();
}

static json_t *strv_array(char *const *l)
{
	json_t *a = json_array();

	for (size_t i = 0; a && l && l[i]; i++)
		if (json_array_append_new(a, json_string(l[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *env_object(char *const *env)
{
	json_t *o = json_object();

	for (size_t i = 0; o && env && env[i]; i++) {
		const char *eq = strchr(env[i], '=');
		char key[256];

		if (!eq || (size_t)(eq - env[i]) >= sizeof(key))
			continue;
		memcpy(key, env[i], (size_t)(eq - env[i]));
		key[eq - env[i]] = '\0';
		if (set_new(o, key, json_string(eq + 1)) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static json_t *view_pci(const struct xpu_pci_info *p)
{
	json_t *link = json_object(), *o = json_object();

	if (!o || !link || set_new(link, "speed", link_speed(p->link_speed_mts)) < 0 ||
	    set_new(link, "width", uint_or_null(p->link_width)) < 0 ||
	    set_new(link, "max_speed", link_speed(p->max_link_speed_mts)) < 0 ||
	    set_new(link, "max_width", uint_or_null(p->max_link_width)) < 0 ||
	    set_new(o, "address", json_string(p->address)) < 0 ||
	    set_new(o, "vendor_id", hex_id(p->vendor_id, 4)) < 0 ||
	    set_new(o, "device_id", hex_id(p->device_id, 4)) < 0 ||
	    set_new(o, "subsystem_vendor_id", hex_id(p->subsystem_vendor_id, 4)) < 0 ||
	    set_new(o, "subsystem_device_id", hex_id(p->subsystem_device_id, 4)) < 0 ||
	    set_new(o, "class", hex_id(p->class_code, 6)) < 0 ||
	    set_new(o, "revision", hex_id(p->revision, 2)) < 0 ||
	    set_new(o, "link", json_incref(link)) < 0) {
		json_decref(link);
		json_decref(o);
		return NULL;
	}
	json_decref(link);
	return o;
}

static json_t *view_health_state(const struct xpu_health *h)
{
	return json_pack("{s:s, s:o}", "state", xpu_health_state_to_string(h->state) ?: "unknown",
			 "reason", string_or_null(h->reason));
}

json_t *view_device(const struct xpu_device *d)
{
	json_t *o = json_object(), *props = json_object();

	if (!o || !props)
		goto oom;
	for (size_t i = 0; d->properties && d->properties[i] && d->properties[i + 1]; i += 2)
		if (set_new(props, d->properties[i], json_string(d->properties[i + 1])) < 0)
			goto oom;
	if (set_new(o, "id", json_string(d->id)) < 0 ||
	    set_new(o, "kind", json_string(xpu_kind_to_string(d->kind) ?: "unknown")) < 0 ||
	    set_new(o, "vendor", string_or_null(d->vendor)) < 0 ||
	    set_new(o, "model", string_or_null(d->model)) < 0 ||
	    set_new(o, "uuid", string_or_null(d->uuid)) < 0 ||
	    set_new(o, "pci", d->has_pci ? view_pci(&d->pci) : json_null()) < 0 ||
	    set_new(o, "driver", string_or_null(d->driver)) < 0 ||
	    set_new(o, "numa_node", d->numa_node >= 0 ? json_integer(d->numa_node) : json_null()) <
		    0 ||
	    set_new(o, "cpu_list", string_or_null(d->cpu_list)) < 0 ||
	    set_new(o, "memory_bytes", uint_or_null(d->memory_bytes)) < 0 ||
	    set_new(o, "device_nodes", strv_array(d->device_nodes)) < 0 ||
	    set_new(o, "health", view_health_state(&d->health)) < 0 ||
	    set_new(o, "backend", string_or_null(d->backend)) < 0 ||
	    set_new(o, "resource", string_or_null(d->resource)) < 0 ||
	    set_new(o, "properties", json_incref(props)) < 0)
		goto oom;
	json_decref(props);
	return o;
oom:
	json_decref(props);
	json_decref(o);
	return NULL;
}

json_t *view_devices(const struct device_list *l, uint64_t seq)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < l->n; i++)
		if (json_array_append_new(a, view_device(l->items[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	/* The event sequence number the snapshot is current with: a client that also follows
	 * /v1/events applies only the events after it. */
	return a ? json_pack("{s:I, s:o}", "seq", (json_int_t)seq, "devices", a) : NULL;
}

json_t *view_slice(const struct xpu_slice *s, const struct xpu_device *parent)
{
	const char *health = parent ? xpu_health_state_to_string(parent->health.state) : "unknown";

	return json_pack("{s:s, s:s, s:s, s:o, s:o, s:f, s:b, s:s, s:o, s:o}", "id", s->id,
			 "device_id", s->device_id, "resource", s->resource, "profile",
			 string_or_null(s->profile), "memory_bytes", uint_or_null(s->memory_bytes),
			 "compute_fraction", s->compute_fraction, "shared", s->shared, "health",
			 health, "device_nodes", strv_array(s->device_nodes), "env",
			 env_object(s->env));
}

json_t *view_slices(const struct device_list *devices, const struct slice_list *l)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < l->n; i++) {
		const struct xpu_slice *s = l->items[i];

		if (json_array_append_new(a, view_slice(s, device_list_find(devices, s->device_id))) <
		    0) {
			json_decref(a);
			return NULL;
		}
	}
	return a ? json_pack("{s:o}", "slices", a) : NULL;
}

json_t *view_capacity(const struct capacity_list *l)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < l->n; i++)
		if (json_array_append_new(a, json_pack("{s:s, s:I, s:I, s:I}", "resource",
						       l->items[i].resource, "total",
						       (json_int_t)l->items[i].total, "healthy",
						       (json_int_t)l->items[i].healthy, "allocatable",
						       (json_int_t)l->items[i].free)) < 0) {
			json_decref(a);
			return NULL;
		}
	return a ? json_pack("{s:o}", "resources", a) : NULL;
}

json_t *view_health(const struct device_list *l)
{
	json_t *bad = json_array();
	size_t healthy = 0;

	for (size_t i = 0; bad && i < l->n; i++) {
		const struct xpu_device *d = l->items[i];

		if (d->health.state == XPU_HEALTH_HEALTHY) {
			healthy++;
			continue;
		}
		if (json_array_append_new(bad, json_pack("{s:s, s:o}", "id", d->id, "reason",
							 string_or_null(d->health.reason))) < 0) {
			json_decref(bad);
			return NULL;
		}
	}
	if (!bad)
		return NULL;
	return json_pack("{s:s, s:{s:I, s:I, s:I}, s:o}", "status",
			 healthy == l->n ? "ok" : "degraded", "devices", "total", (json_int_t)l->n,
			 "healthy", (json_int_t)healthy, "unhealthy", (json_int_t)(l->n - healthy),
			 "unhealthy", bad);
}

json_t *view_backends(const struct registry *r)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < registry_size(r); i++) {
		const struct xpu_backend *b = registry_get(r, i);

		if (json_array_append_new(a, json_pack("{s:s, s:b, s:o}", "name", b->ops->name,
						       "available", b->available, "reason",
						       string_or_null(b->reason))) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

json_t *view_event(const struct inventory_event *ev)
{
	json_t *o = json_pack("{s:I, s:s, s:I, s:s, s:o}", "seq", (json_int_t)ev->seq, "type",
			      inventory_event_type_to_string(ev->type), "time_usec",
			      (json_int_t)ev->time_usec, "device_id", ev->device->id, "device",
			      view_device(ev->device));

	if (o && ev->previous && set_new(o, "previous", view_health_state(ev->previous)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *view_error(const char *code, const char *message)
{
	return json_pack("{s:s, s:s}", "error", code, "message", message);
}
