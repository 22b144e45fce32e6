/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The systemd path of enforcement, its effects: the transient scope of a grant made over sd-bus
 * (org.freedesktop.systemd1.Manager.StartTransientUnit) from the properties enforce-unit.c
 * builds, and the wait for its job, as systemd-run --scope does. The call blocks the event loop
 * for as long as systemd takes to start a scope (milliseconds), bounded by a deadline.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "services/enforce-unit.h"
#include "shared/host.h"
#include "shared/macro.h"

/* The environment variable naming the D-Bus address of systemd (tests: a fake on a private bus). */
#define ENFORCE_SYSTEMD_BUS_ENV "XPU_SYSTEMD_BUS"

/* How long a call and its job may take before the grant is refused. */
#define ENFORCE_SYSTEMD_TIMEOUT_USEC (10ULL * 1000 * 1000)

/* Whether systemd runs @host: <root>/run/systemd/system is a directory (sd_booted()'s test). */
bool enforce_systemd_booted(const struct xpu_host *host);

struct enforce_systemd;

/*
 * A connection to systemd, made at the first call: @address (a D-Bus address, as
 * $XPU_SYSTEMD_BUS gives it) through a bus daemon; NULL: systemd's private socket below
 * @host's root as root (what systemctl uses; no dbus-daemon needed), else the system bus.
 * @host is borrowed. 0 or -ENOMEM. Does not log.
 */
int enforce_systemd_new(const struct xpu_host *host, const char *address,
			struct enforce_systemd **ret);
struct enforce_systemd *enforce_systemd_free(struct enforce_systemd *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct enforce_systemd *, enforce_systemd_free);

/* Where it connects, for the log: the address, or a description of the default. */
const char *enforce_systemd_address(const struct enforce_systemd *s);

/*
 * Appends @p's properties to @m as StartTransientUnit's a(sv), each a variant of its kind's
 * signature. 0 or the -errno of sd-bus. Does not log.
 */
int unit_props_append(sd_bus_message *m, const struct unit_props *p);

/*
 * Starts the transient unit @p (mode "fail") and waits for its job. On any failure nothing is
 * left: a unit whose job did not end in "done" is stopped and its failed state reset. Errors,
 * each with a reason in *ret_error: -ECONNREFUSED (systemd cannot be reached over D-Bus),
 * -EBUSY (a unit of that name exists), -EOPNOTSUPP (systemd refused a property), -ESRCH (the
 * process of PIDs exited before systemd took it), -ETIMEDOUT, -EIO (the job failed), -ENOMEM.
 * Does not log.
 */
int enforce_systemd_start(struct enforce_systemd *s, const struct unit_props *p, char **ret_error);

/*
 * Sets @p's properties on the existing unit @p->unit (SetUnitProperties, runtime: not kept over
 * a reboot). Errors as enforce_systemd_start(), -ESRCH: systemd has no such unit loaded; each
 * with a reason in *ret_error. Does not log.
 */
int enforce_systemd_set(struct enforce_systemd *s, const struct unit_props *p, char **ret_error);

/*
 * What gives the existing unit @set->unit back the values it has now of the properties @set
 * sets (GetUnit, then each property's Get on the interface of the unit's type): the same
 * properties, DeviceAllow= as an empty list and then the unit's own entries. Errors as
 * enforce_systemd_set(), and -EINVAL: a unit of a type without a cgroup (a target, a timer...).
 * Does not log.
 */
int enforce_systemd_save(struct enforce_systemd *s, const struct unit_props *set,
			 struct unit_props *ret, char **ret_error);
