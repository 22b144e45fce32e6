// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DRM backend: GPUs as the kernel's DRM subsystem shows them. Every DRM device is listed
 * once (drm-internal.h: libdrm on the real host, the root's sysfs under a fake one); each PCI
 * function among them becomes one device with its card and render nodes, which the vendor part
 * of its driver (drm-amdgpu.c, drm-intel.c) describes further: memory, model, partitions,
 * environment, health. A display controller whose driver has no vendor part (virtio_gpu, ...)
 * still gets its nodes reported when it has a render node; display-only devices (a BMC's VGA)
 * and the render nodes of other devices (an FPGA's user function) stay out.
 *
 * Health: the vendor's signals (amdgpu RAS counters), removal, and a wedged device: the kernel
 * says so in a uevent of the DRM device ("WEDGED=<recovery>", drm_dev_wedged_event()); the
 * device stays unhealthy until its driver is rebound or the function reset (a "bind" or "add"
 * uevent of it, or "WEDGED=none").
 *
 * Only what DRM adds is reported: the generic PCI backend's record of the same function fills
 * in the rest in the merge (link, topology, CPU list, AER health).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "backends/drm-internal.h"
#include "backends/pci.h"
#include "backends/samples.h"
#include "shared/clock.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/strv.h"

static const struct drm_vendor *const drm_vendors[] = {
	&drm_amdgpu_vendor,
	&drm_intel_vendor,
};

/* A function the kernel said is wedged, and how it asks to be recovered. */
struct wedged {
	char address[13];
	char *method;
};

struct drm_backend {
	/* the wedged functions: set by uevents on the loop, read by the loop's enumerations and
	 * by apply_offer's thread (which does not care), so no lock */
	struct wedged *wedged;
	size_t n_wedged;
	struct offered_modes intel_tiled; /* drm_gpu_ctx.intel_tiled */
};

static const struct drm_vendor *vendor_of(const char *driver)
{
	for (size_t i = 0; driver && i < ELEMENTSOF(drm_vendors); i++)
		if (strv_contains((char *const *)drm_vendors[i]->drivers, driver))
			return drm_vendors[i];
	return NULL;
}

void drm_warn_file(const char *id, const char *file, int r)
{
	log_warning_errno(r, "%s: cannot read %s, reporting the device without it: %m", id, file);
}

int drm_add_node(struct xpu_device *d, const char *devname)
{
	_cleanup_free_ char *node = host_dev_path(devname);

	if (!node)
		return -ENOMEM;
	if (strv_contains(d->device_nodes, node))
		return 0;
	return strv_consume(&d->device_nodes, TAKE_PTR(node));
}

/* ---- the sysfs lister ---------------------------------------------------------------------- */

/* The minor of a DRM node name: card<N> -> N, renderD<N> -> N; -1 when it is neither (a
 * connector "card0-DP-1", "version"). */
static int node_minor(const char *name, bool *ret_render)
{
	unsigned n;

	if (strncmp(name, "renderD", 7) == 0 && safe_atou(name + 7, &n) >= 0 && n < (1u << 20)) {
		*ret_render = true;
		return (int)n;
	}
	if (strncmp(name, "card", 4) == 0 && safe_atou(name + 4, &n) >= 0 && n < (1u << 20)) {
		*ret_render = false;
		return (int)n;
	}
	return -1;
}

/* The card in @l of the parent @parent (a PCI address, or a platform device's name kept in
 * @key), made when missing. NULL on OOM. */
static struct drm_card *card_for(struct drm_card_list *l, char ***keys, const char *parent)
{
	struct drm_card c = { .card_minor = -1, .render_minor = -1 };
	char addr[13];

	for (size_t i = 0; i < l->n; i++)
		if (streq((*keys)[i], parent))
			return &l->items[i];
	if (parse_pci_address(parent, addr) >= 0)
		memcpy(c.address, addr, sizeof(addr));
	if (strv_extend(keys, parent) < 0 || drm_card_list_add(l, &c) < 0)
		return NULL;
	return &l->items[l->n - 1];
}

int drm_list_sysfs(const struct xpu_host *host, struct drm_card_list *ret)
{
	_cleanup_(drm_card_list_done) struct drm_card_list l = {};
	_cleanup_strv_free_ char **keys = NULL;
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int r;

	r = opendir_at(host->sys_fd, "class/drm", &d);
	if (r < 0)
		return r;
	while ((de = readdir(d))) {
		_cleanup_free_ char *parent = NULL, *devname = NULL, *path = NULL;
		struct drm_card *c;
		bool render;
		int minor = node_minor(de->d_name, &render);

		if (minor < 0)
			continue;
		if (asprintf(&path, "%s/device", de->d_name) < 0)
			return -ENOMEM;
		r = resolve_basename_at(dirfd(d), path, &parent);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			log_warning_errno(r, "DRM node %s: its device link cannot be resolved, "
					     "ignoring: %m", de->d_name);
			continue;
		}
		c = card_for(&l, &keys, parent);
		if (!c)
			return -ENOMEM;
		if (!c->driver) {
			/* once per device: its nodes share it */
			free(path);
			if (asprintf(&path, "%s/device/driver", de->d_name) < 0)
				return -ENOMEM;
			r = readlink_basename_at(dirfd(d), path, &c->driver);
			if (r == -ENOMEM)
				return r;
		}
		/* the DRM core names every node dri/<name> (drm_devnode()) */
		if (asprintf(&devname, "dri/%s", de->d_name) < 0)
			return -ENOMEM;
		if (render) {
			free(c->render);
			c->render = TAKE_PTR(devname);
			c->render_minor = minor;
		} else {
			free(c->card);
			c->card = TAKE_PTR(devname);
			c->card_minor = minor;
		}
	}
	*ret = l;
	l = (struct drm_card_list){};
	return 0;
}

/* The lister for @host: libdrm where the kernel's own view is the host's. */
static int list_cards(const struct xpu_host *host, struct drm_card_list *ret)
{
	return host->is_real ? drm_list_libdrm(ret) : drm_list_sysfs(host, ret);
}

/* ---- health -------------------------------------------------------------------------------- */

static struct wedged *wedged_find(struct drm_backend *db, const char *address)
{
	for (size_t i = 0; i < db->n_wedged; i++)
		if (streq(db->wedged[i].address, address))
			return &db->wedged[i];
	return NULL;
}

static void wedged_forget(struct drm_backend *db, const char *address)
{
	struct wedged *w = wedged_find(db, address);

	if (!w)
		return;
	free(w->method);
	*w = db->wedged[--db->n_wedged];
}

static int wedged_set(struct drm_backend *db, const char *address, const char *method)
{
	struct wedged *w = wedged_find(db, address);
	char *m = strdup(method);

	if (!m)
		return -ENOMEM;
	if (!w) {
		w = reallocarray(db->wedged, db->n_wedged + 1, sizeof(*w));
		if (!w) {
			free(m);
			return -ENOMEM;
		}
		db->wedged = w;
		w = &db->wedged[db->n_wedged++];
		memcpy(w->address, address, 13);
	} else {
		free(w->method);
	}
	w->method = m;
	return 0;
}

/* @d's health from scratch: its vendor's signals, and the kernel's word that it is wedged. */
static int evaluate_health(struct xpu_backend *b, struct drm_gpu_ctx *ctx, int fnfd,
			   const struct drm_vendor *v, struct xpu_device *d)
{
	struct drm_backend *db = b->userdata;
	const struct wedged *w = db ? wedged_find(db, d->id) : NULL;
	int r;

	free(d->health.reason);
	d->health = (struct xpu_health){ .state = XPU_HEALTH_HEALTHY };
	if (w) {
		r = device_set_unhealthy(d, "the driver reports the device wedged (recovery: %s)",
					 w->method);
		if (r < 0)
			return r;
	}
	return v && v->health ? v->health(ctx, fnfd, d) : 0;
}

/* ---- enumeration --------------------------------------------------------------------------- */

static int describe_card(struct xpu_backend *b, struct drm_gpu_ctx *ctx, const struct drm_card *c,
			 struct device_list *list)
{
	_cleanup_(device_freep) struct xpu_device *d = NULL;
	_cleanup_free_ char *driver = NULL;
	_cleanup_close_ int fnfd = -EBADF;
	const struct drm_vendor *v = vendor_of(c->driver);
	uint32_t vendor, device, class;
	int r;

	if (!v && !c->render)
		return 0; /* display only: a BMC's VGA */
	r = pci_open_function(b->host, c->address, &fnfd, &driver);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		log_warning_errno(r, "%s: DRM device %s without its PCI function, ignoring: %m",
				  c->address, c->card ?: c->render);
		return 0;
	}
	if (read_attr_hex_at(fnfd, "vendor", 0xffff, &vendor) < 0 ||
	    read_attr_hex_at(fnfd, "device", 0xffff, &device) < 0 ||
	    read_attr_hex_at(fnfd, "class", 0xffffff, &class) < 0)
		return 0; /* removed meanwhile, or unreadable: the PCI backend names the culprit */
	if (!v && class >> 16 != 0x03)
		return 0; /* a render node of a device that is not a GPU (an FPGA's user function) */
	if (!v && streq_ptr(driver, "nvidia"))
		return 0; /* nvidia-drm's nodes: a CUDA workload needs /dev/nvidiaN, not these */

	d = device_new();
	if (!d || !(d->id = strdup(c->address)))
		return -ENOMEM;
	d->kind = XPU_KIND_GPU;
	d->has_pci = true;
	memcpy(d->pci.address, c->address, sizeof(c->address));
	d->pci.vendor_id = (uint16_t)vendor;
	d->pci.device_id = (uint16_t)device;
	d->pci.class_code = class;
	if ((c->driver && !(d->driver = strdup(c->driver))) ||
	    (pci_vendor_name(d->pci.vendor_id) &&
	     !(d->vendor = strdup(pci_vendor_name(d->pci.vendor_id)))))
		return -ENOMEM;
	if ((c->card && drm_add_node(d, c->card) < 0) ||
	    (c->render && drm_add_node(d, c->render) < 0))
		return -ENOMEM;
	if ((c->card && device_set_property(d, "drm_card", c->card) < 0) ||
	    (c->render && device_set_property(d, "drm_render", c->render) < 0))
		return -ENOMEM;
	if (v && v->describe) {
		r = v->describe(ctx, c, fnfd, d, list);
		if (r < 0)
			return r;
	}
	if (v && v->sample && samples_wanted(b->config)) {
		r = v->sample(fnfd, d);
		if (r < 0)
			return r;
	}
	r = evaluate_health(b, ctx, fnfd, v, d);
	if (r < 0)
		return r;
	return device_list_push(list, TAKE_PTR(d));
}

static void ctx_done(struct drm_gpu_ctx *ctx)
{
	for (size_t i = 0; i < ELEMENTSOF(drm_vendors); i++)
		if (drm_vendors[i]->done)
			drm_vendors[i]->done(ctx);
}

static int drm_enumerate(struct xpu_backend *b, struct device_list *list)
{
	_cleanup_(drm_card_list_done) struct drm_card_list cards = {};
	struct drm_backend *db = b->userdata;
	struct drm_gpu_ctx ctx = { .host = b->host, .config = b->config, .cards = &cards,
			       .intel_tiled = db ? &db->intel_tiled : NULL };
	int r;

	r = list_cards(b->host, &cards);
	if (r == -ENOENT)
		return 0; /* no DRM device (left): nothing to report */
	if (r < 0)
		return r;
	for (size_t i = 0; i < cards.n; i++) {
		if (!cards.items[i].address[0])
			continue; /* a platform device: a partition of a GPU, which describes it */
		r = describe_card(b, &ctx, &cards.items[i], list);
		if (r < 0)
			break;
	}
	ctx_done(&ctx);
	if (r >= 0)
		device_list_sort(list);
	return r < 0 ? r : 0;
}

static int drm_probe(struct xpu_backend *b, char **ret_reason)
{
	struct drm_backend *db;
	int r;

	r = exists_at(b->host->sys_fd, "class/drm");
	if (r <= 0) {
		*ret_reason = strdup(r == 0 ? "no DRM devices (no /sys/class/drm)"
					    : "/sys/class/drm cannot be read");
		return *ret_reason ? -ENOENT : -ENOMEM;
	}
	db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	offered_modes_init(&db->intel_tiled);
	b->userdata = db;
	return 0;
}

/*
 * At a health probe, once a metrics interval has gone by since the last enumeration: the
 * device's samples read again. -ESTALE when they differ from @d's: the rescan that asks for
 * carries them to the inventory (and the page). 0, -ESTALE or -ENOMEM.
 */
static int sample_changed(struct xpu_backend *b, int (*sample)(int, struct xpu_device *), int fnfd,
			  const struct xpu_device *d)
{
	_cleanup_(device_freep) struct xpu_device *now = NULL;
	int r;

	if (!samples_wanted(b->config) ||
	    !samples_due(b->config, b->enumerated_usec, now_usec(CLOCK_MONOTONIC)))
		return 0;
	now = device_new();
	if (!now)
		return -ENOMEM;
	r = sample(fnfd, now);
	if (r < 0)
		return r;
	return samples_equal(now, d) ? 0 : -ESTALE;
}

static int drm_refresh(struct xpu_backend *b, struct xpu_device *d)
{
	_cleanup_close_ int fnfd = -EBADF;
	_cleanup_free_ char *driver = NULL;
	struct drm_gpu_ctx ctx = { .host = b->host, .config = b->config };
	const struct drm_vendor *v;
	int r;

	if (!d->has_pci)
		return 0;
	r = pci_open_function(b->host, d->id, &fnfd, &driver);
	if (r < 0)
		return r;
	/* unbound or rebound: a rescan's job. A DRM driver without a vendor part may not be the
	 * function's own (virtio_gpu sits on the virtio device of virtio-pci's function): for
	 * those, only unbinding counts, else every probe would ask for a rescan. */
	v = vendor_of(d->driver);
	if (!driver || (!streq_ptr(driver, d->driver) && v))
		return -ESTALE;
	r = evaluate_health(b, &ctx, fnfd, v, d);
	if (r >= 0 && v && v->sample)
		r = sample_changed(b, v->sample, fnfd, d);
	ctx_done(&ctx);
	return r;
}

static int drm_uevent(struct xpu_backend *b, const struct backend_uevent *ev,
		      struct backend_update **ret_updates, size_t *ret_n, bool *ret_rescan)
{
	struct drm_backend *db = b->userdata;
	const char *wedged;
	char addr[13];
	int r;

	*ret_updates = NULL;
	*ret_n = 0;
	if (!db || !ev->devpath || path_pci_address(ev->devpath, addr) < 0)
		return 0;
	if (streq_ptr(ev->subsystem, "pci") &&
	    (streq(ev->action, "bind") || streq(ev->action, "add") ||
	     streq(ev->action, "remove"))) {
		/* a function rebound, reset and re-added, or gone: what it was is over */
		if (wedged_find(db, addr))
			*ret_rescan = true;
		wedged_forget(db, addr);
		return 0;
	}
	if (!streq_ptr(ev->subsystem, "drm") || !streq(ev->action, "change"))
		return 0;
	wedged = backend_uevent_get(ev, "WEDGED");
	if (!wedged)
		return 0;
	if (!string_is_printable(wedged) || strlen(wedged) > 64) {
		log_warning("%s: a DRM uevent with an unreadable WEDGED= value, ignoring.", addr);
		return 0;
	}
	if (streq(wedged, "none")) {
		if (wedged_find(db, addr)) {
			log_notice("%s: the driver reports the device recovered.", addr);
			*ret_rescan = true;
		}
		wedged_forget(db, addr);
		return 0;
	}
	log_device_full_errno(LOG_WARNING, 0, addr, addr,
			      "%s: the driver reports the device wedged (recovery: %s).", addr,
			      wedged);
	r = wedged_set(db, addr, wedged);
	if (r < 0)
		return r;
	*ret_rescan = true;
	return 0;
}

static int drm_apply_offer(struct xpu_backend *b, const struct xpu_device *d,
			   const struct offer *o, char **ret_error)
{
	struct drm_backend *db = b->userdata;
	struct drm_gpu_ctx ctx = { .host = b->host, .config = b->config,
			       .intel_tiled = db ? &db->intel_tiled : NULL };
	const struct drm_vendor *v = vendor_of(d->driver);

	if (!v || !v->apply_offer)
		return -EOPNOTSUPP;
	return v->apply_offer(&ctx, d, o, ret_error);
}

/* A GPU's reset is its PCI function's (the kernel picks the method): DRM has no other. */
static int drm_reset(struct xpu_backend *b, const struct xpu_device *d, char **ret_reason)
{
	if (!d->has_pci)
		return (*ret_reason = strdup("not a PCI function")) ? -EOPNOTSUPP : -ENOMEM;
	return pci_reset_function(b->host, d->pci.address, ret_reason);
}

static void drm_close(struct xpu_backend *b)
{
	struct drm_backend *db = b->userdata;

	if (!db)
		return;
	for (size_t i = 0; i < db->n_wedged; i++)
		free(db->wedged[i].method);
	free(db->wedged);
	offered_modes_done(&db->intel_tiled);
	free(db);
	b->userdata = NULL;
}

const struct xpu_backend_ops drm_backend_ops = {
	.name = "drm",
	.priority = 5,
	.probe = drm_probe,
	.enumerate = drm_enumerate,
	.refresh = drm_refresh,
	.uevent = drm_uevent,
	.apply_offer = drm_apply_offer,
	.reset = drm_reset,
	.close = drm_close,
};
