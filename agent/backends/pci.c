// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The generic PCI backend: walks <sysfs>/bus/pci/devices, keeps the functions that are
 * accelerators (see pci_classify()), and describes them from sysfs alone. (Devices of
 * /sys/class/accel without a PCI parent are the accel backend's.) Accel and render nodes
 * count in the classification.
 * Richer backends (NVML, libdrm, XRT) describe the same functions better and win the merge;
 * this one is the floor every node has.
 *
 * Bad sysfs input (missing, empty or garbage attributes, a function vanishing mid-scan) never
 * fails the scan: the attribute is treated as unknown and a warning names the file.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backends/backend.h"
#include "backends/pci.h"
#include "shared/bounded.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/strv.h"

#define PCI_DEVICES "bus/pci/devices"
/* A function-level reset takes 100 ms; the kernel then waits up to a minute for a slow device
 * to answer again. Longer than this, the loop goes on and the reset is reported as failed. */
#define PCI_RESET_TIMEOUT_USEC (10 * 1000000ULL)

/* Logs a survived parse problem once per scan, naming the file as a user would look it up. */
static void warn_attr(const struct xpu_host *host, const char *addr, const char *attr, int r)
{
	log_device_full_errno(LOG_WARNING, r, addr, addr,
			      "Failed to read %s%s/" PCI_DEVICES "/%s/%s: %m, ignoring.",
			      host->is_real ? "" : host->root, "/sys", addr, attr);
}

static int read_id(const struct xpu_host *host, int fd, const char *addr, const char *attr,
		   uint32_t max, uint32_t *ret, bool required)
{
	int r = read_attr_hex_at(fd, attr, max, ret);

	if (r < 0 && (required || r != -ENOENT))
		warn_attr(host, addr, attr, r);
	return r;
}

/*
 * The nodes of the devices in an FPGA region of the function (<fn>/fpga_region/<region>/<dev>/
 * uevent DEVNAME=): the kernel's FPGA subsystem puts a DFL card's port and management nodes
 * there, one level below where class devices sit.
 */
static int collect_region_nodes(int regionfd, char ***names)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;

	if (opendir_at(regionfd, ".", &d) < 0)
		return 0;
	while ((de = readdir(d))) {
		_cleanup_free_ char *path = NULL, *devname = NULL;

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (asprintf(&path, "%s/uevent", de->d_name) < 0)
			return -ENOMEM;
		if (read_uevent_key_at(dirfd(d), path, "DEVNAME", &devname) < 0 ||
		    !string_is_printable(devname) || strstr(devname, ".."))
			continue;
		if (strv_extend_unique(names, devname) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Walks <fn>/<class>/<name>/uevent and collects DEVNAME= nodes ("dri/renderD128"). */
static int collect_class_nodes(int fnfd, char ***ret_devnames, bool *ret_render, bool *ret_accel)
{
	_cleanup_(closedirp) DIR *d = NULL;
	_cleanup_strv_free_ char **names = NULL;
	struct dirent *de;
	int r;

	r = opendir_at(fnfd, ".", &d);
	if (r < 0)
		return r;
	while ((de = readdir(d))) {
		_cleanup_(closedirp) DIR *cd = NULL;
		struct dirent *ce;

		if (de->d_type != DT_DIR || de->d_name[0] == '.' || streq(de->d_name, "power") ||
		    streq(de->d_name, "msi_irqs") || streq(de->d_name, "link"))
			continue;
		if (opendir_at(dirfd(d), de->d_name, &cd) < 0)
			continue;
		while ((ce = readdir(cd))) {
			_cleanup_free_ char *path = NULL, *devname = NULL;

			if (ce->d_name[0] == '.')
				continue;
			if (streq(de->d_name, "fpga_region")) {
				_cleanup_close_ int rfd = openat(dirfd(cd), ce->d_name,
								 O_RDONLY | O_DIRECTORY | O_CLOEXEC);

				if (rfd >= 0 && collect_region_nodes(rfd, &names) < 0)
					return -ENOMEM;
				continue;
			}
			if (asprintf(&path, "%s/uevent", ce->d_name) < 0)
				return -ENOMEM;
			if (read_uevent_key_at(dirfd(cd), path, "DEVNAME", &devname) < 0)
				continue;
			if (!string_is_printable(devname) || strstr(devname, ".."))
				continue;
			if (strv_extend_unique(&names, devname) < 0)
				return -ENOMEM;
			if (streq(de->d_name, "drm") && strncmp(ce->d_name, "renderD", 7) == 0)
				*ret_render = true;
			if (streq(de->d_name, "accel"))
				*ret_accel = true;
		}
	}
	strv_sort(names);
	*ret_devnames = TAKE_PTR(names);
	return 0;
}

/* What the NVIDIA driver says of one GPU in /proc/driver/nvidia/gpus/<addr>/information. */
struct nvidia_info {
	char *model;
	char *uuid;
	int minor; /* -1 when missing or invalid */
};

static void nvidia_info_done(struct nvidia_info *i)
{
	free(i->model);
	free(i->uuid);
}

/* Reads the file once; fields it lacks stay NULL / -1. Returns 0, -ENOMEM, or -errno. */
static int nvidia_info_read(const struct xpu_host *host, const char *addr, struct nvidia_info *ret)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	struct nvidia_info info = { .minor = -1 };
	char *line, *save = NULL;
	int r;

	if (host->proc_fd < 0)
		return -ENOENT;
	if (asprintf(&path, "driver/nvidia/gpus/%s/information", addr) < 0)
		return -ENOMEM;
	r = read_attr_at(host->proc_fd, path, 0, &text);
	if (r < 0)
		return r;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':'), *v;
		unsigned minor;

		if (!colon)
			continue;
		*colon = '\0';
		v = colon + 1 + strspn(colon + 1, " \t");
		strstrip_trailing(v);
		if (!string_is_printable(v))
			continue;
		if (streq(line, "Model") && !info.model) {
			if (!(info.model = strdup(v)))
				goto oom;
		} else if (streq(line, "GPU UUID") && !info.uuid && strncmp(v, "GPU-", 4) == 0) {
			if (!(info.uuid = strdup(v)))
				goto oom;
		} else if (streq(line, "Device Minor") && safe_atou(v, &minor) >= 0 &&
			   minor <= 254) {
			info.minor = (int)minor;
		}
	}
	*ret = info;
	return 0;
oom:
	nvidia_info_done(&info);
	return -ENOMEM;
}

