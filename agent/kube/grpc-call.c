// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Server calls of our gRPC layer (see grpc-internal.h): what a method's handler answers with,
 * the dispatch of a complete request to it, and the buffers of requests and answers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/grpc-internal.h"

/* --- Buffers ------------------------------------------------------------------------------- */

int grpc_buf_append(struct grpc_buf *b, const void *p, size_t n)
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

size_t grpc_buf_pending(const struct grpc_buf *b)
{
	return b->len - b->off;
}

void grpc_buf_done(struct grpc_buf *b)
{
	free(b->data);
	*b = (struct grpc_buf){};
}

int grpc_buf_append_message(struct grpc_buf *b, const void *msg, size_t len)
{
	uint8_t hdr[GRPC_FRAME_HEADER_SIZE];
	size_t old = b->len;
	int r;

	r = grpc_frame_header(hdr, len);
	if (r < 0)
		return r;
	r = grpc_buf_append(b, hdr, sizeof(hdr));
	if (r >= 0)
		r = grpc_buf_append(b, msg, len);
	if (r < 0)
		b->len = MAX(old, b->off);
	return r;
}

/* --- Server calls -------------------------------------------------------------------------- */

struct grpc_call *grpc_call_free(struct grpc_call *call)
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
	grpc_buf_done(&call->in);
	grpc_buf_done(&call->out);
	free(call->message);
	free(call);
	return NULL;
}

/* The call ended by something other than its keeper: tell the keeper. */
void grpc_call_notify_closed(struct grpc_call *call)
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
	size_t n = MIN(length, grpc_buf_pending(&call->out));
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
void grpc_call_refuse(struct grpc_call *call, int http_status, int status, const char *message)
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
	if (grpc_buf_pending(&c->out) + len > conn->server->limits.max_output_bytes) {
		call_cancel(c);
		grpc_call_notify_closed(c);
		grpc_conn_flush(conn);
		return -ENOBUFS;
	}
	r = call_start_response(c);
	if (r >= 0)
		r = grpc_buf_append_message(&c->out, msg, len);
	if (r < 0)
		return r;
	(void)nghttp2_session_resume_data(conn->session, c->stream_id);
	grpc_conn_flush(conn);
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
		grpc_conn_flush(conn);
		return r;
	}
	c->finished = true;
	(void)nghttp2_session_resume_data(conn->session, c->stream_id);
	grpc_conn_flush(conn);
	return 0;
}

/* The whole request is in: check it and hand it to the handler. */
void grpc_call_dispatch(struct grpc_call *call)
{
	struct grpc_server *s = call->conn->server;
	const uint8_t *msg;
	size_t len;
	int r;

	if (call->finished)
		return;
	if (call->fail_status)
		return grpc_call_refuse(call, 200, call->fail_status, call->fail_message);
	r = grpc_frame_single(call->in.data, call->in.len, s->limits.max_message_bytes, &msg,
			      &len);
	if (r == -EMSGSIZE)
		return grpc_call_refuse(call, 200, GRPC_STATUS_RESOURCE_EXHAUSTED,
					"request message too large");
	if (r == -EPROTONOSUPPORT)
		return grpc_call_refuse(call, 200, GRPC_STATUS_UNIMPLEMENTED,
					"compressed messages are not supported");
	if (r < 0)
		return grpc_call_refuse(call, 200, GRPC_STATUS_INVALID_ARGUMENT,
					"expected exactly one request message");

	call->dispatched = true;
	r = call_start_response(call);
	if (r < 0)
		return grpc_call_refuse(call, 200, GRPC_STATUS_INTERNAL, "out of memory");
	call->method->handler(call, msg, len, s->userdata);
	/* call may have been finished (not freed: streams close from nghttp2 only) */
	if (!call->finished && !call->on_close)
		(void)grpc_call_finish(call, GRPC_STATUS_INTERNAL, "the method gave no answer");
	grpc_buf_done(&call->in);
}
