// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Bad clients and bad neighbours: malformed, oversized and slow requests, unknown paths and
 * methods, an unprivileged caller of a mutating endpoint, a second xpud on the same socket,
 * xpuctl without a daemon. Each gets a clear answer and xpud keeps serving, without leaks
 * (xpud runs under the sanitizers in CI and must exit 0).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/fileio.h"
#include "shared/macro.h"
#include "testutil.h"

static struct test_xpud *x;

static int setup(void **state)
{
	x = test_xpud_start(test_fixture_new("real-h100-vm"), NULL);
	return 0;
}

static int teardown(void **state)
{
	int status = test_xpud_stop(x);

	test_xpud_free(x);
	/* A leak or a crash under the sanitizers shows up here. */
	assert_int_equal(status, 0);
	return 0;
}

static void assert_still_serving(void)
{
	assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
}

/* The status line and that the body is our JSON error with @code. */
static void assert_error_answer(const char *answer, const char *status, const char *code)
{
	char needle[64];

	if (strncmp(answer, status, strlen(status)) != 0)
		fail_msg("expected '%s', got:\n%.300s", status, answer);
	snprintf(needle, sizeof(needle), "\"error\":\"%s\"", code);
	if (!strstr(answer, needle))
		fail_msg("no %s in:\n%.300s", needle, answer);
}

static void test_unknown_path_and_method(void **state)
{
	static const char get_nope[] = "GET /v1/nope HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char del[] = "DELETE /v1/devices HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char get_rescan[] = "GET /v1/rescan HTTP/1.1\r\nHost: x\r\n\r\n";
	char *a;

	a = test_raw_exchange(x->socket, get_nope, sizeof(get_nope) - 1, 1000);
	assert_error_answer(a, "HTTP/1.1 404", "not-found");
	free(a);
	a = test_raw_exchange(x->socket, del, sizeof(del) - 1, 1000);
	assert_error_answer(a, "HTTP/1.1 405", "method-not-allowed");
	assert_non_null(strstr(a, "Allow: GET, HEAD\r\n"));
	free(a);
	a = test_raw_exchange(x->socket, get_rescan, sizeof(get_rescan) - 1, 1000);
	assert_error_answer(a, "HTTP/1.1 405", "method-not-allowed");
	assert_non_null(strstr(a, "Allow: POST\r\n"));
	free(a);
	assert_still_serving();
}

static void test_malformed(void **state)
{
	static const char garbage[] = "\x01\x02 not http at all\r\n\r\n";
	char *a = test_raw_exchange(x->socket, garbage, sizeof(garbage) - 1, 1000);

	assert_error_answer(a, "HTTP/1.1 400", "bad-request");
	free(a);
	assert_still_serving();
}

/* An answer to @request (sent raw, the connection closed after it); free it. */
static char *raw(const char *request)
{
	return test_raw_exchange(x->socket, request, strlen(request), 2000);
}

/*
 * Text that is not UTF-8, or long multi-byte text that an error message must cut, is the
 * client's mistake: answered as the route says (404, 400), never as our own failure (500), and
 * the answer is JSON that names the bytes.
 */
