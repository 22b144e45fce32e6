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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/fileio.h"
#include "shared/macro.h"
#include "shared/parse.h"
#include "sim/fixture.h"

#define CPU_BITS 65536u	     /* parse_cpu_list()'s limit */
#define NUMA_BITS 1024u	     /* the kernel's MAX_NUMNODES ceiling */
#define NVIDIA_MINORS 255u   /* 255 is nvidiactl */
#define MAJOR_MAX 4095	     /* 12 bits of dev_t */
#define MINOR_MAX 1048575    /* 20 bits of dev_t */
#define WHERE_MAX 160
#define MIG_GI_IDS 15	     /* GPU instance ids 0..14 ... */
#define MIG_CI_IDS 8	     /* ... each with compute instance ids 0..7 */

/* json_decrefp() comes with jansson (>= 2.11). */

/* A GPU of the description: the minor of its nvidia block, by PCI address. */
struct nvidia_gpu {
	char address[13];
	int minor;
};

struct fixture {
	int root;		    /* the tree; -EBADF while validating */
	int tree;		    /* the tree, to read what earlier builds left, in both walks */
	const char *dir;	    /* the tree's path */
	char *error;		    /* the first error, malloc'd */
	char device[13];	    /* address of the PCI function at hand, for messages */
	const char *driver_version; /* nvidia_driver.version, borrowed from the document */
	json_t *numa_nodes;	    /* borrowed, validated */
	char *all_cpus;		    /* union of the NUMA nodes' CPUs in list format, or NULL */
	char (*addresses)[13];	    /* PCI addresses seen so far, to reject duplicates */
	size_t n_addresses;
	uint64_t nvidia_minors[(NVIDIA_MINORS + 63) / 64];
	struct nvidia_gpu *gpus; /* the pci entries with an nvidia block */
	size_t n_gpus;
};

struct pcie_link {
	const char *speed, *max_speed;
	int width, max_width; /* -1: not given */
};

struct pci_function {
	char address[13];
	char *path; /* "sys/devices/pci0000:15/.../0000:18:00.0"; NULL: validate only */
	uint32_t vendor, device, subsystem_vendor, subsystem_device, class, revision;
	const char *driver;
	int numa_node;
	const char *local_cpulist;
	const struct pcie_link *link;
};

static inline bool fx_validating(const struct fixture *fx)
{
	return fx->root < 0;
}

/* ---- errors ---------------------------------------------------------------------------------- */

/* An invalid description: -EINVAL, message names the key (and the device being described). */
static _printf_(2, 3) int fx_invalid(struct fixture *fx, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;
	int n;

	if (fx->error) /* keep the first, most specific message */
		return -EINVAL;
	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if (fx->device[0]) {
		char *full = NULL;

		if (asprintf(&full, "%s (device %s)", msg, fx->device) >= 0) {
			free(msg);
			msg = full;
		}
	}
	fx->error = msg;
	return -EINVAL;
}

static int fx_bad_key(struct fixture *fx, const char *where, const char *key, const char *what)
{
	return fx_invalid(fx, "%s%s%s: %s", where, *where ? "." : "", key, what);
}

/* A file system error on @path (relative to the tree). */
static int fx_fs_error(struct fixture *fx, int r, const char *what, const char *path)
{
	if (fx->error || r == -ENOMEM)
		return r;
	if (asprintf(&fx->error, "Failed to %s %s: %s", what, path, strerror(-r)) < 0)
		fx->error = NULL;
	return r;
}

/* ---- paths ----------------------------------------------------------------------------------- */

static _printf_(1, 2) char *pathf(const char *fmt, ...)
{
	va_list ap;
	char *p = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : p;
}

/*
 * A relative path that stays inside the tree: no leading '/', no empty, "." or ".." components.
 * With @single, exactly one component (an attribute or class device name).
 */
static bool path_is_safe(const char *p, bool single)
{
	const char *c = p;

	if (isempty(p) || strlen(p) >= PATH_MAX / 2)
		return false;
	for (;;) {
		size_t n = strcspn(c, "/");

		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (c[n] == '\0')
			return true;
		if (single)
			return false;
		c += n + 1;
	}
}

static size_t dir_len(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? (size_t)(s - p) : 0;
}

/*
 * The relative target for a symlink at @link pointing to @target (both relative to the tree),
 * computed as sysfs does: climb from the link's directory to the deepest directory that is also
 * an ancestor of the target's parent, then descend. That gives the kernel's own spellings, e.g.
 * "../../../bus/pci/drivers/nvidia" and, for a DRM node's "device", "../../../0000:18:00.0".
 */
static char *relative_link(const char *link, const char *target)
{
	size_t ldir = dir_len(link), tdir = dir_len(target), n = MIN(ldir, tdir);
	size_t common = 0, ups = 0;
	const char *l, *t;
	char *ret, *p;

	for (size_t i = 0; i <= n; i++) {
		bool lend = i == ldir || link[i] == '/';
		bool tend = i == tdir || target[i] == '/';

		if (lend && tend)
			common = i;
		if (i == n || link[i] != target[i])
			break;
	}
	/* One ".." per component of the link's directory below the common ancestor. */
	l = link + common;
	if (*l == '/')
		l++;
	if (l < link + ldir) {
		ups = 1;
		for (; l < link + ldir; l++)
			ups += *l == '/';
	}
	t = target + common;
	if (*t == '/')
		t++;
	ret = malloc(ups * 3 + strlen(t) + 1);
	if (!ret)
		return NULL;
	p = ret;
	for (size_t i = 0; i < ups; i++)
		p = stpcpy(p, "../");
	strcpy(p, t);
	return ret;
}

/* ---- writing the tree ------------------------------------------------------------------------ */

/* Creates @path and every missing directory above it. */
static int mkdir_p_at(int root, const char *path)
{
	_cleanup_free_ char *p = strdup(path);
	char *s;

	if (!p)
		return -ENOMEM;
	for (s = p;;) {
		char *slash = strchr(s, '/');

		if (slash)
			*slash = '\0';
		if (mkdirat(root, p, 0755) < 0 && errno != EEXIST)
			return -errno;
		if (!slash)
			return 0;
		*slash = '/';
		s = slash + 1;
	}
}

static int mkdir_parents_at(int root, const char *path)
{
	_cleanup_free_ char *p = NULL;
	size_t n = dir_len(path);

	if (n == 0)
		return 0;
	p = strndup(path, n);
	if (!p)
		return -ENOMEM;
	return mkdir_p_at(root, p);
}

static int fx_mkdir(struct fixture *fx, const char *path)
{
	int r;

	if (fx_validating(fx))
		return 0;
	if (!path)
		return -ENOMEM;
	r = mkdir_p_at(fx->root, path);
	return r < 0 ? fx_fs_error(fx, r, "create directory", path) : 0;
}

static int fx_write(struct fixture *fx, const char *path, const char *data, size_t len)
{
	_cleanup_close_ int fd = -EBADF;
	int r;

	if (fx_validating(fx))
		return 0;
	if (!path || !data)
		return -ENOMEM;
	r = mkdir_parents_at(fx->root, path);
	if (r < 0)
		return fx_fs_error(fx, r, "create the directories above", path);
	fd = openat(fx->root, path,
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
	if (fd < 0)
		return fx_fs_error(fx, -errno, "create", path);
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fx_fs_error(fx, -errno, "write", path);
		}
		data += n;
		len -= (size_t)n;
	}
	r = close_nointr(TAKE_FD(fd));
	return r < 0 ? fx_fs_error(fx, r, "write", path) : 0;
}

