// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The local HTTP/1.1 server: a request, from its bytes to the handler. libhttp-parser's callbacks
 * assemble struct http_request; a request the server refuses itself is answered here.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/http-internal.h"
#include "api/http.h"
#include "shared/log.h"

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

/* Appends @s with %XX escapes decoded to @b. -EINVAL for a broken escape. */
static int percent_decode(const char *s, size_t len, struct http_buf *b)
{
	int r = http_buf_reserve(b, len);

	if (r < 0)
		return r;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (ch == '%') {
			int hi, lo;

			if (len - i < 3)
				return -EINVAL;
			hi = http_unhex(s[i + 1]);
			lo = http_unhex(s[i + 2]);
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

/* --- Requests ------------------------------------------------------------------------------ */

void http_conn_request_reset(struct http_conn *c)
{
	http_buf_clear(&c->url);
	http_buf_clear(&c->field);
	http_buf_clear(&c->value);
	http_buf_clear(&c->content_type);
	http_buf_clear(&c->accept);
	http_buf_clear(&c->path);
	http_buf_clear(&c->query);
	http_buf_clear(&c->body);
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
void http_conn_fail(struct http_conn *c, int status, const char *message)
{
	_cleanup_free_ char *body = http_error_body_new(status, message);
	int r;

	log_debug("Answering HTTP request of PID %d with %d: %s", c->cred.pid, status, message);
	c->keep_alive = false;
	c->in_off = c->in_len;
	c->state = CONN_CLOSING;
	c->since = http_server_now(c->server);
	r = http_conn_queue_response(c, status, body ? "application/json" : NULL, NULL, body,
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
	if (http_buf_put(b, at, len) < 0)
		return parser_fail(c, 500, "Out of memory");
	return 0;
}

static int on_message_begin(http_parser *p)
{
	struct http_conn *c = p->data;

	/* The header timeout runs from the first byte of the request (slowloris). */
	c->state = CONN_READING;
	c->since = http_server_now(c->server);
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
		http_buf_truncate(v, v->len - 1);

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
	http_buf_truncate(&c->field, 0);
	http_buf_truncate(&c->value, 0);
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
	    http_buf_put(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
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
		http_conn_fail(c, 503, c->refusal);
		return;
	}

	http_conn_ref(c); /* the answer's, dropped by http_conn_reply() or handed to a stream */
	r = s->handler(c, &c->req, s->userdata);
	if (r >= 0)
		return;
	if (c->state == CONN_HANDLING) {
		_cleanup_free_ char *msg = NULL, *body = NULL;

		if (asprintf(&msg, "Failed to handle the request: %s", strerror(-r)) >= 0)
			body = http_error_body_new(500, msg);
		(void)http_conn_reply(c, 500, body ? "application/json" : NULL, NULL, body,
				      body ? strlen(body) : 0);
	} else {
		log_debug_errno(r, "HTTP handler failed after answering, ignoring: %m");
	}
}

/* Feeds buffered input to the parser: at most what the request size limit still allows. */
void http_conn_parse(struct http_conn *c)
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
		return http_conn_fail(c, c->fail_status, c->fail_message);
	if (err == HPE_HEADER_OVERFLOW)
		return http_conn_fail(c, 431, "Request headers are too large");
	if (err != HPE_OK && err != HPE_PAUSED)
		return http_conn_fail(c, 400, http_errno_description(err));
	if (c->req_bytes > max) {
		char msg[128];

		snprintf(msg, sizeof(msg), "Request %s exceed the limit of %zu bytes",
			 c->headers_done ? "body and headers" : "headers", max);
		return http_conn_fail(c, c->headers_done ? 413 : 431, msg);
	}
	if (err == HPE_PAUSED)
		return conn_dispatch(c);
	if (nparsed < n)
		return http_conn_fail(c, 400, "Unexpected data after the request");
}
