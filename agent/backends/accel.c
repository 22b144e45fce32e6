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
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backends/backend.h"
#include "backends/offered-modes.h"
#include "backends/pci.h"
#include "backends/vendor-rules.h"
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
	/* Further nodes of the function a workload opens, by the same kind of prefix; or NULL. */
	const char *const *extra_nodes;
	const char *resource; /* the vendor's resource name; NULL: the generic default */
	const char *env;      /* the variable naming the device index in a grant; or NULL */
	/* The attribute the driver reports health in (of the node's class device, or of the PCI
	 * function with @status_on_function), and its healthy value (compared without case);
	 * NULL: none. */
	const char *status_attr;
	const char *status_ok;
	bool status_on_function;
	/* Attributes of the PCI function copied into properties under their names; the first,
	 * when @model_prefix is set, also names the model ("GAUDI2" -> "Habana Gaudi2"). */
	const char *const *function_attrs;
	const char *model_prefix;
	/* The class device's attribute holding the device's core count (cores are numbered
	 * across devices in index order); or NULL. */
	const char *cores_attr;
	/* The gasket thermal attributes of the class device (temp, trip_point<N>_temp,
	 * hw_temp_warn2: millidegrees Celsius): properties, and health. */
	bool thermal;
};

/* Neuron's names for a core of a device (its device plugin's resource, and the variable its
 * runtime reads). */
#define NEURON_CORE_RESOURCE "aws.amazon.com/neuroncore"
#define NEURON_CORES_ENV "NEURON_RT_VISIBLE_CORES"

#define STRV(...) ((const char *const[]){ __VA_ARGS__, NULL })

static const struct accel_family accel_families[] = {
	/*
	 * Habana Gaudi (drivers/accel/habanalabs): the DRM accel node and the control node
	 * accel_controlD<N> that Habana's device plugin mounts too. The driver's attributes sit
	 * on the PCI device, not the accel class device (common/sysfs.c): "status", one of
	 * "Operational", "In reset", "Disabled", "Needs reset", "In device creation", "In reset
	 * after device release" (hl_device_status()); "device_type" ("GAUDI2"); "module_id".
	 * Habana's device plugin advertises habana.ai/gaudi and sets HABANA_VISIBLE_DEVICES.
	 */
	{ .name = "gaudi", .vendor_id = 0x1da3, .drivers = STRV("habanalabs"),
	  .node_prefix = "accel/accel", .extra_nodes = STRV("accel/accel_controlD"),
	  .resource = "habana.ai/gaudi", .env = "HABANA_VISIBLE_DEVICES", .status_attr = "status",
	  .status_ok = "Operational", .status_on_function = true,
	  .function_attrs = STRV("device_type", "module_id"), .model_prefix = "Habana" },
	/*
	 * Google Coral Edge TPU (gasket framework, apex driver): /dev/apex_N, and the gasket
	 * attribute "status" on the apex class device: "ALIVE", "LAMED", "DEAD" or
	 * "DRIVER_EXITING" (gasket_status_name_table, gasket_core.c); the apex driver's "temp",
	 * "trip_point{0,1,2}_temp" (clock throttling) and "hw_temp_warn2" (the hardware's
	 * shutdown alarm), in millidegrees Celsius (apex_driver.c). No device plugin of Google's
	 * names it: the generic resource name.
	 */
	{ .name = "coral", .vendor_id = 0x1ac1, .device_ids = (const uint16_t[]){ 0x089a, 0 },
	  .drivers = STRV("apex"), .node_prefix = "apex_", .status_attr = "status",
	  .status_ok = "ALIVE", .thermal = true },
	/*
	 * AWS Inferentia and Trainium (aws-neuron-driver): /dev/neuronN, and the class
	 * device's "core_count" (NeuronCores per device, neuron_cdev.c). The Neuron device
	 * plugin advertises aws.amazon.com/neuron for whole devices and sets
	 * AWS_NEURON_VISIBLE_DEVICES to their indices (Neuron documentation, "Kubernetes
	 * environment setup for Neuron").
	 */
	{ .name = "neuron", .vendor_id = 0x1d0f,
	  .device_ids = (const uint16_t[]){ 0x7064, 0x7164, 0x7264, 0x7364, 0 },
	  .drivers = STRV("neuron"), .node_prefix = "neuron", .resource = "aws.amazon.com/neuron",
	  .env = "AWS_NEURON_VISIBLE_DEVICES", .cores_attr = "core_count" },
	/*
	 * Tenstorrent Grayskull, Wormhole, Blackhole (tt-kmd): /dev/tenstorrent/N (tt-kmd
	 * README). TT_VISIBLE_DEVICES restricts Tenstorrent's user-mode driver (tt-umd) to the
	 * listed device indices.
	 */
	{ .name = "tenstorrent", .vendor_id = 0x1e52, .drivers = STRV("tenstorrent"),
	  .node_prefix = "tenstorrent/", .env = "TT_VISIBLE_DEVICES" },
	/* Qualcomm Cloud AI 100 (drivers/accel/qaic): the DRM accel node. */
	{ .name = "qaic", .vendor_id = 0x17cb, .device_ids = (const uint16_t[]){ 0xa100, 0 },
	  .drivers = STRV("qaic"), .node_prefix = "accel/accel" },
	/* AMD XDNA NPUs (drivers/accel/amdxdna): the DRM accel node. */
	{ .name = "xdna", .vendor_id = 0x1022, .drivers = STRV("amdxdna"),
	  .node_prefix = "accel/accel" },
};

