// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The run-time fault side file "<description>.fault", shared by the fake NVML and the fake CUDA
 * driver API (see fake-fault.h). Each library has its own copy of this file's state: a count
 * counts the calls of one library.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/macro.h"
#include "shared/parse.h"

#include "fake-fault.h"

#define FAKE_FAULT_LINE_MAX 64
#define FAKE_FAULT_LEAK_BYTES (1024UL * 1024 * 1024)
#define FAKE_FAULT_GARBAGE_BYTES (64 * 1024)
#define FAKE_FAULT_EXIT_STATUS 3

enum fake_fault_what {
	FAULT_SEGV,
	FAULT_ABORT,
	FAULT_HANG,
	FAULT_LEAK,
	FAULT_GARBAGE,
	FAULT_EXIT,
	_FAULT_WHAT_MAX,
};

static const char *const where_names[_FAKE_FAULT_WHERE_MAX] = {
	[FAKE_FAULT_INIT] = "init",
	[FAKE_FAULT_QUERY] = "query",
	[FAKE_FAULT_APPLY] = "apply",
	[FAKE_FAULT_PROCESSES] = "processes",
};

static const char *const what_names[_FAULT_WHAT_MAX] = {
	[FAULT_SEGV] = "segv", [FAULT_ABORT] = "abort",	    [FAULT_HANG] = "hang",
	[FAULT_LEAK] = "leak", [FAULT_GARBAGE] = "garbage", [FAULT_EXIT] = "exit",
};

/*
 * The calls that matched the current line so far; a new line (any other text) starts the count
 * again. The leaked blocks are linked from here, each to the one before, so that they stay
 * reachable and LeakSanitizer does not report them at exit.
 */
static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static char fault_line[FAKE_FAULT_LINE_MAX];
static unsigned fault_matched;
static void *fault_leaked;

/* What a line says. */
struct fault_line {
	enum fake_fault_where where;
	enum fake_fault_what what;
	unsigned count; /* 0: every matching call */
};

static int lookup(const char *const *names, size_t n, const char *word)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] && streq(names[i], word))
			return (int)i;
	return -1;
}

/* Splits @line (changing it) into *ret; -EINVAL with one line on stderr when it does not parse. */
static int parse_line(const char *fake, const char *path, char *line, struct fault_line *ret)
{
	char *words[4] = {}, *save = NULL;
	size_t n = 0;
	int where, what;

	for (const char *c = line; *c; c++)
		if ((unsigned char)*c < ' ' && *c != '\t')
			goto bad;
	for (char *w = strtok_r(line, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		if (n == ELEMENTSOF(words))
			goto bad;
		words[n++] = w;
	}
	if (n < 2 || n > 3)
		goto bad;
	where = lookup(where_names, ELEMENTSOF(where_names), words[0]);
	if (where < 0) {
		fprintf(stderr, "%s: %s: '%s' is not a place (init, query, apply, processes)\n",
			fake, path, words[0]);
		return -EINVAL;
	}
	what = lookup(what_names, ELEMENTSOF(what_names), words[1]);
	if (what < 0) {
		fprintf(stderr,
			"%s: %s: '%s' is not a fault (segv, abort, hang, leak, garbage, exit)\n",
			fake, path, words[1]);
		return -EINVAL;
	}
	*ret = (struct fault_line){ .where = where, .what = what };
	if (words[2] && (safe_atou(words[2], &ret->count) < 0 || ret->count == 0)) {
		fprintf(stderr, "%s: %s: '%s' is not a count of calls (1, 2, ...)\n", fake, path,
			words[2]);
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "%s: %s: expected one line '<where> <what> [<count>]'\n", fake, path);
	return -EINVAL;
}

/* The line of the file, without surrounding blanks: 1, 0 without a file, or -EINVAL. */
static int read_line(const char *fake, char path[static PATH_MAX],
		     char line[static FAKE_FAULT_LINE_MAX])
{
	const char *desc = secure_getenv("XPU_FAKE_NVML");
	_cleanup_close_ int fd = -EBADF;
	size_t start = 0;
	ssize_t n;

	if (isempty(desc) || snprintf(path, PATH_MAX, "%s.fault", desc) >= PATH_MAX)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, line, FAKE_FAULT_LINE_MAX);
	if (n < 0 || n == FAKE_FAULT_LINE_MAX || memchr(line, '\0', (size_t)n)) {
		fprintf(stderr, "%s: %s: unreadable, longer than %d bytes or with a NUL\n", fake,
			path, FAKE_FAULT_LINE_MAX - 1);
		return -EINVAL;
	}
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\n'))
		n--;
	line[n] = '\0';
	while (line[start] == ' ' || line[start] == '\t')
		start++;
	memmove(line, line + start, (size_t)n - start + 1);
	return 1;
}

