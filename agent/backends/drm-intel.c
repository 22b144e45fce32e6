// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DRM backend's Intel part (i915, xe): the model, local memory and tiles of an Intel GPU as
 * its driver shows them in sysfs, and the resource names of Intel's GPU device plugin,
 * gpu.intel.com/i915 and gpu.intel.com/xe, by the driver bound.
 *
 * Tiles: xe makes a directory tile<K> on the PCI function for each tile, with the tile's VRAM
 * in physical_vram_size_bytes (discrete GPUs only); i915 has a gt/gt<K> directory on the card
 * for each tile, and (the out-of-tree i915 of Intel's data-center packages only) the local
 * memory of all tiles in the card's lmem_total_bytes. An integrated GPU has neither: its memory
 * is the host's, reported as unknown.
 *
 * A GPU of several tiles is offered whole by default, as Intel's plugin offers it (no
 * environment: the workload sees all of the GPU). Under the policy's "intel-tiles: tiles"
 * (backends/intel-rules.c) each tile is a slice of its own: the GPU's card and render node,
 * the tile's memory, and ZE_AFFINITY_MASK=0.<tile> with ZE_FLAT_DEVICE_HIERARCHY=COMPOSITE,
 * which makes Level Zero show the container (where this GPU is device 0) that tile only. The
 * mode changes nothing on the GPU: apply_offer records it for the enumerations that follow
 * (drm_gpu_ctx.intel_tiled), which report the tiles as partitions. It does not outlive xpud: after
 * a restart the policy asks for it again and it is recorded again.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/drm-internal.h"
#include "backends/offered-modes.h"
#include "backends/pci.h"
#include "backends/vendor-rules.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/strv.h"

#define TILES_MAX 16

/* The tiles of the multi-tile models (Intel's resource driver's table), to tell a tile that
 * sysfs lacks from a GPU that has one. */
static const struct {
	uint16_t device_id;
	unsigned tiles;
} model_tiles[] = {
	{ 0x0bd0, 2 }, { 0x0bd5, 2 }, { 0x0bd6, 2 }, { 0x0b69, 2 },
	{ 0x0bd9, 1 }, { 0x0bda, 1 }, { 0x0bdb, 1 },
};

struct intel_tiles {
	unsigned n;		  /* tiles sysfs shows (0: it says nothing of tiles) */
	uint64_t vram[TILES_MAX]; /* each tile's memory; 0: unknown */
	bool missing[TILES_MAX];  /* below n, without its directory */
};

/* The directories "<prefix><K>" below @dirfd's @path as tiles 0..n-1 of @t; a gap is a missing
 * tile. 0, or -ENOMEM; a directory that cannot be read says nothing of tiles. */
static int scan_tiles(int dirfd, const char *path, const char *prefix, struct intel_tiles *t)
{
	_cleanup_(closedirp) DIR *dir = NULL;
	bool seen[TILES_MAX] = {};
	size_t len = strlen(prefix);
	struct dirent *de;
	int r;

	r = opendir_at(dirfd, path, &dir);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return 0;
	while ((de = readdir(dir))) {
		unsigned k;

		if (strncmp(de->d_name, prefix, len) != 0 || safe_atou(de->d_name + len, &k) < 0 ||
		    k >= TILES_MAX)
			continue;
		seen[k] = true;
		t->n = MAX(t->n, k + 1);
	}
	for (unsigned k = 0; k < t->n; k++)
		t->missing[k] = !seen[k];
	return 0;
}

/* xe: tile<K>/physical_vram_size_bytes on the function. */
static int xe_tiles(int fnfd, struct xpu_device *d, struct intel_tiles *t)
{
	int r = scan_tiles(fnfd, ".", "tile", t);

	for (unsigned k = 0; r >= 0 && k < t->n; k++) {
		char path[64];

		if (t->missing[k])
			continue;
		snprintf(path, sizeof(path), "tile%u/physical_vram_size_bytes", k);
		r = read_attr_u64_at(fnfd, path, &t->vram[k]);
		if (r == -ENOMEM)
			return r;
		/* an integrated GPU's tile has no VRAM (and no file) */
		if (r < 0 && (r != -ENOENT || t->n > 1))
			drm_warn_file(d->id, path, r);
		if (r < 0)
			t->vram[k] = 0;
		r = 0;
	}
	return r;
}

/* i915: gt/gt<K> on the card, the local memory of all of them in its lmem_total_bytes. */
static int i915_tiles(const struct drm_card *c, int fnfd, struct xpu_device *d,
		      struct intel_tiles *t)
{
	_cleanup_free_ char *gt = NULL, *lmem = NULL;
	const char *card = c->card ? strrchr(c->card, '/') : NULL;
	uint64_t total = 0;
	int r;

	if (!card)
		return 0;
	if (asprintf(&gt, "drm/%s/gt", card + 1) < 0 ||
	    asprintf(&lmem, "drm/%s/lmem_total_bytes", card + 1) < 0)
		return -ENOMEM;
	r = scan_tiles(fnfd, gt, "gt", t);
	if (r < 0)
		return r;
	r = read_attr_u64_at(fnfd, lmem, &total);
	if (r == -ENOMEM)
		return r;
	if (r < 0 && r != -ENOENT)
		drm_warn_file(d->id, lmem + 4, r);
	if (r < 0 || total == 0)
		return 0;
	/* one local memory region per tile, all of one size */
	t->n = MAX(t->n, 1u);
	for (unsigned k = 0; k < t->n; k++)
		t->vram[k] = total / t->n;
	return 0;
}

/* Tile @k of @d as a slice: the GPU's nodes (which the core adds), the tile's memory, and
 * Level Zero's selection of it. */
