// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The HTTP server, end to end: a real server on a Unix socket in a temporary directory, a
 * non-blocking client socket in the same process, and the sd-event loop driven from the test
 * while the client writes and reads. Assertions are about what a client sees on the wire.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api/http.h"

#define MSEC 1000ULL
/* Upper bound on loop iterations while waiting for something; only a hang guard, not timing. */
#define WAIT_ITERATIONS 2000

struct fixture {
	char dir[256];
	char sock_path[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
	sd_event *event;
	struct http_server *server;

	/* What the handler saw and did. */
	unsigned n_requests;
	char *last_method, *last_path, *last_query, *last_body, *last_content_type, *last_accept;
	struct ucred last_cred;
	int last_reply_r;
	struct http_conn *pending; /* "/async": not answered yet */
	struct http_conn *stream;  /* "/stream": open stream */
	struct http_conn *stream2; /* "/second": another one */
	unsigned n_on_close2;
	unsigned n_on_close;
};

struct cbuf {
	char *data;
	size_t len;
	bool eof; /* EOF or ECONNRESET: the server closed */
};

struct response {
	int status;
	char *head; /* status line and headers, NUL-terminated */
	char *body;
	size_t body_len;
};

/* --- The server side ----------------------------------------------------------------------- */

static void on_stream_close(struct http_conn *c, void *userdata)
{
	struct fixture *f = userdata;

	assert_ptr_equal(c, f->stream);
	f->stream = NULL;
	f->n_on_close++;
}

static void on_stream2_close(struct http_conn *c, void *userdata)
{
	struct fixture *f = userdata;

	assert_ptr_equal(c, f->stream2);
	f->stream2 = NULL;
	f->n_on_close2++;
}

static void replace_str(char **p, const char *s)
{
	free(*p);
	*p = s ? strdup(s) : NULL;
	if (s)
		assert_non_null(*p);
}

static int handler(struct http_conn *c, const struct http_request *req, void *userdata)
{
	struct fixture *f = userdata;
	char body[512];

	f->n_requests++;
	replace_str(&f->last_method, req->method_name);
	replace_str(&f->last_path, req->path);
	replace_str(&f->last_query, req->query);
	replace_str(&f->last_body, req->body);
	replace_str(&f->last_content_type, req->content_type);
	replace_str(&f->last_accept, req->accept);
	f->last_cred = req->cred;

	if (streq(req->path, "/second")) {
		f->stream2 = c;
		return http_conn_stream_begin(c, 200, "application/x-ndjson", on_stream2_close, f);
	}
	if (streq(req->path, "/stream") || streq(req->path, "/ndjson")) {
		f->stream = c;
		return http_conn_stream_begin(c, 200,
					      streq(req->path, "/stream") ? "text/plain" :
									    "application/x-ndjson",
					      on_stream_close, f);
	}
	if (streq(req->path, "/async")) {
		f->pending = c;
		return 0;
	}
	if (streq(req->path, "/fail"))
		return -EIO;
	if (streq(req->path, "/bad-reply")) {
		/* An invalid answer closes the connection from inside its own callback. */
		f->last_reply_r = http_conn_reply(c, 99, NULL, NULL, NULL, 0);
		return 0;
	}
	if (streq(req->path, "/echo"))
		return http_conn_reply(c, 200, "application/octet-stream", NULL, req->body,
				       req->body_len);
	if (streq(req->path, "/created"))
		return http_conn_reply(c, 201, "text/plain", "Location: /created/1\r\n", "made", 4);
	if (streq(req->path, "/empty"))
		return http_conn_reply(c, 204, NULL, NULL, NULL, 0);

	snprintf(body, sizeof(body), "%s %s", req->method_name, req->path);
	return http_conn_reply(c, 200, "text/plain", NULL, body, strlen(body));
}

static struct http_limits test_limits(void)
{
	struct http_limits l = HTTP_LIMITS_DEFAULT;

	l.max_connections = 4;
	return l;
}

static void server_start(struct fixture *f, const struct http_limits *limits)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	(void)unlink(f->sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	memcpy(sa.sun_path, f->sock_path, strlen(f->sock_path) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 64), 0);
	assert_int_equal(http_server_new(f->event, fd, limits, handler, f, &f->server), 0);
}

static void server_restart(struct fixture *f, const struct http_limits *limits)
{
	f->server = http_server_free(f->server);
	server_start(f, limits);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	struct http_limits l = test_limits();

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/test-http-XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
	assert_non_null(mkdtemp(f->dir));
	/* sun_path is short: a long TMPDIR fails here, visibly. */
	assert_true(snprintf(f->sock_path, sizeof(f->sock_path), "%s/http.sock", f->dir) <
		    (int)sizeof(f->sock_path));
	assert_int_equal(sd_event_new(&f->event), 0);
	server_start(f, &l);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->pending) /* answer it, so that the connection is released */
		(void)http_conn_reply(f->pending, 200, NULL, NULL, NULL, 0);
	http_server_free(f->server);
	sd_event_unref(f->event);
	(void)unlink(f->sock_path);
	(void)rmdir(f->dir);
	free(f->last_method);
	free(f->last_path);
	free(f->last_query);
	free(f->last_body);
	free(f->last_content_type);
	free(f->last_accept);
	free(f);
	return 0;
}

