// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * gRPC over nghttp2 on sd-event; see grpc.h.
 *
 * A connection owns one nghttp2 session and one I/O source. Input is fed to the session with
 * nghttp2_session_mem_recv(); output leaves through nghttp2_session_send(), whose send
 * callback writes to the socket and says "would block" when it is full (EPOLLOUT then wakes
 * us). nghttp2 callbacks never close a connection themselves: they mark it, and the I/O
 * handler closes it once the session has returned.
 *
 * A server call is one HTTP/2 stream. Its request body is collected up to max_message_bytes
 * (decided from the 5-byte header, so an oversized message is refused before it is buffered)
 * and handed to the method's handler at END_STREAM. The response is the HEADERS frame
 * (:status 200, content-type), DATA from the call's output queue through a deferred data
 * provider, and a trailing HEADERS frame with grpc-status and grpc-message. Errors found
 * before a handler ran are answered "trailers-only" (one HEADERS frame that ends the stream).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "kube/grpc.h"
#include "shared/accept.h"
#include "shared/clock.h"
#include "shared/log.h"

#define GRPC_READ_SIZE (16U * 1024U)
#define GRPC_ACCEPT_BURST 16U
/* The largest reply a client call accepts (kubelet answers Register with an empty message). */
#define GRPC_CLIENT_MAX_REPLY (64U * 1024U)

struct grpc_buf {
	uint8_t *data;
	size_t len, off, alloc;
};

struct grpc_conn;

struct grpc_call {
	struct grpc_conn *conn;
	struct grpc_call *prev, *next;
	int32_t stream_id;
	char *path;
	bool method_post, content_type_ok, have_timeout;
	uint64_t timeout_usec;
	uint64_t deadline;
	uint64_t begin_usec; /* its HEADERS began: the request must be complete in time */
	sd_event_source *timer;
	const struct grpc_method *method;

	struct grpc_buf in;
	int fail_status; /* a request we refuse: answered at END_STREAM, or at once */
	const char *fail_message;
	bool dispatched;

	struct grpc_buf out;
	bool response_started; /* HEADERS submitted with a data provider */
	bool finished;	       /* grpc_call_finish() or an error answer: trailers are set */
	bool trailers_sent;
	int status;
	char *message;

	grpc_call_close_t on_close;
	void *on_close_userdata;
};

struct grpc_server {
	sd_event *event;
	int fd;
	struct acceptor *acceptor;
	struct grpc_limits limits;
	const struct grpc_method *methods;
	size_t n_methods;
	void *userdata;
	struct grpc_conn *conns;
	size_t n_conns;
};

struct grpc_client_call {
	sd_event *event;
	struct grpc_conn *conn;
	sd_event_source *timer;
	sd_event_source *defer; /* delivers the result from the loop, outside nghttp2 */
	struct grpc_buf request;
	struct grpc_buf reply;
	int32_t stream_id;
	bool have_status, done, reply_too_big;
	int status;
	char *message;
	int http_status;
	grpc_reply_t cb;
	void *userdata;
};

struct grpc_conn {
	struct grpc_server *server;	  /* server side */
	struct grpc_client_call *client; /* client side */
	struct grpc_conn *prev, *next;
	int fd;
	sd_event_source *io;
	nghttp2_session *session;
	struct grpc_call *calls;
	bool in_io;	 /* inside on_io(): it flushes and closes when done */
	bool broken;	 /* close at the next chance */
	bool closing;	 /* stop reading, flush what is queued, then close */

	/* Server side: the timeouts of a connection that holds a slot without using it. */
	sd_event_source *timer;
	uint64_t since;		/* accepted, or last read or written */
	uint64_t preface_begin; /* the first byte of a client preface not complete yet, or 0 */
	bool settings_seen;	/* the client's preface and SETTINGS are in */
	uint64_t deadline;	/* what the timer is armed for, UINT64_MAX: off */
};

static void conn_free(struct grpc_conn *c);
static void conn_flush(struct grpc_conn *c);
static int client_on_header(nghttp2_session *session, const nghttp2_frame *frame,
			    const uint8_t *name, size_t namelen, const uint8_t *value,
			    size_t valuelen, uint8_t flags, void *user_data);
static int client_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
				const uint8_t *data, size_t len, void *user_data);
