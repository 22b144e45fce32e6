// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/enforce-unit.h"
#include "shared/parse.h"
#include "shared/strv.h"

#define MAX_CPU 65535

const char *unit_prop_signature(enum unit_prop_kind k)
{
	static const char *const sig[] = {
		[UNIT_PROP_STRING] = "s", [UNIT_PROP_U64] = "t",   [UNIT_PROP_STRV] = "as",
		[UNIT_PROP_PAIRS] = "a(ss)", [UNIT_PROP_BYTES] = "ay", [UNIT_PROP_PIDS] = "au",
	};

	return (unsigned)k < ELEMENTSOF(sig) ? sig[k] : NULL;
}

void unit_props_done(struct unit_props *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->items[i].s);
		strv_free(p->items[i].strv);
		free(p->items[i].bytes);
	}
	p->items = mfree(p->items);
	p->n = 0;
	p->unit = mfree(p->unit);
}

static int set_bit(uint8_t **mask, size_t *n, unsigned bit)
{
	if (bit / 8 >= *n) {
		uint8_t *m = realloc(*mask, bit / 8 + 1);

		if (!m)
			return -ENOMEM;
		memset(m + *n, 0, bit / 8 + 1 - *n);
		*mask = m;
		*n = bit / 8 + 1;
	}
	(*mask)[bit / 8] |= (uint8_t)(1U << (bit % 8));
	return 0;
}

int cpu_list_to_mask(const char *list, uint8_t **ret, size_t *ret_n)
{
	_cleanup_free_ char *copy = strdup(list ?: "");
	_cleanup_free_ uint8_t *mask = NULL;
	char *save = NULL;
	size_t n = 0;
	int r;

	if (!copy)
		return -ENOMEM;
	if (!copy[0])
		return -EINVAL;
	for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(item, '-');
		unsigned lo, hi;

		if (dash)
			*dash = 0;
		if (safe_atou(item, &lo) < 0 || (dash && safe_atou(dash + 1, &hi) < 0))
			return -EINVAL;
		if (!dash)
			hi = lo;
		if (hi < lo || hi > MAX_CPU)
			return -EINVAL;
		for (unsigned c = lo; c <= hi; c++)
			if ((r = set_bit(&mask, &n, c)) < 0)
				return r;
	}
	*ret = TAKE_PTR(mask);
	*ret_n = n;
	return 0;
}

struct unit_prop *unit_props_add(struct unit_props *p, const char *name, enum unit_prop_kind kind)
{
	struct unit_prop *items = realloc(p->items, (p->n + 1) * sizeof(*items));

	if (!items)
		return NULL;
	p->items = items;
	items[p->n] = (struct unit_prop){ .name = name, .kind = kind };
	return &items[p->n++];
}

static int add_string(struct unit_props *p, const char *name, const char *value)
{
	struct unit_prop *u = unit_props_add(p, name, UNIT_PROP_STRING);

	if (!u || !(u->s = strdup(value)))
		return -ENOMEM;
	return 0;
}

