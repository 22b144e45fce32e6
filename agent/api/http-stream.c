// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The local HTTP/1.1 server: streams (chunked responses owned by the caller, such as
 * /v1/events) and the memory of their output queues, per stream, per user and in all. A stream
 * whose reader falls too far behind is dropped.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/http-internal.h"
#include "api/http.h"
#include "shared/log.h"

/* --- Their memory and framing -------------------------------------------------------------- */

/* Makes the stream memory counted for @c what its output queue holds now. */
void http_stream_account(struct http_conn *c)
{
	size_t now = c->stream_counted ? c->out.alloc : 0;

	if (now == c->stream_bytes)
		return;
	c->server->stream_bytes = c->server->stream_bytes - c->stream_bytes + now;
	c->peer->stream_bytes = c->peer->stream_bytes - c->stream_bytes + now;
	c->stream_bytes = now;
}

/* @c is no stream any more (ended, dropped or closed): its share goes back. */
void http_stream_uncount(struct http_conn *c)
{
	struct http_server *s = c->server;

	if (!c->stream_counted)
		return;
	c->stream_counted = false;
	http_stream_account(c);
	s->n_streams--;
	if (!c->privileged)
		s->n_unprivileged_streams--;
	c->peer->n_streams--;
}

/* Tells a stream's owner that the stream is over; its reference goes with it. */
void http_conn_notify_owner(struct http_conn *c)
{
	http_close_cb_t cb = c->on_close;

	c->notify_owner = false;
	if (!c->owned || !cb)
		return;
	c->on_close = NULL;
	c->owned = false;
	cb(c, c->on_close_userdata);
	http_conn_unref(c); /* the owner's */
}

/* The length of the chunk that starts at @off of the output queue (written by stream_send). */
static size_t stream_chunk_len(const struct http_conn *c, size_t off)
{
	const char *p = c->out.data + off, *end = c->out.data + c->out.len;
	size_t len = 0, digits = 0;

	for (; p < end && http_unhex(*p) >= 0 && digits < 16; p++, digits++)
		len = len << 4 | (size_t)http_unhex(*p);
	if (digits == 0 || end - p < 2 || len > (size_t)(end - p) - 2)
		return (size_t)(end - (c->out.data + off)); /* not ours: all of it */
	return digits + 2 + len + 2;
}

/* @n bytes from out_off went out: keep rec_left pointing at the end of the chunk begun. */
void http_stream_advance(struct http_conn *c, size_t n)
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

/* --- Streams ------------------------------------------------------------------------------- */