static int client_on_stream_close(nghttp2_session *session, int32_t stream_id,
				  uint32_t error_code, void *user_data);

/* --- Buffers ------------------------------------------------------------------------------- */

static int buf_append(struct grpc_buf *b, const void *p, size_t n)
{
	if (n > SIZE_MAX - b->len)
		return -ENOMEM;
	if (b->off > 0 && b->off == b->len) {
		b->off = b->len = 0;
	}
	if (b->len + n > b->alloc) {
		size_t want = MAX(b->len + n, MAX(b->alloc * 2, (size_t)256));
		uint8_t *q;

		if (b->off > 0) { /* compact before growing */
			memmove(b->data, b->data + b->off, b->len - b->off);
			b->len -= b->off;
			b->off = 0;
			if (b->len + n <= b->alloc)
				goto copy;
		}
		q = realloc(b->data, want);
		if (!q)
			return -ENOMEM;
		b->data = q;
		b->alloc = want;
	}
copy:
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static size_t buf_pending(const struct grpc_buf *b)
{
	return b->len - b->off;
}

static void buf_done(struct grpc_buf *b)
{
	free(b->data);
	*b = (struct grpc_buf){};
}

static int buf_append_message(struct grpc_buf *b, const void *msg, size_t len)
{
	uint8_t hdr[GRPC_FRAME_HEADER_SIZE];
	size_t old = b->len;
	int r;

	r = grpc_frame_header(hdr, len);
	if (r < 0)
		return r;
	r = buf_append(b, hdr, sizeof(hdr));
	if (r >= 0)
		r = buf_append(b, msg, len);
	if (r < 0)
		b->len = MAX(old, b->off);
	return r;
}

#define NV(n, v)                                                                                   \
	{ (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),                                \
	  NGHTTP2_NV_FLAG_NO_COPY_NAME }

/* --- Server calls -------------------------------------------------------------------------- */

static struct grpc_call *call_free(struct grpc_call *call)
{
	struct grpc_conn *c;

	if (!call)
		return NULL;
	c = call->conn;
	if (c) {
		if (call->prev)
			call->prev->next = call->next;
		else
			c->calls = call->next;
		if (call->next)
			call->next->prev = call->prev;
	}
	sd_event_source_disable_unref(call->timer);
	free(call->path);
	buf_done(&call->in);
	buf_done(&call->out);
	free(call->message);
	free(call);
	return NULL;
}

/* The call ended by something other than its keeper: tell the keeper. */
static void call_notify_closed(struct grpc_call *call)
{
	grpc_call_close_t cb = call->on_close;

	call->on_close = NULL;
	if (cb)
		cb(call, call->on_close_userdata);
}

static ssize_t call_read_data(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
			      size_t length, uint32_t *data_flags, nghttp2_data_source *source,
			      void *user_data)
{
	struct grpc_call *call = source->ptr;
	size_t n = MIN(length, buf_pending(&call->out));
	char code[16];

	if (n > 0) {
		memcpy(buf, call->out.data + call->out.off, n);
		call->out.off += n;
		if (call->out.off == call->out.len)
			call->out.off = call->out.len = 0;
		return (ssize_t)n;
	}
	if (!call->finished)
		return NGHTTP2_ERR_DEFERRED;
	*data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
	snprintf(code, sizeof(code), "%d", call->status);
	{
		nghttp2_nv trailers[] = {
			NV("grpc-status", code),
			NV("grpc-message", call->message ?: ""),
		};

		if (nghttp2_submit_trailer(session, stream_id, trailers,
					   call->message ? 2 : 1) != 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	call->trailers_sent = true;
	return 0;
}

static int call_start_response(struct grpc_call *call)
{
	nghttp2_nv hdrs[] = {
		NV(":status", "200"),
		NV("content-type", "application/grpc"),
	};
	nghttp2_data_provider dp = { .source.ptr = call, .read_callback = call_read_data };

	if (call->response_started)
		return 0;
	if (nghttp2_submit_response(call->conn->session, call->stream_id, hdrs,
				    ELEMENTSOF(hdrs), &dp) != 0)
		return -ENOMEM;
	call->response_started = true;
	return 0;
}

/* Answers a request we refuse with one HEADERS frame that ends the stream (trailers-only). */
static void call_refuse(struct grpc_call *call, int http_status, int status, const char *message)
{
	_cleanup_free_ char *enc = message ? grpc_message_encode(message) : NULL;
	char code[16], hs[8];

	if (call->finished || call->response_started)
		return;
	snprintf(hs, sizeof(hs), "%d", http_status);
	snprintf(code, sizeof(code), "%d", status);
	call->finished = call->trailers_sent = true;
	call->response_started = true;
	{
		nghttp2_nv hdrs[] = {
			NV(":status", hs),
			NV("content-type", "application/grpc"),
			NV("grpc-status", code),
			NV("grpc-message", enc ?: ""),
		};

		if (nghttp2_submit_response(call->conn->session, call->stream_id, hdrs,
					    enc ? 4 : 3, NULL) != 0)
			call->conn->broken = true;
	}
}

static void call_cancel(struct grpc_call *call)
{
	if (!call->trailers_sent)
		(void)nghttp2_submit_rst_stream(call->conn->session, NGHTTP2_FLAG_NONE,
						call->stream_id, NGHTTP2_CANCEL);
	call->finished = call->trailers_sent = true;
}

static int on_call_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct grpc_call *call = userdata;
	struct grpc_conn *c = call->conn;

	if (call->finished)
		return 0;
	if (call->response_started) {
		/* a kept stream: end it after what is queued, and tell its keeper */
		call->status = GRPC_STATUS_DEADLINE_EXCEEDED;
		call->message = strdup("deadline exceeded");
		call->finished = true;
		(void)nghttp2_session_resume_data(c->session, call->stream_id);
		call_notify_closed(call);
	} else {
		call_refuse(call, 200, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
	}
	conn_flush(c);
	return 0;
}

void grpc_call_set_on_close(struct grpc_call *c, grpc_call_close_t on_close, void *userdata)
{
	c->on_close = on_close;
	c->on_close_userdata = userdata;
}

uint64_t grpc_call_deadline(const struct grpc_call *c)
{
	return c->have_timeout ? c->deadline : UINT64_MAX;
}

const char *grpc_call_path(const struct grpc_call *c)
{
	return c->path;
}

int grpc_call_send(struct grpc_call *c, const void *msg, size_t len)
{
	struct grpc_conn *conn = c->conn;
	int r;

	if (c->finished || !conn)
		return -EINVAL;
	if (len > UINT32_MAX)
		return -EMSGSIZE;
	if (buf_pending(&c->out) + len > conn->server->limits.max_output_bytes) {
		call_cancel(c);
		call_notify_closed(c);
		conn_flush(conn);
		return -ENOBUFS;
	}
	r = call_start_response(c);
	if (r >= 0)
		r = buf_append_message(&c->out, msg, len);
	if (r < 0)
		return r;
	(void)nghttp2_session_resume_data(conn->session, c->stream_id);
	conn_flush(conn);
	return 0;
}

int grpc_call_finish(struct grpc_call *c, int status, const char *message)
{
	struct grpc_conn *conn = c->conn;
	int r = 0;

	if (c->finished || !conn)
		return -EINVAL;
	c->on_close = NULL;
	c->status = status;
	if (message && !(c->message = grpc_message_encode(message)))
		r = -ENOMEM;
	if (r >= 0)
		r = call_start_response(c);
	if (r < 0) {
		call_cancel(c);
		conn_flush(conn);
		return r;
	}
	c->finished = true;
	(void)nghttp2_session_resume_data(conn->session, c->stream_id);
	conn_flush(conn);
	return 0;
}

static const struct grpc_method *server_find_method(struct grpc_server *s, const char *path)
{
	for (size_t i = 0; i < s->n_methods; i++)
		if (streq(s->methods[i].path, path))
			return &s->methods[i];
	return NULL;
}

/* The whole request is in: check it and hand it to the handler. */
static void call_dispatch(struct grpc_call *call)
{
	struct grpc_server *s = call->conn->server;
	const uint8_t *msg;
	size_t len;
	int r;

	if (call->finished)
		return;
	if (call->fail_status)
		return call_refuse(call, 200, call->fail_status, call->fail_message);
	r = grpc_frame_single(call->in.data, call->in.len, s->limits.max_message_bytes, &msg,
			      &len);
	if (r == -EMSGSIZE)
		return call_refuse(call, 200, GRPC_STATUS_RESOURCE_EXHAUSTED,
				   "request message too large");
	if (r == -EPROTONOSUPPORT)
		return call_refuse(call, 200, GRPC_STATUS_UNIMPLEMENTED,
				   "compressed messages are not supported");
	if (r < 0)
		return call_refuse(call, 200, GRPC_STATUS_INVALID_ARGUMENT,
				   "expected exactly one request message");

	call->dispatched = true;
	r = call_start_response(call);
	if (r < 0)
		return call_refuse(call, 200, GRPC_STATUS_INTERNAL, "out of memory");
	call->method->handler(call, msg, len, s->userdata);
	/* call may have been finished (not freed: streams close from nghttp2 only) */
	if (!call->finished && !call->on_close)
		(void)grpc_call_finish(call, GRPC_STATUS_INTERNAL, "the method gave no answer");
	buf_done(&call->in);
}

/* --- nghttp2 callbacks (both sides) -------------------------------------------------------- */

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

static int server_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
				   void *user_data)
{
	struct grpc_conn *c = user_data;
	struct grpc_call *call;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	call = calloc(1, sizeof(*call));
	if (!call)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	call->conn = c;
	call->stream_id = frame->hd.stream_id;
	call->begin_usec = now_usec(CLOCK_MONOTONIC);
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	if (nghttp2_session_set_stream_user_data(session, call->stream_id, call) != 0) {
		call_free(call);
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	return 0;
}

static bool header_is(const uint8_t *name, size_t namelen, const char *want)
{
	return namelen == strlen(want) && memcmp(name, want, namelen) == 0;
}

static int server_on_header(nghttp2_session *session, const nghttp2_frame *frame,
			    const uint8_t *name, size_t namelen, const uint8_t *value,
			    size_t valuelen, uint8_t flags, void *user_data)
{
	struct grpc_call *call;
	char v[64];

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0; /* trailers of a request carry nothing we use */
	call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (!call)
		return 0;
	if (header_is(name, namelen, ":path")) {
		if (call->path || !(call->path = strndup((const char *)value, valuelen)))
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	} else if (header_is(name, namelen, ":method")) {
		call->method_post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
	} else if (header_is(name, namelen, "content-type")) {
		/* "application/grpc", "application/grpc+proto", "application/grpc;..." */
		call->content_type_ok =
			valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
			(valuelen == 16 || value[16] == '+' || value[16] == ';');
	} else if (header_is(name, namelen, "grpc-timeout")) {
		if (valuelen >= sizeof(v))
			return 0;
		memcpy(v, value, valuelen);
		v[valuelen] = '\0';
		call->have_timeout = grpc_timeout_parse(v, &call->timeout_usec) >= 0;
	} else if (header_is(name, namelen, "grpc-encoding")) {
		if (!(valuelen == 8 && memcmp(value, "identity", 8) == 0) && !call->fail_status) {
			call->fail_status = GRPC_STATUS_UNIMPLEMENTED;
			call->fail_message = "compressed messages are not supported";
		}
	}
	return 0;
}

/* The request headers are complete: route it, and arm its deadline. */
static int server_request_headers_done(struct grpc_conn *c, struct grpc_call *call)
{
	struct grpc_server *s = c->server;
	int r;

	if (!call->method_post || !call->path)
		return nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, call->stream_id,
						 NGHTTP2_PROTOCOL_ERROR) == 0
			       ? 0
			       : NGHTTP2_ERR_CALLBACK_FAILURE;
	if (!call->content_type_ok) {
		call_refuse(call, 415, GRPC_STATUS_INTERNAL, "content-type must be application/grpc");
		return 0;
	}
	call->method = server_find_method(s, call->path);
	if (!call->method && !call->fail_status) {
		call->fail_status = GRPC_STATUS_UNIMPLEMENTED;
		call->fail_message = "unknown method";
	}
	if (call->have_timeout) {
		uint64_t now = now_usec(CLOCK_MONOTONIC);

		call->deadline = call->timeout_usec > UINT64_MAX - now ? UINT64_MAX - 1
									: now + call->timeout_usec;
		r = sd_event_add_time(s->event, &call->timer, CLOCK_MONOTONIC, call->deadline,
				      1000, on_call_deadline, call);
		if (r < 0)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	return 0;
}

static int server_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
				void *user_data)
{
	struct grpc_conn *c = user_data;
	struct grpc_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	int r;

	if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
		c->settings_seen = true;
		c->preface_begin = 0;
	}
	if (!call)
		return 0;
	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
		r = server_request_headers_done(c, call);
		if (r != 0)
			return r;
	}
	if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
	    (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		call_dispatch(call);
	return 0;
}

static int server_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
				const uint8_t *data, size_t len, void *user_data)
{
	struct grpc_conn *c = user_data;
	struct grpc_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
	size_t max = c->server->limits.max_message_bytes;
	const uint8_t *msg;
	size_t mlen, used;
	int r;

	if (!call || call->finished || call->dispatched)
		return 0;
	if (len > max + GRPC_FRAME_HEADER_SIZE - call->in.len) {
		/* More than one allowed message holds: decide from its header which error. */
		uint8_t hdr[GRPC_FRAME_HEADER_SIZE];
		size_t have = MIN(call->in.len, sizeof(hdr));

		if (have)
			memcpy(hdr, call->in.data, have);
		memcpy(hdr + have, data, MIN(len, sizeof(hdr) - have));
		r = have + len >= sizeof(hdr)
			    ? grpc_frame_next(hdr, sizeof(hdr), max, &msg, &mlen, &used)
			    : 0;
		buf_done(&call->in);
		if (r == -EMSGSIZE)
			call_refuse(call, 200, GRPC_STATUS_RESOURCE_EXHAUSTED,
				    "request message too large");
		else
			call_refuse(call, 200, GRPC_STATUS_INVALID_ARGUMENT,
				    "expected exactly one request message");
		return 0;
	}
	if (buf_append(&call->in, data, len) < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	/* refuse an oversized message as soon as its header is in, without buffering it */
	r = grpc_frame_next(call->in.data, call->in.len, max, &msg, &mlen, &used);
	if (r == -EMSGSIZE) {
		buf_done(&call->in);
		call_refuse(call, 200, GRPC_STATUS_RESOURCE_EXHAUSTED, "request message too large");
	}
	return 0;
}

/*
 * A request refused before it was complete: once the answer is out, tell the client to stop
 * sending (RST_STREAM NO_ERROR, as RFC 9113 8.1 suggests). Submitted only now because nghttp2
 * sends RST_STREAM ahead of queued HEADERS.
 */
static int server_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
				 void *user_data)
{
	nghttp2_stream *st;

	if (frame->hd.type != NGHTTP2_HEADERS || !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = nghttp2_session_find_stream(session, frame->hd.stream_id);
	if (st && nghttp2_stream_get_state(st) == NGHTTP2_STREAM_STATE_HALF_CLOSED_LOCAL)
		(void)nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
						NGHTTP2_NO_ERROR);
	return 0;
}

