// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The fixture builder's PCI functions: one entry of "pci" merged with "defaults" and its
 * template, written as sysfs shows a function: its attributes, the bridges above it, its driver
 * and bus links, and its class devices.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/fileio.h"
#include "shared/parse.h"
#include "sim/fixture-internal.h"

/* ---- PCI functions --------------------------------------------------------------------------- */

static int parse_link(struct fixture *fx, json_t *obj, const char *where, struct pcie_link *ret)
{
	static const char *const keys[] = { "speed", "width", "max_speed", "max_width", NULL };
	struct pcie_link l = { .width = -1, .max_width = -1 };
	char sub[WHERE_MAX];
	unsigned mts;
	int r;

	if (!obj) {
		*ret = l;
		return 0;
	}
	snprintf(sub, sizeof(sub), "%s.link", where);
	r = check_keys(fx, obj, sub, keys);
	if (r < 0)
		return r;
	r = get_string(fx, obj, sub, "speed", false, &l.speed);
	if (r >= 0)
		r = get_string(fx, obj, sub, "max_speed", false, &l.max_speed);
	if (r >= 0)
		r = get_int(fx, obj, sub, "width", false, 0, 32, -1, &l.width);
	if (r >= 0)
		r = get_int(fx, obj, sub, "max_width", false, 0, 32, -1, &l.max_width);
	if (r < 0)
		return r;
	/* "Unknown" is what the kernel prints for a link that is down, so it is valid here. */
	if (l.speed && parse_pcie_link_speed(l.speed, &mts) < 0 && !streq(l.speed, "Unknown"))
		return fx_invalid(fx, "%s.speed: \"%s\" is not a link speed such as "
				      "\"32.0 GT/s PCIe\" (use attrs for garbage)", sub, l.speed);
	if (l.max_speed && parse_pcie_link_speed(l.max_speed, &mts) < 0 &&
	    !streq(l.max_speed, "Unknown"))
		return fx_invalid(fx,
				  "%s.max_speed: \"%s\" is not a link speed such as "
				  "\"32.0 GT/s PCIe\" (use attrs for garbage)",
				  sub, l.max_speed);
	*ret = l;
	return 0;
}