/* --- The client side ----------------------------------------------------------------------- */

static int client_connect(struct fixture *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	memcpy(sa.sun_path, f->sock_path, strlen(f->sock_path) + 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void pump(struct fixture *f, uint64_t timeout)
{
	assert_true(sd_event_run(f->event, timeout) >= 0);
}

static void client_read(int fd, struct cbuf *b)
{
	for (;;) {
		char tmp[16384];
		ssize_t n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);

		if (n < 0) {
			if (errno == ECONNRESET)
				b->eof = true;
			else
				assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			return;
		}
		if (n == 0) {
			b->eof = true;
			return;
		}
		b->data = realloc(b->data, b->len + (size_t)n + 1);
		assert_non_null(b->data);
		memcpy(b->data + b->len, tmp, (size_t)n);
		b->len += (size_t)n;
		b->data[b->len] = '\0';
	}
}

static void cbuf_done(struct cbuf *b)
{
	free(b->data);
	*b = (struct cbuf){};
}

/* Writes all of @data, running the server while the socket is full. False if it hung up. */
static bool client_send(struct fixture *f, int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EPIPE || errno == ECONNRESET)
				return false;
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			pump(f, 10 * MSEC);
			continue;
		}
		data += n;
		len -= (size_t)n;
	}
	return true;
}

static void client_send_str(struct fixture *f, int fd, const char *s)
{
	assert_true(client_send(f, fd, s, strlen(s)));
}

static void response_done(struct response *r)
{
	free(r->head);
	free(r->body);
	*r = (struct response){};
}

/* Parses one Content-Length framed response (headers only if @head). Returns bytes used or 0. */
static size_t response_parse(const char *buf, size_t len, bool head, struct response *ret)
{
	const char *end, *cl;
	size_t head_len, body_len = 0;
	struct response r = {};

	if (!buf)
		return 0;
	end = strstr(buf, "\r\n\r\n");
	if (!end)
		return 0;
	head_len = (size_t)(end - buf) + 4;
	assert_int_equal(sscanf(buf, "HTTP/1.1 %d ", &r.status), 1);
	r.head = strndup(buf, head_len);
	assert_non_null(r.head);
	cl = strcasestr(r.head, "\r\nContent-Length: ");
	if (cl)
		body_len = strtoul(cl + strlen("\r\nContent-Length: "), NULL, 10);
	if (!head && len - head_len < body_len) {
		free(r.head);
		return 0;
	}
	if (!head) {
		r.body = strndup(buf + head_len, body_len);
		assert_non_null(r.body);
		r.body_len = body_len;
	}
	*ret = r;
	return head_len + (head ? 0 : body_len);
}

/* The value of header @name in @r, or NULL. Static storage. */
static const char *response_header(const struct response *r, const char *name)
{
	static char value[256];
	char key[128];
	const char *p, *e;

	snprintf(key, sizeof(key), "\r\n%s: ", name);
	p = strcasestr(r->head, key);
	if (!p)
		return NULL;
	p += strlen(key);
	e = strstr(p, "\r\n");
	snprintf(value, sizeof(value), "%.*s", (int)(e - p), p);
	return value;
}

/* The number of complete responses at the start of @b. */
static unsigned count_responses(const struct cbuf *b)
{
	size_t off = 0, n;
	unsigned count = 0;
	struct response r;

	while (off < b->len && (n = response_parse(b->data + off, b->len - off, false, &r)) > 0) {
		response_done(&r);
		off += n;
		count++;
	}
	return count;
}

/* Runs the loop and reads until @n responses (or, with @n 0, EOF) arrived. */
static void wait_responses(struct fixture *f, int fd, struct cbuf *b, unsigned n)
{
	for (unsigned i = 0; i < WAIT_ITERATIONS; i++) {
		client_read(fd, b);
		if (n > 0 ? count_responses(b) >= n : b->eof)
			return;
		if (b->eof)
			break;
		pump(f, 10 * MSEC);
	}
	fail_msg("Waited in vain for %u responses (EOF: %d, got %zu bytes: %.200s)", n, b->eof,
		 b->len, b->data ? b->data : "");
}

static void wait_eof(struct fixture *f, int fd, struct cbuf *b)
{
	wait_responses(f, fd, b, 0);
}

/* Sends @request on a new connection and returns the single response; @fd stays open. */
static void exchange(struct fixture *f, int fd, const char *request, struct response *r)
{
	struct cbuf b = {};

	client_send_str(f, fd, request);
	wait_responses(f, fd, &b, 1);
	assert_int_equal(response_parse(b.data, b.len, false, r), b.len);
	cbuf_done(&b);
}

