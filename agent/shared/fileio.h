/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reading the host through directory fds. Every path below is relative to a dirfd that was
 * opened once from the host root (see host.h), so tests can point the whole agent at a
 * generated tree. None of these functions log.
 */
#pragma once

#include <sys/types.h>

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/macro.h"

#define ATTR_MAX 4096 /* sysfs attributes are at most one page */

/*
 * Reads a small text file (a sysfs attribute) below @dirfd, trailing whitespace stripped.
 * Returns 0 and a malloc'd string; -ENOENT if missing, -EFBIG if larger than @max bytes
 * (ATTR_MAX if 0), -EBADMSG if it contains a NUL byte, other -errno from the syscalls.
 */
int read_attr_at(int dirfd, const char *path, size_t max, char **ret);

/*
 * Reads all of @fd from its current offset into a malloc'd, NUL-terminated buffer (which may
 * hold NUL bytes: *ret_len says how much was read). -EFBIG when there is more than @max bytes,
 * other -errno from the syscalls.
 */
int read_full_fd(int fd, size_t max, char **ret, size_t *ret_len);

/*
 * An attribute that holds one line of text: 0 and *ret (malloc'd) when it does, 0 and *ret NULL
 * when it does not exist, -EINVAL when it is empty or not printable, -ENOMEM, other -errno of the
 * read (*ret NULL).
 */
int read_text_attr_at(int dirfd, const char *path, size_t max, char **ret);

/* read_attr_at() followed by a strict parser; -ENODATA when the file is empty. */
int read_attr_int_at(int dirfd, const char *path, int *ret);
int read_attr_u64_at(int dirfd, const char *path, uint64_t *ret);
int read_attr_hex_at(int dirfd, const char *path, uint32_t max, uint32_t *ret);

/* Basename of a symlink's target (e.g. "driver" -> "nvidia"). -ENOENT if missing. */
int readlink_basename_at(int dirfd, const char *path, char **ret);
/* The last element of the path @path (below @dirfd) resolves to, every link followed: a class
 * device's "device" link reads "../../../0000:3b:00.0", or "../.." where the class directory sits
 * below its parent; both name 0000:3b:00.0. 0 or -errno (-ENOENT: dangling). */
int resolve_basename_at(int dirfd, const char *path, char **ret);

/* Looks up "KEY=" in a uevent-style file of KEY=VALUE lines. -ENOENT / -ENXIO (no such key). */
int read_uevent_key_at(int dirfd, const char *path, const char *key, char **ret);

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

/*
 * Opens the directory @path below @dirfd for readdir(); "." duplicates @dirfd instead of
 * looking the path up again. Returns 0 or -errno.
 */
int opendir_at(int dirfd, const char *path, DIR **ret);

/* Looks up "Key: value" (procfs style, blanks after the colon skipped). -ENOENT / -ENXIO. */
int read_colon_key_at(int dirfd, const char *path, const char *key, char **ret);

/*
 * Writes @value to the existing attribute @path below @dirfd (a sysfs control file such as a
 * PCI function's "reset"), in one write. -ENOENT when it does not exist, other -errno of the
 * syscalls (the kernel's answer to the write: -ENOTTY, -EINVAL, ...).
 */
int write_attr_at(int dirfd, const char *path, const char *value);

/* True when @path exists below @dirfd (not following a final symlink's target). */
int exists_at(int dirfd, const char *path);

/* Creates the directories above the last '/' of @path that do not exist yet, with @mode
 * whatever the umask (existing ones are left as they are). 0 or -errno. */
int mkdir_parents(const char *path, mode_t mode);

/* Creates the directory @path with @mode whatever the umask; an existing directory is left as
 * it is. 0, -ENOTDIR (something else is there) or -errno. */
int mkdir_mode(const char *path, mode_t mode);

/*
 * Writing a file so that readers (and a restart after a crash) see the old content or the new,
 * never a mix: the data goes to a temporary file ".<name>.XXXXXX" in the same directory, is
 * fsync'd and given @mode; rename_durably_at() then renames it over @name and fsyncs the
 * directory. Split in two so that a caller can place a fault point between the steps.
 */

/* Writes @len bytes of @data to a new temporary file in @dfd: its name (malloc'd) in
 * *ret_temp. -ENAMETOOLONG, -ENOMEM or -errno of the syscalls (nothing left behind). */
int write_temp_at(int dfd, const char *name, const void *data, size_t len, mode_t mode,
		  char **ret_temp);
/* Renames @temp over @name in @dfd (removing @temp when that fails), then fsyncs @dfd.
 * 0 or -errno. */
int rename_durably_at(int dfd, const char *temp, const char *name);
/* Both steps. 0 or -errno; does not log. */
int write_file_atomic_at(int dfd, const char *name, const void *data, size_t len, mode_t mode);
/* Whether @name in @dfd is a temporary file write_temp_at() made for @target. */
bool is_temp_of(const char *name, const char *target);
