// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * CDI spec files, after the Container Device Interface specification (cdiVersion 0.6.0):
 * a spec has "cdiVersion", "kind" ("vendor/class") and "devices", each device a "name" and
 * "containerEdits" ("deviceNodes" with "path" and cgroup "permissions", "env" as KEY=VALUE).
 * Runtimes (containerd, CRI-O, podman) read every *.json in /var/run/cdi and resolve
 * "xpu.dev/gpu=<name>" against them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kube/cdi.h"
#include "shared/fileio.h"
#include "shared/log.h"
#include "shared/strv.h"

#define CDI_MAX_FILE (16U << 20)

char *cdi_qualified_name(const struct xpu_slice *s, const struct xpu_device *d)
{
	char *name, *p;

	if (asprintf(&name, CDI_VENDOR "/%s=%s", d ? xpu_kind_to_string(d->kind) : "device",
		     s->id) < 0)
		return NULL;
	/* CDI device names allow [A-Za-z0-9_.:-]; '/' is not, and ':' reads badly in a name */
	for (p = strchr(name, '=') + 1; *p; p++)
		if (*p == ':' || *p == '/')
			*p = '-';
	return name;
}

const char *cdi_spec_file_name(enum xpu_kind kind)
{
	static const char *const names[_XPU_KIND_MAX] = {
	    [XPU_KIND_GPU] = CDI_VENDOR "-gpu.json",
	    [XPU_KIND_ACCEL] = CDI_VENDOR "-accel.json",
	    [XPU_KIND_FPGA] = CDI_VENDOR "-fpga.json",
	};

	return kind >= 0 && kind < _XPU_KIND_MAX ? names[kind] : NULL;
}

