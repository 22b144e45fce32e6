// SPDX-License-Identifier: GPL-2.0-or-later
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/policy.h"
#include "core/rules.h"
#include "shared/strv.h"

static const char *const offer_kind_table[_OFFER_KIND_MAX] = {
	[OFFER_WHOLE] = "whole",
	[OFFER_REPLICAS] = "replicas",
	[OFFER_MEMORY_SHARES] = "memory-shares",
};

const char *offer_kind_to_string(enum offer_kind k, const struct partition_scheme *scheme)
{
	if (k == OFFER_PARTITIONS)
		return scheme ? scheme->name : NULL;
	return k >= 0 && k < _OFFER_KIND_MAX ? offer_kind_table[k] : NULL;
}

enum offer_kind offer_kind_from_string(const char *s, const struct partition_scheme **ret_scheme)
{
	const struct partition_scheme *scheme = partition_scheme_find(s);

	if (ret_scheme)
		*ret_scheme = scheme;
	if (scheme)
		return OFFER_PARTITIONS;
	for (int i = 0; s && i < _OFFER_KIND_MAX; i++)
		if (offer_kind_table[i] && streq(s, offer_kind_table[i]))
			return (enum offer_kind)i;
	return _OFFER_KIND_INVALID;
}

char *offer_kinds_list(void)
{
	_cleanup_strv_free_ char **l = NULL;
	_cleanup_free_ char *head = NULL;
	size_t n;
	char *s;

	for (int i = 0; i < _OFFER_KIND_MAX; i++)
		if (offer_kind_table[i] && strv_extend(&l, offer_kind_table[i]) < 0)
			return NULL;
	for (const struct partition_scheme *const *sc = partition_schemes(); *sc; sc++)
		if (strv_extend(&l, (*sc)->name) < 0)
			return NULL;
	n = strv_length(l);
	s = l[n - 1];
	l[n - 1] = NULL;
	head = strv_join(l, ", ");
	l[n - 1] = s;
	if (!head || asprintf(&s, "%s or %s", head, l[n - 1]) < 0)
		return NULL;
	return s;
}

void offer_done(struct offer *o)
{
	strv_free(o->layout);
	free(o->resource);
	*o = (struct offer){};
}

int offer_copy(const struct offer *src, struct offer *dst)
{
	struct offer o = *src;

	o.layout = NULL;
	o.resource = NULL;
	if (strv_copy(src->layout, &o.layout) < 0 ||
	    (src->resource && !(o.resource = strdup(src->resource)))) {
		offer_done(&o);
		return -ENOMEM;
	}
	*dst = o;
	return 0;
}

bool offer_equal(const struct offer *a, const struct offer *b)
{
	return a->kind == b->kind && a->count == b->count && a->share_bytes == b->share_bytes &&
	       a->compute == b->compute && a->scheme == b->scheme && a->enable == b->enable &&
	       strv_equal(a->layout, b->layout) && streq_ptr(a->resource, b->resource);
}

char *offer_to_string(const struct offer *o)
{
	char *s = NULL;
	int r = -1;

	switch (o->kind) {
	case OFFER_WHOLE:
		r = asprintf(&s, "whole");
		break;
	case OFFER_REPLICAS:
		r = asprintf(&s, "replicas=%u", o->count);
		break;
	case OFFER_MEMORY_SHARES:
		if (o->share_bytes)
			r = asprintf(&s, "memory-shares=%ux%lluMiB@%.3g", o->count,
				     (unsigned long long)(o->share_bytes >> 20), o->compute);
		else
			r = asprintf(&s, "memory-shares=%u", o->count);
		break;
	case OFFER_PARTITIONS: {
		_cleanup_free_ char *list = o->layout ? strv_join(o->layout, ",") : strdup("?");

		r = list ? asprintf(&s, "%s=%s", o->scheme ? o->scheme->name : "?", list) : -1;
		break;
	}
	default:
		break;
	}
	return r < 0 ? NULL : s;
}

static void selector_done(struct selector *s)
{
	free(s->vendor);
	free(s->model);
	free(s->pci);
	free(s->uuid);
	*s = (struct selector){};
}

void policy_done(struct policy *p)
{
	for (size_t i = 0; i < p->n_rules; i++) {
		selector_done(&p->rules[i].match);
		offer_done(&p->rules[i].offer);
	}
	free(p->rules);
	*p = (struct policy){};
}

bool selector_matches(const struct selector *s, const struct xpu_device *d)
{
	if (s->all)
		return true;
	if (s->vendor && !streq_ptr(s->vendor, d->vendor))
		return false;
	if (s->model && (!d->model || fnmatch(s->model, d->model, 0) != 0))
		return false;
	if (s->pci && !(d->has_pci && streq(s->pci, d->pci.address)))
		return false;
	if (s->uuid && !streq_ptr(s->uuid, d->uuid))
		return false;
	/* a selector with no field at all matches nothing: the parser refuses it anyway */
	return s->vendor || s->model || s->pci || s->uuid;
}

const struct offer *policy_offer_for(const struct policy *p, const struct xpu_device *d)
{
	static const struct offer whole = { .kind = OFFER_WHOLE };

	for (size_t i = 0; p && i < p->n_rules; i++)
		if (selector_matches(&p->rules[i].match, d))
			return &p->rules[i].offer;
	return &whole;
}
