// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backends/helper-config.h"
#include "backends/nvidia-config.h"
#include "shared/macro.h"
#include "shared/parse.h"

#define XID_ACTIONS_HELP "(actions: ignore, app-error, restart-app, reset-gpu, reboot-node)"

static int xid_actions_add(struct xid_actions *l, unsigned xid, enum health_action a)
{
	struct xid_action *m = realloc(l->items, (l->n + 1) * sizeof(*m));

	if (!m)
		return -ENOMEM;
	l->items = m;
	l->items[l->n++] = (struct xid_action){xid, a};
	return 0;
}

/* One "XID:ACTION" of the old form (trimmed); false when it is not one. */
static bool xid_item_parse(const char *item, unsigned *ret_xid, enum health_action *ret_action)
{
	const char *colon = strchr(item, ':');
	char num[16];
	int a;

	if (!colon || (size_t)(colon - item) >= sizeof(num))
		return false;
	memcpy(num, item, (size_t)(colon - item));
	num[colon - item] = '\0';
	a = health_action_from_string(colon + 1 + strspn(colon + 1, " \t"));
	if (a < 0 || safe_atou(num, ret_xid) < 0 || *ret_xid == 0)
		return false;
	*ret_action = (enum health_action)a;
	return true;
}

/* The old form, one string: "79:reset-gpu, 13:ignore". */
static int xid_actions_parse_text(struct config_ctx *x, const struct config_value *v,
				  const char *text, struct xid_actions *ret)
{
	_cleanup_free_ char *copy = strdup(text);
	char *item, *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		enum health_action a;
		unsigned xid;
		int r;

		item += strspn(item, " \t");
		strstrip_trailing(item);
		if (!xid_item_parse(item, &xid, &a))
			return config_fail(x, v->line,
					   "%s: '%s' is not XID:ACTION " XID_ACTIONS_HELP, v->key,
					   item);
		r = xid_actions_add(ret, xid, a);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The new form, a mapping: {79: reset-gpu, 13: ignore}. */
static int xid_actions_parse_map(struct config_ctx *x, const struct config_value *v,
				 struct xid_actions *ret)
{
	for (size_t i = 0; i < config_node_size(v->node); i++) {
		const struct config_node *kn, *vn;
		const char *xt, *at;
		unsigned xid;
		int a, r;

		config_node_pair(x, v->node, i, &kn, &vn);
		xt = config_node_text(kn);
		at = config_node_text(vn);
		if (!xt || safe_atou(xt, &xid) < 0 || xid == 0)
			return config_fail(x, config_node_line(kn),
					   "%s: expected an XID (a number from 1), got %s%s%s",
					   v->key, xt ? "'" : "", xt ?: config_node_shape(kn),
					   xt ? "'" : "");
		a = at ? health_action_from_string(at) : -EINVAL;
		if (a < 0)
			return config_fail(
			    x, config_node_line(vn),
			    "%s: XID %u: expected an action, got %s%s%s " XID_ACTIONS_HELP, v->key,
			    xid, at ? "'" : "", at ?: config_node_shape(vn), at ? "'" : "");
		for (size_t j = 0; j < ret->n; j++)
			if (ret->items[j].xid == xid)
				return config_fail(x, config_node_line(kn),
						   "%s: XID %u is given twice", v->key, xid);
		r = xid_actions_add(ret, xid, (enum health_action)a);
		if (r < 0)
			return r;
	}
	return 0;
}

static void xid_actions_done(void *field)
{
	struct xid_actions *l = field;

	l->items = mfree(l->items);
	l->n = 0;
}

static int xid_actions_parse(struct config_ctx *x, const struct config_key *k,
			     const struct config_value *v, void *field)
{
	struct xid_actions list = {};
	const char *text = config_node_text(v->node);
	int r;

	if (text) {
		r = config_value_text(x, v, &text);
		if (r >= 0)
			r = xid_actions_parse_text(x, v, text, &list);
	} else if (config_node_kind(v->node) == CONFIG_NODE_MAPPING) {
		r = xid_actions_parse_map(x, v, &list);
	} else {
		return config_fail(
		    x, v->line,
		    "%s: expected a mapping of XID to action such as {79: reset-gpu}, "
		    "not %s",
		    v->key, config_node_shape(v->node));
	}
	if (r < 0) {
		xid_actions_done(&list);
		return r;
	}
	xid_actions_done(field);
	*(struct xid_actions *)field = list;
	return 0;
}

static const struct config_key nvidia_keys[] = {
    CONFIG_KEY_STRING("nvml-library", struct nvidia_config, nvml_library),
    CONFIG_KEY_STRING("cuda-library", struct nvidia_config, cuda_library),
    CONFIG_KEY_CUSTOM("xid-actions", xid_actions_parse, struct nvidia_config, xid_actions,
		      .done = xid_actions_done),
    HELPER_BACKEND_CONFIG_KEYS(struct nvidia_config),
    CONFIG_KEY_SIZE("helper-memory", struct nvidia_config, helper_memory),
    {},
};

static const struct config_alias nvidia_aliases[] = {
    {"nvml-library", "nvml-library"},
    {"cuda-library", "cuda-library"},
    {"nvidia-xid-actions", "xid-actions"},
    {},
};

const struct config_section nvidia_config_section = {
    .name = "nvidia",
    .keys = nvidia_keys,
    .size = sizeof(struct nvidia_config),
    .aliases = nvidia_aliases,
};

const struct nvidia_config *nvidia_config_get(const struct config *c)
{
	static const struct nvidia_config defaults = {};
	const struct nvidia_config *n = config_section(c, nvidia_config_section.name);

	return n ?: &defaults;
}