/*
 * Any other driver of the DRM accel class (intel_vpu, ...): found through /sys/class/accel,
 * named from its driver and PCI ids, the generic resource, its accel node.
 */
static const struct accel_family accel_generic = {
	.name = "accel",
	.node_prefix = "accel/accel",
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

/* The family a record names in its "accel_family" property, or NULL. */
static const struct accel_family *family_of(const struct xpu_device *d)
{
	const char *name = device_get_property(d, "accel_family");

	if (streq_ptr(name, accel_generic.name))
		return &accel_generic;
	for (size_t i = 0; i < ELEMENTSOF(accel_families); i++)
		if (streq_ptr(name, accel_families[i].name))
			return &accel_families[i];
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

/* What find_nodes() found among a function's class devices. */
struct accel_nodes {
	char *devname;	/* the family's node below /dev ("accel/accel3") */
	int index;	/* its number */
	char *classdev; /* its class device, relative to the function ("accel/accel3") */
	char **extra;	/* the family's further nodes, below /dev */
};

static void accel_nodes_done(struct accel_nodes *n)
{
	free(n->devname);
	free(n->classdev);
	strv_free(n->extra);
	*n = (struct accel_nodes){ .index = -1 };
}

/* Whether @devname is one of @f's further nodes. */
static bool is_extra_node(const struct accel_family *f, const char *devname)
{
	for (const char *const *p = f->extra_nodes; p && *p; p++)
		if (node_index(devname, *p) >= 0)
			return true;
	return false;
}

/*
 * Finds the family's nodes among the function's class devices (<fn>/<class>/<name>/uevent
 * DEVNAME=). 0, -ENOENT when the family's node is not there, -ENOMEM.
 */
static int find_nodes(int fnfd, const struct accel_family *f, struct accel_nodes *ret)
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
			if (is_extra_node(f, devname)) {
				r = strv_extend_unique(&ret->extra, devname);
				if (r < 0)
					return r;
				continue;
			}
			idx = node_index(devname, f->node_prefix);
			if (idx < 0 || ret->devname)
				continue;
			if (asprintf(&ret->classdev, "%s/%s", de->d_name, ce->d_name) < 0)
				return -ENOMEM;
			ret->devname = TAKE_PTR(devname);
			ret->index = idx;
		}
	}
	strv_sort(ret->extra);
	return ret->devname ? 0 : -ENOENT;
}

