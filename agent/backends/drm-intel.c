// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DRM backend's Intel part (i915, xe): the resource names of Intel's GPU device plugin,
 * gpu.intel.com/i915 and gpu.intel.com/xe, by the driver bound.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backends/drm-internal.h"

static int intel_describe(struct drm_gpu_ctx *ctx, const struct drm_card *c, int fnfd,
			  struct xpu_device *d, struct device_list *list)
{
	(void)ctx;
	(void)fnfd;
	(void)list;
	if (!(d->resource = strdup(streq(c->driver, "xe") ? "gpu.intel.com/xe"
							  : "gpu.intel.com/i915")))
		return -ENOMEM;
	return 0;
}

const struct drm_vendor drm_intel_vendor = {
	.name = "intel",
	.drivers = (const char *const[]){ "i915", "xe", NULL },
	.describe = intel_describe,
};
