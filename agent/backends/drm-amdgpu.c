// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DRM backend's amdgpu part: what AMD GPUs say of themselves in sysfs, in the KFD topology
 * (/sys/class/kfd/kfd/topology/nodes/N/properties) and through libdrm_amdgpu
 * (drm-amdgpu-lib.c), as AMD's own tools and device plugin read it.
 *
 * Compute partitions (MI300): the GPU's mode is its "current_compute_partition" (SPX, DPX, TPX,
 * QPX, CPX); in any mode but SPX each partition is one KFD node, which names its render node
 * (drm_render_minor) and its GPU (domain, and location_id: the function's PCI id with the
 * partition's index in the low bits). Partition 0 is the PCI function's own card and render
 * node, the others platform devices (amdgpu_xcp_N) whose nodes the listing has. Switching the
 * mode is a write of the mode to current_compute_partition, which the driver refuses while the
 * GPU is in use; the repartition service only asks once nothing on it is allocated.
 *
 * Grants name the GPU to ROCm: ROCR_VISIBLE_DEVICES=GPU-<unique_id> for a whole GPU (the form
 * rocminfo prints, valid inside and outside a container), the partition's ROCm device index
 * (its rank among the KFD topology's GPU nodes) for a partition, which has no UUID of its own.
 * Device nodes: /dev/kfd, and the card and render node of the GPU or partition, as AMD's device
 * plugin mounts them. Resource: amd.com/gpu for both, as AMD's plugin names them by default
 * (its "single" strategy); a policy's `resource:` gives the "mixed" names (amd.com/cpx_nps4).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backends/drm-internal.h"
#include "backends/pci.h"
#include "backends/samples.h"
#include "backends/vendor-rules.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/strv.h"

#define KFD_NODES "class/kfd/kfd/topology/nodes"
#define KFD_PROPERTIES_MAX 16384
#define ROCR_ENV "ROCR_VISIBLE_DEVICES"

struct amdgpu_kfd {
	struct kfd_node *nodes; /* GPU nodes only, by number */
	size_t n;
};

/* ---- the KFD topology ---------------------------------------------------------------------- */

/* Reads one node's properties. 1 for a GPU node, 0 for a CPU node, -errno. */
static int kfd_read_node(int nodesfd, const char *name, struct kfd_node *ret)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	int r;

	if (asprintf(&path, "%s/properties", name) < 0)
		return -ENOMEM;
	r = read_attr_at(nodesfd, path, KFD_PROPERTIES_MAX, &text);
	if (r < 0)
		return r;
	return amdgpu_kfd_parse(text, ret);
}

static int kfd_cmp(const void *a, const void *b)
{
	const struct kfd_node *x = a, *y = b;

	return x->number < y->number ? -1 : x->number > y->number;
}

/* Reads the KFD topology once per enumeration. A node that cannot be read is a warning; no
 * topology at all (no amdkfd) is an empty one. 0 or -ENOMEM. */
static int kfd_get(struct drm_gpu_ctx *ctx, const struct amdgpu_kfd **ret)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct amdgpu_kfd *kfd;
	struct dirent *de;
	int r;

	if (ctx->kfd) {
		*ret = ctx->kfd;
		return 0;
	}
	kfd = ctx->kfd = calloc(1, sizeof(*kfd));
	if (!kfd)
		return -ENOMEM;
	*ret = kfd;
	r = opendir_at(ctx->host->sys_fd, KFD_NODES, &d);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return 0;
	while ((de = readdir(d))) {
		struct kfd_node k, *m;
		unsigned number;

		if (safe_atou(de->d_name, &number) < 0)
			continue;
		r = kfd_read_node(dirfd(d), de->d_name, &k);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			log_warning_errno(r, "KFD topology node %s cannot be read, ignoring it: %m",
					  de->d_name);
			continue;
		}
		if (r == 0)
			continue;
		m = reallocarray(kfd->nodes, kfd->n + 1, sizeof(*m));
		if (!m)
			return -ENOMEM;
		kfd->nodes = m;
		k.number = number;
		kfd->nodes[kfd->n++] = k;
	}
	if (kfd->n)
		qsort(kfd->nodes, kfd->n, sizeof(*kfd->nodes), kfd_cmp);
	for (size_t i = 0; i < kfd->n; i++)
		kfd->nodes[i].rocm_index = (unsigned)i;
	return 0;
}