/* The standard files of one PCI function, and its subsystem, driver and bus links. */
static int write_function(struct fixture *fx, const struct pci_function *f)
{
	_cleanup_free_ char *modalias = NULL, *subsystem = NULL, *driver_link = NULL;
	_cleanup_free_ char *old_driver = NULL, *bus_link = NULL, *driver_line = NULL;
	unsigned bc = f->class >> 16, sc = (f->class >> 8) & 0xff, pi = f->class & 0xff;
	const char *d = f->path;
	int r;

	if (fx_validating(fx))
		return 0;
	modalias = pathf("pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X", f->vendor, f->device,
			 f->subsystem_vendor, f->subsystem_device, bc, sc, pi);
	subsystem = pathf("%s/subsystem", d);
	driver_link = pathf("%s/driver", d);
	bus_link = pathf("sys/bus/pci/devices/%s", f->address);
	if (f->driver)
		driver_line = pathf("DRIVER=%s\n", f->driver);
	if (!modalias || !subsystem || !driver_link || !bus_link || (f->driver && !driver_line))
		return -ENOMEM;

	r = fx_attrf(fx, d, "vendor", "0x%04x\n", f->vendor);
	if (r >= 0)
		r = fx_attrf(fx, d, "device", "0x%04x\n", f->device);
	if (r >= 0)
		r = fx_attrf(fx, d, "subsystem_vendor", "0x%04x\n", f->subsystem_vendor);
	if (r >= 0)
		r = fx_attrf(fx, d, "subsystem_device", "0x%04x\n", f->subsystem_device);
	if (r >= 0)
		r = fx_attrf(fx, d, "class", "0x%06x\n", f->class);
	if (r >= 0)
		r = fx_attrf(fx, d, "revision", "0x%02x\n", f->revision);
	if (r >= 0)
		r = fx_attrf(fx, d, "numa_node", "%d\n", f->numa_node);
	if (r >= 0 && f->local_cpulist)
		r = fx_attrf(fx, d, "local_cpulist", "%s\n", f->local_cpulist);
	if (r >= 0)
		r = fx_attrf(fx, d, "enable", "1\n");
	if (r >= 0)
		r = fx_attrf(fx, d, "modalias", "%s\n", modalias);
	/* As the kernel's pci_uevent() prints it: "%04X" class, uppercase ids. */
	if (r >= 0)
		r = fx_attrf(fx, d, "uevent",
			     "%sPCI_CLASS=%04X\nPCI_ID=%04X:%04X\nPCI_SUBSYS_ID=%04X:%04X\n"
			     "PCI_SLOT_NAME=%s\nMODALIAS=%s\n",
			     driver_line ?: "", f->class, f->vendor, f->device, f->subsystem_vendor,
			     f->subsystem_device, f->address, modalias);
	if (r >= 0 && f->link->speed)
		r = fx_attrf(fx, d, "current_link_speed", "%s\n", f->link->speed);
	if (r >= 0 && f->link->width >= 0)
		r = fx_attrf(fx, d, "current_link_width", "%d\n", f->link->width);
	if (r >= 0 && f->link->max_speed)
		r = fx_attrf(fx, d, "max_link_speed", "%s\n", f->link->max_speed);
	if (r >= 0 && f->link->max_width >= 0)
		r = fx_attrf(fx, d, "max_link_width", "%d\n", f->link->max_width);
	if (r >= 0)
		r = fx_symlink(fx, subsystem, "sys/bus/pci");
	if (r < 0)
		return r;

	/* Merging into an existing tree may rebind: drop the old driver's link back to us. */
	if (readlink_basename_at(fx->root, driver_link, &old_driver) >= 0 &&
	    !streq_ptr(old_driver, f->driver)) {
		_cleanup_free_ char *old_back = NULL;

		old_back = pathf("sys/bus/pci/drivers/%s/%s", old_driver, f->address);
		r = fx_unlink(fx, old_back);
		if (r >= 0)
			r = fx_unlink(fx, driver_link);
		if (r < 0)
			return r;
	}
	if (f->driver) {
		_cleanup_free_ char *drv = NULL, *back = NULL;

		drv = pathf("sys/bus/pci/drivers/%s", f->driver);
		back = pathf("sys/bus/pci/drivers/%s/%s", f->driver, f->address);
		r = fx_symlink(fx, driver_link, drv);
		if (r >= 0)
			r = fx_symlink(fx, back, d);
		if (r < 0)
			return r;
	}
	return fx_symlink(fx, bus_link, d);
}

int parse_address(struct fixture *fx, const char *s, const char *what, char ret[static 13])
{
	if (parse_pci_address(s, ret) < 0)
		return fx_invalid(fx, "%s: \"%s\" is not a PCI address such as \"0000:18:00.0\"",
				  what, s);
	return 0;
}