static int add_dev_node(struct xpu_device *d, const char *devname)
{
	char *path = host_dev_path(devname);

	if (!path)
		return -ENOMEM;
	if (strv_contains(d->device_nodes, path)) {
		free(path);
		return 0;
	}
	return strv_consume(&d->device_nodes, path);
}

/* Optional nodes (nvidia-uvm, kfd) are listed only when the host has them. */
static int add_dev_node_if_present(const struct xpu_host *host, struct xpu_device *d,
				   const char *devname)
{
	if (host->dev_fd >= 0 && !exists_at(host->dev_fd, devname))
		return 0;
	return add_dev_node(d, devname);
}

/*
 * Driver conventions for nodes that sysfs does not list (NVIDIA's, AMD's /dev/kfd). A driver
 * whose nodes cannot be determined leaves the list short; evaluate_health() then says so.
 */
static int driver_nodes(const struct xpu_host *host, struct xpu_device *d,
			const struct nvidia_info *nv)
{
	int r;

	if (streq_ptr(d->driver, "nvidia")) {
		_cleanup_free_ char *node = NULL;

		if (!nv || nv->minor < 0) {
			log_device_full_errno(LOG_WARNING, EINVAL, d->id, d->id,
					      "No valid device minor in /proc/driver/nvidia/gpus/"
					      "%s/information, ignoring.",
					      d->id);
			return 0;
		}
		if (asprintf(&node, "nvidia%d", nv->minor) < 0)
			return -ENOMEM;
		r = add_dev_node(d, node);
		if (r < 0)
			return r;
		r = add_dev_node(d, "nvidiactl");
		if (r < 0)
			return r;
		r = add_dev_node_if_present(host, d, "nvidia-uvm");
		if (r < 0)
			return r;
		return add_dev_node_if_present(host, d, "nvidia-uvm-tools");
	}
	if (streq_ptr(d->driver, "amdgpu"))
		return add_dev_node_if_present(host, d, "kfd");
	return 0;
}

