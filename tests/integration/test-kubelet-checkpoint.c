// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * xpud and kubelet's device checkpoint, on the HGX fixture: what kubelet holds is recorded at
 * start (owned by the pod and container) and never granted locally; what it stops holding is
 * released; a damaged checkpoint changes nothing. No kubelet runs: the device plugin keeps
 * trying to register, which does not matter here.
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

#include "testutil.h"

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[4200], tmp[4300];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(rename(tmp, path), 0); /* as kubelet does: a new file, moved in place */
}

/* The owner of the allocation holding @slice, or NULL (malloc'd). */
static char *holder_of(struct test_xpud *x, const char *slice)
{
	json_t *doc = NULL, *a, *s;
	size_t i, j;
	char *who = NULL;

	assert_int_equal(test_request(x, "GET", "/v1/allocations", &doc), 200);
	json_array_foreach(json_object_get(doc, "allocations"), i, a)
		json_array_foreach(json_object_get(a, "slices"), j, s)
			if (strcmp(json_string_value(json_object_get(s, "id")), slice) == 0)
				who = strdup(json_string_value(
					json_object_get(json_object_get(a, "owner"), "value")));
	json_decref(doc);
	return who;
}

static bool wait_holder(struct test_xpud *x, const char *slice, const char *want)
{
	for (int i = 0; i < 250; i++) {
		char *who = holder_of(x, slice);
		bool ok = want ? who && strcmp(who, want) == 0 : !who;

		free(who);
		if (ok)
			return true;
		usleep(20000);
	}
	return false;
}

static void test_checkpoint_reconcile(void **state)
{
	char *root = test_fixture_new("hgx-h100"), dir[4096], *who;
	struct test_xpud *x;

	snprintf(dir, sizeof(dir), "%s/var/lib/kubelet/device-plugins", root);
	{
		char cmd[4200];

		snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
	/* kubelet holds two GPUs for one container, from before xpud started */
	write_file(dir, "kubelet_internal_checkpoint",
		   "{\"Data\":{\"PodDeviceEntries\":[{\"PodUID\":\"9f1c\",\"ContainerName\":\"train\","
		   "\"ResourceName\":\"nvidia.com/gpu\",\"DeviceIDs\":{\"0\":[\"0000:18:00.0\","
		   "\"0000:2a:00.0\"]},\"AllocResp\":\"\"}],\"RegisteredDevices\":{}},"
		   "\"Checksum\":1}");
	x = test_xpud_start_nvml(root, NULL, NULL);
	who = holder_of(x, "0000:18:00.0");
	assert_non_null(who);
	assert_string_equal(who, "9f1c/train");
	free(who);
	assert_true(wait_holder(x, "0000:2a:00.0", "9f1c/train"));
	assert_true(test_xpud_log_contains(x, "kubelet holds 2 slices of nvidia.com/gpu"));
	/* served to kubelet: never granted by the local API */
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"slices\": [\"0000:3a:00.0\"]}", NULL),
			 409);

	/* a damaged checkpoint changes nothing */
	write_file(dir, "kubelet_internal_checkpoint", "{\"Data\":{\"PodDeviceEntries\":{");
	usleep(300 * 1000);
	assert_true(wait_holder(x, "0000:18:00.0", "9f1c/train"));

	/* the pod is gone; another holds a GPU of NUMA node 1 */
	write_file(dir, "kubelet_internal_checkpoint",
		   "{\"Data\":{\"PodDeviceEntries\":[{\"PodUID\":\"77ab\",\"ContainerName\":\"infer\","
		   "\"ResourceName\":\"nvidia.com/gpu\",\"DeviceIDs\":[\"0000:9a:00.0\"]}]},"
		   "\"Checksum\":2}");
	assert_true(wait_holder(x, "0000:18:00.0", NULL));
	assert_true(wait_holder(x, "0000:2a:00.0", NULL));
	assert_true(wait_holder(x, "0000:9a:00.0", "77ab/infer"));

	/* and after a restart, the same */
	{
		char *r = test_xpud_take_root(x);

		test_xpud_free(x);
		x = test_xpud_start_nvml(r, NULL, NULL);
	}
	assert_true(wait_holder(x, "0000:9a:00.0", "77ab/infer"));
	assert_true(wait_holder(x, "0000:18:00.0", NULL));
	test_xpud_free(x);
}

/*
 * A kubelet that speaks garbage, stops halfway or sends an HTTP/2 frame that makes no sense
 * costs its own connection only: xpud keeps serving the device plugin and its own API.
 */
static void test_bad_peers(void **state)
{
	char *root = test_fixture_new("hgx-h100"), dir[4096], sock[4200];
	/* the client preface, then a SETTINGS frame whose length is not a multiple of 6 */
	static const char bad_frame[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
					"\x00\x00\x05\x04\x00\x00\x00\x00\x00"
					"\x01\x02\x03\x04\x05";
	struct test_xpud *x;
	char *out;
	int slow;

	snprintf(dir, sizeof(dir), "%s/var/lib/kubelet/device-plugins", root);
	{
		char cmd[4200];

		snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
	x = test_xpud_start_nvml(root, NULL, NULL);
	snprintf(sock, sizeof(sock), "%s/xpud-nvidia.com_gpu.sock", dir);

	/* a peer that connects, says half a preface and then nothing */
	{
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		slow = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(slow >= 0);
		strcpy(sun.sun_path, sock);
		assert_int_equal(connect(slow, (struct sockaddr *)&sun, sizeof(sun)), 0);
		assert_int_equal(write(slow, "PRI * HTTP", 10), 10);
	}
	/* not HTTP/2 at all: the connection is closed, nothing else happens */
	out = test_raw_exchange(sock, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, 3000);
	free(out);
	out = test_raw_exchange(sock, bad_frame, sizeof(bad_frame) - 1, 3000);
	free(out);
	/* still serving: the local API; and the device plugin, whose resource stays reserved */
	assert_int_equal(test_request(x, "GET", "/v1/version", NULL), 200);
	assert_int_equal(test_request_body(x, "POST", "/v1/allocations",
					   "{\"resource\": \"nvidia.com/gpu\"}", NULL),
			 409);
	assert_int_equal(access(sock, F_OK), 0);
	close(slow);
	assert_int_equal(test_xpud_stop(x), 0); /* a clean exit: nothing crashed */
	test_xpud_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checkpoint_reconcile),
		cmocka_unit_test(test_bad_peers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
