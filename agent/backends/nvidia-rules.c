// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * NVIDIA's rules for the core (core/rules.h): what enforces a memory share (CUDA's MPS), how
 * CUDA's variables of several slices merge in one grant, and the partition scheme (MIG).
 */
#include <errno.h>
#include <stdio.h>

#include "backends/nvidia.h"
#include "core/device.h"
#include "core/policy.h"
#include "core/rules.h"
#include "shared/strv.h"

/*
 * A memory share's limits, enforced by the MPS server for its clients: the pinned device memory
 * limit in whole MiB (so a share under 1 MiB cannot be limited) and the share of the GPU's SMs.
 * CUDA_VISIBLE_DEVICES of the slice names exactly its GPU, so that GPU is ordinal 0.
 */
static int nvidia_share_edits(const struct xpu_device *d, struct xpu_slice *s)
{
	char buf[32];

	(void)d;
	snprintf(buf, sizeof(buf), "%u", MAX((unsigned)(s->compute_fraction * 100 + 0.5), 1u));
	if (strv_env_set(&s->env, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", buf) < 0)
		return -ENOMEM;
	snprintf(buf, sizeof(buf), "0=%lluM", (unsigned long long)(s->memory_bytes >> 20));
	if (strv_env_set(&s->env, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", buf) < 0)
		return -ENOMEM;
	return 0;
}

static const struct env_rule nvidia_env_rules[] = {
    /* a limit per GPU as CUDA numbers them in the container: the shares' limits add up */
    {"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", ENV_MERGE_DEVICE_SUM},
    /* one value per client process: what holds on every GPU of the grant */
    {"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", ENV_MERGE_DEVICE_PERCENT},
    {}};

const struct device_rules nvidia_device_rules = {
    .env = nvidia_env_rules,
    .min_share_bytes = 1ULL << 20,
    .min_share_why = "the least CUDA's MPS can limit",
    .share_edits = nvidia_share_edits,
};
