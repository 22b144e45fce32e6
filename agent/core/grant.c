// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/grant.h"
#include "core/rules.h"
#include "shared/parse.h"
#include "shared/strv.h"

char *slice_cdi_name(const struct xpu_slice *s, const struct xpu_device *d)
{
	char *name, *p;

	if (asprintf(&name, CDI_VENDOR "/%s=%s", d ? xpu_kind_to_string(d->kind) : "device",
		     s->id) < 0)
		return NULL;
	/* CDI device names allow [A-Za-z0-9_.:-]; '/' is not, and ':' reads badly in a name */
	for (p = strchr(name, '=') + 1; *p; p++)
		if (*p == ':' || *p == '/')
			*p = '-';
	return name;
}

void grant_done(struct grant *g)
{
	strv_free(g->device_nodes);
	for (size_t i = 0; i < g->n_env; i++) {
		free(g->env[i].name);
		free(g->env[i].value);
	}
	free(g->env);
	strv_free(g->cdi_devices);
	*g = (struct grant){.numa_node = -1};
}

const char *grant_env_get(const struct grant *g, const char *name)
{
	for (size_t i = 0; i < g->n_env; i++)
		if (streq(g->env[i].name, name))
			return g->env[i].value;
	return NULL;
}

/*
 * One variable while the grant is built: its rule, and for the per-device rules the amount of
 * each device (by its number in the grant) and the unit that follows the amounts.
 */
struct env_acc {
	enum env_merge merge;
	unsigned long long *amount; /* one per device of the grant */
	char unit[8];
};

struct builder {
	struct grant *g;
	struct env_acc *acc; /* parallel to g->env, as long */
	size_t n_devices_max;
};

static void builder_done(struct builder *b)
{
	for (size_t i = 0; i < b->g->n_env; i++)
		free(b->acc[i].amount);
	free(b->acc);
}

/* The index of variable @name in the grant, adding it (empty) when new: g->env and b->acc have
 * room for every variable of the grant's slices. -ENOMEM. */
static int env_slot(struct builder *b, const char *name, enum env_merge merge)
{
	struct grant *g = b->g;
	size_t n = g->n_env;

	for (size_t i = 0; i < n; i++)
		if (streq(g->env[i].name, name))
			return (int)i;
	b->acc[n] = (struct env_acc){ .merge = merge };
	g->env[n] = (struct grant_env){ .name = strdup(name) };
	if (!g->env[n].name)
		return -ENOMEM;
	if (merge != ENV_MERGE_LIST && merge != ENV_MERGE_DEVICE_PART) {
		b->acc[n].amount = calloc(b->n_devices_max, sizeof(unsigned long long));
		if (!b->acc[n].amount) {
			free(g->env[n].name);
			return -ENOMEM;
		}
	}
	g->n_env = n + 1;
	return (int)n;
}

/* Adds @value to a list variable unless it holds it already (two slices of one device). */
static int env_list_add(struct grant_env *e, const char *value)
{
	char *joined;

	if (!e->value)
		return (e->value = strdup(value)) ? 0 : -ENOMEM;
	for (const char *p = e->value; p;) {
		const char *end = strchrnul(p, ',');

		if ((size_t)(end - p) == strlen(value) && strncmp(p, value, (size_t)(end - p)) == 0)
			return 0;
		p = *end ? end + 1 : NULL;
	}
	if (asprintf(&joined, "%s,%s", e->value, value) < 0)
		return -ENOMEM;
	free(e->value);
	e->value = joined;
	return 0;
}

/* "<i>[.<sub>]" of device @dev, renumbered to @dev and listed once. A value that does not start
 * with a device number adds nothing. */
static int env_part_add(struct grant_env *e, size_t dev, const char *value)
{
	_cleanup_free_ char *v = NULL;
	size_t digits = strspn(value, "0123456789");

	if (digits == 0 || (value[digits] != '\0' && value[digits] != '.'))
		return 0;
	if (asprintf(&v, "%zu%s", dev, value + digits) < 0)
		return -ENOMEM;
	return env_list_add(e, v);
}

/* "<i>=<amount><unit>" or "<amount>": the amount, and the unit when given. A value that does
 * not parse adds nothing (-EINVAL). */
static int parse_amount(const char *value, bool indexed, unsigned long long *ret, char unit[8])
{
	const char *p = value;
	char *end;

	if (indexed) {
		p = strchr(value, '=');
		if (!p)
			return -EINVAL;
		p++;
	}
	if (*p < '0' || *p > '9')
		return -EINVAL;
	errno = 0;
	*ret = strtoull(p, &end, 10);
	if (errno || strlen(end) >= 8)
		return -EINVAL;
	snprintf(unit, 8, "%s", end);
	return 0;
}

