/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libxpu: HTTP/1.1 over xpud's Unix socket, one request per connection.
 *
 * The response parser is deliberately small and strict: it reads through a fixed 64 KiB buffer,
 * accepts HTTP/1.0 and 1.1 status lines, Content-Length, chunked and close-delimited bodies,
 * and bounds everything a misbehaving peer controls (line length, header count and size,
 * interim answers, body size). Anything it does not understand is -EBADMSG rather than a
 * guess; a peer that goes away mid-answer is -ECONNRESET. Nothing here prints or logs.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "client-internal.h"
#include "shared/macro.h"
#include "xpu/client.h"

#define _public_ __attribute__((visibility("default")))

#define CLIENT_TIMEOUT_SEC 30
#define RESPONSE_MAX ((size_t)64 * 1024 * 1024) /* body of one answer, or one streamed document */
#define HEAD_MAX (64 * 1024)			  /* status line + headers, or all trailers */
#define HTTP_LINE_MAX (8 * 1024)		  /* any single line of a head or chunk header */
#define HEADERS_MAX 100
#define INTERIM_MAX 8 /* 1xx answers tolerated before the real one */
#define READ_BUF_SIZE (64 * 1024)
#define PATH_LEN_MAX 4096

struct xpu_client {
	char *socket_path;
	int fd; /* connected by xpu_client_new(), consumed by the first request */
	int last_status;
	json_t *last_error;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(struct xpu_client *, xpu_client_free);

/* jansson (>= 2.9) provides json_decrefp() for GCC/Clang cleanup attributes. */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* ---- byte helpers (ASCII only: the C library's are locale-dependent) --------------------- */

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool ascii_caseeq_n(const char *a, size_t a_len, const char *b)
{
	if (a_len != strlen(b))
		return false;
	for (size_t i = 0; i < a_len; i++)
		if (ascii_lower(a[i]) != ascii_lower(b[i]))
			return false;
	return true;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
	if (is_digit(c))
		return c - '0';
	c = ascii_lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* RFC 9110 token characters, for header names. */
static bool is_tchar(char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c);
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* ---- growable buffer with a hard cap ----------------------------------------------------- */

struct buffer {
	char *data;
	size_t len;
	size_t allocated;
};

static void buffer_done(struct buffer *b)
{
	free(b->data);
	*b = (struct buffer){};
}

static int buffer_reserve(struct buffer *b, size_t n)
{
	size_t want;
	char *p;

	if (n > RESPONSE_MAX - b->len)
		return -EMSGSIZE;
	if (b->len + n <= b->allocated)
		return 0;

	want = MAX(b->allocated * 2, b->len + n);
	want = MIN(MAX(want, (size_t)4096), RESPONSE_MAX);
	p = realloc(b->data, want);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->allocated = want;
	return 0;
}

static int buffer_append(struct buffer *b, const char *p, size_t n)
{
	int r;

	if (n == 0)
		return 0;
	r = buffer_reserve(b, n);
	if (r < 0)
		return r;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

/*
 * Parses a JSON document from @p. Whitespace-only input is "no document": 0 with *ret = NULL.
 * jansson bounds nesting depth itself; it also rejects embedded NULs by default.
 */
static int json_parse(const char *p, size_t n, json_t **ret)
{
	json_error_t error;
	json_t *doc;
	size_t i;

	for (i = 0; i < n && is_json_space(p[i]); i++)
		;
	if (i == n) {
		*ret = NULL;
		return 0;
	}

	doc = json_loadb(p, n, 0, &error);
	if (!doc)
		return -EBADMSG;
	*ret = doc;
	return 0;
}

/* ---- socket ----------------------------------------------------------------------------- */

static int set_timeout(int fd, int optname, unsigned sec)
{
	struct timeval tv = { .tv_sec = sec };

	return RET_NERRNO(setsockopt(fd, SOL_SOCKET, optname, &tv, sizeof(tv)));
}

static int socket_connect(const char *path, int *ret_fd)
{
	_cleanup_close_ int fd = -EBADF;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	int r;

	if (len == 0)
		return -EINVAL;
	if (len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, len);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;

	/* A Unix-socket connect() blocks while the listener's backlog is full; bound that too. */
	r = set_timeout(fd, SO_SNDTIMEO, CLIENT_TIMEOUT_SEC);
	if (r < 0)
		return r;

	if (connect(fd, (const struct sockaddr *)&sa,
		    offsetof(struct sockaddr_un, sun_path) + len + 1) < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;

	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* Whether the connection made by xpu_client_new() is still usable (the peer has not closed it). */
static bool connection_is_fresh(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, 0) == 0;
}

static int client_acquire_fd(struct xpu_client *c, bool stream, int *ret_fd)
{
	_cleanup_close_ int fd = TAKE_FD(c->fd);
	int r;

	if (fd >= 0 && !connection_is_fresh(fd))
		fd = safe_close(fd);
	if (fd < 0) {
		r = socket_connect(c->socket_path, &fd);
		if (r < 0)
			return r;
	}

	/* A stream may be silent for hours; a plain answer is due promptly. */
	r = set_timeout(fd, SO_RCVTIMEO, stream ? 0 : CLIENT_TIMEOUT_SEC);
	if (r < 0)
		return r;

	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int send_all(int fd, const char *p, size_t n, bool interruptible)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0) {
			if (errno == EINTR && !interruptible)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return -ETIMEDOUT;
			return -errno;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static bool method_is_valid(const char *method)
{
	size_t n = strlen(method);

	if (n == 0 || n > 16)
		return false;
	for (size_t i = 0; i < n; i++)
		if (method[i] < 'A' || method[i] > 'Z')
			return false;
	return true;
}

/* An origin-form request target: no spaces, controls or non-ASCII bytes that could split it. */
static bool path_is_valid(const char *path)
{
	size_t n = strlen(path);

	if (n == 0 || n > PATH_LEN_MAX || path[0] != '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)path[i] <= 0x20 || (unsigned char)path[i] >= 0x7f)
			return false;
	return true;
}

static int send_request(int fd, const char *method, const char *path, const json_t *body,
			const char *accept, bool interruptible)
{
	_cleanup_free_ char *payload = NULL, *head = NULL;
	char length[80] = "";
	size_t payload_len = 0;
	int n, r;

	if (body) {
		payload = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (!payload)
			return -ENOMEM;
		payload_len = strlen(payload);
	}
	/* Methods with body semantics get an explicit length, even an empty one. */
	if (body || streq(method, "POST") || streq(method, "PUT") || streq(method, "PATCH"))
		snprintf(length, sizeof(length),
			 "Content-Type: application/json\r\nContent-Length: %zu\r\n", payload_len);

	n = asprintf(&head,
		     "%s %s HTTP/1.1\r\n"
		     "Host: localhost\r\n"
		     "User-Agent: libxpu/" XPU_VERSION "\r\n"
		     "Accept: %s\r\n"
		     "Connection: close\r\n"
		     "%s"
		     "\r\n",
		     method, path, accept, length);
	if (n < 0) {
		head = NULL; /* asprintf() leaves it undefined on failure */
		return -ENOMEM;
	}

	r = send_all(fd, head, (size_t)n, interruptible);
	if (r < 0)
		return r;
	return send_all(fd, payload, payload_len, interruptible);
}

/* ---- response reader -------------------------------------------------------------------- */

struct reader {
	int fd;
	bool interruptible;
	size_t start, end; /* unconsumed bytes are buf[start..end) */
	char buf[READ_BUF_SIZE];
};

/* A reader for a connection that is yet to be set in ->fd. */
static struct reader *reader_new(bool interruptible)
{
	struct reader *r = malloc(sizeof(*r));

	if (!r)
		return NULL;
	r->fd = -EBADF;
	r->interruptible = interruptible;
	r->start = r->end = 0;
	return r;
}

static struct reader *reader_free(struct reader *r)
{
	if (r) {
		safe_close(r->fd);
		free(r);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct reader *, reader_free);

/* Reads more bytes. Returns 1 when some arrived, 0 at end of stream, -errno on error. */
static int reader_fill(struct reader *r)
{
	ssize_t n;

	if (r->start == r->end) {
		r->start = r->end = 0;
	} else if (r->end == sizeof(r->buf) && r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->end == sizeof(r->buf))
		return -EMSGSIZE;

	for (;;) {
		n = recv(r->fd, r->buf + r->end, sizeof(r->buf) - r->end, 0);
		if (n >= 0)
			break;
		if (errno == EINTR && !r->interruptible)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -ETIMEDOUT;
		return -errno;
	}
	r->end += (size_t)n;
	return n > 0;
}

/*
 * Returns the next line without its CRLF (a bare LF is tolerated), NUL-terminated in place and
 * valid until the next reader call. Lines with NUL or stray CR bytes are rejected.
 */
static int reader_line(struct reader *r, char **ret_line, size_t *ret_len)
{
	for (;;) {
		size_t have = r->end - r->start;
		char *nl = memchr(r->buf + r->start, '\n', have);
		int k;

		if (nl) {
			char *line = r->buf + r->start;
			size_t len = (size_t)(nl - line);

			r->start += len + 1;
			if (len > 0 && line[len - 1] == '\r')
				len--;
			if (len > HTTP_LINE_MAX)
				return -EMSGSIZE;
			if (memchr(line, '\0', len) || memchr(line, '\r', len))
				return -EBADMSG;
			line[len] = '\0';
			*ret_line = line;
			*ret_len = len;
			return 0;
		}
		/*
		 * Too long already, whatever follows; but a CR at the end may be half of a CRLF
		 * still on its way, which the limit does not count: where reads split an answer
		 * must not change how it parses.
		 */
		if (have > 0 && r->buf[r->end - 1] == '\r')
			have--;
		if (have > HTTP_LINE_MAX)
			return -EMSGSIZE;

		k = reader_fill(r);
		if (k < 0)
			return k;
		if (k == 0)
			return -ECONNRESET;
	}
}

/*
 * Checks the first bytes against "HTTP/" as soon as they arrive, so that a peer speaking
 * something else is -EBADMSG even when it never sends a newline or closes early.
 */
static int reader_expect_http(struct reader *r)
{
	static const char prefix[] = "HTTP/";
	const size_t prefix_len = sizeof(prefix) - 1;

	for (;;) {
		size_t n = MIN(r->end - r->start, prefix_len);
		int k;

		if (memcmp(r->buf + r->start, prefix, n) != 0)
			return -EBADMSG;
		if (n == prefix_len)
			return 0;

		k = reader_fill(r);
		if (k < 0)
			return k;
		if (k == 0)
			return -ECONNRESET;
	}
}

/* Hands body bytes to the consumer; a non-zero return stops reading and is passed up. */
typedef int (*sink_fn)(const char *p, size_t n, void *userdata);

/* Passes exactly @n bytes (or everything up to the end of the stream when @to_eof) to @sink. */
static int reader_copy(struct reader *r, uint64_t n, bool to_eof, sink_fn sink, void *userdata)
{
	while (to_eof || n > 0) {
		size_t have = r->end - r->start;
		int k;

		if (have > 0) {
			size_t take = to_eof ? have : (size_t)MIN((uint64_t)have, n);

			k = sink(r->buf + r->start, take, userdata);
			if (k != 0)
				return k;
			r->start += take;
			if (!to_eof)
				n -= take;
			continue;
		}

		k = reader_fill(r);
		if (k < 0)
			return k;
		if (k == 0)
			return to_eof ? 0 : -ECONNRESET;
	}
	return 0;
}

struct response_head {
	int status;
	bool chunked;
	bool have_length;
	uint64_t length;
};

static int parse_status_line(const char *line, size_t len, int *ret_status)
{
	const char *p;

	/* "HTTP/1.x SP 3DIGIT [SP reason]" */
	if (len < 12 || strncmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
	    line[8] != ' ')
		return -EBADMSG;
	p = line + 9;
	if (p[0] < '1' || p[0] > '5' || !is_digit(p[1]) || !is_digit(p[2]))
		return -EBADMSG;
	if (p[3] != ' ' && p[3] != '\0')
		return -EBADMSG;

	*ret_status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	return 0;
}

static int parse_content_length(const char *v, size_t len, uint64_t *ret)
{
	uint64_t n = 0;

	if (len == 0 || len > 19)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(v[i]))
			return -EBADMSG;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	*ret = n;
	return 0;
}

/* Splits "Name: value" and returns the name's length and the trimmed value. */
static int split_header(char *line, size_t len, size_t *ret_name_len, char **ret_value,
			size_t *ret_value_len)
{
	char *colon = memchr(line, ':', len), *v, *e;

	if (!colon || colon == line)
		return -EBADMSG;
	/* Also rejects obsolete line folding and whitespace before the colon (RFC 9112 5.1). */
	for (char *p = line; p < colon; p++)
		if (!is_tchar(*p))
			return -EBADMSG;

	v = colon + 1;
	e = line + len;
	while (v < e && is_ows(*v))
		v++;
	while (e > v && is_ows(e[-1]))
		e--;

	*ret_name_len = (size_t)(colon - line);
	*ret_value = v;
	*ret_value_len = (size_t)(e - v);
	return 0;
}

static int parse_header(char *line, size_t len, struct response_head *h, bool *seen_te)
{
	size_t name_len, value_len;
	uint64_t length;
	char *value;
	int r;

	r = split_header(line, len, &name_len, &value, &value_len);
	if (r < 0)
		return r;

	if (ascii_caseeq_n(line, name_len, "content-length")) {
		r = parse_content_length(value, value_len, &length);
		if (r < 0)
			return r;
		if (h->have_length && h->length != length)
			return -EBADMSG;
		h->have_length = true;
		h->length = length;
	} else if (ascii_caseeq_n(line, name_len, "transfer-encoding")) {
		/* We ask for nothing else: any coding but plain "chunked" is not for us. */
		if (*seen_te || !ascii_caseeq_n(value, value_len, "chunked"))
			return -EBADMSG;
		*seen_te = true;
		h->chunked = true;
	}
	return 0;
}

static int read_head(struct reader *r, struct response_head *ret)
{
	for (unsigned interim = 0;; interim++) {
		struct response_head h = {};
		size_t total = 0, len;
		unsigned n_headers = 0;
		bool seen_te = false;
		char *line;
		int k;

		k = reader_expect_http(r);
		if (k < 0)
			return k;
		k = reader_line(r, &line, &len);
		if (k < 0)
			return k;
		k = parse_status_line(line, len, &h.status);
		if (k < 0)
			return k;
		total = len;

		for (;;) {
			k = reader_line(r, &line, &len);
			if (k < 0)
				return k;
			if (len == 0)
				break;
			total += len;
			if (total > HEAD_MAX || ++n_headers > HEADERS_MAX)
				return -EMSGSIZE;
			k = parse_header(line, len, &h, &seen_te);
			if (k < 0)
				return k;
		}

		if (h.status >= 200) {
			/* Both framings at once is how responses get smuggled: refuse. */
			if (h.chunked && h.have_length)
				return -EBADMSG;
			/* These never carry a body, whatever the headers say. */
			if (h.status == 204 || h.status == 304) {
				h.chunked = false;
				h.have_length = true;
				h.length = 0;
			}
			*ret = h;
			return 0;
		}

		/* We never ask to switch protocols; other 1xx answers precede the real one. */
		if (h.status == 101 || interim + 1 > INTERIM_MAX)
			return -EBADMSG;
	}
}

static int parse_chunk_size(const char *line, uint64_t *ret)
{
	unsigned digits = 0;
	uint64_t n = 0;
	const char *p;
	int d;

	for (p = line; (d = hex_value(*p)) >= 0; p++) {
		if (n == 0 && d == 0) {
			digits = MAX(digits, 1u);
			continue;
		}
		if (++digits > 15)
			return -EMSGSIZE;
		n = n * 16 + (uint64_t)d;
	}
	if (digits == 0)
		return -EBADMSG;
	while (is_ows(*p))
		p++;
	/* Chunk extensions carry nothing we use. */
	if (*p != '\0' && *p != ';')
		return -EBADMSG;

	*ret = n;
	return 0;
}

static int read_chunked(struct reader *r, sink_fn sink, void *userdata)
{
	size_t total = 0, len;
	unsigned n_trailers = 0;
	uint64_t size;
	char *line;
	int k;

	for (;;) {
		k = reader_line(r, &line, &len);
		if (k < 0)
			return k;
		k = parse_chunk_size(line, &size);
		if (k < 0)
			return k;
		if (size == 0)
			break;
		if (size > RESPONSE_MAX)
			return -EMSGSIZE;

		k = reader_copy(r, size, false, sink, userdata);
		if (k != 0)
			return k;

		k = reader_line(r, &line, &len);
		if (k < 0)
			return k;
		if (len != 0)
			return -EBADMSG;
	}

	/* Trailer fields: well-formed lines are skipped, bounded like headers. */
	for (;;) {
		size_t name_len, value_len;
		char *value;

		k = reader_line(r, &line, &len);
		if (k < 0)
			return k;
		if (len == 0)
			return 0;
		total += len;
		if (total > HEAD_MAX || ++n_trailers > HEADERS_MAX)
			return -EMSGSIZE;
		k = split_header(line, len, &name_len, &value, &value_len);
		if (k < 0)
			return k;
	}
}

static int read_body(struct reader *r, const struct response_head *h, sink_fn sink,
		     void *userdata)
{
	if (h->chunked)
		return read_chunked(r, sink, userdata);
	if (h->have_length)
		return reader_copy(r, h->length, false, sink, userdata);
	/* Neither: the body ends when the daemon closes the connection (RFC 9112 6.3). */
	return reader_copy(r, 0, true, sink, userdata);
}

static int buffer_sink(const char *p, size_t n, void *userdata)
{
	return buffer_append(userdata, p, n);
}

static int read_document(struct reader *r, const struct response_head *h, json_t **ret)
{
	struct buffer b = {};
	int k;

	if (!h->chunked && h->have_length && h->length > RESPONSE_MAX)
		return -EMSGSIZE;
	if (!h->chunked && h->have_length) {
		k = buffer_reserve(&b, (size_t)h->length);
		if (k < 0)
			return k;
	}

	k = read_body(r, h, buffer_sink, &b);
	if (k >= 0)
		k = json_parse(b.data, b.len, ret);
	buffer_done(&b);
	return k < 0 ? k : 0;
}

/* ---- the exchange ----------------------------------------------------------------------- */

static void client_clear_error(struct xpu_client *c)
{
	json_decref(c->last_error);
	c->last_error = NULL;
	c->last_status = 0;
}

static void client_set_error(struct xpu_client *c, int status, json_t *doc)
{
	client_clear_error(c);
	if (status < 400)
		return;
	c->last_status = status;
	c->last_error = json_incref(doc);
}

/* Sends one request; the reader then holds the connection, ready for the answer. */
static int client_exchange(struct xpu_client *c, const char *method, const char *path,
			   const json_t *body, bool stream, struct reader **ret_reader)
{
	_cleanup_(reader_freep) struct reader *r = NULL;
	int k;

	if (!method_is_valid(method) || !path_is_valid(path))
		return -EINVAL;

	r = reader_new(stream);
	if (!r)
		return -ENOMEM;
	k = client_acquire_fd(c, stream, &r->fd);
	if (k < 0)
		return k;
	k = send_request(r->fd, method, path, body,
			 stream ? "application/x-ndjson" : "application/json", stream);
	/* A daemon at its connection limit answers 503 at once and closes: the answer is read
	 * even though the request could not be sent whole. */
	if (k < 0 && k != -EPIPE && k != -ECONNRESET)
		return k;

	*ret_reader = TAKE_PTR(r);
	return 0;
}

static int status_to_errno(int status)
{
	switch (status) {
	case 400:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 405:
	case 501:
		return -EOPNOTSUPP;
	case 429:
	case 503:
		return -EAGAIN;
	default:
		return status >= 500 ? -EIO : -EPROTO;
	}
}

/* ---- streams ---------------------------------------------------------------------------- */

struct stream_ctx {
	xpu_client_event_cb cb;
	void *userdata;
	struct buffer line; /* a document split across reads */
	bool stopped;
	int cb_ret;
};

/* Parses one NDJSON line and hands it to the callback; blank lines are keep-alives. */
static int stream_dispatch(struct stream_ctx *s, const char *p, size_t n)
{
	_cleanup_json_ json_t *doc = NULL;
	int r;

	r = json_parse(p, n, &doc);
	if (r < 0)
		return r;
	if (!doc)
		return 0;

	r = s->cb(doc, s->userdata);
	if (r != 0) {
		s->stopped = true;
		s->cb_ret = r;
		return 1;
	}
	return 0;
}

static int stream_sink(const char *p, size_t n, void *userdata)
{
	struct stream_ctx *s = userdata;
	int r;

	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t len = nl ? (size_t)(nl - p) : n;

		if (!nl)
			return buffer_append(&s->line, p, n);

		if (s->line.len == 0) {
			/* The common case: a whole line in the read buffer, no copy. */
			r = stream_dispatch(s, p, len);
		} else {
			r = buffer_append(&s->line, p, len);
			if (r == 0)
				r = stream_dispatch(s, s->line.data, s->line.len);
			s->line.len = 0;
		}
		if (r != 0)
			return r;

		p += len + 1;
		n -= len + 1;
	}
	return 0;
}

/* ---- reading an answer ------------------------------------------------------------------ */

/* Reads the answer to a plain request from @r: the head, then one JSON document. */
static int client_read_answer(struct xpu_client *c, struct reader *r, int *ret_status,
			      json_t **ret_doc)
{
	_cleanup_json_ json_t *doc = NULL;
	struct response_head h;
	int k;

	k = read_head(r, &h);
	if (k < 0)
		return k;
	k = read_document(r, &h, &doc);
	if (k < 0)
		return k;

	client_set_error(c, h.status, doc);
	if (ret_status)
		*ret_status = h.status;
	if (ret_doc)
		*ret_doc = TAKE_PTR(doc);
	return 0;
}

/* Reads the answer to a stream request from @r, calling @cb for each document. */
static int client_read_stream(struct xpu_client *c, struct reader *r, xpu_client_event_cb cb,
			      void *userdata)
{
	struct stream_ctx s = { .cb = cb, .userdata = userdata };
	struct response_head h;
	int k;

	k = read_head(r, &h);
	if (k < 0)
		return k;

	if (h.status < 200 || h.status > 299) {
		_cleanup_json_ json_t *doc = NULL;

		k = read_document(r, &h, &doc);
		if (k < 0)
			return k;
		client_set_error(c, h.status, doc);
		return status_to_errno(h.status);
	}

	k = read_body(r, &h, stream_sink, &s);
	/* A last document without its newline still counts when the stream ended cleanly. */
	if (k == 0 && s.line.len > 0)
		k = stream_dispatch(&s, s.line.data, s.line.len);
	buffer_done(&s.line);
	if (s.stopped)
		return s.cb_ret;
	return k < 0 ? k : 0;
}

/* ---- internal entry points (client-internal.h; not exported) ---------------------------- */

static int client_alloc(const char *socket_path, struct xpu_client **ret)
{
	_cleanup_(xpu_client_freep) struct xpu_client *c = NULL;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -EBADF;
	c->socket_path = strdup(xpu_client_socket_path(socket_path));
	if (!c->socket_path)
		return -ENOMEM;

	*ret = TAKE_PTR(c);
	return 0;
}

int client_new_unconnected(const char *socket_path, struct xpu_client **ret)
{
	if (!ret)
		return -EINVAL;
	return client_alloc(socket_path, ret);
}

/* Wraps @fd, which is consumed whatever happens, in a reader with no request sent on it. */
static int client_adopt_fd(struct xpu_client *c, int fd, bool stream, struct reader **ret)
{
	_cleanup_close_ int owned = fd;
	struct reader *r;

	if (!c || fd < 0)
		return -EINVAL;
	r = reader_new(stream);
	if (!r)
		return -ENOMEM;
	r->fd = TAKE_FD(owned);
	*ret = r;
	return 0;
}

int client_request_fd(struct xpu_client *c, int fd, int *ret_status, json_t **ret_doc)
{
	_cleanup_(reader_freep) struct reader *r = NULL;
	int k;

	k = client_adopt_fd(c, fd, false, &r);
	if (k < 0)
		return k;
	client_clear_error(c);
	return client_read_answer(c, r, ret_status, ret_doc);
}

int client_stream_fd(struct xpu_client *c, int fd, xpu_client_event_cb cb, void *userdata)
{
	_cleanup_(reader_freep) struct reader *r = NULL;
	int k;

	if (!cb) {
		safe_close(fd);
		return -EINVAL;
	}
	k = client_adopt_fd(c, fd, true, &r);
	if (k < 0)
		return k;
	client_clear_error(c);
	return client_read_stream(c, r, cb, userdata);
}

/* ---- public API ------------------------------------------------------------------------- */

_public_ const char *xpu_client_socket_path(const char *socket_path)
{
	const char *e;

	if (!isempty(socket_path))
		return socket_path;
	e = secure_getenv("XPUD_SOCKET");
	if (!isempty(e))
		return e;
	return XPU_DEFAULT_SOCKET;
}

_public_ int xpu_client_new(const char *socket_path, struct xpu_client **ret)
{
	_cleanup_(xpu_client_freep) struct xpu_client *c = NULL;
	int r;

	if (!ret)
		return -EINVAL;

	r = client_alloc(socket_path, &c);
	if (r < 0)
		return r;
	r = socket_connect(c->socket_path, &c->fd);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(c);
	return 0;
}

_public_ struct xpu_client *xpu_client_free(struct xpu_client *c)
{
	if (!c)
		return NULL;
	safe_close(c->fd);
	json_decref(c->last_error);
	free(c->socket_path);
	free(c);
	return NULL;
}

_public_ int xpu_client_request(struct xpu_client *c, const char *method, const char *path,
				const json_t *body, int *ret_status, json_t **ret_doc)
{
	_cleanup_(reader_freep) struct reader *r = NULL;
	int k;

	if (!c || !method || !path)
		return -EINVAL;
	client_clear_error(c);

	k = client_exchange(c, method, path, body, false, &r);
	if (k < 0)
		return k;
	return client_read_answer(c, r, ret_status, ret_doc);
}

_public_ int xpu_client_stream(struct xpu_client *c, const char *path, xpu_client_event_cb cb,
			       void *userdata)
{
	_cleanup_(reader_freep) struct reader *r = NULL;
	int k;

	if (!c || !path || !cb)
		return -EINVAL;
	client_clear_error(c);

	k = client_exchange(c, "GET", path, NULL, true, &r);
	if (k < 0)
		return k;
	return client_read_stream(c, r, cb, userdata);
}

_public_ int xpu_client_last_error(const struct xpu_client *c, const char **ret_message)
{
	if (!c || c->last_status == 0)
		return 0;
	if (ret_message)
		*ret_message = json_string_value(json_object_get(c->last_error, "message"));
	return c->last_status;
}
