// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libdrm_amdgpu.so.1 for tests: the five functions agent/backends/drm-amdgpu-lib.c resolves, with
 * the prototypes of libdrm's own <amdgpu.h>, answering for the render node it is handed (the
 * last component of the path the file descriptor was opened at) from the JSON description
 * named by $XPU_FAKE_AMDGPU. See README.md.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <amdgpu.h>
#include <amdgpu_drm.h>

#include "fake-json.h"

#define EXPORT __attribute__((visibility("default")))

#define FAKE "fake-drm-amdgpu"
#define NAME_MAX_LEN 128

struct amdgpu_device {
	uint64_t vram_total, vram_used, vis_vram_total;
	char marketing_name[NAME_MAX_LEN]; /* "" when the description has none */
	bool fail_memory;		   /* every memory query fails */
	bool fail_info;			   /* AMDGPU_INFO_MEMORY fails, the heap queries answer */
};

/* "renderD128": the last component of the path @fd was opened at. */
static int node_name(int fd, char *buf, size_t size)
{
	char link[64], target[PATH_MAX];
	const char *slash;
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -EBADF;
	target[n] = '\0';
	slash = strrchr(target, '/');
	if (snprintf(buf, size, "%s", slash ? slash + 1 : target) >= (int)size)
		return -ENODEV;
	return 0;
}

static int read_fail(struct fake_json_parser *p, json_t *node, struct amdgpu_device *d)
{
	char fail[16] = "";
	int r;

	r = fake_json_get_string(p, node, "fail", false, sizeof(fail), fail);
	if (r < 0)
		return r;
	if (!fail[0])
		return 0;
	if (streq(fail, "init"))
		return -EIO;
	if (streq(fail, "memory"))
		d->fail_memory = true;
	else if (streq(fail, "info"))
		d->fail_info = true;
	else
		return fake_json_fail(p, "fail: '%s' is not init, memory, info or null", fail);
	return 0;
}

/*
 * The description's record of @name into @d. -ENODEV when there is no description or it has no
 * such node (not an amdgpu device); -EIO for "fail": "init"; -EINVAL, with one line on stderr,
 * for a malformed one.
 */
static int read_node(const char *name, struct amdgpu_device *d)
{
	static const char *const keys[] = { "vram_total",     "vram_used", "vis_vram_total",
					    "marketing_name", "fail",	   NULL };
	const struct {
		const char *key;
		uint64_t *ret;
	} sizes[] = {
		{ "vram_total", &d->vram_total },
		{ "vram_used", &d->vram_used },
		{ "vis_vram_total", &d->vis_vram_total },
	};
	struct fake_json_parser p = { .fake = FAKE };
	json_error_t err;
	json_t *doc, *node;
	size_t w;
	int r;

	p.file = secure_getenv("XPU_FAKE_AMDGPU");
	if (isempty(p.file))
		return -ENODEV;
	doc = json_load_file(p.file, JSON_REJECT_DUPLICATES, &err);
	if (!doc) /* jansson reports a missing file at line -1 */
		return err.line < 0 ? -ENODEV
				    : fake_json_fail(&p, "malformed JSON at line %d, column %d: %s",
						     err.line, err.column, err.text);
	if (!json_is_object(doc)) {
		r = fake_json_fail(&p, "not an object of render nodes");
		goto out;
	}
	node = json_object_get(doc, name);
	if (!node) {
		r = -ENODEV;
		goto out;
	}
	w = fake_json_where_push(&p, name);
	if (!json_is_object(node)) {
		r = fake_json_fail(&p, "not an object");
		goto out;
	}
	r = fake_json_check_keys(&p, node, keys);
	for (size_t i = 0; i < ELEMENTSOF(sizes) && r >= 0; i++) {
		long long v = 0;

		r = fake_json_get_integer(&p, node, sizes[i].key, false, 0, LLONG_MAX, &v, NULL);
		*sizes[i].ret = (uint64_t)v;
	}
	if (r >= 0)
		r = fake_json_get_string(&p, node, "marketing_name", false,
					 sizeof(d->marketing_name), d->marketing_name);
	if (r >= 0)
		r = read_fail(&p, node, d);
	fake_json_where_pop(&p, w);
out:
	json_decref(doc);
	return r;
}

EXPORT int amdgpu_device_initialize(int fd, uint32_t *major_version, uint32_t *minor_version,
				    amdgpu_device_handle *device_handle)
{
	struct amdgpu_device *d;
	char name[64];
	int r;

	if (!major_version || !minor_version || !device_handle)
		return -EINVAL;
	r = node_name(fd, name, sizeof(name));
	if (r < 0)
		return r;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	r = read_node(name, d);
	if (r < 0) {
		free(d);
		return r;
	}
	*major_version = 3; /* the amdgpu DRM interface of Linux 6.x */
	*minor_version = 57;
	*device_handle = d;
	return 0;
}

EXPORT int amdgpu_device_deinitialize(amdgpu_device_handle dev)
{
	if (!dev)
		return -EINVAL;
	free(dev);
	return 0;
}

EXPORT int amdgpu_query_info(amdgpu_device_handle dev, unsigned info_id, unsigned size,
			     void *value)
{
	struct drm_amdgpu_memory_info m = {};

	if (!dev || !value || info_id != AMDGPU_INFO_MEMORY)
		return -EINVAL;
	if (dev->fail_memory)
		return -EIO;
	if (dev->fail_info)
		return -EINVAL; /* a kernel older than the query */
	m.vram.total_heap_size = dev->vram_total;
	m.vram.usable_heap_size = dev->vram_total;
	m.vram.heap_usage = dev->vram_used;
	m.vram.max_allocation = dev->vram_total - MIN(dev->vram_used, dev->vram_total);
	m.cpu_accessible_vram.total_heap_size = dev->vis_vram_total;
	m.cpu_accessible_vram.usable_heap_size = dev->vis_vram_total;
	m.cpu_accessible_vram.max_allocation = dev->vis_vram_total;
	/* like the kernel: as much as the caller's structure holds */
	memcpy(value, &m, MIN((size_t)size, sizeof(m)));
	return 0;
}

EXPORT int amdgpu_query_heap_info(amdgpu_device_handle dev, uint32_t heap, uint32_t flags,
				  struct amdgpu_heap_info *info)
{
	if (!dev || !info || heap != AMDGPU_GEM_DOMAIN_VRAM ||
	    (flags & ~AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED))
		return -EINVAL;
	if (dev->fail_memory)
		return -EIO;
	if (flags & AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED)
		*info = (struct amdgpu_heap_info){
			.heap_size = dev->vis_vram_total,
			.max_allocation = dev->vis_vram_total,
		};
	else
		*info = (struct amdgpu_heap_info){
			.heap_size = dev->vram_total,
			.heap_usage = dev->vram_used,
			.max_allocation = dev->vram_total - MIN(dev->vram_used, dev->vram_total),
		};
	return 0;
}

EXPORT const char *amdgpu_get_marketing_name(amdgpu_device_handle dev)
{
	return dev && dev->marketing_name[0] ? dev->marketing_name : NULL;
}
