// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * AWS Neuron's rules for the core (core/rules.h), for AWS's devices whatever backend reports
 * them (by vendor: backends/vendor-rules.c): a Neuron device of several NeuronCores is offered
 * whole (aws.amazon.com/neuron), as Neuron's device plugin offers it, or core by core
 * (aws.amazon.com/neuroncore, NEURON_RT_VISIBLE_CORES); the accelerator backend reports the
 * cores (accel.c). The switch changes only what is offered: nothing on the device changes.
 */
#include "backends/vendor-rules.h"

static const char *const neuron_modes[] = { "whole", "cores", NULL };

const struct partition_scheme neuron_cores_scheme = {
	.name = "neuron-cores",
	.label = "Neuron core partitioning",
	.noun = "device",
	.only_for = "Neuron cores apply to AWS Neuron devices only",
	.not_capable = "this device does not show several cores",
	.state_layout_key = "neuron_cores",
	.modes = neuron_modes,
};

const struct device_rules neuron_device_rules = {
	.scheme = &neuron_cores_scheme,
};
