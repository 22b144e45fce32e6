// TEMPORARY local stub (the libdrm branch owns this file)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "backends/drm-internal.h"
void drm_card_list_done(struct drm_card_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].driver);
		free(l->items[i].card);
		free(l->items[i].render);
	}
	free(l->items);
	*l = (struct drm_card_list){};
}
int drm_card_list_add(struct drm_card_list *l, const struct drm_card *c)
{
	struct drm_card *m = reallocarray(l->items, l->n + 1, sizeof(*m));
	struct drm_card n = *c;
	if (!m)
		return -ENOMEM;
	l->items = m;
	n.driver = c->driver ? strdup(c->driver) : NULL;
	n.card = c->card ? strdup(c->card) : NULL;
	n.render = c->render ? strdup(c->render) : NULL;
	l->items[l->n++] = n;
	return 0;
}
const struct drm_card *drm_card_by_render_minor(const struct drm_card_list *l, int minor)
{
	for (size_t i = 0; l && i < l->n; i++)
		if (l->items[i].render_minor == minor)
			return &l->items[i];
	return NULL;
}
int drm_list_libdrm(struct drm_card_list *ret)
{
	(void)ret;
	return -ENOENT;
}
