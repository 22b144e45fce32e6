// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A full state disk: the state directory is a small tmpfs (needs root; skipped otherwise),
 * filled up while xpud runs. A grant is refused with a clear error and grants nothing, a
 * release is refused and keeps the allocation, what was granted before survives a restart on
 * the full disk, no temporary file is left, and once space is back everything works again.
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
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "testutil.h"

#define GPU "nvidia.com/gpu"

static char state_dir[4200];

static int grant(struct test_xpud *x, char **ret_id, char **ret_message)
{
	json_t *doc = NULL;
	int st =
	    test_request_body(x, "POST", "/v1/allocations", "{\"resource\": \"" GPU "\"}", &doc);

	if (ret_id)
		*ret_id = st == 201 ? strdup(json_string_value(json_object_get(doc, "id"))) : NULL;
	if (ret_message)
		*ret_message = json_is_string(json_object_get(doc, "message"))
				   ? strdup(json_string_value(json_object_get(doc, "message")))
				   : NULL;
	json_decref(doc);
	return st;
}

static int release(struct test_xpud *x, const char *id, char **ret_message)
{
	json_t *doc = NULL;
	char path[128];
	int st;

	snprintf(path, sizeof(path), "/v1/allocations/%s", id);
	st = test_request_body(x, "DELETE", path, NULL, &doc);
	if (ret_message)
		*ret_message = json_is_string(json_object_get(doc, "message"))
				   ? strdup(json_string_value(json_object_get(doc, "message")))
				   : NULL;
	json_decref(doc);
	return st;
}

/* Fills the file system of the state directory to the last byte. */
static void fill_disk(void)
{
	char path[4300], block[4096] = {0};
	int fd;

	snprintf(path, sizeof(path), "%s/filler", state_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	while (write(fd, block, sizeof(block)) > 0)
		;
	while (write(fd, block, 1) > 0)
		;
	assert_int_equal(errno, ENOSPC);
	close(fd);
}

static void free_disk(void)
{
	char path[4300];

	snprintf(path, sizeof(path), "%s/filler", state_dir);
	assert_int_equal(unlink(path), 0);
}

static void assert_no_temporary_files(void)
{
	char cmd[4400];

	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s' | grep '^\\.')\"", state_dir);
	assert_int_equal(system(cmd), 0);
}

static struct test_xpud *restart(struct test_xpud *x)
{
	char *root = test_xpud_take_root(x);

	assert_int_equal(test_xpud_stop(x), 0);
	test_xpud_free(x);
	return test_xpud_start_nvml(root, NULL, NULL);
}

static void test_full_state_disk(void **state)
{
	char *root = test_fixture_new("hgx-h100"), cmd[4400], *id1 = NULL, *id2 = NULL, *msg = NULL,
	     *id3 = NULL;
	struct test_xpud *x;

	snprintf(state_dir, sizeof(state_dir), "%s/var/lib/xpud", root);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", state_dir);
	assert_int_equal(system(cmd), 0);
	if (mount("tmpfs", state_dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=256k,mode=0700") < 0) {
		print_message("cannot mount a tmpfs (%s): skipping\n", strerror(errno));
		skip();
	}
	x = test_xpud_start_nvml(root, NULL, NULL);
	assert_int_equal(grant(x, &id1, NULL), 201);
	assert_int_equal(grant(x, &id2, NULL), 201);

	fill_disk();
	/* a grant is refused, says why, and grants nothing */
	assert_int_equal(grant(x, NULL, &msg), 500);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "could not be saved"));
	free(msg);
	assert_int_equal(test_n_allocations(x), 2);
	assert_int_equal(test_capacity(x, GPU, "allocated"), 2);
	/* a release is refused and keeps the allocation */
	assert_int_equal(release(x, id1, &msg), 500);
	assert_non_null(strstr(msg, "kept"));
	free(msg);
	assert_int_equal(test_n_allocations(x), 2);
	assert_no_temporary_files();

	/* a restart on the full disk loses nothing */
	x = restart(x);
	assert_int_equal(test_n_allocations(x), 2);
	assert_int_equal(test_capacity(x, GPU, "allocated"), 2);
	assert_int_equal(grant(x, NULL, NULL), 500);
	assert_no_temporary_files();

	/* space is back: all works, and stays after a restart */
	free_disk();
	assert_int_equal(release(x, id1, NULL), 200);
	assert_int_equal(grant(x, &id3, NULL), 201);
	x = restart(x);
	assert_int_equal(test_n_allocations(x), 2);
	assert_int_equal(release(x, id2, NULL), 200);
	assert_int_equal(release(x, id3, NULL), 200);
	assert_int_equal(test_n_allocations(x), 0);
	assert_int_equal(test_xpud_stop(x), 0);
	assert_int_equal(umount2(state_dir, MNT_DETACH), 0);
	test_xpud_free(x);
	free(id1);
	free(id2);
	free(id3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_state_disk),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
