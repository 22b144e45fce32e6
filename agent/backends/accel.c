// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The accelerator backend: PCI accelerators that are neither GPUs nor FPGAs, described from one
 * table of families (accel_families[] below). A family says which PCI functions are its own
 * (vendor id, optionally device ids, driver names), which device node of the function's class
 * devices is the one a workload opens (its name below /dev, with the device index as its last
 * number), the resource name and environment variable its vendor's device plugin uses, and the
 * class device attribute its driver reports health in. A new family is a row of the table.
 *
 * Only what the family adds is reported: the generic PCI backend's record of the same function
 * (priority 0) fills in the rest in the merge (link, topology, CPU list, AER health).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backends/backend.h"
#include "backends/pci.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/strv.h"

struct accel_family {
	const char *name;    /* the family, for logs and the "accel_family" property */
	uint16_t vendor_id;
	/* The device ids of the family (0-terminated), or NULL: every function of the vendor
	 * bound to one of @drivers. */
	const uint16_t *device_ids;
	const char *const *drivers; /* NULL-terminated; the function must be bound to one */
	/* The device node's name below /dev, up to the device index ("accel/accel" for
	 * /dev/accel/accel3, index 3). */
	const char *node_prefix;
	const char *resource; /* the vendor's resource name; NULL: the generic default */
	const char *env;      /* the variable naming the device index in a grant; or NULL */
	/* The attribute of the node's class device the driver reports health in, and its
	 * healthy value (compared without case); NULL: none. */
	const char *status_attr;
	const char *status_ok;
};

#define STRV(...) ((const char *const[]){ __VA_ARGS__, NULL })

static const struct accel_family accel_families[] = {
	/*
	 * Habana Gaudi (drivers/accel/habanalabs): the DRM accel node, and sysfs "status" on the
	 * accel device, one of "operational", "in reset", "disabled", "needs reset", "in device
	 * creation", "in reset after device release" (hl_device_status(), common/device.c).
	 * Habana's device plugin advertises habana.ai/gaudi and sets HABANA_VISIBLE_DEVICES.
	 */
	{ "gaudi", 0x1da3, NULL, STRV("habanalabs"), "accel/accel", "habana.ai/gaudi",
	  "HABANA_VISIBLE_DEVICES", "status", "operational" },
	/*
	 * Google Coral Edge TPU (gasket framework, apex driver): /dev/apex_N, and the gasket
	 * attribute "status" on the apex class device: "ALIVE", "LAMED", "DEAD" or
	 * "DRIVER_EXITING" (gasket_status_name_table, gasket_core.c). No device plugin of
	 * Google's names it: the generic resource name.
	 */
	{ "coral", 0x1ac1, (const uint16_t[]){ 0x089a, 0 }, STRV("apex"), "apex_", NULL, NULL,
	  "status", "ALIVE" },
	/*
	 * AWS Inferentia and Trainium (aws-neuron-driver): /dev/neuronN. The Neuron device
	 * plugin advertises aws.amazon.com/neuron for whole devices and sets
	 * AWS_NEURON_VISIBLE_DEVICES to their indices (Neuron documentation, "Kubernetes
	 * environment setup for Neuron").
	 */
	{ "neuron", 0x1d0f, (const uint16_t[]){ 0x7064, 0x7164, 0x7264, 0x7364, 0 },
	  STRV("neuron"), "neuron", "aws.amazon.com/neuron", "AWS_NEURON_VISIBLE_DEVICES", NULL,
	  NULL },
	/*
	 * Tenstorrent Grayskull, Wormhole, Blackhole (tt-kmd): /dev/tenstorrent/N (tt-kmd
	 * README). TT_VISIBLE_DEVICES restricts Tenstorrent's user-mode driver (tt-umd) to the
	 * listed device indices.
	 */
	{ "tenstorrent", 0x1e52, NULL, STRV("tenstorrent"), "tenstorrent/", NULL,
	  "TT_VISIBLE_DEVICES", NULL, NULL },
	/* Qualcomm Cloud AI 100 (drivers/accel/qaic): the DRM accel node. */
	{ "qaic", 0x17cb, (const uint16_t[]){ 0xa100, 0 }, STRV("qaic"), "accel/accel", NULL, NULL,
	  NULL, NULL },
	/* AMD XDNA NPUs (drivers/accel/amdxdna): the DRM accel node. */
	{ "xdna", 0x1022, NULL, STRV("amdxdna"), "accel/accel", NULL, NULL, NULL, NULL },
};

