/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Between state-json.c (the document) and state-file.c (the file): the parser and the writer
 * of the document, and the message helper both use. Not for other files: they use state.h.
 */
#pragma once

#include <errno.h>
#include <stddef.h>

#include "core/state.h"
#include "shared/macro.h"

/*
 * Replaces *@error with the message @fmt, made one line whatever the file holds. Returns
 * -EINVAL, or -ENOMEM.
 */
int state_fail_printf(char **error, const char *fmt, ...) _printf_(2, 3);
/* Says where the static analyzer can see it (it does not follow variadic functions) that fail()
 * returns a negative errno, so that callers' "return fail(...)" paths are known to fail. */
#define fail(...)                                                                                  \
	({                                                                                         \
		int _f_ = state_fail_printf(__VA_ARGS__);                                          \
		_f_ < 0 ? _f_ : -EINVAL;                                                           \
	})

/*
 * The parser behind state_from_json() and state_load(). -EBADMSG: nothing could be read (not
 * JSON, wrong version, the lists not lists); -EINVAL: some entries were dropped, @s holds the
 * others; *@ret_total is the number of allocation entries the file has.
 */
int state_parse(const char *text, size_t len, struct state *s, char **ret_error, size_t *ret_total);
/*
 * The document for @s: keys in a fixed order, entries in the order of @s, so that equal states
 * give equal text. -EINVAL (reason in *@error) when @s would not load back whole.
 */
int state_dump(const struct state *s, char **ret, char **error);