static void test_not_utf8(void **state)
{
	_cleanup_free_ char *body = NULL, *kind = NULL;
	json_t *doc = NULL;
	char *a;

	a = raw("GET /v1/%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_error_answer(a, "HTTP/1.1 404", "not-found");
	if (!strstr(a, "'/v1/\\\\xff'"))
		fail_msg("the path is not named:\n%.300s", a);
	free(a);
	a = raw("GET /v1/devices/%c3%28 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_error_answer(a, "HTTP/1.1 404", "not-found");
	assert_non_null(strstr(a, "no device '\\\\xc3('"));
	free(a);
	a = raw("DELETE /v1/allocations/%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_error_answer(a, "HTTP/1.1 404", "not-found");
	free(a);

	/* 300 x U+00E9 (two bytes each): longer than any error message */
	kind = malloc(601);
	assert_non_null(kind);
	for (size_t i = 0; i < 300; i++)
		memcpy(kind + 2 * i, "\xc3\xa9", 2);
	kind[600] = '\0';
	assert_true(asprintf(&body, "{\"kind\": \"%s\"}", kind) > 0);
	assert_int_equal(test_request_body(x, "POST", "/v1/fit", body, &doc), 400);
	assert_string_equal(json_string_value(json_object_get(doc, "error")), "invalid");
	assert_non_null(strstr(json_string_value(json_object_get(doc, "message")),
			       "Unknown kind '\xc3\xa9\xc3\xa9"));
	json_decref(doc);
	doc = NULL;
	free(body);
	assert_true(asprintf(&body, "{\"resource\": \"%s\"}", kind) > 0);
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations", body, &doc), 404);
	json_decref(doc);
	assert_still_serving();
}

/* Only HTTP/1.x is spoken: any other version is told so (505), not answered as 1.1. */
static void test_http_version(void **state)
{
	char *a;

	a = raw("GET /v1/devices HTTP/9.9\r\nHost: x\r\n\r\n");
	assert_error_answer(a, "HTTP/1.1 505", "version-not-supported");
	assert_non_null(strstr(a, "HTTP/9.9 is not supported"));
	free(a);
	a = raw("GET /v1/devices HTTP/2.0\r\nHost: x\r\n\r\n");
	assert_error_answer(a, "HTTP/1.1 505", "version-not-supported");
	free(a);
	a = raw("GET /v1/version HTTP/1.0\r\n\r\n");
	assert_non_null(a);
	assert_int_equal(strncmp(a, "HTTP/1.1 200", 12), 0);
	free(a);
	assert_still_serving();
}

static void test_oversized(void **state)
{
	size_t n = 70 * 1024;
	char *req = malloc(n + 256), *a;
	int k;

	assert_non_null(req);
	/* 70 KiB of headers */
	k = sprintf(req, "GET /v1/devices HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(req + k, 'a', n);
	memcpy(req + k + n, "\r\n\r\n", 4);
	a = test_raw_exchange(x->socket, req, (size_t)k + n + 4, 2000);
	assert_error_answer(a, "HTTP/1.1 431", "headers-too-large");
	free(a);

	/* 70 KiB of body */
	k = sprintf(req, "POST /v1/rescan HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
	memset(req + k, 'b', n);
	a = test_raw_exchange(x->socket, req, (size_t)k + n, 2000);
	assert_error_answer(a, "HTTP/1.1 413", "payload-too-large");
	free(a);
	free(req);
	assert_still_serving();
}

static void test_slowloris(void **state)
{
	static const char partial[] = "GET /v1/devi";
	long long start = test_now_ms();
	char *a;

	/* The half request is cut off by the header timeout (5 s) with 408 ... */
	a = test_raw_exchange(x->socket, partial, sizeof(partial) - 1, 15000);
	assert_error_answer(a, "HTTP/1.1 408", "request-timeout");
	assert_true(test_now_ms() - start < 15000);
	free(a);
	assert_still_serving();
}

static void test_unprivileged_rescan(void **state)
{
	static const char *const mutating[] = {
		"POST /v1/reload",	"POST /v1/allocations", "DELETE /v1/allocations/a-0",
		"POST /v1/cordon",	"POST /v1/uncordon",	 "POST /v1/repartition",
		"DELETE /v1/allocations/%ff",
	};
	static const char post[] = "POST /v1/rescan HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
	static const char get[] = "GET /v1/devices HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	char run[4096];
	int status;
	pid_t pid;

	if (geteuid() != 0)
		skip();
	/* let "nobody" reach the socket */
	assert_int_equal(chmod(x->root, 0755), 0);
	snprintf(run, sizeof(run), "%s/run", x->root);
	assert_int_equal(chmod(run, 0755), 0);
	assert_int_equal(chmod(x->socket, 0666), 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *a;

		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(10);
		a = test_raw_exchange(x->socket, post, sizeof(post) - 1, 2000);
		if (strncmp(a, "HTTP/1.1 403", 12) != 0 || !strstr(a, "\"error\":\"forbidden\""))
			_exit(11);
		free(a);
		/* every other call that changes something: refused before its body is read */
		for (size_t i = 0; i < sizeof(mutating) / sizeof(mutating[0]); i++) {
			char req[512];
			int n = snprintf(req, sizeof(req),
					 "%s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
					 mutating[i]);

			a = test_raw_exchange(x->socket, req, (size_t)n, 2000);
			if (strncmp(a, "HTTP/1.1 403", 12) != 0)
				_exit(20 + (int)i);
			free(a);
		}
		/* reading is open to whoever can reach the socket */
		a = test_raw_exchange(x->socket, get, sizeof(get) - 1, 2000);
		if (strncmp(a, "HTTP/1.1 200", 12) != 0)
			_exit(12);
		free(a);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_second_instance_refused(void **state)
{
	const char *bin = test_env("XPUD_BIN");
	char log[4096];
	_cleanup_free_ char *text = NULL;
	int status;
	pid_t pid;

	snprintf(log, sizeof(log), "%s/second.log", x->root);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		dup2(fd, STDERR_FILENO);
		execl(bin, bin, "--root", x->root, "--socket", x->socket, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_int_equal(read_attr_at(AT_FDCWD, log, 1 << 20, &text), 0);
	if (!strstr(text, "already serving on"))
		fail_msg("second xpud said:\n%s", text);
	/* and the first one still owns its sockets: API and uevents */
	assert_still_serving();
	test_send_uevent(x, "change", "/devices/pci0000:00/0000:00:06.0", "pci");
}

static void test_xpuctl_errors(void **state)
{
	const char *missing[] = { "device", "0000:99:00.0", NULL };
	const char *bad_usage[] = { "frobnicate", NULL };
	const char *devices[] = { "devices", NULL };
	char sock[4096];
	char *out = NULL;

	/* the daemon's error, exit 2 */
	assert_int_equal(test_xpuctl(x->socket, missing, NULL), 2);
	/* usage, exit 1 */
	assert_int_equal(test_xpuctl(x->socket, bad_usage, NULL), 1);
	/* nothing serving: exit 3 */
	snprintf(sock, sizeof(sock), "%s/run/nobody-here.sock", x->root);
	assert_int_equal(test_xpuctl(sock, devices, &out), 3);
	free(out);
	/* the table view names the device */
	assert_int_equal(test_xpuctl(x->socket, devices, &out), 0);
	assert_non_null(strstr(out, "0000:00:06.0"));
	assert_non_null(strstr(out, "NVIDIA H100 80GB HBM3"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unknown_path_and_method),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_not_utf8),
		cmocka_unit_test(test_http_version),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_slowloris),
		cmocka_unit_test(test_unprivileged_rescan),
		cmocka_unit_test(test_second_instance_refused),
		cmocka_unit_test(test_xpuctl_errors),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