/* "41.8" from millidegrees. */
static void format_millicelsius(int mc, char buf[static 16])
{
	snprintf(buf, 16, "%s%d.%d", mc < 0 && mc > -1000 ? "-" : "", mc / 1000,
		 abs(mc % 1000) / 100);
}

/*
 * Reads one attribute of @dirfd at @path (NULL, 0: missing, or when @d is NULL a failure the
 * caller ignores). Where it is there but unreadable or not printable, a warning names the
 * device and the file when @warn, and -EINVAL. -ENOMEM.
 */
static int read_text(int dirfd, const char *path, const struct xpu_device *d, bool warn,
		     char **ret)
{
	int r = read_text_attr_at(dirfd, path, 256, ret);

	if (r >= 0 || r == -ENOMEM)
		return r;
	if (warn)
		log_device_full_errno(LOG_WARNING, r == -EINVAL ? 0 : r, d->id, NULL,
				      "%s: %s of its class device or function %s: ignoring it.",
				      d->id, path,
				      r == -EINVAL ? "holds no printable value" : "cannot be read");
	return -EINVAL;
}

/* A gasket temperature attribute of @classdev: 0 and *ret, -ENOENT, -EINVAL, -ENOMEM. */
static int read_millicelsius(int fnfd, const char *classdev, const char *attr,
			     const struct xpu_device *d, bool warn, int *ret)
{
	_cleanup_free_ char *path = NULL, *v = NULL;
	int r;

	if (asprintf(&path, "%s/%s", classdev, attr) < 0)
		return -ENOMEM;
	r = read_text(fnfd, path, d, warn, &v);
	if (r < 0)
		return r;
	if (!v)
		return -ENOENT;
	if (safe_atoi(v, ret) < 0 || *ret < -273150 || *ret > 1000000) {
		if (warn)
			log_device_full_errno(LOG_WARNING, 0, d->id, NULL,
					      "%s: %s is not a temperature in millidegrees (%s): "
					      "ignoring it.",
					      d->id, path, v);
		return -EINVAL;
	}
	return 0;
}

/*
 * The apex thermal attributes: the temperature, the throttling trip points and the hardware
 * shutdown alarm as properties in degrees Celsius (with @props), and unhealthy at or over the
 * shutdown alarm's temperature, or the last trip point where the driver does not say.
 */
static int evaluate_thermal(int fnfd, const char *classdev, struct xpu_device *d, bool props)
{
	int temp, shutdown, trip, last_trip = INT_MIN, r;
	_cleanup_strv_free_ char **trips = NULL;
	_cleanup_free_ char *joined = NULL;
	char buf[16], buf2[16];

	r = read_millicelsius(fnfd, classdev, "temp", d, props, &temp);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return 0; /* no temperature: nothing to judge */
	format_millicelsius(temp, buf);
	if (props && device_set_property(d, "temperature_c", buf) < 0)
		return -ENOMEM;
	for (int i = 0; i < 3; i++) {
		char attr[32];

		snprintf(attr, sizeof(attr), "trip_point%d_temp", i);
		r = read_millicelsius(fnfd, classdev, attr, d, props, &trip);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			continue;
		last_trip = MAX(last_trip, trip);
		format_millicelsius(trip, buf2);
		if (props && strv_extend(&trips, buf2) < 0)
			return -ENOMEM;
	}
	if (trips && (!(joined = strv_join(trips, ",")) ||
		      device_set_property(d, "trip_points_c", joined) < 0))
		return -ENOMEM;
	r = read_millicelsius(fnfd, classdev, "hw_temp_warn2", d, props, &shutdown);
	if (r == -ENOMEM)
		return r;
	if (r >= 0) {
		format_millicelsius(shutdown, buf2);
		if (props && device_set_property(d, "shutdown_temperature_c", buf2) < 0)
			return -ENOMEM;
		if (temp >= shutdown)
			return device_set_unhealthy(d,
						    "temperature %s °C is at or over the hardware "
						    "shutdown threshold (%s °C)",
						    buf, buf2);
		return 0;
	}
	if (last_trip != INT_MIN && temp >= last_trip) {
		format_millicelsius(last_trip, buf2);
		return device_set_unhealthy(d,
					    "temperature %s °C is at or over the last trip point "
					    "(%s °C)",
					    buf, buf2);
	}
	return 0;
}

