// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/request.h"
#include "core/config.h"
#include "shared/macro.h"
#include "shared/parse.h"
#include "shared/strv.h"

/* json_decrefp() comes with jansson (>= 2.11). */
#define _cleanup_json_ _cleanup_(json_decrefp)

static int invalid(char **ret_error, const char *fmt, ...) _printf_(2, 3);
static int invalid(char **ret_error, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(ret_error, fmt, ap);
	va_end(ap);
	if (r < 0) {
		*ret_error = NULL;
		return -ENOMEM;
	}
	return -EINVAL;
}

/* The first key of @o not in @known, or NULL. */
static const char *unknown_key(json_t *o, const char *const *known)
{
	const char *key;
	json_t *v;

	json_object_foreach (o, key, v) {
		bool ok = false;

		for (size_t i = 0; known[i] && !ok; i++)
			ok = streq(key, known[i]);
		if (!ok)
			return key;
	}
	return NULL;
}

/* The body as a JSON object with only @known keys (NULL-terminated). */
static int parse_object(const char *body, size_t len, const char *const *known, json_t **ret,
			char **ret_error)
{
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_free_ char *list = NULL;
	json_error_t err;
	const char *bad;

	if (!body || len == 0)
		return invalid(ret_error, "a JSON object is required as the body");
	doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
	if (!doc)
		return invalid(ret_error, "the body is not JSON: %s (column %d)", err.text,
			       err.column);
	if (!json_is_object(doc))
		return invalid(ret_error, "the body must be a JSON object");
	bad = unknown_key(doc, known);
	if (bad) {
		list = strv_join((char *const *)known, ", ");
		if (!list)
			return -ENOMEM;
		return invalid(ret_error, "unknown key '%s' (known: %s)", bad, list);
	}
	*ret = TAKE_PTR(doc);
	return 0;
}

/* A string's copy, when it is one without a NUL inside; -EINVAL when not, -ENOMEM. */
static int string_dup(json_t *v, size_t max, char **ret)
{
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
	    json_string_length(v) > max)
		return -EINVAL;
	*ret = strdup(json_string_value(v));
	return *ret ? 0 : -ENOMEM;
}

void request_owner_done(struct alloc_owner *o)
{
	o->value = mfree(o->value);
}

/* {"pid": 1234} | {"cgroup": "/..."} | {"unit": "x.service"} | {"pod": "UID/CONTAINER"} */
static int parse_owner(json_t *o, struct alloc_owner *ret, char **ret_error)
{
	const char *key;
	json_t *v;
	char buf[32];
	int r;

	if (!o)
		return 0;
	if (!json_is_object(o) || json_object_size(o) != 1)
		return invalid(ret_error,
			       "owner: expected an object with one of pid, cgroup, unit, pod");
	json_object_foreach (o, key, v) {
		ret->kind = owner_kind_from_string(key);
		if (ret->kind <= OWNER_NONE)
			return invalid(ret_error, "owner: expected one of pid, cgroup, unit, pod");
		if (ret->kind == OWNER_PID) {
			if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
			    json_integer_value(v) > INT32_MAX)
				return invalid(ret_error, "owner.pid: expected a process id");
			snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
			ret->value = strdup(buf);
			if (!ret->value)
				return -ENOMEM;
		} else {
			r = json_string_length(v) == 0 ? -EINVAL : string_dup(v, 4096, &ret->value);
			if (r == -ENOMEM)
				return r;
			if (r < 0)
				return invalid(ret_error, "owner: expected a non-empty string");
		}
	}
	return 0;
}

/* "count": a number of slices up to 100000, or @dflt when absent. */
static int parse_count(json_t *doc, unsigned dflt, unsigned *ret, char **ret_error)
{
	json_t *v = json_object_get(doc, "count");

	if (!v) {
		*ret = dflt;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100000)
		return invalid(ret_error, "count: expected a number of slices");
	*ret = (unsigned)json_integer_value(v);
	return 0;
}

/*
 * "enforce": true, false, or {"memory_max": BYTES, "cpu_quota": PERCENT, "cpuset": BOOL}
 * (an object means true); only for a process owner, the one enforcement moves.
 */
