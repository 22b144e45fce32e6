/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Applying a declared MIG layout to one GPU through NVML, in the helper process: nvml-apply.c
 * finds the GPU, nvml-mig.c makes the calls. NVML types do not leave agent/runtimes/.
 */
#pragma once

#include <stddef.h>

#include "runtimes/nvidia-nvml.h"
#include "core/policy.h"

/* The NVML functions the layout needs. Any of them NULL (an old driver): the feature is off. */
struct nvml_mig_api {
	const char *(*error_string)(nvmlReturn_t);
	nvmlReturn_t (*mig_mode)(nvmlDevice_t, unsigned int *, unsigned int *);
	nvmlReturn_t (*set_mig_mode)(nvmlDevice_t, unsigned int, nvmlReturn_t *);
	nvmlReturn_t (*gi_profile)(nvmlDevice_t, unsigned int, nvmlGpuInstanceProfileInfo_t *);
	nvmlReturn_t (*gpu_instances)(nvmlDevice_t, unsigned int, nvmlGpuInstance_t *,
				      unsigned int *);
	nvmlReturn_t (*create_gi)(nvmlDevice_t, unsigned int, nvmlGpuInstance_t *);
	nvmlReturn_t (*destroy_gi)(nvmlGpuInstance_t);
	nvmlReturn_t (*ci_profile)(nvmlGpuInstance_t, unsigned int, unsigned int,
				   nvmlComputeInstanceProfileInfo_t *);
	nvmlReturn_t (*compute_instances)(nvmlGpuInstance_t, unsigned int,
					  nvmlComputeInstance_t *, unsigned int *);
	nvmlReturn_t (*create_ci)(nvmlGpuInstance_t, unsigned int, nvmlComputeInstance_t *);
	nvmlReturn_t (*destroy_ci)(nvmlComputeInstance_t);
};

/* The symbol of the first function @api lacks, or NULL when it has them all. */
const char *nvidia_mig_missing(const struct nvml_mig_api *api);

/* A GPU instance profile's name as nvidia-smi prints it: "<slices>g.<GiB rounded up>gb", with
 * "+me" for the variant with media extensions (profile index 1_SLICE_REV1). */
void nvidia_mig_profile_name(const nvmlGpuInstanceProfileInfo_t *info, unsigned index, char *buf,
			     size_t size);

/*
 * Makes the GPU instances of @gpu the layout @o declares (OFFER_PARTITIONS of nvidia_mig_scheme): nothing when the
 * existing GPU instances already are that multiset of profiles; otherwise every compute and GPU
 * instance is destroyed and the declared ones are created in order, each GPU instance with one
 * compute instance spanning it. A GPU with MIG disabled is touched only with o->enable: its
 * MIG mode is enabled, and the layout follows once the mode is current (after a GPU reset).
 * Returns 0 or -errno with a malloc'd reason in *ret_error naming the NVML call and its error.
 * Blocks in NVML: call it off the event loop.
 */
int nvidia_mig_apply(const struct nvml_mig_api *api, nvmlDevice_t gpu, const struct offer *o,
		     char **ret_error);
