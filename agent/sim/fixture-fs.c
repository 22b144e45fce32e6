// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The fixture builder's file primitives: messages for a bad description or a failed write, paths
 * kept inside the tree, and the writes themselves, which do nothing while validating.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/fileio.h"
#include "sim/fixture-internal.h"

/* ---- errors ---------------------------------------------------------------------------------- */

/* An invalid description: -EINVAL, message names the key (and the device being described). */
_printf_(2, 3) int fx_invalid(struct fixture *fx, const char *fmt, ...)
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

int fx_bad_key(struct fixture *fx, const char *where, const char *key, const char *what)
{
	return fx_invalid(fx, "%s%s%s: %s", where, *where ? "." : "", key, what);
}

/* A file system error on @path (relative to the tree). */
int fx_fs_error(struct fixture *fx, int r, const char *what, const char *path)
{
	if (fx->error || r == -ENOMEM)
		return r;
	if (asprintf(&fx->error, "Failed to %s %s: %s", what, path, strerror(-r)) < 0)
		fx->error = NULL;
	return r;
}

/* ---- paths ----------------------------------------------------------------------------------- */

_printf_(1, 2) char *pathf(const char *fmt, ...)
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
bool path_is_safe(const char *p, bool single)
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

size_t dir_len(const char *p)
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

int fx_mkdir(struct fixture *fx, const char *path)
{
	int r;

	if (fx_validating(fx))
		return 0;
	if (!path)
		return -ENOMEM;
	r = mkdir_p_at(fx->root, path);
	return r < 0 ? fx_fs_error(fx, r, "create directory", path) : 0;
}

int fx_write(struct fixture *fx, const char *path, const char *data, size_t len)
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
_printf_(4, 5) int fx_attrf(struct fixture *fx, const char *dir, const char *name,
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

int fx_unlink(struct fixture *fx, const char *path)
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
int fx_symlink(struct fixture *fx, const char *link, const char *target)
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

int readlinkat_malloc(int dirfd, const char *path, char **ret)
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

