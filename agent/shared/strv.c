// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strv.h"

char **strv_free(char **l)
{
	STRV_FOREACH(s, l)
		free(*s);
	free(l);
	return NULL;
}

size_t strv_length(char *const *l)
{
	size_t n = 0;

	while (l && l[n])
		n++;
	return n;
}

bool strv_contains(char *const *l, const char *s)
{
	for (size_t i = 0; l && l[i]; i++)
		if (streq(l[i], s))
			return true;
	return false;
}

int strv_consume(char ***l, char *s)
{
	size_t n;
	char **m;

	if (!s)
		return -ENOMEM;
	n = strv_length(*l);
	m = realloc(*l, sizeof(char *) * (n + 2));
	if (!m) {
		free(s);
		return -ENOMEM;
	}
	m[n] = s;
	m[n + 1] = NULL;
	*l = m;
	return 0;
}

int strv_extend(char ***l, const char *s)
{
	return strv_consume(l, strdup(s));
}

int strv_extend_unique(char ***l, const char *s)
{
	int r;

	if (strv_contains(*l, s))
		return 0;
	r = strv_extend(l, s);
	return r < 0 ? r : 1;
}

int strv_extendf(char ***l, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	return strv_consume(l, s);
}

int strv_copy(char *const *l, char ***ret)
{
	_cleanup_strv_free_ char **c = NULL;
	int r;

	for (size_t i = 0; l && l[i]; i++) {
		r = strv_extend(&c, l[i]);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(c);
	return 0;
}

bool strv_equal(char *const *a, char *const *b)
{
	size_t i;

	for (i = 0; a && a[i] && b && b[i]; i++)
		if (!streq(a[i], b[i]))
			return false;
	return (!a || !a[i]) && (!b || !b[i]);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void strv_sort(char **l)
{
	if (l)
		qsort(l, strv_length(l), sizeof(char *), str_cmp);
}

static char **env_find(char *const *l, const char *key)
{
	size_t k = strlen(key);

	for (size_t i = 0; l && l[i]; i++)
		if (strncmp(l[i], key, k) == 0 && l[i][k] == '=')
			return (char **)&l[i];
	return NULL;
}

const char *strv_env_get(char *const *l, const char *key)
{
	char **p = env_find(l, key);

	return p ? *p + strlen(key) + 1 : NULL;
}

int strv_env_set(char ***l, const char *key, const char *value)
{
	char **p = env_find(*l, key);
	char *s;

	if (asprintf(&s, "%s=%s", key, value) < 0)
		return -ENOMEM;
	if (p) {
		free(*p);
		*p = s;
		return 0;
	}
	return strv_consume(l, s);
}

char *strv_join(char *const *l, const char *sep)
{
	size_t n = 1, k = strlen(sep);
	char *s, *p;

	for (char *const *i = l; i && *i; i++)
		n += strlen(*i) + k;
	p = s = malloc(n);
	if (!s)
		return NULL;
	*p = '\0';
	for (char *const *i = l; i && *i; i++) {
		if (i != l)
			p = stpcpy(p, sep);
		p = stpcpy(p, *i);
	}
	return s;
}
