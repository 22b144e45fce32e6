/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The registry owns every backend, probes them once, and turns their records into one list of
 * devices: enumerate each available backend, then merge records of the same PCI address by
 * priority (device_merge()). A backend whose enumeration fails keeps its last good records, so
 * one broken source never empties the inventory.
 */
#pragma once

#include <stddef.h>

#include "backends/backend.h"

struct registry;

/*
 * Creates a registry over @ops (an array of @n pointers, NULL-terminated not required) for
 * @host, and probes each backend. Unavailable backends are kept with their reason.
 * Returns 0 or -ENOMEM. Logs each unavailable backend at info level.
 */
int registry_new(const struct xpu_host *host, const struct config *config,
		 const struct xpu_backend_ops *const *ops, size_t n, struct registry **ret);
struct registry *registry_free(struct registry *r);

/* Hands every backend the daemon's loop (struct xpu_backend's event), before they are watched. */
void registry_set_event(struct registry *r, sd_event *e);

/* The built-in backend list, in no particular order (merge order comes from priorities). */
extern const struct xpu_backend_ops *const registry_builtin_ops[];
extern const size_t registry_builtin_n;

/* The built-in backends' sections of the configuration file, NULL-terminated, for
 * config_init_sections(). */
extern const struct config_section *const registry_config_sections[];

size_t registry_size(const struct registry *r);
const struct xpu_backend *registry_get(const struct registry *r, size_t i);
/* For the daemon, which wires the backends' watch fds into its loop. */
struct xpu_backend *registry_get_mutable(struct registry *r, size_t i);

/*
 * Enumerates all available backends and returns the merged device list, sorted by id.
 * Returns 0 or -ENOMEM; a failing backend is logged and its previous records are reused.
 */
int registry_enumerate(struct registry *r, struct device_list *ret);

/*
 * Re-evaluates the health of @d through the backend that produced it. 0, -ENODEV, -EOPNOTSUPP
 * when that backend has no refresh op, or -errno.
 */
int registry_refresh(struct registry *r, struct xpu_device *d);

/*
 * Applies @o to @d through the backend that owns @d (its apply_offer op). 0, -EOPNOTSUPP (that
 * backend cannot apply offers; *ret_error says so), -ENODEV (no available backend owns @d), or
 * the op's -errno with its reason in *ret_error. Does not log above debug.
 */
int registry_apply_offer(struct registry *r, const struct xpu_device *d, const struct offer *o,
			 char **ret_error);

/*
 * Resets @d through the backend that owns it (its reset op). 0; -EOPNOTSUPP (that backend cannot
 * reset devices); -ENODEV (no available backend owns @d); or the op's -errno. Every error comes
 * with a malloc'd reason in *ret_reason. Blocks for the op's bounded time. Does not log above
 * debug.
 */
int registry_reset(struct registry *r, const struct xpu_device *d, char **ret_reason);

/*
 * Pure merge step, exposed for tests: moves every device of @in into @out, merging records
 * that share a PCI address (the higher backend priority wins; @prio gives each record's
 * priority by index). Returns 0 or -ENOMEM. @in is emptied.
 */
int registry_merge(struct device_list *in, const int *prio, struct device_list *out);
