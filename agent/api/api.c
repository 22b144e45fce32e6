// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/budget.h"
#include "api/request.h"
#include "api/views.h"
#include "core/config.h"
#include "core/plan.h"
#include "core/state.h"
#include "shared/clock.h"
#include "shared/log.h"
#include "shared/parse.h"
#include "shared/strv.h"

#define API_PREFIX "/v1/"
#define MAX_STREAMS 64

struct stream {
	struct http_conn *conn;
	struct api *api;
	struct stream *next;
};

enum cached_doc {
	CACHED_DEVICES,
	CACHED_SLICES,
	CACHED_CAPACITY,
	CACHED_HEALTH,
	_CACHED_MAX,
};

/*
 * Serialised documents, reused until the inventory changes. Every visible change emits an
 * event (and so bumps the sequence number) or is a new generation, so the pair is the key.
 * Schedulers poll these endpoints; this keeps a poll at the cost of a socket write.
 */
struct cache_entry {
	char *body;
	size_t len;
	uint64_t seq;
	uint64_t generation;
};

/*
 * Answers to POST /v1/fit, reused while the inventory and the allocations stay as they were
 * (the same key as the cached documents): schedulers ask the same shapes again and again.
 */
#define FIT_MEMO_SIZE 16

struct fit_memo {
	char *shape; /* the request's fields, normalised */
	struct cache_entry answer;
};

struct api {
	struct api_context ctx;
	struct stream *streams;
	size_t n_streams;
	struct cache_entry cache[_CACHED_MAX];
	struct fit_memo fits[FIT_MEMO_SIZE];
	size_t next_fit; /* the slot the next new answer takes */
	struct budget budget;
};

int api_new(const struct api_context *ctx, struct api **ret)
{
	struct api *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->ctx = *ctx;
	*ret = a;
	return 0;
}

static void stream_unlink(struct api *a, struct stream *s)
{
	for (struct stream **p = &a->streams; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			a->n_streams--;
			free(s);
			return;
		}
}

struct api *api_free(struct api *a)
{
	if (!a)
		return NULL;
	for (size_t i = 0; i < _CACHED_MAX; i++)
		free(a->cache[i].body);
	for (size_t i = 0; i < FIT_MEMO_SIZE; i++) {
		free(a->fits[i].shape);
		free(a->fits[i].answer.body);
	}
	while (a->streams) {
		struct stream *s = a->streams;
		struct http_conn *c = s->conn;

		stream_unlink(a, s);
		http_conn_stream_end(c);
	}
	free(a);
	return NULL;
}

void api_set_admin_gid(struct api *a, bool set, gid_t gid)
{
	a->ctx.admin_gid_set = set;
	a->ctx.admin_gid = gid;
}

size_t api_n_streams(const struct api *a)
{
	return a->n_streams;
}

/* Serialises @doc compactly, taking its reference (NULL in, NULL out). Caller frees. */
static char *dump_steal(json_t *doc)
{
	char *s;

	if (!doc)
		return NULL;
	s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(doc);
	return s;
}

/* Serialises and queues @doc; takes the reference. */
static int reply_json(struct http_conn *c, int status, json_t *doc, const char *extra_headers)
{
	_cleanup_free_ char *body = dump_steal(doc);

	if (!body)
		return -ENOMEM;
	return http_conn_reply(c, status, "application/json", extra_headers, body, strlen(body));
}

/* {"error": @code, "message": ...}, the message made safe to quote; NULL when out of memory. */
static json_t *error_doc_va(const char *code, const char *fmt, va_list ap) _printf_(2, 0);
static json_t *error_doc_va(const char *code, const char *fmt, va_list ap)
{
	_cleanup_free_ char *full = NULL;
	char msg[512];

	/* Formatted whole, then cut at a character boundary: a client's text (a path, a name)
	 * may be long, multi-byte or not UTF-8 at all, and is still a 4xx, never an error of
	 * ours. */
	if (vasprintf(&full, fmt, ap) < 0)
		return NULL;
	return view_error(code, utf8_escape_invalid(full, msg, sizeof(msg)));
}

