// SPDX-License-Identifier: GPL-2.0-or-later
#include "backends/helper-config.h"
#include "backends/xrt-config.h"

static const struct config_key xrt_keys[] = {
    CONFIG_KEY_STRING("library", struct xrt_config, library),
    HELPER_BACKEND_CONFIG_KEYS(struct xrt_config),
    {},
};

const struct config_section xrt_config_section = {
    .name = "xrt",
    .keys = xrt_keys,
    .size = sizeof(struct xrt_config),
};

const struct xrt_config *xrt_config_get(const struct config *c)
{
	static const struct xrt_config defaults = {};
	const struct xrt_config *x = config_section(c, xrt_config_section.name);

	return x ?: &defaults;
}
