// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * CDI spec files, after the Container Device Interface specification: a spec has "cdiVersion",
 * "kind" ("vendor/class") and "devices", each device a "name" and "containerEdits"
 * ("deviceNodes" with "path", "hostPath" below a simulated root, and cgroup "permissions";
 * "env" as KEY=VALUE). Runtimes (containerd, CRI-O, podman) read every *.json in /var/run/cdi
 * and resolve "xpu.dev/gpu=<name>" against them. They refuse a whole file whose cdiVersion
 * they do not know, so each spec claims the lowest version whose features it uses.
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

/* The versions MinimumRequiredVersion can answer, oldest first (0.8.0 added no field). */
enum cdi_version {
	CDI_V030,
	CDI_V040,
	CDI_V050,
	CDI_V060,
	CDI_V070,
	_CDI_VERSION_MAX,
};

static bool cdi_nonempty_string(const json_t *v)
{
	return json_is_string(v) && json_string_length(v) > 0;
}

/* ASCII only, as in the project's rule: not isalpha(), which follows the locale. */
static bool cdi_is_letter(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* What one containerEdits object (of the spec or of a device) needs. */
static enum cdi_version cdi_edits_version(const json_t *edits)
{
	const json_t *rdt = json_object_get(edits, "intelRdt"), *e;
	enum cdi_version v = CDI_V030;
	size_t i;

	/* a null field is an absent one, as for the project's Go types */
	if ((rdt && !json_is_null(rdt)) ||
	    json_array_size(json_object_get(edits, "additionalGids")) > 0)
		return CDI_V070;
	json_array_foreach (json_object_get(edits, "deviceNodes"), i, e)
		if (cdi_nonempty_string(json_object_get(e, "hostPath")))
			v = MAX(v, CDI_V050);
	json_array_foreach (json_object_get(edits, "mounts"), i, e)
		if (cdi_nonempty_string(json_object_get(e, "type")))
			v = MAX(v, CDI_V040);
	return v;
}

const char *cdi_minimum_version(const json_t *spec)
{
	static const char *const names[_CDI_VERSION_MAX] = {
	    [CDI_V030] = "0.3.0", [CDI_V040] = "0.4.0", [CDI_V050] = "0.5.0",
	    [CDI_V060] = "0.6.0", [CDI_V070] = "0.7.0",
	};
	enum cdi_version v = cdi_edits_version(json_object_get(spec, "containerEdits"));
	const char *kind = json_string_value(json_object_get(spec, "kind")), *slash;
	const json_t *d;
	size_t i;

	if (json_object_size(json_object_get(spec, "annotations")) > 0)
		v = MAX(v, CDI_V060);
	/* a '.' in the class of "vendor/class"; one in the vendor was always allowed */
	slash = kind ? strchr(kind, '/') : NULL;
	if (slash && slash != kind && slash[1] && strchr(slash + 1, '.'))
		v = MAX(v, CDI_V060);
	json_array_foreach (json_object_get(spec, "devices"), i, d) {
		const char *name = json_string_value(json_object_get(d, "name"));

		if (json_object_size(json_object_get(d, "annotations")) > 0)
			v = MAX(v, CDI_V060);
		/* earlier versions wanted a letter first, and PCI addresses start with digits */
		if (name && name[0] && !cdi_is_letter(name[0]))
			v = MAX(v, CDI_V050);
		v = MAX(v, cdi_edits_version(json_object_get(d, "containerEdits")));
	}
	return names[v];
}

static json_t *cdi_node(const char *root, const char *path)
{
	_cleanup_free_ char *host_path = NULL;

	/* read and write, no mknod: the node is created for the container */
	if (!root || streq(root, "/"))
		return json_pack("{s:s, s:s}", "path", path, "permissions", "rw");
	if (asprintf(&host_path, "%s%s", root, path) < 0)
		return NULL;
	return json_pack("{s:s, s:s, s:s}", "path", path, "hostPath", host_path, "permissions",
			 "rw");
}

static json_t *cdi_device(const char *root, const struct xpu_slice *s, const struct xpu_device *d)
{
	_cleanup_free_ char *name = slice_cdi_name(s, d);
	json_t *edits = json_object(), *nodes = json_array(), *dev = NULL;

	if (!name || !edits || !nodes)
		goto out;
	for (char *const *n = s->device_nodes; n && *n; n++)
		if (json_array_append_new(nodes, cdi_node(root, *n)) < 0)
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

int cdi_build_spec(enum xpu_kind kind, const char *root, const struct device_list *devs,
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
		if (json_array_append_new(devices, cdi_device(root, s, d)) < 0) {
			json_decref(devices);
			return -ENOMEM;
		}
	}
	if (json_array_size(devices) == 0) {
		json_decref(devices);
		*ret = NULL;
		return 0;
	}
	/* the version is set last (it depends on the rest) but stays the first key */
	spec =
	    json_pack("{s:s, s:s, s:o}", "cdiVersion", "", "kind", kind_name, "devices", devices);
	if (!spec)
		return -ENOMEM;
	if (json_object_set_new(spec, "cdiVersion", json_string(cdi_minimum_version(spec))) < 0) {
		json_decref(spec);
		return -ENOMEM;
	}
	*ret = spec;
	return 0;
}

/* ---- the writer ------------------------------------------------------------------------ */

struct cdi_writer {
	struct inventory *inventory;
	char *dir;
	char *root; /* NULL: the real host's /dev */
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

	r = cdi_build_spec(kind, w->root, inventory_devices(w->inventory),
			   inventory_slices(w->inventory), &spec);
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

int cdi_writer_new(sd_event *e, const char *dir, const char *root, struct inventory *inv,
		   struct cdi_writer **ret)
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
	if (root) {
		w->root = strdup(root);
		if (!w->root)
			return -ENOMEM;
	}
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
	free(w->root);
	free(w);
	return NULL;
}

void cdi_writer_changed(struct cdi_writer *w)
{
	if (w)
		w->dirty = true;
}