static int parse_enforce(json_t *v, const struct alloc_owner *owner, struct enforce_request *ret,
			 char **ret_error)
{
	static const char *const known[] = { "memory_max", "cpu_quota", "cpuset", NULL };
	const char *bad;
	json_t *f;

	if (!v || json_is_false(v))
		return 0;
	if (!json_is_true(v) && !json_is_object(v))
		return invalid(ret_error, "enforce: expected true, false or an object of limits");
	if (json_is_object(v)) {
		bad = unknown_key(v, known);
		if (bad)
			return invalid(ret_error,
				       "enforce: unknown key '%s' (known: memory_max, cpu_quota, "
				       "cpuset)",
				       bad);
		f = json_object_get(v, "memory_max");
		if (f && (!json_is_integer(f) || json_integer_value(f) < 4096))
			return invalid(ret_error, "enforce.memory_max: expected a number of bytes "
						  "(at least 4096)");
		ret->limits.memory_max = f ? (uint64_t)json_integer_value(f) : 0;
		f = json_object_get(v, "cpu_quota");
		if (f && (!json_is_integer(f) || json_integer_value(f) < 1 ||
			  json_integer_value(f) > 100000))
			return invalid(ret_error, "enforce.cpu_quota: expected a percentage of one "
						  "CPU, 1 to 100000");
		ret->limits.cpu_quota = f ? (unsigned)json_integer_value(f) : 0;
		f = json_object_get(v, "cpuset");
		if (f && !json_is_boolean(f))
			return invalid(ret_error, "enforce.cpuset: expected true or false");
		ret->limits.numa_cpus = json_is_true(f);
	}
	if (owner->kind != OWNER_PID && owner->kind != OWNER_UNIT)
		return invalid(ret_error, "enforce: needs an owner process ({\"pid\": N}), the one "
					  "moved into the grant's cgroup or scope, or an owner unit "
					  "({\"unit\": NAME}) that systemd confines");
	ret->on = true;
	return 0;
}

/* "numa_local" and "connected": booleans, false when absent. */
static int parse_placement(json_t *doc, bool *ret_numa_local, bool *ret_connected,
			   char **ret_error)
{
	json_t *v = json_object_get(doc, "numa_local");

	if (v && !json_is_boolean(v))
		return invalid(ret_error, "numa_local: expected true or false");
	*ret_numa_local = json_is_true(v);
	v = json_object_get(doc, "connected");
	if (v && !json_is_boolean(v))
		return invalid(ret_error, "connected: expected true or false");
	*ret_connected = json_is_true(v);
	return 0;
}

int request_parse_allocate(const char *body, size_t len, struct alloc_request *ret,
			   struct alloc_owner *ret_owner, struct enforce_request *ret_enforce,
			   char **ret_error)
{
	static const char *const known[] = {"resource",	  "count",     "slices", "owner",
					    "numa_local", "connected", "device", "enforce",
					    NULL};
	_cleanup_json_ json_t *doc = NULL;
	json_t *v;
	int r;

	r = parse_object(body, len, known, &doc, ret_error);
	if (r < 0)
		return r;
	v = json_object_get(doc, "resource");
	if (v && (r = string_dup(v, 4096, &ret->resource)) < 0)
		return r == -ENOMEM ? r : invalid(ret_error, "resource: expected a resource name");
	v = json_object_get(doc, "slices");
	if (v) {
		size_t i;
		json_t *e;

		if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 1024)
			return invalid(ret_error, "slices: expected a non-empty list of slice ids");
		json_array_foreach (v, i, e) {
			if (!json_is_string(e) ||
			    strlen(json_string_value(e)) != json_string_length(e))
				return invalid(ret_error, "slices: expected slice ids");
			if (strv_extend(&ret->slices, json_string_value(e)) < 0)
				return -ENOMEM;
		}
	}
	r = parse_count(doc, ret->slices ? (unsigned)strv_length(ret->slices) : 1, &ret->count,
			ret_error);
	if (r < 0)
		return r;
	if (!ret->resource && !ret->slices)
		return invalid(ret_error, "either resource (with count) or slices is required");
	if (ret->slices && ret->count != strv_length(ret->slices))
		return invalid(ret_error, "count differs from the number of slices given");
	r = parse_placement(doc, &ret->numa_local, &ret->connected, ret_error);
	if (r < 0)
		return r;
	v = json_object_get(doc, "device");
	if (v && (r = string_dup(v, 4096, &ret->device)) < 0)
		return r == -ENOMEM ? r
				    : invalid(ret_error,
					      "device: expected a device id, PCI address or UUID");
	r = parse_owner(json_object_get(doc, "owner"), ret_owner, ret_error);
	if (r < 0)
		return r;
	return parse_enforce(json_object_get(doc, "enforce"), ret_owner, ret_enforce, ret_error);
}

void request_fit_done(struct fit_request *r)
{
	r->kind = mfree(r->kind);
	r->resource = mfree(r->resource);
}

