// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The fixture builder: turns a JSON node description (tests/fixtures/README.md) into a fake host
 * tree of sys/, dev/, proc/ and run/ that looks, to code reading it through directory fds, like
 * the kernel's own.
 *
 * A description is walked twice by the same code: first with no tree open, which only validates
 * (so a bad description leaves nothing half-built), then with the tree open, which writes. Every
 * symlink is relative and computed the way sysfs computes its own, so a tree can be moved or
 * bind-mounted and still resolve.
 *
 * Nothing here logs. On failure the public functions hand back a message naming the offending
 * key ("pci[3].numa_node: expected integer (device 0000:18:00.0)") or path.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/fileio.h"
#include "shared/parse.h"
#include "sim/fixture-internal.h"

/* ---- CPU and node lists ---------------------------------------------------------------------- */

/* Adds the members of a list that parse_cpu_list() accepted to @bits. */
static void bits_add_list(uint64_t *bits, const char *list)
{
	const char *p = list;

	while (*p) {
		unsigned long a, b;
		char *end;

		a = strtoul(p, &end, 10);
		b = a;
		if (*end == '-')
			b = strtoul(end + 1, &end, 10);
		for (unsigned long i = a; i <= b; i++)
			bits[i / 64] |= UINT64_C(1) << (i % 64);
		p = *end == ',' ? end + 1 : end;
	}
}

/* The kernel's list format ("0-55,112-167"); *ret is NULL when no bit is set. */
static int bits_format(const uint64_t *bits, unsigned nbits, char **ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t size = 0;
	bool first = true;
	FILE *f;

	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	for (unsigned i = 0; i < nbits; i++) {
		unsigned j = i;

		if (!bit_test(bits, i))
			continue;
		while (j + 1 < nbits && bit_test(bits, j + 1))
			j++;
		fprintf(f, first ? "%u" : ",%u", i);
		if (j > i)
			fprintf(f, "-%u", j);
		first = false;
		i = j;
	}
	if (fclose(f) != 0)
		return -ENOMEM;
	*ret = first ? NULL : TAKE_PTR(buf);
	return 0;
}

/* ---- typed getters: absent and null both mean "not given" ----------------------------------- */

int check_keys(struct fixture *fx, json_t *obj, const char *where, const char *const *keys)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		const char *const *k;

		for (k = keys; *k; k++)
			if (streq(*k, key))
				break;
		if (!*k)
			return fx_bad_key(fx, where, key, "unknown key");
	}
	return 0;
}

json_t *get_value(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_null(v) ? NULL : v;
}

int get_string(struct fixture *fx, json_t *obj, const char *where, const char *key,
		      bool required, const char **ret)
{
	json_t *v = get_value(obj, key);

	if (!v) {
		if (required)
			return fx_bad_key(fx, where, key, "missing");
		*ret = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return fx_bad_key(fx, where, key, "expected string");
	*ret = json_string_value(v);
	return 0;
}

int get_int(struct fixture *fx, json_t *obj, const char *where, const char *key,
		   bool required, int min, int max, int def, int *ret)
{
	json_t *v = get_value(obj, key);
	json_int_t i;

	if (!v) {
		if (required)
			return fx_bad_key(fx, where, key, "missing");
		*ret = def;
		return 0;
	}
	if (!json_is_integer(v))
		return fx_bad_key(fx, where, key, "expected integer");
	i = json_integer_value(v);
	if (i < min || i > max)
		return fx_invalid(fx, "%s%s%s: %lld is out of range %d..%d", where,
				  *where ? "." : "", key, (long long)i, min, max);
	*ret = (int)i;
	return 0;
}

int get_hex(struct fixture *fx, json_t *obj, const char *where, const char *key,
		   bool required, uint32_t max, uint32_t def, uint32_t *ret)
{
	const char *s = NULL;
	uint32_t v;
	int r;

	r = get_string(fx, obj, where, key, required, &s);
	if (r < 0)
		return r;
	if (!s) {
		*ret = def;
		return 0;
	}
	r = parse_hex_id(s, max, &v);
	if (r == -ERANGE)
		return fx_invalid(fx, "%s%s%s: \"%s\" is larger than 0x%x", where,
				  *where ? "." : "", key, s, max);
	if (r < 0)
		return fx_invalid(fx,
				  "%s%s%s: expected a hex string such as \"0x10de\", got \"%s\"",
				  where, *where ? "." : "", key, s);
	*ret = v;
	return 0;
}

int get_object(struct fixture *fx, json_t *obj, const char *where, const char *key,
		      json_t **ret)
{
	json_t *v = get_value(obj, key);

	if (v && !json_is_object(v))
		return fx_bad_key(fx, where, key, "expected object");
	*ret = v;
	return 0;
}

int get_array(struct fixture *fx, json_t *obj, const char *where, const char *key,
		     json_t **ret)
{
	json_t *v = get_value(obj, key);

	if (v && !json_is_array(v))
		return fx_bad_key(fx, where, key, "expected array");
	*ret = v;
	return 0;
}

/* ---- top level ------------------------------------------------------------------------------- */

static int build_skeleton(struct fixture *fx)
{
	static const char *const dirs[] = {
		"sys/devices/system", "sys/bus/pci/devices", "sys/bus/pci/drivers",
		"sys/class",	      "sys/dev/char",	     "dev",
		"proc",		      "run",
	};
	int r;

	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		r = fx_mkdir(fx, dirs[i]);
		if (r < 0)
			return r;
	}
	/* The kernel's log: a FIFO that tests write /dev/kmsg records into (xpud reads it). */
	if (!fx_validating(fx) && mkfifoat(fx->root, "dev/kmsg", 0600) < 0 && errno != EEXIST)
		return fx_fs_error(fx, -errno, "create the FIFO", "dev/kmsg");
	return 0;
}

