// SPDX-License-Identifier: GPL-2.0-or-later
/* xpud's persistent state: the in-memory part. Loading and saving follow below it. */
#include <stdlib.h>
#include <string.h>

#include "core/state.h"

void state_done(struct state *s)
{
	ledger_clear(&s->ledger);
	for (size_t i = 0; i < s->n_applied; i++) {
		free(s->applied[i].device_id);
		offer_done(&s->applied[i].offer);
	}
	free(s->applied);
	*s = (struct state){};
}

const struct offer *state_applied(const struct state *s, const char *device_id)
{
	for (size_t i = 0; s && i < s->n_applied; i++)
		if (streq(s->applied[i].device_id, device_id))
			return &s->applied[i].offer;
	return NULL;
}

int state_set_applied(struct state *s, const char *device_id, const struct offer *o)
{
	struct offer copy;
	struct applied_offer *m;

	if (offer_copy(o, &copy) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_applied; i++)
		if (streq(s->applied[i].device_id, device_id)) {
			offer_done(&s->applied[i].offer);
			s->applied[i].offer = copy;
			return 0;
		}
	m = realloc(s->applied, (s->n_applied + 1) * sizeof(*m));
	if (!m) {
		offer_done(&copy);
		return -ENOMEM;
	}
	s->applied = m;
	m[s->n_applied].device_id = strdup(device_id);
	if (!m[s->n_applied].device_id) {
		offer_done(&copy);
		return -ENOMEM;
	}
	m[s->n_applied++].offer = copy;
	return 0;
}

void state_unset_applied(struct state *s, const char *device_id)
{
	for (size_t i = 0; i < s->n_applied; i++)
		if (streq(s->applied[i].device_id, device_id)) {
			free(s->applied[i].device_id);
			offer_done(&s->applied[i].offer);
			memmove(s->applied + i, s->applied + i + 1,
				(s->n_applied - i - 1) * sizeof(*s->applied));
			s->n_applied--;
			return;
		}
}
