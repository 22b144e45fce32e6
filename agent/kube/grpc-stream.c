// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The server side of a connection's HTTP/2 session (see grpc-internal.h): nghttp2's callbacks
 * for a request's stream, from its HEADERS (routing, deadline) through its DATA (the request,
 * refused as soon as it is too large) to its close.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kube/grpc-internal.h"
#include "shared/clock.h"

static const struct grpc_method *server_find_method(struct grpc_server *s, const char *path)
{
	for (size_t i = 0; i < s->n_methods; i++)
		if (streq(s->methods[i].path, path))
			return &s->methods[i];
	return NULL;
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
		grpc_call_notify_closed(call);
	} else {
		grpc_call_refuse(call, 200, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
	}
	grpc_conn_flush(c);
	return 0;
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
		grpc_call_free(call);
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	return 0;
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
	if (grpc_header_is(name, namelen, ":path")) {
		if (call->path || !(call->path = strndup((const char *)value, valuelen)))
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	} else if (grpc_header_is(name, namelen, ":method")) {
		call->method_post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
	} else if (grpc_header_is(name, namelen, "content-type")) {
		/* "application/grpc", "application/grpc+proto", "application/grpc;..." */
		call->content_type_ok =
			valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
			(valuelen == 16 || value[16] == '+' || value[16] == ';');
	} else if (grpc_header_is(name, namelen, "grpc-timeout")) {
		if (valuelen >= sizeof(v))
			return 0;
		memcpy(v, value, valuelen);
		v[valuelen] = '\0';
		call->have_timeout = grpc_timeout_parse(v, &call->timeout_usec) >= 0;
	} else if (grpc_header_is(name, namelen, "grpc-encoding")) {
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
		grpc_call_refuse(call, 415, GRPC_STATUS_INTERNAL,
				 "content-type must be application/grpc");
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
		grpc_call_dispatch(call);
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
		grpc_buf_done(&call->in);
		if (r == -EMSGSIZE)
			grpc_call_refuse(call, 200, GRPC_STATUS_RESOURCE_EXHAUSTED,
					 "request message too large");
		else
			grpc_call_refuse(call, 200, GRPC_STATUS_INVALID_ARGUMENT,
					 "expected exactly one request message");
		return 0;
	}
	if (grpc_buf_append(&call->in, data, len) < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	/* refuse an oversized message as soon as its header is in, without buffering it */
	r = grpc_frame_next(call->in.data, call->in.len, max, &msg, &mlen, &used);
	if (r == -EMSGSIZE) {
		grpc_buf_done(&call->in);
		grpc_call_refuse(call, 200, GRPC_STATUS_RESOURCE_EXHAUSTED,
				 "request message too large");
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
		grpc_call_notify_closed(call);
	grpc_call_free(call);
	return 0;
}

void grpc_stream_callbacks(nghttp2_session_callbacks *cbs)
{
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, server_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, server_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, server_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, server_on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, server_on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, server_on_frame_send);
}