static void amdgpu_done(struct drm_gpu_ctx *ctx)
{
	if (!ctx->kfd)
		return;
	free(ctx->kfd->nodes);
	free(ctx->kfd);
	ctx->kfd = NULL;
}

/* The PCI id KFD writes in location_id: bus << 8 | device << 3 | function. */
static uint32_t pci_id_of(const char *address, uint32_t *ret_domain)
{
	unsigned domain, bus, dev, fn;

	if (sscanf(address, "%x:%x:%x.%x", &domain, &bus, &dev, &fn) != 4)
		return UINT32_MAX;
	*ret_domain = domain;
	return bus << 8 | dev << 3 | fn;
}

/* Whether KFD node @k is the GPU at @address or one of its partitions (whose index KFD puts in
 * the low bits of a function-0 id). */
static bool kfd_of(const struct kfd_node *k, const char *address)
{
	uint32_t domain = 0, id = pci_id_of(address, &domain);

	if (id == UINT32_MAX || k->domain != domain)
		return false;
	return k->location_id == id || ((id & 7) == 0 && (k->location_id & ~7u) == id);
}

/* The canonical address of the GPU KFD node @k belongs to. */
static void kfd_address(const struct kfd_node *k, char ret[static 13])
{
	uint32_t id = k->location_id;

	snprintf(ret, 13, "%04x:%02x:%02x.%x", k->domain & 0xffff, (id >> 8) & 0xff,
		 (id >> 3) & 0x1f, 0);
}

/* ---- partitions ---------------------------------------------------------------------------- */

static const struct {
	const char *mode;
	unsigned partitions; /* 0: one per XCC */
} amd_modes[] = {
	{ "spx", 1 }, { "dpx", 2 }, { "tpx", 3 }, { "qpx", 4 }, { "cpx", 0 },
};

/* The mode named @s (any case), lower case and static, or NULL. */
static const char *mode_find(const char *s, unsigned xcc, unsigned *ret_partitions)
{
	for (size_t i = 0; i < ELEMENTSOF(amd_modes); i++)
		if (strcasecmp(s, amd_modes[i].mode) == 0) {
			if (ret_partitions)
				*ret_partitions = amd_modes[i].partitions ?: xcc;
			return amd_modes[i].mode;
		}
	return NULL;
}

/* The profiles of "SPX, DPX, QPX, CPX": one per mode, with as many instances as it makes. */
static int read_available(struct xpu_device *d, int fnfd, unsigned xcc)
{
	_cleanup_free_ char *text = NULL;
	char *save = NULL;
	int r;

	r = read_attr_at(fnfd, "available_compute_partition", 256, &text);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		if (r != -ENOENT)
			drm_warn_file(d->id, "available_compute_partition", r);
		return 0;
	}
	for (char *m = strtok_r(text, ", \n", &save); m; m = strtok_r(NULL, ", \n", &save)) {
		struct xpu_partition_profile p = {};
		unsigned n;

		p.name = (char *)mode_find(m, xcc, &n);
		if (!p.name || n == 0)
			continue; /* "Not supported", or a mode this xpud does not know */
		p.total = p.free = n;
		p.compute_fraction = 1.0 / n;
		if (!device_find_profile(d, p.name) && device_add_profile(d, &p) < 0)
			return -ENOMEM;
	}
	d->partition_capable = d->n_profiles > 1;
	return 0;
}

