/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reading the node description that the fake NVML and the fake CUDA driver API share
 * (tests/fakes/README.md): the file named by $XPU_FAKE_NVML, and typed getters that reject what a
 * fake does not expect with one line on stderr naming the key, so that a typo cannot quietly
 * weaken a test. Compiled into each fake and never exported: the fakes export only the vendor's
 * symbols.
 *
 * Absent and null both mean "not given". Every function that fails prints at most one line per
 * parser (the first failure's) and returns -EINVAL, unless it says otherwise.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "shared/macro.h"

#pragma GCC visibility push(hidden)

#define FAKE_JSON_WHERE_MAX 128

struct fake_json_parser {
	const char *fake;		 /* "fake-nvml": what its messages start with */
	const char *file;		 /* the description's path */
	char where[FAKE_JSON_WHERE_MAX]; /* "gpus[3].mig": the object being read; "" at the top */
	bool failed;			 /* a line has been printed: later failures print none */
};

/*
 * Reads the description named by $XPU_FAKE_NVML into *ret_doc and sets p->file. -ENOENT without
 * one (unset or empty, or no such file: a host without the driver); -EINVAL, with the line, for
 * malformed JSON (duplicate keys included).
 */
int fake_json_load(struct fake_json_parser *p, json_t **ret_doc);

/* "fake-nvml: FILE: gpus[3].<fmt>" on stderr, the first time only; returns -EINVAL. */
int fake_json_fail(struct fake_json_parser *p, const char *fmt, ...) _printf_(2, 3);

/* Messages about the keys of a nested object name it: "gpus[3].mig.current". */
size_t fake_json_where_push(struct fake_json_parser *p, const char *key);
void fake_json_where_pop(struct fake_json_parser *p, size_t n);

/* Rejects a key of @obj that is not in @keys (NULL-terminated). */
int fake_json_check_keys(struct fake_json_parser *p, json_t *obj, const char *const *keys);

/*
 * @key of @type, or *ret NULL when not given (a failure when @required). JSON_TRUE stands for
 * "a boolean": jansson types true and false apart.
 */
int fake_json_get_typed(struct fake_json_parser *p, json_t *obj, const char *key, json_type type,
			const char *type_name, bool required, json_t **ret);

/* A string of 1..@size - 1 characters (no NUL) copied to @buf, left alone when not given. */
int fake_json_get_string(struct fake_json_parser *p, json_t *obj, const char *key, bool required,
			 size_t size, char *buf);

/* An integer in min..max, left alone when not given; *ret_given (may be NULL) says whether. */
int fake_json_get_integer(struct fake_json_parser *p, json_t *obj, const char *key, bool required,
			  long long min, long long max, long long *ret, bool *ret_given);

/* A boolean that must be given. */
int fake_json_get_bool(struct fake_json_parser *p, json_t *obj, const char *key, bool *ret);

/* A 32-bit hex string such as "0x233010de", left alone when not given. */
int fake_json_get_hex32(struct fake_json_parser *p, json_t *obj, const char *key, bool required,
			unsigned *ret);

/*
 * A compute capability, "MAJOR.MINOR" such as "9.0", left alone when not given; *ret_given (may be
 * NULL) says whether it was there.
 */
int fake_json_get_compute_capability(struct fake_json_parser *p, json_t *obj, const char *key,
				     int *ret_major, int *ret_minor, bool *ret_given);

#pragma GCC visibility pop
