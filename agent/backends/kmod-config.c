// SPDX-License-Identifier: GPL-2.0-or-later
#include "backends/kmod-config.h"

static const struct config_key kmod_keys[] = {
    CONFIG_KEY_STRING("resource", struct kmod_config, resource, .valid = resource_name_valid,
		      .expect = "a resource name (vendor.domain/name)"),
    {},
};

static const struct config_alias kmod_aliases[] = {
    {"kmod-resource", "resource"},
    {},
};

const struct config_section kmod_config_section = {
    .name = "kmod",
    .keys = kmod_keys,
    .size = sizeof(struct kmod_config),
    .aliases = kmod_aliases,
};

const struct kmod_config *kmod_config_get(const struct config *c)
{
	static const struct kmod_config defaults = {};
	const struct kmod_config *k = config_section(c, kmod_config_section.name);

	return k ?: &defaults;
}
