// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kubelet restarting in a loop: its registration socket comes and goes thirty times, as when
 * kubelet crash-loops, each life a few hundred milliseconds or less. xpud registers again with
 * each new kubelet, its device plugin answers throughout, and afterwards it holds the
 * descriptors it held before. Then 200 connections to the device plugin at once, idle or
 * stopped halfway through the preface. (tests/k8s/ checks one restart against grpc-go itself.)
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "kube/grpc.h"
#include "procstat.h"
#include "testutil.h"

#define RESTARTS 30

static unsigned registrations;

static void on_register(struct grpc_call *call, const uint8_t *msg, size_t len, void *userdata)
{
	registrations++;
	(void)grpc_call_send(call, "", 0); /* v1beta1.Empty */
	(void)grpc_call_finish(call, 0, NULL);
}

static const struct grpc_method methods[] = {
    {"/v1beta1.Registration/Register", on_register},
};

static struct grpc_server *kubelet_start(sd_event *e, const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct grpc_server *s = NULL;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(sun.sun_path, path);
	unlink(path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(grpc_server_new(e, fd, NULL, methods, 1, NULL, &s), 0);
	return s;
}

/* Runs the loop until @want registrations arrived or 10 s passed. */
static bool wait_registrations(sd_event *e, unsigned want)
{
	long long deadline = test_now_ms() + 10000;

	while (registrations < want && test_now_ms() < deadline)
		assert_true(sd_event_run(e, 100000) >= 0);
	return registrations >= want;
}

struct reply {
	bool done;
	int status;
};

static void on_reply(int status, const char *message, const uint8_t *msg, size_t len,
		     void *userdata)
{
	struct reply *r = userdata;

	r->done = true;
	r->status = status;
}

/* GetDevicePluginOptions on the plugin's socket: its gRPC status. */
static int plugin_options(sd_event *e, const char *plugin)
{
	struct grpc_client_call *cc = NULL;
	struct reply r = {};
	long long deadline = test_now_ms() + 10000;

	assert_int_equal(grpc_client_call_new(e, plugin,
					      "/v1beta1.DevicePlugin/GetDevicePluginOptions", "", 0,
					      5000000, on_reply, &r, &cc),
			 0);
	while (!r.done && test_now_ms() < deadline)
		assert_true(sd_event_run(e, 100000) >= 0);
	assert_true(r.done);
	return r.status;
}

static void test_kubelet_crash_loop(void **state)
{
	char *root = test_fixture_new("hgx-h100"), dir[4200], sock[4300], plugin[4300], cmd[4300];
	struct grpc_server *kubelet;
	struct test_xpud *x;
	sd_event *e = NULL;
	int fds_before, fds_after;

	snprintf(dir, sizeof(dir), "%s/var/lib/kubelet/device-plugins", root);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
	assert_int_equal(system(cmd), 0);
	snprintf(sock, sizeof(sock), "%s/kubelet.sock", dir);
	snprintf(plugin, sizeof(plugin), "%s/xpud-nvidia.com_gpu.sock", dir);
	assert_int_equal(sd_event_new(&e), 0);

	x = test_xpud_start_nvml(root, NULL, NULL);
	kubelet = kubelet_start(e, sock);
	assert_true(wait_registrations(e, 1));
	assert_int_equal(plugin_options(e, plugin), 0);
	usleep(500000);
	fds_before = test_proc_fds(x->pid);

	for (unsigned i = 0; i < RESTARTS; i++) {
		unsigned want = registrations + 1;

		/* kubelet dies: its socket stays behind, dead, or goes, as after a crash or a stop
		 */
		kubelet = grpc_server_free(kubelet);
		if (i % 2)
			unlink(sock);
		usleep((useconds_t)(random() % 200000));
		kubelet = kubelet_start(e, sock);
		if (!wait_registrations(e, want))
			fail_msg("xpud did not register with kubelet's %u. restart", i + 1);
		assert_int_equal(plugin_options(e, plugin), 0);
	}
	print_message("%u registrations over %d kubelet restarts\n", registrations, RESTARTS);
	/* the local API answers as ever */
	assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
	/* each kubelet's connection is gone again: what xpud holds is what it held before */
	fds_after = test_proc_wait_fds(x->pid, fds_before, 10000);
	if (fds_after != fds_before) {
		char *list = test_proc_fd_list(x->pid);

		fail_msg("xpud holds %d descriptors after %d kubelet restarts, %d before:\n%s",
			 fds_after, RESTARTS, fds_before, list);
	}

	/* 200 connections to the plugin at once, idle or with half the HTTP/2 preface: the
	 * plugin answers a real call once they are gone, and they leave nothing behind */
	{
		static const char half[] = "PRI * HTTP/2.0\r\n";
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		int conns[200];

		strcpy(sun.sun_path, plugin);
		for (int i = 0; i < 200; i++) {
			conns[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			assert_true(conns[i] >= 0);
			assert_int_equal(connect(conns[i], (struct sockaddr *)&sun, sizeof(sun)),
					 0);
			if (i % 2)
				assert_int_equal(send(conns[i], half, strlen(half), MSG_NOSIGNAL),
						 (ssize_t)strlen(half));
		}
		assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
		for (int i = 0; i < 200; i++)
			close(conns[i]);
		assert_int_equal(plugin_options(e, plugin), 0);
		fds_after = test_proc_wait_fds(x->pid, fds_before, 10000);
		if (fds_after != fds_before)
			fail_msg(
			    "xpud holds %d descriptors after 200 plugin connections, %d before",
			    fds_after, fds_before);
	}
	kubelet = grpc_server_free(kubelet);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
	sd_event_unref(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kubelet_crash_loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