static int server_on_stream_close(nghttp2_session *session, int32_t stream_id,
				  uint32_t error_code, void *user_data)
{
	struct grpc_call *call = nghttp2_session_get_stream_user_data(session, stream_id);

	if (!call)
		return 0;
	(void)nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	if (!call->finished || !call->trailers_sent)
		call_notify_closed(call);
	call_free(call);
	return 0;
}

/* --- Connections --------------------------------------------------------------------------- */

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

static void client_conn_done(struct grpc_client_call *cc);

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
	conn_flush(c);
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
static void conn_flush(struct grpc_conn *c)
{
	if (c->in_io)
		return; /* on_io() flushes when the session has returned */
	if (!c->broken && nghttp2_session_send(c->session) != 0)
		c->broken = true;
	if (!c->broken)
		conn_update_timer(c);
	if (conn_finished(c)) {
		if (c->client)
			client_conn_done(c->client);
		else
			conn_free(c);
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
	conn_flush(c);
	return 0;
}

static void conn_free(struct grpc_conn *c)
{
	struct grpc_server *s = c->server;

	/* Streams still open: their keepers learn it (a closing server or a broken peer). */
	while (c->calls) {
		struct grpc_call *call = c->calls;

		(void)nghttp2_session_set_stream_user_data(c->session, call->stream_id, NULL);
		if (!call->finished || !call->trailers_sent)
			call_notify_closed(call);
		call_free(call);
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

static int conn_new(sd_event *e, int fd, bool server, struct grpc_conn **ret)
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
		nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
									server_on_begin_headers);
		nghttp2_session_callbacks_set_on_header_callback(cbs, server_on_header);
		nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, server_on_frame_recv);
		nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
									 server_on_data_chunk);
		nghttp2_session_callbacks_set_on_stream_close_callback(cbs, server_on_stream_close);
		nghttp2_session_callbacks_set_on_frame_send_callback(cbs, server_on_frame_send);
		r = nghttp2_session_server_new2(&c->session, cbs, c, opt);
	} else {
		nghttp2_session_callbacks_set_on_header_callback(cbs, client_on_header);
		nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
									 client_on_data_chunk);
		nghttp2_session_callbacks_set_on_stream_close_callback(cbs, client_on_stream_close);
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

