/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the DRM backend's files share (drm.c: listing, the generic record, health, events;
 * drm-libdrm.c: the real host's listing through libdrm; drm-amdgpu.c, drm-intel.c: the vendor
 * parts). Private to the backend.
 *
 * A DRM device is listed once, as a struct drm_card, by one of two listers behind one seam: on
 * the real host libdrm's drmGetDevices2() (what every DRM user sees), under a fake host root
 * (tests, --simulate) the root's sysfs, /sys/class/drm, read the way libdrm reads the real one.
 * Everything else (attributes, the KFD topology, health) is read from the host root's sysfs in
 * both cases.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "backends/offered-modes.h"

/* One DRM device: a PCI function (a GPU, or partition 0 of one) or a platform device (the
 * other compute partitions of an amdgpu GPU), with its primary and render nodes. */
struct drm_card {
	char address[13]; /* canonical PCI address; "" for a platform device */
	char *driver;	  /* the DRM driver's name ("amdgpu", "i915", "xe", "virtio_gpu") */
	char *card;	  /* "dri/card1", below /dev; NULL when it has none */
	char *render;	  /* "dri/renderD128"; NULL when it has none */
	int card_minor;	  /* -1 when it has none */
	int render_minor; /* -1 when it has none */
};

struct drm_card_list {
	struct drm_card *items;
	size_t n;
};

void drm_card_list_done(struct drm_card_list *l);
/* Appends a copy of @c (its strings duplicated). 0 or -ENOMEM. */
int drm_card_list_add(struct drm_card_list *l, const struct drm_card *c);
/* The card whose render node has minor @minor, or NULL. */
const struct drm_card *drm_card_by_render_minor(const struct drm_card_list *l, int minor);

/*
 * The listers. drm_list_sysfs() reads <root>/sys/class/drm: every cardN and renderDN, grouped
 * by the device their "device" link names, the driver from that device's "driver" link; a node
 * that cannot be read is skipped with a warning naming it. drm_list_libdrm() asks libdrm
 * (drmGetDevices2(), drmGetVersion() on the node for the driver's name) and is used only on
 * the real host. Both: 0 with the list (possibly empty), -ENOENT when there is no DRM at all
 * (no class directory; libdrm found no device), -errno. Warnings are logged; nothing else.
 */
int drm_list_sysfs(const struct xpu_host *host, struct drm_card_list *ret);
int drm_list_libdrm(struct drm_card_list *ret);

/*
 * A vendor's part (drm-amdgpu.c, drm-intel.c). drm.c makes the device of each PCI function
 * whose DRM driver is one of @drivers: id, kind GPU, PCI ids, driver, vendor, the model from
 * the PCI id table, its card and render nodes; then calls describe with the function's sysfs
 * directory open (@fnfd) to add what the vendor knows (memory, model, partitions, environment,
 * resource, properties). describe may push more devices to @list (none do yet). A file it
 * cannot read is a warning naming the device and the file, and a partial record: describe
 * fails only with -ENOMEM. health re-reads the vendor's health signals (RAS counters) into
 * d->health, which drm.c has reset to healthy; 0 or -ENOMEM. Both may be NULL.
 */
struct drm_gpu_ctx;

struct drm_vendor {
	const char *name;
	const char *const *drivers; /* NULL-terminated */
	int (*describe)(struct drm_gpu_ctx *ctx, const struct drm_card *c, int fnfd,
			struct xpu_device *d, struct device_list *list);
	int (*health)(struct drm_gpu_ctx *ctx, int fnfd, struct xpu_device *d);
	/* Reads the device's samples (backends/samples.h: busy time, RAS counts) into @d's
	 * properties; called only while the metrics want them. A file it cannot read is no
	 * sample. 0 or -ENOMEM. May be NULL. */
	int (*sample)(int fnfd, struct xpu_device *d);
	/* Makes @d's partitioning what @o declares; the backend's apply_offer (backend.h). */
	int (*apply_offer)(struct drm_gpu_ctx *ctx, const struct xpu_device *d, const struct offer *o,
			   char **ret_error);
	/* Frees what the vendor part kept in @ctx during one enumeration or refresh. */
	void (*done)(struct drm_gpu_ctx *ctx);
};

