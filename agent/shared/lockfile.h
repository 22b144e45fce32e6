/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One process at a time on a path: an exclusive flock(2), held for as long as the descriptor
 * that took it stays open (O_CLOEXEC: helpers that xpud spawns never inherit it; the kernel
 * drops it when xpud exits, however it exits). Whoever finds it taken learns the holder's PID
 * from the kernel's own table (/proc/locks), or, for a lock file, from the PID its holder wrote
 * into it. None of these functions log.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

enum {
	LOCKFILE_CREATE = 1 << 0, /* @path is a lock file: created 0644 if missing, holds our PID */
};

/*
 * Takes an exclusive, non-blocking flock on @path: with LOCKFILE_CREATE a regular lock file
 * (created if missing, never through a symlink; the holder's PID is written into it),
 * otherwise an existing file or directory that other programs own (nothing is written).
 * Returns the descriptor that holds the lock (close it to release), or -EBUSY when another
 * open file holds it, with *ret_holder set to the holder's PID (0 when it cannot be told;
 * @ret_holder may be NULL), or -errno of open/flock.
 */
int lockfile_take(const char *path, unsigned flags, pid_t *ret_holder);

/*
 * The PID that holds a flock on the file @fd refers to, as /proc/locks lists it. -ESRCH when
 * no such lock is listed (or the holder is outside our PID namespace), -errno on read errors.
 */
int lockfile_holder(int fd, pid_t *ret);

/*
 * The PID a /proc/locks text @locks lists for a FLOCK on device @major:@minor, inode @ino;
 * -ESRCH when there is none. Exposed for tests.
 */
int lockfile_parse_holder(const char *locks, unsigned major, unsigned minor, unsigned long ino,
			  pid_t *ret);