/* --- Server -------------------------------------------------------------------------------- */

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
		conn_free(c);
	}
	r = conn_new(s->event, fd, true, &c);
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
	conn_flush(c);
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
			call_notify_closed(call);
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
		conn_free(c);
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

/* --- Client -------------------------------------------------------------------------------- */

static ssize_t client_read_request(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
				   size_t length, uint32_t *data_flags,
				   nghttp2_data_source *source, void *user_data)
{
	struct grpc_client_call *cc = source->ptr;
	size_t n = MIN(length, buf_pending(&cc->request));

	memcpy(buf, cc->request.data + cc->request.off, n);
	cc->request.off += n;
	if (buf_pending(&cc->request) == 0)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int client_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user_data)
{
	struct grpc_conn *c = user_data;
	struct grpc_client_call *cc = c->client;
	char v[16];

	if (!cc || frame->hd.stream_id != cc->stream_id)
		return 0;
	if (header_is(name, namelen, ":status")) {
		cc->http_status = valuelen == 3 && memcmp(value, "200", 3) == 0 ? 200 : -1;
	} else if (header_is(name, namelen, "grpc-status")) {
		char *end;
		long st;

		if (valuelen == 0 || valuelen >= sizeof(v))
			return 0;
		memcpy(v, value, valuelen);
		v[valuelen] = '\0';
		errno = 0;
		st = strtol(v, &end, 10);
		if (errno == 0 && *end == '\0' && st >= 0 && st <= 255) {
			cc->status = (int)st;
			cc->have_status = true;
		}
	} else if (header_is(name, namelen, "grpc-message")) {
		free(cc->message);
		cc->message = grpc_message_decode((const char *)value, valuelen);
	}
	return 0;
}

