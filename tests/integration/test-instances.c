// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One xpud per node's state: a second xpud that shares the first one's state directory,
 * kubelet directory or socket is refused before it touches any of them, and says which PID
 * holds what it wanted; the first one keeps serving and keeps its allocations.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/fileio.h"
#include "shared/macro.h"
#include "testutil.h"

#define GPU "nvidia.com/gpu"

/*
 * Runs a second xpud on @root with @args (NULL-terminated) and its stderr in *ret_log;
 * returns its exit status. One that keeps running (it was not refused) is stopped after 20 s
 * and fails the test.
 */
static int run_second(const char *root, const char *const *args, char **ret_log)
{
	const char *bin = test_env("XPUD_BIN");
	const char *argv[32];
	char log[4096];
	long long deadline;
	int status, n = 0;
	pid_t pid;

	snprintf(log, sizeof(log), "%s/second.log", root);
	argv[n++] = bin;
	argv[n++] = "--root";
	argv[n++] = root;
	for (size_t i = 0; args[i] && n < 30; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0)
			_exit(127);
		unsetenv("NOTIFY_SOCKET");
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	deadline = test_now_ms() + 20000;
	while (waitpid(pid, &status, WNOHANG) != pid) {
		if (test_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			(void)read_attr_at(AT_FDCWD, log, 1 << 20, ret_log);
			fail_msg("the second xpud was not refused; it said:\n%s", *ret_log);
		}
		usleep(20 * 1000);
	}
	assert_int_equal(read_attr_at(AT_FDCWD, log, 1 << 20, ret_log), 0);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static char *grant_one(struct test_xpud *x)
{
	json_t *doc = NULL;
	char *id;

	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"" GPU "\"}", &doc),
			 201);
	id = strdup(json_string_value(json_object_get(doc, "id")));
	json_decref(doc);
	return id;
}

static void assert_state_holds(const char *root, const char *id)
{
	_cleanup_free_ char *text = NULL;
	char path[4200];

	snprintf(path, sizeof(path), "%s/var/lib/xpud/state.json", root);
	assert_int_equal(read_attr_at(AT_FDCWD, path, 1 << 20, &text), 0);
	if (!strstr(text, id))
		fail_msg("state.json lost allocation %s:\n%s", id, text);
}