static json_t *error_doc(const char *code, const char *fmt, ...) _printf_(2, 3);
static json_t *error_doc(const char *code, const char *fmt, ...)
{
	va_list ap;
	json_t *doc;

	va_start(ap, fmt);
	doc = error_doc_va(code, fmt, ap);
	va_end(ap);
	return doc;
}

static int reply_error(struct http_conn *c, int status, const char *code, const char *fmt, ...)
	_printf_(4, 5);
static int reply_error(struct http_conn *c, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	json_t *doc;

	va_start(ap, fmt);
	doc = error_doc_va(code, fmt, ap);
	va_end(ap);
	return doc ? reply_json(c, status, doc, NULL) : -ENOMEM;
}

bool api_peer_privileged(const struct ucred *cred, const gid_t *groups, size_t n_groups,
			 void *userdata)
{
	const struct api *a = userdata;

	if (cred->uid == 0 || cred->uid == geteuid())
		return true;
	if (!a->ctx.admin_gid_set)
		return false;
	if (cred->gid == a->ctx.admin_gid)
		return true;
	for (size_t i = 0; i < n_groups; i++)
		if (groups[i] == a->ctx.admin_gid)
			return true;
	return false;
}

static bool may_mutate(const struct api *a, const struct http_request *req)
{
	return api_peer_privileged(&req->cred, req->groups, req->n_groups, (void *)a);
}

static void stream_closed(struct http_conn *c, void *userdata)
{
	struct stream *s = userdata;

	stream_unlink(s->api, s);
}

static int send_line(struct http_conn *c, json_t *doc)
{
	_cleanup_free_ char *line = dump_steal(doc);
	size_t n;

	if (!line)
		return -ENOMEM;
	n = strlen(line);
	line[n] = '\n'; /* json_dumps leaves room only for the NUL: replace it */
	return http_conn_stream_send(c, line, n + 1);
}

static int start_stream(struct api *a, struct http_conn *c)
{
	struct stream *s;
	int r;

	if (a->n_streams >= MAX_STREAMS)
		return reply_error(c, 503, "unavailable", "too many event streams (limit %d)",
				   MAX_STREAMS);
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->conn = c;
	s->api = a;
	r = http_conn_stream_begin(c, 200, "application/x-ndjson", stream_closed, s);
	if (r < 0) {
		free(s);
		return r;
	}
	s->next = a->streams;
	a->streams = s;
	a->n_streams++;
	/* A first line tells the client it is subscribed and where the sequence stands, so it
	 * can act (trigger a change, say) without racing its own subscription. */
	return send_line(c, json_pack("{s:I, s:s, s:I}", "seq",
				      (json_int_t)inventory_last_seq(a->ctx.inventory), "type",
				      "subscribed", "generation",
				      (json_int_t)inventory_generation(a->ctx.inventory)));
}

/* Sends @doc (taken) as one line to every stream. */
static void broadcast(struct api *a, json_t *doc)
{
	_cleanup_free_ char *line = NULL;
	size_t n;

	if (!a->streams) {
		json_decref(doc);
		return;
	}
	line = dump_steal(doc);
	if (!line)
		return;
	n = strlen(line);
	line[n] = '\n';
	for (struct stream *s = a->streams, *next; s; s = next) {
		next = s->next;
		/* A reader too far behind is dropped by the server (on_close unlinks it). */
		(void)http_conn_stream_send(s->conn, line, n + 1);
	}
}

void api_broadcast(struct api *a, const struct inventory_event *ev)
{
	if (a->streams)
		broadcast(a, view_event(ev));
}

