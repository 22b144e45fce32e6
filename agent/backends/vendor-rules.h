/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The rules (core/rules.h) of each vendor whose devices the core treats in a way of their own,
 * by the short vendor name of struct xpu_device: what a device gets when the backend that
 * reported it has no rules of its own (the generic PCI view of a GPU whose vendor library is
 * missing is still that vendor's GPU).
 */
#pragma once

#include "core/rules.h"

/* NVIDIA: backends/nvidia-rules.c. */
extern const struct device_rules nvidia_device_rules;
/* AMD: backends/amd-rules.c (compute partitions and XGMI of the DRM backend's amdgpu GPUs). */
extern const struct device_rules amd_device_rules;
/* Intel: backends/intel-rules.c (tiles of the DRM backend's Intel GPUs). */
extern const struct device_rules intel_device_rules;
/* AWS: backends/neuron-rules.c (cores of the accelerator backend's Neuron devices). */
extern const struct device_rules neuron_device_rules;
/* Xilinx: backends/xilinx-rules.c (compute units of the XRT backend's cards). */
extern const struct device_rules xilinx_device_rules;

/* Their partition schemes, and all the schemes the backends know (NULL-terminated): what a
 * program hands to partition_schemes_set(). */
extern const struct partition_scheme nvidia_mig_scheme;
extern const struct partition_scheme amd_partition_scheme;
extern const struct partition_scheme intel_tiles_scheme;
extern const struct partition_scheme neuron_cores_scheme;
extern const struct partition_scheme xrt_cus_scheme;
extern const struct partition_scheme *const backend_partition_schemes[];

/* The rules of @vendor's devices, or NULL (the defaults). */
const struct device_rules *vendor_rules(const char *vendor);
