// SPDX-License-Identifier: GPL-2.0-or-later
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "parse.h"

/* read(2), retried on EINTR; -errno on failure. */
static ssize_t read_nointr(int fd, void *buf, size_t n)
{
	for (;;) {
		ssize_t k = read(fd, buf, n);

		if (k >= 0 || errno != EINTR)
			return k < 0 ? -errno : k;
	}
}

int read_attr_at(int dirfd, const char *path, size_t max, char **ret)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;

	if (max == 0)
		max = ATTR_MAX;
	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return negative_errno();
	buf = malloc(max + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read_nointr(fd, buf + len, max + 1 - len);

		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return -EFBIG;
		/*
		 * sysfs and procfs hand out a whole attribute in one read, and local files
		 * return short only at their end: a short read is the end. This halves the
		 * syscalls of a scan over thousands of attributes.
		 */
		if (len < max + 1)
			break;
	}
	if (memchr(buf, '\0', len))
		return -EBADMSG;
	buf[len] = '\0';
	strstrip_trailing(buf);
	*ret = TAKE_PTR(buf);
	return 0;
}

int read_full_fd(int fd, size_t max, char **ret, size_t *ret_len)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 4096;
	struct stat st;

	/* The size is a hint: a file that does not change meanwhile takes one read and one more
	 * for its end. A buffer of max + 1 bytes notices a file over the limit. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size < max)
		cap = (size_t)st.st_size + 1;
	cap = MIN(cap, max + 1);
	for (;;) {
		ssize_t n;

		if (!buf || len == cap) {
			char *m;

			if (len > max)
				return -EFBIG;
			if (buf)
				cap = MIN(cap * 2, max + 1);
			m = realloc(buf, cap + 1);
			if (!m)
				return -ENOMEM;
			buf = m;
		}
		n = read_nointr(fd, buf + len, cap - len);
		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

int read_text_attr_at(int dirfd, const char *path, size_t max, char **ret)
{
	_cleanup_free_ char *v = NULL;
	int r = read_attr_at(dirfd, path, max, &v);

	*ret = NULL;
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (!string_is_printable(v) || isempty(v))
		return -EINVAL;
	*ret = TAKE_PTR(v);
	return 0;
}

int read_attr_int_at(int dirfd, const char *path, int *ret)
{
	_cleanup_free_ char *s = NULL;
	int r;

	r = read_attr_at(dirfd, path, 64, &s);
	if (r < 0)
		return r;
	if (s[0] == '\0')
		return -ENODATA;
	return safe_atoi(s, ret);
}

int read_attr_u64_at(int dirfd, const char *path, uint64_t *ret)
{
	_cleanup_free_ char *s = NULL;
	int r;

	r = read_attr_at(dirfd, path, 64, &s);
	if (r < 0)
		return r;
	if (s[0] == '\0')
		return -ENODATA;
	return safe_atou64(s, ret);
}

int read_attr_hex_at(int dirfd, const char *path, uint32_t max, uint32_t *ret)
{
	_cleanup_free_ char *s = NULL;
	int r;

	r = read_attr_at(dirfd, path, 64, &s);
	if (r < 0)
		return r;
	if (s[0] == '\0')
		return -ENODATA;
	return parse_hex_id(s, max, ret);
}

/* The last element of the path a readlink() of @n bytes gave in @buf (NUL-terminated here). */
static int path_basename(char *buf, ssize_t n, char **ret)
{
	const char *base;
	char *s;

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	base = strrchr(buf, '/');
	base = base ? base + 1 : buf;
	if (isempty(base))
		return -EINVAL;
	s = strdup(base);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int readlink_basename_at(int dirfd, const char *path, char **ret)
{
	char buf[PATH_MAX];

	return path_basename(buf, readlinkat(dirfd, path, buf, sizeof(buf) - 1), ret);
}

int resolve_basename_at(int dirfd, const char *path, char **ret)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_PATH | O_CLOEXEC);
	char proc[64], buf[PATH_MAX];

	if (fd < 0)
		return -errno;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return path_basename(buf, readlink(proc, buf, sizeof(buf) - 1), ret);
}

/*
 * The value of "KEY<sep>value" in a file of such lines. With ':' (procfs style) blanks after
 * the separator are skipped; with '=' (uevent style) the value is taken verbatim.
 */
