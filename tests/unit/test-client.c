/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libxpu against a fake daemon: a forked child serving canned HTTP answers on a Unix socket in
 * a mkdtemp() directory. Each answer exercises one thing a real (or broken) xpud could send;
 * the tests assert what a caller of libxpu would see. When ctest provides XPUCTL_BIN, xpuctl's
 * exit codes and output are checked against the same server.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/sockios.h>

#include "shared/macro.h"
#include "xpu/client.h"

static char tmp_dir[256];
static char sock_path[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
static pid_t server_pid = -1;

/* ---- the fake server (runs in the forked child; never returns) --------------------------- */

#define DEVICE_JSON                                                                                \
	"{\"id\":\"0000:18:00.0\",\"kind\":\"gpu\",\"vendor\":\"nvidia\","                         \
	"\"model\":\"NVIDIA H100 80GB HBM3\",\"uuid\":\"GPU-5f2a\",\"pci\":{\"address\":"          \
	"\"0000:18:00.0\",\"vendor_id\":\"0x10de\",\"device_id\":\"0x2330\","                      \
	"\"subsystem_vendor_id\":\"0x10de\",\"subsystem_device_id\":\"0x16c1\","                   \
	"\"class\":\"0x030200\",\"revision\":\"0xa1\",\"link\":{\"speed\":\"32.0 GT/s\","          \
	"\"width\":16,\"max_speed\":\"32.0 GT/s\",\"max_width\":16}},\"driver\":\"nvidia\","       \
	"\"numa_node\":0,\"cpu_list\":\"0-55,112-167\",\"memory_bytes\":85899345920,"              \
	"\"device_nodes\":[\"/dev/nvidia0\",\"/dev/nvidiactl\"],"                                  \
	"\"health\":{\"state\":\"healthy\",\"reason\":null,\"phase\":\"suspect\","                 \
	"\"signal\":\"probe-failed\",\"phase_reason\":\"health probe failed\","                    \
	"\"since_usec\":1795709401000000,\"until_usec\":1795709461000000},"                        \
	"\"backend\":\"pci\",\"resource\":\"nvidia.com/gpu\",\"properties\":{}}"

#define EVENT(seq, type)                                                                           \
	"{\"seq\":" #seq ",\"type\":\"" type "\",\"time_usec\":1795709401000000,"                  \
	"\"device_id\":\"0000:18:00.0\",\"device\":" DEVICE_JSON "}"

/* Three events, split across chunks mid-line, with a keep-alive blank line and a CRLF line. */
static const char events_body[] = EVENT(1, "device-added") "\n"
				  "\n"
				  EVENT(2, "health-changed") "\r\n"
				  EVENT(3, "device-removed") "\n";

/* xpud opens a stream with a handshake document that is not an event. */
static const char xpud_events_body[] = "{\"seq\":0,\"type\":\"subscribed\",\"generation\":1}\n"
				       EVENT(1, "device-added") "\n"
				       EVENT(2, "health-changed") "\n"
				       EVENT(3, "device-removed") "\n";

enum framing {
	FRAME_LENGTH,	   /* Content-Length */
	FRAME_CHUNKED,	   /* chunked, 7-byte chunks, an extension and a trailer */
	FRAME_EOF,	   /* neither: the body ends at close */
	FRAME_RAW,	   /* @body is the whole answer, bytes as given */
	FRAME_UNFINISHED,  /* chunked without the last chunk: the connection just closes */
};

struct canned {
	const char *path;
	const char *status; /* "200 OK" */
	const char *body;
	enum framing framing;
	bool bytewise; /* one send() per byte, so the client sees every possible split */
};

static const struct canned canned[] = {
	{ "/length", "200 OK", "{\"devices\":[{\"id\":\"0000:18:00.0\",\"kind\":\"gpu\"}]}",
	  FRAME_LENGTH },
	{ "/chunked", "200 OK", "{\"slices\":[{\"id\":\"s0\"},{\"id\":\"s1\"}],\"n\":2}",
	  FRAME_CHUNKED },
	{ "/chunked-bytewise", "200 OK", "{\"slices\":[{\"id\":\"s0\"},{\"id\":\"s1\"}],\"n\":2}",
	  FRAME_CHUNKED, true },
	{ "/missing", "404 Not Found",
	  "{\"error\":\"not-found\",\"message\":\"no device '0000:99:00.0'\"}", FRAME_LENGTH },
	{ "/garbage", NULL, "220 mail.example.com ESMTP ready\r\n", FRAME_RAW },
	{ "/garbage-binary", NULL, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", FRAME_RAW },
	{ "/bad-status", NULL, "HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}", FRAME_RAW },
	{ "/not-json", "200 OK", "this is not json", FRAME_LENGTH },
	{ "/truncated", NULL, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":",
	  FRAME_RAW },
	{ "/truncated-head", NULL, "HTTP/1.1 200 OK\r\nContent-Le", FRAME_RAW },
	{ "/closed", NULL, "", FRAME_RAW },
	{ "/both-framings", NULL,
	  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
	  "2\r\n{}\r\n0\r\n\r\n",
	  FRAME_RAW },
	{ "/bad-chunk", NULL, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n",
	  FRAME_RAW },
	{ "/huge", NULL, "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n{", FRAME_RAW },
	{ "/no-content", NULL, "HTTP/1.1 204 No Content\r\n\r\n", FRAME_RAW },
	{ "/eof-body", "200 OK", "{\"until\":\"close\"}", FRAME_EOF },
	{ "/interim", NULL,
	  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n{}",
	  FRAME_RAW },
	{ "/events", "200 OK", events_body, FRAME_CHUNKED },
	{ "/events-bytewise", "200 OK", events_body, FRAME_CHUNKED, true },
	{ "/events-unavailable", "503 Service Unavailable",
	  "{\"error\":\"unavailable\",\"message\":\"too many event streams\"}", FRAME_LENGTH },
	{ "/events-unfinished", "200 OK",
	  EVENT(1, "device-added") "\n" EVENT(2, "device-changed") "\n", FRAME_UNFINISHED },
	/* What xpuctl asks for. */
	{ "/v1/devices", "200 OK", "{\"devices\":[" DEVICE_JSON "]}", FRAME_LENGTH },
	{ "/v1/devices/0000:18:00.0", "200 OK", DEVICE_JSON, FRAME_LENGTH },
	{ "/v1/devices/18:00.0", "200 OK", DEVICE_JSON, FRAME_LENGTH }, /* xpud resolves it */
	{ "/v1/capacity", "200 OK", "not json at all", FRAME_LENGTH },
	{ "/v1/events", "200 OK", xpud_events_body, FRAME_CHUNKED },
};

static void server_send(int fd, const char *p, size_t n, bool bytewise)
{
	while (n > 0) {
		ssize_t k = send(fd, p, bytewise ? 1 : n, MSG_NOSIGNAL);

		if (k <= 0)
			return; /* the client went away (a test stopping early): fine */
		p += k;
		n -= (size_t)k;
	}
}

static void server_answer(int fd, const struct canned *c)
{
	size_t len = strlen(c->body), size = len * 2 + 512, n;
	_cleanup_free_ char *out = malloc(size);
	bool chunked = c->framing == FRAME_CHUNKED || c->framing == FRAME_UNFINISHED;

	if (!out)
		_exit(2);
	if (c->framing == FRAME_RAW) {
		server_send(fd, c->body, len, c->bytewise);
		return;
	}

	n = (size_t)snprintf(out, size, "HTTP/1.1 %s\r\nContent-Type: application/json\r\n",
			     c->status);
	if (c->framing == FRAME_LENGTH)
		n += (size_t)snprintf(out + n, size - n, "Content-Length: %zu\r\n", len);
	if (chunked)
		n += (size_t)snprintf(out + n, size - n, "Transfer-Encoding: chunked\r\n");
	n += (size_t)snprintf(out + n, size - n, "Connection: close\r\n\r\n");

	if (!chunked) {
		memcpy(out + n, c->body, len);
		n += len;
	} else {
		for (size_t off = 0; off < len; off += 7) {
			size_t k = MIN((size_t)7, len - off);

			/* Upper and lower case hex, and an extension to ignore. */
			n += (size_t)snprintf(out + n, size - n,
					      off == 0 ? "%zX;ext=1\r\n" : "%zx\r\n", k);
			memcpy(out + n, c->body + off, k);
			n += k;
			memcpy(out + n, "\r\n", 2);
			n += 2;
		}
		if (c->framing == FRAME_CHUNKED)
			n += (size_t)snprintf(out + n, size - n, "0\r\nX-Checksum: none\r\n\r\n");
	}
	server_send(fd, out, n, c->bytewise);
}

/* client.c's HTTP_LINE_MAX: the longest line of a head it accepts, without its CRLF. */
#define LINE_MAX_LEN 8192

/*
 * An answer with a header line @len bytes long, sent in two parts split between that line's CR
 * and LF; the second part goes only once the client has read all of the first, so the client
 * sees the CR without the LF whatever the scheduling.
 */
static void server_long_line(int fd, size_t len)
{
	static const char name[] = "X-Long: ", rest[] = "\nContent-Length: 2\r\n\r\n{}";
	static const char status[] = "HTTP/1.1 200 OK\r\n";
	size_t n = 0, size = sizeof(status) + len + 1 + sizeof(rest);
	_cleanup_free_ char *out = malloc(size);

	if (!out)
		_exit(2);
	memcpy(out, status, sizeof(status) - 1);
	n += sizeof(status) - 1;
	memcpy(out + n, name, sizeof(name) - 1);
	memset(out + n + sizeof(name) - 1, 'a', len - (sizeof(name) - 1));
	n += len;
	out[n++] = '\r';
	server_send(fd, out, n, false);

	for (int i = 0, queued = 1; i < 5000 && queued > 0; i++) {
		if (ioctl(fd, SIOCOUTQ, &queued) < 0)
			break;
		if (queued > 0)
			usleep(1000);
	}
	server_send(fd, rest, sizeof(rest) - 1, false);
}

/* Echoes the request back as {"head": "...", "body": "..."} so tests can check what was sent. */
static void server_echo(int fd, const char *head, const char *body, size_t body_len)
{
	json_t *doc = json_pack("{s:s, s:s%}", "head", head, "body", body, body_len);
	char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	struct canned c = { .status = "200 OK", .body = s, .framing = FRAME_LENGTH };

	if (!s)
		_exit(2);
	server_answer(fd, &c);
	free(s);
	json_decref(doc);
}

static void server_connection(int fd)
{
	char buf[16384], method[16], path[256], *end, *cl;
	size_t n = 0, body_len = 0, have;
	ssize_t k;

	/* Read the head, then the body Content-Length announces. */
	while (!(end = memmem(buf, n, "\r\n\r\n", 4))) {
		if (n == sizeof(buf) - 1)
			return;
		k = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
		if (k <= 0)
			return; /* a client that connected and left without asking */
		n += (size_t)k;
	}
	buf[n] = '\0';
	end[2] = '\0'; /* the head keeps its last CRLF, the blank line goes */
	cl = strcasestr(buf, "\r\nContent-Length:");
	if (cl)
		body_len = strtoul(cl + 17, NULL, 10);
	have = n - (size_t)(end + 4 - buf);
	if (body_len > sizeof(buf) - 1 - (size_t)(end + 4 - buf))
		return;
	while (have < body_len) {
		k = recv(fd, end + 4 + have, body_len - have, 0);
		if (k <= 0)
			return;
		have += (size_t)k;
	}

	if (sscanf(buf, "%15s %255s", method, path) != 2)
		return;
	if (streq(path, "/echo")) {
		server_echo(fd, buf, end + 4, body_len);
		return;
	}
	if (streq(path, "/long-line-split")) {
		server_long_line(fd, LINE_MAX_LEN);
		return;
	}
	if (streq(path, "/long-line-split-over")) {
		server_long_line(fd, LINE_MAX_LEN + 1);
		return;
	}
	for (size_t i = 0; i < ELEMENTSOF(canned); i++)
		if (streq(path, canned[i].path)) {
			server_answer(fd, &canned[i]);
			return;
		}
	server_answer(fd, &(struct canned){
				  .status = "404 Not Found",
				  .body = "{\"error\":\"not-found\",\"message\":\"nothing here\"}",
				  .framing = FRAME_LENGTH,
			  });
}

static _Noreturn void server_run(int listen_fd)
{
	for (;;) {
		struct timeval tv = { .tv_sec = 10 };
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		/* Never wedge the suite on a client that connects and stays silent. */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		server_connection(fd);
		/* Let the client see a clean end: no RST for unread request bytes. */
		shutdown(fd, SHUT_WR);
		close(fd);
	}
}

static int bind_socket(const char *path, bool do_listen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || (do_listen && listen(fd, 16) < 0)) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static int group_setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	int fd;

	snprintf(tmp_dir, sizeof(tmp_dir), "%s/test-client-XXXXXX", isempty(tmp) ? "/tmp" : tmp);
	if (!mkdtemp(tmp_dir))
		return -1;
	if (snprintf(sock_path, sizeof(sock_path), "%s/xpud.sock", tmp_dir) >=
	    (int)sizeof(sock_path))
		return -1;

	/* Listening before the fork: no race between the server starting and the first test. */
	fd = bind_socket(sock_path, true);
	if (fd < 0)
		return -1;
	server_pid = fork();
	if (server_pid < 0)
		return -1;
	if (server_pid == 0)
		server_run(fd);
	close(fd);
	return 0;
}

static int group_teardown(void **state)
{
	char path[sizeof(tmp_dir) + 32];

	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	unlink(sock_path);
	snprintf(path, sizeof(path), "%s/refused.sock", tmp_dir);
	unlink(path);
	rmdir(tmp_dir);
	return 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static struct xpu_client *connect_client(void)
{
	struct xpu_client *c = NULL;

	assert_int_equal(xpu_client_new(sock_path, &c), 0);
	assert_non_null(c);
	return c;
}

/* GET @path on a fresh client; returns the request's result and fills status/doc. */
static int get(const char *path, int *status, json_t **doc)
{
	struct xpu_client *c = connect_client();
	int r = xpu_client_request(c, "GET", path, NULL, status, doc);

	xpu_client_free(c);
	return r;
}

/* Asserts that a failed request left the output parameters untouched. */
static void assert_get_fails(const char *path, int expected)
{
	json_t *doc = (json_t *)0x1;
	int status = -1;

	assert_int_equal(get(path, &status, &doc), expected);
	assert_int_equal(status, -1);
	assert_ptr_equal(doc, (json_t *)0x1);
}

/* ---- socket path and connecting --------------------------------------------------------- */

static void test_socket_path(void **state)
{
	assert_string_equal(xpu_client_socket_path("/x/explicit.sock"), "/x/explicit.sock");

	setenv("XPUD_SOCKET", "/x/from-env.sock", 1);
	assert_string_equal(xpu_client_socket_path(NULL), "/x/from-env.sock");
	assert_string_equal(xpu_client_socket_path("/x/explicit.sock"), "/x/explicit.sock");

	setenv("XPUD_SOCKET", "", 1);
	assert_string_equal(xpu_client_socket_path(NULL), XPU_DEFAULT_SOCKET);
	unsetenv("XPUD_SOCKET");
	assert_string_equal(xpu_client_socket_path(NULL), XPU_DEFAULT_SOCKET);
	assert_string_equal(xpu_client_socket_path(""), XPU_DEFAULT_SOCKET);
}

static void test_no_server(void **state)
{
	struct xpu_client *c = (struct xpu_client *)0x1;
	char path[sizeof(tmp_dir) + 32], longpath[300];
	int fd;

	snprintf(path, sizeof(path), "%s/nothing-here.sock", tmp_dir);
	assert_int_equal(xpu_client_new(path, &c), -ENOENT);
	assert_ptr_equal(c, (struct xpu_client *)0x1);

	/* A socket file nobody listens on: what a crashed daemon leaves behind. */
	snprintf(path, sizeof(path), "%s/refused.sock", tmp_dir);
	fd = bind_socket(path, false);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(xpu_client_new(path, &c), -ECONNREFUSED);

	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(xpu_client_new(longpath, &c), -ENAMETOOLONG);
	assert_ptr_equal(c, (struct xpu_client *)0x1);

	/* The environment is honoured when no path is given. */
	setenv("XPUD_SOCKET", sock_path, 1);
	c = NULL;
	assert_int_equal(xpu_client_new(NULL, &c), 0);
	xpu_client_free(c);
	unsetenv("XPUD_SOCKET");
}

/* ---- plain requests --------------------------------------------------------------------- */

static void test_content_length(void **state)
{
	json_t *doc = NULL, *first;
	int status = 0;

	assert_int_equal(get("/length", &status, &doc), 0);
	assert_int_equal(status, 200);
	assert_non_null(doc);
	first = json_array_get(json_object_get(doc, "devices"), 0);
	assert_string_equal(json_string_value(json_object_get(first, "id")), "0000:18:00.0");
	json_decref(doc);
}

static void check_chunked(const char *path)
{
	json_t *doc = NULL, *second;
	int status = 0;

	assert_int_equal(get(path, &status, &doc), 0);
	assert_int_equal(status, 200);
	assert_int_equal(json_array_size(json_object_get(doc, "slices")), 2);
	second = json_array_get(json_object_get(doc, "slices"), 1);
	assert_string_equal(json_string_value(json_object_get(second, "id")), "s1");
	assert_int_equal(json_integer_value(json_object_get(doc, "n")), 2);
	json_decref(doc);
}

static void test_chunked(void **state)
{
	check_chunked("/chunked");
	check_chunked("/chunked-bytewise");
}

static void test_error_answer(void **state)
{
	struct xpu_client *c = connect_client();
	const char *message = NULL;
	json_t *doc = NULL;
	int status = 0;

	assert_int_equal(xpu_client_request(c, "GET", "/missing", NULL, &status, &doc), 0);
	assert_int_equal(status, 404);
	assert_string_equal(json_string_value(json_object_get(doc, "error")), "not-found");
	assert_int_equal(xpu_client_last_error(c, &message), 404);
	assert_string_equal(message, "no device '0000:99:00.0'");
	json_decref(doc);

	/* The next successful call clears it. */
	assert_int_equal(xpu_client_request(c, "GET", "/length", NULL, &status, NULL), 0);
	assert_int_equal(status, 200);
	assert_int_equal(xpu_client_last_error(c, NULL), 0);
	xpu_client_free(c);
}

static void test_malformed(void **state)
{
	assert_get_fails("/garbage", -EBADMSG);
	assert_get_fails("/garbage-binary", -EBADMSG);
	assert_get_fails("/bad-status", -EBADMSG);
	assert_get_fails("/not-json", -EBADMSG);
	assert_get_fails("/both-framings", -EBADMSG);
	assert_get_fails("/bad-chunk", -EBADMSG);
	assert_get_fails("/huge", -EMSGSIZE);
}

static void test_truncated(void **state)
{
	assert_get_fails("/truncated", -ECONNRESET);
	assert_get_fails("/truncated-head", -ECONNRESET);
	assert_get_fails("/closed", -ECONNRESET);
}

static void test_framing_variants(void **state)
{
	json_t *doc = (json_t *)0x1;
	int status = 0;

	assert_int_equal(get("/no-content", &status, &doc), 0);
	assert_int_equal(status, 204);
	assert_null(doc);

	assert_int_equal(get("/eof-body", &status, &doc), 0);
	assert_int_equal(status, 200);
	assert_string_equal(json_string_value(json_object_get(doc, "until")), "close");
	json_decref(doc);

	/* A 100 Continue before the answer is skipped; HTTP/1.0 and lower-case headers are fine. */
	assert_int_equal(get("/interim", &status, &doc), 0);
	assert_int_equal(status, 200);
	assert_true(json_is_object(doc));
	assert_int_equal(json_object_size(doc), 0);
	json_decref(doc);
}

/*
 * Regression (found while fuzzing the parser; fuzz-client now compares whole and split reads):
 * a line of the longest length allowed was refused with -EMSGSIZE when a read ended between
 * its CR and LF, and accepted otherwise.
 */
static void test_line_split_at_crlf(void **state)
{
	json_t *doc = NULL;
	int status = 0;

	assert_int_equal(get("/long-line-split", &status, &doc), 0);
	assert_int_equal(status, 200);
	assert_true(json_is_object(doc));
	json_decref(doc);

	/* One byte more is still too long, however it arrives. */
	assert_get_fails("/long-line-split-over", -EMSGSIZE);
}

static void test_request_format(void **state)
{
	struct xpu_client *c = connect_client();
	json_t *body = json_pack("{s:i, s:s}", "a", 1, "b", "x y");
	json_t *doc = NULL, *sent = NULL;
	const char *head;
	int status = 0;

	assert_int_equal(xpu_client_request(c, "POST", "/echo", body, &status, &doc), 0);
	assert_int_equal(status, 200);
	head = json_string_value(json_object_get(doc, "head"));
	assert_non_null(head);
	assert_true(strncmp(head, "POST /echo HTTP/1.1\r\n", 21) == 0);
	assert_non_null(strstr(head, "\r\nHost: localhost\r\n"));
	assert_non_null(strstr(head, "\r\nContent-Type: application/json\r\n"));
	sent = json_loads(json_string_value(json_object_get(doc, "body")), 0, NULL);
	assert_true(json_equal(sent, body));
	json_decref(sent);
	json_decref(doc);

	/* A POST without a body still says how long it is; a GET says nothing. */
	assert_int_equal(xpu_client_request(c, "POST", "/echo", NULL, &status, &doc), 0);
	assert_non_null(strstr(json_string_value(json_object_get(doc, "head")),
			       "\r\nContent-Length: 0\r\n"));
	json_decref(doc);
	assert_int_equal(xpu_client_request(c, "GET", "/echo", NULL, &status, &doc), 0);
	assert_null(strcasestr(json_string_value(json_object_get(doc, "head")), "content-length"));
	json_decref(doc);

	/* Nothing that could split the request line reaches the socket. */
	assert_int_equal(xpu_client_request(c, "GET", "/a b", NULL, &status, &doc), -EINVAL);
	assert_int_equal(xpu_client_request(c, "GET", "/a\r\nX: y", NULL, &status, &doc), -EINVAL);
	assert_int_equal(xpu_client_request(c, "GET", "relative", NULL, &status, &doc), -EINVAL);
	assert_int_equal(xpu_client_request(c, "G T", "/echo", NULL, &status, &doc), -EINVAL);

	json_decref(body);
	xpu_client_free(c);
}

static void test_many_requests(void **state)
{
	struct xpu_client *c = connect_client();

	/* The first request uses the connection from xpu_client_new(), the rest their own. */
	for (int i = 0; i < 5; i++) {
		json_t *doc = NULL;
		int status = 0;

		assert_int_equal(xpu_client_request(c, "GET", i % 2 ? "/chunked" : "/length", NULL,
						     &status, &doc),
				 0);
		assert_int_equal(status, 200);
		assert_non_null(doc);
		json_decref(doc);
	}
	xpu_client_free(c);
}

/* ---- streams ---------------------------------------------------------------------------- */

struct seen {
	int n;
	json_int_t seq[8];
	char type[8][32];
	int stop_after; /* return 42 from this call on (0: never) */
};

static int on_event(json_t *doc, void *userdata)
{
	struct seen *s = userdata;

	if (s->n < (int)ELEMENTSOF(s->seq)) {
		s->seq[s->n] = json_integer_value(json_object_get(doc, "seq"));
		snprintf(s->type[s->n], sizeof(s->type[s->n]), "%s",
			 json_string_value(json_object_get(doc, "type")) ?: "");
	}
	s->n++;
	return s->stop_after > 0 && s->n >= s->stop_after ? 42 : 0;
}

static void check_stream(const char *path)
{
	struct xpu_client *c = connect_client();
	struct seen s = {};

	assert_int_equal(xpu_client_stream(c, path, on_event, &s), 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.seq[0], 1);
	assert_int_equal(s.seq[1], 2);
	assert_int_equal(s.seq[2], 3);
	assert_string_equal(s.type[0], "device-added");
	assert_string_equal(s.type[1], "health-changed");
	assert_string_equal(s.type[2], "device-removed");
	xpu_client_free(c);
}

static void test_stream(void **state)
{
	check_stream("/events");
	check_stream("/events-bytewise");
}

static void test_stream_stop(void **state)
{
	struct xpu_client *c = connect_client();
	struct seen s = { .stop_after = 2 };

	assert_int_equal(xpu_client_stream(c, "/events", on_event, &s), 42);
	assert_int_equal(s.n, 2);
	xpu_client_free(c);
}

static void test_stream_errors(void **state)
{
	struct xpu_client *c = connect_client();
	const char *message = NULL;
	struct seen s = {};

	assert_int_equal(xpu_client_stream(c, "/events-unavailable", on_event, &s), -EAGAIN);
	assert_int_equal(s.n, 0);
	assert_int_equal(xpu_client_last_error(c, &message), 503);
	assert_string_equal(message, "too many event streams");

	/* The daemon going away mid-stream: the events so far were delivered, then an error. */
	assert_int_equal(xpu_client_stream(c, "/events-unfinished", on_event, &s), -ECONNRESET);
	assert_int_equal(s.n, 2);
	assert_int_equal(xpu_client_last_error(c, NULL), 0);

	s = (struct seen){};
	assert_int_equal(xpu_client_stream(c, "/garbage", on_event, &s), -EBADMSG);
	assert_int_equal(s.n, 0);

	/* A last document without its newline still counts when the stream ends cleanly. */
	assert_int_equal(xpu_client_stream(c, "/chunked", on_event, &s), 0);
	assert_int_equal(s.n, 1);
	xpu_client_free(c);
}

/* ---- xpuctl against the same server ----------------------------------------------------- */

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Runs xpuctl with @args (NULL-terminated); returns its exit status, stdout in @out. */
static int run_xpuctl(const char *socket, char *out, size_t size, ...)
{
	const char *bin = getenv("XPUCTL_BIN"), *argv[16] = { "xpuctl", "--socket", socket };
	size_t n = 0, argc = 3;
	int pipefd[2], status;
	va_list ap;
	pid_t pid;

	va_start(ap, size);
	for (const char *a; (a = va_arg(ap, const char *)) && argc < ELEMENTSOF(argv) - 1;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;

	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

		dup2(pipefd[1], STDOUT_FILENO);
		if (devnull >= 0)
			dup2(devnull, STDERR_FILENO);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	for (ssize_t k; n + 1 < size && (k = read(pipefd[0], out + n, size - 1 - n)) > 0;)
		n += (size_t)k;
	out[n] = '\0';
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_xpuctl(void **state)
{
	char out[65536], path[sizeof(tmp_dir) + 32];
	int n_lines;

	if (!getenv("XPUCTL_BIN"))
		skip();

	assert_int_equal(run_xpuctl(sock_path, out, sizeof(out), "devices", NULL), 0);
	assert_non_null(strstr(out, "ID            KIND  VENDOR  MODEL"));
	assert_non_null(strstr(out, "0000:18:00.0  gpu   nvidia  NVIDIA H100 80GB HBM3  0     "
				    "80.0 GiB  nvidia  healthy  suspect\n"));

	/* A short address, as the daemon resolves it. */
	assert_int_equal(run_xpuctl(sock_path, out, sizeof(out), "device", "18:00.0", NULL), 0);
	assert_non_null(strstr(out, "Link:           32.0 GT/s x16 (max 32.0 GT/s x16)\n"));
	/* a suspect device is served: the phase says what is going on */
	assert_non_null(strstr(out, "Health:         healthy\n"
				    "Phase:          suspect since 2026-11-26T16:10:01Z, until "
				    "2026-11-26T16:11:01Z (probe-failed: health probe failed)\n"));
	assert_non_null(strstr(out, "Device nodes:   /dev/nvidia0\n"
				    "                /dev/nvidiactl\n"));

	assert_int_equal(run_xpuctl(sock_path, out, sizeof(out), "-o", "json", "device",
				    "0000:18:00.0", NULL),
			 0);
	{
		json_t *got = json_loads(out, 0, NULL), *want = json_loads(DEVICE_JSON, 0, NULL);

		assert_true(json_equal(got, want));
		json_decref(got);
		json_decref(want);
	}

	/* One line per event; the handshake is not one. */
	assert_int_equal(run_xpuctl(sock_path, out, sizeof(out), "events", NULL), 0);
	assert_true(starts_with(out, "2026-11-26T16:10:01Z device-added   0000:18:00.0 gpu nvidia "
				     "NVIDIA H100 80GB HBM3\n"));
	assert_null(strstr(out, "subscribed"));
	n_lines = 0;
	for (const char *p = out; (p = strchr(p, '\n')); p++)
		n_lines++;
	assert_int_equal(n_lines, 3);
	assert_int_equal(run_xpuctl(sock_path, out, sizeof(out), "-o", "json", "events", NULL), 0);
	assert_true(starts_with(out, "{\"seq\":0,\"type\":\"subscribed\""));

	assert_int_equal(run_xpuctl(sock_path, out, sizeof(out), "device", "0000:99:00.0", NULL),
			 2);
	assert_int_equal(run_xpuctl(sock_path, out, sizeof(out), "capacity", NULL), 4);
	assert_int_equal(run_xpuctl(sock_path, out, sizeof(out), "frobnicate", NULL), 1);
	snprintf(path, sizeof(path), "%s/nothing-here.sock", tmp_dir);
	assert_int_equal(run_xpuctl(path, out, sizeof(out), "devices", NULL), 3);
}

/*
 * A daemon at its connection limit writes 503 and closes without reading: a request whose
 * body no longer fits gets that answer, not EPIPE.
 */
static void test_refused_before_sent(void **state)
{
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
				   "application/json\r\nContent-Length: 73\r\nConnection: "
				   "close\r\n\r\n{\"error\":\"unavailable\",\"message\":\"Too many "
				   "connections, try again later\"}";
	char path[sizeof(tmp_dir) + 16];
	struct xpu_client *c = NULL;
	const char *msg = NULL;
	json_t *body, *doc = NULL;
	char *big = malloc(1 << 20);
	int lfd, status = 0;
	pid_t pid;

	assert_non_null(big);
	snprintf(path, sizeof(path), "%s/busy.sock", tmp_dir);
	lfd = bind_socket(path, true);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		char byte;

		/* once the request has begun: answer, and close with the rest of it unread */
		if (fd < 0 || read(fd, &byte, 1) != 1 ||
		    write(fd, busy, strlen(busy)) != (ssize_t)strlen(busy))
			_exit(1);
		_exit(0);
	}
	close(lfd);
	memset(big, 'a', (1 << 20) - 1);
	big[(1 << 20) - 1] = '\0';
	body = json_pack("{s:s}", "pad", big);
	assert_non_null(body);
	assert_int_equal(xpu_client_new(path, &c), 0);
	assert_int_equal(xpu_client_request(c, "POST", "/v1/rescan", body, &status, &doc), 0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(status, 503);
	assert_int_equal(xpu_client_last_error(c, &msg), 503);
	assert_string_equal(msg, "Too many connections, try again later");
	json_decref(doc);
	json_decref(body);
	xpu_client_free(c);
	free(big);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_socket_path),   cmocka_unit_test(test_no_server),
		cmocka_unit_test(test_content_length), cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_error_answer),  cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_truncated),     cmocka_unit_test(test_framing_variants),
		cmocka_unit_test(test_line_split_at_crlf),
		cmocka_unit_test(test_request_format), cmocka_unit_test(test_many_requests),
		cmocka_unit_test(test_stream),	      cmocka_unit_test(test_stream_stop),
		cmocka_unit_test(test_stream_errors), cmocka_unit_test(test_xpuctl),
		cmocka_unit_test(test_refused_before_sent),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
