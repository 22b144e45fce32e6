// SPDX-License-Identifier: GPL-2.0-or-later
/* xpud's persistent state: the in-memory part. Its JSON form is state-json.c, the file
 * state-file.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/state.h"
#include "shared/strv.h"

static void offers_clear(struct applied_offer *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(a[i].device_id);
		offer_done(&a[i].offer);
	}
	free(a);
}

void repartition_done(struct repartition *r)
{
	free(r->device_id);
	offer_done(&r->target);
	offer_done(&r->previous);
	offer_done(&r->previous_layout);
	free(r->error);
	*r = (struct repartition){};
}

void state_done(struct state *s)
{
	ledger_clear(&s->ledger);
	offers_clear(s->applied, s->n_applied);
	offers_clear(s->layouts, s->n_layouts);
	for (size_t i = 0; i < s->n_cordons; i++) {
		free(s->cordons[i].device_id);
		free(s->cordons[i].reason);
	}
	free(s->cordons);
	for (size_t i = 0; i < s->n_repartitions; i++)
		repartition_done(&s->repartitions[i]);
	free(s->repartitions);
	*s = (struct state){};
}

static const char *const repartition_phases[_REPARTITION_PHASE_MAX] = {
	[REPARTITION_DRAINING] = "draining",
	[REPARTITION_APPLYING] = "applying",
	[REPARTITION_ROLLING_BACK] = "rolling-back",
};

const char *repartition_phase_to_string(enum repartition_phase p)
{
	return p >= 0 && p < _REPARTITION_PHASE_MAX ? repartition_phases[p] : NULL;
}

enum repartition_phase repartition_phase_from_string(const char *s)
{
	for (int i = 0; s && i < _REPARTITION_PHASE_MAX; i++)
		if (streq(repartition_phases[i], s))
			return i;
	return _REPARTITION_PHASE_INVALID;
}

/* Per-device offers (applied, layouts): find, set (a copy), unset. */
static const struct offer *offers_find(const struct applied_offer *a, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (streq(a[i].device_id, id))
			return &a[i].offer;
	return NULL;
}

static int offers_set(struct applied_offer **a, size_t *n, const char *id, const struct offer *o)
{
	struct offer copy;
	struct applied_offer *m;

	if (offer_copy(o, &copy) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < *n; i++)
		if (streq((*a)[i].device_id, id)) {
			offer_done(&(*a)[i].offer);
			(*a)[i].offer = copy;
			return 0;
		}
	m = realloc(*a, (*n + 1) * sizeof(*m));
	if (!m) {
		offer_done(&copy);
		return -ENOMEM;
	}
	*a = m;
	m[*n].device_id = strdup(id);
	if (!m[*n].device_id) {
		offer_done(&copy);
		return -ENOMEM;
	}
	m[(*n)++].offer = copy;
	return 0;
}

static void offers_unset(struct applied_offer *a, size_t *n, const char *id)
{
	for (size_t i = 0; i < *n; i++)
		if (streq(a[i].device_id, id)) {
			free(a[i].device_id);
			offer_done(&a[i].offer);
			memmove(a + i, a + i + 1, (*n - i - 1) * sizeof(*a));
			(*n)--;
			return;
		}
}

const struct offer *state_applied(const struct state *s, const char *device_id)
{
	return s ? offers_find(s->applied, s->n_applied, device_id) : NULL;
}

int state_set_applied(struct state *s, const char *device_id, const struct offer *o)
{
	return offers_set(&s->applied, &s->n_applied, device_id, o);
}

void state_unset_applied(struct state *s, const char *device_id)
{
	offers_unset(s->applied, &s->n_applied, device_id);
}

const struct offer *state_layout(const struct state *s, const char *device_id)
{
	return s ? offers_find(s->layouts, s->n_layouts, device_id) : NULL;
}

int state_set_layout(struct state *s, const char *device_id, const struct offer *o)
{
	return offers_set(&s->layouts, &s->n_layouts, device_id, o);
}

void state_unset_layout(struct state *s, const char *device_id)
{
	offers_unset(s->layouts, &s->n_layouts, device_id);
}

const struct device_cordon *state_cordon(const struct state *s, const char *device_id)
{
	for (size_t i = 0; s && i < s->n_cordons; i++)
		if (streq(s->cordons[i].device_id, device_id))
			return &s->cordons[i];
	return NULL;
}

int state_set_cordon(struct state *s, const char *device_id, const char *reason,
		     uint64_t since_usec)
{
	struct device_cordon *c = (struct device_cordon *)state_cordon(s, device_id), *m;
	char *copy = strdup(reason ?: "");

	if (!copy)
		return -ENOMEM;
	if (c) {
		free(c->reason);
		c->reason = copy;
		return 0;
	}
	m = realloc(s->cordons, (s->n_cordons + 1) * sizeof(*m));
	if (!m) {
		free(copy);
		return -ENOMEM;
	}
	s->cordons = m;
	c = &m[s->n_cordons];
	*c = (struct device_cordon){ .device_id = strdup(device_id), .reason = copy,
				     .since_usec = since_usec };
	if (!c->device_id) {
		free(copy);
		return -ENOMEM;
	}
	s->n_cordons++;
	return 0;
}

bool state_unset_cordon(struct state *s, const char *device_id)
{
	for (size_t i = 0; i < s->n_cordons; i++)
		if (streq(s->cordons[i].device_id, device_id)) {
			free(s->cordons[i].device_id);
			free(s->cordons[i].reason);
			memmove(s->cordons + i, s->cordons + i + 1,
				(s->n_cordons - i - 1) * sizeof(*s->cordons));
			s->n_cordons--;
			return true;
		}
	return false;
}

struct repartition *state_repartition(const struct state *s, const char *device_id)
{
	for (size_t i = 0; s && i < s->n_repartitions; i++)
		if (streq(s->repartitions[i].device_id, device_id))
			return &s->repartitions[i];
	return NULL;
}

int state_add_repartition(struct state *s, struct repartition *r)
{
	struct repartition *m;

	if (state_repartition(s, r->device_id))
		return -EBUSY;
	m = realloc(s->repartitions, (s->n_repartitions + 1) * sizeof(*m));
	if (!m)
		return -ENOMEM;
	s->repartitions = m;
	m[s->n_repartitions++] = *r;
	*r = (struct repartition){};
	return 0;
}

void state_remove_repartition(struct state *s, const char *device_id)
{
	for (size_t i = 0; i < s->n_repartitions; i++)
		if (streq(s->repartitions[i].device_id, device_id)) {
			repartition_done(&s->repartitions[i]);
			memmove(s->repartitions + i, s->repartitions + i + 1,
				(s->n_repartitions - i - 1) * sizeof(*s->repartitions));
			s->n_repartitions--;
			return;
		}
}
