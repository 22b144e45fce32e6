// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The local HTTP/1.1 server. Each connection is a small state machine driven from sd-event:
 *
 *   IDLE --first byte--> READING --request complete--> HANDLING --reply--> IDLE (keep-alive)
 *                                                          |        \---> CLOSING (flush, close)
 *                                                          \--stream_begin--> STREAMING
 *
 * The parser is paused at the end of every request, so pipelined requests are answered strictly
 * in order and a client can never make us buffer more than one read of input plus one response.
 * All output goes through a per-connection queue that is flushed when the socket is writable.
 *
 * Connections are reference counted: the server's list holds one reference while the socket is
 * open, a handler that has not answered yet holds one, the owner of a stream holds one, and
 * every dispatch from the event loop holds one for its duration. Closing (conn_close) is
 * therefore always safe, even from inside the connection's own callbacks; the memory goes away
 * when the last reference does.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* http_parser.h also calls its method enum "http_method"; keep its tag out of our namespace. */
#define http_method http_parser_method
#include <http_parser.h>
#undef http_method

#include "api/http.h"
#include "shared/accept.h"
#include "shared/log.h"

#define HTTP_READ_SIZE (8U * 1024U)
/* Connections above max_connections held open only to be answered 503; beyond: dropped. */
#define HTTP_OVERFLOW_MAX 16U
#define HTTP_ACCEPT_BURST 32U
#define HTTP_TIMER_ACCURACY_USEC (1U * 1000U)
/* Buffers that grew beyond this for one large request or response are released afterwards. */
#define HTTP_BUF_KEEP (16U * 1024U)
#define HTTP_USEC_INFINITY UINT64_MAX

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

static void conn_close(struct http_conn *c);
static void conn_run(struct http_conn *c);

/* --- Small buffers ------------------------------------------------------------------------- */

static int buf_reserve(struct http_buf *b, size_t extra)
{
	size_t need, n;
	char *p;

	if (extra > SIZE_MAX - b->len - 1)
		return -ENOMEM;
	need = b->len + extra + 1;
	if (need <= b->alloc)
		return 0;
	n = MAX(need, MAX(b->alloc * 2, (size_t)64));
	p = realloc(b->data, n);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->alloc = n;
	return 0;
}