static int client_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
			 const uint8_t *data, size_t len, void *user_data)
{
	struct grpc_conn *c = user_data;
	struct grpc_client_call *cc = c->client;

	if (!cc || stream_id != cc->stream_id || cc->reply_too_big)
		return 0;
	if (len > GRPC_CLIENT_MAX_REPLY + GRPC_FRAME_HEADER_SIZE - cc->reply.len) {
		cc->reply_too_big = true;
		buf_done(&cc->reply);
		return 0;
	}
	return buf_append(&cc->reply, data, len) < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
}

static void client_finish(struct grpc_client_call *cc, int status, const char *message)
{
	if (cc->done)
		return;
	cc->done = true;
	cc->status = status;
	if (message) {
		free(cc->message);
		cc->message = strdup(message);
	}
	cc->have_status = true;
	(void)sd_event_source_set_enabled(cc->defer, SD_EVENT_ONESHOT);
}

static int client_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
			   void *user_data)
{
	struct grpc_conn *c = user_data;
	struct grpc_client_call *cc = c->client;

	if (!cc || stream_id != cc->stream_id || cc->done)
		return 0;
	if (!cc->have_status)
		client_finish(cc, error_code ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_INTERNAL,
			      error_code ? "the stream was reset" : "no grpc-status in the reply");
	else if (cc->reply_too_big)
		client_finish(cc, GRPC_STATUS_RESOURCE_EXHAUSTED, "reply too large");
	else
		client_finish(cc, cc->status, NULL);
	c->closing = true;
	return 0;
}

