// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The daemon's life cycle: configuration reloads on SIGHUP (a bad file keeps the old one), the
 * health timer that notices a device falling off the bus and coming back without a restart,
 * and socket activation (a listening socket passed by systemd).
 */
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
#include <unistd.h>
#include <cmocka.h>

#include "shared/macro.h"
#include "sim/fixture.h"
#include "shared/fileio.h"
#include "testutil.h"

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void write_config(const char *path, const char *text)
{
	write_file(path, text, strlen(text));
}

/* Polls GET /v1/devices/ID until its health state is @state (10 s at most). */
static void wait_health(const struct test_xpud *x, const char *id, const char *state,
			const char *reason_part)
{
	long long deadline = test_now_ms() + 10000;
	char path[128];

	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	for (;;) {
		json_t *doc = NULL, *h;
		bool ok;

		assert_int_equal(test_request(x, "GET", path, &doc), 200);
		h = json_object_get(doc, "health");
		ok = strcmp(json_string_value(json_object_get(h, "state")), state) == 0 &&
		     (!reason_part ||
		      strstr(json_string_value(json_object_get(h, "reason")) ?: "", reason_part));
		json_decref(doc);
		if (ok)
			return;
		if (test_now_ms() > deadline)
			fail_msg("%s never became %s", id, state);
		usleep(50 * 1000);
	}
}

static void wait_log(const struct test_xpud *x, const char *needle)
{
	long long deadline = test_now_ms() + 10000;

	while (!test_xpud_log_contains(x, needle)) {
		if (test_now_ms() > deadline)
			fail_msg("'%s' never appeared in the log", needle);
		usleep(50 * 1000);
	}
}

static void test_reload_and_health_timer(void **state)
{
	static const unsigned char dead[64] = { 0xff, 0xff, 0xff, 0xff };
	static const unsigned char alive[64] = { 0xde, 0x10, 0x30, 0x23 };
	char *root = test_fixture_new("real-h100-vm");
	char conf[4096], cfgspace[4096];
	const char *args[] = { "--config", conf, NULL };
	struct test_xpud *x;
	json_t *doc = NULL;

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	snprintf(cfgspace, sizeof(cfgspace), "%s/sys/bus/pci/devices/0000:00:06.0/config", root);
	write_config(conf, "# no probes for now\nhealth-interval: 1h\n");
	x = test_xpud_start(root, args);

	/* the GPU falls off the bus: without probes and without a uevent, nobody can tell */
	write_file(cfgspace, dead, sizeof(dead));
	usleep(300 * 1000);
	assert_int_equal(test_request(x, "GET", "/v1/health", &doc), 200);
	assert_string_equal(json_string_value(json_object_get(doc, "status")), "ok");
	json_decref(doc);

	/* a broken configuration is refused and the old one kept */
	write_config(conf, "health-interval: soon\n");
	kill(x->pid, SIGHUP);
	wait_log(x, "Keeping the previous configuration.");
	wait_log(x, "xpud.yaml:line 1: health-interval");

	/* a good one turns probing on: the dead GPU is seen, and its recovery too */
	write_config(conf, "health-interval: 100ms\nhealth-probation: 300ms\nlog-level: debug\n");
	kill(x->pid, SIGHUP);
	wait_log(x, "Configuration reloaded.");
	wait_health(x, "0000:00:06.0", "unhealthy", "not responding on the PCIe bus");
	assert_int_equal(test_request(x, "GET", "/v1/capacity", &doc), 200);
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(doc, "resources"), 0), "allocatable")),
			 0);
	json_decref(doc);
	write_file(cfgspace, alive, sizeof(alive));
	wait_health(x, "0000:00:06.0", "healthy", NULL);
	wait_log(x, "is healthy again");

	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

