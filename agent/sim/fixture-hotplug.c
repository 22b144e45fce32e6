// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Hot-plug in a fixture tree: a PCI function unplugged with everything that pointed to it, and a
 * driver bound or unbound, as the kernel would show either.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/fileio.h"
#include "shared/parse.h"
#include "sim/fixture-internal.h"

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