void api_broadcast_repartition(struct api *a, const struct repartition_news *n)
{
	if (!a->streams)
		return;
	broadcast(a, json_pack("{s:I, s:s, s:I, s:s, s:s, s:o, s:o}", "seq",
			       (json_int_t)inventory_last_seq(a->ctx.inventory), "type",
			       "repartition", "time_usec",
			       (json_int_t)now_usec(CLOCK_REALTIME), "device",
			       n->device_id, "what", n->what, "layout",
			       n->layout ? json_string(n->layout) : json_null(), "reason",
			       n->reason ? json_string(n->reason) : json_null()));
}

enum route_id {
	ROUTE_DEVICES,
	ROUTE_DEVICE,
	ROUTE_SLICES,
	ROUTE_CAPACITY,
	ROUTE_HEALTH,
	ROUTE_VERSION,
	ROUTE_BACKENDS,
	ROUTE_EVENTS,
	ROUTE_RESCAN,
	ROUTE_RELOAD,
	ROUTE_ALLOCATIONS,
	ROUTE_ALLOCATION,
	ROUTE_FIT,
	ROUTE_PLAN,
	ROUTE_CORDON,
	ROUTE_UNCORDON,
	ROUTE_REPARTITION,
};

enum {
	M_GET = 1 << 0, /* and HEAD */
	M_POST = 1 << 1,
	M_DELETE = 1 << 2,
};

static const struct route {
	const char *path; /* below /v1/; a trailing '/' takes one more path element */
	enum route_id id;
	unsigned methods;
	unsigned mutating; /* the methods that need root, our own user or the admin group */
} routes[] = {
	{ "devices", ROUTE_DEVICES, M_GET },
	{ "devices/", ROUTE_DEVICE, M_GET },
	{ "slices", ROUTE_SLICES, M_GET },
	{ "capacity", ROUTE_CAPACITY, M_GET },
	{ "health", ROUTE_HEALTH, M_GET },
	{ "version", ROUTE_VERSION, M_GET },
	{ "backends", ROUTE_BACKENDS, M_GET },
	{ "events", ROUTE_EVENTS, M_GET },
	{ "plan", ROUTE_PLAN, M_GET },
	{ "rescan", ROUTE_RESCAN, M_POST, M_POST },
	{ "reload", ROUTE_RELOAD, M_POST, M_POST },
	{ "allocations", ROUTE_ALLOCATIONS, M_GET | M_POST, M_POST },
	{ "allocations/", ROUTE_ALLOCATION, M_GET | M_DELETE, M_DELETE },
	{ "fit", ROUTE_FIT, M_POST },
	{ "cordon", ROUTE_CORDON, M_POST, M_POST },
	{ "uncordon", ROUTE_UNCORDON, M_POST, M_POST },
	{ "repartition", ROUTE_REPARTITION, M_POST, M_POST },
};

static const struct route *route_find(const char *path, const char **ret_arg)
{
	size_t n;

	if (strncmp(path, API_PREFIX, strlen(API_PREFIX)) != 0)
		return NULL;
	path += strlen(API_PREFIX);
	for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
		n = strlen(routes[i].path);
		if (routes[i].path[n - 1] == '/') {
			if (strncmp(path, routes[i].path, n) == 0 && path[n] &&
			    !strchr(path + n, '/')) {
				*ret_arg = path + n;
				return &routes[i];
			}
		} else if (streq(path, routes[i].path)) {
			*ret_arg = NULL;
			return &routes[i];
		}
	}
	return NULL;
}

static const struct state *state(const struct api *a)
{
	return a->ctx.allocations ? allocations_state(a->ctx.allocations) : NULL;
}

static const struct ledger *ledger(const struct api *a)
{
	return a->ctx.allocations ? allocations_ledger(a->ctx.allocations) : NULL;
}

static json_t *build_doc(struct api *a, enum cached_doc which)
{
	const struct device_list *devs = inventory_devices(a->ctx.inventory);
	struct capacity_list cap;
	json_t *doc;

	switch (which) {
	case CACHED_DEVICES:
		return view_devices(a->ctx.inventory);
	case CACHED_SLICES:
		return view_slices(devs, inventory_slices(a->ctx.inventory), ledger(a));
	case CACHED_CAPACITY:
		if (plan_capacity(devs, inventory_slices(a->ctx.inventory), ledger(a), &cap) < 0)
			return NULL;
		doc = view_capacity(&cap);
		capacity_list_clear(&cap);
		return doc;
	case CACHED_HEALTH:
		return view_health(devs);
	default:
		return NULL;
	}
}