/* A debugging run with its own socket but the node's state directory is refused. */
static void test_shared_state_dir(void **state)
{
	struct test_xpud *x = test_xpud_start_nvml(test_fixture_new("hgx-h100"), NULL, NULL);
	_cleanup_free_ char *id = grant_one(x), *log = NULL;
	char sock[4200], needle[256];
	const char *args[] = { "--socket", sock, NULL };
	struct stat st;

	snprintf(sock, sizeof(sock), "%s/run/debug.sock", x->root);
	assert_int_equal(run_second(x->root, args, &log), 1);
	snprintf(needle, sizeof(needle), "Another xpud (PID %d) uses the state directory",
		 (int)x->pid);
	if (!strstr(log, needle))
		fail_msg("the second xpud said:\n%s", log);
	/* it stopped before it made anything: no socket of its own, the first one's state */
	assert_int_equal(stat(sock, &st), -1);
	assert_int_equal(test_n_allocations(x), 1);
	assert_state_holds(x->root, id);
	free(grant_one(x)); /* the first one still grants and saves */
	assert_int_equal(test_n_allocations(x), 2);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* Another state directory but the same kubelet: the device plugin's sockets are the first's. */
static void test_shared_kubelet_dir(void **state)
{
	char *root = test_fixture_new("hgx-h100"), dir[4200], sock[4200], states[4200];
	const char *args[] = { "--socket", sock, "--state-dir", states, NULL };
	_cleanup_free_ char *log = NULL;
	char needle[256];
	struct test_xpud *x;

	snprintf(dir, sizeof(dir), "%s/var/lib/kubelet/device-plugins", root);
	assert_int_equal(mkdir_parents(dir, 0755), 0);
	assert_int_equal(mkdir(dir, 0755), 0);
	x = test_xpud_start_nvml(root, NULL, NULL);
	snprintf(sock, sizeof(sock), "%s/run/second.sock", root);
	snprintf(states, sizeof(states), "%s/second-state", root);
	assert_int_equal(run_second(root, args, &log), 1);
	snprintf(needle, sizeof(needle), "Another xpud (PID %d) serves the kubelet device plugin",
		 (int)x->pid);
	if (!strstr(log, needle))
		fail_msg("the second xpud said:\n%s", log);
	assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
	assert_int_equal(test_xpud_stop(x), 0);

	/* once the first one is gone, the second one may start */
	root = test_xpud_take_root(x);
	test_xpud_free(x);
	x = test_xpud_start_nvml(root, args + 2, NULL);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
}

/* The same socket: the message names the PID that serves it. */
static void test_shared_socket(void **state)
{
	struct test_xpud *x = test_xpud_start_nvml(test_fixture_new("hgx-h100"), NULL, NULL);
	const char *args[] = { "--socket", x->socket, NULL };
	_cleanup_free_ char *log = NULL;
	char needle[256];

	assert_int_equal(run_second(x->root, args, &log), 1);
	snprintf(needle, sizeof(needle), "Another xpud (PID %d) is already serving on",
		 (int)x->pid);
	if (!strstr(log, needle))
		fail_msg("the second xpud said:\n%s", log);
	assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
	test_xpud_free(x);
}

static int bind_at(const char *path, bool listening)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof(sun.sun_path));
	strcpy(sun.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	if (listening)
		assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/* Only a stale socket at the socket path is replaced: a file or a served socket is refused. */
static void test_socket_path_taken(void **state)
{
	char *root = test_fixture_new("real-h100-vm"), sock[4200];
	const char *args[] = { "--socket", sock, NULL };
	char *log = NULL, *text = NULL;
	struct test_xpud *x;
	struct stat st;
	int fd;

	/* a regular file: refused, and left as it was */
	snprintf(sock, sizeof(sock), "%s/run/xpud.sock", root);
	fd = open(sock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep me", 7), 7);
	close(fd);
	assert_int_equal(run_second(root, args, &log), 1);
	if (!strstr(log, "exists and is not a socket; refusing to replace it"))
		fail_msg("xpud said:\n%s", log);
	log = mfree(log);
	assert_int_equal(read_attr_at(AT_FDCWD, sock, 0, &text), 0);
	assert_string_equal(text, "keep me");
	text = mfree(text);
	assert_int_equal(unlink(sock), 0);

	/* a socket another program serves: refused, and still served */
	fd = bind_at(sock, true);
	assert_int_equal(run_second(root, args, &log), 1);
	if (!strstr(log, "Something is already listening on"))
		fail_msg("xpud said:\n%s", log);
	log = mfree(log);
	assert_int_equal(stat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	close(fd);

	/* the same socket once nobody serves it: stale, replaced */
	x = test_xpud_start(root, NULL);
	assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
	test_xpud_free(x);
}

static void assert_mode(const char *root, const char *path, mode_t want)
{
	char full[4200];
	struct stat st;

	snprintf(full, sizeof(full), "%s/%s", root, path);
	assert_int_equal(stat(full, &st), 0);
	if ((st.st_mode & 07777) != want)
		fail_msg("%s has mode %04o, want %04o", path, st.st_mode & 07777, want);
}

/* Under the unit's UMask=0077, directories xpud makes get the modes the documentation gives. */
static void test_directory_modes(void **state)
{
	char *root = test_fixture_new("real-h100-vm"), sock[4200], states[4200], cdi[4200];
	const char *args[] = { "--socket", sock, "--state-dir", states, "--cdi-dir", cdi, NULL };
	struct test_xpud *x;
	mode_t old = umask(0077);

	snprintf(sock, sizeof(sock), "%s/run/xpu-a/xpu-b/xpud.sock", root);
	snprintf(states, sizeof(states), "%s/var/lib/xpu-c/xpud", root);
	snprintf(cdi, sizeof(cdi), "%s/etc/xpu-d/cdi", root);
	x = test_xpud_start(root, args);
	umask(old);
	assert_mode(root, "run/xpu-a", 0755);
	assert_mode(root, "run/xpu-a/xpu-b", 0755);
	assert_mode(root, "var/lib/xpu-c", 0755);
	assert_mode(root, "var/lib/xpu-c/xpud", 0700); /* the state is private */
	assert_mode(root, "etc/xpu-d", 0755);
	assert_mode(root, "etc/xpu-d/cdi", 0755);
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_state_dir),
		cmocka_unit_test(test_shared_kubelet_dir),
		cmocka_unit_test(test_shared_socket),
		cmocka_unit_test(test_socket_path_taken),
		cmocka_unit_test(test_directory_modes),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