/* Fills vendor-convention fields: names, UUID, environment, default resource. */
static int describe_vendor(const struct xpu_host *host, int fnfd, const struct pci_ident *ident,
			   const struct nvidia_info *nv, struct xpu_device *d)
{
	_cleanup_free_ char *model = NULL;
	const char *vname = pci_vendor_name(ident->vendor_id);
	int r;

	if (vname)
		d->vendor = strdup(vname);
	else if (asprintf(&d->vendor, "0x%04x", ident->vendor_id) < 0)
		d->vendor = NULL; /* asprintf() leaves it undefined */
	if (!d->vendor)
		return -ENOMEM;

	/* The driver's own name for the part beats our table. */
	if (nv) {
		if (nv->model && !(model = strdup(nv->model)))
			return -ENOMEM;
		if (nv->uuid && !(d->uuid = strdup(nv->uuid)))
			return -ENOMEM;
	} else if (streq_ptr(d->driver, "amdgpu")) {
		r = read_attr_at(fnfd, "product_name", 256, &model);
		if (r < 0 && r != -ENOENT)
			warn_attr(host, d->id, "product_name", r);
		if (model && !string_is_printable(model))
			model = mfree(model);
	}
	if (!model) {
		const char *known = pci_model_name(ident->vendor_id, ident->device_id);

		if (known)
			model = strdup(known);
		else if (asprintf(&model, "%s device 0x%04x", vname ?: d->vendor,
				  ident->device_id) < 0)
			model = NULL;
		if (!model)
			return -ENOMEM;
	}
	d->model = TAKE_PTR(model);

	d->resource = pci_default_resource(ident, d->vendor, d->driver, d->model);
	if (!d->resource)
		return -ENOMEM;

	if (ident->vendor_id == 0x10de && d->uuid) {
		if (strv_env_set(&d->env, "NVIDIA_VISIBLE_DEVICES", d->uuid) < 0 ||
		    strv_env_set(&d->env, "CUDA_VISIBLE_DEVICES", d->uuid) < 0)
			return -ENOMEM;
	}
	return 0;
}

static void read_link(const struct xpu_host *host, int fnfd, struct xpu_device *d)
{
	static const struct {
		const char *speed, *width;
		bool max;
	} attrs[] = {
		{ "current_link_speed", "current_link_width", false },
		{ "max_link_speed", "max_link_width", true },
	};

	for (size_t i = 0; i < ELEMENTSOF(attrs); i++) {
		_cleanup_free_ char *s = NULL;
		unsigned mts = 0, width = 0;
		int r;

		r = read_attr_at(fnfd, attrs[i].speed, 64, &s);
		if (r >= 0)
			r = parse_pcie_link_speed(s, &mts);
		if (r < 0 && r != -ENOENT && r != -ENODATA)
			warn_attr(host, d->id, attrs[i].speed, r);

		free(s);
		s = NULL;
		r = read_attr_at(fnfd, attrs[i].width, 64, &s);
		if (r >= 0)
			r = safe_atou(s, &width);
		if (r >= 0 && width > 32)
			r = -ERANGE;
		if (r < 0 && r != -ENOENT)
			warn_attr(host, d->id, attrs[i].width, r);
		if (r < 0)
			width = 0;

		if (attrs[i].max) {
			d->pci.max_link_speed_mts = mts;
			d->pci.max_link_width = width;
		} else {
			d->pci.link_speed_mts = mts;
			d->pci.link_width = width;
		}
	}
	if (d->pci.link_width && d->pci.max_link_width &&
	    d->pci.link_width < d->pci.max_link_width)
		(void)device_set_property(d, "pcie_link_degraded", "true");
}