/* Asserts a server-made JSON error body {"error": @code, "message": "..."}. */
static void assert_json_error(const struct response *r, const char *code)
{
	json_error_t err;
	json_t *j, *v;

	assert_string_equal(response_header(r, "Content-Type"), "application/json");
	j = json_loadb(r->body, r->body_len, 0, &err);
	assert_non_null(j);
	v = json_object_get(j, "error");
	assert_true(json_is_string(v));
	assert_string_equal(json_string_value(v), code);
	v = json_object_get(j, "message");
	assert_true(json_is_string(v));
	assert_true(strlen(json_string_value(v)) > 0);
	assert_int_equal(json_object_size(j), 2);
	json_decref(j);
}

/* Sends @request, expects one error response with @status/@code, then the server closing. */
static void expect_error_and_close(struct fixture *f, const char *request, size_t len,
				   int status, const char *code)
{
	int fd = client_connect(f);
	struct cbuf b = {};
	struct response r;

	(void)client_send(f, fd, request, len); /* the server may close before it has all */
	wait_eof(f, fd, &b);
	assert_true(response_parse(b.data, b.len, false, &r) > 0);
	assert_int_equal(r.status, status);
	assert_string_equal(response_header(&r, "Connection"), "close");
	assert_json_error(&r, code);
	response_done(&r);
	cbuf_done(&b);
	close(fd);
}

/* --- Tests --------------------------------------------------------------------------------- */