/* Writes "<dir>/<name>" with formatted content. */
static _printf_(4, 5) int fx_attrf(struct fixture *fx, const char *dir, const char *name,
				   const char *fmt, ...)
{
	_cleanup_free_ char *path = NULL, *s = NULL;
	va_list ap;
	int n;

	if (fx_validating(fx))
		return 0;
	path = pathf("%s/%s", dir, name);
	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		s = NULL;
		return -ENOMEM;
	}
	return fx_write(fx, path, s, (size_t)n);
}

static int fx_unlink(struct fixture *fx, const char *path)
{
	if (fx_validating(fx))
		return 0;
	if (!path)
		return -ENOMEM;
	if (unlinkat(fx->root, path, 0) < 0 && errno != ENOENT)
		return fx_fs_error(fx, -errno, "remove", path);
	return 0;
}

/* A relative symlink at @link to @target (both relative to the tree), replacing an old link. */
static int fx_symlink(struct fixture *fx, const char *link, const char *target)
{
	_cleanup_free_ char *rel = NULL;
	int r;

	if (fx_validating(fx))
		return 0;
	if (!link || !target)
		return -ENOMEM;
	rel = relative_link(link, target);
	if (!rel)
		return -ENOMEM;
	r = mkdir_parents_at(fx->root, link);
	if (r < 0)
		return fx_fs_error(fx, r, "create the directories above", link);
	if (symlinkat(rel, fx->root, link) >= 0)
		return 0;
	if (errno != EEXIST)
		return fx_fs_error(fx, -errno, "create symlink", link);
	if (unlinkat(fx->root, link, 0) < 0 || symlinkat(rel, fx->root, link) < 0)
		return fx_fs_error(fx, -errno, "replace", link);
	return 0;
}

static int readlinkat_malloc(int dirfd, const char *path, char **ret)
{
	size_t size = 256;

	for (;;) {
		_cleanup_free_ char *buf = malloc(size);
		ssize_t n;

		if (!buf)
			return -ENOMEM;
		n = readlinkat(dirfd, path, buf, size);
		if (n < 0)
			return negative_errno();
		if ((size_t)n < size) {
			buf[n] = '\0';
			*ret = TAKE_PTR(buf);
			return 0;
		}
		if (size >= PATH_MAX)
			return -ENAMETOOLONG;
		size *= 2;
	}
}

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

