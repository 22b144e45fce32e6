// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for the HTTP server: the input is everything a client sends on one
 * connection. A real server runs on an abstract Unix socket; the bytes are written in pieces
 * (the piece size derives from the input, so partial reads are explored too) while the loop
 * runs until idle and the client side reads whatever comes back. The handler answers 200,
 * streams for "/stream..." and fails for "/fail", so that every answer path is reached.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sd_event *event;

static int handler(struct http_conn *c, const struct http_request *req, void *userdata)
{
	if (strncmp(req->path, "/stream", 7) == 0) {
		int r = http_conn_stream_begin(c, 200, "text/plain", NULL, NULL);

		if (r < 0)
			return r;
		(void)http_conn_stream_send(c, req->path, strlen(req->path));
		(void)http_conn_stream_send(c, req->body, req->body_len);
		http_conn_stream_end(c);
		return 0;
	}
	if (streq(req->path, "/fail"))
		return -EIO;
	if (req->body)
		return http_conn_reply(c, 200, "application/octet-stream", NULL, req->body,
				       req->body_len);
	return http_conn_reply(c, 200, "text/plain", "X-Fuzz: 1\r\n", req->path, strlen(req->path));
}

/* Reads and drops what the server sent, so that it never blocks on a full socket. */
static void client_drain(int fd)
{
	char buf[65536];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

static void run_until_idle(int fd)
{
	for (unsigned i = 0; i < 10000; i++) {
		client_drain(fd);
		if (sd_event_run(event, 0) <= 0)
			break;
	}
	client_drain(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t pieces[] = { SIZE_MAX, 1, 2, 3, 7, 64, 1000 };
	struct http_limits limits = HTTP_LIMITS_DEFAULT;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t salen = sizeof(sa);
	struct http_server *s = NULL;
	size_t off = 0, piece = pieces[size % ELEMENTSOF(pieces)];
	int lfd, cfd;

	if (!event && sd_event_new(&event) < 0)
		abort();

	/* Autobind: the kernel picks a free abstract name, nothing touches the file system. */
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa_family_t)) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &salen) < 0 || listen(lfd, 4) < 0)
		abort();
	/* Small limits, so that short inputs reach them too. */
	limits.max_request_bytes = 2048;
	limits.max_output_bytes = 4096;
	if (http_server_new(event, lfd, &limits, handler, NULL, &s) < 0)
		abort();

	cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, salen) < 0)
		abort();

	while (off < size) {
		size_t len = MIN(piece, size - off);
		ssize_t n = send(cfd, data + off, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno != EAGAIN && errno != EINTR)
			break; /* the server closed the connection */
		if (n > 0)
			off += (size_t)n;
		run_until_idle(cfd);
	}
	(void)shutdown(cfd, SHUT_WR);
	run_until_idle(cfd);

	http_server_free(s);
	close(cfd);
	return 0;
}