/* The slice of partition @k (the @i-th of @n of the GPU, in mode @mode). */
static int add_partition(struct drm_gpu_ctx *ctx, struct xpu_device *d, const char *mode,
			 const struct kfd_node *k, size_t i, size_t n)
{
	_cleanup_(slice_freep) struct xpu_slice *s = calloc(1, sizeof(*s));
	const struct drm_card *c = drm_card_by_render_minor(ctx->cards, k->render_minor);
	char idx[16];

	if (!s)
		return -ENOMEM;
	if (asprintf(&s->id, "%s/%s-%zu", d->id, mode, i) < 0) {
		s->id = NULL;
		return -ENOMEM;
	}
	if (!(s->device_id = strdup(d->id)) || !(s->resource = strdup(d->resource)) ||
	    !(s->profile = strdup(mode)))
		return -ENOMEM;
	s->memory_bytes = k->local_mem;
	s->compute_fraction = 1.0 / (double)n;
	s->health.state = XPU_HEALTH_HEALTHY;
	if (!c) {
		log_warning("%s: partition %zu names render node %d, which has no DRM device; "
			    "offering it without its nodes.",
			    d->id, i, k->render_minor);
	} else {
		_cleanup_free_ char *card = c->card ? host_dev_path(c->card) : NULL;
		_cleanup_free_ char *render = c->render ? host_dev_path(c->render) : NULL;

		if ((c->card && (!card || strv_consume(&s->device_nodes, TAKE_PTR(card)) < 0)) ||
		    (c->render &&
		     (!render || strv_consume(&s->device_nodes, TAKE_PTR(render)) < 0)))
			return -ENOMEM;
	}
	snprintf(idx, sizeof(idx), "%u", k->rocm_index);
	if (strv_env_set(&s->env, ROCR_ENV, idx) < 0)
		return -ENOMEM;
	return device_add_partition(d, TAKE_PTR(s));
}

static int loc_cmp(const void *a, const void *b)
{
	const struct kfd_node *const *x = a, *const *y = b;

	return (*x)->location_id < (*y)->location_id ? -1 : (*x)->location_id > (*y)->location_id;
}

