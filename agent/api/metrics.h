/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Prometheus metrics: a page of the inventory, the slices, the allocations, the cordons and
 * repartitions and the backends, in the text exposition format 0.0.4 or OpenMetrics 1.0, served
 * on a listener of its own by the same HTTP server as the local API (docs/metrics.md).
 *
 * The page is rendered on the loop into a snapshot (both formats) on an interval and whenever
 * the inventory changes; a scrape copies the snapshot and never waits on a backend, a vendor
 * library or a helper.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "api/http.h"
#include "backends/registry.h"
#include "core/config.h"
#include "core/inventory.h"
#include "core/state.h"

enum metrics_format {
	METRICS_TEXT,	     /* text/plain; version=0.0.4 */
	METRICS_OPENMETRICS, /* application/openmetrics-text; version=1.0.0 */
	_METRICS_FORMAT_MAX,
};

/* What a page is rendered from; everything borrowed, anything but @inventory may be NULL. */
struct metrics_input {
	const struct inventory *inventory;
	const struct ledger *ledger;	 /* the allocations */
	const struct state *state;	 /* cordons and repartitions */
	const struct registry *registry; /* the backends */
	uint64_t now_realtime_usec;	 /* for the allocations' ages */
	uint64_t now_monotonic_usec;	 /* for the backends' refresh ages */
	double render_seconds; /* the last render's duration: xpu_scrape_duration_seconds */
	const char *version;   /* xpu_build_info's version */
	const struct config_shape *shapes; /* the workload shapes of xpu_shape_fits */
	size_t n_shapes;
};

/*
 * Renders the page of @in in @format into a new NUL-terminated buffer (*ret, its length in
 * *ret_len). Pure: no I/O, no clock. Returns 0 or -ENOMEM. Does not log.
 */
int metrics_render(const struct metrics_input *in, enum metrics_format format, char **ret,
		   size_t *ret_len);

/*
 * Which format an Accept header value asks for: OpenMetrics when it names
 * application/openmetrics-text with a quality above 0 and not below that of text/plain (or of a
 * wildcard that covers it); the text format otherwise, also for NULL.
 */
enum metrics_format metrics_negotiate(const char *accept);

/* Appends @s to the buffer as a label value in the formats' escaping (backslash, double quote,
 * newline; invalid UTF-8 as U+FFFD), for tests: a new string or NULL on OOM. */
char *metrics_escape_label(const char *s);

struct allocations;

struct metrics_context {
	struct inventory *inventory;	 /* borrowed */
	struct registry *registry;	 /* borrowed; may be NULL */
	struct allocations *allocations; /* borrowed; may be NULL */
	uint64_t interval_usec;		 /* how often the page is renewed without a change */
	const struct config_shape *shapes; /* copied: the shapes of xpu_shape_fits */
	size_t n_shapes;
};

struct metrics;

/*
 * Renders the first page at once and keeps it current from the loop @e: after every dispatch
 * that changed the inventory's generation, after metrics_changed(), and every @interval_usec.
 * Returns 0, -ENOMEM or sd-event's -errno. Does not log.
 */
int metrics_new(sd_event *e, const struct metrics_context *ctx, struct metrics **ret);
/* Stops serving, closes the listener's connections, frees. Accepts NULL, returns NULL. */
struct metrics *metrics_free(struct metrics *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct metrics *, metrics_free);
/*
 * Serves GET /metrics on the listening socket @fd (ownership passes, also on failure) with
 * @limits (NULL: HTTP_LIMITS_DEFAULT). Returns 0, -EINVAL, -EBUSY (already serving), -ENOMEM.
 */
int metrics_serve(struct metrics *m, int fd, const struct http_limits *limits);
/* Something the page shows changed without a new inventory generation (a health transition,
 * a cordon): the page is rendered again once the current dispatch is over. Accepts NULL. */
void metrics_changed(struct metrics *m);
/* Replaces the workload shapes of xpu_shape_fits with a copy of @shapes (a reload) and renders
 * the page again once the current dispatch is over. 0 or -ENOMEM (the old shapes kept). */
int metrics_set_shapes(struct metrics *m, const struct config_shape *shapes, size_t n);
/* The page as the next scrape would get it (borrowed, until the next render). */
const char *metrics_page(const struct metrics *m, enum metrics_format format, size_t *ret_len);
/* How many pages were rendered (tests, the benchmark). */
uint64_t metrics_n_renders(const struct metrics *m);
/* The http_handler_t of the listener: @userdata is the struct metrics. */
int metrics_handle(struct http_conn *c, const struct http_request *req, void *userdata);
