// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Intel's rules for the core (core/rules.h), for Intel's devices whatever backend reports them
 * (by vendor: backends/vendor-rules.c): a GPU of several tiles (Data Center GPU Max 1550) is
 * offered whole, as Intel's GPU plugin offers it, or tile by tile, each tile selected for Level
 * Zero by ZE_AFFINITY_MASK (the DRM backend's Intel part, drm-intel.c, reports the tiles). The
 * switch changes only what is offered: nothing on the GPU changes.
 */
#include "backends/vendor-rules.h"

static const char *const intel_modes[] = { "whole", "tiles", NULL };

const struct partition_scheme intel_tiles_scheme = {
	.name = "intel-tiles",
	.label = "Intel tile partitioning",
	.noun = "GPU",
	.only_for = "Intel tiles apply to Intel GPUs only",
	.not_capable = "this GPU does not show several tiles",
	.state_layout_key = "intel_tiles",
	.modes = intel_modes,
};

/* ZE_AFFINITY_MASK=<device>.<tile>: the device as the grant numbers it ("0.1,1.0" for a tile
 * of each of two GPUs). */
static const struct env_rule intel_env[] = {
	{ "ZE_AFFINITY_MASK", ENV_MERGE_DEVICE_PART },
	{},
};

const struct device_rules intel_device_rules = {
	.scheme = &intel_tiles_scheme,
	.env = intel_env,
};
