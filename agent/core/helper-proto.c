// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The helper protocol (core/helper-proto.h): device records as JSON and back, the messages a
 * helper prints, and xpud's reader of a whole reply. The reader treats its input as hostile:
 * every limit is checked before the work it bounds, every field is checked against what the
 * structures may hold, and the first fault ends the parse with its line and JSON path.
 */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/helper-proto.h"
#include "shared/parse.h"
#include "shared/strv.h"

#define PROTO_STRING_MAX 4096 /* bytes of any one string */
#define PROTO_MAX_PARTITIONS 256
#define PROTO_MAX_PROFILES 64
#define PROTO_MAX_PROPERTIES 1024
#define PROTO_MAX_LIST 64    /* device nodes, env entries */
#define PROTO_MAX_FACTS 1024 /* of a hello or a facts message */
#define PROTO_ERRNO_MAX 4095 /* the largest errno value the kernel hands out */

/* ---- where a fault is: the line and the JSON path ------------------------------------ */

struct jctx {
	size_t line;	/* 0: not in a reply */
	char path[256]; /* "partitions[2].env[0]" */
	size_t len;
	char **error; /* may be NULL: the caller wants no reason */
};

/* @s, made safe to quote in a one-line message: at most 64 characters, '?' for the rest. */
static void quote(const char *s, char *buf, size_t size)
{
	size_t i;

	for (i = 0; i + 4 < size && i < 64 && s[i]; i++)
		buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	strcpy(buf + i, s[i] ? "..." : "");
}

