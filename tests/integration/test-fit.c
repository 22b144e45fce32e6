// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * POST /v1/fit is open to every user who can reach the socket, and a new shape costs a search of
 * the free slices on xpud's one loop. A user other than root and the admin group who asks for
 * new shapes without pause is answered 429 with Retry-After once its share of xpud's time is
 * spent, and root is still answered meanwhile. The fit of a shape with the placement rules,
 * through the API and `xpuctl fit --numa-local`.
 */
#include <errno.h>
#include <grp.h>
#include <setjmp.h>
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

#include "shared/macro.h"
#include "testutil.h"

/* One request on a keep-alive connection; the whole response (headers and body) in @buf.
 * Returns the HTTP status, or -1 when the connection failed. */
static int keepalive_exchange(int fd, const char *body, char *buf, size_t cap)
{
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "POST /v1/fit HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
			 strlen(body), body);
	size_t len = 0, total = 0;

	if (write(fd, req, (size_t)n) != n)
		return -1;
	for (;;) {
		ssize_t k = read(fd, buf + len, cap - len - 1);
		const char *end, *cl;

		if (k <= 0)
			return -1;
		len += (size_t)k;
		buf[len] = '\0';
		if (!total && (end = strstr(buf, "\r\n\r\n"))) {
			cl = strcasestr(buf, "Content-Length:");
			if (!cl)
				return -1;
			total = (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10);
		}
		if (total && len >= total)
			return (int)strtol(buf + 9, NULL, 10);
	}
}

/*
 * As "nobody": new shapes (a compute fraction that differs each time) until xpud says 429.
 * Exit codes: 0 refused as expected, 1 could not drop privileges, 2 connection failed, 3 never
 * refused, 4 a 429 without Retry-After or without its error code, 5 another status.
 */
static int ask_until_refused(const char *socket_path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	static char buf[65536];
	int fd;

	if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
		return 1;
	strcpy(sun.sun_path, socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return 2;
	for (int i = 0; i < 20000; i++) {
		char body[128];
		int status;

		snprintf(body, sizeof(body),
			 "{\"resource\": \"nvidia.com/gpu\", \"count\": 4, \"compute\": 0.%06d}",
			 100000 + i);
		status = keepalive_exchange(fd, body, buf, sizeof(buf));
		if (status < 0)
			return 2;
		if (status == 200)
			continue;
		if (status != 429)
			return 5;
		if (!strcasestr(buf, "\r\nRetry-After: ") ||
		    !strstr(buf, "\"error\":\"too-many-requests\""))
			return 4;
		return 0;
	}
	return 3;
}

static void test_unprivileged_fits_are_bounded(void **state)
{
	struct test_xpud *x = test_xpud_start(test_fixture_new("hgx-h100"), NULL);
	json_t *doc = NULL;
	char run[4096];
	int status;
	pid_t pid;

	if (geteuid() != 0) {
		test_xpud_free(x);
		skip();
	}
	/* let "nobody" reach the socket */
	assert_int_equal(chmod(x->root, 0755), 0);
	snprintf(run, sizeof(run), "%s/run", x->root);
	assert_int_equal(chmod(run, 0755), 0);
	assert_int_equal(chmod(x->socket, 0666), 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(ask_until_refused(x->socket));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* root is answered, a new shape included, right after "nobody" was refused */
	assert_int_equal(test_request_body(x, "POST", "/v1/fit",
					   "{\"resource\": \"nvidia.com/gpu\", \"count\": 4, "
					   "\"compute\": 0.5}",
					   &doc),
			 200);
	assert_int_equal(json_integer_value(json_object_get(doc, "fits")), 2);
	assert_int_equal(json_array_size(json_object_get(doc, "slices")), 4);
	json_decref(doc);
	assert_int_equal(test_request(x, "GET", "/v1/capacity", NULL), 200);

	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* The fits of @body on @x, asserting 200. */
static long long fits(struct test_xpud *x, const char *body)
{
	json_t *doc = NULL;
	long long n;

	assert_int_equal(test_request_body(x, "POST", "/v1/fit", body, &doc), 200);
	n = json_integer_value(json_object_get(doc, "fits"));
	json_decref(doc);
	return n;
}

/*
 * numa_local and connected are the placement rules of an allocation: the fit of a shape with
 * them counts the workloads as the allocator would place them. The HGX node's eight GPUs are
 * four on each NUMA node: a five fits once anywhere, never on one node; the same shape asked
 * without and then with the rule is two questions, not one answer kept.
 */
static void test_fit_numa_local(void **state)
{
	struct test_xpud *x = test_xpud_start(test_fixture_new("hgx-h100"), NULL);
	json_t *doc = NULL;

	assert_int_equal(fits(x, "{\"resource\": \"nvidia.com/gpu\", \"count\": 5}"), 1);
	assert_int_equal(fits(x, "{\"resource\": \"nvidia.com/gpu\", \"count\": 5, "
				 "\"numa_local\": true}"),
			 0);
	assert_int_equal(fits(x, "{\"resource\": \"nvidia.com/gpu\", \"count\": 4, "
				 "\"numa_local\": true}"),
			 2);
	assert_int_equal(fits(x, "{\"resource\": \"nvidia.com/gpu\", \"count\": 3, "
				 "\"numa_local\": false}"),
			 2);
	/* without NVML, no fabric is known: no two GPUs are connected */
	assert_int_equal(fits(x, "{\"resource\": \"nvidia.com/gpu\", \"count\": 2, "
				 "\"connected\": true}"),
			 0);
	assert_int_equal(test_request_body(x, "POST", "/v1/fit",
					   "{\"count\": 2, \"numa_local\": \"yes\"}", &doc),
			 400);
	assert_string_equal(json_string_value(json_object_get(doc, "message")),
			    "numa_local: expected true or false");
	json_decref(doc);

	/* the same from the command line */
	char *out = NULL;
	assert_int_equal(test_xpuctl(x->socket,
				     (const char *[]){ "fit", "--resource", "nvidia.com/gpu", "--count",
						       "5", NULL },
				     &out),
			 0);
	assert_non_null(strstr(out, "1 workload of this shape fit"));
	free(out);
	assert_int_equal(test_xpuctl(x->socket,
				     (const char *[]){ "fit", "--resource", "nvidia.com/gpu", "--count",
						       "5", "--numa-local", NULL },
				     &out),
			 0);
	assert_non_null(strstr(out, "0 workloads of this shape fit"));
	free(out);
	assert_int_equal(test_xpuctl(x->socket,
				     (const char *[]){ "fit", "--count", "4", "--numa-local",
						       "--resource", "nvidia.com/gpu", NULL },
				     &out),
			 0);
	assert_non_null(strstr(out, "2 workloads of this shape fit"));
	free(out);
	/* placement options still refused where they mean nothing */
	assert_int_equal(test_xpuctl(x->socket, (const char *[]){ "devices", "--numa-local", NULL },
				     &out),
			 1);
	free(out);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unprivileged_fits_are_bounded),
		cmocka_unit_test(test_fit_numa_local),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
