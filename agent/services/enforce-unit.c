// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
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

static struct unit_prop *add(struct unit_props *p, const char *name, enum unit_prop_kind kind)
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
	struct unit_prop *u = add(p, name, UNIT_PROP_STRING);

	if (!u || !(u->s = strdup(value)))
		return -ENOMEM;
	return 0;
}

static int build(const char *id, const struct grant *g, pid_t pid,
		 const struct enforce_limits *l, struct unit_props *p)
{
	struct unit_prop *u;
	char desc[128];
	int r;

	if (asprintf(&p->unit, "xpu-%s.scope", id) < 0) {
		p->unit = NULL;
		return -ENOMEM;
	}
	snprintf(desc, sizeof(desc), "xpud allocation %s", id);
	if (add_string(p, "Description", desc) < 0 ||
	    add_string(p, "Slice", ENFORCE_UNIT_SLICE) < 0 ||
	    add_string(p, "DevicePolicy", "closed") < 0)
		return -ENOMEM;
	u = add(p, "DeviceAllow", UNIT_PROP_PAIRS);
	if (!u)
		return -ENOMEM;
	STRV_FOREACH(node, g->device_nodes)
		if (strv_extend(&u->strv, *node) < 0 || strv_extend(&u->strv, "rw") < 0)
			return -ENOMEM;
	if (l->numa_cpus) {
		if (g->numa_node < 0 || !g->cpu_list)
			return -EINVAL;
		u = add(p, "AllowedCPUs", UNIT_PROP_BYTES);
		if (!u)
			return -ENOMEM;
		r = cpu_list_to_mask(g->cpu_list, &u->bytes, &u->n_bytes);
		if (r < 0)
			return r;
		u = add(p, "AllowedMemoryNodes", UNIT_PROP_BYTES);
		if (!u)
			return -ENOMEM;
		if (set_bit(&u->bytes, &u->n_bytes, (unsigned)g->numa_node) < 0)
			return -ENOMEM;
	}
	if (l->memory_max) {
		u = add(p, "MemoryMax", UNIT_PROP_U64);
		if (!u)
			return -ENOMEM;
		u->t = l->memory_max;
	}
	if (l->cpu_quota) {
		if (l->cpu_quota > 100000)
			return -EINVAL;
		u = add(p, "CPUQuotaPerSecUSec", UNIT_PROP_U64);
		if (!u)
			return -ENOMEM;
		u->t = (uint64_t)l->cpu_quota * 10000; /* 1% of a CPU: 10 ms each second */
	}
	/*
	 * No Environment=: systemd refuses it for a scope, whose processes it does not start; the
	 * grant's environment reaches the command through whoever starts it (xpuctl run).
	 */
	u = add(p, "PIDs", UNIT_PROP_PIDS);
	if (!u)
		return -ENOMEM;
	u->pid = (uint32_t)pid;
	return 0;
}

int unit_props_build(const char *id, const struct grant *g, pid_t pid,
		     const struct enforce_limits *limits, struct unit_props *ret)
{
	struct unit_props p = {};
	int r = build(id, g, pid, limits, &p);

	if (r < 0) {
		unit_props_done(&p);
		return r;
	}
	*ret = p;
	return 0;
}
