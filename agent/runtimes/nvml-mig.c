// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Applying a declared MIG layout through NVML. Every call here can block in the driver;
 * nvidia-apply.c runs nvidia_mig_apply() on a thread of its own with a deadline. Comparing
 * layouts is by profile multiset: which GPU instance ids or placements the driver chose does not
 * matter to a workload, and recreating an equal layout would only change the MIG UUIDs under it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "runtimes/nvml-mig.h"
#include "shared/macro.h"
#include "shared/strv.h"

/* More instances than any MIG GPU holds (7 on A100/H100); bounds the arrays below. */
#define MIG_MAX_INSTANCES 16

struct mig_profiles {
	bool have[NVML_GPU_INSTANCE_PROFILE_COUNT];
	nvmlGpuInstanceProfileInfo_t info[NVML_GPU_INSTANCE_PROFILE_COUNT];
	char name[NVML_GPU_INSTANCE_PROFILE_COUNT][48];
};

/* A GPU instance that exists, and the profile index it was listed under. */
struct mig_gi {
	nvmlGpuInstance_t handle;
	unsigned index;
};

const char *nvidia_mig_missing(const struct nvml_mig_api *api)
{
	static const struct {
		size_t offset;
		const char *symbol;
	} fns[] = {
		{ offsetof(struct nvml_mig_api, mig_mode), "nvmlDeviceGetMigMode" },
		{ offsetof(struct nvml_mig_api, set_mig_mode), "nvmlDeviceSetMigMode" },
		{ offsetof(struct nvml_mig_api, gi_profile), "nvmlDeviceGetGpuInstanceProfileInfo" },
		{ offsetof(struct nvml_mig_api, gpu_instances), "nvmlDeviceGetGpuInstances" },
		{ offsetof(struct nvml_mig_api, create_gi), "nvmlDeviceCreateGpuInstance" },
		{ offsetof(struct nvml_mig_api, destroy_gi), "nvmlGpuInstanceDestroy" },
		{ offsetof(struct nvml_mig_api, ci_profile),
		  "nvmlGpuInstanceGetComputeInstanceProfileInfo" },
		{ offsetof(struct nvml_mig_api, compute_instances),
		  "nvmlGpuInstanceGetComputeInstances" },
		{ offsetof(struct nvml_mig_api, create_ci), "nvmlGpuInstanceCreateComputeInstance" },
		{ offsetof(struct nvml_mig_api, destroy_ci), "nvmlComputeInstanceDestroy" },
	};

	for (size_t i = 0; i < ELEMENTSOF(fns); i++)
		if (!*(void *const *)((const char *)api + fns[i].offset))
			return fns[i].symbol;
	return NULL;
}

void nvidia_mig_profile_name(const nvmlGpuInstanceProfileInfo_t *info, unsigned index, char *buf,
			     size_t size)
{
	snprintf(buf, size, "%ug.%llugb%s", info->sliceCount, (info->memorySizeMB + 1023) / 1024,
		 index == NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1 ? "+me" : "");
}

/* What a failed MIG call means to the caller; the reason carries NVML's own words. */
static int mig_fail(const struct nvml_mig_api *api, nvmlReturn_t r, char **ret_error,
		    const char *call, const char *what)
{
	const char *s = api->error_string ? api->error_string(r) : NULL;

	if (asprintf(ret_error, "%s%s%s%s: %s", call, what ? "(" : "", what ?: "", what ? ")" : "",
		     s ?: "unknown NVML error") < 0)
		*ret_error = NULL;
	switch (r) {
	case NVML_ERROR_INSUFFICIENT_RESOURCES:
		return -ENOSPC;
	case NVML_ERROR_IN_USE:
		return -EBUSY;
	case NVML_ERROR_NO_PERMISSION:
		return -EACCES;
	case NVML_ERROR_NOT_SUPPORTED:
		return -EOPNOTSUPP;
	case NVML_ERROR_TIMEOUT:
		return -ETIMEDOUT;
	case NVML_ERROR_GPU_IS_LOST:
		return -ENODEV;
	default:
		return -EIO;
	}
}

static void profiles_read(const struct nvml_mig_api *api, nvmlDevice_t gpu, struct mig_profiles *p)
{
	for (unsigned i = 0; i < NVML_GPU_INSTANCE_PROFILE_COUNT; i++) {
		p->have[i] = api->gi_profile(gpu, i, &p->info[i]) == NVML_SUCCESS &&
			     p->info[i].sliceCount > 0;
		if (p->have[i])
			nvidia_mig_profile_name(&p->info[i], i, p->name[i], sizeof(p->name[i]));
	}
}

