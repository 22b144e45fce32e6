// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/fileio.h"
#include "shared/macro.h"
#include "shared/strv.h"
#include "sim/fixture.h"
#include "procstat.h"
#include "testutil.h"
#include "xpu/client.h"

const char *test_env(const char *name)
{
	const char *v = getenv(name);

	if (!v || !*v) {
		fprintf(stderr, "%s is not set (run through ctest); skipping.\n", name);
		exit(77);
	}
	return v;
}

gid_t test_admin_group_gid(void)
{
	struct group *g;

	if (geteuid() != 0)
		skip();
	g = getgrnam(TEST_ADMIN_GROUP);
	if (!g)
		skip();
	return g->gr_gid;
}

long long test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *test_fixture_new(const char *name)
{
	const struct sim_node *node = sim_node_find(name);
	char *dir = NULL, *err = NULL;
	int r;

	if (!node)
		fail_msg("no embedded fixture node '%s'", name);
	r = fixture_build_temp(node->json, &dir, &err);
	if (r < 0)
		fail_msg("building fixture %s: %s (%d)", name, err ?: "?", r);
	free(err);
	return dir;
}

static int bind_notify_socket(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof(sun.sun_path));
	strcpy(sun.sun_path, path);
	unlink(path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

static const char *child_nvml_library;
static char child_cuda_library[4096];
static char child_nvml_desc[4096];
static char child_nvml_events[4096];
static char child_nvml_root[4096];

struct test_xpud *test_xpud_start_nvml(char *root, const char *const *extra_args,
				       const char *library)
{
	static char lib[4096];
	struct test_xpud *x;

	if (!library) {
		snprintf(lib, sizeof(lib), "%s/libnvidia-ml.so.1", test_env("XPU_FAKE_NVML_DIR"));
		library = lib;
	}
	child_nvml_library = library;
	/* the CUDA fake beside the NVML one, when there is one */
	snprintf(child_cuda_library, sizeof(child_cuda_library), "%s", library);
	if (strrchr(child_cuda_library, '/'))
		strcpy(strrchr(child_cuda_library, '/') + 1, "libcuda.so.1");
	snprintf(child_nvml_desc, sizeof(child_nvml_desc), "%s/run/fake-nvml.json", root);
	snprintf(child_nvml_events, sizeof(child_nvml_events), "%s/run/nvml-events", root);
	snprintf(child_nvml_root, sizeof(child_nvml_root), "%s", root);
	x = test_xpud_start(root, extra_args);
	child_nvml_library = NULL;
	return x;
}

struct test_xpud *test_xpud_start(char *root, const char *const *extra_args)
{
	const char *bin = test_env("XPUD_BIN");
	const char *wrapper = getenv("XPU_TEST_WRAPPER");
	struct test_xpud *x = calloc(1, sizeof(*x));
	char notify[4096], buf[4096];
	_cleanup_free_ char *words = NULL;
	const char *argv[64];
	long long deadline;
	int nfd, n = 0;

	assert_non_null(x);
	x->root = root;
	assert_true(asprintf(&x->socket, "%s/run/xpud.sock", root) > 0);
	assert_true(asprintf(&x->uevent_socket, "%s/run/xpud-uevent.sock", root) > 0);
	assert_true(asprintf(&x->log, "%s/xpud.log", root) > 0);
	snprintf(notify, sizeof(notify), "%s/run/notify.sock", root);
	nfd = bind_notify_socket(notify);

	if (!isempty(wrapper)) {
		char *save = NULL;

		assert_non_null(words = strdup(wrapper));
		for (char *w = strtok_r(words, " ", &save); w && n < 24; w = strtok_r(NULL, " ", &save))
			argv[n++] = w;
	}
	argv[n++] = bin;
	argv[n++] = "--root";
	argv[n++] = root;
	argv[n++] = "--socket";
	argv[n++] = x->socket;
	argv[n++] = "--log-level";
	argv[n++] = "debug";
	for (size_t i = 0; extra_args && extra_args[i] && n < 62; i++)
		argv[n++] = extra_args[i];
	argv[n] = NULL;

	x->pid = fork();
	assert_true(x->pid >= 0);
	if (x->pid == 0) {
		int lfd = open(x->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		/* xpud must not outlive a failed test, nor hold ctest's output pipe open. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
			_exit(127);
		if (lfd < 0 || dup2(lfd, STDERR_FILENO) < 0 || dup2(lfd, STDOUT_FILENO) < 0)
			_exit(127);
		setenv("NOTIFY_SOCKET", notify, 1);
		unsetenv("JOURNAL_STREAM");
		if (child_nvml_library) {
			setenv("XPU_NVML_LIBRARY", child_nvml_library, 1);
			setenv("XPU_FAKE_NVML", child_nvml_desc, 1);
			/* MIG instances the fake creates get capability files in the tree */
			setenv("XPU_FAKE_NVML_ROOT", child_nvml_root, 1);
			/* a FIFO the test created there injects NVML events */
			if (access(child_nvml_events, F_OK) == 0)
				setenv("XPU_FAKE_NVML_EVENTS", child_nvml_events, 1);
			if (access(child_cuda_library, F_OK) == 0)
				setenv("XPU_CUDA_LIBRARY", child_cuda_library, 1);
			else
				unsetenv("XPU_CUDA_LIBRARY");
		} else {
			unsetenv("XPU_NVML_LIBRARY");
		}
		/* the wrapper is found on PATH */
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}

	/* ASan builds start slowly on a loaded machine, valgrind's far more slowly */
	deadline = test_now_ms() + (isempty(wrapper) ? 20000 : 120000);
	for (;;) {
		struct pollfd p = { .fd = nfd, .events = POLLIN };
		int status;
		ssize_t k;

		if (waitpid(x->pid, &status, WNOHANG) == x->pid) {
			_cleanup_free_ char *log = NULL;

			(void)read_attr_at(AT_FDCWD, x->log, 1 << 20, &log);
			x->pid = 0;
			fail_msg("xpud exited before READY=1 (status %d):\n%s", status, log ?: "");
		}
		if (test_now_ms() > deadline)
			fail_msg("xpud did not send READY=1 in time");
		if (poll(&p, 1, 100) <= 0)
			continue;
		k = recv(nfd, buf, sizeof(buf) - 1, 0);
		if (k <= 0)
			continue;
		buf[k] = '\0';
		if (strstr(buf, "READY=1"))
			break;
	}
	close(nfd);
	return x;
}

int test_xpud_stop(struct test_xpud *x)
{
	int status;

	if (x->pid <= 0)
		return -1;
	kill(x->pid, SIGTERM);
	assert_int_equal(waitpid(x->pid, &status, 0), x->pid);
	x->pid = 0;
	if (!isempty(getenv("XPU_TEST_WRAPPER")) && WIFEXITED(status) &&
	    WEXITSTATUS(status) == TEST_WRAPPER_ERROR_EXIT) {
		_cleanup_free_ char *log = NULL;

		(void)read_attr_at(AT_FDCWD, x->log, 16 << 20, &log);
		fail_msg("%s found errors in xpud:\n%s", getenv("XPU_TEST_WRAPPER"), log ?: "");
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void test_xpud_free(struct test_xpud *x)
{
	if (!x)
		return;
	if (x->pid > 0)
		(void)test_xpud_stop(x);
	if (x->root)
		(void)fixture_destroy(x->root);
	free(x->root);
	free(x->socket);
	free(x->uevent_socket);
	free(x->log);
	free(x);
}

bool test_xpud_log_contains(const struct test_xpud *x, const char *needle)
{
	_cleanup_free_ char *log = NULL;

	if (read_attr_at(AT_FDCWD, x->log, 16 << 20, &log) < 0)
		return false;
	return strstr(log, needle) != NULL;
}

unsigned test_xpud_log_count(const struct test_xpud *x, const char *needle)
{
	_cleanup_free_ char *log = NULL;
	unsigned n = 0;

	if (read_attr_at(AT_FDCWD, x->log, 16 << 20, &log) < 0)
		return 0;
	for (const char *p = log; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

void test_send_uevent(const struct test_xpud *x, const char *action, const char *devpath,
		      const char *subsystem)
{
	test_send_uevent_with(x, action, devpath, subsystem, NULL);
}

void test_send_uevent_with(const struct test_xpud *x, const char *action, const char *devpath,
			   const char *subsystem, const char *extra)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char buf[2048];
	int fd, n;

	n = snprintf(buf, sizeof(buf), "%s@%s%cACTION=%s%cDEVPATH=%s%cSUBSYSTEM=%s%cSEQNUM=1%c%s",
		     action, devpath, 0, action, 0, devpath, 0, subsystem, 0, 0, extra ?: "");
	assert_true(n > 0 && n < (int)sizeof(buf));
	if (!extra)
		n--; /* no empty entry after SEQNUM */
	strcpy(sun.sun_path, x->uevent_socket);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(sendto(fd, buf, (size_t)n + 1, 0, (struct sockaddr *)&sun, sizeof(sun)),
			 n + 1);
	close(fd);
}

json_t *test_get(const struct test_xpud *x, const char *what, const char *id)
{
	char path[512];
	json_t *doc = NULL;

	snprintf(path, sizeof(path), "/v1/%s%s%s", what, id ? "/" : "", id ?: "");
	assert_int_equal(test_request(x, "GET", path, &doc), 200);
	return doc;
}

const char *test_jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

const char *test_jprop(json_t *d, const char *key)
{
	return test_jstr(json_object_get(d, "properties"), key);
}

bool test_has_node(json_t *d, const char *node)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(d, "device_nodes"), i, v)
		if (strcmp(json_string_value(v), node) == 0)
			return true;
	return false;
}

void test_write_in_place(const char *root, const char *rel, const char *text)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (char *slash = strchr(path + strlen(root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = 0;
		assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
		*slash = '/';
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

void test_put_file(const char *root, const char *rel, const char *text)
{
	char path[4096], tmp[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	f = fopen(tmp, "we");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
}

char *test_simulate_list_output(void)
{
	char cmd[4096], *out = calloc(1, 16384);
	size_t n;
	FILE *p;

	assert_non_null(out);
	snprintf(cmd, sizeof(cmd), "%s --simulate list", test_env("XPUD_BIN"));
	p = popen(cmd, "re");
	assert_non_null(p);
	n = fread(out, 1, 16383, p);
	out[n] = '\0';
	assert_int_equal(pclose(p), 0);
	return out;
}

json_t *test_wait_health(const struct test_xpud *x, const char *id, const char *state)
{
	char path[256];

	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	for (int i = 0; i < 500; i++) {
		json_t *d = NULL, *h;

		assert_int_equal(test_request(x, "GET", path, &d), 200);
		h = json_incref(json_object_get(d, "health"));
		json_decref(d);
		if (strcmp(json_string_value(json_object_get(h, "state")) ?: "", state) == 0)
			return h;
		json_decref(h);
		usleep(20 * 1000);
	}
	fail_msg("%s never became %s", id, state);
	return NULL;
}

size_t test_n_allocations(const struct test_xpud *x)
{
	json_t *doc = NULL;
	size_t n;

	assert_int_equal(test_request(x, "GET", "/v1/allocations", &doc), 200);
	n = json_array_size(json_object_get(doc, "allocations"));
	json_decref(doc);
	return n;
}

int test_request(const struct test_xpud *x, const char *method, const char *path, json_t **ret)
{
	struct xpu_client *c = NULL;
	json_t *doc = NULL;
	int status = 0, r;

	r = xpu_client_new(x->socket, &c);
	if (r < 0)
		fail_msg("cannot connect to %s: %s", x->socket, strerror(-r));
	r = xpu_client_request(c, method, path, NULL, &status, &doc);
	xpu_client_free(c);
	if (r < 0)
		fail_msg("%s %s failed: %s", method, path, strerror(-r));
	if (ret)
		*ret = doc;
	else
		json_decref(doc);
	return status;
}

int test_request_body(const struct test_xpud *x, const char *method, const char *path,
		      const char *body, json_t **ret)
{
	struct xpu_client *c = NULL;
	json_t *doc = NULL, *req = NULL;
	int status = 0, r;

	if (body) {
		req = json_loads(body, 0, NULL);
		if (!req)
			fail_msg("test body is not JSON: %s", body);
	}
	r = xpu_client_new(x->socket, &c);
	if (r >= 0)
		r = xpu_client_request(c, method, path, req, &status, &doc);
	xpu_client_free(c);
	json_decref(req);
	if (r < 0)
		return r;
	if (ret)
		*ret = doc;
	else
		json_decref(doc);
	return status;
}

int test_xpud_wait_exit(struct test_xpud *x, int timeout_ms)
{
	long long deadline = test_now_ms() + timeout_ms;
	int status;

	while (x->pid > 0 && test_now_ms() < deadline) {
		if (waitpid(x->pid, &status, WNOHANG) == x->pid) {
			x->pid = 0;
			return status;
		}
		usleep(10000);
	}
	return -1;
}

char *test_xpud_take_root(struct test_xpud *x)
{
	return TAKE_PTR(x->root);
}

int test_xpuctl(const char *socket, const char *const *args, char **ret_out)
{
	const char *bin = test_env("XPUCTL_BIN");
	const char *argv[32];
	char *out = NULL;
	size_t len = 0, cap = 0;
	int pipefd[2], status, n = 0;
	pid_t pid;

	argv[n++] = bin;
	argv[n++] = "--socket";
	argv[n++] = socket;
	for (size_t i = 0; args && args[i] && n < 30; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		ssize_t k;

		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 65536;
			out = realloc(out, cap);
			assert_non_null(out);
		}
		k = read(pipefd[0], out + len, cap - len - 1);
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	out[len] = '\0';
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (ret_out)
		*ret_out = out;
	else
		free(out);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

char *test_raw_exchange(const char *socket_path, const void *data, size_t len, int timeout_ms)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	long long deadline = test_now_ms() + timeout_ms;
	size_t got = 0, cap = 65536;
	char *out = malloc(cap);
	int fd;

	assert_non_null(out);
	strcpy(sun.sun_path, socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	/* The server may close early (an oversized request): ignore EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	for (size_t off = 0; off < len;) {
		ssize_t k = send(fd, (const char *)data + off, len - off, MSG_NOSIGNAL);

		if (k <= 0)
			break;
		off += (size_t)k;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = deadline - test_now_ms();
		ssize_t k;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if (cap - got < 4096) {
			cap *= 2;
			out = realloc(out, cap);
			assert_non_null(out);
		}
		k = recv(fd, out + got, cap - got - 1, 0);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	out[got] = '\0';
	close(fd);
	return out;
}

struct test_stream {
	int fd;
	size_t len;
	char buf[1 << 20];
};

struct test_stream *test_stream_open(const char *socket_path)
{
	static const char req[] = "GET /v1/events HTTP/1.1\r\nHost: xpud\r\n\r\n";
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct test_stream *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	strcpy(sun.sun_path, socket_path);
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->fd >= 0);
	assert_int_equal(connect(s->fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(send(s->fd, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
	return s;
}

/* Reads until a line has every needle; copies it to @line (may be NULL). -1 on timeout/EOF. */
static long long stream_match(struct test_stream *s, const char *const *needles, int timeout_ms,
			      char **line)
{
	long long start = test_now_ms();

	for (;;) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		long long left;
		char *nl;
		ssize_t k;

		while ((nl = memchr(s->buf, '\n', s->len))) {
			bool all = true;

			*nl = '\0';
			for (size_t i = 0; needles[i]; i++)
				all = all && strstr(s->buf, needles[i]);
			if (all && line)
				assert_non_null(*line = strdup(s->buf));
			s->len -= (size_t)(nl + 1 - s->buf);
			memmove(s->buf, nl + 1, s->len);
			if (all)
				return test_now_ms() - start;
		}
		left = start + timeout_ms - test_now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -1;
		k = recv(s->fd, s->buf + s->len, sizeof(s->buf) - s->len - 1, 0);
		if (k <= 0)
			return -1;
		s->len += (size_t)k;
	}
}

long long test_stream_wait(struct test_stream *s, const char *const *needles, int timeout_ms)
{
	return stream_match(s, needles, timeout_ms, NULL);
}

json_t *test_stream_next(struct test_stream *s, const char *const *needles, int timeout_ms)
{
	char *line = NULL, *brace;
	json_t *doc = NULL;

	if (stream_match(s, needles, timeout_ms, &line) < 0)
		return NULL;
	/* the chunk framing may precede the document on its line */
	brace = strchr(line, '{');
	if (brace)
		doc = json_loads(brace, 0, NULL);
	free(line);
	assert_non_null(doc);
	return doc;
}

void test_stream_close(struct test_stream *s)
{
	if (!s)
		return;
	close(s->fd);
	free(s);
}

/* ---- plans, capacity, the fake NVML's description ------------------------------------------ */

json_t *test_plan_entry(const struct test_xpud *x, const char *device)
{
	json_t *doc = NULL, *d, *found = NULL;
	size_t i;

	assert_int_equal(test_request(x, "GET", "/v1/plan", &doc), 200);
	json_array_foreach(json_object_get(doc, "devices"), i, d)
		if (strcmp(json_string_value(json_object_get(d, "device")) ?: "", device) == 0)
			found = json_incref(d);
	json_decref(doc);
	assert_non_null(found);
	return found;
}

void test_wait_settled(const struct test_xpud *x, const char *device, const char *layout)
{
	long long deadline = test_now_ms() + 10000;

	for (;;) {
		json_t *p = test_plan_entry(x, device);
		const char *applied = json_string_value(json_object_get(p, "applied"));
		bool ok = applied && strcmp(applied, layout) == 0 &&
			  json_is_null(json_object_get(p, "pending")) &&
			  json_is_null(json_object_get(p, "repartition"));

		json_decref(p);
		if (ok)
			return;
		if (test_now_ms() > deadline)
			fail_msg("plan %s never settled on %s", device, layout);
		usleep(20 * 1000);
	}
}

json_int_t test_capacity(const struct test_xpud *x, const char *resource, const char *field)
{
	json_t *doc = NULL, *r;
	json_int_t v = -1;
	size_t i;

	assert_int_equal(test_request(x, "GET", "/v1/capacity", &doc), 200);
	json_array_foreach(json_object_get(doc, "resources"), i, r)
		if (strcmp(json_string_value(json_object_get(r, "name")) ?: "", resource) == 0)
			v = json_integer_value(json_object_get(r, field));
	json_decref(doc);
	return v;
}

char **test_device_slices(const struct test_xpud *x, const char *device, char ***ret_resources)
{
	_cleanup_strv_free_ char **ids = NULL, **res = NULL;
	json_t *doc = NULL, *s;
	size_t i;

	assert_int_equal(test_request(x, "GET", "/v1/slices", &doc), 200);
	json_array_foreach(json_object_get(doc, "slices"), i, s) {
		if (strcmp(json_string_value(json_object_get(s, "device_id")) ?: "", device) != 0)
			continue;
		assert_int_equal(strv_extend(&ids, json_string_value(json_object_get(s, "id"))), 0);
		assert_int_equal(
		    strv_extend(&res, json_string_value(json_object_get(s, "resource"))), 0);
	}
	json_decref(doc);
	strv_sort(ids);
	if (ret_resources)
		*ret_resources = TAKE_PTR(res);
	return TAKE_PTR(ids);
}

void test_fake_nvml_set(const char *root, const char *bus_id, const char *key, json_t *value)
{
	char path[4096], temp[4200];
	json_t *doc, *g;
	size_t i;

	snprintf(path, sizeof(path), "%s/run/fake-nvml.json", root);
	doc = json_load_file(path, 0, NULL);
	assert_non_null(doc);
	json_array_foreach(json_object_get(doc, "gpus"), i, g)
		if (strcmp(json_string_value(json_object_get(g, "bus_id")) ?: "", bus_id) == 0)
			assert_int_equal(json_object_set(g, key, value), 0);
	/* by rename: a helper process reading it meanwhile sees the old or the new whole */
	snprintf(temp, sizeof(temp), "%s.tmp", path);
	assert_int_equal(json_dump_file(doc, temp, 0), 0);
	assert_int_equal(rename(temp, path), 0);
	json_decref(doc);
	json_decref(value);
}

/* Writes @text to "<@description><@suffix>", or removes it with NULL. */
static void fake_side_file(const char *description, const char *suffix, const char *text)
{
	char path[4096], temp[4096 + 8];
	FILE *f;

	snprintf(path, sizeof(path), "%s%s", description, suffix);
	if (!text) {
		assert_true(unlink(path) == 0 || errno == ENOENT);
		return;
	}
	/* renamed into place: a call never reads half of it */
	snprintf(temp, sizeof(temp), "%s.new", path);
	f = fopen(temp, "we");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(temp, path), 0);
}

void test_fake_nvml_driver_error(const char *description, const char *name)
{
	fake_side_file(description, ".driver-error", name);
}

void test_fake_fault(const char *description, const char *line)
{
	fake_side_file(description, ".fault", line);
}

/*
 * The handlers of the deadly signals when the program started (the sanitizers' in a sanitized
 * build), before cmocka puts its own in place around each test: a child gets them back, so that
 * it dies as a process outside cmocka would instead of running the parent's tests on.
 */
static const int deadly_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS, SIGABRT };
static struct sigaction deadly_actions[ELEMENTSOF(deadly_signals)];

__attribute__((constructor)) static void save_deadly_actions(void)
{
	for (size_t i = 0; i < ELEMENTSOF(deadly_signals); i++)
		sigaction(deadly_signals[i], NULL, &deadly_actions[i]);
}

/* Appends what @fd has to @buf; false at its end (or an error). */
static bool child_read(int fd, char **buf, size_t *len)
{
	char chunk[16384];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	*buf = realloc(*buf, *len + (size_t)n + 1);
	assert_non_null(*buf);
	memcpy(*buf + *len, chunk, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
	return true;
}

void test_child_run(void (*fn)(void *userdata, int result_fd), void *userdata, int timeout_ms,
		    struct test_child *ret)
{
	int pipes[3][2], fds[3];
	char **bufs[3] = { &ret->out, &ret->err, &ret->result };
	size_t *lens[3] = { &ret->out_len, &ret->err_len, &ret->result_len };
	long long deadline = test_now_ms() + timeout_ms;
	size_t open_fds = 3;
	pid_t pid;

	*ret = (struct test_child){};
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(pipe2(pipes[i], O_CLOEXEC), 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* no cmocka here: a failed assertion would go on with the parent's tests */
		for (size_t i = 0; i < ELEMENTSOF(deadly_signals); i++)
			sigaction(deadly_signals[i], &deadly_actions[i], NULL);
		if (dup2(pipes[0][1], STDOUT_FILENO) < 0 || dup2(pipes[1][1], STDERR_FILENO) < 0)
			_exit(TEST_CHILD_BROKEN);
		fn(userdata, pipes[2][1]);
		_exit(0);
	}
	for (size_t i = 0; i < 3; i++) {
		close(pipes[i][1]);
		fds[i] = pipes[i][0];
	}
	while (open_fds > 0) {
		struct pollfd p[3];
		long long left = deadline - test_now_ms();

		if (left <= 0)
			break;
		for (size_t i = 0; i < 3; i++)
			p[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
		if (poll(p, 3, (int)left) < 0) {
			assert_int_equal(errno, EINTR);
			continue;
		}
		for (size_t i = 0; i < 3; i++)
			if (fds[i] >= 0 && p[i].revents && !child_read(fds[i], bufs[i], lens[i])) {
				fds[i] = safe_close(fds[i]);
				open_fds--;
			}
	}
	/* At the deadline, a child that has not ended hangs; one that just ended does not. */
	if (open_fds > 0 && waitpid(pid, &ret->status, WNOHANG) == 0) {
		ret->hung = true;
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &ret->status, 0), pid);
	} else if (open_fds == 0) {
		assert_int_equal(waitpid(pid, &ret->status, 0), pid);
	}
	for (size_t i = 0; i < 3; i++)
		safe_close(fds[i]);
}

struct child_calls {
	int (*call)(void *userdata, int which);
	void *userdata;
	const int *calls;
	size_t n_calls;
};

static void child_calls_main(void *userdata, int result_fd)
{
	const struct child_calls *cc = userdata;

	for (size_t i = 0; i < cc->n_calls; i++) {
		struct test_call_record rec = { .call = cc->calls[i] };
		long before = test_proc_rss_kib(getpid());

		rec.ret = cc->call(cc->userdata, cc->calls[i]);
		rec.rss_grew_kib = test_proc_rss_kib(getpid()) - before;
		if (before < 0 || write(result_fd, &rec, sizeof(rec)) != (ssize_t)sizeof(rec))
			_exit(TEST_CHILD_BROKEN);
	}
}

size_t test_child_run_calls(int (*call)(void *userdata, int which), void *userdata,
			    const int *calls, size_t n_calls, int timeout_ms,
			    struct test_child *ret, const struct test_call_record **ret_records)
{
	struct child_calls cc = { call, userdata, calls, n_calls };

	test_child_run(child_calls_main, &cc, timeout_ms, ret);
	assert_true(ret->result_len % sizeof(**ret_records) == 0);
	*ret_records = (const struct test_call_record *)(void *)ret->result;
	return ret->result_len / sizeof(**ret_records);
}

void test_assert_lines(const char *text, size_t n, const char *prefix, const char *needle)
{
	const char *at = text ?: "";
	size_t lines = 0;

	for (; *at; lines++) {
		const char *end = strchr(at, '\n'), *found;

		if (!end)
			fail_msg("an unterminated line: %s", at);
		found = strstr(at, needle);
		if (strncmp(at, prefix, strlen(prefix)) != 0 || !found || found > end)
			fail_msg("not '%s...%s': %.*s", prefix, needle, (int)(end - at), at);
		at = end + 1;
	}
	if (lines != n)
		fail_msg("%zu lines, not %zu: %s", lines, n, text ?: "");
}

void test_child_free(struct test_child *c)
{
	free(c->out);
	free(c->err);
	free(c->result);
	*c = (struct test_child){};
}

/* The end of a child that made a call under the fault @what (tests/fakes/README.md). */
static void assert_fault_fate(const struct test_child *c, const char *what)
{
	static const char end[] = "{\"v\":1,\"type\":\"end\"}\n";

	if (streq(what, "segv")) {
#ifdef __SANITIZE_ADDRESS__
		/* ASan's SEGV handler reports it, then dies: abort() with abort_on_error=1, as
		 * ctest's ASAN_OPTIONS say, else exit status 1 */
		const char *opts = getenv("ASAN_OPTIONS");

		if (!c->err || !strstr(c->err, "AddressSanitizer: SEGV on unknown address 0x000"))
			fail_msg("no ASan SEGV report on the child's stderr: %s", c->err ?: "");
		if (opts && strstr(opts, "abort_on_error=1"))
			assert_true(WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGABRT);
		else
			assert_true(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 1);
#else
		assert_true(WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGSEGV);
#endif
	} else if (streq(what, "abort")) {
		assert_true(WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGABRT);
	} else if (streq(what, "exit")) {
		assert_true(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 3);
	} else if (streq(what, "hang")) {
		assert_true(c->hung);
	} else {
		/* leak and garbage: the call went on, and the child ended normally */
		assert_false(c->hung);
		if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0)
			fail_msg("the child ended with status 0x%x: %s", (unsigned)c->status,
				 c->err ?: "");
	}
	if (streq(what, "garbage")) {
		assert_int_equal(c->out_len, 64 * 1024);
		assert_non_null(memmem(c->out, c->out_len, end, strlen(end)));
	} else {
		assert_int_equal(c->out_len, 0);
	}
	if (!streq(what, "hang"))
		assert_false(c->hung);
}

static const char *const fault_wheres[] = { "init", "query", "apply", "processes" };

void test_fake_fault_kinds(const char *description, int (*call)(void *userdata, int which),
			   void *userdata, const struct test_fault_call *calls, size_t n_calls)
{
	const struct test_call_record *recs;
	int which[64];

	assert_true(n_calls <= ELEMENTSOF(which));
	for (size_t w = 0; w < ELEMENTSOF(fault_wheres); w++) {
		struct test_child child;
		size_t k = 0, done;
		char line[64];

		snprintf(line, sizeof(line), "%s exit", fault_wheres[w]);
		test_fake_fault(description, line);
		for (size_t i = 0; i < n_calls; i++)
			if (!streq_ptr(calls[i].where, fault_wheres[w]))
				which[k++] = (int)i;
		done = test_child_run_calls(call, userdata, which, k, 20000, &child, &recs);
		if (done < k)
			fail_msg("%s ended the child (status 0x%x) under '%s'",
				 calls[which[done]].name, (unsigned)child.status, line);
		for (size_t i = 0; i < done; i++)
			if (recs[i].ret != 0)
				fail_msg("%s returned %d under '%s'", calls[recs[i].call].name,
					 recs[i].ret, line);
		assert_true(WIFEXITED(child.status) && WEXITSTATUS(child.status) == 0);
		test_child_free(&child);

		for (int i = 0; i < (int)n_calls; i++) {
			if (!streq_ptr(calls[i].where, fault_wheres[w]))
				continue;
			done = test_child_run_calls(call, userdata, &i, 1, 20000, &child, &recs);
			if (done != 0 || !WIFEXITED(child.status) || WEXITSTATUS(child.status) != 3)
				fail_msg("%s did not exit under '%s' (status 0x%x)", calls[i].name,
					 line, (unsigned)child.status);
			test_child_free(&child);
		}
	}
	test_fake_fault(description, NULL);
}

void test_fake_fault_fates(const char *description, int (*call)(void *userdata, int which),
			   void *userdata, const struct test_fault_call *calls, const int *at,
			   size_t n_at)
{
	static const char *const whats[] = { "segv", "abort", "hang", "leak", "garbage", "exit" };
	const struct test_call_record *recs;

	for (size_t w = 0; w < n_at; w++)
		for (size_t k = 0; k < ELEMENTSOF(whats); k++) {
			bool goes_on = streq(whats[k], "leak") || streq(whats[k], "garbage");
			struct test_child child;
			char line[64];
			size_t done;

			snprintf(line, sizeof(line), "%s %s", calls[at[w]].where, whats[k]);
			print_message("%s: %s\n", calls[at[w]].name, line);
			test_fake_fault(description, line);
			/* a hang is a call still running after 300 ms */
			done = test_child_run_calls(call, userdata, &at[w], 1,
						    streq(whats[k], "hang") ? 300 : 20000, &child,
						    &recs);
			assert_fault_fate(&child, whats[k]);
			assert_int_equal(done, goes_on ? 1 : 0);
			if (goes_on)
				assert_int_equal(recs[0].ret, 0);
			if (streq(whats[k], "leak"))
				assert_true(recs[0].rss_grew_kib > 900 * 1024);
			test_child_free(&child);
		}
	test_fake_fault(description, NULL);
}

void test_nvml_inject(const char *root, const char *line)
{
	char fifo[4096];
	int fd;

	snprintf(fifo, sizeof(fifo), "%s/run/nvml-events", root);
	fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	close(fd);
}

/* Kept in run/test-kmsg-seq: tests that restart xpud on one tree go on numbering. */
unsigned long long test_kmsg_next_seq(const char *root)
{
	unsigned long long seq = 0;
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/run/test-kmsg-seq", root);
	f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%llu", &seq) != 1)
			seq = 0;
		fclose(f);
	}
	f = fopen(path, "we");
	assert_non_null(f);
	fprintf(f, "%llu\n", seq + 1);
	assert_int_equal(fclose(f), 0);
	return seq + 1;
}

void test_kmsg_write(const char *root, const char *bytes, size_t len)
{
	char fifo[4096];
	int fd;

	snprintf(fifo, sizeof(fifo), "%s/dev/kmsg", root);
	/* non-blocking open: no reader is a failure, not a hang; then blocking writes, which
	 * wait while xpud catches up with a storm */
	fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_SETFL, 0), 0);
	while (len > 0) {
		ssize_t k = write(fd, bytes, len);

		assert_true(k > 0);
		bytes += k;
		len -= (size_t)k;
	}
	close(fd);
}

/* One record of @root's log: priority 4 (the kernel's facility, warning), the next number, now. */
static void kmsg_record(const char *root, FILE *out, const char *msg)
{
	fprintf(out, "4,%llu,%llu,-;%s\n", test_kmsg_next_seq(root),
		(unsigned long long)test_now_ms() * 1000, msg);
}

void test_kmsg_inject(const char *root, const char *line)
{
	char bus[32], msg[512], scope[64] = "";
	_cleanup_free_ char *buf = NULL;
	unsigned xid, gi, ci, count = 1;
	size_t len = 0;
	FILE *out;
	int n;

	out = open_memstream(&buf, &len);
	assert_non_null(out);
	n = sscanf(line, "xid %31s %u %u %u", bus, &xid, &gi, &ci);
	if (n < 2) {
		n = sscanf(line, "storm %31s %u %u", bus, &xid, &count);
		n = n == 3 ? 2 : 0;
	}
	if (n >= 2) {
		/* the driver prints the address without its function: "0000:18:00" */
		assert_true(strlen(bus) == 12);
		bus[10] = '\0';
		if (n == 4)
			snprintf(scope, sizeof(scope), " GPU-I:%02u GPU-CI:%02u", gi, ci);
		snprintf(msg, sizeof(msg),
			 "NVRM: Xid (PCI:%s%s): %u, pid=1234, name=python3, Ch 00000008", bus,
			 scope, xid);
		for (unsigned i = 0; i < count; i++)
			kmsg_record(root, out, msg);
	} else {
		snprintf(msg, sizeof(msg), "%.*s", (int)strcspn(line, "\n"), line);
		kmsg_record(root, out, msg);
	}
	assert_int_equal(fclose(out), 0);
	test_kmsg_write(root, buf, len);
}

static int stderr_saved = -1;
static FILE *stderr_file;

void test_stderr_capture(void)
{
	assert_int_equal(stderr_saved, -1);
	fflush(stderr);
	stderr_file = tmpfile();
	assert_non_null(stderr_file);
	stderr_saved = dup(STDERR_FILENO);
	assert_true(stderr_saved >= 0);
	assert_int_equal(dup2(fileno(stderr_file), STDERR_FILENO), STDERR_FILENO);
}

char *test_stderr_captured(void)
{
	char *text = NULL;
	size_t len;

	assert_true(stderr_saved >= 0);
	fflush(stderr);
	assert_int_equal(dup2(stderr_saved, STDERR_FILENO), STDERR_FILENO);
	close(stderr_saved);
	stderr_saved = -1;
	assert_int_equal(lseek(fileno(stderr_file), 0, SEEK_SET), 0);
	assert_int_equal(read_full_fd(fileno(stderr_file), 1 << 20, &text, &len), 0);
	fclose(stderr_file);
	stderr_file = NULL;
	return text;
}

struct test_xid_lines {
	FILE *f;
	char *line;
	size_t cap;
	unsigned lineno;
	char record[4096];
};

struct test_xid_lines *test_xid_lines_open(void)
{
	struct test_xid_lines *t = calloc(1, sizeof(*t));
	char path[4096];

	assert_non_null(t);
	snprintf(path, sizeof(path), "%s/fixtures/kmsg/xid-lines.txt", test_env("XPU_TESTS_DIR"));
	t->f = fopen(path, "re");
	assert_non_null(t->f);
	return t;
}

/* The file's escapes: "\n", "\\" and "\xHH". Returns the length written to @buf. */
static size_t unescape(const char *s, char *buf, size_t size)
{
	size_t n = 0;

	for (; *s; s++) {
		char c = *s;

		assert_true(n < size);
		if (c == '\\') {
			s++;
			if (*s == 'n')
				c = '\n';
			else if (*s == '\\')
				c = '\\';
			else if (*s == 'x' && s[1] && s[2]) {
				char hex[3] = { s[1], s[2], 0 };

				c = (char)strtoul(hex, NULL, 16);
				s += 2;
			} else
				fail_msg("bad escape in \"%s\"", s);
		}
		buf[n++] = c;
	}
	return n;
}

bool test_xid_lines_next(struct test_xid_lines *t, struct test_xid_sample *ret)
{
	while (getline(&t->line, &t->cap, t->f) > 0) {
		char *tab;

		t->lineno++;
		t->line[strcspn(t->line, "\n")] = '\0';
		if (t->line[0] == '#' || t->line[0] == '\0')
			continue;
		tab = strchr(t->line, '\t');
		if (!tab)
			fail_msg("xid-lines.txt:%u: no tab", t->lineno);
		*tab = '\0';
		*ret = (struct test_xid_sample){
			.lineno = t->lineno,
			.record = t->record,
			.len = unescape(t->line, t->record, sizeof(t->record)),
			.expected = tab + 1,
		};
		return true;
	}
	return false;
}

void test_xid_lines_close(struct test_xid_lines *t)
{
	fclose(t->f);
	free(t->line);
	free(t);
}