/* Topology: the root complex and bridge chain above the function, from the bus symlink. */
static int read_topology(const struct xpu_host *host, struct xpu_device *d)
{
	_cleanup_free_ char *chain = NULL;
	char buf[4096], *p, *save = NULL;
	const char *root = NULL;
	ssize_t n;

	n = readlinkat(host->sys_fd, strjoina_path(PCI_DEVICES, d->id), buf, sizeof(buf) - 1);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	for (p = strtok_r(buf, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		char canon[13];

		if (strncmp(p, "pci", 3) == 0 && strchr(p, ':')) {
			root = p;
			continue;
		}
		if (!root || parse_pci_address(p, canon) < 0 || streq(canon, d->id))
			continue;
		if (chain) {
			char *c;

			if (asprintf(&c, "%s,%s", chain, canon) < 0)
				return -ENOMEM;
			free(chain);
			chain = c;
		} else if (!(chain = strdup(canon)))
			return -ENOMEM;
	}
	if (root && device_set_property(d, "pci_root", root) < 0)
		return -ENOMEM;
	if (chain && device_set_property(d, "pci_bridges", chain) < 0)
		return -ENOMEM;
	return 0;
}

/*
 * A bound driver must have given the device at least one node, and every node it lists must
 * exist. Runs on whole devices (after multi-function cards are folded together).
 */
static int check_device_nodes(const struct xpu_host *host, struct xpu_device *d)
{
	if (d->health.state != XPU_HEALTH_HEALTHY)
		return 0;
	if (strv_length(d->device_nodes) == 0)
		return device_set_unhealthy(d, "driver %s is bound but no device node was found",
					    d->driver);
	STRV_FOREACH(n, d->device_nodes)
		if (host->dev_fd >= 0 && !exists_at(host->dev_fd, *n + strlen("/dev/")))
			return device_set_unhealthy(d, "device node %s is missing", *n);
	return 0;
}

/*
 * Health of one function from sysfs: config space answering (a function that fell off the bus
 * reads all ones), a bound driver, no fatal AER errors. Resets d->health first.
 */
static int evaluate_health(const struct xpu_host *host, int fnfd, struct xpu_device *d)
{
	_cleanup_free_ char *aer = NULL;
	unsigned char cfg[4];
	int fd, r;

	free(d->health.reason);
	d->health = (struct xpu_health){ .state = XPU_HEALTH_HEALTHY };

	fd = openat(fnfd, "config", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = pread(fd, cfg, sizeof(cfg), 0);

		safe_close(fd);
		if (n == (ssize_t)sizeof(cfg) && cfg[0] == 0xff && cfg[1] == 0xff && cfg[2] == 0xff &&
		    cfg[3] == 0xff)
			return device_set_fault(d, HEALTH_ACTION_RESET_DEVICE,
						"not responding on the PCIe bus (config space "
						"reads all ones)");
	}
	if (!d->driver)
		return device_set_unhealthy(d, "no kernel driver bound");

	r = read_attr_at(fnfd, "aer_dev_fatal", 0, &aer);
	if (r >= 0) {
		char *line, *save = NULL;

		for (line = strtok_r(aer, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			uint64_t count;
			char *v = strrchr(line, ' ');

			if (strncmp(line, "TOTAL_ERR_FATAL ", 16) == 0 && v &&
			    safe_atou64(v + 1, &count) >= 0 && count > 0)
				return device_set_fault(d, HEALTH_ACTION_RESET_DEVICE,
							"%" PRIu64 " fatal PCIe AER errors", count);
		}
	}
	return 0;
}

static int device_nodes_for(const struct xpu_host *host, struct xpu_device *d, char **devnames,
			    const struct nvidia_info *nv)
{
	int r;

	STRV_FOREACH(n, devnames) {
		r = add_dev_node(d, *n);
		if (r < 0)
			return r;
	}
	return driver_nodes(host, d, nv);
}

/* The ids and driver the kernel reports in a function's uevent file, all in one read. */
struct fn_uevent {
	uint32_t vendor_id, device_id, class_code;
	uint32_t subsystem_vendor_id, subsystem_device_id;
	bool has_subsystem;
	char *driver; /* NULL: no driver bound */
};

static int parse_id_pair(const char *s, uint32_t *ret_a, uint32_t *ret_b)
{
	char a[5], b[5];

	if (strlen(s) != 9 || s[4] != ':')
		return -EINVAL;
	memcpy(a, s, 4);
	a[4] = '\0';
	memcpy(b, s + 5, 5);
	if (parse_hex_id(a, 0xffff, ret_a) < 0 || parse_hex_id(b, 0xffff, ret_b) < 0)
		return -EINVAL;
	return 0;
}

static void fn_uevent_done(struct fn_uevent *u)
{
	free(u->driver);
}

/*
 * Reads <fn>/uevent: PCI_ID, PCI_CLASS, PCI_SUBSYS_ID and DRIVER. Returns 0 when PCI_ID and
 * PCI_CLASS are present and valid, -ENODATA when the file lacks them (the caller then reads
 * the single-value attributes), -ENOMEM, or -errno.
 */
static int read_fn_uevent(int fnfd, struct fn_uevent *ret)
{
	_cleanup_free_ char *text = NULL;
	struct fn_uevent u = {};
	bool have_id = false, have_class = false;
	char *line, *save = NULL;
	int r;

	r = read_attr_at(fnfd, "uevent", 0, &text);
	if (r < 0)
		return r;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "PCI_ID=", 7) == 0)
			have_id = parse_id_pair(line + 7, &u.vendor_id, &u.device_id) >= 0;
		else if (strncmp(line, "PCI_CLASS=", 10) == 0)
			have_class = parse_hex_id(line + 10, 0xffffff, &u.class_code) >= 0;
		else if (strncmp(line, "PCI_SUBSYS_ID=", 14) == 0)
			u.has_subsystem = parse_id_pair(line + 14, &u.subsystem_vendor_id,
							&u.subsystem_device_id) >= 0;
		else if (strncmp(line, "DRIVER=", 7) == 0 && string_is_printable(line + 7) &&
			 !strchr(line + 7, '/') && !u.driver && !(u.driver = strdup(line + 7)))
			return -ENOMEM;
	}
	if (!have_id || !have_class) {
		free(u.driver);
		return -ENODATA;
	}
	*ret = u;
	return 0;
}