/*
 * Health from the family's status attribute and temperature; healthy when it has neither.
 * Resets d->health. With @verbose (discovery), unreadable attributes are warned about and the
 * thermal properties set.
 */
static int evaluate_health(const struct accel_family *f, int fnfd, struct xpu_device *d,
			   bool verbose)
{
	_cleanup_free_ char *path = NULL, *status = NULL;
	const char *classdev = device_get_property(d, "accel_class_device");
	int r;

	free(d->health.reason);
	d->health = (struct xpu_health){ .state = XPU_HEALTH_HEALTHY };
	if (f->status_attr && (f->status_on_function || classdev)) {
		if (f->status_on_function)
			path = strdup(f->status_attr);
		else if (asprintf(&path, "%s/%s", classdev, f->status_attr) < 0)
			path = NULL;
		if (!path)
			return -ENOMEM;
		r = read_text(fnfd, path, d, verbose, &status);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			r = device_set_unhealthy(d, "%s: the driver's %s cannot be read", f->name,
						 f->status_attr);
		else if (status && strcasecmp(status, f->status_ok) != 0)
			r = device_set_unhealthy(d, "%s status is %s", f->name, status);
		if (r < 0)
			return r;
		/* no file: a driver too old to say */
	}
	if (f->thermal && classdev)
		return evaluate_thermal(fnfd, classdev, d, verbose);
	return 0;
}