static int buf_put(struct http_buf *b, const char *p, size_t n)
{
	int r = buf_reserve(b, n);

	if (r < 0)
		return r;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static _printf_(2, 3) int buf_printf(struct http_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	r = buf_reserve(b, (size_t)n);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

/* Drops a failed append: back to @len bytes. */
static void buf_truncate(struct http_buf *b, size_t len)
{
	if (b->data) {
		b->len = len;
		b->data[len] = '\0';
	}
}

/* Empties @b, releasing the memory if one large message made it grow. */
static void buf_clear(struct http_buf *b)
{
	if (b->alloc > HTTP_BUF_KEEP) {
		free(b->data);
		*b = (struct http_buf){};
	} else {
		buf_truncate(b, 0);
	}
}

static void buf_done(struct http_buf *b)
{
	free(b->data);
	*b = (struct http_buf){};
}

/* --- Helpers ------------------------------------------------------------------------------- */

static const struct {
	int status;
	const char *reason;
	const char *error; /* the short code when the server itself answers this status */
} status_table[] = {
	{ 100, "Continue", NULL },
	{ 101, "Switching Protocols", NULL },
	{ 200, "OK", NULL },
	{ 201, "Created", NULL },
	{ 202, "Accepted", NULL },
	{ 204, "No Content", NULL },
	{ 206, "Partial Content", NULL },
	{ 301, "Moved Permanently", NULL },
	{ 302, "Found", NULL },
	{ 303, "See Other", NULL },
	{ 304, "Not Modified", NULL },
	{ 307, "Temporary Redirect", NULL },
	{ 308, "Permanent Redirect", NULL },
	{ 400, "Bad Request", "bad-request" },
	{ 401, "Unauthorized", NULL },
	{ 403, "Forbidden", NULL },
	{ 404, "Not Found", NULL },
	{ 405, "Method Not Allowed", NULL },
	{ 406, "Not Acceptable", NULL },
	{ 408, "Request Timeout", "request-timeout" },
	{ 409, "Conflict", NULL },
	{ 410, "Gone", NULL },
	{ 411, "Length Required", NULL },
	{ 412, "Precondition Failed", NULL },
	{ 413, "Payload Too Large", "payload-too-large" },
	{ 414, "URI Too Long", "uri-too-long" },
	{ 415, "Unsupported Media Type", NULL },
	{ 416, "Range Not Satisfiable", NULL },
	{ 422, "Unprocessable Entity", NULL },
	{ 423, "Locked", NULL },
	{ 428, "Precondition Required", NULL },
	{ 429, "Too Many Requests", NULL },
	{ 431, "Request Header Fields Too Large", "headers-too-large" },
	{ 500, "Internal Server Error", "internal" },
	{ 501, "Not Implemented", NULL },
	{ 502, "Bad Gateway", NULL },
	{ 503, "Service Unavailable", "unavailable" },
	{ 504, "Gateway Timeout", NULL },
	{ 505, "HTTP Version Not Supported", "version-not-supported" },
	{ 507, "Insufficient Storage", NULL },
};

const char *http_status_reason(int status)
{
	static const char *const classes[] = { "Informational", "Success", "Redirection",
					       "Client Error", "Server Error" };

	for (size_t i = 0; i < ELEMENTSOF(status_table); i++)
		if (status_table[i].status == status)
			return status_table[i].reason;
	if (status >= 100 && status < 600)
		return classes[status / 100 - 1];
	return "Unknown";
}

/* The short machine-readable code of an error the server answers itself. */
static const char *status_error_code(int status)
{
	for (size_t i = 0; i < ELEMENTSOF(status_table); i++)
		if (status_table[i].status == status && status_table[i].error)
			return status_table[i].error;
	return "internal";
}

/* {"error": "<code>", "message": "<message>"}, malloc'd; NULL on OOM. */
static char *error_body_new(int status, const char *message)
{
	json_t *j;
	char *s;

	j = json_pack("{s:s, s:s}", "error", status_error_code(status), "message", message);
	if (!j)
		return NULL;
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

static uint64_t server_now(const struct http_server *s)
{
	struct timespec ts;
	uint64_t t;

	if (sd_event_now(s->event, CLOCK_MONOTONIC, &t) >= 0)
		return t;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

/* @since + @timeout; a timeout of 0 means none. */
static uint64_t deadline_after(uint64_t since, uint64_t timeout)
{
	if (timeout == 0 || timeout >= HTTP_USEC_INFINITY - since)
		return HTTP_USEC_INFINITY;
	return since + timeout;
}

static enum http_method method_from_parser(unsigned m)
{
	switch (m) {
	case HTTP_GET:
		return HTTP_METHOD_GET;
	case HTTP_HEAD:
		return HTTP_METHOD_HEAD;
	case HTTP_POST:
		return HTTP_METHOD_POST;
	case HTTP_PUT:
		return HTTP_METHOD_PUT;
	case HTTP_DELETE:
		return HTTP_METHOD_DELETE;
	case HTTP_PATCH:
		return HTTP_METHOD_PATCH;
	default:
		return HTTP_METHOD_OTHER;
	}
}

static int unhex(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -EINVAL;
}

/* Appends @s with %XX escapes decoded to @b. -EINVAL for a broken escape. */
static int percent_decode(const char *s, size_t len, struct http_buf *b)
{
	int r = buf_reserve(b, len);

	if (r < 0)
		return r;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (ch == '%') {
			int hi, lo;

			if (len - i < 3)
				return -EINVAL;
			hi = unhex(s[i + 1]);
			lo = unhex(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			ch = (char)(hi << 4 | lo);
			i += 2;
		}
		b->data[b->len++] = ch;
	}
	b->data[b->len] = '\0';
	return 0;
}

static bool valid_header_text(const char *s)
{
	return !s || !strpbrk(s, "\r\n");
}

/* --- Reference counting and teardown ------------------------------------------------------- */

static struct http_conn *conn_ref(struct http_conn *c)
{
	c->n_ref++;
	return c;
}

static void conn_free(struct http_conn *c)
{
	buf_done(&c->url);
	buf_done(&c->field);
	buf_done(&c->value);
	buf_done(&c->content_type);
	buf_done(&c->accept);
	buf_done(&c->path);
	buf_done(&c->query);
	buf_done(&c->body);
	buf_done(&c->out);
	free(c->groups);
	free(c);
}

/* Drops @n references at once. */
static void conn_unref_n(struct http_conn *c, unsigned n)
{
	c->n_ref -= n;
	/* The list reference is dropped only by conn_close(), so this is a closed connection. */
	if (c->n_ref == 0)
		conn_free(c);
}

static void conn_unref(struct http_conn *c)
{
	if (c)
		conn_unref_n(c, 1);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct http_conn *, conn_unref);

/* --- Peers and their shares ---------------------------------------------------------------- */

static struct http_peer *server_peer_get(struct http_server *s, uid_t uid)
{
	for (struct http_peer *p = s->peers; p; p = p->next)
		if (p->uid == uid)
			return p;
	return NULL;
}

static void server_peer_put(struct http_server *s, struct http_peer *peer)
{
	if (peer->n_conns > 0 || peer->pinned)
		return;
	for (struct http_peer **p = &s->peers; *p; p = &(*p)->next)
		if (*p == peer) {
			*p = peer->next;
			free(peer);
			return;
		}
}

/* Makes the stream memory counted for @c what its output queue holds now. */
static void stream_account(struct http_conn *c)
{
	size_t now = c->stream_counted ? c->out.alloc : 0;

	if (now == c->stream_bytes)
		return;
	c->server->stream_bytes = c->server->stream_bytes - c->stream_bytes + now;
	c->peer->stream_bytes = c->peer->stream_bytes - c->stream_bytes + now;
	c->stream_bytes = now;
}

/* @c is no stream any more (ended, dropped or closed): its share goes back. */
static void stream_uncount(struct http_conn *c)
{
	struct http_server *s = c->server;

	if (!c->stream_counted)
		return;
	c->stream_counted = false;
	stream_account(c);
	s->n_streams--;
	if (!c->privileged)
		s->n_unprivileged_streams--;
	c->peer->n_streams--;
}

/* Tells a stream's owner that the stream is over; its reference goes with it. */
static void conn_notify_owner(struct http_conn *c)
{
	http_close_cb_t cb = c->on_close;

	c->notify_owner = false;
	if (!c->owned || !cb)
		return;
	c->on_close = NULL;
	c->owned = false;
	cb(c, c->on_close_userdata);
	conn_unref(c); /* the owner's */
}

/*
 * Closes the socket and drops the list's reference. A stream owner is told through on_close
 * (its reference goes with it); a handler that has not answered yet keeps the memory alive and
 * gets -ENOTCONN when it does. Idempotent.
 */
static void conn_close(struct http_conn *c)
{
	struct http_server *s = c->server;

	if (c->closed)
		return;
	c->closed = true;
	conn_ref(c); /* across the owner's callback */

	c->io_source = sd_event_source_disable_unref(c->io_source);
	c->timer_source = sd_event_source_disable_unref(c->timer_source);
	c->defer_source = sd_event_source_disable_unref(c->defer_source);
	c->fd = safe_close(c->fd);

	if (s) {
		if (c->prev)
			c->prev->next = c->next;
		else
			s->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		c->prev = c->next = NULL;
		stream_uncount(c);
		if (c->overflow) {
			s->n_overflow--;
		} else {
			s->n_conns--;
			if (!c->privileged)
				s->n_unprivileged--;
		}
		if (c->peer) {
			c->peer->n_conns--;
			server_peer_put(s, c->peer);
			c->peer = NULL;
		}
		c->server = NULL;
	}
	log_debug("HTTP connection of PID %d closed.", c->cred.pid);

	conn_notify_owner(c);
	conn_unref_n(c, 2); /* ours and the list's */
}

/* --- Output -------------------------------------------------------------------------------- */

static size_t conn_out_pending(const struct http_conn *c)
{
	return c->out.len - c->out_off;
}

static void conn_out_compact(struct http_conn *c)
{
	size_t pending = conn_out_pending(c);

	if (c->out_off == 0)
		return;
	if (pending == 0) {
		buf_clear(&c->out);
		c->out_off = 0;
	} else if (c->out_off >= pending) {
		/* Amortized: only move when the consumed part is at least as large as the rest. */
		memmove(c->out.data, c->out.data + c->out_off, pending);
		c->out_off = 0;
		buf_truncate(&c->out, pending);
		/* A reader that caught up gives back what its backlog took. */
		if (c->out.alloc > HTTP_BUF_KEEP && pending < c->out.alloc / 4) {
			size_t n = MAX(pending * 2, (size_t)HTTP_BUF_KEEP);
			char *p = realloc(c->out.data, n);

			if (p) {
				c->out.data = p;
				c->out.alloc = n;
			}
		}
	}
	stream_account(c);
}

/* The length of the chunk that starts at @off of the output queue (written by stream_send). */
static size_t stream_chunk_len(const struct http_conn *c, size_t off)
{
	const char *p = c->out.data + off, *end = c->out.data + c->out.len;
	size_t len = 0, digits = 0;

	for (; p < end && unhex(*p) >= 0 && digits < 16; p++, digits++)
		len = len << 4 | (size_t)unhex(*p);
	if (digits == 0 || end - p < 2 || len > (size_t)(end - p) - 2)
		return (size_t)(end - (c->out.data + off)); /* not ours: all of it */
	return digits + 2 + len + 2;
}

/* @n bytes from out_off went out: keep rec_left pointing at the end of the chunk begun. */
static void stream_advance(struct http_conn *c, size_t n)
{
	size_t off = c->out_off;

	if (!c->stream_counted || !c->chunked)
		return;
	while (n > 0) {
		size_t step;

		if (c->rec_left == 0)
			c->rec_left = stream_chunk_len(c, off);
		step = MIN(n, c->rec_left);
		c->rec_left -= step;
		off += step;
		n -= step;
	}
}

/* Writes what the socket takes. Returns 0 (possibly with output left) or -errno. */
static int conn_flush(struct http_conn *c)
{
	bool progress = false;

	while (conn_out_pending(c) > 0) {
		ssize_t n = send(c->fd, c->out.data + c->out_off, conn_out_pending(c),
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return log_debug_errno(errno, "Failed to write HTTP response: %m");
		}
		stream_advance(c, (size_t)n);
		c->out_off += (size_t)n;
		progress = true;
	}
	if (progress && (c->state == CONN_IDLE || c->state == CONN_CLOSING))
		c->since = server_now(c->server);
	conn_out_compact(c);
	return 0;
}

/*
 * Queues a status line and headers, plus @body unless the request was HEAD or the status has
 * no body. @stream: chunked (or, for HTTP/1.0, close-delimited) instead of Content-Length.
 * Nothing is queued on failure.
 */
static int conn_queue_response(struct http_conn *c, int status, const char *content_type,
			       const char *extra_headers, const char *body, size_t len, bool stream)
{
	bool no_body = status < 200 || status == 204 || status == 304;
	size_t old;
	int r;

	conn_out_compact(c);
	old = c->out.len;

	r = buf_printf(&c->out, "HTTP/1.1 %d %s\r\n", status, http_status_reason(status));
	if (r >= 0 && content_type)
		r = buf_printf(&c->out, "Content-Type: %s\r\n", content_type);
	if (r >= 0 && stream && c->chunked && !c->discard_body)
		r = buf_printf(&c->out, "Transfer-Encoding: chunked\r\n");
	if (r >= 0 && !stream && !no_body)
		r = buf_printf(&c->out, "Content-Length: %zu\r\n", len);
	if (r >= 0)
		r = buf_printf(&c->out, "Connection: %s\r\n",
			       c->keep_alive ? "keep-alive" : "close");
	if (r >= 0 && extra_headers)
		r = buf_put(&c->out, extra_headers, strlen(extra_headers));
	if (r >= 0)
		r = buf_put(&c->out, "\r\n", 2);
	if (r >= 0 && !stream && !no_body && !c->head)
		r = buf_put(&c->out, body, len);
	if (r < 0) {
		buf_truncate(&c->out, old);
		return r;
	}
	return 0;
}

/* Lets the loop run the state machine for an answer that arrived from outside of it. */
static void conn_kick(struct http_conn *c)
{
	if (c->running || c->closed)
		return;
	(void)sd_event_source_set_enabled(c->defer_source, SD_EVENT_ONESHOT);
}

/* --- Requests ------------------------------------------------------------------------------ */

static void conn_request_reset(struct http_conn *c)
{
	buf_clear(&c->url);
	buf_clear(&c->field);
	buf_clear(&c->value);
	buf_clear(&c->content_type);
	buf_clear(&c->accept);
	buf_clear(&c->path);
	buf_clear(&c->query);
	buf_clear(&c->body);
	c->req = (struct http_request){};
	c->req_bytes = 0;
	c->in_value = c->headers_done = false;
	c->have_content_type = c->have_accept = c->have_query = false;
	c->expect_continue = false;
	c->head = false;
	c->fail_status = 0;
	c->fail_message[0] = '\0';
	if (HTTP_PARSER_ERRNO(&c->parser) == HPE_PAUSED)
		http_parser_pause(&c->parser, 0);
}

/*
 * Answers an error the server detected itself and closes afterwards: nothing that follows a
 * broken request on the same connection can be trusted to be framed correctly.
 */
static void conn_fail(struct http_conn *c, int status, const char *message)
{
	_cleanup_free_ char *body = error_body_new(status, message);
	int r;

	log_debug("Answering HTTP request of PID %d with %d: %s", c->cred.pid, status, message);
	c->keep_alive = false;
	c->in_off = c->in_len;
	c->state = CONN_CLOSING;
	c->since = server_now(c->server);
	r = conn_queue_response(c, status, body ? "application/json" : NULL, NULL, body,
				body ? strlen(body) : 0, false);
	if (r < 0)
		log_debug_errno(r, "Failed to queue HTTP error response, closing: %m");
}

static _printf_(3, 4) int parser_fail(struct http_conn *c, int status, const char *fmt, ...)
{
	va_list ap;

	if (c->fail_status == 0) {
		c->fail_status = status;
		va_start(ap, fmt);
		vsnprintf(c->fail_message, sizeof(c->fail_message), fmt, ap);
		va_end(ap);
	}
	return -1; /* stops http_parser_execute() with HPE_CB_* */
}

static int parser_put(struct http_conn *c, struct http_buf *b, const char *at, size_t len)
{
	if (buf_put(b, at, len) < 0)
		return parser_fail(c, 500, "Out of memory");
	return 0;
}

static int on_message_begin(http_parser *p)
{
	struct http_conn *c = p->data;

	/* The header timeout runs from the first byte of the request (slowloris). */
	c->state = CONN_READING;
	c->since = server_now(c->server);
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;

	return parser_put(c, &c->url, at, len);
}

/* A header line is complete: keep what struct http_request exposes. */
static int conn_header_finish(struct http_conn *c)
{
	struct http_buf *v = &c->value;
	int r = 0;

	/* The parser skips whitespace before a value, not after it. */
	while (v->len > 0 && (v->data[v->len - 1] == ' ' || v->data[v->len - 1] == '\t'))
		buf_truncate(v, v->len - 1);

	if (c->headers_done || c->field.len == 0) {
		/* Trailers of a chunked body are not part of struct http_request. */
	} else if (strcasecmp(c->field.data, "Content-Type") == 0) {
		if (c->have_content_type)
			return parser_fail(c, 400, "Duplicate Content-Type header");
		c->have_content_type = true;
		r = parser_put(c, &c->content_type, v->data, v->len);
	} else if (strcasecmp(c->field.data, "Expect") == 0) {
		c->expect_continue = strcasecmp(v->data, "100-continue") == 0;
	} else if (strcasecmp(c->field.data, "Accept") == 0) {
		/* Repeated Accept headers mean the same as one comma-separated list. */
		if (c->have_accept)
			r = parser_put(c, &c->accept, ", ", 2);
		c->have_accept = true;
		if (r >= 0)
			r = parser_put(c, &c->accept, v->data, v->len);
	}
	buf_truncate(&c->field, 0);
	buf_truncate(&c->value, 0);
	c->in_value = false;
	return r;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;

	/* Names and values may arrive in pieces; a name after a value starts the next header. */
	if (c->in_value && conn_header_finish(c) < 0)
		return -1;
	return parser_put(c, &c->field, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;

	c->in_value = true;
	return parser_put(c, &c->value, at, len);
}

/* Splits the request target into the decoded path and the raw query. */
static int conn_parse_target(struct http_conn *c)
{
	struct http_parser_url u;
	const char *path;
	size_t path_len;
	int r;

	if (c->url.len == 0)
		return parser_fail(c, 400, "Missing request target");
	/* struct http_parser_url stores 16-bit offsets. */
	if (c->url.len > UINT16_MAX)
		return parser_fail(c, 414, "Request target longer than %u bytes", UINT16_MAX);

	http_parser_url_init(&u);
	if (http_parser_parse_url(c->url.data, c->url.len, 0, &u) != 0 ||
	    !(u.field_set & (1U << UF_PATH)))
		return parser_fail(c, 400, "Malformed request target");

	path = c->url.data + u.field_data[UF_PATH].off;
	path_len = u.field_data[UF_PATH].len;
	r = percent_decode(path, path_len, &c->path);
	if (r == -ENOMEM)
		return parser_fail(c, 500, "Out of memory");
	if (r < 0)
		return parser_fail(c, 400, "Malformed percent-encoding in the request path");
	if (c->path.len == 0 || c->path.data[0] != '/')
		return parser_fail(c, 400, "The request path must start with '/'");
	if (memchr(c->path.data, '\0', c->path.len))
		return parser_fail(c, 400, "The request path contains a NUL byte");

	if (u.field_set & (1U << UF_QUERY)) {
		c->have_query = true;
		return parser_put(c, &c->query, c->url.data + u.field_data[UF_QUERY].off,
				  u.field_data[UF_QUERY].len);
	}
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct http_conn *c = p->data;
	size_t max = c->server->limits.max_request_bytes;

	if (c->in_value && conn_header_finish(c) < 0)
		return -1;
	c->headers_done = true;
	/* HTTP/2 and later are other protocols on the wire; 0.9 has no headers to answer with */
	if (p->http_major != 1)
		return parser_fail(c, 505, "HTTP/%u.%u is not supported: use HTTP/1.1 or HTTP/1.0",
				   p->http_major, p->http_minor);
	c->head = p->method == HTTP_HEAD;
	/* An upgrade or CONNECT leaves the connection in another protocol: answer, then close. */
	c->keep_alive = http_should_keep_alive(p) && !p->upgrade;
	c->chunked = p->http_major > 1 || (p->http_major == 1 && p->http_minor >= 1);

	/* Refuse a declared body that cannot fit before reading any of it. */
	if ((p->flags & F_CONTENTLENGTH) && !(p->flags & F_CHUNKED) && p->content_length > max)
		return parser_fail(c, 413,
				   "Request body of %" PRIu64 " bytes exceeds the limit of %zu",
				   (uint64_t)p->content_length, max);

	if (conn_parse_target(c) < 0)
		return -1;

	/* A client that waits for permission to send its body gets it now (curl does this). */
	if (c->expect_continue && c->chunked &&
	    ((p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0)) &&
	    buf_put(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
		return parser_fail(c, 500, "Out of memory");
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;
	size_t max = c->server->limits.max_request_bytes;

	if (len > max - MIN(max, c->body.len))
		return parser_fail(c, 413, "Request body exceeds the limit of %zu bytes", max);
	return parser_put(c, &c->body, at, len);
}

static int on_message_complete(http_parser *p)
{
	struct http_conn *c = p->data;

	c->req = (struct http_request){
		.method = method_from_parser(p->method),
		.method_name = http_method_str(p->method),
		.path = c->path.data,
		.query = c->have_query ? c->query.data : NULL,
		.body = c->body.len > 0 ? c->body.data : NULL,
		.body_len = c->body.len,
		.content_type = c->have_content_type ? c->content_type.data : NULL,
		.accept = c->have_accept ? c->accept.data : NULL,
		.cred = c->cred,
		.groups = c->groups,
		.n_groups = c->n_groups,
	};
	c->state = CONN_HANDLING;
	/* One request at a time: the rest of the input waits until this one is answered. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* Hands a complete request to the handler. */
static void conn_dispatch(struct http_conn *c)
{
	struct http_server *s = c->server;
	int r;

	if (c->overflow) {
		conn_fail(c, 503, c->refusal);
		return;
	}

	conn_ref(c); /* the answer's, dropped by http_conn_reply() or handed to a stream */
	r = s->handler(c, &c->req, s->userdata);
	if (r >= 0)
		return;
	if (c->state == CONN_HANDLING) {
		_cleanup_free_ char *msg = NULL, *body = NULL;

		if (asprintf(&msg, "Failed to handle the request: %s", strerror(-r)) >= 0)
			body = error_body_new(500, msg);
		(void)http_conn_reply(c, 500, body ? "application/json" : NULL, NULL, body,
				      body ? strlen(body) : 0);
	} else {
		log_debug_errno(r, "HTTP handler failed after answering, ignoring: %m");
	}
}

/* Feeds buffered input to the parser: at most what the request size limit still allows. */
static void conn_parse(struct http_conn *c)
{
	size_t max = c->server->limits.max_request_bytes;
	size_t n, nparsed;
	enum http_errno err;

	n = MIN(c->in_len - c->in_off, max - c->req_bytes + 1);
	nparsed = http_parser_execute(&c->parser, &parser_settings, c->in + c->in_off, n);
	c->in_off += nparsed;
	c->req_bytes += nparsed;
	err = HTTP_PARSER_ERRNO(&c->parser);

	if (c->fail_status > 0)
		return conn_fail(c, c->fail_status, c->fail_message);
	if (err == HPE_HEADER_OVERFLOW)
		return conn_fail(c, 431, "Request headers are too large");
	if (err != HPE_OK && err != HPE_PAUSED)
		return conn_fail(c, 400, http_errno_description(err));
	if (c->req_bytes > max) {
		char msg[128];

		snprintf(msg, sizeof(msg), "Request %s exceed the limit of %zu bytes",
			 c->headers_done ? "body and headers" : "headers", max);
		return conn_fail(c, c->headers_done ? 413 : 431, msg);
	}
	if (err == HPE_PAUSED)
		return conn_dispatch(c);
	if (nparsed < n)
		return conn_fail(c, 400, "Unexpected data after the request");
}

/* --- The state machine --------------------------------------------------------------------- */

/* Points the socket's events and the timer at what the current state waits for. */
static int conn_update(struct http_conn *c)
{
	const struct http_limits *l = &c->server->limits;
	uint64_t deadline = HTTP_USEC_INFINITY;
	uint32_t events = 0;
	int r;

	if (conn_out_pending(c) > 0)
		events |= EPOLLOUT;
	switch (c->state) {
	case CONN_IDLE:
	case CONN_READING:
		/* Read only when the last read is used up: that bounds buffering per client. */
		if (!c->peer_eof && c->in_off == c->in_len)
			events |= EPOLLIN;
		deadline = deadline_after(c->since, c->state == CONN_IDLE ?
							    l->idle_timeout_usec :
							    l->header_timeout_usec);
		break;
	case CONN_STREAMING:
		events |= EPOLLIN; /* discarded, but a hangup must be seen */
		break;
	case CONN_CLOSING:
		/* A client that stops reading our last answer does not keep the socket forever. */
		deadline = deadline_after(c->since, l->idle_timeout_usec);
		break;
	case CONN_HANDLING:
		break;
	}

	r = sd_event_source_set_io_events(c->io_source, events);
	if (r < 0)
		return r;
	if (deadline == c->deadline)
		return 0;
	c->deadline = deadline;
	if (deadline == HTTP_USEC_INFINITY)
		return sd_event_source_set_enabled(c->timer_source, SD_EVENT_OFF);
	r = sd_event_source_set_time(c->timer_source, deadline);
	if (r < 0)
		return r;
	return sd_event_source_set_enabled(c->timer_source, SD_EVENT_ONESHOT);
}

/*
 * Does everything the connection can do without waiting: write queued output, parse and
 * dispatch buffered requests (the handler may answer right away), close when done.
 */
static void conn_run(struct http_conn *c)
{
	_unused_ _cleanup_(conn_unrefp) struct http_conn *ref = conn_ref(c);

	if (c->closed || c->running)
		return;
	if (c->notify_owner)
		conn_notify_owner(c);
	c->running = true;
	for (;;) {
		if (conn_flush(c) < 0) {
			conn_close(c);
			break;
		}
		if (conn_out_pending(c) > 0)
			break; /* the next request waits until this answer is on its way */
		if (c->state == CONN_CLOSING) {
			conn_close(c);
			break;
		}
		if (c->state != CONN_IDLE && c->state != CONN_READING)
			break;
		if (c->in_off < c->in_len) {
			conn_parse(c);
			if (c->closed)
				break;
			continue;
		}
		if (c->peer_eof)
			conn_close(c); /* everything asked was answered, or the request was cut */
		break;
	}
	c->running = false;
	if (!c->closed && conn_update(c) < 0)
		conn_close(c);
}

/* Reads once, only when the previous read has been parsed. */
static int conn_read(struct http_conn *c)
{
	ssize_t n;

	if ((c->state != CONN_IDLE && c->state != CONN_READING) || c->in_off < c->in_len ||
	    c->peer_eof)
		return 0;
	n = recv(c->fd, c->in, sizeof(c->in), MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		return log_debug_errno(errno, "Failed to read HTTP request: %m");
	}
	if (n == 0)
		c->peer_eof = true;
	c->in_off = 0;
	c->in_len = (size_t)n;
	return 0;
}

/* A streaming connection ignores input; returns -ECONNRESET once the peer has gone. */
static int conn_drain(struct http_conn *c)
{
	for (unsigned i = 0; i < 4; i++) {
		ssize_t n = recv(c->fd, c->in, sizeof(c->in), MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return 0;
			return -errno;
		}
		if (n == 0)
			return -ECONNRESET;
	}
	return 0;
}

static int conn_io_handler(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	_cleanup_(conn_unrefp) struct http_conn *c = conn_ref(userdata);
	int r;

	if (revents & (EPOLLHUP | EPOLLERR)) {
		conn_close(c);
		return 0;
	}
	if (revents & EPOLLIN) {
		r = c->state == CONN_STREAMING ? conn_drain(c) : conn_read(c);
		if (r < 0) {
			conn_close(c);
			return 0;
		}
	}
	conn_run(c);
	return 0;
}

static int conn_timer_handler(sd_event_source *source, uint64_t usec, void *userdata)
{
	_cleanup_(conn_unrefp) struct http_conn *c = conn_ref(userdata);

	c->deadline = HTTP_USEC_INFINITY; /* a oneshot timer is off once it fired */
	switch (c->state) {
	case CONN_READING:
		conn_fail(c, 408, "The request was not completed in time");
		conn_run(c);
		break;
	case CONN_IDLE:
	case CONN_CLOSING:
		conn_close(c);
		break;
	default:
		break;
	}
	return 0;
}

static int conn_defer_handler(sd_event_source *source, void *userdata)
{
	conn_run(userdata);
	return 0;
}

/* The peer's supplementary groups; none when the kernel cannot tell (then only uid and primary
 * gid count in permission checks). */
static void conn_read_groups(struct http_conn *c)
{
	socklen_t len = 16 * sizeof(gid_t);

	for (int tries = 0; tries < 2; tries++) {
		gid_t *g = malloc(len ?: 1);

		if (!g)
			return;
		if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
			c->groups = g;
			c->n_groups = len / sizeof(gid_t);
			return;
		}
		free(g);
		if (errno != ERANGE) /* the kernel reports the size it needs */
			return;
	}
}

/* Whether @c could be closed for a newcomer without anyone noticing more than a keep-alive
 * connection closed by the server: it waits for a request and owes no output. */
static bool conn_is_idle(const struct http_conn *c)
{
	return !c->closed && !c->overflow && c->state == CONN_IDLE && conn_out_pending(c) == 0 &&
	       c->in_off == c->in_len;
}

static bool conn_older(const struct http_conn *a, const struct http_conn *b)
{
	return a->since < b->since || (a->since == b->since && a->serial < b->serial);
}

/*
 * The connection to close for a newcomer of @peer when the table is full: the oldest idle
 * connection of the user holding the most connections. @peer NULL (a privileged newcomer):
 * anyone's. Otherwise only unprivileged connections count, and only of a user that holds at
 * least two more than the newcomer's user, or of its own: a share is never taken from someone
 * who would end up with less. NULL when there is none.
 */
static struct http_conn *server_pick_victim(struct http_server *s, const struct http_peer *peer)
{
	struct http_conn *best = NULL;

	for (struct http_conn *c = s->conns; c; c = c->next) {
		if (!conn_is_idle(c))
			continue;
		if (peer && (c->privileged ||
			     (c->peer != peer && c->peer->n_conns < peer->n_conns + 2)))
			continue;
		if (!best || c->peer->n_conns > best->peer->n_conns ||
		    (c->peer->n_conns == best->peer->n_conns && conn_older(c, best)))
			best = c;
	}
	return best;
}

/* The oldest idle connection of @peer, or NULL. */
static struct http_conn *server_oldest_idle_of(struct http_server *s,
					       const struct http_peer *peer)
{
	struct http_conn *best = NULL;

	for (struct http_conn *c = s->conns; c; c = c->next)
		if (c->peer == peer && conn_is_idle(c) && (!best || conn_older(c, best)))
			best = c;
	return best;
}

/*
 * Finds room for a new connection of @c's peer, closing idle connections where its share or
 * the table is full. Returns true when it may be served; false with c->refusal set.
 */
static bool server_admit(struct http_server *s, struct http_conn *c, struct http_peer *peer)
{
	const struct http_limits *l = &s->limits;
	size_t pool = l->max_connections - MIN(l->reserved_connections, l->max_connections);

	for (;;) {
		struct http_conn *victim;

		if (!c->privileged && peer->n_conns >= l->max_connections_per_uid) {
			victim = server_oldest_idle_of(s, peer);
			if (!victim) {
				snprintf(c->refusal, sizeof(c->refusal),
					 "Too many connections of uid %u (limit %zu), try again later",
					 (unsigned)c->cred.uid, l->max_connections_per_uid);
				return false;
			}
		} else if (s->n_conns >= l->max_connections ||
			   (!c->privileged && s->n_unprivileged >= pool)) {
			victim = server_pick_victim(s, c->privileged ? NULL : peer);
			if (!victim) {
				snprintf(c->refusal, sizeof(c->refusal),
					 "Too many connections (limit %zu), try again later",
					 c->privileged ? l->max_connections : pool);
				return false;
			}
		} else {
			return true;
		}
		log_debug("HTTP: closing an idle connection of UID %u for a new one of UID %u.",
			  (unsigned)victim->cred.uid, (unsigned)c->cred.uid);
		conn_close(victim);
	}
}

static bool server_is_privileged(const struct http_server *s, const struct http_conn *c)
{
	if (c->cred.uid == 0 || c->cred.uid == geteuid())
		return true;
	return s->privileged &&
	       s->privileged(&c->cred, c->groups, c->n_groups, s->privileged_userdata);
}

/* Takes ownership of @fd. */
static int server_add_conn(struct http_server *s, int fd)
{
	_cleanup_close_ int fd_owned = fd;
	_cleanup_free_ struct http_conn *c = NULL;
	struct http_peer *peer;
	socklen_t len = sizeof(c->cred);
	bool overflow;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = fd;
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0 ||
	    len != sizeof(c->cred))
		/* Unknown peer: match nobody in the routes' permission checks. */
		c->cred = (struct ucred){ .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	conn_read_groups(c);
	c->privileged = server_is_privileged(s, c);

	peer = server_peer_get(s, c->cred.uid);
	if (!peer) {
		peer = calloc(1, sizeof(*peer));
		if (!peer) {
			free(c->groups);
			return -ENOMEM;
		}
		peer->uid = c->cred.uid;
		peer->next = s->peers;
		s->peers = peer;
	}
	peer->pinned = true; /* closing its own idle connections must not free it */
	overflow = !server_admit(s, c, peer);
	peer->pinned = false;
	if (overflow) {
		server_peer_put(s, peer);
		if (s->n_overflow >= HTTP_OVERFLOW_MAX) {
			/* Best effort: the client may not have sent its request yet. */
			(void)send(fd, s->busy_response, s->busy_response_len,
				   MSG_DONTWAIT | MSG_NOSIGNAL);
			free(c->groups);
			return -EBUSY;
		}
	}

	TAKE_FD(fd_owned);
	c->n_ref = 1; /* the list's */
	c->server = s;
	c->overflow = overflow;
	c->serial = s->n_accepted++;
	c->state = CONN_IDLE;
	c->since = server_now(s);
	c->deadline = HTTP_USEC_INFINITY;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;

	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	if (overflow) {
		s->n_overflow++;
	} else {
		c->peer = peer;
		peer->n_conns++;
		s->n_conns++;
		if (!c->privileged)
			s->n_unprivileged++;
	}

	/* From here on, conn_close() undoes everything. */
	r = sd_event_add_io(s->event, &c->io_source, c->fd, EPOLLIN, conn_io_handler, c);
	if (r >= 0)
		r = sd_event_add_time(s->event, &c->timer_source, CLOCK_MONOTONIC,
				      HTTP_USEC_INFINITY, HTTP_TIMER_ACCURACY_USEC,
				      conn_timer_handler, c);
	if (r >= 0)
		r = sd_event_source_set_enabled(c->timer_source, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_defer(s->event, &c->defer_source, conn_defer_handler, c);
	if (r >= 0)
		r = sd_event_source_set_enabled(c->defer_source, SD_EVENT_OFF);
	if (r >= 0)
		r = conn_update(c);
	if (r < 0) {
		conn_close(TAKE_PTR(c));
		return r;
	}
	log_debug("HTTP connection from PID %d UID %u%s.", c->cred.pid, (unsigned)c->cred.uid,
		  overflow ? " over the limits" : c->privileged ? " (privileged)" : "");
	TAKE_PTR(c);
	return 0;
}

/* --- The server ---------------------------------------------------------------------------- */

static void server_on_accept(int fd, void *userdata)
{
	int r = server_add_conn(userdata, fd);

	if (r < 0)
		log_debug_errno(r, "Dropped HTTP connection: %m");
}

static int server_build_busy_response(struct http_server *s)
{
	_cleanup_free_ char *body = error_body_new(503, "Too many connections, try again later");
	int n;

	if (!body)
		return -ENOMEM;
	n = asprintf(&s->busy_response,
		     "HTTP/1.1 503 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		     "Connection: close\r\n\r\n%s",
		     http_status_reason(503), strlen(body), body);
	if (n < 0) {
		s->busy_response = NULL;
		return -ENOMEM;
	}
	s->busy_response_len = (size_t)n;
	return 0;
}

int http_server_new(sd_event *e, int fd, const struct http_limits *limits, http_handler_t handler,
		    void *userdata, struct http_server **ret)
{
	_cleanup_close_ int fd_owned = fd;
	_cleanup_(http_server_freep) struct http_server *s = NULL;
	int r;

	if (!e || fd < 0 || !handler || !ret)
		return -EINVAL;
	if (limits && (limits->max_request_bytes == 0 || limits->max_output_bytes == 0 ||
		       limits->max_output_bytes_per_uid == 0 ||
		       limits->max_output_bytes_total == 0 || limits->max_connections == 0 ||
		       limits->max_connections_per_uid == 0))
		return -EINVAL;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = TAKE_FD(fd_owned);
	s->event = sd_event_ref(e);
	s->limits = limits ? *limits : HTTP_LIMITS_DEFAULT;
	s->handler = handler;
	s->userdata = userdata;

	r = server_build_busy_response(s);
	if (r < 0)
		return r;
	r = acceptor_new(e, s->fd, HTTP_ACCEPT_BURST, "http-listen", server_on_accept, s,
			 &s->acceptor);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(s);
	return 0;
}

void http_server_set_privileged(struct http_server *s, http_privileged_t cb, void *userdata)
{
	s->privileged = cb;
	s->privileged_userdata = userdata;
}

struct http_server *http_server_free(struct http_server *s)
{
	if (!s)
		return NULL;

	while (s->conns) {
		_cleanup_(conn_unrefp) struct http_conn *c = conn_ref(s->conns);

		/* Best effort, without waiting: end streams properly, push out what is queued. */
		if (c->state == CONN_STREAMING && c->chunked && !c->discard_body)
			(void)buf_put(&c->out, "0\r\n\r\n", 5);
		(void)conn_flush(c);
		conn_close(c);
	}

	s->acceptor = acceptor_free(s->acceptor);
	s->fd = safe_close(s->fd);
	s->event = sd_event_unref(s->event);
	free(s->busy_response);
	free(s);
	return NULL;
}

size_t http_server_n_connections(const struct http_server *s)
{
	return s ? s->n_conns + s->n_overflow : 0;
}

/* --- Answers ------------------------------------------------------------------------------- */

/*
 * Common entry of the answer functions: -EINVAL unless @c awaits an answer. If the connection
 * was closed meanwhile, the answer's reference is dropped and -ENOTCONN returned.
 */
static int conn_answer_check(struct http_conn *c)
{
	if (!c || c->state != CONN_HANDLING)
		return -EINVAL;
	if (c->closed) {
		c->state = CONN_CLOSING; /* answered */
		conn_unref(c);
		return -ENOTCONN;
	}
	return 0;
}

/* The answer could not be queued: give up the connection and the answer's reference. */
static int conn_answer_fail(struct http_conn *c, int r)
{
	log_debug_errno(r, "Failed to queue HTTP answer, closing connection: %m");
	c->state = CONN_CLOSING;
	conn_close(c);
	conn_unref(c);
	return r;
}

int http_conn_reply(struct http_conn *c, int status, const char *content_type,
		    const char *extra_headers, const char *body, size_t len)
{
	size_t extra_len = extra_headers ? strlen(extra_headers) : 0;
	int r;

	r = conn_answer_check(c);
	if (r < 0)
		return r;

	if (status < 200 || status > 599 || (!body && len > 0) ||
	    !valid_header_text(content_type) ||
	    (extra_len > 0 && (extra_len < 2 || !streq(extra_headers + extra_len - 2, "\r\n"))))
		return conn_answer_fail(c, -EINVAL);

	r = conn_queue_response(c, status, content_type, extra_headers, body, len, false);
	if (r < 0)
		return conn_answer_fail(c, r);

	c->state = c->keep_alive ? CONN_IDLE : CONN_CLOSING;
	c->since = server_now(c->server);
	conn_request_reset(c);
	conn_kick(c);
	conn_unref(c); /* the answer's; the list still holds the connection */
	return 0;
}

/* Answers a request for a stream that its peer may not open now; -EUSERS. */
static int stream_refuse(struct http_conn *c, const char *message)
{
	_cleanup_free_ char *body = error_body_new(503, message);
	int r;

	log_debug("Refusing a stream of PID %d UID %u: %s", c->cred.pid, (unsigned)c->cred.uid,
		  message);
	if (!body)
		return conn_answer_fail(c, -ENOMEM);
	r = http_conn_reply(c, 503, "application/json", NULL, body, strlen(body));
	return r < 0 ? r : -EUSERS;
}

int http_conn_stream_begin(struct http_conn *c, int status, const char *content_type,
			   http_close_cb_t on_close, void *userdata)
{
	const struct http_limits *l;
	struct http_server *s;
	char why[128];
	int r;

	r = conn_answer_check(c);
	if (r < 0)
		return r;
	if (status < 200 || status > 599 || status == 204 || status == 304 ||
	    !valid_header_text(content_type))
		return conn_answer_fail(c, -EINVAL);

	s = c->server;
	l = &s->limits;
	if (!c->privileged && c->peer->n_streams >= l->max_streams_per_uid) {
		snprintf(why, sizeof(why), "too many event streams of uid %u (limit %zu)",
			 (unsigned)c->cred.uid, l->max_streams_per_uid);
		return stream_refuse(c, why);
	}
	if (s->n_streams >= l->max_streams ||
	    (!c->privileged &&
	     s->n_unprivileged_streams >= l->max_streams - MIN(l->reserved_streams, l->max_streams))) {
		snprintf(why, sizeof(why), "too many event streams (limit %zu)",
			 c->privileged ? l->max_streams :
					 l->max_streams - MIN(l->reserved_streams, l->max_streams));
		return stream_refuse(c, why);
	}

	/* A stream ends with the connection, so nothing can follow it on this one. */
	c->keep_alive = false;
	c->discard_body = c->head;
	r = conn_queue_response(c, status, content_type, NULL, NULL, 0, true);
	if (r < 0)
		return conn_answer_fail(c, r);

	c->state = CONN_STREAMING;
	c->on_close = on_close;
	c->on_close_userdata = userdata;
	c->owned = true; /* the answer's reference becomes the owner's */
	c->in_off = c->in_len;
	c->ndjson = content_type && strncasecmp(content_type, "application/x-ndjson", 20) == 0;
	c->rec_left = conn_out_pending(c); /* the first chunk begins after the headers */
	c->stream_counted = true;
	s->n_streams++;
	if (!c->privileged)
		s->n_unprivileged_streams++;
	c->peer->n_streams++;
	stream_account(c);
	/* The request stays as it is: valid for the owner as long as the stream. */
	conn_kick(c);
	return 0;
}

enum stream_drop_why {
	STREAM_DROP_BEHIND,
	STREAM_DROP_USER,
	STREAM_DROP_TOTAL,
};

/*
 * Ends stream @c because its reader fell behind: frees its queue except the rest of the chunk
 * it is reading, adds a last line saying why where the framing allows, and closes once that
 * is out (or the idle timeout passed). The owner is told by the caller.
 */
static void stream_drop(struct http_conn *c, enum stream_drop_why why)
{
	const struct http_limits *l = &c->server->limits;
	struct http_buf out = {};
	char msg[256];
	int r = 0;

	switch (why) {
	case STREAM_DROP_BEHIND:
		snprintf(msg, sizeof(msg),
			 "this stream was closed: its reader fell more than %zu bytes behind; "
			 "reconnect and read the current state again",
			 l->max_output_bytes);
		break;
	case STREAM_DROP_USER:
		snprintf(msg, sizeof(msg),
			 "this stream was closed: the event streams of uid %u held more than %zu "
			 "unread bytes and this one was furthest behind; reconnect and read the "
			 "current state again",
			 (unsigned)c->cred.uid, l->max_output_bytes_per_uid);
		break;
	case STREAM_DROP_TOTAL:
		snprintf(msg, sizeof(msg),
			 "this stream was closed: all event streams held more than %zu unread "
			 "bytes and this one was furthest behind; reconnect and read the current "
			 "state again",
			 l->max_output_bytes_total);
		break;
	}
	log_debug("HTTP stream of PID %d UID %u is %zu bytes behind, dropping it: %s",
		  c->cred.pid, (unsigned)c->cred.uid, conn_out_pending(c), msg);

	stream_uncount(c);
	/* The client gets the chunk it has begun to read whole, then the last line. Without
	 * chunks nothing marks where a line ends: it gets nothing more. */
	if (c->chunked && !c->discard_body)
		r = buf_put(&out, c->out.data + c->out_off,
			    MIN(c->rec_left, conn_out_pending(c)));
	if (r >= 0 && c->chunked && !c->discard_body && c->ndjson) {
		json_t *j = json_pack("{s:s, s:s, s:s}", "type", "dropped", "error", "slow-reader",
				      "message", msg);
		_cleanup_free_ char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;

		json_decref(j);
		r = line ? buf_printf(&out, "%zx\r\n%s\n\r\n", strlen(line) + 1, line) : -ENOMEM;
	}
	if (r >= 0 && c->chunked && !c->discard_body)
		r = buf_put(&out, "0\r\n\r\n", 5);
	if (r < 0)
		buf_done(&out); /* then nothing more */
	/* Closed from the loop, not here: the owner may be walking its streams. */
	buf_done(&c->out);
	c->out = out;
	c->out_off = 0;
	c->rec_left = 0;
	c->state = CONN_CLOSING;
	c->since = server_now(c->server);
	conn_kick(c);
}

/* The stream furthest behind among @peer's (NULL: all); @c counts with @extra more bytes. */
static struct http_conn *server_slowest_stream(struct http_server *s,
					       const struct http_peer *peer,
					       struct http_conn *c, size_t extra)
{
	struct http_conn *best = c;
	size_t best_pending = conn_out_pending(c) + extra;

	for (struct http_conn *o = s->conns; o; o = o->next) {
		if (o == c || !o->stream_counted || (peer && o->peer != peer))
			continue;
		if (conn_out_pending(o) > best_pending) {
			best = o;
			best_pending = conn_out_pending(o);
		}
	}
	return best;
}

/* The allocation of @b once @extra more bytes are in it (mirrors buf_reserve()). */
static size_t buf_alloc_after(const struct http_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;

	if (need <= b->alloc)
		return b->alloc;
	return MAX(need, MAX(b->alloc * 2, (size_t)64));
}

int http_conn_stream_send(struct http_conn *c, const char *data, size_t len)
{
	struct http_server *s;
	const struct http_limits *l;
	size_t old, chunk, grow;
	int r;

	if (!c || !c->owned || (!data && len > 0))
		return -EINVAL;
	if (c->closed)
		return -ENOTCONN; /* only without on_close: the owner learns it here */
	if (c->state != CONN_STREAMING)
		return -ENOTCONN; /* dropped, the owner is told soon */
	if (len == 0 || c->discard_body)
		return 0; /* an empty chunk would end the stream */

	s = c->server;
	l = &s->limits;
	conn_out_compact(c);
	chunk = len + (c->chunked ? 16 + 4 : 0); /* at most: hex length, two CRLFs */
	for (;;) {
		struct http_conn *victim;
		enum stream_drop_why why;

		grow = buf_alloc_after(&c->out, chunk) - c->out.alloc;
		if (len > l->max_output_bytes - MIN(l->max_output_bytes, conn_out_pending(c))) {
			victim = c;
			why = STREAM_DROP_BEHIND;
		} else if (c->peer->stream_bytes + grow > l->max_output_bytes_per_uid) {
			victim = server_slowest_stream(s, c->peer, c, chunk);
			why = STREAM_DROP_USER;
		} else if (s->stream_bytes + grow > l->max_output_bytes_total) {
			victim = server_slowest_stream(s, NULL, c, chunk);
			why = STREAM_DROP_TOTAL;
		} else {
			break;
		}
		_unused_ _cleanup_(conn_unrefp) struct http_conn *ref = conn_ref(victim);

		stream_drop(victim, why);
		if (victim == c) {
			conn_notify_owner(c);
			return -ENOBUFS;
		}
		/* Not now: the owner may be walking its streams. Its sends fail meanwhile. */
		victim->notify_owner = true;
	}

	old = c->out.len;
	r = c->chunked ? buf_printf(&c->out, "%zx\r\n", len) : 0;
	if (r >= 0)
		r = buf_put(&c->out, data, len);
	if (r >= 0 && c->chunked)
		r = buf_put(&c->out, "\r\n", 2);
	if (r < 0) {
		buf_truncate(&c->out, old);
		conn_close(c);
		return r;
	}
	stream_account(c);
	conn_kick(c);
	return 0;
}

void http_conn_stream_end(struct http_conn *c)
{
	if (!c || !c->owned)
		return;
	c->owned = false;
	c->on_close = NULL;
	c->notify_owner = false;
	if (!c->closed && c->state == CONN_STREAMING) {
		stream_uncount(c);
		if (c->chunked && !c->discard_body && buf_put(&c->out, "0\r\n\r\n", 5) < 0) {
			conn_close(c);
		} else {
			c->state = CONN_CLOSING;
			c->since = server_now(c->server);
			conn_kick(c);
		}
	}
	conn_unref(c); /* the owner's */
}