/* @id's scope taking @pid, or (@pid 0) the existing unit @unit: no Description, Slice, PIDs. */
static int build(const char *id, const char *unit, const struct grant *g, pid_t pid,
		 const struct enforce_limits *l, struct unit_props *p)
{
	struct unit_prop *u;
	char desc[128];
	int r;

	if (pid == 0)
		p->unit = strdup(unit);
	else if (asprintf(&p->unit, "xpu-%s.scope", id) < 0)
		p->unit = NULL;
	if (!p->unit)
		return -ENOMEM;
	snprintf(desc, sizeof(desc), "xpud allocation %s", id);
	if ((pid != 0 && (add_string(p, "Description", desc) < 0 ||
			  add_string(p, "Slice", ENFORCE_UNIT_SLICE) < 0)) ||
	    add_string(p, "DevicePolicy", "closed") < 0)
		return -ENOMEM;
	/* on an existing unit, an empty list first: SetUnitProperties appends to the unit's own */
	if (pid == 0 && !unit_props_add(p, "DeviceAllow", UNIT_PROP_PAIRS))
		return -ENOMEM;
	u = unit_props_add(p, "DeviceAllow", UNIT_PROP_PAIRS);
	if (!u)
		return -ENOMEM;
	STRV_FOREACH(node, g->device_nodes)
		if (strv_extend(&u->strv, *node) < 0 || strv_extend(&u->strv, "rw") < 0)
			return -ENOMEM;
	if (l->numa_cpus) {
		if (g->numa_node < 0 || !g->cpu_list)
			return -EINVAL;
		u = unit_props_add(p, "AllowedCPUs", UNIT_PROP_BYTES);
		if (!u)
			return -ENOMEM;
		r = cpu_list_to_mask(g->cpu_list, &u->bytes, &u->n_bytes);
		if (r < 0)
			return r;
		u = unit_props_add(p, "AllowedMemoryNodes", UNIT_PROP_BYTES);
		if (!u)
			return -ENOMEM;
		if (set_bit(&u->bytes, &u->n_bytes, (unsigned)g->numa_node) < 0)
			return -ENOMEM;
	}
	if (l->memory_max) {
		u = unit_props_add(p, "MemoryMax", UNIT_PROP_U64);
		if (!u)
			return -ENOMEM;
		u->t = l->memory_max;
	}
	if (l->cpu_quota) {
		if (l->cpu_quota > 100000)
			return -EINVAL;
		u = unit_props_add(p, "CPUQuotaPerSecUSec", UNIT_PROP_U64);
		if (!u)
			return -ENOMEM;
		u->t = (uint64_t)l->cpu_quota * 10000; /* 1% of a CPU: 10 ms each second */
	}
	/*
	 * No Environment=: systemd refuses it for a scope, whose processes it does not start; the
	 * grant's environment reaches the command through whoever starts it (xpuctl run).
	 */
	if (pid == 0)
		return 0;
	u = unit_props_add(p, "PIDs", UNIT_PROP_PIDS);
	if (!u)
		return -ENOMEM;
	u->pid = (uint32_t)pid;
	return 0;
}

static int build_to(const char *id, const char *unit, const struct grant *g, pid_t pid,
		    const struct enforce_limits *limits, struct unit_props *ret)
{
	struct unit_props p = {};
	int r = build(id, unit, g, pid, limits, &p);

	if (r < 0) {
		unit_props_done(&p);
		return r;
	}
	*ret = p;
	return 0;
}

int unit_props_build(const char *id, const struct grant *g, pid_t pid,
		     const struct enforce_limits *limits, struct unit_props *ret)
{
	return build_to(id, NULL, g, pid, limits, ret);
}

int unit_props_build_existing(const char *id, const char *unit, const struct grant *g,
			      const struct enforce_limits *limits, struct unit_props *ret)
{
	return build_to(id, unit, g, 0, limits, ret);
}


/* The properties a saved set may hold, as literals for unit_prop's name, and their kinds. */
static const struct {
	const char *name;
	enum unit_prop_kind kind;
} saved_props[] = {
	{ "DevicePolicy", UNIT_PROP_STRING }, { "DeviceAllow", UNIT_PROP_PAIRS },
	{ "MemoryMax", UNIT_PROP_U64 },	      { "CPUQuotaPerSecUSec", UNIT_PROP_U64 },
	{ "AllowedCPUs", UNIT_PROP_BYTES },   { "AllowedMemoryNodes", UNIT_PROP_BYTES },
};

