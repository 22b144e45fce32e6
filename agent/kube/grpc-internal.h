/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Between the files of our gRPC layer (grpc.h is its API); not for other files.
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
 *
 * grpc.c         the server: its listening socket, the connection limit, shutting down
 * grpc-conn.c    a connection: its nghttp2 session on a socket, its I/O and timeouts
 * grpc-stream.c  the server side of a session: a request's stream from its HEADERS to its close
 * grpc-call.c    a server call: the handler's answer (grpc_call_*()), dispatch, the buffers
 * grpc-client.c  the client: one unary call on a connection of its own
 */
#pragma once

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "kube/grpc.h"

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

#define NV(n, v)                                                                                   \
	{ (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),                                \
	  NGHTTP2_NV_FLAG_NO_COPY_NAME }

static inline bool grpc_header_is(const uint8_t *name, size_t namelen, const char *want)
{
	return namelen == strlen(want) && memcmp(name, want, namelen) == 0;
}

/* grpc-call.c: buffers. Appending returns 0 or -ENOMEM; grpc_buf_done() frees the data. */
int grpc_buf_append(struct grpc_buf *b, const void *p, size_t n);
/* Appends @msg framed (grpc-frame.h): 0, or -EMSGSIZE or -ENOMEM with @b as it was. */
int grpc_buf_append_message(struct grpc_buf *b, const void *msg, size_t len);
size_t grpc_buf_pending(const struct grpc_buf *b);
void grpc_buf_done(struct grpc_buf *b);

/* grpc-call.c: server calls. Unlinks @call from its connection and frees it; returns NULL. */
struct grpc_call *grpc_call_free(struct grpc_call *call);
/* The call ended by something other than its keeper: its on_close runs, once. */
void grpc_call_notify_closed(struct grpc_call *call);
/* Answers a request we refuse, trailers-only; nothing if an answer has begun. */
void grpc_call_refuse(struct grpc_call *call, int http_status, int status, const char *message);
/* The whole request is in: checks it and runs the method's handler. */
void grpc_call_dispatch(struct grpc_call *call);

/* grpc-stream.c: the server side's session callbacks, set on @cbs. */
void grpc_stream_callbacks(nghttp2_session_callbacks *cbs);

/* grpc-client.c: the client side's session callbacks, set on @cbs. */
void grpc_client_callbacks(nghttp2_session_callbacks *cbs);
/* The connection of @cc ended (or broke): the call is over, with what it got. */
void grpc_client_conn_done(struct grpc_client_call *cc);

/*
 * grpc-conn.c: a connection on @fd (ownership passes, also on failure), the server side
 * (@server: the caller links it to its server) or a client's. 0, -ENOMEM or -errno.
 */
int grpc_conn_new(sd_event *e, int fd, bool server, struct grpc_conn **ret);
/* Ends the streams still open (their keepers are told), unlinks @c from its server, frees it. */
void grpc_conn_free(struct grpc_conn *c);
/* Sends what nghttp2 has queued; closes the connection when it is finished. Safe anywhere. */
void grpc_conn_flush(struct grpc_conn *c);
