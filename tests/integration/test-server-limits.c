// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What one local user, or a shortage of descriptors, can do to xpud's servers: an unprivileged
 * user who opens every connection and stream it can does not lock root out of the API, nor do
 * unprivileged users together lock out the admin group, nor do their unread streams take xpud's
 * memory; a daemon out of descriptors waits instead of spinning on its listeners and serves the
 * waiting connections once it has descriptors again; silent gRPC connections do not lock kubelet
 * out.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/fileio.h"
#include "shared/macro.h"
#include "procstat.h"
#include "testutil.h"

#define NOBODY 65534

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
		return -1;
	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads what arrives on @fd within @timeout_ms into @buf; the bytes, 0 at EOF, -1 on none. */
static ssize_t read_some(int fd, char *buf, size_t size, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, timeout_ms) <= 0)
		return -1;
	return read(fd, buf, size);
}

/* Lets an unprivileged user reach the API socket. */
static void open_socket_to_all(const struct test_xpud *x)
{
	char run[4096];

	assert_int_equal(chmod(x->root, 0755), 0);
	snprintf(run, sizeof(run), "%s/run", x->root);
	assert_int_equal(chmod(run, 0755), 0);
	assert_int_equal(chmod(x->socket, 0666), 0);
}

/*
 * A process of @uid that opens @n_idle connections and @n_streams event streams and holds them
 * until told to go (closing *ret_go). Its exit status: 0 when everything opened, 1 when a
 * connection failed, 2 when a stream was not answered 200.
 */
struct holder {
	pid_t pid;
	int go; /* closing it ends the holder */
};

/* Becomes @uid (its group the same number), with the supplementary group @group unless 0. */
static bool become(uid_t uid, gid_t group)
{
	return setgroups(group ? 1 : 0, &group) == 0 && setgid(uid) == 0 && setuid(uid) == 0;
}