/*
 * A real SIGSEGV: a store through a null pointer that the compiler cannot see (so it emits the
 * store, not a trap) and that UBSan does not check (so it is the kernel that stops it). Under
 * ASan the process's ASan runtime reports the SEGV and dies its way (README).
 */
__attribute__((no_sanitize("undefined"))) static void fault_segv(void)
{
	volatile int *volatile p = NULL;

	/* cppcheck-suppress nullPointer */
	*p = 1; /* NOLINT(clang-analyzer-core.NullDereference): the fault asked for */
	abort(); /* not reached */
}

/* 64 KiB of what a confused library prints: protocol-like lines, bytes that are not UTF-8, NULs. */
static void fault_garbage(void)
{
	static const char junk[] = "{\"v\":1,\"type\":\"device\",\"device\":{}}\n"
				   "{\"v\":1,\"type\":\"end\"}\n"
				   "fake garbage: \xff\xfe\xc0\x80 is not UTF-8, \0 is a NUL\n";
	size_t done = 0;

	while (done < FAKE_FAULT_GARBAGE_BYTES) {
		size_t off = done % (sizeof(junk) - 1);
		size_t len = MIN(sizeof(junk) - 1 - off, FAKE_FAULT_GARBAGE_BYTES - done);
		ssize_t n = write(STDOUT_FILENO, junk + off, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* stdout closed: the call goes on all the same */
		done += (size_t)n;
	}
}

/* 1 GiB, every page written, kept to the end of the process. Called with fault_lock held. */
static int fault_leak(void)
{
	void *p = malloc(FAKE_FAULT_LEAK_BYTES);

	if (!p)
		return -ENOMEM;
	memset(p, 0x5a, FAKE_FAULT_LEAK_BYTES);
	*(void **)p = fault_leaked;
	fault_leaked = p;
	return 0;
}

int fake_fault(const char *fake, enum fake_fault_where where)
{
	char path[PATH_MAX], line[FAKE_FAULT_LINE_MAX], text[FAKE_FAULT_LINE_MAX];
	struct fault_line f;
	bool fire;
	int r;

	r = read_line(fake, path, line);
	if (r <= 0)
		return r;
	memcpy(text, line, strlen(line) + 1);
	r = parse_line(fake, path, line, &f);
	if (r < 0)
		return r;
	if (f.where != where)
		return 0;

	pthread_mutex_lock(&fault_lock);
	if (!streq(text, fault_line)) {
		memcpy(fault_line, text, strlen(text) + 1);
		fault_matched = 0;
	}
	fire = f.count == 0 || fault_matched < f.count;
	if (fault_matched < UINT_MAX)
		fault_matched++;
	r = fire && f.what == FAULT_LEAK ? fault_leak() : 0;
	pthread_mutex_unlock(&fault_lock);
	if (!fire)
		return 0;

	switch (f.what) {
	case FAULT_SEGV:
		fault_segv();
		break;
	case FAULT_ABORT:
		abort();
	case FAULT_HANG:
		for (;;)
			(void)sleep(60);
	case FAULT_EXIT:
		_exit(FAKE_FAULT_EXIT_STATUS);
	case FAULT_GARBAGE:
		fault_garbage();
		break;
	case FAULT_LEAK:
	case _FAULT_WHAT_MAX:
		break;
	}
	return r;
}