int request_parse_fit(const char *body, size_t len, struct fit_request *ret, char **ret_error)
{
	static const char *const known[] = {"memory_bytes", "compute",	  "count",
					    "kind",	    "resource",	  "numa_local",
					    "connected",    NULL};
	_cleanup_json_ json_t *doc = NULL;
	json_t *v;
	int r;

	r = parse_object(body, len, known, &doc, ret_error);
	if (r < 0)
		return r;
	v = json_object_get(doc, "memory_bytes");
	if (v && (!json_is_integer(v) || json_integer_value(v) < 0))
		return invalid(ret_error, "memory_bytes: expected a number of bytes");
	ret->memory_bytes = v ? (uint64_t)json_integer_value(v) : 0;
	v = json_object_get(doc, "compute");
	if (v && !json_is_number(v))
		return invalid(ret_error, "compute: expected a fraction of a device");
	ret->compute = v ? json_number_value(v) : 0;
	r = parse_count(doc, 1, &ret->count, ret_error);
	if (r < 0)
		return r;
	v = json_object_get(doc, "kind");
	if (v && (r = string_dup(v, 4096, &ret->kind)) < 0)
		return r == -ENOMEM ? r : invalid(ret_error, "kind: expected gpu, accel or fpga");
	v = json_object_get(doc, "resource");
	if (v && (r = string_dup(v, 4096, &ret->resource)) < 0)
		return r == -ENOMEM ? r : invalid(ret_error, "resource: expected a resource name");
	return parse_placement(doc, &ret->numa_local, &ret->connected, ret_error);
}

void cordon_request_done(struct cordon_request *r)
{
	r->device = mfree(r->device);
	r->reason = mfree(r->reason);
}

/* "device": a non-empty string */
static int parse_device(json_t *doc, char **ret, char **ret_error)
{
	json_t *v = json_object_get(doc, "device");
	int r = v && json_string_length(v) > 0 ? string_dup(v, 4096, ret) : -EINVAL;

	if (r == -EINVAL)
		return invalid(ret_error, "device: expected a device id, PCI address or UUID");
	return r;
}

int request_parse_cordon(const char *body, size_t len, bool cordon, struct cordon_request *ret,
			 char **ret_error)
{
	static const char *const known[] = {"device", "reason", NULL};
	_cleanup_json_ json_t *doc = NULL;
	json_t *v;
	int r;

	r = parse_object(body, len, cordon ? known : (const char *const[]){"device", NULL}, &doc,
			 ret_error);
	if (r >= 0)
		r = parse_device(doc, &ret->device, ret_error);
	if (r < 0)
		return r;
	v = json_object_get(doc, "reason");
	if (v && (r = string_dup(v, 1024, &ret->reason)) < 0)
		return r == -ENOMEM
			   ? r
			   : invalid(ret_error, "reason: expected a text of at most 1024 bytes");
	return 0;
}

void repartition_request_done(struct repartition_request *r)
{
	r->device = mfree(r->device);
	offer_done(&r->layout);
}

int request_parse_repartition(const char *body, size_t len, uint64_t timeout_default,
			      struct repartition_request *ret, char **ret_error)
{
	static const char *const known[] = {"device", "layout", "policy", "timeout", NULL};
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_free_ char *err = NULL;
	json_t *v;
	int r;

	ret->timeout_usec = timeout_default;
	r = parse_object(body, len, known, &doc, ret_error);
	if (r >= 0)
		r = parse_device(doc, &ret->device, ret_error);
	if (r < 0)
		return r;
	v = json_object_get(doc, "policy");
	if (v && !json_is_boolean(v))
		return invalid(ret_error, "policy: expected true or false");
	ret->policy = json_is_true(v);
	v = json_object_get(doc, "layout");
	if (!!v == ret->policy)
		return invalid(ret_error, "give either layout (\"replicas: 4\", \"whole: true\", "
					  "...) or policy: true");
	if (v && (!json_is_string(v) || json_string_length(v) > 4096 ||
		  strlen(json_string_value(v)) != json_string_length(v)))
		return invalid(ret_error, "layout: expected a text such as \"replicas: 4\"");
	if (v) {
		r = config_parse_layout(json_string_value(v), json_string_length(v), &ret->layout,
					&err);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return invalid(ret_error, "layout: %s", err ?: "malformed");
	}
	v = json_object_get(doc, "timeout");
	if (v &&
	    (!json_is_string(v) || parse_duration(json_string_value(v), &ret->timeout_usec) < 0))
		return invalid(ret_error, "timeout: expected a duration such as 10m");
	return 0;
}