static void test_socket_activation(void **state)
{
	const char *bin = test_env("XPUD_BIN");
	char *root = test_fixture_new("hgx-h100");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct test_xpud x = { .root = root };
	char sock[4096], log[4096];
	struct stat st;
	int fd, status;
	pid_t pid;

	snprintf(sock, sizeof(sock), "%s/run/activated.sock", root);
	snprintf(log, sizeof(log), "%s/xpud.log", root);
	x.socket = sock;
	x.log = log;
	strcpy(sun.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 16), 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char pidstr[32];
		int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(lfd, STDERR_FILENO);
		dup2(lfd, STDOUT_FILENO);
		/* the socket goes to fd 3, as systemd passes it */
		if (dup2(fd, 3) != 3)
			_exit(126);
		snprintf(pidstr, sizeof(pidstr), "%d", (int)getpid());
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_PID", pidstr, 1);
		unsetenv("NOTIFY_SOCKET");
		/* --socket names a path nobody listens on: the passed socket must win */
		execl(bin, bin, "--root", root, "--socket", "/nonexistent/xpud.sock", (char *)NULL);
		_exit(127);
	}
	close(fd);
	x.pid = pid;

	/* connections queue on the passed socket until xpud serves them */
	assert_int_equal(test_request(&x, "GET", "/v1/version", NULL), 200);
	assert_int_equal(test_request(&x, "GET", "/v1/devices/0000:18:00.0", NULL), 200);
	{
		/* it reports the socket it really serves on, not the --socket it was given */
		char needle[4200];

		snprintf(needle, sizeof(needle), "serving on %s.", sock);
		assert_true(test_xpud_log_contains(&x, needle));
	}
	assert_int_equal(test_xpud_stop(&x), 0);
	/* the socket belongs to systemd: xpud leaves it in place */
	assert_int_equal(stat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(waitpid(pid, &status, WNOHANG), -1);
	fixture_destroy(root);
	free(root);
}

/* In a child as nobody with @gid as its one supplementary group (or none): POST /v1/rescan. */
static int rescan_as_nobody(const char *socket_path, gid_t gid, bool with_group)
{
	static const char post[] = "POST /v1/rescan HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
				   "Connection: close\r\n\r\n";
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		char *a;

		if (setgroups(with_group ? 1 : 0, &gid) < 0 || setgid(65534) < 0 ||
		    setuid(65534) < 0)
			_exit(100);
		a = test_raw_exchange(socket_path, post, sizeof(post) - 1, 2000);
		_exit(strncmp(a, "HTTP/1.1 200", 12) == 0   ? 0
		      : strncmp(a, "HTTP/1.1 403", 12) == 0 ? 3
							     : 101);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_admin_group(void **state)
{
	char *root, conf[4096], run[4096];
	const char *args[] = { "--config", conf, NULL };
	struct test_xpud *x;
	gid_t gid = test_admin_group_gid();

	root = test_fixture_new("real-h100-vm");
	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	write_config(conf, "admin-group: " TEST_ADMIN_GROUP "\nsocket-mode: \"0666\"\n");
	x = test_xpud_start(root, args);
	assert_int_equal(chmod(root, 0755), 0);
	snprintf(run, sizeof(run), "%s/run", root);
	assert_int_equal(chmod(run, 0755), 0);

	/* a member through a supplementary group may change state, others may not */
	assert_int_equal(rescan_as_nobody(x->socket, gid, true), 0);
	assert_int_equal(rescan_as_nobody(x->socket, gid, false), 3);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* How often @needle occurs in xpud's log. */
static size_t log_count(const struct test_xpud *x, const char *needle)
{
	_cleanup_free_ char *log = NULL;
	size_t n = 0;

	if (read_attr_at(AT_FDCWD, x->log, 16 << 20, &log) < 0)
		return 0;
	for (const char *p = log; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/*
 * The health timer keeps probing from the start, not only after a reload: a device that
 * recovers is seen by the next probe whenever it recovers.
 */
static void test_health_timer_repeats(void **state)
{
	char *root = test_fixture_new("hgx-h100"), conf[4096];
	const char *args[] = { "--config", conf, NULL };
	struct test_xpud *x;
	long long deadline;

	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	write_config(conf, "health-interval: 100ms\n");
	x = test_xpud_start(root, args);
	deadline = test_now_ms() + 10000;
	while (log_count(x, "Health probe of 0000:18:00.0") < 5 && test_now_ms() < deadline)
		usleep(50 * 1000);
	assert_true(log_count(x, "Health probe of 0000:18:00.0") >= 5);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reload_and_health_timer),
		cmocka_unit_test(test_socket_activation),
		cmocka_unit_test(test_admin_group),
		cmocka_unit_test(test_health_timer_repeats),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
