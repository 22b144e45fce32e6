/* SPDX-License-Identifier: GPL-2.0-or-later */
/* NULL-terminated string vectors (char **), owned: every element and the array are malloc'd. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* s names the loop variable: it cannot take parentheses */
/* NOLINTNEXTLINE(bugprone-macro-parentheses) */
#define STRV_FOREACH(s, l) for (char **s = (l); s && *s; s++)

/* Frees every element and the array. Accepts NULL, returns NULL. */
char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)

size_t strv_length(char *const *l);
bool strv_contains(char *const *l, const char *s);

/* Appends a copy of @s. Returns 0 or -ENOMEM; @l is unchanged on failure. */
int strv_extend(char ***l, const char *s);
/* Appends a copy of @s unless already present. Returns 1 if added, 0 if present, -ENOMEM. */
int strv_extend_unique(char ***l, const char *s);
/* Appends a formatted string. Returns 0 or -ENOMEM. */
int strv_extendf(char ***l, const char *fmt, ...) _printf_(2, 3);
/* Takes ownership of @s (freed on failure). Returns 0 or -ENOMEM. */
int strv_consume(char ***l, char *s);

/* Deep copy; NULL for an empty or NULL input is returned as NULL with 0. */
int strv_copy(char *const *l, char ***ret);
bool strv_equal(char *const *a, char *const *b);
/* The elements joined with @sep; "" for an empty or NULL vector. Caller frees; NULL on OOM. */
char *strv_join(char *const *l, const char *sep);
void strv_sort(char **l);

/* "KEY=VALUE" environment helpers. env_get returns a borrowed pointer to VALUE or NULL. */
const char *strv_env_get(char *const *l, const char *key);
/* Sets or replaces KEY in a KEY=VALUE vector. */
int strv_env_set(char ***l, const char *key, const char *value);
