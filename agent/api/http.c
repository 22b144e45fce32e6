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
 * every dispatch from the event loop holds one for its duration. Closing (http_conn_close) is
 * therefore always safe, even from inside the connection's own callbacks; the memory goes away
 * when the last reference does.
 *
 * Here: connections, their output, the state machine, the server and the answers. A request is
 * parsed in http-request.c, the connection table's shares are http-limits.c, streams and their
 * memory http-stream.c; http-internal.h holds what they share.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/http-internal.h"
#include "api/http.h"
#include "shared/accept.h"
#include "shared/log.h"

/* Connections above max_connections held open only to be answered 503; beyond: dropped. */
#define HTTP_OVERFLOW_MAX 16U
#define HTTP_ACCEPT_BURST 32U
#define HTTP_TIMER_ACCURACY_USEC (1U * 1000U)
/* Buffers that grew beyond this for one large request or response are released afterwards. */
#define HTTP_BUF_KEEP (16U * 1024U)
#define HTTP_USEC_INFINITY UINT64_MAX

/* --- Small buffers ------------------------------------------------------------------------- */

int http_buf_reserve(struct http_buf *b, size_t extra)
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

int http_buf_put(struct http_buf *b, const char *p, size_t n)
{
	int r = http_buf_reserve(b, n);

	if (r < 0)
		return r;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

_printf_(2, 3) int http_buf_printf(struct http_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	r = http_buf_reserve(b, (size_t)n);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

/* Drops a failed append: back to @len bytes. */
void http_buf_truncate(struct http_buf *b, size_t len)
{
	if (b->data) {
		b->len = len;
		b->data[len] = '\0';
	}
}

/* Empties @b, releasing the memory if one large message made it grow. */
void http_buf_clear(struct http_buf *b)
{
	if (b->alloc > HTTP_BUF_KEEP) {
		free(b->data);
		*b = (struct http_buf){};
	} else {
		http_buf_truncate(b, 0);
	}
}

void http_buf_done(struct http_buf *b)
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
char *http_error_body_new(int status, const char *message)
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

uint64_t http_server_now(const struct http_server *s)
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

int http_unhex(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -EINVAL;
}

bool http_valid_header_text(const char *s)
{
	return !s || !strpbrk(s, "\r\n");
}

/* --- Reference counting and teardown ------------------------------------------------------- */

struct http_conn *http_conn_ref(struct http_conn *c)
{
	c->n_ref++;
	return c;
}

static void conn_free(struct http_conn *c)
{
	http_buf_done(&c->url);
	http_buf_done(&c->field);
	http_buf_done(&c->value);
	http_buf_done(&c->content_type);
	http_buf_done(&c->accept);
	http_buf_done(&c->path);
	http_buf_done(&c->query);
	http_buf_done(&c->body);
	http_buf_done(&c->out);
	free(c->groups);
	free(c);
}

/* Drops @n references at once. */
static void conn_unref_n(struct http_conn *c, unsigned n)
{
	c->n_ref -= n;
	/* The list reference is dropped only by http_conn_close(), so this is a closed
	 * connection. */
	if (c->n_ref == 0)
		conn_free(c);
}

void http_conn_unref(struct http_conn *c)
{
	if (c)
		conn_unref_n(c, 1);
}

/*
 * Closes the socket and drops the list's reference. A stream owner is told through on_close
 * (its reference goes with it); a handler that has not answered yet keeps the memory alive and
 * gets -ENOTCONN when it does. Idempotent.
 */
void http_conn_close(struct http_conn *c)
{
	struct http_server *s = c->server;

	if (c->closed)
		return;
	c->closed = true;
	http_conn_ref(c); /* across the owner's callback */

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
		http_stream_uncount(c);
		if (c->overflow) {
			s->n_overflow--;
		} else {
			s->n_conns--;
			if (!c->privileged)
				s->n_unprivileged--;
		}
		if (c->peer) {
			c->peer->n_conns--;
			http_server_peer_put(s, c->peer);
			c->peer = NULL;
		}
		c->server = NULL;
	}
	log_debug("HTTP connection of PID %d closed.", c->cred.pid);

	http_conn_notify_owner(c);
	conn_unref_n(c, 2); /* ours and the list's */
}

/* --- Output -------------------------------------------------------------------------------- */

size_t http_conn_out_pending(const struct http_conn *c)
{
	return c->out.len - c->out_off;
}

void http_conn_out_compact(struct http_conn *c)
{
	size_t pending = http_conn_out_pending(c);

	if (c->out_off == 0)
		return;
	if (pending == 0) {
		http_buf_clear(&c->out);
		c->out_off = 0;
	} else if (c->out_off >= pending) {
		/* Amortized: only move when the consumed part is at least as large as the rest. */
		memmove(c->out.data, c->out.data + c->out_off, pending);
		c->out_off = 0;
		http_buf_truncate(&c->out, pending);
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
	http_stream_account(c);
}

/* Writes what the socket takes. Returns 0 (possibly with output left) or -errno. */
static int conn_flush(struct http_conn *c)
{
	bool progress = false;

	while (http_conn_out_pending(c) > 0) {
		ssize_t n = send(c->fd, c->out.data + c->out_off, http_conn_out_pending(c),
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return log_debug_errno(errno, "Failed to write HTTP response: %m");
		}
		http_stream_advance(c, (size_t)n);
		c->out_off += (size_t)n;
		progress = true;
	}
	if (progress && (c->state == CONN_IDLE || c->state == CONN_CLOSING))
		c->since = http_server_now(c->server);
	http_conn_out_compact(c);
	return 0;
}

/*
 * Queues a status line and headers, plus @body unless the request was HEAD or the status has
 * no body. @stream: chunked (or, for HTTP/1.0, close-delimited) instead of Content-Length.
 * Nothing is queued on failure.
 */
int http_conn_queue_response(struct http_conn *c, int status, const char *content_type,
			     const char *extra_headers, const char *body, size_t len, bool stream)
{
	bool no_body = status < 200 || status == 204 || status == 304;
	size_t old;
	int r;

	http_conn_out_compact(c);
	old = c->out.len;

	r = http_buf_printf(&c->out, "HTTP/1.1 %d %s\r\n", status, http_status_reason(status));
	if (r >= 0 && content_type)
		r = http_buf_printf(&c->out, "Content-Type: %s\r\n", content_type);
	if (r >= 0 && stream && c->chunked && !c->discard_body)
		r = http_buf_printf(&c->out, "Transfer-Encoding: chunked\r\n");
	if (r >= 0 && !stream && !no_body)
		r = http_buf_printf(&c->out, "Content-Length: %zu\r\n", len);
	if (r >= 0)
		r = http_buf_printf(&c->out, "Connection: %s\r\n",
				    c->keep_alive ? "keep-alive" : "close");
	if (r >= 0 && extra_headers)
		r = http_buf_put(&c->out, extra_headers, strlen(extra_headers));
	if (r >= 0)
		r = http_buf_put(&c->out, "\r\n", 2);
	if (r >= 0 && !stream && !no_body && !c->head)
		r = http_buf_put(&c->out, body, len);
	if (r < 0) {
		http_buf_truncate(&c->out, old);
		return r;
	}
	return 0;
}

/* Lets the loop run the state machine for an answer that arrived from outside of it. */
void http_conn_kick(struct http_conn *c)
{
	if (c->running || c->closed)
		return;
	(void)sd_event_source_set_enabled(c->defer_source, SD_EVENT_ONESHOT);
}

/* --- The state machine --------------------------------------------------------------------- */

/* Points the socket's events and the timer at what the current state waits for. */
static int conn_update(struct http_conn *c)
{
	const struct http_limits *l = &c->server->limits;
	uint64_t deadline = HTTP_USEC_INFINITY;
	uint32_t events = 0;
	int r;

	if (http_conn_out_pending(c) > 0)
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
	_unused_ _cleanup_(http_conn_unrefp) struct http_conn *ref = http_conn_ref(c);

	if (c->closed || c->running)
		return;
	if (c->notify_owner)
		http_conn_notify_owner(c);
	c->running = true;
	for (;;) {
		if (conn_flush(c) < 0) {
			http_conn_close(c);
			break;
		}
		if (http_conn_out_pending(c) > 0)
			break; /* the next request waits until this answer is on its way */
		if (c->state == CONN_CLOSING) {
			http_conn_close(c);
			break;
		}
		if (c->state != CONN_IDLE && c->state != CONN_READING)
			break;
		if (c->in_off < c->in_len) {
			http_conn_parse(c);
			if (c->closed)
				break;
			continue;
		}
		if (c->peer_eof) /* everything asked was answered, or the request was cut */
			http_conn_close(c);
		break;
	}
	c->running = false;
	if (!c->closed && conn_update(c) < 0)
		http_conn_close(c);
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
	_cleanup_(http_conn_unrefp) struct http_conn *c = http_conn_ref(userdata);
	int r;

	if (revents & (EPOLLHUP | EPOLLERR)) {
		http_conn_close(c);
		return 0;
	}
	if (revents & EPOLLIN) {
		r = c->state == CONN_STREAMING ? conn_drain(c) : conn_read(c);
		if (r < 0) {
			http_conn_close(c);
			return 0;
		}
	}
	conn_run(c);
	return 0;
}

static int conn_timer_handler(sd_event_source *source, uint64_t usec, void *userdata)
{
	_cleanup_(http_conn_unrefp) struct http_conn *c = http_conn_ref(userdata);

	c->deadline = HTTP_USEC_INFINITY; /* a oneshot timer is off once it fired */
	switch (c->state) {
	case CONN_READING:
		http_conn_fail(c, 408, "The request was not completed in time");
		conn_run(c);
		break;
	case CONN_IDLE:
	case CONN_CLOSING:
		http_conn_close(c);
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
	c->privileged = http_server_is_privileged(s, c);

	peer = http_server_peer_get(s, c->cred.uid);
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
	overflow = !http_server_admit(s, c, peer);
	peer->pinned = false;
	if (overflow) {
		http_server_peer_put(s, peer);
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
	c->since = http_server_now(s);
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

	/* From here on, http_conn_close() undoes everything. */
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
		http_conn_close(TAKE_PTR(c));
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
	_cleanup_free_ char *body =
	    http_error_body_new(503, "Too many connections, try again later");
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
		_cleanup_(http_conn_unrefp) struct http_conn *c = http_conn_ref(s->conns);

		/* Best effort, without waiting: end streams properly, push out what is queued. */
		if (c->state == CONN_STREAMING && c->chunked && !c->discard_body)
			(void)http_buf_put(&c->out, "0\r\n\r\n", 5);
		(void)conn_flush(c);
		http_conn_close(c);
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
int http_conn_answer_check(struct http_conn *c)
{
	if (!c || c->state != CONN_HANDLING)
		return -EINVAL;
	if (c->closed) {
		c->state = CONN_CLOSING; /* answered */
		http_conn_unref(c);
		return -ENOTCONN;
	}
	return 0;
}

/* The answer could not be queued: give up the connection and the answer's reference. */
int http_conn_answer_fail(struct http_conn *c, int r)
{
	log_debug_errno(r, "Failed to queue HTTP answer, closing connection: %m");
	c->state = CONN_CLOSING;
	http_conn_close(c);
	http_conn_unref(c);
	return r;
}

int http_conn_reply(struct http_conn *c, int status, const char *content_type,
		    const char *extra_headers, const char *body, size_t len)
{
	size_t extra_len = extra_headers ? strlen(extra_headers) : 0;
	int r;

	r = http_conn_answer_check(c);
	if (r < 0)
		return r;

	if (status < 200 || status > 599 || (!body && len > 0) ||
	    !http_valid_header_text(content_type) ||
	    (extra_len > 0 && (extra_len < 2 || !streq(extra_headers + extra_len - 2, "\r\n"))))
		return http_conn_answer_fail(c, -EINVAL);

	r = http_conn_queue_response(c, status, content_type, extra_headers, body, len, false);
	if (r < 0)
		return http_conn_answer_fail(c, r);

	c->state = c->keep_alive ? CONN_IDLE : CONN_CLOSING;
	c->since = http_server_now(c->server);
	http_conn_request_reset(c);
	http_conn_kick(c);
	http_conn_unref(c); /* the answer's; the list still holds the connection */
	return 0;
}
