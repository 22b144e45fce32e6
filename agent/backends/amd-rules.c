// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * AMD's rules for the core (core/rules.h), for AMD's devices whatever backend reports them (by
 * vendor: backends/vendor-rules.c): the DRM backend's amdgpu part (drm-amdgpu.c) reports and
 * switches the compute partition modes, and the XGMI links between GPUs; an AMD GPU is labelled
 * as AMD's labeller does.
 */
#include <errno.h>

#include "backends/vendor-rules.h"
#include "core/device.h"
#include "shared/strv.h"

static int amd_node_labels(const struct xpu_device *const *devs, size_t n, char ***labels)
{
	for (size_t i = 0; i < n; i++)
		if (devs[i]->kind == XPU_KIND_GPU)
			return strv_extend(labels, "amd.com/gpu.present=true");
	return 0;
}

static const char *const amd_modes[] = { "spx", "dpx", "tpx", "qpx", "cpx", NULL };

/* A compute partition mode (MI300: SPX undivided, DPX 2, TPX 3, QPX 4, CPX one per XCC). */
const struct partition_scheme amd_partition_scheme = {
	.name = "amd-partition",
	.label = "AMD compute partitioning",
	.noun = "GPU",
	.only_for = "AMD partitions apply to AMD GPUs only",
	.not_capable = "this GPU has no compute partition modes",
	.state_layout_key = "amd_mode",
	.modes = amd_modes,
};

/* The link to @b: XGMI where the property "xgmi.<b>" says so (anything but "0" and "false"). */
static enum link_level amd_link_level(const struct xpu_device *a, const struct xpu_device *b)
{
	const char *v = device_peer_property(a, "xgmi.", b);

	return v && !streq(v, "0") && !streq(v, "false") ? LINK_FABRIC : _LINK_UNKNOWN;
}

const struct device_rules amd_device_rules = {
	.scheme = &amd_partition_scheme,
	.node_labels = amd_node_labels,
	.link_level = amd_link_level,
	.fabric = "XGMI",
};