static int build_numa_nodes(struct fixture *fx, json_t *nodes)
{
	static const char *const keys[] = { "node", "cpus", NULL };
	_cleanup_free_ uint64_t *cpus = NULL, *online = NULL;
	_cleanup_free_ char *online_list = NULL;
	char where[WHERE_MAX];
	size_t i;
	json_t *e;
	int r;

	fx->numa_nodes = nodes;
	if (!nodes)
		return 0;
	cpus = calloc(CPU_BITS / 64, sizeof(uint64_t));
	online = calloc(NUMA_BITS / 64, sizeof(uint64_t));
	if (!cpus || !online)
		return -ENOMEM;

	json_array_foreach(nodes, i, e) {
		_cleanup_free_ char *dir = NULL;
		const char *list = NULL;
		unsigned count;
		int node = 0;

		snprintf(where, sizeof(where), "numa_nodes[%zu]", i);
		if (!json_is_object(e))
			return fx_invalid(fx, "%s: expected object", where);
		r = check_keys(fx, e, where, keys);
		if (r < 0)
			return r;
		r = get_int(fx, e, where, "node", true, 0, NUMA_BITS - 1, 0, &node);
		if (r < 0)
			return r;
		r = get_string(fx, e, where, "cpus", true, &list);
		if (r < 0)
			return r;
		if (parse_cpu_list(list, &count) < 0)
			return fx_invalid(fx, "%s.cpus: \"%s\" is not a CPU list such as "
					      "\"0-55,112-167\"", where, list);
		if (bit_test(online, (unsigned)node))
			return fx_invalid(fx, "%s.node: node %d is described twice", where, node);
		online[node / 64] |= UINT64_C(1) << (node % 64);
		bits_add_list(cpus, list);

		dir = pathf("sys/devices/system/node/node%d", node);
		r = fx_attrf(fx, dir, "cpulist", "%s\n", list);
		if (r < 0)
			return r;
	}

	r = bits_format(cpus, CPU_BITS, &fx->all_cpus);
	if (r < 0)
		return r;
	r = bits_format(online, NUMA_BITS, &online_list);
	if (r < 0)
		return r;
	if (online_list) {
		r = fx_attrf(fx, "sys/devices/system/node", "online", "%s\n", online_list);
		if (r >= 0)
			r = fx_attrf(fx, "sys/devices/system/node", "possible", "%s\n",
				     online_list);
		if (r < 0)
			return r;
	}
	if (fx->all_cpus) {
		r = fx_attrf(fx, "sys/devices/system/cpu", "online", "%s\n", fx->all_cpus);
		if (r >= 0)
			r = fx_attrf(fx, "sys/devices/system/cpu", "possible", "%s\n",
				     fx->all_cpus);
		if (r < 0)
			return r;
	}
	return 0;
}

