// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Connections of our gRPC layer (see grpc-internal.h), both sides: the nghttp2 session on a
 * socket, reading and writing it, and the timeouts of a server connection.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include "kube/grpc-internal.h"
#include "shared/clock.h"
#include "shared/log.h"

#define GRPC_READ_SIZE (16U * 1024U)

static ssize_t on_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
		       void *user_data)
{
	struct grpc_conn *c = user_data;
	ssize_t n;

	n = send(c->fd, data, length, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return NGHTTP2_ERR_WOULDBLOCK;
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	if (n > 0)
		c->since = now_usec(CLOCK_MONOTONIC);
	return n;
}

static void conn_update_events(struct grpc_conn *c)
{
	uint32_t ev = 0;

	if (!c->closing && nghttp2_session_want_read(c->session))
		ev |= EPOLLIN;
	if (nghttp2_session_want_write(c->session))
		ev |= EPOLLOUT;
	(void)sd_event_source_set_io_events(c->io, ev);
}

static bool conn_finished(struct grpc_conn *c)
{
	if (c->broken)
		return true;
	if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session))
		return true;
	return c->closing && !nghttp2_session_want_write(c->session);
}

static uint64_t after(uint64_t since, uint64_t timeout)
{
	if (timeout == 0 || timeout >= UINT64_MAX - since)
		return UINT64_MAX;
	return since + timeout;
}

/*
 * When a server connection must have made progress: a client preface or request begun must be
 * complete within the header timeout; a connection with neither a call in progress nor a kept
 * stream is closed after the idle timeout (kubelet keeps ListAndWatch open on its connection).
 */
static uint64_t conn_deadline(const struct grpc_conn *c)
{
	const struct grpc_limits *l = &c->server->limits;
	uint64_t begun = UINT64_MAX;
	bool kept = false;

	for (const struct grpc_call *call = c->calls; call; call = call->next) {
		if (!call->dispatched && !call->finished)
			begun = MIN(begun, call->begin_usec);
		else if (call->on_close && !call->finished)
			kept = true;
	}
	if (!c->settings_seen && c->preface_begin > 0)
		begun = MIN(begun, c->preface_begin);
	if (begun != UINT64_MAX)
		return after(begun, l->header_timeout_usec);
	if (kept)
		return UINT64_MAX;
	return after(c->since, l->idle_timeout_usec);
}

static int on_conn_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct grpc_conn *c = userdata;

	c->deadline = UINT64_MAX; /* a oneshot timer is off once it fired */
	log_debug("gRPC: closing a connection that %s.",
		  c->settings_seen ? "did not complete a request in time or stayed idle" :
				     "sent no complete preface in time");
	/* Tell a client that listens why, best effort, then close. */
	(void)nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
				    nghttp2_session_get_last_proc_stream_id(c->session),
				    c->settings_seen ? NGHTTP2_NO_ERROR : NGHTTP2_PROTOCOL_ERROR,
				    NULL, 0);
	(void)nghttp2_session_send(c->session);
	c->broken = true;
	grpc_conn_flush(c);
	return 0;
}

static void conn_update_timer(struct grpc_conn *c)
{
	uint64_t deadline;
	int r;

	if (!c->server)
		return;
	deadline = conn_deadline(c);
	if (deadline == c->deadline)
		return;
	c->deadline = deadline;
	if (deadline == UINT64_MAX) {
		if (c->timer)
			(void)sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
		return;
	}
	if (!c->timer)
		r = sd_event_add_time(c->server->event, &c->timer, CLOCK_MONOTONIC, deadline, 1000,
				      on_conn_timeout, c);
	else
		r = sd_event_source_set_time(c->timer, deadline);
	if (r >= 0)
		r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
	if (r < 0) {
		log_debug_errno(r, "gRPC: cannot arm the connection's timer, closing it: %m");
		c->broken = true; /* a connection we cannot time out must not hold a slot */
	}
}

/* Sends what nghttp2 has queued; closes the connection when it is finished. Safe anywhere. */
void grpc_conn_flush(struct grpc_conn *c)
{
	if (c->in_io)
		return; /* on_io() flushes when the session has returned */
	if (!c->broken && nghttp2_session_send(c->session) != 0)
		c->broken = true;
	if (!c->broken)
		conn_update_timer(c);
	if (conn_finished(c)) {
		if (c->client)
			grpc_client_conn_done(c->client);
		else
			grpc_conn_free(c);
		return;
	}
	conn_update_events(c);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct grpc_conn *c = userdata;
	uint8_t buf[GRPC_READ_SIZE];

	c->in_io = true;
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (unsigned i = 0; i < 4 && !c->broken && !c->closing; i++) {
			ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

			if (n < 0) {
				if (errno != EAGAIN && errno != EINTR)
					c->broken = true;
				break;
			}
			if (n == 0) {
				c->broken = true;
				break;
			}
			c->since = now_usec(CLOCK_MONOTONIC);
			if (!c->settings_seen && c->preface_begin == 0)
				c->preface_begin = c->since;
			if (nghttp2_session_mem_recv(c->session, buf, (size_t)n) < 0) {
				c->broken = true;
				break;
			}
			if ((size_t)n < sizeof(buf))
				break;
		}
	}
	c->in_io = false;
	grpc_conn_flush(c);
	return 0;
}

void grpc_conn_free(struct grpc_conn *c)
{
	struct grpc_server *s = c->server;

	/* Streams still open: their keepers learn it (a closing server or a broken peer). */
	while (c->calls) {
		struct grpc_call *call = c->calls;

		(void)nghttp2_session_set_stream_user_data(c->session, call->stream_id, NULL);
		if (!call->finished || !call->trailers_sent)
			grpc_call_notify_closed(call);
		grpc_call_free(call);
	}
	if (s) {
		if (c->prev)
			c->prev->next = c->next;
		else
			s->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		s->n_conns--;
	}
	nghttp2_session_del(c->session);
	sd_event_source_disable_unref(c->io);
	sd_event_source_disable_unref(c->timer);
	safe_close(c->fd);
	free(c);
}

int grpc_conn_new(sd_event *e, int fd, bool server, struct grpc_conn **ret)
{
	nghttp2_session_callbacks *cbs = NULL;
	nghttp2_option *opt = NULL;
	struct grpc_conn *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c) {
		safe_close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0) {
		r = -ENOMEM;
		goto fail;
	}
	nghttp2_session_callbacks_set_send_callback(cbs, on_send);
	/*
	 * grpc-go (kubelet) sends the socket path as :authority, which nghttp2's HTTP messaging
	 * checks reject; we validate the few headers we use ourselves.
	 */
	nghttp2_option_set_no_http_messaging(opt, 1);
	if (server) {
		grpc_stream_callbacks(cbs);
		r = nghttp2_session_server_new2(&c->session, cbs, c, opt);
	} else {
		grpc_client_callbacks(cbs);
		r = nghttp2_session_client_new2(&c->session, cbs, c, opt);
	}
	nghttp2_session_callbacks_del(cbs);
	nghttp2_option_del(opt);
	cbs = NULL;
	opt = NULL;
	if (r != 0) {
		r = -ENOMEM;
		goto fail;
	}
	r = sd_event_add_io(e, &c->io, fd, EPOLLIN | EPOLLOUT, on_io, c);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_description(c->io, server ? "grpc-conn" : "grpc-client");
	*ret = c;
	return 0;
fail:
	nghttp2_session_callbacks_del(cbs);
	nghttp2_option_del(opt);
	nghttp2_session_del(c->session);
	safe_close(c->fd);
	free(c);
	return r;
}
