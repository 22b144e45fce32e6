/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A small HTTP/1.1 server for the local Unix socket, driven by sd-event and parsed by Debian's
 * libhttp-parser. It owns connections and enforces the limits a client could abuse; routing
 * and JSON live in api.c. One thread, non-blocking sockets, no hidden buffering beyond a
 * bounded per-connection output queue.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "shared/macro.h"

struct http_server;
struct http_conn;

enum http_method {
	HTTP_METHOD_GET,
	HTTP_METHOD_HEAD,
	HTTP_METHOD_POST,
	HTTP_METHOD_PUT,
	HTTP_METHOD_DELETE,
	HTTP_METHOD_PATCH,
	HTTP_METHOD_OTHER,
};

/*
 * Timeouts of 0 disable the timeout; the other limits must not be 0, except the reserved_*
 * ones. "Privileged" peers are root, the daemon's own user and whoever
 * http_server_set_privileged() says (the admin group); every other peer user (by SO_PEERCRED
 * uid) gets a share, so that no one user can lock the others out.
 */
struct http_limits {
	size_t max_connections;	 /* served at once; when full, the oldest idle connection of
				  * the user holding the most is closed for a new one, else the
				  * new one is answered 503 and closed */
	size_t max_connections_per_uid; /* of an unprivileged user: beyond it, its own oldest idle
					 * connection is closed, else 503 */
	size_t reserved_connections;	/* of max_connections, only for privileged peers */
	size_t max_request_bytes; /* request line + headers + body; above it: 413/431, close */
	uint64_t header_timeout_usec; /* from its first byte a request must be complete within
				       * this, else 408 and close (slowloris) */
	uint64_t idle_timeout_usec;   /* keep-alive connection with no request: closed silently;
				       * also bounds waiting for a client to read a last answer */
	size_t max_streams;	      /* open streams; more: 503 */
	size_t max_streams_per_uid;   /* of an unprivileged user; more: 503 */
	size_t reserved_streams;      /* of max_streams, only for privileged peers */
	size_t max_output_bytes;      /* a stream whose reader falls this far behind is dropped */
	size_t max_output_bytes_per_uid; /* memory of the output queues of one user's streams;
					  * beyond it, its stream furthest behind is dropped */
	size_t max_output_bytes_total;	 /* the same for all streams together */
};

#define HTTP_LIMITS_DEFAULT                                                                        \
	((struct http_limits){                                                                     \
		.max_connections = 128,                                                            \
		.max_connections_per_uid = 32,                                                     \
		.reserved_connections = 16,                                                        \
		.max_request_bytes = 64 * 1024,                                                    \
		.header_timeout_usec = 5 * 1000000ULL,                                             \
		.idle_timeout_usec = 60 * 1000000ULL,                                              \
		.max_streams = 64,                                                                 \
		.max_streams_per_uid = 16,                                                         \
		.reserved_streams = 8,                                                             \
		.max_output_bytes = 1024 * 1024,                                                   \
		.max_output_bytes_per_uid = 4 * 1024 * 1024,                                       \
		.max_output_bytes_total = 16 * 1024 * 1024,                                        \
	})

struct http_request {
	enum http_method method;
	const char *method_name; /* "GET", ... as sent */
	const char *path;	 /* decoded path without query, e.g. "/v1/devices/0000:17:00.0" */
	const char *query;	 /* raw query string without '?', or NULL */
	const char *body;	 /* NUL-terminated copy of the body, or NULL when empty */
	size_t body_len;
	const char *content_type; /* header value or NULL */
	const char *accept;	  /* header value or NULL */
	struct ucred cred;	  /* SO_PEERCRED of the connection */
	const gid_t *groups;	  /* the peer's supplementary groups (SO_PEERGROUPS) */
	size_t n_groups;
};

/*
 * Called once per complete request. The handler must answer with exactly one of
 * http_conn_reply() or http_conn_stream_begin(), before returning or later from the event loop;
 * @c and @req (with its strings) stay valid until then, even if the client hangs up meanwhile
 * (the late answer then fails with -ENOTCONN); after http_conn_stream_begin(), @req stays
 * valid as long as the stream. Further requests on the connection wait until
 * this one is answered. Returning -errno without having answered makes the server answer 500
 * with a JSON error body; -errno after answering is ignored.
 */
typedef int (*http_handler_t)(struct http_conn *c, const struct http_request *req,
			      void *userdata);

