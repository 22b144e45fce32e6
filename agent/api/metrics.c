// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The metrics listener: a snapshot of the page in both formats, renewed on the loop, and the
 * HTTP handler that answers a scrape with a copy of it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/metrics.h"
#include "services/allocations.h"
#include "shared/clock.h"

struct metrics {
	sd_event *event;
	struct metrics_context ctx;
	sd_event_source *timer; /* the interval */
	sd_event_source *post;	/* after every dispatch: did the inventory change? */
	sd_event_source *defer; /* renders once the dispatch that asked for it is over */
	uint64_t generation;	/* the inventory generation the page shows */
	struct {
		char *data;
		size_t len;
	} page[_METRICS_FORMAT_MAX];
	double render_seconds;
	uint64_t n_renders;
	struct http_server *server;
	struct config_shapes shapes; /* a copy of the configuration's */
};

static const char *const content_types[_METRICS_FORMAT_MAX] = {
    [METRICS_TEXT] = "text/plain; version=0.0.4; charset=utf-8",
    [METRICS_OPENMETRICS] = "application/openmetrics-text; version=1.0.0; charset=utf-8",
};

/* Both pages from the inventory as it is now; a failure keeps the previous ones. */
static int render(struct metrics *m)
{
	uint64_t start = now_usec(CLOCK_MONOTONIC);
	const struct metrics_input in = {
	    .inventory = m->ctx.inventory,
	    .ledger = m->ctx.allocations ? allocations_ledger(m->ctx.allocations) : NULL,
	    .state = m->ctx.allocations ? allocations_state(m->ctx.allocations) : NULL,
	    .registry = m->ctx.registry,
	    .now_realtime_usec = now_usec(CLOCK_REALTIME),
	    .now_monotonic_usec = start,
	    .render_seconds = m->render_seconds,
	    .version = XPU_VERSION,
	    .shapes = m->shapes.items,
	    .n_shapes = m->shapes.n,
	};
	char *pages[_METRICS_FORMAT_MAX] = {};
	size_t lens[_METRICS_FORMAT_MAX];
	int r = 0;

	for (size_t f = 0; f < _METRICS_FORMAT_MAX && r >= 0; f++)
		r = metrics_render(&in, (enum metrics_format)f, &pages[f], &lens[f]);
	if (r < 0) {
		for (size_t f = 0; f < _METRICS_FORMAT_MAX; f++)
			free(pages[f]);
		return r;
	}
	for (size_t f = 0; f < _METRICS_FORMAT_MAX; f++) {
		free(m->page[f].data);
		m->page[f].data = pages[f];
		m->page[f].len = lens[f];
	}
	m->generation = inventory_generation(m->ctx.inventory);
	m->render_seconds = (double)(now_usec(CLOCK_MONOTONIC) - start) / 1e6;
	m->n_renders++;
	return 0;
}

static int on_defer(sd_event_source *s, void *userdata)
{
	(void)render(userdata);
	return 0;
}

static int on_post(sd_event_source *s, void *userdata)
{
	struct metrics *m = userdata;

	if (inventory_generation(m->ctx.inventory) != m->generation)
		metrics_changed(m);
	return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct metrics *m = userdata;

	(void)render(m);
	(void)sd_event_source_set_time(s, usec + m->ctx.interval_usec);
	(void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

void metrics_changed(struct metrics *m)
{
	if (m)
		(void)sd_event_source_set_enabled(m->defer, SD_EVENT_ONESHOT);
}

int metrics_set_shapes(struct metrics *m, const struct config_shape *shapes, size_t n)
{
	int r = config_shapes_copy(shapes, n, &m->shapes);

	if (r >= 0)
		metrics_changed(m);
	return r;
}

int metrics_new(sd_event *e, const struct metrics_context *ctx, struct metrics **ret)
{
	_cleanup_(metrics_freep) struct metrics *m = NULL;
	uint64_t now;
	int r;

	if (!e || !ctx || !ctx->inventory || ctx->interval_usec == 0)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->event = sd_event_ref(e);
	m->ctx = *ctx;
	m->ctx.shapes = NULL;
	m->ctx.n_shapes = 0;
	r = config_shapes_copy(ctx->shapes, ctx->n_shapes, &m->shapes);
	if (r < 0)
		return r;
	r = sd_event_now(e, CLOCK_MONOTONIC, &now);
	if (r < 0)
		return r;
	/* A page every interval does not need the loop to wake at once: a second's slack lets
	 * the kernel coalesce the wakeup with others. */
	r = sd_event_add_time(e, &m->timer, CLOCK_MONOTONIC, now + ctx->interval_usec, 1000000,
			      on_timer, m);
	if (r >= 0)
		r = sd_event_add_post(e, &m->post, on_post, m);
	if (r >= 0)
		r = sd_event_add_defer(e, &m->defer, on_defer, m);
	if (r < 0)
		return r;
	(void)sd_event_source_set_enabled(m->defer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(m->timer, "metrics-interval");
	(void)sd_event_source_set_description(m->post, "metrics-post");
	(void)sd_event_source_set_description(m->defer, "metrics-render");
	r = render(m);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(m);
	return 0;
}

struct metrics *metrics_free(struct metrics *m)
{
	if (!m)
		return NULL;
	m->server = http_server_free(m->server);
	sd_event_source_disable_unref(m->timer);
	sd_event_source_disable_unref(m->post);
	sd_event_source_disable_unref(m->defer);
	for (size_t f = 0; f < _METRICS_FORMAT_MAX; f++)
		free(m->page[f].data);
	config_shapes_done(&m->shapes);
	sd_event_unref(m->event);
	free(m);
	return NULL;
}

int metrics_serve(struct metrics *m, int fd, const struct http_limits *limits)
{
	if (m->server) {
		safe_close(fd);
		return -EBUSY;
	}
	return http_server_new(m->event, fd, limits, metrics_handle, m, &m->server);
}

const char *metrics_page(const struct metrics *m, enum metrics_format format, size_t *ret_len)
{
	if (ret_len)
		*ret_len = m->page[format].len;
	return m->page[format].data;
}

uint64_t metrics_n_renders(const struct metrics *m)
{
	return m->n_renders;
}

static int reply_text(struct http_conn *c, int status, const char *extra, const char *text)
{
	return http_conn_reply(c, status, "text/plain; charset=utf-8", extra, text, strlen(text));
}

int metrics_handle(struct http_conn *c, const struct http_request *req, void *userdata)
{
	struct metrics *m = userdata;
	enum metrics_format f;

	if (!streq(req->path, "/metrics") && !streq(req->path, "/"))
		return reply_text(c, 404, NULL,
				  "Not found: xpud serves its metrics on /metrics.\n");
	if (req->method != HTTP_METHOD_GET && req->method != HTTP_METHOD_HEAD)
		return reply_text(c, 405, "Allow: GET, HEAD\r\n",
				  "Method not allowed: /metrics answers GET and HEAD.\n");
	if (streq(req->path, "/"))
		return reply_text(c, 200, NULL, "xpud: the metrics are on /metrics.\n");
	f = metrics_negotiate(req->accept);
	if (!m->page[f].data)
		return reply_text(c, 503, NULL, "The metrics page could not be rendered.\n");
	return http_conn_reply(c, 200, content_types[f], NULL, m->page[f].data, m->page[f].len);
}
