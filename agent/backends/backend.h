/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The backend interface. One source of devices (generic PCI, NVML, libdrm, XRT, the xpu_pci
 * kernel module, ...) is one file implementing one struct xpu_backend_ops. The core includes
 * only this header; vendor types never cross it: backends translate their errors to -errno and
 * their records to struct xpu_device.
 */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "core/config.h"
#include "core/device.h"
#include "core/policy.h"
#include "core/rules.h"
#include "shared/host.h"

struct xpu_backend;
struct backend_update;
struct kmsg_record;
struct backend_uevent;

struct xpu_backend_ops {
	const char *name;
	/*
	 * Merge precedence: when two backends report the same PCI address, the record of the one
	 * with the higher priority wins (see device_merge()). The generic PCI backend is 0.
	 */
	int priority;
	/*
	 * How the core offers this source's devices (core/rules.h): its partition scheme, the
	 * merge rules of the environment variables it defines, what enforces a shared slice's
	 * limits, its node labels. The registry points every device the backend reports at it.
	 * NULL: the defaults (whole, unenforced sharing, no partitions, no labels).
	 */
	const struct device_rules *rules;
	/*
	 * Checks whether the source is usable on this host and sets up private state in
	 * b->userdata. Returns 0 when available; -errno when not, with a malloc'd one-line
	 * reason in *ret_reason ("libnvidia-ml.so.1 not found"). Unavailable is not an error of
	 * xpud: the backend is listed with its reason and skipped. Required.
	 */
	int (*probe)(struct xpu_backend *b, char **ret_reason);
	/*
	 * Appends every device the source sees to @list (ownership passes to the list). One
	 * device's failure marks that device unhealthy or skips it; it never fails the call.
	 * Returns 0 or -errno when the source as a whole could not be read. Required.
	 */
	int (*enumerate)(struct xpu_backend *b, struct device_list *list);
	/*
	 * Re-evaluates the health of one device this backend produced, in place. Returns 0 (the
	 * device's health fields are updated), -ENODEV when the device is gone, -ESTALE when the
	 * record no longer describes the device (a driver was bound or unbound: rescan), or
	 * -errno. Optional.
	 */
	int (*refresh)(struct xpu_backend *b, struct xpu_device *d);
	/*
	 * Event-driven news from the source (health events, a changed partition layout). watch
	 * returns a file descriptor, owned by the backend, that becomes readable when there is
	 * news, or -errno (-EOPNOTSUPP: none). The daemon polls it and calls dispatch, which
	 * drains it: health changes go to @ret_updates (an array of @ret_n, freed with
	 * backend_updates_free()), and *ret_rescan asks for a rescan. Both optional.
	 */
	int (*watch)(struct xpu_backend *b);
	int (*dispatch)(struct xpu_backend *b, struct backend_update **ret_updates, size_t *ret_n,
			bool *ret_rescan);
	/*
	 * Makes the device's hardware partitioning what @o declares (a MIG layout), when the
	 * source can change it. Idempotent: a device already partitioned as declared is left
	 * alone and 0 returned. 0 also when the change was made but takes effect later (MIG mode
	 * enabled, pending a GPU reset). -EOPNOTSUPP when the backend cannot apply @o (the
	 * library lacks the functions, or the offer is not of its kind); -errno on failure, with
	 * a malloc'd one-line reason in *ret_error (the vendor's message), possibly after part of
	 * the change was made: the next enumeration shows what exists. Blocks for at most a
	 * bounded time. Runs on a thread of its own (services/offloop.c), while the loop goes on
	 * calling the other ops: what it shares with them must be locked. Does not log above
	 * debug. Optional.
	 */
	int (*apply_offer)(struct xpu_backend *b, const struct xpu_device *d, const struct offer *o,
			   char **ret_error);
	/*
	 * Resets device @d (a PCI function-level reset, or the source's own way), so that a fault
	 * that only a reset cures is gone. The caller has made sure nothing xpud granted uses the
	 * device; a source that can see other users (processes on a GPU) refuses with -EBUSY.
	 * Returns 0 when the reset was carried out; -EOPNOTSUPP when the source cannot reset @d;
	 * -EBUSY; -ETIMEDOUT when it did not finish in time; -errno; every error with a malloc'd
	 * one-line reason in *ret_reason. Blocks for a bounded time. Runs on a thread of its own,
	 * like apply_offer (the same rule on shared state). Does not log above debug. Optional.
	 */
	int (*reset)(struct xpu_backend *b, const struct xpu_device *d, char **ret_reason);
	/*
	 * The kernel's log: what the backend reads in it ("XIDs"), for /v1/backends, and the op
	 * the daemon calls with every record of /dev/kmsg it reads (shared/kmsg.h; continuation
	 * fragments as they come), in order, on the loop, while the backend is available. The
	 * backend picks its own lines out and answers like dispatch: health changes in
	 * @ret_updates (freed with backend_updates_free()), a rescan in *ret_rescan. @rec NULL
	 * ends one batch of records read together: a backend that counts repeated lines says so
	 * then. Returns 0, or -errno (-ENOMEM) when it could not handle the record. A line it
	 * cannot read is the backend's to log (a warning), not an error. Both optional.
	 */
	const char *kmsg_what;
	int (*kmsg)(struct xpu_backend *b, const struct kmsg_record *rec,
		    struct backend_update **ret_updates, size_t *ret_n, bool *ret_rescan);
	/*
	 * Every kernel uevent the daemon sees that can change the inventory (daemon/uevent.h),
	 * before the rescan it schedules, for what a backend reads in the event itself (a DRM
	 * device's WEDGED=). Answers like dispatch. Called on the loop while the backend is
	 * available. Optional.
	 */
	int (*uevent)(struct xpu_backend *b, const struct backend_uevent *ev,
		      struct backend_update **ret_updates, size_t *ret_n, bool *ret_rescan);
	/* Releases b->userdata. Optional. */
	void (*close)(struct xpu_backend *b);
};