extern const struct drm_vendor drm_amdgpu_vendor;
extern const struct drm_vendor drm_intel_vendor;

/* What a vendor part may ask of drm.c during one enumeration. */
struct drm_gpu_ctx {
	const struct xpu_host *host;
	const struct config *config;
	/* every DRM device of the host, for the partitions' platform devices */
	const struct drm_card_list *cards;
	/* drm-amdgpu.c's reading of the KFD topology, made at its first use */
	struct amdgpu_kfd *kfd;
	/* drm.c's, kept from one enumeration to the next: the GPUs drm-intel.c offers tile by
	 * tile (offered-modes.h); NULL in a refresh */
	struct offered_modes *intel_tiled;
};

/* Adds "/dev/<devname>" to @d's device nodes once. 0 or -ENOMEM. */
int drm_add_node(struct xpu_device *d, const char *devname);
/* Logs that @file of device @id could not be read (-errno @r) as a warning: the record goes on
 * without what the file says. */
void drm_warn_file(const char *id, const char *file, int r);

/*
 * libdrm_amdgpu (drm-amdgpu-lib.c), loaded with dlopen at the first use: what the amdgpu driver
 * answers through a render node that sysfs does not say (or says less exactly).
 */
struct drm_amdgpu_answer {
	uint64_t vram_total;	 /* bytes; 0 when not answered */
	uint64_t vram_used;
	uint64_t vis_vram_total; /* CPU-visible VRAM */
	char *marketing_name;	 /* amdgpu_get_marketing_name(); NULL when none */
};

void drm_amdgpu_answer_done(struct drm_amdgpu_answer *i);
/*
 * Opens the render node @devname ("dri/renderD128") below the host's /dev and asks
 * libdrm_amdgpu (amdgpu_device_initialize, amdgpu_query_info(AMDGPU_INFO_MEMORY) or
 * amdgpu_query_heap_info, amdgpu_get_marketing_name). The library: XPU_AMDGPU_LIBRARY when set
 * (tests), else libdrm_amdgpu.so.1 on the real host; a fake host root without the variable
 * uses none. 0 and *ret (the caller owns it: drm_amdgpu_answer_done()); -ENOENT when there is no
 * library (or none for a fake root), -ENXIO when it lacks a function we need; -EACCES,
 * -ENOENT... when the node cannot be opened; -EIO when the driver refused the device
 * (amdgpu_device_initialize); -ENOMEM; each error with a malloc'd one-line reason in
 * *ret_reason naming the node or library (NULL when out of memory). A device that opens but
 * answers no memory query is a partial answer, not an error: 0 with the VRAM sizes 0 and the
 * marketing name as the library knows it. Logs at debug only. Thread-safe: the library is
 * loaded at the first call, once, and its outcome (a missing library too) is kept for the life
 * of the process.
 */
int drm_amdgpu_query(const struct xpu_host *host, const char *devname,
		     struct drm_amdgpu_answer *ret, char **ret_reason);

/*
 * The amdgpu part's parsers (drm-amdgpu-parse.c): pure, for the fuzzer.
 *
 * One GPU node of the KFD topology (a GPU, or one compute partition of one), as its
 * "properties" file ("key value" lines, decimal) says.
 */
struct kfd_node {
	unsigned number;     /* its directory's name */
	unsigned rocm_index; /* its rank among the GPU nodes: ROCm's device index */
	uint32_t domain, location_id;
	int render_minor; /* -1: not said */
	uint64_t unique_id, hive_id, local_mem;
	unsigned gfx_target_version, simd_count, simd_per_cu, num_xcc;
};

/* Parses @text (modified) into *ret: 1 for a GPU node, 0 for a CPU node (no SIMDs, *ret
 * untouched); a line it cannot read is skipped. -ERANGE for a value too large for its field. */
int amdgpu_kfd_parse(char *text, struct kfd_node *ret);
/* The uncorrectable count of a RAS counter file ("ue: N\nce: M\n"). 0, or -EINVAL. */
int amdgpu_ras_parse(const char *text, uint64_t *ret_ue);
/* Both counts of a RAS counter file: its "ue: N" line, then its "ce: M" line. 0, or -EINVAL,
 * -ERANGE. */
int amdgpu_ras_counts(const char *text, uint64_t *ret_ue, uint64_t *ret_ce);