/*
 * Describes one PCI function. Returns 1 and a device when it is an accelerator, 0 when it is
 * not (or vanished mid-scan, or is unreadable: logged), -ENOMEM.
 */
static int scan_function(const struct xpu_host *host, int busfd, const char *name,
			 struct xpu_device **ret)
{
	_cleanup_(device_freep) struct xpu_device *d = NULL;
	_cleanup_(nvidia_info_done) struct nvidia_info nv = { .minor = -1 };
	_cleanup_strv_free_ char **devnames = NULL;
	_cleanup_close_ int fnfd = -EBADF;
	_cleanup_(fn_uevent_done) struct fn_uevent ue = {};
	struct pci_ident ident = {};
	bool has_nv = false, from_uevent;
	char addr[13];
	uint32_t v;
	int kind, r;

	if (parse_pci_address(name, addr) < 0)
		return 0;
	fnfd = openat(busfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fnfd < 0) {
		/* Hot-removed between readdir() and here: not an error. */
		log_debug("PCI function %s vanished during the scan, skipping.", name);
		return 0;
	}
	/*
	 * The uevent file carries ids, class and driver in one read; the single-value files are
	 * the fallback (and name the culprit when something is malformed).
	 */
	r = read_fn_uevent(fnfd, &ue);
	if (r == -ENOMEM)
		return r;
	from_uevent = r >= 0;
	if (from_uevent) {
		ident.vendor_id = (uint16_t)ue.vendor_id;
		ident.device_id = (uint16_t)ue.device_id;
		ident.class_code = ue.class_code;
	} else {
		if (r != -ENOENT && r != -ENODATA)
			warn_attr(host, addr, "uevent", r);
		if (read_id(host, fnfd, addr, "vendor", 0xffff, &v, true) < 0)
			return 0;
		ident.vendor_id = (uint16_t)v;
		if (read_id(host, fnfd, addr, "device", 0xffff, &v, true) < 0)
			return 0;
		ident.device_id = (uint16_t)v;
		if (read_id(host, fnfd, addr, "class", 0xffffff, &ident.class_code, true) < 0)
			return 0;
	}