int unit_props_to_json(const struct unit_props *p, json_t **ret)
{
	json_auto_t *doc = json_pack("{s:s, s:[]}", "unit", p->unit, "properties");
	json_t *items = json_object_get(doc, "properties");

	if (!doc)
		return -ENOMEM;
	for (size_t i = 0; i < p->n; i++) {
		const struct unit_prop *u = &p->items[i];
		json_t *item = json_pack("{s:s, s:s}", "name", u->name, "signature",
					 unit_prop_signature(u->kind));
		json_t *value = NULL;

		switch (u->kind) {
		case UNIT_PROP_STRING:
			value = json_string(u->s);
			break;
		case UNIT_PROP_U64:
			/* as a string: a u64 ("infinity" is UINT64_MAX) does not fit JSON's integer */
			value = json_sprintf("%" PRIu64, u->t);
			break;
		case UNIT_PROP_STRV:
		case UNIT_PROP_PAIRS:
			value = json_array();
			STRV_FOREACH(s, u->strv)
				if (value && json_array_append_new(value, json_string(*s)) < 0) {
					json_decref(value);
					value = NULL;
				}
			break;
		case UNIT_PROP_BYTES:
			value = json_array();
			for (size_t b = 0; value && b < u->n_bytes; b++)
				if (json_array_append_new(value, json_integer(u->bytes[b])) < 0) {
					json_decref(value);
					value = NULL;
				}
			break;
		case UNIT_PROP_PIDS:
			value = json_integer(u->pid);
			break;
		}
		if (!item || !value || json_object_set_new(item, "value", value) < 0 ||
		    json_array_append_new(items, item) < 0) {
			json_decref(item);
			return -ENOMEM;
		}
	}
	*ret = TAKE_PTR(doc);
	return 0;
}

static int prop_from_json(json_t *item, struct unit_props *p)
{
	const char *name = json_string_value(json_object_get(item, "name"));
	const char *sig = json_string_value(json_object_get(item, "signature"));
	json_t *value = json_object_get(item, "value"), *v;
	const char *literal = NULL;
	struct unit_prop *u;
	size_t i;

	for (i = 0; name && sig && i < ELEMENTSOF(saved_props); i++)
		if (streq(name, saved_props[i].name) &&
		    streq(sig, unit_prop_signature(saved_props[i].kind)))
			literal = saved_props[i].name;
	if (!literal || !value)
		return -EINVAL;
	if (streq(sig, "s") && json_is_string(value)) {
		u = unit_props_add(p, literal, UNIT_PROP_STRING);
		if (!u || !(u->s = strdup(json_string_value(value))))
			return -ENOMEM;
	} else if (streq(sig, "t") && json_is_string(value)) {
		u = unit_props_add(p, literal, UNIT_PROP_U64);
		if (!u)
			return -ENOMEM;
		if (safe_atou64(json_string_value(value), &u->t) < 0)
			return -EINVAL;
	} else if (streq(sig, "a(ss)") && json_is_array(value) && json_array_size(value) % 2 == 0) {
		u = unit_props_add(p, literal, UNIT_PROP_PAIRS);
		if (!u)
			return -ENOMEM;
		json_array_foreach(value, i, v) {
			if (!json_is_string(v))
				return -EINVAL;
			if (strv_extend(&u->strv, json_string_value(v)) < 0)
				return -ENOMEM;
		}
	} else if (streq(sig, "ay") && json_is_array(value)) {
		u = unit_props_add(p, literal, UNIT_PROP_BYTES);
		if (!u)
			return -ENOMEM;
		u->bytes = calloc(json_array_size(value) ?: 1, 1);
		if (!u->bytes)
			return -ENOMEM;
		json_array_foreach(value, i, v) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > 255)
				return -EINVAL;
			u->bytes[u->n_bytes++] = (uint8_t)json_integer_value(v);
		}
	} else
		return -EINVAL;
	return 0;
}

int unit_props_from_json(json_t *doc, struct unit_props *ret)
{
	_cleanup_(unit_props_done) struct unit_props p = {};
	const char *unit = json_string_value(json_object_get(doc, "unit"));
	json_t *items = json_object_get(doc, "properties"), *item;
	size_t i;
	int r;

	if (!unit || !json_is_array(items))
		return -EINVAL;
	p.unit = strdup(unit);
	if (!p.unit)
		return -ENOMEM;
	json_array_foreach(items, i, item) {
		r = prop_from_json(item, &p);
		if (r < 0)
			return r;
	}
	*ret = p;
	p = (struct unit_props){};
	return 0;
}
