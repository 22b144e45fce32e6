/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The slice planner: turns devices into schedulable slices, and slices into capacity per
 * resource name. A device is offered whole, or as the partitions its backend reports (MIG
 * instances); replicas and memory shares plug in here. Pure functions over plain structs.
 */
#pragma once

#include <stddef.h>

#include "core/device.h"

struct slice_list {
	struct xpu_slice **items;
	size_t n;
};

void slice_list_clear(struct slice_list *l);

/*
 * The slices of every device, in device order: its partitions where the backend reported any
 * (MIG instances), the whole device otherwise. Returns 0 or -ENOMEM.
 */
int plan_slices(const struct device_list *devices, struct slice_list *ret);

struct capacity {
	char *resource;
	unsigned total;
	unsigned healthy;
	unsigned allocatable; /* healthy and free (nothing is allocated before the allocator) */
};

struct capacity_list {
	struct capacity *items;
	size_t n;
};

/*
 * Counts slices per resource name, sorted by name; a slice is healthy when its device is.
 * Returns 0 or -ENOMEM.
 */
int plan_capacity(const struct device_list *devices, const struct slice_list *slices,
		  struct capacity_list *ret);
void capacity_list_clear(struct capacity_list *l);