static int add_tile(struct xpu_device *d, const struct intel_tiles *t, unsigned k)
{
	_cleanup_(slice_freep) struct xpu_slice *s = calloc(1, sizeof(*s));
	char mask[32];

	if (!s)
		return -ENOMEM;
	if (asprintf(&s->id, "%s/tile-%u", d->id, k) < 0) {
		s->id = NULL;
		return -ENOMEM;
	}
	if (!(s->device_id = strdup(d->id)) || !(s->resource = strdup(d->resource)) ||
	    !(s->profile = strdup("tiles")))
		return -ENOMEM;
	s->memory_bytes = t->vram[k];
	s->compute_fraction = 1.0 / t->n;
	s->health.state = XPU_HEALTH_HEALTHY;
	snprintf(mask, sizeof(mask), "0.%u", k);
	if (strv_env_set(&s->env, "ZE_FLAT_DEVICE_HIERARCHY", "COMPOSITE") < 0 ||
	    strv_env_set(&s->env, "ZE_AFFINITY_MASK", mask) < 0)
		return -ENOMEM;
	return device_add_partition(d, TAKE_PTR(s));
}

/* The tiles' properties and, for several, the profiles of the two modes and (in "tiles") the
 * tiles as partitions. */
static int describe_tiles(struct drm_gpu_ctx *ctx, struct xpu_device *d, const struct intel_tiles *t)
{
	struct xpu_partition_profile whole = { .name = (char *)"whole", .total = 1, .free = 1,
					       .compute_fraction = 1.0 };
	struct xpu_partition_profile tiles = { .name = (char *)"tiles" };
	bool complete = t->n > 0;
	char key[48], buf[32];
	int r;

	snprintf(buf, sizeof(buf), "%u", t->n ?: 1);
	r = device_set_property(d, "tiles", buf);
	for (unsigned k = 0; r >= 0 && k < t->n; k++) {
		complete = complete && t->vram[k];
		if (!t->vram[k])
			continue;
		snprintf(key, sizeof(key), "tile%u_memory_bytes", k);
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)t->vram[k]);
		r = device_set_property(d, key, buf);
		d->memory_bytes += t->vram[k];
	}
	if (r < 0)
		return r;
	if (!complete)
		d->memory_bytes = 0; /* a tile's is unknown: so is the sum */
	if (t->n < 2)
		return 0;
	for (unsigned k = 0; k < t->n; k++)
		if (t->missing[k])
			return 0; /* offered whole: a tile sysfs does not show is no slice */
	whole.memory_bytes = d->memory_bytes;
	tiles.total = tiles.free = t->n;
	tiles.memory_bytes = t->vram[0];
	tiles.compute_fraction = 1.0 / t->n;
	if (device_add_profile(d, &whole) < 0 || device_add_profile(d, &tiles) < 0)
		return -ENOMEM;
	d->partition_capable = true;
	if (!offered_modes_get(ctx->intel_tiled, d->id))
		return 0;
	for (unsigned k = 0; k < t->n; k++) {
		r = add_tile(d, t, k);
		if (r < 0)
			return r;
	}
	return 0;
}

static int intel_describe(struct drm_gpu_ctx *ctx, const struct drm_card *c, int fnfd,
			  struct xpu_device *d, struct device_list *list)
{
	struct intel_tiles t = {};
	bool xe = streq_ptr(c->driver, "xe");
	const char *model = pci_model_name(d->pci.vendor_id, d->pci.device_id);
	int r;

	(void)list;
	if (!(d->resource = strdup(xe ? "gpu.intel.com/xe" : "gpu.intel.com/i915")))
		return -ENOMEM;
	if (!d->model && model && !(d->model = strdup(model)))
		return -ENOMEM;
	r = xe ? xe_tiles(fnfd, d, &t) : i915_tiles(c, fnfd, d, &t);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ELEMENTSOF(model_tiles); i++) {
		if (model_tiles[i].device_id != d->pci.device_id || t.n == 0 ||
		    t.n >= model_tiles[i].tiles)
			continue;
		/* a tile the model has and sysfs lacks */
		for (unsigned k = t.n; k < model_tiles[i].tiles; k++)
			t.missing[k] = true;
		t.n = model_tiles[i].tiles;
	}
	for (unsigned k = 0; k < t.n; k++)
		if (t.missing[k])
			log_warning("%s: %s has %u tiles, sysfs shows no %s%u; offering the GPU whole.",
				    d->id, d->model ?: "this GPU", t.n, xe ? "tile" : "gt/gt", k);
	return describe_tiles(ctx, d, &t);
}

static int intel_apply_offer(struct drm_gpu_ctx *ctx, const struct xpu_device *d,
			     const struct offer *o, char **ret_error)
{
	const char *mode;

	if (o->kind != OFFER_PARTITIONS || o->scheme != &intel_tiles_scheme || !o->layout ||
	    !o->layout[0])
		return -EOPNOTSUPP;
	mode = o->layout[0];
	if (!streq(mode, "whole") && !streq(mode, "tiles")) {
		if (asprintf(ret_error, "no tile mode '%s' (whole, tiles)", mode) < 0)
			*ret_error = NULL;
		return -EINVAL;
	}
	log_debug("%s: offered %s.", d->id, streq(mode, "tiles") ? "tile by tile" : "whole");
	if (!ctx->intel_tiled)
		return -EOPNOTSUPP;
	return offered_modes_set(ctx->intel_tiled, d->id, streq(mode, "tiles"));
}

const struct drm_vendor drm_intel_vendor = {
	.name = "intel",
	.drivers = (const char *const[]){ "i915", "xe", NULL },
	.describe = intel_describe,
	.apply_offer = intel_apply_offer,
};
