// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The list of DRM devices that both listers (drm.c's sysfs one, drm-libdrm.c's) fill in and
 * the rest of the DRM backend reads (drm-internal.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backends/drm-internal.h"
#include "shared/macro.h"

static void drm_card_done(struct drm_card *c)
{
	free(c->driver);
	free(c->card);
	free(c->render);
}

void drm_card_list_done(struct drm_card_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		drm_card_done(&l->items[i]);
	l->items = mfree(l->items);
	l->n = 0;
}

/* strdup() that keeps NULL. 0 or -ENOMEM. */
static int dup_or_null(const char *s, char **ret)
{
	*ret = NULL;
	if (s && !(*ret = strdup(s)))
		return -ENOMEM;
	return 0;
}

int drm_card_list_add(struct drm_card_list *l, const struct drm_card *c)
{
	struct drm_card copy = {
		.card_minor = c->card_minor,
		.render_minor = c->render_minor,
	};
	struct drm_card *items;

	/* the address is a fixed array of the same size in both */
	memcpy(copy.address, c->address, sizeof(copy.address));
	if (dup_or_null(c->driver, &copy.driver) < 0 || dup_or_null(c->card, &copy.card) < 0 ||
	    dup_or_null(c->render, &copy.render) < 0)
		goto oom;
	/* the array holds 4 items, then doubles when full (n 4, 8, 16...): no capacity field */
	if (l->n == 0 || (l->n >= 4 && (l->n & (l->n - 1)) == 0)) {
		items = reallocarray(l->items, l->n ? l->n * 2 : 4, sizeof(*items));
		if (!items)
			goto oom;
		l->items = items;
	}
	l->items[l->n++] = copy;
	return 0;
oom:
	drm_card_done(&copy);
	return -ENOMEM;
}

const struct drm_card *drm_card_by_render_minor(const struct drm_card_list *l, int minor)
{
	if (!l || minor < 0)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		if (l->items[i].render_minor == minor)
			return &l->items[i];
	return NULL;
}
