// SPDX-License-Identifier: GPL-2.0-or-later
/* xpud's persistent state: the file, <state-dir>/state.json, loaded and saved atomically. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/state-internal.h"
#include "core/state.h"
#include "shared/fault.h"
#include "shared/fileio.h"
#include "shared/log.h"

#define STATE_MAX_FILE (64u << 20) /* a larger state.json is not ours */
#define STATE_CORRUPT_FILE STATE_FILE ".corrupt"

/* All of the regular file @fd, NUL-terminated; -EFBIG beyond STATE_MAX_FILE bytes. */
static int read_file(int fd, char **ret, size_t *ret_len)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD; /* a FIFO would block the start */
	return read_full_fd(fd, STATE_MAX_FILE, ret, ret_len);
}

/* Temporary files a save that was killed before its rename left behind: never the state. */
static void remove_temp_files(int dfd)
{
	_cleanup_(closedirp) DIR *d = NULL;
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d)))
		if (is_temp_of(de->d_name, STATE_FILE))
			(void)unlinkat(dfd, de->d_name, 0);
}

int state_load(const char *dir, struct state *s, char **ret_warning)
{
	_cleanup_free_ char *text = NULL, *error = NULL, *warning = NULL;
	_cleanup_(state_done) struct state parsed = {};
	_cleanup_close_ int dfd = -EBADF, fd = -EBADF;
	size_t len = 0, total = 0;
	int r;

	/* O_NONBLOCK: opening a FIFO would wait for a writer; it changes nothing for a file */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		remove_temp_files(dfd);
	if (dfd >= 0)
		fd = openat(dfd, STATE_FILE, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (dfd < 0 || fd < 0) {
		if (errno != ENOENT)
			return -errno;
		/* first start: nothing allocated yet */
		state_done(s);
		*ret_warning = NULL;
		return 0;
	}

	r = read_file(fd, &text, &len);
	if (r == -EFBIG) {
		r = fail(&error, "larger than %u MiB", STATE_MAX_FILE >> 20);
		if (r == -EINVAL)
			r = -EBADMSG; /* read nothing of it */
	} else if (r == 0)
		r = state_parse(text, len, &parsed, &error, &total);
	if (r == 0) {
		state_done(s);
		*s = parsed;
		parsed = (struct state){};
		*ret_warning = NULL;
		return 0;
	}
	if (r != -EBADMSG && r != -EINVAL)
		return r;

	/*
	 * Keep the evidence and the allocations we could not read, out of the way of the next
	 * save. The rename's durability rides on that save's directory fsync.
	 */
	if (renameat(dfd, STATE_FILE, dfd, STATE_CORRUPT_FILE) < 0)
		return -errno;
	if (r == -EBADMSG)
		r = asprintf(&warning,
			     "%s is unreadable (%s): no allocations recovered, the file is kept as "
			     "%s",
			     STATE_FILE, error, STATE_CORRUPT_FILE);
	else
		r = asprintf(
		    &warning,
		    "%s is partly invalid (%s): recovered %zu of %zu allocations, the file "
		    "is kept as %s",
		    STATE_FILE, error, parsed.ledger.n, total, STATE_CORRUPT_FILE);
	if (r < 0)
		return -ENOMEM;
	state_done(s);
	*s = parsed;
	parsed = (struct state){};
	*ret_warning = TAKE_PTR(warning);
	return 1;
}

int state_save(const char *dir, const struct state *s)
{
	_cleanup_free_ char *text = NULL, *error = NULL, *temp = NULL;
	_cleanup_close_ int dfd = -EBADF;
	size_t n;
	char *t;
	int r;

	r = state_dump(s, &text, &error);
	if (r < 0) {
		log_debug("Refusing to save a state that would not load back: %s",
			  error ?: "out of memory");
		return r;
	}
	/* the directories above it as a package would make them, the state directory private */
	r = mkdir_parents(dir, 0755);
	if (r < 0)
		return r;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	n = strlen(text);
	t = realloc(text, n + 2);
	if (!t)
		return -ENOMEM;
	text = t;
	memcpy(text + n, "\n", 2);
	r = write_temp_at(dfd, STATE_FILE, text, n + 1, 0600, &temp);
	if (r < 0)
		return r;
	fault_point("state-before-rename");
	return rename_durably_at(dfd, temp, STATE_FILE);
}