static struct holder holder_start(const char *socket, uid_t uid, gid_t group, unsigned n_idle,
				  unsigned n_streams)
{
	static const char ev[] = "GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n";
	int ready[2], go[2];
	struct holder h;
	char c;

	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	h.pid = fork();
	assert_true(h.pid >= 0);
	if (h.pid == 0) {
		int status = 0;

		close(ready[0]);
		close(go[1]);
		if (!become(uid, group))
			_exit(10);
		for (unsigned i = 0; i < n_streams; i++) {
			char buf[512];
			int fd = connect_to(socket);
			ssize_t n;

			if (fd < 0 || write(fd, ev, sizeof(ev) - 1) != sizeof(ev) - 1) {
				status = 1;
				break;
			}
			n = read_some(fd, buf, sizeof(buf) - 1, 5000);
			if (n < 12 || strncmp(buf, "HTTP/1.1 200", 12) != 0) {
				status = 2;
				break;
			}
		}
		for (unsigned i = 0; i < n_idle && status == 0; i++)
			if (connect_to(socket) < 0)
				status = 1;
		(void)!write(ready[1], "r", 1);
		(void)!read(go[0], &c, 1);
		_exit(status);
	}
	close(ready[1]);
	close(go[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	h.go = go[1];
	return h;
}

static int holder_stop(struct holder *h)
{
	int status;

	close(h->go);
	assert_int_equal(waitpid(h->pid, &status, 0), h->pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* An event stream as root: the first line arrives. */
static void assert_root_gets_stream(const struct test_xpud *x)
{
	static const char *const subscribed[] = { "\"subscribed\"", NULL };
	struct test_stream *s = test_stream_open(x->socket);

	assert_true(test_stream_wait(s, subscribed, 5000) >= 0);
	test_stream_close(s);
}

static void test_idle_connections_of_one_user(void **state)
{
	struct test_xpud *x;
	struct holder h;
	char *out = NULL;
	const char *version[] = { "version", NULL };

	if (geteuid() != 0)
		skip();
	x = test_xpud_start(test_fixture_new("real-h100-vm"), NULL);
	open_socket_to_all(x);

	/* As many idle connections as the whole table holds, all of one user. */
	h = holder_start(x->socket, NOBODY, 0, 128, 0);
	assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
	assert_int_equal(test_xpuctl(x->socket, version, &out), 0);
	free(out);
	assert_root_gets_stream(x);
	assert_int_equal(holder_stop(&h), 0);

	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

#define EVENTS "GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n"
#define VERSION "GET /v1/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

/*
 * Sends @request on a new connection as @uid (with the supplementary group @group unless 0) and
 * reads the answer: 0 when it starts with @status and holds @needle (NULL: anything); else 11
 * or 12, with the answer on stderr.
 */
static int exchange_as(const char *socket, uid_t uid, gid_t group, const char *request,
		       const char *status, const char *needle)
{
	int wstatus;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *a;

		if (!become(uid, group))
			_exit(10);
		a = test_raw_exchange(socket, request, strlen(request), 5000);
		if (strncmp(a, status, strlen(status)) != 0 || (needle && !strstr(a, needle))) {
			fprintf(stderr, "uid %u, group %u: %s\n", (unsigned)uid, (unsigned)group,
				a);
			_exit(strncmp(a, status, strlen(status)) != 0 ? 11 : 12);
		}
		free(a);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &wstatus, 0), pid);
	assert_true(WIFEXITED(wstatus));
	return WEXITSTATUS(wstatus);
}

static void test_streams_of_one_user(void **state)
{
	struct test_xpud *x;
	struct holder h;

	if (geteuid() != 0)
		skip();
	x = test_xpud_start(test_fixture_new("real-h100-vm"), NULL);
	open_socket_to_all(x);

	/* Its share of streams, and connections that keep sending requests: root is served. */
	h = holder_start(x->socket, NOBODY, 0, 64, 16);
	assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
	assert_root_gets_stream(x);

	/* One stream more is refused, saying why. */
	assert_int_equal(exchange_as(x->socket, NOBODY, 0, EVENTS, "HTTP/1.1 503",
				     "too many event streams of uid 65534 (limit 16)"),
			 0);
	assert_int_equal(holder_stop(&h), 0);

	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/*
 * The admin group's reserve: unprivileged users fill their whole pool of connections (112 of
 * 128) and of streams (56 of 64), each within its share; a member of the admin group through a
 * supplementary group still gets connections and streams, up to the table's end; users outside
 * it, the same user ID without the group among them, do not.
 */
static void test_admin_group_reserve(void **state)
{
	/* idle connections and streams of each unprivileged user: 112 connections, 56 streams;
	 * each holds no more than 1 above another, so nobody's idle connection gives way */
	static const struct {
		uid_t uid;
		unsigned n_idle, n_streams;
	} users[] = {
		{ 60001, 0, 16 }, { 60002, 0, 16 }, { 60003, 0, 16 }, { 60004, 8, 8 },
		{ 60005, 16, 0 }, { 60006, 16, 0 }, { 60007, 16, 0 },
	};
	const uid_t member = 60010;
	struct holder h[ELEMENTSOF(users)], m;
	char *root, conf[4096];
	const char *args[] = { "--config", conf, NULL };
	gid_t admin = test_admin_group_gid();
	struct test_xpud *x;
	FILE *f;

	root = test_fixture_new("real-h100-vm");
	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	assert_non_null(f = fopen(conf, "we"));
	fputs("admin-group: " TEST_ADMIN_GROUP "\n", f);
	assert_int_equal(fclose(f), 0);
	x = test_xpud_start(root, args);
	open_socket_to_all(x);

	for (size_t i = 0; i < ELEMENTSOF(users); i++)
		h[i] = holder_start(x->socket, users[i].uid, 0, users[i].n_idle,
				    users[i].n_streams);

	/* Outside the group: a user whose connections are all streams gets no connection (no
	 * idle one of anyone may give way to it); one with idle connections gets a connection
	 * for its own oldest idle one, but no stream; the member's user ID without the group
	 * gets no stream either. */
	assert_int_equal(exchange_as(x->socket, 60001, 0, VERSION, "HTTP/1.1 503",
				     "Too many connections (limit 112)"),
			 0);
	assert_int_equal(exchange_as(x->socket, 60005, 0, EVENTS, "HTTP/1.1 503",
				     "too many event streams (limit 56)"),
			 0);
	assert_int_equal(exchange_as(x->socket, member, 0, EVENTS, "HTTP/1.1 503",
				     "too many event streams (limit 56)"),
			 0);

	/* A member through a supplementary group: all 8 streams kept back and 7 connections,
	 * then one request answered on the table's last connection. */
	m = holder_start(x->socket, member, admin, 7, 8);
	assert_int_equal(exchange_as(x->socket, member, admin, VERSION, "HTTP/1.1 200", NULL),
			 0);
	assert_int_equal(holder_stop(&m), 0);

	/* Every unprivileged user kept what it held. In reverse: each holder inherited the
	 * write ends of the ones before it, which see their end once it is gone. */
	for (size_t i = ELEMENTSOF(users); i-- > 0;)
		assert_int_equal(holder_stop(&h[i]), 0);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/*
 * Connects to @socket as @uid and asks for the event stream; the descriptor comes back through
 * SCM_RIGHTS: xpud knows the peer by the credentials of the connect, whoever reads later.
 */
static int stream_as(const char *socket, uid_t uid)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = {}, c = 0;
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	int sp[2], fd, status;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sp[0]);
		if (!become(uid, 0))
			_exit(10);
		fd = connect_to(socket);
		if (fd < 0 || write(fd, EVENTS, strlen(EVENTS)) != (ssize_t)strlen(EVENTS))
			_exit(11);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		_exit(sendmsg(sp[1], &mh, 0) == 1 ? 0 : 12);
	}
	close(sp[1]);
	assert_int_equal(recvmsg(sp[0], &mh, MSG_CMSG_CLOEXEC), 1);
	cm = CMSG_FIRSTHDR(&mh);
	assert_non_null(cm);
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	close(sp[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return fd;
}

/* Reads @fd until @needle arrived (the answer so far, malloc'd), or EOF or @timeout_ms
 * passed (then NULL when @needle is not NULL). With @needle NULL: everything until EOF. */
static char *read_until(int fd, const char *needle, int timeout_ms)
{
	long long end = test_now_ms() + timeout_ms;
	size_t len = 0, cap = 1 << 20;
	char *buf = malloc(cap);

	assert_non_null(buf);
	for (;;) {
		long long left = end - test_now_ms();
		ssize_t n;

		buf[len] = '\0';
		if (needle && strstr(buf, needle))
			return buf;
		if (left <= 0)
			break;
		if (cap - len < 65536) {
			cap *= 2;
			assert_non_null(buf = realloc(buf, cap));
		}
		n = read_some(fd, buf + len, cap - len - 1, (int)left);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (!needle)
		return buf;
	free(buf);
	return NULL;
}

/* Reads what @fd has now without waiting; the bytes. */
static size_t drain(int fd)
{
	char buf[65536];
	size_t total = 0;
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		total += (size_t)n;
	return total;
}

#define BUDGET_STREAMS 15 /* besides the laggard's: two for each user */
#define TOTAL_DROPPED "all event streams held more than 16777216 unread bytes"

/*
 * The budget of unread event-stream output of all users together (16 MiB): 16 streams of 9
 * users that do not read, each user within its own 4 MiB and each stream within its 1 MiB,
 * would hold more than 16 MiB together. The one furthest behind of all, opened first, is
 * dropped with a last line saying why, and only that one: the others, and a stream that reads,
 * keep receiving; xpud's memory stays bounded.
 *
 * Output queues grow by doubling: the budget is passed when the last of the 15 grows from 512
 * KiB to 1 MiB, the laggard at 1 MiB already (256 KiB further behind, short of its own limit),
 * and once it is gone the 15 fit, even at 1 MiB each.
 */
static void test_stream_total_budget(void **state)
{
	char reason[1001], body[1200], marker[1200], device[64], plain[128], asan[4096];
	unsigned n_dropped, n_receiving = 0;
	char *asan_before;
	int laggard, streams[BUDGET_STREAMS], reader;
	size_t got = 0, head_start;
	long rss_before, rss_after;
	struct test_xpud *x;
	json_t *doc = NULL;
	char *text;

	if (geteuid() != 0)
		skip();
	/* Under ASan, freed memory is kept back a while (256 MiB), which would be counted in the
	 * RSS: this xpud frees at once, its other checks stay. */
	snprintf(asan, sizeof(asan), "%s:quarantine_size_mb=0", getenv("ASAN_OPTIONS") ?: "");
	assert_true(asprintf(&asan_before, "%s", getenv("ASAN_OPTIONS") ?: "") >= 0);
	setenv("ASAN_OPTIONS", asan, 1);
	x = test_xpud_start(test_fixture_new("real-h100-vm"), NULL);
	setenv("ASAN_OPTIONS", asan_before, 1);
	free(asan_before);
	open_socket_to_all(x);
	assert_int_equal(test_request(x, "GET", "/v1/devices", &doc), 200);
	snprintf(device, sizeof(device), "%s",
		 json_string_value(json_object_get(
			 json_array_get(json_object_get(doc, "devices"), 0), "id")));
	json_decref(doc);
	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	snprintf(body, sizeof(body), "{\"device\": \"%s\", \"reason\": \"%s\"}", device, reason);
	snprintf(plain, sizeof(plain), "{\"device\": \"%s\"}", device);

	/* root's stream reads all along */
	reader = connect_to(x->socket);
	assert_true(reader >= 0);
	assert_int_equal(write(reader, EVENTS, strlen(EVENTS)), (ssize_t)strlen(EVENTS));
	free(read_until(reader, "\"subscribed\"", 10000));

	/* The laggard: subscribed, then it reads no more, and gets a head start of 256 KiB. */
	laggard = stream_as(x->socket, 61000);
	assert_non_null(text = read_until(laggard, "\"subscribed\"", 10000));
	free(text);
	rss_before = test_proc_rss_kib(x->pid);
	for (head_start = 0; head_start < 256 * 1024;) {
		assert_int_equal(test_request_body(x, "POST", "/v1/cordon", body, NULL), 200);
		assert_int_equal(test_request_body(x, "POST", "/v1/uncordon", plain, NULL), 200);
		head_start += drain(reader);
	}

	/* 15 more streams of 8 users, none reading after its first line. */
	for (size_t i = 0; i < ELEMENTSOF(streams); i++) {
		streams[i] = stream_as(x->socket, 61001 + i / 2);
		assert_non_null(text = read_until(streams[i], "\"subscribed\"", 10000));
		free(text);
	}
	while (!test_xpud_log_contains(x, TOTAL_DROPPED)) {
		assert_int_equal(test_request_body(x, "POST", "/v1/cordon", body, NULL), 200);
		assert_int_equal(test_request_body(x, "POST", "/v1/uncordon", plain, NULL), 200);
		got += drain(reader);
		/* each stream's queue grows by what the reader gets: 1 MiB is past any stream's
		 * own limit, the budget of all must have been hit well before */
		if (got > 4 * 1024 * 1024)
			fail_msg("%zu bytes sent to 17 streams, no stream dropped for the total",
				 got);
	}
	rss_after = test_proc_rss_kib(x->pid);
	print_message("%zu bytes to each stream; xpud's RSS %ld -> %ld KiB\n", head_start + got,
		      rss_before, rss_after);
	/* 16 MiB of queues and the allocator's slack, well under the unit's MemoryMax=64M
	 * (valgrind, under XPU_TEST_WRAPPER, counts its own) */
	if (isempty(getenv("XPU_TEST_WRAPPER")) && rss_after - rss_before > 40 * 1024)
		fail_msg("xpud's RSS grew by %ld KiB with 16 streams that do not read",
			 rss_after - rss_before);

	/* The laggard reads the rest of its line, then why, then the end. */
	text = read_until(laggard, NULL, 10000);
	assert_non_null(strstr(text, "{\"type\":\"dropped\",\"error\":\"slow-reader\""));
	assert_non_null(strstr(text, TOTAL_DROPPED));
	free(text);
	close(laggard);
	/* It went first, and every stream dropped went for the total: the same send may have
	 * dropped another (a queue of the same size as the rest of the budget) */
	{
		_cleanup_free_ char *log = NULL;
		const char *first, *eol;

		assert_int_equal(read_attr_at(AT_FDCWD, x->log, 16 << 20, &log), 0);
		assert_non_null(first = strstr(log, "dropping it"));
		assert_non_null(eol = strchr(first, '\n'));
		while (first > log && first[-1] != '\n')
			first--;
		if (!strstr(first, "UID 61000 is ") || !strstr(first, TOTAL_DROPPED) ||
		    strstr(first, TOTAL_DROPPED) > eol)
			fail_msg("the first stream dropped is not the laggard's, for the "
				 "total: %.*s",
				 (int)(eol - first), first);
		n_dropped = test_xpud_log_count(x, "dropping it");
		assert_int_equal(test_xpud_log_count(x, TOTAL_DROPPED), n_dropped);
		print_message("%u streams dropped\n", n_dropped);
	}

	/* Every other stream, and the reader, get an event sent after it. */
	snprintf(marker, sizeof(marker), "{\"device\": \"%s\", \"reason\": \"the marker\"}",
		 device);
	assert_int_equal(test_request_body(x, "POST", "/v1/cordon", marker, NULL), 200);
	for (size_t i = 0; i < ELEMENTSOF(streams); i++) {
		/* NULL: its end came first (dropped) */
		text = read_until(streams[i], "the marker", 20000);
		n_receiving += !!text;
		free(text);
		close(streams[i]);
	}
	assert_int_equal(n_receiving, ELEMENTSOF(streams) - (n_dropped - 1));
	assert_true(n_receiving >= ELEMENTSOF(streams) / 2);
	assert_non_null(text = read_until(reader, "the marker", 10000));
	free(text);
	close(reader);
	assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* The device plugin's gRPC socket in the tree (one of them). */
static char *grpc_socket(const char *root)
{
	char pattern[4200];
	glob_t g;
	char *path;

	snprintf(pattern, sizeof(pattern), "%s/var/lib/kubelet/device-plugins/xpud-*.sock", root);
	for (int i = 0; i < 500; i++) {
		if (glob(pattern, 0, NULL, &g) == 0) {
			path = strdup(g.gl_pathv[0]);
			globfree(&g);
			return path;
		}
		usleep(20000);
	}
	fail_msg("no device plugin socket in %s", root);
	return NULL;
}

static struct test_xpud *start_with_plugin(void)
{
	char *root = test_fixture_new("hgx-h100"), cmd[4200];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/var/lib/kubelet/device-plugins'", root);
	assert_int_equal(system(cmd), 0);
	return test_xpud_start_nvml(root, NULL, NULL);
}

/* Whether the gRPC server on @fd speaks first: its SETTINGS frame (type 4) arrives. */
static bool grpc_served(int fd, int timeout_ms)
{
	unsigned char buf[9];
	ssize_t n = read_some(fd, (char *)buf, sizeof(buf), timeout_ms);

	return n == (ssize_t)sizeof(buf) && buf[3] == 4;
}

/* Nanoseconds the main thread of @pid was running or ready to run (schedstat). */
static unsigned long long runnable_ns(pid_t pid)
{
	char path[64];
	unsigned long long run = 0, wait = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)pid, (int)pid);
	f = fopen(path, "re");
	if (!f)
		skip();
	assert_int_equal(fscanf(f, "%llu %llu", &run, &wait), 2);
	fclose(f);
	return run + wait;
}

/* The lowest descriptor number @pid does not use. */
static int lowest_free_fd(pid_t pid)
{
	char path[64];
	bool used[4096] = {};
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && atoi(de->d_name) < 4096)
			used[atoi(de->d_name)] = true;
	closedir(d);
	for (int i = 0; i < 4096; i++)
		if (!used[i])
			return i;
	fail();
	return -1;
}

static void test_out_of_descriptors(void **state)
{
	struct test_xpud *x = start_with_plugin();
	_cleanup_free_ char *gsock = grpc_socket(x->root);
	struct rlimit old, low;
	unsigned long long before, after;
	long long t0, t1;
	int gfd, hfd;

	/* Let start-up work (the CUDA helper after READY) finish, so the loop only waits. */
	for (int i = 0; i < 500 && !test_xpud_log_contains(x, "CUDA driver API"); i++)
		usleep(20000);
	assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
	assert_int_equal(prlimit(x->pid, RLIMIT_NOFILE, NULL, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)lowest_free_fd(x->pid);
	assert_int_equal(prlimit(x->pid, RLIMIT_NOFILE, &low, NULL), 0);

	/* Connections wait in both backlogs, which xpud cannot take. */
	gfd = connect_to(gsock);
	hfd = connect_to(x->socket);
	assert_true(gfd >= 0 && hfd >= 0);
	usleep(200 * 1000);
	before = runnable_ns(x->pid);
	t0 = test_now_ms();
	usleep(3000 * 1000);
	after = runnable_ns(x->pid);
	t1 = test_now_ms();
	print_message("xpud's loop was runnable %llu ms of %lld ms, with %d descriptors at most\n",
		      (after - before) / 1000000ULL, t1 - t0, (int)low.rlim_cur);
	/* A loop that spins is running or ready all the time, however busy the machine. */
	if ((after - before) / 1000000ULL >= (unsigned long long)(t1 - t0) / 2)
		fail_msg("xpud's loop was runnable %llu ms of %lld ms while out of descriptors",
			 (after - before) / 1000000ULL, t1 - t0);

	/* With descriptors again, both waiting connections are served. */
	assert_int_equal(prlimit(x->pid, RLIMIT_NOFILE, &old, NULL), 0);
	assert_true(grpc_served(gfd, 10000));
	{
		static const char req[] = "GET /v1/version HTTP/1.1\r\nHost: x\r\n\r\n";
		char buf[64];

		assert_int_equal(write(hfd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
		assert_true(read_some(hfd, buf, sizeof(buf), 10000) >= 12);
		assert_memory_equal(buf, "HTTP/1.1 200", 12);
	}
	close(gfd);
	close(hfd);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_silent_grpc_connections(void **state)
{
	struct test_xpud *x = start_with_plugin();
	_cleanup_free_ char *gsock = grpc_socket(x->root);
	int fds[32], half, kubelet;
	char buf[256];

	/* Connections that never speak fill the table (32). */
	for (size_t i = 0; i < 32; i++) {
		fds[i] = connect_to(gsock);
		assert_true(fds[i] >= 0);
	}
	/* The next one, kubelet's, is served all the same. */
	kubelet = connect_to(gsock);
	assert_true(kubelet >= 0);
	assert_true(grpc_served(kubelet, 10000));
	close(kubelet);

	/* Half a client preface: the connection is closed once the header timeout passed. */
	half = connect_to(gsock);
	assert_true(half >= 0);
	assert_int_equal(write(half, "PRI * HTTP/2.0\r\n", 16), 16);
	for (;;) {
		ssize_t n = read_some(half, buf, sizeof(buf), 20000);

		assert_true(n >= 0); /* -1: still open after 20 s */
		if (n == 0)
			break;
	}
	close(half);
	for (size_t i = 0; i < 32; i++)
		close(fds[i]);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_connections_of_one_user),
		cmocka_unit_test(test_streams_of_one_user),
		cmocka_unit_test(test_admin_group_reserve),
		cmocka_unit_test(test_stream_total_budget),
		cmocka_unit_test(test_out_of_descriptors),
		cmocka_unit_test(test_silent_grpc_connections),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
