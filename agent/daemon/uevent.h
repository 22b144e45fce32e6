/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Kernel uevents: hot-plug, removal and driver (un)binding, seen live. On a real host xpud
 * listens to the kernel's NETLINK_KOBJECT_UEVENT multicast group; on a fake root (tests,
 * --simulate) it binds a datagram socket in the tree that accepts the same wire format, so
 * the same parser and the same reaction run in both cases.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "shared/macro.h"

struct uevent {
	const char *action;    /* "add", "remove", "bind", "unbind", "change", ... */
	const char *devpath;   /* "/devices/pci0000:17/0000:17:00.0" */
	const char *subsystem; /* "pci", "drm", "accel", ... or NULL */
	const char *props;     /* the KEY=VALUE entries, each NUL-terminated, @props_len bytes */
	size_t props_len;
};

/*
 * Parses one kernel uevent message: "ACTION@DEVPATH\0KEY=VALUE\0...". The returned pointers
 * point into @buf, which must stay alive and be NUL-terminated at @len. Returns 0, or -EINVAL
 * for anything else (libudev's "libudev\0" messages, truncation, missing ACTION/DEVPATH,
 * a header that disagrees with its ACTION=/DEVPATH= keys).
 */
int uevent_parse(const char *buf, size_t len, struct uevent *ret);

/* Whether a uevent can change the accelerator inventory (PCI functions and their DRM/accel
 * nodes, driver binding). */
bool uevent_is_relevant(const struct uevent *ev);

typedef void (*uevent_cb_t)(const struct uevent *ev, void *userdata);

struct uevent_monitor;

/*
 * Starts listening. @test_socket NULL: the kernel's netlink group (needs a real /sys);
 * otherwise a datagram socket bound at that path. Returns 0 or -errno. Does not log.
 */
int uevent_monitor_new(sd_event *e, const char *test_socket, uevent_cb_t cb, void *userdata,
		       struct uevent_monitor **ret);
struct uevent_monitor *uevent_monitor_free(struct uevent_monitor *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct uevent_monitor *, uevent_monitor_free);