/* "Gaudi2" from "GAUDI2", "Gaudi2 Sec" from "GAUDI2 SEC": the first letter of each word kept. */
static void title_case(char *s)
{
	bool first = true;

	for (; *s; s++) {
		if (!first && *s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
		first = *s == ' ' || *s == '-' || *s == '_';
	}
}

/* The family's function attributes as properties, and the model from the first. */
static int describe_function_attrs(const struct accel_family *f, int fnfd, struct xpu_device *d)
{
	for (const char *const *a = f->function_attrs; a && *a; a++) {
		_cleanup_free_ char *v = NULL;
		int r = read_text(fnfd, *a, d, true, &v);

		if (r == -ENOMEM)
			return r;
		if (!v)
			continue;
		if (device_set_property(d, *a, v) < 0)
			return -ENOMEM;
		if (a == f->function_attrs && f->model_prefix) {
			title_case(v);
			free(d->model);
			if (asprintf(&d->model, "%s %s", f->model_prefix, v) < 0) {
				d->model = NULL;
				return -ENOMEM;
			}
		}
	}
	return 0;
}

/* The cores of a device (Neuron): their count, and their numbers across the node's devices. */
static int describe_cores(const struct accel_family *f, int fnfd, const struct accel_nodes *n,
			  struct xpu_device *d)
{
	_cleanup_free_ char *path = NULL, *v = NULL;
	char buf[32];
	unsigned count;
	int r;

	if (!f->cores_attr)
		return 0;
	if (asprintf(&path, "%s/%s", n->classdev, f->cores_attr) < 0)
		return -ENOMEM;
	r = read_text(fnfd, path, d, true, &v);
	if (r == -ENOMEM)
		return r;
	if (!v)
		return 0;
	if (safe_atou(v, &count) < 0 || count == 0 || count > 64) {
		log_device_full_errno(LOG_WARNING, 0, d->id, NULL,
				      "%s: %s is not a core count (%s): ignoring it.", d->id, path,
				      v);
		return 0;
	}
	snprintf(buf, sizeof(buf), "%u", count);
	if (device_set_property(d, "cores", buf) < 0)
		return -ENOMEM;
	if (count == 1)
		snprintf(buf, sizeof(buf), "%u", (unsigned)n->index);
	else
		snprintf(buf, sizeof(buf), "%u-%u", n->index * count, n->index * count + count - 1);
	return device_set_property(d, "core_ids", buf);
}

/* A new accelerator record of @f: kind, id, index, node and the family's variable. */
static int device_start(const struct accel_family *f, const char *id, const char *devname,
			int index, struct xpu_device **ret)
{
	_cleanup_(device_freep) struct xpu_device *d = device_new();
	char idx[16];
	char *node;

	if (!d || !(d->id = strdup(id)))
		return -ENOMEM;
	d->kind = XPU_KIND_ACCEL;
	d->numa_node = -1; /* the PCI backend's, in the merge */
	node = host_dev_path(devname);
	if (!node || strv_consume(&d->device_nodes, node) < 0)
		return -ENOMEM;
	snprintf(idx, sizeof(idx), "%d", index);
	if (f->env && strv_env_set(&d->env, f->env, idx) < 0)
		return -ENOMEM;
	if (device_set_property(d, "accel_family", f->name) < 0 ||
	    device_set_property(d, "accel_index", idx) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(d);
	return 0;
}

/* The PCI part of a record: ids, vendor and model names, the resource. */
static int describe_pci(const struct accel_family *f, const char *addr, uint32_t vendor,
			uint32_t device, uint32_t class, struct xpu_device *d)
{
	struct pci_ident ident = { .vendor_id = (uint16_t)vendor, .device_id = (uint16_t)device,
				   .class_code = class, .has_accel_node = true };
	const char *vname = pci_vendor_name(ident.vendor_id);
	const char *model = pci_model_name(ident.vendor_id, ident.device_id);

	d->has_pci = true;
	memcpy(d->pci.address, addr, sizeof(d->pci.address));
	d->pci.vendor_id = ident.vendor_id;
	d->pci.device_id = ident.device_id;
	d->pci.class_code = class;
	if (vname)
		d->vendor = strdup(vname);
	else if (asprintf(&d->vendor, "0x%04x", ident.vendor_id) < 0)
		d->vendor = NULL;
	if (!d->vendor)
		return -ENOMEM;
	if (model)
		d->model = strdup(model);
	else if (asprintf(&d->model, "%s accelerator 0x%04x", d->vendor, ident.device_id) < 0)
		d->model = NULL;
	if (!d->model)
		return -ENOMEM;
	if (f->resource)
		d->resource = strdup(f->resource);
	else
		d->resource = pci_default_resource(&ident, d->vendor, d->driver, d->model);
	return d->resource ? 0 : -ENOMEM;
}

/* Describes one function when a family claims it: 1 and *ret, 0 when none does, -ENOMEM. */
/* Whether a family's row names @driver. */
static bool driver_known(const char *driver)
{
	for (size_t i = 0; i < ELEMENTSOF(accel_families); i++)
		if (strv_contains((char *const *)accel_families[i].drivers, driver))
			return true;
	return false;
}

static int scan_function(const struct xpu_host *host, int busfd, const char *name,
			 struct xpu_device **ret)
{
	_cleanup_(device_freep) struct xpu_device *d = NULL;
	_cleanup_(accel_nodes_done) struct accel_nodes n = { .index = -1 };
	_cleanup_free_ char *driver = NULL;
	_cleanup_close_ int fnfd = -EBADF;
	const struct accel_family *f;
	uint32_t vendor, device, class;
	char addr[13];
	int r;

	(void)host;
	if (parse_pci_address(name, addr) < 0)
		return 0;
	fnfd = openat(busfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fnfd < 0)
		return 0;
	/* the driver first: one readlink rules out all but the functions of a family's driver
	 * (this walk repeats the PCI backend's, over every function of the node) */
	r = readlink_basename_at(fnfd, "driver", &driver);
	if (r == -ENOMEM)
		return r;
	if (r < 0 || !driver_known(driver))
		return 0;
	if (read_attr_hex_at(fnfd, "vendor", 0xffff, &vendor) < 0 ||
	    read_attr_hex_at(fnfd, "device", 0xffff, &device) < 0 ||
	    read_attr_hex_at(fnfd, "class", 0xffffff, &class) < 0)
		return 0; /* the generic PCI backend names the culprit */
	f = family_find((uint16_t)vendor, (uint16_t)device, driver);
	if (!f)
		return 0;
	r = find_nodes(fnfd, f, &n);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		/* no node: the PCI backend's record says the device is unusable */
		log_debug("%s: %s function without a /dev/%sN node, leaving it to the PCI backend.",
			  addr, f->name, f->node_prefix);
		return 0;
	}

	r = device_start(f, addr, n.devname, n.index, &d);
	if (r < 0)
		return r;
	d->driver = TAKE_PTR(driver);
	r = describe_pci(f, addr, vendor, device, class, d);
	if (r < 0)
		return r;
	STRV_FOREACH(e, n.extra) {
		char *node = host_dev_path(*e);

		if (!node || strv_consume(&d->device_nodes, node) < 0)
			return -ENOMEM;
	}
	if (device_set_property(d, "accel_class_device", n.classdev) < 0)
		return -ENOMEM;
	r = describe_function_attrs(f, fnfd, d);
	if (r >= 0)
		r = describe_cores(f, fnfd, &n, d);
	if (r >= 0)
		r = evaluate_health(f, fnfd, d, true);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(d);
	return 1;
}

/*
 * One device of /sys/class/accel that no family row describes: a PCI function of another
 * driver (intel_vpu, ...), named from its driver and ids; or a device without a PCI parent,
 * reported without PCI information under its parent's name ("accel<N>" when it has no
 * parent) with a warning naming it. A class device whose parent is gone (a device removed
 * during the scan) is skipped with a warning. 1 and *ret, 0, -ENOMEM.
 */
static int scan_class_device(int classfd, const char *name, const struct device_list *seen,
			     struct xpu_device **ret)
{
	_cleanup_(device_freep) struct xpu_device *d = NULL;
	_cleanup_free_ char *devname = NULL, *parent = NULL, *driver = NULL, *link = NULL;
	_cleanup_close_ int pfd = -EBADF;
	uint32_t vendor, device, class;
	char addr[13];
	int index, r;

	/* a function the bus walk described: nothing more to read (one path walk) */
	if (asprintf(&link, "%s/device", name) < 0)
		return -ENOMEM;
	r = resolve_basename_at(classfd, link, &parent);
	if (r == -ENOMEM)
		return r;
	if (r >= 0 && parse_pci_address(parent, addr) >= 0 && device_list_find(seen, addr))
		return 0;
	parent = mfree(parent);
	link = mfree(link);
	if (asprintf(&link, "%s/uevent", name) < 0)
		return -ENOMEM;
	r = read_uevent_key_at(classfd, link, "DEVNAME", &devname);
	if (r == -ENOMEM)
		return r;
	if (r < 0 || !string_is_printable(devname) || strstr(devname, ".."))
		return 0;
	index = node_index(devname, accel_generic.node_prefix);
	if (index < 0)
		return 0; /* accel_controlD<N>, a driver's own node: a family's business */
	free(link);
	if (asprintf(&link, "%s/device", name) < 0)
		return -ENOMEM;

	/* what the link names, not its text: "../.." is a valid link to the parent too */
	r = resolve_basename_at(classfd, link, &parent);
	if (r == -ENOMEM)
		return r;
	if (r < 0 && exists_at(classfd, link)) {
		log_warning("accel: %s: its device link leads nowhere (removed during the scan?): "
			    "skipping it.",
			    name);
		return 0;
	}
	if (r >= 0)
		pfd = openat(classfd, link, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent && parse_pci_address(parent, addr) >= 0 && pfd >= 0 &&
	    read_attr_hex_at(pfd, "vendor", 0xffff, &vendor) >= 0 &&
	    read_attr_hex_at(pfd, "device", 0xffff, &device) >= 0 &&
	    read_attr_hex_at(pfd, "class", 0xffffff, &class) >= 0) {
		r = readlink_basename_at(pfd, "driver", &driver);
		if (r == -ENOMEM)
			return r;
		if (family_find((uint16_t)vendor, (uint16_t)device, driver))
			return 0; /* the bus walk described it */
		r = device_start(&accel_generic, addr, devname, index, &d);
		if (r < 0)
			return r;
		d->driver = TAKE_PTR(driver);
		r = describe_pci(&accel_generic, addr, vendor, device, class, d);
		if (r < 0)
			return r;
		link = mfree(link);
		if (asprintf(&link, "accel/%s", name) < 0 ||
		    device_set_property(d, "accel_class_device", link) < 0)
			return -ENOMEM;
		*ret = TAKE_PTR(d);
		return 1;
	}

	if (parent)
		log_warning("accel: %s: its parent %s is not a PCI function: reporting it without "
			    "PCI information.",
			    name, parent);
	else
		log_warning("accel: %s: it has no parent device: reporting it without PCI "
			    "information.",
			    name);
	if (parent) {
		r = readlink_basename_at(classfd, strjoina_path(link, "driver"), &driver);
		if (r == -ENOMEM)
			return r;
	}
	r = device_start(&accel_generic, parent ?: name, devname, index, &d);
	if (r < 0)
		return r;
	d->driver = TAKE_PTR(driver);
	if (!(d->vendor = strdup("unknown")) ||
	    asprintf(&d->model, "%s accelerator %s", d->driver ?: "Platform", parent ?: name) < 0 ||
	    asprintf(&d->resource, "xpu.dev/platform-%s", name) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(d);
	return 1;
}

/* The devices of /sys/class/accel no family row describes (scan_class_device()). */
static int scan_accel_class(const struct xpu_host *host, struct device_list *list)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int r;

	if (opendir_at(host->sys_fd, "class/accel", &d) < 0)
		return 0;
	while ((de = readdir(d))) {
		struct xpu_device *dev = NULL;

		if (de->d_name[0] == '.')
			continue;
		r = scan_class_device(dirfd(d), de->d_name, list, &dev);
		if (r < 0)
			return r;
		if (r > 0 && (r = device_list_push(list, dev)) < 0)
			return r;
	}
	device_list_sort(list);
	return 0;
}

/* The backend's state: the devices offered core by core (neuron-cores: cores). */
struct accel_backend {
	struct offered_modes cores;
};

/* The slice of core @k of @d (@count cores, numbered from @first across the node). */
static int add_core(struct xpu_device *d, unsigned k, unsigned count, unsigned first)
{
	_cleanup_(slice_freep) struct xpu_slice *s = calloc(1, sizeof(*s));
	char id[16];

	if (!s)
		return -ENOMEM;
	snprintf(id, sizeof(id), "%u", first + k);
	if (asprintf(&s->id, "%s/core-%u", d->id, k) < 0) {
		s->id = NULL;
		return -ENOMEM;
	}
	if (!(s->device_id = strdup(d->id)) || !(s->resource = strdup(NEURON_CORE_RESOURCE)) ||
	    !(s->profile = strdup("cores")) || strv_env_set(&s->env, NEURON_CORES_ENV, id) < 0)
		return -ENOMEM;
	s->compute_fraction = 1.0 / count;
	s->health.state = XPU_HEALTH_HEALTHY;
	return device_add_partition(d, TAKE_PTR(s));
}

/*
 * The cores of a device that has several (a "cores" property, from the family's cores
 * attribute): its profiles (whole, and one per core), and, when the policy offers it core by
 * core, its cores as partitions: aws.amazon.com/neuroncore with NEURON_RT_VISIBLE_CORES, the
 * core's number across the node's devices, as Neuron's device plugin names them.
 */
static int describe_core_partitions(struct accel_backend *ab, struct xpu_device *d)
{
	const char *cores = device_get_property(d, "cores");
	unsigned count, index;
	int r;

	if (!cores || safe_atou(cores, &count) < 0 || count < 2 ||
	    safe_atou(device_get_property(d, "accel_index") ?: "", &index) < 0)
		return 0;
	r = device_add_profile(d, &(struct xpu_partition_profile){ .name = (char *)"whole",
								     .total = 1, .free = 1,
								     .compute_fraction = 1 });
	if (r >= 0)
		r = device_add_profile(d, &(struct xpu_partition_profile){
						  .name = (char *)"cores", .total = count,
						  .free = count, .compute_fraction = 1.0 / count });
	if (r < 0)
		return r;
	d->partition_capable = true;
	if (!offered_modes_get(ab ? &ab->cores : NULL, d->id))
		return 0;
	d->partitioned = true;
	for (unsigned k = 0; k < count; k++) {
		r = add_core(d, k, count, index * count);
		if (r < 0)
			return r;
	}
	return 0;
}

static int accel_enumerate(struct xpu_backend *b, struct device_list *list)
{
	int r = pci_scan_bus(b->host, scan_function, list);

	if (r >= 0)
		r = scan_accel_class(b->host, list);
	for (size_t i = 0; r >= 0 && i < list->n; i++)
		r = describe_core_partitions(b->userdata, list->items[i]);
	return r;
}

static int accel_probe(struct xpu_backend *b, char **ret_reason)
{
	struct accel_backend *ab;
	int r = pci_probe_bus(b, ret_reason);

	if (r < 0)
		return r;
	ab = calloc(1, sizeof(*ab));
	if (!ab)
		return -ENOMEM;
	offered_modes_init(&ab->cores);
	b->userdata = ab;
	return 0;
}

/* Core by core, or whole again: only what is offered changes. */
static int accel_apply_offer(struct xpu_backend *b, const struct xpu_device *d,
			     const struct offer *o, char **ret_error)
{
	struct accel_backend *ab = b->userdata;

	if (!ab || o->kind != OFFER_PARTITIONS || o->scheme != &neuron_cores_scheme ||
	    !o->layout || !o->layout[0])
		return -EOPNOTSUPP;
	if (!device_get_property(d, "cores")) {
		if (asprintf(ret_error, "the device does not say how many cores it has") < 0)
			*ret_error = NULL;
		return -EINVAL;
	}
	return offered_modes_set(&ab->cores, d->id, streq(o->layout[0], "cores"));
}

static void accel_close(struct xpu_backend *b)
{
	struct accel_backend *ab = b->userdata;

	if (!ab)
		return;
	offered_modes_done(&ab->cores);
	free(ab);
	b->userdata = NULL;
}

static int accel_refresh(struct xpu_backend *b, struct xpu_device *d)
{
	_cleanup_close_ int fnfd = -EBADF;
	_cleanup_free_ char *driver = NULL;
	const struct accel_family *f = family_of(d);
	int r;

	if (!d->has_pci)
		return 0;
	r = pci_open_function(b->host, d->id, &fnfd, &driver);
	if (r < 0)
		return r;
	if (!f || !streq_ptr(driver, d->driver) ||
	    (f != &accel_generic && family_find(d->pci.vendor_id, d->pci.device_id, driver) != f))
		return -ESTALE; /* unbound or rebound: a rescan's job */
	return evaluate_health(f, fnfd, d, false);
}

const struct xpu_backend_ops accel_backend_ops = {
	.name = "accel",
	.priority = 5,
	.probe = accel_probe,
	.enumerate = accel_enumerate,
	.refresh = accel_refresh,
	.apply_offer = accel_apply_offer,
	.close = accel_close,
};
