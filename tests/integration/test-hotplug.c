// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Live inventory: devices hot-plugged, unbound, rebound and removed in a fake tree, announced
 * with kernel-format uevents, must show up on the /v1/events stream (and in xpuctl events);
 * a change without an event is picked up by an explicit rescan.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "sim/fixture.h"
#include "testutil.h"

#define NEW_GPU "0000:e0:00.0"

static const char new_gpu_json[] =
	"{\"name\": \"extra\", \"pci\": [{\"address\": \"" NEW_GPU "\", \"vendor\": \"0x10de\","
	" \"device\": \"0x2330\", \"subsystem_vendor\": \"0x10de\", \"subsystem_device\": "
	"\"0x16c1\", \"class\": \"0x030200\", \"revision\": \"0xa1\", \"driver\": \"nvidia\","
	" \"numa_node\": 1, \"local_cpulist\": \"56-111\", \"nvidia\": {\"minor\": 8, \"model\":"
	" \"NVIDIA H100 80GB HBM3\", \"uuid\": \"GPU-00000000-0000-0000-0000-0000000000e0\"}}]}";

/* Waits up to 10 s for a line with every needle; fails the test otherwise. */
static long long expect(struct test_stream *s, const char *const *needles)
{
	long long ms = test_stream_wait(s, needles, 10000);

	if (ms < 0)
		fail_msg("no event matching '%s' within 10 s", needles[0]);
	return ms;
}

static void test_hotplug_events(void **state)
{
	char *root = test_fixture_new("hgx-h100"), conf[4096];
	struct test_xpud *x;
	struct test_stream *s;
	char *err = NULL;
	json_t *doc = NULL;
	long long ms;
	FILE *f;

	/* no probation: a rebound driver makes the device healthy at the next look */
	snprintf(conf, sizeof(conf), "%s/xpud.yaml", root);
	f = fopen(conf, "we");
	assert_non_null(f);
	fputs("health-probation: 0\n", f);
	fclose(f);
	x = test_xpud_start(root, (const char *[]){ "--config", conf, NULL });

	s = test_stream_open(x->socket);
	expect(s, (const char *const[]){ "\"type\":\"subscribed\"", NULL });

	/* hot-plug */
	assert_int_equal(fixture_build(new_gpu_json, x->root, &err), 0);
	test_send_uevent(x, "add", "/devices/pci0000:e0/" NEW_GPU, "pci");
	ms = expect(s, (const char *const[]){ "\"type\":\"device-added\"",
						     "\"device_id\":\"" NEW_GPU "\"", NULL });
	print_message("device-added seen %lld ms after the uevent\n", ms);
	assert_int_equal(test_request(x, "GET", "/v1/devices/" NEW_GPU, &doc), 200);
	assert_string_equal(json_string_value(json_object_get(doc, "uuid")),
			    "GPU-00000000-0000-0000-0000-0000000000e0");
	json_decref(doc);

	/* driver unbound: the device stays, unhealthy, and recovers when the driver returns */
	assert_int_equal(fixture_set_driver(x->root, "0000:18:00.0", NULL), 0);
	test_send_uevent(x, "unbind", "/devices/pci0000:15/0000:18:00.0", "pci");
	expect(s, (const char *const[]){ "\"type\":\"health-changed\"",
					       "\"device_id\":\"0000:18:00.0\"",
					       "no kernel driver bound",
					       "\"transition\":{\"from\":\"healthy\",\"to\":\"unhealthy\"",
					       NULL });
	assert_int_equal(fixture_set_driver(x->root, "0000:18:00.0", "nvidia"), 0);
	test_send_uevent(x, "bind", "/devices/pci0000:15/0000:18:00.0", "pci");
	expect(s, (const char *const[]){ "\"type\":\"health-changed\"",
					       "\"device_id\":\"0000:18:00.0\"",
					       "\"state\":\"healthy\"",
					       "\"from\":\"unhealthy\",\"to\":\"healthy\"", NULL });

	/* hot-unplug */
	assert_int_equal(fixture_remove_pci(x->root, NEW_GPU), 0);
	test_send_uevent(x, "remove", "/devices/pci0000:e0/" NEW_GPU, "pci");
	expect(s, (const char *const[]){ "\"type\":\"device-removed\"",
					       "\"device_id\":\"" NEW_GPU "\"", NULL });
	assert_int_equal(test_request(x, "GET", "/v1/devices/" NEW_GPU, NULL), 404);

	test_stream_close(s);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
	free(err);
}

