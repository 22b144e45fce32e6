// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The FPGA backend: FPGAs as the kernel's FPGA subsystem shows them, without a vendor runtime.
 *
 * - FPGA managers (/sys/class/fpga_manager/fpgaN: "name", "state", "status"): what programs an
 *   FPGA, and the state of its last programming (fpga-mgr.c's state table);
 * - FPGA regions (/sys/class/fpga_region/regionN, "compat_id" where the driver sets one): what
 *   gets programmed; the kernel keeps a region's manager to itself, so a region is given the
 *   manager nearest to it in the device tree of sysfs (the deepest common ancestor, when one
 *   manager is nearer than every other); FPGA bridges (/sys/class/fpga_bridge) the same way;
 * - Intel's Device Feature List cards (drivers/fpga/dfl*.c): the FPGA Management Engine
 *   (platform device dfl-fme.N, node /dev/dfl-fme.N) and the ports (dfl-port.N,
 *   /dev/dfl-port.N, with the loaded AFU's "afu_id"), below the container region of the card's
 *   PCI function, and the private features on /sys/bus/dfl/devices (dfl_dev.N: "type", 0 FME
 *   or 1 port, and "feature_id").
 *
 * One record per FPGA: the PCI function its manager, regions and DFL devices sit below (merged
 * with the generic PCI backend's record of it), or else the platform device that is its
 * manager's parent. A manager whose state is an error ("write error", "write init error",
 * "firmware request error", ...) makes the FPGA unhealthy with the state in the reason; the
 * health probes re-read it (refresh), so the FPGA recovers when it is programmed again.
 *
 * Workloads get the ports' nodes; the FME's node reprograms the card and releases ports, so it is
 * the administrator's and only named in the "admin_nodes" property. The resource name is Intel's
 * FPGA device plugin's in region mode, fpga.intel.com/region-<interface id> (the compat_id of
 * the FME's region), for DFL cards; each port's name in the plugin's af mode is a property.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/pci.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/strv.h"

#define CLASS_MANAGER "class/fpga_manager"
#define CLASS_REGION "class/fpga_region"
#define CLASS_BRIDGE "class/fpga_bridge"
#define PLATFORM_DEVICES "bus/platform/devices"
#define DFL_DEVICES "bus/dfl/devices"

/* DFL cards by PCI id (dfl-pci.c's id table), for a model name the PCI tables lack. */
static const struct {
	uint16_t vendor, device;
	const char *model;
} dfl_models[] = {
	{ 0x8086, 0x09c4, "Intel PAC with Arria 10 GX FPGA" },
	{ 0x8086, 0x0b30, "Intel FPGA PAC N3000" },
	{ 0x8086, 0x0b2b, "Intel FPGA PAC D5005" },
	{ 0x8086, 0xbcce, "Intel OFS FPGA" },
};

/* A manager seen in this scan: its class name, its device path below /sys, its FPGA's id. */
struct fpga_mgr {
	char *name;
	char *path;
	char *card;
};

struct fpga_scan {
	const struct xpu_host *host;
	char *sysroot; /* the canonical path of the host's /sys */
	struct device_list *list;
	struct fpga_mgr *mgrs;
	size_t n_mgrs;
};

static void fpga_scan_done(struct fpga_scan *s)
{
	for (size_t i = 0; i < s->n_mgrs; i++) {
		free(s->mgrs[i].name);
		free(s->mgrs[i].path);
		free(s->mgrs[i].card);
	}
	free(s->mgrs);
	free(s->sysroot);
}

/* The canonical path of the open file @fd (malloc'd), through /proc/self/fd. */
static int fd_path(int fd, char **ret)
{
	char link[64], buf[4096];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	if ((size_t)n >= sizeof(buf) - 1)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	*ret = strdup(buf);
	return *ret ? 0 : -ENOMEM;
}

/*
 * The device path, below /sys, that @name in @dirfd leads to, every link followed
 * ("devices/pci0000:5d/.../fpga_manager/fpga0"). -ENOENT when it leads nowhere (the device went
 * away during the scan), -EXDEV when outside /sys, -ENOMEM.
 */
static int resolve(const struct fpga_scan *s, int dirfd, const char *name, char **ret)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *p = NULL;
	size_t n;
	int r;

	*ret = NULL;
	if (fd < 0)
		return -errno;
	r = fd_path(fd, &p);
	if (r < 0 || !p || !s->sysroot)
		return r < 0 ? r : -ENOMEM;
	n = strlen(s->sysroot);
	if (strncmp(p, s->sysroot, n) != 0 || p[n] != '/')
		return -EXDEV;
	*ret = strdup(p + n + 1);
	return *ret ? 0 : -ENOMEM;
}

/* resolve() of @dir below /sys, with a warning naming it when it leads nowhere. */
static int resolve_or_warn(const struct fpga_scan *s, const char *dir, char **ret)
{
	int r = resolve(s, s->host->sys_fd, dir, ret);

	if (r >= 0 && !*ret)
		r = -ENOMEM;
	if (r < 0 && r != -ENOMEM)
		log_warning_errno(r, "fpga: /sys/%s leads nowhere (removed during the scan?), "
				     "skipping it: %m", dir);
	return r;
}

/* The names in directory @path below /sys, sorted, only those starting with @prefix. */
static int list_dir(const struct xpu_host *host, const char *path, const char *prefix,
		    char ***ret)
{
	_cleanup_(closedirp) DIR *d = NULL;
	_cleanup_strv_free_ char **names = NULL;
	struct dirent *de;

	*ret = NULL;
	if (opendir_at(host->sys_fd, path, &d) < 0)
		return 0; /* no such class or bus: nothing of it */
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && strncmp(de->d_name, prefix, strlen(prefix)) == 0 &&
		    strv_extend(&names, de->d_name) < 0)
			return -ENOMEM;
	strv_sort(names);
	*ret = TAKE_PTR(names);
	return 0;
}