/* The compute partition mode, its profiles, and the partitions a mode other than SPX makes. */
static int describe_partitions(struct drm_gpu_ctx *ctx, int fnfd, struct xpu_device *d,
			       const struct kfd_node **mine, size_t n, unsigned xcc)
{
	_cleanup_free_ char *current = NULL, *memory = NULL;
	const char *mode;
	unsigned expect = 0;
	int r;

	r = read_attr_at(fnfd, "current_memory_partition", 64, &memory);
	if (r == -ENOMEM)
		return r;
	if (r >= 0 && string_is_printable(memory)) {
		for (char *p = memory; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		if (device_set_property(d, "amd_memory_partition", memory) < 0)
			return -ENOMEM;
	}
	r = read_attr_at(fnfd, "current_compute_partition", 64, &current);
	if (r == -ENOMEM)
		return r;
	if (r == -ENOENT)
		return 0; /* not a partitionable GPU */
	if (r < 0) {
		drm_warn_file(d->id, "current_compute_partition", r);
		return 0;
	}
	r = read_available(d, fnfd, xcc);
	if (r < 0)
		return r;
	mode = mode_find(current, xcc, &expect);
	if (!mode) {
		log_warning("%s: current_compute_partition reads '%s', not a mode xpud knows; "
			    "offering the GPU whole.",
			    d->id, string_is_printable(current) ? current : "(unprintable)");
		return device_set_property(d, "amd_compute_partition", "unknown");
	}
	r = device_set_property(d, "amd_compute_partition", mode);
	if (r < 0 || streq(mode, "spx"))
		return r;
	if (n == 0) {
		log_warning("%s: in %s mode, but the KFD topology shows none of its partitions; "
			    "offering the GPU whole.",
			    d->id, mode);
		return 0;
	}
	if (expect && n != expect)
		log_warning("%s: in %s mode, which makes %u partitions, the KFD topology shows %zu; "
			    "offering those.",
			    d->id, mode, expect, n);
	/* Used only through its partitions: what they all need is the device's (the core gives
	 * each partition those and its own), partition 0's nodes are partition 0's. */
	d->partitioned = true;
	d->device_nodes = strv_free(d->device_nodes);
	if (exists_at(ctx->host->dev_fd, "kfd") > 0 && drm_add_node(d, "kfd") < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		r = add_partition(ctx, d, mode, mine[i], i, n);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- the device ---------------------------------------------------------------------------- */

/* The peers in the same XGMI hive, as "xgmi.<address>" properties, and the hive's id. */
static int describe_hive(struct xpu_device *d, int fnfd, const struct amdgpu_kfd *kfd,
			 uint64_t hive)
{
	_cleanup_free_ char *text = NULL;
	char buf[32];
	int r;

	if (!hive) {
		r = read_attr_at(fnfd, "xgmi_hive_info/xgmi_hive_id", 64, &text);
		if (r == -ENOMEM)
			return r;
		if (r >= 0 && safe_atou64(text, &hive) < 0) {
			log_warning("%s: xgmi_hive_info/xgmi_hive_id reads '%s', ignoring it.",
				    d->id, string_is_printable(text) ? text : "(unprintable)");
			hive = 0;
		}
	}
	if (!hive)
		return 0;
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)hive);
	r = device_set_property(d, "xgmi_hive_id", buf);
	for (size_t i = 0; r >= 0 && i < kfd->n; i++) {
		char peer[13], key[32];

		if (kfd->nodes[i].hive_id != hive || kfd_of(&kfd->nodes[i], d->id))
			continue;
		kfd_address(&kfd->nodes[i], peer);
		snprintf(key, sizeof(key), "xgmi.%s", peer);
		r = device_set_property(d, key, "1");
	}
	return r;
}

/* Memory and the model: libdrm_amdgpu's answers where the render node opens, sysfs else. */
static int describe_memory(struct drm_gpu_ctx *ctx, const struct drm_card *c, int fnfd,
			   struct xpu_device *d)
{
	_cleanup_(drm_amdgpu_answer_done) struct drm_amdgpu_answer info = {};
	_cleanup_free_ char *reason = NULL, *model = NULL;
	uint64_t used = 0, vis = 0;
	char buf[32];
	int r = -ENOENT;

	if (c->render) {
		r = drm_amdgpu_query(ctx->host, c->render, &info, &reason);
		if (r == -ENOMEM)
			return r;
		if (r < 0 && r != -ENOENT)
			log_warning("%s: %s; reading its memory from sysfs.", d->id,
				    reason ?: "libdrm_amdgpu did not answer");
	}
	if (r >= 0 && info.vram_total) {
		d->memory_bytes = info.vram_total;
		used = info.vram_used;
		vis = info.vis_vram_total;
	} else {
		r = read_attr_u64_at(fnfd, "mem_info_vram_total", &d->memory_bytes);
		if (r == -ENOMEM)
			return r;
		if (r < 0 && r != -ENOENT)
			drm_warn_file(d->id, "mem_info_vram_total", r);
		if (read_attr_u64_at(fnfd, "mem_info_vram_used", &used) == -ENOMEM ||
		    read_attr_u64_at(fnfd, "mem_info_vis_vram_total", &vis) == -ENOMEM)
			return -ENOMEM;
	}
	if (d->memory_bytes == 0 && r >= 0)
		log_warning("%s: the driver reports 0 bytes of VRAM; its memory is unknown.", d->id);
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)used);
	if (d->memory_bytes && device_set_property(d, "vram_used_bytes", buf) < 0)
		return -ENOMEM;
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)vis);
	if (vis && device_set_property(d, "vis_vram_total_bytes", buf) < 0)
		return -ENOMEM;

	/* The driver's marketing name, the board's FRU name, the PCI id table, in that order. */
	if (info.marketing_name && string_is_printable(info.marketing_name))
		model = strdup(info.marketing_name);
	else if (read_attr_at(fnfd, "product_name", 256, &model) == -ENOMEM)
		return -ENOMEM;
	if (model && !string_is_printable(model))
		model = mfree(model);
	if (!model && pci_model_name(d->pci.vendor_id, d->pci.device_id))
		model = strdup(pci_model_name(d->pci.vendor_id, d->pci.device_id));
	if (model) {
		free(d->model);
		d->model = TAKE_PTR(model);
	}
	return 0;
}