/* The family of a function with these ids and driver, or NULL. */
static const struct accel_family *family_find(uint16_t vendor_id, uint16_t device_id,
					      const char *driver)
{
	for (size_t i = 0; i < ELEMENTSOF(accel_families); i++) {
		const struct accel_family *f = &accel_families[i];
		bool listed = !f->device_ids;

		if (f->vendor_id != vendor_id || !driver ||
		    !strv_contains((char *const *)f->drivers, driver))
			continue;
		for (const uint16_t *id = f->device_ids; id && *id; id++)
			if (*id == device_id)
				listed = true;
		if (listed)
			return f;
	}
	return NULL;
}

/* The index in @devname when it is @prefix and a decimal number, else -1. */
static int node_index(const char *devname, const char *prefix)
{
	size_t n = strlen(prefix);
	unsigned idx;

	if (strncmp(devname, prefix, n) != 0 || safe_atou(devname + n, &idx) < 0 ||
	    idx > 0xffff)
		return -1;
	return (int)idx;
}

/*
 * Finds the family's node among the function's class devices (<fn>/<class>/<name>/uevent
 * DEVNAME=): its name below /dev, its index, and the class device's path relative to the
 * function ("apex/apex_0"). 0, -ENOENT when there is none, -ENOMEM.
 */
static int find_node(int fnfd, const struct accel_family *f, char **ret_devname, int *ret_index,
		     char **ret_classdev)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int r;

	r = opendir_at(fnfd, ".", &d);
	if (r < 0)
		return r;
	while ((de = readdir(d))) {
		_cleanup_(closedirp) DIR *cd = NULL;
		struct dirent *ce;

		if (de->d_type != DT_DIR || de->d_name[0] == '.' || streq(de->d_name, "power"))
			continue;
		if (opendir_at(dirfd(d), de->d_name, &cd) < 0)
			continue;
		while ((ce = readdir(cd))) {
			_cleanup_free_ char *path = NULL, *devname = NULL;
			int idx;

			if (ce->d_name[0] == '.')
				continue;
			if (asprintf(&path, "%s/uevent", ce->d_name) < 0)
				return -ENOMEM;
			r = read_uevent_key_at(dirfd(cd), path, "DEVNAME", &devname);
			if (r == -ENOMEM)
				return r;
			if (r < 0 || !string_is_printable(devname) || strstr(devname, ".."))
				continue;
			idx = node_index(devname, f->node_prefix);
			if (idx < 0)
				continue;
			if (asprintf(ret_classdev, "%s/%s", de->d_name, ce->d_name) < 0)
				return -ENOMEM;
			*ret_devname = TAKE_PTR(devname);
			*ret_index = idx;
			return 0;
		}
	}
	return -ENOENT;
}

/* Health from the family's status attribute; healthy when it has none. Resets d->health. */
static int evaluate_health(const struct accel_family *f, int fnfd, struct xpu_device *d)
{
	_cleanup_free_ char *path = NULL, *status = NULL;
	const char *classdev = device_get_property(d, "accel_class_device");
	int r;

	free(d->health.reason);
	d->health = (struct xpu_health){ .state = XPU_HEALTH_HEALTHY };
	if (!f->status_attr || !classdev)
		return 0;
	if (asprintf(&path, "%s/%s", classdev, f->status_attr) < 0)
		return -ENOMEM;
	r = read_attr_at(fnfd, path, 256, &status);
	if (r == -ENOMEM)
		return r;
	if (r == -ENOENT)
		return 0; /* a driver too old to say */
	if (r < 0 || !string_is_printable(status))
		return device_set_unhealthy(d, "%s: the driver's %s cannot be read", f->name,
					    f->status_attr);
	if (strcasecmp(status, f->status_ok) != 0)
		return device_set_unhealthy(d, "%s status is %s", f->name, status);
	return 0;
}

/* Describes one function when a family claims it: 1 and *ret, 0 when none does, -ENOMEM. */
static int scan_function(const struct xpu_host *host, int busfd, const char *name,
			 struct xpu_device **ret)
{
	_cleanup_(device_freep) struct xpu_device *d = NULL;
	_cleanup_free_ char *driver = NULL, *devname = NULL, *classdev = NULL, *node = NULL;
	_cleanup_close_ int fnfd = -EBADF;
	const struct accel_family *f;
	struct pci_ident ident = {};
	const char *vname;
	uint32_t vendor, device, class;
	char addr[13], idx[16];
	int index, r;

