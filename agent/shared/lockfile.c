// SPDX-License-Identifier: GPL-2.0-or-later
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fileio.h"
#include "lockfile.h"
#include "macro.h"
#include "parse.h"

#define PROC_LOCKS_MAX (4U << 20) /* thousands of locks: far more than a node holds */

int lockfile_parse_holder(const char *locks, unsigned major, unsigned minor, unsigned long ino,
			  pid_t *ret)
{
	for (const char *line = locks; line && *line;) {
		const char *end = strchrnul(line, '\n');
		char kind[16], mode[16], access[16];
		unsigned maj, min;
		unsigned long i;
		int pid, n = 0;

		/* "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5328497 0 EOF"; blocked waiters carry
		 * "->" before the type and are not the holder */
		if (sscanf(line, "%*d: %15s %15s %15s %d %x:%x:%lu%n", kind, mode, access, &pid,
			   &maj, &min, &i, &n) == 7 &&
		    n > 0 && line + n <= end && streq(kind, "FLOCK") && maj == major &&
		    min == minor && i == ino && pid > 0) {
			*ret = pid;
			return 0;
		}
		line = *end ? end + 1 : end;
	}
	return -ESRCH;
}

int lockfile_holder(int fd, pid_t *ret)
{
	_cleanup_free_ char *locks = NULL;
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	/* the kernel's table, not the host root's: locks live in this kernel whatever the root */
	r = read_attr_at(AT_FDCWD, "/proc/locks", PROC_LOCKS_MAX, &locks);
	if (r < 0)
		return r;
	return lockfile_parse_holder(locks, major(st.st_dev), minor(st.st_dev),
				     (unsigned long)st.st_ino, ret);
}

/* The PID a lock file's holder wrote into it; -ESRCH when there is none (yet). */
static int written_holder(int fd, pid_t *ret)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	int pid;

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (safe_atoi(buf, &pid) < 0 || pid <= 0)
		return -ESRCH;
	*ret = pid;
	return 0;
}

static int write_pid(int fd)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

	if (ftruncate(fd, 0) < 0)
		return -errno;
	if (pwrite(fd, buf, (size_t)n, 0) != n)
		return errno ? -errno : -EIO;
	return 0;
}

int lockfile_take(const char *path, unsigned flags, pid_t *ret_holder)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	pid_t holder = 0;
	int r;

	if (flags & LOCKFILE_CREATE)
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK,
			  0644);
	else
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (flags & LOCKFILE_CREATE) {
		/* a FIFO or device planted at the path is not a lock file */
		if (fstat(fd, &st) < 0)
			return -errno;
		if (!S_ISREG(st.st_mode))
			return S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK)
			return -errno;
		if (lockfile_holder(fd, &holder) < 0 &&
		    (!(flags & LOCKFILE_CREATE) || written_holder(fd, &holder) < 0))
			holder = 0;
		if (ret_holder)
			*ret_holder = holder;
		return -EBUSY;
	}
	if (flags & LOCKFILE_CREATE) {
		r = write_pid(fd);
		if (r < 0)
			return r;
	}
	return TAKE_FD(fd);
}