static int env_add(struct builder *b, const struct xpu_device *d, size_t dev, const char *kv)
{
	const char *eq = strchr(kv, '=');
	_cleanup_free_ char *name = eq ? strndup(kv, (size_t)(eq - kv)) : NULL;
	struct env_acc *a;
	unsigned long long v;
	char unit[8];
	int i;

	if (!eq)
		return 0;
	if (!name)
		return -ENOMEM;
	i = env_slot(b, name, device_rules_env_merge(d ? d->rules : NULL, name));
	if (i < 0)
		return i;
	a = &b->acc[i];
	if (a->merge == ENV_MERGE_LIST)
		return env_list_add(&b->g->env[i], eq + 1);
	if (a->merge == ENV_MERGE_DEVICE_PART)
		return env_part_add(&b->g->env[i], dev, eq + 1);
	if (parse_amount(eq + 1, a->merge == ENV_MERGE_DEVICE_SUM, &v, unit) < 0)
		return 0;
	a->amount[dev] += v;
	if (!a->unit[0])
		memcpy(a->unit, unit, sizeof(unit));
	return 0;
}

/* Forgets the per-device variables to which no slice gave an amount that could be read. */
static void env_drop_empty(struct builder *b)
{
	struct grant *g = b->g;
	size_t kept = 0;

	for (size_t i = 0; i < g->n_env; i++) {
		if (g->env[i].value) {
			g->env[kept] = g->env[i];
			b->acc[kept++] = b->acc[i];
			continue;
		}
		free(g->env[i].name);
		free(b->acc[i].amount);
	}
	g->n_env = kept;
}

/* The per-device variables' values, once every slice is in: NULL for one without amounts. */
static int env_finish(struct builder *b, size_t n_devices)
{
	for (size_t i = 0; i < b->g->n_env; i++) {
		struct env_acc *a = &b->acc[i];
		_cleanup_strv_free_ char **parts = NULL;
		unsigned long long lowest = 100;
		bool any = false;
		char *v = NULL;

		if (a->merge == ENV_MERGE_LIST || a->merge == ENV_MERGE_DEVICE_PART)
			continue;
		for (size_t d = 0; d < n_devices; d++) {
			if (!a->amount[d])
				continue;
			any = true;
			if (a->merge == ENV_MERGE_DEVICE_PERCENT)
				lowest = MIN(lowest, a->amount[d]);
			else if (strv_extendf(&parts, "%zu=%llu%s", d, a->amount[d], a->unit) < 0)
				return -ENOMEM;
		}
		if (any && (a->merge == ENV_MERGE_DEVICE_PERCENT ? asprintf(&v, "%llu", lowest) < 0
								 : !(v = strv_join(parts, ","))))
			return -ENOMEM;
		free(b->g->env[i].value);
		b->g->env[i].value = v;
	}
	return 0;
}

static const struct xpu_slice *slice_lookup(const struct slice_list *slices, const char *id)
{
	for (size_t i = 0; i < slices->n; i++)
		if (streq(slices->items[i]->id, id))
			return slices->items[i];
	return NULL;
}

int grant_build(char *const *slice_ids, const struct device_list *devs,
		const struct slice_list *slices, struct grant *ret)
{
	_cleanup_strv_free_ char **order = NULL; /* the grant's devices, numbered */
	struct grant g = {.slices = (char **)slice_ids, .numa_node = -1};
	struct builder b = {.g = &g, .n_devices_max = strv_length(slice_ids)};
	const struct xpu_device *first = NULL;
	bool one_numa = true;
	size_t n_vars = 0;
	int r = 0;

	for (char *const *id = slice_ids; id && *id; id++) {
		const struct xpu_slice *s = slice_lookup(slices, *id);

		n_vars += s ? strv_length(s->env) : 0;
	}
	g.env = calloc(n_vars + 1, sizeof(*g.env));
	b.acc = calloc(n_vars + 1, sizeof(*b.acc));
	if (!g.env || !b.acc) {
		free(b.acc);
		grant_done(&g);
		return -ENOMEM;
	}
	for (char *const *id = slice_ids; id && *id && r >= 0; id++) {
		const struct xpu_slice *s = slice_lookup(slices, *id);
		const struct xpu_device *d;
		size_t dev;

		if (!s) {
			g.n_missing++;
			continue;
		}
		d = device_list_find(devs, s->device_id);
		STRV_FOREACH (node, s->device_nodes)
			if (strv_extend_unique(&g.device_nodes, *node) < 0)
				r = -ENOMEM;
		if (r < 0 || strv_consume(&g.cdi_devices, slice_cdi_name(s, d)) < 0 ||
		    strv_extend_unique(&order, s->device_id) < 0) {
			r = -ENOMEM;
			break;
		}
		for (dev = 0; !streq(order[dev], s->device_id); dev++)
			;
		STRV_FOREACH (e, s->env)
			if ((r = env_add(&b, d, dev, *e)) < 0)
				break;
		if (!first)
			first = d;
		else if (!d || !first || d->numa_node != first->numa_node)
			one_numa = false;
	}
	if (r >= 0)
		r = env_finish(&b, strv_length(order));
	if (r >= 0)
		env_drop_empty(&b);
	builder_done(&b);
	if (r < 0) {
		grant_done(&g);
		return r;
	}
	if (one_numa && first) {
		g.numa_node = first->numa_node;
		g.cpu_list = first->cpu_list;
	}
	*ret = g;
	return 0;
}