/*
 * Serves on the listening socket @fd (ownership passes to the server, also on failure; it is
 * made non-blocking). @limits NULL means HTTP_LIMITS_DEFAULT. Returns 0, -EINVAL or -ENOMEM.
 * Does not log beyond debug, here or in any function below.
 */
int http_server_new(sd_event *e, int fd, const struct http_limits *limits, http_handler_t handler,
		    void *userdata, struct http_server **ret);
/*
 * Decides which peers are privileged besides root and the daemon's own user (the admin group),
 * from the credentials the kernel recorded at connect time. Asked once per connection, when it
 * is accepted. @cb NULL: only root and the daemon's user.
 */
typedef bool (*http_privileged_t)(const struct ucred *cred, const gid_t *groups, size_t n_groups,
				  void *userdata);
void http_server_set_privileged(struct http_server *s, http_privileged_t cb, void *userdata);
/*
 * Closes every connection and the listening socket. Queued output and the final chunk of
 * streams are written best effort, without waiting. Streams' on_close callbacks are called
 * (so owners drop their pointers); a handler that has not answered yet gets -ENOTCONN when it
 * does. Accepts NULL, returns NULL.
 */
struct http_server *http_server_free(struct http_server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct http_server *, http_server_free);
/* All open connections, including those accepted over max_connections only to be refused. */
size_t http_server_n_connections(const struct http_server *s);

/*
 * Queues a complete response (headers only for HEAD; no body and no Content-Length for 204 and
 * 304). @status is 200..599; @content_type NULL omits the header; @extra_headers is NULL or
 * CRLF-terminated header lines ("Allow: GET\r\n"). Adds Content-Length and Connection, no Date.
 * The connection stays open (keep-alive) unless the client asked otherwise. @body is copied.
 * Returns 0; -EINVAL for a bad argument; -ENOTCONN if the client has gone; -ENOMEM. On any of
 * these the connection is closed and @c must not be used again. -EINVAL without closing
 * anything when @c does not await an answer (answered twice).
 */
int http_conn_reply(struct http_conn *c, int status, const char *content_type,
		    const char *extra_headers, const char *body, size_t len);

/*
 * Streaming (chunked transfer encoding) for long-lived responses such as /v1/events.
 * After stream_begin the connection belongs to the caller until the server closes it: then
 * @on_close is called once (peer hangup, write error, -ENOBUFS, http_server_free()), but not
 * after the caller itself called http_conn_stream_end(); the caller must drop its pointer when
 * it returns. With @on_close NULL the caller keeps the connection until it calls
 * http_conn_stream_end(); sends then fail with -ENOTCONN once the peer has gone.
 * stream_begin returns 0, -EINVAL (bad argument, or @c does not await an answer), -ENOTCONN or
 * -ENOMEM; on failure the connection is closed without on_close and @c must not be used again
 * (except after -EINVAL for a connection that does not await an answer). -EUSERS: the streams
 * of this peer or of all peers are at their limit; the server has answered 503 with a JSON
 * error saying which, the connection stays open, and @c must not be used again.
 * Input that arrives on a streaming connection is discarded. The stream ends by closing, so a
 * HTTP/1.0 client gets the data unchunked; a HEAD request gets the headers only.
 * stream_send queues @data as one chunk (len 0 is a no-op). Returns 0; -ENOBUFS if this stream
 * is dropped: its reader is more than max_output_bytes behind, or its output is the largest
 * of its user's (max_output_bytes_per_uid) or of all (max_output_bytes_total) when those are
 * exceeded; -ENOMEM: the connection is then closed or ends, and on_close is called before this
 * returns. Sending may drop another stream that is further behind: its on_close is called
 * later, from the event loop, and its sends fail with -ENOTCONN until then. A dropped
 * stream's client reads the rest of the chunk it had begun and, for HTTP/1.1 and
 * application/x-ndjson, a last line {"type":"dropped","error":"slow-reader","message":"..."}
 * saying why. -EINVAL when @c is not an open stream of the caller.
 */
typedef void (*http_close_cb_t)(struct http_conn *c, void *userdata);
int http_conn_stream_begin(struct http_conn *c, int status, const char *content_type,
			   http_close_cb_t on_close, void *userdata);
int http_conn_stream_send(struct http_conn *c, const char *data, size_t len);
/* Sends the last chunk and closes once flushed. The caller drops its pointer. */
void http_conn_stream_end(struct http_conn *c);

/* "Not Found" for 404; a class name ("Client Error") for codes it does not know. Never NULL. */
const char *http_status_reason(int status);