struct major_entry {
	int major;
	unsigned order;
	const char *name;
};

static int major_entry_cmp(const void *a, const void *b)
{
	const struct major_entry *x = a, *y = b;

	if (x->major != y->major)
		return x->major < y->major ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/*
 * One section of /proc/devices from {"name": major, "name2": [major, major]}, sorted by major
 * and, within one major, in the order the description lists the names (as the kernel lists them
 * in registration order).
 */
static int format_majors(struct fixture *fx, json_t *obj, const char *where, FILE *out)
{
	_cleanup_free_ struct major_entry *entries = NULL;
	size_t n = 0, allocated = 0;
	const char *name;
	json_t *v;

	if (!obj)
		return 0;
	json_object_foreach(obj, name, v) {
		size_t count = json_is_array(v) ? json_array_size(v) : 1;

		if (isempty(name) || strchr(name, '\n'))
			return fx_invalid(fx, "%s: \"%s\" is not a device name", where, name);
		for (size_t i = 0; i < count; i++) {
			json_t *m = json_is_array(v) ? json_array_get(v, i) : v;
			json_int_t major;

			if (!json_is_integer(m))
				return fx_bad_key(fx, where, name,
						  "expected an integer major or an array of them");
			major = json_integer_value(m);
			if (major < 0 || major > MAJOR_MAX)
				return fx_bad_key(fx, where, name, "major out of range 0..4095");
			if (n == allocated) {
				struct major_entry *e;

				allocated = allocated ? allocated * 2 : 32;
				e = reallocarray(entries, allocated, sizeof(*e));
				if (!e)
					return -ENOMEM;
				entries = e;
			}
			entries[n] = (struct major_entry){ (int)major, (unsigned)n, name };
			n++;
		}
	}
	if (n > 0)
		qsort(entries, n, sizeof(*entries), major_entry_cmp);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%3d %s\n", entries[i].major, entries[i].name);
	return 0;
}

static int build_proc_devices(struct fixture *fx, json_t *chr, json_t *blk)
{
	_cleanup_free_ char *buf = NULL;
	size_t size = 0;
	FILE *f;
	int r;

	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	fputs("Character devices:\n", f);
	r = format_majors(fx, chr, "char_majors", f);
	if (r >= 0) {
		fputs("\nBlock devices:\n", f);
		r = format_majors(fx, blk, "block_majors", f);
	}
	if (fclose(f) != 0 && r >= 0)
		r = -ENOMEM;
	if (r < 0)
		return r;
	if (!chr && !blk) /* a description that adds devices to a tree keeps its /proc/devices */
		return 0;
	return fx_write(fx, "proc/devices", buf, size);
}

static int build_dev(struct fixture *fx, json_t *dev)
{
	size_t i;
	json_t *e;
	int r;

	if (!dev)
		return 0;
	json_array_foreach(dev, i, e) {
		_cleanup_free_ char *path = NULL;

		if (!json_is_string(e) || !path_is_safe(json_string_value(e), false))
			return fx_invalid(fx, "dev[%zu]: expected a relative path below dev/", i);
		path = pathf("dev/%s", json_string_value(e));
		r = fx_write(fx, path, "", 0);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * {"relative/path": "content"} below @dir ("" for the tree itself), written verbatim. With @dir
 * NULL, only validates.
 */
int build_raw_files(struct fixture *fx, json_t *files, const char *dir, const char *where)
{
	const char *key;
	json_t *v;
	int r;

	if (!files)
		return 0;
	json_object_foreach(files, key, v) {
		_cleanup_free_ char *path = NULL;

		if (!path_is_safe(key, false))
			return fx_bad_key(fx, where, key, "not a relative path inside the tree");
		if (!json_is_string(v))
			return fx_bad_key(fx, where, key, "expected string");
		if (!dir)
			continue;
		path = *dir ? pathf("%s/%s", dir, key) : strdup(key);
		r = fx_write(fx, path, json_string_value(v), json_string_length(v));
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * {"relative/link": "relative/target"}: symlinks below the tree, both paths relative to its root;
 * the link is spelled relative to where it sits, as sysfs spells its links. The target need not
 * exist (a device removed during a scan leaves such a link).
 */
static int build_links(struct fixture *fx, json_t *links)
{
	const char *key;
	json_t *v;
	int r;

	json_object_foreach(links, key, v) {
		if (!path_is_safe(key, false))
			return fx_bad_key(fx, "links", key, "not a relative path inside the tree");
		if (!json_is_string(v) || !path_is_safe(json_string_value(v), false))
			return fx_bad_key(fx, "links", key, "expected a relative path inside the tree");
		r = fx_symlink(fx, key, json_string_value(v));
		if (r < 0)
			return r;
	}
	return 0;
}

static const char *const top_keys[] = {
	"name",	    "summary",	 "numa_nodes", "char_majors", "block_majors", "nvidia_driver",
	"dev",	    "defaults", "templates",  "pci",	       "raw_files",    "nvml",
	"platform", "links",	 NULL,
};

static void fx_reset(struct fixture *fx)
{
	fx->device[0] = '\0';
	fx->driver_version = NULL;
	fx->numa_nodes = NULL;
	free(fx->all_cpus);
	fx->all_cpus = NULL;
	free(fx->addresses);
	fx->addresses = NULL;
	fx->n_addresses = 0;
	memset(fx->nvidia_minors, 0, sizeof(fx->nvidia_minors));
	free(fx->gpus);
	fx->gpus = NULL;
	fx->n_gpus = 0;
}

static void fx_done(struct fixture *fx)
{
	fx_reset(fx);
	fx->root = safe_close(fx->root);
	fx->tree = safe_close(fx->tree);
	free(fx->error);
	fx->error = NULL;
}

/* One walk over the whole description: validates, and writes unless fx->root is closed. */
static int fx_run(struct fixture *fx, json_t *doc)
{
	json_t *numa_nodes = NULL, *chr = NULL, *blk = NULL, *drv = NULL, *dev = NULL, *defaults = NULL,
	       *templates = NULL, *pci = NULL, *raw_files = NULL, *nvml = NULL, *platform = NULL,
	       *links = NULL, *e = NULL;
	const char *name = NULL, *summary = NULL, *key;
	size_t i;
	int r;

	fx_reset(fx);
	if (!json_is_object(doc))
		return fx_invalid(fx, "description: expected a JSON object");
	r = check_keys(fx, doc, "", top_keys);
	if (r >= 0)
		r = get_string(fx, doc, "", "name", false, &name);
	if (r >= 0)
		r = get_string(fx, doc, "", "summary", false, &summary);
	if (r >= 0)
		r = get_array(fx, doc, "", "numa_nodes", &numa_nodes);
	if (r >= 0)
		r = get_object(fx, doc, "", "char_majors", &chr);
	if (r >= 0)
		r = get_object(fx, doc, "", "block_majors", &blk);
	if (r >= 0)
		r = get_object(fx, doc, "", "nvidia_driver", &drv);
	if (r >= 0)
		r = get_array(fx, doc, "", "dev", &dev);
	if (r >= 0)
		r = get_object(fx, doc, "", "defaults", &defaults);
	if (r >= 0)
		r = get_object(fx, doc, "", "templates", &templates);
	if (r >= 0)
		r = get_array(fx, doc, "", "pci", &pci);
	if (r >= 0)
		r = get_object(fx, doc, "", "raw_files", &raw_files);
	if (r >= 0)
		r = get_object(fx, doc, "", "nvml", &nvml);
	if (r >= 0)
		r = get_array(fx, doc, "", "platform", &platform);
	if (r >= 0)
		r = get_object(fx, doc, "", "links", &links);
	if (r < 0)
		return r;
	if (name && !path_is_safe(name, true))
		return fx_invalid(fx, "name: \"%s\" is not a node name", name);
	if (summary && !string_is_printable(summary))
		return fx_invalid(fx, "summary: must be one line of printable text");

	r = build_skeleton(fx);
	if (r >= 0)
		r = build_numa_nodes(fx, numa_nodes);
	if (r >= 0)
		r = build_proc_devices(fx, chr, blk);
	if (r >= 0)
		r = build_nvidia_driver(fx, drv);
	if (r >= 0)
		r = build_dev(fx, dev);
	if (r >= 0)
		r = build_fake_nvml(fx, nvml);
	if (r >= 0 && defaults)
		r = build_pci(fx, defaults, "defaults", true);
	if (r < 0)
		return r;
	json_object_foreach(templates, key, e) {
		char where[WHERE_MAX];

		snprintf(where, sizeof(where), "templates.%s", key);
		r = build_pci(fx, e, where, true);
		if (r < 0)
			return r;
	}
	json_array_foreach(pci, i, e) {
		_cleanup_(json_decrefp) json_t *merged = NULL;
		char where[WHERE_MAX];

		snprintf(where, sizeof(where), "pci[%zu]", i);
		if (!json_is_object(e))
			return fx_invalid(fx, "%s: expected object", where);
		r = merge_entry(fx, defaults, templates, e, where, &merged);
		if (r >= 0)
			r = build_pci(fx, merged, where, false);
		if (r < 0)
			return r;
	}
	json_array_foreach(platform, i, e) {
		char where[WHERE_MAX];

		snprintf(where, sizeof(where), "platform[%zu]", i);
		r = build_platform(fx, e, where);
		if (r < 0)
			return r;
	}
	/* After the pci entries, whose nvidia minors it needs. */
	r = build_mig_capabilities(fx, nvml);
	if (r < 0)
		return r;
	/* Last, so that they can replace anything generated above. */
	r = build_raw_files(fx, raw_files, "", "raw_files");
	if (r < 0)
		return r;
	return build_links(fx, links);
}

/* ---- the API --------------------------------------------------------------------------------- */

static int fixture_build_internal(struct fixture *fx, const char *json, const char *dir)
{
	_cleanup_(json_decrefp) json_t *doc = NULL;
	json_error_t err;
	int r;

	if (!json || isempty(dir))
		return fx_invalid(fx, "no description or no directory given");
	doc = json_loads(json, JSON_REJECT_DUPLICATES, &err);
	if (!doc)
		return fx_invalid(fx, "malformed JSON at line %d, column %d: %s", err.line,
				  err.column, err.text);
	/* Read-only, for what earlier builds left; a missing directory fails below, later. */
	fx->tree = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fx->dir = dir;

	/* Validate everything before touching the tree. */
	r = fx_run(fx, doc);
	if (r < 0)
		return r;

	fx->root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fx->root < 0)
		return fx_fs_error(fx, -errno, "open", dir);
	return fx_run(fx, doc);
}

int fixture_build(const char *json, const char *dir, char **ret_error)
{
	_cleanup_(fx_done) struct fixture fx = { .root = -EBADF, .tree = -EBADF };
	int r;

	r = fixture_build_internal(&fx, json, dir);
	if (r < 0 && ret_error)
		*ret_error = TAKE_PTR(fx.error);
	return r;
}

int fixture_build_temp(const char *json, char **ret_dir, char **ret_error)
{
	_cleanup_free_ char *dir = NULL;
	const char *tmp;
	int r;

	tmp = secure_getenv("TMPDIR");
	if (isempty(tmp))
		tmp = "/tmp";
	dir = pathf("%s/xpu-fixture-XXXXXX", tmp);
	if (!dir)
		return -ENOMEM;
	if (!mkdtemp(dir)) {
		r = -errno;
		if (ret_error && asprintf(ret_error, "Failed to create a directory in %s: %s", tmp,
					  strerror(-r)) < 0)
			*ret_error = NULL;
		return r;
	}
	r = fixture_build(json, dir, ret_error);
	if (r < 0) {
		(void)fixture_destroy(dir);
		return r;
	}
	*ret_dir = TAKE_PTR(dir);
	return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (remove(path) < 0 && errno != ENOENT)
		return errno;
	return 0;
}

int fixture_destroy(const char *dir)
{
	_cleanup_free_ char *real = NULL;
	struct stat st;
	int r;

	if (isempty(dir))
		return -EINVAL;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	real = realpath(dir, NULL);
	if (!real)
		return -errno;
	if (streq(real, "/")) /* a caller's bug must not become rm -rf / */
		return -EPERM;
	r = nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	if (r < 0)
		return negative_errno();
	return r > 0 ? -r : 0;
}

const struct sim_node *sim_node_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < sim_nodes_n; i++)
		if (streq(sim_nodes[i].name, name))
			return &sim_nodes[i];
	return NULL;
}