/* One device's health, as a backend's event says it now is (health.action: what the fault asks
 * for, when the backend knows). */
struct backend_update {
	char *id;
	struct xpu_health health;
};

void backend_updates_free(struct backend_update *u, size_t n);

/* A kernel uevent, as the daemon hands it to the backends (borrowed, for the call only). */
struct backend_uevent {
	const char *action;    /* "add", "remove", "bind", "unbind", "change", ... */
	const char *devpath;   /* "/devices/pci0000:17/0000:17:00.0/drm/card1" */
	const char *subsystem; /* or NULL */
	const char *props;     /* its KEY=VALUE entries, each NUL-terminated, @props_len bytes */
	size_t props_len;
};

/* The value of @key in @ev (borrowed), or NULL. */
const char *backend_uevent_get(const struct backend_uevent *ev, const char *key);

struct xpu_backend {
	const struct xpu_backend_ops *ops;
	const struct xpu_host *host;	/* borrowed */
	const struct config *config;	/* borrowed; NULL in some tests */
	/* The daemon's loop, set before watch is called (borrowed; NULL in tools and some tests):
	 * a backend may add sources of its own to it (helper runs, timers). */
	sd_event *event;
	void *userdata;
	bool available;
	char *reason; /* why unavailable, or NULL */
	/* Whether the daemon reads the kernel log for ops->kmsg, and why not (malloc'd; NULL while
	 * it does, or before it tried). Set by the daemon; shown in /v1/backends. */
	bool kmsg_read;
	char *kmsg_reason;
	/* Set by the registry at each enumeration, for the metrics: its error (0: it answered) and
	 * when it last answered (CLOCK_MONOTONIC; 0: never). */
	int enumerate_error;
	uint64_t enumerated_usec;
};

extern const struct xpu_backend_ops pci_backend_ops;
extern const struct xpu_backend_ops accel_backend_ops;
extern const struct xpu_backend_ops drm_backend_ops;
extern const struct xpu_backend_ops nvidia_backend_ops;
extern const struct xpu_backend_ops kmod_backend_ops;
extern const struct xpu_backend_ops xrt_backend_ops;
extern const struct xpu_backend_ops fpga_backend_ops;