/* The element of @path before its element @what ("fpga_manager"): the class device's parent. */
static char *path_parent_of(const char *path, const char *what)
{
	_cleanup_free_ char *copy = strdup(path);
	char *save = NULL, *e, *prev = NULL;

	if (!copy)
		return NULL;
	for (e = strtok_r(copy, "/", &save); e; e = strtok_r(NULL, "/", &save)) {
		if (streq(e, what) && prev)
			return strdup(prev);
		prev = e;
	}
	return NULL;
}

/* How many leading elements @a and @b share. */
static size_t common_depth(const char *a, const char *b)
{
	size_t depth = 0, i;

	for (i = 0; a[i] && a[i] == b[i]; i++)
		if (a[i] == '/')
			depth++;
	if ((!a[i] || a[i] == '/') && (!b[i] || b[i] == '/'))
		depth++;
	return depth;
}

/* The manager nearest to the device at @path: deeper below /sys/devices than any other. */
static const struct fpga_mgr *nearest_manager(const struct fpga_scan *s, const char *path)
{
	const struct fpga_mgr *best = NULL;
	size_t best_depth = 2; /* "devices/<bus>": sharing only a bus is no kinship */
	bool tie = false;

	for (size_t i = 0; i < s->n_mgrs; i++) {
		size_t depth = common_depth(s->mgrs[i].path, path);

		if (depth > best_depth) {
			best = &s->mgrs[i];
			best_depth = depth;
			tie = false;
		} else if (depth == best_depth && best) {
			tie = true;
		}
	}
	return tie ? NULL : best;
}

/* The record of FPGA @id in the scan's list, made (kind, PCI address) when new. */
static int card_get(struct fpga_scan *s, const char *id, bool pci, struct xpu_device **ret)
{
	_cleanup_(device_freep) struct xpu_device *d = NULL;
	int r;

	*ret = device_list_find(s->list, id);
	if (*ret)
		return 0;
	d = device_new();
	if (!d || !(d->id = strdup(id)))
		return -ENOMEM;
	d->kind = XPU_KIND_FPGA;
	if (pci) {
		d->has_pci = true;
		memcpy(d->pci.address, id, sizeof(d->pci.address));
	}
	*ret = d;
	r = device_list_push(s->list, TAKE_PTR(d));
	return r;
}

/* The id of the FPGA a device at @path belongs to: its PCI function, else the parent of its
 * class device @class_dir. */
static int card_of(struct fpga_scan *s, const char *path, const char *class_dir,
		   struct xpu_device **ret)
{
	_cleanup_free_ char *parent = NULL;
	char addr[13];

