/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What a grant gives a workload, built once from its slices' container edits: the device nodes,
 * the environment (each variable merged by the rule of whoever defines it, core/rules.h), the
 * CDI names, and the NUMA node and CPUs when every slice shares one. Every front end renders
 * this struct (the API as JSON, the device plugin as protobuf); none parses another's output.
 */
#pragma once

#include <stddef.h>

#include "core/device.h"
#include "core/plan.h"

/* The vendor part of xpud's CDI names: "xpu.dev/gpu=0000-18-00.0". */
#define CDI_VENDOR "xpu.dev"

/* One variable of a grant's environment. */
struct grant_env {
	char *name;
	char *value;
};

struct grant {
	char **slices;	       /* the slice ids, in grant order (borrowed from the request) */
	char **device_nodes;   /* host paths, each once, in grant order */
	struct grant_env *env; /* in order of first appearance */
	size_t n_env;
	char **cdi_devices;   /* qualified CDI names, one per slice still present */
	int numa_node;	      /* -1 when the slices span nodes or it is unknown */
	const char *cpu_list; /* borrowed from the device; NULL with numa_node -1 */
	size_t n_missing;     /* slices whose device is gone: named, nothing to give */
};

void grant_done(struct grant *g);
/* The value of variable @name in @g (borrowed), or NULL. */
const char *grant_env_get(const struct grant *g, const char *name);

/*
 * Builds what the slices @slice_ids (NULL-terminated, in grant order) give a workload, from
 * their records in @slices and their devices in @devs. A slice no longer in @slices (its device
 * unplugged) is counted in n_missing and gives nothing. 0 or -ENOMEM.
 */
int grant_build(char *const *slice_ids, const struct device_list *devs,
		const struct slice_list *slices, struct grant *ret);

/*
 * The fully qualified CDI name of slice @s of device @d (NULL: gone):
 * "xpu.dev/<kind>=<slice id with ':' and '/' as '-'>", malloc'd; NULL on OOM.
 */
char *slice_cdi_name(const struct xpu_slice *s, const struct xpu_device *d);