/* The profile indexes @o declares, in order ("all-P": P as often as the GPU holds it). */
static int declared_layout(const struct mig_profiles *p, const struct offer *o,
			   unsigned ret[static MIG_MAX_INSTANCES], size_t *ret_n, char **ret_error)
{
	size_t n = 0;

	STRV_FOREACH(d, o->layout) {
		bool all = strncmp(*d, "all-", 4) == 0;
		const char *name = all ? *d + 4 : *d;
		unsigned i, count;

		for (i = 0; i < NVML_GPU_INSTANCE_PROFILE_COUNT; i++)
			if (p->have[i] && streq(p->name[i], name))
				break;
		if (i == NVML_GPU_INSTANCE_PROFILE_COUNT) {
			if (asprintf(ret_error, "the GPU has no MIG profile %s", name) < 0)
				*ret_error = NULL;
			return -EINVAL;
		}
		count = all ? p->info[i].instanceCount : 1;
		if (n + count > MIG_MAX_INSTANCES) {
			if (asprintf(ret_error, "more MIG instances than a GPU holds") < 0)
				*ret_error = NULL;
			return -EINVAL;
		}
		while (count-- > 0)
			ret[n++] = i;
	}
	*ret_n = n;
	return 0;
}

/* Every GPU instance that exists now, by profile. */
static int existing_layout(const struct nvml_mig_api *api, nvmlDevice_t gpu,
			   const struct mig_profiles *p, struct mig_gi ret[static MIG_MAX_INSTANCES],
			   size_t *ret_n, char **ret_error)
{
	size_t n = 0;

	for (unsigned i = 0; i < NVML_GPU_INSTANCE_PROFILE_COUNT; i++) {
		nvmlGpuInstance_t gis[MIG_MAX_INSTANCES];
		unsigned count = MIN(p->info[i].instanceCount, (unsigned)MIG_MAX_INSTANCES);
		nvmlReturn_t r;

		if (!p->have[i])
			continue;
		r = api->gpu_instances(gpu, p->info[i].id, gis, &count);
		if (r != NVML_SUCCESS)
			return mig_fail(api, r, ret_error, "nvmlDeviceGetGpuInstances", p->name[i]);
		for (unsigned k = 0; k < count && n < MIG_MAX_INSTANCES; k++)
			ret[n++] = (struct mig_gi){ gis[k], i };
	}
	*ret_n = n;
	return 0;
}

static bool same_layout(const unsigned *declared, size_t n_declared, const struct mig_gi *gis,
			size_t n_gis)
{
	unsigned want[NVML_GPU_INSTANCE_PROFILE_COUNT] = {}, have[NVML_GPU_INSTANCE_PROFILE_COUNT] = {};

	if (n_declared != n_gis)
		return false;
	for (size_t i = 0; i < n_declared; i++)
		want[declared[i]]++;
	for (size_t i = 0; i < n_gis; i++)
		have[gis[i].index]++;
	return memcmp(want, have, sizeof(want)) == 0;
}

/* A GPU instance's compute instances, then the GPU instance itself. */
static int destroy_gi(const struct nvml_mig_api *api, const struct mig_gi *gi, const char *name,
		      char **ret_error)
{
	nvmlReturn_t r;

	for (unsigned i = 0; i < NVML_COMPUTE_INSTANCE_PROFILE_COUNT; i++) {
		nvmlComputeInstanceProfileInfo_t info = {};
		nvmlComputeInstance_t cis[MIG_MAX_INSTANCES];
		unsigned count;

		if (api->ci_profile(gi->handle, i, NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED,
				    &info) != NVML_SUCCESS)
			continue; /* a profile this GPU instance cannot have */
		count = MIN(info.instanceCount, (unsigned)MIG_MAX_INSTANCES);
		r = api->compute_instances(gi->handle, info.id, cis, &count);
		if (r != NVML_SUCCESS)
			return mig_fail(api, r, ret_error, "nvmlGpuInstanceGetComputeInstances",
					name);
		for (unsigned k = 0; k < count; k++) {
			r = api->destroy_ci(cis[k]);
			if (r != NVML_SUCCESS)
				return mig_fail(api, r, ret_error, "nvmlComputeInstanceDestroy",
						name);
		}
	}
	r = api->destroy_gi(gi->handle);
	return r == NVML_SUCCESS ? 0 : mig_fail(api, r, ret_error, "nvmlGpuInstanceDestroy", name);
}