	if (path_pci_address(path, addr) >= 0)
		return card_get(s, addr, true, ret);
	parent = path_parent_of(path, class_dir);
	if (!parent)
		return -ENOENT;
	return card_get(s, parent, false, ret);
}

/* Appends @value to @d's comma-separated list property @key. */
static int prop_list_add(struct xpu_device *d, const char *key, const char *value)
{
	const char *old = device_get_property(d, key);
	_cleanup_free_ char *v = NULL;

	if (!old)
		return device_set_property(d, key, value);
	if (asprintf(&v, "%s,%s", old, value) < 0)
		return -ENOMEM;
	return device_set_property(d, key, v);
}

/* The elements of @d's list property @key (NULL when none). */
static int prop_list(const struct xpu_device *d, const char *key, char ***ret)
{
	const char *v = device_get_property(d, key);
	_cleanup_free_ char *copy = NULL;
	_cleanup_strv_free_ char **l = NULL;
	char *save = NULL, *e;

	*ret = NULL;
	if (!v)
		return 0;
	copy = strdup(v);
	if (!copy)
		return -ENOMEM;
	for (e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save))
		if (strv_extend(&l, e) < 0)
			return -ENOMEM;
	*ret = TAKE_PTR(l);
	return 0;
}

/* Sets property "<prefix>.<name>.<field>". */
static int prop_set3(struct xpu_device *d, const char *prefix, const char *name,
		     const char *field, const char *value)
{
	_cleanup_free_ char *key = NULL;

	if (asprintf(&key, "%s.%s.%s", prefix, name, field) < 0)
		return -ENOMEM;
	return device_set_property(d, key, value);
}

static const char *prop_get3(const struct xpu_device *d, const char *prefix, const char *name,
			     const char *field)
{
	_cleanup_free_ char *key = NULL;

	if (asprintf(&key, "%s.%s.%s", prefix, name, field) < 0)
		return NULL;
	return device_get_property(d, key);
}

/*
 * Reads the attribute @dir/@attr below /sys: *ret NULL when missing. Where it is there but
 * unreadable or not printable text, a warning (with @warn) names the FPGA @id and the file, and
 * -EINVAL. -ENOMEM.
 */
static int read_text(const struct xpu_host *host, const char *dir, const char *attr,
		     const char *id, bool warn, char **ret)
{
	const char *path = strjoina_path(dir, attr);
	int r = read_text_attr_at(host->sys_fd, path, 1024, ret);

	if (r >= 0 || r == -ENOMEM)
		return r;
	if (warn)
		log_device_full_errno(LOG_WARNING, r == -EINVAL ? 0 : r, id, NULL,
				      "fpga: %s: /sys/%s %s, ignoring it.", id, path,
				      r == -EINVAL ? "holds no printable value" : "cannot be read");
	return -EINVAL;
}

/* Whether @s is 32 'f's: what the DFL driver reads from a card whose firmware crashed. */
static bool all_ones_uuid(const char *s)
{
	return strspn(s, "fF") == 32 && !s[32];
}

/* Whether @s is a 128-bit id in hex (32 digits). */
static bool is_uuid_hex(const char *s)
{
	return strspn(s, "0123456789abcdefABCDEF") == 32 && !s[32];
}

/* ---- managers, regions, bridges ------------------------------------------------------------- */

static int scan_managers(struct fpga_scan *s)
{
	_cleanup_strv_free_ char **names = NULL;
	int r = list_dir(s->host, CLASS_MANAGER, "", &names);

	if (r < 0)
		return r;
	STRV_FOREACH(m, names) {
		_cleanup_free_ char *path = NULL, *name = NULL;
		struct xpu_device *d;
		struct fpga_mgr *a;

		r = resolve_or_warn(s, strjoina_path(CLASS_MANAGER, *m), &path);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			continue;
		r = card_of(s, path, "fpga_manager", &d);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			log_warning("fpga: FPGA manager %s has no parent device, skipping it.", *m);
			continue;
		}
		r = read_text(s->host, strjoina_path(CLASS_MANAGER, *m), "name", d->id, true,
			      &name);
		if (r == -ENOMEM)
			return r;
		if (name && (r = prop_set3(d, "fpga_manager", *m, "name", name)) < 0)
			return r;
		if (!d->has_pci && name && !d->model && !(d->model = strdup(name)))
			return -ENOMEM;
		r = prop_list_add(d, "fpga_managers", *m);
		if (r < 0)
			return r;
		a = reallocarray(s->mgrs, s->n_mgrs + 1, sizeof(*s->mgrs));
		if (!a)
			return -ENOMEM;
		s->mgrs = a;
		a = &s->mgrs[s->n_mgrs];
		*a = (struct fpga_mgr){ .name = strdup(*m), .path = TAKE_PTR(path),
					.card = strdup(d->id) };
		s->n_mgrs++;
		if (!a->name || !a->card)
			return -ENOMEM;
	}
	return 0;
}