static bool bit_test(const uint64_t *bits, unsigned i)
{
	return bits[i / 64] & (UINT64_C(1) << (i % 64));
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

static int check_keys(struct fixture *fx, json_t *obj, const char *where, const char *const *keys)
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

static json_t *get_value(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_null(v) ? NULL : v;
}

static int get_string(struct fixture *fx, json_t *obj, const char *where, const char *key,
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

static int get_int(struct fixture *fx, json_t *obj, const char *where, const char *key,
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

static int get_hex(struct fixture *fx, json_t *obj, const char *where, const char *key,
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

static int get_object(struct fixture *fx, json_t *obj, const char *where, const char *key,
		      json_t **ret)
{
	json_t *v = get_value(obj, key);

	if (v && !json_is_object(v))
		return fx_bad_key(fx, where, key, "expected object");
	*ret = v;
	return 0;
}

static int get_array(struct fixture *fx, json_t *obj, const char *where, const char *key,
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

static int build_nvidia_driver(struct fixture *fx, json_t *drv)
{
	static const char *const keys[] = { "version", NULL };
	int r;

	fx->driver_version = NULL;
	if (!drv)
		return 0;
	r = check_keys(fx, drv, "nvidia_driver", keys);
	if (r < 0)
		return r;
	r = get_string(fx, drv, "nvidia_driver", "version", true, &fx->driver_version);
	if (r < 0)
		return r;
	if (!string_is_printable(fx->driver_version))
		return fx_invalid(fx, "nvidia_driver.version: must be one line of printable text");

	r = fx_attrf(fx, "proc/driver/nvidia", "version",
		     "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  %s  Release Build  "
		     "(dvs-builder@U22-I3-AE18-23-3)  Thu Jan 1 00:00:00 UTC 2026\n"
		     "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04) \n",
		     fx->driver_version);
	if (r >= 0)
		r = fx_mkdir(fx, "proc/driver/nvidia/gpus");
	/* Present whenever the driver is loaded: the MIG capabilities behind /dev/nvidia-caps. */
	if (r >= 0)
		r = fx_attrf(fx, "proc/driver/nvidia/capabilities/mig", "config",
			     "DeviceFileMinor: 1\nDeviceFileMode: 256\nDeviceFileModify: 1\n");
	if (r >= 0)
		r = fx_attrf(fx, "proc/driver/nvidia/capabilities/mig", "monitor",
			     "DeviceFileMinor: 2\nDeviceFileMode: 292\nDeviceFileModify: 1\n");
	return r;
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
static int build_raw_files(struct fixture *fx, json_t *files, const char *dir, const char *where)
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
 * The fake NVML library's description (tests/fakes/README.md), written compactly to
 * run/fake-nvml.json. Its contents are the fake's to validate; a new file replaces the old one
 * with a rename, so a library reading it never sees half of it.
 */
static int build_fake_nvml(struct fixture *fx, json_t *nvml)
{
	static const char path[] = "run/fake-nvml.json", tmp[] = "run/.fake-nvml.json.tmp";
	_cleanup_free_ char *text = NULL;
	int r;

	if (!nvml || fx_validating(fx))
		return 0;
	text = json_dumps(nvml, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	r = fx_write(fx, tmp, text, strlen(text));
	if (r < 0)
		return r;
	if (renameat(fx->root, tmp, fx->root, path) < 0)
		return fx_fs_error(fx, -errno, "replace", path);
	return 0;
}

/* ---- PCI functions --------------------------------------------------------------------------- */

static int parse_link(struct fixture *fx, json_t *obj, const char *where, struct pcie_link *ret)
{
	static const char *const keys[] = { "speed", "width", "max_speed", "max_width", NULL };
	struct pcie_link l = { .width = -1, .max_width = -1 };
	char sub[WHERE_MAX];
	unsigned mts;
	int r;

	if (!obj) {
		*ret = l;
		return 0;
	}
	snprintf(sub, sizeof(sub), "%s.link", where);
	r = check_keys(fx, obj, sub, keys);
	if (r < 0)
		return r;
	r = get_string(fx, obj, sub, "speed", false, &l.speed);
	if (r >= 0)
		r = get_string(fx, obj, sub, "max_speed", false, &l.max_speed);
	if (r >= 0)
		r = get_int(fx, obj, sub, "width", false, 0, 32, -1, &l.width);
	if (r >= 0)
		r = get_int(fx, obj, sub, "max_width", false, 0, 32, -1, &l.max_width);
	if (r < 0)
		return r;
	/* "Unknown" is what the kernel prints for a link that is down, so it is valid here. */
	if (l.speed && parse_pcie_link_speed(l.speed, &mts) < 0 && !streq(l.speed, "Unknown"))
		return fx_invalid(fx, "%s.speed: \"%s\" is not a link speed such as "
				      "\"32.0 GT/s PCIe\" (use attrs for garbage)", sub, l.speed);
	if (l.max_speed && parse_pcie_link_speed(l.max_speed, &mts) < 0 &&
	    !streq(l.max_speed, "Unknown"))
		return fx_invalid(fx,
				  "%s.max_speed: \"%s\" is not a link speed such as "
				  "\"32.0 GT/s PCIe\" (use attrs for garbage)",
				  sub, l.max_speed);
	*ret = l;
	return 0;
}

/* The standard files of one PCI function, and its subsystem, driver and bus links. */
static int write_function(struct fixture *fx, const struct pci_function *f)
{
	_cleanup_free_ char *modalias = NULL, *subsystem = NULL, *driver_link = NULL;
	_cleanup_free_ char *old_driver = NULL, *bus_link = NULL, *driver_line = NULL;
	unsigned bc = f->class >> 16, sc = (f->class >> 8) & 0xff, pi = f->class & 0xff;
	const char *d = f->path;
	int r;

	if (fx_validating(fx))
		return 0;
	modalias = pathf("pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X", f->vendor, f->device,
			 f->subsystem_vendor, f->subsystem_device, bc, sc, pi);
	subsystem = pathf("%s/subsystem", d);
	driver_link = pathf("%s/driver", d);
	bus_link = pathf("sys/bus/pci/devices/%s", f->address);
	if (f->driver)
		driver_line = pathf("DRIVER=%s\n", f->driver);
	if (!modalias || !subsystem || !driver_link || !bus_link || (f->driver && !driver_line))
		return -ENOMEM;

	r = fx_attrf(fx, d, "vendor", "0x%04x\n", f->vendor);
	if (r >= 0)
		r = fx_attrf(fx, d, "device", "0x%04x\n", f->device);
	if (r >= 0)
		r = fx_attrf(fx, d, "subsystem_vendor", "0x%04x\n", f->subsystem_vendor);
	if (r >= 0)
		r = fx_attrf(fx, d, "subsystem_device", "0x%04x\n", f->subsystem_device);
	if (r >= 0)
		r = fx_attrf(fx, d, "class", "0x%06x\n", f->class);
	if (r >= 0)
		r = fx_attrf(fx, d, "revision", "0x%02x\n", f->revision);
	if (r >= 0)
		r = fx_attrf(fx, d, "numa_node", "%d\n", f->numa_node);
	if (r >= 0 && f->local_cpulist)
		r = fx_attrf(fx, d, "local_cpulist", "%s\n", f->local_cpulist);
	if (r >= 0)
		r = fx_attrf(fx, d, "enable", "1\n");
	if (r >= 0)
		r = fx_attrf(fx, d, "modalias", "%s\n", modalias);
	/* As the kernel's pci_uevent() prints it: "%04X" class, uppercase ids. */
	if (r >= 0)
		r = fx_attrf(fx, d, "uevent",
			     "%sPCI_CLASS=%04X\nPCI_ID=%04X:%04X\nPCI_SUBSYS_ID=%04X:%04X\n"
			     "PCI_SLOT_NAME=%s\nMODALIAS=%s\n",
			     driver_line ?: "", f->class, f->vendor, f->device, f->subsystem_vendor,
			     f->subsystem_device, f->address, modalias);
	if (r >= 0 && f->link->speed)
		r = fx_attrf(fx, d, "current_link_speed", "%s\n", f->link->speed);
	if (r >= 0 && f->link->width >= 0)
		r = fx_attrf(fx, d, "current_link_width", "%d\n", f->link->width);
	if (r >= 0 && f->link->max_speed)
		r = fx_attrf(fx, d, "max_link_speed", "%s\n", f->link->max_speed);
	if (r >= 0 && f->link->max_width >= 0)
		r = fx_attrf(fx, d, "max_link_width", "%d\n", f->link->max_width);
	if (r >= 0)
		r = fx_symlink(fx, subsystem, "sys/bus/pci");
	if (r < 0)
		return r;

	/* Merging into an existing tree may rebind: drop the old driver's link back to us. */
	if (readlink_basename_at(fx->root, driver_link, &old_driver) >= 0 &&
	    !streq_ptr(old_driver, f->driver)) {
		_cleanup_free_ char *old_back = NULL;

		old_back = pathf("sys/bus/pci/drivers/%s/%s", old_driver, f->address);
		r = fx_unlink(fx, old_back);
		if (r >= 0)
			r = fx_unlink(fx, driver_link);
		if (r < 0)
			return r;
	}
	if (f->driver) {
		_cleanup_free_ char *drv = NULL, *back = NULL;

		drv = pathf("sys/bus/pci/drivers/%s", f->driver);
		back = pathf("sys/bus/pci/drivers/%s/%s", f->driver, f->address);
		r = fx_symlink(fx, driver_link, drv);
		if (r >= 0)
			r = fx_symlink(fx, back, d);
		if (r < 0)
			return r;
	}
	return fx_symlink(fx, bus_link, d);
}

static int parse_address(struct fixture *fx, const char *s, const char *what, char ret[static 13])
{
	if (parse_pci_address(s, ret) < 0)
		return fx_invalid(fx, "%s: \"%s\" is not a PCI address such as \"0000:18:00.0\"",
				  what, s);
	return 0;
}

/* Rejects a PCI address that an earlier entry of this description already used. */
static int claim_address(struct fixture *fx, const char *address, const char *what)
{
	char(*a)[13];

	for (size_t i = 0; i < fx->n_addresses; i++)
		if (streq(fx->addresses[i], address))
			return fx_invalid(fx, "%s: %s is described twice", what, address);
	a = reallocarray(fx->addresses, fx->n_addresses + 1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	fx->addresses = a;
	strcpy(fx->addresses[fx->n_addresses++], address);
	return 0;
}

static int write_class_device(struct fixture *fx, const struct pci_function *f, const char *class,
			      const char *name, const char *devname, const char *devtype,
			      int major, int minor)
{
	_cleanup_free_ char *dir = NULL, *device = NULL, *subsystem = NULL, *cls = NULL;
	_cleanup_free_ char *class_link = NULL, *dev_link = NULL, *node = NULL, *text = NULL;
	char majmin[32] = "";
	size_t size = 0;
	FILE *uevent;
	int r;

	if (fx_validating(fx))
		return 0;
	dir = pathf("%s/%s/%s", f->path, class, name);
	device = pathf("%s/device", dir);
	subsystem = pathf("%s/subsystem", dir);
	cls = pathf("sys/class/%s", class);
	class_link = pathf("sys/class/%s/%s", class, name);
	if (major >= 0) {
		snprintf(majmin, sizeof(majmin), "%d:%d", major, minor);
		dev_link = pathf("sys/dev/char/%s", majmin);
	}
	if (devname)
		node = pathf("dev/%s", devname);
	if (!dir || !device || !subsystem || !cls || !class_link || (major >= 0 && !dev_link) ||
	    (devname && !node))
		return -ENOMEM;

	uevent = open_memstream(&text, &size);
	if (!uevent)
		return -ENOMEM;
	/* In the order of the kernel's device uevent. */
	if (major >= 0)
		fprintf(uevent, "MAJOR=%d\nMINOR=%d\n", major, minor);
	if (devname)
		fprintf(uevent, "DEVNAME=%s\n", devname);
	if (devtype)
		fprintf(uevent, "DEVTYPE=%s\n", devtype);
	if (fclose(uevent) != 0)
		return -ENOMEM;
	r = fx_attrf(fx, dir, "uevent", "%s", text);
	if (r >= 0 && major >= 0)
		r = fx_attrf(fx, dir, "dev", "%s\n", majmin);
	if (r >= 0)
		r = fx_symlink(fx, device, f->path);
	if (r >= 0)
		r = fx_symlink(fx, subsystem, cls);
	if (r >= 0)
		r = fx_symlink(fx, class_link, dir);
	if (r >= 0 && dev_link)
		r = fx_symlink(fx, dev_link, dir);
	if (r >= 0 && node)
		r = fx_write(fx, node, "", 0);
	return r;
}

static int build_class_devices(struct fixture *fx, const struct pci_function *f, json_t *list,
			       const char *where)
{
	static const char *const keys[] = { "class", "name",	"devname", "major",
					    "minor", "devtype", NULL };
	char sub[WHERE_MAX];
	size_t i;
	json_t *e;
	int r;

	if (!list)
		return 0;
	json_array_foreach(list, i, e) {
		const char *class = NULL, *name = NULL, *devname = NULL, *devtype = NULL;
		int major, minor;

		snprintf(sub, sizeof(sub), "%s.class_devices[%zu]", where, i);
		if (!json_is_object(e))
			return fx_invalid(fx, "%s: expected object", sub);
		r = check_keys(fx, e, sub, keys);
		if (r >= 0)
			r = get_string(fx, e, sub, "class", true, &class);
		if (r >= 0)
			r = get_string(fx, e, sub, "name", true, &name);
		if (r >= 0)
			r = get_string(fx, e, sub, "devname", false, &devname);
		if (r >= 0)
			r = get_string(fx, e, sub, "devtype", false, &devtype);
		if (r >= 0)
			r = get_int(fx, e, sub, "major", false, 0, MAJOR_MAX, -1, &major);
		if (r >= 0)
			r = get_int(fx, e, sub, "minor", false, 0, MINOR_MAX, -1, &minor);
		if (r < 0)
			return r;
		if (!path_is_safe(class, true))
			return fx_invalid(fx, "%s.class: \"%s\" is not a class name", sub, class);
		if (!path_is_safe(name, true))
			return fx_invalid(fx, "%s.name: \"%s\" is not a device name", sub, name);
		if (devname && !path_is_safe(devname, false))
			return fx_invalid(fx,
					  "%s.devname: \"%s\" is not a relative path below dev/",
					  sub, devname);
		if (devtype && !string_is_printable(devtype))
			return fx_invalid(fx, "%s.devtype: must be one line of printable text",
					  sub);
		if ((major < 0) != (minor < 0))
			return fx_invalid(fx, "%s: \"major\" and \"minor\" go together", sub);
		if (f->path) {
			r = write_class_device(fx, f, class, name, devname, devtype, major, minor);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* @partial: a "defaults" block, where nothing is required yet. */
static int build_nvidia_gpu(struct fixture *fx, const struct pci_function *f, json_t *obj,
			    const char *where, bool partial)
{
	static const char *const keys[] = { "minor", "model",	  "uuid",     "vbios",
					    "irq",   "firmware", "excluded", NULL };
	_cleanup_free_ char *dir = NULL, *node = NULL, *caps = NULL;
	const char *model = NULL, *uuid = NULL, *vbios = NULL, *firmware = NULL;
	struct nvidia_gpu *gpus;
	char sub[WHERE_MAX];
	int minor, irq, r;
	json_t *excluded;

	if (!obj)
		return 0;
	snprintf(sub, sizeof(sub), "%s.nvidia", where);
	r = check_keys(fx, obj, sub, keys);
	if (r >= 0)
		r = get_int(fx, obj, sub, "minor", !partial, 0, NVIDIA_MINORS - 1, -1, &minor);
	if (r >= 0)
		r = get_string(fx, obj, sub, "model", !partial, &model);
	if (r >= 0)
		r = get_string(fx, obj, sub, "uuid", !partial, &uuid);
	if (r >= 0)
		r = get_string(fx, obj, sub, "vbios", false, &vbios);
	if (r >= 0)
		r = get_string(fx, obj, sub, "firmware", false, &firmware);
	if (r >= 0)
		r = get_int(fx, obj, sub, "irq", false, 0, INT_MAX, 0, &irq);
	if (r < 0)
		return r;
	excluded = get_value(obj, "excluded");
	if (excluded && !json_is_boolean(excluded))
		return fx_bad_key(fx, sub, "excluded", "expected boolean");
	if ((model && !string_is_printable(model)) || (uuid && !string_is_printable(uuid)) ||
	    (vbios && !string_is_printable(vbios)) || (firmware && !string_is_printable(firmware)))
		return fx_invalid(fx, "%s: model, uuid, vbios and firmware must be one line of "
				      "printable text", sub);
	if (partial)
		return 0;
	if (bit_test(fx->nvidia_minors, (unsigned)minor))
		return fx_invalid(fx, "%s.minor: minor %d is used twice", sub, minor);
	fx->nvidia_minors[minor / 64] |= UINT64_C(1) << (minor % 64);
	gpus = reallocarray(fx->gpus, fx->n_gpus + 1, sizeof(*gpus));
	if (!gpus)
		return -ENOMEM;
	fx->gpus = gpus;
	strcpy(fx->gpus[fx->n_gpus].address, f->address);
	fx->gpus[fx->n_gpus++].minor = minor;
	if (!f->path)
		return 0;

	dir = pathf("proc/driver/nvidia/gpus/%s", f->address);
	node = pathf("dev/nvidia%d", minor);
	caps = pathf("proc/driver/nvidia/capabilities/gpu%d/mig", minor);
	if (!dir || !node || !caps)
		return -ENOMEM;
	/* The layout of the driver's own file, tabs and all. */
	r = fx_attrf(fx, dir, "information",
		     "Model: \t\t %s\n"
		     "IRQ:   \t\t %d\n"
		     "GPU UUID: \t %s\n"
		     "Video BIOS: \t %s\n"
		     "Bus Type: \t PCIe\n"
		     "DMA Size: \t 52 bits\n"
		     "DMA Mask: \t 0xfffffffffffff\n"
		     "Bus Location: \t %s\n"
		     "Device Minor: \t %d\n"
		     "GPU Firmware: \t %s\n"
		     "GPU Excluded:\t %s\n",
		     model, irq, uuid, vbios ?: "N/A", f->address, minor, firmware ?: fx->driver_version ?: "N/A",
		     json_is_true(excluded) ? "Yes" : "No");
	if (r >= 0)
		r = fx_write(fx, node, "", 0);
	if (r >= 0)
		r = fx_mkdir(fx, caps);
	return r;
}

/* {"name": "value" | null}: extra (or replaced, or with null removed) files of the function. */
static int build_attrs(struct fixture *fx, const struct pci_function *f, json_t *attrs,
		       const char *where)
{
	char sub[WHERE_MAX];
	const char *key;
	json_t *v;
	int r;

	if (!attrs)
		return 0;
	snprintf(sub, sizeof(sub), "%s.attrs", where);
	json_object_foreach(attrs, key, v) {
		_cleanup_free_ char *path = NULL;

		if (!path_is_safe(key, true))
			return fx_bad_key(fx, sub, key, "not a file name");
		if (!json_is_string(v) && !json_is_null(v))
			return fx_bad_key(fx, sub, key, "expected string or null");
		if (!f->path)
			continue;
		path = pathf("%s/%s", f->path, key);
		if (json_is_null(v))
			r = fx_unlink(fx, path);
		else if (json_string_length(v) == 0)
			r = fx_write(fx, path, "", 0);
		else
			r = fx_attrf(fx, f->path, key, "%s\n", json_string_value(v));
		if (r < 0)
			return r;
	}
	return 0;
}

/* "sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0" for the first @n parents (or none). */
static char *device_path(const char *root_address, char (*parents)[13], size_t n,
			 const char *address)
{
	_cleanup_free_ char *buf = NULL;
	size_t size = 0;
	FILE *f;

	f = open_memstream(&buf, &size);
	if (!f)
		return NULL;
	/* The root complex is named after the domain and bus of the topmost function. */
	fprintf(f, "sys/devices/pci%.7s", root_address);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "/%s", parents[i]);
	if (address)
		fprintf(f, "/%s", address);
	if (fclose(f) != 0)
		return NULL;
	return TAKE_PTR(buf);
}

static const char *const pci_keys[] = {
	"address",	 "vendor",	  "device",	   "subsystem_vendor", "subsystem_device",
	"class",	 "revision",	  "driver",	   "numa_node",	       "local_cpulist",
	"link",		 "parents",	  "bridge_vendor", "bridge_device",    "nvidia",
	"class_devices", "attrs",	  "raw_files",	   NULL,
};

/*
 * One entry of "pci" (already merged with "defaults"), or with @partial the "defaults" block
 * itself, where no key is required and nothing is written.
 */
static int build_pci(struct fixture *fx, json_t *e, const char *where, bool partial)
{
	struct pci_function f = { .numa_node = -1 };
	_cleanup_free_ char(*parents)[13] = NULL;
	_cleanup_free_ char *path = NULL;
	json_t *link_obj = NULL, *parents_arr = NULL, *nvidia = NULL, *class_devices = NULL;
	json_t *attrs = NULL, *raw_files = NULL;
	uint32_t bridge_vendor = 0, bridge_device = 0;
	struct pcie_link link;
	const char *address = NULL;
	size_t n_parents = 0;
	char sub[WHERE_MAX];
	int r;

	if (!json_is_object(e))
		return fx_invalid(fx, "%s: expected object", where);
	r = check_keys(fx, e, where, pci_keys);
	if (r < 0)
		return r;
	if (partial && json_object_get(e, "address"))
		return fx_bad_key(fx, where, "address", "not allowed in defaults and templates");
	r = get_string(fx, e, where, "address", !partial, &address);
	if (r < 0)
		return r;
	if (address) {
		snprintf(sub, sizeof(sub), "%s.address", where);
		r = parse_address(fx, address, sub, f.address);
		if (r < 0)
			return r;
		strcpy(fx->device, f.address);
		r = claim_address(fx, f.address, sub);
		if (r < 0)
			return r;
	}

	r = get_hex(fx, e, where, "vendor", !partial, 0xffff, 0, &f.vendor);
	if (r >= 0)
		r = get_hex(fx, e, where, "device", !partial, 0xffff, 0, &f.device);
	if (r >= 0)
		r = get_hex(fx, e, where, "subsystem_vendor", false, 0xffff, 0,
			    &f.subsystem_vendor);
	if (r >= 0)
		r = get_hex(fx, e, where, "subsystem_device", false, 0xffff, 0,
			    &f.subsystem_device);
	if (r >= 0)
		r = get_hex(fx, e, where, "class", !partial, 0xffffff, 0, &f.class);
	if (r >= 0)
		r = get_hex(fx, e, where, "revision", false, 0xff, 0, &f.revision);
	if (r >= 0)
		r = get_hex(fx, e, where, "bridge_vendor", false, 0xffff, 0x1000, &bridge_vendor);
	if (r >= 0)
		r = get_hex(fx, e, where, "bridge_device", false, 0xffff, 0xc030, &bridge_device);
	if (r >= 0)
		r = get_string(fx, e, where, "driver", false, &f.driver);
	if (r >= 0)
		r = get_int(fx, e, where, "numa_node", false, -1, NUMA_BITS - 1, -1, &f.numa_node);
	if (r >= 0)
		r = get_string(fx, e, where, "local_cpulist", false, &f.local_cpulist);
	if (r >= 0)
		r = get_object(fx, e, where, "link", &link_obj);
	if (r >= 0)
		r = get_array(fx, e, where, "parents", &parents_arr);
	if (r >= 0)
		r = get_object(fx, e, where, "nvidia", &nvidia);
	if (r >= 0)
		r = get_array(fx, e, where, "class_devices", &class_devices);
	if (r >= 0)
		r = get_object(fx, e, where, "attrs", &attrs);
	if (r >= 0)
		r = get_object(fx, e, where, "raw_files", &raw_files);
	if (r >= 0)
		r = parse_link(fx, link_obj, where, &link);
	if (r < 0)
		return r;
	f.link = &link;
	if (f.driver && !path_is_safe(f.driver, true))
		return fx_invalid(fx, "%s.driver: \"%s\" is not a driver name", where, f.driver);
	if (f.local_cpulist) {
		unsigned count;

		if (parse_cpu_list(f.local_cpulist, &count) < 0)
			return fx_invalid(fx, "%s.local_cpulist: \"%s\" is not a CPU list such as "
					      "\"0-55,112-167\" (use attrs for garbage)",
					  where, f.local_cpulist);
	}

	if (parents_arr) {
		json_t *p;
		size_t i;

		parents = calloc(json_array_size(parents_arr) + 1, sizeof(*parents));
		if (!parents)
			return -ENOMEM;
		json_array_foreach(parents_arr, i, p) {
			snprintf(sub, sizeof(sub), "%s.parents[%zu]", where, i);
			if (!json_is_string(p))
				return fx_invalid(fx, "%s: expected string", sub);
			r = parse_address(fx, json_string_value(p), sub, parents[i]);
			if (r < 0)
				return r;
			if (streq(parents[i], f.address))
				return fx_invalid(fx, "%s: a function cannot be its own parent",
						  sub);
			for (size_t j = 0; j < i; j++)
				if (streq(parents[i], parents[j]))
					return fx_invalid(fx, "%s: %s appears twice", sub,
							  parents[i]);
		}
		n_parents = json_array_size(parents_arr);
	}

	/* Without a NUMA-local list of its own, a function gets its node's CPUs, or all of them. */
	if (!f.local_cpulist && fx->numa_nodes) {
		json_t *node;
		size_t i;

		f.local_cpulist = fx->all_cpus;
		json_array_foreach(fx->numa_nodes, i, node)
			if (json_integer_value(json_object_get(node, "node")) == f.numa_node)
				f.local_cpulist = json_string_value(json_object_get(node, "cpus"));
	}

	if (!partial && !fx_validating(fx)) {
		path = device_path(n_parents > 0 ? parents[0] : f.address, parents, n_parents,
				   f.address);
		if (!path)
			return -ENOMEM;
		/* Each bridge above is a PCI function of its own, bound to the port driver. */
		for (size_t i = 0; i < n_parents; i++) {
			_cleanup_free_ char *bpath = NULL;
			struct pci_function b = {
				.vendor = bridge_vendor,
				.device = bridge_device,
				.subsystem_vendor = bridge_vendor,
				.subsystem_device = bridge_device,
				.class = 0x060400,
				.driver = "pcieport",
				.numa_node = f.numa_node,
				.local_cpulist = f.local_cpulist,
				.link = &link,
			};

			bpath = device_path(parents[0], parents, i + 1, NULL);
			if (!bpath)
				return -ENOMEM;
			strcpy(b.address, parents[i]);
			b.path = bpath;
			r = write_function(fx, &b);
			if (r < 0)
				return r;
		}
		f.path = path;
		r = write_function(fx, &f);
		if (r < 0)
			return r;
	}

	r = build_nvidia_gpu(fx, &f, nvidia, where, partial);
	if (r >= 0)
		r = build_class_devices(fx, &f, class_devices, where);
	if (r >= 0)
		r = build_attrs(fx, &f, attrs, where);
	if (r >= 0) {
		snprintf(sub, sizeof(sub), "%s.raw_files", where);
		r = build_raw_files(fx, raw_files, f.path, sub);
	}
	fx->device[0] = '\0';
	return r;
}

/* These keys hold objects that an entry refines key by key rather than replaces. */
static bool key_merges(const char *key)
{
	return streq(key, "link") || streq(key, "nvidia") || streq(key, "attrs") ||
	       streq(key, "raw_files");
}

/* Lays @src over @m: keys replace, except that key_merges() objects are refined key by key. */
static int overlay(json_t *m, json_t *src)
{
	const char *key;
	json_t *v;

	json_object_foreach(src, key, v) {
		json_t *d = json_object_get(m, key);

		if (streq(key, "template"))
			continue;
		if (json_is_object(d) && json_is_object(v) && key_merges(key)) {
			/* Copy first: @d may be shared with "defaults" or a template. */
			json_t *copy = json_deep_copy(d);

			if (!copy || json_object_update(copy, v) < 0 ||
			    json_object_set_new(m, key, copy) < 0)
				return -ENOMEM;
		} else if (json_object_set(m, key, v) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* An entry of "pci" as the builder sees it: defaults, then its template, then its own keys. */
static int merge_entry(struct fixture *fx, json_t *defaults, json_t *templates, json_t *entry,
		       const char *where, json_t **ret)
{
	_cleanup_(json_decrefp) json_t *m = NULL;
	json_t *t = NULL, *name;
	int r;

	name = get_value(entry, "template");
	if (name) {
		if (!json_is_string(name))
			return fx_bad_key(fx, where, "template", "expected string");
		t = json_object_get(templates, json_string_value(name));
		if (!t)
			return fx_invalid(fx, "%s.template: no template \"%s\" in \"templates\"",
					  where, json_string_value(name));
	}
	m = json_object();
	if (!m)
		return -ENOMEM;
	r = defaults ? overlay(m, defaults) : 0;
	if (r >= 0 && t)
		r = overlay(m, t);
	if (r >= 0)
		r = overlay(m, entry);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(m);
	return 0;
}

/* ---- MIG capabilities ----------------------------------------------------------------------- */

/*
 * The nvidia-caps minor of GPU instance @gi of the GPU with nvidia minor @gpu_minor (@ci < 0), or
 * of its compute instance @ci. Ours, not the driver's table: 1 and 2 are mig/config and
 * mig/monitor, then each GPU minor has 15 * 9 minors, each GPU instance id 9 of them: its own
 * access, then one per compute instance id. Unique within a node, at most 34427.
 */
static int mig_cap_minor(int gpu_minor, int gi, int ci)
{
	return 3 + (gpu_minor * MIG_GI_IDS + gi) * (1 + MIG_CI_IDS) + 1 + ci;
}

/* "access" of a capability: read-only for all (292 is 0444), changeable by nvidia-modprobe. */
static int write_mig_cap(struct fixture *fx, const char *dir, int minor)
{
	_cleanup_free_ char *node = pathf("dev/nvidia-caps/nvidia-cap%d", minor);
	int r;

	r = fx_attrf(fx, dir, "access", "DeviceFileMinor: %d\nDeviceFileMode: 292\n"
		     "DeviceFileModify: 1\n", minor);
	return r < 0 ? r : fx_write(fx, node, "", 0);
}

/* The nvidia minor of the GPU at @address: from this description's pci entries, else the tree's. */
static int gpu_minor(struct fixture *fx, const char *address)
{
	static const char key[] = "\nDevice Minor:";
	_cleanup_free_ char *path = NULL, *info = NULL;
	char *v;
	int minor;

	for (size_t i = 0; i < fx->n_gpus; i++)
		if (streq(fx->gpus[i].address, address))
			return fx->gpus[i].minor;
	path = pathf("proc/driver/nvidia/gpus/%s/information", address);
	if (!path)
		return -ENOMEM;
	if (fx->tree < 0 || read_attr_at(fx->tree, path, 0, &info) < 0)
		return -ENOENT;
	v = strstr(info, key);
	if (!v)
		return -ENOENT;
	v += strlen(key);
	v += strspn(v, " \t");
	v[strcspn(v, "\n")] = '\0';
	if (safe_atoi(v, &minor) < 0 || minor < 0 || minor >= (int)NVIDIA_MINORS)
		return -ENOENT;
	return minor;
}

/* Removes the GPU instances of capabilities/gpu<minor>/mig/ that an earlier build wrote. */
static int remove_mig_instances(struct fixture *fx, int minor)
{
	_cleanup_free_ char *mig = pathf("proc/driver/nvidia/capabilities/gpu%d/mig", minor);
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int r;

	if (fx_validating(fx))
		return 0;
	if (!mig)
		return -ENOMEM;
	r = opendir_at(fx->root, mig, &d);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return fx_fs_error(fx, r, "open", mig);
	while ((errno = 0, de = readdir(d))) {
		_cleanup_free_ char *path = NULL;

		if (strncmp(de->d_name, "gi", 2) != 0)
			continue;
		path = pathf("%s/%s/%s", fx->dir, mig, de->d_name);
		if (!path)
			return -ENOMEM;
		r = fixture_destroy(path);
		if (r < 0)
			return fx_fs_error(fx, r, "remove", path);
	}
	return errno > 0 ? fx_fs_error(fx, -errno, "read", mig) : 0;
}

/*
 * One GPU of nvml.gpus: with "mig" given, its GPU instances below capabilities/gpu<minor>/mig/
 * are replaced by those of "mig_instances" when "current" is true (none otherwise), with the
 * fake's ids: "gi" and "ci" of an object, else position + 1 and 0. Only the keys used here are
 * checked; the rest is the fake's to judge. Sets *ret_written when it wrote a capability.
 */
static int build_gpu_mig(struct fixture *fx, json_t *g, const char *where, bool *ret_written)
{
	json_t *mig = NULL, *current, *list = NULL, *e;
	const char *bus_id = NULL;
	uint16_t gi_seen = 0;
	char address[13], sub[WHERE_MAX];
	int minor, r;
	size_t i;

	if (!json_is_object(g))
		return fx_invalid(fx, "%s: expected object", where);
	r = get_object(fx, g, where, "mig", &mig);
	if (r >= 0)
		r = get_array(fx, g, where, "mig_instances", &list);
	if (r >= 0)
		r = get_string(fx, g, where, "bus_id", true, &bus_id);
	if (r < 0 || !mig)
		return r;
	snprintf(sub, sizeof(sub), "%s.bus_id", where);
	r = parse_address(fx, bus_id, sub, address);
	if (r < 0)
		return r;
	current = json_object_get(mig, "current");
	if (!json_is_boolean(current))
		return fx_invalid(fx, "%s.mig.current: expected boolean", where);
	if (!json_is_true(current))
		list = NULL;

	minor = gpu_minor(fx, address);
	if (minor == -ENOMEM)
		return minor;
	if (minor < 0 && json_array_size(list) > 0)
		return fx_invalid(fx, "%s.bus_id: %s is no GPU of the tree (a pci entry with an "
				  "\"nvidia\" block)", where, address);
	if (minor < 0)
		return 0;
	r = remove_mig_instances(fx, minor);
	if (r < 0)
		return r;

	json_array_foreach(list, i, e) {
		_cleanup_free_ char *gi_dir = NULL, *ci_dir = NULL;
		int gi = (int)i + 1, ci = 0;

		snprintf(sub, sizeof(sub), "%s.mig_instances[%zu]", where, i);
		if (json_is_object(e)) {
			r = get_int(fx, e, sub, "gi", false, 0, MIG_GI_IDS - 1, gi, &gi);
			if (r >= 0)
				r = get_int(fx, e, sub, "ci", false, 0, MIG_CI_IDS - 1, 0, &ci);
			if (r < 0)
				return r;
		} else if (!json_is_integer(e)) {
			return fx_invalid(fx, "%s: expected a profile id or an object", sub);
		}
		if (gi >= MIG_GI_IDS)
			return fx_invalid(fx, "%s: no GPU instance id left", sub);
		if (gi_seen & (1u << gi))
			return fx_invalid(fx, "%s: GPU instance id %d is used twice", sub, gi);
		gi_seen |= 1u << gi;

		gi_dir = pathf("proc/driver/nvidia/capabilities/gpu%d/mig/gi%d", minor, gi);
		ci_dir = pathf("%s/ci%d", gi_dir, ci);
		if (!gi_dir || !ci_dir)
			return -ENOMEM;
		r = write_mig_cap(fx, gi_dir, mig_cap_minor(minor, gi, -1));
		if (r >= 0)
			r = write_mig_cap(fx, ci_dir, mig_cap_minor(minor, gi, ci));
		if (r < 0)
			return r;
		*ret_written = true;
	}
	return 0;
}

/*
 * The capability files that the NVIDIA driver shows for the MIG instances of the "nvml" block's
 * GPUs, which the backend reads to find a MIG device's /dev/nvidia-caps nodes: per instance
 * gpu<minor>/mig/gi<G>/access and gi<G>/ci<C>/access, and their dev/nvidia-caps/nvidia-cap<N>.
 * With any of them, mig/config and mig/monitor (minors 1 and 2) as well, unless already there.
 */
static int build_mig_capabilities(struct fixture *fx, json_t *nvml)
{
	static const struct {
		const char *name, *mode;
		int minor;
	} global[] = { { "config", "256", 1 }, { "monitor", "292", 2 } };
	json_t *gpus = NULL, *g;
	bool written = false;
	size_t i;
	int r;

	fx->device[0] = '\0';
	if (!nvml)
		return 0;
	r = get_array(fx, nvml, "nvml", "gpus", &gpus);
	if (r < 0)
		return r;
	json_array_foreach(gpus, i, g) {
		char where[32];

		snprintf(where, sizeof(where), "nvml.gpus[%zu]", i);
		r = build_gpu_mig(fx, g, where, &written);
		if (r < 0)
			return r;
	}
	for (i = 0; written && i < ELEMENTSOF(global); i++) {
		_cleanup_free_ char *path = NULL, *node = NULL;

		path = pathf("proc/driver/nvidia/capabilities/mig/%s", global[i].name);
		node = pathf("dev/nvidia-caps/nvidia-cap%d", global[i].minor);
		if (!path || !node)
			return -ENOMEM;
		if (!exists_at(fx->root, path))
			r = fx_attrf(fx, "proc/driver/nvidia/capabilities/mig", global[i].name,
				     "DeviceFileMinor: %d\nDeviceFileMode: %s\n"
				     "DeviceFileModify: 1\n", global[i].minor, global[i].mode);
		if (r >= 0 && !exists_at(fx->root, node))
			r = fx_write(fx, node, "", 0);
		if (r < 0)
			return r;
	}
	return 0;
}

static const char *const top_keys[] = {
	"name",	    "summary",	 "numa_nodes", "char_majors", "block_majors", "nvidia_driver",
	"dev",	    "defaults", "templates",  "pci",	       "raw_files",    "nvml",
	NULL,
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
	       *templates = NULL, *pci = NULL, *raw_files = NULL, *nvml = NULL, *e = NULL;
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
	/* After the pci entries, whose nvidia minors it needs. */
	r = build_mig_capabilities(fx, nvml);
	if (r < 0)
		return r;
	/* Last, so that they can replace anything generated above. */
	return build_raw_files(fx, raw_files, "", "raw_files");
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

/* ---- hot-unplug ------------------------------------------------------------------------------ */

/*
 * The directory a relative symlink at @link (below the tree) points to, resolved lexically and
 * confined to the tree.
 */
static int resolve_link(int root, const char *link, char **ret)
{
	_cleanup_free_ char *target = NULL, *in = NULL, *out = NULL;
	char *c, *end, *save = NULL;
	int r;

	r = readlinkat_malloc(root, link, &target);
	if (r < 0)
		return r;
	if (target[0] == '/')
		return -EINVAL;
	in = pathf("%.*s/%s", (int)dir_len(link), link, target);
	if (!in)
		return -ENOMEM;
	out = calloc(strlen(in) + 1, 1);
	if (!out)
		return -ENOMEM;
	end = out;
	for (c = strtok_r(in, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (streq(c, "."))
			continue;
		if (streq(c, "..")) {
			char *slash = strrchr(out, '/');

			if (end == out)
				return -EINVAL; /* above the tree */
			end = slash ? slash : out;
			*end = '\0';
			continue;
		}
		if (end != out)
			*end++ = '/';
		end = stpcpy(end, c);
	}
	if (end == out)
		return -EINVAL;
	*ret = TAKE_PTR(out);
	return 0;
}

struct unplug {
	int root;
	const char *dir;
};

static int unplug_unlink(const struct unplug *u, const char *path)
{
	if (!path)
		return -ENOMEM;
	if (unlinkat(u->root, path, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* A PCI function going away: its bus link, its driver's link to it, the driver's /proc entry. */
static int unplug_function(const struct unplug *u, const char *path, const char *address)
{
	_cleanup_free_ char *driver_link = NULL, *driver = NULL, *back = NULL, *bus = NULL;
	_cleanup_free_ char *proc = NULL;
	struct stat st;
	int r;

	driver_link = pathf("%s/driver", path);
	bus = pathf("sys/bus/pci/devices/%s", address);
	proc = pathf("%s/proc/driver/nvidia/gpus/%s", u->dir, address);
	if (!driver_link || !bus || !proc)
		return -ENOMEM;
	if (readlink_basename_at(u->root, driver_link, &driver) >= 0) {
		back = pathf("sys/bus/pci/drivers/%s/%s", driver, address);
		r = unplug_unlink(u, back);
		if (r < 0)
			return r;
	}
	r = unplug_unlink(u, bus);
	if (r < 0)
		return r;
	if (lstat(proc, &st) >= 0)
		return fixture_destroy(proc);
	return 0;
}

/* A class device (a directory whose "subsystem" points into sys/class): its links and node. */
static int unplug_class_device(const struct unplug *u, const char *path, const char *name)
{
	_cleanup_free_ char *subsystem = NULL, *target = NULL, *uevent = NULL;
	_cleanup_free_ char *devfile = NULL, *majmin = NULL, *devname = NULL, *link = NULL;
	const char *class;
	size_t n;
	int r;

	subsystem = pathf("%s/subsystem", path);
	if (!subsystem)
		return -ENOMEM;
	if (readlinkat_malloc(u->root, subsystem, &target) < 0)
		return 0;
	n = dir_len(target);
	class = target + n + (n > 0);
	if (n < 5 || strncmp(target + n - 5, "class", 5) != 0 ||
	    (n > 5 && target[n - 6] != '/') || !path_is_safe(class, true))
		return 0; /* not a class device (a PCI function's subsystem is bus/pci) */

	link = pathf("sys/class/%s/%s", class, name);
	r = unplug_unlink(u, link);
	if (r < 0)
		return r;

	devfile = pathf("%s/dev", path);
	uevent = pathf("%s/uevent", path);
	if (!devfile || !uevent)
		return -ENOMEM;
	if (read_attr_at(u->root, devfile, 32, &majmin) >= 0 && !strchr(majmin, '/')) {
		_cleanup_free_ char *dev_link = pathf("sys/dev/char/%s", majmin);

		r = unplug_unlink(u, dev_link);
		if (r < 0)
			return r;
	}
	if (read_uevent_key_at(u->root, uevent, "DEVNAME", &devname) >= 0 &&
	    path_is_safe(devname, false)) {
		_cleanup_free_ char *node = pathf("dev/%s", devname);

		r = unplug_unlink(u, node);
		if (r < 0)
			return r;
	}
	return 0;
}

static int unplug_walk(const struct unplug *u, const char *path, unsigned depth)
{
	_cleanup_(closedirp) DIR *d = NULL;
	const char *name = path + dir_len(path) + (dir_len(path) > 0);
	char address[13];
	struct dirent *de;
	int fd, r;

	if (depth > 32)
		return -ELOOP;
	if (parse_pci_address(name, address) >= 0 && streq(address, name))
		r = unplug_function(u, path, address);
	else
		r = unplug_class_device(u, path, name);
	if (r < 0)
		return r;

	fd = openat(u->root, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		safe_close(fd);
		return -errno;
	}
	while ((errno = 0, de = readdir(d))) {
		_cleanup_free_ char *child = NULL;
		struct stat st;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
			continue;
		child = pathf("%s/%s", path, de->d_name);
		if (!child)
			return -ENOMEM;
		if (de->d_type == DT_UNKNOWN &&
		    (fstatat(u->root, child, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)))
			continue;
		r = unplug_walk(u, child, depth + 1);
		if (r < 0)
			return r;
	}
	return errno > 0 ? -errno : 0;
}

int fixture_remove_pci(const char *dir, const char *address)
{
	_cleanup_free_ char *bus = NULL, *path = NULL, *full = NULL;
	_cleanup_close_ int root = -EBADF;
	struct unplug u;
	char canonical[13];
	int r;

	if (isempty(dir) || parse_pci_address(address, canonical) < 0)
		return -EINVAL;
	root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return -errno;
	bus = pathf("sys/bus/pci/devices/%s", canonical);
	if (!bus)
		return -ENOMEM;
	r = resolve_link(root, bus, &path);
	if (r == -EINVAL || r == -ENOENT)
		return -ENOENT;
	if (r < 0)
		return r;
	if (strncmp(path, "sys/devices/", 12) != 0)
		return -ENOENT;

	u = (struct unplug){ .root = root, .dir = dir };
	r = unplug_walk(&u, path, 0);
	if (r < 0)
		return r;
	full = pathf("%s/%s", dir, path);
	if (!full)
		return -ENOMEM;
	return fixture_destroy(full);
}

int fixture_set_driver(const char *dir, const char *address, const char *driver)
{
	_cleanup_free_ char *fn = NULL, *link = NULL, *uevent = NULL, *text = NULL, *old = NULL,
			    *back = NULL, *target = NULL, *out = NULL;
	char canon[13], resolved[PATH_MAX], root[PATH_MAX];
	size_t depth = 0;
	FILE *f;
	size_t size;
	int r;

	if (parse_pci_address(address, canon) < 0 ||
	    (driver && (!string_is_printable(driver) || strchr(driver, '/'))))
		return -EINVAL;
	fn = pathf("%s/sys/bus/pci/devices/%s", dir, canon);
	if (!fn)
		return -ENOMEM;
	if (!realpath(fn, resolved) || !realpath(dir, root))
		return -errno;
	link = pathf("%s/driver", resolved);
	uevent = pathf("%s/uevent", resolved);
	if (!link || !uevent)
		return -ENOMEM;

	/* Unbind: the driver's link, its link back, and the DRIVER= line all go. */
	if (readlink_basename_at(AT_FDCWD, link, &old) >= 0) {
		back = pathf("%s/sys/bus/pci/drivers/%s/%s", dir, old, canon);
		if (!back)
			return -ENOMEM;
		(void)unlink(back);
		if (unlink(link) < 0)
			return -errno;
	}
	r = read_attr_at(AT_FDCWD, uevent, 0, &text);
	if (r < 0)
		return r;
	f = open_memstream(&out, &size);
	if (!f)
		return -ENOMEM;
	if (driver)
		fprintf(f, "DRIVER=%s\n", driver);
	for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strncmp(line, "DRIVER=", 7) != 0)
			fprintf(f, "%s\n", line);
	}
	if (fclose(f) != 0)
		return -ENOMEM;
	f = fopen(uevent, "we");
	if (!f)
		return -errno;
	fputs(out, f);
	if (fclose(f) != 0)
		return -EIO;
	if (!driver)
		return 0;

	/* Bind: a relative link up to sys/ and down to the driver, as the kernel spells it. */
	if (strncmp(resolved, root, strlen(root)) != 0)
		return -EINVAL;
	for (const char *p = resolved + strlen(root) + strlen("/sys/"); *p; p++)
		depth += *p == '/';
	depth++;
	{
		_cleanup_free_ char *up = calloc(depth * 3 + 1, 1), *drvdir = NULL;

		if (!up)
			return -ENOMEM;
		for (size_t i = 0; i < depth; i++)
			strcat(up, "../");
		target = pathf("%sbus/pci/drivers/%s", up, driver);
		drvdir = pathf("%s/sys/bus/pci/drivers/%s", dir, driver);
		if (!target || !drvdir)
			return -ENOMEM;
		if (mkdir(drvdir, 0755) < 0 && errno != EEXIST)
			return -errno;
	}
	if (symlink(target, link) < 0)
		return -errno;
	return 0;
}