static json_t *cdi_strv(char *const *l)
{
	json_t *a = json_array();

	for (; a && l && *l; l++)
		if (json_array_append_new(a, json_string(*l)) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *cdi_device(const struct xpu_slice *s, const struct xpu_device *d)
{
	_cleanup_free_ char *name = cdi_qualified_name(s, d);
	json_t *edits = json_object(), *nodes = json_array(), *dev = NULL;

	if (!name || !edits || !nodes)
		goto out;
	for (char *const *n = s->device_nodes; n && *n; n++)
		/* read and write, no mknod: the node is created for the container */
		if (json_array_append_new(
			nodes, json_pack("{s:s, s:s}", "path", *n, "permissions", "rw")) < 0)
			goto out;
	if (json_array_size(nodes) > 0 && json_object_set(edits, "deviceNodes", nodes) < 0)
		goto out;
	if (s->env && *s->env && json_object_set_new(edits, "env", cdi_strv(s->env)) < 0)
		goto out;
	dev = json_pack("{s:s, s:O}", "name", strchr(name, '=') + 1, "containerEdits", edits);
out:
	json_decref(edits);
	json_decref(nodes);
	return dev;
}

int cdi_build_spec(enum xpu_kind kind, const struct device_list *devs,
		   const struct slice_list *slices, json_t **ret)
{
	_cleanup_free_ char *kind_name = NULL;
	json_t *devices = json_array(), *spec;

	if (!devices || asprintf(&kind_name, CDI_VENDOR "/%s", xpu_kind_to_string(kind)) < 0) {
		json_decref(devices);
		return -ENOMEM;
	}
	for (size_t i = 0; i < slices->n; i++) {
		const struct xpu_slice *s = slices->items[i];
		const struct xpu_device *d = device_list_find(devs, s->device_id);

		if (!d || d->kind != kind)
			continue;
		if (strv_length(s->device_nodes) == 0 && strv_length(s->env) == 0)
			continue;
		if (json_array_append_new(devices, cdi_device(s, d)) < 0) {
			json_decref(devices);
			return -ENOMEM;
		}
	}
	if (json_array_size(devices) == 0) {
		json_decref(devices);
		*ret = NULL;
		return 0;
	}
	spec = json_pack("{s:s, s:s, s:o}", "cdiVersion", CDI_VERSION, "kind", kind_name, "devices",
			 devices);
	if (!spec)
		return -ENOMEM;
	*ret = spec;
	return 0;
}

/* ---- the writer ------------------------------------------------------------------------ */

struct cdi_writer {
	struct inventory *inventory;
	char *dir;
	sd_event_source *post;
	uint64_t generation; /* of the inventory at the last sync */
	bool dirty;
	bool failing; /* the last sync could not write: warned once */
	/* What each kind's file holds, as far as we know (NULL: no file); valid when known. */
	bool known[_XPU_KIND_MAX];
	char *written[_XPU_KIND_MAX];
};

static int cdi_render(const struct cdi_writer *w, enum xpu_kind kind, char **ret)
{
	json_t *spec = NULL;
	char *text;
	int r;

	r = cdi_build_spec(kind, inventory_devices(w->inventory), inventory_slices(w->inventory),
			   &spec);
	if (r < 0)
		return r;
	if (!spec) {
		*ret = NULL;
		return 0;
	}
	text = json_dumps(spec, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(spec);
	if (!text)
		return -ENOMEM;
	if (asprintf(ret, "%s\n", text) < 0)
		*ret = NULL;
	free(text);
	if (!*ret)
		return -ENOMEM;
	return 0;
}

/* Whether @name in @dfd holds exactly @text (after a restart: no need to write it again). */
static bool cdi_file_equals(int dfd, const char *name, const char *text)
{
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	_cleanup_free_ char *old = NULL;
	size_t len = 0;

	if (fd < 0 || read_full_fd(fd, CDI_MAX_FILE, &old, &len) < 0)
		return false;
	return len == strlen(text) && memcmp(old, text, len) == 0;
}

static int cdi_open_dir(struct cdi_writer *w)
{
	int dfd, r;

	r = mkdir_parents(w->dir, 0755);
	if (r < 0)
		return r;
	r = mkdir_mode(w->dir, 0755);
	if (r < 0)
		return r;
	dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return dfd < 0 ? -errno : dfd;
}

/* One kind: writes, keeps or removes its file. 0 or -errno (logged by the caller). */
static int cdi_sync_kind(struct cdi_writer *w, int dfd, enum xpu_kind kind)
{
	const char *name = cdi_spec_file_name(kind);
	_cleanup_free_ char *text = NULL;
	int r;

	r = cdi_render(w, kind, &text);
	if (r < 0)
		return r;
	if (w->known[kind] && streq_ptr(text, w->written[kind]))
		return 0;
	if (!text) {
		if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
			return -errno;
		if (w->known[kind] && w->written[kind])
			log_info("Removed CDI spec %s/%s: no %s slices left.", w->dir, name,
				 xpu_kind_to_string(kind));
	} else if (w->known[kind] || !cdi_file_equals(dfd, name, text)) {
		r = write_file_atomic_at(dfd, name, text, strlen(text), 0644);
		if (r < 0)
			return r;
		log_debug("Wrote CDI spec %s/%s.", w->dir, name);
	}
	free(w->written[kind]);
	w->written[kind] = TAKE_PTR(text);
	w->known[kind] = true;
	return 0;
}

/* Temporary files of a write that was killed before its rename. */
static void cdi_remove_temp_files(int dfd)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;

	if (opendir_at(dfd, ".", &d) < 0)
		return;
	while ((de = readdir(d)))
		for (enum xpu_kind k = 0; k < _XPU_KIND_MAX; k++)
			if (is_temp_of(de->d_name, cdi_spec_file_name(k)))
				(void)unlinkat(dfd, de->d_name, 0);
}

static void cdi_sync(struct cdi_writer *w)
{
	_cleanup_close_ int dfd = -EBADF;
	int r = 0;

	dfd = cdi_open_dir(w);
	if (dfd < 0)
		r = dfd;
	else {
		if (!w->known[0])
			cdi_remove_temp_files(dfd);
		for (enum xpu_kind k = 0; k < _XPU_KIND_MAX && r >= 0; k++)
			r = cdi_sync_kind(w, dfd, k);
	}
	if (r < 0) {
		if (!w->failing)
			log_warning_errno(r,
					  "Failed to write the CDI specs in %s, containers cannot "
					  "name xpud's devices by CDI until it works, ignoring: %m",
					  w->dir);
		w->failing = true;
		/* try everything again at the next change */
		for (enum xpu_kind k = 0; k < _XPU_KIND_MAX; k++)
			w->known[k] = false;
		return;
	}
	if (w->failing)
		log_info("CDI specs in %s are up to date again.", w->dir);
	w->failing = false;
}

static int on_post(sd_event_source *s, void *userdata)
{
	struct cdi_writer *w = userdata;
	uint64_t g = inventory_generation(w->inventory);

	if (!w->dirty && g == w->generation)
		return 0;
	w->dirty = false;
	w->generation = g;
	cdi_sync(w);
	return 0;
}

int cdi_writer_new(sd_event *e, const char *dir, struct inventory *inv, struct cdi_writer **ret)
{
	_cleanup_(cdi_writer_freep) struct cdi_writer *w = NULL;
	int r;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->inventory = inv;
	w->dir = strdup(dir);
	if (!w->dir)
		return -ENOMEM;
	r = sd_event_add_post(e, &w->post, on_post, w);
	if (r < 0)
		return r;
	(void)sd_event_source_set_description(w->post, "cdi-specs");
	w->generation = inventory_generation(inv);
	cdi_sync(w);
	*ret = TAKE_PTR(w);
	return 0;
}

struct cdi_writer *cdi_writer_free(struct cdi_writer *w)
{
	if (!w)
		return NULL;
	sd_event_source_disable_unref(w->post);
	for (enum xpu_kind k = 0; k < _XPU_KIND_MAX; k++)
		free(w->written[k]);
	free(w->dir);
	free(w);
	return NULL;
}

void cdi_writer_changed(struct cdi_writer *w)
{
	if (w)
		w->dirty = true;
}
