/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The generic PCI backend's pure parts, exposed for unit tests: which PCI functions are
 * accelerators, and the vendor conventions (names, resource names) it applies to them.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "shared/host.h"
#include "xpu/device.h"

struct pci_ident {
	uint16_t vendor_id;
	uint16_t device_id;
	uint32_t class_code;
	bool has_render_node; /* a DRM render node (drm/renderD*) hangs off the function */
	bool has_accel_node;  /* a DRM accel node (accel/accel*) hangs off the function */
};

/*
 * Classifies one PCI function. Returns the kind, or -ENODEV when the function is not an
 * accelerator (NICs, NVMe, bridges, a BMC's VGA, NVSwitches, HD-audio functions of GPUs).
 * The rules, in order, are documented in docs/architecture.md.
 */
int pci_classify(const struct pci_ident *id);

/* Short lower-case vendor name ("nvidia"), or NULL for vendors without one. */
const char *pci_vendor_name(uint16_t vendor_id);
/* Marketing name of a known accelerator, or NULL. */
const char *pci_model_name(uint16_t vendor_id, uint16_t device_id);
/*
 * The resource name the whole device is advertised under by default, following each vendor's
 * own device plugin ("nvidia.com/gpu", "amd.com/gpu", "habana.ai/gaudi", ...), or
 * "xpu.dev/<vendor>-<model-slug>" when the vendor has no convention. Caller frees.
 */
char *pci_default_resource(const struct pci_ident *id, const char *vendor, const char *driver,
			   const char *model);

struct xpu_backend;
struct device_list;
struct xpu_device;

/* The probe of the backends that read <sysfs>/bus/pci/devices: available when it exists. */
int pci_probe_bus(struct xpu_backend *b, char **ret_reason);
/*
 * Describes one PCI function, @name in the directory @busfd: 1 and *ret when it is one of the
 * caller's devices, 0 when not (or unreadable: the caller logs), -errno to stop the scan.
 */
typedef int (*pci_scan_fn)(const struct xpu_host *host, int busfd, const char *name,
			   struct xpu_device **ret);
/* Calls @scan on every function of <sysfs>/bus/pci/devices, pushing what it describes onto
 * @list, which it sorts. 0 or -errno. */
int pci_scan_bus(const struct xpu_host *host, pci_scan_fn scan, struct device_list *list);
/* Opens PCI function @id's sysfs directory (*ret_fd) and reads its bound driver (*ret_driver,
 * NULL when none), for a health refresh. 0, -ENODEV when the function is gone, -errno. */
int pci_open_function(const struct xpu_host *host, const char *id, int *ret_fd, char **ret_driver);

/*
 * Resets PCI function @address of @host through sysfs ("1" to <sysfs>/bus/pci/devices/ADDR/reset:
 * the kernel picks the method, a function-level reset first), waiting for at most 10 s. Shared by
 * the backends whose devices are plain PCI functions underneath (nvidia-apply.c). 0;
 * -EOPNOTSUPP when the kernel offers no reset for the function; -ENODEV when it is not in sysfs;
 * -ETIMEDOUT; the kernel's -errno for the write; each with a malloc'd reason in *ret_reason. Logs
 * at debug only.
 */
/*
 * A function's local_cpulist at @path below @dirfd, checked as a CPU list ("0-3,8"). 0, -ENOENT,
 * -EINVAL (not a CPU list), another -errno. Does not log.
 */
int pci_read_cpu_list(int dirfd, const char *path, char **ret);

int pci_reset_function(const struct xpu_host *host, const char *address, char **ret_reason);