	/*
	 * Most functions on a big node are NICs, NVMe drives and bridges: classify them from the
	 * ids alone. Only where a render or accel node could change the answer (see
	 * pci_classify()) is the function's directory walked first; accelerators need their nodes
	 * anyway.
	 */
	kind = pci_classify(&ident);
	if (kind < 0) {
		struct pci_ident with_nodes = ident;

		with_nodes.has_render_node = with_nodes.has_accel_node = true;
		if (pci_classify(&with_nodes) < 0)
			return 0;
	}
	r = collect_class_nodes(fnfd, &devnames, &ident.has_render_node, &ident.has_accel_node);
	if (r == -ENOMEM)
		return r;
	kind = pci_classify(&ident);
	if (kind < 0)
		return 0;

	d = device_new();
	if (!d || !(d->id = strdup(addr)))
		return -ENOMEM;
	d->kind = kind;
	d->has_pci = true;
	memcpy(d->pci.address, addr, sizeof(addr));
	d->pci.vendor_id = ident.vendor_id;
	d->pci.device_id = ident.device_id;
	d->pci.class_code = ident.class_code;
	if (ue.has_subsystem) {
		d->pci.subsystem_vendor_id = (uint16_t)ue.subsystem_vendor_id;
		d->pci.subsystem_device_id = (uint16_t)ue.subsystem_device_id;
	} else {
		if (read_id(host, fnfd, addr, "subsystem_vendor", 0xffff, &v, false) >= 0)
			d->pci.subsystem_vendor_id = (uint16_t)v;
		if (read_id(host, fnfd, addr, "subsystem_device", 0xffff, &v, false) >= 0)
			d->pci.subsystem_device_id = (uint16_t)v;
	}
	if (read_id(host, fnfd, addr, "revision", 0xff, &v, false) >= 0)
		d->pci.revision = (uint8_t)v;

	if (from_uevent) {
		d->driver = TAKE_PTR(ue.driver);
	} else {
		r = readlink_basename_at(fnfd, "driver", &d->driver);
		if (r == -ENOMEM)
			return r;
	}

	r = read_attr_int_at(fnfd, "numa_node", &d->numa_node);
	if (r < 0) {
		if (r != -ENOENT)
			warn_attr(host, addr, "numa_node", r);
		d->numa_node = -1;
	} else if (d->numa_node < -1 || d->numa_node > 4095) {
		warn_attr(host, addr, "numa_node", -ERANGE);
		d->numa_node = -1;
	}

	r = pci_read_cpu_list(fnfd, "local_cpulist", &d->cpu_list);
	if (r < 0 && r != -ENOENT)
		warn_attr(host, addr, "local_cpulist", r);

	read_link(host, fnfd, d);

	if (streq_ptr(d->driver, "amdgpu")) {
		r = read_attr_u64_at(fnfd, "mem_info_vram_total", &d->memory_bytes);
		if (r < 0 && r != -ENOENT)
			warn_attr(host, addr, "mem_info_vram_total", r);
		if (r < 0)
			d->memory_bytes = 0;
	}