static void test_rescan_without_uevent(void **state)
{
	struct test_xpud *x = test_xpud_start(test_fixture_new("hgx-h100"), NULL);
	const char *rescan[] = { "-o", "json", "rescan", NULL };
	char *err = NULL, *out = NULL;
	json_t *doc = NULL;

	assert_int_equal(fixture_build(new_gpu_json, x->root, &err), 0);
	/* no uevent: the inventory cannot know yet */
	assert_int_equal(test_request(x, "GET", "/v1/devices/" NEW_GPU, NULL), 404);
	assert_int_equal(test_xpuctl(x->socket, rescan, &out), 0);
	doc = json_loads(out, 0, NULL);
	assert_non_null(doc);
	assert_int_equal(json_integer_value(json_object_get(doc, "added")), 1);
	assert_int_equal(json_integer_value(json_object_get(doc, "devices")), 9);
	json_decref(doc);
	free(out);
	assert_int_equal(test_request(x, "GET", "/v1/devices/" NEW_GPU, NULL), 200);

	/* and a rescan with nothing new changes nothing */
	assert_int_equal(test_request(x, "POST", "/v1/rescan", &doc), 200);
	assert_int_equal(json_integer_value(json_object_get(doc, "added")), 0);
	assert_int_equal(json_integer_value(json_object_get(doc, "removed")), 0);
	json_decref(doc);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
	free(err);
}

static void test_xpuctl_events_follows(void **state)
{
	struct test_xpud *x = test_xpud_start(test_fixture_new("real-h100-vm"), NULL);
	const char *bin = test_env("XPUCTL_BIN");
	char *err = NULL, buf[65536];
	size_t len = 0;
	int pipefd[2], status;
	long long deadline;
	pid_t pid;

	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		execl(bin, bin, "--socket", x->socket, "-o", "json", "events", (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);

	/* wait until xpuctl is subscribed, then plug a device */
	deadline = test_now_ms() + 10000;
	while (!strstr(buf, "\"subscribed\"") || len == 0) {
		struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
		ssize_t k;

		assert_true(test_now_ms() < deadline);
		if (poll(&p, 1, 100) <= 0)
			continue;
		k = read(pipefd[0], buf + len, sizeof(buf) - len - 1);
		assert_true(k > 0);
		len += (size_t)k;
		buf[len] = '\0';
	}
	assert_int_equal(fixture_build(new_gpu_json, x->root, &err), 0);
	test_send_uevent(x, "add", "/devices/pci0000:e0/" NEW_GPU, "pci");
	while (!strstr(buf, "device-added")) {
		struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
		ssize_t k;

		assert_true(test_now_ms() < deadline);
		if (poll(&p, 1, 100) <= 0)
			continue;
		k = read(pipefd[0], buf + len, sizeof(buf) - len - 1);
		assert_true(k > 0);
		len += (size_t)k;
		buf[len] = '\0';
	}
	assert_non_null(strstr(buf, NEW_GPU));

	/* xpud stopping ends the stream, and xpuctl exits 0 */
	assert_int_equal(test_xpud_stop(x), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(pipefd[0]);
	test_xpud_free(x);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hotplug_events),
		cmocka_unit_test(test_rescan_without_uevent),
		cmocka_unit_test(test_xpuctl_events_follows),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