/* Whether the region at @path (below /sys) holds DFL feature devices: a DFL container region,
 * which the kernel registers without a manager. */
static bool is_dfl_container(const struct xpu_host *host, const char *path)
{
	_cleanup_strv_free_ char **fme = NULL, **port = NULL;

	if (list_dir(host, path, "dfl-fme.", &fme) < 0 || list_dir(host, path, "dfl-port.", &port) < 0)
		return false;
	return fme || port;
}

static int scan_regions(struct fpga_scan *s)
{
	_cleanup_strv_free_ char **names = NULL;
	int r = list_dir(s->host, CLASS_REGION, "", &names);

	if (r < 0)
		return r;
	STRV_FOREACH(g, names) {
		_cleanup_free_ char *path = NULL, *compat = NULL;
		const char *dir = strjoina_path(CLASS_REGION, *g);
		const struct fpga_mgr *m;
		struct xpu_device *d;
		bool container;

		r = resolve_or_warn(s, dir, &path);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			continue;
		/* a DFL container region (the card's region0) holds the FME whose manager is the
		 * nearest; the kernel registers it without one */
		container = is_dfl_container(s->host, path);
		m = container ? NULL : nearest_manager(s, path);
		d = m ? device_list_find(s->list, m->card) : NULL;
		r = d ? 0 : card_of(s, path, "fpga_region", &d);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			log_warning("fpga: FPGA region %s has no parent device, skipping it.", *g);
			continue;
		}
		if (!m && !container)
			log_device_full_errno(LOG_WARNING, 0, d->id, NULL,
					      "fpga: %s: no FPGA manager found for region %s "
					      "(/sys/%s), reporting it without a state.",
					      d->id, *g, path);
		if (m && (r = prop_set3(d, "fpga_region", *g, "manager", m->name)) < 0)
			return r;
		/* the kernel answers ENOENT on reading it when the driver set none */
		r = read_text(s->host, dir, "compat_id", d->id, true, &compat);
		if (r == -ENOMEM)
			return r;
		if (compat && !is_uuid_hex(compat)) {
			log_device_full_errno(LOG_WARNING, 0, d->id, NULL,
					      "fpga: %s: /sys/%s/compat_id is not a 128-bit id (%s), "
					      "ignoring it.",
					      d->id, dir, compat);
			compat = mfree(compat);
		}
		if (compat && (r = prop_set3(d, "fpga_region", *g, "compat_id", compat)) < 0)
			return r;
		r = prop_list_add(d, "fpga_regions", *g);
		if (r < 0)
			return r;
	}
	return 0;
}