	if (streq_ptr(d->driver, "nvidia")) {
		r = nvidia_info_read(host, addr, &nv);
		if (r == -ENOMEM)
			return r;
		has_nv = r >= 0;
	}
	r = describe_vendor(host, fnfd, &ident, has_nv ? &nv : NULL, d);
	if (r < 0)
		return r;
	r = read_topology(host, d);
	if (r < 0)
		return r;
	r = device_nodes_for(host, d, devnames, has_nv ? &nv : NULL);
	if (r < 0)
		return r;
	r = evaluate_health(host, fnfd, d);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(d);
	return 1;
}

/*
 * Multi-function FPGA cards (an Alveo's management and user functions) are one schedulable
 * device: keep the lowest function of each slot, give it the others' device nodes and list
 * them in the "pci_functions" property.
 */
static int fold_fpga_functions(struct device_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct xpu_device *a = l->items[i];

		if (!a || a->kind != XPU_KIND_FPGA)
			continue;
		for (size_t j = i + 1; j < l->n; j++) {
			struct xpu_device *b = l->items[j];
			_cleanup_free_ char *funcs = NULL;
			const char *prev;

			/* Same domain:bus:device, differing function ("0000:3b:00.") */
			if (!b || b->kind != XPU_KIND_FPGA || strncmp(a->id, b->id, 11) != 0)
				continue;
			STRV_FOREACH(n, b->device_nodes)
				if (strv_extend_unique(&a->device_nodes, *n) < 0)
					return -ENOMEM;
			if (!a->driver && b->driver && device_set_string(&a->driver, b->driver) < 0)
				return -ENOMEM;
			if (b->health.state == XPU_HEALTH_UNHEALTHY &&
			    device_set_unhealthy(a, "function %s: %s", b->id, b->health.reason) < 0)
				return -ENOMEM;
			prev = device_get_property(a, "pci_functions");
			if (asprintf(&funcs, "%s,%s", prev ?: a->id, b->id) < 0 ||
			    device_set_property(a, "pci_functions", funcs) < 0)
				return -ENOMEM;
			l->items[j] = device_free(b);
		}
	}
	/* Compact. */
	size_t k = 0;

	for (size_t i = 0; i < l->n; i++)
		if (l->items[i])
			l->items[k++] = l->items[i];
	l->n = k;
	return 0;
}

int pci_probe_bus(struct xpu_backend *b, char **ret_reason)
{
	if (!exists_at(b->host->sys_fd, PCI_DEVICES)) {
		*ret_reason = strdup("no PCI bus in sysfs (/sys/" PCI_DEVICES " is missing)");
		return -ENOENT;
	}
	return 0;
}

int pci_scan_bus(const struct xpu_host *host, pci_scan_fn scan, struct device_list *list)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int r;

	r = opendir_at(host->sys_fd, PCI_DEVICES, &d);
	if (r < 0)
		return r;
	while ((de = readdir(d))) {
		struct xpu_device *dev = NULL;

		if (de->d_name[0] == '.')
			continue;
		r = scan(host, dirfd(d), de->d_name, &dev);
		if (r < 0)
			return r;
		if (r > 0) {
			r = device_list_push(list, dev);
			if (r < 0)
				return r;
		}
	}
	device_list_sort(list);
	return 0;
}

static int pci_enumerate(struct xpu_backend *b, struct device_list *list)
{
	int r;

	r = pci_scan_bus(b->host, scan_function, list);
	if (r < 0)
		return r;
	r = fold_fpga_functions(list);
	if (r < 0)
		return r;
	for (size_t i = 0; i < list->n; i++) {
		r = check_device_nodes(b->host, list->items[i]);
		if (r < 0)
			return r;
	}
	return 0; /* accel devices without a PCI parent: the accel backend's */
}

