// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "shared/parse.h"
#include "shared/strv.h"

static const char *const kind_table[_XPU_KIND_MAX] = {
	[XPU_KIND_GPU] = "gpu",
	[XPU_KIND_ACCEL] = "accel",
	[XPU_KIND_FPGA] = "fpga",
};

static const char *const health_table[_XPU_HEALTH_MAX] = {
	[XPU_HEALTH_HEALTHY] = "healthy",
	[XPU_HEALTH_UNHEALTHY] = "unhealthy",
};

const char *xpu_kind_to_string(enum xpu_kind k)
{
	return k >= 0 && k < _XPU_KIND_MAX ? kind_table[k] : NULL;
}

enum xpu_kind xpu_kind_from_string(const char *s)
{
	for (int i = 0; s && i < _XPU_KIND_MAX; i++)
		if (streq(s, kind_table[i]))
			return (enum xpu_kind)i;
	return _XPU_KIND_INVALID;
}

const char *xpu_health_state_to_string(enum xpu_health_state s)
{
	return s >= 0 && s < _XPU_HEALTH_MAX ? health_table[s] : NULL;
}

struct xpu_slice *slice_free(struct xpu_slice *s)
{
	if (!s)
		return NULL;
	free(s->id);
	free(s->device_id);
	free(s->resource);
	free(s->profile);
	strv_free(s->device_nodes);
	strv_free(s->env);
	free(s->health.reason);
	free(s);
	return NULL;
}