/* The connection ended (or broke): the call is over, whatever it got. */
static void client_conn_done(struct grpc_client_call *cc)
{
	if (!cc->done)
		client_finish(cc, GRPC_STATUS_UNAVAILABLE, "the connection was closed");
	if (cc->conn) {
		cc->conn->client = NULL;
		conn_free(cc->conn);
		cc->conn = NULL;
	}
}

struct grpc_client_call *grpc_client_call_cancel(struct grpc_client_call *cc)
{
	if (!cc)
		return NULL;
	if (cc->conn) {
		cc->conn->client = NULL;
		conn_free(cc->conn);
	}
	sd_event_source_disable_unref(cc->timer);
	sd_event_source_disable_unref(cc->defer);
	buf_done(&cc->request);
	buf_done(&cc->reply);
	free(cc->message);
	sd_event_unref(cc->event);
	free(cc);
	return NULL;
}

static int client_on_defer(sd_event_source *s, void *userdata)
{
	struct grpc_client_call *cc = userdata;
	const uint8_t *msg = NULL;
	size_t len = 0;
	int status = cc->status;
	const char *message = cc->message;

	if (status == GRPC_STATUS_OK) {
		if (cc->http_status != 200) {
			status = GRPC_STATUS_INTERNAL;
			message = "the reply is not HTTP 200";
		} else if (grpc_frame_single(cc->reply.data, cc->reply.len, GRPC_CLIENT_MAX_REPLY,
					     &msg, &len) < 0) {
			status = GRPC_STATUS_INTERNAL;
			message = "the reply is not exactly one message";
			msg = NULL;
			len = 0;
		}
	}
	cc->cb(status, message, status == GRPC_STATUS_OK ? (msg ?: (const uint8_t *)"") : NULL,
	       len, cc->userdata);
	grpc_client_call_cancel(cc);
	return 0;
}

