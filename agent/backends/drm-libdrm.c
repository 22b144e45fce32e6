// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The real host's DRM devices as libdrm lists them (drm-internal.h): drmGetDevices2() for the
 * devices, their bus address and their nodes, drmGetVersion() on a node for the driver's name.
 * libdrm reads the real /sys and /dev, so this lister serves only the real host; a fake host
 * root goes through drm.c's sysfs lister.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <xf86drm.h>

#include "backends/drm-internal.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/macro.h"

/* libdrm's devices, freed whatever happens */
struct drm_devices {
	drmDevicePtr *items;
	int n;
};

static void drm_devices_done(struct drm_devices *d)
{
	if (d->items) {
		drmFreeDevices(d->items, d->n);
		free(d->items);
	}
}

/*
 * @dev's node of @type, if it has one: "dri/card0" (a pointer into libdrm's "/dev/dri/card0")
 * and its minor. A node that is gone (removed since libdrm listed it) is a warning, and none.
 */
static void drm_node(const drmDevice *dev, int type, char **ret_name, int *ret_minor)
{
	const char *path = dev->nodes[type];
	struct stat st;

	if (!(dev->available_nodes & (1 << type)))
		return;
	if (stat(path, &st) < 0) {
		log_warning_errno(errno, "DRM node %s: %m; left out.", path);
		return;
	}
	if (!S_ISCHR(st.st_mode)) {
		log_warning("DRM node %s: not a character device; left out.", path);
		return;
	}
	*ret_name = (char *)(strncmp(path, "/dev/", 5) == 0 ? path + 5 : path);
	*ret_minor = (int)minor(st.st_rdev);
}

/* The DRM driver's name as the driver answers it through /dev/@node. 0, -errno of the open,
 * -EIO when it does not answer, -ENOMEM. */
static int drm_driver_version(const char *node, char **ret)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -EBADF;
	drmVersionPtr v;
	int r = 0;

	if (asprintf(&path, "/dev/%s", node) < 0)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	v = drmGetVersion(fd);
	if (!v)
		return -EIO;
	if (v->name_len <= 0 || !v->name)
		r = -EIO;
	else if (!(*ret = strndup(v->name, (size_t)v->name_len)))
		r = -ENOMEM;
	drmFreeVersion(v);
	return r;
}

/*
 * The driver of @c: drmGetVersion() through its render node, else its primary one. When
 * neither answers (permissions), a warning naming the nodes, and the name of the driver bound
 * to the nodes' device in sysfs stands in. NULL when that says nothing either; -ENOMEM.
 */
static int drm_driver(const struct drm_card *c, char **ret)
{
	const char *first = c->render ?: c->card;
	_cleanup_free_ char *nodes = NULL;
	char sys[PATH_MAX];
	int r = -ENOENT, sr;

	*ret = NULL;
	if (c->render)
		r = drm_driver_version(c->render, ret);
	if (r < 0 && r != -ENOMEM && c->card)
		r = drm_driver_version(c->card, ret);
	if (r >= 0 || r == -ENOMEM)
		return r;
	if (c->render && c->card)
		sr = asprintf(&nodes, "nodes /dev/%s and /dev/%s do", c->render, c->card);
	else
		sr = asprintf(&nodes, "node /dev/%s does", first);
	if (sr < 0)
		return -ENOMEM;
	/* the class device in sysfs is named as the device node */
	snprintf(sys, sizeof(sys), "/sys/class/drm/%s/device/driver", strrchr(first, '/') + 1);
	sr = readlink_basename_at(AT_FDCWD, sys, ret);
	if (sr == -ENOMEM)
		return sr;
	if (sr < 0) {
		*ret = NULL;
		log_warning_errno(r, "DRM %s not answer (%m), and %s cannot be read: no driver.",
				  nodes, sys);
	} else
		log_warning_errno(r, "DRM %s not answer (%m): the driver from %s: %s.", nodes, sys,
				  *ret);
	return 0;
}

/* Adds @dev to @l, or leaves it out (another bus; no node left): 0 or -ENOMEM. */
static int drm_add_device(struct drm_card_list *l, const drmDevice *dev)
{
	struct drm_card c = { .card_minor = -1, .render_minor = -1 };
	_cleanup_free_ char *driver = NULL;
	int r;

	if (dev->bustype == DRM_BUS_PCI) {
		const drmPciBusInfo *p = dev->businfo.pci;

		snprintf(c.address, sizeof(c.address), "%04x:%02x:%02x.%x", p->domain & 0xffff,
			 p->bus, p->dev & 0x1f, p->func & 0x7);
	} else if (dev->bustype != DRM_BUS_PLATFORM) {
		log_debug("A DRM device on bus type %d, neither PCI nor platform: left out.",
			  dev->bustype);
		return 0;
	}
	drm_node(dev, DRM_NODE_PRIMARY, &c.card, &c.card_minor);
	drm_node(dev, DRM_NODE_RENDER, &c.render, &c.render_minor);
	if (!c.card && !c.render)
		return 0;
	r = drm_driver(&c, &driver);
	if (r < 0)
		return r;
	c.driver = driver;
	return drm_card_list_add(l, &c);
}

int drm_list_libdrm(struct drm_card_list *ret)
{
	_cleanup_(drm_card_list_done) struct drm_card_list l = {};
	_cleanup_(drm_devices_done) struct drm_devices devs = {};
	int n, r;

	n = drmGetDevices2(0, NULL, 0);
	if (n < 0)
		return log_debug_errno(n, "libdrm lists no DRM devices: %m.");
	if (n == 0)
		return -ENOENT;
	devs.items = calloc((size_t)n, sizeof(*devs.items));
	if (!devs.items)
		return -ENOMEM;
	/* fewer than counted when some went away in between; never more than asked for */
	r = drmGetDevices2(0, devs.items, n);
	if (r < 0)
		return log_debug_errno(r, "libdrm lists no DRM devices: %m.");
	devs.n = r;
	if (devs.n == 0)
		return -ENOENT;
	for (int i = 0; i < devs.n; i++) {
		r = drm_add_device(&l, devs.items[i]);
		if (r < 0)
			return r;
	}
	*ret = l;
	l = (struct drm_card_list){};
	return 0;
}