static int scan_bridges(struct fpga_scan *s)
{
	_cleanup_strv_free_ char **names = NULL;
	int r = list_dir(s->host, CLASS_BRIDGE, "", &names);

	if (r < 0)
		return r;
	STRV_FOREACH(b, names) {
		_cleanup_free_ char *path = NULL, *name = NULL, *state = NULL;
		const char *dir = strjoina_path(CLASS_BRIDGE, *b);
		const struct fpga_mgr *m;
		struct xpu_device *d;

		r = resolve_or_warn(s, dir, &path);
		if (r == -ENOMEM)
			return r;
		if (r < 0 || !(m = nearest_manager(s, path))) {
			log_debug("fpga: FPGA bridge %s belongs to no FPGA manager, ignoring it.", *b);
			continue;
		}
		d = device_list_find(s->list, m->card);
		if (read_text(s->host, dir, "name", d->id, true, &name) == -ENOMEM ||
		    read_text(s->host, dir, "state", d->id, true, &state) == -ENOMEM)
			return -ENOMEM;
		if ((name && prop_set3(d, "fpga_bridge", *b, "name", name) < 0) ||
		    (state && prop_set3(d, "fpga_bridge", *b, "state", state) < 0) ||
		    prop_list_add(d, "fpga_bridges", *b) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* ---- DFL ------------------------------------------------------------------------------------ */

/* The node of a DFL feature device: its uevent's DEVNAME=, else its name. */
static char *dfl_node(const struct xpu_host *host, const char *dir, const char *name)
{
	_cleanup_free_ char *devname = NULL;
	char *node;
	int r = read_uevent_key_at(host->sys_fd, strjoina_path(dir, "uevent"), "DEVNAME", &devname);

	if (r == -ENOMEM)
		return NULL;
	if (r < 0 || !string_is_printable(devname) || strstr(devname, ".."))
		node = host_dev_path(name);
	else
		node = host_dev_path(devname);
	return node;
}

static int describe_fme(struct fpga_scan *s, struct xpu_device *d, const char *dir,
			const char *name)
{
	static const char *const attrs[] = { "ports_num", "bitstream_id", "bitstream_metadata" };
	_cleanup_free_ char *node = dfl_node(s->host, dir, name);
	int r;

	if (!node)
		return -ENOMEM;
	r = device_set_property(d, "dfl_fme", name);
	if (r >= 0)
		r = prop_list_add(d, "admin_nodes", node);
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(attrs); i++) {
		_cleanup_free_ char *v = NULL;

		r = read_text(s->host, dir, attrs[i], d->id, true, &v);
		if (r == -ENOMEM)
			return r;
		r = v ? device_set_property(d, attrs[i], v) : 0;
	}
	return r;
}

static int describe_port(struct fpga_scan *s, struct xpu_device *d, const char *dir,
			 const char *name)
{
	_cleanup_free_ char *node = dfl_node(s->host, dir, name), *afu = NULL;
	int r;

	if (!node)
		return -ENOMEM;
	if (!strv_contains(d->device_nodes, node) &&
	    strv_consume(&d->device_nodes, TAKE_PTR(node)) < 0)
		return -ENOMEM;
	r = prop_list_add(d, "dfl_ports", name);
	if (r < 0)
		return r;
	r = read_text(s->host, dir, "afu_id", d->id, true, &afu);
	if (r == -ENOMEM)
		return r;
	if (afu && !is_uuid_hex(afu)) {
		log_device_full_errno(LOG_WARNING, 0, d->id, NULL,
				      "fpga: %s: /sys/%s/afu_id is not a 128-bit id (%s), ignoring it.",
				      d->id, dir, afu);
		afu = mfree(afu);
	} else if (!afu && r == 0) {
		log_device_full_errno(LOG_WARNING, 0, d->id, NULL,
				      "fpga: %s: /sys/%s/afu_id is missing, reporting port %s "
				      "without its AFU id.",
				      d->id, dir, name);
	}
	return afu ? prop_set3(d, "dfl_port", name, "afu_id", afu) : 0;
}

/* The FME and the ports, the platform devices dfl-fme.N and dfl-port.N. */
static int scan_dfl_feature_devices(struct fpga_scan *s)
{
	_cleanup_strv_free_ char **names = NULL;
	int r = list_dir(s->host, PLATFORM_DEVICES, "dfl-", &names);

	if (r < 0)
		return r;
	STRV_FOREACH(n, names) {
		_cleanup_free_ char *path = NULL;
		const char *dir = strjoina_path(PLATFORM_DEVICES, *n);
		bool fme = strncmp(*n, "dfl-fme.", 8) == 0;
		struct xpu_device *d;
		char addr[13];

		if (!fme && strncmp(*n, "dfl-port.", 9) != 0)
			continue; /* dfl-fme-mgr.N, dfl-fme-br.N, dfl-fme-region.N: the classes say */
		r = resolve(s, s->host->sys_fd, dir, &path);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			continue;
		if (path_pci_address(path, addr) < 0) {
			log_warning("fpga: DFL device %s is not below a PCI function, skipping it.",
				    *n);
			continue;
		}
		r = card_get(s, addr, true, &d);
		if (r >= 0)
			r = fme ? describe_fme(s, d, dir, *n) : describe_port(s, d, dir, *n);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The private features on the DFL bus: "<feature device>:<fme|port>:<feature id>". */
static int scan_dfl_bus(struct fpga_scan *s)
{
	_cleanup_strv_free_ char **names = NULL;
	int r = list_dir(s->host, DFL_DEVICES, "", &names);

	if (r < 0)
		return r;
	STRV_FOREACH(n, names) {
		_cleanup_free_ char *path = NULL, *parent = NULL, *entry = NULL;
		const char *dir = strjoina_path(DFL_DEVICES, *n);
		uint32_t type, feature;
		struct xpu_device *d;
		char addr[13], *slash;
		const char *bad;

		r = resolve_or_warn(s, dir, &path);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			continue;
		if (path_pci_address(path, addr) < 0)
			continue;
		r = card_get(s, addr, true, &d);
		if (r < 0)
			return r;
		slash = path ? strrchr(path, '/') : NULL;
		if (!slash)
			continue;
		*slash = '\0';
		parent = strdup(strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
		if (!parent)
			return -ENOMEM;
		bad = "type";
		r = read_attr_hex_at(s->host->sys_fd, strjoina_path(dir, bad), 0xffff, &type);
		if (r >= 0 && type > 1)
			r = -ERANGE; /* 0 FME, 1 port: the only FIU types there are */
		if (r >= 0) {
			bad = "feature_id";
			r = read_attr_hex_at(s->host->sys_fd, strjoina_path(dir, bad), 0xfff,
					     &feature);
		}
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			log_device_full_errno(LOG_WARNING, r, d->id, NULL,
					      "fpga: %s: DFL device %s: /sys/%s/%s cannot be read: %m, "
					      "leaving the feature out.",
					      d->id, *n, dir, bad);
			continue;
		}
		if (asprintf(&entry, "%s:%s:0x%x", parent, type == 0 ? "fme" : "port", feature) < 0)
			return -ENOMEM;
		r = prop_list_add(d, "dfl_features", entry);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- health --------------------------------------------------------------------------------- */

/* The status of manager @m, one error a line, as one line ("reconfig operation error; reconfig
 * CRC error"); NULL when it says nothing. */
static char *manager_status(const struct xpu_host *host, const char *m)
{
	_cleanup_free_ char *v = NULL, *path = NULL;
	_cleanup_strv_free_ char **lines = NULL;
	char *save = NULL, *e;

	if (asprintf(&path, CLASS_MANAGER "/%s/status", m) < 0 ||
	    read_attr_at(host->sys_fd, path, 1024, &v) < 0)
		return NULL;
	for (e = strtok_r(v, "\n", &save); e; e = strtok_r(NULL, "\n", &save))
		if (!string_is_printable(e) || strv_extend(&lines, e) < 0)
			return NULL;
	return lines ? strv_join(lines, "; ") : NULL;
}

/* Sets the "state" property of every region of @d whose manager is @m. */
static int set_region_states(struct xpu_device *d, const char *m, const char *state)
{
	_cleanup_strv_free_ char **regions = NULL;
	int r = prop_list(d, "fpga_regions", &regions);

	STRV_FOREACH(g, regions)
		if (streq_ptr(prop_get3(d, "fpga_region", *g, "manager"), m) &&
		    (r = prop_set3(d, "fpga_region", *g, "state", state)) < 0)
			return r;
	return r;
}

/*
 * @d's health from scratch: its managers' states and its ports' AFU ids. With @verbose
 * (discovery), unreadable files are warned about and the state properties set (a health probe
 * changes health only; the properties are the last scan's). -ESTALE when a manager is gone (a
 * rescan's job), -ENOMEM.
 */
static int evaluate_health(const struct xpu_host *host, struct xpu_device *d, bool verbose)
{
	_cleanup_strv_free_ char **mgrs = NULL, **ports = NULL;
	const char *iface = device_get_property(d, "interface_id");
	int r;

	free(d->health.reason);
	d->health = (struct xpu_health){ .state = XPU_HEALTH_HEALTHY };
	if (prop_list(d, "fpga_managers", &mgrs) < 0 || prop_list(d, "dfl_ports", &ports) < 0)
		return -ENOMEM;
	STRV_FOREACH(m, mgrs) {
		_cleanup_free_ char *state = NULL, *status = NULL;
		const char *dir = strjoina_path(CLASS_MANAGER, *m);
		size_t n;

		r = read_text(host, dir, "state", d->id, verbose, &state);
		if (r == -ENOMEM)
			return r;
		if (r == 0 && !state) {
			if (!verbose && exists_at(host->sys_fd, dir) <= 0)
				return -ESTALE;
			r = device_set_unhealthy(d, "FPGA manager %s reports no state", *m);
		} else if (r < 0) {
			r = device_set_unhealthy(d, "the state of FPGA manager %s cannot be read", *m);
		} else {
			r = verbose ? prop_set3(d, "fpga_manager", *m, "state", state) : 0;
			if (r >= 0 && verbose)
				r = set_region_states(d, *m, state);
			n = strlen(state);
			/* every failure of fpga-mgr.c's state table ends so, and only they do */
			if (r >= 0 && n > 6 && streq(state + n - 6, " error")) {
				status = manager_status(host, *m);
				r = device_set_unhealthy(d, "FPGA manager %s (%s) reports \"%s\"%s%s%s",
							 *m,
							 prop_get3(d, "fpga_manager", *m, "name") ?:
								 "unnamed",
							 state, status ? " (status: " : "",
							 status ?: "", status ? ")" : "");
			}
		}
		if (r < 0)
			return r;
	}
	STRV_FOREACH(p, ports) {
		_cleanup_free_ char *afu = NULL;

		r = read_text(host, strjoina_path(PLATFORM_DEVICES, *p), "afu_id", d->id, false,
			      &afu);
		if (r == -ENOMEM)
			return r;
		if (afu && all_ones_uuid(afu) &&
		    device_set_unhealthy(d, "port %s reports AFU id %s: the card's firmware "
					    "crashed",
					 *p, afu) < 0)
			return -ENOMEM;
	}
	if (iface && all_ones_uuid(iface) &&
	    device_set_unhealthy(d, "the FPGA reports interface id %s: the card's firmware crashed",
				 iface) < 0)
		return -ENOMEM;
	return 0;
}

/* ---- the records ---------------------------------------------------------------------------- */

/* Intel's device plugin's af-mode name of a port's AFU: "af-<iface[:3]>.<afu[:3]>.<base64url
 * of the two ids' 32 bytes>" (its pkg/fpga GetAfuDevType()). */
static char *af_resource(const char *iface, const char *afu)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t bin[32];
	char enc[64], *ret;
	size_t n = 0;

	for (size_t i = 0; i < 32; i++) {
		const char *hex = i < 16 ? iface + 2 * i : afu + 2 * (i - 16);
		unsigned v;

		if (sscanf(hex, "%2x", &v) != 1)
			return NULL;
		bin[i] = (uint8_t)v;
	}
	for (size_t i = 0; i < 32; i += 3) {
		uint32_t w = (uint32_t)bin[i] << 16 | (i + 1 < 32 ? (uint32_t)bin[i + 1] << 8 : 0) |
			     (i + 2 < 32 ? bin[i + 2] : 0);

		enc[n++] = b64[w >> 18 & 63];
		enc[n++] = b64[w >> 12 & 63];
		if (i + 1 < 32)
			enc[n++] = b64[w >> 6 & 63];
		if (i + 2 < 32)
			enc[n++] = b64[w & 63];
	}
	enc[n] = '\0';
	if (asprintf(&ret, "fpga.intel.com/af-%.3s.%.3s.%s", iface, afu, enc) < 0)
		return NULL;
	return ret;
}

/* The interface id of a DFL card (the compat_id of its FME's region), the resource names, the
 * model of a known card, the vendor of a platform FPGA. */
static int finish_card(const struct xpu_host *host, struct xpu_device *d)
{
	_cleanup_strv_free_ char **regions = NULL, **ports = NULL;
	const char *iface = NULL;
	int r;

	if (prop_list(d, "fpga_regions", &regions) < 0 || prop_list(d, "dfl_ports", &ports) < 0)
		return -ENOMEM;
	STRV_FOREACH(g, regions)
		if (!iface && prop_get3(d, "fpga_region", *g, "manager"))
			iface = prop_get3(d, "fpga_region", *g, "compat_id");
	if (iface && device_get_property(d, "dfl_fme")) {
		if (device_set_property(d, "interface_id", iface) < 0 ||
		    asprintf(&d->resource, "fpga.intel.com/region-%s", iface) < 0)
			return -ENOMEM;
		iface = device_get_property(d, "interface_id");
		STRV_FOREACH(p, ports) {
			const char *afu = prop_get3(d, "dfl_port", *p, "afu_id");
			_cleanup_free_ char *name = afu ? af_resource(iface, afu) : NULL;

			if (afu && (!name || prop_set3(d, "dfl_port", *p, "af_resource", name) < 0))
				return -ENOMEM;
		}
	}
	if (d->has_pci) {
		uint32_t vendor, device;
		_cleanup_close_ int fnfd = -EBADF;
		_cleanup_free_ char *driver = NULL;

		r = pci_open_function(host, d->id, &fnfd, &driver);
		if (r == -ENOMEM)
			return r;
		if (r < 0 || read_attr_hex_at(fnfd, "vendor", 0xffff, &vendor) < 0 ||
		    read_attr_hex_at(fnfd, "device", 0xffff, &device) < 0)
			return 0; /* the PCI backend names the culprit */
		for (size_t i = 0; i < ELEMENTSOF(dfl_models); i++)
			if (dfl_models[i].vendor == vendor && dfl_models[i].device == device &&
			    !(d->model = strdup(dfl_models[i].model)))
				return -ENOMEM;
		return 0;
	}
	/* a platform FPGA: named after its manager ("Altera SOCFPGA FPGA Manager") */
	if (!d->vendor) {
		static const char *const vendors[] = { "altera", "xilinx", "intel", "lattice",
						       "microchip" };

		for (size_t i = 0; d->model && i < ELEMENTSOF(vendors); i++)
			if (strncasecmp(d->model, vendors[i], strlen(vendors[i])) == 0)
				d->vendor = strdup(vendors[i]);
		if (!d->vendor && !(d->vendor = strdup("unknown")))
			return -ENOMEM;
	}
	if (!d->model && asprintf(&d->model, "FPGA %s", d->id) < 0) {
		d->model = NULL;
		return -ENOMEM;
	}
	if (!d->resource) {
		struct pci_ident none = {};

		d->resource = pci_default_resource(&none, d->vendor, NULL, d->model);
		if (!d->resource)
			return -ENOMEM;
	}
	return 0;
}

static int fpga_enumerate(struct xpu_backend *b, struct device_list *list)
{
	_cleanup_(fpga_scan_done) struct fpga_scan s = { .host = b->host, .list = list };
	int r;

	r = fd_path(b->host->sys_fd, &s.sysroot);
	if (r < 0)
		return r;
	r = scan_managers(&s);
	if (r >= 0)
		r = scan_regions(&s);
	if (r >= 0)
		r = scan_bridges(&s);
	if (r >= 0)
		r = scan_dfl_feature_devices(&s);
	if (r >= 0)
		r = scan_dfl_bus(&s);
	for (size_t i = 0; r >= 0 && i < list->n; i++) {
		r = finish_card(b->host, list->items[i]);
		if (r >= 0)
			r = evaluate_health(b->host, list->items[i], true);
		if (r == -ESTALE)
			r = 0; /* gone since: the next scan drops it */
	}
	if (r >= 0)
		device_list_sort(list);
	return r;
}

static int fpga_refresh(struct xpu_backend *b, struct xpu_device *d)
{
	if (d->has_pci) {
		_cleanup_close_ int fnfd = -EBADF;
		_cleanup_free_ char *driver = NULL;
		int r = pci_open_function(b->host, d->id, &fnfd, &driver);

		if (r < 0)
			return r;
	}
	return evaluate_health(b->host, d, false);
}

static int fpga_probe(struct xpu_backend *b, char **ret_reason)
{
	if (exists_at(b->host->sys_fd, CLASS_MANAGER) > 0 ||
	    exists_at(b->host->sys_fd, CLASS_REGION) > 0 ||
	    exists_at(b->host->sys_fd, DFL_DEVICES) > 0)
		return 0;
	*ret_reason = strdup("no FPGA subsystem (no /sys/class/fpga_manager, "
			     "/sys/class/fpga_region or /sys/bus/dfl)");
	return *ret_reason ? -ENOENT : -ENOMEM;
}

const struct xpu_backend_ops fpga_backend_ops = {
	.name = "fpga",
	.priority = 5,
	.probe = fpga_probe,
	.enumerate = fpga_enumerate,
	.refresh = fpga_refresh,
};