static void path_append(struct jctx *c, const char *fmt, ...) _printf_(2, 3);
static void path_append(struct jctx *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->len >= sizeof(c->path) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(c->path + c->len, sizeof(c->path) - c->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		c->len = MIN(c->len + (size_t)n, sizeof(c->path) - 1);
}

/* Enters the member @key of the current object; returns what path_leave() restores. */
static size_t path_key(struct jctx *c, const char *key)
{
	size_t old = c->len;
	char q[72];

	quote(key, q, sizeof(q));
	path_append(c, "%s%s", c->len > 0 ? "." : "", q);
	return old;
}

static size_t path_index(struct jctx *c, size_t i)
{
	size_t old = c->len;

	path_append(c, "[%zu]", i);
	return old;
}

static void path_leave(struct jctx *c, size_t old)
{
	c->len = old;
	c->path[old] = '\0';
}

/* Sets the reason "line N: path: what" (the parts there are). -EBADMSG, or -ENOMEM. */
static int fail(struct jctx *c, const char *fmt, ...) _printf_(2, 3);
static int fail(struct jctx *c, const char *fmt, ...)
{
	_cleanup_free_ char *what = NULL;
	char line[32] = "";
	va_list ap;
	int r;

	if (!c->error)
		return -EBADMSG;
	va_start(ap, fmt);
	r = vasprintf(&what, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	if (c->line > 0)
		snprintf(line, sizeof(line), "line %zu: ", c->line);
	free(*c->error);
	if (asprintf(c->error, "%s%s%s%s", line, c->path, c->len > 0 ? ": " : "", what) < 0) {
		*c->error = NULL;
		return -ENOMEM;
	}
	return -EBADMSG;
}

/* ---- reading: types, limits, ranges ---------------------------------------------------- */

/* @o is an object with no members outside @keys (NULL-terminated): one build writes both sides. */
static int check_object(struct jctx *c, const json_t *o, const char *const *keys)
{
	const char *key;
	json_t *v;

	if (!json_is_object(o))
		return fail(c, "not an object");
	json_object_foreach ((json_t *)o, key, v) {
		bool known = false;

		for (const char *const *k = keys; *k && !known; k++)
			known = streq(*k, key);
		if (!known) {
			path_key(c, key);
			return fail(c, "unknown field");
		}
	}
	return 0;
}

/* The text of a string value, checked: no NUL, at most PROTO_STRING_MAX bytes, printable ASCII
 * (and not empty unless @empty_ok). */
static int check_text(struct jctx *c, const json_t *v, bool empty_ok, const char **ret)
{
	const char *s;
	size_t n;

	if (!json_is_string(v))
		return fail(c, "not a string");
	s = json_string_value(v);
	n = json_string_length(v);
	if (strlen(s) != n)
		return fail(c, "contains a NUL byte");
	if (n > PROTO_STRING_MAX)
		return fail(c, "longer than %d bytes", PROTO_STRING_MAX);
	if (n == 0 && !empty_ok)
		return fail(c, "empty");
	if (n > 0 && !string_is_printable(s))
		return fail(c, "not printable ASCII");
	*ret = s;
	return 0;
}

enum presence {
	OPTIONAL, /* absent or null: NULL (or the default) */
	NULLABLE, /* present; null: NULL */
	REQUIRED, /* present, not null */
};

/*
 * Enters @key of @o: its value, the path extended until path_leave(@ret_old); or NULL, the path
 * as it was, when absent or null (a fault if @p forbids that).
 */
static int enter(struct jctx *c, const json_t *o, const char *key, enum presence p, json_t **ret_v,
		 size_t *ret_old)
{
	json_t *v = json_object_get(o, key);

	*ret_v = NULL;
	*ret_old = path_key(c, key);
	if (!v && p != OPTIONAL)
		return fail(c, "missing");
	if (json_is_null(v) && p == REQUIRED)
		return fail(c, "is null");
	*ret_v = json_is_null(v) ? NULL : v;
	if (!*ret_v)
		path_leave(c, *ret_old);
	return 0;
}

/* enter() for an optional object with @keys. */
static int enter_object(struct jctx *c, const json_t *o, const char *key, const char *const *keys,
			json_t **ret_v, size_t *ret_old)
{
	int r = enter(c, o, key, OPTIONAL, ret_v, ret_old);

	return r < 0 || !*ret_v ? r : check_object(c, *ret_v, keys);
}

/* enter() for an optional list of at most @max @what. */
static int enter_list(struct jctx *c, const json_t *o, const char *key, size_t max,
		      const char *what, json_t **ret_v, size_t *ret_old)
{
	int r = enter(c, o, key, OPTIONAL, ret_v, ret_old);

	if (r < 0 || !*ret_v)
		return r;
	if (!json_is_array(*ret_v))
		return fail(c, "not a list");
	if (json_array_size(*ret_v) > max)
		return fail(c, "more than %zu %s", max, what);
	return 0;
}

static int read_string(struct jctx *c, const json_t *o, const char *key, enum presence p,
		       char **ret)
{
	const char *s = NULL;
	size_t old;
	json_t *v;
	int r;

	r = enter(c, o, key, p, &v, &old);
	if (r < 0 || (v && (r = check_text(c, v, false, &s)) < 0))
		return r;
	if (s && !(*ret = strdup(s)))
		return -ENOMEM;
	path_leave(c, old);
	return 0;
}

/* An integer in @min..@max; *ret is left alone when the member is absent and may be. */
static int read_int(struct jctx *c, const json_t *o, const char *key, enum presence p,
		    long long min, long long max, long long *ret)
{
	json_t *v = json_object_get(o, key);
	size_t old = path_key(c, key);
	long long i;

	if (!v && p != OPTIONAL)
		return fail(c, "missing");
	if (v) {
		if (!json_is_integer(v))
			return fail(c, "not an integer");
		i = json_integer_value(v);
		if (i < min || i > max)
			return fail(c, "%lld is outside %lld..%lld", i, min, max);
		*ret = i;
	}
	path_leave(c, old);
	return 0;
}

#define READ_NUMBER(c, o, key, p, min, max, field)                                                 \
	({                                                                                         \
		long long _v_ = (long long)(field);                                                \
		int _r_ = read_int(c, o, key, p, min, max, &_v_);                                  \
		if (_r_ >= 0)                                                                      \
			(field) = (__typeof__(field))_v_;                                          \
		_r_;                                                                               \
	})

static int read_bool(struct jctx *c, const json_t *o, const char *key, enum presence p, bool *ret)
{
	json_t *v = json_object_get(o, key);
	size_t old = path_key(c, key);

	if (!v && p != OPTIONAL)
		return fail(c, "missing");
	if (v && !json_is_boolean(v))
		return fail(c, "not true or false");
	if (v)
		*ret = json_is_true(v);
	path_leave(c, old);
	return 0;
}

static int read_fraction(struct jctx *c, const json_t *o, const char *key, double *ret)
{
	json_t *v = json_object_get(o, key);
	size_t old = path_key(c, key);
	double x;

	if (v) {
		if (!json_is_number(v))
			return fail(c, "not a number");
		x = json_number_value(v);
		if (!isfinite(x) || x < 0 || x > 1)
			return fail(c, "%g is outside 0..1", x);
		*ret = x;
	}
	path_leave(c, old);
	return 0;
}

enum list_kind {
	LIST_PATHS, /* absolute host paths */
	LIST_ENV,   /* KEY=VALUE */
};

static int read_list(struct jctx *c, const json_t *o, const char *key, enum list_kind kind,
		     char ***ret)
{
	_cleanup_strv_free_ char **l = NULL;
	size_t old, i;
	json_t *v, *e;
	int r;

	r = enter_list(c, o, key, PROTO_MAX_LIST, "entries", &v, &old);
	if (r < 0 || !v)
		return r;
	json_array_foreach (v, i, e) {
		size_t at = path_index(c, i);
		const char *s;

		r = check_text(c, e, false, &s);
		if (r < 0)
			return r;
		if (kind == LIST_PATHS && s[0] != '/')
			return fail(c, "not an absolute path");
		if (kind == LIST_ENV && (s[0] == '=' || !strchr(s, '=')))
			return fail(c, "not KEY=VALUE");
		if (strv_extend(&l, s) < 0)
			return -ENOMEM;
		path_leave(c, at);
	}
	strv_free(*ret);
	*ret = TAKE_PTR(l);
	path_leave(c, old);
	return 0;
}

/* A JSON object of strings as key, value, ..., NULL (NULL when it is empty). */
static int read_string_map(struct jctx *c, const json_t *v, size_t max, const char *what,
			   char ***ret)
{
	_cleanup_strv_free_ char **l = NULL;
	const char *key;
	json_t *e;

	if (!json_is_object(v))
		return fail(c, "not an object");
	if (json_object_size(v) > max)
		return fail(c, "more than %zu %s", max, what);
	json_object_foreach ((json_t *)v, key, e) {
		const char *s;
		size_t at;
		int r;

		if (!key[0])
			return fail(c, "empty key");
		at = path_key(c, key);
		if (strlen(key) > PROTO_STRING_MAX || !string_is_printable(key))
			return fail(c, "key not printable ASCII of at most %d bytes",
				    PROTO_STRING_MAX);
		r = check_text(c, e, true, &s);
		if (r < 0)
			return r;
		if (strv_extend(&l, key) < 0 || strv_extend(&l, s) < 0)
			return -ENOMEM;
		path_leave(c, at);
	}
	*ret = TAKE_PTR(l);
	return 0;
}

static int read_health(struct jctx *c, const json_t *o, struct xpu_health *h)
{
	static const char *const keys[] = {"state", "reason", "action", NULL};
	_cleanup_free_ char *state = NULL;
	long long action = 0;
	size_t old;
	json_t *v;
	int r;

	r = enter_object(c, o, "health", keys, &v, &old);
	if (r < 0 || !v || (r = read_string(c, v, "state", REQUIRED, &state)) < 0)
		return r;
	for (h->state = 0; h->state < _XPU_HEALTH_MAX; h->state++)
		if (streq_ptr(state, xpu_health_state_to_string(h->state)))
			break;
	if (h->state == _XPU_HEALTH_MAX) {
		char q[72];

		quote(state, q, sizeof(q));
		path_key(c, "state");
		return fail(c, "'%s' is not healthy or unhealthy", q);
	}
	if ((r = read_string(c, v, "reason", OPTIONAL, &h->reason)) < 0 ||
	    (r = read_int(c, v, "action", OPTIONAL, 0, _HEALTH_ACTION_MAX - 1, &action)) < 0)
		return r;
	h->action = (int)action;
	path_leave(c, old);
	return 0;
}

static const char *const pci_keys[] = {
	"address", "vendor_id", "device_id", "subsystem_vendor_id", "subsystem_device_id",
	"class_code", "revision", "link_speed_mts", "link_width", "max_link_speed_mts",
	"max_link_width", NULL,
};

static const char *const device_keys[] = {
	"id", "kind", "vendor", "model", "pci", "driver", "numa_node", "cpu_list", "memory_bytes",
	"uuid", "device_nodes", "health", "resource", "env", "properties", "partitions",
	"partitioned", "partition_capable", "partition_pending", "profiles", NULL,
};

static int read_pci(struct jctx *c, const json_t *o, struct xpu_device *d)
{
	struct xpu_pci_info *p = &d->pci;
	_cleanup_free_ char *address = NULL;
	size_t old;
	json_t *v;
	int r;

	r = enter_object(c, o, "pci", pci_keys, &v, &old);
	if (r < 0 || !v || (r = read_string(c, v, "address", REQUIRED, &address)) < 0)
		return r;
	/* REQUIRED: set when read_string() succeeded, which the analyzer loses track of at this
	 * depth of calls */
	/* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
	if (parse_pci_address(address, p->address) < 0 || !streq(address, p->address)) {
		path_key(c, "address");
		return fail(c, "not a PCI address");
	}
	if ((r = READ_NUMBER(c, v, "vendor_id", OPTIONAL, 0, UINT16_MAX, p->vendor_id)) < 0 ||
	    (r = READ_NUMBER(c, v, "device_id", OPTIONAL, 0, UINT16_MAX, p->device_id)) < 0 ||
	    (r = READ_NUMBER(c, v, "subsystem_vendor_id", OPTIONAL, 0, UINT16_MAX,
			     p->subsystem_vendor_id)) < 0 ||
	    (r = READ_NUMBER(c, v, "subsystem_device_id", OPTIONAL, 0, UINT16_MAX,
			     p->subsystem_device_id)) < 0 ||
	    (r = READ_NUMBER(c, v, "class_code", OPTIONAL, 0, 0xffffff, p->class_code)) < 0 ||
	    (r = READ_NUMBER(c, v, "revision", OPTIONAL, 0, UINT8_MAX, p->revision)) < 0 ||
	    (r = READ_NUMBER(c, v, "link_speed_mts", OPTIONAL, 0, UINT_MAX, p->link_speed_mts)) <
		0 ||
	    (r = READ_NUMBER(c, v, "link_width", OPTIONAL, 0, UINT_MAX, p->link_width)) < 0 ||
	    (r = READ_NUMBER(c, v, "max_link_speed_mts", OPTIONAL, 0, UINT_MAX,
			     p->max_link_speed_mts)) < 0 ||
	    (r = READ_NUMBER(c, v, "max_link_width", OPTIONAL, 0, UINT_MAX, p->max_link_width)) < 0)
		return r;
	d->has_pci = true;
	path_leave(c, old);
	return 0;
}

static int read_properties(struct jctx *c, const json_t *o, struct xpu_device *d)
{
	_cleanup_strv_free_ char **l = NULL;
	size_t old;
	json_t *v;
	int r;

	r = enter(c, o, "properties", OPTIONAL, &v, &old);
	if (r < 0 || !v)
		return r;
	r = read_string_map(c, v, PROTO_MAX_PROPERTIES, "properties", &l);
	if (r < 0)
		return r;
	/* a JSON object holds each key once; jansson keeps them in the sender's order */
	for (size_t i = 0; l && l[i]; i += 2)
		if (device_set_property(d, l[i], l[i + 1]) < 0)
			return -ENOMEM;
	path_leave(c, old);
	return 0;
}

static int read_partition(struct jctx *c, const json_t *o, struct xpu_device *d)
{
	static const char *const keys[] = {
		"id", "device_id", "resource", "memory_bytes", "compute_fraction", "shared",
		"profile", "device_nodes", "env", "health", NULL,
	};
	_cleanup_(slice_freep) struct xpu_slice *s = NULL;
	int r;

	r = check_object(c, o, keys);
	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if ((r = read_string(c, o, "id", REQUIRED, &s->id)) < 0 ||
	    (r = read_string(c, o, "device_id", OPTIONAL, &s->device_id)) < 0 ||
	    (r = read_string(c, o, "resource", OPTIONAL, &s->resource)) < 0 ||
	    (r = READ_NUMBER(c, o, "memory_bytes", OPTIONAL, 0, INT64_MAX, s->memory_bytes)) < 0 ||
	    (r = read_fraction(c, o, "compute_fraction", &s->compute_fraction)) < 0 ||
	    (r = read_bool(c, o, "shared", OPTIONAL, &s->shared)) < 0 ||
	    (r = read_string(c, o, "profile", OPTIONAL, &s->profile)) < 0 ||
	    (r = read_list(c, o, "device_nodes", LIST_PATHS, &s->device_nodes)) < 0 ||
	    (r = read_list(c, o, "env", LIST_ENV, &s->env)) < 0 ||
	    (r = read_health(c, o, &s->health)) < 0)
		return r;
	return device_add_partition(d, TAKE_PTR(s));
}

static int read_profile(struct jctx *c, const json_t *o, struct xpu_device *d)
{
	static const char *const keys[] = {
		"name", "free", "total", "memory_bytes", "compute_fraction", NULL,
	};
	_cleanup_free_ char *name = NULL;
	struct xpu_partition_profile p = {};
	int r;

	if ((r = check_object(c, o, keys)) < 0 ||
	    (r = read_string(c, o, "name", REQUIRED, &name)) < 0 ||
	    (r = READ_NUMBER(c, o, "free", OPTIONAL, 0, UINT_MAX, p.free)) < 0 ||
	    (r = READ_NUMBER(c, o, "total", OPTIONAL, 0, UINT_MAX, p.total)) < 0 ||
	    (r = READ_NUMBER(c, o, "memory_bytes", OPTIONAL, 0, INT64_MAX, p.memory_bytes)) < 0 ||
	    (r = read_fraction(c, o, "compute_fraction", &p.compute_fraction)) < 0)
		return r;
	p.name = name;
	return device_add_profile(d, &p);
}

/* The list @key of @o, at most @max items, each read into @d by @item. */
static int read_items(struct jctx *c, const json_t *o, const char *key, size_t max,
		      const char *what,
		      int (*item)(struct jctx *c, const json_t *e, struct xpu_device *d),
		      struct xpu_device *d)
{
	size_t old, i;
	json_t *v, *e;
	int r;

	r = enter_list(c, o, key, max, what, &v, &old);
	if (r < 0 || !v)
		return r;
	json_array_foreach (v, i, e) {
		size_t at = path_index(c, i);

		r = item(c, e, d);
		if (r < 0)
			return r;
		path_leave(c, at);
	}
	path_leave(c, old);
	return 0;
}

static int read_device(struct jctx *c, const json_t *o, struct xpu_device **ret)
{
	_cleanup_(device_freep) struct xpu_device *d = NULL;
	_cleanup_free_ char *kind = NULL;
	unsigned cpus;
	int r;

	r = check_object(c, o, device_keys);
	if (r < 0)
		return r;
	d = device_new();
	if (!d)
		return -ENOMEM;
	if ((r = read_string(c, o, "id", REQUIRED, &d->id)) < 0 ||
	    (r = read_string(c, o, "kind", REQUIRED, &kind)) < 0)
		return r;
	d->kind = xpu_kind_from_string(kind);
	if (d->kind < 0) {
		char q[72];

		quote(kind, q, sizeof(q));
		path_key(c, "kind");
		return fail(c, "'%s' is not gpu, accel or fpga", q);
	}
	if ((r = read_string(c, o, "vendor", OPTIONAL, &d->vendor)) < 0 ||
	    (r = read_string(c, o, "model", OPTIONAL, &d->model)) < 0 ||
	    (r = read_pci(c, o, d)) < 0 ||
	    (r = read_string(c, o, "driver", OPTIONAL, &d->driver)) < 0 ||
	    (r = READ_NUMBER(c, o, "numa_node", OPTIONAL, -1, INT_MAX, d->numa_node)) < 0 ||
	    (r = read_string(c, o, "cpu_list", OPTIONAL, &d->cpu_list)) < 0)
		return r;
	if (d->cpu_list && parse_cpu_list(d->cpu_list, &cpus) < 0) {
		path_key(c, "cpu_list");
		return fail(c, "not a CPU list");
	}
	if ((r = READ_NUMBER(c, o, "memory_bytes", OPTIONAL, 0, INT64_MAX, d->memory_bytes)) < 0 ||
	    (r = read_string(c, o, "uuid", OPTIONAL, &d->uuid)) < 0 ||
	    (r = read_list(c, o, "device_nodes", LIST_PATHS, &d->device_nodes)) < 0 ||
	    (r = read_health(c, o, &d->health)) < 0 ||
	    (r = read_string(c, o, "resource", OPTIONAL, &d->resource)) < 0 ||
	    (r = read_list(c, o, "env", LIST_ENV, &d->env)) < 0 ||
	    (r = read_properties(c, o, d)) < 0 ||
	    (r = read_items(c, o, "partitions", PROTO_MAX_PARTITIONS, "partitions", read_partition,
			    d)) < 0 ||
	    (r = read_bool(c, o, "partitioned", OPTIONAL, &d->partitioned)) < 0 ||
	    (r = read_bool(c, o, "partition_capable", OPTIONAL, &d->partition_capable)) < 0 ||
	    (r = read_bool(c, o, "partition_pending", OPTIONAL, &d->partition_pending)) < 0 ||
	    (r = read_items(c, o, "profiles", PROTO_MAX_PROFILES, "profiles", read_profile, d)) < 0)
		return r;
	*ret = TAKE_PTR(d);
	return 0;
}

int device_from_json(const json_t *j, struct xpu_device **ret, char **ret_error)
{
	_cleanup_free_ char *error = NULL;
	struct jctx c = {.error = &error};
	int r;

	r = read_device(&c, j, ret);
	if (r == -EBADMSG && ret_error)
		*ret_error = TAKE_PTR(error);
	return r;
}

/* ---- writing ----------------------------------------------------------------------------- */

/* Adds @v (stolen) to @o as @key; a NULL @v is a failure (OOM, or a value JSON cannot carry). */
static int put(json_t *o, const char *key, json_t *v)
{
	return v ? json_object_set_new(o, key, v) : -1;
}

static json_t *string_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* JSON's integers are signed 64-bit: a larger value could not be read back. */
static json_t *u64(uint64_t v)
{
	return v <= INT64_MAX ? json_integer((json_int_t)v) : NULL;
}

static json_t *string_array(char *const *l)
{
	json_t *a = json_array();

	STRV_FOREACH (s, (char **)l)
		if (!a || json_array_append_new(a, json_string(*s)) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* key, value, ..., NULL as a JSON object. */
static json_t *string_map(char *const *l)
{
	json_t *o = json_object();

	for (size_t i = 0; o && l && l[i] && l[i + 1]; i += 2)
		if (put(o, l[i], json_string(l[i + 1])) < 0) {
			json_decref(o);
			return NULL;
		}
	return o;
}

static json_t *health_to_json(const struct xpu_health *h)
{
	const char *state = xpu_health_state_to_string(h->state);

	if (!state)
		return NULL;
	return json_pack("{s:s, s:o, s:i}", "state", state, "reason", string_or_null(h->reason),
			 "action", h->action);
}

static json_t *pci_to_json(const struct xpu_pci_info *p)
{
	char address[sizeof(p->address)];

	/* the field need not be terminated: the parser refuses it then */
	memcpy(address, p->address, sizeof(address) - 1);
	address[sizeof(address) - 1] = '\0';
	return json_pack("{s:s, s:i, s:i, s:i, s:i, s:I, s:i, s:I, s:I, s:I, s:I}", "address",
			 address, "vendor_id", p->vendor_id, "device_id", p->device_id,
			 "subsystem_vendor_id", p->subsystem_vendor_id, "subsystem_device_id",
			 p->subsystem_device_id, "class_code", (json_int_t)p->class_code,
			 "revision", p->revision, "link_speed_mts", (json_int_t)p->link_speed_mts,
			 "link_width", (json_int_t)p->link_width, "max_link_speed_mts",
			 (json_int_t)p->max_link_speed_mts, "max_link_width",
			 (json_int_t)p->max_link_width);
}

static json_t *partition_to_json(const struct xpu_slice *s)
{
	json_t *o = json_object();

	if (!o || put(o, "id", string_or_null(s->id)) < 0 ||
	    put(o, "device_id", string_or_null(s->device_id)) < 0 ||
	    put(o, "resource", string_or_null(s->resource)) < 0 ||
	    put(o, "memory_bytes", u64(s->memory_bytes)) < 0 ||
	    put(o, "compute_fraction", json_real(s->compute_fraction)) < 0 ||
	    put(o, "shared", json_boolean(s->shared)) < 0 ||
	    put(o, "profile", string_or_null(s->profile)) < 0 ||
	    put(o, "device_nodes", string_array(s->device_nodes)) < 0 ||
	    put(o, "env", string_array(s->env)) < 0 ||
	    put(o, "health", health_to_json(&s->health)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *profile_to_json(const struct xpu_partition_profile *p)
{
	json_t *o = json_object();

	if (!o || put(o, "name", string_or_null(p->name)) < 0 ||
	    put(o, "free", json_integer(p->free)) < 0 ||
	    put(o, "total", json_integer(p->total)) < 0 ||
	    put(o, "memory_bytes", u64(p->memory_bytes)) < 0 ||
	    put(o, "compute_fraction", json_real(p->compute_fraction)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *device_to_json(const struct xpu_device *d)
{
	json_t *o = json_object(), *parts = json_array(), *profiles = json_array();

	if (!o || !parts || !profiles)
		goto fail;
	for (size_t i = 0; i < d->n_partitions; i++)
		if (json_array_append_new(parts, partition_to_json(d->partitions[i])) < 0)
			goto fail;
	for (size_t i = 0; i < d->n_profiles; i++)
		if (json_array_append_new(profiles, profile_to_json(&d->profiles[i])) < 0)
			goto fail;
	if (put(o, "id", string_or_null(d->id)) < 0 ||
	    put(o, "kind", string_or_null(xpu_kind_to_string(d->kind))) < 0 ||
	    put(o, "vendor", string_or_null(d->vendor)) < 0 ||
	    put(o, "model", string_or_null(d->model)) < 0 ||
	    put(o, "pci", d->has_pci ? pci_to_json(&d->pci) : json_null()) < 0 ||
	    put(o, "driver", string_or_null(d->driver)) < 0 ||
	    put(o, "numa_node", json_integer(d->numa_node)) < 0 ||
	    put(o, "cpu_list", string_or_null(d->cpu_list)) < 0 ||
	    put(o, "memory_bytes", u64(d->memory_bytes)) < 0 ||
	    put(o, "uuid", string_or_null(d->uuid)) < 0 ||
	    put(o, "device_nodes", string_array(d->device_nodes)) < 0 ||
	    put(o, "health", health_to_json(&d->health)) < 0 ||
	    put(o, "resource", string_or_null(d->resource)) < 0 ||
	    put(o, "env", string_array(d->env)) < 0 ||
	    put(o, "properties", string_map(d->properties)) < 0 ||
	    put(o, "partitions", TAKE_PTR(parts)) < 0 ||
	    put(o, "partitioned", json_boolean(d->partitioned)) < 0 ||
	    put(o, "partition_capable", json_boolean(d->partition_capable)) < 0 ||
	    put(o, "partition_pending", json_boolean(d->partition_pending)) < 0 ||
	    put(o, "profiles", TAKE_PTR(profiles)) < 0)
		goto fail;
	return o;
fail:
	json_decref(profiles);
	json_decref(parts);
	json_decref(o);
	return NULL;
}

/* ---- the messages ------------------------------------------------------------------------ */

json_t *helper_msg_hello(const char *helper, char *const *facts)
{
	return json_pack("{s:s, s:s, s:o}", "type", "hello", "helper", helper, "facts",
			 string_map(facts));
}

json_t *helper_msg_device(const struct xpu_device *d)
{
	return json_pack("{s:s, s:o}", "type", "device", "device", device_to_json(d));
}

json_t *helper_msg_failure(int index, const char *id, const char *error)
{
	return json_pack("{s:s, s:i, s:o, s:s}", "type", "failure", "index", index, "id",
			 string_or_null(id), "error", error);
}

json_t *helper_msg_slice_ref(const char *id, const char *slice, unsigned a, unsigned b)
{
	return json_pack("{s:s, s:s, s:s, s:[I, I]}", "type", "slice-ref", "id", id, "slice", slice,
			 "coords", (json_int_t)a, (json_int_t)b);
}

json_t *helper_msg_facts(const char *id, char *const *facts)
{
	return json_pack("{s:s, s:s, s:o}", "type", "facts", "id", id, "facts", string_map(facts));
}

json_t *helper_msg_result(int err, const char *error, long long value)
{
	return json_pack("{s:s, s:i, s:o, s:I}", "type", "result", "errno", err, "error",
			 string_or_null(error), "value", (json_int_t)value);
}

json_t *helper_msg_error(int err, bool unavailable, const char *error)
{
	return json_pack("{s:s, s:i, s:b, s:s}", "type", "error", "errno", err, "unavailable",
			 unavailable, "error", error);
}

json_t *helper_msg_end(void)
{
	return json_pack("{s:s}", "type", "end");
}

int helper_emit(FILE *out, json_t *msg)
{
	_cleanup_free_ char *text = NULL;
	json_t *line;

	if (!msg)
		return -ENOMEM;
	/* "v" first, for a reader's eye */
	line = json_pack("{s:i}", "v", HELPER_PROTO_VERSION);
	if (line && json_object_update(line, msg) < 0) {
		json_decref(line);
		line = NULL;
	}
	json_decref(msg);
	if (!line)
		return -ENOMEM;
	text = json_dumps(line, JSON_COMPACT);
	json_decref(line);
	if (!text)
		return -ENOMEM;
	if (strlen(text) > HELPER_LINE_MAX)
		return -E2BIG;
	if (fputs(text, out) == EOF || fputc('\n', out) == EOF || fflush(out) == EOF)
		return negative_errno();
	return 0;
}

/* ---- reading a reply --------------------------------------------------------------------- */

void helper_reply_done(struct helper_reply *r)
{
	free(r->helper);
	strv_free(r->facts);
	device_list_clear(&r->devices);
	for (size_t i = 0; i < r->n_failures; i++) {
		free(r->failures[i].id);
		free(r->failures[i].error);
	}
	free(r->failures);
	for (size_t i = 0; i < r->n_slice_refs; i++) {
		free(r->slice_refs[i].id);
		free(r->slice_refs[i].slice);
	}
	free(r->slice_refs);
	for (size_t i = 0; i < r->n_device_facts; i++) {
		free(r->device_facts[i].id);
		strv_free(r->device_facts[i].facts);
	}
	free(r->device_facts);
	free(r->result_error);
	free(r->error);
	*r = (struct helper_reply){};
}

/* Room for one more item in *@p (@n of @size bytes each, at most HELPER_MAX_ITEMS). */
static int grow(struct jctx *c, void **p, size_t n, size_t size, const char *what)
{
	void *m;

	if (n >= HELPER_MAX_ITEMS)
		return fail(c, "more than %d %s", HELPER_MAX_ITEMS, what);
	m = reallocarray(*p, n + 1, size);
	if (!m)
		return -ENOMEM;
	*p = m;
	return 0;
}

static int read_facts(struct jctx *c, const json_t *o, char ***ret)
{
	size_t old;
	json_t *v;
	int r;

	r = enter(c, o, "facts", REQUIRED, &v, &old);
	if (r < 0 || (r = read_string_map(c, v, PROTO_MAX_FACTS, "facts", ret)) < 0)
		return r;
	path_leave(c, old);
	return 0;
}

static int msg_hello(struct jctx *c, const json_t *o, struct helper_reply *r)
{
	int k;

	if (c->line != 1)
		return fail(c, "hello: not the first line");
	if ((k = read_string(c, o, "helper", REQUIRED, &r->helper)) < 0)
		return k;
	return read_facts(c, o, &r->facts);
}

static int msg_device(struct jctx *c, const json_t *o, struct helper_reply *r)
{
	struct xpu_device *d = NULL;
	size_t old;
	json_t *v;
	int k;

	if (r->devices.n >= HELPER_MAX_DEVICES)
		return fail(c, "more than %d devices", HELPER_MAX_DEVICES);
	k = enter(c, o, "device", REQUIRED, &v, &old);
	if (k < 0 || (k = read_device(c, v, &d)) < 0)
		return k;
	/* read_device() set @d when it succeeded (the analyzer loses track at this depth) */
	/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
	if (device_list_find(&r->devices, d->id)) {
		char q[72];

		quote(d->id, q, sizeof(q));
		device_free(d);
		path_key(c, "id");
		return fail(c, "'%s' is listed twice", q);
	}
	return device_list_push(&r->devices, d);
}

static int msg_failure(struct jctx *c, const json_t *o, struct helper_reply *r)
{
	struct helper_failure f = {.index = -1};
	int k;

	k = grow(c, (void **)&r->failures, r->n_failures, sizeof(f), "failures");
	if (k < 0 || (k = READ_NUMBER(c, o, "index", REQUIRED, -1, INT_MAX, f.index)) < 0 ||
	    (k = read_string(c, o, "id", NULLABLE, &f.id)) < 0)
		return k;
	k = read_string(c, o, "error", REQUIRED, &f.error);
	if (k < 0) {
		free(f.id);
		return k;
	}
	r->failures[r->n_failures++] = f;
	return 0;
}

static int msg_slice_ref(struct jctx *c, const json_t *o, struct helper_reply *r)
{
	struct helper_slice_ref s = {};
	size_t old, i;
	json_t *v, *e;
	int k;

	k = grow(c, (void **)&r->slice_refs, r->n_slice_refs, sizeof(s), "slice refs");
	if (k < 0 || (k = enter(c, o, "coords", REQUIRED, &v, &old)) < 0)
		return k;
	if (!json_is_array(v) || json_array_size(v) != 2)
		return fail(c, "not a list of two numbers");
	json_array_foreach (v, i, e) {
		size_t at = path_index(c, i);

		if (!json_is_integer(e))
			return fail(c, "not an integer");
		if (json_integer_value(e) < 0 || json_integer_value(e) > UINT_MAX)
			return fail(c, "%lld is outside 0..%u", (long long)json_integer_value(e),
				    UINT_MAX);
		s.coords[i] = (unsigned)json_integer_value(e);
		path_leave(c, at);
	}
	path_leave(c, old);
	if ((k = read_string(c, o, "id", REQUIRED, &s.id)) < 0 ||
	    (k = read_string(c, o, "slice", REQUIRED, &s.slice)) < 0) {
		free(s.id);
		return k;
	}
	r->slice_refs[r->n_slice_refs++] = s;
	return 0;
}

static int msg_facts(struct jctx *c, const json_t *o, struct helper_reply *r)
{
	struct helper_facts f = {};
	int k;

	k = grow(c, (void **)&r->device_facts, r->n_device_facts, sizeof(f), "facts messages");
	if (k < 0 || (k = read_string(c, o, "id", REQUIRED, &f.id)) < 0)
		return k;
	k = read_facts(c, o, &f.facts);
	if (k < 0) {
		free(f.id);
		return k;
	}
	r->device_facts[r->n_device_facts++] = f;
	return 0;
}

static int msg_result(struct jctx *c, const json_t *o, struct helper_reply *r)
{
	long long value = 0;
	int k;

	if (r->has_result)
		return fail(c, "a second result");
	if ((k = READ_NUMBER(c, o, "errno", REQUIRED, -PROTO_ERRNO_MAX, 0, r->result_errno)) < 0 ||
	    (k = read_int(c, o, "value", REQUIRED, LLONG_MIN, LLONG_MAX, &value)) < 0 ||
	    (k = read_string(c, o, "error", NULLABLE, &r->result_error)) < 0)
		return k;
	r->result_value = value;
	r->has_result = true;
	return 0;
}

static int msg_error(struct jctx *c, const json_t *o, struct helper_reply *r)
{
	int k;

	if (r->has_error)
		return fail(c, "a second error");
	if ((k = READ_NUMBER(c, o, "errno", REQUIRED, -PROTO_ERRNO_MAX, -1, r->error_errno)) < 0 ||
	    (k = read_bool(c, o, "unavailable", REQUIRED, &r->error_unavailable)) < 0 ||
	    (k = read_string(c, o, "error", REQUIRED, &r->error)) < 0)
		return k;
	r->has_error = true;
	return 0;
}

static int msg_end(struct jctx *c, const json_t *o, struct helper_reply *r)
{
	return 0;
}

static const struct message {
	const char *type;
	const char *keys[6]; /* besides "v" and "type" */
	int (*read)(struct jctx *c, const json_t *o, struct helper_reply *r);
} messages[] = {
	{ "hello", { "helper", "facts" }, msg_hello },
	{ "device", { "device" }, msg_device },
	{ "failure", { "index", "id", "error" }, msg_failure },
	{ "slice-ref", { "id", "slice", "coords" }, msg_slice_ref },
	{ "facts", { "id", "facts" }, msg_facts },
	{ "result", { "errno", "error", "value" }, msg_result },
	{ "error", { "errno", "unavailable", "error" }, msg_error },
	{ "end", {}, msg_end },
};

/* One line: a message, read into @r. Sets *ret_end for "end". */
static int read_line(struct jctx *c, const char *p, size_t n, struct helper_reply *r, bool *ret_end)
{
	const struct message *m = NULL;
	const char *keys[ELEMENTSOF(messages[0].keys) + 3] = {"v", "type"};
	_cleanup_free_ char *type = NULL;
	long long v = 0;
	json_error_t jerr;
	json_t *o;
	int k;

	if (n > HELPER_LINE_MAX)
		return fail(c, "longer than %d bytes", HELPER_LINE_MAX);
	if (memchr(p, '\0', n))
		return fail(c, "contains a NUL byte");
	o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		char q[72];

		if (json_error_code(&jerr) == json_error_out_of_memory)
			return -ENOMEM;
		quote(jerr.text, q, sizeof(q));
		return fail(c, "not a JSON object: %s", q);
	}
	if (!json_is_object(o)) {
		json_decref(o);
		return fail(c, "not a JSON object");
	}
	k = read_int(c, o, "v", REQUIRED, LLONG_MIN, LLONG_MAX, &v);
	if (k == 0 && v != HELPER_PROTO_VERSION) {
		path_key(c, "v");
		k = fail(c, "version %lld, expected %d", v, HELPER_PROTO_VERSION);
	}
	if (k == 0)
		k = read_string(c, o, "type", REQUIRED, &type);
	for (size_t i = 0; k == 0 && !m && i < ELEMENTSOF(messages); i++)
		if (streq_ptr(type, messages[i].type))
			m = &messages[i];
	if (k == 0 && !m) {
		char q[72];

		quote(type, q, sizeof(q));
		path_key(c, "type");
		k = fail(c, "unknown type '%s'", q);
	}
	if (k == 0) {
		memcpy(keys + 2, m->keys, sizeof(m->keys));
		k = check_object(c, o, keys);
	}
	if (k == 0)
		k = m->read(c, o, r);
	json_decref(o);
	if (k == 0)
		*ret_end = m->read == msg_end;
	return k;
}

int helper_reply_parse(const char *buf, size_t len, struct helper_reply *ret, char **ret_error)
{
	_cleanup_(helper_reply_done) struct helper_reply r = {};
	_cleanup_free_ char *error = NULL;
	struct jctx c = {.error = &error};
	const char *p = buf, *end = buf + len;
	bool ended = false;
	int k = 0;

	if (len > HELPER_OUTPUT_MAX)
		k = fail(&c, "reply longer than %d bytes", HELPER_OUTPUT_MAX);
	while (k == 0 && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ?: end) - p);

		c.line++;
		k = ended ? fail(&c, "text after \"end\"") : read_line(&c, p, n, &r, &ended);
		path_leave(&c, 0);
		p = nl ? nl + 1 : end;
	}
	if (k == 0 && !ended) {
		size_t lines = c.line;

		c.line = 0;
		k = lines == 0 ? fail(&c, "empty reply")
			       : fail(&c, "truncated: no \"end\" after line %zu", lines);
	}
	if (k == -EBADMSG && ret_error)
		*ret_error = TAKE_PTR(error);
	if (k < 0)
		return k;
	*ret = r;
	r = (struct helper_reply){};
	return 0;
}
