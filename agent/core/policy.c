// SPDX-License-Identifier: GPL-2.0-or-later
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/policy.h"
#include "shared/strv.h"

static const char *const offer_kind_table[_OFFER_KIND_MAX] = {
	[OFFER_WHOLE] = "whole",
	[OFFER_REPLICAS] = "replicas",
	[OFFER_MEMORY_SHARES] = "memory-shares",
	[OFFER_MIG] = "mig",
	[OFFER_AMD_PARTITION] = "amd-partition",
};

const char *offer_kind_to_string(enum offer_kind k)
{
	return k >= 0 && k < _OFFER_KIND_MAX ? offer_kind_table[k] : NULL;
}

enum offer_kind offer_kind_from_string(const char *s)
{
	for (int i = 0; s && i < _OFFER_KIND_MAX; i++)
		if (streq(s, offer_kind_table[i]))
			return (enum offer_kind)i;
	return _OFFER_KIND_INVALID;
}

void offer_done(struct offer *o)
{
	strv_free(o->mig_profiles);
	free(o->amd_mode);
	free(o->resource);
	*o = (struct offer){};
}

int offer_copy(const struct offer *src, struct offer *dst)
{
	struct offer o = *src;

	o.mig_profiles = NULL;
	o.amd_mode = NULL;
	o.resource = NULL;
	if (strv_copy(src->mig_profiles, &o.mig_profiles) < 0 ||
	    (src->amd_mode && !(o.amd_mode = strdup(src->amd_mode))) ||
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
	       a->compute == b->compute && a->mig_enable == b->mig_enable &&
	       strv_equal(a->mig_profiles, b->mig_profiles) && streq_ptr(a->amd_mode, b->amd_mode) &&
	       streq_ptr(a->resource, b->resource);
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
	case OFFER_MIG: {
		_cleanup_free_ char *list = strv_join(o->mig_profiles, ",");

		r = list ? asprintf(&s, "mig=%s", list) : -1;
		break;
	}
	case OFFER_AMD_PARTITION:
		r = asprintf(&s, "amd-partition=%s", o->amd_mode ?: "?");
		break;
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
