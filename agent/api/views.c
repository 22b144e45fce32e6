// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/views.h"
#include "core/grant.h"
#include "core/state.h"
#include "shared/parse.h"
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

/* What front ends see, and with @t (may be NULL) where the state machine stands. */
static json_t *view_health_phase(const struct xpu_health *h, const struct health_tracker *t)
{
	json_t *o = view_health_state(h);

	if (!o || !t)
		return o;
	if (set_new(o, "phase", json_string(health_phase_to_string(t->phase))) < 0 ||
	    set_new(o, "signal", json_string(health_signal_to_string(t->signal))) < 0 ||
	    set_new(o, "phase_reason", string_or_null(t->reason[0] ? t->reason : NULL)) < 0 ||
	    set_new(o, "since_usec", json_integer((json_int_t)t->since_usec)) < 0 ||
	    set_new(o, "until_usec", uint_or_null(t->until_usec)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *view_device(const struct xpu_device *d, const struct health_tracker *t)
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
	    set_new(o, "health", view_health_phase(&d->health, t)) < 0 ||
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

json_t *view_devices(const struct inventory *inv)
{
	const struct device_list *l = inventory_devices(inv);
	uint64_t seq = inventory_last_seq(inv);
	json_t *a = json_array();

	for (size_t i = 0; a && i < l->n; i++)
		if (json_array_append_new(a, view_device(l->items[i],
							 inventory_health(inv, l->items[i]->id))) <
		    0) {
			json_decref(a);
			return NULL;
		}
	/* The event sequence number the snapshot is current with: a client that also follows
	 * /v1/events applies only the events after it. */
	return a ? json_pack("{s:I, s:o}", "seq", (json_int_t)seq, "devices", a) : NULL;
}

json_t *view_slice(const struct xpu_slice *s, const struct xpu_device *parent,
		   const struct allocation *holder)
{
	/* the device's trouble first: it covers every slice of it */
	const struct xpu_health *h = !parent || parent->health.state != XPU_HEALTH_HEALTHY
					     ? (parent ? &parent->health : NULL)
					     : &s->health;
	const char *health = h ? xpu_health_state_to_string(h->state) : "unknown";

	return json_pack("{s:s, s:s, s:s, s:o, s:o, s:f, s:b, s:s, s:o, s:o, s:o, s:o}", "id",
			 s->id, "device_id", s->device_id, "resource", s->resource, "profile",
			 string_or_null(s->profile), "memory_bytes", uint_or_null(s->memory_bytes),
			 "compute_fraction", s->compute_fraction, "shared", s->shared, "health",
			 health, "health_reason", string_or_null(h ? h->reason : "device gone"),
			 "device_nodes", strv_array(s->device_nodes), "env", env_object(s->env),
			 "allocation", string_or_null(holder ? holder->id : NULL));
}

json_t *view_slices(const struct device_list *devices, const struct slice_list *l,
		    const struct ledger *ledger)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < l->n; i++) {
		const struct xpu_slice *s = l->items[i];

		if (json_array_append_new(a, view_slice(s, device_list_find(devices, s->device_id),
							ledger_find_slice(ledger, s->id))) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a ? json_pack("{s:o}", "slices", a) : NULL;
}

static json_t *numa_or_null(int node)
{
	return node >= 0 ? json_integer(node) : json_null();
}

static json_t *capacity_numa(const struct capacity *c)
{
	json_t *a = json_array();

	for (size_t j = 0; a && j < c->n_numa; j++) {
		const struct capacity_numa *n = &c->numa[j];

		if (json_array_append_new(a, json_pack("{s:o, s:I, s:I, s:I, s:I}", "node",
						       numa_or_null(n->node), "total",
						       (json_int_t)n->total, "healthy",
						       (json_int_t)n->healthy, "allocated",
						       (json_int_t)n->allocated, "free",
						       (json_int_t)n->free)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

json_t *view_capacity(const struct capacity_list *l)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < l->n; i++) {
		const struct capacity *c = &l->items[i];

		/* "resource" and "allocatable" are the first API version's names, kept */
		if (json_array_append_new(
			    a, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o}", "name",
					 c->resource, "resource", c->resource, "total",
					 (json_int_t)c->total, "healthy", (json_int_t)c->healthy,
					 "allocated", (json_int_t)c->allocated, "free",
					 (json_int_t)c->free, "allocatable", (json_int_t)c->free,
					 "numa", capacity_numa(c))) < 0) {
			json_decref(a);
			return NULL;
		}
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

/* What an available backend reads in the kernel log, and whether it is read. */
static json_t *view_kernel_log(const struct xpu_backend *b)
{
	return json_pack("{s:s, s:s, s:o}", "reads", b->ops->kmsg_what, "state",
			 b->kmsg_read ? "reading" : "not read", "reason",
			 string_or_null(b->kmsg_reason));
}

json_t *view_backends(const struct registry *r)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < registry_size(r); i++) {
		const struct xpu_backend *b = registry_get(r, i);
		json_t *o = json_pack("{s:s, s:b, s:o}", "name", b->ops->name, "available",
				      b->available, "reason", string_or_null(b->reason));

		if (o && b->available && b->ops->kmsg_what &&
		    set_new(o, "kernel_log", view_kernel_log(b)) < 0) {
			json_decref(o);
			o = NULL;
		}
		if (json_array_append_new(a, o) < 0) {
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
			      view_device(ev->device, ev->health));

	if (o && ev->previous && set_new(o, "previous", view_health_state(ev->previous)) < 0) {
		json_decref(o);
		return NULL;
	}
	if (o && ev->transition &&
	    set_new(o, "transition",
		    json_pack("{s:s, s:s, s:s, s:o}", "from",
			      health_phase_to_string(ev->transition->from), "to",
			      health_phase_to_string(ev->transition->to), "signal",
			      health_signal_to_string(ev->transition->signal), "reason",
			      string_or_null(ev->transition->reason[0] ? ev->transition->reason
								       : NULL))) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *view_error(const char *code, const char *message)
{
	size_t size = strlen(message) * 4 + 1; /* an invalid byte takes four: \xHH */
	_cleanup_free_ char *text = malloc(size);

	if (!text)
		return NULL;
	return json_pack("{s:s, s:s}", "error", code, "message",
			 utf8_escape_invalid(message, text, size));
}

static json_t *grant_env_view(const struct grant *g)
{
	json_t *o = json_object();

	for (size_t i = 0; o && i < g->n_env; i++)
		if (json_object_set_new(o, g->env[i].name, json_string(g->env[i].value ?: "")) < 0) {
			json_decref(o);
			return NULL;
		}
	return o;
}

static json_t *owner_view(const struct alloc_owner *o)
{
	return json_pack("{s:s, s:o}", "kind", owner_kind_to_string(o->kind), "value",
			 string_or_null(o->value));
}

json_t *view_allocation(const struct allocation *a, const struct device_list *devs,
			const struct slice_list *slices)
{
	_cleanup_(grant_done) struct grant g = { .numa_node = -1 };
	json_t *granted = json_array(), *doc = NULL;

	if (!granted || grant_build(a->slices, devs, slices, &g) < 0)
		goto out;
	STRV_FOREACH(id, a->slices) {
		const struct xpu_slice *s = NULL;

		for (size_t i = 0; i < slices->n && !s; i++)
			if (streq(slices->items[i]->id, *id))
				s = slices->items[i];
		/* its device is gone (unplugged): the grant still names it */
		if (json_array_append_new(
			    granted, s ? view_slice(s, device_list_find(devs, s->device_id), a)
				       : json_pack("{s:s, s:n}", "id", *id, "device_id")) < 0)
			goto out;
	}
	doc = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:b}", "id", a->id,
			"resource", a->resource, "slices", json_incref(granted), "device_nodes",
			strv_array(g.device_nodes), "env", grant_env_view(&g), "mounts", json_array(),
			"cdi_devices", strv_array(g.cdi_devices), "numa_node",
			numa_or_null(g.numa_node), "cpu_list", string_or_null(g.cpu_list), "owner",
			owner_view(&a->owner), "created_usec", (json_int_t)a->created_usec,
			"release_pending", a->release_pending);
out:
	json_decref(granted);
	return doc;
}

json_t *view_allocations(const struct ledger *l, const struct device_list *devs,
			 const struct slice_list *slices)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < l->n; i++)
		if (json_array_append_new(a, view_allocation(l->items[i], devs, slices)) < 0) {
			json_decref(a);
			return NULL;
		}
	return a ? json_pack("{s:o}", "allocations", a) : NULL;
}

static json_t *offer_view(const struct offer *o)
{
	_cleanup_free_ char *s = offer_to_string(o);

	return s ? json_string(s) : NULL;
}

static json_t *cordon_view(const struct device_cordon *c)
{
	if (!c)
		return json_null();
	return json_pack("{s:s, s:I}", "reason", c->reason, "since_usec",
			 (json_int_t)c->since_usec);
}

json_t *view_repartition(const struct repartition *r)
{
	if (!r)
		return json_null();
	return json_pack("{s:s, s:o, s:o, s:s, s:s, s:I, s:o, s:o}", "device", r->device_id,
			 "layout", offer_view(&r->target), "previous",
			 r->has_previous ? offer_view(&r->previous) : json_null(), "phase",
			 repartition_phase_to_string(r->phase), "by",
			 r->by_policy ? "policy" : "operator", "started_usec",
			 (json_int_t)r->started_usec, "deadline_usec",
			 r->deadline_usec ? json_integer((json_int_t)r->deadline_usec) : json_null(),
			 "error", string_or_null(r->error));
}

json_t *view_plan(const struct plan *p, const struct state *st)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < p->n_devices; i++) {
		const struct device_plan *d = &p->devices[i];
		const struct offer *layout = st ? state_layout(st, d->device_id) : NULL;

		if (json_array_append_new(
			    a, json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "device",
					 d->device_id, "applied", offer_view(&d->applied), "pending",
					 d->has_pending ? offer_view(&d->pending) : json_null(),
					 "reason", string_or_null(d->pending_reason), "layout",
					 layout ? offer_view(layout) : json_null(), "cordon",
					 cordon_view(st ? state_cordon(st, d->device_id) : NULL),
					 "repartition",
					 view_repartition(st ? state_repartition(st, d->device_id)
							     : NULL))) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a ? json_pack("{s:o}", "devices", a) : NULL;
}

json_t *view_fit(const struct fit_result *r)
{
	return json_pack("{s:I, s:o, s:o}", "fits", (json_int_t)r->fits, "resource",
			 string_or_null(r->resource), "slices", strv_array(r->slices));
}

json_t *view_enforcement(const struct enforce_status *s)
{
	const char *devices = enforce_devices_to_string(s ? s->devices : ENFORCE_DEVICES_NONE);
	const char *cpus = "none";
	json_t *progs, *v1;

	if (!s)
		return json_pack("{s:n, s:n, s:n, s:{s:s, s:s, s:s, s:s}, s:n, s:n}", "unit",
				 "cgroup", "cgroup_v1", "enforced", "devices", devices, "memory",
				 "none", "cpus", "none", "device_memory", "none", "limits",
				 "devices");
	/* what confines: a limit other than the unlimited default */
	if (s->cpu_max && strncmp(s->cpu_max, "max ", 4) != 0)
		cpus = "cpu.max";
	progs = json_array();
	for (size_t i = 0; progs && i < s->n_bpf_programs; i++)
		if (json_array_append_new(progs, json_integer(s->bpf_programs[i])) < 0)
			progs = (json_decref(progs), NULL);
	v1 = s->v1_rules ? strv_array(s->v1_rules) : json_null();
	return json_pack("{s:o, s:o, s:o, s:{s:s, s:s, s:s, s:s}, s:{s:o, s:o, s:o, s:o, s:o}, "
			 "s:{s:o, s:o}}",
			 "unit", string_or_null(s->unit), "cgroup", string_or_null(s->cgroup),
			 "cgroup_v1", string_or_null(s->cgroup_v1), "enforced", "devices", devices,
			 "memory",
			 s->memory_max && !streq(s->memory_max, "max") ? "memory.max" : "none",
			 "cpus",
			 s->cpuset_cpus && s->cpuset_cpus[0] ? (streq(cpus, "none") ? "cpuset"
										 : "cpu.max+cpuset")
							     : cpus,
			 "device_memory", s->device_memory ?: "none", "limits", "memory.max",
			 string_or_null(s->memory_max), "cpu.max", string_or_null(s->cpu_max),
			 "cpuset.cpus", string_or_null(s->cpuset_cpus), "cpuset.mems",
			 string_or_null(s->cpuset_mems), "dmem.max", string_or_null(s->dmem_max),
			 "devices", "bpf_programs",
			 progs ?: json_null(), "v1_rules", v1);
}

json_t *view_enforcer(const struct enforcer *e)
{
	return json_pack("{s:s, s:s, s:s, s:o}", "mode", enforcer_mode(e), "hierarchy",
			 cgroup_hierarchy_to_string(enforcer_hierarchy(e)), "devices",
			 enforce_devices_to_string(enforcer_devices(e)), "cgroup_root",
			 string_or_null(enforcer_cgroup_root(e)));
}
