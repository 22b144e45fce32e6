// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * NVIDIA's rules for the core (core/rules.h): what enforces a memory share (CUDA's MPS), how
 * CUDA's variables of several slices merge in one grant, the partition scheme (MIG) and the
 * links between GPUs (NVLink).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backends/nvidia.h"
#include "backends/vendor-rules.h"
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

/*
 * gpu-feature-discovery's labels (nvidia.com/gpu.present, .count, .product, .memory in MiB,
 * .compute.major/.minor, nvidia.com/mig.capable), so that node selectors written for it keep
 * working; from the first GPU, as GFD reads it.
 */
static int nvidia_node_labels(const struct xpu_device *const *devs, size_t n, char ***labels)
{
	const struct xpu_device *first = NULL;
	unsigned count = 0, major, minor;
	const char *cc;
	int r;

	for (size_t i = 0; i < n; i++)
		if (devs[i]->kind == XPU_KIND_GPU) {
			count++;
			first = first ?: devs[i];
		}
	if (!first)
		return 0;
	cc = device_get_property(first, "compute_capability");
	r = strv_extend(labels, "nvidia.com/gpu.present=true");
	if (r >= 0)
		r = strv_extendf(labels, "nvidia.com/gpu.count=%u", count);
	if (r >= 0 && first->model)
		r = strv_extendf(labels, "nvidia.com/gpu.product=%s", first->model);
	if (r >= 0 && first->memory_bytes > 0)
		r = strv_extendf(labels, "nvidia.com/gpu.memory=%llu",
				 (unsigned long long)(first->memory_bytes >> 20));
	/* NVML answers the MIG mode of a GPU that can do MIG; without NVML we do not know */
	if (r >= 0 && first->partition_capable)
		r = strv_extend(labels, "nvidia.com/mig.capable=true");
	else if (r >= 0 && streq_ptr(first->backend, "nvidia"))
		r = strv_extend(labels, "nvidia.com/mig.capable=false");
	if (r >= 0 && cc && sscanf(cc, "%u.%u", &major, &minor) == 2) {
		r = strv_extendf(labels, "nvidia.com/gpu.compute.major=%u", major);
		if (r >= 0)
			r = strv_extendf(labels, "nvidia.com/gpu.compute.minor=%u", minor);
	}
	return r < 0 ? -ENOMEM : 0;
}

/* A GPU instance profile as nvidia-smi names it: "<n>g.<m>gb", optionally "+me". */
static bool mig_profile_valid(const char *s)
{
	for (int part = 0; part < 2; part++) {
		size_t n = strspn(s, "0123456789");

		if (n == 0 || n > 4 || s[0] == '0')
			return false;
		s += n;
		if (strncmp(s, part == 0 ? "g." : "gb", 2) != 0)
			return false;
		s += 2;
	}
	return s[0] == '\0' || streq(s, "+me");
}

/* MIG: the GPU instances that exist are the slices (runtimes/nvml-mig.c makes a layout, in the helper). */
const struct partition_scheme nvidia_mig_scheme = {
	.name = "mig",
	.enable_key = "mig-enable",
	.label = "MIG",
	.noun = "GPU",
	.only_for = "MIG applies to NVIDIA GPUs only",
	.state_layout_key = "mig_profiles",
	.state_enable_key = "mig_enable",
	.profile_valid = mig_profile_valid,
	.profile_form = "<n>g.<m>gb, optionally with +me",
	.example_profile = "1g.10gb",
	.example_list = "[3g.40gb, 2g.20gb]",
};

/*
 * The link to @b as the backend reports it (nvidia.c): the property "topology.<b>", whose value
 * is what nvidia-smi topo -m shows between the two GPUs.
 */
static enum link_level nvidia_link_level(const struct xpu_device *a, const struct xpu_device *b)
{
	const char *v = device_peer_property(a, "topology.", b);

	if (!v)
		return _LINK_UNKNOWN;
	if (streq(v, "X"))
		return LINK_SAME_DEVICE;
	if (strncmp(v, "NV", 2) == 0 && v[2]) /* NV<n>: n NVLinks in common */
		return LINK_FABRIC;
	if (streq(v, "PIX") || streq(v, "PXB"))
		return LINK_SWITCH;
	if (streq(v, "PHB"))
		return LINK_ROOT;
	if (streq(v, "NODE"))
		return LINK_NUMA;
	if (streq(v, "SYS"))
		return LINK_SYSTEM;
	return _LINK_UNKNOWN;
}

static const struct env_rule nvidia_env_rules[] = {
	/* a limit per GPU as CUDA numbers them in the container: the shares' limits add up */
	{ "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", ENV_MERGE_DEVICE_SUM },
	/* one value per client process: what holds on every GPU of the grant */
	{ "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", ENV_MERGE_DEVICE_PERCENT },
	{},
};

const struct device_rules nvidia_device_rules = {
	.scheme = &nvidia_mig_scheme,
	.env = nvidia_env_rules,
	.min_share_bytes = 1ULL << 20,
	.min_share_why = "the least CUDA's MPS can limit",
	.share_edits = nvidia_share_edits,
	.node_labels = nvidia_node_labels,
	.link_level = nvidia_link_level,
	.fabric = "NVLink",
};