static int amdgpu_describe(struct drm_gpu_ctx *ctx, const struct drm_card *c, int fnfd,
			   struct xpu_device *d, struct device_list *list)
{
	_cleanup_free_ const struct kfd_node **mine = NULL;
	_cleanup_free_ char *uid = NULL;
	const struct amdgpu_kfd *kfd;
	unsigned cus = 0, xcc = 0;
	uint64_t unique = 0, hive = 0;
	size_t n = 0;
	char buf[48];
	int r;

	(void)list;
	if (!(d->resource = strdup("amd.com/gpu")))
		return -ENOMEM;
	if (exists_at(ctx->host->dev_fd, "kfd") > 0 && drm_add_node(d, "kfd") < 0)
		return -ENOMEM;
	r = describe_memory(ctx, c, fnfd, d);
	if (r < 0)
		return r;

	r = kfd_get(ctx, &kfd);
	if (r < 0)
		return r;
	mine = calloc(kfd->n ?: 1, sizeof(*mine));
	if (!mine)
		return -ENOMEM;
	for (size_t i = 0; i < kfd->n; i++)
		if (kfd_of(&kfd->nodes[i], d->id))
			mine[n++] = &kfd->nodes[i];
	qsort(mine, n, sizeof(*mine), loc_cmp);
	for (size_t i = 0; i < n; i++) {
		cus += mine[i]->simd_count / mine[i]->simd_per_cu;
		xcc += mine[i]->num_xcc;
		unique = unique ?: mine[i]->unique_id;
		hive = hive ?: mine[i]->hive_id;
	}
	if (n) {
		unsigned v = mine[0]->gfx_target_version;

		snprintf(buf, sizeof(buf), "gfx%u%x%x", v / 10000, (v / 100) % 100, v % 100);
		if (device_set_property(d, "gfx_target", buf) < 0)
			return -ENOMEM;
		snprintf(buf, sizeof(buf), "%u", cus);
		if (device_set_property(d, "compute_units", buf) < 0)
			return -ENOMEM;
	}

	/* The UUID ROCm gives the GPU: its unique_id, which sysfs has in hex. */
	r = read_attr_at(fnfd, "unique_id", 64, &uid);
	if (r == -ENOMEM)
		return r;
	if (r >= 0 && safe_atoux64(uid, &unique) < 0) {
		log_warning("%s: unique_id reads '%s', ignoring it.", d->id,
			    string_is_printable(uid) ? uid : "(unprintable)");
		unique = n ? mine[0]->unique_id : 0;
	}
	if (unique) {
		snprintf(buf, sizeof(buf), "GPU-%016llx", (unsigned long long)unique);
		if (!(d->uuid = strdup(buf)) || strv_env_set(&d->env, ROCR_ENV, buf) < 0)
			return -ENOMEM;
	} else if (n) {
		snprintf(buf, sizeof(buf), "%u", mine[0]->rocm_index);
		if (strv_env_set(&d->env, ROCR_ENV, buf) < 0)
			return -ENOMEM;
	}

	r = describe_hive(d, fnfd, kfd, hive);
	if (r < 0)
		return r;
	return describe_partitions(ctx, fnfd, d, mine, n, xcc ?: 8);
}

/* ---- samples ------------------------------------------------------------------------------- */

/* The busy percentages the driver averages over its own short window, and every RAS block's
 * counts ("ue: N\nce: M\n"). */
