/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The NVIDIA backend's section of xpud.yaml:
 *
 *   nvidia:
 *     nvml-library: /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1
 *     cuda-library: /usr/lib/x86_64-linux-gnu/libcuda.so.1
 *     xid-actions: {43: reset-gpu, 13: ignore}
 *     helper-timeout: 30s      # one run of the NVML helper, at most
 *     helper-failures: 3       # failed runs in a row before the GPUs say why
 *     helper-max-age: 5m       # or when the last good answer is this old
 *     helper-memory: 2GiB      # the helper's address space (RLIMIT_AS)
 *
 * The old top-level spellings (nvml-library, cuda-library, nvidia-xid-actions) are still read,
 * with a warning. Pure: parsing only.
 */
#pragma once

#include <stddef.h>

#include "core/config.h"

struct xid_action {
	unsigned xid;
	enum health_action action;
};

/* Overrides of the XID table, in the file's order (a later one for the same XID wins). */
struct xid_actions {
	struct xid_action *items;
	size_t n;
};

struct nvidia_config {
	char *nvml_library; /* libnvidia-ml.so.1 to load; NULL: the loader's search */
	char *cuda_library; /* libcuda.so.1 to load; NULL: the loader's search */
	struct xid_actions xid_actions;
	/* The NVML helper (backends/helper-config.h); 0: the default of each */
	unsigned helper_failures;
	uint64_t helper_max_age_usec;
	uint64_t helper_timeout_usec;
	uint64_t helper_memory;
};

extern const struct config_section nvidia_config_section;

/* The section as @c holds it (borrowed), or the defaults when @c is NULL or has none. Never
 * NULL. */
const struct nvidia_config *nvidia_config_get(const struct config *c);