static int reply_cached(struct api *a, struct http_conn *c, enum cached_doc which)
{
	struct cache_entry *e = &a->cache[which];
	uint64_t seq = inventory_last_seq(a->ctx.inventory);
	uint64_t gen = inventory_generation(a->ctx.inventory);

	if (!e->body || e->seq != seq || e->generation != gen) {
		char *body = dump_steal(build_doc(a, which));

		if (!body)
			return -ENOMEM;
		free(e->body);
		*e = (struct cache_entry){ body, strlen(body), seq, gen };
	}
	return http_conn_reply(c, 200, "application/json", NULL, e->body, e->len);
}

/* "18:00.0": a PCI address without its domain, as lspci prints by default. */
static bool is_short_pci_address(const char *s)
{
	const char *colon = strchr(s, ':');

	return colon && !strchr(colon + 1, ':') && strchr(colon + 1, '.');
}

static bool suffix_matches(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n > k && s[n - k - 1] == ':' && strcasecmp(s + n - k, suffix) == 0;
}

/*
 * What inventory_find() does not resolve: an ID or address in another letter case, and a short
 * address in any PCI domain (inventory_find() reads "18:00.0" as domain 0000 only).
 */
static bool device_matches(const struct xpu_device *d, const char *key)
{
	const char *addr = d->has_pci ? d->pci.address : NULL;

	if (strcasecmp(d->id, key) == 0 || (addr && strcasecmp(addr, key) == 0) ||
	    streq_ptr(d->uuid, key))
		return true;
	if (!is_short_pci_address(key))
		return false;
	return suffix_matches(d->id, key) || (addr && suffix_matches(addr, key));
}

/*
 * GET /v1/devices/{key}: the device @key names, by inventory_find(), else by device_matches().
 * A key that matches several devices is refused with them listed: a client must not pick one.
 */
static int reply_device(struct api *a, struct http_conn *c, const char *key)
{
	const struct device_list *devs = inventory_devices(a->ctx.inventory);
	const struct xpu_device *d = inventory_find(a->ctx.inventory, key), *match = NULL;
	_cleanup_(json_decrefp) json_t *doc = NULL;
	_cleanup_strv_free_ char **ids = NULL;
	_cleanup_free_ char *list = NULL;
	json_t *candidates;

	for (size_t i = 0; !d && key && i < devs->n; i++)
		if (device_matches(devs->items[i], key)) {
			match = devs->items[i];
			if (strv_extend(&ids, match->id) < 0)
				return -ENOMEM;
		}
	if (!d && strv_length(ids) == 1)
		d = match;
	if (d)
		return reply_json(c, 200, view_device(d, inventory_health(a->ctx.inventory, d->id)),
				  NULL);
	if (!ids)
		return reply_error(c, 404, "not-found", "no device '%s'", key);

	list = strv_join(ids, " ");
	if (list)
		doc = error_doc("ambiguous", "'%s' matches %zu devices; give the full address: %s",
				key, strv_length(ids), list);
	candidates = doc ? json_array() : NULL;
	if (!candidates || json_object_set_new(doc, "candidates", candidates) < 0)
		return -ENOMEM;
	for (size_t i = 0; ids[i]; i++)
		if (json_array_append_new(candidates, json_string(ids[i])) < 0)
			return -ENOMEM;
	return reply_json(c, 400, TAKE_PTR(doc), NULL);
}