/* Rejects a PCI address that an earlier entry of this description already used. */
static int claim_address(struct fixture *fx, const char *address, const char *what)
{
	char(*a)[13];

	for (size_t i = 0; i < fx->n_addresses; i++)
		if (streq(fx->addresses[i], address))
			return fx_invalid(fx, "%s: %s is described twice", what, address);
	a = reallocarray(fx->addresses, fx->n_addresses + 1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	fx->addresses = a;
	strcpy(fx->addresses[fx->n_addresses++], address);
	return 0;
}

static int write_class_device(struct fixture *fx, const struct pci_function *f, const char *class,
			      const char *name, const char *devname, const char *devtype,
			      int major, int minor)
{
	_cleanup_free_ char *dir = NULL, *device = NULL, *subsystem = NULL, *cls = NULL;
	_cleanup_free_ char *class_link = NULL, *dev_link = NULL, *node = NULL, *text = NULL;
	char majmin[32] = "";
	size_t size = 0;
	FILE *uevent;
	int r;

	if (fx_validating(fx))
		return 0;
	dir = pathf("%s/%s/%s", f->path, class, name);
	device = pathf("%s/device", dir);
	subsystem = pathf("%s/subsystem", dir);
	cls = pathf("sys/class/%s", class);
	class_link = pathf("sys/class/%s/%s", class, name);
	if (major >= 0) {
		snprintf(majmin, sizeof(majmin), "%d:%d", major, minor);
		dev_link = pathf("sys/dev/char/%s", majmin);
	}
	if (devname)
		node = pathf("dev/%s", devname);
	if (!dir || !device || !subsystem || !cls || !class_link || (major >= 0 && !dev_link) ||
	    (devname && !node))
		return -ENOMEM;

	uevent = open_memstream(&text, &size);
	if (!uevent)
		return -ENOMEM;
	/* In the order of the kernel's device uevent. */
	if (major >= 0)
		fprintf(uevent, "MAJOR=%d\nMINOR=%d\n", major, minor);
	if (devname)
		fprintf(uevent, "DEVNAME=%s\n", devname);
	if (devtype)
		fprintf(uevent, "DEVTYPE=%s\n", devtype);
	if (fclose(uevent) != 0)
		return -ENOMEM;
	r = fx_attrf(fx, dir, "uevent", "%s", text);
	if (r >= 0 && major >= 0)
		r = fx_attrf(fx, dir, "dev", "%s\n", majmin);
	if (r >= 0)
		r = fx_symlink(fx, device, f->path);
	if (r >= 0)
		r = fx_symlink(fx, subsystem, cls);
	if (r >= 0)
		r = fx_symlink(fx, class_link, dir);
	if (r >= 0 && dev_link)
		r = fx_symlink(fx, dev_link, dir);
	if (r >= 0 && node)
		r = fx_write(fx, node, "", 0);
	return r;
}

static int build_class_devices(struct fixture *fx, const struct pci_function *f, json_t *list,
			       const char *where)
{
	static const char *const keys[] = { "class", "name",	"devname", "major",
					    "minor", "devtype", NULL };
	char sub[WHERE_MAX];
	size_t i;
	json_t *e;
	int r;

	if (!list)
		return 0;
	json_array_foreach(list, i, e) {
		const char *class = NULL, *name = NULL, *devname = NULL, *devtype = NULL;
		int major, minor;

		snprintf(sub, sizeof(sub), "%s.class_devices[%zu]", where, i);
		if (!json_is_object(e))
			return fx_invalid(fx, "%s: expected object", sub);
		r = check_keys(fx, e, sub, keys);
		if (r >= 0)
			r = get_string(fx, e, sub, "class", true, &class);
		if (r >= 0)
			r = get_string(fx, e, sub, "name", true, &name);
		if (r >= 0)
			r = get_string(fx, e, sub, "devname", false, &devname);
		if (r >= 0)
			r = get_string(fx, e, sub, "devtype", false, &devtype);
		if (r >= 0)
			r = get_int(fx, e, sub, "major", false, 0, MAJOR_MAX, -1, &major);
		if (r >= 0)
			r = get_int(fx, e, sub, "minor", false, 0, MINOR_MAX, -1, &minor);
		if (r < 0)
			return r;
		if (!path_is_safe(class, true))
			return fx_invalid(fx, "%s.class: \"%s\" is not a class name", sub, class);
		if (!path_is_safe(name, true))
			return fx_invalid(fx, "%s.name: \"%s\" is not a device name", sub, name);
		if (devname && !path_is_safe(devname, false))
			return fx_invalid(fx,
					  "%s.devname: \"%s\" is not a relative path below dev/",
					  sub, devname);
		if (devtype && !string_is_printable(devtype))
			return fx_invalid(fx, "%s.devtype: must be one line of printable text",
					  sub);
		if ((major < 0) != (minor < 0))
			return fx_invalid(fx, "%s: \"major\" and \"minor\" go together", sub);
		if (f->path) {
			r = write_class_device(fx, f, class, name, devname, devtype, major, minor);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int build_platform(struct fixture *fx, json_t *e, const char *where)
{
	static const char *const keys[] = { "name", "class_devices", NULL };
	_cleanup_free_ char *path = NULL, *subsystem = NULL;
	struct pci_function f = {};
	json_t *class_devices = NULL;
	const char *name = NULL;
	int r;

	if (!json_is_object(e))
		return fx_invalid(fx, "%s: expected object", where);
	r = check_keys(fx, e, where, keys);
	if (r >= 0)
		r = get_string(fx, e, where, "name", true, &name);
	if (r >= 0)
		r = get_array(fx, e, where, "class_devices", &class_devices);
	if (r < 0)
		return r;
	if (!path_is_safe(name, true))
		return fx_invalid(fx, "%s.name: \"%s\" is not a device name", where, name);
	if (!fx_validating(fx)) {
		path = pathf("sys/devices/platform/%s", name);
		subsystem = pathf("sys/devices/platform/%s/subsystem", name);
		if (!path || !subsystem)
			return -ENOMEM;
		r = fx_mkdir(fx, path);
		if (r >= 0)
			r = fx_attrf(fx, path, "uevent", "%s", "");
		if (r >= 0)
			r = fx_symlink(fx, subsystem, "sys/bus/platform");
		if (r < 0)
			return r;
		f.path = path;
	}
	return build_class_devices(fx, &f, class_devices, where);
}

/* {"name": "value" | null}: extra (or replaced, or with null removed) files of the function. */
static int build_attrs(struct fixture *fx, const struct pci_function *f, json_t *attrs,
		       const char *where)
{
	char sub[WHERE_MAX];
	const char *key;
	json_t *v;
	int r;

	if (!attrs)
		return 0;
	snprintf(sub, sizeof(sub), "%s.attrs", where);
	json_object_foreach(attrs, key, v) {
		_cleanup_free_ char *path = NULL;

		if (!path_is_safe(key, true))
			return fx_bad_key(fx, sub, key, "not a file name");
		if (!json_is_string(v) && !json_is_null(v))
			return fx_bad_key(fx, sub, key, "expected string or null");
		if (!f->path)
			continue;
		path = pathf("%s/%s", f->path, key);
		if (json_is_null(v))
			r = fx_unlink(fx, path);
		else if (json_string_length(v) == 0)
			r = fx_write(fx, path, "", 0);
		else
			r = fx_attrf(fx, f->path, key, "%s\n", json_string_value(v));
		if (r < 0)
			return r;
	}
	return 0;
}

/* "sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0" for the first @n parents (or none). */
static char *device_path(const char *root_address, char (*parents)[13], size_t n,
			 const char *address)
{
	_cleanup_free_ char *buf = NULL;
	size_t size = 0;
	FILE *f;

	f = open_memstream(&buf, &size);
	if (!f)
		return NULL;
	/* The root complex is named after the domain and bus of the topmost function. */
	fprintf(f, "sys/devices/pci%.7s", root_address);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "/%s", parents[i]);
	if (address)
		fprintf(f, "/%s", address);
	if (fclose(f) != 0)
		return NULL;
	return TAKE_PTR(buf);
}

static const char *const pci_keys[] = {
	"address",	 "vendor",	  "device",	   "subsystem_vendor", "subsystem_device",
	"class",	 "revision",	  "driver",	   "numa_node",	       "local_cpulist",
	"link",		 "parents",	  "bridge_vendor", "bridge_device",    "nvidia",
	"class_devices", "attrs",	  "raw_files",	   NULL,
};

/*
 * One entry of "pci" (already merged with "defaults"), or with @partial the "defaults" block
 * itself, where no key is required and nothing is written.
 */
int build_pci(struct fixture *fx, json_t *e, const char *where, bool partial)
{
	struct pci_function f = { .numa_node = -1 };
	_cleanup_free_ char(*parents)[13] = NULL;
	_cleanup_free_ char *path = NULL;
	json_t *link_obj = NULL, *parents_arr = NULL, *nvidia = NULL, *class_devices = NULL;
	json_t *attrs = NULL, *raw_files = NULL;
	uint32_t bridge_vendor = 0, bridge_device = 0;
	struct pcie_link link;
	const char *address = NULL;
	size_t n_parents = 0;
	char sub[WHERE_MAX];
	int r;

	if (!json_is_object(e))
		return fx_invalid(fx, "%s: expected object", where);
	r = check_keys(fx, e, where, pci_keys);
	if (r < 0)
		return r;
	if (partial && json_object_get(e, "address"))
		return fx_bad_key(fx, where, "address", "not allowed in defaults and templates");
	r = get_string(fx, e, where, "address", !partial, &address);
	if (r < 0)
		return r;
	if (address) {
		snprintf(sub, sizeof(sub), "%s.address", where);
		r = parse_address(fx, address, sub, f.address);
		if (r < 0)
			return r;
		strcpy(fx->device, f.address);
		r = claim_address(fx, f.address, sub);
		if (r < 0)
			return r;
	}

	r = get_hex(fx, e, where, "vendor", !partial, 0xffff, 0, &f.vendor);
	if (r >= 0)
		r = get_hex(fx, e, where, "device", !partial, 0xffff, 0, &f.device);
	if (r >= 0)
		r = get_hex(fx, e, where, "subsystem_vendor", false, 0xffff, 0,
			    &f.subsystem_vendor);
	if (r >= 0)
		r = get_hex(fx, e, where, "subsystem_device", false, 0xffff, 0,
			    &f.subsystem_device);
	if (r >= 0)
		r = get_hex(fx, e, where, "class", !partial, 0xffffff, 0, &f.class);
	if (r >= 0)
		r = get_hex(fx, e, where, "revision", false, 0xff, 0, &f.revision);
	if (r >= 0)
		r = get_hex(fx, e, where, "bridge_vendor", false, 0xffff, 0x1000, &bridge_vendor);
	if (r >= 0)
		r = get_hex(fx, e, where, "bridge_device", false, 0xffff, 0xc030, &bridge_device);
	if (r >= 0)
		r = get_string(fx, e, where, "driver", false, &f.driver);
	if (r >= 0)
		r = get_int(fx, e, where, "numa_node", false, -1, NUMA_BITS - 1, -1, &f.numa_node);
	if (r >= 0)
		r = get_string(fx, e, where, "local_cpulist", false, &f.local_cpulist);
	if (r >= 0)
		r = get_object(fx, e, where, "link", &link_obj);
	if (r >= 0)
		r = get_array(fx, e, where, "parents", &parents_arr);
	if (r >= 0)
		r = get_object(fx, e, where, "nvidia", &nvidia);
	if (r >= 0)
		r = get_array(fx, e, where, "class_devices", &class_devices);
	if (r >= 0)
		r = get_object(fx, e, where, "attrs", &attrs);
	if (r >= 0)
		r = get_object(fx, e, where, "raw_files", &raw_files);
	if (r >= 0)
		r = parse_link(fx, link_obj, where, &link);
	if (r < 0)
		return r;
	f.link = &link;
	if (f.driver && !path_is_safe(f.driver, true))
		return fx_invalid(fx, "%s.driver: \"%s\" is not a driver name", where, f.driver);
	if (f.local_cpulist) {
		unsigned count;

		if (parse_cpu_list(f.local_cpulist, &count) < 0)
			return fx_invalid(fx, "%s.local_cpulist: \"%s\" is not a CPU list such as "
					      "\"0-55,112-167\" (use attrs for garbage)",
					  where, f.local_cpulist);
	}

	if (parents_arr) {
		json_t *p;
		size_t i;

		parents = calloc(json_array_size(parents_arr) + 1, sizeof(*parents));
		if (!parents)
			return -ENOMEM;
		json_array_foreach(parents_arr, i, p) {
			snprintf(sub, sizeof(sub), "%s.parents[%zu]", where, i);
			if (!json_is_string(p))
				return fx_invalid(fx, "%s: expected string", sub);
			r = parse_address(fx, json_string_value(p), sub, parents[i]);
			if (r < 0)
				return r;
			if (streq(parents[i], f.address))
				return fx_invalid(fx, "%s: a function cannot be its own parent",
						  sub);
			for (size_t j = 0; j < i; j++)
				if (streq(parents[i], parents[j]))
					return fx_invalid(fx, "%s: %s appears twice", sub,
							  parents[i]);
		}
		n_parents = json_array_size(parents_arr);
	}

	/* Without a NUMA-local list of its own, a function gets its node's CPUs, or all of them. */
	if (!f.local_cpulist && fx->numa_nodes) {
		json_t *node;
		size_t i;

		f.local_cpulist = fx->all_cpus;
		json_array_foreach(fx->numa_nodes, i, node)
			if (json_integer_value(json_object_get(node, "node")) == f.numa_node)
				f.local_cpulist = json_string_value(json_object_get(node, "cpus"));
	}

	if (!partial && !fx_validating(fx)) {
		path = device_path(n_parents > 0 ? parents[0] : f.address, parents, n_parents,
				   f.address);
		if (!path)
			return -ENOMEM;
		/* Each bridge above is a PCI function of its own, bound to the port driver. */
		for (size_t i = 0; i < n_parents; i++) {
			_cleanup_free_ char *bpath = NULL;
			struct pci_function b = {
				.vendor = bridge_vendor,
				.device = bridge_device,
				.subsystem_vendor = bridge_vendor,
				.subsystem_device = bridge_device,
				.class = 0x060400,
				.driver = "pcieport",
				.numa_node = f.numa_node,
				.local_cpulist = f.local_cpulist,
				.link = &link,
			};

			bpath = device_path(parents[0], parents, i + 1, NULL);
			if (!bpath)
				return -ENOMEM;
			strcpy(b.address, parents[i]);
			b.path = bpath;
			r = write_function(fx, &b);
			if (r < 0)
				return r;
		}
		f.path = path;
		r = write_function(fx, &f);
		if (r < 0)
			return r;
	}

	r = build_nvidia_gpu(fx, &f, nvidia, where, partial);
	if (r >= 0)
		r = build_class_devices(fx, &f, class_devices, where);
	if (r >= 0)
		r = build_attrs(fx, &f, attrs, where);
	if (r >= 0) {
		snprintf(sub, sizeof(sub), "%s.raw_files", where);
		r = build_raw_files(fx, raw_files, f.path, sub);
	}
	fx->device[0] = '\0';
	return r;
}

/* These keys hold objects that an entry refines key by key rather than replaces. */
static bool key_merges(const char *key)
{
	return streq(key, "link") || streq(key, "nvidia") || streq(key, "attrs") ||
	       streq(key, "raw_files");
}

/* Lays @src over @m: keys replace, except that key_merges() objects are refined key by key. */
static int overlay(json_t *m, json_t *src)
{
	const char *key;
	json_t *v;

	json_object_foreach(src, key, v) {
		json_t *d = json_object_get(m, key);

		if (streq(key, "template"))
			continue;
		if (json_is_object(d) && json_is_object(v) && key_merges(key)) {
			/* Copy first: @d may be shared with "defaults" or a template. */
			json_t *copy = json_deep_copy(d);

			if (!copy || json_object_update(copy, v) < 0 ||
			    json_object_set_new(m, key, copy) < 0)
				return -ENOMEM;
		} else if (json_object_set(m, key, v) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* An entry of "pci" as the builder sees it: defaults, then its template, then its own keys. */
int merge_entry(struct fixture *fx, json_t *defaults, json_t *templates, json_t *entry,
		       const char *where, json_t **ret)
{
	_cleanup_(json_decrefp) json_t *m = NULL;
	json_t *t = NULL, *name;
	int r;

	name = get_value(entry, "template");
	if (name) {
		if (!json_is_string(name))
			return fx_bad_key(fx, where, "template", "expected string");
		t = json_object_get(templates, json_string_value(name));
		if (!t)
			return fx_invalid(fx, "%s.template: no template \"%s\" in \"templates\"",
					  where, json_string_value(name));
	}
	m = json_object();
	if (!m)
		return -ENOMEM;
	r = defaults ? overlay(m, defaults) : 0;
	if (r >= 0 && t)
		r = overlay(m, t);
	if (r >= 0)
		r = overlay(m, entry);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(m);
	return 0;
}

