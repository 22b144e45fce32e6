// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libdrm_amdgpu, loaded with dlopen at the first query and kept for the life of the process: what
 * the amdgpu driver answers through a render node (the VRAM heaps, the marketing name). xpud never
 * links it, so that a node without AMD GPUs never maps it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <amdgpu.h>
#include <amdgpu_drm.h>

#include "backends/drm-internal.h"
#include "shared/dlopen-util.h"
#include "shared/host.h"
#include "shared/log.h"
#include "shared/macro.h"
#include "shared/parse.h"

#define AMDGPU_LIBRARY "libdrm_amdgpu.so.1"

struct amdgpu_lib {
	void *dl;
	typeof(amdgpu_device_initialize) *device_initialize;
	typeof(amdgpu_device_deinitialize) *device_deinitialize;
	typeof(amdgpu_query_info) *query_info;
	typeof(amdgpu_query_heap_info) *query_heap_info;
	typeof(amdgpu_get_marketing_name) *get_marketing_name; /* optional (libdrm < 2.4.77) */
};

/* The one load of the process: its outcome, good or bad, is kept. */
static pthread_mutex_t lib_lock = PTHREAD_MUTEX_INITIALIZER;
static struct amdgpu_lib lib;
static bool lib_tried;
static int lib_error;
static char *lib_reason;

void drm_amdgpu_answer_done(struct drm_amdgpu_answer *i)
{
	if (!i)
		return;
	free(i->marketing_name);
	*i = (struct drm_amdgpu_answer){};
}

/* Sets *ret_reason to the formatted line (NULL when out of memory), logs it at debug, returns @r. */
_printf_(3, 4) static int fail(char **ret_reason, int r, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	log_debug("libdrm_amdgpu: %s", s ?: "out of memory");
	if (ret_reason)
		*ret_reason = s;
	else
		free(s);
	return r;
}

static int lib_load(const char *path, const struct amdgpu_lib **ret, char **ret_reason)
{
	int r;

	pthread_mutex_lock(&lib_lock);
	if (!lib_tried) {
		const struct dlsym_spec syms[] = {
			{ (void **)&lib.device_initialize, "amdgpu_device_initialize" },
			{ (void **)&lib.device_deinitialize, "amdgpu_device_deinitialize" },
			{ (void **)&lib.query_info, "amdgpu_query_info" },
			{ (void **)&lib.query_heap_info, "amdgpu_query_heap_info" },
			{ (void **)&lib.get_marketing_name, "amdgpu_get_marketing_name", true },
		};

		lib_error = dlopen_many(path, syms, ELEMENTSOF(syms), &lib.dl, &lib_reason);
		lib_tried = true;
	}
	r = lib_error;
	if (r < 0)
		(void)fail(ret_reason, r, "%s", lib_reason ?: path);
	else
		*ret = &lib;
	pthread_mutex_unlock(&lib_lock);
	return r;
}

/*
 * The VRAM heaps: AMDGPU_INFO_MEMORY (Linux 4.10 and later), else the heap queries, whose sizes
 * are what can still be allocated rather than the whole heap. Neither answering leaves them 0:
 * the rest of what the device says is still worth having.
 */
static void query_memory(const struct amdgpu_lib *api, amdgpu_device_handle dev,
			 const char *devname, struct drm_amdgpu_answer *info)
{
	struct drm_amdgpu_memory_info m = {};
	struct amdgpu_heap_info h = {};
	int r;

	r = api->query_info(dev, AMDGPU_INFO_MEMORY, sizeof(m), &m);
	if (r == 0) {
		info->vram_total = m.vram.total_heap_size;
		info->vram_used = m.vram.heap_usage;
		info->vis_vram_total = m.cpu_accessible_vram.total_heap_size;
		return;
	}
	log_debug("libdrm_amdgpu: AMDGPU_INFO_MEMORY of /dev/%s: %s, asking for the heaps", devname,
		  strerror(r < 0 ? -r : EIO));
	r = api->query_heap_info(dev, AMDGPU_GEM_DOMAIN_VRAM, 0, &h);
	if (r != 0) {
		log_debug("libdrm_amdgpu: the VRAM heap of /dev/%s: %s, ignoring", devname,
			  strerror(r < 0 ? -r : EIO));
		return;
	}
	info->vram_total = h.heap_size;
	info->vram_used = h.heap_usage;
	h = (struct amdgpu_heap_info){};
	r = api->query_heap_info(dev, AMDGPU_GEM_DOMAIN_VRAM, AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED,
				 &h);
	if (r == 0)
		info->vis_vram_total = h.heap_size;
}

int drm_amdgpu_query(const struct xpu_host *host, const char *devname,
		     struct drm_amdgpu_answer *ret, char **ret_reason)
{
	_cleanup_(drm_amdgpu_answer_done) struct drm_amdgpu_answer info = {};
	const struct amdgpu_lib *api = NULL;
	_cleanup_close_ int fd = -EBADF;
	amdgpu_device_handle dev = NULL;
	uint32_t major, minor;
	const char *path, *name;
	bool named;
	int r;

	/* The environment (tests), then the loader's search path. A fake host root never gets the
	 * real host's library: it would answer for the real host's GPUs. */
	path = secure_getenv("XPU_AMDGPU_LIBRARY");
	if (isempty(path)) {
		if (!host->is_real)
			return fail(ret_reason, -ENOENT,
				    "a simulated host root uses no libdrm_amdgpu unless "
				    "XPU_AMDGPU_LIBRARY names one");
		path = AMDGPU_LIBRARY;
	}
	r = lib_load(path, &api, ret_reason);
	if (r < 0)
		return r;

	if (host->dev_fd < 0)
		return fail(ret_reason, -ENOENT, "/dev/%s: the host root has no /dev", devname);
	fd = openat(host->dev_fd, devname, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && (errno == EACCES || errno == EPERM || errno == EROFS))
		/* the driver's information queries need no write access */
		fd = openat(host->dev_fd, devname, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = negative_errno();
		return fail(ret_reason, r, "cannot open /dev/%s: %s", devname, strerror(-r));
	}

	r = api->device_initialize(fd, &major, &minor, &dev);
	if (r != 0 || !dev)
		return fail(ret_reason, r == -ENOMEM ? -ENOMEM : -EIO,
			    "amdgpu_device_initialize on /dev/%s failed: %s", devname,
			    strerror(r < 0 ? -r : EIO));
	query_memory(api, dev, devname, &info);
	/* NULL: an ASIC that this libdrm's table does not know; the string may be the device's */
	name = api->get_marketing_name ? api->get_marketing_name(dev) : NULL;
	named = !isempty(name) && string_is_printable(name);
	if (named)
		info.marketing_name = strdup(name);
	api->device_deinitialize(dev);
	if (named && !info.marketing_name)
		return fail(ret_reason, -ENOMEM, "out of memory");

	*ret = info;
	info = (struct drm_amdgpu_answer){};
	return 0;
}
