// SPDX-License-Identifier: GPL-2.0-or-later
#include "backends/vendor-rules.h"
#include "shared/macro.h"

static const struct {
	const char *vendor;
	const struct device_rules *rules;
} vendors[] = {
	{ "nvidia", &nvidia_device_rules },
	{ "amd", &amd_device_rules },
	{ "intel", &intel_device_rules },
	{ "aws", &neuron_device_rules },
	{ "xilinx", &xilinx_device_rules },
};

const struct partition_scheme *const backend_partition_schemes[] = {
	&nvidia_mig_scheme,
	&amd_partition_scheme,
	&intel_tiles_scheme,
	&neuron_cores_scheme,
	&xrt_cus_scheme,
	NULL,
};

const struct device_rules *vendor_rules(const char *vendor)
{
	for (size_t i = 0; vendor && i < ELEMENTSOF(vendors); i++)
		if (streq(vendors[i].vendor, vendor))
			return vendors[i].rules;
	return NULL;
}
