// SPDX-License-Identifier: GPL-2.0-or-later
/* The allocation ledger: plain data, no I/O. The allocator proper is in allocator.c. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "shared/strv.h"

static const char *const owner_kind_table[_OWNER_KIND_MAX] = {
	[OWNER_NONE] = "none", [OWNER_PID] = "pid",	[OWNER_CGROUP] = "cgroup",
	[OWNER_UNIT] = "unit", [OWNER_POD] = "pod",
};

const char *owner_kind_to_string(enum owner_kind k)
{
	return k >= 0 && k < _OWNER_KIND_MAX ? owner_kind_table[k] : NULL;
}

enum owner_kind owner_kind_from_string(const char *s)
{
	for (int i = 0; s && i < _OWNER_KIND_MAX; i++)
		if (streq(s, owner_kind_table[i]))
			return (enum owner_kind)i;
	return _OWNER_KIND_INVALID;
}

struct allocation *allocation_free(struct allocation *a)
{
	if (!a)
		return NULL;
	free(a->id);
	free(a->resource);
	strv_free(a->slices);
	free(a->owner.value);
	free(a);
	return NULL;
}

int allocation_dup(const struct allocation *a, struct allocation **ret)
{
	_cleanup_(allocation_freep) struct allocation *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->owner.kind = a->owner.kind;
	c->owner.pid_start = a->owner.pid_start;
	c->created_usec = a->created_usec;
	c->release_pending = a->release_pending;
	if (!(c->id = strdup(a->id)) || (a->resource && !(c->resource = strdup(a->resource))) ||
	    strv_copy(a->slices, &c->slices) < 0 ||
	    (a->owner.value && !(c->owner.value = strdup(a->owner.value))))
		return -ENOMEM;
	*ret = TAKE_PTR(c);
	return 0;
}

void ledger_clear(struct ledger *l)
{
	for (size_t i = 0; i < l->n; i++)
		allocation_free(l->items[i]);
	free(l->items);
	*l = (struct ledger){};
}

int ledger_add(struct ledger *l, struct allocation *a)
{
	struct allocation **m = realloc(l->items, (l->n + 1) * sizeof(*m));

	if (!m) {
		allocation_free(a);
		return -ENOMEM;
	}
	l->items = m;
	l->items[l->n++] = a;
	return 0;
}

int ledger_remove(struct ledger *l, const char *id)
{
	for (size_t i = 0; i < l->n; i++)
		if (streq(l->items[i]->id, id)) {
			allocation_free(l->items[i]);
			memmove(l->items + i, l->items + i + 1, (l->n - i - 1) * sizeof(*l->items));
			l->n--;
			return 0;
		}
	return -ENOENT;
}

struct allocation *ledger_find(const struct ledger *l, const char *id)
{
	for (size_t i = 0; l && i < l->n; i++)
		if (streq(l->items[i]->id, id))
			return l->items[i];
	return NULL;
}

struct allocation *ledger_find_slice(const struct ledger *l, const char *slice_id)
{
	for (size_t i = 0; l && i < l->n; i++)
		if (strv_contains(l->items[i]->slices, slice_id))
			return l->items[i];
	return NULL;
}

bool ledger_device_busy(const struct ledger *l, const struct slice_list *slices,
			const char *device_id)
{
	for (size_t i = 0; slices && i < slices->n; i++)
		if (streq(slices->items[i]->device_id, device_id) &&
		    ledger_find_slice(l, slices->items[i]->id))
			return true;
	return false;
}

void alloc_request_done(struct alloc_request *r)
{
	free(r->resource);
	strv_free(r->slices);
	free(r->device);
	*r = (struct alloc_request){};
}

void fit_result_done(struct fit_result *r)
{
	strv_free(r->slices);
	free(r->resource);
	*r = (struct fit_result){};
}
