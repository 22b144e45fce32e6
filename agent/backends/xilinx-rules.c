// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Xilinx's rules for the core (core/rules.h), for Xilinx devices whatever backend reports them
 * (by vendor: backends/vendor-rules.c): a card with an xclbin loaded is offered whole, as AMD's
 * FPGA device plugin offers it, or compute unit by compute unit, each a slice sharing the card
 * (the XRT backend reports the compute units, xrt.c). The switch changes only what is offered.
 */
#include "backends/vendor-rules.h"

static const char *const xrt_cu_modes[] = { "whole", "cus", NULL };

const struct partition_scheme xrt_cus_scheme = {
	.name = "xrt-cus",
	.label = "compute unit partitioning",
	.noun = "card",
	.only_for = "compute units apply to Xilinx cards that XRT describes only",
	.not_capable = "no xclbin with compute units is loaded on this card",
	.state_layout_key = "xrt_cus",
	.modes = xrt_cu_modes,
};

const struct device_rules xilinx_device_rules = {
	.scheme = &xrt_cus_scheme,
};
