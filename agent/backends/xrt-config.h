/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The XRT backend's section of xpud.yaml:
 *
 *   xrt:
 *     library: /usr/lib/x86_64-linux-gnu/libxrt_core.so.2
 *     helper-timeout: 30s      # one run of the XRT helper, at most
 *     helper-failures: 3       # failed runs in a row before the cards say why
 *     helper-max-age: 5m       # or when the last good answer is this old
 *
 * Pure: parsing only.
 */
#pragma once

#include <stdint.h>

#include "core/config.h"

struct xrt_config {
	char *library; /* the XRT shim to load; NULL: libxrt_core.so.2 (libxrt_swemu.so.2 under
			* XCL_EMULATION_MODE=sw_emu), or $XPU_XRT_LIBRARY */
	/* The XRT helper (backends/helper-config.h); 0: the default of each */
	unsigned helper_failures;
	uint64_t helper_max_age_usec;
	uint64_t helper_timeout_usec;
};

extern const struct config_section xrt_config_section;

/* The section as @c holds it (borrowed), or the defaults when @c is NULL or has none. Never
 * NULL. */
const struct xrt_config *xrt_config_get(const struct config *c);