int pci_open_function(const struct xpu_host *host, const char *id, int *ret_fd, char **ret_driver)
{
	_cleanup_close_ int fnfd = openat(host->sys_fd, strjoina_path(PCI_DEVICES, id),
					  O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (fnfd < 0)
		return errno == ENOENT ? -ENODEV : -errno;
	*ret_driver = NULL;
	r = readlink_basename_at(fnfd, "driver", ret_driver);
	if (r == -ENOMEM)
		return r;
	*ret_fd = TAKE_FD(fnfd);
	return 0;
}

static int pci_refresh(struct xpu_backend *b, struct xpu_device *d)
{
	_cleanup_close_ int fnfd = -EBADF;
	_cleanup_free_ char *driver = NULL;
	int r;

	if (!d->has_pci)
		return 0;
	r = pci_open_function(b->host, d->id, &fnfd, &driver);
	if (r < 0)
		return r;
	/* A driver bound or unbound changes the device nodes and maybe the kind: that is a
	 * rescan's job, not a health refresh's. */
	if (!streq_ptr(driver, d->driver) && !device_get_property(d, "pci_functions"))
		return -ESTALE;
	r = evaluate_health(b->host, fnfd, d);
	if (r < 0)
		return r;
	return check_device_nodes(b->host, d);
}

/* What the reset thread owns: its own handle on the function's directory. */
struct reset_write {
	int fnfd;
};

static int reset_write_run(void *data)
{
	struct reset_write *w = data;

	return write_attr_at(w->fnfd, "reset", "1");
}

static void reset_write_free(void *data)
{
	struct reset_write *w = data;

	safe_close(w->fnfd);
	free(w);
}

int pci_read_cpu_list(int dirfd, const char *path, char **ret)
{
	_cleanup_free_ char *list = NULL;
	unsigned n;
	int r;

	r = read_attr_at(dirfd, path, 0, &list);
	if (r < 0)
		return r;
	r = parse_cpu_list(list, &n);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(list);
	return 0;
}

int pci_reset_function(const struct xpu_host *host, const char *address, char **ret_reason)
{
	_cleanup_close_ int fnfd = -EBADF;
	struct reset_write *w;
	int r;

	fnfd = openat(host->sys_fd, strjoina_path(PCI_DEVICES, address),
		      O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fnfd < 0) {
		r = errno == ENOENT ? -ENODEV : -errno;
		if (asprintf(ret_reason, "PCI function %s is not in sysfs: %s", address,
			     strerror(errno)) < 0)
			return -ENOMEM;
		return r;
	}
	/* The kernel offers the file only for functions it has a reset method for. */
	if (!exists_at(fnfd, "reset")) {
		if (asprintf(ret_reason, "the kernel has no reset method for PCI function %s (no "
					 "/sys/" PCI_DEVICES "/%s/reset)",
			     address, address) < 0)
			return -ENOMEM;
		return -EOPNOTSUPP;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fnfd = TAKE_FD(fnfd);
	log_debug("Resetting PCI function %s through sysfs.", address);
	r = bounded_call(reset_write_run, w, reset_write_free, PCI_RESET_TIMEOUT_USEC);
	if (r == -ETIMEDOUT) {
		if (asprintf(ret_reason, "the kernel did not finish resetting %s within %llu s",
			     address, PCI_RESET_TIMEOUT_USEC / 1000000ULL) < 0)
			return -ENOMEM;
	} else if (r < 0) {
		if (asprintf(ret_reason, "writing /sys/" PCI_DEVICES "/%s/reset failed: %s",
			     address, strerror(-r)) < 0)
			return -ENOMEM;
	}
	return r;
}

static int pci_reset(struct xpu_backend *b, const struct xpu_device *d, char **ret_reason)
{
	if (!d->has_pci) {
		if (asprintf(ret_reason, "%s is not a PCI function", d->id) < 0)
			return -ENOMEM;
		return -EOPNOTSUPP;
	}
	/* A card folded from several functions (an FPGA's) is reset through its first. */
	return pci_reset_function(b->host, d->pci.address, ret_reason);
}

const struct xpu_backend_ops pci_backend_ops = {
	.name = "pci",
	.priority = 0,
	.probe = pci_probe_bus,
	.enumerate = pci_enumerate,
	.refresh = pci_refresh,
	.reset = pci_reset,
};
