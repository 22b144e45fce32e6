// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * gRPC over nghttp2 on sd-event; see grpc.h, and grpc-internal.h for how its files divide it.
 *
 * This one is the server: the listening socket, the connections it accepts within its limit,
 * and shutting down.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kube/grpc-internal.h"
#include "shared/accept.h"
#include "shared/clock.h"
#include "shared/log.h"

#define GRPC_ACCEPT_BURST 16U

/* The server connection idle longest: no call in progress and no kept stream. NULL: none. */
static struct grpc_conn *server_oldest_idle(struct grpc_server *s)
{
	struct grpc_conn *best = NULL;

	for (struct grpc_conn *c = s->conns; c; c = c->next)
		if (!c->calls && (!best || c->since < best->since))
			best = c;
	return best;
}

static void server_on_accept(int fd, void *userdata)
{
	struct grpc_server *s = userdata;
	nghttp2_settings_entry settings[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->limits.max_streams },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16U * 1024U },
	};
	struct grpc_conn *c;
	int r;

	if (s->n_conns >= s->limits.max_connections) {
		c = server_oldest_idle(s);
		if (!c) {
			log_debug("gRPC: %zu connections busy already, refusing another.",
				  s->n_conns);
			safe_close(fd);
			return;
		}
		log_debug("gRPC: %zu connections already, closing the one idle longest.",
			  s->n_conns);
		grpc_conn_free(c);
	}
	r = grpc_conn_new(s->event, fd, true, &c);
	if (r < 0) {
		log_debug_errno(r, "gRPC: cannot serve a new connection: %m");
		return;
	}
	c->server = s;
	c->since = now_usec(CLOCK_MONOTONIC);
	c->deadline = UINT64_MAX;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings,
				    ELEMENTSOF(settings)) != 0)
		c->broken = true;
	grpc_conn_flush(c);
}

int grpc_server_new(sd_event *e, int fd, const struct grpc_limits *limits,
		    const struct grpc_method *methods, size_t n_methods, void *userdata,
		    struct grpc_server **ret)
{
	struct grpc_server *s;
	int r;

	if (fd < 0 || !methods)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		safe_close(fd);
		return -ENOMEM;
	}
	s->event = sd_event_ref(e);
	s->fd = fd;
	s->limits = limits ? *limits : GRPC_LIMITS_DEFAULT;
	s->methods = methods;
	s->n_methods = n_methods;
	s->userdata = userdata;
	r = acceptor_new(e, fd, GRPC_ACCEPT_BURST, "grpc-listen", server_on_accept, s,
			 &s->acceptor);
	if (r < 0) {
		grpc_server_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

struct grpc_server *grpc_server_free(struct grpc_server *s)
{
	if (!s)
		return NULL;
	while (s->conns) {
		struct grpc_conn *c = s->conns;

		/* Open streams end with UNAVAILABLE, sent best effort. */
		for (struct grpc_call *call = c->calls; call; call = call->next) {
			if (call->finished)
				continue;
			grpc_call_notify_closed(call);
			if (call->dispatched) {
				call->status = GRPC_STATUS_UNAVAILABLE;
				free(call->message);
				call->message = strdup("server shutting down");
				call->finished = true;
				(void)nghttp2_session_resume_data(c->session, call->stream_id);
			}
		}
		(void)nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
					    nghttp2_session_get_last_proc_stream_id(c->session),
					    NGHTTP2_NO_ERROR, NULL, 0);
		(void)nghttp2_session_send(c->session);
		grpc_conn_free(c);
	}
	s->acceptor = acceptor_free(s->acceptor);
	safe_close(s->fd);
	sd_event_unref(s->event);
	free(s);
	return NULL;
}

size_t grpc_server_n_connections(const struct grpc_server *s)
{
	return s->n_conns;
}
