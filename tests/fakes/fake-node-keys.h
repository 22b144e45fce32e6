/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The key names of the node description that the fake NVML and the fake CUDA driver API both read
 * (tests/fakes/README.md). Each fake rejects a key that is in neither list, so that a typo cannot
 * quietly weaken a test, and accepts the other fake's keys without looking at them: the NVML fake
 * validates the NVML keys, the CUDA fake the CUDA keys and the few NVML ones it reads (bus_id,
 * uuid, name, memory_bytes, compute_capability, errors).
 */
#pragma once

/* The top-level object. */
#define FAKE_NODE_NVML_KEYS "driver_version", "cuda_version", "init_error", "init_hang_ms", "gpus"
#define FAKE_NODE_CUDA_KEYS "cuda_init_ms", "cuda_init_error"

/* One entry of "gpus". */
#define FAKE_GPU_NVML_KEYS                                                                         \
	"bus_id", "pci_device_id", "pci_subsystem_id", "uuid", "name", "serial", "minor",          \
		"memory_bytes", "memory_used_bytes", "compute_capability", "numa_node",            \
		"power_mw", "temperature_c", "utilization_gpu", "utilization_memory",              \
		"ecc_corrected", "ecc_uncorrected", "mig", "mig_profiles", "mig_instances",        \
		"topology", "nvlinks", "errors", "hang_ms", "fail_call", "events", "processes"
#define FAKE_GPU_CUDA_KEYS "cuda", "multiprocessors", "clock_khz", "l2_bytes", "max_threads_per_sm"
