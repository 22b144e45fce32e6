// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A GPU hot-removed while a client asks for it: the remove uevent and the grant reach xpud
 * together, in either order, round after round. Each grant gets a clear answer (granted, not
 * found, or taken), xpud keeps serving, the device goes, and when it comes back it is never
 * granted to a second client while a first one still holds it. xpud must exit 0 (no leak under
 * the sanitizers).
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
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "sim/fixture.h"
#include "testutil.h"

#define NEW_GPU "0000:e0:00.0"
#define ROUNDS 20

static const char new_gpu_json[] =
    "{\"name\": \"extra\", \"pci\": [{\"address\": \"" NEW_GPU "\", \"vendor\": \"0x10de\","
    " \"device\": \"0x2330\", \"subsystem_vendor\": \"0x10de\", \"subsystem_device\": "
    "\"0x16c1\", \"class\": \"0x030200\", \"revision\": \"0xa1\", \"driver\": \"nvidia\","
    " \"numa_node\": 1, \"local_cpulist\": \"56-111\", \"nvidia\": {\"minor\": 8, \"model\":"
    " \"NVIDIA H100 80GB HBM3\", \"uuid\": \"GPU-00000000-0000-0000-0000-0000000000e0\"}}]}";

static bool wait_device(struct test_xpud *x, int want_status)
{
	for (int i = 0; i < 500; i++) {
		if (test_request(x, "GET", "/v1/devices/" NEW_GPU, NULL) == want_status)
			return true;
		usleep(20000);
	}
	return false;
}

/* The allocation holding the new GPU, or NULL (malloc'd). */
static char *holder(struct test_xpud *x)
{
	json_t *doc = NULL, *a, *s;
	char *id = NULL;
	size_t i, j;

	assert_int_equal(test_request(x, "GET", "/v1/allocations", &doc), 200);
	json_array_foreach (json_object_get(doc, "allocations"), i, a)
		json_array_foreach (json_object_get(a, "slices"), j, s) {
			const char *sid = json_is_string(s)
					      ? json_string_value(s)
					      : json_string_value(json_object_get(s, "id"));

			if (sid && strcmp(sid, NEW_GPU) == 0) {
				if (id)
					fail_msg("%s is held by %s and %s", NEW_GPU, id,
						 json_string_value(json_object_get(a, "id")));
				id = strdup(json_string_value(json_object_get(a, "id")));
			}
		}
	json_decref(doc);
	return id;
}

static void test_remove_during_grant(void **state)
{
	struct test_xpud *x = test_xpud_start(test_fixture_new("hgx-h100"), NULL);
	int granted = 0, refused = 0;
	char *err = NULL;

	for (int round = 0; round < ROUNDS; round++) {
		char *held_before, *held_after;
		int st;
		pid_t child;

		assert_int_equal(fixture_build(new_gpu_json, x->root, &err), 0);
		test_send_uevent(x, "add", "/devices/pci0000:e0/" NEW_GPU, "pci");
		assert_true(wait_device(x, 200));
		held_before = holder(x);

		/* the grant and the removal race: a child asks while the parent removes */
		child = fork();
		assert_true(child >= 0);
		if (child == 0) {
			int s = test_request_body(x, "POST", "/v1/allocations",
						  "{\"slices\": [\"" NEW_GPU "\"]}", NULL);

			_exit(s == 201 ? 0 : s == 404 ? 1 : s == 409 ? 2 : s == 400 ? 3 : 10);
		}
		if (round % 2)
			usleep((useconds_t)(random() % 3000));
		assert_int_equal(fixture_remove_pci(x->root, NEW_GPU), 0);
		test_send_uevent(x, "remove", "/devices/pci0000:e0/" NEW_GPU, "pci");
		assert_int_equal(waitpid(child, &st, 0), child);
		assert_true(WIFEXITED(st));
		if (WEXITSTATUS(st) >= 10)
			fail_msg("round %d: the grant of a GPU being removed got no clear answer",
				 round);
		assert_true(wait_device(x, 404));
		held_after = holder(x);
		if (WEXITSTATUS(st) == 0) {
			granted++;
			/* granted before the removal: still accounted for, by one allocation */
			assert_non_null(held_after);
		} else {
			refused++;
			/* refused: nothing new holds it */
			if (held_before)
				assert_string_equal(held_after, held_before);
			else
				assert_null(held_after);
		}
		/* xpud still serves, and its books agree with its list */
		assert_int_equal(test_request(x, "GET", "/v1/capacity", NULL), 200);
		/* the holder lets go of the vanished GPU */
		if (held_after) {
			char path[128];

			snprintf(path, sizeof(path), "/v1/allocations/%s", held_after);
			assert_int_equal(test_request_body(x, "DELETE", path, NULL, NULL), 200);
		}
		free(held_before);
		free(held_after);
	}
	print_message("%d grants won the race, %d lost it\n", granted, refused);
	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_remove_during_grant),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
