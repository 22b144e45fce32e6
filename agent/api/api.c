// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/views.h"
#include "core/plan.h"
#include "shared/log.h"

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

struct api {
	struct api_context ctx;
	struct stream *streams;
	size_t n_streams;
	struct cache_entry cache[_CACHED_MAX];
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

static int reply_error(struct http_conn *c, int status, const char *code, const char *fmt, ...)
	_printf_(4, 5);
static int reply_error(struct http_conn *c, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return reply_json(c, status, view_error(code, msg), NULL);
}

static bool may_mutate(const struct api *a, const struct http_request *req)
{
	if (req->cred.uid == 0 || req->cred.uid == geteuid())
		return true;
	if (!a->ctx.admin_gid_set)
		return false;
	if (req->cred.gid == a->ctx.admin_gid)
		return true;
	for (size_t i = 0; i < req->n_groups; i++)
		if (req->groups[i] == a->ctx.admin_gid)
			return true;
	return false;
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

void api_broadcast(struct api *a, const struct inventory_event *ev)
{
	_cleanup_free_ char *line = NULL;
	size_t n;

	if (!a->streams)
		return;
	line = dump_steal(view_event(ev));
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
};

static const struct route {
	const char *path; /* below /v1/; a trailing '/' takes one more path element */
	enum route_id id;
	bool post; /* POST instead of GET/HEAD */
} routes[] = {
	{ "devices", ROUTE_DEVICES },	  { "devices/", ROUTE_DEVICE },
	{ "slices", ROUTE_SLICES },	  { "capacity", ROUTE_CAPACITY },
	{ "health", ROUTE_HEALTH },	  { "version", ROUTE_VERSION },
	{ "backends", ROUTE_BACKENDS },	  { "events", ROUTE_EVENTS },
	{ "rescan", ROUTE_RESCAN, true },
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

static json_t *build_doc(struct api *a, enum cached_doc which)
{
	const struct device_list *devs = inventory_devices(a->ctx.inventory);
	struct capacity_list cap;
	json_t *doc;

	switch (which) {
	case CACHED_DEVICES:
		return view_devices(devs, inventory_last_seq(a->ctx.inventory));
	case CACHED_SLICES:
		return view_slices(devs, inventory_slices(a->ctx.inventory));
	case CACHED_CAPACITY:
		if (plan_capacity(devs, inventory_slices(a->ctx.inventory), NULL, &cap) < 0)
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

static int handle_get(struct api *a, struct http_conn *c, const struct route *rt, const char *arg,
		      bool head)
{
	const struct xpu_device *d;

	switch (rt->id) {
	case ROUTE_DEVICES:
		return reply_cached(a, c, CACHED_DEVICES);
	case ROUTE_DEVICE:
		d = inventory_find(a->ctx.inventory, arg);
		if (!d)
			return reply_error(c, 404, "not-found", "no device '%s'", arg);
		return reply_json(c, 200, view_device(d), NULL);
	case ROUTE_SLICES:
		return reply_cached(a, c, CACHED_SLICES);
	case ROUTE_CAPACITY:
		return reply_cached(a, c, CACHED_CAPACITY);
	case ROUTE_HEALTH:
		return reply_cached(a, c, CACHED_HEALTH);
	case ROUTE_VERSION:
		return reply_json(c, 200,
				  json_pack("{s:s, s:s, s:s, s:I, s:o}", "version", XPU_VERSION,
					    "api", "v1", "root", a->ctx.root, "generation",
					    (json_int_t)inventory_generation(a->ctx.inventory),
					    "backends", view_backends(a->ctx.registry)),
				  NULL);
	case ROUTE_BACKENDS:
		return reply_json(c, 200,
				  json_pack("{s:o}", "backends", view_backends(a->ctx.registry)),
				  NULL);
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

int api_handle(struct http_conn *c, const struct http_request *req, void *userdata)
{
	struct api *a = userdata;
	const struct route *rt;
	const char *arg = NULL;

	rt = route_find(req->path, &arg);
	if (!rt)
		return reply_error(c, 404, "not-found", "no such endpoint '%s' (see docs/api.md)",
				   req->path);
	if (rt->post) {
		if (req->method != HTTP_METHOD_POST)
			return reply_json(c, 405,
					  view_error("method-not-allowed",
						     "this endpoint accepts POST only"),
					  "Allow: POST\r\n");
		if (!may_mutate(a, req))
			return reply_error(c, 403, "forbidden",
					   "uid %u may not call %s: it needs root or the admin group",
					   (unsigned)req->cred.uid, req->path);
		return handle_rescan(a, c);
	}
	if (req->method != HTTP_METHOD_GET && req->method != HTTP_METHOD_HEAD)
		return reply_json(c, 405,
				  view_error("method-not-allowed", "this endpoint accepts GET only"),
				  "Allow: GET, HEAD\r\n");
	return handle_get(a, c, rt, arg, req->method == HTTP_METHOD_HEAD);
}