static void test_get(void **state)
{
	struct fixture *f = *state;
	int fd = client_connect(f);
	struct response r;

	exchange(f, fd,
		 "GET /hello HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain \r\n"
		 "accept: application/json\r\n\r\n",
		 &r);
	assert_int_equal(r.status, 200);
	assert_true(strncmp(r.head, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_string_equal(response_header(&r, "Content-Type"), "text/plain");
	assert_string_equal(response_header(&r, "Content-Length"), "10");
	assert_string_equal(response_header(&r, "Connection"), "keep-alive");
	assert_string_equal(r.body, "GET /hello");
	assert_string_equal(f->last_method, "GET");
	assert_null(f->last_query);
	assert_null(f->last_body);
	assert_null(f->last_content_type);
	assert_string_equal(f->last_accept, "text/plain, application/json");
	response_done(&r);

	/* Extra headers, a status other than 200, and a status without a body. */
	exchange(f, fd, "POST /created HTTP/1.1\r\n\r\n", &r);
	assert_int_equal(r.status, 201);
	assert_string_equal(response_header(&r, "Location"), "/created/1");
	assert_string_equal(r.body, "made");
	response_done(&r);
	exchange(f, fd, "DELETE /empty HTTP/1.1\r\n\r\n", &r);
	assert_int_equal(r.status, 204);
	assert_null(response_header(&r, "Content-Length"));
	response_done(&r);
	close(fd);
}

static void test_keep_alive(void **state)
{
	struct fixture *f = *state;
	int fd = client_connect(f);
	struct response r;

	exchange(f, fd, "GET /one HTTP/1.1\r\n\r\n", &r);
	assert_string_equal(r.body, "GET /one");
	response_done(&r);
	exchange(f, fd, "GET /two HTTP/1.1\r\n\r\n", &r);
	assert_string_equal(r.body, "GET /two");
	response_done(&r);
	assert_int_equal(f->n_requests, 2);
	assert_int_equal(http_server_n_connections(f->server), 1);
	close(fd);
}

static void test_connection_close(void **state)
{
	struct fixture *f = *state;
	const char *requests[] = {
		"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n",
		"GET /a HTTP/1.0\r\n\r\n",
		/* Another protocol would follow: answered, then closed. */
		"GET /a HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nxyz",
		/* A client that shuts down its side after asking still gets the answer. */
		"GET /a HTTP/1.1\r\n\r\n",
	};

	for (size_t i = 0; i < ELEMENTSOF(requests); i++) {
		int fd = client_connect(f);
		struct cbuf b = {};
		struct response r;

		client_send_str(f, fd, requests[i]);
		if (i == 3)
			assert_int_equal(shutdown(fd, SHUT_WR), 0);
		wait_eof(f, fd, &b);
		assert_int_equal(response_parse(b.data, b.len, false, &r), b.len);
		assert_int_equal(r.status, 200);
		if (i < 3) /* the half-close may be noticed only after answering */
			assert_string_equal(response_header(&r, "Connection"), "close");
		assert_string_equal(r.body, "GET /a");
		response_done(&r);
		cbuf_done(&b);
		close(fd);
	}

	/* HTTP/1.0 with keep-alive asked for explicitly. */
	int fd = client_connect(f);
	struct response r;

	exchange(f, fd, "GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r);
	assert_string_equal(response_header(&r, "Connection"), "keep-alive");
	response_done(&r);
	exchange(f, fd, "GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r);
	assert_string_equal(r.body, "GET /c");
	response_done(&r);
	close(fd);

	/* Half a request, then the client shuts down its side: closed without an answer. */
	fd = client_connect(f);
	struct cbuf b = {};

	client_send_str(f, fd, "GET /d HTTP/1.1\r\nHost:");
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	wait_eof(f, fd, &b);
	assert_int_equal(b.len, 0);
	assert_int_equal(f->n_requests, 6);
	cbuf_done(&b);
	close(fd);
}

static void test_pipelined(void **state)
{
	struct fixture *f = *state;
	int fd = client_connect(f);
	struct cbuf b = {};
	struct response r;
	size_t off = 0;

	client_send_str(f, fd,
			"GET /1 HTTP/1.1\r\n\r\n"
			"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
			"GET /3 HTTP/1.1\r\n\r\n");
	wait_responses(f, fd, &b, 3);

	off += response_parse(b.data + off, b.len - off, false, &r);
	assert_string_equal(r.body, "GET /1");
	response_done(&r);
	off += response_parse(b.data + off, b.len - off, false, &r);
	assert_string_equal(r.body, "hello");
	response_done(&r);
	off += response_parse(b.data + off, b.len - off, false, &r);
	assert_string_equal(r.body, "GET /3");
	response_done(&r);
	assert_int_equal(off, b.len);
	cbuf_done(&b);
	close(fd);
}

static void test_async_reply_keeps_order(void **state)
{
	struct fixture *f = *state;
	int fd = client_connect(f);
	struct cbuf b = {};
	struct response r;
	size_t off = 0;

	client_send_str(f, fd, "GET /async HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n");
	for (unsigned i = 0; i < WAIT_ITERATIONS && !f->pending; i++)
		pump(f, 10 * MSEC);
	assert_non_null(f->pending);
	/* The second request waits for the first answer. */
	for (unsigned i = 0; i < 5; i++)
		pump(f, 0);
	client_read(fd, &b);
	assert_int_equal(b.len, 0);
	assert_int_equal(f->n_requests, 1);

	assert_int_equal(http_conn_reply(f->pending, 200, "text/plain", NULL, "late", 4), 0);
	f->pending = NULL;
	wait_responses(f, fd, &b, 2);
	off += response_parse(b.data + off, b.len - off, false, &r);
	assert_string_equal(r.body, "late");
	response_done(&r);
	off += response_parse(b.data + off, b.len - off, false, &r);
	assert_string_equal(r.body, "GET /after");
	response_done(&r);
	cbuf_done(&b);
	close(fd);
}

static void test_async_client_gone(void **state)
{
	struct fixture *f = *state;
	int fd = client_connect(f);

	client_send_str(f, fd, "GET /async HTTP/1.1\r\n\r\n");
	for (unsigned i = 0; i < WAIT_ITERATIONS && !f->pending; i++)
		pump(f, 10 * MSEC);
	assert_non_null(f->pending);
	close(fd);
	for (unsigned i = 0; i < WAIT_ITERATIONS && http_server_n_connections(f->server) > 0; i++)
		pump(f, 10 * MSEC);
	assert_int_equal(http_server_n_connections(f->server), 0);
	/* The late answer is refused, and releases the connection (ASan checks the leak). */
	assert_int_equal(http_conn_reply(f->pending, 200, NULL, NULL, NULL, 0), -ENOTCONN);
	f->pending = NULL;
}

static void test_handler_error(void **state)
{
	struct fixture *f = *state;
	int fd = client_connect(f);
	struct response r;

	exchange(f, fd, "GET /fail HTTP/1.1\r\n\r\n", &r);
	assert_int_equal(r.status, 500);
	assert_json_error(&r, "internal");
	assert_string_equal(response_header(&r, "Connection"), "keep-alive");
	response_done(&r);
	/* The connection is still usable. */
	exchange(f, fd, "GET /ok HTTP/1.1\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	response_done(&r);
	close(fd);
}

static void test_bad_reply_closes(void **state)
{
	struct fixture *f = *state;
	int fd = client_connect(f);
	struct cbuf b = {};

	client_send_str(f, fd, "GET /bad-reply HTTP/1.1\r\n\r\n");
	wait_eof(f, fd, &b);
	assert_int_equal(b.len, 0);
	assert_int_equal(f->last_reply_r, -EINVAL);
	assert_int_equal(http_server_n_connections(f->server), 0);
	cbuf_done(&b);
	close(fd);
}

static void test_malformed(void **state)
{
	struct fixture *f = *state;
	const char *requests[] = {
		"GARBAGE\r\n\r\n",
		"GET /x HTTP/1.1 trailing\r\n\r\n",
		"GET /x HTTP/1.1\r\nNo colon here\r\n\r\n",
		"GET x HTTP/1.1\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\n\r\n",
		"CONNECT localhost:443 HTTP/1.1\r\n\r\n",
		"GET /a%00b HTTP/1.1\r\n\r\n",
		"GET /a%zz HTTP/1.1\r\n\r\n",
		"GET /a%4 HTTP/1.1\r\n\r\n",
		"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"POST /x HTTP/1.1\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n",
	};

	for (size_t i = 0; i < ELEMENTSOF(requests); i++)
		expect_error_and_close(f, requests[i], strlen(requests[i]), 400, "bad-request");
	assert_int_equal(f->n_requests, 0);
}

static void test_headers_too_large(void **state)
{
	struct fixture *f = *state;
	size_t big = 70 * 1024;
	char *req = malloc(big + 64);
	int n;

	assert_non_null(req);
	n = snprintf(req, 64, "GET / HTTP/1.1\r\nX-Big: ");
	memset(req + n, 'a', big);
	memcpy(req + n + big, "\r\n\r\n", 4);
	expect_error_and_close(f, req, (size_t)n + big + 4, 431, "headers-too-large");
	free(req);
	assert_int_equal(f->n_requests, 0);
}

static void test_body_too_large(void **state)
{
	struct fixture *f = *state;
	size_t big = 70 * 1024, len;
	char *req = malloc(big + 4096);
	int n;

	/* Declared with Content-Length: refused before the body is read. */
	assert_non_null(req);
	n = snprintf(req, 128, "POST /echo HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", big);
	memset(req + n, 'b', big);
	expect_error_and_close(f, req, (size_t)n + big, 413, "payload-too-large");

	/* Chunked: refused once the bytes exceed the limit. */
	len = (size_t)snprintf(req, 128,
			       "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (unsigned i = 0; i < 70; i++) {
		len += (size_t)snprintf(req + len, 16, "400\r\n");
		memset(req + len, 'c', 1024);
		len += 1024;
		memcpy(req + len, "\r\n", 2);
		len += 2;
	}
	memcpy(req + len, "0\r\n\r\n", 5);
	len += 5;
	expect_error_and_close(f, req, len, 413, "payload-too-large");
	free(req);
	assert_int_equal(f->n_requests, 0);
}

static void test_body_within_limit(void **state)
{
	struct fixture *f = *state;
	size_t big = 60 * 1024;
	char *req = malloc(big + 256);
	int fd = client_connect(f);
	struct cbuf b = {};
	struct response r;
	int n;

	assert_non_null(req);
	n = snprintf(req, 256,
		     "PUT /echo HTTP/1.1\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n",
		     big);
	memset(req + n, 'd', big);
	assert_true(client_send(f, fd, req, (size_t)n + big));
	wait_responses(f, fd, &b, 1);
	assert_true(response_parse(b.data, b.len, false, &r) > 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, big);
	assert_true(memcmp(r.body, req + n, big) == 0);
	assert_string_equal(f->last_content_type, "application/json");
	response_done(&r);
	cbuf_done(&b);
	free(req);
	close(fd);
}

static void test_expect_continue(void **state)
{
	struct fixture *f = *state;
	const char *interim = "HTTP/1.1 100 Continue\r\n\r\n";
	int fd = client_connect(f);
	struct cbuf b = {};
	struct response r;

	client_send_str(f, fd,
			"POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
	for (unsigned i = 0; i < WAIT_ITERATIONS && b.len < strlen(interim); i++) {
		pump(f, 10 * MSEC);
		client_read(fd, &b);
	}
	assert_string_equal(b.data, interim);
	assert_int_equal(f->n_requests, 0);
	cbuf_done(&b);

	exchange(f, fd, "data", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "data");
	response_done(&r);
	close(fd);
}

static void test_header_timeout(void **state)
{
	struct fixture *f = *state;
	struct http_limits l = test_limits();

	l.header_timeout_usec = 200 * MSEC;
	server_restart(f, &l);
	/* Half a request, then silence: the loop's timer answers 408 and closes. */
	expect_error_and_close(f, "GET /slow HTTP/1.1\r\nHost: x\r\n",
			       strlen("GET /slow HTTP/1.1\r\nHost: x\r\n"), 408, "request-timeout");
	assert_int_equal(f->n_requests, 0);
	assert_int_equal(http_server_n_connections(f->server), 0);
}

static void test_idle_timeout(void **state)
{
	struct fixture *f = *state;
	struct http_limits l = test_limits();
	struct cbuf b = {};
	struct response r;
	int fd;

	l.idle_timeout_usec = 200 * MSEC;
	server_restart(f, &l);
	fd = client_connect(f);
	exchange(f, fd, "GET /x HTTP/1.1\r\n\r\n", &r);
	response_done(&r);
	/* An idle keep-alive connection is closed without a word. */
	wait_eof(f, fd, &b);
	assert_int_equal(b.len, 0);
	assert_int_equal(http_server_n_connections(f->server), 0);
	cbuf_done(&b);
	close(fd);
}

static void test_max_connections(void **state)
{
	struct fixture *f = *state;
	struct http_limits l = test_limits();
	int fds[2], fd;
	struct response r;

	l.max_connections = 2;
	server_restart(f, &l);
	for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
		fds[i] = client_connect(f);
		exchange(f, fds[i], "GET /x HTTP/1.1\r\n\r\n", &r);
		assert_int_equal(r.status, 200);
		response_done(&r);
	}
	assert_int_equal(http_server_n_connections(f->server), 2);

	/* Full of idle connections: the oldest gives way to a new one. */
	fd = client_connect(f);
	exchange(f, fd, "GET /y HTTP/1.1\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	response_done(&r);
	{
		struct cbuf b = {};

		wait_eof(f, fds[0], &b);
		assert_int_equal(b.len, 0);
		cbuf_done(&b);
	}
	close(fds[0]);
	assert_int_equal(http_server_n_connections(f->server), 2);

	/* Full of connections that wait for an answer: a new one is refused. */
	client_send_str(f, fd, "GET /async HTTP/1.1\r\n\r\n");
	for (unsigned i = 0; i < WAIT_ITERATIONS && !f->pending; i++)
		pump(f, 10 * MSEC);
	assert_non_null(f->pending);
	{
		struct http_conn *first = f->pending;

		f->pending = NULL;
		client_send_str(f, fds[1], "GET /async HTTP/1.1\r\n\r\n");
		for (unsigned i = 0; i < WAIT_ITERATIONS && !f->pending; i++)
			pump(f, 10 * MSEC);
		assert_non_null(f->pending);
		expect_error_and_close(f, "GET /x HTTP/1.1\r\n\r\n",
				       strlen("GET /x HTTP/1.1\r\n\r\n"), 503, "unavailable");
		assert_int_equal(http_conn_reply(first, 200, NULL, NULL, "a", 1), 0);
		assert_int_equal(http_conn_reply(f->pending, 200, NULL, NULL, "b", 1), 0);
		f->pending = NULL;
	}
	close(fd);
	close(fds[1]);
}

static void test_head(void **state)
{
	struct fixture *f = *state;
	int fd = client_connect(f);
	struct cbuf b = {};
	struct response h = {}, g = {};
	size_t n = 0, m = 0;

	/* A GET right behind the HEAD: the HEAD answer must end with its headers. */
	client_send_str(f, fd, "HEAD /x HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\n\r\n");
	for (unsigned i = 0; i < WAIT_ITERATIONS; i++) {
		pump(f, 10 * MSEC);
		client_read(fd, &b);
		n = response_parse(b.data, b.len, true, &h);
		if (n > 0) {
			m = response_parse(b.data + n, b.len - n, false, &g);
			if (m > 0)
				break;
			response_done(&h);
		}
	}
	assert_true(n > 0 && m > 0);
	assert_int_equal(n + m, b.len);
	assert_int_equal(h.status, 200);
	/* The length the GET answer would have: "HEAD /x". */
	assert_string_equal(response_header(&h, "Content-Length"), "7");
	assert_int_equal(g.status, 200);
	assert_string_equal(g.body, "GET /x");
	response_done(&h);
	response_done(&g);
	cbuf_done(&b);
	close(fd);
}

static void test_path_decoding(void **state)
{
	struct fixture *f = *state;
	int fd = client_connect(f);
	struct response r;

	exchange(f, fd, "GET /v1/devices/0000%3A17%3a00.0?x=%41&y HTTP/1.1\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(f->last_path, "/v1/devices/0000:17:00.0");
	assert_string_equal(f->last_query, "x=%41&y"); /* the query is passed raw */
	response_done(&r);

	exchange(f, fd, "GET /a%20b/%2F? HTTP/1.1\r\n\r\n", &r);
	assert_string_equal(f->last_path, "/a b//");
	assert_null(f->last_query); /* an empty query is no query */
	response_done(&r);

	/* Absolute form: the path is what counts. */
	exchange(f, fd, "GET http://localhost/abs HTTP/1.1\r\n\r\n", &r);
	assert_string_equal(f->last_path, "/abs");
	response_done(&r);
	close(fd);
}

static void test_peer_credentials(void **state)
{
	struct fixture *f = *state;
	int fd = client_connect(f);
	struct response r;

	exchange(f, fd, "GET /who HTTP/1.1\r\n\r\n", &r);
	response_done(&r);
	assert_int_equal(f->last_cred.pid, getpid());
	assert_int_equal(f->last_cred.uid, getuid());
	assert_int_equal(f->last_cred.gid, getgid());
	close(fd);
}

/* Decodes complete chunks after the headers of @b into @out; true once the last chunk came. */
static bool parse_chunked(const struct cbuf *b, char *out, size_t size)
{
	const char *p = b->data ? strstr(b->data, "\r\n\r\n") : NULL;
	const char *end = b->data + b->len;
	size_t o = 0;

	out[0] = '\0';
	if (!p)
		return false;
	p += 4;
	while (p < end) {
		char *e;
		unsigned long n = strtoul(p, &e, 16);

		if (e == p || end - e < 2 || strncmp(e, "\r\n", 2) != 0)
			return false;
		e += 2;
		if ((size_t)(end - e) < n + 2)
			return false;
		if (n == 0)
			return true;
		assert_true(o + n < size);
		memcpy(out + o, e, n);
		o += n;
		out[o] = '\0';
		p = e + n + 2;
	}
	return false;
}

static void stream_open(struct fixture *f, int fd, struct cbuf *b)
{
	client_send_str(f, fd, "GET /stream HTTP/1.1\r\n\r\n");
	for (unsigned i = 0; i < WAIT_ITERATIONS && (!b->data || !strstr(b->data, "\r\n\r\n"));
	     i++) {
		pump(f, 10 * MSEC);
		client_read(fd, b);
	}
	assert_non_null(f->stream);
	assert_non_null(strstr(b->data, "\r\nTransfer-Encoding: chunked\r\n"));
	assert_non_null(strstr(b->data, "\r\nConnection: close\r\n"));
}

static void test_stream(void **state)
{
	struct fixture *f = *state;

	/* The client hangs up by shutting down its side, or by closing the socket. */
	for (unsigned mode = 0; mode < 2; mode++) {
		int fd = client_connect(f);
		struct cbuf b = {};
		char text[256];

		stream_open(f, fd, &b);
		/* Input on a stream is read and ignored. */
		client_send_str(f, fd, "ignored input");
		for (unsigned i = 0; i < 10; i++)
			pump(f, 0);
		assert_int_equal(http_conn_stream_send(f->stream, "hello ", 6), 0);
		assert_int_equal(http_conn_stream_send(f->stream, "", 0), 0);
		assert_int_equal(http_conn_stream_send(f->stream, "world", 5), 0);
		for (unsigned i = 0; i < WAIT_ITERATIONS; i++) {
			pump(f, 10 * MSEC);
			client_read(fd, &b);
			parse_chunked(&b, text, sizeof(text));
			if (streq(text, "hello world"))
				break;
		}
		assert_string_equal(text, "hello world");
		assert_false(b.eof);
		assert_int_equal(f->n_on_close, mode);

		/* on_close fires exactly once. */
		if (mode == 0)
			assert_int_equal(shutdown(fd, SHUT_WR), 0);
		else
			close(fd);
		for (unsigned i = 0; i < WAIT_ITERATIONS && f->stream; i++)
			pump(f, 10 * MSEC);
		assert_int_equal(f->n_on_close, mode + 1);
		assert_null(f->stream);
		assert_int_equal(http_server_n_connections(f->server), 0);
		for (unsigned i = 0; i < 5; i++)
			pump(f, 0);
		assert_int_equal(f->n_on_close, mode + 1);
		if (mode == 0) {
			client_read(fd, &b);
			assert_true(b.eof);
			close(fd);
		}
		cbuf_done(&b);
	}
}

static void test_stream_end(void **state)
{
	struct fixture *f = *state;
	int fd = client_connect(f);
	struct cbuf b = {};
	char text[256];

	stream_open(f, fd, &b);
	assert_int_equal(http_conn_stream_send(f->stream, "bye", 3), 0);
	http_conn_stream_end(f->stream);
	f->stream = NULL;
	wait_eof(f, fd, &b);
	assert_true(parse_chunked(&b, text, sizeof(text)));
	assert_string_equal(text, "bye");
	assert_int_equal(f->n_on_close, 0); /* not for an end the owner asked for */
	cbuf_done(&b);
	close(fd);
}

static void test_stream_server_free(void **state)
{
	struct fixture *f = *state;
	int fd = client_connect(f);
	struct cbuf b = {};
	char text[256];

	stream_open(f, fd, &b);
	assert_int_equal(http_conn_stream_send(f->stream, "last", 4), 0);
	f->server = http_server_free(f->server);
	assert_int_equal(f->n_on_close, 1);
	assert_null(f->stream);
	client_read(fd, &b);
	assert_true(b.eof);
	assert_true(parse_chunked(&b, text, sizeof(text)));
	assert_string_equal(text, "last");
	cbuf_done(&b);
	close(fd);
}

static void test_stream_slow_reader(void **state)
{
	struct fixture *f = *state;
	struct http_limits l = test_limits();
	char chunk[1024];
	struct cbuf b = {};
	int fd, r = 0;
	unsigned i;

	l.max_output_bytes = 4096;
	server_restart(f, &l);
	fd = client_connect(f);
	stream_open(f, fd, &b);

	/* The client never reads: once the socket is full, output queues up to the limit. */
	memset(chunk, 'e', sizeof(chunk));
	for (i = 0; i < 100000 && r == 0; i++) {
		r = http_conn_stream_send(f->stream, chunk, sizeof(chunk));
		pump(f, 0);
	}
	assert_int_equal(r, -ENOBUFS);
	assert_int_equal(f->n_on_close, 1);
	assert_null(f->stream);
	/* The reader that comes back gets whole chunks and a proper end, then EOF. */
	{
		char *text;

		wait_eof(f, fd, &b);
		text = malloc(b.len + 1);
		assert_non_null(text);
		assert_true(parse_chunked(&b, text, b.len + 1));
		assert_true(strlen(text) % sizeof(chunk) == 0);
		free(text);
		cbuf_done(&b);
	}
	assert_int_equal(http_server_n_connections(f->server), 0);
	close(fd);
}

/* A stream of JSON lines that is dropped ends with a line saying why, after whole lines. */
static void test_stream_dropped_line(void **state)
{
	struct fixture *f = *state;
	struct http_limits l = test_limits();
	char line[200];
	struct cbuf b = {};
	char *text, *last;
	int fd, r = 0;

	l.max_output_bytes = 8192;
	server_restart(f, &l);
	fd = client_connect(f);
	client_send_str(f, fd, "GET /ndjson HTTP/1.1\r\n\r\n");
	for (unsigned i = 0; i < WAIT_ITERATIONS && (!b.data || !strstr(b.data, "\r\n\r\n")); i++) {
		pump(f, 10 * MSEC);
		client_read(fd, &b);
	}
	assert_non_null(f->stream);
	memset(line, 'e', sizeof(line));
	memcpy(line, "{\"e\":\"", 6);
	memcpy(line + sizeof(line) - 3, "\"}\n", 3);
	for (unsigned i = 0; i < 100000 && r == 0; i++) {
		r = http_conn_stream_send(f->stream, line, sizeof(line));
		pump(f, 0);
	}
	assert_int_equal(r, -ENOBUFS);
	assert_int_equal(f->n_on_close, 1);

	wait_eof(f, fd, &b);
	text = malloc(b.len + 1);
	assert_non_null(text);
	assert_true(parse_chunked(&b, text, b.len + 1));
	last = strrchr(text, '\n');
	assert_non_null(last);
	*last = '\0';
	last = strrchr(text, '\n');
	assert_non_null(last);
	/* every line before the last is whole */
	assert_true((size_t)(last + 1 - text) % sizeof(line) == 0);
	{
		json_t *j = json_loads(last + 1, 0, NULL);

		assert_non_null(j);
		assert_string_equal(json_string_value(json_object_get(j, "type")), "dropped");
		assert_string_equal(json_string_value(json_object_get(j, "error")), "slow-reader");
		assert_non_null(strstr(json_string_value(json_object_get(j, "message")),
				       "more than 8192 bytes behind"));
		json_decref(j);
	}
	free(text);
	cbuf_done(&b);
	close(fd);
}

/* Over the user's budget, the stream furthest behind goes; a reader that keeps up stays. */
static void test_stream_user_budget(void **state)
{
	struct fixture *f = *state;
	struct http_limits l = test_limits();
	char line[200];
	struct cbuf a = {}, b = {};
	int fa, fb;
	unsigned sent = 0;

	l.max_output_bytes = 1024 * 1024;
	l.max_output_bytes_per_uid = 64 * 1024;
	server_restart(f, &l);
	fa = client_connect(f);
	client_send_str(f, fa, "GET /ndjson HTTP/1.1\r\n\r\n");
	fb = client_connect(f);
	client_send_str(f, fb, "GET /second HTTP/1.1\r\n\r\n");
	for (unsigned i = 0; i < WAIT_ITERATIONS && (!f->stream || !f->stream2); i++)
		pump(f, 10 * MSEC);
	assert_non_null(f->stream);
	assert_non_null(f->stream2);

	memset(line, 'e', sizeof(line));
	memcpy(line, "{\"e\":\"", 6);
	memcpy(line + sizeof(line) - 3, "\"}\n", 3);
	/* Like the API's broadcast: every line to both; only b's client reads. */
	for (unsigned i = 0; i < 4000 && f->stream; i++) {
		if (f->stream)
			(void)http_conn_stream_send(f->stream, line, sizeof(line));
		assert_int_equal(http_conn_stream_send(f->stream2, line, sizeof(line)), 0);
		sent++;
		pump(f, 0);
		client_read(fb, &b);
	}
	assert_null(f->stream);
	assert_int_equal(f->n_on_close, 1);
	assert_non_null(f->stream2);
	assert_int_equal(f->n_on_close2, 0);

	/* a's client learns why; b's got every line */
	wait_eof(f, fa, &a);
	assert_non_null(strstr(a.data, "\"type\":\"dropped\""));
	assert_non_null(strstr(a.data, "the event streams of uid"));
	http_conn_stream_end(f->stream2);
	f->stream2 = NULL;
	wait_eof(f, fb, &b);
	{
		char *text = malloc(b.len + 1);

		assert_non_null(text);
		assert_true(parse_chunked(&b, text, b.len + 1));
		assert_int_equal(strlen(text), (size_t)sent * sizeof(line));
		free(text);
	}
	cbuf_done(&a);
	cbuf_done(&b);
	close(fa);
	close(fb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_reply_keeps_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_client_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handler_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_reply_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_headers_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_within_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expect_continue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_path_decoding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_credentials, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_server_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_slow_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_dropped_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_user_budget, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
