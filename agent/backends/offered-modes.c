// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <stdlib.h>

#include "backends/offered-modes.h"
#include "shared/strv.h"

void offered_modes_init(struct offered_modes *m)
{
	*m = (struct offered_modes){};
	pthread_mutex_init(&m->lock, NULL);
}

void offered_modes_done(struct offered_modes *m)
{
	m->ids = strv_free(m->ids);
	pthread_mutex_destroy(&m->lock);
}

bool offered_modes_get(struct offered_modes *m, const char *id)
{
	bool on;

	if (!m)
		return false;
	pthread_mutex_lock(&m->lock);
	on = strv_contains(m->ids, id);
	pthread_mutex_unlock(&m->lock);
	return on;
}

int offered_modes_set(struct offered_modes *m, const char *id, bool on)
{
	size_t k = 0;
	int r = 0;

	pthread_mutex_lock(&m->lock);
	if (on && !strv_contains(m->ids, id)) {
		r = strv_extend(&m->ids, id);
	} else if (!on) {
		for (size_t i = 0; m->ids && m->ids[i]; i++) {
			if (streq(m->ids[i], id))
				free(m->ids[i]);
			else
				m->ids[k++] = m->ids[i];
		}
		if (m->ids)
			m->ids[k] = NULL;
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}
