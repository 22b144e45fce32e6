/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Constructors, destructors and small helpers over the plain structs of <xpu/device.h>. */
#pragma once

#include <stddef.h>

#include "shared/macro.h"
#include "xpu/device.h"

const char *xpu_kind_to_string(enum xpu_kind k);
enum xpu_kind xpu_kind_from_string(const char *s);
const char *xpu_health_state_to_string(enum xpu_health_state s);

/* A zeroed device with numa_node = -1. NULL on OOM. */
struct xpu_device *device_new(void);
struct xpu_device *device_free(struct xpu_device *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct xpu_device *, device_free);
/* Deep copy. Returns 0 or -ENOMEM. */
int device_dup(const struct xpu_device *d, struct xpu_device **ret);
/* True when every field a client can see is equal. */
bool device_equal(const struct xpu_device *a, const struct xpu_device *b);

/* Replaces a string field (copying @s, which may be NULL). 0 or -ENOMEM. */
int device_set_string(char **field, const char *s);
/* Sets or replaces a free-form property. 0 or -ENOMEM. */
int device_set_property(struct xpu_device *d, const char *key, const char *value);
const char *device_get_property(const struct xpu_device *d, const char *key);
/*
 * The value of @a's property "<prefix><peer>" whose peer names @b: by its id, or else, where
 * that is not its id, by its PCI address ("topology.0000:18:00.0"); NULL when @a has neither.
 */
const char *device_peer_property(const struct xpu_device *a, const char *prefix,
				 const struct xpu_device *b);
/* Marks the device unhealthy with a formatted reason (first reason wins). 0 or -ENOMEM. */
int device_set_unhealthy(struct xpu_device *d, const char *fmt, ...) _printf_(2, 3);
/* The same for a fault whose source knows what it asks for (@action, an enum health_action:
 * HEALTH_ACTION_RESET_DEVICE when only a reset brings the device back). The first fault's reason
 * and action stand. 0 or -ENOMEM. */
int device_set_fault(struct xpu_device *d, int action, const char *fmt, ...) _printf_(3, 4);

/*
 * The merge rule, when two backends describe the same PCI function (see docs/architecture.md):
 * @rich (the higher-priority backend) wins every field it knows; fields it leaves unknown
 * (NULL strings, numa_node -1, memory 0, zero PCI ids/class/revision, no PCI link data, no
 * device nodes, no env) are taken
 * from @generic; properties are the union, @rich winning on equal keys; health is the worse of
 * the two, so a generic probe that sees a dead link is never hidden by a richer backend.
 * Modifies @rich in place. Returns 0 or -ENOMEM.
 */
int device_merge(struct xpu_device *rich, const struct xpu_device *generic);

struct xpu_slice *slice_free(struct xpu_slice *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct xpu_slice *, slice_free);
/* Deep copy. 0 or -ENOMEM. */
int slice_dup(const struct xpu_slice *s, struct xpu_slice **ret);
bool slice_equal(const struct xpu_slice *a, const struct xpu_slice *b);
/* Whether a workload may be given @s: it and its device @d (may be NULL: gone) are healthy. */
bool slice_usable(const struct xpu_slice *s, const struct xpu_device *d);
/* Takes ownership of @s (freed on failure). 0 or -ENOMEM. */
int device_add_partition(struct xpu_device *d, struct xpu_slice *s);

/* Appends a copy of @p to @d's partition profiles. 0 or -ENOMEM. */
int device_add_profile(struct xpu_device *d, const struct xpu_partition_profile *p);
void device_profiles_clear(struct xpu_device *d);
/* @d's profile @name (borrowed), or NULL. */
const struct xpu_partition_profile *device_find_profile(const struct xpu_device *d,
							const char *name);
/*
 * Whether what @d's backend says of its partitioning holds together: profiles with names, each
 * once, with instances (free <= total); partitions with ids, each once, device nodes that are
 * not empty nor listed twice, environment entries NAME=VALUE. 0 with *ret_reason NULL when it
 * does, 0 with the first fault (malloc'd) when not, -ENOMEM.
 */
int device_check_partitioning(const struct xpu_device *d, char **ret_reason);
/* Forgets @d's partitions and profiles: it is offered whole. */
void device_drop_partitioning(struct xpu_device *d);

/* A growable array of owned devices. */
struct device_list {
	struct xpu_device **items;
	size_t n;
	size_t allocated;
};

/* Takes ownership of @d in all cases (freed on failure). 0 or -ENOMEM. */
int device_list_push(struct device_list *l, struct xpu_device *d);
void device_list_clear(struct device_list *l);
/* Sorts by id; ids are unique after merging. */
void device_list_sort(struct device_list *l);
struct xpu_device *device_list_find(const struct device_list *l, const char *id);
/*
 * Finds a device by id, by UUID, or by PCI address in any spelling parse_pci_address() accepts
 * ("18:00.0"), in that order. Returns a borrowed pointer or NULL; does not log.
 */
struct xpu_device *device_list_lookup(const struct device_list *l, const char *key);