/* An allocation with its confinement read back from its cgroups. */
static json_t *allocation_doc(struct api *a, const struct allocation *al)
{
	_cleanup_(enforce_status_done) struct enforce_status st = {};
	json_t *doc = view_allocation(al, inventory_devices(a->ctx.inventory),
				      inventory_slices(a->ctx.inventory));
	int r = enforcer_read(a->ctx.enforcer, al->id, &st);

	if (doc && r != -ENOMEM &&
	    json_object_update_new(doc, view_enforcement(r >= 0 ? &st : NULL)) >= 0)
		return doc;
	json_decref(doc);
	return NULL;
}

static int handle_get(struct api *a, struct http_conn *c, const struct route *rt, const char *arg,
		      bool head)
{
	switch (rt->id) {
	case ROUTE_DEVICES:
		return reply_cached(a, c, CACHED_DEVICES);
	case ROUTE_DEVICE:
		return reply_device(a, c, arg);
	case ROUTE_SLICES:
		return reply_cached(a, c, CACHED_SLICES);
	case ROUTE_CAPACITY:
		return reply_cached(a, c, CACHED_CAPACITY);
	case ROUTE_HEALTH:
		return reply_cached(a, c, CACHED_HEALTH);
	case ROUTE_VERSION:
		return reply_json(c, 200,
				  json_pack("{s:s, s:s, s:s, s:I, s:o, s:o}", "version", XPU_VERSION,
					    "api", "v1", "root", a->ctx.root, "generation",
					    (json_int_t)inventory_generation(a->ctx.inventory),
					    "backends", view_backends(a->ctx.registry),
					    "enforcement", view_enforcer(a->ctx.enforcer)),
				  NULL);
	case ROUTE_BACKENDS:
		return reply_json(c, 200,
				  json_pack("{s:o}", "backends", view_backends(a->ctx.registry)),
				  NULL);
	case ROUTE_PLAN:
		return reply_json(c, 200, view_plan(inventory_plan(a->ctx.inventory), state(a)),
				  NULL);
	case ROUTE_ALLOCATIONS:
		return reply_json(c, 200,
				  view_allocations(ledger(a) ?: &(const struct ledger){},
						   inventory_devices(a->ctx.inventory),
						   inventory_slices(a->ctx.inventory)),
				  NULL);
	case ROUTE_ALLOCATION: {
		const struct allocation *al = ledger(a) ? ledger_find(ledger(a), arg) : NULL;

		if (!al)
			return reply_error(c, 404, "not-found", "no allocation '%s'", arg);
		return reply_json(c, 200, allocation_doc(a, al), NULL);
	}
	case ROUTE_EVENTS:
		if (head)
			return http_conn_reply(c, 200, "application/x-ndjson", NULL, "", 0);
		return start_stream(a, c);
	default:
		return -EINVAL;
	}
}

static int handle_rescan(struct api *a, struct http_conn *c)
{
	struct inventory_stats st;
	int r;

	r = a->ctx.rescan(a->ctx.userdata, &st);
	if (r < 0)
		return reply_error(c, 500, "internal", "rescan failed: %s", strerror(-r));
	return reply_json(c, 200,
			  json_pack("{s:I, s:I, s:I, s:I}", "devices", (json_int_t)st.devices,
				    "added", (json_int_t)st.added, "removed", (json_int_t)st.removed,
				    "changed", (json_int_t)st.changed),
			  NULL);
}

static int errno_status(int r, const char **ret_code)
{
	switch (r) {
	case -EINVAL:
		*ret_code = "invalid";
		return 400;
	case -ESRCH:
		*ret_code = "owner-gone";
		return 400;
	case -ENOENT:
		*ret_code = "not-found";
		return 404;
	case -EBUSY:
		*ret_code = "busy";
		return 409;
	case -ENOSPC:
		*ret_code = "insufficient";
		return 409;
	case -EOPNOTSUPP:
		*ret_code = "unsupported";
		return 501;
	case -ECONNREFUSED: /* systemd, for a grant it should confine */
		*ret_code = "unavailable";
		return 503;
	case -EPERM:
	case -EACCES:
	case -EROFS:
		*ret_code = "not-permitted";
		return 403;
	default:
		*ret_code = "internal";
		return 500;
	}
}