/* Answers a request for a stream that its peer may not open now; -EUSERS. */
static int stream_refuse(struct http_conn *c, const char *message)
{
	_cleanup_free_ char *body = http_error_body_new(503, message);
	int r;

	log_debug("Refusing a stream of PID %d UID %u: %s", c->cred.pid, (unsigned)c->cred.uid,
		  message);
	if (!body)
		return http_conn_answer_fail(c, -ENOMEM);
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

	r = http_conn_answer_check(c);
	if (r < 0)
		return r;
	if (status < 200 || status > 599 || status == 204 || status == 304 ||
	    !http_valid_header_text(content_type))
		return http_conn_answer_fail(c, -EINVAL);

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
	r = http_conn_queue_response(c, status, content_type, NULL, NULL, 0, true);
	if (r < 0)
		return http_conn_answer_fail(c, r);

	c->state = CONN_STREAMING;
	c->on_close = on_close;
	c->on_close_userdata = userdata;
	c->owned = true; /* the answer's reference becomes the owner's */
	c->in_off = c->in_len;
	c->ndjson = content_type && strncasecmp(content_type, "application/x-ndjson", 20) == 0;
	c->rec_left = http_conn_out_pending(c); /* the first chunk begins after the headers */
	c->stream_counted = true;
	s->n_streams++;
	if (!c->privileged)
		s->n_unprivileged_streams++;
	c->peer->n_streams++;
	http_stream_account(c);
	/* The request stays as it is: valid for the owner as long as the stream. */
	http_conn_kick(c);
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
		  c->cred.pid, (unsigned)c->cred.uid, http_conn_out_pending(c), msg);

	http_stream_uncount(c);
	/* The client gets the chunk it has begun to read whole, then the last line. Without
	 * chunks nothing marks where a line ends: it gets nothing more. */
	if (c->chunked && !c->discard_body)
		r = http_buf_put(&out, c->out.data + c->out_off,
				 MIN(c->rec_left, http_conn_out_pending(c)));
	if (r >= 0 && c->chunked && !c->discard_body && c->ndjson) {
		json_t *j = json_pack("{s:s, s:s, s:s}", "type", "dropped", "error", "slow-reader",
				      "message", msg);
		_cleanup_free_ char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;

		json_decref(j);
		r = line ? http_buf_printf(&out, "%zx\r\n%s\n\r\n", strlen(line) + 1, line)
			 : -ENOMEM;
	}
	if (r >= 0 && c->chunked && !c->discard_body)
		r = http_buf_put(&out, "0\r\n\r\n", 5);
	if (r < 0)
		http_buf_done(&out); /* then nothing more */
	/* Closed from the loop, not here: the owner may be walking its streams. */
	http_buf_done(&c->out);
	c->out = out;
	c->out_off = 0;
	c->rec_left = 0;
	c->state = CONN_CLOSING;
	c->since = http_server_now(c->server);
	http_conn_kick(c);
}

/* The stream furthest behind among @peer's (NULL: all); @c counts with @extra more bytes. */
static struct http_conn *server_slowest_stream(struct http_server *s,
					       const struct http_peer *peer,
					       struct http_conn *c, size_t extra)
{
	struct http_conn *best = c;
	size_t best_pending = http_conn_out_pending(c) + extra;

	for (struct http_conn *o = s->conns; o; o = o->next) {
		if (o == c || !o->stream_counted || (peer && o->peer != peer))
			continue;
		if (http_conn_out_pending(o) > best_pending) {
			best = o;
			best_pending = http_conn_out_pending(o);
		}
	}
	return best;
}

/* The allocation of @b once @extra more bytes are in it (mirrors http_buf_reserve()). */
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
	http_conn_out_compact(c);
	chunk = len + (c->chunked ? 16 + 4 : 0); /* at most: hex length, two CRLFs */
	for (;;) {
		struct http_conn *victim;
		enum stream_drop_why why;

		grow = buf_alloc_after(&c->out, chunk) - c->out.alloc;
		if (len >
		    l->max_output_bytes - MIN(l->max_output_bytes, http_conn_out_pending(c))) {
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
		_unused_ _cleanup_(http_conn_unrefp) struct http_conn *ref = http_conn_ref(victim);

		stream_drop(victim, why);
		if (victim == c) {
			http_conn_notify_owner(c);
			return -ENOBUFS;
		}
		/* Not now: the owner may be walking its streams. Its sends fail meanwhile. */
		victim->notify_owner = true;
	}

	old = c->out.len;
	r = c->chunked ? http_buf_printf(&c->out, "%zx\r\n", len) : 0;
	if (r >= 0)
		r = http_buf_put(&c->out, data, len);
	if (r >= 0 && c->chunked)
		r = http_buf_put(&c->out, "\r\n", 2);
	if (r < 0) {
		http_buf_truncate(&c->out, old);
		http_conn_close(c);
		return r;
	}
	http_stream_account(c);
	http_conn_kick(c);
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
		http_stream_uncount(c);
		if (c->chunked && !c->discard_body && http_buf_put(&c->out, "0\r\n\r\n", 5) < 0) {
			http_conn_close(c);
		} else {
			c->state = CONN_CLOSING;
			c->since = http_server_now(c->server);
			http_conn_kick(c);
		}
	}
	http_conn_unref(c); /* the owner's */
}