static int client_on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct grpc_client_call *cc = userdata;

	client_finish(cc, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
	return 0;
}

int grpc_client_call_new(sd_event *e, const char *socket_path, const char *path,
			 const void *msg, size_t len, uint64_t timeout_usec, grpc_reply_t cb,
			 void *userdata, struct grpc_client_call **ret)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct grpc_client_call *cc;
	char tmo[10];
	nghttp2_nv hdrs[] = {
		NV(":method", "POST"),
		NV(":scheme", "http"),
		NV(":path", path),
		NV(":authority", "localhost"),
		NV("content-type", "application/grpc"),
		NV("te", "trailers"),
		NV("grpc-timeout", timeout_usec ? grpc_timeout_format(timeout_usec, tmo) : ""),
	};
	nghttp2_data_provider dp = { .read_callback = client_read_request };
	int fd, r;

	if (!socket_path || !path || !cb || strlen(socket_path) >= sizeof(sun.sun_path))
		return -EINVAL;
	strcpy(sun.sun_path, socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		r = -errno;
		safe_close(fd);
		return r;
	}

	cc = calloc(1, sizeof(*cc));
	if (!cc) {
		safe_close(fd);
		return -ENOMEM;
	}
	cc->event = sd_event_ref(e);
	cc->cb = cb;
	cc->userdata = userdata;
	r = buf_append_message(&cc->request, msg, len);
	if (r < 0) {
		safe_close(fd);
		goto fail;
	}
	r = conn_new(e, fd, false, &cc->conn);
	if (r < 0)
		goto fail;
	cc->conn->client = cc;
	r = sd_event_add_defer(e, &cc->defer, client_on_defer, cc);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(cc->defer, SD_EVENT_OFF);
	if (timeout_usec) {
		r = sd_event_add_time_relative(e, &cc->timer, CLOCK_MONOTONIC, timeout_usec, 1000,
					       client_on_timeout, cc);
		if (r < 0)
			goto fail;
	}
	dp.source.ptr = cc;
	if (nghttp2_submit_settings(cc->conn->session, NGHTTP2_FLAG_NONE, NULL, 0) != 0) {
		r = -ENOMEM;
		goto fail;
	}
	cc->stream_id = nghttp2_submit_request(cc->conn->session, NULL, hdrs,
					       timeout_usec ? ELEMENTSOF(hdrs) : ELEMENTSOF(hdrs) - 1,
					       &dp, NULL);
	if (cc->stream_id < 0) {
		r = -ENOMEM;
		goto fail;
	}
	conn_flush(cc->conn);
	*ret = cc;
	return 0;
fail:
	grpc_client_call_cancel(cc);
	return r;
}