static int reply_allocation_error(struct http_conn *c, int r, const char *what, const char *why)
{
	const char *code;
	int status;

	if (r == -ENOMEM)
		return r;
	status = errno_status(r, &code);
	return reply_error(c, status, code, "%s: %s", what, why ?: strerror(-r));
}

static int handle_allocate(struct api *a, struct http_conn *c, const struct http_request *req)
{
	_cleanup_(alloc_request_done) struct alloc_request ar = {};
	_cleanup_(request_owner_done) struct alloc_owner owner = {};
	struct enforce_request enforce = {};
	_cleanup_free_ char *err = NULL;
	const struct allocation *granted;
	int r;

	r = request_parse_allocate(req->body, req->body_len, &ar, &owner, &enforce, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return reply_error(c, 400, "invalid", "%s", err ?: "malformed request");
	err = mfree(err);
	r = allocations_grant_args(a->ctx.allocations, &ar, &owner, &enforce, &granted, &err);
	if (r < 0)
		return reply_allocation_error(c, r, "cannot allocate", err);
	return reply_json(c, 201, allocation_doc(a, granted), NULL);
}

static int handle_release(struct api *a, struct http_conn *c, const char *id)
{
	_cleanup_free_ char *err = NULL;
	int r;

	r = allocations_release(a->ctx.allocations, id, &err);
	if (r < 0)
		return reply_allocation_error(c, r, "cannot release", err);
	return reply_json(c, 200, json_pack("{s:s}", "released", id), NULL);
}

/* "memory compute count numa_local connected kind resource", the strings with their lengths: a
 * memo key. */
static char *fit_shape(const struct fit_request *fr)
{
	char *s;

	if (asprintf(&s, "%llu %.17g %u %d %d %zu:%s %zu:%s", (unsigned long long)fr->memory_bytes,
		     fr->compute, fr->count, fr->numa_local, fr->connected,
		     fr->kind ? strlen(fr->kind) : 0, fr->kind ?: "",
		     fr->resource ? strlen(fr->resource) : 0, fr->resource ?: "") < 0)
		return NULL;
	return s;
}

/* The memoised answer to @shape for the inventory as it is now, or NULL. */
static struct fit_memo *fit_memo_find(struct api *a, const char *shape)
{
	uint64_t seq = inventory_last_seq(a->ctx.inventory);
	uint64_t gen = inventory_generation(a->ctx.inventory);

	for (size_t i = 0; i < FIT_MEMO_SIZE; i++) {
		struct fit_memo *m = &a->fits[i];

		if (m->shape && streq(m->shape, shape) && m->answer.seq == seq &&
		    m->answer.generation == gen)
			return m;
	}
	return NULL;
}

/* Keeps @body (taken) as the answer to @shape (taken). */
static void fit_memo_add(struct api *a, char *shape, char *body)
{
	struct fit_memo *m = &a->fits[a->next_fit];

	a->next_fit = (a->next_fit + 1) % FIT_MEMO_SIZE;
	free(m->shape);
	free(m->answer.body);
	*m = (struct fit_memo){ shape, { body, strlen(body), inventory_last_seq(a->ctx.inventory),
					 inventory_generation(a->ctx.inventory) } };
}

/*
 * Answers a valid fit request: from the memo when the same shape was answered for the same
 * inventory, else by the allocator's search, which callers other than root, xpud's own user
 * and the admin group pay for from their budget of loop time (api/budget.h): when it is spent,
 * 429 with Retry-After.
 */
static int fit_answer(struct api *a, struct http_conn *c, const struct http_request *req,
		      const struct fit_request *fr)
{
	_cleanup_(fit_result_done) struct fit_result res = {};
	_cleanup_free_ char *err = NULL, *shape = fit_shape(fr), *body = NULL;
	bool exempt = may_mutate(a, req), shared = false;
	const struct fit_memo *m;
	unsigned retry = 0;
	uint64_t start;
	int r;

	if (!shape)
		return -ENOMEM;
	m = fit_memo_find(a, shape);
	if (m)
		return http_conn_reply(c, 200, "application/json", NULL, m->answer.body,
				       m->answer.len);
	start = now_usec(CLOCK_MONOTONIC);
	if (!exempt && budget_check(&a->budget, req->cred.uid, start, &retry, &shared) < 0) {
		char hdr[64];

		snprintf(hdr, sizeof(hdr), "Retry-After: %u\r\n", retry);
		return reply_json(
			c, 429,
			view_error("too-many-requests",
				   shared ? "the users other than root and the admin group have "
					    "used their share of xpud's time for fits; retry later"
					  : "this user has used its share of xpud's time for fits "
					    "(new shapes); retry later, or ask the same shape again"),
			hdr);
	}
	r = alloc_fit(inventory_devices(a->ctx.inventory), inventory_slices(a->ctx.inventory),
		      ledger(a), fr, &res, &err);
	if (r >= 0) {
		body = dump_steal(view_fit(&res));
		if (!body)
			r = -ENOMEM;
	}
	if (!exempt)
		budget_charge(&a->budget, req->cred.uid, now_usec(CLOCK_MONOTONIC) - start,
			      now_usec(CLOCK_MONOTONIC));
	if (r < 0)
		return reply_allocation_error(c, r, "cannot answer", err);
	r = http_conn_reply(c, 200, "application/json", NULL, body, strlen(body));
	fit_memo_add(a, TAKE_PTR(shape), TAKE_PTR(body));
	return r;
}

static int handle_fit(struct api *a, struct http_conn *c, const struct http_request *req)
{
	_cleanup_(request_fit_done) struct fit_request fr = {};
	_cleanup_free_ char *err = NULL;
	int r;

	r = request_parse_fit(req->body, req->body_len, &fr, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return reply_error(c, 400, "invalid", "%s", err ?: "malformed request");
	return fit_answer(a, c, req, &fr);
}

static int handle_reload(struct api *a, struct http_conn *c)
{
	_cleanup_free_ char *err = NULL;
	int r;

	r = a->ctx.reload(a->ctx.userdata, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return reply_error(c, 400, "invalid-config",
				   "the configuration was not loaded, the previous one stays: %s",
				   err ?: strerror(-r));
	return reply_json(c, 200, view_plan(inventory_plan(a->ctx.inventory), state(a)), NULL);
}

static int handle_cordon(struct api *a, struct http_conn *c, const struct http_request *req,
			 bool cordon)
{
	_cleanup_(cordon_request_done) struct cordon_request cr = {};
	_cleanup_free_ char *err = NULL;
	const struct device_cordon *dc;
	const struct xpu_device *d;
	int r;

	if (!a->ctx.repartitioner)
		return reply_error(c, 503, "unavailable", "cordons are not available");
	r = request_parse_cordon(req->body, req->body_len, cordon, &cr, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return reply_error(c, 400, "invalid", "%s", err ?: "malformed request");
	err = mfree(err);
	r = cordon ? repartitioner_cordon(a->ctx.repartitioner, cr.device, cr.reason, &err)
		   : repartitioner_uncordon(a->ctx.repartitioner, cr.device, &err);
	if (r < 0)
		return reply_allocation_error(c, r, cordon ? "cannot cordon" : "cannot uncordon",
					      err);
	d = inventory_find(a->ctx.inventory, cr.device);
	dc = cordon && d ? state_cordon(state(a), d->id) : NULL;
	return reply_json(c, 200,
			  json_pack("{s:s, s:b, s:o}", "device", d ? d->id : cr.device, "cordoned",
				    cordon, "reason", dc ? json_string(dc->reason) : json_null()),
			  NULL);
}

static int handle_repartition(struct api *a, struct http_conn *c, const struct http_request *req)
{
	_cleanup_(repartition_request_done) struct repartition_request rr = {};
	_cleanup_free_ char *err = NULL, *id = NULL;
	int r;

	if (!a->ctx.repartitioner)
		return reply_error(c, 503, "unavailable", "repartitions are not available");
	r = request_parse_repartition(req->body, req->body_len, REPARTITION_TIMEOUT_DEFAULT, &rr,
				      &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return reply_error(c, 400, "invalid", "%s", err ?: "malformed request");
	err = mfree(err);
	r = repartitioner_start(a->ctx.repartitioner, rr.device, rr.policy ? NULL : &rr.layout,
				rr.timeout_usec, &id, &err);
	if (r == -ENOMEM)
		return r;
	if (r == -ECANCELED)
		return reply_error(c, 409, "failed", "%s", err ?: "the repartition failed");
	if (r < 0)
		return reply_allocation_error(c, r, "cannot repartition", err);
	if (r == REPARTITION_UNCHANGED)
		return reply_json(c, 200,
				  json_pack("{s:s, s:s, s:o, s:s}", "device", id, "result",
					    "unchanged", "repartition", json_null(), "message",
					    "the device is offered so already: nothing was drained "
					    "or changed"),
				  NULL);
	/* it may have finished already (an idle device, a layout made in the plan only) */
	return reply_json(c, 202,
			  json_pack("{s:s, s:s, s:o}", "device", id, "result",
				    r == REPARTITION_DONE ? "done" : "started", "repartition",
				    view_repartition(state_repartition(state(a), id))),
			  NULL);
}

static const char *methods_allowed(unsigned m)
{
	static const char *const names[] = {
		[M_GET] = "GET, HEAD",
		[M_POST] = "POST",
		[M_GET | M_POST] = "GET, HEAD, POST",
		[M_DELETE] = "DELETE",
		[M_GET | M_DELETE] = "GET, HEAD, DELETE",
	};

	return m < ELEMENTSOF(names) && names[m] ? names[m] : "GET";
}

int api_handle(struct http_conn *c, const struct http_request *req, void *userdata)
{
	struct api *a = userdata;
	const struct route *rt;
	const char *arg = NULL;
	unsigned m;

	rt = route_find(req->path, &arg);
	if (!rt)
		return reply_error(c, 404, "not-found", "no such endpoint '%s' (see docs/api.md)",
				   req->path);
	m = req->method == HTTP_METHOD_GET || req->method == HTTP_METHOD_HEAD ? M_GET
	    : req->method == HTTP_METHOD_POST				       ? M_POST
	    : req->method == HTTP_METHOD_DELETE				       ? M_DELETE
									       : 0;
	if (!(rt->methods & m)) {
		char msg[128], allow[64];

		snprintf(msg, sizeof(msg), "this endpoint accepts %s only",
			 methods_allowed(rt->methods));
		snprintf(allow, sizeof(allow), "Allow: %s\r\n", methods_allowed(rt->methods));
		return reply_json(c, 405, view_error("method-not-allowed", msg), allow);
	}
	if ((rt->mutating & m) && !may_mutate(a, req))
		return reply_error(c, 403, "forbidden",
				   "uid %u may not call %s %s: it needs root or the admin group",
				   (unsigned)req->cred.uid, req->method_name, req->path);
	switch (rt->id) {
	case ROUTE_RESCAN:
		return handle_rescan(a, c);
	case ROUTE_RELOAD:
		return handle_reload(a, c);
	case ROUTE_ALLOCATIONS:
		if (m == M_POST)
			return handle_allocate(a, c, req);
		break;
	case ROUTE_ALLOCATION:
		if (m == M_DELETE)
			return handle_release(a, c, arg);
		break;
	case ROUTE_FIT:
		return handle_fit(a, c, req);
	case ROUTE_CORDON:
	case ROUTE_UNCORDON:
		return handle_cordon(a, c, req, rt->id == ROUTE_CORDON);
	case ROUTE_REPARTITION:
		return handle_repartition(a, c, req);
	default:
		break;
	}
	return handle_get(a, c, rt, arg, req->method == HTTP_METHOD_HEAD);
}
