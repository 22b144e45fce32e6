/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Small macros every file uses: cleanup attributes, ownership transfer, errno adapters.
 * The naming follows systemd's conventions so that readers from that codebase feel at home.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int close_nointr(int fd)
{
	int r = close(fd);

	/* Linux always releases the descriptor, even on EINTR; never retry. */
	return r < 0 && errno != EINTR ? -errno : 0;
}

static inline int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;

		close_nointr(fd);
		errno = saved;
	}
	return -EBADF;
}

static inline void closep(int *fd)
{
	safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Transfers ownership out of a cleanup-attributed variable. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _p_ = (p);                                                           \
		(p) = NULL;                                                                        \
		_p_;                                                                               \
	})

#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _fd_ = (fd);                                                                   \
		(fd) = -EBADF;                                                                     \
		_fd_;                                                                              \
	})

/* Declares foo_freep() for a destructor foo_free(T *) that accepts NULL. */
/* type is a type: it cannot take parentheses */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
	static inline void func##p(type *p)                                                        \
	{                                                                                          \
		if (*p)                                                                            \
			func(*p);                                                                  \
	}
/* NOLINTEND(bugprone-macro-parentheses) */

/* Adapts a libc call that returns -1 and sets errno into our negative-errno convention. */
#define RET_NERRNO(expr)                                                                           \
	({                                                                                         \
		__typeof__(expr) _r_ = (expr);                                                     \
		_r_ < 0 ? -errno : _r_;                                                            \
	})

/* errno, made negative, never 0 (for paths where libc forgot to set it). */
static inline int negative_errno(void)
{
	int r = -errno;

	/* (tested on the negated value, which the static analyzer then knows is negative) */
	return r < 0 ? r : -EIO;
}

static inline bool streq_ptr(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* What follows @prefix in @s, or NULL where @s does not start with it. */
static inline const char *startswith(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

/* Whether @s ends with @suffix. */
static inline bool endswith(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* free() that returns NULL, for "p = mfree(p);" */
static inline void *mfree(void *p)
{
	free(p);
	return NULL;
}

/* "a/b" on the stack (alloca): only for short, bounded path pieces. */
#define strjoina_path(a, b)                                                                        \
	({                                                                                         \
		const char *_a_ = (a), *_b_ = (b);                                                 \
		size_t _la_ = strlen(_a_), _lb_ = strlen(_b_);                                     \
		char *_s_ = __builtin_alloca(_la_ + _lb_ + 2);                                     \
		memcpy(_s_, _a_, _la_);                                                            \
		_s_[_la_] = '/';                                                                   \
		memcpy(_s_ + _la_ + 1, _b_, _lb_ + 1);                                             \
		_s_;                                                                               \
	})

#define streq(a, b) (strcmp((a), (b)) == 0)
#define isempty(s) (!(s) || !(s)[0])
