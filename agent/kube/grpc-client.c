// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The client side of our gRPC layer (see grpc-internal.h): one unary call on a connection of
 * its own, its reply delivered from the loop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "kube/grpc-internal.h"

/* The largest reply a client call accepts (kubelet answers Register with an empty message). */
#define GRPC_CLIENT_MAX_REPLY (64U * 1024U)

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

static ssize_t client_read_request(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
				   size_t length, uint32_t *data_flags,
				   nghttp2_data_source *source, void *user_data)
{
	struct grpc_client_call *cc = source->ptr;
	size_t n = MIN(length, grpc_buf_pending(&cc->request));

	memcpy(buf, cc->request.data + cc->request.off, n);
	cc->request.off += n;
	if (grpc_buf_pending(&cc->request) == 0)
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
	if (grpc_header_is(name, namelen, ":status")) {
		cc->http_status = valuelen == 3 && memcmp(value, "200", 3) == 0 ? 200 : -1;
	} else if (grpc_header_is(name, namelen, "grpc-status")) {
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
	} else if (grpc_header_is(name, namelen, "grpc-message")) {
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
		grpc_buf_done(&cc->reply);
		return 0;
	}
	return grpc_buf_append(&cc->reply, data, len) < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE
							  : 0;
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
void grpc_client_conn_done(struct grpc_client_call *cc)
{
	if (!cc->done)
		client_finish(cc, GRPC_STATUS_UNAVAILABLE, "the connection was closed");
	if (cc->conn) {
		cc->conn->client = NULL;
		grpc_conn_free(cc->conn);
		cc->conn = NULL;
	}
}

struct grpc_client_call *grpc_client_call_cancel(struct grpc_client_call *cc)
{
	if (!cc)
		return NULL;
	if (cc->conn) {
		cc->conn->client = NULL;
		grpc_conn_free(cc->conn);
	}
	sd_event_source_disable_unref(cc->timer);
	sd_event_source_disable_unref(cc->defer);
	grpc_buf_done(&cc->request);
	grpc_buf_done(&cc->reply);
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
	r = grpc_buf_append_message(&cc->request, msg, len);
	if (r < 0) {
		safe_close(fd);
		goto fail;
	}
	r = grpc_conn_new(e, fd, false, &cc->conn);
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
	grpc_conn_flush(cc->conn);
	*ret = cc;
	return 0;
fail:
	grpc_client_call_cancel(cc);
	return r;
}

void grpc_client_callbacks(nghttp2_session_callbacks *cbs)
{
	nghttp2_session_callbacks_set_on_header_callback(cbs, client_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, client_on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, client_on_stream_close);
}