/* One GPU instance of profile @index with one compute instance spanning all of it. */
static int create_gi(const struct nvml_mig_api *api, nvmlDevice_t gpu,
		     const struct mig_profiles *p, unsigned index, char **ret_error)
{
	nvmlComputeInstanceProfileInfo_t ci = {};
	nvmlComputeInstance_t ci_handle;
	nvmlGpuInstance_t gi;
	nvmlReturn_t r;
	unsigned i;

	r = api->create_gi(gpu, p->info[index].id, &gi);
	if (r != NVML_SUCCESS)
		return mig_fail(api, r, ret_error, "nvmlDeviceCreateGpuInstance", p->name[index]);
	for (i = 0; i < NVML_COMPUTE_INSTANCE_PROFILE_COUNT; i++)
		if (api->ci_profile(gi, i, NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED, &ci) ==
			    NVML_SUCCESS &&
		    ci.sliceCount == p->info[index].sliceCount)
			break;
	if (i == NVML_COMPUTE_INSTANCE_PROFILE_COUNT) {
		if (asprintf(ret_error, "no compute instance profile spans a %s GPU instance",
			     p->name[index]) < 0)
			*ret_error = NULL;
		return -EOPNOTSUPP;
	}
	r = api->create_ci(gi, ci.id, &ci_handle);
	if (r != NVML_SUCCESS)
		return mig_fail(api, r, ret_error, "nvmlGpuInstanceCreateComputeInstance",
				p->name[index]);
	return 0;
}

/* MIG mode: 1 when it is current, 0 when it is not (enabled here if allowed, or pending). */
static int mig_mode_ready(const struct nvml_mig_api *api, nvmlDevice_t gpu, const struct offer *o,
			  char **ret_error)
{
	unsigned cur = 0, pend = 0;
	nvmlReturn_t r, activation = NVML_SUCCESS;

	r = api->mig_mode(gpu, &cur, &pend);
	if (r != NVML_SUCCESS)
		return mig_fail(api, r, ret_error, "nvmlDeviceGetMigMode", NULL);
	if (cur == NVML_DEVICE_MIG_ENABLE)
		return 1;
	if (!o->enable) {
		if (asprintf(ret_error, "MIG is disabled on this GPU and the offer does not say "
					"mig-enable: true") < 0)
			*ret_error = NULL;
		return -EPERM;
	}
	if (pend == NVML_DEVICE_MIG_ENABLE)
		return 0; /* enabled already, waiting for a GPU reset */
	r = api->set_mig_mode(gpu, NVML_DEVICE_MIG_ENABLE, &activation);
	if (r != NVML_SUCCESS)
		return mig_fail(api, r, ret_error, "nvmlDeviceSetMigMode", "enable");
	r = api->mig_mode(gpu, &cur, &pend);
	if (r != NVML_SUCCESS)
		return mig_fail(api, r, ret_error, "nvmlDeviceGetMigMode", NULL);
	return cur == NVML_DEVICE_MIG_ENABLE;
}

int nvidia_mig_apply(const struct nvml_mig_api *api, nvmlDevice_t gpu, const struct offer *o,
		     char **ret_error)
{
	unsigned declared[MIG_MAX_INSTANCES];
	struct mig_gi gis[MIG_MAX_INSTANCES];
	struct mig_profiles p = {};
	size_t n_declared = 0, n_gis = 0;
	int r;

	if (o->kind != OFFER_PARTITIONS)
		return -EOPNOTSUPP;
	r = mig_mode_ready(api, gpu, o, ret_error);
	if (r <= 0)
		return r;
	profiles_read(api, gpu, &p);
	r = declared_layout(&p, o, declared, &n_declared, ret_error);
	if (r >= 0)
		r = existing_layout(api, gpu, &p, gis, &n_gis, ret_error);
	if (r < 0)
		return r;
	if (same_layout(declared, n_declared, gis, n_gis))
		return 0;
	for (size_t i = 0; i < n_gis; i++) {
		r = destroy_gi(api, &gis[i], p.name[gis[i].index], ret_error);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < n_declared; i++) {
		r = create_gi(api, gpu, &p, declared[i], ret_error);
		if (r < 0)
			return r;
	}
	return 0;
}