static int amdgpu_sample(int fnfd, struct xpu_device *d)
{
	static const struct {
		const char *file, *key;
	} busy[] = {
		{ "gpu_busy_percent", SAMPLE_UTILIZATION },
		{ "mem_busy_percent", SAMPLE_MEMORY_UTILIZATION },
	};
	_cleanup_(closedirp) DIR *dir = NULL;
	struct dirent *de;
	char buf[24];
	int r;

	for (size_t i = 0; i < ELEMENTSOF(busy); i++) {
		uint64_t v;

		r = read_attr_u64_at(fnfd, busy[i].file, &v);
		if (r == -ENOMEM)
			return r;
		if (r < 0 || v > 100)
			continue; /* not this GPU's, or the GPU is in reset (-EBUSY, -EPERM) */
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
		if (device_set_property(d, busy[i].key, buf) < 0)
			return -ENOMEM;
	}
	r = opendir_at(fnfd, "ras", &dir);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return 0;
	while ((de = readdir(dir))) {
		_cleanup_free_ char *text = NULL, *block = NULL;
		const char *suffix = strstr(de->d_name, "_err_count");
		uint64_t ue, ce;

		if (!suffix || suffix[10] != '\0' || suffix == de->d_name)
			continue;
		r = read_attr_at(dirfd(dir), de->d_name, 256, &text);
		if (r == -ENOMEM)
			return r;
		if (r < 0 || amdgpu_ras_counts(text, &ue, &ce) < 0)
			continue;
		block = strndup(de->d_name, (size_t)(suffix - de->d_name));
		if (!block)
			return -ENOMEM;
		r = samples_set_ras(d, block, ce, ue);
		if (r == -ENOMEM)
			return r;
	}
	return 0;
}

/* ---- health -------------------------------------------------------------------------------- */

/* Uncorrectable errors in any RAS block: the memory or logic they hit is suspect until a reset.
 * Correctable ones are the hardware doing its job. */
static int amdgpu_health(struct drm_gpu_ctx *ctx, int fnfd, struct xpu_device *d)
{
	_cleanup_(closedirp) DIR *dir = NULL;
	struct dirent *de;
	int r;

	(void)ctx;
	r = opendir_at(fnfd, "ras", &dir);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return 0; /* no RAS on this GPU */
	while ((de = readdir(dir))) {
		_cleanup_free_ char *text = NULL;
		const char *suffix = strstr(de->d_name, "_err_count");
		uint64_t count;

		if (!suffix || suffix[10] != '\0')
			continue;
		r = read_attr_at(dirfd(dir), de->d_name, 256, &text);
		if (r == -ENOMEM)
			return r;
		/* "Query currently inaccessible": not ready yet */
		if (r < 0 || amdgpu_ras_parse(text, &count) < 0 || count == 0)
			continue;
		return device_set_fault(d, HEALTH_ACTION_RESET_DEVICE,
					"%llu uncorrectable error%s in the %.*s block (RAS)",
					(unsigned long long)count, count == 1 ? "" : "s",
					(int)(suffix - de->d_name), de->d_name);
	}
	return 0;
}

/* ---- compute partition changes ------------------------------------------------------------- */

static int amdgpu_apply_offer(struct drm_gpu_ctx *ctx, const struct xpu_device *d,
			      const struct offer *o, char **ret_error)
{
	_cleanup_free_ char *path = NULL;
	char mode[8];
	size_t i;
	int r;

	if (o->kind != OFFER_PARTITIONS || o->scheme != &amd_partition_scheme || !o->layout ||
	    !o->layout[0] || !d->has_pci)
		return -EOPNOTSUPP;
	for (i = 0; o->layout[0][i] && i < sizeof(mode) - 1; i++)
		mode[i] = (char)toupper((unsigned char)o->layout[0][i]);
	mode[i] = '\0';
	if (asprintf(&path, "bus/pci/devices/%s/current_compute_partition", d->pci.address) < 0)
		return -ENOMEM;
	r = write_attr_at(ctx->host->sys_fd, path, mode);
	if (r < 0) {
		if (asprintf(ret_error, "writing %s to current_compute_partition: %s%s", mode,
			     strerror(-r), r == -EBUSY ? " (the GPU is in use)" : "") < 0)
			*ret_error = NULL;
		return r;
	}
	log_debug("%s: compute partition mode %s written.", d->id, mode);
	return 0;
}

const struct drm_vendor drm_amdgpu_vendor = {
	.name = "amdgpu",
	.drivers = (const char *const[]){ "amdgpu", NULL },
	.describe = amdgpu_describe,
	.health = amdgpu_health,
	.sample = amdgpu_sample,
	.apply_offer = amdgpu_apply_offer,
	.done = amdgpu_done,
};