	if (parse_pci_address(name, addr) < 0)
		return 0;
	fnfd = openat(busfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fnfd < 0)
		return 0;
	if (read_attr_hex_at(fnfd, "vendor", 0xffff, &vendor) < 0 ||
	    read_attr_hex_at(fnfd, "device", 0xffff, &device) < 0 ||
	    read_attr_hex_at(fnfd, "class", 0xffffff, &class) < 0)
		return 0; /* the generic PCI backend names the culprit */
	r = readlink_basename_at(fnfd, "driver", &driver);
	if (r == -ENOMEM)
		return r;
	f = family_find((uint16_t)vendor, (uint16_t)device, driver);
	if (!f)
		return 0;
	r = find_node(fnfd, f, &devname, &index, &classdev);
	if (r == -ENOMEM)
		return r;
	(void)host;
	if (r < 0) {
		/* no node: the PCI backend's record says the device is unusable */
		log_debug("%s: %s function without a /dev/%sN node, leaving it to the PCI backend.",
			  addr, f->name, f->node_prefix);
		return 0;
	}

	d = device_new();
	if (!d || !(d->id = strdup(addr)))
		return -ENOMEM;
	d->kind = XPU_KIND_ACCEL;
	d->has_pci = true;
	memcpy(d->pci.address, addr, sizeof(addr));
	d->pci.vendor_id = (uint16_t)vendor;
	d->pci.device_id = (uint16_t)device;
	d->pci.class_code = class;
	d->driver = TAKE_PTR(driver);
	d->numa_node = -1; /* the PCI backend's, in the merge */

	ident = (struct pci_ident){ .vendor_id = (uint16_t)vendor, .device_id = (uint16_t)device,
				    .class_code = class, .has_accel_node = true };
	vname = pci_vendor_name(ident.vendor_id);
	if (vname && !(d->vendor = strdup(vname)))
		return -ENOMEM;
	if (pci_model_name(ident.vendor_id, ident.device_id) &&
	    !(d->model = strdup(pci_model_name(ident.vendor_id, ident.device_id))))
		return -ENOMEM;
	if (f->resource)
		d->resource = strdup(f->resource);
	else if (d->vendor && d->model)
		d->resource = pci_default_resource(&ident, d->vendor, d->driver, d->model);
	if ((f->resource || (d->vendor && d->model)) && !d->resource)
		return -ENOMEM;

	node = host_dev_path(devname);
	if (!node || strv_consume(&d->device_nodes, TAKE_PTR(node)) < 0)
		return -ENOMEM;
	snprintf(idx, sizeof(idx), "%d", index);
	if (f->env && strv_env_set(&d->env, f->env, idx) < 0)
		return -ENOMEM;
	if (device_set_property(d, "accel_family", f->name) < 0 ||
	    device_set_property(d, "accel_index", idx) < 0 ||
	    device_set_property(d, "accel_class_device", classdev) < 0)
		return -ENOMEM;
	r = evaluate_health(f, fnfd, d);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(d);
	return 1;
}

static int accel_enumerate(struct xpu_backend *b, struct device_list *list)
{
	return pci_scan_bus(b->host, scan_function, list);
}

static int accel_refresh(struct xpu_backend *b, struct xpu_device *d)
{
	_cleanup_close_ int fnfd = -EBADF;
	_cleanup_free_ char *driver = NULL;
	const struct accel_family *f;
	int r;

	if (!d->has_pci)
		return 0;
	r = pci_open_function(b->host, d->id, &fnfd, &driver);
	if (r < 0)
		return r;
	f = family_find(d->pci.vendor_id, d->pci.device_id, driver);
	if (!f || !streq_ptr(driver, d->driver))
		return -ESTALE; /* unbound or rebound: a rescan's job */
	return evaluate_health(f, fnfd, d);
}

const struct xpu_backend_ops accel_backend_ops = {
	.name = "accel",
	.priority = 5,
	.probe = pci_probe_bus,
	.enumerate = accel_enumerate,
	.refresh = accel_refresh,
};
