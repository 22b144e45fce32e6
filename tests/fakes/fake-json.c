// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The node description's file and typed getters, shared by the fake NVML and the fake CUDA driver
 * API (see fake-json.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/macro.h"
#include "shared/parse.h"

#include "fake-json.h"

int fake_json_load(struct fake_json_parser *p, json_t **ret_doc)
{
	json_error_t err;
	const char *path;
	json_t *doc;

	path = secure_getenv("XPU_FAKE_NVML");
	if (isempty(path))
		return -ENOENT;
	p->file = path;
	doc = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
	if (!doc) {
		/* jansson reports a missing file at line -1. */
		if (err.line < 0)
			return -ENOENT;
		return fake_json_fail(p, "malformed JSON at line %d, column %d: %s", err.line,
				      err.column, err.text);
	}
	*ret_doc = doc;
	return 0;
}

int fake_json_fail(struct fake_json_parser *p, const char *fmt, ...)
{
	va_list ap;

	if (p->failed)
		return -EINVAL;
	p->failed = true;
	fprintf(stderr, "%s: %s: %s%s", p->fake, p->file, p->where, p->where[0] ? "." : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -EINVAL;
}

size_t fake_json_where_push(struct fake_json_parser *p, const char *key)
{
	size_t n = strlen(p->where);

	snprintf(p->where + n, sizeof(p->where) - n, "%s%s", n ? "." : "", key);
	return n;
}

void fake_json_where_pop(struct fake_json_parser *p, size_t n)
{
	p->where[n] = '\0';
}

int fake_json_check_keys(struct fake_json_parser *p, json_t *obj, const char *const *keys)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		const char *const *k;

		for (k = keys; *k; k++)
			if (streq(*k, key))
				break;
		if (!*k)
			return fake_json_fail(p, "%s: unknown key", key);
	}
	return 0;
}

int fake_json_get_typed(struct fake_json_parser *p, json_t *obj, const char *key, json_type type,
			const char *type_name, bool required, json_t **ret)
{
	json_t *v = json_object_get(obj, key);

	*ret = NULL;
	if (!v || json_is_null(v))
		return required ? fake_json_fail(p, "%s: missing", key) : 0;
	if (json_typeof(v) != type && !(type == JSON_TRUE && json_is_boolean(v)))
		return fake_json_fail(p, "%s: expected %s", key, type_name);
	*ret = v;
	return 0;
}

int fake_json_get_string(struct fake_json_parser *p, json_t *obj, const char *key, bool required,
			 size_t size, char *buf)
{
	json_t *v = NULL;
	int r;

	r = fake_json_get_typed(p, obj, key, JSON_STRING, "string", required, &v);
	if (r < 0 || !v)
		return r;
	if (json_string_length(v) == 0 || json_string_length(v) >= size ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return fake_json_fail(p, "%s: expected a string of 1..%zu characters", key,
				      size - 1);
	memcpy(buf, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

int fake_json_get_integer(struct fake_json_parser *p, json_t *obj, const char *key, bool required,
			  long long min, long long max, long long *ret, bool *ret_given)
{
	json_t *v = NULL;
	int r;

	r = fake_json_get_typed(p, obj, key, JSON_INTEGER, "integer", required, &v);
	if (r < 0)
		return r;
	if (ret_given)
		*ret_given = v;
	if (!v)
		return 0;
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return fake_json_fail(p, "%s: %lld is out of range %lld..%lld", key,
				      (long long)json_integer_value(v), min, max);
	*ret = json_integer_value(v);
	return 0;
}

int fake_json_get_bool(struct fake_json_parser *p, json_t *obj, const char *key, bool *ret)
{
	json_t *v = NULL;
	int r;

	r = fake_json_get_typed(p, obj, key, JSON_TRUE, "boolean", true, &v);
	if (r < 0)
		return r;
	*ret = json_is_true(v);
	return 0;
}

int fake_json_get_hex32(struct fake_json_parser *p, json_t *obj, const char *key, bool required,
			unsigned *ret)
{
	json_t *s = NULL;
	uint32_t v;
	int r;

	r = fake_json_get_typed(p, obj, key, JSON_STRING, "string", required, &s);
	if (r < 0 || !s)
		return r;
	if (parse_hex_id(json_string_value(s), UINT32_MAX, &v) < 0)
		return fake_json_fail(p, "%s: expected a hex string such as \"0x233010de\"", key);
	*ret = v;
	return 0;
}

int fake_json_get_compute_capability(struct fake_json_parser *p, json_t *obj, const char *key,
				     int *ret_major, int *ret_minor, bool *ret_given)
{
	char cc[16] = "", dot;
	int major, minor, r;

	r = fake_json_get_string(p, obj, key, false, sizeof(cc), cc);
	if (r < 0)
		return r;
	if (ret_given)
		*ret_given = cc[0];
	if (!cc[0])
		return 0;
	if (sscanf(cc, "%2d%c%2d", &major, &dot, &minor) != 3 || dot != '.' || major < 1 ||
	    minor < 0)
		return fake_json_fail(p, "%s: expected \"MAJOR.MINOR\"", key);
	*ret_major = major;
	*ret_minor = minor;
	return 0;
}
