// SPDX-License-Identifier: GPL-2.0-or-later
/* xpud's persistent state as JSON: the document, its checks, and the structures read from it and
 * written to it. state-file.c reads and writes the file. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rules.h"
#include "core/state-internal.h"
#include "core/state.h"
#include "shared/strv.h"

/*
 * Loading and saving. The document is checked in two steps: JSON types and the ranges JSON can
 * express are checked while it is read (read_*), everything else on the C structures
 * (check_*), and the same check_* functions run before a save, so that state_save() never
 * writes a document state_load() would not read back whole.
 */

#define STATE_MAX_STRING 4096 /* bytes in any one string */
#define STATE_MAX_ITEMS 4096  /* slices of one allocation, profiles of one offer */

/*
 * Replaces *@error with the message @fmt (and ": @suffix"), made one line whatever the file (or
 * jansson's quote of it) holds. Returns -EINVAL, or -ENOMEM.
 */
static int vfail(char **error, const char *suffix, const char *fmt, va_list ap) _printf_(3, 0);
static int vfail(char **error, const char *suffix, const char *fmt, va_list ap)
{
	_cleanup_free_ char *m = NULL;

	if (vasprintf(&m, fmt, ap) < 0)
		return -ENOMEM;
	if (suffix) {
		char *joined;

		if (asprintf(&joined, "%s: %s", m, suffix) < 0)
			return -ENOMEM;
		free(m);
		m = joined;
	}
	for (char *p = m; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	free(*error);
	*error = TAKE_PTR(m);
	return -EINVAL;
}

int state_fail_printf(char **error, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vfail(error, NULL, fmt, ap);
	va_end(ap);
	return r;
}

/* Prefixes *@error with "@fmt: " (the place where it happened). Returns @r. */
static int fail_at_printf(int r, char **error, const char *fmt, ...) _printf_(3, 4);
static int fail_at_printf(int r, char **error, const char *fmt, ...)
{
	_cleanup_free_ char *what = NULL;
	va_list ap;

	if (r != -EINVAL || !*error)
		return r;
	what = TAKE_PTR(*error);
	va_start(ap, fmt);
	r = vfail(error, what, fmt, ap);
	va_end(ap);
	return r;
}
/* Says the same of fail_at(): it returns @r, or a negative errno when @r is one. */
#define fail_at(r, ...)                                                                            \
	({                                                                                         \
		int _a_ = (r);                                                                     \
		int _f_ = fail_at_printf(_a_, __VA_ARGS__);                                        \
		_a_ >= 0 ? _a_ : _f_ < 0 ? _f_ : -EINVAL;                                          \
	})

/*
 * A string from the file, made safe to quote in a one-line message: at most 64 characters,
 * anything but printable ASCII as '?'. Returns a static buffer: one quote per message.
 */
static const char *quote(const char *s)
{
	static char buf[68];
	size_t i;

	for (i = 0; i < 64 && s[i]; i++)
		buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	strcpy(buf + i, s[i] ? "..." : "");
	return buf;
}

/* ---- checks on the structures, shared by loading and saving ---------------------------- */

static int check_string(const char *what, const char *s, bool required, char **error)
{
	if (!s)
		return required ? fail(error, "%s: missing", what) : 0;
	if (!s[0])
		return fail(error, "%s: empty string", what);
	if (strlen(s) > STATE_MAX_STRING)
		return fail(error, "%s: longer than %d bytes", what, STATE_MAX_STRING);
	return 0;
}

static int check_strv(const char *what, char *const *l, bool required, bool unique, char **error)
{
	size_t n = strv_length(l);
	int r;

	if (n == 0)
		return required ? fail(error, "%s: missing or empty", what) : 0;
	if (n > STATE_MAX_ITEMS)
		return fail(error, "%s: more than %d entries", what, STATE_MAX_ITEMS);
	for (size_t i = 0; i < n; i++) {
		r = check_string(what, l[i], true, error);
		if (r < 0)
			return r;
		for (size_t j = 0; unique && j < i; j++)
			if (streq(l[i], l[j]))
				return fail(error, "%s: '%s' is listed twice", what, quote(l[i]));
	}
	return 0;
}

/* JSON integers are signed 64-bit: a larger value could not be read back. */
static int check_u64(const char *what, uint64_t v, char **error)
{
	return v > INT64_MAX ? fail(error, "%s: %" PRIu64 " is too large", what, v) : 0;
}

static bool allocation_id_valid(const char *id)
{
	if (strlen(id) != 18 || strncmp(id, "a-", 2) != 0)
		return false;
	for (const char *p = id + 2; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static int check_allocation(const struct allocation *a, char **error)
{
	int r;

	r = check_string("id", a->id, true, error);
	if (r < 0)
		return r;
	if (!allocation_id_valid(a->id))
		return fail(error, "id: '%s' is not 'a-' and 16 lowercase hex digits",
			    quote(a->id));
	if ((r = check_string("resource", a->resource, false, error)) < 0 ||
	    (r = check_strv("slices", a->slices, true, true, error)) < 0 ||
	    (r = check_u64("created_usec", a->created_usec, error)) < 0 ||
	    (r = check_u64("owner: pid_start", a->owner.pid_start, error)) < 0)
		return r;
	if (!owner_kind_to_string(a->owner.kind))
		return fail(error, "owner: kind %d is unknown", (int)a->owner.kind);
	/* every owner but "none" names what the allocation follows */
	return check_string("owner: value", a->owner.value, a->owner.kind != OWNER_NONE, error);
}

static int check_offer(const struct offer *o, char **error)
{
	bool counted = o->kind == OFFER_REPLICAS || o->kind == OFFER_MEMORY_SHARES;
	int r;

	const struct partition_scheme *sc = o->kind == OFFER_PARTITIONS ? o->scheme : NULL;

	if (!offer_kind_to_string(o->kind, o->scheme))
		return fail(error, "kind %d is unknown", (int)o->kind);
	if (o->count > OFFER_MAX_COUNT || (counted && o->count == 0))
		return fail(error, "count: %u is outside 1..%d", o->count, OFFER_MAX_COUNT);
	if (!isfinite(o->compute) || o->compute < 0 || o->compute > 1)
		return fail(error, "compute: %g is outside (0, 1]", o->compute);
	if ((r = check_u64("share_bytes", o->share_bytes, error)) < 0 ||
	    (r = check_strv(sc ? sc->state_layout_key : "layout", o->layout, sc, false, error)) < 0)
		return r;
	if (sc && sc->modes && (strv_length(o->layout) != 1 ||
				!strv_contains((char *const *)sc->modes, o->layout[0])))
		return fail(error, "%s: not one of the modes", sc->state_layout_key);
	return check_string("resource", o->resource, false, error);
}

/* Whether @a can join @l: its id and slices must be new there. */
static int check_conflicts(const struct ledger *l, size_t n, const struct allocation *a,
			   char **error)
{
	for (size_t i = 0; i < n; i++) {
		const struct allocation *b = l->items[i];

		if (streq(a->id, b->id))
			return fail(error, "id '%s' is used twice", quote(a->id));
		STRV_FOREACH (slice, a->slices)
			if (strv_contains(b->slices, *slice))
				return fail(error, "slice '%s' is held by %s already",
					    quote(*slice), b->id);
	}
	return 0;
}

static int check_applied(const struct applied_offer *a, size_t n, const struct applied_offer *m,
			 char **error)
{
	int r;

	r = check_string("device", m->device_id, true, error);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (streq(a[i].device_id, m->device_id))
			return fail(error, "device '%s' is listed twice", quote(m->device_id));
	return fail_at(check_offer(&m->offer, error), error, "offer");
}

static int check_cordon(const struct device_cordon *a, size_t n, const struct device_cordon *c,
			char **error)
{
	int r;

	if ((r = check_string("device", c->device_id, true, error)) < 0 ||
	    (r = check_string("reason", c->reason, true, error)) < 0 ||
	    (r = check_u64("since_usec", c->since_usec, error)) < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (streq(a[i].device_id, c->device_id))
			return fail(error, "device '%s' is listed twice", quote(c->device_id));
	return 0;
}

static int check_repartition(const struct repartition *a, size_t n, const struct repartition *p,
			     char **error)
{
	int r;

	if ((r = check_string("device", p->device_id, true, error)) < 0 ||
	    (r = check_string("error", p->error, false, error)) < 0 ||
	    (r = check_u64("started_usec", p->started_usec, error)) < 0 ||
	    (r = check_u64("deadline_usec", p->deadline_usec, error)) < 0)
		return r;
	if (!repartition_phase_to_string(p->phase))
		return fail(error, "phase: %d is unknown", (int)p->phase);
	for (size_t i = 0; i < n; i++)
		if (streq(a[i].device_id, p->device_id))
			return fail(error, "device '%s' is listed twice", quote(p->device_id));
	r = fail_at(check_offer(&p->target, error), error, "target");
	if (r == 0 && p->has_previous)
		r = fail_at(check_offer(&p->previous, error), error, "previous");
	if (r == 0 && p->has_previous_layout)
		r = fail_at(check_offer(&p->previous_layout, error), error, "previous_layout");
	return r;
}

static int check_state(const struct state *s, char **error)
{
	int r;

	for (size_t i = 0; i < s->ledger.n; i++) {
		const struct allocation *a = s->ledger.items[i];

		r = check_allocation(a, error);
		if (r == 0)
			r = check_conflicts(&s->ledger, i, a, error);
		if (r < 0)
			return fail_at(r, error, "allocations[%zu]", i);
	}
	for (size_t i = 0; i < s->n_applied; i++) {
		r = check_applied(s->applied, i, &s->applied[i], error);
		if (r < 0)
			return fail_at(r, error, "applied[%zu]", i);
	}
	for (size_t i = 0; i < s->n_layouts; i++) {
		r = check_applied(s->layouts, i, &s->layouts[i], error);
		if (r < 0)
			return fail_at(r, error, "layouts[%zu]", i);
	}
	for (size_t i = 0; i < s->n_cordons; i++) {
		r = check_cordon(s->cordons, i, &s->cordons[i], error);
		if (r < 0)
			return fail_at(r, error, "cordons[%zu]", i);
	}
	for (size_t i = 0; i < s->n_repartitions; i++) {
		r = check_repartition(s->repartitions, i, &s->repartitions[i], error);
		if (r < 0)
			return fail_at(r, error, "repartitions[%zu]", i);
	}
	return 0;
}

/* ---- JSON to structures ---------------------------------------------------------------- */

/* Refuses keys outside @keys (NULL-terminated): a typo must not lose a field silently. */
static int read_keys(json_t *o, const char *const *keys, char **error)
{
	const char *key;
	json_t *v;

	if (!json_is_object(o))
		return fail(error, "expected an object");
	json_object_foreach (o, key, v) {
		bool known = false;

		for (const char *const *k = keys; *k && !known; k++)
			known = streq(*k, key);
		if (!known)
			return fail(error, "unknown key '%s'", quote(key));
	}
	return 0;
}

/* A string value (NULL if absent); its limits are check_string()'s. */
static int read_string(json_t *o, const char *key, char **ret, char **error)
{
	json_t *v = json_object_get(o, key);

	if (!v) {
		*ret = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return fail(error, "%s: expected a string", key);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fail(error, "%s: contains a NUL character", key);
	*ret = strdup(json_string_value(v));
	return *ret ? 0 : -ENOMEM;
}

static int read_strv(json_t *o, const char *key, char ***ret, char **error)
{
	_cleanup_strv_free_ char **l = NULL;
	json_t *v = json_object_get(o, key), *e;
	size_t i;

	if (v && !json_is_array(v))
		return fail(error, "%s: expected a list of strings", key);
	if (json_array_size(v) > STATE_MAX_ITEMS)
		return fail(error, "%s: more than %d entries", key, STATE_MAX_ITEMS);
	json_array_foreach (v, i, e) {
		if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e))
			return fail(error, "%s[%zu]: expected a string", key, i);
		if (strv_extend(&l, json_string_value(e)) < 0)
			return -ENOMEM;
	}
	if (v && !l)
		return fail(error, "%s: empty list", key);
	*ret = TAKE_PTR(l);
	return 0;
}

/* An integer in @min..@max, or 0 when absent. */
static int read_int(json_t *o, const char *key, int64_t min, int64_t max, uint64_t *ret,
		    char **error)
{
	json_t *v = json_object_get(o, key);
	int64_t i;

	if (!v) {
		*ret = 0;
		return 0;
	}
	if (!json_is_integer(v))
		return fail(error, "%s: expected an integer", key);
	i = json_integer_value(v);
	if (i < min || i > max)
		return fail(error, "%s: %" PRId64 " is outside %" PRId64 "..%" PRId64, key, i, min,
			    max);
	*ret = (uint64_t)i;
	return 0;
}

static int read_owner(json_t *o, struct alloc_owner *ret, char **error)
{
	static const char *const keys[] = {"kind", "value", "pid_start", NULL};
	_cleanup_free_ char *kind = NULL;
	int r;

	if (!o) {
		*ret = (struct alloc_owner){.kind = OWNER_NONE};
		return 0;
	}
	if ((r = read_keys(o, keys, error)) < 0 || (r = read_string(o, "kind", &kind, error)) < 0)
		return r;
	if (!kind)
		return fail(error, "kind: missing");
	ret->kind = owner_kind_from_string(kind);
	if (ret->kind < 0)
		return fail(error, "kind: '%s' is not pid, cgroup, unit, pod or none", quote(kind));
	r = read_int(o, "pid_start", 0, INT64_MAX, &ret->pid_start, error);
	return r < 0 ? r : read_string(o, "value", &ret->value, error);
}

static int read_allocation(json_t *o, struct allocation **ret, char **error)
{
	static const char *const keys[] = {"id",    "resource",	    "slices",
					   "owner", "created_usec", NULL};
	_cleanup_(allocation_freep) struct allocation *a = NULL;
	int r;

	r = read_keys(o, keys, error);
	if (r < 0)
		return r;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	if ((r = read_string(o, "id", &a->id, error)) < 0 ||
	    (r = read_string(o, "resource", &a->resource, error)) < 0 ||
	    (r = read_strv(o, "slices", &a->slices, error)) < 0 ||
	    (r = read_int(o, "created_usec", 0, INT64_MAX, &a->created_usec, error)) < 0)
		return r;
	r = read_owner(json_object_get(o, "owner"), &a->owner, error);
	if (r < 0)
		return fail_at(r, error, "owner");
	r = check_allocation(a, error);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(a);
	return 0;
}

/* A partition offer's layout and enable flag, under its scheme's keys. */
static int read_layout(json_t *o, struct offer *f, char **error)
{
	const struct partition_scheme *sc = f->scheme;
	_cleanup_free_ char *mode = NULL;
	json_t *v;
	int r;

	if (sc->state_enable_key) {
		v = json_object_get(o, sc->state_enable_key);
		if (v && !json_is_boolean(v))
			return fail(error, "%s: expected true or false", sc->state_enable_key);
		f->enable = json_is_true(v);
	}
	if (!sc->modes)
		return read_strv(o, sc->state_layout_key, &f->layout, error);
	r = read_string(o, sc->state_layout_key, &mode, error);
	if (r < 0 || !mode)
		return r;
	return strv_consume(&f->layout, TAKE_PTR(mode));
}

static int read_offer(json_t *o, struct offer *ret, char **error)
{
	const char *keys[] = {"kind",	  "count", "share_bytes", "compute",
			      "resource", NULL,	   NULL,	  NULL};
	_cleanup_free_ char *kind = NULL, *kinds = NULL;
	struct offer f = {};
	uint64_t count = 0;
	json_t *v;
	int r;

	if (!json_is_object(o))
		return fail(error, "expected an object");
	if ((r = read_string(o, "kind", &kind, error)) < 0)
		return r;
	if (!kind)
		return fail(error, "kind: missing");
	f.kind = offer_kind_from_string(kind, &f.scheme);
	if (f.kind < 0)
		return (kinds = offer_kinds_list())
			       ? fail(error, "kind: '%s' is not %s", quote(kind), kinds)
			       : -ENOMEM;
	if (f.scheme) {
		keys[5] = f.scheme->state_layout_key;
		keys[6] = f.scheme->state_enable_key;
	}
	if ((r = read_keys(o, keys, error)) < 0)
		return r;
	if ((r = read_int(o, "count", 1, OFFER_MAX_COUNT, &count, error)) < 0 ||
	    (r = read_int(o, "share_bytes", 1, INT64_MAX, &f.share_bytes, error)) < 0)
		return r;
	f.count = (unsigned)count;
	v = json_object_get(o, "compute");
	if (v) {
		if (!json_is_number(v))
			return fail(error, "compute: expected a number");
		f.compute = json_number_value(v);
		if (!(f.compute > 0 && f.compute <= 1))
			return fail(error, "compute: %g is outside (0, 1]", f.compute);
	}
	if ((f.scheme && (r = read_layout(o, &f, error)) < 0) ||
	    (r = read_string(o, "resource", &f.resource, error)) < 0 ||
	    (r = check_offer(&f, error)) < 0) {
		offer_done(&f);
		return r;
	}
	*ret = f;
	return 0;
}

static int read_applied(json_t *o, struct applied_offer *ret, char **error)
{
	static const char *const keys[] = {"device", "offer", NULL};
	struct applied_offer m = {};
	int r;

	r = read_keys(o, keys, error);
	if (r < 0)
		return r;
	if (!json_object_get(o, "offer"))
		return fail(error, "offer: missing");
	r = read_offer(json_object_get(o, "offer"), &m.offer, error);
	if (r < 0)
		return fail_at(r, error, "offer");
	r = read_string(o, "device", &m.device_id, error);
	if (r < 0) {
		offer_done(&m.offer);
		return r;
	}
	*ret = m;
	return 0;
}

/* Reads one list entry, checks it against the entries kept before it, and keeps it. */
typedef int (*take_entry_t)(json_t *e, struct state *s, char **error);

static int take_allocation(json_t *e, struct state *s, char **error)
{
	_cleanup_(allocation_freep) struct allocation *a = NULL;
	int r;

	r = read_allocation(e, &a, error);
	if (r == 0)
		r = check_conflicts(&s->ledger, s->ledger.n, a, error);
	return r < 0 ? r : ledger_add(&s->ledger, TAKE_PTR(a));
}

static int take_applied(json_t *e, struct state *s, char **error)
{
	struct applied_offer m = {};
	int r;

	r = read_applied(e, &m, error);
	if (r == 0)
		r = check_applied(s->applied, s->n_applied, &m, error);
	if (r == 0)
		r = state_set_applied(s, m.device_id, &m.offer);
	free(m.device_id);
	offer_done(&m.offer);
	return r;
}

static int take_layout(json_t *e, struct state *s, char **error)
{
	struct applied_offer m = {};
	int r;

	r = read_applied(e, &m, error);
	if (r == 0)
		r = check_applied(s->layouts, s->n_layouts, &m, error);
	if (r == 0)
		r = state_set_layout(s, m.device_id, &m.offer);
	free(m.device_id);
	offer_done(&m.offer);
	return r;
}

static int take_cordon(json_t *e, struct state *s, char **error)
{
	static const char *const keys[] = {"device", "reason", "since_usec", NULL};
	struct device_cordon c = {};
	int r;

	if ((r = read_keys(e, keys, error)) < 0 ||
	    (r = read_string(e, "device", &c.device_id, error)) < 0 ||
	    (r = read_string(e, "reason", &c.reason, error)) < 0 ||
	    (r = read_int(e, "since_usec", 0, INT64_MAX, &c.since_usec, error)) < 0 ||
	    (r = check_cordon(s->cordons, s->n_cordons, &c, error)) < 0 ||
	    (r = state_set_cordon(s, c.device_id, c.reason, c.since_usec)) < 0)
		goto finish;
finish:
	free(c.device_id);
	free(c.reason);
	return r;
}

/* An offer under @key: required, or optional with *@ret_has. */
static int read_offer_at(json_t *o, const char *key, bool *ret_has, struct offer *ret,
			 char **error)
{
	json_t *v = json_object_get(o, key);

	if (ret_has)
		*ret_has = v;
	if (!v)
		return ret_has ? 0 : fail(error, "%s: missing", key);
	return fail_at(read_offer(v, ret, error), error, "%s", key);
}

static int take_repartition(json_t *e, struct state *s, char **error)
{
	static const char *const keys[] = {
		"device", "target",	  "previous",	   "previous_layout", "by_policy",
		"phase",  "started_usec", "deadline_usec", "error",	      NULL,
	};
	struct repartition p = {};
	_cleanup_free_ char *phase = NULL;
	json_t *v;
	int r;

	if ((r = read_keys(e, keys, error)) < 0 ||
	    (r = read_string(e, "device", &p.device_id, error)) < 0 ||
	    (r = read_string(e, "phase", &phase, error)) < 0 ||
	    (r = read_string(e, "error", &p.error, error)) < 0 ||
	    (r = read_int(e, "started_usec", 0, INT64_MAX, &p.started_usec, error)) < 0 ||
	    (r = read_int(e, "deadline_usec", 0, INT64_MAX, &p.deadline_usec, error)) < 0 ||
	    (r = read_offer_at(e, "target", NULL, &p.target, error)) < 0 ||
	    (r = read_offer_at(e, "previous", &p.has_previous, &p.previous, error)) < 0 ||
	    (r = read_offer_at(e, "previous_layout", &p.has_previous_layout, &p.previous_layout,
			       error)) < 0)
		goto finish;
	v = json_object_get(e, "by_policy");
	if (v && !json_is_boolean(v)) {
		r = fail(error, "by_policy: expected true or false");
		goto finish;
	}
	p.by_policy = json_is_true(v);
	p.phase = repartition_phase_from_string(phase);
	if (!phase)
		r = fail(error, "phase: missing");
	else if (p.phase < 0)
		r = fail(error, "phase: '%s' is not draining, applying or rolling-back",
			 quote(phase));
	if (r == 0)
		r = check_repartition(s->repartitions, s->n_repartitions, &p, error);
	if (r == 0)
		r = state_add_repartition(s, &p);
finish:
	repartition_done(&p);
	return r;
}

/*
 * Takes every valid entry of @list, drops the others: the first problem is kept in *@first,
 * later ones only counted. 0 or -ENOMEM.
 */
static int take_entries(json_t *list, const char *name, take_entry_t take, struct state *s,
			char **first, unsigned *n_dropped)
{
	json_t *e;
	size_t i;
	int r;

	json_array_foreach (list, i, e) {
		_cleanup_free_ char *error = NULL;

		r = fail_at(take(e, s, &error), &error, "%s[%zu]", name, i);
		if (r != -EINVAL && r < 0)
			return r;
		if (r == -EINVAL) {
			if (!*first)
				*first = TAKE_PTR(error);
			(*n_dropped)++;
		}
	}
	return 0;
}

/* See state-internal.h. */
int state_parse(const char *text, size_t len, struct state *s, char **ret_error, size_t *ret_total)
{
	static const char *const keys[] = {"version", "allocations", "applied", "layouts",
					   "cordons", "repartitions", NULL};
	static const struct {
		const char *name;
		take_entry_t take;
	} lists[] = {
		{ "allocations", take_allocation }, { "applied", take_applied },
		{ "layouts", take_layout },	     { "cordons", take_cordon },
		{ "repartitions", take_repartition },
	};
	_cleanup_(state_done) struct state parsed = {};
	_cleanup_free_ char *error = NULL, *first = NULL;
	json_t *doc, *allocations;
	unsigned n_dropped = 0;
	json_error_t jerr;
	uint64_t version = 0;
	int r;

	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		r = fail(&error, "not valid JSON: line %d column %d: %s", jerr.line, jerr.column,
			 jerr.text);
		goto finish;
	}
	r = read_keys(doc, keys, &error);
	if (r == 0 && !json_object_get(doc, "version"))
		r = fail(&error, "version: missing");
	if (r == 0)
		r = read_int(doc, "version", INT64_MIN, INT64_MAX, &version, &error);
	if (r == 0 && version != STATE_VERSION)
		r = fail(&error, "version: %" PRId64 " is not supported (only %d is)",
			 (int64_t)version, STATE_VERSION);
	allocations = json_object_get(doc, "allocations");
	for (size_t i = 0; r == 0 && i < ELEMENTSOF(lists); i++) {
		json_t *l = json_object_get(doc, lists[i].name);

		if (l && !json_is_array(l))
			r = fail(&error, "%s: expected a list", lists[i].name);
	}
	for (size_t i = 0; r == 0 && i < ELEMENTSOF(lists); i++)
		r = take_entries(json_object_get(doc, lists[i].name), lists[i].name,
				 lists[i].take, &parsed, &first, &n_dropped);
	if (ret_total)
		*ret_total = json_array_size(allocations);
	json_decref(doc);

finish:
	if (r == -EINVAL)
		r = -EBADMSG; /* the document as a whole is unusable */
	if (r == 0 && n_dropped > 0) {
		if (n_dropped > 1)
			r = fail(&error, "%s (and %u more invalid entries)", first, n_dropped - 1);
		else
			r = fail(&error, "%s", first);
	}
	if (r < 0 && r != -ENOMEM && ret_error)
		*ret_error = TAKE_PTR(error);
	if (r == 0 || r == -EINVAL) {
		state_done(s);
		*s = parsed;
		parsed = (struct state){};
	}
	return r;
}

int state_from_json(const char *text, size_t len, struct state *s, char **ret_error)
{
	return state_parse(text, len, s, ret_error, NULL);
}

/* ---- structures to JSON ---------------------------------------------------------------- */

/* Each add_* adds nothing for a zero value. jansson refuses strings that are not UTF-8. */
static int add(json_t *o, const char *key, json_t *v)
{
	return json_object_set_new(o, key, v) < 0 ? -ENOMEM : 0;
}

static int add_string(json_t *o, const char *key, const char *value)
{
	json_t *v;

	if (!value)
		return 0;
	v = json_string(value);
	return v ? add(o, key, v) : -EINVAL;
}

static int add_int(json_t *o, const char *key, uint64_t value)
{
	return value ? add(o, key, json_integer((json_int_t)value)) : 0;
}

static int add_strv(json_t *o, const char *key, char *const *l)
{
	json_t *a;

	if (!l)
		return 0;
	a = json_array();
	if (!a)
		return -ENOMEM;
	STRV_FOREACH (e, (char **)l) {
		json_t *v = json_string(*e);

		if (!v || json_array_append_new(a, v) < 0) {
			json_decref(a);
			return v ? -ENOMEM : -EINVAL;
		}
	}
	return add(o, key, a);
}

static int allocation_to_json(const struct allocation *a, json_t **ret)
{
	json_auto_t *o = json_object(), *owner = NULL;
	int r;

	if (!o)
		return -ENOMEM;
	if ((r = add_string(o, "id", a->id)) < 0 ||
	    (r = add_string(o, "resource", a->resource)) < 0 ||
	    (r = add_strv(o, "slices", a->slices)) < 0)
		return r;
	if (a->owner.kind != OWNER_NONE || a->owner.value || a->owner.pid_start) {
		owner = json_object();
		if (!owner)
			return -ENOMEM;
		if ((r = add_string(owner, "kind", owner_kind_to_string(a->owner.kind))) < 0 ||
		    (r = add_string(owner, "value", a->owner.value)) < 0 ||
		    (r = add_int(owner, "pid_start", a->owner.pid_start)) < 0 ||
		    (r = add(o, "owner", TAKE_PTR(owner))) < 0)
			return r;
	}
	r = add_int(o, "created_usec", a->created_usec);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(o);
	return 0;
}

static int offer_to_json(const struct offer *f, json_t **ret)
{
	json_auto_t *o = json_object();
	int r;

	if (!o)
		return -ENOMEM;
	const struct partition_scheme *sc = f->kind == OFFER_PARTITIONS ? f->scheme : NULL;

	if ((r = add_string(o, "kind", offer_kind_to_string(f->kind, f->scheme))) < 0 ||
	    (r = add_int(o, "count", f->count)) < 0 ||
	    (r = add_int(o, "share_bytes", f->share_bytes)) < 0 ||
	    (f->compute > 0 && (r = add(o, "compute", json_real(f->compute))) < 0) ||
	    (sc && !sc->modes && (r = add_strv(o, sc->state_layout_key, f->layout)) < 0) ||
	    (sc && sc->modes && f->layout &&
	     (r = add_string(o, sc->state_layout_key, f->layout[0])) < 0) ||
	    (sc && f->enable && sc->state_enable_key &&
	     (r = add(o, sc->state_enable_key, json_true())) < 0) ||
	    (r = add_string(o, "resource", f->resource)) < 0)
		return r;
	*ret = TAKE_PTR(o);
	return 0;
}

static int applied_to_json(const struct applied_offer *m, json_t **ret)
{
	json_auto_t *o = json_object();
	json_t *offer = NULL;
	int r;

	if (!o)
		return -ENOMEM;
	if ((r = add_string(o, "device", m->device_id)) < 0 ||
	    (r = offer_to_json(&m->offer, &offer)) < 0 || (r = add(o, "offer", offer)) < 0)
		return r;
	*ret = TAKE_PTR(o);
	return 0;
}

static int cordon_to_json(const struct device_cordon *c, json_t **ret)
{
	json_auto_t *o = json_object();
	int r;

	if (!o)
		return -ENOMEM;
	if ((r = add_string(o, "device", c->device_id)) < 0 ||
	    (r = add_string(o, "reason", c->reason)) < 0 ||
	    (r = add_int(o, "since_usec", c->since_usec)) < 0)
		return r;
	*ret = TAKE_PTR(o);
	return 0;
}

static int repartition_to_json(const struct repartition *p, json_t **ret)
{
	json_auto_t *o = json_object();
	json_t *offer = NULL;
	int r;

	if (!o)
		return -ENOMEM;
	if ((r = add_string(o, "device", p->device_id)) < 0 ||
	    (r = offer_to_json(&p->target, &offer)) < 0 || (r = add(o, "target", offer)) < 0)
		return r;
	if (p->has_previous &&
	    ((r = offer_to_json(&p->previous, &offer)) < 0 || (r = add(o, "previous", offer)) < 0))
		return r;
	if (p->has_previous_layout && ((r = offer_to_json(&p->previous_layout, &offer)) < 0 ||
				       (r = add(o, "previous_layout", offer)) < 0))
		return r;
	if ((p->by_policy && (r = add(o, "by_policy", json_true())) < 0) ||
	    (r = add_string(o, "phase", repartition_phase_to_string(p->phase))) < 0 ||
	    (r = add_int(o, "started_usec", p->started_usec)) < 0 ||
	    (r = add_int(o, "deadline_usec", p->deadline_usec)) < 0 ||
	    (r = add_string(o, "error", p->error)) < 0)
		return r;
	*ret = TAKE_PTR(o);
	return 0;
}

/* Appends one entry made by @to_json, or says which entry was not UTF-8. */
static int append_entry(json_t *list, const char *name, size_t i, int r, json_t *e, char **error)
{
	if (r == 0 && json_array_append_new(list, e) < 0)
		r = -ENOMEM;
	return r == -EINVAL ? fail(error, "%s[%zu]: not UTF-8", name, i) : r;
}

/* See state-internal.h. */
int state_dump(const struct state *s, char **ret, char **error)
{
	json_auto_t *doc = NULL;
	json_t *allocations, *applied, *list = NULL, *e = NULL;
	char *text;
	int r;

	r = check_state(s, error);
	if (r < 0)
		return r;
	doc = json_object();
	allocations = json_array();
	applied = json_array();
	if (!doc || add(doc, "version", json_integer(STATE_VERSION)) < 0 ||
	    add(doc, "allocations", allocations) < 0 || add(doc, "applied", applied) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < s->ledger.n; i++) {
		r = allocation_to_json(s->ledger.items[i], &e);
		if ((r = append_entry(allocations, "allocations", i, r, e, error)) < 0)
			return r;
	}
	for (size_t i = 0; i < s->n_applied; i++) {
		r = applied_to_json(&s->applied[i], &e);
		if ((r = append_entry(applied, "applied", i, r, e, error)) < 0)
			return r;
	}
	/* written only when there are any: a state without them reads as before */
	if (s->n_layouts && (!(list = json_array()) || add(doc, "layouts", list) < 0))
		return -ENOMEM;
	for (size_t i = 0; i < s->n_layouts; i++) {
		r = applied_to_json(&s->layouts[i], &e);
		if ((r = append_entry(list, "layouts", i, r, e, error)) < 0)
			return r;
	}
	if (s->n_cordons && (!(list = json_array()) || add(doc, "cordons", list) < 0))
		return -ENOMEM;
	for (size_t i = 0; i < s->n_cordons; i++) {
		r = cordon_to_json(&s->cordons[i], &e);
		if ((r = append_entry(list, "cordons", i, r, e, error)) < 0)
			return r;
	}
	if (s->n_repartitions && (!(list = json_array()) || add(doc, "repartitions", list) < 0))
		return -ENOMEM;
	for (size_t i = 0; i < s->n_repartitions; i++) {
		r = repartition_to_json(&s->repartitions[i], &e);
		if ((r = append_entry(list, "repartitions", i, r, e, error)) < 0)
			return r;
	}
	text = json_dumps(doc, JSON_INDENT(2));
	if (!text)
		return -ENOMEM;
	*ret = text;
	return 0;
}

char *state_to_json(const struct state *s)
{
	_cleanup_free_ char *error = NULL;
	char *text = NULL;

	return state_dump(s, &text, &error) < 0 ? NULL : text;
}