static int read_key_at(int dirfd, const char *path, const char *key, char sep, char **ret)
{
	_cleanup_free_ char *s = NULL;
	size_t k = strlen(key);
	char *line, *save = NULL;
	int r;

	r = read_attr_at(dirfd, path, 0, &s);
	if (r < 0)
		return r;
	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *v;

		if (strncmp(line, key, k) != 0 || line[k] != sep)
			continue;
		v = line + k + 1;
		if (sep == ':')
			v = strstrip_trailing(v + strspn(v, " \t"));
		v = strdup(v);
		if (!v)
			return -ENOMEM;
		*ret = v;
		return 0;
	}
	return -ENXIO;
}

int read_uevent_key_at(int dirfd, const char *path, const char *key, char **ret)
{
	return read_key_at(dirfd, path, key, '=', ret);
}

int read_colon_key_at(int dirfd, const char *path, const char *key, char **ret)
{
	return read_key_at(dirfd, path, key, ':', ret);
}

int write_attr_at(int dirfd, const char *path, const char *value)
{
	_cleanup_close_ int fd = -EBADF;
	size_t len = strlen(value);
	ssize_t n;

	/* no O_CREAT: a control file the kernel does not offer is not made up */
	fd = openat(dirfd, path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	do
		n = write(fd, value, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int exists_at(int dirfd, const char *path)
{
	struct stat st;

	return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int opendir_at(int dirfd, const char *path, DIR **ret)
{
	DIR *d;
	int fd;

	if (streq(path, "."))
		fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	else
		fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		int r = -errno;

		safe_close(fd);
		return r;
	}
	*ret = d;
	return 0;
}

int mkdir_mode(const char *path, mode_t mode)
{
	struct stat st;

	if (mkdir(path, mode) < 0) {
		if (errno != EEXIST)
			return -errno;
		if (stat(path, &st) < 0)
			return -errno;
		return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	}
	/* the umask (UMask=0077 in the unit) must not take what the documentation promises */
	if (chmod(path, mode) < 0)
		return -errno;
	return 0;
}

int mkdir_parents(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdir(p, mode) < 0) {
			if (errno != EEXIST)
				return -errno;
		} else if (chmod(p, mode) < 0) {
			/* made by us: the mode documented, not what the umask left */
			return -errno;
		}
		*s = '/';
	}
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

#define TEMP_SUFFIX ".XXXXXX"

int write_temp_at(int dfd, const char *name, const void *data, size_t len, mode_t mode,
		  char **ret_temp)
{
	_cleanup_free_ char *temp = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	if (strlen(name) + strlen("." TEMP_SUFFIX) > NAME_MAX)
		return -ENAMETOOLONG;
	if (asprintf(&temp, ".%s" TEMP_SUFFIX, name) < 0)
		return -ENOMEM;
	/* mkostempat() does not exist: fill in the name ourselves, O_EXCL makes it safe */
	for (unsigned attempt = 0;; attempt++) {
		char *x = temp + strlen(temp) - strlen(TEMP_SUFFIX) + 1;
		static const char chars[] =
		    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
		uint64_t v;

		if (attempt >= 100)
			return -EEXIST;
		if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
			v = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ attempt;
		for (size_t i = 0; i < strlen(TEMP_SUFFIX) - 1; i++, v /= sizeof(chars) - 1)
			x[i] = chars[v % (sizeof(chars) - 1)];
		fd = openat(dfd, temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0)
			break;
		if (errno != EEXIST)
			return -errno;
	}

	r = write_all(fd, data, len);
	if (r == 0)
		r = RET_NERRNO(fchmod(fd, mode));
	if (r == 0)
		r = RET_NERRNO(fsync(fd));
	if (r == 0)
		r = close_nointr(TAKE_FD(fd));
	if (r < 0) {
		(void)unlinkat(dfd, temp, 0);
		return r;
	}
	*ret_temp = TAKE_PTR(temp);
	return 0;
}

int rename_durably_at(int dfd, const char *temp, const char *name)
{
	if (renameat(dfd, temp, dfd, name) < 0) {
		int r = -errno;

		(void)unlinkat(dfd, temp, 0);
		return r;
	}
	return RET_NERRNO(fsync(dfd));
}

int write_file_atomic_at(int dfd, const char *name, const void *data, size_t len, mode_t mode)
{
	_cleanup_free_ char *temp = NULL;
	int r;

	r = write_temp_at(dfd, name, data, len, mode, &temp);
	if (r < 0)
		return r;
	return rename_durably_at(dfd, temp, name);
}

bool is_temp_of(const char *name, const char *target)
{
	size_t n = strlen(target);

	return name[0] == '.' && strncmp(name + 1, target, n) == 0 && name[n + 1] == '.' &&
	       strlen(name) == 1 + n + strlen(TEMP_SUFFIX);
}
