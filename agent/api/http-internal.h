/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Between the files of the local HTTP/1.1 server: http.c (connections, output, the state
 * machine, the server, answers), http-request.c (parsing a request), http-limits.c (the
 * connection table's shares) and http-stream.c (streams and their memory). Not for other files:
 * they use http.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

/* http_parser.h also calls its method enum "http_method"; keep its tag out of our namespace. */
#define http_method http_parser_method
#include <http_parser.h>
#undef http_method

#include "api/http.h"
#include "shared/accept.h"
#include "shared/macro.h"

#define HTTP_READ_SIZE (8U * 1024U)

struct http_buf {
	char *data; /* NUL-terminated when not NULL */
	size_t len;
	size_t alloc;
};

enum conn_state {
	CONN_IDLE,	/* between requests: the idle timeout runs */
	CONN_READING,	/* a request has begun: the header timeout runs */
	CONN_HANDLING,	/* a complete request is with the handler, not answered yet */
	CONN_STREAMING, /* a chunked response owned by the caller */
	CONN_CLOSING,	/* answered for the last time: flush, then close */
};

/* What one peer user holds; exists while it has a served connection. */
struct http_peer {
	struct http_peer *next;
	uid_t uid;
	bool pinned;	     /* a connection of it is being admitted */
	size_t n_conns;	     /* served connections, streams included */
	size_t n_streams;
	size_t stream_bytes; /* memory of its streams' output queues */
};

struct http_server {
	sd_event *event;
	int fd;
	struct acceptor *acceptor;
	struct http_limits limits;
	http_handler_t handler;
	void *userdata;
	http_privileged_t privileged;
	void *privileged_userdata;

	struct http_conn *conns;
	size_t n_conns;	   /* served connections */
	size_t n_overflow; /* connections accepted only to be answered 503 */
	size_t n_unprivileged; /* served connections of unprivileged peers */
	size_t n_streams, n_unprivileged_streams;
	size_t stream_bytes; /* memory of all streams' output queues */
	struct http_peer *peers;
	uint64_t n_accepted; /* orders connections accepted within one loop iteration */

	char *busy_response; /* a complete 503 for connections we cannot even hold */
	size_t busy_response_len;
};

struct http_conn {
	unsigned n_ref;
	struct http_server *server; /* NULL once closed */
	struct http_conn *prev, *next;
	int fd;
	sd_event_source *io_source;
	sd_event_source *timer_source;
	sd_event_source *defer_source; /* runs the state machine after an answer from outside it */
	struct ucred cred;
	gid_t *groups; /* SO_PEERGROUPS: the peer's supplementary groups at connect time */
	size_t n_groups;
	struct http_peer *peer; /* NULL for a connection over the limits */
	bool privileged;	/* root, the daemon's user or the admin group */
	uint64_t serial;	/* accept order */
	char refusal[128];	/* why a connection over the limits is answered 503 */

	enum conn_state state;
	bool closed;
	bool overflow;	   /* over max_connections: every request is answered 503 */
	bool running;	   /* inside conn_run(): answers need no kick */
	bool peer_eof;	   /* the client shut down its side */
	bool keep_alive;   /* of the current request */
	bool chunked;	   /* the client speaks HTTP/1.1: streams may use chunked encoding */
	bool head;	   /* the current request is HEAD: headers only */
	bool discard_body; /* a stream answering HEAD */
	bool owned;	   /* a stream owner holds a reference */
	bool stream_counted; /* counts as a stream of its peer and of the server */
	bool ndjson;	     /* a stream of application/x-ndjson: a dropped one gets a last line */
	bool notify_owner;   /* dropped while another stream was sent to: tell the owner soon */
	size_t stream_bytes; /* what it adds to the peer's and the server's stream_bytes */
	size_t rec_left;     /* streams: bytes from out_off to the end of the chunk begun */
	uint64_t since;	   /* IDLE, CLOSING: last activity; READING: first byte of the request */
	uint64_t deadline; /* when the timer is armed for, HTTP_USEC_INFINITY when off */

	http_parser parser;
	char in[HTTP_READ_SIZE];
	size_t in_off, in_len;
	size_t req_bytes; /* bytes of the current request seen by the parser */

	/* The request being assembled; the buffers live until the request is answered. */
	bool in_value; /* the last header callback was a value */
	bool headers_done;
	bool have_content_type, have_accept, have_query;
	bool expect_continue;
	int fail_status; /* set by a parser callback that rejects the request */
	char fail_message[160];
	struct http_buf url, field, value, content_type, accept, path, query, body;
	struct http_request req;

	struct http_buf out;
	size_t out_off;

	http_close_cb_t on_close;
	void *on_close_userdata;
};

/* http.c: buffers */
int http_buf_reserve(struct http_buf *b, size_t extra);
int http_buf_put(struct http_buf *b, const char *p, size_t n);
_printf_(2, 3) int http_buf_printf(struct http_buf *b, const char *fmt, ...);
void http_buf_truncate(struct http_buf *b, size_t len);
void http_buf_clear(struct http_buf *b);
void http_buf_done(struct http_buf *b);

/* http.c: helpers */
char *http_error_body_new(int status, const char *message);
uint64_t http_server_now(const struct http_server *s);
int http_unhex(char ch);
bool http_valid_header_text(const char *s);

/* http.c: connections */
struct http_conn *http_conn_ref(struct http_conn *c);
void http_conn_unref(struct http_conn *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct http_conn *, http_conn_unref);
void http_conn_close(struct http_conn *c);
size_t http_conn_out_pending(const struct http_conn *c);
void http_conn_out_compact(struct http_conn *c);
int http_conn_queue_response(struct http_conn *c, int status, const char *content_type,
			     const char *extra_headers, const char *body, size_t len, bool stream);
void http_conn_kick(struct http_conn *c);
int http_conn_answer_check(struct http_conn *c);
int http_conn_answer_fail(struct http_conn *c, int r);

/* http-request.c */
void http_conn_request_reset(struct http_conn *c);
void http_conn_fail(struct http_conn *c, int status, const char *message);
void http_conn_parse(struct http_conn *c);

/* http-limits.c */
struct http_peer *http_server_peer_get(struct http_server *s, uid_t uid);
void http_server_peer_put(struct http_server *s, struct http_peer *peer);
bool http_server_admit(struct http_server *s, struct http_conn *c, struct http_peer *peer);
bool http_server_is_privileged(const struct http_server *s, const struct http_conn *c);

/* http-stream.c */
void http_stream_account(struct http_conn *c);
void http_stream_uncount(struct http_conn *c);
void http_conn_notify_owner(struct http_conn *c);
void http_stream_advance(struct http_conn *c, size_t n);
