// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdlib.h>
#include <string.h>

#include "core/plan.h"
#include "shared/strv.h"

void slice_list_clear(struct slice_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		slice_free(l->items[i]);
	free(l->items);
	*l = (struct slice_list){};
}

/*
 * A partition the backend reported, as a slice: the device's own nodes (a MIG instance is
 * reached through its GPU's) plus the partition's, its environment over the device's.
 */
static int slice_partition(const struct xpu_device *d, const struct xpu_slice *p,
			   struct xpu_slice **ret)
{
	_cleanup_(slice_freep) struct xpu_slice *s = NULL;
	int r;

	r = slice_dup(p, &s);
	if (r < 0)
		return r;
	if (device_set_string(&s->device_id, d->id) < 0)
		return -ENOMEM;
	strv_free(s->device_nodes);
	s->device_nodes = NULL;
	if (strv_copy(d->device_nodes, &s->device_nodes) < 0)
		return -ENOMEM;
	STRV_FOREACH(n, p->device_nodes)
		if (strv_extend_unique(&s->device_nodes, *n) < 0)
			return -ENOMEM;
	*ret = TAKE_PTR(s);
	return 0;
}

static int slice_whole(const struct xpu_device *d, struct xpu_slice **ret)
{
	struct xpu_slice *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->compute_fraction = 1.0;
	s->memory_bytes = d->memory_bytes;
	if (!(s->id = strdup(d->id)) || !(s->device_id = strdup(d->id)) ||
	    !(s->resource = strdup(d->resource ?: "xpu.dev/unknown")) ||
	    strv_copy(d->device_nodes, &s->device_nodes) < 0 || strv_copy(d->env, &s->env) < 0) {
		slice_free(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

int plan_slices(const struct device_list *devices, struct slice_list *ret)
{
	struct slice_list l = {};
	size_t n = 0;

	for (size_t i = 0; i < devices->n; i++)
		n += MAX(devices->items[i]->n_partitions, (size_t)1);
	l.items = calloc(n ?: 1, sizeof(*l.items));
	if (!l.items)
		return -ENOMEM;
	for (size_t i = 0; i < devices->n; i++) {
		const struct xpu_device *d = devices->items[i];
		int r = 0;

		if (d->n_partitions == 0 && !d->partitioned)
			r = slice_whole(d, &l.items[l.n++]);
		for (size_t p = 0; r >= 0 && p < d->n_partitions; p++)
			r = slice_partition(d, d->partitions[p], &l.items[l.n++]);
		if (r < 0) {
			l.n--; /* the failed slot is NULL */
			slice_list_clear(&l);
			return r;
		}
	}
	*ret = l;
	return 0;
}

void capacity_list_clear(struct capacity_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i].resource);
	free(l->items);
	*l = (struct capacity_list){};
}

static int capacity_cmp(const void *a, const void *b)
{
	return strcmp(((const struct capacity *)a)->resource, ((const struct capacity *)b)->resource);
}

int plan_capacity(const struct device_list *devices, const struct slice_list *slices,
		  const struct ledger *ledger, struct capacity_list *ret)
{
	struct capacity_list l = {};

	l.items = calloc(slices->n ?: 1, sizeof(*l.items));
	if (!l.items)
		return -ENOMEM;
	for (size_t i = 0; i < slices->n; i++) {
		const struct xpu_slice *s = slices->items[i];
		const struct xpu_device *d = device_list_find(devices, s->device_id);
		bool healthy = d && d->health.state == XPU_HEALTH_HEALTHY;
		struct capacity *c = NULL;

		for (size_t j = 0; j < l.n; j++)
			if (streq(l.items[j].resource, s->resource))
				c = &l.items[j];
		if (!c) {
			c = &l.items[l.n];
			c->resource = strdup(s->resource);
			if (!c->resource) {
				capacity_list_clear(&l);
				return -ENOMEM;
			}
			l.n++;
		}
		c->total++;
		if (healthy) {
			c->healthy++;
			c->free++;
		}
	}
	if (l.n > 1)
		qsort(l.items, l.n, sizeof(*l.items), capacity_cmp);
	*ret = l;
	return 0;
}