int slice_dup(const struct xpu_slice *s, struct xpu_slice **ret)
{
	_cleanup_(slice_freep) struct xpu_slice *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->memory_bytes = s->memory_bytes;
	c->compute_fraction = s->compute_fraction;
	c->shared = s->shared;
	c->health.state = s->health.state;
	if (device_set_string(&c->health.reason, s->health.reason) < 0 ||
	    device_set_string(&c->id, s->id) < 0 ||
	    device_set_string(&c->device_id, s->device_id) < 0 ||
	    device_set_string(&c->resource, s->resource) < 0 ||
	    device_set_string(&c->profile, s->profile) < 0 ||
	    strv_copy(s->device_nodes, &c->device_nodes) < 0 || strv_copy(s->env, &c->env) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(c);
	return 0;
}

bool slice_equal(const struct xpu_slice *a, const struct xpu_slice *b)
{
	return streq_ptr(a->id, b->id) && streq_ptr(a->device_id, b->device_id) &&
	       streq_ptr(a->resource, b->resource) && streq_ptr(a->profile, b->profile) &&
	       a->memory_bytes == b->memory_bytes && a->compute_fraction == b->compute_fraction &&
	       a->shared == b->shared && strv_equal(a->device_nodes, b->device_nodes) &&
	       strv_equal(a->env, b->env) && a->health.state == b->health.state &&
	       streq_ptr(a->health.reason, b->health.reason);
}

bool slice_usable(const struct xpu_slice *s, const struct xpu_device *d)
{
	return d && d->health.state == XPU_HEALTH_HEALTHY && s->health.state == XPU_HEALTH_HEALTHY;
}

int device_add_partition(struct xpu_device *d, struct xpu_slice *s)
{
	struct xpu_slice **p = realloc(d->partitions, (d->n_partitions + 1) * sizeof(*p));

	if (!p) {
		slice_free(s);
		return -ENOMEM;
	}
	d->partitions = p;
	d->partitions[d->n_partitions++] = s;
	return 0;
}

static void partitions_clear(struct xpu_device *d)
{
	for (size_t i = 0; i < d->n_partitions; i++)
		slice_free(d->partitions[i]);
	free(d->partitions);
	d->partitions = NULL;
	d->n_partitions = 0;
}

static int partitions_copy(const struct xpu_device *from, struct xpu_device *to)
{
	for (size_t i = 0; i < from->n_partitions; i++) {
		struct xpu_slice *s;
		int r = slice_dup(from->partitions[i], &s);

		if (r >= 0)
			r = device_add_partition(to, s);
		if (r < 0)
			return r;
	}
	return 0;
}

void device_profiles_clear(struct xpu_device *d)
{
	for (size_t i = 0; i < d->n_profiles; i++)
		free(d->profiles[i].name);
	free(d->profiles);
	d->profiles = NULL;
	d->n_profiles = 0;
}

int device_add_profile(struct xpu_device *d, const struct xpu_partition_profile *p)
{
	struct xpu_partition_profile *m = realloc(d->profiles, (d->n_profiles + 1) * sizeof(*m));

	if (!m)
		return -ENOMEM;
	d->profiles = m;
	m[d->n_profiles] = *p;
	m[d->n_profiles].name = p->name ? strdup(p->name) : NULL;
	if (p->name && !m[d->n_profiles].name)
		return -ENOMEM;
	d->n_profiles++;
	return 0;
}

static int profiles_copy(const struct xpu_device *from, struct xpu_device *to)
{
	for (size_t i = 0; i < from->n_profiles; i++)
		if (device_add_profile(to, &from->profiles[i]) < 0)
			return -ENOMEM;
	return 0;
}

static bool profiles_equal(const struct xpu_device *a, const struct xpu_device *b)
{
	if (a->n_profiles != b->n_profiles)
		return false;
	for (size_t i = 0; i < a->n_profiles; i++) {
		const struct xpu_partition_profile *x = &a->profiles[i], *y = &b->profiles[i];

		if (!streq_ptr(x->name, y->name) || x->free != y->free || x->total != y->total ||
		    x->memory_bytes != y->memory_bytes ||
		    x->compute_fraction != y->compute_fraction)
			return false;
	}
	return true;
}

const struct xpu_partition_profile *device_find_profile(const struct xpu_device *d,
							const char *name)
{
	for (size_t i = 0; i < d->n_profiles; i++)
		if (streq_ptr(d->profiles[i].name, name))
			return &d->profiles[i];
	return NULL;
}

/* Sets *ret to the formatted reason: 0, or -ENOMEM. */
_printf_(2, 3) static int reason_set(char **ret, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(ret, fmt, ap);
	va_end(ap);
	if (r < 0) {
		*ret = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int check_partition(const struct xpu_slice *s, size_t i, char **ret_reason)
{
	if (isempty(s->id))
		return reason_set(ret_reason, "partition %zu has no id", i);
	for (size_t a = 0; s->device_nodes && s->device_nodes[a]; a++) {
		if (isempty(s->device_nodes[a]))
			return reason_set(ret_reason, "partition %s has an empty device node",
					  s->id);
		for (size_t b = 0; b < a; b++)
			if (streq(s->device_nodes[a], s->device_nodes[b]))
				return reason_set(ret_reason,
						  "partition %s lists device node %s twice", s->id,
						  s->device_nodes[a]);
	}
	STRV_FOREACH (e, s->env)
		if (!strchr(*e, '=') || **e == '=')
			return reason_set(
			    ret_reason,
			    "partition %s has an environment entry that is not NAME=VALUE", s->id);
	return 0;
}

int device_check_partitioning(const struct xpu_device *d, char **ret_reason)
{
	*ret_reason = NULL;
	for (size_t i = 0; i < d->n_profiles; i++) {
		const struct xpu_partition_profile *p = &d->profiles[i];

		if (isempty(p->name))
			return reason_set(ret_reason, "partition profile %zu has no name", i);
		if (p->total == 0 || p->free > p->total)
			return reason_set(ret_reason,
					  "partition profile %s: %u free of %u instances", p->name,
					  p->free, p->total);
		for (size_t j = 0; j < i; j++)
			if (streq(d->profiles[j].name, p->name))
				return reason_set(ret_reason,
						  "partition profile %s is listed twice", p->name);
	}
	for (size_t i = 0; i < d->n_partitions; i++) {
		int r = check_partition(d->partitions[i], i, ret_reason);

		if (r < 0 || *ret_reason)
			return r;
		for (size_t j = 0; j < i; j++)
			if (streq_ptr(d->partitions[j]->id, d->partitions[i]->id))
				return reason_set(ret_reason, "partition %s is listed twice",
						  d->partitions[i]->id);
	}
	return 0;
}

void device_drop_partitioning(struct xpu_device *d)
{
	partitions_clear(d);
	device_profiles_clear(d);
	d->partitioned = false;
	d->partition_pending = false;
}

struct xpu_device *device_new(void)
{
	struct xpu_device *d = calloc(1, sizeof(*d));

	if (d)
		d->numa_node = -1;
	return d;
}

struct xpu_device *device_free(struct xpu_device *d)
{
	if (!d)
		return NULL;
	free(d->id);
	free(d->vendor);
	free(d->model);
	free(d->driver);
	free(d->cpu_list);
	free(d->uuid);
	strv_free(d->device_nodes);
	free(d->health.reason);
	free(d->resource);
	strv_free(d->env);
	strv_free(d->properties);
	partitions_clear(d);
	device_profiles_clear(d);
	free(d);
	return NULL;
}

int device_set_string(char **field, const char *s)
{
	char *c = NULL;

	if (s) {
		c = strdup(s);
		if (!c)
			return -ENOMEM;
	}
	free(*field);
	*field = c;
	return 0;
}

int device_dup(const struct xpu_device *d, struct xpu_device **ret)
{
	_cleanup_(device_freep) struct xpu_device *c = NULL;

	c = device_new();
	if (!c)
		return -ENOMEM;
	c->kind = d->kind;
	c->has_pci = d->has_pci;
	c->pci = d->pci;
	c->numa_node = d->numa_node;
	c->memory_bytes = d->memory_bytes;
	c->health.state = d->health.state;
	c->health.action = d->health.action;
	c->backend = d->backend;
	c->rules = d->rules;
	c->partitioned = d->partitioned;
	c->partition_capable = d->partition_capable;
	c->partition_pending = d->partition_pending;
	if (device_set_string(&c->id, d->id) < 0 || device_set_string(&c->vendor, d->vendor) < 0 ||
	    device_set_string(&c->model, d->model) < 0 ||
	    device_set_string(&c->driver, d->driver) < 0 ||
	    device_set_string(&c->cpu_list, d->cpu_list) < 0 ||
	    device_set_string(&c->uuid, d->uuid) < 0 ||
	    device_set_string(&c->health.reason, d->health.reason) < 0 ||
	    device_set_string(&c->resource, d->resource) < 0 ||
	    strv_copy(d->device_nodes, &c->device_nodes) < 0 || strv_copy(d->env, &c->env) < 0 ||
	    strv_copy(d->properties, &c->properties) < 0 || partitions_copy(d, c) < 0 ||
	    profiles_copy(d, c) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(c);
	return 0;
}

static bool partitions_equal(const struct xpu_device *a, const struct xpu_device *b)
{
	if (a->n_partitions != b->n_partitions)
		return false;
	for (size_t i = 0; i < a->n_partitions; i++)
		if (!slice_equal(a->partitions[i], b->partitions[i]))
			return false;
	return true;
}

/* Member by member: the struct has padding, whose bytes a copy need not preserve. */
static bool pci_info_equal(const struct xpu_pci_info *a, const struct xpu_pci_info *b)
{
	return strncmp(a->address, b->address, sizeof(a->address)) == 0 &&
	       a->vendor_id == b->vendor_id &&
	       a->device_id == b->device_id && a->subsystem_vendor_id == b->subsystem_vendor_id &&
	       a->subsystem_device_id == b->subsystem_device_id &&
	       a->class_code == b->class_code && a->revision == b->revision &&
	       a->link_speed_mts == b->link_speed_mts && a->link_width == b->link_width &&
	       a->max_link_speed_mts == b->max_link_speed_mts &&
	       a->max_link_width == b->max_link_width;
}

bool device_equal(const struct xpu_device *a, const struct xpu_device *b)
{
	return streq_ptr(a->id, b->id) && a->kind == b->kind && a->partitioned == b->partitioned &&
	       streq_ptr(a->vendor, b->vendor) &&
	       streq_ptr(a->model, b->model) && a->has_pci == b->has_pci &&
	       pci_info_equal(&a->pci, &b->pci) && streq_ptr(a->driver, b->driver) &&
	       a->numa_node == b->numa_node && streq_ptr(a->cpu_list, b->cpu_list) &&
	       a->memory_bytes == b->memory_bytes && streq_ptr(a->uuid, b->uuid) &&
	       strv_equal(a->device_nodes, b->device_nodes) &&
	       a->health.state == b->health.state &&
	       streq_ptr(a->health.reason, b->health.reason) && streq_ptr(a->backend, b->backend) &&
	       streq_ptr(a->resource, b->resource) && strv_equal(a->env, b->env) &&
	       strv_equal(a->properties, b->properties) && partitions_equal(a, b) &&
	       a->partition_capable == b->partition_capable &&
	       a->partition_pending == b->partition_pending && profiles_equal(a, b);
}

static char **prop_find(const struct xpu_device *d, const char *key)
{
	for (size_t i = 0; d->properties && d->properties[i] && d->properties[i + 1]; i += 2)
		if (streq(d->properties[i], key))
			return &d->properties[i + 1];
	return NULL;
}

const char *device_get_property(const struct xpu_device *d, const char *key)
{
	char **v = prop_find(d, key);

	return v ? *v : NULL;
}

const char *device_peer_property(const struct xpu_device *a, const char *prefix,
				 const struct xpu_device *b)
{
	/* a device's id is its PCI address where it has one; look the address up if not */
	bool other = b->has_pci && !streq(b->pci.address, b->id);
	size_t len = strlen(prefix);
	const char *by_address = NULL;

	for (size_t i = 0; a->properties && a->properties[i] && a->properties[i + 1]; i += 2) {
		const char *k = a->properties[i];

		if (strncmp(k, prefix, len) != 0)
			continue;
		if (streq(k + len, b->id))
			return a->properties[i + 1];
		if (other && streq(k + len, b->pci.address))
			by_address = a->properties[i + 1];
	}
	return by_address;
}

int device_set_property(struct xpu_device *d, const char *key, const char *value)
{
	char **v = prop_find(d, key);
	size_t n;
	int r;

	if (v)
		return device_set_string(v, value);
	n = strv_length(d->properties);
	r = strv_extend(&d->properties, key);
	if (r < 0)
		return r;
	r = strv_extend(&d->properties, value);
	if (r < 0) {
		free(d->properties[n]);
		d->properties[n] = NULL;
	}
	return r;
}

static int set_unhealthy(struct xpu_device *d, int action, const char *fmt, va_list ap)
	_printf_(3, 0);
static int set_unhealthy(struct xpu_device *d, int action, const char *fmt, va_list ap)
{
	char *s;

	if (d->health.state == XPU_HEALTH_UNHEALTHY && d->health.reason)
		return 0;
	if (vasprintf(&s, fmt, ap) < 0)
		return -ENOMEM;
	d->health.state = XPU_HEALTH_UNHEALTHY;
	free(d->health.reason);
	d->health.reason = s;
	d->health.action = action;
	return 0;
}

int device_set_unhealthy(struct xpu_device *d, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = set_unhealthy(d, 0, fmt, ap);
	va_end(ap);
	return r;
}

int device_set_fault(struct xpu_device *d, int action, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = set_unhealthy(d, action, fmt, ap);
	va_end(ap);
	return r;
}

static int fill_string(char **rich, const char *generic)
{
	return *rich || !generic ? 0 : device_set_string(rich, generic);
}

static int fill_strv(char ***rich, char *const *generic)
{
	if (strv_length(*rich) > 0)
		return 0;
	*rich = strv_free(*rich);
	return strv_copy(generic, rich);
}

int device_merge(struct xpu_device *rich, const struct xpu_device *generic)
{
	int r;

	if (fill_string(&rich->vendor, generic->vendor) < 0 ||
	    fill_string(&rich->model, generic->model) < 0 ||
	    fill_string(&rich->driver, generic->driver) < 0 ||
	    fill_string(&rich->cpu_list, generic->cpu_list) < 0 ||
	    fill_string(&rich->uuid, generic->uuid) < 0 ||
	    fill_string(&rich->resource, generic->resource) < 0 ||
	    fill_strv(&rich->device_nodes, generic->device_nodes) < 0 ||
	    fill_strv(&rich->env, generic->env) < 0)
		return -ENOMEM;
	if (!rich->has_pci && generic->has_pci) {
		rich->has_pci = true;
		rich->pci = generic->pci;
	} else if (rich->has_pci && generic->has_pci) {
		/* A vendor library rarely reports what config space says: class and revision. */
		if (!rich->pci.vendor_id && !rich->pci.device_id) {
			rich->pci.vendor_id = generic->pci.vendor_id;
			rich->pci.device_id = generic->pci.device_id;
		}
		if (!rich->pci.subsystem_vendor_id && !rich->pci.subsystem_device_id) {
			rich->pci.subsystem_vendor_id = generic->pci.subsystem_vendor_id;
			rich->pci.subsystem_device_id = generic->pci.subsystem_device_id;
		}
		if (!rich->pci.class_code)
			rich->pci.class_code = generic->pci.class_code;
		if (!rich->pci.revision)
			rich->pci.revision = generic->pci.revision;
		if (!rich->pci.link_width && !rich->pci.link_speed_mts) {
			rich->pci.link_speed_mts = generic->pci.link_speed_mts;
			rich->pci.link_width = generic->pci.link_width;
		}
		if (!rich->pci.max_link_width && !rich->pci.max_link_speed_mts) {
			rich->pci.max_link_speed_mts = generic->pci.max_link_speed_mts;
			rich->pci.max_link_width = generic->pci.max_link_width;
		}
	}
	if (rich->numa_node < 0)
		rich->numa_node = generic->numa_node;
	if (!rich->rules)
		rich->rules = generic->rules;
	if (rich->n_partitions == 0 && partitions_copy(generic, rich) < 0)
		return -ENOMEM;
	if (rich->n_profiles == 0 && profiles_copy(generic, rich) < 0)
		return -ENOMEM;
	if (rich->memory_bytes == 0)
		rich->memory_bytes = generic->memory_bytes;
	for (size_t i = 0; generic->properties && generic->properties[i] &&
			   generic->properties[i + 1];
	     i += 2) {
		if (device_get_property(rich, generic->properties[i]))
			continue;
		r = device_set_property(rich, generic->properties[i], generic->properties[i + 1]);
		if (r < 0)
			return r;
	}
	if (generic->health.state == XPU_HEALTH_UNHEALTHY &&
	    rich->health.state != XPU_HEALTH_UNHEALTHY)
		return device_set_fault(rich, generic->health.action, "%s",
					generic->health.reason ?: "reported by another backend");
	return 0;
}

int device_list_push(struct device_list *l, struct xpu_device *d)
{
	if (l->n == l->allocated) {
		size_t a = l->allocated ? l->allocated * 2 : 16;
		struct xpu_device **m = realloc(l->items, a * sizeof(*m));

		if (!m) {
			device_free(d);
			return -ENOMEM;
		}
		l->items = m;
		l->allocated = a;
	}
	l->items[l->n++] = d;
	return 0;
}

void device_list_clear(struct device_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		device_free(l->items[i]);
	free(l->items);
	*l = (struct device_list){};
}

static int device_cmp(const void *a, const void *b)
{
	return strcmp((*(struct xpu_device *const *)a)->id, (*(struct xpu_device *const *)b)->id);
}

void device_list_sort(struct device_list *l)
{
	if (l->n > 1)
		qsort(l->items, l->n, sizeof(*l->items), device_cmp);
}

struct xpu_device *device_list_find(const struct device_list *l, const char *id)
{
	for (size_t i = 0; i < l->n; i++)
		if (streq(l->items[i]->id, id))
			return l->items[i];
	return NULL;
}

struct xpu_device *device_list_lookup(const struct device_list *l, const char *key)
{
	char canon[13];

	if (isempty(key))
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		if (streq(l->items[i]->id, key) || streq_ptr(l->items[i]->uuid, key))
			return l->items[i];
	if (parse_pci_address(key, canon) < 0)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		if (l->items[i]->has_pci && streq(l->items[i]->pci.address, canon))
			return l->items[i];
	return NULL;
}
