// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/rules.h"
#include "shared/macro.h"

static const struct partition_scheme *const no_schemes[] = { NULL };
static const struct partition_scheme *const *schemes = no_schemes;

void partition_schemes_set(const struct partition_scheme *const *list)
{
	schemes = list ?: no_schemes;
}

const struct partition_scheme *const *partition_schemes(void)
{
	return schemes;
}

const struct partition_scheme *partition_scheme_find(const char *name)
{
	for (const struct partition_scheme *const *s = schemes; name && *s; s++)
		if (streq((*s)->name, name))
			return *s;
	return NULL;
}

const struct partition_scheme *partition_scheme_by_enable_key(const char *key)
{
	for (const struct partition_scheme *const *s = schemes; key && *s; s++)
		if ((*s)->enable_key && streq((*s)->enable_key, key))
			return *s;
	return NULL;
}

enum env_merge device_rules_env_merge(const struct device_rules *rules, const char *name)
{
	for (const struct env_rule *e = rules ? rules->env : NULL; e && e->name; e++)
		if (streq(e->name, name))
			return e->merge;
	return ENV_MERGE_LIST;
}
